// SPDX-License-Identifier: GPL-2.0
/*
 * Huge mappings under the mm's operations (issue 12). Each test maps a
 * whole device with mmap(NULL), touches it once and requires that it is
 * PMD-mapped (no PTE table for any of its 2 MiB slots, mapping_stats.h),
 * fills it with a pattern, and then does one thing to it: fork, mremap,
 * madvise, mprotect or munmap of a part inside a PMD, or (IVSHMEM)
 * removal of the PCI device while a long-term pin of the mapping is held.
 * Where the kernel must split or drop a PMD the tests check every byte,
 * both ways, through what is left and through a second mapping.
 *
 * Devices whose mappings cannot be PMD-mapped (ms_no_pmds(): an IVSHMEM
 * BAR that is not 2 MiB aligned) skip, saying why; everywhere else a
 * mapping that is not PMD-mapped fails the test.
 */
#include "kvmfr_test.h"
#include "mapping_stats.h"

#define REMOVE_TIMEOUT	60	/* seconds, TCG is slow */
#define PIN_HOLD_MS	2000	/* how long removal is seen waiting */

/* A PMD-mapped mapping of a whole device, filled with @seed. */
struct huge {
	int fd;
	uint8_t *p;
	size_t len;
	uint64_t seed;
};

static void huge_close(struct huge *h)
{
	if (h->p)
		kt_unmap(h->p, h->len);
	h->p = NULL;
	kt_close(h->fd);
	h->fd = -1;
}

/*
 * Maps @d whole and touches it: KT_PASS with @h set up, KT_SKIP where the
 * device cannot be PMD-mapped here, else KT_FAIL (@h closed).
 */
static int huge_open(struct kvmfr_dev *d, struct huge *h)
{
	struct ms_touch t;
	const char *why;
	char buf[160];

	memset(h, 0, sizeof(*h));
	h->fd = -1;
	why = ms_no_pmds(d, buf, sizeof(buf));
	if (why)
		return kt_skip("%s", why);
	h->len = d->size;
	h->fd = kt_open(d);
	if (h->fd < 0)
		return KT_FAIL;
	h->p = kt_map(h->fd, 0, h->len);
	if (!h->p)
		goto fail;
	ms_first_touch(h->p, h->len, true, &t);
	if (!t.guarded) {
		huge_close(h);
		return kt_skip("could not place guard pages: the page-table count is not exact");
	}
	if ((uintptr_t)h->p & (MS_2M - 1) || t.pte_slots) {
		kt_fail("the mapping at %p is not PMD-mapped: %ld of %ld 2 MiB slots have a PTE table",
			(void *)h->p, t.pte_slots, t.slots);
		goto fail;
	}
	h->seed = kt_seed();
	kt_fill_at(h->p, 0, h->len, h->seed);
	return KT_PASS;
fail:
	huge_close(h);
	return KT_FAIL;
}

/*
 * A second, fresh mapping of the device reads @seed everywhere except in
 * [skip, skip + skip_len), which reads @seed2.
 */
static bool second_mapping_reads(struct huge *h, uint64_t seed, uint64_t skip,
				 uint64_t skip_len, uint64_t seed2)
{
	uint8_t *q = kt_map(h->fd, 0, h->len);
	bool ok;

	if (!q)
		return false;
	ok = kt_check_at(q, 0, skip, seed, "second mapping, before") &&
	     kt_check_at(q + skip, skip, skip_len, seed2,
			 "second mapping, the changed part") &&
	     kt_check_at(q + skip + skip_len, skip + skip_len,
			 h->len - skip - skip_len, seed, "second mapping, after");
	kt_unmap(q, h->len);
	return ok;
}

