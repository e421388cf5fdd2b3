#!/bin/bash
# fetch-clang-kernel.sh ENVFILE
#
# The "clang" entry of KERNELS: a kernel tree configured and prepared for
# out-of-tree modules with the LLVM toolchain (make LLVM=1 tinyconfig +
# tests/debug-kernel/debug.config, olddefconfig, modules_prepare), from the
# linux-source-6.12 tree tests/debug-kernel/build.sh unpacks (and builds, if
# the debug kernel is not built yet).  Its .config has CONFIG_CC_IS_CLANG=y,
# as a clang-built distribution kernel's has; no kernel image is built, so
# the module is built but never loaded.  Cached in
# $KVMFR_CACHE/clang-kernel/<hash>.  Writes KVER, KDESC, KROOT and KDIR to
# ENVFILE; progress to stderr, the log to TREE/build.log.
set -eu
envfile=$1
cache=${KVMFR_CACHE:?}
tests_dir=$(cd "$(dirname "$0")/.." && pwd)
fragment=$tests_dir/debug-kernel/debug.config

# the unpacked source (the debug kernel's build unpacks it once)
newest_src() {
	local d src=
	for d in "$cache"/debug-kernel/src-linux-source-6.12-*/linux-source-6.12; do
		[ -e "$(dirname "$d")/.complete" ] || continue
		if [ -z "$src" ] || [ "$d" -nt "$src" ]; then src=$d; fi
	done
	echo "$src"
}
src=$(newest_src)
if [ -z "$src" ]; then
	"$tests_dir/debug-kernel/build.sh" "$cache/debug-kernel" >/dev/null
	src=$(newest_src)
fi
[ -n "$src" ] || { echo "fetch-clang-kernel: no linux-source-6.12 tree in $cache/debug-kernel" >&2; exit 1; }

# the tree depends on the source, the compiler and the configuration
# (bump "prep" when the preparation below changes)
hash=$( { echo "prep 1 $src"; clang --version | head -n 1; cat "$fragment"; } |
	sha256sum | cut -c1-16)
tree=$cache/clang-kernel/$hash
if [ ! -e "$tree/.complete" ]; then
	mkdir -p "$cache/clang-kernel"
	exec 9>"$cache/clang-kernel/.lock"
	flock 9
	if [ ! -e "$tree/.complete" ]; then
		echo "# preparing a clang-configured tree of $(basename "$src") in $tree" >&2
		rm -rf "$tree"
		mkdir -p "$tree"
		{
			make -C "$src" O="$tree" LLVM=1 tinyconfig &&
			"$src/scripts/kconfig/merge_config.sh" -m -O "$tree" \
				"$tree/.config" "$fragment" &&
			make -C "$src" O="$tree" LLVM=1 olddefconfig &&
			make -C "$src" O="$tree" LLVM=1 -j"$(nproc)" modules_prepare
		} >"$tree/build.log" 2>&1 || {
			tail -n 30 "$tree/build.log" >&2
			echo "fetch-clang-kernel: preparing the tree failed (log: $tree/build.log)" >&2
			exit 1
		}
		grep -q '^CONFIG_CC_IS_CLANG=y' "$tree/.config" || {
			echo "fetch-clang-kernel: $tree/.config is not a clang configuration" >&2
			exit 1
		}
		touch "$tree/.complete"
	fi
	flock -u 9
fi
cat >"$envfile" <<EOT
KVER='$(cat "$tree/include/config/kernel.release")'
KDESC='$(basename "$(dirname "$src")" | sed 's/^src-//'), configured with LLVM=1, $(clang --version | head -n 1)'
KROOT='$tree'
KDIR='$tree'
EOT
