// SPDX-License-Identifier: GPL-2.0
/*
 * PCI removal cycles under load. Worker processes keep a device fd, a whole
 * device mapping, a dma-buf fd and its mapping alive on an IVSHMEM device,
 * touch them in bursts and drop their PTEs now and then so that they fault
 * again, and read them as other processes and devices would (/proc/self/mem,
 * process_vm_readv, an O_DIRECT write to a loop device: what was written, or
 * an error once revoked); worker 0
 * also keeps its dma-buf attached to tests/edu's importer (when loaded) and
 * maps it for DMA again and again. Meanwhile this process
 * removes and rescans the PCI function (and unbinds and binds the driver)
 * over and over, each cycle once every worker is back on the device. A
 * worker that finds its memory revoked must see SIGBUS on its mappings and
 * ENODEV on its fds (its importer: ENODEV on mapping again), then reopens
 * the device once it is back. After the cycles: the device works, its data
 * survived the last cycle, and no dma-buf is left.
 *
 *   KVMFR_UNPLUG_CYCLES=N   cycles of each kind (default 100); all must be
 *                           done, however long they take
 *   KVMFR_UNPLUG_KINDS=...  "remove", "unbind" or both (default both)
 *
 * No wall-time bound: the verdict does not depend on the speed of the
 * machine. The median of the first BASELINE cycles is this guest's own
 * rate; a cycle that takes STALL_FACTOR times that (and at least
 * STALL_FLOOR_S) is a hang, and so is a cycle whose sysfs write never
 * returns (a watchdog process reports it, asks the kernel for its blocked
 * tasks and kills the cycling process); the last cycles' median may not be
 * SLOWDOWN_FACTOR times the baseline (a cost that grows with every cycle,
 * e.g. a leak). Progress lines come every PROGRESS_CYCLES cycles or
 * PROGRESS_S seconds.
 *
 * "kvmfr-unplug_cycles external" instead follows hot-unplugs made from
 * outside (QEMU device_del/device_add of the device at KVMFR_HOTPLUG_PCI):
 * it prints "# unplug_cycles: ready" and counts the device going away and
 * coming back, KVMFR_HOTPLUG_CYCLES times (default 50), printing
 * "# unplug_cycles: back N" each time it found the device again.
 */
#include "../guest/kvmfr_test.h"
#include "../guest/loop_dev.h"
#include "../edu/kvmfr_edu.h"

#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#define WORKERS		3
/*
 * Workers touch in bursts and nap in between: they keep faulting and
 * touching through every cycle without starving the cycling process of the
 * guest's two vCPUs (spinning workers made each cycle 4x slower).
 */
#define BURST		64	/* touches per burst */
#define NAP_US		2000	/* between bursts */
#define POLL_US		5000	/* while the device is away */
#define REFAULT_EVERY	4	/* bursts between MADV_DONTNEEDs */
#define REMAP_EVERY	8	/* bursts between importer unmap/map */

/*
 * Hang detection, relative to this guest's own speed: measured here alone,
 * 0.25-0.5 s per cycle on the debug kernel, 2.2 s on a slower machine and
 * 6 s on that one under load; a floor of 120 s is 20 times the slowest.
 */
#define BASELINE	20	/* cycles whose median is the baseline */
#define STALL_FACTOR	50	/* a cycle this many baselines long hangs */
#define STALL_FLOOR_S	120	/* ... and never less than this */
#define WATCHDOG_GRACE_S 30	/* past that, stuck in the kernel: kill */
#define SLOWDOWN_FACTOR	10	/* the last cycles' median vs the baseline */
#define LATE_CYCLES	100	/* (at most) cycles of that median */
#define PROGRESS_CYCLES	100	/* a progress line every so many cycles */
#define PROGRESS_S	60	/* ... or seconds */

struct worker_stats {
	unsigned long touches, faults, revoked, reopened, wrong;
	unsigned long imports, importer_revoked;
	unsigned long outside, outside_refused;
};

