// SPDX-License-Identifier: GPL-2.0
/*
 * Huge mappings (issue 12): 2 MiB page-table entries for kvmfr memory.
 *
 * The program reloads kvmfr with static_size_mb=64,3 (a 64 MiB static
 * device, and a 3 MiB one whose size is not a multiple of 2 MiB), runs the
 * static tests, then the IVSHMEM tests on the harness's devices (KVMFR_PCI,
 * found by PCI address), and reloads the module with the harness's own
 * parameters at the end, as rmmod.c does.
 *
 * Counts (mapping_stats.h says how each is taken):
 *  - an ordinary mmap(NULL, ...) of 2 MiB or more gets a 2 MiB-aligned
 *    address (the module's get_unmapped_area);
 *  - first touch of the whole mapping (one write per 4 KiB page) takes at
 *    most one fault per 2 MiB (minor or major);
 *  - after it, every 2 MiB of the mapping is PMD-mapped: for static memory
 *    per smaps (the *PmdMapped fields cover the whole mapping, Rss minus
 *    them, the 4 KiB-mapped part, is 0); for IVSHMEM, whose device pages
 *    smaps does not count as PMD-mapped on any kernel, per page tables (no
 *    PTE table was allocated for any 2 MiB slot of the range);
 *  - VmPTE grows by at most 8 KiB;
 *  - the same through a dma-buf mmap of the whole device.
 * Correctness around the huge mappings: dma-bufs at offsets that are not
 * 2 MiB aligned map exactly their bytes, both ways, and never a neighbour;
 * a 3 MiB device and a dma-buf of 2 MiB + 4 KiB read and write every byte;
 * a long-term pin (io_uring fixed buffer, FOLL_LONGTERM) of the PMD-mapped
 * 64 MiB mapping works and sees what is written through the mapping; an
 * importer that takes 2 MiB DMA segments (tests/edu, KVMFR_EDU_SET_MAX_SEG)
 * gets at most one segment per 2 MiB.
 * Static memory short of 2 MiB folios: loaded while shmem THP is "deny"
 * (none to be had, as on a machine too fragmented for any) and, on the
 * debug kernel, while fail_page_alloc fails every second 2 MiB allocation
 * (some): the load's log line says how many MiB are huge, smaps shows
 * exactly those PMD-mapped and the rest 4 KiB-mapped, every byte goes
 * both ways; with none, faults still map 2 MiB of PTEs each.
 */
#include "kvmfr_test.h"
#include "mapping_stats.h"

#define BIG_MB		64
#define ODD_MB		3
#define PT_LIMIT	8192	/* VmPTE growth allowed for one mapping */
#define CHUNK		(4u << 20)

static const char *ko_path;
static char params_orig[160], params_test[160];
static struct kvmfr_dev big, odd;

/* ------------------------------------------------------ module reload */

/* rmmod, retried while something lets go of a reference (up to 10 s). */
static int unload(void)
{
	int i;

	for (i = 0; i < 200; i++) {
		if (!syscall(SYS_delete_module, "kvmfr", O_NONBLOCK))
			return 0;
		if (errno != EAGAIN && errno != EBUSY && errno != EWOULDBLOCK)
			return -1;
		kt_sleep_ms(50);
	}
	return -1;
}

static int reload(const char *params)
{
	uint64_t end;
	int i, ok;

	if (kt_exists("/sys/module/kvmfr") && unload())
		return kt_fail("rmmod kvmfr: %s (refcnt %lld)",
			       kt_errname(errno), kt_module_refcnt());
	if (kt_load_module(ko_path, params))
		return kt_fail("finit_module(%s, \"%s\"): %s", ko_path, params,
			       kt_errname(errno));
	end = kt_now_ms() + 10000;
	do {
		for (i = 0, ok = 1; i < kt_ndev; i++)
			if (kt_devs[i].pci)
				ok &= kt_resolve(&kt_devs[i]) &&
				      kt_exists(kt_devs[i].node);
		if (ok)
			return KT_PASS;
		kt_sleep_ms(50);
	} while (kt_now_ms() < end);
	return kt_fail("the IVSHMEM devices did not come back in 10 s");
}

/* ------------------------------------------------------- measurement */

/* One mapping of a whole device or dma-buf, touched once and measured. */
struct measure {
	bool done;
	uint8_t *p;
	size_t len;
	struct ms_touch t;
	struct ms_smaps s;
};

static void measure_unmap(struct measure *m)
{
	if (m->p)
		kt_unmap(m->p, m->len);
	m->p = NULL;
}

/*
 * A shared mapping of @len bytes of @fd at offset 0 at a 2 MiB-aligned
 * address the caller picks, as a client must for a dma-buf (whose file
 * has no get_unmapped_area of kvmfr's): reserve 2 MiB more, map over the
 * aligned part, give back the rest.
 */
