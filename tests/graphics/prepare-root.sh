#!/bin/bash
# prepare-root.sh [SUITE]
#
# The graphics userspace of tests/graphics/egl_import.c: a small root
# directory with Debian's Mesa of SUITE (default bookworm-backports: Mesa
# 25.0.x; "bookworm": 22.3.6, which cannot import dma-bufs in software),
# the glvnd EGL/GLES loaders and every library they load, closed under
# ldd, plus the dynamic loader and an ld.so.cache.  A guest chroots into it
# (tests/graphics/run-in-guest.sh) after mounting it read-only, e.g. over
# virtio-9p.  Built once per Mesa version under
# $KVMFR_CACHE/graphics/SUITE-MESAVERSION; prints that directory.
#
# The Mesa packages come from Debian's registry through tests/lib/apt.sh's
# private configuration; the other libraries are copied from the host (a
# Debian bookworm, like the packages), so the host needs Mesa's
# dependencies (libllvm15, ...) installed: a missing one is named and the
# script fails.  Needs root (dpkg -x keeps ownership) and KVMFR_CACHE,
# KVMFR_RESULTS (apt's once-per-run list refresh).
set -eu
suite=${1:-bookworm-backports}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/apt.sh
. "$here/../lib/apt.sh"
cache=${KVMFR_CACHE:?}/graphics
mkdir -p "$cache"
mesa_debs="libegl-mesa0 libgbm1 libgl1-mesa-dri"
case $suite in
bookworm-backports)
	# 25.0's libgallium wants libdrm 2.4.121+, also in backports
	extra_debs="mesa-libgallium libdrm2 libdrm-amdgpu1 libdrm-intel1" ;;
bookworm) extra_debs="libglapi-mesa" ;;
*) echo "prepare-root: suite $suite: bookworm-backports or bookworm" >&2; exit 2 ;;
esac

suite_update "$suite" || echo "prepare-root: apt update of $suite failed; using old lists" >&2
ver=$(suite_apt "$suite" apt-cache policy libegl-mesa0 | sed -n 's/^ *Candidate: //p')
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
	echo "prepare-root: no libegl-mesa0 in $suite" >&2
	exit 1
fi
root=$cache/$suite-${ver//[~+:]/_}
exec 9>"$cache/.lock"
flock 9
if [ -e "$root/.complete" ]; then
	echo "$root"
	exit 0
fi

t0=$(date +%s)
rm -rf "$root.tmp" "$root.debs"
mkdir -p "$root.debs" "$root.tmp"
# shellcheck disable=SC2086 # lists of packages
(cd "$root.debs" && suite_apt "$suite" apt-get download -q $mesa_debs $extra_debs >&2)
for deb in "$root.debs"/*.deb; do
	dpkg -x "$deb" "$root.tmp"
done
rm -rf "$root.debs"

# merged /usr like the host; glvnd's loaders from the host (1.6.0 in both)
lib=usr/lib/x86_64-linux-gnu
mkdir -p "$root.tmp/usr/lib64" "$root.tmp/usr/bin" "$root.tmp/etc"
for d in lib lib64 bin sbin; do
	[ -e "$root.tmp/$d" ] || ln -s "usr/$d" "$root.tmp/$d"
done
mkdir -p "$root.tmp/usr/sbin"
for so in libEGL.so.1 libGLESv2.so.2 libGLdispatch.so.0; do
	cp -L "/$lib/$so" "$root.tmp/$lib/$so"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$root.tmp/usr/lib64/"

# every library any ELF of the root needs, from the host, until none is missing
missing=
for _ in 1 2 3; do
	new=0
	while read -r f; do
		file -b "$f" | grep -q '^ELF' || continue
		LD_LIBRARY_PATH=$root.tmp/$lib:$root.tmp/$lib/dri:$root.tmp/$lib/gbm \
			ldd "$f" 2>/dev/null | while read -r name arrow path _; do
			[ "$arrow" = "=>" ] || continue
			if [ "$path" = "not" ]; then
				echo "$name" >>"$root.tmp/.missing"
				continue
			fi
			case $path in "$root.tmp"/*) continue ;; esac
			[ -e "$root.tmp/$lib/$name" ] && continue
			cp -L "$path" "$root.tmp/$lib/$name"
			echo new >>"$root.tmp/.new"
		done
	done < <(find "$root.tmp/usr" -type f \( -name '*.so*' -o -perm -u+x \))
	[ -s "$root.tmp/.new" ] && new=1
	rm -f "$root.tmp/.new"
	[ $new = 1 ] || break
done
if [ -s "$root.tmp/.missing" ]; then
	missing=$(sort -u "$root.tmp/.missing" | tr '\n' ' ')
	# the closure pass copies what the host has; anything left is not on the host
	still=
	for name in $missing; do
		[ -e "$root.tmp/$lib/$name" ] || still="$still $name"
	done
	if [ -n "$still" ]; then
		echo "prepare-root: not on the host, needed by Mesa $ver:$still (apt-get install the bookworm packages that hold them)" >&2
		exit 1
	fi
fi
rm -f "$root.tmp/.missing"
# what the guest chroot needs: mount points, a cache for ld.so
mkdir -p "$root.tmp"/{dev,proc,sys,tmp,run,tests,lib/kvmfr}
echo "/$lib" >"$root.tmp/etc/ld.so.conf"
ldconfig -r "$root.tmp"
echo "mesa $ver from $suite; built $(date -u +%FT%TZ) in $(($(date +%s) - t0)) s; $(du -sm "$root.tmp" | cut -f1) MiB" >"$root.tmp/.complete"
rm -rf "$root"
mv "$root.tmp" "$root"
echo "prepare-root: $(cat "$root/.complete")" >&2
echo "$root"
