#!/bin/bash
# check-kernel-log.sh LABEL DIR
# check-kernel-log.sh --self-test
#
# The kernel-log gate: one test in $TAP_FILE that fails if the guest kernel
# reported a problem, judged from the console (DIR/console.log, complete even
# when the guest died) and the dmesg dump (DIR/dmesg.log, complete even for
# messages below the console log level), plus the taint flags the guest
# reported at the end (DIR/results.log).  Offending lines are shown.
#
# --self-test: one test per line of tests/lib/kernel-log-samples/, in
# $TAP_FILE: every line of reports.log must be counted, every line of
# healthy.log must not.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/tap.sh
. "$here/tap.sh"

# Case-sensitive extended regexps of kernel reports that mean a bug.
bad='BUG:|kernel BUG at|WARNING:|Oops|KASAN|UBSAN|lockdep|possible circular
possible recursive locking|inconsistent lock state|DEBUG_LOCKS_WARN_ON
DMA-API|general protection|Call Trace|kmemleak|unreferenced object
page allocation failure|self-detected stall|rcu_sched self-detected
rcu: INFO: rcu_|soft lockup|hung task|blocked for more than
Kernel panic|cut here|list_add corruption|list_del corruption|refcount_t: 
Bad page|bad_page|use-after-free|out-of-bounds|double-free|Unable to handle kernel
invalid opcode:|hard LOCKUP|Hard LOCKUP
detected stalls|detected expedited stalls|self-detected stall|detected stall
rcu_(sched|preempt|bh).* kthread (starved|timer wakeup)|Possible timer handling issue
DMAR:.*[Ff]ault|DMAR: \[DMA (Read|Write)|DMAR: \[INTR-REMAP|IO_PAGE_FAULT|AMD-Vi: .*Event logged
x86/PAT: .*(conflicting memory types|invalid memtype|failed|expected mapping type|map pfn RAM range)
freeing invalid memtype|swiotlb buffer is full'
# (Not "segfault at": user programs may provoke SIGSEGV/SIGBUS on purpose.)

# Lines those patterns match on a healthy boot of the kernels we use
# (boot banners of debug options, not reports), and kmemleak's note that an
# allocation for its own bookkeeping failed (fault injection sweeps hit it;
# it falls back to scanning the whole object).
benign='DMA-API: preallocated [0-9]+ debug entries|DMA-API: debugging enabled by kernel config
kmemleak: Kernel memory leak detector initialized|kmemleak: Automatic memory scanning thread started
Lock dependency validator|lockdep:? .*(MAX_LOCKDEP|Copyright)|MAX_LOCKDEP|per task-struct memory footprint
KernelAddressSanitizer initialized|KASAN: .*(init|initialized)
RCU lockdep checking is enabled|RCU callback double-/use-after-free debug is enabled
kmemleak: Cannot allocate a scan area, scanning the full object'

bad=$(printf '%s' "$bad" | paste -sd '|')
benign=$(printf '%s' "$benign" | paste -sd '|')

# The offending lines of stdin, timestamps dropped for de-duplication, in
# first-seen order.
offending() {
	tr -d '\r' | grep -E -- "$bad" | grep -Ev -- "$benign" |
		sed -E 's/^\[ *[0-9]+\.[0-9]+\] //' | awk '!seen[$0]++' || true
}

if [ "${1:-}" = --self-test ]; then
	samples=$here/kernel-log-samples
	while IFS= read -r line; do
		case $line in '' | '#'*) continue ;; esac
		if [ -n "$(printf '%s\n' "$line" | offending)" ]; then
			tap_result 0 "kernel-log gate counts: $line"
		else
			tap_result 1 "kernel-log gate counts: $line"
		fi
	done <"$samples/reports.log"
	while IFS= read -r line; do
		case $line in '' | '#'*) continue ;; esac
		if [ -z "$(printf '%s\n' "$line" | offending)" ]; then
			tap_result 0 "kernel-log gate lets pass: $line"
		else
			tap_result 1 "kernel-log gate lets pass: $line"
		fi
	done <"$samples/healthy.log"
	exit 0
fi

label=$1 dir=$2
hits=$(cat "$dir/console.log" "$dir/dmesg.log" 2>/dev/null | offending)

# Taint flags that only a bug sets: B bad page (5), D died/oops (7), W warning
# (9), L soft lockup (14).  O/E (out-of-tree, unsigned) are expected.
taint=$(sed -n 's/^@@kvmfr tainted \([0-9]*\).*/\1/p' "$dir/results.log" 2>/dev/null | tail -n 1)
taint_bad=
if [ -n "$taint" ]; then
	for bit in 5:B 7:D 9:W 14:L; do
		if (((taint >> ${bit%%:*}) & 1)); then taint_bad="$taint_bad${bit#*:}"; fi
	done
fi

if [ -z "$hits" ] && [ -z "$taint_bad" ]; then
	tap_result 0 "$label: kernel log clean (no BUG/WARNING/Oops/KASAN/lockdep/... lines${taint:+, taint $taint})"
else
	n=$(printf '%s\n' "$hits" | grep -c . || true)
	tap_result 1 "$label: kernel log clean: $n offending line(s)${taint_bad:+, taint flags $taint_bad ($taint)}; logs: $dir/console.log $dir/dmesg.log"
	[ -z "$hits" ] || printf '%s\n' "$hits" | head -n 40 | sed 's/^/#   /'
fi
