#!/bin/bash
# run.sh NAME
#
# The real-userspace tier for one kernel, NAME = userspace-SERIES (a series
# of tests/lib/fetch-kernel.sh, e.g. userspace-5.10, userspace-newest),
# results in $KVMFR_RESULTS/NAME like a kernel job of tests/run: boot a real
# Debian system of the kernel's own release (make-root.sh: systemd, udev,
# dkms, the kernel's image and headers; cached, a qcow2 overlay per run)
# with Debian's own initrd, through tests/lib/boot-guest.sh, and let
# guest-test.sh install the freshly built kvmfr-dkms .deb, reboot, and
# check loading at boot, the device node, access, a kernel upgrade and the
# purge. Its results come back on the serial ports; parse-results.sh and
# the kernel-log gate read them as for any guest.
#
# The .deb: the packaging tier's ($KVMFR_RESULTS/package/pkg/deb), else
# built here with `make deb`. Needs KVMFR_SRC, KVMFR_RESULTS, KVMFR_CACHE
# (tests/run) and root.
set -eu
name=$1
series=${name#userspace-}
here=$(cd "$(dirname "$0")" && pwd)
lib=$(dirname "$here")/lib
# shellcheck source=tests/lib/tap.sh
. "$lib/tap.sh"
dir=$KVMFR_RESULTS/$name
mkdir -p "$dir"
export TAP_FILE=$dir/harness.tap
: >"$TAP_FILE"
SECONDS=0

if ! LOG=$dir/fetch.log "$lib/fetch-kernel.sh" "$series" "$dir/kernel.env" 2>>"$dir/fetch.log"; then
	tap_result 1 "$name: fetch Debian kernel packages of $series; log: $dir/fetch.log"
	tap_diag "$dir/fetch.log" 15
	exit 0
fi
# shellcheck disable=SC1091 # written by fetch-kernel.sh
. "$dir/kernel.env"

t0=$SECONDS
if ! LOG=$dir/root.log "$here/make-root.sh" "$dir/kernel.env" "$dir/root.env" 2>>"$dir/root.log"; then
	tap_result 1 "$name: Debian root image with systemd, udev, dkms and linux-image-$KVER; log: $dir/root.log"
	tap_diag "$dir/root.log" 15
	exit 0
fi
# shellcheck disable=SC1091 # written by make-root.sh
. "$dir/root.env"
tap_result 0 "$name: Debian $ROOT_RELEASE root image with systemd, udev, dkms, linux-image-$KVER and its headers ready ($((SECONDS - t0)) s)"

deb=$(find "$KVMFR_RESULTS/package/pkg/deb" -maxdepth 1 -name 'kvmfr-dkms_*_all.deb' 2>/dev/null | head -n 1)
if [ -z "$deb" ]; then
	# one build per run, shared by the userspace jobs
	(
		flock 8
		[ -n "$(find "$KVMFR_RESULTS/userspace-pkg/deb" -maxdepth 1 -name 'kvmfr-dkms_*_all.deb' 2>/dev/null)" ] ||
			make -C "$KVMFR_SRC" deb OUT="$KVMFR_RESULTS/userspace-pkg"
	) 8>"$KVMFR_RESULTS/.userspace-pkg.lock" >"$dir/deb.log" 2>&1 || true
	deb=$(find "$KVMFR_RESULTS/userspace-pkg/deb" -maxdepth 1 -name 'kvmfr-dkms_*_all.deb' 2>/dev/null | head -n 1)
	if [ -z "$deb" ]; then
		tap_result 1 "$name: make deb builds the kvmfr-dkms .deb to install; log: $dir/deb.log"
		tap_diag "$dir/deb.log" 15
		exit 0
	fi
fi

# What the guest mounts over virtio-9p: its test script, the package and
# the access program.
share=$dir/share
rm -rf "$share"
mkdir -p "$share"
cp "$here/guest-test.sh" "$deb" "$share/"
if ! cc -static -O2 -Wall -Wextra -Werror -I"$KVMFR_SRC" -o "$share/kvmfr-access" \
	"$here/access.c" >"$dir/access-build.log" 2>&1; then
	tap_result 1 "$name: build kvmfr-access; log: $dir/access-build.log"
	tap_diag "$dir/access-build.log"
	exit 0
fi
cat >"$share/test.env" <<EOT
KVER='$KVER'
KVER2='$KVER2'
SIZE_MB=24
DEB='$(basename "$deb")'
EOT

# A fresh overlay over the cached image; the image is never written.
# One TCG thread for both vCPUs: with one per vCPU, the 7.3 kernel's first
# boot twice died of an int3 Oops in the random code (mix_interrupt_
# randomness, get_random_u32) before kvmfr was installed, on 2026-12-01:
# the other vCPU ran code the kernel was patching.
qemu-img create -q -f qcow2 -F raw -b "$ROOT_IMAGE" "$dir/root.qcow2"
trap 'rm -f "$dir/root.qcow2"' EXIT
GUEST_TCG_THREAD=single \
GUEST_DISK=$dir/root.qcow2 GUEST_SHARE=$share GUEST_BOOTS=2 GUEST_IVSHMEM='' \
GUEST_MEM=1536 GUEST_CMDLINE="root=/dev/vda rw" \
GUEST_BOOT_TIMEOUT=${KVMFR_BOOT_TIMEOUT:-3600} \
	"$lib/boot-guest.sh" "$name" "$dir" "$ROOT_VMLINUZ" "$ROOT_INITRD"
"$lib/parse-results.sh" "$name" "$dir"
"$lib/check-kernel-log.sh" "$name" "$dir"
echo "# $name: $SECONDS s"
