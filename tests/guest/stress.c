// SPDX-License-Identifier: GPL-2.0
/*
 * Bounded multi-process stress: WORKERS processes for KVMFR_STRESS_SECONDS
 * (default 8) do random opens, closes, CREATEs, mmaps of devices and
 * dma-bufs, munmaps, SYNCs, forks and touches on every device. Each worker
 * owns a quarter of every device and remembers what it wrote there, so every
 * read through any path is checked. At the end every dmabufs attribute and
 * the module reference count must be back where they started.
 */
#include "kvmfr_test.h"

#define WORKERS		4
#define MAX_BUFS	8
#define MAX_MAPS	8

struct sbuf {
	int fd, dev;
	uint64_t off, len;
};

struct smap {
	uint8_t *p;
	int dev;
	uint64_t off, len;	/* device range */
	bool dmabuf;		/* a dma-buf mapping, not a device one */
};

struct worker {
	int id;
	uint64_t rng;
	int fds[KT_MAX_DEVS];
	struct sbuf bufs[MAX_BUFS];
	struct smap maps[MAX_MAPS];
	uint64_t *shadow[KT_MAX_DEVS];	/* tag per page of the slice, 0 = unknown */
	uint64_t slice_off[KT_MAX_DEVS], slice_pages[KT_MAX_DEVS];
	unsigned long ops, touches, checks, creates, maps_done, forks, errors;
};

static uint64_t rnd(struct worker *w)
{
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_below(struct worker *w, uint64_t n)
{
	return n ? rnd(w) % n : 0;
}

/* The word of a page that carries its tag: varies with the page. */
static volatile uint64_t *tag_word(uint8_t *page_addr, uint64_t dev_page)
{
	return (volatile uint64_t *)page_addr + (dev_page * 13) % (kt_page / 8);
}

static void error(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	printf("# worker %d: ", w->id);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	w->errors++;
}

static void op_open(struct worker *w, int dev)
{
	if (w->fds[dev] >= 0)
		return;
	w->fds[dev] = open(kt_devs[dev].node, O_RDWR | O_CLOEXEC);
	if (w->fds[dev] < 0)
		error(w, "open %s: %s", kt_devs[dev].node, kt_errname(errno));
}

static void op_close(struct worker *w, int dev)
{
	if (w->fds[dev] >= 0 && close(w->fds[dev]))
		error(w, "close: %s", kt_errname(errno));
	w->fds[dev] = -1;
}

/* A random page range of the worker's slice of dev, at most max pages. */
static void pick_range(struct worker *w, int dev, uint64_t max, uint64_t *off,
		       uint64_t *len)
{
	uint64_t first = rnd_below(w, w->slice_pages[dev]);
	uint64_t n = 1 + rnd_below(w, max);

	if (first + n > w->slice_pages[dev])
		n = w->slice_pages[dev] - first;
	*off = w->slice_off[dev] + first * kt_page;
	*len = n * kt_page;
}

static void op_create(struct worker *w, int dev)
{
	struct sbuf *b = NULL;
	int i;

	if (w->fds[dev] < 0)
		return;
	for (i = 0; i < MAX_BUFS; i++)
		if (w->bufs[i].fd < 0)
			b = &w->bufs[i];
	if (!b)
		return;
	pick_range(w, dev, 16, &b->off, &b->len);
	b->fd = kt_create(w->fds[dev], rnd(w) & 1, b->off, b->len);
	if (b->fd < 0)
		error(w, "CREATE(0x%" PRIx64 ", 0x%" PRIx64 "): %s", b->off,
		      b->len, kt_errname(errno));
	b->dev = dev;
	w->creates++;
}

/* A dma-buf of the whole device, closed at once: races with the others. */
static void op_create_whole(struct worker *w, int dev)
{
	int db;

	if (w->fds[dev] < 0)
		return;
	db = kt_create(w->fds[dev], KVMFR_DMABUF_FLAG_CLOEXEC, 0,
		       kt_devs[dev].size);
	if (db < 0)
		error(w, "whole-device CREATE: %s", kt_errname(errno));
	else
		close(db);
	w->creates++;
}

static void op_close_buf(struct worker *w)
{
	struct sbuf *b = &w->bufs[rnd_below(w, MAX_BUFS)];

	if (b->fd >= 0 && close(b->fd))
		error(w, "close of a dma-buf: %s", kt_errname(errno));
	b->fd = -1;
}

static struct smap *free_map(struct worker *w)
{
	int i;

	for (i = 0; i < MAX_MAPS; i++)
		if (!w->maps[i].p)
			return &w->maps[i];
	return NULL;
}

static void op_map_dev(struct worker *w, int dev)
{
	struct smap *m = free_map(w);
	void *p;

	if (!m || w->fds[dev] < 0)
		return;
	pick_range(w, dev, 32, &m->off, &m->len);
	p = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, w->fds[dev],
		 m->off);
	if (p == MAP_FAILED) {
		error(w, "device mmap: %s", kt_errname(errno));
		return;
	}
	m->p = p;
	m->dev = dev;
	m->dmabuf = false;
	w->maps_done++;
}

