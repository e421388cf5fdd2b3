#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# boot-level1.sh OUT VMLINUZ INITRAMFS
#
# Boot the demo host ("level 1") under TCG on this machine ("level 0"):
#   q35 + intel-iommu (caching-mode=on, so that level 1 can use VFIO) + two
#   edu devices (1234:11e8, the GPUs that level 1 assigns to its VMs; DMA
#   mask widened to 64 bits) + an ivshmem-plain device (4 MiB) backed by a
#   file in /dev/shm, through which level 1 hands back one frame.
# Serial ports: OUT/level1/console.log (ttyS0), OUT/progress.log (ttyS1,
# streamed here with elapsed times while level 1 runs), OUT/dumps.log (ttyS2,
# split after poweroff into the files it names under OUT). The export
# device's contents end up in OUT/export.bin. Hard timeout
# $DEMO_BOOT_TIMEOUT s (default 900). Exit status: QEMU's, also written to
# OUT/level1/qemu.rc.
set -eu
out=$1 vmlinuz=$2 initramfs=$3
timeout=${DEMO_BOOT_TIMEOUT:-900}
mem=${DEMO_L1_MEM:-1536}
t_start=${DEMO_T0:-$(date +%s.%N)}

mkdir -p "$out/level1"
shm=$(mktemp /dev/shm/kvmfr-demo.XXXXXX)
trap 'rm -f "$shm"' EXIT
truncate -s 4M "$shm"
rm -f "$out/progress.log" "$out/dumps.log" "$out/level1/console.log"
touch "$out/progress.log"

elapsed() {
	awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1f", b - a }'
}

echo "[$(elapsed)s] booting level 1: $(basename "$vmlinuz") under TCG, ${mem} MiB," \
	"2 vCPUs, intel-iommu, edu, $(($(stat -c %s "$initramfs") >> 20)) MiB initramfs"
# no_timer_check: on a loaded host the IO-APIC timer test can miss its
# ticks and the kernel panics ("timer doesn't work through
# Interrupt-remapped IO-APIC"), seen once in 40 ms of a level-1 boot.
timeout -s KILL "$timeout" qemu-system-x86_64 \
	-M q35 -accel tcg -m "$mem" -smp 2 \
	-nodefaults -no-user-config -display none -no-reboot \
	-device intel-iommu,caching-mode=on \
	-kernel "$vmlinuz" -initrd "$initramfs" \
	-append "console=ttyS0 quiet panic=-1 intel_iommu=on no_timer_check ${DEMO_L1_APPEND:-}" \
	-serial "file:$out/level1/console.log" \
	-serial "file:$out/progress.log" \
	-serial "file:$out/dumps.log" \
	-object "memory-backend-file,id=export,share=on,mem-path=$shm,size=4M" \
	-device ivshmem-plain,memdev=export,addr=0x4 \
	-device edu,addr=0x5,dma_mask=0xffffffffffffffff \
	-device edu,addr=0x6,dma_mask=0xffffffffffffffff \
	>"$out/level1/qemu.log" 2>&1 &
qemu=$!

# progress, as it comes
tail -n +1 -s 0.2 -F --pid=$qemu "$out/progress.log" 2>/dev/null |
while IFS= read -r line; do
	line=${line%$'\r'}
	case $line in
	'@@step '*) echo "[$(elapsed)s] ${line#@@step }" ;;
	'@@check ok '*) echo "[$(elapsed)s]   ok: ${line#@@check ok }" ;;
	'@@check skip '*) echo "[$(elapsed)s]   skipped: ${line#@@check skip }" ;;
	'@@check fail '*) echo "[$(elapsed)s]   FAILED: ${line#@@check fail }" ;;
	'L2 '*)
		rest=${line#L2 }
		vm=${rest%% *}
		rest=${rest#"$vm"}
		rest=${rest# }
		case $rest in
		'@@l2 up '*) echo "[$(elapsed)s]   VM ($vm): kernel booted, init started (VM clock ${rest#@@l2 up }s)" ;;
		'@@check ok '*) echo "[$(elapsed)s]   ok: ${rest#@@check ok }" ;;
		'@@check fail '*) echo "[$(elapsed)s]   FAILED: ${rest#@@check fail }" ;;
		'@@'* | '') ;;
		*) echo "[$(elapsed)s]   VM ($vm): $rest" ;;
		esac
		;;
	'@@'* | '') ;;
	*) echo "[$(elapsed)s]   $line" ;;
	esac
done &
streamer=$!

rc=0
wait $qemu || rc=$?
wait $streamer || true
[ $rc != 137 ] || echo "[$(elapsed)s] level 1 killed after the ${timeout} s timeout"
echo "[$(elapsed)s] level 1 powered off (QEMU exit status $rc)"
echo "$rc" >"$out/level1/qemu.rc"

# the blocks of the log port, each into the file it names
if [ -f "$out/dumps.log" ]; then
	tr -d '\r' <"$out/dumps.log" | awk -v out="$out" '
		/^@@dump begin / { f = out "/" $3; d = f; sub(/\/[^\/]*$/, "", d);
				   system("mkdir -p \"" d "\""); printf "" > f; next }
		/^@@dump end/ { if (f) close(f); f = ""; next }
		f { print >> f }'
fi
dd if="$shm" of="$out/export.bin" bs=1M count=4 status=none
exit $rc
