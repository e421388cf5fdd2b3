// SPDX-License-Identifier: GPL-2.0
/*
 * Memory-management calls on kvmfr mappings, each on a device mapping and on
 * a dma-buf mapping: a same-size mremap that moves the mapping, and
 * MREMAP_DONTUNMAP (refused: the mapping may not be duplicated); MADV_COLD
 * and MADV_PAGEOUT (the memory is the device's: nothing is reclaimed);
 * MADV_POPULATE_READ/WRITE and MAP_POPULATE (every page mapped up front, as
 * /proc/self/pagemap shows); mlock; and access by other means than the
 * mapping's own loads and stores: /proc/self/mem, process_vm_readv/
 * writev, and O_DIRECT I/O of a loop device (the block layer pins the
 * mapping's pages, the loop driver copies through the kernel's mapping of
 * them). After each, the data must be what was written and the mapping
 * still usable.
 */
#include "kvmfr_test.h"
#include "loop_dev.h"

#include <sys/uio.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP	4
#endif
#ifndef MADV_COLD
#define MADV_COLD		20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT		21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

#define PAGES	8	/* pages of each mapping */

static long long refcnt_base;

/*
 * What the tests map: the device fd at @off, or a dma-buf of the same range
 * (then the mapping starts at offset 0 of the dma-buf). @ref is a second
 * mapping of the same bytes through the device, to see the data from
 * elsewhere.
 */
struct target {
	int fd, db, mfd;	/* device fd, dma-buf fd, the fd mapped */
	uint64_t off;		/* device offset of the mapped range */
	size_t len;
	uint8_t *ref;
};

static bool target_open(struct kvmfr_dev *d, struct target *t, bool dmabuf)
{
	memset(t, 0, sizeof(*t));
	t->db = -1;
	t->off = d->size / 2 - 2 * kt_page;	/* not at 0: offsets count */
	t->len = PAGES * kt_page;
	t->fd = kt_open(d);
	if (t->fd < 0)
		return false;
	t->mfd = t->fd;
	if (dmabuf) {
		t->db = kt_create(t->fd, KVMFR_DMABUF_FLAG_CLOEXEC, t->off,
				  t->len);
		if (t->db < 0) {
			kt_diag("CREATE: %s", kt_errname(errno));
			kt_close(t->fd);
			return false;
		}
		t->mfd = t->db;
	}
	t->ref = kt_map(t->fd, t->off, t->len);
	if (!t->ref) {
		kt_close(t->db);
		kt_close(t->fd);
		return false;
	}
	return true;
}

static void target_close(struct target *t)
{
	kt_unmap(t->ref, t->len);
	kt_close(t->db);
	kt_close(t->fd);
}

/* A mapping of the target, with @flags added to MAP_SHARED. */
static uint8_t *target_map(struct target *t, int flags)
{
	uint64_t off = t->db >= 0 ? 0 : t->off;
	void *p = mmap(NULL, t->len, PROT_READ | PROT_WRITE, MAP_SHARED | flags,
		       t->mfd, (off_t)off);

	if (p == MAP_FAILED) {
		kt_diag("mmap: %s", kt_errname(errno));
		return NULL;
	}
	return p;
}

/*
 * Open the target, map it and fill the mapping from @seed; NULL (and
 * nothing left open) on failure.
 */
static uint8_t *target_open_filled(struct kvmfr_dev *d, struct target *t,
				   bool dmabuf, uint64_t seed)
{
	uint8_t *p;

	if (!target_open(d, t, dmabuf))
		return NULL;
	p = target_map(t, 0);
	if (!p) {
		target_close(t);
		return NULL;
	}
	kt_fill_at(p, t->off, t->len, seed);
	return p;
}

