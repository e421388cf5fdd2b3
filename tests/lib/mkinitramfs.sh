#!/bin/bash
# mkinitramfs.sh OUT STAGING KVER KROOT KO GUESTBIN
#
# Build the guest's initramfs OUT (gzip -1 newc cpio) from a staging tree:
#   static busybox with a symlink for every applet, tests/guest-init/init as
#   /init, /etc/kvmfr-test.env, KO as /lib/kvmfr/kvmfr.ko (plus the modules it
#   depends on, from KROOT's lib/modules/KVER, listed in /lib/kvmfr/deps),
#   the guest programs of GUESTBIN (may be empty) in /tests and the
#   executables of $KVMFR_EXTRA_TESTS in /tests/extra.
# The ivshmem layout written to the env file (KVMFR_PCI, from GUEST_PCI of
# tests/lib/profile.sh) must match boot-guest.sh; GUEST_ENV is appended.
set -eu
out=$1 stage=$2 kver=$3 kroot=$4 ko=$5 guestbin=$6
tests_dir=$(cd "$(dirname "$0")/.." && pwd)

busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
	echo "mkinitramfs: need a static busybox (package busybox-static)" >&2
	exit 1
fi

rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,lib/kvmfr,tests/extra}
cp "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list-full); do
	[ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
done
cp "$tests_dir/guest-init/init" "$stage/init"
chmod 755 "$stage/init"

cp "$ko" "$stage/lib/kvmfr/kvmfr.ko"
# Modules kvmfr.ko needs (none with Debian's configs today), dependencies
# first, decompressed so that busybox insmod can load them.
: >"$stage/lib/kvmfr/deps"
moddir=$kroot/lib/modules/$kver
deps=$(modinfo -F depends "$ko" | tr ',' ' ')
if [ -n "$deps" ]; then
	# modules.dep: "kernel/a/b.ko.xz: kernel/c.ko.xz ..." (deps of b, in load-reverse order)
	want=
	for m in $deps; do
		line=$(grep -E "/${m//[-_]/[-_]}\.ko(\.[gx]z|\.zst)?:" "$moddir/modules.dep" | head -n 1)
		[ -n "$line" ] || { echo "mkinitramfs: kvmfr.ko needs $m, not in $moddir" >&2; exit 1; }
		want="$want $(echo "${line#*:}" | tr ' ' '\n' | tac | tr '\n' ' ') ${line%%:*}"
	done
	for rel in $want; do
		base=${rel##*/}
		base=${base%.xz}; base=${base%.gz}; base=${base%.zst}
		grep -qx "/lib/kvmfr/$base" "$stage/lib/kvmfr/deps" && continue
		case $rel in
		*.xz) xz -dc "$moddir/$rel" ;;
		*.gz) gzip -dc "$moddir/$rel" ;;
		*.zst) zstd -qdc "$moddir/$rel" ;;
		*) cat "$moddir/$rel" ;;
		esac >"$stage/lib/kvmfr/$base"
		echo "/lib/kvmfr/$base" >>"$stage/lib/kvmfr/deps"
	done
fi

# Modules guest tests load themselves (tests/lib/add-modules.sh):
# /lib/kvmfr/vgem, the DRM driver tests/guest/vgem_import.c imports kvmfr
# dma-bufs into; /lib/kvmfr/loop, the block device mm_ops.c does O_DIRECT
# I/O through.
"$tests_dir/lib/add-modules.sh" "$stage" vgem "$kver" "$kroot" DRM_VGEM:vgem
"$tests_dir/lib/add-modules.sh" "$stage" loop "$kver" "$kroot" BLK_DEV_LOOP:loop

if [ -n "$guestbin" ] && [ -d "$guestbin" ]; then
	cp -a "$guestbin"/. "$stage/tests/"
fi
if [ -n "${KVMFR_EXTRA_TESTS:-}" ]; then
	for f in "$KVMFR_EXTRA_TESTS"/*; do
		[ -f "$f" ] && [ -x "$f" ] && cp "$f" "$stage/tests/extra/"
	done
fi

# tests/graphics (test-kernel.sh sets GFX_BIN when the guest gets the
# graphics root): the program, its runner, the 9p modules
if [ -n "${GFX_BIN:-}" ]; then
	"$tests_dir/graphics/initramfs.sh" "$stage" "$kver" "$kroot" "$GFX_BIN"
fi

# tests/edu (test-kernel.sh sets KVMFR_EDU_DIR when the guest has edu)
if [ -n "${KVMFR_EDU_DIR:-}" ]; then
	cp "$KVMFR_EDU_DIR/kvmfr_edu.ko" "$stage/lib/kvmfr/kvmfr_edu.ko"
	cp "$KVMFR_EDU_DIR/edu_dma" "$stage/tests/edu_dma"
fi

cat >"$stage/etc/kvmfr-test.env" <<EOT
KVMFR_KO=/lib/kvmfr/kvmfr.ko
KVMFR_STATIC_MB="${GUEST_STATIC_MB:-16,4}"
KVMFR_PCI="${GUEST_PCI:-0000:00:04.0=8 0000:00:05.0=32}"
KVMFR_KVER="$kver"
KVMFR_TEST_TIMEOUT="${KVMFR_TEST_TIMEOUT:-300}"
EOT
# per-kernel hardening-tier settings (tests/lib/profile.sh)
[ -z "${GUEST_ENV:-}" ] || printf '%s\n' "$GUEST_ENV" >>"$stage/etc/kvmfr-test.env"

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0) | gzip -1 >"$out"
