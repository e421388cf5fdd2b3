#!/bin/bash
# prepare-kernel.sh SERIES LOG
#
# The slow, CPU-light part of a Debian series' job, started by tests/run for
# every series at once: download and unpack the kernel (fetch-kernel.sh)
# and, if its kbuild needs another release's toolchain, create that chroot
# (make-chroot.sh); for userspace-SERIES, SERIES and then its Debian root
# image (tests/userspace/make-root.sh).  test-kernel.sh (run.sh) does the
# same later and finds them ready, or waits for them on the same locks.
# Output to LOG.
set -eu
series=$1 log=$2
here=$(cd "$(dirname "$0")" && pwd)
env=$(mktemp)
trap 'rm -f "$env" "$env.root"' EXIT
{
	LOG=$log "$here/fetch-kernel.sh" "${series#userspace-}" "$env"
	# shellcheck disable=SC1090 # written by fetch-kernel.sh
	. "$env"
	if [ "${TOOLCHAIN:-host}" != host ]; then
		LOG=$log "$here/make-chroot.sh" "$TOOLCHAIN" "$KROOT"
	fi
	case $series in
	userspace-*) LOG=$log "$here/../userspace/make-root.sh" "$env" "$env.root" ;;
	esac
} >>"$log" 2>&1