/* Pages of [p, p + len) with a present PTE, per /proc/self/pagemap. */
static long present_pages(const void *p, size_t len)
{
	uint64_t e[PAGES];
	size_t n = len / kt_page, i;
	long count = 0;
	int fd;

	if (n > PAGES)
		return -1;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (pread(fd, e, n * sizeof(*e),
		  (off_t)((uintptr_t)p / kt_page * sizeof(*e))) !=
	    (ssize_t)(n * sizeof(*e))) {
		close(fd);
		return -1;
	}
	close(fd);
	for (i = 0; i < n; i++)
		count += (e[i] >> 63) & 1;
	return count;
}

/* The mapping at @p holds @seed and writes through it reach the device. */
static bool still_works(struct target *t, uint8_t *p, uint64_t seed,
			const char *what)
{
	char w[96];

	snprintf(w, sizeof(w), "%s: data", what);
	if (!kt_check_at(p, t->off, t->len, seed, w))
		return false;
	seed = kt_seed();
	kt_fill_at(p, t->off, t->len, seed);
	snprintf(w, sizeof(w), "%s: a new write seen through the device", what);
	return kt_check_at(t->ref, t->off, t->len, seed, w);
}

/* ------------------------------------------------------------- mremap */

static int mremap_moves(struct kvmfr_dev *d, bool dmabuf)
{
	uint64_t seed = kt_seed();
	struct target t;
	uint8_t *p, *to, *q;
	int res = KT_PASS;

	if (!target_open(d, &t, dmabuf))
		return KT_FAIL;
	p = target_map(&t, 0);
	/* a free range to move to */
	to = mmap(NULL, t.len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!p || to == MAP_FAILED) {
		res = KT_FAIL;
		goto out;
	}
	kt_fill_at(p, t.off, t.len, seed);
	q = mremap(p, t.len, t.len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (q == MAP_FAILED) {
		res = kt_fail("mremap(MAYMOVE | FIXED, same size): %s",
			      kt_errname(errno));
		goto out;
	}
	to = MAP_FAILED;
	if (q == p) {
		res = kt_fail("mremap did not move the mapping");
	} else {
		if (!kt_probe_raises(p, false, SIGSEGV, "old address"))
			res = KT_FAIL;
		p = NULL;
		if (!still_works(&t, q, seed, "moved mapping"))
			res = KT_FAIL;
	}
	p = q;
out:
	if (to != MAP_FAILED)
		munmap(to, t.len);
	kt_unmap(p, t.len);
	target_close(&t);
	return res;
}

/* MREMAP_DONTUNMAP would leave two mappings; VM_DONTEXPAND refuses it. */
static int mremap_dontunmap(struct kvmfr_dev *d, bool dmabuf)
{
	uint64_t seed = kt_seed();
	struct target t;
	int res = KT_PASS;
	uint8_t *p;
	void *q;

	p = target_open_filled(d, &t, dmabuf, seed);
	if (!p)
		return KT_FAIL;
	errno = 0;
	q = mremap(p, t.len, t.len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
	if (q != MAP_FAILED) {
		res = kt_fail("MREMAP_DONTUNMAP succeeded");
		munmap(q, t.len);
	} else if (errno != EINVAL) {
		res = kt_fail("MREMAP_DONTUNMAP: %s, want EINVAL",
			      kt_errname(errno));
	}
	if (!still_works(&t, p, seed, "after MREMAP_DONTUNMAP"))
		res = KT_FAIL;
	kt_unmap(p, t.len);
	target_close(&t);
	return res;
}

/* ------------------------------------------------------------ madvise */

static int madvise_keeps(struct kvmfr_dev *d, bool dmabuf, int advice,
			 const char *name)
{
	uint64_t seed = kt_seed();
	struct target t;
	int res = KT_PASS;
	uint8_t *p;

	p = target_open_filled(d, &t, dmabuf, seed);
	if (!p)
		return KT_FAIL;
	if (madvise(p, t.len, advice))
		res = kt_fail("%s: %s", name, kt_errname(errno));
	if (!still_works(&t, p, seed, name))
		res = KT_FAIL;
	kt_unmap(p, t.len);
	target_close(&t);
	return res;
}

/*
 * Whether the kernel knows @advice: EINVAL means both "unknown advice" and
 * "not for this mapping", so ask about an anonymous page.
 */
static bool advice_known(int advice)
{
	void *a = mmap(NULL, kt_page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool known;

	if (a == MAP_FAILED)
		return true;
	known = !madvise(a, kt_page, advice) || errno != EINVAL;
	munmap(a, kt_page);
	return known;
}

/* After MADV_DONTNEED (no PTE left), the populate call maps every page. */
static int populate(struct kvmfr_dev *d, bool dmabuf, int advice,
		    const char *name)
{
	uint64_t seed = kt_seed();
	struct target t;
	int res = KT_PASS;
	long n;
	uint8_t *p;

	p = target_open_filled(d, &t, dmabuf, seed);
	if (!p)
		return KT_FAIL;
	if (madvise(p, t.len, MADV_DONTNEED)) {
		res = kt_fail("MADV_DONTNEED: %s", kt_errname(errno));
		goto out;
	}
	n = present_pages(p, t.len);
	if (n != 0) {
		res = kt_fail("%ld pages present after MADV_DONTNEED", n);
		goto out;
	}
	if (madvise(p, t.len, advice)) {
		if (errno == EINVAL && !advice_known(advice))
			res = kt_skip("%s unknown to this kernel", name);
		else
			res = kt_fail("%s: %s", name, kt_errname(errno));
		goto out;
	}
	n = present_pages(p, t.len);
	if (n != PAGES)
		res = kt_fail("%s: %ld of %d pages present", name, n, PAGES);
	if (!still_works(&t, p, seed, name))
		res = KT_FAIL;
out:
	kt_unmap(p, t.len);
	target_close(&t);
	return res;
}

static int map_populate(struct kvmfr_dev *d, bool dmabuf)
{
	uint64_t seed = kt_seed();
	struct target t;
	int res = KT_PASS;
	uint8_t *p;
	long n;

	if (!target_open(d, &t, dmabuf))
		return KT_FAIL;
	kt_fill_at(t.ref, t.off, t.len, seed);
	p = target_map(&t, MAP_POPULATE);
	if (!p) {
		target_close(&t);
		return KT_FAIL;
	}
	n = present_pages(p, t.len);
	if (n != PAGES)
		res = kt_fail("MAP_POPULATE: %ld of %d pages present", n, PAGES);
	if (!still_works(&t, p, seed, "MAP_POPULATE"))
		res = KT_FAIL;
	kt_unmap(p, t.len);
	target_close(&t);
	return res;
}

static int mlock_keeps(struct kvmfr_dev *d, bool dmabuf)
{
	uint64_t seed = kt_seed();
	struct target t;
	int res = KT_PASS;
	uint8_t *p;

	p = target_open_filled(d, &t, dmabuf, seed);
	if (!p)
		return KT_FAIL;
	if (mlock(p, t.len))
		res = kt_fail("mlock: %s", kt_errname(errno));
	else if (!still_works(&t, p, seed, "mlocked"))
		res = KT_FAIL;
	if (munlock(p, t.len))
		res = kt_fail("munlock: %s", kt_errname(errno));
	kt_unmap(p, t.len);
	target_close(&t);
	return res;
}

/* ------------------------------------------- access from the outside */

/*
 * /proc/self/mem (the kernel's access_remote_vm on our pages): reads what
 * the mapping holds, and its writes show through the device.
 */
static int proc_mem(struct kvmfr_dev *d, bool dmabuf)
{
	uint64_t seed = kt_seed(), *buf;
	struct target t;
	int res = KT_PASS, fd;
	uint8_t *p;

	buf = malloc(PAGES * kt_page);
	if (!buf || !target_open(d, &t, dmabuf)) {
		free(buf);
		return KT_FAIL;
	}
	p = target_map(&t, 0);
	fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (!p || fd < 0) {
		res = kt_fail("mmap or /proc/self/mem: %s", kt_errname(errno));
		goto out;
	}
	kt_fill_at(p, t.off, t.len, seed);
	madvise(p, t.len, MADV_DONTNEED);	/* the kernel must fault them */
	if (pread(fd, buf, t.len, (off_t)(uintptr_t)p) != (ssize_t)t.len)
		res = kt_fail("read of /proc/self/mem: %s", kt_errname(errno));
	else if (!kt_check_at(buf, t.off, t.len, seed, "read by /proc/self/mem"))
		res = KT_FAIL;
	seed = kt_seed();
	kt_fill_at(buf, t.off, t.len, seed);
	madvise(p, t.len, MADV_DONTNEED);
	if (pwrite(fd, buf, t.len, (off_t)(uintptr_t)p) != (ssize_t)t.len)
		res = kt_fail("write of /proc/self/mem: %s", kt_errname(errno));
	else if (!kt_check_at(t.ref, t.off, t.len, seed,
			      "/proc/self/mem write, seen through the device"))
		res = KT_FAIL;
out:
	if (fd >= 0)
		close(fd);
	kt_unmap(p, t.len);
	target_close(&t);
	free(buf);
	return res;
}

/* process_vm_readv/writev from a child on the parent's mapping. */
static int process_vm(struct kvmfr_dev *d, bool dmabuf)
{
	uint64_t seed = kt_seed(), seed2 = kt_seed();
	pid_t parent = getpid(), pid;
	struct target t;
	int res = KT_PASS, status;
	uint8_t *p;

	/* an empty transfer: 0 where the kernel has the calls at all */
	if (process_vm_readv(parent, NULL, 0, NULL, 0, 0) < 0 &&
	    errno == ENOSYS)
		return kt_skip("kernel without process_vm_readv/writev (CONFIG_CROSS_MEMORY_ATTACH)");
	p = target_open_filled(d, &t, dmabuf, seed);
	if (!p)
		return KT_FAIL;
	madvise(p, t.len, MADV_DONTNEED);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		uint64_t *buf = malloc(t.len);
		struct iovec local = { buf, t.len }, remote = { p, t.len };

		if (!buf || process_vm_readv(parent, &local, 1, &remote, 1, 0) !=
			    (ssize_t)t.len) {
			kt_diag("process_vm_readv: %s", kt_errname(errno));
			_exit(1);
		}
		if (!kt_check_at(buf, t.off, t.len, seed, "process_vm_readv"))
			_exit(1);
		kt_fill_at(buf, t.off, t.len, seed2);
		if (process_vm_writev(parent, &local, 1, &remote, 1, 0) !=
		    (ssize_t)t.len) {
			kt_diag("process_vm_writev: %s", kt_errname(errno));
			_exit(1);
		}
		_exit(0);
	}
	if (pid < 0) {
		res = kt_fail("fork: %s", kt_errname(errno));
	} else {
		status = kt_wait_child(pid, 60);
		if (!kt_child_ok(status, "child using process_vm_readv/writev"))
			res = KT_FAIL;
		else if (!kt_check_at(t.ref, t.off, t.len, seed2,
				      "process_vm_writev, seen through the device"))
			res = KT_FAIL;
	}
	kt_unmap(p, t.len);
	target_close(&t);
	return res;
}

/* O_DIRECT through a loop device (loop_dev.h), set up at the first use */
#define DIO_LEN		(PAGES * kt_page)

static struct kt_loop dio = { -1, -1, -1, "" };
static char dio_why[256];
static int dio_state = -2;	/* kt_loop_setup()'s result; -2: not yet */

/* Skip or fail for a missing loop device; 0 when it is there. */
static int dio_missing(void)
{
	if (dio_state == -2)
		dio_state = kt_loop_setup(&dio, "/tmp/kvmfr-dio", DIO_LEN,
					  dio_why, sizeof(dio_why));
	if (dio_state == 1)
		return kt_skip("no loop driver: %s", dio_why);
	if (dio_state == -1)
		return kt_fail("%s", dio_why);
	return 0;
}

/*
 * The target filled from @seed, mapped with no page present (the block
 * layer's pin must fault them), and a buffer of its size in *@buf; NULL
 * (nothing left open) on failure.
 */
static uint8_t *dio_open(struct kvmfr_dev *d, struct target *t, bool dmabuf,
			 uint64_t seed, uint8_t **buf)
{
	uint8_t *p;

	*buf = malloc(DIO_LEN);
	p = *buf ? target_open_filled(d, t, dmabuf, seed) : NULL;
	if (!p) {
		free(*buf);
		return NULL;
	}
	madvise(p, t->len, MADV_DONTNEED);
	return p;
}

/* An O_DIRECT write from the mapping puts its bytes on the block device. */
static int dio_write(struct kvmfr_dev *d, bool dmabuf)
{
	uint64_t seed = kt_seed();
	int res = dio_missing();
	struct target t;
	uint8_t *p, *buf;

	if (res)
		return res;
	p = dio_open(d, &t, dmabuf, seed, &buf);
	if (!p)
		return KT_FAIL;
	if (pwrite(dio.dio, p, t.len, 0) != (ssize_t)t.len)
		res = kt_fail("O_DIRECT write: %s", kt_errname(errno));
	else if (pread(dio.back, buf, t.len, 0) != (ssize_t)t.len)
		res = kt_fail("read of the backing file: %s", kt_errname(errno));
	else if (!kt_check_at(buf, t.off, t.len, seed,
			      "block device after an O_DIRECT write from the mapping"))
		res = KT_FAIL;
	kt_unmap(p, t.len);
	target_close(&t);
	free(buf);
	return res;
}

/* An O_DIRECT read into the mapping lands in the device's memory. */
static int dio_read(struct kvmfr_dev *d, bool dmabuf)
{
	uint64_t seed = kt_seed(), seed2 = kt_seed();
	int res = dio_missing();
	struct target t;
	uint8_t *p, *buf;

	if (res)
		return res;
	p = dio_open(d, &t, dmabuf, seed, &buf);
	if (!p)
		return KT_FAIL;
	kt_fill_at(buf, t.off, t.len, seed2);
	if (pwrite(dio.back, buf, t.len, 0) != (ssize_t)t.len)
		res = kt_fail("write of the backing file: %s", kt_errname(errno));
	else if (pread(dio.dio, p, t.len, 0) != (ssize_t)t.len)
		res = kt_fail("O_DIRECT read: %s", kt_errname(errno));
	else if (!kt_check_at(t.ref, t.off, t.len, seed2,
			      "O_DIRECT read into the mapping, seen through the device"))
		res = KT_FAIL;
	kt_unmap(p, t.len);
	target_close(&t);
	free(buf);
	return res;
}

/* ---------------------------------------------------------- the table */

#define BOTH(fn)							\
static int fn##_dev(struct kvmfr_dev *d) { return fn(d, false); }	\
static int fn##_buf(struct kvmfr_dev *d) { return fn(d, true); }

BOTH(mremap_moves)
BOTH(mremap_dontunmap)
BOTH(map_populate)
BOTH(mlock_keeps)
BOTH(proc_mem)
BOTH(process_vm)
BOTH(dio_write)
BOTH(dio_read)

#define ADVICE(fn, call, advice)					\
static int fn##_dev(struct kvmfr_dev *d)				\
{ return call(d, false, advice, #advice); }				\
static int fn##_buf(struct kvmfr_dev *d)				\
{ return call(d, true, advice, #advice); }

ADVICE(cold, madvise_keeps, MADV_COLD)
ADVICE(pageout, madvise_keeps, MADV_PAGEOUT)
ADVICE(pop_read, populate, MADV_POPULATE_READ)
ADVICE(pop_write, populate, MADV_POPULATE_WRITE)

static int nothing_left(struct kvmfr_dev *d)
{
	long long n = kt_dmabufs(d), rc = kt_module_refcnt();

	if (n != 0)
		return kt_fail("dmabufs reads %lld", n);
	if (rc != refcnt_base)
		return kt_fail("module refcnt %lld, %lld at start", rc,
			       refcnt_base);
	return KT_PASS;
}

static const struct kt_case cases[] = {
	{ "device mapping: same-size mremap to another address moves it with its data", mremap_moves_dev, KT_ALL },
	{ "dma-buf mapping: same-size mremap to another address moves it with its data", mremap_moves_buf, KT_ALL },
	{ "device mapping: MREMAP_DONTUNMAP fails with EINVAL, mapping kept", mremap_dontunmap_dev, KT_ALL },
	{ "dma-buf mapping: MREMAP_DONTUNMAP fails with EINVAL, mapping kept", mremap_dontunmap_buf, KT_ALL },
	{ "device mapping: MADV_COLD succeeds, data kept", cold_dev, KT_ALL },
	{ "dma-buf mapping: MADV_COLD succeeds, data kept", cold_buf, KT_ALL },
	{ "device mapping: MADV_PAGEOUT succeeds, data kept", pageout_dev, KT_ALL },
	{ "dma-buf mapping: MADV_PAGEOUT succeeds, data kept", pageout_buf, KT_ALL },
	{ "device mapping: MADV_POPULATE_READ maps every page, data kept", pop_read_dev, KT_ALL },
	{ "dma-buf mapping: MADV_POPULATE_READ maps every page, data kept", pop_read_buf, KT_ALL },
	{ "device mapping: MADV_POPULATE_WRITE maps every page, data kept", pop_write_dev, KT_ALL },
	{ "dma-buf mapping: MADV_POPULATE_WRITE maps every page, data kept", pop_write_buf, KT_ALL },
	{ "device mapping: MAP_POPULATE maps every page, data kept", map_populate_dev, KT_ALL },
	{ "dma-buf mapping: MAP_POPULATE maps every page, data kept", map_populate_buf, KT_ALL },
	{ "device mapping: mlock and munlock succeed, data kept", mlock_keeps_dev, KT_ALL },
	{ "dma-buf mapping: mlock and munlock succeed, data kept", mlock_keeps_buf, KT_ALL },
	{ "device mapping: /proc/self/mem reads it and writes to the device", proc_mem_dev, KT_ALL },
	{ "dma-buf mapping: /proc/self/mem reads it and writes to the device", proc_mem_buf, KT_ALL },
	{ "device mapping: process_vm_readv/writev from another process read it and write to the device", process_vm_dev, KT_ALL },
	{ "dma-buf mapping: process_vm_readv/writev from another process read it and write to the device", process_vm_buf, KT_ALL },
	{ "device mapping: O_DIRECT write from it reaches a loop device", dio_write_dev, KT_ALL },
	{ "dma-buf mapping: O_DIRECT write from it reaches a loop device", dio_write_buf, KT_ALL },
	{ "device mapping: O_DIRECT read of a loop device into it writes to the device", dio_read_dev, KT_ALL },
	{ "dma-buf mapping: O_DIRECT read of a loop device into it writes to the device", dio_read_buf, KT_ALL },
	{ "no dma-buf or module reference left behind", nothing_left, KT_ALL },
};

int main(void)
{
	kt_init();
	kt_plan(kt_count_cases(cases, KT_ARRAY_SIZE(cases)));
	refcnt_base = kt_module_refcnt();
	kt_run_cases(cases, KT_ARRAY_SIZE(cases));
	kt_loop_teardown(&dio);
	return kt_exit();
}
