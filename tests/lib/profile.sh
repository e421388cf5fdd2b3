# Sourced by tests/lib/test-kernel.sh with $series set: the per-kernel guest
# set-up (memory, IOMMU, ivshmem layout, kernel command line, hardening-tier
# sizes), exported for boot-guest.sh and mkinitramfs.sh.
# shellcheck shell=bash
#
# SERIES            a Debian series (6.1, 6.12, ...), the debug kernel's two
#                   guests (debug, debug-unplug), or SERIES-swiotlb: that
#                   series without IOMMU, all DMA bounced (swiotlb=force)
#
# GUEST_PLAN        what the guest runs (tests/guest-init/init): "suite"
#                   (tests/guest), "hardening" (hardening.list), "unplug"
#                   (unplug cycles, QMP hot-unplug), "edu" (edu DMA)
# GUEST_MEM         guest RAM in MiB (only what the guest touches costs host RAM)
# GUEST_IOMMU       1: -device intel-iommu + intel_iommu=on iommu.strict=1
# GUEST_EDU         1: -device edu, and the guest runs tests/edu's edu_dma
#                   (real DMA through kvmfr's dma-bufs; needs GUEST_IOMMU=1)
# GUEST_CMDLINE     extra kernel command line (before $KVMFR_KERNEL_ARGS)
# GUEST_IVSHMEM     "INDEX:MIB:WHERE ...", KVMFR_PCI order; WHERE is a slot of
#                   bus 0 ("04" = 0000:00:04.0) or "rp0" (behind a
#                   pcie-root-port at 00:03.0, guest address 0000:01:00.0,
#                   hot-pluggable from the host over QMP)
# GUEST_HOTPLUG     QMP device_del/device_add cycles of the rp0 device
#                   (0: none); the guest follows with `unplug_cycles external`
# GUEST_TCG_THREAD  "single": -accel tcg,thread=single (default: QEMU's
#                   multi-threaded TCG, one host thread per vCPU)
# GUEST_BOOT_TIMEOUT  seconds for the whole guest run (a generous bound: a
#                   hang is caught by the stall bound of boot-guest.sh)
# GUEST_ENV         extra lines for the guest's /etc/kvmfr-test.env
# GUEST_GFX         1: the guest also runs tests/graphics/egl_import.c (Mesa's
#                   EGL import) in the graphics root shared over virtio-9p;
#                   KVMFR_EGL=0 turns it off
# GUEST_STATIC_MB   static_size_mb= of kvmfr.ko in the guest (default 16,4)
#
# Every hardening knob can be overridden from the environment (for all
# kernels at once), e.g. KVMFR_FUZZ_SEED=1234 or KVMFR_UNPLUG_CYCLES=5000.

