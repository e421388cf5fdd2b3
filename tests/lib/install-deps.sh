#!/bin/bash
# Make sure the host has every package the harness uses.  Fast path: all
# present, apt is not touched.  Otherwise install them as root (apt-get update
# once), or, without root, print the apt command to run and fail.
set -eu

# qemu-system-x86: the guest; busybox-static: the guest userland; cpio, gzip:
# the initramfs; kmod: modinfo; build-essential, gcc-multilib: module, host
# tool and (32-bit) guest programs; bc, libelf-dev, dwarves (pahole, a
# dependency of linux-kbuild-6.12): what Debian's kbuild expects; zstd,
# xz-utils: unpacking Debian's kernel packages; flex, bison, perl: building
# the debug kernel; python3: the QMP hot-plug driver; clang-format: the
# style check; debootstrap, debian-archive-keyring: the chroots with the
# compilers of other Debian releases (tests/lib/make-chroot.sh) and the
# private apt sources (tests/apt); clang, lld, llvm: the "clang" job's
# LLVM=1 kernel tree and module build; libegl-dev, libgles-dev: the
# headers of tests/graphics/egl_import.c; libgl1-mesa-dri, libegl-mesa0,
# libgbm1, file: what tests/graphics/prepare-root.sh copies into the
# graphics root besides the newer Mesa (LLVM 15, X and Wayland client
# libraries) and how it finds the ELF files; qemu-utils (qemu-img),
# e2fsprogs (mke2fs -d): the real-userspace guests' root images and their
# overlays (tests/userspace).
packages="qemu-system-x86 busybox-static cpio gzip kmod build-essential gcc-multilib
bc libelf-dev dwarves zstd xz-utils util-linux coreutils flex bison perl python3
clang-format debootstrap debian-archive-keyring clang lld llvm
libegl-dev libgles-dev libgl1-mesa-dri libegl-mesa0 libgbm1 file qemu-utils e2fsprogs"

missing=
for p in $packages; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "tests/run: missing packages:$missing" >&2
	echo "tests/run: as root, run:  apt-get update && apt-get install -y$missing" >&2
	exit 1
fi

log=${KVMFR_RESULTS:?}/install-deps.log
echo "# installing:$missing (log: $log)"
# shellcheck disable=SC2086 # $missing is a list
if ! { apt-get update && touch "$KVMFR_RESULTS/.apt-updated" &&
       DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=600 $missing; } >"$log" 2>&1; then
	tail -n 20 "$log" >&2
	echo "tests/run: installing packages failed (log: $log)" >&2
	exit 1
fi
