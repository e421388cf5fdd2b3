#!/bin/bash
# boot-guest.sh LABEL DIR VMLINUZ INITRAMFS
#
# Boot one test guest and check the data it exchanged with the host:
#   - the busybox test initramfs of mkinitramfs.sh, or, with $GUEST_DISK, a
#     real system: GUEST_DISK is its root disk (a qcow2 image, virtio-blk,
#     /dev/vda), INITRAMFS the system's own initrd that mounts it
#     (GUEST_CMDLINE says root=...); $GUEST_SHARE (optional) is a host
#     directory the guest can mount read-only over virtio-9p as tag "kvmfr";
#     $GUEST_BOOTS (default 1) is how many times the guest may boot: above
#     1 a reboot restarts it (else QEMU exits), and the watchdog kills QEMU
#     when the console shows one kernel banner more than that;
#   - the ivshmem-plain devices of $GUEST_IVSHMEM (tests/lib/profile.sh;
#     default 8 MiB at 00:04.0, 32 MiB at 00:05.0; set and empty: none) backed by fresh files in
#     /dev/shm, filled with the host patterns 0, 1, ... before boot, checked
#     for the guest patterns after poweroff, removed after; a device "rp0"
#     sits behind a pcie-root-port (00:03.0, guest 0000:01:00.0) and, with
#     GUEST_HOTPLUG=N, is unplugged and replugged N times over QMP by
#     qmp-hotplug.py while the guest runs `unplug_cycles external`;
#   - $GUEST_MEM MiB, intel-iommu if $GUEST_IOMMU = 1;
#   - $GUEST_GFX_ROOT (tests/graphics/prepare-root.sh), if set, read-only
#     over virtio-9p with mount tag kvmfr-gfx;
#   - serial ports: DIR/console.log (ttyS0), DIR/results.log (ttyS1, streamed
#     to stdout while the guest runs), DIR/dmesg.log (ttyS2);
#   - a hang is a stall: QEMU is killed once none of the three serial ports
#     has grown for $GUEST_STALL_TIMEOUT s (default 900; the guest's
#     programs print progress at least every minute or so), or after
#     $GUEST_BOOT_TIMEOUT s in all (default $KVMFR_BOOT_TIMEOUT or 3600), a
#     bound for a guest that livelocks while printing, set generously: a
#     slower machine makes the run slower, not red.
# Records "boot completed", the pattern checks and the QMP hot-plug driver's
# outcome in $TAP_FILE.  Uses $PATTERN (the host pattern tool).
set -eu
label=$1 dir=$2 vmlinuz=$3 initramfs=$4
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/tap.sh
. "$here/tap.sh"
boot_timeout=${GUEST_BOOT_TIMEOUT:-${KVMFR_BOOT_TIMEOUT:-3600}}
stall_timeout=${GUEST_STALL_TIMEOUT:-${KVMFR_STALL_TIMEOUT:-900}}

# index:size_mib:where, in KVMFR_PCI order (profile.sh, mkinitramfs.sh)
ivshmem=${GUEST_IVSHMEM-0:8:04 1:32:05}
hotplug_cycles=${GUEST_HOTPLUG:-0}

shm=$(mktemp -d /dev/shm/kvmfr-test.XXXXXX)
qemu= driver= watchdog=
trap '[ -z "$qemu" ] || kill "$qemu" 2>/dev/null; [ -z "$driver" ] || kill "$driver" 2>/dev/null; [ -z "$watchdog" ] || kill "$watchdog" 2>/dev/null; rm -rf "$shm"' EXIT
trap 'exit 130' INT TERM HUP

devices=() hotplug_dev=
for d in $ivshmem; do
	IFS=: read -r i mib where <<<"$d"
	"${PATTERN:?}" fill "$shm/ivshmem$i" "$i" "$mib"
	devices+=(-object "memory-backend-file,id=ivs$i,share=on,mem-path=$shm/ivshmem$i,size=${mib}M")
	if [ "$where" = rp0 ]; then
		# hot-pluggable: QEMU's default ACPI hot-plug of q35 root ports
		# (native pciehp makes 6.12's lockdep report pciehp itself)
		devices+=(-device pcie-root-port,id=rp0,bus=pcie.0,addr=0x3,slot=1,chassis=1
			  -device "ivshmem-plain,memdev=ivs$i,bus=rp0,id=shm$i")
		hotplug_dev=$i:$mib
	else
		devices+=(-device "ivshmem-plain,memdev=ivs$i,addr=0x$where")
	fi
done
where_of() {	# guest PCI address of an ivshmem spec's WHERE
	if [ "$1" = rp0 ]; then echo 01:00.0; else echo "00:$1.0"; fi
}

