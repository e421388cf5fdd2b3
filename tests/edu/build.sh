#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# build.sh KDIR OUTDIR
#
# Build the edu DMA test for one kernel: OUTDIR/kvmfr_edu.ko (against the
# kernel build tree or headers in KDIR, out of tree in OUTDIR/build, with its
# feature probes' answers in OUTDIR/kvmfr_edu_config.h) and OUTDIR/edu_dma
# (a static guest program, the same for every kernel). Nothing is installed.
# EDU_BUILD=module or EDU_BUILD=program builds only that part (a kernel
# built for in a chroot gets its module from the chroot's compiler, the
# guest program from the host's).
# The build output goes to stdout; the exit status is make's or gcc's.
set -eu
if [ $# != 2 ]; then
	echo "usage: $0 KDIR OUTDIR" >&2
	exit 2
fi
kdir=$1
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)

what=${EDU_BUILD:-all}

if [ "$what" != program ]; then
	rm -rf "$out/build"
	mkdir -p "$out/build"
	cp -r "$here/Kbuild" "$here/kvmfr_edu.c" "$here/kvmfr_edu.h" "$here/probes" \
		"$out/build/"
	echo "+ make -C $kdir M=$out/build modules"
	make -C "$kdir" M="$out/build" modules
	cp "$out/build/kvmfr_edu.ko" "$out/build/kvmfr_edu_config.h" "$out/"
fi
[ "$what" != module ] || exit 0

cc=${CC:-gcc}
echo "+ $cc -static ... -o $out/edu_dma $here/edu_dma.c"
"$cc" -static -O2 -Wall -Wextra -Werror -I"$repo" -I"$repo/tests/common" \
	-I"$here" -o "$out/edu_dma" "$here/edu_dma.c"
