#!/bin/bash
# run.sh OUTDIR
#
# The packaging tier of `make check`, on the host: the kvmfr-dkms Debian
# package (make deb), lintian, the kvmfr(4) man page, the release tarball
# (make dist), DKMS building the module from the unpacked tarball alone, and
# the package installed, removed and purged in a throwaway copy of the host's
# root (throwaway-root.sh), for the Debian kernels KVMFR_PACKAGE_KERNELS
# (default "6.1 6.12", oldest first; headers from tests/lib/fetch-kernel.sh;
# the tarball is built for the first only). Installs the
# tools it needs with apt (no recommends). TAP results via tap.sh, to
# $TAP_FILE (default OUTDIR/package.tap); logs in OUTDIR.
#
# Environment: KVMFR_PACKAGE_SRC (default: the repository),
# KVMFR_PACKAGE_KERNELS, KVMFR_CACHE and KVMFR_RESULTS (as in tests/run).
set -eu
out=$1
here=$(cd "$(dirname "$0")" && pwd)
lib=$(dirname "$here")/lib
src=${KVMFR_PACKAGE_SRC:-$(dirname "$(dirname "$here")")}
kernels=${KVMFR_PACKAGE_KERNELS-6.1 6.12}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export TAP_FILE=${TAP_FILE:-$out/package.tap}
export KVMFR_CACHE=${KVMFR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvmfr-tests}
export KVMFR_RESULTS=${KVMFR_RESULTS:-$out}
# shellcheck source=tests/lib/tap.sh
. "$lib/tap.sh"
SECONDS=0
times=
# phase NAME: note the seconds since the last phase, for the summary line
phase() {
	times="$times $1 $((SECONDS - ${last:-0})) s,"
	last=$SECONDS
}

# dkms, dh-dkms, debhelper: build and install the package; lintian; groff,
# man-db: the man page checks; openssl: DKMS's signing key.
tools="dkms dh-dkms debhelper lintian groff man-db dpkg-dev openssl kmod"
missing=
for p in $tools; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "# package: installing$missing (log: $out/install-tools.log)"
	install_tools() {
		# shellcheck disable=SC2086 # a list
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			-o DPkg::Lock::Timeout=600 $missing
	}
	if [ "$(id -u)" != 0 ] ||
		! { install_tools || { apt-get update && install_tools; }; } >"$out/install-tools.log" 2>&1; then
		tap_result 1 "package: install the packaging tools:$missing (log $out/install-tools.log)"
		tap_diag "$out/install-tools.log"
		exit 0
	fi
fi

version=$(sed -n 's/^PACKAGE_VERSION="\([^"]*\)"$/\1/p' "$src/dkms.conf")
changelog=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
if [ -n "$version" ] && [ "${changelog%-*}" = "$version" ]; then
	tap_result 0 "version: debian/changelog ($changelog) is for dkms.conf's PACKAGE_VERSION $version"
else
	tap_result 1 "version: debian/changelog ($changelog) is for dkms.conf's PACKAGE_VERSION '$version'"
fi

phase tools
# The man page: no warning from groff (-ww: all of them) nor from man.
man=$src/docs/kvmfr.4
if { groff -ww -z -man "$man" && LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$man" >/dev/null; } \
	>"$out/man.log" 2>&1 && [ ! -s "$out/man.log" ]; then
	tap_result 0 "man: kvmfr.4 renders with groff -ww and man --warnings without a warning"
else
	tap_result 1 "man: kvmfr.4 renders with groff -ww and man --warnings without a warning (log $out/man.log)"
	tap_diag "$out/man.log"
fi
whatis=$(lexgrog "$man" 2>&1 || true)
case $whatis in
*': "kvmfr - '*) tap_result 0 "man: lexgrog reads kvmfr.4's NAME line (${whatis#*: })" ;;
*) tap_result 1 "man: lexgrog reads kvmfr.4's NAME line (lexgrog: $whatis)" ;;
esac

phase man
# The release tarball, twice: the same bytes both times.
dist=kvmfr-$version
if make -C "$src" dist OUT="$out/dist" >"$out/dist.log" 2>&1 &&
	cp "$out/dist/$dist.tar.gz" "$out/dist/first.tar.gz" &&
	make -C "$src" dist OUT="$out/dist" >>"$out/dist.log" 2>&1 &&
	cmp "$out/dist/first.tar.gz" "$out/dist/$dist.tar.gz" >>"$out/dist.log" 2>&1; then
	tap_result 0 "dist: make dist makes $dist.tar.gz, the same bytes when run twice"
else
	tap_result 1 "dist: make dist makes $dist.tar.gz, the same bytes when run twice (log $out/dist.log)"
	tap_diag "$out/dist.log"
fi
rm -f "$out/dist/first.tar.gz"
tarball=$out/dist/$dist.tar.gz
extra=$(tar -tzf "$tarball" 2>&1 | grep -Ev "^$dist/" ; tar -tzf "$tarball" 2>/dev/null |
	grep -E '\.(o|ko|mod|mod\.c|cmd|orig|rej)$|/kvmfr_config\.h$|/(tests|demo|\.ci|build)/|/debian/(kvmfr-dkms|\.debhelper)/|/debian/(files|.*\.substvars|.*\.log|debhelper-build-stamp)$' || true)
if [ -f "$tarball" ] && [ -z "$extra" ]; then
	tap_result 0 "dist: $dist.tar.gz holds only $dist/ and in it no build product, test or demo file"
else
	tap_result 1 "dist: $dist.tar.gz holds only $dist/ and in it no build product, test or demo file (found: $(echo "$extra" | tr '\n' ' '))"
fi

