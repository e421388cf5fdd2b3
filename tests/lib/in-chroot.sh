#!/bin/bash
# in-chroot.sh ROOT [PATH...] -- COMMAND [ARG...]
#
# Run COMMAND in the chroot ROOT, from the current directory, with /proc,
# /dev and each PATH (a host directory: kernel tree, build directory,
# sources) bind-mounted at the same path inside.  The mounts live in a
# private mount namespace (unshare), so nothing stays mounted afterwards,
# whatever happens to COMMAND.  Needs root.
set -eu
root=$1
shift
paths=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	paths+=("$(cd "$1" && pwd)")
	shift
done
[ $# -gt 1 ] || { echo "usage: $0 ROOT [PATH...] -- COMMAND [ARG...]" >&2; exit 2; }
shift
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

# parents before children, so that a nested bind is not hidden
if [ ${#paths[@]} -gt 0 ]; then
	mapfile -t paths < <(printf '%s\n' "${paths[@]}" |
			     awk '!seen[$0]++ { print length, $0 }' | sort -n | cut -d' ' -f2-)
fi
exec unshare --mount --propagation private /bin/bash -eu -c '
	root=$1 cwd=$2 n=$3
	shift 3
	mount -t proc proc "$root/proc"
	mount --rbind /dev "$root/dev"
	while [ "$n" -gt 0 ]; do
		mkdir -p "$root$1"
		mount --bind "$1" "$root$1"
		shift
		n=$((n - 1))
	done
	[ -d "$root$cwd" ] || { echo "in-chroot: $cwd is not one of the bound paths" >&2; exit 2; }
	exec chroot "$root" /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$cwd" "$@"
' in-chroot "$root" "$(pwd)" "${#paths[@]}" "${paths[@]}" "$@"
