# Sourced: apt against one Debian suite through the repository's private
# configuration tests/apt/SUITE.sources, never /etc/apt's sources or
# preferences; lists and caches under $KVMFR_CACHE/apt/SUITE.
# shellcheck shell=bash
#
#   suite_apt SUITE apt-get|apt-cache ARGS...
#   suite_update SUITE   refresh SUITE's lists, once per run (all runs and
#                        kernel jobs serialised by a lock); 1 if it failed
suite_apt() {
	local suite=$1 tool=$2 dir=$KVMFR_CACHE/apt/$1
	shift 2
	local opts=(
		-o "Dir::Etc::SourceList=$KVMFR_APT_DIR/$suite.sources"
		-o Dir::Etc::SourceParts=/dev/null
		-o Dir::Etc::Preferences=/dev/null
		-o Dir::Etc::PreferencesParts=/dev/null
		-o "Dir::State=$dir/state"
		-o "Dir::State::Lists=$dir/lists"
		-o "Dir::State::status=$dir/status"
		-o "Dir::Cache=$dir/cache"
		-o APT::Architectures=amd64
		-o Acquire::Languages=none
		-o APT::Sandbox::User=root
	)
	# sid's and experimental's Release files can be expired on the mirror
	case $suite in
	sid | experimental) opts+=(-o Acquire::Check-Valid-Until=false) ;;
	esac
	mkdir -p "$dir/state" "$dir/lists/partial" "$dir/cache/archives/partial"
	[ -e "$dir/status" ] || : >"$dir/status"
	"$tool" "${opts[@]}" "$@"
}

suite_update() {
	local suite=$1 rc=0 stamp=${KVMFR_RESULTS:?}/.apt-$1
	mkdir -p "$KVMFR_CACHE/apt"
	(
		flock 8
		[ ! -e "$stamp" ] || exit "$(cat "$stamp")"
		rc=0
		suite_apt "$suite" apt-get -q update >&2 || rc=$?
		echo $rc >"$stamp"
		exit $rc
	) 8>"$KVMFR_CACHE/apt/$suite.lock" || rc=$?
	return $rc
}

KVMFR_APT_DIR=${KVMFR_APT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../apt" && pwd)}