case $series in
debug | debug-unplug)
	# The debug kernel (tests/debug-kernel), in two guests that run side
	# by side on the two host CPUs: "debug" runs the suite, the fault
	# injection sweeps, the fuzzer, 1000 driver unbind/bind cycles and edu
	# DMA; "debug-unplug" 1000 PCI remove/rescan cycles and the QMP
	# hot-unplug cycles.  Measured here, alone: 0.25 s per remove/rescan,
	# 0.14 s per unbind/bind cycle with 3 workers and an importer on the
	# device (tests/README.md).
	GUEST_IOMMU=1
	GUEST_EDU=1
	# expedited RCU grace periods: PCI remove/unbind wait for several; under
	# TCG that halves a debug-kernel unplug cycle (no checker is affected).
	# A periodic tick (LAPIC periodic mode): with the default tickless
	# one-shot timers, 2 of 5 debug-unplug runs beside another guest
	# stalled after about 330 s: one vCPU idle in HLT, its timer interrupt
	# never delivered ("rcu_preempt kthread timer wakeup didn't happen",
	# "Possible timer handling issue on cpu=N"), the cycles stuck.  None
	# in later runs with these; alone they cost nothing measurable (0.266
	# vs 0.269 s per remove/rescan cycle).
	GUEST_CMDLINE="panic_on_warn=1 rcupdate.rcu_expedited=1 nohz=off highres=off"
	# KVMFR_PCI must stay in PCI address order (= probe order, kvmfrN order)
	GUEST_IVSHMEM="0:8:04 1:32:rp0"
	# Time bounds: none on the cycles (a hang is a cycle 50 times the
	# guest's own baseline, tests/hardening/unplug_cycles.c, or a silence
	# of the serial ports, boot-guest.sh). The whole-run bounds are only
	# a backstop for a guest that livelocks while printing: here, side by
	# side, debug took 542 s and debug-unplug 577 s; another machine of
	# this kind was 5.6 times slower per remove/rescan cycle, and 15 times
	# under load (5.96 s per cycle: 1000 cycles in 100 minutes), which
	# still fits. Per program (in the guest): suite programs take
	# seconds, the hardening ones minutes.
	GUEST_BOOT_TIMEOUT=${KVMFR_BOOT_TIMEOUT:-14400}
	fuzz_seconds=60 unplug_cycles=1000
	hardening_timeout=14000 test_timeout=600
	if [ "$series" = debug ]; then
		GUEST_PLAN="suite hardening unplug edu"
		unplug_kinds=unbind
		GUEST_MEM=7168	# MemTotal > 5 GiB (KASAN takes 1/8): the 4 GiB static device
		GUEST_HOTPLUG=0
	else
		GUEST_PLAN="unplug"
		unplug_kinds=remove
		GUEST_MEM=2048
		# QEMU 7.2's multi-threaded TCG crashed once (SIGSEGV in
		# memory_region_dispatch_write, NULL region) 80 s into the
		# remove/rescan cycles: each cycle changes the guest's memory
		# map (BARs off and on) while the other vCPU runs, a race QEMU
		# fixed later (tcg_commit).  One thread for both vCPUs: the
		# guest stays SMP, the cycles take 1.5x as long alone (0.40 s
		# per remove/rescan) but use one host CPU, beside "debug".
		GUEST_TCG_THREAD=single
		GUEST_HOTPLUG=${KVMFR_HOTPLUG_CYCLES:-50}
	fi
	# the soak: make soak (tests/README.md)
	if [ "${KVMFR_HARDENING:-}" = full ]; then
		unplug_cycles=5000 hardening_timeout=42000
		fuzz_seconds=600
		[ "$series" = debug ] || GUEST_HOTPLUG=${KVMFR_HOTPLUG_CYCLES:-250}
		# the module-load fail-nth sweep over every allocation of the
		# load, the module loader's and the PCI probes' too (~650 loads)
		KVMFR_FAULT_LOAD_ALL=${KVMFR_FAULT_LOAD_ALL:-1}
		GUEST_BOOT_TIMEOUT=${KVMFR_BOOT_TIMEOUT:-43200}
	fi
	;;
*)
	GUEST_PLAN="suite hardening unplug edu"
	unplug_kinds="remove unbind"
	GUEST_MEM=1024
	GUEST_IOMMU=1
	GUEST_EDU=1
	# Debian's kernels zero every page allocation (INIT_ON_ALLOC_DEFAULT_ON):
	# off, kvmfr's own zeroing of static memory is what rmmod's zero-fill
	# test sees (the debug kernel has it off already)
	GUEST_CMDLINE="init_on_alloc=0"
	GUEST_IVSHMEM="0:8:04 1:32:05"
	GUEST_HOTPLUG=0
	GUEST_GFX=${KVMFR_EGL:-1}
	# about 65 s here; backstops as for the debug guests
	GUEST_BOOT_TIMEOUT=${KVMFR_BOOT_TIMEOUT:-7200}
	fuzz_seconds=10 unplug_cycles=100
	hardening_timeout=3600 test_timeout=600
	case $series in
	*-swiotlb)
		# "6.12-swiotlb": the bounce-buffer path of the DMA API. No
		# IOMMU, every DMA mapping bounced (swiotlb=force): only
		# kvmfr's dma_sync_* calls make an importer's DMA and the
		# CPU see each other's data (the SYNC tests with an importer
		# in tests/guest, tests/edu's edu_dma). The edu device
		# addresses 28 bits, so the bounce pool must lie below
		# 256 MiB: 256 MiB of RAM, of which the pool takes its default
		# 64 MiB. The suite only: tests/edu's edu_dma writes through
		# the device mapping and has edu read it by DMA with no SYNC in
		# between, which only coherent DMA makes work (here it reads
		# the stale bounce buffer); no unplug cycles or fuzzing.
		GUEST_PLAN="suite"
		GUEST_GFX=0
		GUEST_MEM=256
		GUEST_IOMMU=0
		GUEST_CMDLINE="init_on_alloc=0 swiotlb=force"
		;;
	esac
	;;
esac

