#!/bin/bash
# build-module.sh SRC KDIR BUILDDIR
#
# Build kvmfr.ko from the module sources in SRC against the kernel headers in
# KDIR, out of tree in BUILDDIR, so that builds for different kernels never
# share objects.  Copied: the top-level regular files of SRC (kvmfr.c,
# kvmfr.h, Kbuild, Makefile, ...) and the directories named in
# $KVMFR_MODULE_DIRS (default "probes"), without build products.  Other
# directories (tests, docs, demo, ...) are not part of the module build and
# may be large.  If SRC has a Makefile that takes KDIR=, that is used
# (`make KDIR=...`); otherwise kbuild is called directly
# (`make -C KDIR M=BUILDDIR modules`), always with W=1.  Leaves
# BUILDDIR/kvmfr.ko; the build output goes to stdout.
set -eu
src=$1 kdir=$2 build=$3

rm -rf "$build"
mkdir -p "$build"
for f in "$src"/* "$src"/.[!.]*; do
	if [ -f "$f" ]; then cp -p "$f" "$build/"; fi
done
for d in ${KVMFR_MODULE_DIRS-probes}; do
	if [ -d "$src/$d" ]; then cp -pR "$src/$d" "$build/"; fi
done
# build products of an in-tree `make` in SRC must not leak into this build
(cd "$build" && rm -f ./*.o ./*.ko ./*.mod ./*.mod.c ./.*.cmd ./.*.d \
	Module.symvers modules.order kvmfr_config.h)

if [ ! -e "$build/kvmfr.c" ] && [ ! -e "$build/Kbuild" ]; then
	echo "build-module: no kvmfr.c or Kbuild in $src" >&2
	exit 1
fi

if [ -f "$build/Makefile" ] && grep -q 'KDIR' "$build/Makefile"; then
	echo "+ make -C $build KDIR=$kdir W=1"
	make -C "$build" KDIR="$kdir" W=1
else
	echo "+ make -C $kdir M=$build W=1 modules"
	make -C "$kdir" M="$build" W=1 modules
fi

if [ ! -f "$build/kvmfr.ko" ]; then
	echo "build-module: the build finished but produced no kvmfr.ko" >&2
	exit 1
fi
