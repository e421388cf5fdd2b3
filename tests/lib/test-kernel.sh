#!/bin/bash
# test-kernel.sh SERIES
#
# Everything for one kernel of the matrix, results in $KVMFR_RESULTS/SERIES:
# fetch the Debian kernel (SERIES "debug" and "debug-unplug": the debug
# kernel, two guests of it), build kvmfr.ko against its headers, build the
# initramfs, boot the guest, split its results, check its kernel log.  Each
# step's outcome is a test in SERIES/harness.tap; a failed step skips those
# that need it.  Needs KVMFR_SRC, KVMFR_RESULTS, KVMFR_CACHE, PATTERN and
# GUESTBIN (may be empty) from tests/run.
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
tap_result 0 "$label: kernel $KVER ready in $KROOT"

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

if ! "$here/build-module.sh" "$KVMFR_SRC" "$KDIR" "$dir/build" >"$dir/build.log" 2>&1; then
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

# tests/edu: the edu DMA importer and its guest program, if the guest has edu
KVMFR_EDU_DIR=
if [ "${GUEST_EDU:-0}" = 1 ]; then
	if "$here/../edu/build.sh" "$KDIR" "$dir/edu" >"$dir/edu-build.log" 2>&1; then
		tap_result 0 "$label: build tests/edu (kvmfr_edu.ko, edu_dma)"
		KVMFR_EDU_DIR=$dir/edu
	else
		tap_result 1 "$label: build tests/edu (kvmfr_edu.ko, edu_dma); log: $dir/edu-build.log"
		tap_diag "$dir/edu-build.log" 15
	fi
fi
export KVMFR_EDU_DIR

if ! "$here/mkinitramfs.sh" "$dir/initramfs.gz" "$dir/initramfs" "$KVER" "$KROOT" \
	"$dir/build/kvmfr.ko" "${GUESTBIN:-}" >"$dir/initramfs.log" 2>&1; then
	tap_result 1 "$label: build the guest initramfs; log: $dir/initramfs.log"
	tap_diag "$dir/initramfs.log" 10
	exit 0
fi

"$here/boot-guest.sh" "$label" "$dir" "$VMLINUZ" "$dir/initramfs.gz"
"$here/parse-results.sh" "$label" "$dir"
"$here/check-kernel-log.sh" "$label" "$dir"