static void *map_aligned(int fd, size_t len)
{
	uint8_t *r, *p;
	size_t head;

	r = mmap(NULL, len + MS_2M, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		 0);
	if (r == MAP_FAILED) {
		kt_diag("reserving %zu MiB: %s", len >> 20, kt_errname(errno));
		return NULL;
	}
	head = -(uintptr_t)r & (MS_2M - 1);
	p = mmap(r + head, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 fd, 0);
	if (p == MAP_FAILED) {
		kt_diag("mmap(MAP_FIXED at %p, %zu MiB): %s", (void *)(r + head),
			len >> 20, kt_errname(errno));
		munmap(r, len + MS_2M);
		return NULL;
	}
	if (head)
		munmap(r, head);
	munmap(p + len, MS_2M - head);
	return p;
}

/*
 * mmap(NULL) (or, with @fixed, map_aligned) of @len bytes of @fd at 0,
 * first touch by writes, smaps.
 */
static bool measure_map(int fd, size_t len, bool fixed, struct measure *m)
{
	memset(m, 0, sizeof(*m));
	m->len = len;
	m->p = fixed ? map_aligned(fd, len) : kt_map(fd, 0, len);
	if (!m->p)
		return false;
	ms_first_touch(m->p, len, true, &m->t);
	ms_smaps(m->p, &m->s);
	m->done = true;
	kt_diag("mapping at %p, %zu MiB: %ld faults in %.1f ms (TCG); smaps: Rss %" PRIu64
		" kB, PMD-mapped %" PRIu64 " kB (%s), KernelPageSize %" PRIu64
		" kB; page tables +%lld B, %ld of %ld 2 MiB slots with a PTE table%s",
		(void *)m->p, len >> 20, m->t.faults, m->t.ns / 1e6,
		m->s.rss >> 10, m->s.pmd >> 10, m->s.pmd_fields,
		m->s.kernel_page >> 10, m->t.pt_bytes, m->t.pte_slots,
		m->t.slots, m->t.guarded ? "" : " (not exact: no guard pages)");
	return true;
}

static int check_aligned(const struct measure *m)
{
	if (!m->done)
		return kt_fail("not mapped");
	if ((uintptr_t)m->p & (MS_2M - 1))
		return kt_fail("mmap(NULL, %zu MiB) returned %p, %#lx past a 2 MiB boundary",
			       m->len >> 20, (void *)m->p,
			       (unsigned long)((uintptr_t)m->p & (MS_2M - 1)));
	return KT_PASS;
}

static int check_faults(const struct measure *m)
{
	long limit = m->len / MS_2M;

	if (!m->done)
		return kt_fail("not mapped");
	if (m->t.faults > limit)
		return kt_fail("%ld faults to touch %zu MiB, want <= %ld",
			       m->t.faults, m->len >> 20, limit);
	return KT_PASS;
}

/* Static memory: smaps is the authority. */
static int check_pmd_smaps(const struct measure *m)
{
	if (!m->done)
		return kt_fail("not mapped");
	if (m->s.rss != m->len)
		return kt_fail("smaps Rss %" PRIu64 " kB, want %zu kB (all touched)",
			       m->s.rss >> 10, m->len >> 10);
	if (m->s.pmd < m->len)
		return kt_fail("smaps: %" PRIu64 " of %zu kB PMD-mapped (%" PRIu64
			       " of %zu PMDs), %" PRIu64 " kB 4 KiB-mapped",
			       m->s.pmd >> 10, m->len >> 10, m->s.pmd / MS_2M,
			       m->len / MS_2M, (m->s.rss - m->s.pmd) >> 10);
	return KT_PASS;
}

/* IVSHMEM: page tables are the authority (see mapping_stats.h). */
static int check_pmd_tables(const struct measure *m)
{
	if (!m->done)
		return kt_fail("not mapped");
	if (!m->t.guarded) {
		kt_skip("could not place guard pages around %p: the page-table count is not exact",
			(void *)m->p);
		return KT_SKIP;
	}
	if (m->t.pte_slots)
		return kt_fail("%ld of %ld 2 MiB slots mapped with a PTE table (%ld PMDs, %ld KiB 4 KiB-mapped at most)",
			       m->t.pte_slots, m->t.slots,
			       m->t.slots - m->t.pte_slots,
			       m->t.pte_slots * 2048);
	return KT_PASS;
}

static int check_vmpte(const struct measure *m)
{
	if (!m->done)
		return kt_fail("not mapped");
	if (m->t.pt_bytes > PT_LIMIT)
		return kt_fail("VmPTE grew by %lld bytes, want <= %d",
			       m->t.pt_bytes, PT_LIMIT);
	return KT_PASS;
}

