#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# demo/check.sh: the end-to-end demo, short, as TAP (for make check).
#
# One VM (the classic -object syntax), 60 frames, the rest as in demo/run:
# Debian 6.12 at both levels, VFIO assignment of edu, io_uring pin, PNG.
# Prints "ok N - ..." / "not ok N - ..." lines, progress and the report as
# "#" comments, "1..N" last; exit status 0 only if nothing failed. Takes
# 1 to 1.5 minutes on this 2-core machine with other work running. The
# environment of demo/run applies (DEMO_OUT for the results directory,
# DEMO_KERNEL=6.1, ...).
set -eu -o pipefail
export DEMO_SESSIONS=${DEMO_SESSIONS:-classic}
export DEMO_FRAMES=${DEMO_FRAMES:-60}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
"$(cd "$(dirname "$0")" && pwd)/run" --tap | tee "$log" || rc=$?
# a run that died before its report must still count as a failure
if [ $rc != 0 ] && ! grep -q '^not ok' "$log"; then
	echo "not ok - demo/run --tap failed (exit status $rc) before reporting"
fi
exit $rc