static void op_map_buf(struct worker *w)
{
	struct sbuf *b = &w->bufs[rnd_below(w, MAX_BUFS)];
	struct smap *m = free_map(w);
	uint64_t pg;
	void *p;

	if (!m || b->fd < 0)
		return;
	pg = rnd_below(w, b->len / kt_page);
	m->len = b->len - pg * kt_page;
	m->off = b->off + pg * kt_page;
	p = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd,
		 pg * kt_page);
	if (p == MAP_FAILED) {
		error(w, "dma-buf mmap: %s", kt_errname(errno));
		return;
	}
	m->p = p;
	m->dev = b->dev;
	m->dmabuf = true;
	w->maps_done++;
}

static void op_unmap(struct worker *w)
{
	struct smap *m = &w->maps[rnd_below(w, MAX_MAPS)];

	if (m->p && munmap(m->p, m->len))
		error(w, "munmap: %s", kt_errname(errno));
	m->p = NULL;
}

/* Writes a fresh tag into a random page of a random mapping. */
static void op_touch(struct worker *w)
{
	struct smap *m = &w->maps[rnd_below(w, MAX_MAPS)];
	uint64_t pg, dev_page, tag;

	if (!m->p)
		return;
	pg = rnd_below(w, m->len / kt_page);
	dev_page = m->off / kt_page + pg;
	tag = rnd(w) | 1;
	*tag_word(m->p + pg * kt_page, dev_page) = tag;
	w->shadow[m->dev][dev_page - w->slice_off[m->dev] / kt_page] = tag;
	w->touches++;
}

/* After a mismatch: what every path shows for that page. */
static void diagnose(struct worker *w, int dev, uint64_t dev_page)
{
	volatile uint64_t *fresh;
	int i, fd;

	for (i = 0; i < MAX_MAPS; i++) {
		struct smap *m = &w->maps[i];

		if (!m->p || m->dev != dev || dev_page < m->off / kt_page ||
		    dev_page >= (m->off + m->len) / kt_page)
			continue;
		printf("#   map %d (%s at 0x%" PRIx64 "+0x%" PRIx64 ", %p) reads 0x%" PRIx64 "\n",
		       i, m->dmabuf ? "dma-buf" : "device", m->off, m->len,
		       (void *)m->p, *tag_word(m->p + (dev_page - m->off / kt_page) * kt_page,
					      dev_page));
	}
	fd = open(kt_devs[dev].node, O_RDWR | O_CLOEXEC);
	fresh = fd < 0 ? MAP_FAILED : mmap(NULL, kt_page, PROT_READ, MAP_SHARED,
					    fd, dev_page * kt_page);
	if (fresh != MAP_FAILED) {
		printf("#   a fresh mapping reads 0x%" PRIx64 "\n",
		       *tag_word((uint8_t *)fresh, dev_page));
		munmap((void *)fresh, kt_page);
	}
	if (fd >= 0)
		close(fd);
}