/*
 * The count tests of a measured mapping (all skipped if @skip); the
 * alignment test only where the module chose the address (@fixed false).
 */
static void report_counts(const char *what, struct measure *m, bool smaps,
			  bool fixed, const char *skip)
{
	size_t mib = m->len >> 20, n = m->len / MS_2M;

#define COUNT_TEST(check, ...)						\
	do {								\
		if (skip)						\
			kt_skip("%s", skip);				\
		kt_report(skip ? KT_SKIP : (check), __VA_ARGS__);	\
	} while (0)
	if (!fixed)
		COUNT_TEST(check_aligned(m),
			   "%s: mmap(NULL) of %zu MiB is 2 MiB aligned", what,
			   mib);
	COUNT_TEST(check_faults(m), "%s: first touch of %zu MiB takes <= %zu faults",
		   what, mib, n);
	if (smaps)
		COUNT_TEST(check_pmd_smaps(m),
			   "%s: smaps shows all %zu MiB PMD-mapped (>= %zu PMDs, 0 bytes 4 KiB-mapped)",
			   what, mib, n);
	else
		COUNT_TEST(check_pmd_tables(m),
			   "%s: every 2 MiB of the %zu MiB is PMD-mapped (>= %zu PMDs, no PTE table)",
			   what, mib, n);
	COUNT_TEST(check_vmpte(m), "%s: VmPTE grows by <= %d KiB", what,
		   PT_LIMIT >> 10);
#undef COUNT_TEST
}

/* Device mapping and dma-buf mapping of the whole of @d: 7 tests. */
static void whole_device(struct kvmfr_dev *d, bool smaps, const char *skip)
{
	struct measure m;
	char what[96];
	int fd = -1, db, i;

	if (!skip)
		fd = kt_resolve(d) ? kt_open(d) : -1;
	for (i = 0; i < 2; i++) {
		snprintf(what, sizeof(what), "%s %s mapping", d->label,
			 i ? "dma-buf (2 MiB-aligned MAP_FIXED)" : "device");
		memset(&m, 0, sizeof(m));
		m.len = d->size ? d->size : d->expect_size;
		db = -1;
		if (fd >= 0 && i == 1) {
			db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, d->size);
			if (db < 0)
				kt_diag("CREATE(0, %" PRIu64 "): %s", d->size,
					kt_errname(errno));
		}
		if (fd >= 0 && (i == 0 || db >= 0))
			measure_map(i ? db : fd, d->size, i == 1, &m);
		report_counts(what, &m, smaps, i == 1, skip);
		measure_unmap(&m);
		kt_close(db);
	}
	kt_close(fd);
}

/* ----------------------------------------------- bytes of dma-bufs */

static int db_sync(int db, bool start)
{
	struct dma_buf_sync s = {
		.flags = (start ? DMA_BUF_SYNC_START : DMA_BUF_SYNC_END) |
			 DMA_BUF_SYNC_RW,
	};

	return ioctl(db, DMA_BUF_IOCTL_SYNC, &s);
}

/*
 * A dma-buf of [off, off + len) of @d, mapped with mmap(NULL) from its
 * page @pgoff on: it reads exactly the device's bytes there, and what is
 * written through it lands there and nowhere else (4 KiB on each side
 * keep the old bytes).
 */
static int dmabuf_bytes(struct kvmfr_dev *d, uint64_t off, uint64_t len,
			uint64_t pgoff)
{
	uint64_t at = off + pgoff * 4096, n = len - pgoff * 4096;
	uint64_t lo = at >= 4096 ? at - 4096 : 0;
	uint64_t hi = at + n + 4096 <= d->size ? at + n + 4096 : d->size;
	uint64_t seed = kt_seed(), seed2 = kt_seed();
	uint8_t *dev = NULL, *p = NULL;
	int fd, db = -1, res = KT_FAIL;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	dev = kt_map(fd, 0, d->size);
	if (!dev)
		goto out;
	kt_fill_at(dev + lo, lo, hi - lo, seed);
	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, off, len);
	if (db < 0) {
		kt_diag("CREATE(%#" PRIx64 ", %#" PRIx64 "): %s", off, len,
			kt_errname(errno));
		goto out;
	}
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, db,
		 (off_t)(pgoff * 4096));
	if (p == MAP_FAILED) {
		p = NULL;
		kt_diag("mmap of the dma-buf at page %" PRIu64 ": %s", pgoff,
			kt_errname(errno));
		goto out;
	}
	kt_diag("dma-buf [%#" PRIx64 ", %#" PRIx64 ") mapped from its byte %#" PRIx64
		" at %p (%#lx past 2 MiB; device offset %#lx past 2 MiB)",
		off, off + len, pgoff * 4096, (void *)p,
		(unsigned long)((uintptr_t)p & (MS_2M - 1)),
		(unsigned long)(at & (MS_2M - 1)));
	if (db_sync(db, true))
		kt_diag("SYNC START: %s", kt_errname(errno));
	if (!kt_check_at(p, at, n, seed, "read through the dma-buf mapping"))
		goto out;
	kt_fill_at(p, at, n, seed2);
	if (db_sync(db, false))
		kt_diag("SYNC END: %s", kt_errname(errno));
	if (!kt_check_at(dev + at, at, n, seed2,
			 "written through the dma-buf, read through the device mapping") ||
	    !kt_check_at(dev + lo, lo, at - lo, seed, "the bytes just before") ||
	    !kt_check_at(dev + at + n, at + n, hi - at - n, seed,
			 "the bytes just after"))
		goto out;
	res = KT_PASS;
