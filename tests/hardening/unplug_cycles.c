// SPDX-License-Identifier: GPL-2.0
/*
 * PCI removal cycles under load. Worker processes keep a device fd, a whole
 * device mapping, a dma-buf fd and its mapping alive on an IVSHMEM device and
 * touch them continuously, while this process removes and rescans the PCI
 * function (and unbinds and binds the driver) over and over. A worker that
 * finds its memory revoked must see SIGBUS on its mappings and ENODEV on its
 * fds, then reopens the device once it is back. After the cycles: the device
 * works, its data survived the last cycle, and no dma-buf is left.
 *
 *   KVMFR_UNPLUG_CYCLES=N   cycles of each kind (default 100)
 *   KVMFR_UNPLUG_SECONDS=N  time bound for each kind (default 120)
 *
 * "kvmfr-unplug_cycles external" instead follows hot-unplugs made from
 * outside (QEMU device_del/device_add of the device at KVMFR_HOTPLUG_PCI):
 * it prints "# unplug_cycles: ready" and counts the device going away and
 * coming back, KVMFR_HOTPLUG_CYCLES times (default 50), printing
 * "# unplug_cycles: back N" each time it found the device again.
 */
#include "../guest/kvmfr_test.h"

#include <sys/wait.h>
#include <time.h>

#define WORKERS	3

struct worker_stats {
	unsigned long touches, revoked, reopened, wrong;
};

static sigjmp_buf w_env;

static void w_handler(int sig)
{
	siglongjmp(w_env, sig);
}

/*
 * One worker, on its own pages of the device: reports through its exit
 * status and a stats pipe.
 */
static void worker(struct kvmfr_dev *d, int id, int out, volatile bool *stop)
{
	/* Static: they live across siglongjmp (one worker per process). */
	static struct worker_stats st;
	static uint8_t *dev_map, *buf_map;
	static int fd = -1, buf = -1;
	size_t buf_len = 4 * kt_page, first = (1 + 4 * id) * kt_page;
	struct sigaction sa;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = w_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);

	while (!*stop) {
		if (fd < 0) {
			if (!kt_resolve(d)) {
				usleep(1000);
				continue;
			}
			fd = open(d->node, O_RDWR | O_CLOEXEC);
			if (fd < 0) {
				usleep(1000);
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
			st.reopened++;
		}

		sig = sigsetjmp(w_env, 1);
		if (!sig) {
			uint64_t v = st.touches * 0x9e3779b97f4a7c15ull;
			size_t at = (st.touches % (buf_len / 8)) * 8;

			*(volatile uint64_t *)(buf_map + at) = v;
			if (*(volatile uint64_t *)(dev_map + first + at) != v)
				st.wrong++;
			st.touches++;
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
	if (kt_write_file("/sys/bus/pci/rescan", "1"))
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

static int run_cycles(struct kvmfr_dev *d, int (*cycle)(struct kvmfr_dev *),
		      const char *what, long cycles, double limit)
{
	double t0 = now();
	long done = 0;
	struct worker_stats st, sum = { 0 };
	volatile bool *stop;
	pid_t pids[WORKERS];
	int pipes[WORKERS][2], i, status, bad = 0;
	long long base = kt_dmabufs(d);

	stop = mmap(NULL, kt_page, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (stop == MAP_FAILED)
		return kt_fail("mmap: %s", strerror(errno));
	*stop = false;
	for (i = 0; i < WORKERS; i++) {
		if (pipe(pipes[i]))
			return kt_fail("pipe: %s", strerror(errno));
		pids[i] = fork();
		if (!pids[i])
			worker(d, i, pipes[i][1], stop);
		close(pipes[i][1]);
	}

	if (cycle == cycle_external)
		printf("# unplug_cycles: ready\n");
	while (done < cycles && now() - t0 < limit) {
		usleep(2000);	/* let the workers map and touch */
		if (cycle(d)) {
			bad = 1;
			kt_diag("%s cycle %ld failed", what, done);
			break;
		}
		done++;
		/* the host's QMP driver paces itself on these */
		if (cycle == cycle_external)
			printf("# unplug_cycles: back %ld\n", done);
	}
	*stop = true;
	for (i = 0; i < WORKERS; i++) {
		if (read(pipes[i][0], &st, sizeof(st)) == sizeof(st)) {
			sum.touches += st.touches;
			sum.revoked += st.revoked;
			sum.reopened += st.reopened;
			sum.wrong += st.wrong;
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
	munmap((void *)stop, kt_page);
	kt_diag("%s: %ld cycles in %.1f s; workers: %lu touches, %lu revocations seen, %lu reopens, %lu wrong answers",
		what, done, now() - t0, sum.touches, sum.revoked, sum.reopened,
		sum.wrong);
	if (bad || sum.wrong)
		return KT_FAIL;
	if (done < 1 || !sum.revoked)
		return kt_fail("no cycle ran with a live mapping");
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
	struct kvmfr_dev *d = NULL;
	int i;

	if (argc > 1 && !strcmp(argv[1], "external"))
		return main_external();

	kt_init();
	kt_plan(3);
	for (i = 0; i < kt_ndev && !d; i++)
		if (kt_devs[i].pci && kt_devs[i].found)
			d = &kt_devs[i];
	if (!d) {
		for (i = 0; i < 3; i++)
			kt_report(kt_skip("no IVSHMEM device"),
				  "unplug cycles");
		return kt_exit();
	}
	kt_report(run_cycles(d, cycle_remove, "remove/rescan", cycles, limit),
		  "%s: PCI remove/rescan cycles with live mappings, fds and dma-bufs in other processes",
		  d->label);
	kt_report(run_cycles(d, cycle_unbind, "unbind/bind", cycles, limit),
		  "%s: driver unbind/bind cycles with live mappings, fds and dma-bufs in other processes",
		  d->label);
	kt_report(data_survives(d),
		  "%s: device memory unchanged across remove/rescan", d->label);
	return kt_exit();
}