/* An inaccessible reservation of @len + 2 MiB: where mremap may go. */
static uint8_t *reserve(size_t len)
{
	uint8_t *r = mmap(NULL, len + MS_2M, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (r == MAP_FAILED) {
		kt_diag("reserving %zu MiB: %s", len >> 20, kt_errname(errno));
		return NULL;
	}
	return r;
}

/* ------------------------------------------------------------- fork */

/*
 * After fork the stack is copy-on-write and the clock and counters not yet
 * read in this process: take those faults before counting any.
 */
static void settle_after_fork(void)
{
	volatile char warm[16384];
	size_t i;

	for (i = 0; i < sizeof(warm); i += 512)
		warm[i] = 0;
	(void)ms_now_ns();
	(void)ms_faults();
	(void)ms_vmpte();
}

/*
 * The child's view of an inherited mapping: fork copies no page table of
 * a shared mapping without VM_MIXEDMAP, so the child faults PMDs itself.
 */
static int fork_child_reads(struct kvmfr_dev *d)
{
	struct huge h;
	int res = huge_open(d, &h), status;
	pid_t pid;

	if (res != KT_PASS)
		return res;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct ms_touch t;

		settle_after_fork();
		ms_first_touch(h.p, h.len, false, &t);
		if (t.faults > (long)(h.len / MS_2M) ||
		    (t.guarded && t.pte_slots)) {
			kt_diag("child: %ld faults, %ld of %ld slots with a PTE table",
				t.faults, t.pte_slots, t.slots);
			fflush(stdout);
			_exit(1);
		}
		res = kt_check_at(h.p, 0, h.len, h.seed, "child") ? 0 : 2;
		fflush(stdout);
		_exit(res);
	}
	res = KT_FAIL;
	if (pid < 0) {
		kt_diag("fork: %s", kt_errname(errno));
	} else {
		status = kt_wait_child(pid, 60);
		if (kt_child_ok(status, "child reading the mapping"))
			res = KT_PASS;
	}
	huge_close(&h);
	return res;
}

/* What the child writes the parent reads, through its untouched PMDs. */
static int fork_parent_keeps_pmds(struct kvmfr_dev *d)
{
	uint64_t seed2 = kt_seed();
	long long pt0;
	struct huge h;
	int res = huge_open(d, &h), status;
	long f0, faults;
	pid_t pid;

	if (res != KT_PASS)
		return res;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		kt_fill_at(h.p, 0, h.len, seed2);
		_exit(0);
	}
	res = KT_FAIL;
	if (pid < 0) {
		kt_diag("fork: %s", kt_errname(errno));
		goto out;
	}
	status = kt_wait_child(pid, 60);
	if (!kt_child_ok(status, "child writing the mapping"))
		goto out;
	settle_after_fork();
	pt0 = ms_vmpte();
	f0 = ms_faults();
	if (!kt_check_at(h.p, 0, h.len, seed2, "parent, after the child wrote"))
		goto out;
	faults = ms_faults() - f0;
	if (faults || ms_vmpte() != pt0) {
		kt_diag("parent's re-read after fork: %ld faults, VmPTE %+lld bytes; want 0 and 0",
			faults, ms_vmpte() - pt0);
		goto out;
	}
	res = KT_PASS;
out:
	huge_close(&h);
	return res;
}

/* ----------------------------------------------------------- mremap */

/*
 * Moves the mapping to @shift bytes past a 2 MiB boundary of a fresh
 * reservation; then the data must be there, and new data written through
 * the moved mapping must reach the device. With @shift 0 the move keeps
 * the PMDs: re-reading adds no PTE table.
 */
