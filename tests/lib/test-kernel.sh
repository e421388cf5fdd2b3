#!/bin/bash
# test-kernel.sh SERIES
#
# Everything for one kernel of the matrix, results in $KVMFR_RESULTS/SERIES:
# fetch the Debian kernel (SERIES "debug" and "debug-unplug": the debug
# kernel, two guests of it; "clang": a tree configured for the LLVM
# toolchain, which only builds the module), build kvmfr.ko against its headers, build the
# initramfs, boot the guest, split its results, check its kernel log.  Each
# step's outcome is a test in SERIES/harness.tap; a failed step skips those
# that need it.  Needs KVMFR_SRC, KVMFR_RESULTS, KVMFR_CACHE, PATTERN and
# GUESTBIN (may be empty) from tests/run.  A kernel whose kbuild needs
# another Debian release's compiler and C library (TOOLCHAIN from
# fetch-kernel.sh) is built for in a chroot of that release
# (make-chroot.sh, in-chroot.sh).
set -eu
series=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/tap.sh
. "$here/tap.sh"
dir=$KVMFR_RESULTS/$series
mkdir -p "$dir"
export TAP_FILE=$dir/harness.tap
: >"$TAP_FILE"

case $series in
debug*) debug=1 ;;
*) debug=0 ;;
esac
if [ $debug = 1 ]; then
	fetch=("$here/fetch-debug-kernel.sh" "$dir/kernel.env")
	what="debug kernel (tests/debug-kernel/build.sh)"
elif [ "$series" = clang ]; then
	fetch=("$here/fetch-clang-kernel.sh" "$dir/kernel.env")
	what="kernel tree configured with LLVM=1"
else
	# (SERIES-swiotlb: the same kernel, another guest profile.sh)
	fetch=("$here/fetch-kernel.sh" "${series%-swiotlb}" "$dir/kernel.env")
	what="Debian kernel packages"
fi
if ! LOG=$dir/fetch.log "${fetch[@]}" 2>>"$dir/fetch.log"; then
	tap_result 1 "$series: fetch $what; log: $dir/fetch.log"
	tap_diag "$dir/fetch.log" 15
	exit 0
fi
# shellcheck disable=SC1091 # written by fetch-kernel.sh
. "$dir/kernel.env"
label=$series
if [ -n "${KDESC:-}" ]; then
	tap_result 0 "$label: kernel $KVER ($KDESC) ready in $KROOT"
else
	tap_result 0 "$label: kernel $KVER ready in $KROOT"
fi

# Builds run on the host, or in a chroot of the Debian release the kernel
# was built with, the kernel tree, this kernel's results and the sources
# bind-mounted at the same paths.
build_env=()
if [ "${TOOLCHAIN:-host}" != host ]; then
	t0=$(date +%s)
	if ! chroot=$(LOG=$dir/chroot.log "$here/make-chroot.sh" "$TOOLCHAIN" \
			"$KROOT" 2>>"$dir/chroot.log"); then
		tap_result 1 "$label: Debian $TOOLCHAIN chroot for building against $KVER; log: $dir/chroot.log"
		tap_diag "$dir/chroot.log" 15
		exit 0
	fi
	tap_result 0 "$label: Debian $TOOLCHAIN chroot for building against $KVER ready ($(($(date +%s) - t0)) s)"
	build_env=("$here/in-chroot.sh" "$chroot" "$KROOT" "$dir"
		   "$(cd "$here/../.." && pwd)" "$KVMFR_SRC" --)
fi

if [ $debug = 1 ]; then
	# build.sh refuses to finish a tree that lost an option; check the tree
	# actually booted anyway, so a dropped option always fails the run
	if "$here/verify-debug-config.sh" "$here/../debug-kernel/debug.config" \
		"$KROOT/.config" >"$dir/config-check.log" 2>&1; then
		tap_result 0 "$label: $(tail -n 1 "$dir/config-check.log")"
	else
		tap_result 1 "$label: debug kernel .config has every option of tests/debug-kernel/debug.config; log: $dir/config-check.log"
		tap_diag "$dir/config-check.log" 15
		exit 0
	fi
fi

# per-kernel guest set-up: memory, IOMMU, ivshmem layout, hardening sizes
# shellcheck source=tests/lib/profile.sh
. "$here/profile.sh"

