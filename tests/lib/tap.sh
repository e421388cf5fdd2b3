# Sourced by the harness scripts: record harness-level test results.
# shellcheck shell=bash
#
# tap_result 0|STATUS "description" — appends "ok - description" (status 0) or
# "not ok - description" to $TAP_FILE and prints the same line.  Test lines are
# unnumbered (valid TAP); tests/lib/tap-summary.sh counts them with the
# programs' own TAP.
# tap_diag FILE [LINES] — prints the last LINES (default 20) lines of FILE as
# TAP comments, for showing why something failed.

tap_result() {
	local line
	if [ "$1" = 0 ]; then line="ok - $2"; else line="not ok - $2"; fi
	echo "$line" >>"$TAP_FILE"
	echo "$line"
}

tap_skip() {
	echo "ok - $1 # SKIP $2" >>"$TAP_FILE"
	echo "ok - $1 # SKIP $2"
}

tap_diag() {
	[ -s "$1" ] || return 0
	tail -n "${2:-20}" "$1" | sed 's/^/#   /'
}
