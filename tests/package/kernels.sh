# Sourced by the scenarios run in throwaway-root.sh.
# shellcheck shell=bash
#
# root_add_kernels KVER=KDIR... — make each kernel's headers (an unpacked
# tree of tests/lib/fetch-kernel.sh) the installed headers of KVER in $ROOT:
# /lib/modules/KVER/build, as linux-headers-KVER would have it. The trees
# stay at their host path (their Makefiles include files by absolute path).
root_add_kernels() {
	local k kver kdir tree
	for k in "$@"; do
		kver=${k%%=*} kdir=${k#*=}
		tree=$(dirname "$(dirname "$(dirname "$kdir")")")	# .../kernels/KVER
		if [ ! -d "$ROOT$tree" ]; then
			mkdir -p "$ROOT$tree"
		fi
		mount --bind "$tree" "$ROOT$tree"
		mkdir -p "$ROOT/lib/modules/$kver"
		ln -s "$kdir" "$ROOT/lib/modules/$kver/build"
	done
}
