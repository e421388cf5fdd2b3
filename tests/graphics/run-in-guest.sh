#!/bin/sh
# run-in-guest.sh ROOT [PROGRAM]
#
# Runs tests/graphics/egl_import.c (default PROGRAM: the copy next to this
# script) inside the guest, chrooted into ROOT, the graphics root of
# prepare-root.sh (read-only is fine: it only needs its empty mount points
# dev, proc, sys, tmp, tests and lib/kvmfr).  The guest's /dev, /proc, /sys
# (and debugfs), a fresh tmpfs, the program's directory (as /tests) and /lib/kvmfr are
# bind-mounted in for the run and unmounted after.  The environment passes
# through (KVMFR_STATIC_MB, KVMFR_PCI, KVMFR_EGL_*); Mesa keeps no shader
# cache.  Exit status and output are the program's.
root=$1
prog=${2:-$(cd "$(dirname "$0")" && pwd)/kvmfr-egl_import}
if [ ! -x "$root/usr/lib64/ld-linux-x86-64.so.2" ]; then
	echo "1..0 # SKIP $root is not a graphics root (tests/graphics/prepare-root.sh)"
	exit 0
fi
mounted=
for m in dev proc sys; do
	mount --bind "/$m" "$root/$m" && mounted="$root/$m $mounted"
done
[ -d /sys/kernel/debug/dma_buf ] &&
	mount -t debugfs debugfs "$root/sys/kernel/debug" &&
	mounted="$root/sys/kernel/debug $mounted"
mount -t tmpfs tmpfs "$root/tmp" && mounted="$root/tmp $mounted"
mount --bind "$(dirname "$prog")" "$root/tests" && mounted="$root/tests $mounted"
[ -d /lib/kvmfr ] && mount --bind /lib/kvmfr "$root/lib/kvmfr" &&
	mounted="$root/lib/kvmfr $mounted"
MESA_SHADER_CACHE_DISABLE=true HOME=/tmp XDG_CACHE_HOME=/tmp \
	chroot "$root" "/tests/$(basename "$prog")"
rc=$?
for m in $mounted; do
	umount "$m" || umount -l "$m"
done
exit $rc