/* Shared by the cycling process and its workers (MAP_SHARED anonymous). */
struct control {
	volatile bool stop;
	/* worker i's reopens so far: it has fd, mappings and import again */
	volatile unsigned long live[WORKERS];
	/* the watchdog's view: when the current step must end (0: idle) */
	volatile double deadline;
	volatile long cycle;
	/* seconds the guest has been running (the watchdog's clock) */
	volatile double awake;
};

static sigjmp_buf w_env;

static void w_handler(int sig)
{
	siglongjmp(w_env, sig);
}

/* Worker 0's dma-buf importer: QEMU's edu device, if tests/edu is loaded. */
static int importer_attach(int edu, int buf, struct worker_stats *st)
{
	struct kvmfr_edu_import imp = { .fd = buf };

	if (edu < 0)
		return 0;
	ioctl(edu, KVMFR_EDU_RELEASE);
	if (!ioctl(edu, KVMFR_EDU_IMPORT, &imp)) {
		st->imports++;
		return 0;
	}
	return errno == ENODEV ? 0 : -1;
}

/*
 * Unmap and map the importer's DMA mapping again: through the exporter while
 * the device may be going away. ENODEV once it is gone.
 */
static void importer_remap(int edu, struct worker_stats *st)
{
	struct kvmfr_edu_import imp;

	if (edu < 0)
		return;
	if (ioctl(edu, KVMFR_EDU_UNMAP) && errno != ENODEV && errno != EINVAL)
		st->wrong++;
	if (!ioctl(edu, KVMFR_EDU_MAP, &imp))
		return;
	if (errno == ENODEV)
		st->importer_revoked++;
	else if (errno != EINVAL)	/* EINVAL: nothing imported */
		st->wrong++;
}

/*
 * A read of @want came back as @x with result @r. Refused (EIO, EFAULT) is
 * right only once the device is revoked: the device file @fd says so too
 * (a device never comes back; a rescan makes a new one).
 */
static void outside_result(ssize_t r, uint64_t x, uint64_t want, int fd,
			   struct worker_stats *st)
{
	if (r == sizeof(x)) {
		st->outside++;
		if (x != want)
			st->wrong++;
	} else if (r < 0 && (errno == EIO || errno == EFAULT)) {
		st->outside_refused++;
		if (ioctl(fd, KVMFR_DMABUF_GETSIZE) >= 0)
			st->wrong++; /* refused while the device is there */
	} else {
		st->wrong++;
	}
}

/* The workers' block device: one page per worker (dio_start()). */
static struct kt_loop dio = { -1, -1, -1, "" };
static char dio_error[256];

/* Sets the loop device up, or says why the workers go without it. */
static void dio_start(void)
{
	char why[200];

	switch (kt_loop_setup(&dio, "/tmp/kvmfr-unplug-dio", WORKERS * kt_page,
			      why, sizeof(why))) {
	case 1:
		kt_diag("no O_DIRECT by the workers: %s", why);
		break;
	case -1:
		snprintf(dio_error, sizeof(dio_error), "loop device: %s", why);
		break;
	}
}

/*
 * Read a word of our own mapping as a debugger, another process or a block
 * device would: /proc/self/mem and process_vm_readv, the kernel faulting
 * the page in itself (its PTE was just dropped), and an O_DIRECT write of
 * the page to the loop device (the block layer pins it, the loop driver
 * reads it through the kernel's mapping), looked up in the backing file.
 * While the device is there they read what was written; once it is revoked
 * they fail (EIO, EFAULT), racing the removal, and never read anything else.
 */
