# Sourced by the scenarios run in throwaway-root.sh.
# shellcheck shell=bash
#
# root_add_kernels KVER=KDIR... — make each kernel's headers (an unpacked
# tree of tests/lib/fetch-kernel.sh) the installed headers of KVER in $ROOT:
# /lib/modules/KVER/build, as linux-headers-KVER would have it. The trees
# stay at their host path (their Makefiles include files by absolute path):
# seen through the overlay, or bound read-only where the overlay of / does
# not reach them.
root_add_kernels() {
	local k kver kdir tree
	for k in "$@"; do
		kver=${k%%=*} kdir=${k#*=}
		tree=$(dirname "$(dirname "$(dirname "$kdir")")")	# .../kernels/KVER
		# on another filesystem than /: not in the overlay, bind it (ro)
		if [ ! -d "$ROOT$kdir" ]; then
			mkdir -p "$ROOT$tree"
			mount --bind "$tree" "$ROOT$tree"
			mount -o remount,bind,ro "$ROOT$tree"
		fi
		mkdir -p "$ROOT/lib/modules/$kver"
		ln -s "$kdir" "$ROOT/lib/modules/$kver/build"
	done
}
