#!/bin/bash
# make-root.sh ENVFILE OUTENV
#
# Make sure a bootable Debian system for the kernel of ENVFILE (written by
# tests/lib/fetch-kernel.sh: KVER, SUITE, TOOLCHAIN, KROOT) is cached, and
# write shell assignments for its files to OUTENV: ROOT_IMAGE (a raw ext4
# image to put a qcow2 overlay on), ROOT_VMLINUZ and ROOT_INITRD (the
# kernel and Debian's own initramfs-tools initrd, taken out of the image's
# /boot), KVER2 (the second kernel whose headers the image holds as .debs in
# /opt/kvmfr-upgrade, for the kernel-upgrade test).
#
# Built once per kernel, as root, from a copy of the toolchain chroot of
# tests/lib/make-chroot.sh (the release the kernel comes from, with its
# compiler): apt installs systemd-sysv, udev, dkms, the kernel's image and
# headers from the kernel's own suite; the second kernel is the newest other
# generic amd64 kernel apt sees there. The system boots to
# multi-user.target with kvmfr-userspace.service, which mounts the host's
# virtio-9p share "kvmfr" read-only on /run/kvmfr and runs its
# guest-test.sh (tests/userspace/guest-test.sh, run.sh). The image is kept
# under $KVMFR_CACHE/userspace/KVER-REV; REV changes with this script, so an
# edited recipe builds a new image. apt and debootstrap output goes to $LOG.
set -eu
envfile=$1 outenv=$2
here=$(cd "$(dirname "$0")" && pwd)
lib=$(dirname "$here")/lib
cache=${KVMFR_CACHE:?}
log=${LOG:-/dev/stderr}
mirror=${KVMFR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# shellcheck disable=SC1090
. "$envfile"

if [ "$(id -u)" != 0 ]; then
	echo "make-root: building the Debian root image needs root" >&2
	exit 1
fi
case ${TOOLCHAIN:-host} in
host) release=bookworm ;;
*) release=$TOOLCHAIN ;;
esac
rev=$(sha256sum "$0" | cut -c1-8)
dir=$cache/userspace/$KVER-$rev
mkdir -p "$cache/userspace"

write_env() {
	cat >"$outenv" <<EOT
ROOT_IMAGE='$dir/root.img'
ROOT_VMLINUZ='$dir/vmlinuz'
ROOT_INITRD='$dir/initrd.img'
ROOT_RELEASE='$release'
KVER2='$(cat "$dir/kver2")'
EOT
}

exec 9>"$dir.lock"
flock 9
if [ -e "$dir/.complete" ]; then
	write_env
	exit 0
fi
t0=$(date +%s)
tree=$dir/tree
target=()
case $SUITE in *-backports) target=(-t "$SUITE") ;; esac
opts="-o Acquire::Languages=none -o Acquire::Check-Valid-Until=false -q"
# a tree whose system is installed (left by a build that failed later) is
# taken up again
install_system() {
	rm -rf "$dir"
	mkdir -p "$dir"

	# The toolchain chroot (debootstrap, the kernel's build dependencies), or a
	# fresh bookworm one for a kernel built with the host's compiler.
	if [ "$release" = bookworm ]; then
		chroot_dir=$(LOG=$log "$lib/make-chroot.sh" bookworm "$KROOT")
	else
		chroot_dir=$(LOG=$log "$lib/make-chroot.sh" "$release" "$KROOT")
	fi
	echo "# copying $chroot_dir" >&2
	(
		flock 8
		cp -a "$chroot_dir" "$tree"
	) 8>"$chroot_dir.lock"
	rm -f "$tree/.complete"

	# apt sources: the release and the kernel's own suite.
	{
		echo "deb $mirror $release main"
		case $SUITE in
		*-security) echo "deb ${mirror%/debian}/debian-security $SUITE main" ;;
		"$release") ;;
		*) echo "deb $mirror $SUITE main" ;;
		esac
	} >"$tree/etc/apt/sources.list"
	# the kernel postinst's update-initramfs: gzip, every module a virtual
	# machine's root disk may need
	mkdir -p "$tree/etc/initramfs-tools/conf.d"
	echo COMPRESS=gzip >"$tree/etc/initramfs-tools/conf.d/kvmfr-test"

	echo "# installing systemd, udev, dkms, linux-image-$KVER into the image tree" >&2
	if ! (cd / && "$lib/in-chroot.sh" "$tree" -- /bin/sh -c "
		set -e
		apt-get $opts update
		DEBIAN_FRONTEND=noninteractive apt-get $opts -y --no-install-recommends \
			${target[*]} install systemd-sysv udev dkms kmod initramfs-tools \
			openssl e2fsprogs linux-image-$KVER linux-headers-$KVER
		apt-get clean") >>"$log" 2>&1; then
		echo "make-root: installing the system into the image tree failed (log: $log)" >&2
		exit 1
	fi
	touch "$tree/.kvmfr-installed"
}
[ -e "$tree/.kvmfr-installed" ] || install_system