static void outside_reads(int memfd, int fd, int id, uint8_t *addr,
			  uint64_t want, struct worker_stats *st)
{
	uint8_t *page = (uint8_t *)((uintptr_t)addr & ~(kt_page - 1));
	struct iovec local, remote = { addr, sizeof(want) };
	off_t slot = (off_t)id * kt_page;
	uint64_t x = ~want;
	ssize_t r;

	madvise(page, kt_page, MADV_DONTNEED);
	r = pread(memfd, &x, sizeof(x), (off_t)(uintptr_t)addr);
	outside_result(r, x, want, fd, st);
	if (dio.dio >= 0) {
		x = ~want;
		madvise(page, kt_page, MADV_DONTNEED);
		r = pwrite(dio.dio, page, kt_page, slot);
		if (r == (ssize_t)kt_page)
			r = pread(dio.back, &x, sizeof(x), slot + (addr - page));
		else if (r >= 0)
			r = 0;	/* a short write: a wrong answer */
		outside_result(r, x, want, fd, st);
	}
	x = ~want;
	local = (struct iovec){ &x, sizeof(x) };
	r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	/* a kernel without CONFIG_CROSS_MEMORY_ATTACH has /proc/self/mem only */
	if (r < 0 && errno == ENOSYS)
		return;
	outside_result(r, x, want, fd, st);
}

/*
 * One worker, on its own pages of the device: reports through its exit
 * status and a stats pipe. Worker 0 also keeps the dma-buf attached to an
 * importer, when there is one.
 */
static void worker(struct kvmfr_dev *d, int id, int out, struct control *ctl)
{
	/* Static: they live across siglongjmp (one worker per process). */
	static struct worker_stats st;
	static uint8_t *dev_map, *buf_map;
	static int fd = -1, buf = -1, edu = -1, memfd = -1;
	static unsigned long bursts;
	size_t buf_len = 4 * kt_page, first = (1 + 4 * id) * kt_page;
	struct sigaction sa;
	int sig, i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = w_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	if (id == 0)
		edu = open("/dev/kvmfr_edu", O_RDWR | O_CLOEXEC);
	memfd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);

	while (!ctl->stop) {
		if (fd < 0) {
			if (!kt_resolve(d)) {
				usleep(POLL_US);
				continue;
			}
			fd = open(d->node, O_RDWR | O_CLOEXEC);
			if (fd < 0) {
				usleep(POLL_US);
				continue;
			}
			dev_map = mmap(NULL, d->size, PROT_READ | PROT_WRITE,
				       MAP_SHARED, fd, 0);
			buf = kt_create(fd, 0, first, buf_len);
			buf_map = buf < 0 ? MAP_FAILED :
				  mmap(NULL, buf_len, PROT_READ | PROT_WRITE,
				       MAP_SHARED, buf, 0);
			if (dev_map == MAP_FAILED || buf_map == MAP_FAILED) {
				/* Removed again before we got going: ENODEV. */
				if (errno != ENODEV)
					st.wrong++;
				goto drop;
			}
			if (importer_attach(edu, buf, &st))
				st.wrong++;
			st.reopened++;
			ctl->live[id]++;
		}

		sig = sigsetjmp(w_env, 1);
		if (!sig) {
			size_t at = (st.touches % (buf_len / 8)) * 8;

			/* Drop our PTEs now and then: the next touch faults. */
			if (++bursts % REFAULT_EVERY == 0) {
				madvise(dev_map + first, buf_len, MADV_DONTNEED);
				madvise(buf_map, buf_len, MADV_DONTNEED);
				st.faults++;
			}
			if (bursts % REMAP_EVERY == 0)
				importer_remap(edu, &st);
			for (i = 0; i < BURST; i++, at = (at + 8) % buf_len) {
				uint64_t v = st.touches * 0x9e3779b97f4a7c15ull;

				*(volatile uint64_t *)(buf_map + at) = v;
				if (*(volatile uint64_t *)(dev_map + first + at) != v)
					st.wrong++;
				st.touches++;
			}
			if (bursts % REFAULT_EVERY == 2 && memfd >= 0) {
				at = (at + buf_len - 8) % buf_len;
				outside_reads(memfd, fd, id, buf_map + at,
					      (st.touches - 1) * 0x9e3779b97f4a7c15ull,
					      &st);
			}
			usleep(NAP_US);
			continue;
		}
		/* Revoked: the fd must say so too. */
		st.revoked++;
		if (ioctl(fd, KVMFR_DMABUF_GETSIZE) != -1 || errno != ENODEV)
			st.wrong++;
drop:
		if (buf_map && buf_map != MAP_FAILED)
			munmap(buf_map, buf_len);
		if (dev_map && dev_map != MAP_FAILED)
			munmap(dev_map, d->size);
		if (buf >= 0)
			close(buf);
		close(fd);
		fd = buf = -1;
		dev_map = buf_map = NULL;
	}
	if (edu >= 0)
		close(edu);
	if (write(out, &st, sizeof(st)) != sizeof(st))
		_exit(2);
	_exit(0);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/*
 * The clock of the deadlines: seconds during which the guest itself ran,
 * kept by the watchdog process in ticks of AWAKE_TICK_US, each counting at
 * most AWAKE_MAX_S. A host that does not run the guest's vCPUs for a while
 * (measured: 87 s on a host at load 20) stops this clock; CLOCK_MONOTONIC
 * jumps. Without a watchdog (data_survives()) it is CLOCK_MONOTONIC.
 */