out:
	if (p)
		kt_unmap(p, n);
	kt_close(db);
	if (dev)
		kt_unmap(dev, d->size);
	kt_close(fd);
	return res;
}

/*
 * Every byte of a device whose size is not a multiple of 2 MiB, through two
 * different mappings: written through the device mapping (mmap(NULL) of
 * the whole device), read through a dma-buf mapping of the whole device,
 * then the other way round.
 */
static int whole_device_bytes(struct kvmfr_dev *d)
{
	uint64_t seed = kt_seed(), seed2 = kt_seed();
	uint8_t *a = NULL, *b = NULL;
	int fd, db = -1, res = KT_FAIL;
	struct ms_smaps s;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	a = kt_map(fd, 0, d->size);
	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, d->size);
	if (db < 0)
		kt_diag("CREATE(0, %" PRIu64 "): %s", d->size, kt_errname(errno));
	else
		b = kt_map(db, 0, d->size);
	if (!a || !b)
		goto out;
	kt_fill_at(a, 0, d->size, seed);
	ms_smaps(a, &s);
	kt_diag("%" PRIu64 " KiB device at %p: Rss %" PRIu64 " kB, PMD-mapped %" PRIu64
		" kB, 4 KiB-mapped %" PRIu64 " kB", d->size >> 10, (void *)a,
		s.rss >> 10, s.pmd >> 10, (s.rss - s.pmd) >> 10);
	db_sync(db, true);
	if (!kt_check_at(b, 0, d->size, seed,
			 "written through the device mapping, read through the dma-buf mapping"))
		goto out;
	kt_fill_at(b, 0, d->size, seed2);
	db_sync(db, false);
	if (kt_check_at(a, 0, d->size, seed2,
			"written through the dma-buf mapping, read through the device mapping"))
		res = KT_PASS;
out:
	if (a)
		kt_unmap(a, d->size);
	if (b)
		kt_unmap(b, d->size);
	kt_close(db);
	kt_close(fd);
	return res;
}

/* The byte tests, each under the fault guard (a SIGBUS fails the test). */
static int unaligned_offset_bytes(struct kvmfr_dev *d)
{
	return dmabuf_bytes(d, MS_2M + 4096, 6 * MS_2M, 0);
}

static int unaligned_pgoff_bytes(struct kvmfr_dev *d)
{
	return dmabuf_bytes(d, 0, 6 * MS_2M, 3);
}

static int odd_dmabuf_bytes(struct kvmfr_dev *d)
{
	return dmabuf_bytes(d, 0, MS_2M + 4096, 0);
}

/* ------------------------------------- static memory short of 2 MiB folios */

#define SHMEM_ENABLED	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define FAIL_PAGE_ALLOC	"/sys/kernel/debug/fail_page_alloc/"
#define SHORT_MB	16

/* A static device loaded while 2 MiB folios were scarce or denied. */
struct short_load {
	struct kvmfr_dev d;
	bool none;		/* no 2 MiB folio is to be had at all */
	int kmsg;		/* /dev/kmsg, from just before the load */
	char skip[160];		/* why the load could not be made */
};

static void short_init(struct short_load *l, bool none)
{
	memset(l, 0, sizeof(*l));
	l->none = none;
	l->kmsg = -1;
	l->d.index = 0;
	l->d.expect_size = (uint64_t)SHORT_MB << 20;
	snprintf(l->d.label, sizeof(l->d.label), "static %d MiB, %s", SHORT_MB,
		 none ? "shmem THP denied" : "fragmented load");
}

/* shmem_enabled's mode (its bracketed word), or "" without shmem THP. */
static void shmem_mode(char *mode, size_t len)
{
	char buf[128], *a, *b;

	mode[0] = '\0';
	if (kt_read_file(SHMEM_ENABLED, buf, sizeof(buf)))
		return;
	a = strchr(buf, '[');
	b = a ? strchr(a, ']') : NULL;
	if (b && (size_t)(b - a) < len) {
		*b = '\0';
		kt_strcpy(mode, a + 1, len);
	}
}

