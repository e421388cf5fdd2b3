// SPDX-License-Identifier: GPL-2.0
/*
 * PCI removal cycles under load. Worker processes keep a device fd, a whole
 * device mapping, a dma-buf fd and its mapping alive on an IVSHMEM device,
 * touch them in bursts and drop their PTEs now and then so that they fault
 * again; worker 0 also keeps its dma-buf attached to tests/edu's importer
 * (when loaded) and maps it for DMA again and again. Meanwhile this process
 * removes and rescans the PCI function (and unbinds and binds the driver)
 * over and over, each cycle once every worker is back on the device. A
 * worker that finds its memory revoked must see SIGBUS on its mappings and
 * ENODEV on its fds (its importer: ENODEV on mapping again), then reopens
 * the device once it is back. After the cycles: the device works, its data
 * survived the last cycle, and no dma-buf is left.
 *
 *   KVMFR_UNPLUG_CYCLES=N   cycles of each kind (default 100)
 *   KVMFR_UNPLUG_SECONDS=N  time bound for each kind (default 120); fewer
 *                           cycles than asked for in that time fail
 *   KVMFR_UNPLUG_KINDS=...  "remove", "unbind" or both (default both)
 *
 * "kvmfr-unplug_cycles external" instead follows hot-unplugs made from
 * outside (QEMU device_del/device_add of the device at KVMFR_HOTPLUG_PCI):
 * it prints "# unplug_cycles: ready" and counts the device going away and
 * coming back, KVMFR_HOTPLUG_CYCLES times (default 50), printing
 * "# unplug_cycles: back N" each time it found the device again.
 */
#include "../guest/kvmfr_test.h"
#include "../edu/kvmfr_edu.h"

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
#define LIVE_WAIT_S	10	/* for all workers to be back on the device */
#define REFAULT_EVERY	4	/* bursts between MADV_DONTNEEDs */
#define REMAP_EVERY	8	/* bursts between importer unmap/map */

struct worker_stats {
	unsigned long touches, faults, revoked, reopened, wrong;
	unsigned long imports, importer_revoked;
};

