#!/bin/bash
# parse-results.sh LABEL DIR
#
# Split DIR/results.log (the guest's results port, format in
# tests/guest-init/init) into DIR/tap/NAME.tap (counted TAP, one file per
# program), DIR/tap/NAME.stderr and DIR/extra/NAME.out, .stderr (extra
# tests, not counted), then record in $TAP_FILE, per program, whether it ran to
# completion (TAP plan present and complete, no timeout or signal, non-zero
# exit only together with a failed test) and, per extra test, whether it
# exited 0.
set -eu
label=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/tap.sh
. "$here/tap.sh"

rm -rf "$dir/tap" "$dir/extra"
mkdir -p "$dir/tap" "$dir/extra"

# One record per block: kind, name, rc ("none" if the end marker is missing),
# file name, seconds ("-" if unknown).
blocks=$(awk -v dir="$dir" '
	function finish(rc, t) {
		if (kind != "" && kind != "stderr") print kind "\t" name "\t" rc "\t" safe "\t" (t == "" ? "-" : t)
		if (file != "") close(file)
		kind = ""; file = ""; pending = 0
	}
	{ sub(/\r$/, "") }
	# an unterminated last line of a program runs into the marker
	match($0, /@@kvmfr (begin|end|done|tainted)/) && RSTART > 1 {
		if (file != "") print substr($0, 1, RSTART - 1) >>file
		$0 = substr($0, RSTART)
	}
	/^@@kvmfr begin / {
		finish("none")
		kind = $3; name = $4
		if (kind == "stderr") {
			# stderr of the program of the block just ended
			file = dir "/" (prev_kind == "raw" ? "extra/" : "tap/") safe ".stderr"
		} else {
			safe = name; sub(/^extra\//, "", safe); gsub(/[^A-Za-z0-9._+-]/, "_", safe)
			# a program listed twice gets NAME.2.tap, ...
			if (used[safe]++) safe = safe "." used[safe]
			file = dir (kind == "raw" ? "/extra/" safe ".out" : "/tap/" safe ".tap")
		}
		printf "" >file
		next
	}
	/^@@kvmfr end / {
		prev_kind = kind
		finish(substr($3, 4), $4 ~ /^t=/ ? substr($4, 3) : "")
		next
	}
	/^@@kvmfr / { finish("none"); next }
	kind == "" { next }
	# init adds an empty line before each end marker; keep the others
	$0 == "" { pending++; next }
	{
		for (; pending > 0; pending--) print "" >>file
		print >>file
	}
	END { finish("none") }
' "$dir/results.log")

[ -n "$blocks" ] || exit 0
while IFS=$'\t' read -r kind name rc safe secs; do
	took=
	[ "$secs" = - ] || took=", ${secs} s"
	case $kind in
	tap)
		file=$dir/tap/$safe.tap
		# plan, test lines, failed tests (not ok without TODO/SKIP, Bail out!)
		read -r plan count failed < <(awk '
			/^1\.\.[0-9]+/ && plan == "" { plan = substr($1, 4) + 0 }
			/^(not )?ok([ \t]|$)/ { n++ }
			/^not ok/ && !/#[ \t]*([Tt][Oo][Dd][Oo]|[Ss][Kk][Ii][Pp])/ { f++ }
			/^Bail out!/ { f++ }
			END { print (plan == "" ? "-" : plan), n + 0, f + 0 }' "$file")
		what="$label: $name ran to completion"
		if [ "$rc" = none ]; then
			tap_result 1 "$what: no end marker (the guest stopped while it ran)"
		elif [ "$rc" = 143 ] || [ "$rc" = 137 ] || [ "$rc" = 124 ]; then
			tap_result 1 "$what: exit status $rc: timed out$took (KVMFR_TEST_TIMEOUT, KVMFR_HARDENING_TIMEOUT for tests/hardening) or got SIGTERM/SIGKILL"
		elif [ "$rc" -gt 128 ]; then
			tap_result 1 "$what: killed by signal $((rc - 128))"
		elif [ "$plan" = - ]; then
			tap_result 1 "$what: no TAP plan (1..N), exit status $rc"
		elif [ "$plan" != "$count" ]; then
			tap_result 1 "$what: planned $plan tests, reported $count, exit status $rc"
		elif [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
			tap_result 1 "$what: exit status $rc although no test failed"
		else
			tap_result 0 "$what (1..$plan, exit $rc$took)"
		fi
		if [ "$rc" != 0 ] && [ -s "$dir/tap/$safe.stderr" ]; then
			tap_diag "$dir/tap/$safe.stderr" 10
		fi
		;;
	raw)
		if [ "$rc" = 0 ]; then
			tap_result 0 "$label: extra test ${name#extra/}${took:+ (${took#, })}"
		else
			tap_result 1 "$label: extra test ${name#extra/}: exit status $rc; output: $dir/extra/$safe.out"
			tap_diag "$dir/extra/$safe.out" 10
			tap_diag "$dir/extra/$safe.stderr" 10
		fi
		;;
	esac
done <<<"$blocks"
