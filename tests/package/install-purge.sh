#!/bin/bash
# install-purge.sh DEB LOGDIR KVER=KDIR...
#
# Run by throwaway-root.sh. Installs the kvmfr-dkms package DEB into $ROOT,
# whose kernels are the KVERs with their headers at KDIR, and checks what a
# user gets: DKMS builds, signs and installs kvmfr.ko for every kernel when
# the package is installed; removing the package removes the modules and the
# DKMS tree; purging it leaves no file behind. TAP results via tap.sh.
set -eu
deb=$1 logs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/tap.sh
. "$here/../lib/tap.sh"
# shellcheck source=tests/package/kernels.sh
. "$here/kernels.sh"

pkg=$(dpkg-deb -f "$deb" Package)
version=$(dpkg-deb -f "$deb" Version)
upstream=${version%-*}
kvers=
for k in "$@"; do kvers="$kvers ${k%%=*}"; done
mkdir -p "$logs"

root_add_kernels "$@"
mount --bind "$(dirname "$deb")" "$ROOT/mnt"
# man-db's trigger would rebuild the whole manual page index (a minute): off
rm -f "$ROOT/var/lib/man-db/auto-update"

# the module file DKMS installed for a kernel (kvmfr.ko, .ko.xz, ...)
installed_ko() {
	find "$ROOT/lib/modules/$1" -name 'kvmfr.ko*' 2>/dev/null | head -n 1
}

rc=0
SECONDS=0
chroot "$ROOT" dpkg -i "/mnt/$(basename "$deb")" >"$logs/install.log" 2>&1 || rc=$?
echo "# dpkg -i: $SECONDS s"
for kver in $kvers; do
	ko=$(installed_ko "$kver")
	if [ $rc = 0 ] && [ -n "$ko" ]; then
		tap_result 0 "package: dpkg -i $pkg makes DKMS build and install kvmfr.ko for $kver (${ko#"$ROOT"})"
	else
		tap_result 1 "package: dpkg -i $pkg makes DKMS build and install kvmfr.ko for $kver (dpkg exit $rc, log $logs/install.log)"
		tap_diag "$logs/install.log"
		continue
	fi
	v=$(modinfo -F version "$ko" 2>&1 || true)
	if [ "$v" = "$upstream" ]; then
		tap_result 0 "package: kvmfr.ko DKMS built for $kver has version $upstream"
	else
		tap_result 1 "package: kvmfr.ko DKMS built for $kver has version $upstream (modinfo says '$v')"
	fi
	# Secure Boot: DKMS signs with its MOK key pair, made on first use. The
	# signature names the certificate by its serial number.
	serial=$(openssl x509 -inform DER -in "$ROOT/var/lib/dkms/mok.pub" -noout \
		-serial 2>/dev/null | sed -n 's/^serial=//p')
	signer=$(modinfo -F signer "$ko" 2>/dev/null || true)
	sig=$(modinfo -F sig_key "$ko" 2>/dev/null | tr -d ':' || true)
	if [ -n "$serial" ] && [ "$(echo "$sig" | tr a-f A-F)" = "$(echo "$serial" | tr a-f A-F)" ]; then
		tap_result 0 "package: kvmfr.ko DKMS built for $kver is signed with DKMS's MOK certificate (/var/lib/dkms/mok.pub, '$signer')"
	else
		tap_result 1 "package: kvmfr.ko DKMS built for $kver is signed with DKMS's MOK certificate (module: '$sig' '$signer', mok.pub serial '$serial')"
	fi
done

rc=0
chroot "$ROOT" dpkg -r "$pkg" >"$logs/remove.log" 2>&1 || rc=$?
left=$(for kver in $kvers; do installed_ko "$kver"; done
	ls -d "$ROOT"/var/lib/dkms/kvmfr "$ROOT"/usr/src/kvmfr-* 2>/dev/null || true)
if [ $rc = 0 ] && [ -z "$left" ]; then
	tap_result 0 "package: dpkg -r removes kvmfr.ko of every kernel, the DKMS tree and /usr/src/kvmfr-$upstream"
else
	tap_result 1 "package: dpkg -r removes kvmfr.ko of every kernel, the DKMS tree and /usr/src/kvmfr-$upstream (dpkg exit $rc; left: $(echo "$left" | sed "s|$ROOT||g" | tr '\n' ' '))"
	tap_diag "$logs/remove.log"
fi

# After a purge, $UPPER may only hold what dpkg, debconf, man-db and DKMS
# keep for themselves, the kernels this script added, and directories that
# exist on the host (copied up when something was added to them).
rc=0
chroot "$ROOT" dpkg -P "$pkg" >"$logs/purge.log" 2>&1 || rc=$?
(cd "$UPPER" && find . -mindepth 1 \( ! -type d -o -type d -empty \) -printf '/%P\n') |
	while read -r path; do
		[ -d "$UPPER$path" ] && [ -d "$path" ] || echo "$path"
	done | sort >"$logs/upper.list"
allowed='^/(usr/)?lib/modules/[^/]+/(build|modules\.[a-z.]+)$'
allowed="$allowed|^/var/lib/dpkg/|^/var/log/dpkg\.log$|^/var/cache/(man|debconf)/"
allowed="$allowed|^/var/lib/dkms/mok\.(key|pub)$|^/var/lib/man-db/auto-update$"
for k in "$@"; do
	tree=$(dirname "$(dirname "$(dirname "${k#*=}")")")
	allowed="$allowed|^$(printf '%s' "$tree" | sed 's/[][\.*^$+?(){}|]/\\&/g')$"
done
{
	grep -Ev "$allowed" "$logs/upper.list" || true
	# what is allowed must not be ours either
	# (except logs, dpkg's copy of its previous status, man-db's index)
	grep -E "$allowed" "$logs/upper.list" |
		grep -Ev '^/var/log/|^/var/lib/dpkg/status-old$|^/var/cache/man/index\.db$' |
		while read -r path; do
			case $path in */kvmfr-tests/kernels/*) continue ;; esac
			if [[ $path == *kvmfr* ]] || { [ -f "$UPPER$path" ] &&
				grep -qs kvmfr "$UPPER$path"; }; then
				echo "$path"
			fi
		done
} >"$logs/leftovers.list"
if [ $rc = 0 ] && [ ! -s "$logs/leftovers.list" ]; then
	tap_result 0 "package: dpkg -P leaves no file of $pkg behind ($(wc -l <"$logs/upper.list") changes left, all dpkg, debconf, man-db or DKMS state)"
else
	tap_result 1 "package: dpkg -P leaves no file of $pkg behind (dpkg exit $rc; left: $logs/leftovers.list)"
	tap_diag "$logs/leftovers.list"
fi
