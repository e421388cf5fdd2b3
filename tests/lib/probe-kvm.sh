#!/bin/bash
# probe-kvm.sh VMLINUZ
#
# Print the QEMU accelerator to use: "kvm" if a guest boots under KVM within
# 20 s, else "tcg".  Nested KVM often exists but hangs (see
# /work/shared/notes/platform.md), so /dev/kvm alone proves nothing.  The
# answer is cached per host kernel and QEMU version, so only the first run on
# a machine pays for the probe.  KVMFR_ACCEL=tcg|kvm skips the probe.
set -eu
vmlinuz=$1
cache=${KVMFR_CACHE:?}

if [ -n "${KVMFR_ACCEL:-}" ]; then
	echo "$KVMFR_ACCEL"
	exit 0
fi
if [ ! -w /dev/kvm ]; then
	echo tcg
	exit 0
fi

key=$(printf '%s %s' "$(uname -rv)" "$(qemu-system-x86_64 --version | head -n 1)" |
      md5sum | cut -c1-16)
answer=$cache/kvm-probe-$key
exec 9>"$cache/.kvm-probe.lock"
flock 9
if [ ! -s "$answer" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/root/bin"
	cp "$(command -v busybox)" "$tmp/root/bin/busybox"
	printf '#!/bin/busybox sh\n/bin/busybox echo kvmfr-kvm-probe-ok\n/bin/busybox poweroff -f\n' \
		>"$tmp/root/init"
	chmod 755 "$tmp/root/init"
	(cd "$tmp/root" && find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0) |
		gzip -1 >"$tmp/initramfs"
	# (in a subshell, so that bash's "Killed" notice goes to /dev/null too)
	(timeout --foreground -s KILL 20 qemu-system-x86_64 -M q35 -accel kvm -m 256 -nodefaults \
		-no-user-config -display none -no-reboot -serial "file:$tmp/console" \
		-kernel "$vmlinuz" -initrd "$tmp/initramfs" \
		-append "console=ttyS0 panic=-1" || true) >/dev/null 2>&1
	if grep -q kvmfr-kvm-probe-ok "$tmp/console" 2>/dev/null; then
		echo kvm >"$answer"
	else
		echo tcg >"$answer"
	fi
fi
cat "$answer"