/* Reload with one SHORT_MB device while shmem THP is "deny", then undo. */
static int load_denied(struct short_load *l)
{
	char mode[32], params[64];
	int ret, err;

	shmem_mode(mode, sizeof(mode));
	if (!mode[0]) {
		snprintf(l->skip, sizeof(l->skip),
			 "no shmem THP in this kernel (%s)", SHMEM_ENABLED);
		return kt_skip("%s", l->skip);
	}
	err = kt_write_file(SHMEM_ENABLED, "deny");
	if (err)
		return kt_fail("writing deny to %s: %s", SHMEM_ENABLED,
			       kt_errname(-err));
	l->kmsg = kt_kmsg_open();
	snprintf(params, sizeof(params), "static_size_mb=%d", SHORT_MB);
	ret = reload(params);
	err = kt_write_file(SHMEM_ENABLED, mode);
	if (err)
		return kt_fail("giving %s its mode %s back: %s", SHMEM_ENABLED,
			       mode, kt_errname(-err));
	return ret;
}

/*
 * fail_page_alloc (@on): fail every second allocation of 2 MiB or more
 * (order 9) made with module code on the stack (any address in the x86-64
 * module area: kvmfr's, as no other module allocates meanwhile),
 * reclaiming and highmem ones included, silently; off: every knob back to its default, failing first
 * switched off. 0, or -1 if a write failed.
 */
static int frag_inject(bool on)
{
	static const char *const knobs[][3] = {
		/* knob, on, default */
		{ "probability", "0", "0" },
		{ "verbose", "0", "2" },
		{ "min-order", "9", "1" },
		{ "ignore-gfp-highmem", "N", "Y" },
		{ "ignore-gfp-wait", "N", "Y" },
		{ "stacktrace-depth", "64", "32" },
		{ "require-end", "0xffffffffff000000", "0xffffffffffffffff" },
		{ "require-start", "0xffffffffa0000000", "0" },
		{ "interval", "2", "1" },
		{ "times", "-1", "1" },
		{ "probability", "100", "0" },
	};
	char path[128];
	int err, bad = 0;
	size_t i;

	for (i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		snprintf(path, sizeof(path), FAIL_PAGE_ALLOC "%s", knobs[i][0]);
		err = kt_write_file(path, knobs[i][on ? 1 : 2]);
		if (err) {
			kt_diag("writing %s to %s: %s", knobs[i][on ? 1 : 2],
				path, kt_errname(-err));
			bad = 1;
			if (on)
				break;
		}
	}
	return bad ? -1 : 0;
}

/*
 * Load one SHORT_MB device under frag_inject, the IVSHMEM functions held
 * off meanwhile (their probe's own 2 MiB allocations, of the vmemmap, warn
 * when they fail), then bind them again.
 */
static int load_fragmented(struct short_load *l)
{
	char params[64];
	int ret = KT_PASS, err = 0;

	if (!kt_exists(FAIL_PAGE_ALLOC "require-start")) {
		snprintf(l->skip, sizeof(l->skip),
			 "no fail_page_alloc with a stack filter in this kernel (the debug kernel has it)");
		return kt_skip("%s", l->skip);
	}
	if (kt_exists("/sys/module/kvmfr") && unload())
		return kt_fail("rmmod kvmfr: %s (refcnt %lld)",
			       kt_errname(errno), kt_module_refcnt());
	if (kt_hold_pci(true)) {
		kt_hold_pci(false);
		return kt_fail("cannot hold the IVSHMEM functions off (driver_override)");
	}
	snprintf(params, sizeof(params), "static_size_mb=%d", SHORT_MB);
	l->kmsg = kt_kmsg_open();
	if (frag_inject(true))
		ret = kt_fail("cannot set up fail_page_alloc");
	else if (kt_load_module(ko_path, params))
		err = errno;
	if (frag_inject(false))
		ret = kt_fail("fail_page_alloc not set back to its defaults");
	if (err)
		ret = kt_fail("finit_module(%s, \"%s\"): %s", ko_path, params,
			      kt_errname(err));
	if (kt_hold_pci(false))
		ret = kt_fail("IVSHMEM functions not bound again");
	return ret;
}

/* "N MiB of RAM, H MiB of it in 2 MiB pages" of the load: H, or -1. */
static long logged_huge_mib(struct short_load *l)
{
	char want[64], line[256];
	const char *h;
	long huge;

	if (l->kmsg < 0) {
		kt_diag("/dev/kmsg could not be read");
		return -1;
	}
	snprintf(want, sizeof(want), "%d MiB of RAM, ", SHORT_MB);
	if (!kt_kmsg_find(l->kmsg, want, line, sizeof(line))) {
		kt_diag("no \"%s...\" line in the kernel log", want);
		return -1;
	}
	kt_diag("kernel log: %s", line);
	h = strstr(line, want);
	if (sscanf(h + strlen(want), "%ld MiB of it in 2 MiB pages", &huge) != 1)
		return -1;
	return huge;
}

