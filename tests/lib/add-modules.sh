#!/bin/bash
# add-modules.sh STAGE SET KVER KROOT OPTION:MODULE...
#
# Puts kernel modules a guest test loads itself into an initramfs staging
# tree: for each MODULE that KVER's config does not build in (CONFIG_OPTION
# =y), the module and the modules it needs (modinfo's depends, recursively:
# Debian's packages ship no modules.dep), decompressed, in
# STAGE/lib/kvmfr/SET/, with their paths in load order in
# STAGE/lib/kvmfr/SET/list (empty when everything is built in). When a
# module cannot be found there is no list; STAGE/lib/kvmfr/SET/absent says
# why instead. The guest side is kt_load_modules() (tests/guest/kvmfr_test.h).
set -eu
stage=$1 set=$2 kver=$3 kroot=$4
shift 4
moddir=$kroot/lib/modules/$kver
[ -d "$moddir" ] || moddir=$kroot/usr/lib/modules/$kver
dir=$stage/lib/kvmfr/$set
mkdir -p "$dir"
: >"$dir/list"
find "$moddir/" -name '*.ko*' >"$dir/.all" 2>/dev/null || :
config=
for c in "$kroot/boot/config-$kver" "$moddir/config" \
	 "$kroot/usr/src/linux-headers-$kver/.config" "$kroot/.config"; do
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
	echo "/lib/kvmfr/$set/$name.ko" >>"$dir/list"
}
for m; do
	opt=${m%%:*} name=${m#*:}
	if [ -n "$config" ] && grep -q "^CONFIG_$opt=y" "$config"; then
		continue
	fi
	if [ -n "$config" ] && ! grep -q "^CONFIG_$opt=m" "$config"; then
		echo "kernel $kver: CONFIG_$opt is not set ($config)" >"$dir/absent"
		break
	fi
	add "$name" || break
done
rm -f "$dir/.all"
[ ! -e "$dir/absent" ] || rm -f "$dir/list" "$dir"/*.ko