/* Shared by the cycling process and its workers (MAP_SHARED anonymous). */
struct control {
	volatile bool stop;
	/* worker i's reopens so far: it has fd, mappings and import again */
	volatile unsigned long live[WORKERS];
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
 * One worker, on its own pages of the device: reports through its exit
 * status and a stats pipe. Worker 0 also keeps the dma-buf attached to an
 * importer, when there is one.
 */
static void worker(struct kvmfr_dev *d, int id, int out, struct control *ctl)
{
	/* Static: they live across siglongjmp (one worker per process). */
	static struct worker_stats st;
	static uint8_t *dev_map, *buf_map;
	static int fd = -1, buf = -1, edu = -1;
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

static int wait_node_ms(struct kvmfr_dev *d, bool present, int ms)
{
	int i;

	for (i = 0; i < ms; i++) {
		if (kt_resolve(d) == present)
			return 0;
		usleep(1000);
	}
	return -1;
}

static int wait_node(struct kvmfr_dev *d, bool present)
{
	return wait_node_ms(d, present, 2000);
}

/* One hot-unplug and re-plug made by someone else. */
static int cycle_external(struct kvmfr_dev *d)
{
	if (wait_node_ms(d, false, 60000))
		return -1;
	return wait_node_ms(d, true, 60000);
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
	double t0 = now();
	int i, back;

	for (;;) {
		for (i = back = 0; i < WORKERS; i++)
			back += ctl->live[i] != seen[i];
		if (back == WORKERS)
			break;
		if (now() - t0 > LIVE_WAIT_S)
			return -1;
		usleep(1000);
	}
	for (i = 0; i < WORKERS; i++)
		seen[i] = ctl->live[i];
	return 0;
}

static int run_cycles(struct kvmfr_dev *d, int (*cycle)(struct kvmfr_dev *),
		      const char *what, long cycles, double limit)
{
	bool external = cycle == cycle_external;
	double t0 = now();
	long done = 0;
	struct worker_stats st, sum = { 0 };
	unsigned long seen[WORKERS] = { 0 };
	struct control *ctl;
	pid_t pids[WORKERS];
	int pipes[WORKERS][2], i, status, bad = 0;
	long long base = kt_dmabufs(d);

	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED)
		return kt_fail("mmap: %s", strerror(errno));
	for (i = 0; i < WORKERS; i++) {
		if (pipe(pipes[i]))
			return kt_fail("pipe: %s", strerror(errno));
		pids[i] = fork();
		if (!pids[i])
			worker(d, i, pipes[i][1], ctl);
		close(pipes[i][1]);
	}

	/*
	 * Every cycle starts with all workers on the device: each one's fd,
	 * mappings and dma-buf (and worker 0's importer) are revoked by it.
	 */
	if (wait_live(ctl, seen)) {
		bad = 1;
		kt_diag("workers did not open %s within %d s", d->label,
			LIVE_WAIT_S);
	} else if (external) {
		printf("# unplug_cycles: ready\n");
	}
	while (!bad && done < cycles && now() - t0 < limit) {
		/* a few ms into the workers' bursts, varying from cycle to cycle */
		usleep(500 + (done * 2654435761u) % 3000);
		if (cycle(d)) {
			bad = 1;
			kt_diag("%s cycle %ld failed", what, done);
			break;
		}
		done++;
		if (wait_live(ctl, seen)) {
			bad = 1;
			kt_diag("%s cycle %ld: workers not back on the device within %d s",
				what, done, LIVE_WAIT_S);
			break;
		}
		/* the host's QMP driver paces itself on these */
		if (external)
			printf("# unplug_cycles: back %ld\n", done);
	}
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
	munmap(ctl, sizeof(*ctl));
	kt_diag("%s: %ld cycles in %.1f s (%.3f s/cycle); workers: %lu touches, %lu forced faults, %lu revocations seen, %lu reopens, %lu wrong answers; importer: %lu imports, %lu DMA maps refused after revocation",
		what, done, now() - t0, done ? (now() - t0) / done : 0.0,
		sum.touches, sum.faults, sum.revoked, sum.reopened, sum.wrong,
		sum.imports, sum.importer_revoked);
	if (bad || sum.wrong)
		return KT_FAIL;
	if (done < cycles)
		return kt_fail("%ld of %ld cycles within the %.0f s limit",
			       done, cycles, limit);
	/* each cycle revoked every worker's mappings */
	if (done < 1 || sum.revoked < (unsigned long)done * WORKERS)
		return kt_fail("%lu revocations seen in %ld cycles of %d workers",
			       sum.revoked, done, WORKERS);
	if (kt_dmabufs(d) != 0 && base >= 0)
		return kt_fail("%lld dma-bufs left on the new device",
			       kt_dmabufs(d));
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
	struct kvmfr_dev *d = NULL;
	int i;

	kt_init();
	kt_plan(1);
	for (i = 0; i < kt_ndev && addr && !d; i++)
		if (kt_devs[i].pci && !strcmp(kt_devs[i].pci_addr, addr))
			d = &kt_devs[i];
	if (!d || !d->found)
		kt_report(kt_fail("no kvmfr device at KVMFR_HOTPLUG_PCI=%s",
				  addr ? addr : "(unset)"),
			  "hot-unplug cycles");
	else
		kt_report(run_cycles(d, cycle_external,
				     "QEMU device_del/device_add",
				     env_long("KVMFR_HOTPLUG_CYCLES", 50), 1800),
			  "%s: QEMU hot-unplug/replug cycles with live mappings, fds and dma-bufs in other processes",
			  d->label);
	return kt_exit();
}

int main(int argc, char **argv)
{
	long cycles = env_long("KVMFR_UNPLUG_CYCLES", 100);
	double limit = env_long("KVMFR_UNPLUG_SECONDS", 120);
	const char *kinds = getenv("KVMFR_UNPLUG_KINDS");
	bool removes = !kinds || strstr(kinds, "remove");
	bool unbinds = !kinds || strstr(kinds, "unbind");
	struct kvmfr_dev *d = NULL;
	int i;

	if (argc > 1 && !strcmp(argv[1], "external"))
		return main_external();

	kt_init();
	kt_plan(2 * removes + unbinds);
	for (i = 0; i < kt_ndev && !d; i++)
		if (kt_devs[i].pci && kt_devs[i].found)
			d = &kt_devs[i];
	if (!d) {
		for (i = 0; i < 2 * removes + unbinds; i++)
			kt_report(kt_skip("no IVSHMEM device"),
				  "unplug cycles");
		return kt_exit();
	}
	/*
	 * One kind after the other: both at once, on two devices, took longer
	 * on the debug kernel under TCG (200 + 200 cycles: 92 s against 79 s).
	 */
	if (removes)
		kt_report(run_cycles(d, cycle_remove, "remove/rescan", cycles,
				     limit),
			  "%s: PCI remove/rescan cycles with live mappings, fds and dma-bufs in other processes",
			  d->label);
	if (unbinds)
		kt_report(run_cycles(d, cycle_unbind, "unbind/bind", cycles,
				     limit),
			  "%s: driver unbind/bind cycles with live mappings, fds and dma-bufs in other processes",
			  d->label);
	if (removes)
		kt_report(data_survives(d),
			  "%s: device memory unchanged across remove/rescan",
			  d->label);
	return kt_exit();
}
