#!/bin/bash
# fetch-kernel.sh SERIES ENVFILE
#
# Resolve the newest Debian amd64 kernel of SERIES ("6.1", "6.12", ...) that
# apt knows about, download its image, headers (arch + common) and kbuild
# packages into the cache with `apt-get download`, unpack them all with
# `dpkg -x` into one root (the headers' scripts/ and tools/ symlinks point at
# ../../lib/linux-kbuild-*), and write shell assignments for KVER (uname -r),
# KROOT, KDIR (headers) and VMLINUZ to ENVFILE.  Nothing is installed into the
# host.  A complete unpacked tree is reused without touching the network.
# apt's output goes to $LOG (default: /dev/stderr).
set -eu
series=$1 envfile=$2
cache=${KVMFR_CACHE:?}
log=${LOG:-/dev/stderr}
mkdir -p "$cache/kernels" "$cache/debs"

# e.g. linux-image-6.1.0-56-amd64-unsigned, linux-image-6.12.117+deb12-amd64-unsigned
# (but not the -cloud-/-rt- flavours)
series_re=$(printf '%s' "$series" | sed 's/\./\\./g')
image_re="^linux-image-$series_re\.[0-9]+(-[0-9]+)?(\+deb[0-9]+)?-amd64-unsigned\$"

newest_image() {
	apt-cache search --names-only "$image_re" | awk '{ print $1 }' | sort -V | tail -n 1
}

image=$(newest_image)
if [ -z "$image" ] && [ "$(id -u)" = 0 ] && [ ! -e "${KVMFR_RESULTS:?}/.apt-updated" ]; then
	# fresh machine with empty package lists
	apt-get update >>"$log" 2>&1 && touch "$KVMFR_RESULTS/.apt-updated"
	image=$(newest_image)
fi

if [ -n "$image" ]; then
	abi=${image#linux-image-}
	abi=${abi%-amd64-unsigned}		# 6.1.0-56, 6.12.117+deb12
	kver=$abi-amd64
else
	# apt cannot tell (offline, no lists): use the newest tree already unpacked
	kver=$(for d in "$cache"/kernels/"$series".*/.complete; do
			[ -e "$d" ] && basename "$(dirname "$d")"
		done | grep -E "^$series_re\.[0-9]" | sort -V | tail -n 1 || true)
	if [ -z "$kver" ]; then
		echo "fetch-kernel: no Debian kernel package matches $image_re" \
		     "(is the suite carrying linux $series in /etc/apt/sources.list*?)" >&2
		exit 1
	fi
	echo "fetch-kernel: apt has no candidate for $series, using cached $kver" >&2
	abi=${kver%-amd64}
fi

root=$cache/kernels/$kver
if [ ! -e "$root/.complete" ]; then
	# one download/unpack at a time, across kernels and concurrent runs
	exec 9>"$cache/.lock"
	flock 9
	if [ ! -e "$root/.complete" ]; then
		debs=$cache/debs/$kver
		rm -rf "$debs" "$root.tmp"
		mkdir -p "$debs" "$root.tmp"
		cd "$debs"
		echo "# downloading $image and headers for $kver"
		apt-get download "$image" "linux-headers-$kver" >>"$log" 2>&1
		# the arch headers name the exact common-headers and kbuild packages
		deps=$(dpkg-deb -f linux-headers-"$kver"_*.deb Depends)
		common=$(printf '%s\n' "$deps" | grep -Eo 'linux-headers-[^ ,]+-common' | head -n 1)
		kbuild=$(printf '%s\n' "$deps" | grep -Eo 'linux-kbuild-[^ ,]+' | head -n 1)
		apt-get download "${common:?}" "${kbuild:?}" >>"$log" 2>&1
		for deb in ./*.deb; do
			dpkg -x "$deb" "$root.tmp"
		done
		# The arch headers' Makefile includes the common headers by their
		# installed path, /usr/src/...: point it into this tree instead.
		sed -i "s|^include /usr/src/|include $root/usr/src/|" \
			"$root.tmp/usr/src/linux-headers-$kver/Makefile"
		touch "$root.tmp/.complete"
		mv "$root.tmp" "$root"
	fi
	flock -u 9
fi

kdir=$root/usr/src/linux-headers-$kver
vmlinuz=$root/boot/vmlinuz-$kver
for f in "$kdir/Makefile" "$kdir/scripts/Makefile.modpost" "$vmlinuz"; do
	if [ ! -e "$f" ]; then
		echo "fetch-kernel: $f missing from $root (remove it to re-fetch)" >&2
		exit 1
	fi
done
cat >"$envfile" <<EOT
KVER='$kver'
KROOT='$root'
KDIR='$kdir'
VMLINUZ='$vmlinuz'
EOT
