#!/bin/bash
# build-module.sh SRC KDIR BUILDDIR
#
# Build kvmfr.ko from the module sources in SRC against the kernel headers in
# KDIR, out of tree in BUILDDIR, so that builds for different kernels never
# share objects.  The top-level files and directories of SRC are copied,
# except the test suite, docs, VCS data and build products.  If SRC has a
# Makefile that takes KDIR=, that is used (`make KDIR=...`); otherwise kbuild
# is called directly (`make -C KDIR M=BUILDDIR modules`).  Leaves
# BUILDDIR/kvmfr.ko; the build output goes to stdout.
set -eu
src=$1 kdir=$2 build=$3

rm -rf "$build"
mkdir -p "$build"
tar -C "$src" -cf - \
	--exclude=./.git --exclude=./.ci --exclude=./tests --exclude=./docs \
	--exclude='*.o' --exclude='*.ko' --exclude='*.mod' --exclude='*.mod.c' \
	--exclude='.*.cmd' --exclude=Module.symvers --exclude=modules.order \
	--exclude=.tmp_versions . | tar -C "$build" -xf -

if [ ! -e "$build/kvmfr.c" ] && [ ! -e "$build/Kbuild" ]; then
	echo "build-module: no kvmfr.c or Kbuild in $src" >&2
	exit 1
fi

if [ -f "$build/Makefile" ] && grep -q 'KDIR' "$build/Makefile"; then
	echo "+ make -C $build KDIR=$kdir"
	make -C "$build" KDIR="$kdir"
else
	echo "+ make -C $kdir M=$build modules"
	make -C "$kdir" M="$build" modules
fi

if [ ! -f "$build/kvmfr.ko" ]; then
	echo "build-module: the build finished but produced no kvmfr.ko" >&2
	exit 1
fi