# The second kernel: another generic amd64 kernel apt sees, of KVER's
# upstream series if there is one (bullseye's 5.10 for bullseye-security's),
# else the newest; the first whose headers, common headers and kbuild
# download (a mirror can list packages it no longer has).
kseries=$(echo "$KVER" | cut -d. -f1,2)
candidates=$(chroot "$tree" apt-cache search --names-only '^linux-headers-[0-9][^ ]*-amd64$' |
	awk '{ print $1 }' | grep -Ev -- '-(cloud|rt)-amd64$' | sed 's/^linux-headers-//' |
	grep -vx -- "$KVER" | sort -rV |
	awk -v s="$kseries." 'index($0, s) == 1 { print; next } { rest = rest $0 "\n" }
		END { printf "%s", rest }')
if [ -z "$candidates" ]; then
	echo "make-root: no second kernel in $release" >&2
	exit 1
fi
# shellcheck disable=SC2086 # a list
echo "# downloading the headers of one of" $candidates "for the kernel-upgrade test" >&2
rm -rf "$tree/opt/kvmfr-upgrade"
mkdir -p "$tree/opt/kvmfr-upgrade"
cat >"$tree/opt/kvmfr-upgrade.sh" <<'EOT'
#!/bin/sh
# run in the image tree: download the headers of the first kernel of $3
# (a list) that can be, into /opt/kvmfr-upgrade, its name into .kver2, and
# install now what they need beyond what is there (so that the guest
# installs them offline); apt options in $1, apt's target release in $2
set -e
opts=$1 target=$2
cd /opt/kvmfr-upgrade
for kver2 in $3; do
	deps=$(apt-cache depends "linux-headers-$kver2" |
		sed -n 's/^ *Depends: \(linux-\(headers\|kbuild\)-[^ ]*\)$/\1/p')
	# shellcheck disable=SC2086 # lists
	if apt-get $opts download "linux-headers-$kver2" $deps; then
		echo "$kver2" >.kver2
		break
	fi
	rm -f ./*.deb
done
[ -s .kver2 ]
# shellcheck disable=SC2086
extra=$(apt-get $opts -s $target install ./*.deb |
	sed -n 's/^Inst \([^ ]*\) .*/\1/p' | grep -v '^linux-\(headers\|kbuild\)-' || true)
if [ -n "$extra" ]; then
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get $opts -y --no-install-recommends \
		$target install $extra
fi
apt-get clean
EOT
chmod 755 "$tree/opt/kvmfr-upgrade.sh"
# shellcheck disable=SC2086 # a list
if ! (cd / && "$lib/in-chroot.sh" "$tree" -- /opt/kvmfr-upgrade.sh "$opts" "${target[*]}" \
	"$(printf '%s ' $candidates)") >>"$log" 2>&1; then
	echo "make-root: downloading a second kernel's headers failed (log: $log)" >&2
	exit 1
fi
rm "$tree/opt/kvmfr-upgrade.sh"
mv "$tree/opt/kvmfr-upgrade/.kver2" "$dir/kver2"
echo "# second kernel: $(cat "$dir/kver2")" >&2

# The system: no first-boot questions, root on /dev/vda, nothing slow or
# interactive on the consoles, the test unit.
echo kvmfr-test >"$tree/etc/hostname"
echo "127.0.1.1 kvmfr-test" >>"$tree/etc/hosts"
printf '%s\n' "/dev/vda / ext4 rw,errors=remount-ro 0 0" >"$tree/etc/fstab"
chroot "$tree" systemd-machine-id-setup >>"$log" 2>&1
chroot "$tree" passwd -d root >>"$log" 2>&1
for unit in systemd-firstboot.service getty@tty1.service serial-getty@ttyS0.service \
	apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer \
	fstrim.timer systemd-timesyncd.service; do
	ln -sf /dev/null "$tree/etc/systemd/system/$unit"
done
cat >"$tree/etc/systemd/system/kvmfr-userspace.service" <<'EOT'
[Unit]
Description=kvmfr userspace test (the host's tests/userspace/guest-test.sh)
After=multi-user.target

[Service]
Type=oneshot
TimeoutStartSec=infinity
StandardOutput=journal+console
ExecStart=/bin/sh -c 'modprobe 9pnet_virtio && mkdir -p /run/kvmfr && mount -t 9p -o trans=virtio,version=9p2000.L,ro kvmfr /run/kvmfr && exec /run/kvmfr/guest-test.sh'

[Install]
WantedBy=multi-user.target
EOT
ln -sf /etc/systemd/system/kvmfr-userspace.service \
	"$tree/etc/systemd/system/multi-user.target.wants/kvmfr-userspace.service"
rm -f "$tree/etc/resolv.conf"

cp "$tree/boot/vmlinuz-$KVER" "$dir/vmlinuz" 2>/dev/null ||
	cp "$tree/usr/lib/modules/$KVER/vmlinuz" "$dir/vmlinuz"
cp "$tree/boot/initrd.img-$KVER" "$dir/initrd.img"

# The ext4 image, straight from the tree (mke2fs -d: no loop mount).
size_mb=$(($(du -sm "$tree" | cut -f1) * 3 / 2 + 1024))
echo "# ext4 image of $(du -sh "$tree" | cut -f1) in ${size_mb} MiB" >&2
mke2fs -q -t ext4 -L kvmfr-root -d "$tree" "$dir/root.img" "${size_mb}M" >>"$log" 2>&1
rm -rf "$tree"
echo "# root image for $KVER ready in $(($(date +%s) - t0)) s" >&2
touch "$dir/.complete"
write_env
