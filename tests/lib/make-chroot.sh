#!/bin/bash
# make-chroot.sh SUITE KROOT
#
# Make sure $KVMFR_CACHE/chroots/SUITE is a Debian SUITE chroot (debootstrap
# --variant=minbase, created once, as root) holding what the kernel unpacked
# in KROOT needs to build modules: the packages its headers and kbuild
# packages depend on (KROOT/.build-depends, written by fetch-kernel.sh: the
# compiler, pahole, the kbuild tools' libraries), make and libc6-dev.
# Serialised per suite by a lock, so that concurrent kernel jobs never
# create or update the same chroot twice.  Prints the chroot's path.  The
# output of debootstrap and apt goes to $LOG (default: /dev/stderr).
set -eu
suite=$1 kroot=$2
cache=${KVMFR_CACHE:?}
log=${LOG:-/dev/stderr}
mirror=${KVMFR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$cache/chroots/$suite
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "make-chroot: building for this kernel needs a Debian $suite chroot;" \
	     "creating it needs root" >&2
	exit 1
fi

# "a (>= 1), b | c, linux-kbuild-X" -> "a b": first alternatives, no
# versions, none of the kernel's own packages (they are unpacked in KROOT)
wanted=$(tr ',' '\n' <"$kroot/.build-depends" | sed 's/|.*//; s/(.*)//; s/ //g' |
	 grep -Ev '^(linux-base|linux-headers-|linux-kbuild-|$)' | sort -u | tr '\n' ' ')
# gcc runs "as" and "ld", which only binutils (a Recommends) provides
wanted="$wanted binutils"

mkdir -p "$cache/chroots"
exec 9>"$root.lock"
flock 9
if [ ! -e "$root/.complete" ]; then
	echo "# creating the Debian $suite chroot $root (debootstrap)" >&2
	rm -rf "$root"
	debootstrap --variant=minbase --include=make,libc6-dev "$suite" "$root" \
		"$mirror" >>"$log" 2>&1 || {
		echo "make-chroot: debootstrap $suite failed (log: $log)" >&2
		exit 1
	}
	# the kernel packages' dependencies come from the same mirror
	rm -f "$root"/var/cache/apt/archives/*.deb
	touch "$root/.complete"
fi

missing=
for p in $wanted; do
	status=$(chroot "$root" dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "# installing into the $suite chroot:$missing" >&2
	opts=(-o Acquire::Languages=none -o Acquire::Check-Valid-Until=false)
	# shellcheck disable=SC2086 # $missing is a list
	if ! (cd / && "$here/in-chroot.sh" "$root" -- /bin/sh -c "
		apt-get ${opts[*]} -q update &&
		DEBIAN_FRONTEND=noninteractive apt-get ${opts[*]} -q -y \
			--no-install-recommends install $missing &&
		apt-get clean") >>"$log" 2>&1; then
		echo "make-chroot: installing$missing into the $suite chroot failed (log: $log)" >&2
		exit 1
	fi
fi
flock -u 9
echo "$root"
