// SPDX-License-Identifier: GPL-2.0
/*
 * dma-buf mmap: what must be refused (MAP_PRIVATE, past the end, growing,
 * bad SYNC flags), then byte comparisons between the device mapping and
 * dma-buf mappings at every kind of offset, overlapping dma-bufs, a second
 * open, the last page and the whole device; SYNC and SET_NAME.
 */
#include "kvmfr_test.h"

static long long refcnt_base;

struct fixture {
	int fd, db;
	uint8_t *dev;		/* whole-device mapping */
	uint8_t *buf;		/* whole dma-buf mapping */
	uint64_t off, len;	/* the dma-buf's range */
	uint64_t dev_size;
};

static void teardown(struct fixture *f)
{
	kt_unmap(f->buf, f->len);
	kt_unmap(f->dev, f->dev_size);
	kt_close(f->db);
	kt_close(f->fd);
}

/* Device fd, dma-buf of [off, off + len), optionally both mapped. */
static bool setup(struct kvmfr_dev *d, struct fixture *f, uint64_t off,
		  uint64_t len, bool map)
{
	memset(f, 0, sizeof(*f));
	f->db = -1;
	f->off = off;
	f->len = len;
	f->dev_size = d->size;
	f->fd = kt_open(d);
	if (f->fd < 0)
		return false;
	f->db = kt_create(f->fd, KVMFR_DMABUF_FLAG_CLOEXEC, off, len);
	if (f->db < 0) {
		kt_diag("CREATE(offset 0x%" PRIx64 ", size 0x%" PRIx64 "): %s",
			off, len, kt_errname(errno));
		kt_close(f->fd);
		return false;
	}
	if (!map)
		return true;
	f->dev = kt_map(f->fd, 0, d->size);
	f->buf = kt_map(f->db, 0, len);
	if (!f->dev || !f->buf) {
		kt_unmap(f->dev, d->size);
		kt_unmap(f->buf, len);
		f->dev = f->buf = NULL;
		kt_close(f->db);
		kt_close(f->fd);
		return false;
	}
	return true;
}

static int map_private(struct kvmfr_dev *d)
{
	struct fixture f;
	int res = KT_PASS;

	if (!setup(d, &f, kt_page, 4 * kt_page, false))
		return KT_FAIL;
	if (!kt_mmap_fails(f.db, 0, f.len, PROT_READ | PROT_WRITE, MAP_PRIVATE,
			   EINVAL, "RW MAP_PRIVATE") ||
	    !kt_mmap_fails(f.db, 0, kt_page, PROT_READ, MAP_PRIVATE, EINVAL,
			   "read-only MAP_PRIVATE"))
		res = KT_FAIL;
	teardown(&f);
	return res;
}

static int past_end(struct kvmfr_dev *d)
{
	const int rw = PROT_READ | PROT_WRITE;
	uint64_t p = kt_page, len = 8 * kt_page;
	struct fixture f;
	int res = KT_PASS;

	if (!setup(d, &f, 4 * kt_page, len, false))
		return KT_FAIL;
	if (!kt_mmap_fails(f.db, 0, len + p, rw, MAP_SHARED, EINVAL, "len + page") ||
	    !kt_mmap_fails(f.db, len, p, rw, MAP_SHARED, EINVAL, "at the end") ||
	    !kt_mmap_fails(f.db, len - p, 2 * p, rw, MAP_SHARED, EINVAL,
			   "last page + 1") ||
	    !kt_mmap_fails(f.db, 0, d->size, rw, MAP_SHARED, EINVAL,
			   "device size"))
		res = KT_FAIL;
	teardown(&f);
	return res;
}

