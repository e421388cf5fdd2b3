// SPDX-License-Identifier: GPL-2.0
/*
 * Device mmap: what must be refused (MAP_PRIVATE, past the end, growing),
 * what must fault (writes to a read-only mapping), then the same bytes seen
 * through every device path: offsets, overlapping mappings, a second open,
 * partial unmaps, shrinking mremap, MADV_DONTNEED, closed fds and fork.
 */
#include "kvmfr_test.h"

static long long refcnt_base;

static int map_private(struct kvmfr_dev *d)
{
	int fd, res = KT_PASS;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	if (!kt_mmap_fails(fd, 0, kt_page, PROT_READ | PROT_WRITE, MAP_PRIVATE,
			   EINVAL, "RW MAP_PRIVATE"))
		res = KT_FAIL;
	if (!kt_mmap_fails(fd, 0, kt_page, PROT_READ, MAP_PRIVATE, EINVAL,
			   "read-only MAP_PRIVATE"))
		res = KT_FAIL;
	if (!kt_mmap_fails(fd, 0, d->size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
			   EINVAL, "whole-device MAP_PRIVATE"))
		res = KT_FAIL;
	kt_close(fd);
	return res;
}

static int past_end(struct kvmfr_dev *d)
{
	const int rw = PROT_READ | PROT_WRITE;
	uint64_t s = d->size, p = kt_page;
	int fd, res = KT_PASS;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	if (!kt_mmap_fails(fd, 0, s + p, rw, MAP_SHARED, EINVAL, "size + page") ||
	    !kt_mmap_fails(fd, s - p, 2 * p, rw, MAP_SHARED, EINVAL, "last page + 1") ||
	    !kt_mmap_fails(fd, s, p, rw, MAP_SHARED, EINVAL, "at the end") ||
	    !kt_mmap_fails(fd, s / 2, s, rw, MAP_SHARED, EINVAL, "half past") ||
	    !kt_mmap_fails(fd, 1ull << 32, p, rw, MAP_SHARED, EINVAL, "at 4 GiB"))
		res = KT_FAIL;
	kt_close(fd);
	return res;
}

/*
 * mremap to twice the size with MREMAP_MAYMOVE. A mapping follows it, so the
 * kernel cannot expand in place and has to move it: only VM_DONTEXPAND (or
 * the like) stops that.
 */
static int grow_maymove(struct kvmfr_dev *d)
{
	size_t len = 4 * kt_page;
	uint64_t seed = kt_seed();
	int fd, res = KT_PASS;
	char *area, *p, *q;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	area = mmap(NULL, 2 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		kt_close(fd);
		return kt_fail("reserving address space: %s", kt_errname(errno));
	}
	p = mmap(area, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED) {
		munmap(area, 2 * len);
		kt_close(fd);
		return kt_fail("mmap: %s", kt_errname(errno));
	}
	kt_fill_at(p, 0, len, seed);
	q = mremap(p, len, 2 * len, MREMAP_MAYMOVE);
	if (q != MAP_FAILED) {
		/* Do not touch it: past what was mapped. */
		res = kt_fail("mremap grew the mapping to %p", (void *)q);
		munmap(q, 2 * len);
	} else {
		kt_diag("mremap failed with %s", kt_errname(errno));
		if (!kt_check_at(p, 0, len, seed, "after the failed mremap"))
			res = KT_FAIL;
		seed = kt_seed();
		kt_fill_at(p, 0, len, seed);
		if (!kt_check_at(p, 0, len, seed, "rewritten"))
			res = KT_FAIL;
		kt_unmap(p, len);
	}
	munmap(area + len, len);
	kt_close(fd);
	return res;
}

/* mremap without MREMAP_MAYMOVE while the space after it is free. */
static int grow_in_place(struct kvmfr_dev *d)
{
	size_t len = 4 * kt_page;
	uint64_t seed = kt_seed();
	int fd, res = KT_PASS;
	char *area, *p, *q;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	area = mmap(NULL, 2 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		kt_close(fd);
		return kt_fail("reserving address space: %s", kt_errname(errno));
	}
	munmap(area + len, len);
	p = mmap(area, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
		 d->size - len);
	if (p == MAP_FAILED) {
		munmap(area, len);
		kt_close(fd);
		return kt_fail("mmap of the last 4 pages: %s", kt_errname(errno));
	}
	kt_fill_at(p, d->size - len, len, seed);
	q = mremap(p, len, 2 * len, 0);
	if (q != MAP_FAILED) {
		res = kt_fail("mremap grew the mapping in place past the device end");
		munmap(q, 2 * len);
	} else {
		kt_diag("mremap failed with %s", kt_errname(errno));
		if (!kt_check_at(p, d->size - len, len, seed,
				 "after the failed mremap"))
			res = KT_FAIL;
		kt_unmap(p, len);
	}
	kt_close(fd);
	return res;
}

