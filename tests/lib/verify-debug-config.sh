#!/bin/bash
# verify-debug-config.sh FRAGMENT DOTCONFIG
#
# The check tests/debug-kernel/build.sh makes after olddefconfig, repeated by
# the harness on the tree it boots: every "CONFIG_X=v" line of FRAGMENT is in
# DOTCONFIG verbatim, no "# CONFIG_X is not set" line of it is set there.
# Prints the dropped options, or one summary line; exit status 1 if any.
set -eu
fragment=$1 config=$2
[ -f "$config" ] || { echo "no $config" >&2; exit 1; }
dropped=0 n=0
while IFS= read -r line; do
	case $line in
	CONFIG_*=*)
		n=$((n + 1))
		if ! grep -qxF -- "$line" "$config"; then
			echo "dropped: want $line, have: $(grep -E "^(# )?${line%%=*}[= ]" "$config" || echo '(absent)')"
			dropped=$((dropped + 1))
		fi
		;;
	"# CONFIG_"*" is not set")
		n=$((n + 1))
		opt=${line#\# }
		opt=${opt%% *}
		if grep -qE "^$opt=" "$config"; then
			echo "dropped: want $line, have: $(grep -E "^$opt=" "$config")"
			dropped=$((dropped + 1))
		fi
		;;
	esac
done <"$fragment"
if [ "$dropped" -gt 0 ]; then
	echo "$dropped of the $n options of $(basename "$fragment") are not in $config"
	exit 1
fi
echo "debug kernel .config has all $n options of tests/debug-kernel/debug.config"
