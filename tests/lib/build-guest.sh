#!/bin/bash
# build-guest.sh SRC OUT
#
# Build the guest test programs: `make -C SRC OUT=OUT` must leave static
# binaries in OUT and OUT/suite.list (program names in run order), plus
# OUT/kvmfr-pattern.  Fails if suite.list is missing or names a program that
# was not built.  The make output goes to stdout.
set -eu
src=$1 out=$2
rm -rf "$out"
mkdir -p "$out"
if [ ! -f "$src/Makefile" ]; then
	echo "build-guest: $src/Makefile does not exist" >&2
	exit 1
fi
make -j"$(nproc)" -C "$src" OUT="$out"
if [ ! -f "$out/suite.list" ]; then
	echo "build-guest: make did not write $out/suite.list" >&2
	exit 1
fi
status=0
while read -r prog; do
	case "$prog" in ''|'#'*) continue ;; esac
	if [ ! -x "$out/$prog" ]; then
		echo "build-guest: suite.list names $prog, but $out/$prog was not built" >&2
		status=1
	fi
done <"$out/suite.list"
if [ ! -x "$out/kvmfr-pattern" ]; then
	echo "build-guest: $out/kvmfr-pattern was not built" >&2
	status=1
fi
exit $status
