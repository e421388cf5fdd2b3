#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# report.sh OUT TAP
#
# Judge a demo run from what it left in OUT (demo/run's results directory):
# the preparation results (OUT/demo.tap), the checks and statistics level 1
# and the VMs streamed (OUT/progress.log), the kernel logs of every level
# (tests/lib/check-kernel-log.sh), and the exported frame, which is encoded
# as OUT/frame.png. TAP=0: a short report; TAP=1: numbered TAP lines, the
# report as comments, "1..N" last. Exit status 0 only if nothing failed.
set -eu
out=$1 tap=$2
lib=$(cd "$(dirname "$0")" && pwd)
tlib=$(cd "$lib/../../tests/lib" && pwd)
# shellcheck source=/dev/null
. "$out/settings.env"
results=$out/demo.tap
touch "$results"

add() {	# add ok|fail|skip TEXT
	case $1 in
	ok) echo "ok - $2" ;;
	skip) echo "ok - $2 # SKIP" ;;
	*) echo "not ok - $2" ;;
	esac >>"$results"
}

progress=$out/progress.log
[ -f "$progress" ] || : >"$progress"
tr -d '\r' <"$progress" >"$out/progress.txt"
p=$out/progress.txt

# level 1 as a whole
rc=$(cat "$out/level1/qemu.rc" 2>/dev/null || echo none)
if grep -q '^@@done' "$p" && [ "$rc" = 0 ]; then
	add ok "level 1 ran the demo and powered off"
elif [ "$rc" != none ]; then
	add fail "level 1 ran the demo and powered off (QEMU exit status $rc, no end marker: see $out/level1/console.log)"
fi

# the checks made in level 1 and in the VMs, in order
sed -n -e 's/^@@check \(ok\|fail\|skip\) /\1 /p' \
	-e 's/^L2 [^ ]* @@check \(ok\|fail\|skip\) /\1 /p' "$p" |
while read -r r text; do
	add "$r" "$text"
done

# VMs that died in early boot and were booted again (init-level1): shown,
# as TODO (nested TCG's fault, before any kvmfr code ran), not hidden
notes=()
while read -r _ sess name att st; do
	log=$out/level2-${name#name=}/attempt${att#attempt=}-console.log
	add fail "VM ${sess#session=} (${name#name=}): boot ${att#attempt=} died before its init, before kvmfr was loaded (${st/=/ }; log: $log); booted again # TODO fault of the doubly emulated CPU, not a kvmfr result"
	notes+=("note: VM ${sess#session=} (${name#name=}) boot ${att#attempt=} died in early boot before kvmfr was loaded and was booted again; see $log")
done < <(grep '^@@retry ' "$p" || true)

# every session: its statistics must be there and complete
getstat() {	# getstat KIND SESSION KEY
	sed -n "s/^\(L2 [^ ]* \)\{0,1\}@@stat $1 session=$2 .*\<$3=\([0-9]*\).*/\2/p" "$p" | tail -n 1
}
n=0
summary=()
for s in $DEMO_SESSIONS; do
	n=$((n + 1))
	[ "$rc" != none ] || break
	frames=$(getstat client $n frames)
	dev=$(getstat client $n dev_ok)
	buf=$(getstat client $n dmabuf_ok)
	bytes=$(getstat client $n bytes_dev)
	bbytes=$(getstat client $n bytes_dmabuf)
	bad=$(getstat client $n mismatches)
	lost=$(getstat client $n lost)
	sent=$(getstat producer $n frames)
	ms=$(getstat producer $n ms)
	if [ -z "$frames" ]; then
		add fail "session $n ($s): no statistics from the frame client"
		summary+=("session $n ($s): no result")
		continue
	fi
	ok=fail
	[ "$dev" = "$DEMO_FRAMES" ] && [ "$buf" = "$DEMO_FRAMES" ] &&
		[ "$bad" = 0 ] && [ "$lost" = 0 ] && [ "${sent:-0}" = "$DEMO_FRAMES" ] && ok=ok
	add $ok "session $n ($s): all $DEMO_FRAMES frames sent by the VM arrived intact through both paths (sent ${sent:-?}, device mapping $dev, dma-buf $buf, $bad mismatches, $lost lost)"
	fps=$(awk -v f="${sent:-0}" -v ms="${ms:-0}" 'BEGIN { if (ms > 0) printf "%.1f", f * 1000 / ms; else print "?" }')
	mb=$(awk -v b="$bytes" -v c="$bbytes" 'BEGIN { printf "%.1f MB + %.1f MB", b / 1e6, c / 1e6 }')
	summary+=("session $n ($s): ${sent:-?} frames sent, $dev verified through the device mapping and $buf through dma-bufs ($mb), $bad mismatches, $lost lost; $fps frames/s (emulated, nested TCG)")
done

# kernel logs of every level
for dir in "$out"/level1 "$out"/level2-*; do
	[ -d "$dir" ] || continue
	[ -f "$dir/console.log" ] || [ -f "$dir/dmesg.log" ] || continue
	name=${dir##*/}
	line=$(TAP_FILE=/dev/null "$tlib/check-kernel-log.sh" "$name" "$dir" | tee "$dir/kernel-log.txt" | head -n 1)
	case $line in
	'ok - '*) add ok "${line#ok - }" ;;
	*) add fail "${line#not ok - }"; tail -n +2 "$dir/kernel-log.txt" ;;
	esac