static int check_logged(const struct short_load *l, long huge)
{
	if (huge < 0)
		return kt_fail("no log line of the load with its 2 MiB part");
	if (l->none ? huge != 0 : huge <= 0 || huge >= SHORT_MB)
		return kt_fail("%ld MiB in 2 MiB pages logged, want %s", huge,
			       l->none ? "0" : "some but not all");
	return KT_PASS;
}

/* smaps after the touch: all of it mapped, @huge MiB of it by PMD. */
static int check_smaps_huge(const struct measure *m, long huge)
{
	if (!m->done)
		return kt_fail("not mapped");
	if (huge < 0)
		return kt_fail("the load logged no 2 MiB part to compare with");
	if (m->s.rss != m->len || m->s.pmd != (uint64_t)huge << 20)
		return kt_fail("smaps Rss %" PRIu64 " kB, PMD-mapped %" PRIu64
			       " kB; want %zu kB, %ld kB",
			       m->s.rss >> 10, m->s.pmd >> 10, m->len >> 10,
			       huge << 10);
	return KT_PASS;
}

/*
 * After a load of @l (@res its result): 3 tests, 4 where no 2 MiB folio
 * was to be had (then every fault still maps 2 MiB of PTEs).
 */
static void short_tests(struct short_load *l, int res)
{
	const char *skip = l->skip[0] ? l->skip : NULL;
	const char *what = l->d.label;
	struct measure m;
	long huge = -1;
	int fd = -1;

	if (!skip && res != KT_PASS)
		skip = "the load failed";
	if (!skip && !kt_resolve(&l->d))
		skip = "device not found";
	if (!skip)
		huge = logged_huge_mib(l);

#define SHORT_TEST(check, ...)						\
	do {								\
		if (skip)						\
			kt_skip("%s", skip);				\
		kt_report(skip ? KT_SKIP : (check), __VA_ARGS__);	\
	} while (0)
	SHORT_TEST(check_logged(l, huge),
		   "%s: its load logs how much is in 2 MiB pages: %s", what,
		   l->none ? "none" : "some but not all");

	memset(&m, 0, sizeof(m));
	m.len = l->d.expect_size;
	if (!skip) {
		fd = kt_open(&l->d);
		if (fd >= 0)
			measure_map(fd, m.len, false, &m);
	}
	if (l->none)
		SHORT_TEST(check_faults(&m),
			   "%s: first touch of %d MiB takes <= %d faults (2 MiB of PTEs per fault)",
			   what, SHORT_MB, SHORT_MB / 2);
	SHORT_TEST(check_smaps_huge(&m, huge),
		   "%s: smaps shows all %d MiB mapped, PMD-mapped exactly the 2 MiB pages the log names",
		   what, SHORT_MB);
	measure_unmap(&m);
	kt_close(fd);

	SHORT_TEST(kt_guarded(whole_device_bytes, &l->d),
		   "%s: every byte reads back what was written, device mapping vs dma-buf mapping",
		   what);
#undef SHORT_TEST
	if (l->kmsg >= 0)
		close(l->kmsg);
}

/* ------------------------------------------------------- long-term pin */

static int pin_state = KT_SKIP;	/* of the register test, for the data test */
static char pin_skip[200];

/*
 * IORING_REGISTER_BUFFERS of the whole PMD-mapped 64 MiB mapping (a
 * FOLL_LONGTERM pin, as VFIO's); then what is written through the mapping
 * is what IORING_OP_WRITE_FIXED sends from the fixed buffer to a tmpfs
 * file, chunk by chunk.
 */