static int mremap_to(struct kvmfr_dev *d, size_t shift)
{
	uint64_t seed2 = kt_seed();
	uint8_t *r, *to, *q;
	struct ms_touch t;
	struct huge h;
	int res = huge_open(d, &h);

	if (res != KT_PASS)
		return res;
	res = KT_FAIL;
	r = reserve(h.len);
	if (!r)
		goto out;
	to = (uint8_t *)(((uintptr_t)r + MS_2M - 1) & ~(MS_2M - 1)) + shift;
	q = mremap(h.p, h.len, h.len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (q == MAP_FAILED) {
		kt_diag("mremap to %p: %s", (void *)to, kt_errname(errno));
		munmap(r, h.len + MS_2M);
		goto out;
	}
	/* the rest of the reservation goes; the mapping is at q now */
	if (q > r)
		munmap(r, q - r);
	if (q + h.len < r + h.len + MS_2M)
		munmap(q + h.len, r + h.len + MS_2M - (q + h.len));
	h.p = q;
	ms_first_touch(h.p, h.len, false, &t);
	if (!kt_check_at(h.p, 0, h.len, h.seed, "moved mapping"))
		goto out;
	if (!shift && t.guarded && t.pte_slots) {
		kt_diag("after the move %ld of %ld 2 MiB slots have a PTE table",
			t.pte_slots, t.slots);
		goto out;
	}
	kt_fill_at(h.p, 0, h.len, seed2);
	if (second_mapping_reads(&h, seed2, 0, 0, seed2))
		res = KT_PASS;
out:
	huge_close(&h);
	return res;
}

static int mremap_aligned(struct kvmfr_dev *d)
{
	return mremap_to(d, 0);
}

static int mremap_unaligned(struct kvmfr_dev *d)
{
	return mremap_to(d, kt_page);
}

/* ------------------------------------------- a 4 KiB hole in a PMD */

/* The page that tests split a PMD at: 5 pages into the last 2 MiB. */
static uint64_t mid_page(const struct huge *h)
{
	return h->len - MS_2M + 5 * kt_page;
}

/*
 * MADV_DONTNEED of one page inside a PMD: a shared mapping's data stays;
 * the whole 2 MiB around it reads back, and writes reach the device.
 */
static int dontneed_page(struct kvmfr_dev *d)
{
	uint64_t seed2 = kt_seed(), at;
	struct huge h;
	int res = huge_open(d, &h);

	if (res != KT_PASS)
		return res;
	res = KT_FAIL;
	at = mid_page(&h);
	if (madvise(h.p + at, kt_page, MADV_DONTNEED)) {
		kt_diag("MADV_DONTNEED of 4 KiB: %s", kt_errname(errno));
		goto out;
	}
	if (!kt_check_at(h.p, 0, h.len, h.seed, "after MADV_DONTNEED"))
		goto out;
	kt_fill_at(h.p + at, at, kt_page, seed2);
	if (second_mapping_reads(&h, h.seed, at, kt_page, seed2))
		res = KT_PASS;
out:
	huge_close(&h);
	return res;
}

/* MADV_DONTNEED of everything: data stays, PMDs come back on re-touch. */
static int dontneed_all(struct kvmfr_dev *d)
{
	struct ms_touch t;
	struct huge h;
	int res = huge_open(d, &h);

	if (res != KT_PASS)
		return res;
	res = KT_FAIL;
	if (madvise(h.p, h.len, MADV_DONTNEED)) {
		kt_diag("MADV_DONTNEED: %s", kt_errname(errno));
		goto out;
	}
	ms_first_touch(h.p, h.len, false, &t);
	if (t.faults > (long)(h.len / MS_2M) || (t.guarded && t.pte_slots)) {
		kt_diag("re-touch: %ld faults, %ld of %ld slots with a PTE table",
			t.faults, t.pte_slots, t.slots);
		goto out;
	}
	if (kt_check_at(h.p, 0, h.len, h.seed, "after MADV_DONTNEED"))
		res = KT_PASS;
out:
	huge_close(&h);
	return res;
}

/*
 * mprotect(PROT_READ) of one page inside a PMD: writes to it raise
 * SIGSEGV, every byte still reads, writes everywhere else reach the
 * device.
 */
static int mprotect_page(struct kvmfr_dev *d)
{
	uint64_t seed2 = kt_seed(), at;
	struct huge h;
	int res = huge_open(d, &h);

	if (res != KT_PASS)
		return res;
	res = KT_FAIL;
	at = mid_page(&h);
	if (mprotect(h.p + at, kt_page, PROT_READ)) {
		kt_diag("mprotect of 4 KiB: %s", kt_errname(errno));
		goto out;
	}
	if (!kt_probe_raises(h.p + at, true, SIGSEGV, "read-only page") ||
	    !kt_check_at(h.p, 0, h.len, h.seed, "after mprotect"))
		goto out;
	kt_fill_at(h.p, 0, at, seed2);
	kt_fill_at(h.p + at + kt_page, at + kt_page, h.len - at - kt_page,
		   seed2);
	if (second_mapping_reads(&h, seed2, at, kt_page, h.seed))
		res = KT_PASS;
out:
	huge_close(&h);
	return res;
}

/*
 * munmap of one page inside a PMD: that page raises SIGSEGV, the rest
 * keeps its bytes and takes writes.
 */
static int munmap_page(struct kvmfr_dev *d)
{
	uint64_t seed2 = kt_seed(), at;
	struct huge h;
	int res = huge_open(d, &h);
	uint8_t *p;

	if (res != KT_PASS)
		return res;
	res = KT_FAIL;
	at = mid_page(&h);
	if (munmap(h.p + at, kt_page)) {
		kt_diag("munmap of 4 KiB: %s", kt_errname(errno));
		goto out;
	}
	p = h.p;
	if (!kt_probe_raises(p + at, false, SIGSEGV, "unmapped page") ||
	    !kt_check_at(p, 0, at, h.seed, "below the hole") ||
	    !kt_check_at(p + at + kt_page, at + kt_page, h.len - at - kt_page,
			 h.seed, "above the hole"))
		goto unmap;
	kt_fill_at(p, 0, at, seed2);
	kt_fill_at(p + at + kt_page, at + kt_page, h.len - at - kt_page, seed2);
	if (second_mapping_reads(&h, seed2, at, kt_page, h.seed))
		res = KT_PASS;
unmap:
	/* two pieces now */
	kt_unmap(p, at);
	kt_unmap(p + at + kt_page, h.len - at - kt_page);
	h.p = NULL;
out:
	huge_close(&h);
	return res;
}

/* ------------------------------------------------ removal (IVSHMEM) */

static int remove_dev(struct kvmfr_dev *d, int timeout_s, pid_t *pending)
{
	char path[160];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove",
		 d->pci_addr);
	return kt_write_file_bounded(path, "1", timeout_s, pending);
}

