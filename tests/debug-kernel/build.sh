#!/bin/bash
# build.sh CACHE_DIR
#
# Build the kvmfr debug kernel (KASAN, lockdep, kmemleak, DMA-API debug, ...)
# from Debian's linux-source-6.12 package: `make tinyconfig` + debug.config,
# verified, then bzImage, modules (Module.symvers) and modules_prepare, so that
# out-of-tree modules build with `make -C TREE M=DIR modules`.
#
# The build is cached in CACHE_DIR/debug-<hash>, where <hash> covers the source
# package version, debug.config and this script: it is built once per machine
# (and again only when one of those changes).  On success the tree path is the
# only thing printed on stdout; the kernel is TREE/arch/x86/boot/bzImage.
# Progress goes to stderr, the full log to TREE/build.log (the tail is shown
# on failure).
#
# Needs: apt-get, dpkg, xz, gcc, make, flex, bison, bc, perl, libelf-dev.
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 CACHE_DIR" >&2
	exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/debug.config
pkg=linux-source-6.12
mkdir -p "$1"
cache=$(cd "$1" && pwd)

say() { echo "debug-kernel: $*" >&2; }
die() { say "$*"; exit 1; }

# --- resolve the source package version -----------------------------------
candidate() {
	apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }'
}
newest_cached_deb() {
	# newest $pkg .deb already in the cache (for offline machines)
	local d best= bestv= v
	for d in "$cache"/debs/"$pkg"_*_all.deb; do
		[ -e "$d" ] || continue
		v=$(dpkg-deb -f "$d" Version)
		if [ -z "$bestv" ] || dpkg --compare-versions "$v" gt "$bestv"; then
			best=$d bestv=$v
		fi
	done
	[ -z "$best" ] || echo "$bestv"
}

ver=$(candidate)
if { [ -z "$ver" ] || [ "$ver" = "(none)" ]; } && [ "$(id -u)" = 0 ] &&
   [ -z "$(newest_cached_deb)" ]; then
	say "apt has no candidate for $pkg, running apt-get update"
	apt-get update >&2 || true
	ver=$(candidate)
fi
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
	ver=$(newest_cached_deb)
	[ -n "$ver" ] || die "no $pkg package known to apt and none in $cache/debs"
	say "apt has no candidate for $pkg, using cached $ver"
fi

# --- cache key ---------------------------------------------------------------
hash=$( { printf '%s\n%s\n' "$pkg" "$ver"; cat "$fragment" "$0"; } |
	sha256sum | cut -c1-16)
tree=$cache/debug-$hash
stamp=$tree/.kvmfr-debug-kernel-done

if [ -e "$stamp" ]; then
	echo "$tree"
	exit 0
fi

# one build at a time per cache dir (concurrent callers wait, then reuse)
exec 9>"$cache/.debug-kernel.lock"
if ! flock -n 9; then
	say "another build is running in $cache, waiting for it"
	flock 9
fi
if [ -e "$stamp" ]; then
	echo "$tree"
	exit 0
fi

missing=
for t in apt-get dpkg dpkg-deb xz tar gcc make flex bison bc perl sha256sum; do
	command -v "$t" >/dev/null || missing="$missing $t"
done
[ -e /usr/include/gelf.h ] || [ -e /usr/include/libelf.h ] || missing="$missing libelf-dev"
[ -z "$missing" ] ||
	die "missing build tools:$missing (apt-get install build-essential flex bison bc libelf-dev xz-utils)"

# --- the source tree (shared by every config built from this version) -------
# epoch ':' is kept as-is in directory names, apt encodes it as %3a in files
srcroot=$cache/src-$pkg-$ver
src=$srcroot/$pkg
if [ ! -e "$srcroot/.complete" ]; then
	mkdir -p "$cache/debs"
	deb=$cache/debs/${pkg}_${ver//:/%3a}_all.deb
	if [ ! -e "$deb" ]; then
		say "downloading $pkg $ver"
		(cd "$cache/debs" && apt-get download "$pkg=$ver" >&2) ||
			die "apt-get download $pkg=$ver failed"
		[ -e "$deb" ] || die "apt-get download did not produce $deb"
	fi
	say "unpacking $deb"
	rm -rf "$srcroot.tmp"
	mkdir -p "$srcroot.tmp"
	dpkg -x "$deb" "$srcroot.tmp/pkg"
	tarball=$(ls "$srcroot.tmp"/pkg/usr/src/"$pkg".tar.* | head -n 1)
	tar -xf "$tarball" -C "$srcroot.tmp"
	rm -rf "$srcroot.tmp/pkg"
	[ -e "$srcroot.tmp/$pkg/Makefile" ] || die "$tarball has no $pkg/Makefile"
	rm -rf "$srcroot"
	mv "$srcroot.tmp" "$srcroot"
	touch "$srcroot/.complete"
fi

# --- configure, verify, build -----------------------------------------------
mkdir -p "$tree"
log=$tree/build.log
: >"$log"
say "building $pkg $ver with $(basename "$fragment") in $tree (log: $log)"

run() {
	echo "+ $*" >>"$log"
	if ! "$@" >>"$log" 2>&1; then
		say "FAILED: $*"
		tail -n 60 "$log" >&2
		exit 1
	fi
}

kmake() { run make -C "$src" O="$tree" "$@"; }

start=$(date +%s)
kmake tinyconfig
run "$src/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "$fragment"
kmake olddefconfig

# Every line of the fragment must have survived olddefconfig: CONFIG_X=v must
# be in .config verbatim, "# CONFIG_X is not set" must not be set to y/m.
dropped=
while IFS= read -r line; do
	case $line in
	CONFIG_*=*)
		grep -qxF -- "$line" "$tree/.config" ||
			dropped="$dropped
  want $line, have: $(grep -E "^(# )?${line%%=*}[= ]" "$tree/.config" || echo '(absent)')"
		;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }
		opt=${opt%% *}
		! grep -qE "^$opt=" "$tree/.config" ||
			dropped="$dropped
  want $line, have: $(grep -E "^$opt=" "$tree/.config")"
		;;
	esac
done <"$fragment"
if [ -n "$dropped" ]; then
	say "options of $fragment not honoured by olddefconfig (missing dependencies?):$dropped"
	exit 1
fi
say "config verified ($(grep -c '^CONFIG_.*=' "$tree/.config") options set), compiling with -j$(nproc)"

kmake -j"$(nproc)" bzImage modules
kmake modules_prepare
[ -e "$tree/arch/x86/boot/bzImage" ] || die "no bzImage in $tree"
[ -e "$tree/Module.symvers" ] || die "no Module.symvers in $tree"

secs=$(( $(date +%s) - start ))
printf 'package=%s\nversion=%s\nhash=%s\nbuild_seconds=%s\nbuilt=%s\n' \
	"$pkg" "$ver" "$hash" "$secs" "$(date -u +%FT%TZ)" >"$stamp"
say "done in ${secs}s: $tree/arch/x86/boot/bzImage"
echo "$tree"
