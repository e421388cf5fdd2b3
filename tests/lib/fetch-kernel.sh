#!/bin/bash
# fetch-kernel.sh SERIES ENVFILE
#
# Resolve SERIES to the newest Debian amd64 kernel of its suites, download its
# image (with its modules), headers (arch + common) and kbuild packages into the cache with
# `apt-get download` through the private apt configuration of tests/apt
# (tests/lib/apt.sh: never /etc/apt), unpack them all with `dpkg -x` into one
# root, and write shell assignments for KVER (uname -r), KVERSION (the
# package version), SUITE, KDESC (both, for people), TOOLCHAIN (the Debian release whose compiler and
# C library its kbuild needs: "host" or a chroot suite, tests/lib/chroot.sh),
# KROOT, KDIR (headers) and VMLINUZ to ENVFILE.  Nothing is installed into
# the host.
#
# Series (each only ever takes kernels of its own suites):
#   5.10    Debian 11 bullseye's 5.10 (bullseye-security)
#   6.1     Debian 12 bookworm's 6.1 (bookworm, bookworm-security)
#   6.12    bookworm-security's 6.12 (never trixie's)
#   sid     the newest kernel in sid, whatever its version
#   newest  the newest of trixie-backports and experimental
#
# The last kernel fetched for a series is remembered: when apt cannot
# resolve or download (offline, or the mirror dropped the version the lists
# name), that one is used, with a note on stderr.  apt's output goes to $LOG
# (default: /dev/stderr).
set -eu
series=$1 envfile=$2
cache=${KVMFR_CACHE:?}
log=${LOG:-/dev/stderr}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/apt.sh
. "$here/apt.sh"
mkdir -p "$cache/kernels" "$cache/debs" "$cache/series"

case $series in
5.10) suites=bullseye-security prefix=5.10. ;;
6.1) suites="bookworm bookworm-security" prefix=6.1. ;;
6.12) suites=bookworm-security prefix=6.12. ;;
sid) suites=sid prefix= ;;
newest) suites="trixie-backports experimental" prefix= ;;
*)
	echo "fetch-kernel: unknown series '$series' (5.10 6.1 6.12 sid newest)" >&2
	exit 1
	;;
esac

# The Debian release whose gcc and glibc SUITE's kbuild wants.
toolchain_of() {
	case $1 in
	bullseye*) echo bullseye ;;
	bookworm*) echo host ;;
	trixie*) echo trixie ;;
	*) echo sid ;;
	esac
}

# Prints "SUITE KVER VERSION" of the newest generic amd64 headers package of
# the series (not -cloud-, -rt-), or nothing.
resolve() {
	local suite best='' best_ver='' best_suite='' pkg ver re
	re="^linux-headers-$(printf '%s' "$prefix" | sed 's/\./\\./g')[0-9][^ ]*[0-9]-amd64\$"
	for suite in $suites; do
		suite_update "$suite" 2>>"$log" ||
			echo "fetch-kernel: apt-get update of $suite failed, using its old lists" >&2
		# shellcheck disable=SC2046 # a list of package names
		while read -r pkg ver; do
			if [ -z "$best" ] || dpkg --compare-versions "$ver" gt "$best_ver"; then
				best=$pkg best_ver=$ver best_suite=$suite
			fi
		done < <(suite_apt "$suite" apt-cache show --no-all-versions \
				$(suite_apt "$suite" apt-cache search --names-only "$re" |
				  awk '{ print $1 }') 2>/dev/null |
			 awk '/^Package: / { p = $2 } /^Version: / { print p, $2 }')
	done
	[ -z "$best" ] || echo "$best_suite ${best#linux-headers-} $best_ver"
}

# A root unpacked before the harness fetched linux-modules-KVER for 7.x
# kernels has the kernel but no modules (vgem, 9p): add them, once.
add_modules() {
	local suite=$1 kver=$2 root=$cache/kernels/$2 debs=$cache/debs/$2.modules
	[ ! -d "$root/usr/lib/modules/$kver/kernel" ] || return 0
	[ ! -d "$root/lib/modules/$kver/kernel" ] || return 0
	suite_apt "$suite" apt-cache show "linux-modules-$kver" >/dev/null 2>&1 || return 0
	exec 9>"$cache/.lock"
	flock 9
	if [ ! -d "$root/usr/lib/modules/$kver/kernel" ]; then
		echo "# downloading linux-modules-$kver ($suite) into the cached kernel"
		rm -rf "$debs"
		mkdir -p "$debs"
		(cd "$debs" && suite_apt "$suite" apt-get download \
			"linux-modules-$kver") >>"$log" 2>&1 || return 1
		dpkg -x "$debs"/linux-modules-"$kver"_*.deb "$root"
		rm -rf "$debs"
	fi
	flock -u 9
}