/* Rescan, wait for the device, and check its @len bytes still hold @seed. */
static bool rescan_reads(struct kvmfr_dev *d, size_t len, uint64_t seed)
{
	uint64_t end = kt_now_ms() + REMOVE_TIMEOUT * 1000;
	uint8_t *q;
	pid_t pending;
	bool ok;
	int fd, r;

	r = kt_write_file_bounded("/sys/bus/pci/rescan", "1", REMOVE_TIMEOUT,
				  &pending);
	if (r) {
		kt_diag("rescan: %s", kt_errname(-r));
		return false;
	}
	while (!(kt_resolve(d) && kt_exists(d->node))) {
		if (kt_now_ms() > end) {
			kt_diag("%s did not come back", d->pci_addr);
			return false;
		}
		kt_sleep_ms(50);
	}
	if (!len)
		return true;
	fd = kt_open(d);
	if (fd < 0)
		return false;
	q = kt_map(fd, 0, len);
	ok = q && kt_check_at(q, 0, len, seed, "after rescan");
	kt_unmap(q, len);
	kt_close(fd);
	return ok;
}

/*
 * PCI removal with the PMD-mapped mapping live: the mapping raises
 * SIGBUS afterwards, and the device comes back on rescan with its bytes
 * (the memory is the host's).
 */
static int remove_live(struct kvmfr_dev *d)
{
	struct huge h;
	int res = huge_open(d, &h), r;
	pid_t pending;

	if (res != KT_PASS)
		return res;
	res = KT_FAIL;
	r = remove_dev(d, REMOVE_TIMEOUT, &pending);
	if (r) {
		kt_diag("remove: %s", kt_errname(-r));
		if (r == -ETIMEDOUT) {
			huge_close(&h);
			kt_wait_child(pending, REMOVE_TIMEOUT);
		}
		goto out;
	}
	if (!kt_probe_raises(h.p, false, SIGBUS, "first page") ||
	    !kt_probe_raises(h.p + h.len - 1, true, SIGBUS, "last byte"))
		goto out;
	huge_close(&h);
	if (rescan_reads(d, h.len, h.seed))
		res = KT_PASS;
out:
	huge_close(&h);
	return res;
}