static int readonly_write_segv(struct kvmfr_dev *d)
{
	uint64_t seed = kt_seed(), off = kt_page;
	int fd, res = KT_PASS;
	uint8_t *p;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = kt_map(fd, off, kt_page);
	if (!p) {
		kt_close(fd);
		return KT_FAIL;
	}
	kt_fill_at(p, off, kt_page, seed);
	if (mprotect(p, kt_page, PROT_READ)) {
		res = kt_fail("mprotect(PROT_READ): %s", kt_errname(errno));
	} else {
		if (!kt_probe_raises(p + 100, true, SIGSEGV, "read-only mapping"))
			res = KT_FAIL;
		if (kt_probe(p + 100, false))
			res = kt_fail("reading the read-only mapping faults");
		else if (!kt_check_at(p, off, kt_page, seed, "read-only mapping"))
			res = KT_FAIL;
	}
	kt_unmap(p, kt_page);
	kt_close(fd);
	return res;
}

static int whole_mapping(struct kvmfr_dev *d)
{
	uint64_t offs[] = { 0, d->size / 2, d->size - kt_page };
	uint64_t seed = kt_seed();
	int fd, res = KT_PASS;
	uint8_t *p;
	size_t i;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = kt_map(fd, 0, d->size);
	if (!p) {
		kt_close(fd);
		return KT_FAIL;
	}
	for (i = 0; i < KT_ARRAY_SIZE(offs); i++)
		kt_fill_at(p + offs[i], offs[i], kt_page, seed);
	for (i = 0; i < KT_ARRAY_SIZE(offs); i++)
		if (!kt_check_at(p + offs[i], offs[i], kt_page, seed, "read back"))
			res = KT_FAIL;
	kt_unmap(p, d->size);
	kt_close(fd);
	return res;
}

/* A mapping at offset O shows byte O+k of the whole mapping at k. */
static int offset_mappings(struct kvmfr_dev *d)
{
	uint64_t offs[] = { kt_page, d->size / 2, d->size - 2 * kt_page };
	size_t len = 2 * kt_page, i;
	int fd, res = KT_PASS;
	uint8_t *whole, *p;
	uint64_t seed;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	whole = kt_map(fd, 0, d->size);
	if (!whole) {
		kt_close(fd);
		return KT_FAIL;
	}
	for (i = 0; i < KT_ARRAY_SIZE(offs); i++) {
		p = kt_map(fd, offs[i], len);
		if (!p) {
			res = KT_FAIL;
			continue;
		}
		seed = kt_seed();
		kt_fill_at(whole + offs[i], offs[i], len, seed);
		if (!kt_check_at(p, offs[i], len, seed, "whole -> offset map"))
			res = KT_FAIL;
		seed = kt_seed();
		kt_fill_at(p, offs[i], len, seed);
		if (!kt_check_at(whole + offs[i], offs[i], len, seed,
				 "offset map -> whole"))
			res = KT_FAIL;
		kt_unmap(p, len);
	}
	kt_unmap(whole, d->size);
	kt_close(fd);
	return res;
}

/* A: pages [2, 10), B: pages [5, 13); they share pages [5, 10). */
static int overlapping_mappings(struct kvmfr_dev *d)
{
	uint64_t oa = 2 * kt_page, ob = 5 * kt_page, shared = 5 * kt_page;
	size_t len = 8 * kt_page;
	int fd, res = KT_PASS;
	uint8_t *a, *b;
	uint64_t seed;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	a = kt_map(fd, oa, len);
	b = kt_map(fd, ob, len);
	if (a && b) {
		seed = kt_seed();
		kt_fill_at(a + (ob - oa), ob, shared, seed);
		if (!kt_check_at(b, ob, shared, seed, "A -> B"))
			res = KT_FAIL;
		seed = kt_seed();
		kt_fill_at(b, ob, shared, seed);
		if (!kt_check_at(a + (ob - oa), ob, shared, seed, "B -> A"))
			res = KT_FAIL;
		if (!kt_memeq(a + (ob - oa), b, shared, "A vs B"))
			res = KT_FAIL;
	} else {
		res = KT_FAIL;
	}
	kt_unmap(a, len);
	kt_unmap(b, len);
	kt_close(fd);
	return res;
}

