#!/bin/bash
# fetch-debug-kernel.sh ENVFILE
#
# The "debug" entry of KERNELS: the KASAN/lockdep/kmemleak/DMA-API-debug
# kernel built by tests/debug-kernel/build.sh (once per machine, cached in
# $KVMFR_CACHE/debug-kernel; the first build takes several minutes).  Writes
# KVER, KROOT, KDIR and VMLINUZ to ENVFILE like fetch-kernel.sh.
set -eu
envfile=$1
tests_dir=$(cd "$(dirname "$0")/.." && pwd)
echo "# debug kernel from tests/debug-kernel/build.sh (built once per machine, cached)"
tree=$("$tests_dir/debug-kernel/build.sh" "${KVMFR_CACHE:?}/debug-kernel")
if [ ! -f "$tree/arch/x86/boot/bzImage" ] || [ ! -f "$tree/include/config/kernel.release" ]; then
	echo "fetch-debug-kernel: $tree has no bzImage or kernel.release" >&2
	exit 1
fi
cat >"$envfile" <<EOT
KVER='$(cat "$tree/include/config/kernel.release")'
KROOT='$tree'
KDIR='$tree'
VMLINUZ='$tree/arch/x86/boot/bzImage'
EOT