/* As for the device: a mapping follows, so the kernel would have to move it. */
static int grow_mremap(struct kvmfr_dev *d)
{
	uint64_t seed = kt_seed();
	struct fixture f;
	int res = KT_PASS;
	char *area, *q;

	/* The last 4 pages: growing would run past the device end. */
	if (!setup(d, &f, d->size - 4 * kt_page, 4 * kt_page, false))
		return KT_FAIL;
	area = mmap(NULL, 2 * f.len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		teardown(&f);
		return kt_fail("reserving address space: %s", kt_errname(errno));
	}
	f.buf = mmap(area, f.len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		     f.db, 0);
	if (f.buf == MAP_FAILED) {
		f.buf = NULL;
		munmap(area, 2 * f.len);
		teardown(&f);
		return kt_fail("dma-buf mmap: %s", kt_errname(errno));
	}
	kt_fill_at(f.buf, f.off, f.len, seed);
	q = mremap(f.buf, f.len, 2 * f.len, MREMAP_MAYMOVE);
	if (q != MAP_FAILED) {
		res = kt_fail("mremap grew the dma-buf mapping");
		munmap(q, 2 * f.len);
		f.buf = NULL;
	} else {
		kt_diag("mremap failed with %s", kt_errname(errno));
		if (!kt_check_at(f.buf, f.off, f.len, seed,
				 "after the failed mremap"))
			res = KT_FAIL;
	}
	munmap(area + f.len, f.len);
	teardown(&f);
	return res;
}

static int sync_bad_flags(struct kvmfr_dev *d)
{
	static const uint64_t bad[] = {
		0,		/* no direction */
		DMA_BUF_SYNC_END,
		0x8, 0x10 | DMA_BUF_SYNC_RW, ~0ull,
	};
	struct dma_buf_sync sync;
	struct fixture f;
	int res = KT_PASS, r, e;
	char what[64];
	size_t i;

	if (!setup(d, &f, 0, kt_page, false))
		return KT_FAIL;
	for (i = 0; i < KT_ARRAY_SIZE(bad); i++) {
		sync.flags = bad[i];
		r = ioctl(f.db, DMA_BUF_IOCTL_SYNC, &sync);
		e = errno;
		snprintf(what, sizeof(what), "SYNC flags 0x%" PRIx64,
			 (uint64_t)bad[i]);
		if (!kt_errno_is(r, e, EINVAL, what))
			res = KT_FAIL;
	}
	teardown(&f);
	return res;
}

/* The dma-buf ranges most tests use: start, second page, middle, end. */
static uint64_t range_off(struct kvmfr_dev *d, int i)
{
	switch (i) {
	case 0: return 0;
	case 1: return kt_page;
	case 2: return d->size / 2 + 3 * kt_page;
	default: return d->size - 8 * kt_page;
	}
}

static int dev_to_dmabuf(struct kvmfr_dev *d)
{
	uint64_t len = 8 * kt_page, seed;
	int res = KT_PASS, i;
	struct fixture f;

	for (i = 0; i < 4; i++) {
		if (!setup(d, &f, range_off(d, i), len, true))
			return KT_FAIL;
		seed = kt_seed();
		kt_fill_at(f.dev + f.off, f.off, len, seed);
		if (!kt_check_at(f.buf, f.off, len, seed, "dma-buf mapping"))
			res = KT_FAIL;
		teardown(&f);
	}
	return res;
}

static int dmabuf_to_dev(struct kvmfr_dev *d)
{
	uint64_t len = 8 * kt_page, seed;
	int res = KT_PASS, i;
	struct fixture f;

	for (i = 0; i < 4; i++) {
		if (!setup(d, &f, range_off(d, i), len, true))
			return KT_FAIL;
		seed = kt_seed();
		kt_fill_at(f.buf, f.off, len, seed);
		if (!kt_check_at(f.dev + f.off, f.off, len, seed,
				 "device mapping"))
			res = KT_FAIL;
		teardown(&f);
	}
	return res;
}