/* What IORING_OP_WRITE_FIXED sends from the whole fixed buffer is @seed. */
static bool pinned_bytes(struct ms_ring *ring, uint8_t *p, size_t len,
			 uint64_t seed)
{
	uint8_t *chunk = malloc(MS_2M);
	bool ok = false;
	uint64_t off;
	int tfd, ret;

	tfd = open("pinned.out", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (tfd < 0 || !chunk) {
		kt_diag("tmpfs file: %s", strerror(errno));
		goto out;
	}
	for (off = 0; off < len; off += MS_2M) {
		ret = ms_ring_rw_fixed(ring, IORING_OP_WRITE_FIXED, tfd,
				       p + off, MS_2M, 0);
		if (ret != (int)MS_2M) {
			kt_diag("IORING_OP_WRITE_FIXED at %#" PRIx64 ": %d (%s)",
				off, ret, ret < 0 ? kt_errname(-ret) : "short");
			goto out;
		}
		if (pread(tfd, chunk, MS_2M, 0) != (ssize_t)MS_2M) {
			kt_diag("pread: %s", strerror(errno));
			goto out;
		}
		if (!kt_check_at(chunk, off, MS_2M, seed, "sent from the pin"))
			goto out;
	}
	ok = true;
out:
	free(chunk);
	if (tfd >= 0)
		close(tfd);
	unlink("pinned.out");
	return ok;
}

/*
 * PCI removal while the PMD-mapped mapping is long-term pinned (an
 * io_uring fixed buffer, FOLL_LONGTERM as VFIO's pin): removal cuts the
 * mapping off (SIGBUS) but waits, the pinned pages still hold the
 * device's bytes, and it completes once the pin is released.
 */
static int remove_waits_for_pin(struct kvmfr_dev *d)
{
	struct ms_ring ring = { .fd = -1 };
	bool registered = false;
	pid_t pending = -1;
	struct huge h;
	int res = huge_open(d, &h), r;

	if (res != KT_PASS)
		return res;
	res = KT_FAIL;
	r = ms_ring_init(&ring, 4);
	if (r) {
		kt_diag("io_uring_setup: %s", kt_errname(-r));
		goto out;
	}
	r = ms_ring_register(&ring, h.p, h.len);
	if (r == -EOPNOTSUPP) {
		res = kt_skip("io_uring of this kernel takes no fixed buffer from this mapping (EOPNOTSUPP: before 6.5 only shmem and hugetlb ones)");
		goto out;
	}
	if (r) {
		kt_diag("IORING_REGISTER_BUFFERS: %s", kt_errname(-r));
		goto out;
	}
	registered = true;
	r = remove_dev(d, PIN_HOLD_MS / 1000, &pending);
	if (r != -ETIMEDOUT) {
		kt_diag("remove returned (%s) while %zu MiB were pinned",
			r ? kt_errname(-r) : "success", h.len >> 20);
		goto out;
	}
	if (!kt_probe_raises(h.p, false, SIGBUS, "mapping while removal waits") ||
	    !pinned_bytes(&ring, h.p, h.len, h.seed))
		goto out;
	r = ms_ring_unregister(&ring);
	registered = false;
	if (r) {
		kt_diag("IORING_UNREGISTER_BUFFERS: %s", strerror(errno));
		goto out;
	}
	r = kt_wait_child(pending, REMOVE_TIMEOUT);
	pending = -1;
	if (!kt_child_ok(r, "remove after the pin was released"))
		goto out;
	huge_close(&h);
	if (rescan_reads(d, h.len, h.seed))
		res = KT_PASS;
out:
	if (registered && ms_ring_unregister(&ring))
		kt_diag("IORING_UNREGISTER_BUFFERS: %s", strerror(errno));
	ms_ring_exit(&ring);
	huge_close(&h);
	if (pending > 0)
		kt_wait_child(pending, REMOVE_TIMEOUT);
	if (!kt_resolve(d))
		rescan_reads(d, 0, 0);
	return res;
}

/* -------------------------------------------------------------- main */

static const struct kt_case cases[] = {
	{ "fork: the child's first read of the inherited PMD-mapped mapping takes <= 1 fault per 2 MiB, no PTE table, and sees the parent's bytes", fork_child_reads, KT_ALL },
	{ "fork: the parent reads what the child wrote through its PMDs, with no fault and no page table added", fork_parent_keeps_pmds, KT_ALL },
	{ "mremap of the PMD-mapped mapping to another 2 MiB-aligned address keeps its bytes and its PMDs", mremap_aligned, KT_ALL },
	{ "mremap of the PMD-mapped mapping to 4 KiB past a 2 MiB boundary keeps every byte, both ways", mremap_unaligned, KT_ALL },
	{ "MADV_DONTNEED of 4 KiB inside a PMD keeps every byte, both ways", dontneed_page, KT_ALL },
	{ "MADV_DONTNEED of the whole PMD-mapped mapping keeps its bytes, and re-reading maps PMDs again", dontneed_all, KT_ALL },
	{ "mprotect(PROT_READ) of 4 KiB inside a PMD: a write there raises SIGSEGV, every other byte reads and writes", mprotect_page, KT_ALL },
	{ "munmap of 4 KiB inside a PMD: that page raises SIGSEGV, the rest keeps its bytes, both ways", munmap_page, KT_ALL },
	{ "PCI remove with the PMD-mapped mapping live: it raises SIGBUS, rescan brings the bytes back", remove_live, KT_PCI },
	{ "PCI remove waits while the PMD-mapped mapping is long-term pinned (io_uring), the pin keeps the device's bytes, and finishes on unpin", remove_waits_for_pin, KT_PCI },
};

int main(void)
{
	kt_init();
	kt_plan(kt_count_cases(cases, KT_ARRAY_SIZE(cases)));
	kt_run_cases(cases, KT_ARRAY_SIZE(cases));
	return kt_exit();
}