done

# the frame, out of level 1, as PNG
png=
if [ -s "$out/export.bin" ]; then
	if info=$(python3 "$lib/frame-to-png.py" "$out/export.bin" "$out/frame.png" 2>&1) &&
	   [ "${info##*checksum_ok=}" = 1 ]; then
		png=$out/frame.png
		add ok "frame exported through level 1's /dev/kvmfr1 and written as PNG, checksum matches ($info)"
	else
		add fail "frame exported through level 1's /dev/kvmfr1 and written as PNG ($info)"
	fi
fi

# output
t_end=$(date +%s.%N)
wall=$(awk -v a="$DEMO_T0" -v b="$t_end" 'BEGIN { printf "%.0f", b - a }')
skipped=$(grep -c -e '^ok .*# SKIP' -e '^not ok .*# TODO' "$results" || true)
failed=$(grep '^not ok ' "$results" | grep -vc '# TODO' || true)
passed=$(grep '^ok ' "$results" | grep -vc '# SKIP' || true)

report() {
	echo "== kvmfr demo report: Debian kernel ${KVER:-$DEMO_KERNEL} at both levels; nested TCG, so every rate is emulated, not a hardware figure"
	for l in "${summary[@]}"; do echo "$l"; done
	sed -n 's/^@@stat vfio session=\([0-9]*\) vmlck_kb=\([0-9]*\)/VFIO: VM \1 QEMU long-term pinned \2 kB (its RAM + the 32 MiB \/dev\/kvmfr0 mapping)/p' "$p"
	sed -n 's/^@@stat vfio-huge session=\([0-9]*\) rss_kb=\([0-9]*\) pmd_kb=\([0-9]*\)/VFIO: VM \1 QEMU'"'"'s \/dev\/kvmfr0 mapping while pinned: \3 of \2 kB PMD-mapped (smaps)/p' "$p"
	grep -q '^@@check [a-z]* IORING_REGISTER_BUFFERS' "$p" &&
		echo "io_uring: $(sed -n 's/^@@check \([a-z]*\) IORING_REGISTER_BUFFERS/\1: IORING_REGISTER_BUFFERS/p' "$p" | head -n 1)"
	for l in "${notes[@]}"; do echo "$l"; done
	[ -z "$png" ] || echo "PNG of one received frame: $png"
	echo "checks: $passed passed, $failed failed, $skipped skipped"
	echo "wall time: ${wall} s; load average at start ${DEMO_LOAD_START}, at end $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "results: $out"
}
# shellcheck source=/dev/null
. "$out/kernel.env" 2>/dev/null || true

if [ "$tap" = 1 ]; then
	awk '{ sub(/^ok -/, "ok " NR " -"); sub(/^not ok -/, "not ok " NR " -"); print }' "$results"
	report | sed 's/^/# /'
	echo "1..$(grep -c '^\(not \)\{0,1\}ok ' "$results")"
else
	echo
	report
	grep '^not ok' "$results" | grep -v '# TODO' | sed 's/^not ok - /FAILED: /' || true
fi
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