#define AWAKE_TICK_US	200000
#define AWAKE_MAX_S	1.0

static volatile double *awake_clock;

static double gnow(void)
{
	return awake_clock ? *awake_clock : now();
}

/* When the current cycle must be over (gnow() seconds). */
static double cycle_deadline;

static int wait_node(struct kvmfr_dev *d, bool present)
{
	while (kt_resolve(d) != present) {
		if (gnow() > cycle_deadline)
			return -1;
		usleep(1000);
	}
	return 0;
}

/* One hot-unplug and re-plug made by someone else. */
static int cycle_external(struct kvmfr_dev *d)
{
	if (wait_node(d, false))
		return -1;
	return wait_node(d, true);
}

static int cycle_remove(struct kvmfr_dev *d)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove",
		 d->pci_addr);
	if (kt_write_file(path, "1") || wait_node(d, false))
		return -1;
	/* its bus only ("0000:00" of "0000:00:04.0") */
	snprintf(path, sizeof(path), "/sys/class/pci_bus/%.7s/rescan",
		 d->pci_addr);
	if (kt_write_file(path, "1"))
		return -1;
	return wait_node(d, true);
}

static int cycle_unbind(struct kvmfr_dev *d)
{
	if (kt_write_file("/sys/bus/pci/drivers/kvmfr/unbind", d->pci_addr) ||
	    wait_node(d, false))
		return -1;
	if (kt_write_file("/sys/bus/pci/drivers/kvmfr/bind", d->pci_addr))
		return -1;
	return wait_node(d, true);
}

/*
 * Wait until every worker has reopened the device since @seen (its fd,
 * mappings and import are live again), then note the new counts.
 */
static int wait_live(struct control *ctl, unsigned long *seen)
{
	int i, back;

	for (;;) {
		for (i = back = 0; i < WORKERS; i++)
			back += ctl->live[i] != seen[i];
		if (back == WORKERS)
			break;
		if (gnow() > cycle_deadline)
			return -1;
		usleep(1000);
	}
	for (i = 0; i < WORKERS; i++)
		seen[i] = ctl->live[i];
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const double *v, long n)
{
	double *c = malloc(n * sizeof(*c)), m;

	if (!c)
		return v[n / 2];
	memcpy(c, v, n * sizeof(*c));
	qsort(c, n, sizeof(*c), cmp_double);
	m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
	free(c);
	return m;
}

/*
 * A process of its own: a cycle stuck in the kernel (a sysfs write that
 * never returns) cannot check its own deadline. Past it, report the hang,
 * have the kernel log its blocked tasks and kill the cycling process and
 * the workers (the TAP stays incomplete: the harness counts a failure).
 */
