#!/bin/sh
# guest-test.sh: run inside the Debian guest of tests/userspace/run.sh by
# kvmfr-userspace.service (make-root.sh), as root, from the host's virtio-9p
# share mounted on /run/kvmfr, which also holds test.env (KVER, KVER2,
# SIZE_MB, DEB), the kvmfr-dkms .deb and kvmfr-access. Two boots, the stage
# kept on the root disk:
#   install  apt installs the .deb (DKMS builds kvmfr.ko for the running
#            kernel), the shipped modules-load.d line and a size in
#            modprobe.d are enabled; reboot;
#   boot     the module came up at boot through systemd-modules-load with
#            that size, /dev/kvmfr0's group and mode, access as a member of
#            the kvm group and as a stranger, a second kernel's headers (DKMS
#            builds for it), apt-get purge; poweroff.
# Results in the format of tests/guest-init/init: TAP blocks on ttyS1, the
# kernel log on ttyS2.
set -u
share=/run/kvmfr
state=/var/lib/kvmfr-test
# shellcheck disable=SC1091
. "$share/test.env"
mkdir -p "$state"
stage=$(cat "$state/stage" 2>/dev/null || echo install)
log=$state/$stage.log
: >"$log"
stty -F /dev/ttyS1 raw -echo 2>/dev/null
stty -F /dev/ttyS2 raw -echo 2>/dev/null
exec 3>/dev/ttyS1

n=0 failed=0
out() { printf '%s\n' "$*" >&3; }
ok() { n=$((n + 1)); out "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=1; out "not ok $n - $*"; }
# check DESCRIPTION COMMAND...: one test, passed if COMMAND succeeds; its
# output goes to the log, whose tail is shown when it fails
check() {
	what=$1
	shift
	echo "+ $*" >>"$log"
	if "$@" >>"$log" 2>&1; then ok "$what"; else not_ok "$what"; diag; fi
}
diag() { tail -n "${1:-15}" "$log" | sed 's/^/#   /' >&3; }
run() { echo "+ $*" >>"$log"; "$@" >>"$log" 2>&1; }
begin() { out "@@kvmfr begin tap $1"; out "TAP version 13"; out "1..$2"; t0=$(date +%s); }
end() { out ""; out "@@kvmfr end rc=$failed t=$(($(date +%s) - t0))"; }
dump_kernel_log() {
	{
		echo "@@kvmfr dmesg begin $stage"
		dmesg
		echo "@@kvmfr dmesg end"
	} >/dev/ttyS2
}
# kvmfr.ko files DKMS installed for kernel $1
installed_ko() { find "/lib/modules/$1" -name 'kvmfr.ko*' 2>/dev/null; }
# apt-get without a network, with a progress line on the results port every
# minute (a DKMS build under TCG on a loaded host takes many minutes, and a
# guest silent on every serial port for 15 minutes counts as hung)
apt_offline() {
	(
		s=0
		while sleep 60; do
			s=$((s + 60))
			out "# apt-get $1: $s s"
		done
	) &
	ticker=$!
	DEBIAN_FRONTEND=noninteractive apt-get -y --no-install-recommends \
		-o Acquire::Retries=0 -o Acquire::http::Timeout=1 "$@"
	rc=$?
	kill "$ticker"
	return $rc
}

case $stage in
install)
	begin deb-install 4
	t=$(date +%s)
	check "apt-get install of $DEB (offline: everything it needs is installed)" \
		apt_offline install "$share/$DEB"
	out "# apt-get install with the DKMS build: $(($(date +%s) - t)) s"
	ko=$(installed_ko "$KVER")
	if [ -n "$ko" ] && dkms status kvmfr 2>&1 | grep -q "$KVER.*: installed"; then
		ok "DKMS built and installed kvmfr.ko for the running kernel $KVER ($ko)"
	else
		not_ok "DKMS built and installed kvmfr.ko for the running kernel $KVER (found: '$ko')"
		dkms status 2>&1 | sed 's/^/#   /' >&3
		diag 25
	fi
	if ! lsmod | grep -q '^kvmfr '; then
		ok "kvmfr is not loaded before it is enabled"
	else
		not_ok "kvmfr is not loaded before it is enabled"
	fi
	# what kvmfr(4) tells the user to do: uncomment the shipped lines
	if grep -qx '#kvmfr' /etc/modules-load.d/kvmfr.conf &&
		grep -q '^#options kvmfr static_size_mb=' /etc/modprobe.d/kvmfr.conf; then
		sed -i 's/^#kvmfr$/kvmfr/' /etc/modules-load.d/kvmfr.conf
		sed -i "s/^#options kvmfr static_size_mb=.*/options kvmfr static_size_mb=$SIZE_MB/" \
			/etc/modprobe.d/kvmfr.conf
		ok "the shipped /etc/modules-load.d/kvmfr.conf has a '#kvmfr' line and /etc/modprobe.d/kvmfr.conf an '#options kvmfr static_size_mb=' line to enable"
	else
		not_ok "the shipped /etc/modules-load.d/kvmfr.conf has a '#kvmfr' line and /etc/modprobe.d/kvmfr.conf an '#options kvmfr static_size_mb=' line to enable"
		sed 's/^/#   /' /etc/modules-load.d/kvmfr.conf /etc/modprobe.d/kvmfr.conf >&3
	fi
	# systemd-modules-load says which modules it inserted only at debug
	# level (systemd 247): that line is the proof the next boot looks for
	mkdir -p /etc/systemd/system/systemd-modules-load.service.d
	printf '[Service]\nEnvironment=SYSTEMD_LOG_LEVEL=debug\n' \
		>/etc/systemd/system/systemd-modules-load.service.d/kvmfr-test.conf
	end
	echo boot >"$state/stage"
	sync
	dump_kernel_log
	out "# rebooting"
	systemctl reboot --no-block
	;;
