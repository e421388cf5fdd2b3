#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# build-initramfs.sh OUT KVER KROOT VMLINUX KO BINDIR
#
# Build the two initramfs images of the demo in OUT (uncompressed newc cpio:
# unpacking gzip under nested TCG costs more than the copy):
#   OUT/level2.cpio  the VM: frame-producer as /init, kvmfr.ko
#   OUT/level1.cpio  the host: busybox, demo/lib/init-level1, kvmfr.ko, the
#                    VFIO modules of KROOT (decompressed, load order in
#                    /lib/demo/vfio-modules), frame-client, uring-pin, this
#                    machine's qemu-system-x86_64 at /usr/bin with its ldd
#                    closure, TCG accelerator module and firmware, and the
#                    VM's kernel (VMLINUX, the uncompressed ELF image, booted
#                    through its PVH entry) and initramfs in /demo
# The level-1 settings come from the DEMO_* environment variables (see
# demo/run) and are written to /etc/demo.env.
set -eu
out=$1 kver=$2 kroot=$3 vmlinux=$4 ko=$5 bindir=$6
lib=$(cd "$(dirname "$0")" && pwd)
qemu=/usr/bin/qemu-system-x86_64
accel=/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so

busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
	echo "build-initramfs: need a static busybox (package busybox-static)" >&2
	exit 1
fi
for f in "$qemu" "$accel" /usr/share/seabios/bios-256k.bin; do
	[ -e "$f" ] || { echo "build-initramfs: $f missing (package qemu-system-x86)" >&2; exit 1; }
done

# skeleton STAGE: directories and busybox with every applet
skeleton() {
	rm -rf "$1"
	mkdir -p "$1"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,lib/demo}
	cp "$busybox" "$1/bin/busybox"
	for applet in $("$busybox" --list-full); do
		[ -e "$1/$applet" ] || ln -s /bin/busybox "$1/$applet"
	done
}

pack() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0) >"$2"
}

# --- level 2: frame-producer is the VM's init (see frame-producer.c)
s2=$out/stage-level2
rm -rf "$s2"
mkdir -p "$s2"/{dev,proc,sys,lib/demo}
install -m 755 "$bindir/frame-producer" "$s2/init"
strip --strip-debug -o "$s2/lib/demo/kvmfr.ko" "$ko"
pack "$s2" "$out/level2.cpio"

# --- level 1
s1=$out/stage-level1
skeleton "$s1"
install -m 755 "$lib/init-level1" "$s1/init"
cp "$s2/lib/demo/kvmfr.ko" "$s1/lib/demo/kvmfr.ko"
install -m 755 "$bindir/frame-client" "$bindir/uring-pin" "$s1/bin/"

# VFIO modules, dependencies first (Debian's packages carry no modules.dep)
moddir=$kroot/lib/modules/$kver
declare -A done_mod=()
: >"$s1/lib/demo/vfio-modules"
add_module() {
	local name=$1 path dep base
	[ -z "${done_mod[$name]:-}" ] || return 0
	done_mod[$name]=1
	path=$(find "$moddir/kernel" -name "$name.ko*" -o -name "${name//_/-}.ko*" | head -n 1)
	if [ -z "$path" ]; then
		echo "build-initramfs: module $name not in $moddir" >&2
		return 1
	fi
	for dep in $(modinfo -F depends "$path" | tr ',' ' '); do
		add_module "$dep"
	done
	base=${path##*/}
	base=${base%.xz}; base=${base%.gz}; base=${base%.zst}
	case $path in
	*.xz) xz -dc "$path" ;;
	*.gz) gzip -dc "$path" ;;
	*.zst) zstd -qdc "$path" ;;
	*) cat "$path" ;;
	esac >"$s1/lib/demo/$base"
	echo "/lib/demo/$base" >>"$s1/lib/demo/vfio-modules"
}
add_module vfio_pci
add_module vfio_iommu_type1

# QEMU: the binary must be /usr/bin/qemu-system-x86_64, its modules are
# found relative to it
cp "$qemu" "$s1/usr/bin/qemu-system-x86_64"
mkdir -p "$s1${accel%/*}"
cp "$accel" "$s1$accel"
for so in $( { ldd "$qemu"; ldd "$accel"; } | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u); do
	mkdir -p "$s1${so%/*}"
	cp -L "$so" "$s1$so"
done
# the dynamic loader by the path in the ELF interpreter field
mkdir -p "$s1/lib64"
[ -e "$s1/lib64/ld-linux-x86-64.so.2" ] || cp -L /lib64/ld-linux-x86-64.so.2 "$s1/lib64/"
mkdir -p "$s1/usr/share/seabios" "$s1/usr/share/qemu"
cp -L /usr/share/seabios/*.bin "$s1/usr/share/seabios/"
for f in kvmvapic.bin linuxboot.bin linuxboot_dma.bin pvh.bin; do
	cp -L "/usr/share/qemu/$f" "$s1/usr/share/qemu/"
done

mkdir -p "$s1/demo"
cp "$vmlinux" "$s1/demo/level2-kernel"
cp "$out/level2.cpio" "$s1/demo/level2-initramfs"

cat >"$s1/etc/demo.env" <<EOT
DEMO_SESSIONS="${DEMO_SESSIONS:-classic json}"
DEMO_FRAMES=${DEMO_FRAMES:-60}
DEMO_WIDTH=${DEMO_WIDTH:-640}
DEMO_HEIGHT=${DEMO_HEIGHT:-360}
DEMO_EXPORT_SEQ=${DEMO_EXPORT_SEQ:-${DEMO_FRAMES:-60}}
DEMO_L2_MEM=${DEMO_L2_MEM:-256}
DEMO_L2_APPEND="${DEMO_L2_APPEND:-quiet}"
DEMO_L2_QEMU_ARGS="${DEMO_L2_QEMU_ARGS:-}"
DEMO_VFIO=${DEMO_VFIO:-1}
DEMO_URING=${DEMO_URING:-1}
DEMO_TIMEOUT=${DEMO_TIMEOUT:-800}
EOT
pack "$s1" "$out/level1.cpio"
rm -rf "$s1" "$s2"
