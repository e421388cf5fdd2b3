#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# demo/check.sh: the end-to-end demo, short, as TAP (for make check).
#
# One VM (the classic -object syntax), 60 frames, the rest as in demo/run:
# Debian 6.12 at both levels, VFIO assignment of edu, io_uring pin, PNG.
# Prints "ok N - ..." / "not ok N - ..." lines, progress and the report as
# "#" comments, "1..N" last; exit status 0 only if nothing failed. Takes
# about 3 minutes on 2 busy cores. The environment of demo/run applies
# (DEMO_OUT for the results directory, DEMO_KERNEL=6.1, ...).
set -eu
export DEMO_SESSIONS=${DEMO_SESSIONS:-classic}
export DEMO_FRAMES=${DEMO_FRAMES:-60}
exec "$(cd "$(dirname "$0")" && pwd)/run" --tap