/* mmap of the dma-buf at page offset k shows device offset off + k pages. */
static int dmabuf_page_offsets(struct kvmfr_dev *d)
{
	static const int pgoffs[] = { 1, 3, 7 };
	uint64_t len = 8 * kt_page, seed, at;
	int res = KT_PASS;
	struct fixture f;
	uint8_t *p;
	size_t i;

	if (!setup(d, &f, d->size / 2, len, true))
		return KT_FAIL;
	for (i = 0; i < KT_ARRAY_SIZE(pgoffs); i++) {
		at = f.off + pgoffs[i] * kt_page;
		p = kt_map(f.db, pgoffs[i] * kt_page, len - pgoffs[i] * kt_page);
		if (!p) {
			res = KT_FAIL;
			continue;
		}
		seed = kt_seed();
		kt_fill_at(f.dev + at, at, kt_page, seed);
		if (!kt_check_at(p, at, kt_page, seed, "device -> offset map"))
			res = KT_FAIL;
		seed = kt_seed();
		kt_fill_at(p + len - pgoffs[i] * kt_page - kt_page,
			   f.off + len - kt_page, kt_page, seed);
		if (!kt_check_at(f.buf + len - kt_page, f.off + len - kt_page,
				 kt_page, seed, "offset map -> whole dma-buf map"))
			res = KT_FAIL;
		kt_unmap(p, len - pgoffs[i] * kt_page);
	}
	teardown(&f);
	return res;
}

/* A: pages [4, 12), B: pages [6, 14). */
static int overlapping_dmabufs(struct kvmfr_dev *d)
{
	uint64_t len = 8 * kt_page, shared = 6 * kt_page, seed;
	struct fixture a, b;
	int res = KT_PASS;

	if (!setup(d, &a, 4 * kt_page, len, true))
		return KT_FAIL;
	if (!setup(d, &b, 6 * kt_page, len, true)) {
		teardown(&a);
		return KT_FAIL;
	}
	seed = kt_seed();
	kt_fill_at(a.buf + 2 * kt_page, b.off, shared, seed);
	if (!kt_check_at(b.buf, b.off, shared, seed, "A -> B"))
		res = KT_FAIL;
	seed = kt_seed();
	kt_fill_at(b.buf, b.off, shared, seed);
	if (!kt_check_at(a.buf + 2 * kt_page, b.off, shared, seed, "B -> A"))
		res = KT_FAIL;
	if (!kt_memeq(a.buf, a.dev + a.off, len, "A vs device") ||
	    !kt_memeq(b.buf, b.dev + b.off, len, "B vs device"))
		res = KT_FAIL;
	teardown(&a);
	teardown(&b);
	return res;
}

static int second_open(struct kvmfr_dev *d)
{
	uint64_t off = d->size / 4, len = 4 * kt_page, seed;
	struct fixture a, b;
	int res = KT_PASS;

	if (!setup(d, &a, off, len, true))
		return KT_FAIL;
	if (!setup(d, &b, off, len, true)) {
		teardown(&a);
		return KT_FAIL;
	}
	seed = kt_seed();
	kt_fill_at(a.dev + off, off, len, seed);
	if (!kt_check_at(b.buf, off, len, seed, "open 1 device -> open 2 dma-buf"))
		res = KT_FAIL;
	seed = kt_seed();
	kt_fill_at(b.buf, off, len, seed);
	if (!kt_check_at(a.buf, off, len, seed, "open 2 dma-buf -> open 1 dma-buf"))
		res = KT_FAIL;
	teardown(&a);
	teardown(&b);
	return res;
}

static int two_mappings(struct kvmfr_dev *d)
{
	uint64_t seed = kt_seed();
	struct fixture f;
	int res = KT_PASS;
	uint8_t *p;

	if (!setup(d, &f, 2 * kt_page, 4 * kt_page, true))
		return KT_FAIL;
	p = kt_map(f.db, 0, f.len);
	if (!p) {
		teardown(&f);
		return KT_FAIL;
	}
	kt_fill_at(f.buf, f.off, f.len, seed);
	if (!kt_check_at(p, f.off, f.len, seed, "second mapping"))
		res = KT_FAIL;
	seed = kt_seed();
	kt_fill_at(p, f.off, f.len, seed);
	if (!kt_check_at(f.buf, f.off, f.len, seed, "first mapping"))
		res = KT_FAIL;
	kt_unmap(p, f.len);
	teardown(&f);
	return res;
}