# make bench (tests/bench/run, KVMFR_BENCH=1): the same kernel and machine,
# but the guest runs only kvmfr-bench (tests/guest/bench.c), with memory and
# devices for its 1 GiB figures: static devices of 64 MiB and 1 GiB, IVSHMEM
# BARs of 64 MiB and 1 GiB, 3 GiB of RAM (1 GiB of it the static device,
# 1 GiB for one baseline at a time; only touched memory costs host RAM).
# GUEST_STATIC_MB is the module's static_size_mb= (mkinitramfs.sh).
if [ "${KVMFR_BENCH:-0}" = 1 ]; then
	GUEST_PLAN="bench"
	GUEST_MEM=3072
	GUEST_IVSHMEM="0:64:04 1:1024:05"
	GUEST_STATIC_MB="64,1024"
	GUEST_HOTPLUG=0
	test_timeout=3600
fi

# The Debian series of the matrix (tests/lib/fetch-kernel.sh): a periodic
# tick, as on the debug guests, where tickless one-shot timers on a loaded
# host lost a vCPU's timer interrupt.  6.1/6.12 guests on a loaded host
# showed RCU "timer wakeup didn't happen" stalls, and sid's 7.2 once stopped
# for good right after bringing up its second CPU beside two debug guests
# (no output for 900 s), probably the same.  (no_timer_check, for every
# guest: boot-guest.sh.)
case $series in
debug*) ;;
*) GUEST_CMDLINE="${GUEST_CMDLINE:+$GUEST_CMDLINE }nohz=off highres=off" ;;
esac

# KVMFR_PCI as the guest sees it, from GUEST_IVSHMEM
GUEST_PCI= GUEST_HOTPLUG_PCI=
for _d in $GUEST_IVSHMEM; do
	IFS=: read -r _i _mib _where <<<"$_d"
	case $_where in
	rp0) _addr=0000:01:00.0 ;;
	*) _addr=0000:00:$_where.0 ;;
	esac
	GUEST_PCI="$GUEST_PCI${GUEST_PCI:+ }$_addr=$_mib"
	[ "$_where" != rp0 ] || GUEST_HOTPLUG_PCI=$_addr
done
[ -n "${GUEST_HOTPLUG_PCI:-}" ] || GUEST_HOTPLUG=0
unset _d _i _mib _where _addr

GUEST_ENV="KVMFR_PLAN=\"$GUEST_PLAN\"
KVMFR_FUZZ_SEED=${KVMFR_FUZZ_SEED:-1}
KVMFR_FUZZ_SECONDS=${KVMFR_FUZZ_SECONDS:-$fuzz_seconds}
KVMFR_UNPLUG_CYCLES=${KVMFR_UNPLUG_CYCLES:-$unplug_cycles}
KVMFR_UNPLUG_KINDS=\"${KVMFR_UNPLUG_KINDS:-$unplug_kinds}\"
KVMFR_HARDENING_TIMEOUT=${KVMFR_HARDENING_TIMEOUT:-$hardening_timeout}
KVMFR_TEST_TIMEOUT=${KVMFR_TEST_TIMEOUT:-$test_timeout}"
# (the fuzzer unbinds/binds PCI devices if the variable is set at all;
# KVMFR_FUZZ_UNBIND= turns that off)
if [ -n "${KVMFR_FUZZ_UNBIND-1}" ]; then
	GUEST_ENV="$GUEST_ENV
KVMFR_FUZZ_UNBIND=${KVMFR_FUZZ_UNBIND-1}"
fi
if [ -n "${KVMFR_FAULT_LOAD_ALL:-}" ]; then
	GUEST_ENV="$GUEST_ENV
KVMFR_FAULT_LOAD_ALL=$KVMFR_FAULT_LOAD_ALL"
fi
if [ "$GUEST_HOTPLUG" -gt 0 ]; then
	GUEST_ENV="$GUEST_ENV
KVMFR_HOTPLUG_PCI=$GUEST_HOTPLUG_PCI
KVMFR_HOTPLUG_CYCLES=$GUEST_HOTPLUG"
fi
unset fuzz_seconds unplug_cycles unplug_kinds hardening_timeout test_timeout

export GUEST_MEM GUEST_IOMMU GUEST_EDU GUEST_CMDLINE GUEST_IVSHMEM GUEST_PCI \
	GUEST_HOTPLUG GUEST_BOOT_TIMEOUT GUEST_ENV GUEST_TCG_THREAD GUEST_GFX \
	GUEST_STATIC_MB