boot)
	begin deb-boot 9
	out "# booted in $(cut -d' ' -f1 /proc/uptime) s"
	# (it may run before journald: its messages may only be in the kernel
	# log)
	said=$({ journalctl -b -o cat -t systemd-modules-load; dmesg; } 2>&1 |
		grep "Inserted module 'kvmfr'")
	if [ -d /sys/module/kvmfr ] && [ -n "$said" ]; then
		ok "systemd-modules-load loaded kvmfr at boot (/etc/modules-load.d/kvmfr.conf)"
	else
		not_ok "systemd-modules-load loaded kvmfr at boot (/etc/modules-load.d/kvmfr.conf)"
		{ journalctl -b -o cat -t systemd-modules-load; dmesg | grep modules-load; } 2>&1 |
			tail -n 10 | sed 's/^/#   /' >&3
		[ -d /sys/module/kvmfr ] || out "#   kvmfr is not loaded"
	fi
	param=$(cat /sys/module/kvmfr/parameters/static_size_mb 2>&1)
	size=$(cat /sys/class/kvmfr/kvmfr0/size 2>&1)
	if [ "$param" = "$SIZE_MB" ] && [ "$size" = $((SIZE_MB << 20)) ]; then
		ok "kvmfr0 has the size set in /etc/modprobe.d/kvmfr.conf ($SIZE_MB MiB: static_size_mb '$param', sysfs size $size)"
	else
		not_ok "kvmfr0 has the size set in /etc/modprobe.d/kvmfr.conf ($SIZE_MB MiB; static_size_mb '$param', sysfs size '$size')"
	fi
	udevadm settle
	node=$(stat -c '%F, group %G, mode %a' /dev/kvmfr0 2>&1)
	if [ "$node" = "character special file, group kvm, mode 660" ]; then
		ok "/dev/kvmfr0 is a character device, group kvm, mode 660 (the udev rule)"
	else
		not_ok "/dev/kvmfr0 is a character device, group kvm, mode 660 (the udev rule): $node"
	fi
	id kvmfr-user >/dev/null 2>&1 || useradd -M -G kvm kvmfr-user
	id kvmfr-other >/dev/null 2>&1 || useradd -M kvmfr-other
	as() {
		user=$1
		shift
		setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --init-groups "$@" 2>&1
	}
	r=$(as kvmfr-user "$share/kvmfr-access" /dev/kvmfr0)
	rc=$?
	if [ $rc = 0 ]; then
		ok "a user in group kvm opens /dev/kvmfr0, maps it and creates and maps a dma-buf: $r"
	else
		not_ok "a user in group kvm opens /dev/kvmfr0, maps it and creates and maps a dma-buf: exit $rc: $r"
	fi
	r=$(as kvmfr-other "$share/kvmfr-access" /dev/kvmfr0)
	rc=$?
	if [ $rc = 2 ] && [ "$r" = "open: EACCES" ]; then
		ok "a user outside group kvm cannot open /dev/kvmfr0 (EACCES)"
	else
		not_ok "a user outside group kvm cannot open /dev/kvmfr0 (EACCES): exit $rc: $r"
	fi

	# a kernel upgrade, as far as DKMS sees it: a second kernel's headers
	t=$(date +%s)
	run apt_offline install /opt/kvmfr-upgrade/*.deb
	rc=$?
	out "# apt-get install linux-headers-$KVER2 with the DKMS build: $(($(date +%s) - t)) s"
	ko=$(installed_ko "$KVER2")
	st=$(dkms status kvmfr 2>&1)
	if [ $rc = 0 ] && [ -n "$ko" ] && echo "$st" | grep -q "$KVER.*: installed" &&
		echo "$st" | grep -q "$KVER2.*: installed"; then
		ok "installing linux-headers-$KVER2 makes DKMS build kvmfr.ko for it too (dkms status: installed for $KVER and $KVER2)"
	else
		not_ok "installing linux-headers-$KVER2 makes DKMS build kvmfr.ko for it too (apt exit $rc; $KVER2: '$ko')"
		echo "$st" | sed 's/^/#   /' >&3
		diag 25
	fi

	check "apt-get purge kvmfr-dkms" apt_offline purge kvmfr-dkms
	left=
	for k in "$KVER" "$KVER2"; do
		ko=$(installed_ko "$k")
		[ -z "$ko" ] || left="$left $ko"
	done
	for f in /var/lib/dkms/kvmfr /usr/src/kvmfr-*; do
		[ ! -e "$f" ] || left="$left $f"
	done
	modinfo -k "$KVER" kvmfr >/dev/null 2>&1 && left="$left (modinfo -k $KVER kvmfr finds a module)"
	modinfo -k "$KVER2" kvmfr >/dev/null 2>&1 && left="$left (modinfo -k $KVER2 kvmfr finds a module)"
	left=${left# }
	left=${left%% }
	if [ -z "$left" ]; then
		ok "purge: no kvmfr.ko left for $KVER and $KVER2 (modinfo finds none), no /var/lib/dkms/kvmfr, no /usr/src/kvmfr-*"
	else
		not_ok "purge: no kvmfr.ko left for $KVER and $KVER2, no /var/lib/dkms/kvmfr, no /usr/src/kvmfr-*; left: $left"
	fi
	left=
	for f in /lib/udev/rules.d/70-kvmfr.rules /etc/modprobe.d/kvmfr.conf \
		/etc/modules-load.d/kvmfr.conf /usr/include/linux/kvmfr.h \
		/usr/share/man/man4/kvmfr.4.gz /usr/share/doc/kvmfr-dkms; do
		[ ! -e "$f" ] || left="$left $f"
	done
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' kvmfr-dkms 2>/dev/null)
	[ -z "$status" ] || [ "$status" = "un " ] || left="$left (dpkg status '$status')"
	if [ -z "$left" ]; then
		ok "purge: the udev rule, modprobe.d and modules-load.d files, header, man page and docs are gone, dpkg forgot kvmfr-dkms"
	else
		not_ok "purge: the udev rule, modprobe.d and modules-load.d files, header, man page and docs are gone, dpkg forgot kvmfr-dkms; left:$left"
	fi
	end
	out "@@kvmfr tainted $(cat /proc/sys/kernel/tainted)"
	out "@@kvmfr done"
	dump_kernel_log
	echo finished >"$state/stage"
	systemctl poweroff --no-block
	;;
*)
	systemctl poweroff --no-block
	;;
esac
