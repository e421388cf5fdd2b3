#!/bin/bash
# dkms-tarball.sh TARBALL LOGDIR KVER=KDIR...
#
# Run by throwaway-root.sh. Does what the user guide tells a user without
# the package to do: unpack the release tarball kvmfr-VERSION.tar.gz into
# /usr/src of $ROOT and let DKMS build the module from it for each kernel
# KVER (headers at KDIR). Nothing else of the repository is visible to the
# build. TAP results via tap.sh.
set -eu
tarball=$1 logs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/tap.sh
. "$here/../lib/tap.sh"
# shellcheck source=tests/package/kernels.sh
. "$here/kernels.sh"

dist=$(basename "$tarball" .tar.gz)	# kvmfr-VERSION
version=${dist#kvmfr-}
mkdir -p "$logs"
root_add_kernels "$@"

if ! tar -xzf "$tarball" -C "$ROOT/usr/src" >"$logs/dkms-add.log" 2>&1 ||
	[ ! -f "$ROOT/usr/src/$dist/dkms.conf" ] ||
	! chroot "$ROOT" dkms add -m kvmfr -v "$version" >>"$logs/dkms-add.log" 2>&1; then
	tap_result 1 "dist: dkms add of $dist unpacked into /usr/src (log $logs/dkms-add.log)"
	tap_diag "$logs/dkms-add.log"
	exit 0
fi
for k in "$@"; do
	kver=${k%%=*}
	log=$logs/dkms-build-$kver.log
	if chroot "$ROOT" dkms build -m kvmfr -v "$version" -k "$kver" >"$log" 2>&1 &&
		[ -f "$ROOT/var/lib/dkms/kvmfr/$version/$kver/x86_64/module/kvmfr.ko" ]; then
		tap_result 0 "dist: dkms build of $dist, unpacked alone into /usr/src, makes kvmfr.ko for $kver"
	else
		tap_result 1 "dist: dkms build of $dist, unpacked alone into /usr/src, makes kvmfr.ko for $kver (log $log)"
		tap_diag "$log"
		make_log=$ROOT/var/lib/dkms/kvmfr/$version/build/make.log
		if [ -f "$make_log" ]; then
			cp "$make_log" "$logs/make-$kver.log"
			tap_diag "$make_log"
		fi
	fi
done
