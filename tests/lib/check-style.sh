#!/bin/bash
# check-style.sh SRC OUTDIR
#
# The module's sources against the kernel's own style tools, from Debian's
# linux-source-6.12 package: `checkpatch.pl --strict` and the kernel's
# .clang-format, on kvmfr.c, kvmfr.h and kvmfr_mem.[ch]. Prints two TAP results (via
# tap.sh); logs in OUTDIR. The tools come from the source tree the debug
# kernel build unpacked, or else just those files from the package.
set -eu
src=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/tap.sh
. "$here/tap.sh"
cache=${KVMFR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvmfr-tests}
files="kvmfr.c kvmfr.h kvmfr_mem.c kvmfr_mem.h"
mkdir -p "$out"

# A linux-source tree with scripts/checkpatch.pl and .clang-format.
find_tree() {
	for t in "$cache"/debug-kernel/src-linux-source-6.12-*/linux-source-6.12 \
		"$cache"/style/linux-source-6.12; do
		if [ -f "$t/scripts/checkpatch.pl" ] && [ -f "$t/.clang-format" ]; then
			echo "$t"
		fi
	done | sort -V | tail -n 1
}

tree=$(find_tree)
if [ -z "$tree" ]; then
	# Only the style files, streamed out of the source tarball.
	mkdir -p "$cache/debs" "$cache/style"
	(cd "$cache/debs" && ls linux-source-6.12_*.deb >/dev/null 2>&1 ||
		apt-get download linux-source-6.12) >"$out/fetch.log" 2>&1 || true
	deb=$(ls "$cache"/debs/linux-source-6.12_*.deb 2>/dev/null | sort -V | tail -n 1)
	if [ -n "$deb" ]; then
		rm -rf "$cache/style.tmp"
		mkdir -p "$cache/style.tmp"
		dpkg-deb --fsys-tarfile "$deb" |
			tar -x -C "$cache/style.tmp" --wildcards '*/linux-source-6.12.tar.xz'
		tar -xJf "$cache"/style.tmp/usr/src/linux-source-6.12.tar.xz \
			-C "$cache/style.tmp" \
			linux-source-6.12/scripts/checkpatch.pl \
			linux-source-6.12/scripts/spelling.txt \
			linux-source-6.12/scripts/const_structs.checkpatch \
			linux-source-6.12/.clang-format >>"$out/fetch.log" 2>&1 || true
		rm -rf "$cache/style"
		mkdir -p "$cache/style"
		mv "$cache/style.tmp/linux-source-6.12" "$cache/style/" 2>/dev/null || true
		rm -rf "$cache/style.tmp"
	fi
	tree=$(find_tree)
fi
if [ -z "$tree" ]; then
	tap_result 1 "style: no linux-source-6.12 for checkpatch and .clang-format (see $out/fetch.log)"
	exit 0
fi

if (cd "$src" && perl "$tree/scripts/checkpatch.pl" --strict --no-tree \
	--show-types -f $files) >"$out/checkpatch.log" 2>&1; then
	tap_result 0 "style: checkpatch.pl --strict clean on $files"
else
	tap_result 1 "style: checkpatch.pl --strict reports on $files"
	tap_diag "$out/checkpatch.log"
fi

# clang-format with the kernel's configuration must leave the files as they are.
bad=
cp "$tree/.clang-format" "$out/.clang-format"
for f in $files; do
	cp "$src/$f" "$out/$f"
	if ! (cd "$out" && clang-format --style=file "$f" | diff -u "$f" - \
		>"$out/clang-format-$f.diff" 2>&1); then
		bad="$bad $f"
	fi
done
if [ -z "$bad" ]; then
	tap_result 0 "style: kernel .clang-format leaves $files unchanged"
else
	tap_result 1 "style: kernel .clang-format would change$bad"
	for f in $bad; do tap_diag "$out/clang-format-$f.diff"; done
fi