static void pin_tests(struct kvmfr_dev *d)
{
	uint64_t seed = kt_seed(), t0, off;
	struct ms_smaps s;
	struct ms_ring r = { .fd = -1 };
	uint8_t *p = NULL, *chunk = NULL;
	int fd, tfd = -1, ret, res = KT_FAIL;

	fd = kt_resolve(d) ? kt_open(d) : -1;
	if (fd < 0)
		goto report;
	p = kt_map(fd, 0, d->size);
	if (!p)
		goto report;
	kt_fill_at(p, 0, d->size, seed);
	ms_smaps(p, &s);
	kt_diag("before the pin: smaps PMD-mapped %" PRIu64 " of %" PRIu64 " kB",
		s.pmd >> 10, d->size >> 10);
	ret = ms_ring_init(&r, 4);
	if (ret) {
		kt_diag("io_uring_setup: %s", kt_errname(-ret));
		goto report;
	}
	t0 = ms_now_ns();
	ret = ms_ring_register(&r, p, d->size);
	if (ret == -EOPNOTSUPP) {
		snprintf(pin_skip, sizeof(pin_skip),
			 "io_uring of this kernel refuses this mapping (EOPNOTSUPP: before 6.5 it takes no file-backed buffer but shmem and hugetlb ones)");
		res = kt_skip("%s", pin_skip);
		goto report;
	}
	if (ret) {
		kt_diag("IORING_REGISTER_BUFFERS: %s", kt_errname(-ret));
		goto report;
	}
	kt_diag("IORING_REGISTER_BUFFERS of %" PRIu64 " MiB took %.1f ms (TCG)",
		d->size >> 20, (ms_now_ns() - t0) / 1e6);
	ms_smaps(p, &s);
	kt_diag("while pinned: smaps PMD-mapped %" PRIu64 " of %" PRIu64 " kB",
		s.pmd >> 10, d->size >> 10);
	res = KT_PASS;
report:
	pin_state = res;
	kt_report(res, "%s: IORING_REGISTER_BUFFERS long-term pins the whole touched %d MiB mapping (PMD-mapped where the count tests pass)",
		  d->label, BIG_MB);

	res = KT_FAIL;
	if (pin_state != KT_PASS) {
		if (pin_state == KT_SKIP)
			res = kt_skip("%s", pin_skip);
		else
			res = kt_skip("the registration failed");
		goto out;
	}
	/* new data through the mapping, after the pin */
	seed = kt_seed();
	kt_fill_at(p, 0, d->size, seed);
	tfd = open("pin.out", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	chunk = malloc(CHUNK);
	if (tfd < 0 || !chunk) {
		kt_diag("tmpfs file: %s", strerror(errno));
		goto out;
	}
	for (off = 0; off < d->size; off += CHUNK) {
		ret = ms_ring_rw_fixed(&r, IORING_OP_WRITE_FIXED, tfd, p + off,
				       CHUNK, 0);
		if (ret != (int)CHUNK) {
			kt_diag("IORING_OP_WRITE_FIXED at %#" PRIx64 ": %d (%s)",
				off, ret, ret < 0 ? kt_errname(-ret) : "short");
			goto out;
		}
		if (pread(tfd, chunk, CHUNK, 0) != (ssize_t)CHUNK) {
			kt_diag("pread: %s", strerror(errno));
			goto out;
		}
		if (!kt_check_at(chunk, off, CHUNK, seed,
				 "written from the fixed buffer"))
			goto out;
	}
	res = KT_PASS;
out:
	kt_report(res, "%s: bytes written through the mapping are what IORING_OP_WRITE_FIXED sends from the pinned buffer",
		  d->label);
	if (r.fd >= 0) {
		if (pin_state == KT_PASS && ms_ring_unregister(&r))
			kt_diag("IORING_UNREGISTER_BUFFERS: %s", strerror(errno));
		ms_ring_exit(&r);
	}
	free(chunk);
	if (tfd >= 0)
		close(tfd);
	unlink("pin.out");
	if (p)
		kt_unmap(p, d->size);
	kt_close(fd);
}

/* ------------------------------------------------------- DMA segments */

/* An importer taking 2 MiB segments gets <= one per 2 MiB of the buffer. */
static int segments(struct kvmfr_dev *d)
{
	struct kvmfr_edu_import imp;
	struct kvmfr_edu_info info;
	uint32_t seg = MS_2M, old;
	uint64_t limit = d->size / MS_2M;
	int edu, fd = -1, db = -1, res = KT_FAIL;

	edu = kt_importer_open();
	if (edu < 0)
		return kt_skip("no tests/edu importer in this guest (%s)",
			       kt_errname(errno));
	memset(&info, 0, sizeof(info));
	if (ioctl(edu, KVMFR_EDU_INFO, &info) || !info.iommu) {
		close(edu);
		return kt_skip("the edu importer is not behind an IOMMU (swiotlb bounces at most 256 KiB per segment)");
	}
	if (ioctl(edu, KVMFR_EDU_SET_MAX_SEG, &seg)) {
		res = kt_fail("KVMFR_EDU_SET_MAX_SEG(2 MiB): %s",
			      kt_errname(errno));
		close(edu);
		return res;
	}
	old = seg;
	fd = kt_open(d);
	if (fd >= 0)
		db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, d->size);
	memset(&imp, 0, sizeof(imp));
	imp.fd = db;
	if (db < 0) {
		kt_diag("CREATE: %s", kt_errname(errno));
	} else if (ioctl(edu, KVMFR_EDU_IMPORT, &imp)) {
		kt_diag("IMPORT: %s", kt_errname(errno));
	} else {
		kt_diag("%" PRIu64 " MiB dma-buf to an importer with 2 MiB max segment (was %u): %u CPU segments (exporter's table), %u DMA segments",
			d->size >> 20, old, imp.orig_nents, imp.nents);
		if (imp.orig_nents > limit || imp.nents > limit)
			kt_diag("want <= %" PRIu64 " of each", limit);
		else
			res = KT_PASS;
		ioctl(edu, KVMFR_EDU_RELEASE);
	}
	if (ioctl(edu, KVMFR_EDU_SET_MAX_SEG, &old))
		kt_diag("restoring the max segment: %s", kt_errname(errno));
	kt_close(db);
	kt_close(fd);
	close(edu);
	return res;
}