# A loaded host makes a slow guest, not a broken one:
# - no_timer_check: the boot-time check that the IO-APIC timer ticks counts
#   loops, not time; a TCG guest on a loaded host failed it ("IO-APIC +
#   timer doesn't work!", a panic at 0.08 s);
# - the kernel's stall detectors at their longest: RCU stalls after 300 s
#   (21), soft lockups after 120 s (20), hung tasks after 600 s (120, set
#   by init): on a host at load 20 a vCPU went unscheduled for 87 s and
#   both guests reported an RCU stall and a soft lockup. A real stall
#   still shows, later, and before the 900 s stall bound kills the guest.
append="console=ttyS0 panic=-1 no_timer_check rcupdate.rcu_cpu_stall_timeout=300 watchdog_thresh=60"
platform=()
if [ "${GUEST_IOMMU:-0}" = 1 ]; then
	# intremap=off: no kernel-irqchip=split needed
	platform+=(-device intel-iommu,intremap=off)
	append="$append intel_iommu=on iommu.strict=1"
fi
if [ "${GUEST_EDU:-0}" = 1 ]; then
	# tests/edu: QEMU's edu device, a DMA engine behind the IOMMU
	platform+=(-device edu)
fi
if [ -n "${GUEST_GFX_ROOT:-}" ]; then
	# tests/graphics: the graphics root, read-only over virtio-9p
	platform+=(-fsdev "local,id=gfx,path=$GUEST_GFX_ROOT,security_model=none,readonly=on"
		   -device virtio-9p-pci,fsdev=gfx,mount_tag=kvmfr-gfx)
fi
append="$append ${GUEST_CMDLINE:-} ${KVMFR_KERNEL_ARGS:-}"
if [ -n "${GUEST_DISK:-}" ]; then
	platform+=(-drive "file=$GUEST_DISK,format=qcow2,if=virtio,cache=unsafe")
fi
if [ -n "${GUEST_SHARE:-}" ]; then
	platform+=(-fsdev "local,id=kvmfr-share,path=$GUEST_SHARE,security_model=none,readonly=on"
		   -device virtio-9p-pci,fsdev=kvmfr-share,mount_tag=kvmfr)
fi
boots=${GUEST_BOOTS:-1}
reboot=(-no-reboot)
[ "$boots" = 1 ] || reboot=()
qmp=()
if [ "$hotplug_cycles" -gt 0 ] && [ -n "$hotplug_dev" ]; then
	qmp=(-qmp "unix:$shm/qmp.sock,server=on,wait=off")
fi

accel=$("$here/probe-kvm.sh" "$vmlinuz")
# GUEST_TCG_THREAD=single: one host thread runs all vCPUs in turn
# (tests/lib/profile.sh says why)
if [ "$accel" = tcg ] && [ -n "${GUEST_TCG_THREAD:-}" ]; then
	accel=tcg,thread=$GUEST_TCG_THREAD
fi
echo "# booting $label under $accel (killed after ${stall_timeout} s without serial output, or ${boot_timeout} s in all)"
rm -f "$dir/console.log" "$dir/results.log" "$dir/dmesg.log" "$dir/watchdog.log"
touch "$dir/results.log"
start=$(date +%s)
qemu-system-x86_64 \
	-M q35 -accel "$accel" -m "${GUEST_MEM:-1024}" -smp 2 \
	-nodefaults -no-user-config -display none "${reboot[@]}" \
	-kernel "$vmlinuz" -initrd "$initramfs" \
	-append "$append" \
	-serial "file:$dir/console.log" \
	-serial "file:$dir/results.log" \
	-serial "file:$dir/dmesg.log" \
	"${platform[@]}" "${devices[@]}" "${qmp[@]}" >"$dir/qemu.log" 2>&1 &
qemu=$!

# The watchdog: kills QEMU once the serial ports have not grown for
# $stall_timeout s, or after $boot_timeout s; writes why to watchdog.log,
# and the longest silence it saw.
serial_bytes() {
	local n=0 f s
	for f in console.log results.log dmesg.log; do
		s=$(stat -c %s "$dir/$f" 2>/dev/null) || s=0
		n=$((n + s))
	done
	echo "$n"
}
(
	last=-1 since=$start longest=0
	while kill -0 "$qemu" 2>/dev/null; do
		now=$(date +%s) bytes=$(serial_bytes)
		if [ "$bytes" != "$last" ]; then
			last=$bytes since=$now
		fi
		[ $((now - since)) -le "$longest" ] || longest=$((now - since))
		echo "longest $longest" >"$dir/watchdog.log.tmp"
		mv "$dir/watchdog.log.tmp" "$dir/watchdog.log"
		if [ $((now - since)) -ge "$stall_timeout" ]; then
			echo "killed: no serial output for $((now - since)) s (the stall bound, ${stall_timeout} s)" >>"$dir/watchdog.log"
			kill -KILL "$qemu"
			break
		fi
		banners=$(grep -c 'Linux version ' "$dir/console.log" 2>/dev/null || true)
		if [ "${banners:-0}" -gt "$boots" ]; then
			echo "killed: the guest booted more than $boots times" >>"$dir/watchdog.log"
			kill -KILL "$qemu"
			break
		fi
		if [ $((now - start)) -ge "$boot_timeout" ]; then
			echo "killed: the run took ${boot_timeout} s, its whole-run bound" >>"$dir/watchdog.log"
			kill -KILL "$qemu"
			break
		fi
		sleep 5
	done
) &
watchdog=$!