# clang: the tree is prepared, not built, so it has no Module.symvers and
# modpost can only warn ("WARNING: modpost: ... undefined!") about the
# kernel's symbols instead of failing; compiler warnings still count.
[ "$series" != clang ] || build_env=(env KBUILD_MODPOST_WARN=1)

if ! "${build_env[@]}" "$here/build-module.sh" "$KVMFR_SRC" "$KDIR" "$dir/build" \
	>"$dir/build.log" 2>&1; then
	tap_result 1 "$label: build kvmfr.ko against linux-headers-$KVER; log: $dir/build.log"
	tap_diag "$dir/build.log" 25
	exit 0
fi
tap_result 0 "$label: build kvmfr.ko against linux-headers-$KVER"
# the module builds with W=1 and must not warn; the guest still runs if it does
if grep -q 'warning:' "$dir/build.log"; then
	tap_result 1 "$label: W=1 build of kvmfr.ko has warnings; log: $dir/build.log"
	grep -A3 'warning:' "$dir/build.log" | head -n 20 | sed 's/^/#   /'
else
	tap_result 0 "$label: W=1 build of kvmfr.ko has no warnings"
fi

# clang: the tree is configured and prepared, not built; nothing to boot.
# The top-level Makefile must have chosen LLVM=1 by itself.
if [ "$series" = clang ]; then
	if readelf -p .comment "$dir/build/kvmfr.ko" 2>/dev/null | grep -q 'clang version'; then
		tap_result 0 "$label: make picked clang for a CONFIG_CC_IS_CLANG kernel (kvmfr.ko's .comment)"
	else
		tap_result 1 "$label: make picked clang for a CONFIG_CC_IS_CLANG kernel; kvmfr.ko's .comment: $(readelf -p .comment "$dir/build/kvmfr.ko" 2>&1 | tr -s ' \n' ' ')"
	fi
	exit 0
fi

# tests/edu: the edu DMA importer and its guest program, if the guest has edu
KVMFR_EDU_DIR=
if [ "${GUEST_EDU:-0}" = 1 ]; then
	if { EDU_BUILD=module "${build_env[@]}" "$here/../edu/build.sh" "$KDIR" "$dir/edu" &&
	     EDU_BUILD=program "$here/../edu/build.sh" "$KDIR" "$dir/edu"; } \
		>"$dir/edu-build.log" 2>&1; then
		tap_result 0 "$label: build tests/edu (kvmfr_edu.ko, edu_dma)"
		KVMFR_EDU_DIR=$dir/edu
	else
		tap_result 1 "$label: build tests/edu (kvmfr_edu.ko, edu_dma); log: $dir/edu-build.log"
		tap_diag "$dir/edu-build.log" 15
	fi
fi
export KVMFR_EDU_DIR

# tests/graphics: Mesa's EGL import in a graphics root (Debian's Mesa,
# cached) shared with the guest over virtio-9p; GUEST_GFX from profile.sh
GFX_BIN= GUEST_GFX_ROOT=
if [ "${GUEST_GFX:-0}" = 1 ]; then
	if "$here/../graphics/build.sh" "$dir/graphics" >"$dir/graphics-build.log" 2>&1; then
		# shellcheck disable=SC1091 # written by build.sh
		. "$dir/graphics/graphics.env"
		GUEST_GFX_ROOT=$GFX_ROOT
		tap_result 0 "$label: build tests/graphics/egl_import and its graphics root ($GFX_DESC)"
	else
		tap_result 1 "$label: build tests/graphics/egl_import and its graphics root; log: $dir/graphics-build.log"
		tap_diag "$dir/graphics-build.log" 10
		GFX_BIN=
	fi
fi
export GFX_BIN GUEST_GFX_ROOT

if ! "$here/mkinitramfs.sh" "$dir/initramfs.gz" "$dir/initramfs" "$KVER" "$KROOT" \
	"$dir/build/kvmfr.ko" "${GUESTBIN:-}" >"$dir/initramfs.log" 2>&1; then
	tap_result 1 "$label: build the guest initramfs; log: $dir/initramfs.log"
	tap_diag "$dir/initramfs.log" 10
	exit 0
fi

"$here/boot-guest.sh" "$label" "$dir" "$VMLINUZ" "$dir/initramfs.gz"
"$here/parse-results.sh" "$label" "$dir"
"$here/check-kernel-log.sh" "$label" "$dir"
