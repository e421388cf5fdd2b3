#!/bin/bash
# initramfs.sh STAGE KVER KROOT BIN
#
# Adds to a guest initramfs staging tree (tests/lib/mkinitramfs.sh) what
# the guest needs to run tests/graphics/egl_import.c in the graphics root of
# prepare-root.sh, shared read-only over virtio-9p (mount tag kvmfr-gfx):
#   /lib/kvmfr/9p/*.ko and list  virtio-pci and 9p modules of KVER (from
#                                KROOT), dependencies first (modinfo's
#                                depends, recursively); none when built in
#   /lib/kvmfr/9p/absent         instead, why they are missing (e.g. 7.x:
#                                fetch-kernel.sh unpacks no modules)
#   /tests/graphics/             BIN (the program) and run-in-guest.sh
set -eu
stage=$1 kver=$2 kroot=$3 bin=$4
here=$(cd "$(dirname "$0")" && pwd)
moddir=$kroot/lib/modules/$kver
[ -d "$moddir" ] || moddir=$kroot/usr/lib/modules/$kver
dir=$stage/lib/kvmfr/9p
mkdir -p "$dir" "$stage/tests/graphics"
: >"$dir/list"
find "$moddir/" -name '*.ko*' >"$dir/.all" 2>/dev/null || :
config=
for c in "$kroot/boot/config-$kver" "$moddir/config" "$kroot/usr/src/linux-headers-$kver/.config"; do
	[ -f "$c" ] && config=$c && break
done
seen=
# add NAME: NAME's dependencies, then NAME (- and _ alike)
add() {
	local name=${1//-/_} path dep
	case " $seen " in *" $name "*) return 0 ;; esac
	seen="$seen $name"
	path=$(grep -E "/${name//_/[-_]}\.ko(\.[gx]z|\.zst)?\$" "$dir/.all" | head -n 1)
	if [ -z "$path" ]; then
		echo "kernel $kver: module $name is not among the $(wc -l <"$dir/.all") modules unpacked in $moddir" >"$dir/absent"
		return 1
	fi
	case $path in
	*.xz) xz -dc "$path" ;;
	*.gz) gzip -dc "$path" ;;
	*.zst) zstd -qdc "$path" ;;
	*) cat "$path" ;;
	esac >"$dir/$name.ko"
	for dep in $(modinfo -F depends "$dir/$name.ko" | tr ',' ' '); do
		add "$dep" || return 1
	done
	echo "/lib/kvmfr/9p/$name.ko" >>"$dir/list"
}
# a module only where the kernel's config builds it as one
for m in VIRTIO_PCI:virtio_pci NET_9P:9pnet NET_9P_VIRTIO:9pnet_virtio 9P_FS:9p; do
	opt=${m%%:*} name=${m#*:}
	if [ -n "$config" ] && grep -q "^CONFIG_$opt=y" "$config"; then
		continue
	fi
	add "$name" || break
done
rm -f "$dir/.all"
[ ! -e "$dir/absent" ] || rm -f "$dir/list" "$dir"/*.ko
cp "$bin" "$stage/tests/graphics/kvmfr-egl_import"
cp "$here/run-in-guest.sh" "$stage/tests/graphics/run-in-guest.sh"
chmod 755 "$stage/tests/graphics/run-in-guest.sh"