static int second_open(struct kvmfr_dev *d)
{
	uint64_t off = d->size / 4, seed;
	size_t len = 4 * kt_page;
	int fd1, fd2, res = KT_PASS;
	uint8_t *a = NULL, *b = NULL;

	fd1 = kt_open(d);
	fd2 = kt_open(d);
	if (fd1 >= 0 && fd2 >= 0) {
		a = kt_map(fd1, off, len);
		b = kt_map(fd2, off, len);
	}
	if (a && b) {
		seed = kt_seed();
		kt_fill_at(a, off, len, seed);
		if (!kt_check_at(b, off, len, seed, "first open -> second"))
			res = KT_FAIL;
		seed = kt_seed();
		kt_fill_at(b, off, len, seed);
		if (!kt_check_at(a, off, len, seed, "second open -> first"))
			res = KT_FAIL;
	} else {
		res = KT_FAIL;
	}
	kt_unmap(a, len);
	kt_unmap(b, len);
	kt_close(fd1);
	kt_close(fd2);
	return res;
}

/* Unmapping the middle page splits the mapping; the rest keeps working. */
static int partial_munmap(struct kvmfr_dev *d)
{
	uint64_t off = 8 * kt_page, seed = kt_seed(), seed2 = kt_seed();
	size_t len = 4 * kt_page;
	int fd, res = KT_PASS, i;
	uint8_t *p, *whole;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = kt_map(fd, off, len);
	whole = kt_map(fd, 0, d->size);
	if (!p || !whole) {
		kt_unmap(p, len);
		kt_unmap(whole, d->size);
		kt_close(fd);
		return KT_FAIL;
	}
	kt_fill_at(p, off, len, seed);
	if (munmap(p + kt_page, kt_page))
		res = kt_fail("munmap of the second page: %s", kt_errname(errno));
	if (!kt_probe_raises(p + kt_page, false, SIGSEGV, "unmapped page"))
		res = KT_FAIL;
	for (i = 0; i < 4; i++) {
		if (i == 1)
			continue;
		if (!kt_check_at(p + i * kt_page, off + i * kt_page, kt_page,
				 seed, "remaining page"))
			res = KT_FAIL;
		kt_fill_at(p + i * kt_page, off + i * kt_page, kt_page, seed2);
		if (!kt_check_at(whole + off + i * kt_page, off + i * kt_page,
				 kt_page, seed2, "remaining page seen whole"))
			res = KT_FAIL;
	}
	munmap(p, kt_page);
	munmap(p + 2 * kt_page, 2 * kt_page);
	kt_unmap(whole, d->size);
	kt_close(fd);
	return res;
}

static int shrink_mremap(struct kvmfr_dev *d)
{
	size_t half = d->size / 2;
	uint64_t seed = kt_seed();
	int fd, res = KT_PASS;
	uint8_t *p, *q;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = kt_map(fd, 0, d->size);
	if (!p) {
		kt_close(fd);
		return KT_FAIL;
	}
	kt_fill_at(p, 0, kt_page, seed);
	kt_fill_at(p + half - kt_page, half - kt_page, kt_page, seed);
	q = mremap(p, d->size, half, 0);
	if (q == MAP_FAILED) {
		res = kt_fail("shrinking mremap: %s", kt_errname(errno));
		kt_unmap(p, d->size);
	} else {
		if (q != p)
			res = kt_fail("shrinking mremap moved the mapping");
		if (!kt_check_at(q, 0, kt_page, seed, "first page") ||
		    !kt_check_at(q + half - kt_page, half - kt_page, kt_page,
				 seed, "last kept page"))
			res = KT_FAIL;
		if (!kt_probe_raises(q + half, false, SIGSEGV, "dropped tail"))
			res = KT_FAIL;
		kt_unmap(q, half);
	}
	kt_close(fd);
	return res;
}

