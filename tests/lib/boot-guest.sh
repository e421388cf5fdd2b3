#!/bin/bash
# boot-guest.sh LABEL DIR VMLINUZ INITRAMFS
#
# Boot one test guest and check the data it exchanged with the host:
#   - two ivshmem-plain devices (8 MiB at 00:04.0, 32 MiB at 00:05.0) backed
#     by fresh files in /dev/shm, filled with the host patterns 0 and 1 before
#     boot, checked for the guest patterns after poweroff, removed after;
#   - serial ports: DIR/console.log (ttyS0), DIR/results.log (ttyS1, streamed
#     to stdout while the guest runs), DIR/dmesg.log (ttyS2);
#   - hard timeout $KVMFR_BOOT_TIMEOUT s (default 480).
# Records "boot completed" and the two pattern checks in $TAP_FILE.
# Uses $PATTERN (the host pattern tool).
set -eu
label=$1 dir=$2 vmlinuz=$3 initramfs=$4
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/tap.sh
. "$here/tap.sh"
boot_timeout=${KVMFR_BOOT_TIMEOUT:-480}

# index:size_mib:pci_slot, in KVMFR_PCI order (see mkinitramfs.sh)
ivshmem="0:8:4 1:32:5"

shm=$(mktemp -d /dev/shm/kvmfr-test.XXXXXX)
qemu=
# (timeout passes a TERM on to QEMU)
trap '[ -z "$qemu" ] || kill "$qemu" 2>/dev/null; rm -rf "$shm"' EXIT
trap 'exit 130' INT TERM HUP

devices=()
for d in $ivshmem; do
	IFS=: read -r i mib slot <<<"$d"
	"${PATTERN:?}" fill "$shm/ivshmem$i" "$i" "$mib"
	devices+=(-object "memory-backend-file,id=ivs$i,share=on,mem-path=$shm/ivshmem$i,size=${mib}M"
		  -device "ivshmem-plain,memdev=ivs$i,addr=0x$slot")
done

accel=$("$here/probe-kvm.sh" "$vmlinuz")
echo "# booting $label under $accel (timeout ${boot_timeout} s)"
rm -f "$dir/console.log" "$dir/results.log" "$dir/dmesg.log"
touch "$dir/results.log"
start=$(date +%s)
timeout --foreground -s KILL "$boot_timeout" qemu-system-x86_64 \
	-M q35 -accel "$accel" -m 1024 -smp 2 \
	-nodefaults -no-user-config -display none -no-reboot \
	-kernel "$vmlinuz" -initrd "$initramfs" \
	-append "console=ttyS0 panic=-1 ${KVMFR_KERNEL_ARGS:-}" \
	-serial "file:$dir/console.log" \
	-serial "file:$dir/results.log" \
	-serial "file:$dir/dmesg.log" \
	"${devices[@]}" >"$dir/qemu.log" 2>&1 &
qemu=$!

# Stream the results port while the guest runs, in a readable form: program
# output as is, the harness markers as comments, extra tests' output and
# stderr as comments (they are not TAP).
tail -n +1 -s 0.2 -F --pid=$qemu "$dir/results.log" 2>/dev/null | awk '
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
wait $qemu || rc=$?
qemu=
wait $streamer || true
elapsed=$(($(date +%s) - start))

if grep -q '^@@kvmfr done' "$dir/results.log"; then
	tap_result 0 "$label: guest ran the suite and powered off (${elapsed} s, $accel)"
else
	if [ $rc = 137 ]; then
		why="killed after the ${boot_timeout} s timeout"
	else
		why="qemu exit status $rc"
	fi
	tap_result 1 "$label: guest did not finish the run: no end marker, $why (${elapsed} s); console: $dir/console.log"
	tap_diag "$dir/console.log" 25
	tap_diag "$dir/qemu.log" 5
fi

for d in $ivshmem; do
	IFS=: read -r i mib slot <<<"$d"
	if "$PATTERN" verify-guest "$shm/ivshmem$i" "$i" >"$dir/pattern$i.log" 2>&1; then
		tap_result 0 "$label: host sees guest pattern $i in ivshmem $i (${mib} MiB, 00:0$slot.0)"
	else
		tap_result 1 "$label: host sees guest pattern $i in ivshmem $i (${mib} MiB, 00:0$slot.0)"
		tap_diag "$dir/pattern$i.log" 3
	fi
done