static pid_t start_watchdog(struct control *ctl, const char *what,
			    const pid_t *workers)
{
	pid_t cycler = getpid(), pid;
	double late;
	int i;

	fflush(stdout);
	pid = fork();
	if (pid)
		return pid;
	for (double t = now(), dt;; t += dt) {
		double dl = ctl->deadline;

		if (ctl->stop)
			_exit(0);
		late = dl ? ctl->awake - dl : 0;
		if (late > WATCHDOG_GRACE_S)
			break;
		usleep(AWAKE_TICK_US);
		dt = now() - t;
		ctl->awake += dt < AWAKE_MAX_S ? dt : AWAKE_MAX_S;
	}
	printf("# unplug_cycles: watchdog: %s cycle %ld is %.0f s past its deadline: hung in the kernel; blocked tasks follow in the kernel log\n",
	       what, ctl->cycle, late);
	fflush(stdout);
	kt_write_file("/proc/sysrq-trigger", "w");
	kill(cycler, SIGKILL);
	for (i = 0; i < WORKERS; i++)
		kill(workers[i], SIGKILL);
	_exit(1);
}

/* The cycle times of the last run_cycles(), for its slow-down test. */
static struct {
	long n;
	double base, late;
} rate;

static int run_cycles(struct kvmfr_dev *d, int (*cycle)(struct kvmfr_dev *),
		      const char *what, long cycles)
{
	bool external = cycle == cycle_external;
	double t0 = now(), t_progress = t0, base = 0, allowed, c0, w0, *secs;
	long done = 0, late;
	struct worker_stats st, sum = { 0 };
	unsigned long seen[WORKERS] = { 0 };
	struct control *ctl;
	pid_t pids[WORKERS], watchdog;
	int pipes[WORKERS][2], i, status, bad = 0;
	long long dmabufs_before = kt_dmabufs(d);

	if (dio_error[0])
		return kt_fail("%s", dio_error);
	memset(&rate, 0, sizeof(rate));
	secs = calloc(cycles > 0 ? cycles : 1, sizeof(*secs));
	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!secs || ctl == MAP_FAILED)
		return kt_fail("out of memory");
	for (i = 0; i < WORKERS; i++) {
		if (pipe(pipes[i]))
			return kt_fail("pipe: %s", strerror(errno));
		fflush(stdout);
		pids[i] = fork();
		if (!pids[i])
			worker(d, i, pipes[i][1], ctl);
		close(pipes[i][1]);
	}
	ctl->awake = now();
	awake_clock = &ctl->awake;
	watchdog = start_watchdog(ctl, what, pids);

	/*
	 * Every cycle starts with all workers on the device: each one's fd,
	 * mappings and dma-buf (and worker 0's importer) are revoked by it.
	 */
	cycle_deadline = ctl->deadline = gnow() + STALL_FLOOR_S;
	if (wait_live(ctl, seen)) {
		bad = 1;
		kt_diag("workers did not open %s within %d s", d->label,
			STALL_FLOOR_S);
	} else if (external) {
		printf("# unplug_cycles: ready\n");
	}
	while (!bad && done < cycles) {
		allowed = base ? STALL_FACTOR * base : 0;
		if (allowed < STALL_FLOOR_S)
			allowed = STALL_FLOOR_S;
		c0 = gnow();
		w0 = now();
		ctl->cycle = done;
		cycle_deadline = ctl->deadline = c0 + allowed;
		/* a few ms into the workers' bursts, varying from cycle to cycle */
		usleep(500 + (done * 2654435761u) % 3000);
		if (cycle(d)) {
			bad = 1;
			kt_diag("%s cycle %ld failed or hung: device not gone and back within %.0f s (baseline %.3f s/cycle)",
				what, done, allowed, base);
			break;
		}
		if (wait_live(ctl, seen)) {
			bad = 1;
			kt_diag("%s cycle %ld: workers not back on the device within %.0f s (baseline %.3f s/cycle)",
				what, done, allowed, base);
			break;
		}
		ctl->deadline = 0;
		/* wall time: the guest clock ticks in AWAKE_TICK_US */
		secs[done++] = now() - w0;
		if (done == BASELINE) {
			base = median(secs, BASELINE);
			kt_diag("%s: baseline %.3f s/cycle (median of the first %d); a cycle over %.0f s is a hang",
				what, base, BASELINE,
				STALL_FACTOR * base > STALL_FLOOR_S ?
				STALL_FACTOR * base : STALL_FLOOR_S);
		}
		/* the host's QMP driver paces itself on these */
		if (external)
			printf("# unplug_cycles: back %ld\n", done);
		if (done % PROGRESS_CYCLES == 0 || now() - t_progress > PROGRESS_S) {
			t_progress = now();
			kt_diag("%s: %ld of %ld cycles in %.0f s", what, done,
				cycles, t_progress - t0);
		}
	}
	ctl->deadline = 0;
	ctl->stop = true;
	for (i = 0; i < WORKERS; i++) {
		if (read(pipes[i][0], &st, sizeof(st)) == sizeof(st)) {
			sum.touches += st.touches;
			sum.faults += st.faults;
			sum.revoked += st.revoked;
			sum.reopened += st.reopened;
			sum.wrong += st.wrong;
			sum.imports += st.imports;
			sum.importer_revoked += st.importer_revoked;
			sum.outside += st.outside;
			sum.outside_refused += st.outside_refused;
		} else {
			bad = 1;
		}
		close(pipes[i][0]);
		if (waitpid(pids[i], &status, 0) != pids[i] ||
		    !WIFEXITED(status) || WEXITSTATUS(status)) {
			kt_diag("worker %d ended with status %#x", i, status);
			bad = 1;
		}
	}
	waitpid(watchdog, NULL, 0);
	awake_clock = NULL;
	munmap(ctl, sizeof(*ctl));

	/* the baseline's rate against the last cycles' */
	late = done - BASELINE < LATE_CYCLES ? done - BASELINE : LATE_CYCLES;
	rate.n = done;
	rate.base = base;
	rate.late = late > 0 ? median(secs + done - late, late) : 0;
	kt_diag("%s: %ld cycles in %.1f s (%.3f s/cycle; median %.3f of the first %d, %.3f of the last %ld); workers: %lu touches, %lu forced faults, %lu revocations seen, %lu reopens, %lu wrong answers; /proc/self/mem, process_vm_readv and O_DIRECT: %lu reads, %lu refused after revocation; importer: %lu imports, %lu DMA maps refused after revocation",
		what, done, now() - t0, done ? (now() - t0) / done : 0.0,
		rate.base, BASELINE, rate.late, late,
		sum.touches, sum.faults, sum.revoked, sum.reopened, sum.wrong,
		sum.outside, sum.outside_refused,
		sum.imports, sum.importer_revoked);
	free(secs);
	if (bad || sum.wrong)
		return KT_FAIL;
	if (done < cycles)
		return kt_fail("%ld of %ld cycles", done, cycles);
	/* each cycle revoked every worker's mappings */
	if (done < 1 || sum.revoked < (unsigned long)done * WORKERS)
		return kt_fail("%lu revocations seen in %ld cycles of %d workers",
			       sum.revoked, done, WORKERS);
	if (kt_dmabufs(d) != 0 && dmabufs_before >= 0)
		return kt_fail("%lld dma-bufs left on the new device",
			       kt_dmabufs(d));
	return KT_PASS;
}

