#!/bin/bash
# prepare-kernel.sh SERIES LOG
#
# The slow, CPU-light part of a Debian series' job, started by tests/run for
# every series at once: download and unpack the kernel (fetch-kernel.sh)
# and, if its kbuild needs another release's toolchain, create that chroot
# (make-chroot.sh).  test-kernel.sh does the same later and finds both
# ready, or waits for them on the same locks.  Output to LOG.
set -eu
series=$1 log=$2
here=$(cd "$(dirname "$0")" && pwd)
env=$(mktemp)
trap 'rm -f "$env"' EXIT
{
	LOG=$log "$here/fetch-kernel.sh" "$series" "$env"
	# shellcheck disable=SC1090 # written by fetch-kernel.sh
	. "$env"
	if [ "${TOOLCHAIN:-host}" != host ]; then
		LOG=$log "$here/make-chroot.sh" "$TOOLCHAIN" "$KROOT"
	fi
} >>"$log" 2>&1