# QEMU-level hot-unplug cycles, paced by the guest's unplug_cycles external
if [ ${#qmp[@]} -gt 0 ]; then
	IFS=: read -r i mib <<<"$hotplug_dev"
	python3 "$here/qmp-hotplug.py" --qmp "$shm/qmp.sock" \
		--results "$dir/results.log" --pid "$qemu" \
		--mem-path "$shm/ivshmem$i" --size $((mib << 20)) --bus rp0 \
		--device "shm$i" --memdev "ivs$i" --cycles "$hotplug_cycles" \
		>"$dir/hotplug.log" 2>&1 &
	driver=$!
fi

# Stream the results port while the guest runs, in a readable form: program
# output as is, the harness markers as comments, extra tests' output and
# stderr as comments (they are not TAP).
# (mawk, Debian's awk, reads a pipe in big blocks unless -W interactive)
awk_line=()
if awk -W version 2>&1 | grep -q mawk; then awk_line=(-W interactive); fi
tail -n +1 -s 0.2 -F --pid=$qemu "$dir/results.log" 2>/dev/null | awk "${awk_line[@]}" '
	function out(s) { print s; fflush() }
	{ sub(/\r$/, "") }
	/^@@kvmfr begin / {
		kind = $3; name = $4
		if (kind == "tap") out("# -- " name)
		else if (kind == "raw") out("# -- " name " (extra test; its output is not counted)")
		next
	}
	/^@@kvmfr end / {
		rc = substr($3, 4)
		if (kind != "stderr" && rc != 0) out("# -- " name ": exit status " rc)
		kind = ""
		next
	}
	/^@@kvmfr / || /^$/ { next }
	kind == "stderr" { out("#   stderr: " $0); next }
	kind == "raw" { out("#   " $0); next }
	{ out($0) }
' &
streamer=$!

rc=0
wait $qemu 2>/dev/null || rc=$?
qemu=
kill "$watchdog" 2>/dev/null || true
wait "$watchdog" 2>/dev/null || true
watchdog=
wait $streamer || true
elapsed=$(($(date +%s) - start))
killed=$(sed -n 's/^killed: //p' "$dir/watchdog.log" 2>/dev/null || true)
longest=$(sed -n 's/^longest //p' "$dir/watchdog.log" 2>/dev/null || true)
echo "# $label: longest silence on the serial ports: ${longest:-?} s (stall bound ${stall_timeout} s)"
driver_rc=
if [ -n "$driver" ]; then
	# QEMU is gone: the driver notices within a moment
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		kill -0 "$driver" 2>/dev/null || break
		sleep 0.5
	done
	kill "$driver" 2>/dev/null || true
	driver_rc=0
	wait "$driver" || driver_rc=$?
	driver=
fi

if grep -q '^@@kvmfr done' "$dir/results.log"; then
	tap_result 0 "$label: guest ran the suite and powered off (${elapsed} s, $accel)"
else
	if [ -n "$killed" ]; then
		why="killed: $killed"
	else
		why="qemu exit status $rc"
	fi
	tap_result 1 "$label: guest did not finish the run: no end marker, $why (${elapsed} s); console: $dir/console.log"
	tap_diag "$dir/console.log" 25
	tap_diag "$dir/qemu.log" 5
fi

if [ -n "$driver_rc" ]; then
	summary=$(grep '^qmp-hotplug: [0-9]* of' "$dir/hotplug.log" | tail -n 1)
	what="$label: QMP hot-unplug of ivshmem behind rp0 (device_del, DEVICE_DELETED, object-add, device_add, guest sees it back)"
	if [ "$driver_rc" = 0 ]; then
		tap_result 0 "$what: ${summary#qmp-hotplug: }"
	else
		tap_result 1 "$what: exit status $driver_rc; log: $dir/hotplug.log"
		tap_diag "$dir/hotplug.log" 5
	fi
fi

# (the hot-plugged device's new backends map the same file: its data is
# checked like the others')
for d in $ivshmem; do
	IFS=: read -r i mib where <<<"$d"
	addr=$(where_of "$where")
	if "$PATTERN" verify-guest "$shm/ivshmem$i" "$i" >"$dir/pattern$i.log" 2>&1; then
		tap_result 0 "$label: host sees guest pattern $i in ivshmem $i (${mib} MiB, $addr)"
	else
		tap_result 1 "$label: host sees guest pattern $i in ivshmem $i (${mib} MiB, $addr)"
		tap_diag "$dir/pattern$i.log" 3
	fi
done
