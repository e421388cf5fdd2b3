#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# extract-vmlinux.sh VMLINUZ OUT
#
# Write the uncompressed ELF kernel inside the bzImage VMLINUZ to OUT, for a
# PVH boot (QEMU -kernel ELF with the Xen PVH note): the VM skips the
# decompressor, which costs over a minute under nested TCG. Tries every
# zstd, xz and gzip stream start in the file until one decompresses to an
# ELF image with a PVH entry note.
set -eu
vmlinuz=$1 out=$2
tmp=$out.tmp

try() {	# OFFSET DECOMPRESSOR...
	local off=$1
	shift
	tail -c +$((off + 1)) "$vmlinuz" | "$@" >"$tmp" 2>/dev/null || true
	[ "$(head -c 4 "$tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] &&
		readelf -n "$tmp" 2>/dev/null | grep -q 'Xen.*0x00000012'
}

for spec in '28b52ffd zstd -dc' 'fd377a585a00 xz -dc' '1f8b08 gzip -dc'; do
	magic=${spec%% *}
	cmd=${spec#* }
	pattern=$(printf '%s' "$magic" | sed 's/../\\x&/g')
	for off in $(LC_ALL=C grep -obUaP "$pattern" "$vmlinuz" | cut -d: -f1 | head -n 8); do
		# shellcheck disable=SC2086 # cmd is a command and its options
		if try "$off" $cmd; then
			mv "$tmp" "$out"
			exit 0
		fi
	done
done
rm -f "$tmp"
echo "extract-vmlinux: no PVH-bootable ELF kernel found in $vmlinuz" >&2
exit 1