static int last_page(struct kvmfr_dev *d)
{
	uint64_t seed = kt_seed();
	struct fixture f;
	int res = KT_PASS;

	if (!setup(d, &f, d->size - kt_page, kt_page, true))
		return KT_FAIL;
	kt_fill_at(f.dev + f.off, f.off, kt_page, seed);
	if (!kt_check_at(f.buf, f.off, kt_page, seed, "device -> dma-buf"))
		res = KT_FAIL;
	seed = kt_seed();
	kt_fill_at(f.buf, f.off, kt_page, seed);
	if (!kt_check_at(f.dev + f.off, f.off, kt_page, seed, "dma-buf -> device"))
		res = KT_FAIL;
	teardown(&f);
	return res;
}

/* A marker in every page, written one way, compared byte for byte. */
static int whole_device(struct kvmfr_dev *d)
{
	uint64_t pages = d->size / kt_page, i, seed = kt_seed(), w;
	struct fixture f;
	int res = KT_PASS;
	size_t words = kt_page / 8;

	if (!setup(d, &f, 0, d->size, true))
		return KT_FAIL;
	for (i = 0; i < pages; i++) {
		w = i * words + (i * 7) % words;
		((volatile uint64_t *)f.dev)[w] = kvmfr_pattern_word(seed, w);
	}
	if (!kt_memeq(f.dev, f.buf, d->size, "device vs dma-buf after device writes"))
		res = KT_FAIL;
	seed = kt_seed();
	for (i = 0; i < pages; i++) {
		w = i * words + (i * 13) % words;
		((volatile uint64_t *)f.buf)[w] = kvmfr_pattern_word(seed, w);
	}
	if (!kt_memeq(f.dev, f.buf, d->size, "device vs dma-buf after dma-buf writes"))
		res = KT_FAIL;
	for (i = 0; i < pages && res == KT_PASS; i++) {
		w = i * words + (i * 13) % words;
		if (((volatile uint64_t *)f.dev)[w] != kvmfr_pattern_word(seed, w))
			res = kt_fail("page %" PRIu64 ": dma-buf write not on the device", i);
	}
	teardown(&f);
	return res;
}

static int do_sync(int db, uint64_t flags)
{
	struct dma_buf_sync sync = { .flags = flags };

	if (ioctl(db, DMA_BUF_IOCTL_SYNC, &sync)) {
		kt_diag("SYNC flags 0x%" PRIx64 ": %s", flags, kt_errname(errno));
		return -1;
	}
	return 0;
}

/* Without an importer: the brackets succeed and leave the data alone. */
static int sync_brackets(struct kvmfr_dev *d)
{
	static const uint64_t dirs[] = {
		DMA_BUF_SYNC_READ, DMA_BUF_SYNC_WRITE, DMA_BUF_SYNC_RW,
	};
	struct fixture f;
	int res = KT_PASS;
	uint64_t seed;
	size_t i;

	if (!setup(d, &f, kt_page, 4 * kt_page, true))
		return KT_FAIL;
	for (i = 0; i < KT_ARRAY_SIZE(dirs); i++) {
		seed = kt_seed();
		if (do_sync(f.db, DMA_BUF_SYNC_START | dirs[i]))
			res = KT_FAIL;
		if (dirs[i] & DMA_BUF_SYNC_WRITE)
			kt_fill_at(f.buf, f.off, f.len, seed);
		else
			kt_fill_at(f.dev + f.off, f.off, f.len, seed);
		if (!kt_check_at(f.buf, f.off, f.len, seed, "inside the bracket"))
			res = KT_FAIL;
		if (do_sync(f.db, DMA_BUF_SYNC_END | dirs[i]))
			res = KT_FAIL;
		if (!kt_check_at(f.dev + f.off, f.off, f.len, seed,
				 "device after the bracket"))
			res = KT_FAIL;
	}
	teardown(&f);
	return res;
}

