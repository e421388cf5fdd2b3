#!/bin/bash
# throwaway-root.sh COMMAND [ARGS...]
#
# Run COMMAND (as root) in a private mount namespace in which $ROOT is a copy
# of the host's root filesystem to chroot into: an overlay whose lower layer
# is / and whose upper layer, $UPPER, is a tmpfs. Whatever COMMAND installs,
# builds or removes under $ROOT lands in $UPPER (a whiteout for a deletion)
# and is gone when COMMAND ends; the host is never written. $ROOT has /proc,
# /sys, /dev and an empty /tmp. COMMAND runs outside the chroot (it calls
# `chroot "$ROOT" ...` itself) and can inspect $UPPER to see what changed.
# Exit status: COMMAND's.
set -eu

if [ -z "${KVMFR_THROWAWAY_NS:-}" ]; then
	base=$(mktemp -d "${TMPDIR:-/tmp}/kvmfr-throwaway.XXXXXX")
	rc=0
	KVMFR_THROWAWAY_NS=$base unshare --mount --propagation private "$0" "$@" || rc=$?
	rmdir "$base"
	exit $rc
fi

base=$KVMFR_THROWAWAY_NS
unset KVMFR_THROWAWAY_NS
mount -t tmpfs -o mode=0755 kvmfr-throwaway "$base"
mkdir "$base/upper" "$base/work" "$base/root"
mount -t overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" \
	kvmfr-throwaway "$base/root"
mount -t proc proc "$base/root/proc"
mount -t sysfs sysfs "$base/root/sys"
mount --rbind /dev "$base/root/dev"
mount -t tmpfs tmpfs "$base/root/tmp"
export ROOT=$base/root UPPER=$base/upper
"$@"