phase dist
# The package, from the tarball, and what lintian says of it.
deb=
if make -C "$src" deb OUT="$out/pkg" >"$out/deb.log" 2>&1; then
	deb=$(find "$out/pkg/deb" -maxdepth 1 -name 'kvmfr-dkms_*_all.deb' | head -n 1)
fi
if [ -n "$deb" ]; then
	tap_result 0 "package: make deb builds $(basename "$deb") from $dist.tar.gz with dpkg-buildpackage"
else
	tap_result 1 "package: make deb builds kvmfr-dkms_*_all.deb from $dist.tar.gz with dpkg-buildpackage (log $out/deb.log)"
	tap_diag "$out/deb.log"
	exit 0
fi
phase deb
changes=${deb%/*}/$(dpkg-deb -f "$deb" Source)_$(dpkg-deb -f "$deb" Version)_$(dpkg --print-architecture).changes
lintian --pedantic --display-info --show-overrides "$changes" >"$out/lintian.log" 2>&1 || true
if grep -q '^[EW]: ' "$out/lintian.log" || ! grep -q '^O: ' "$out/lintian.log"; then
	tap_result 1 "package: lintian --pedantic reports no error or warning (log $out/lintian.log)"
	tap_diag "$out/lintian.log"
else
	tap_result 0 "package: lintian --pedantic reports no error or warning ($(grep -c '^O: ' "$out/lintian.log") overridden, with reasons in debian/kvmfr-dkms.lintian-overrides)"
fi

phase lintian
# What the package holds: exactly these files.
{
	for f in etc/modprobe.d/kvmfr.conf etc/modules-load.d/kvmfr.conf \
		lib/udev/rules.d/70-kvmfr.rules usr/include/linux/kvmfr.h \
		usr/share/lintian/overrides/kvmfr-dkms usr/share/man/man4/kvmfr.4.gz; do
		echo "/$f"
	done
	for f in README.md.gz changelog.Debian.gz copyright design.md.gz user-guide.md.gz; do
		echo "/usr/share/doc/kvmfr-dkms/$f"
	done
	for f in Kbuild Makefile dkms.conf kvmfr.c kvmfr.h kvmfr_mem.c kvmfr_mem.h probes/run.sh; do
		echo "/usr/src/$dist/$f"
	done
	for f in "$src"/probes/*.c; do echo "/usr/src/$dist/probes/${f##*/}"; done
} | sort >"$out/deb-expected.list"
dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -v '/$' | sed 's|^\./|/|' | sort >"$out/deb-files.list"
if diff -u "$out/deb-expected.list" "$out/deb-files.list" >"$out/deb-files.diff"; then
	tap_result 0 "package: $(basename "$deb") holds exactly the DKMS source, header, udev rule, modprobe.d and modules-load.d files, man page and docs"
else
	tap_result 1 "package: $(basename "$deb") holds exactly the DKMS source, header, udev rule, modprobe.d and modules-load.d files, man page and docs"
	tap_diag "$out/deb-files.diff" 40
fi

# The /etc files are the user's to enable: conffiles, nothing active in them.
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | sort | tr '\n' ' ')
active=$(dpkg-deb --fsys-tarfile "$deb" |
	tar -xO ./etc/modprobe.d/kvmfr.conf ./etc/modules-load.d/kvmfr.conf |
	grep -Ev '^[[:space:]]*(#|$)' || true)
if [ "$conffiles" = "/etc/modprobe.d/kvmfr.conf /etc/modules-load.d/kvmfr.conf " ] && [ -z "$active" ]; then
	tap_result 0 "package: its conffiles, /etc/modprobe.d/kvmfr.conf and /etc/modules-load.d/kvmfr.conf, are all comments"
else
	tap_result 1 "package: its conffiles, /etc/modprobe.d/kvmfr.conf and /etc/modules-load.d/kvmfr.conf, are all comments (conffiles: $conffiles; active: $active)"
fi

phase contents
# DKMS, in throwaway copies of this machine's root, against Debian's kernels.
pairs=
for series in $kernels; do
	if LOG=$out/fetch-$series.log "$lib/fetch-kernel.sh" "$series" "$out/kernel-$series.env" \
		>/dev/null 2>&1; then
		# shellcheck disable=SC1090
		pairs="${pairs:+$pairs }$(. "$out/kernel-$series.env" && echo "$KVER=$KDIR")"
	else
		tap_result 1 "package: fetch Debian $series headers for DKMS (log $out/fetch-$series.log)"
		tap_diag "$out/fetch-$series.log"
	fi
done
phase headers
if [ "$(id -u)" != 0 ]; then
	tap_skip "package: DKMS from the tarball and the package installed and purged" "needs root"
elif [ -n "$pairs" ]; then
	# The two at once, each in its own throwaway root; their TAP in order.
	# The tarball: for the oldest kernel; the package: for all of them.
	"$here/throwaway-root.sh" "$here/dkms-tarball.sh" "$tarball" "$out/dkms-tarball" \
		"${pairs%% *}" >"$out/dkms-tarball.out" 2>&1 &
	tarball_job=$!
	# shellcheck disable=SC2086 # a list
	"$here/throwaway-root.sh" "$here/install-purge.sh" "$deb" "$out/install-purge" \
		$pairs >"$out/install-purge.out" 2>&1 || echo "not ok - package: install and purge: harness error ($?)" >>"$out/install-purge.out"
	wait $tarball_job || echo "not ok - dist: DKMS from the tarball: harness error ($?)" >>"$out/dkms-tarball.out"
	cat "$out/dkms-tarball.out" "$out/install-purge.out"
	grep -h '^not ok - .*harness error' "$out/dkms-tarball.out" "$out/install-purge.out" >>"$TAP_FILE" || true
fi
phase dkms
echo "# package tier: $SECONDS s (${times%,})"