/* -------------------------------------------------------------- main */

int main(void)
{
	struct short_load sl;
	char why[160];
	const char *skip;
	int i, res, npci = 0;

	kt_init();
	ko_path = getenv("KVMFR_KO");
	if (!ko_path)
		ko_path = "/lib/kvmfr/kvmfr.ko";
	snprintf(params_orig, sizeof(params_orig), "static_size_mb=%s",
		 kt_static_param[0] ? kt_static_param : "16,4");
	snprintf(params_test, sizeof(params_test), "static_size_mb=%d,%d",
		 BIG_MB, ODD_MB);
	big.index = 0;
	big.expect_size = (uint64_t)BIG_MB << 20;
	snprintf(big.label, sizeof(big.label), "static %d MiB", BIG_MB);
	odd.index = 1;
	odd.expect_size = (uint64_t)ODD_MB << 20;
	snprintf(odd.label, sizeof(odd.label), "static %d MiB", ODD_MB);
	for (i = 0; i < kt_ndev; i++)
		npci += kt_devs[i].pci;

	/* reload 2, static 7 + 2 + 2 + 2 + 1, per IVSHMEM 7 + 1, short 5 + 4 */
	kt_plan(2 + 14 + 8 * npci + 9);

	kt_report(reload(params_test), "reload kvmfr with %s", params_test);
	kt_resolve(&big);
	kt_resolve(&odd);

	whole_device(&big, true, NULL);
	kt_report(big.found ? kt_guarded(unaligned_offset_bytes, &big) : KT_FAIL,
		  "%s: dma-buf at device offset 2 MiB + 4 KiB maps exactly its bytes, both ways, no neighbour",
		  big.label);
	kt_report(big.found ? kt_guarded(unaligned_pgoff_bytes, &big) : KT_FAIL,
		  "%s: dma-buf mapped from its page 3 on maps exactly its bytes, both ways, no neighbour",
		  big.label);
	kt_report(odd.found ? kt_guarded(whole_device_bytes, &odd) : KT_FAIL,
		  "%s: every byte reads back what was written, device mapping vs dma-buf mapping (2 MiB + a 4 KiB-mapped tail)",
		  odd.label);
	kt_report(odd.found ? kt_guarded(odd_dmabuf_bytes, &odd) : KT_FAIL,
		  "%s: dma-buf of 2 MiB + 4 KiB reads and writes every byte, no neighbour",
		  odd.label);
	pin_tests(&big);
	kt_report(big.found ? kt_guarded(segments, &big) : KT_FAIL,
		  "%s: dma-buf to an importer with 2 MiB max segment has <= %d segments",
		  big.label, BIG_MB / 2);

	for (i = 0; i < kt_ndev; i++) {
		struct kvmfr_dev *d = &kt_devs[i];

		if (!d->pci)
			continue;
		if (!kt_resolve(d)) {
			skip = "device not found";
		} else {
			skip = ms_no_pmds(d, why, sizeof(why));
		}
		whole_device(d, false, skip);
		if (skip)
			kt_skip("%s", skip);
		kt_report(skip ? KT_SKIP : kt_guarded(segments, d),
			  "%s: dma-buf to an importer with 2 MiB max segment has <= %" PRIu64 " segments",
			  d->label, d->size / MS_2M);
	}

	short_init(&sl, true);
	res = load_denied(&sl);
	kt_report(res, "reload kvmfr with static_size_mb=%d while shmem_enabled is deny, then give it its mode back",
		  SHORT_MB);
	short_tests(&sl, res);
	short_init(&sl, false);
	res = load_fragmented(&sl);
	kt_report(res, "reload kvmfr with static_size_mb=%d while every 2nd 2 MiB allocation of kvmfr's fails (fail_page_alloc), then stop failing",
		  SHORT_MB);
	short_tests(&sl, res);

	kt_report(reload(params_orig), "reload kvmfr with the harness's %s",
		  params_orig);
	return kt_exit();
}