/* It is device memory: MADV_DONTNEED drops PTEs, never data. */
static int madv_dontneed(struct kvmfr_dev *d)
{
	size_t head = 16 * kt_page, last = d->size - kt_page;
	uint64_t seed = kt_seed();
	int fd, res = KT_PASS;
	uint8_t *p;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = kt_map(fd, 0, d->size);
	if (!p) {
		kt_close(fd);
		return KT_FAIL;
	}
	kt_fill_at(p, 0, head, seed);
	kt_fill_at(p + last, last, kt_page, seed);
	if (madvise(p, d->size, MADV_DONTNEED)) {
		res = kt_fail("madvise(MADV_DONTNEED): %s", kt_errname(errno));
	} else if (kt_probe(p, false) || kt_probe(p + last, false)) {
		res = kt_fail("reading after MADV_DONTNEED faults");
	} else {
		if (!kt_check_at(p, 0, head, seed, "after MADV_DONTNEED") ||
		    !kt_check_at(p + last, last, kt_page, seed,
				 "last page after MADV_DONTNEED"))
			res = KT_FAIL;
		seed = kt_seed();
		kt_fill_at(p, 0, head, seed);
		if (!kt_check_at(p, 0, head, seed, "rewritten after MADV_DONTNEED"))
			res = KT_FAIL;
	}
	kt_unmap(p, d->size);
	kt_close(fd);
	return res;
}

static int outlives_fd(struct kvmfr_dev *d)
{
	uint64_t off = 3 * kt_page, seed = kt_seed();
	size_t len = 2 * kt_page;
	int fd, fd2, res = KT_PASS;
	uint8_t *p, *q;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = kt_map(fd, off, len);
	kt_close(fd);
	if (!p)
		return KT_FAIL;
	kt_fill_at(p, off, len, seed);
	fd2 = kt_open(d);
	q = fd2 >= 0 ? kt_map(fd2, off, len) : NULL;
	if (!q || !kt_check_at(q, off, len, seed, "fd closed -> fresh fd"))
		res = KT_FAIL;
	if (q) {
		seed = kt_seed();
		kt_fill_at(q, off, len, seed);
		if (!kt_check_at(p, off, len, seed, "fresh fd -> fd closed"))
			res = KT_FAIL;
	}
	kt_unmap(q, len);
	kt_close(fd2);
	kt_unmap(p, len);
	return res;
}

/* Page 0 written before fork, page 1 by the child, page 2 by the parent after. */
static int fork_shared(struct kvmfr_dev *d)
{
	uint64_t off = d->size / 2, s0 = kt_seed(), s1 = kt_seed(), s2 = kt_seed();
	size_t len = 3 * kt_page, pg = kt_page;
	int fd, res = KT_PASS, pipefd[2], status;
	uint8_t *p;
	char c = 0;
	pid_t pid;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = kt_map(fd, off, len);
	kt_close(fd);
	if (!p || pipe(pipefd)) {
		kt_unmap(p, len);
		return KT_FAIL;
	}
	kt_fill_at(p, off, pg, s0);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int bad = 0;

		close(pipefd[1]);
		if (!kt_check_at(p, off, pg, s0, "child: page written before fork"))
			bad |= 1;
		kt_fill_at(p + pg, off + pg, pg, s1);
		if (read(pipefd[0], &c, 1) != 1)
			bad |= 2;
		if (!kt_check_at(p + 2 * pg, off + 2 * pg, pg, s2,
				 "child: page the parent wrote after fork"))
			bad |= 4;
		_exit(bad);
	}
	close(pipefd[0]);
	if (pid < 0) {
		close(pipefd[1]);
		kt_unmap(p, len);
		return kt_fail("fork: %s", kt_errname(errno));
	}
	kt_fill_at(p + 2 * pg, off + 2 * pg, pg, s2);
	if (write(pipefd[1], &c, 1) != 1)
		res = kt_fail("pipe write failed");
	close(pipefd[1]);
	status = kt_wait_child(pid, 60);
	if (!kt_child_ok(status, "forked child"))
		res = KT_FAIL;
	else if (!kt_check_at(p + pg, off + pg, pg, s1,
			      "parent: page the child wrote"))
		res = KT_FAIL;
	kt_unmap(p, len);
	return res;
}