/*
 * The last cycles are not much slower than the first ones of the same run:
 * a per-cycle cost that grows (something left behind by every cycle) shows
 * here, the speed of the machine does not.
 */
static int no_slowdown(void)
{
	if (rate.n < 2 * BASELINE || !rate.base)
		return kt_skip("fewer than %d cycles done", 2 * BASELINE);
	if (rate.late > SLOWDOWN_FACTOR * rate.base)
		return kt_fail("last cycles' median %.3f s is %.1f times the first %d's (%.3f s)",
			       rate.late, rate.late / rate.base, BASELINE,
			       rate.base);
	return KT_PASS;
}

static int data_survives(struct kvmfr_dev *d)
{
	uint64_t *map, v = 0x5ca1ab1e0000ull + getpid();
	int fd, ret = KT_PASS;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	map = mmap(NULL, kt_page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		close(fd);
		return kt_fail("mmap: %s", strerror(errno));
	}
	map[1] = v;
	munmap(map, kt_page);
	close(fd);
	cycle_deadline = now() + STALL_FLOOR_S;
	if (cycle_remove(d))
		return kt_fail("remove/rescan failed");
	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	map = mmap(NULL, kt_page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		ret = kt_fail("mmap after rescan: %s", strerror(errno));
	else if (map[1] != v)
		ret = kt_fail("word after rescan %#llx, want %#llx",
			      (unsigned long long)map[1],
			      (unsigned long long)v);
	if (map != MAP_FAILED)
		munmap(map, kt_page);
	close(fd);
	return ret;
}

static long env_long(const char *name, long def)
{
	const char *s = getenv(name);

	return s ? atol(s) : def;
}

static int main_external(void)
{
	const char *addr = getenv("KVMFR_HOTPLUG_PCI");
	const char *what = "QEMU device_del/device_add";
	struct kvmfr_dev *d = NULL;
	int i;

	kt_init();
	kt_plan(2);
	dio_start();
	for (i = 0; i < kt_ndev && addr && !d; i++)
		if (kt_devs[i].pci && !strcmp(kt_devs[i].pci_addr, addr))
			d = &kt_devs[i];
	if (!d || !d->found) {
		kt_report(kt_fail("no kvmfr device at KVMFR_HOTPLUG_PCI=%s",
				  addr ? addr : "(unset)"),
			  "hot-unplug cycles");
		kt_report(kt_skip("no device"), "hot-unplug cycles do not slow down");
		return kt_exit();
	}
	kt_report(run_cycles(d, cycle_external, what,
			     env_long("KVMFR_HOTPLUG_CYCLES", 50)),
		  "%s: QEMU hot-unplug/replug cycles with live mappings, fds and dma-bufs in other processes",
		  d->label);
	kt_report(no_slowdown(),
		  "%s: the last %s cycles' median time is within %dx the first %d's",
		  d->label, what, SLOWDOWN_FACTOR, BASELINE);
	return kt_exit();
}

int main(int argc, char **argv)
{
	long cycles = env_long("KVMFR_UNPLUG_CYCLES", 100);
	const char *kinds = getenv("KVMFR_UNPLUG_KINDS");
	bool removes = !kinds || strstr(kinds, "remove");
	bool unbinds = !kinds || strstr(kinds, "unbind");
	int i, n = 3 * removes + 2 * unbinds;
	struct kvmfr_dev *d = NULL;

	if (argc > 1 && !strcmp(argv[1], "external"))
		return main_external();

	kt_init();
	kt_plan(n);
	dio_start();
	for (i = 0; i < kt_ndev && !d; i++)
		if (kt_devs[i].pci && kt_devs[i].found)
			d = &kt_devs[i];
	if (!d) {
		for (i = 0; i < n; i++)
			kt_report(kt_skip("no IVSHMEM device"),
				  "unplug cycles");
		return kt_exit();
	}
	/*
	 * One kind after the other: both at once, on two devices, took longer
	 * on the debug kernel under TCG (200 + 200 cycles: 92 s against 79 s).
	 */
	if (removes) {
		kt_report(run_cycles(d, cycle_remove, "remove/rescan", cycles),
			  "%s: PCI remove/rescan cycles with live mappings, fds and dma-bufs in other processes",
			  d->label);
		kt_report(no_slowdown(),
			  "%s: the last remove/rescan cycles' median time is within %dx the first %d's",
			  d->label, SLOWDOWN_FACTOR, BASELINE);
	}
	if (unbinds) {
		kt_report(run_cycles(d, cycle_unbind, "unbind/bind", cycles),
			  "%s: driver unbind/bind cycles with live mappings, fds and dma-bufs in other processes",
			  d->label);
		kt_report(no_slowdown(),
			  "%s: the last unbind/bind cycles' median time is within %dx the first %d's",
			  d->label, SLOWDOWN_FACTOR, BASELINE);
	}
	if (removes)
		kt_report(data_survives(d),
			  "%s: device memory unchanged across remove/rescan",
			  d->label);
	kt_loop_teardown(&dio);
	return kt_exit();
}