/*
 * With an importer attached and mapped for DMA (tests/edu's, one transfer of
 * at most KVMFR_EDU_BUF_SIZE bytes): what the CPU wrote inside a WRITE
 * bracket is what the device reads after it, and what the device wrote is
 * what the CPU reads inside a READ bracket. Where DMA bounces (swiotlb) only
 * the exporter's syncs of the importer's mapping make this true.
 */
static int sync_importer(struct kvmfr_dev *d, bool pinned)
{
	static const uint64_t dirs[] = {
		DMA_BUF_SYNC_WRITE, DMA_BUF_SYNC_READ, DMA_BUF_SYNC_RW,
	};
	const uint32_t len = KVMFR_EDU_BUF_SIZE & ~7u;
	uint64_t got[KVMFR_EDU_BUF_SIZE / 8], put[KVMFR_EDU_BUF_SIZE / 8];
	struct fixture f;
	int edu, res = KT_PASS;
	uint64_t seed;
	size_t i;

	edu = kt_importer_open();
	if (edu < 0)
		return kt_skip("no dma-buf importer in this guest (/dev/kvmfr_edu: %s)",
			       strerror(errno));
	if (!setup(d, &f, kt_page, 4 * kt_page, true)) {
		close(edu);
		return KT_FAIL;
	}
	if (kt_importer_import(edu, f.db, pinned)) {
		res = KT_FAIL;
		goto out;
	}
	for (i = 0; i < KT_ARRAY_SIZE(dirs) && res == KT_PASS; i++) {
		if (dirs[i] & DMA_BUF_SYNC_WRITE) {
			seed = kt_seed();
			if (do_sync(f.db, DMA_BUF_SYNC_START | dirs[i]))
				res = KT_FAIL;
			kt_fill_at(f.buf, f.off, f.len, seed);
			if (do_sync(f.db, DMA_BUF_SYNC_END | dirs[i]) ||
			    kt_importer_dma(edu, 0, got, len, true))
				res = KT_FAIL;
			else if (!kt_check_at(got, f.off, len, seed,
					      "device read after the WRITE bracket"))
				res = KT_FAIL;
		}
		if (dirs[i] & DMA_BUF_SYNC_READ) {
			seed = kt_seed();
			kt_fill_at(put, f.off, len, seed);
			if (kt_importer_dma(edu, 0, put, len, false) ||
			    do_sync(f.db, DMA_BUF_SYNC_START | dirs[i]))
				res = KT_FAIL;
			else if (!kt_check_at(f.buf, f.off, len, seed,
					      "CPU read in the READ bracket"))
				res = KT_FAIL;
			if (do_sync(f.db, DMA_BUF_SYNC_END | dirs[i]))
				res = KT_FAIL;
		}
	}
out:
	close(edu);
	teardown(&f);
	return res;
}

static int sync_dynamic_importer(struct kvmfr_dev *d)
{
	return sync_importer(d, false);
}

static int sync_pinned_importer(struct kvmfr_dev *d)
{
	return sync_importer(d, true);
}

static int set_name(struct kvmfr_dev *d)
{
	char path[64], buf[1024], want[64];
	struct fixture f;
	int res = KT_PASS;

	if (!setup(d, &f, 0, kt_page, false))
		return KT_FAIL;
	snprintf(want, sizeof(want), "kvmfr-test-%d", (int)getpid());
	if (ioctl(f.db, DMA_BUF_SET_NAME, want)) {
		res = kt_fail("DMA_BUF_SET_NAME: %s", kt_errname(errno));
	} else {
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", f.db);
		if (kt_read_file(path, buf, sizeof(buf)))
			res = kt_fail("reading %s failed", path);
		else if (!strstr(buf, want))
			res = kt_fail("fdinfo does not show the name '%s'", want);
	}
	teardown(&f);
	return res;
}