# Download and unpack KVER from SUITE into $cache/kernels/KVER (once).
fetch() {
	local suite=$1 kver=$2 root=$cache/kernels/$2 debs=$cache/debs/$2 image deps common kbuild
	if [ -e "$root/.complete" ]; then
		add_modules "$suite" "$kver"
		return
	fi
	# one download/unpack at a time, across kernels and concurrent runs
	exec 9>"$cache/.lock"
	flock 9
	if [ ! -e "$root/.complete" ]; then
		rm -rf "$debs" "$root.tmp"
		mkdir -p "$debs" "$root.tmp"
		# up to 6.x: linux-image-KVER-unsigned holds the kernel and
		# its modules; from 7.x the kernel is in linux-binary-KVER and
		# the modules in linux-modules-KVER (linux-image-KVER is a
		# metapackage)
		image=linux-image-$kver-unsigned
		if ! suite_apt "$suite" apt-cache show "$image" >/dev/null 2>&1; then
			image="linux-binary-$kver linux-modules-$kver"
		fi
		echo "# downloading $image and headers for $kver ($suite)"
		# shellcheck disable=SC2086 # one or two package names
		(cd "$debs" && suite_apt "$suite" apt-get download $image \
			"linux-headers-$kver") >>"$log" 2>&1 || return 1
		# the arch headers name the exact common-headers and kbuild packages
		deps=$(dpkg-deb -f "$debs"/linux-headers-"$kver"_*.deb Depends)
		common=$(printf '%s\n' "$deps" | grep -Eo 'linux-headers-[^ ,]+-common' | head -n 1)
		kbuild=$(printf '%s\n' "$deps" | grep -Eo 'linux-kbuild-[^ ,]+' | head -n 1)
		(cd "$debs" && suite_apt "$suite" apt-get download "${common:?}" \
			"${kbuild:?}") >>"$log" 2>&1 || return 1
		# what building modules needs (tests/lib/make-chroot.sh)
		{ printf '%s,' "$deps"
		  dpkg-deb -f "$debs"/"$kbuild"_*.deb Depends; } >"$root.tmp/.build-depends"
		for deb in "$debs"/*.deb; do
			dpkg -x "$deb" "$root.tmp"
		done
		# The arch headers' Makefile finds the common headers by their
		# installed path, /usr/src/... (an include up to 6.x, a
		# KBUILD_OUTPUT assignment from 7.x): point it into this tree.
		sed -i -e "s|^include /usr/src/|include $root/usr/src/|" \
			-e "s|^\(\(export \)\?KBUILD_OUTPUT *:\?= *\)/usr/src/|\1$root/usr/src/|" \
			"$root.tmp/usr/src/linux-headers-$kver/Makefile"
		rm -rf "$debs"
		touch "$root.tmp/.complete"
		mv "$root.tmp" "$root"
	fi
	flock -u 9
}

last=$cache/series/$series.env
resolved=$(resolve || true)
if [ -n "$resolved" ]; then
	read -r suite kver kversion <<<"$resolved"
	echo "# $series resolves to $kver (linux $kversion, Debian $suite)"
	if ! fetch "$suite" "$kver"; then
		echo "fetch-kernel: downloading $kver from $suite failed (log: $log)" >&2
		resolved=
	fi
fi
if [ -z "$resolved" ]; then
	if [ ! -e "$last" ]; then
		echo "fetch-kernel: no Debian kernel for series $series in $suites," \
		     "and none fetched before" >&2
		exit 1
	fi
	# shellcheck disable=SC1090 # written below by an earlier run
	. "$last"
	kver=$KVER kversion=$KVERSION suite=$SUITE
	echo "fetch-kernel: using the last kernel fetched for $series, $kver ($kversion)" >&2
fi

root=$cache/kernels/$kver
kdir=$root/usr/src/linux-headers-$kver
vmlinuz=$root/boot/vmlinuz-$kver
[ -e "$vmlinuz" ] || vmlinuz=$root/usr/lib/modules/$kver/vmlinuz
for f in "$kdir/Makefile" "$kdir/scripts/Makefile.modpost" "$vmlinuz"; do
	if [ ! -e "$f" ]; then
		echo "fetch-kernel: $f missing from $root (remove it to re-fetch)" >&2
		exit 1
	fi
done
cat >"$envfile.tmp" <<EOT
KVER='$kver'
KVERSION='$kversion'
SUITE='$suite'
KDESC='linux $kversion, Debian $suite'
TOOLCHAIN='$(toolchain_of "$suite")'
KROOT='$root'
KDIR='$kdir'
VMLINUZ='$vmlinuz'
EOT
cp "$envfile.tmp" "$last"
mv "$envfile.tmp" "$envfile"
