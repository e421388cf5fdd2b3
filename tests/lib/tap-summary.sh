#!/bin/bash
# tap-summary.sh RESULTS SERIES...
#
# Count the test lines of every TAP file of a run: RESULTS/harness.tap and,
# per kernel, RESULTS/SERIES/harness.tap and RESULTS/SERIES/tap/*.tap.
# "ok" counts as passed, "not ok" as failed, either with a SKIP directive
# (or a TODO "not ok") as skipped; "1..0" (skip all) and "Bail out!" count as
# one skipped and one failed test.  Prints a summary line per kernel, then,
# as the last line, "N passed, N failed" (", N skipped" when there are
# any).  Exit status 1 if anything failed or nothing passed or failed.
set -eu
results=$1
shift

count() {
	local f existing=()
	for f in "$@"; do [ -f "$f" ] && existing+=("$f"); done
	awk '
		/^ok([ \t]|$)/ {
			if ($0 ~ /#[ \t]*[Ss][Kk][Ii][Pp]/) s++; else p++
			next
		}
		/^not ok([ \t]|$)/ {
			if ($0 ~ /#[ \t]*([Ss][Kk][Ii][Pp]|[Tt][Oo][Dd][Oo])/) s++; else f++
			next
		}
		/^1\.\.0([ \t]|$)/ { s++ }
		/^Bail out!/ { f++ }
		END { print p + 0, f + 0, s + 0 }' "${existing[@]}" /dev/null
}

line() {
	if [ "$3" -gt 0 ]; then echo "$1 passed, $2 failed, $3 skipped"; else echo "$1 passed, $2 failed"; fi
}

read -r tp tf ts < <(count "$results/harness.tap")
for series in "$@"; do
	dir=$results/$series
	files=("$dir/harness.tap")
	for f in "$dir"/tap/*.tap; do [ -e "$f" ] && files+=("$f"); done
	read -r p f s < <(count "${files[@]}")
	kver=$(sed -n "s/^KVER='\(.*\)'/\1/p" "$dir/kernel.env" 2>/dev/null || true)
	echo "# kernel $series${kver:+ ($kver)}: $(line "$p" "$f" "$s")"
	# the hardening tier's figures: cycles, fuzz operations, sweeps, times
	for t in "$dir"/tap/kvmfr-unplug_cycles*.tap "$dir"/tap/kvmfr-fuzz.tap \
		 "$dir"/tap/kvmfr-fault_inject.tap; do
		[ -f "$t" ] || continue
		grep -hE '^(# (.*cycles in [0-9.]+ s|seed [0-9]+|ops: |.*succeeded after [0-9]+ injected)|(not )?ok [0-9]+ - fuzz: [0-9]+ operations)' "$t" |
			sed -E 's/^(# |(not )?ok [0-9]+ - )/#   /' || true
	done
	if [ -f "$dir/hotplug.log" ]; then
		grep -h '^qmp-hotplug: [0-9]* of' "$dir/hotplug.log" | sed 's/^/#   /' || true
	fi
	tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + s))
done
line "$tp" "$tf" "$ts"
[ "$tf" = 0 ] && [ $((tp + tf)) -gt 0 ]