/* Reads every page of a random mapping whose tag is known. */
static void check_map(struct worker *w, struct smap *m)
{
	uint64_t pg, dev_page, want, got;

	for (pg = 0; pg < m->len / kt_page; pg++) {
		dev_page = m->off / kt_page + pg;
		want = w->shadow[m->dev][dev_page - w->slice_off[m->dev] / kt_page];
		if (!want)
			continue;
		got = *tag_word(m->p + pg * kt_page, dev_page);
		if (got != want) {
			error(w, "%s page %" PRIu64 ": read 0x%" PRIx64
			      " through a %s mapping, wrote 0x%" PRIx64,
			      kt_devs[m->dev].name, dev_page, got,
			      m->dmabuf ? "dma-buf" : "device", want);
			diagnose(w, m->dev, dev_page);
		}
		w->checks++;
	}
}

static void op_check(struct worker *w)
{
	struct smap *m = &w->maps[rnd_below(w, MAX_MAPS)];

	if (m->p)
		check_map(w, m);
}

/*
 * A child checks every inherited mapping, then exits (its copies of the
 * mappings go away with it). The worker waits for it: it must not write
 * behind the child's snapshot of what was written.
 */
static void op_fork(struct worker *w)
{
	int i, status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		unsigned long before = w->errors;

		for (i = 0; i < MAX_MAPS; i++)
			if (w->maps[i].p)
				check_map(w, &w->maps[i]);
		_exit(w->errors != before);
	}
	if (pid < 0) {
		error(w, "fork: %s", kt_errname(errno));
		return;
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		error(w, "forked child failed (status 0x%x)", status);
	w->forks++;
}

static void op_sync(struct worker *w)
{
	struct sbuf *b = &w->bufs[rnd_below(w, MAX_BUFS)];
	struct dma_buf_sync s = { DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW };

	if (b->fd < 0)
		return;
	if (ioctl(b->fd, DMA_BUF_IOCTL_SYNC, &s))
		error(w, "SYNC START: %s", kt_errname(errno));
	s.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
	if (ioctl(b->fd, DMA_BUF_IOCTL_SYNC, &s))
		error(w, "SYNC END: %s", kt_errname(errno));
}

static void op_getsize(struct worker *w, int dev)
{
	long long n;

	if (w->fds[dev] < 0)
		return;
	n = kt_getsize(w->fds[dev]);
	if (n != (long long)kt_devs[dev].size)
		error(w, "GETSIZE gave %lld", n);
	if (kt_dmabufs(&kt_devs[dev]) < 0)
		error(w, "dmabufs unreadable");
}

