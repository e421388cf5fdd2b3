#!/bin/bash
# initramfs.sh STAGE KVER KROOT BIN
#
# Adds to a guest initramfs staging tree (tests/lib/mkinitramfs.sh) what
# the guest needs to run tests/graphics/egl_import.c in the graphics root of
# prepare-root.sh, shared read-only over virtio-9p (mount tag kvmfr-gfx):
#   /lib/kvmfr/9p/               virtio-pci and 9p modules of KVER where
#                                not built in (tests/lib/add-modules.sh)
#   /tests/graphics/             BIN (the program) and run-in-guest.sh
set -eu
stage=$1 kver=$2 kroot=$3 bin=$4
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$stage/tests/graphics"
"$here/../lib/add-modules.sh" "$stage" 9p "$kver" "$kroot" VIRTIO_PCI:virtio_pci \
	NET_9P:9pnet NET_9P_VIRTIO:9pnet_virtio 9P_FS:9p
cp "$bin" "$stage/tests/graphics/kvmfr-egl_import"
cp "$here/run-in-guest.sh" "$stage/tests/graphics/run-in-guest.sh"
chmod 755 "$stage/tests/graphics/run-in-guest.sh"