/* A read-only open maps read-only: same bytes, no way to write. */
static int readonly_fd(struct kvmfr_dev *d)
{
	uint64_t off = 6 * kt_page, seed = kt_seed();
	uint8_t *rw = NULL, *ro;
	int fd, rofd, res = KT_PASS;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	rw = kt_map(fd, off, kt_page);
	kt_close(fd);
	rofd = open(d->node, O_RDONLY | O_CLOEXEC);
	if (!rw || rofd < 0) {
		kt_unmap(rw, kt_page);
		kt_close(rofd);
		return kt_fail("setup failed: %s", kt_errname(errno));
	}
	kt_fill_at(rw, off, kt_page, seed);
	if (!kt_mmap_fails(rofd, off, kt_page, PROT_READ | PROT_WRITE, MAP_SHARED,
			   EACCES, "writable mapping of an O_RDONLY fd"))
		res = KT_FAIL;
	ro = mmap(NULL, kt_page, PROT_READ, MAP_SHARED, rofd, off);
	if (ro == MAP_FAILED) {
		res = kt_fail("PROT_READ MAP_SHARED of an O_RDONLY fd: %s",
			      kt_errname(errno));
	} else {
		if (!kt_check_at(ro, off, kt_page, seed, "read-only mapping"))
			res = KT_FAIL;
		if (mprotect(ro, kt_page, PROT_READ | PROT_WRITE) == 0)
			res = kt_fail("mprotect made a read-only fd's mapping writable");
		kt_unmap(ro, kt_page);
	}
	kt_unmap(rw, kt_page);
	kt_close(rofd);
	return res;
}

/* Writers of shared memory msync it; it must not fail on device memory. */
static int msync_works(struct kvmfr_dev *d)
{
	uint64_t seed = kt_seed();
	int fd, res = KT_PASS;
	uint8_t *p;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = kt_map(fd, 0, 4 * kt_page);
	kt_close(fd);
	if (!p)
		return KT_FAIL;
	kt_fill_at(p, 0, 4 * kt_page, seed);
	if (msync(p, 4 * kt_page, MS_ASYNC))
		res = kt_fail("msync(MS_ASYNC): %s", kt_errname(errno));
	if (msync(p, 4 * kt_page, MS_SYNC))
		res = kt_fail("msync(MS_SYNC): %s", kt_errname(errno));
	if (msync(p, 4 * kt_page, MS_SYNC | MS_INVALIDATE))
		res = kt_fail("msync(MS_SYNC | MS_INVALIDATE): %s",
			      kt_errname(errno));
	if (!kt_check_at(p, 0, 4 * kt_page, seed, "after msync"))
		res = KT_FAIL;
	kt_unmap(p, 4 * kt_page);
	return res;
}

static int no_reference_left(struct kvmfr_dev *d)
{
	long long rc = kt_module_refcnt();

	(void)d;
	if (rc != refcnt_base)
		return kt_fail("module refcnt %lld, %lld at start", rc, refcnt_base);
	return KT_PASS;
}

static const struct kt_case cases[] = {
	{ "MAP_PRIVATE fails with EINVAL", map_private, KT_ALL },
	{ "mmap past the end fails with EINVAL", past_end, KT_ALL },
	{ "growing mremap (MAYMOVE) fails, mapping still usable", grow_maymove, KT_ALL },
	{ "growing mremap in place fails, mapping still usable", grow_in_place, KT_ALL },
	{ "write to a read-only mprotected mapping raises SIGSEGV", readonly_write_segv, KT_ALL },
	{ "whole-device mapping reads back what it wrote", whole_mapping, KT_ALL },
	{ "mappings at offsets agree with the whole mapping", offset_mappings, KT_ALL },
	{ "overlapping mappings at different offsets agree", overlapping_mappings, KT_ALL },
	{ "a second open maps the same bytes", second_open, KT_ALL },
	{ "partial munmap keeps the rest of the mapping", partial_munmap, KT_ALL },
	{ "shrinking mremap keeps the data and drops the tail", shrink_mremap, KT_ALL },
	{ "MADV_DONTNEED keeps the data", madv_dontneed, KT_ALL },
	{ "mapping outlives its fd", outlives_fd, KT_ALL },
	{ "forked child shares the mapping both ways", fork_shared, KT_ALL },
	{ "O_RDONLY fd maps read-only and sees the same bytes", readonly_fd, KT_ALL },
	{ "msync of a device mapping succeeds", msync_works, KT_ALL },
	{ "no module reference left behind", no_reference_left, KT_ALL },
};

int main(void)
{
	kt_init();
	kt_plan(kt_count_cases(cases, KT_ARRAY_SIZE(cases)));
	refcnt_base = kt_module_refcnt();
	kt_run_cases(cases, KT_ARRAY_SIZE(cases));
	return kt_exit();
}