static int worker_main(int id, uint64_t deadline)
{
	struct worker *w = calloc(1, sizeof(*w));
	int i, dev;

	if (!w)
		return 1;
	w->id = id;
	w->rng = kt_seed() | 1;
	for (i = 0; i < kt_ndev; i++) {
		uint64_t pages = kt_devs[i].size / kt_page / WORKERS;

		w->fds[i] = -1;
		w->slice_off[i] = id * pages * kt_page;
		w->slice_pages[i] = pages;
		w->shadow[i] = calloc(pages, sizeof(uint64_t));
		if (!w->shadow[i])
			return 1;
	}
	for (i = 0; i < MAX_BUFS; i++)
		w->bufs[i].fd = -1;

	while (kt_now_ms() < deadline) {
		dev = rnd_below(w, kt_ndev);
		switch (rnd_below(w, 20)) {
		case 0: case 1: op_open(w, dev); break;
		case 2: op_close(w, dev); break;
		case 3: case 4: op_create(w, dev); break;
		case 5: op_create_whole(w, dev); break;
		case 6: case 7: op_close_buf(w); break;
		case 8: case 9: op_map_dev(w, dev); break;
		case 10: case 11: op_map_buf(w); break;
		case 12: op_unmap(w); break;
		case 13: case 14: case 15: op_touch(w); break;
		case 16: op_check(w); break;
		case 17: rnd_below(w, 4) ? op_check(w) : op_fork(w); break;
		case 18: op_sync(w); break;
		default: op_getsize(w, dev); break;
		}
		w->ops++;
	}
	for (i = 0; i < MAX_MAPS; i++)
		if (w->maps[i].p)
			check_map(w, &w->maps[i]);
	for (i = 0; i < MAX_MAPS; i++)
		if (w->maps[i].p)
			munmap(w->maps[i].p, w->maps[i].len);
	for (i = 0; i < MAX_BUFS; i++)
		if (w->bufs[i].fd >= 0)
			close(w->bufs[i].fd);
	for (i = 0; i < kt_ndev; i++)
		op_close(w, i);
	printf("# worker %d: %lu ops, %lu creates, %lu mmaps, %lu touches, %lu checks, %lu forks, %lu errors\n",
	       id, w->ops, w->creates, w->maps_done, w->touches, w->checks,
	       w->forks, w->errors);
	if (!w->touches || !w->checks || !w->creates)
		printf("# worker %d: too few operations to mean anything\n", id);
	return w->errors || !w->touches || !w->checks || !w->creates;
}

int main(void)
{
	const char *env = getenv("KVMFR_STRESS_SECONDS");
	int seconds = env ? atoi(env) : 8, i, status, res;
	pid_t pids[WORKERS];
	long long base, rc, n;
	uint64_t deadline;
	char what[64];

	kt_init();
	kt_plan(WORKERS + 3);
	for (i = 0; i < kt_ndev; i++)
		if (!kt_devs[i].found) {
			printf("Bail out! %s not found\n", kt_devs[i].label);
			return 1;
		}
	if (seconds <= 0)
		seconds = 8;
	kt_diag("%d workers for %d s on %d devices", WORKERS, seconds, kt_ndev);
	base = kt_module_refcnt();
	deadline = kt_now_ms() + seconds * 1000ull;
	fflush(stdout);
	for (i = 0; i < WORKERS; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(worker_main(i, deadline));
	}
	for (i = 0; i < WORKERS; i++) {
		snprintf(what, sizeof(what), "worker %d", i);
		status = pids[i] > 0 ? kt_wait_child(pids[i], seconds + 120) : -1;
		kt_report(kt_child_ok(status, what) ? KT_PASS : KT_FAIL,
			  "worker %d: every read matched, no error, no signal", i);
	}

	res = KT_PASS;
	for (i = 0; i < kt_ndev; i++) {
		n = kt_dmabufs(&kt_devs[i]);
		if (n != 0)
			res = kt_fail("%s: dmabufs reads %lld", kt_devs[i].name, n);
	}
	kt_report(res, "every device's dmabufs is back to 0");
	rc = kt_module_refcnt();
	kt_report(rc == base ? KT_PASS :
		  kt_fail("module refcnt %lld, %lld before", rc, base),
		  "module reference count back to its starting value");

	res = KT_PASS;
	for (i = 0; i < kt_ndev; i++) {
		int fd = kt_open(&kt_devs[i]), db;

		if (fd < 0 || kt_getsize(fd) != (long long)kt_devs[i].size) {
			res = kt_fail("%s: GETSIZE after the stress", kt_devs[i].name);
			kt_close(fd);
			continue;
		}
		db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, kt_devs[i].size);
		if (db < 0)
			res = kt_fail("%s: CREATE after the stress: %s",
				      kt_devs[i].name, kt_errname(errno));
		kt_close(db);
		kt_close(fd);
	}
	kt_report(res, "every device still works");
	return kt_exit();
}