static int fork_child(struct kvmfr_dev *d)
{
	uint64_t s1 = kt_seed(), s2 = kt_seed();
	struct fixture f;
	int res = KT_PASS, status;
	pid_t pid;

	if (!setup(d, &f, 3 * kt_page, 2 * kt_page, true))
		return KT_FAIL;
	kt_fill_at(f.buf, f.off, kt_page, s1);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (!kt_check_at(f.buf, f.off, kt_page, s1, "child"))
			_exit(1);
		kt_fill_at(f.buf + kt_page, f.off + kt_page, kt_page, s2);
		_exit(0);
	}
	if (pid < 0) {
		res = kt_fail("fork: %s", kt_errname(errno));
	} else {
		status = kt_wait_child(pid, 60);
		if (!kt_child_ok(status, "child reading the dma-buf mapping"))
			res = KT_FAIL;
		else if (!kt_check_at(f.dev + f.off + kt_page, f.off + kt_page,
				      kt_page, s2, "parent: child's write"))
			res = KT_FAIL;
	}
	teardown(&f);
	return res;
}

static int nothing_left(struct kvmfr_dev *d)
{
	long long n = kt_dmabufs(d), rc = kt_module_refcnt();

	if (n != 0)
		return kt_fail("dmabufs reads %lld", n);
	if (rc != refcnt_base)
		return kt_fail("module refcnt %lld, %lld at start", rc, refcnt_base);
	return KT_PASS;
}

static const struct kt_case cases[] = {
	{ "dma-buf MAP_PRIVATE fails with EINVAL", map_private, KT_ALL },
	{ "dma-buf mmap past its end fails with EINVAL", past_end, KT_ALL },
	{ "growing mremap of a dma-buf mapping fails", grow_mremap, KT_ALL },
	{ "DMA_BUF_IOCTL_SYNC with bad flags fails with EINVAL", sync_bad_flags, KT_ALL },
	{ "device writes at O+k read through a dma-buf at O at k", dev_to_dmabuf, KT_ALL },
	{ "dma-buf writes at k read through the device at O+k", dmabuf_to_dev, KT_ALL },
	{ "dma-buf mmap at page offsets inside the buffer", dmabuf_page_offsets, KT_ALL },
	{ "two overlapping dma-bufs agree", overlapping_dmabufs, KT_ALL },
	{ "dma-buf of a second open agrees with the first", second_open, KT_ALL },
	{ "two mappings of one dma-buf agree", two_mappings, KT_ALL },
	{ "dma-buf of the last page agrees with the device", last_page, KT_ALL },
	{ "whole-device dma-buf equals the device byte for byte", whole_device, KT_ALL },
	{ "DMA_BUF_IOCTL_SYNC START/END with READ, WRITE, RW and no importer keep the data", sync_brackets, KT_ALL },
	{ "SYNC brackets with a dynamic importer mapped: device DMA reads the CPU's writes, the CPU reads the device's", sync_dynamic_importer, KT_ALL },
	{ "SYNC brackets with a pinned importer mapped: device DMA reads the CPU's writes, the CPU reads the device's", sync_pinned_importer, KT_STATIC },
	{ "DMA_BUF_SET_NAME shows in fdinfo", set_name, KT_ALL },
	{ "dma-buf mapping is shared with a forked child", fork_child, KT_ALL },
	{ "no dma-buf or module reference left behind", nothing_left, KT_ALL },
};

int main(void)
{
	kt_init();
	kt_plan(kt_count_cases(cases, KT_ARRAY_SIZE(cases)));
	refcnt_base = kt_module_refcnt();
	kt_run_cases(cases, KT_ARRAY_SIZE(cases));
	return kt_exit();
}
