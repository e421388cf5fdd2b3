// SPDX-License-Identifier: GPL-2.0
/*
 * kvmfr-bench: the figures of `make bench` (tests/bench/run, issue 12),
 * measured in one guest for kvmfr and for what a user could pick instead,
 * and the targets of issue 12 checked against them.
 *
 * Subjects: kvmfr's static device and IVSHMEM device, each through the
 * device mapping and through a dma-buf mmap of it; anonymous memory with
 * MADV_HUGEPAGE (THP) and with MADV_NOHUGEPAGE (4 KiB); a memfd (shmem);
 * a memfd with MFD_HUGETLB (2 MiB hugetlb pages from the pool, which this
 * program sizes and empties again); udmabuf over a memfd and over a
 * hugetlb memfd (where the kernel has /dev/udmabuf).
 *
 * For each, at 64 MiB and at 1 GiB (where the guest has the memory and the
 * device): first touch (one write per 4 KiB page: faults, time), how
 * the touched mapping is mapped (smaps: PMD-mapped and 4 KiB-mapped bytes;
 * page tables: PTE tables added, each one 2 MiB slot mapped by 4 KiB
 * entries; see mapping_stats.h), VmPTE growth. At 64 MiB also: a frame-copy
 * ratio to anonymous THP memory (see paired()); fork() with the mapping
 * live (best of 5); a long-term pin of the whole mapping (io_uring
 * IORING_REGISTER_BUFFERS); and, for dma-bufs, the scatterlist an importer
 * with 2 MiB maximum DMA segment gets (tests/edu's importer: the exporter's
 * CPU segments and the DMA segments after the IOMMU).
 *
 * Ratios are medians of PAIRS alternating pairs (paired()), each pair's
 * ratio taken on its own, with the interquartile range as the spread. Two
 * of them compare kvmfr with a baseline that has the reference module's
 * page-table shape (4 KiB PTEs in a VM_MIXEDMAP VMA), made of the same
 * device: kvmfr maps a device with 4 KiB PTEs wherever a mapping's address
 * and file offset disagree modulo 2 MiB, so the baseline is the device
 * mapped MAP_FIXED at a 2 MiB-aligned address + 4 KiB (misaligned()):
 * - fork: fork() + _exit + waitpid with a touched 64 MiB IVSHMEM mapping
 *   live, kvmfr's over the baseline's (each sample maps its side afresh;
 *   the bench's own big buffers are MADV_DONTFORK meanwhile);
 * - first read: mmap and one 8-byte load per 64 bytes of a fresh 64 MiB
 *   static mapping, kvmfr's (mmap(NULL), faults on the way) over the
 *   baseline's (MAP_POPULATE, as the reference prefaults at mmap).
 * Both check first, from page-table counts, that the baseline is on 4 KiB
 * PTEs and kvmfr's mapping on PMDs.
 *
 * Prints TAP: one test per subject and size (measured, or skipped with the
 * reason), then one per target: counts pass or fail; a timing ratio that
 * misses its target is "not ok ... # TODO" (reported, not a failure: TCG).
 * The table as "# |" lines (Markdown), the targets as "# target |" lines,
 * notes as "# note:" lines. Times come from a TCG guest: compare them
 * within one run only.
 */
#include "kvmfr_test.h"
#include "mapping_stats.h"

#include <linux/memfd.h>
#include <linux/udmabuf.h>

#define MIB		(1ull << 20)
#define FRAME		(1920u * 1080u * 4u)
#define SAMPLE_FRAMES	2	/* frames per frame-copy sample */
#define PAIRS		61	/* alternating pairs per ratio */
#define FORKS		5
#define TARGET_LEN	(64 * MIB)

struct inst {
	uint8_t *p;
	size_t len;
	int fd, db, memfd;
	void *raw;		/* what to munmap, if not p */
	size_t raw_len;
	char note[96];
};

struct subject {
	const char *name;
	int (*make)(struct inst *in, size_t len, char *why, size_t wlen);
	bool smaps_exact;	/* smaps counts every page of it */
	bool kvmfr;		/* issue 12's count targets apply */
	bool dmabuf;		/* and the segment target */
};

static struct kvmfr_dev *static_for(size_t len)
{
	struct kvmfr_dev *best = NULL;
	int i;

	for (i = 0; i < kt_ndev; i++) {
		struct kvmfr_dev *d = &kt_devs[i];

		if (!d->pci && d->found && d->size >= len &&
		    (!best || d->size < best->size))
			best = d;
	}
	return best;
}

static struct kvmfr_dev *pci_for(size_t len)
{
	struct kvmfr_dev *best = NULL;
	int i;

	for (i = 0; i < kt_ndev; i++) {
		struct kvmfr_dev *d = &kt_devs[i];

		if (d->pci && d->found && d->size >= len &&
		    (!best || d->size < best->size))
			best = d;
	}
	return best;
}

/*
 * A dma-buf mapped 2 MiB aligned, as a client that wants PMDs maps one: the
 * dma-buf core's file has no get_unmapped_area, so mmap(NULL) lands
 * wherever the process's allocator puts it. Reserve 2 MiB more, map over
 * the aligned part, give back the rest. MAP_FAILED with errno on failure.
 */
static void *map_dmabuf_aligned(int db, size_t len)
{
	uint8_t *r, *p;
	size_t head;
	int err;

	r = mmap(NULL, len + MS_2M, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return MAP_FAILED;
	head = -(uintptr_t)r & (MS_2M - 1);
	p = mmap(r + head, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 db, 0);
	if (p == MAP_FAILED) {
		err = errno;
		munmap(r, len + MS_2M);
		errno = err;
		return MAP_FAILED;
	}
	if (head)
		munmap(r, head);
	munmap(p + len, MS_2M - head);
	return p;
}

static int map_kvmfr(struct inst *in, size_t len, char *why, size_t wlen,
		     bool pci, bool dmabuf)
{
	struct kvmfr_dev *d = pci ? pci_for(len) : static_for(len);
	void *p;

	if (!d) {
		snprintf(why, wlen, "no %s kvmfr device of %zu MiB in this guest",
			 pci ? "IVSHMEM" : "static", len >> 20);
		return -1;
	}
	in->fd = open(d->node, O_RDWR | O_CLOEXEC);
	if (in->fd < 0) {
		snprintf(why, wlen, "open %s: %s", d->node, kt_errname(errno));
		return -1;
	}
	if (dmabuf) {
		in->db = kt_create(in->fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, len);
		if (in->db < 0) {
			snprintf(why, wlen, "CREATE: %s", kt_errname(errno));
			return -1;
		}
	}
	p = dmabuf ? map_dmabuf_aligned(in->db, len) :
		     mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, in->fd,
			  0);
	if (p == MAP_FAILED) {
		snprintf(why, wlen, "mmap: %s", kt_errname(errno));
		return -1;
	}
	in->p = p;
	snprintf(in->note, sizeof(in->note), "%s", d->name);
	return 0;
}

static int make_static(struct inst *in, size_t len, char *why, size_t wlen)
{
	return map_kvmfr(in, len, why, wlen, false, false);
}

static int make_static_db(struct inst *in, size_t len, char *why, size_t wlen)
{
	return map_kvmfr(in, len, why, wlen, false, true);
}

static int make_pci(struct inst *in, size_t len, char *why, size_t wlen)
{
	return map_kvmfr(in, len, why, wlen, true, false);
}

static int make_pci_db(struct inst *in, size_t len, char *why, size_t wlen)
{
	return map_kvmfr(in, len, why, wlen, true, true);
}

/* 2 MiB-aligned anonymous memory (as glibc's malloc does not promise). */
static uint8_t *anon_aligned(struct inst *in, size_t len)
{
	uint8_t *raw, *p;

	in->raw_len = len + MS_2M;
	raw = mmap(NULL, in->raw_len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	in->raw = raw;
	p = (uint8_t *)(((uintptr_t)raw + MS_2M - 1) & ~(uintptr_t)(MS_2M - 1));
	return p;
}

static int make_anon(struct inst *in, size_t len, char *why, size_t wlen,
		     int advice)
{
	in->p = anon_aligned(in, len);
	if (!in->p) {
		snprintf(why, wlen, "mmap: %s", kt_errname(errno));
		return -1;
	}
	if (madvise(in->p, len, advice)) {
		snprintf(why, wlen, "madvise: %s", kt_errname(errno));
		return -1;
	}
	return 0;
}

static int make_thp(struct inst *in, size_t len, char *why, size_t wlen)
{
	return make_anon(in, len, why, wlen, MADV_HUGEPAGE);
}

static int make_4k(struct inst *in, size_t len, char *why, size_t wlen)
{
	return make_anon(in, len, why, wlen, MADV_NOHUGEPAGE);
}

/* hugetlb pool: grown to what the subject needs, emptied afterwards */
static long hugetlb_pages(void)
{
	return kt_read_ll("/proc/sys/vm/nr_hugepages");
}

static bool hugetlb_reserve(size_t len, char *why, size_t wlen)
{
	char buf[32];
	long want = len / MS_2M, got;

	snprintf(buf, sizeof(buf), "%ld", want);
	if (kt_write_file("/proc/sys/vm/nr_hugepages", buf)) {
		snprintf(why, wlen, "no hugetlb pool (nr_hugepages not writable)");
		return false;
	}
	got = hugetlb_pages();
	if (got < want) {
		snprintf(why, wlen, "hugetlb pool: %ld of %ld 2 MiB pages available",
			 got, want);
		kt_write_file("/proc/sys/vm/nr_hugepages", "0");
		return false;
	}
	return true;
}

static int memfd_of(size_t len, unsigned int flags, char *why, size_t wlen)
{
	int fd = syscall(SYS_memfd_create, "kvmfr-bench", MFD_CLOEXEC | flags);

	if (fd < 0) {
		snprintf(why, wlen, "memfd_create: %s", kt_errname(errno));
		return -1;
	}
	if (ftruncate(fd, len)) {
		snprintf(why, wlen, "ftruncate: %s", kt_errname(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int map_memfd(struct inst *in, size_t len, char *why, size_t wlen,
		     bool huge)
{
	void *p;

	if (huge && !hugetlb_reserve(len, why, wlen))
		return -1;
	in->memfd = memfd_of(len, huge ? MFD_HUGETLB : 0, why, wlen);
	if (in->memfd < 0)
		return -1;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, in->memfd, 0);
	if (p == MAP_FAILED) {
		snprintf(why, wlen, "mmap: %s", kt_errname(errno));
		return -1;
	}
	in->p = p;
	return 0;
}

static int make_memfd(struct inst *in, size_t len, char *why, size_t wlen)
{
	char mode[64] = "?";

	kt_read_file("/sys/kernel/mm/transparent_hugepage/shmem_enabled", mode,
		     sizeof(mode));
	snprintf(in->note, sizeof(in->note), "shmem_enabled: %s", mode);
	return map_memfd(in, len, why, wlen, false);
}

static int make_memfd_huge(struct inst *in, size_t len, char *why, size_t wlen)
{
	return map_memfd(in, len, why, wlen, true);
}

static int map_udmabuf(struct inst *in, size_t len, char *why, size_t wlen,
		       bool huge)
{
	struct udmabuf_create c;
	char buf[32];
	int dev;
	void *p;

	dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		snprintf(why, wlen, "no /dev/udmabuf (CONFIG_UDMABUF is off in this kernel)");
		return -1;
	}
	/* its size limit (64 MiB by default) */
	snprintf(buf, sizeof(buf), "%zu", (len >> 20) + 1);
	kt_write_file("/sys/module/udmabuf/parameters/size_limit_mb", buf);
	if (huge && !hugetlb_reserve(len, why, wlen)) {
		close(dev);
		return -1;
	}
	in->memfd = memfd_of(len, MFD_ALLOW_SEALING | (huge ? MFD_HUGETLB : 0),
			     why, wlen);
	if (in->memfd < 0) {
		close(dev);
		return -1;
	}
	if (fcntl(in->memfd, F_ADD_SEALS, F_SEAL_SHRINK)) {
		snprintf(why, wlen, "F_SEAL_SHRINK: %s", kt_errname(errno));
		close(dev);
		return -1;
	}
	memset(&c, 0, sizeof(c));
	c.memfd = in->memfd;
	c.flags = UDMABUF_FLAGS_CLOEXEC;
	c.size = len;
	in->db = ioctl(dev, UDMABUF_CREATE, &c);
	close(dev);
	if (in->db < 0) {
		snprintf(why, wlen, "UDMABUF_CREATE: %s", kt_errname(errno));
		return -1;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, in->db, 0);
	if (p == MAP_FAILED) {
		snprintf(why, wlen, "mmap of the udmabuf: %s", kt_errname(errno));
		return -1;
	}
	in->p = p;
	snprintf(in->note, sizeof(in->note), "pages allocated at create");
	return 0;
}

static int make_udmabuf(struct inst *in, size_t len, char *why, size_t wlen)
{
	return map_udmabuf(in, len, why, wlen, false);
}

static int make_udmabuf_huge(struct inst *in, size_t len, char *why,
			     size_t wlen)
{
	return map_udmabuf(in, len, why, wlen, true);
}

static void inst_free(struct inst *in)
{
	if (in->raw)
		munmap(in->raw, in->raw_len);
	else if (in->p)
		munmap(in->p, in->len);
	if (in->db >= 0)
		close(in->db);
	if (in->memfd >= 0)
		close(in->memfd);
	if (in->fd >= 0)
		close(in->fd);
	if (hugetlb_pages() > 0)
		kt_write_file("/proc/sys/vm/nr_hugepages", "0");
}

static const struct subject subjects[] = {
	{ "kvmfr static, device mmap", make_static, true, true, false },
	{ "kvmfr static, dma-buf mmap (2 MiB-aligned MAP_FIXED)", make_static_db, true, true, true },
	{ "kvmfr IVSHMEM, device mmap", make_pci, false, true, false },
	{ "kvmfr IVSHMEM, dma-buf mmap (2 MiB-aligned MAP_FIXED)", make_pci_db, false, true, true },
	{ "anonymous, MADV_HUGEPAGE", make_thp, true, false, false },
	{ "anonymous, MADV_NOHUGEPAGE", make_4k, true, false, false },
	{ "memfd (shmem)", make_memfd, true, false, false },
	{ "memfd MFD_HUGETLB", make_memfd_huge, true, false, false },
	{ "udmabuf over memfd", make_udmabuf, false, false, false },
	{ "udmabuf over hugetlb memfd", make_udmabuf_huge, false, false, false },
};

/* ---------------------------------------------------------- figures */

static uint8_t *ref_src, *copy_dst;	/* anonymous THP source, destination */
static size_t copy_dst_len;

/*
 * A ratio's median and interquartile range over its pairs, and the median
 * time of each side.
 */
struct spread {
	double med, q1, q3;
	double a_ms, b_ms;
	int n;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The @q quantile of the sorted @v, interpolated between neighbours. */
static double quantile(const double *v, int n, double q)
{
	double pos = q * (n - 1);
	int i = (int)pos;

	if (i + 1 >= n)
		return v[n - 1];
	return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

/* One timed step of a pair: its time in ns (at least 1), 0 if it failed. */
typedef uint64_t (*step_fn)(void *ctx, unsigned int k);

/*
 * @a and @b in PAIRS pairs, A first in even pairs and B first in odd ones
 * (ABBA: a drift in the host's load during a pair favours neither), after
 * one pair that warms both up and is not counted. Each pair gives the ratio
 * time(a) / time(b); the median and quartiles of those go to @out. Short
 * pairs, each its own ratio, so that a burst of load on the host spoils a
 * few pairs, which the median leaves out, instead of a whole figure. @k
 * numbers the samples (0 the warm-up) for steps that vary what they touch.
 * False if a step failed.
 */
static bool paired(step_fn a, void *actx, step_fn b, void *bctx,
		   struct spread *out)
{
	double r[PAIRS], ra[PAIRS], rb[PAIRS];
	uint64_t ta, tb;
	int k;

	for (k = 0; k <= PAIRS; k++) {
		if (k & 1) {
			tb = b(bctx, k);
			ta = tb ? a(actx, k) : 0;
		} else {
			ta = a(actx, k);
			tb = ta ? b(bctx, k) : 0;
		}
		if (!ta || !tb)
			return false;
		if (!k)
			continue;
		r[k - 1] = (double)ta / tb;
		ra[k - 1] = ta / 1e6;
		rb[k - 1] = tb / 1e6;
	}
	qsort(r, PAIRS, sizeof(r[0]), cmp_double);
	qsort(ra, PAIRS, sizeof(ra[0]), cmp_double);
	qsort(rb, PAIRS, sizeof(rb[0]), cmp_double);
	out->a_ms = quantile(ra, PAIRS, 0.5);
	out->b_ms = quantile(rb, PAIRS, 0.5);
	out->n = PAIRS;
	out->med = quantile(r, PAIRS, 0.5);
	out->q1 = quantile(r, PAIRS, 0.25);
	out->q3 = quantile(r, PAIRS, 0.75);
	return true;
}

static uint64_t since(uint64_t t0)
{
	uint64_t t = ms_now_ns() - t0;

	return t ? t : 1;
}

struct copy_ctx {
	const uint8_t *src;
	size_t frames;		/* whole frames in src */
};

/*
 * One frame-copy sample: SAMPLE_FRAMES frames out of the source into
 * anonymous memory, sample @k starting where sample k - 1 ended, so that
 * the samples cycle through the whole source.
 */
static uint64_t copy_step(void *ctx, unsigned int k)
{
	const struct copy_ctx *c = ctx;
	uint64_t t0 = ms_now_ns();
	unsigned int i;

	for (i = 0; i < SAMPLE_FRAMES; i++)
		memcpy(copy_dst,
		       c->src + ((k * SAMPLE_FRAMES + i) % c->frames) * FRAME,
		       FRAME);
	return since(t0);
}

/* Frame copy out of @src against anonymous THP: THP time over @src's. */
static bool copy_ratio(const uint8_t *src, size_t len, struct spread *out)
{
	struct copy_ctx thp = { ref_src, TARGET_LEN / FRAME };
	struct copy_ctx mine = { src, len / FRAME };

	return paired(copy_step, &thp, copy_step, &mine, out);
}

static long majors_seen;

/* ms_first_touch(), noting whether any of its faults were major ones. */
static void first_touch(volatile uint8_t *p, size_t len, bool write,
			struct ms_touch *t)
{
	struct rusage ru;
	long m0;

	getrusage(RUSAGE_SELF, &ru);
	m0 = ru.ru_majflt;
	ms_first_touch(p, len, write, t);
	getrusage(RUSAGE_SELF, &ru);
	majors_seen += ru.ru_majflt - m0;
}

static void spread_str(const struct spread *s, char *out, size_t olen)
{
	snprintf(out, olen, "%.2f [%.2f-%.2f]", s->med, s->q1, s->q3);
}

/* fork() + _exit + waitpid with the mapping live: the best of FORKS. */
static double fork_ms(void)
{
	uint64_t best = UINT64_MAX, t0, t;
	int i, st;
	pid_t pid;

	for (i = 0; i < FORKS; i++) {
		t0 = ms_now_ns();
		pid = fork();
		if (!pid)
			_exit(0);
		if (pid < 0)
			return -1;
		waitpid(pid, &st, 0);
		t = ms_now_ns() - t0;
		if (t < best)
			best = t;
	}
	return best / 1e6;
}

static void pin_figure(struct inst *in, char *out, size_t olen)
{
	struct ms_ring r;
	uint64_t t0;
	int ret;

	ret = ms_ring_init(&r, 4);
	if (ret) {
		snprintf(out, olen, "%s", kt_errname(-ret));
		return;
	}
	t0 = ms_now_ns();
	ret = ms_ring_register(&r, in->p, in->len);
	if (ret) {
		snprintf(out, olen, "%s", kt_errname(-ret));
	} else {
		snprintf(out, olen, "%.1f", (ms_now_ns() - t0) / 1e6);
		ms_ring_unregister(&r);
	}
	ms_ring_exit(&r);
}

static int edu = -1;

/* The segments an importer gets: CPU / DMA in @out; -1 in @cpu if none. */
static void segment_figure(struct inst *in, char *out, size_t olen,
			   long *cpu, long *dma)
{
	struct kvmfr_edu_import imp;

	*cpu = *dma = -1;
	if (in->db < 0) {
		snprintf(out, olen, "-");
		return;
	}
	if (edu < 0) {
		snprintf(out, olen, "no importer");
		return;
	}
	memset(&imp, 0, sizeof(imp));
	imp.fd = in->db;
	if (ioctl(edu, KVMFR_EDU_IMPORT, &imp)) {
		snprintf(out, olen, "%s", kt_errname(errno));
		return;
	}
	*cpu = imp.orig_nents;
	*dma = imp.nents;
	snprintf(out, olen, "%u / %u", imp.orig_nents, imp.nents);
	ioctl(edu, KVMFR_EDU_RELEASE);
}

static long long mem_available(void)
{
	char line[128];
	long long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb << 10;
}

/* ---------------------------------------------------------- targets */

/*
 * Issue 12's targets, collected while measuring and printed at the end:
 * counts pass or fail; timing ratios are reported as met or not met.
 */
struct target {
	char subject[96];
	char what[96];
	char measured[160];
	int res;		/* KT_PASS, KT_FAIL or KT_SKIP */
	bool ratio;		/* a TCG timing: reported, not enforced */
};

#define MAX_TARGETS	40
static struct target targets[MAX_TARGETS];
static int ntargets;

static KT_PRINTF(5, 6) void target(const char *subject, const char *what,
				   bool ratio, int res, const char *fmt, ...)
{
	struct target *t;
	va_list ap;

	if (ntargets == MAX_TARGETS)
		return;
	t = &targets[ntargets++];
	snprintf(t->subject, sizeof(t->subject), "%s", subject);
	snprintf(t->what, sizeof(t->what), "%s", what);
	va_start(ap, fmt);
	vsnprintf(t->measured, sizeof(t->measured), fmt, ap);
	va_end(ap);
	t->res = res;
	t->ratio = ratio;
}

/* @a, @b: what the two sides of each pair were (the ratio is a over b) */
static void ratio_target(const char *subject, const char *what,
			 const struct spread *s, bool met, const char *a,
			 const char *b)
{
	target(subject, what, true, met ? KT_PASS : KT_FAIL,
	       "%.3f (IQR %.2f-%.2f, %d pairs; medians: %s %.2f ms, %s %.2f ms)",
	       s->med, s->q1, s->q3, s->n, a, s->a_ms, b, s->b_ms);
}

static const char *const count_targets[] = {
	"faults <= 32",
	"32 of 32 slots PMD-mapped (0 PTE tables)",
	"VmPTE growth <= 8 KiB",
};

#define FRAME_TARGET	"frame copy vs anon THP >= 0.95"
#define SEG_TARGET	"<= 32 segments to a 2 MiB-segment importer"

static int subject_targets(const struct subject *s)
{
	return s->kvmfr ? KT_ARRAY_SIZE(count_targets) + 1 + s->dmabuf : 0;
}

/* Every target of a subject that could not be measured. */
static void skip_subject_targets(const struct subject *s, const char *why)
{
	size_t i;

	for (i = 0; i < KT_ARRAY_SIZE(count_targets); i++)
		target(s->name, count_targets[i], false, KT_SKIP, "%s", why);
	target(s->name, FRAME_TARGET, true, KT_SKIP, "%s", why);
	if (s->dmabuf)
		target(s->name, SEG_TARGET, false, KT_SKIP, "%s", why);
}

/* The count and frame-copy targets of a kvmfr subject at 64 MiB. */
static void add_subject_targets(const struct subject *s, const char *name,
				const void *p, const struct ms_touch *t,
				const struct spread *cp, bool cp_ok,
				long seg_cpu, long seg_dma)
{
	const char *where = (uintptr_t)p % MS_2M ?
				    " (mmap(NULL) not 2 MiB aligned)" : "";

	target(name, count_targets[0], false,
	       t->faults <= 32 ? KT_PASS : KT_FAIL, "%ld faults%s", t->faults,
	       where);
	if (t->guarded)
		target(name, count_targets[1], false,
		       !t->pte_slots && t->slots == 32 ? KT_PASS : KT_FAIL,
		       "%ld of %ld slots PMD-mapped (%ld PTE tables)%s",
		       t->slots - t->pte_slots, t->slots, t->pte_slots, where);
	else
		target(name, count_targets[1], false, KT_FAIL,
		       "not measurable: no free 2 MiB slot for a guard page");
	target(name, count_targets[2], false,
	       t->pt_bytes <= 8192 ? KT_PASS : KT_FAIL, "VmPTE +%lld KiB",
	       t->pt_bytes >> 10);
	if (cp_ok)
		ratio_target(name, FRAME_TARGET, cp, cp->med >= 0.95,
			     "anon THP", "this");
	else
		target(name, FRAME_TARGET, true, KT_FAIL, "a copy step failed");
	if (!s->dmabuf)
		return;
	if (edu < 0)
		target(name, SEG_TARGET, false, KT_SKIP,
		       "no edu importer behind an IOMMU");
	else if (seg_cpu < 0)
		target(name, SEG_TARGET, false, KT_FAIL, "the import failed");
	else
		target(name, SEG_TARGET, false,
		       seg_cpu <= 32 && seg_dma <= 32 ? KT_PASS : KT_FAIL,
		       "%ld CPU / %ld DMA segments", seg_cpu, seg_dma);
}

/* ------------------------------------------------ reference-like baseline */

/*
 * A place for a mapping of @len whose address is 4 KiB past a 2 MiB
 * boundary: kvmfr maps device offset 0 there with 4 KiB PTEs in a
 * VM_MIXEDMAP VMA, the reference module's shape. The place is a PROT_NONE
 * reservation (@res, @rlen: what to munmap afterwards) that the mapping
 * goes into with MAP_FIXED.
 */
static uint8_t *misaligned_slot(size_t len, void **res, size_t *rlen)
{
	uint8_t *r;

	*rlen = len + 2 * MS_2M;
	r = mmap(NULL, *rlen, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return NULL;
	*res = r;
	return (uint8_t *)(((uintptr_t)r + MS_2M - 1) & ~(MS_2M - 1)) + 4096;
}

/* Pages of [p, p + len) present in the page tables (/proc/self/pagemap). */
static long present_pages(const void *p, size_t len)
{
	uint64_t e[512];
	size_t n = len / 4096, done = 0, chunk, i;
	off_t off = (uintptr_t)p / 4096 * sizeof(e[0]);
	long present = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while (done < n) {
		chunk = n - done < 512 ? n - done : 512;
		if (pread(fd, e, chunk * sizeof(e[0]),
			  off + done * sizeof(e[0])) !=
		    (ssize_t)(chunk * sizeof(e[0]))) {
			present = -1;
			break;
		}
		for (i = 0; i < chunk; i++)
			present += e[i] >> 63;
		done += chunk;
	}
	close(fd);
	return present;
}

/* The page-table shape of a touched range, from ms_first_touch(). */
struct shape {
	const char *where;
	long faults, present, pte_slots, slots;
	long long pt_bytes;
	bool guarded;
};

static void shape_of(struct shape *sh, const char *where,
		     const struct ms_touch *t, const void *p, size_t len)
{
	sh->where = where;
	sh->faults = t->faults;
	sh->present = present_pages(p, len);
	sh->pte_slots = t->pte_slots;
	sh->slots = t->slots;
	sh->pt_bytes = t->pt_bytes;
	sh->guarded = t->guarded;
}

/*
 * The two shape checks of a ratio target: the baseline is on 4 KiB PTEs
 * (every page present, every 2 MiB slot it touches has a PTE table) and
 * kvmfr's mapping on PMDs (every page present, 32 slots, no PTE table).
 */
static void shape_targets(const char *subject, const char *what,
			  const struct shape *mine, const struct shape *base,
			  size_t len)
{
	long pages = len / 4096;
	bool ptes = base->guarded && base->present == pages &&
		    base->pte_slots == base->slots;
	bool pmds = mine->guarded && mine->present == pages &&
		    !mine->pte_slots && mine->slots == (long)(len / MS_2M);
	char w[96];

	snprintf(w, sizeof(w), "%s baseline on 4 KiB PTEs", what);
	target(subject, w, false, ptes ? KT_PASS : KT_FAIL,
	       "%s: %ld pages present, %ld of %ld slots with a PTE table, VmPTE +%lld KiB, %ld faults",
	       base->where, base->present, base->pte_slots, base->slots,
	       base->pt_bytes >> 10, base->faults);
	snprintf(w, sizeof(w), "%s: kvmfr's mapping on PMDs", what);
	target(subject, w, false, pmds ? KT_PASS : KT_FAIL,
	       "%s: %ld pages present, %ld of %ld slots with a PTE table, VmPTE +%lld KiB, %ld faults",
	       mine->where, mine->present, mine->pte_slots, mine->slots,
	       mine->pt_bytes >> 10, mine->faults);
}

#define FORK_TARGET	"fork"
#define READ_TARGET	"first read"
#define VS_BASELINE	" <= 1.0x the reference-like 4 KiB mapping"
#define RATIO_TARGETS	6	/* 2 shape checks and a ratio, twice */

static void skip_ratio_targets(const char *subject, const char *what,
			       const char *why)
{
	char w[96];

	snprintf(w, sizeof(w), "%s baseline on 4 KiB PTEs", what);
	target(subject, w, false, KT_SKIP, "%s", why);
	snprintf(w, sizeof(w), "%s: kvmfr's mapping on PMDs", what);
	target(subject, w, false, KT_SKIP, "%s", why);
	snprintf(w, sizeof(w), "%s" VS_BASELINE, what);
	target(subject, w, true, KT_SKIP, "%s", why);
}

static int step_errno;	/* why the last step failed */

/* A fresh mapping of @fd: kvmfr's mmap(NULL), or the baseline's place. */
static uint8_t *map_side(int fd, size_t len, bool baseline, void **res,
			 size_t *rlen, int flags)
{
	uint8_t *at = NULL, *p;

	*res = NULL;
	if (baseline) {
		at = misaligned_slot(len, res, rlen);
		if (!at) {
			step_errno = errno;
			return MAP_FAILED;
		}
		flags |= MAP_FIXED;
	}
	p = mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | flags, fd, 0);
	if (p == MAP_FAILED) {
		step_errno = errno;
		if (*res)
			munmap(*res, *rlen);
	}
	return p;
}

static void unmap_side(uint8_t *p, size_t len, void *res, size_t rlen)
{
	munmap(res ? res : p, res ? rlen : len);
}

struct side_ctx {
	int fd;
	size_t len;
	bool baseline;
};

/*
 * fork() + _exit + waitpid with a touched mapping live: each sample maps
 * its side afresh and touches every 4 KiB page (not timed), so that only
 * the measured mapping is in the child (the bench's own buffers are
 * MADV_DONTFORK meanwhile), and unmaps it afterwards.
 */
static uint64_t fork_step(void *ctx, unsigned int k)
{
	const struct side_ctx *c = ctx;
	volatile uint8_t *v;
	size_t rlen = 0, i;
	void *res;
	uint8_t *p;
	uint64_t t0, t = 0;
	pid_t pid;
	int st;

	(void)k;
	p = map_side(c->fd, c->len, c->baseline, &res, &rlen, 0);
	if (p == MAP_FAILED)
		return 0;
	v = p;
	for (i = 0; i < c->len; i += 4096)
		v[i] = (uint8_t)i;
	t0 = ms_now_ns();
	pid = fork();
	if (!pid)
		_exit(0);
	if (pid < 0) {
		step_errno = errno;
	} else {
		waitpid(pid, &st, 0);
		t = since(t0);
	}
	unmap_side(p, c->len, res, rlen);
	return t;
}

/* MADV_DONTFORK (or back) for the bench's own big buffers. */
static void own_buffers_fork(int advice)
{
	madvise(ref_src, TARGET_LEN, advice);
	madvise(copy_dst, copy_dst_len, advice);
}

/*
 * fork() with a touched 64 MiB IVSHMEM mapping live: kvmfr's mmap(NULL)
 * mapping against the same device in the reference's shape: kvmfr's time
 * over the baseline's. The shapes are checked on the first mapping of
 * each side.
 */
static void fork_target(void)
{
	const char *what = FORK_TARGET VS_BASELINE;
	struct kvmfr_dev *d = pci_for(TARGET_LEN);
	struct side_ctx mine, base;
	struct shape sa, sb;
	struct ms_touch t;
	struct spread sp;
	char subject[96];
	size_t len = TARGET_LEN, rlen;
	uint8_t *a, *b;
	void *res;
	int fd;

	if (!d) {
		skip_ratio_targets("kvmfr IVSHMEM, device mmap", FORK_TARGET,
				   "no IVSHMEM kvmfr device of 64 MiB");
		return;
	}
	snprintf(subject, sizeof(subject), "kvmfr IVSHMEM, device mmap (%s)",
		 d->name);
	fd = open(d->node, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		skip_ratio_targets(subject, FORK_TARGET, kt_errname(errno));
		return;
	}
	a = map_side(fd, len, false, &res, &rlen, 0);
	if (a == MAP_FAILED) {
		skip_ratio_targets(subject, FORK_TARGET,
				   kt_errname(step_errno));
		close(fd);
		return;
	}
	first_touch(a, len, true, &t);
	shape_of(&sa, (uintptr_t)a % MS_2M ? "mmap(NULL), not 2 MiB aligned" :
					       "mmap(NULL), 2 MiB aligned",
		 &t, a, len);
	unmap_side(a, len, res, rlen);
	b = map_side(fd, len, true, &res, &rlen, 0);
	if (b == MAP_FAILED) {
		skip_ratio_targets(subject, FORK_TARGET,
				   kt_errname(step_errno));
		close(fd);
		return;
	}
	first_touch(b, len, true, &t);
	shape_of(&sb, "MAP_FIXED at 2 MiB + 4 KiB", &t, b, len);
	unmap_side(b, len, res, rlen);
	shape_targets(subject, FORK_TARGET, &sa, &sb, len);

	mine = (struct side_ctx){ fd, len, false };
	base = (struct side_ctx){ fd, len, true };
	own_buffers_fork(MADV_DONTFORK);
	if (paired(fork_step, &mine, fork_step, &base, &sp))
		ratio_target(subject, what, &sp, sp.med <= 1.0, "kvmfr",
			     "baseline");
	else
		target(subject, what, true, KT_FAIL, "mmap or fork failed: %s",
		       kt_errname(step_errno));
	own_buffers_fork(MADV_DOFORK);
	close(fd);
}

static volatile uint64_t read_sink;

/* The first full read: one 8-byte load per 64 bytes (every cache line). */
static void read_all(const uint8_t *p, size_t len)
{
	const uint64_t *q = (const uint64_t *)p;
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < len / 8; i += 8)
		sum += q[i];
	read_sink = sum;
}

/*
 * mmap + the first full read of a fresh mapping, timed together: kvmfr's
 * mmap(NULL), or the baseline's MAP_FIXED | MAP_POPULATE into a reserved
 * misaligned place (the reservation itself is not timed: it stands for
 * get_unmapped_area). The munmap is not timed either.
 */
static uint64_t read_step(void *ctx, unsigned int k)
{
	const struct side_ctx *c = ctx;
	size_t rlen = 0;
	uint64_t t0, t;
	void *res;
	uint8_t *p;

	(void)k;
	if (c->baseline) {
		/* the reservation first: not timed */
		res = NULL;
		p = misaligned_slot(c->len, &res, &rlen);
		if (!p) {
			step_errno = errno;
			return 0;
		}
		t0 = ms_now_ns();
		p = mmap(p, c->len, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED | MAP_POPULATE, c->fd, 0);
	} else {
		t0 = ms_now_ns();
		p = map_side(c->fd, c->len, false, &res, &rlen, 0);
	}
	if (p == MAP_FAILED) {
		step_errno = errno;
		if (res)
			munmap(res, rlen);
		return 0;
	}
	read_all(p, c->len);
	t = since(t0);
	unmap_side(p, c->len, res, rlen);
	return t;
}

/*
 * The baseline's shape for the first-read target: page tables and faults
 * of the MAP_POPULATE mmap (with guard pages as in ms_first_touch(), so that
 * every page-table page it adds is a PTE table), and the faults of the read
 * after it, which must be none.
 */
static bool populated_shape(int fd, size_t len, struct shape *sh,
			    long *read_faults)
{
	uint64_t lo, hi;
	void *res = NULL, *g0 = NULL, *g1 = NULL;
	size_t rlen = 0;
	long long pt0;
	uint8_t *at, *p;
	long f0, f1;

	at = misaligned_slot(len, &res, &rlen);
	if (!at)
		return false;
	lo = (uintptr_t)at & ~(MS_2M - 1);
	hi = ((uintptr_t)at + len + MS_2M - 1) & ~(MS_2M - 1);
	g0 = ms_guard_page(lo >> 30, lo, hi);
	if ((hi - 1) >> 30 != lo >> 30)
		g1 = ms_guard_page((hi - 1) >> 30, lo, hi);
	memset(sh, 0, sizeof(*sh));
	sh->where = "MAP_FIXED, MAP_POPULATE at 2 MiB + 4 KiB";
	sh->slots = (hi - lo) / MS_2M;
	sh->guarded = g0 && ((hi - 1) >> 30 == lo >> 30 || g1);
	pt0 = ms_vmpte();
	f0 = ms_faults();
	p = mmap(at, len, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd, 0);
	f1 = ms_faults();
	if (p != MAP_FAILED) {
		sh->pt_bytes = ms_vmpte() - pt0;
		sh->pte_slots = sh->pt_bytes / 4096;
		sh->faults = f1 - f0;
		read_all(p, len);
		*read_faults = ms_faults() - f1;
		sh->present = present_pages(p, len);
	}
	if (g0)
		munmap(g0, 4096);
	if (g1)
		munmap(g1, 4096);
	munmap(res, rlen);
	return p != MAP_FAILED;
}

/*
 * The first full read of a fresh 64 MiB static mapping, mmap included:
 * kvmfr's (mmap(NULL), faults on the way) over the baseline's (4 KiB PTEs
 * all installed at mmap by MAP_POPULATE, as the reference's
 * remap_vmalloc_range does).
 */
static void read_target(void)
{
	const char *what = READ_TARGET VS_BASELINE;
	struct kvmfr_dev *d = static_for(TARGET_LEN);
	struct side_ctx mine, base;
	struct shape sa, sb;
	struct ms_touch t;
	struct spread sp;
	char subject[96];
	size_t len = TARGET_LEN;
	long read_faults = -1;
	uint8_t *a;
	int fd;

	if (!d) {
		skip_ratio_targets("kvmfr static, device mmap", READ_TARGET,
				   "no static kvmfr device of 64 MiB");
		return;
	}
	snprintf(subject, sizeof(subject), "kvmfr static, device mmap (%s)",
		 d->name);
	fd = open(d->node, O_RDWR | O_CLOEXEC);
	a = fd < 0 ? MAP_FAILED :
		     mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a == MAP_FAILED || !populated_shape(fd, len, &sb, &read_faults)) {
		if (a != MAP_FAILED)
			munmap(a, len);
		skip_ratio_targets(subject, READ_TARGET, "open or mmap failed");
		if (fd >= 0)
			close(fd);
		return;
	}
	/* kvmfr's shape: the same mapping, read once per 4 KiB page */
	first_touch(a, len, false, &t);
	shape_of(&sa, (uintptr_t)a % MS_2M ? "mmap(NULL), not 2 MiB aligned" :
					       "mmap(NULL), 2 MiB aligned",
		 &t, a, len);
	munmap(a, len);
	/* the baseline's read must not fault: all of it is prefaulted */
	if (read_faults)
		sb.present = -1;
	shape_targets(subject, READ_TARGET, &sa, &sb, len);
	if (read_faults)
		kt_diag("note: the read after MAP_POPULATE took %ld faults",
			read_faults);

	mine = (struct side_ctx){ fd, len, false };
	base = (struct side_ctx){ fd, len, true };
	if (paired(read_step, &mine, read_step, &base, &sp))
		ratio_target(subject, what, &sp, sp.med <= 1.0, "kvmfr",
			     "baseline");
	else
		target(subject, what, true, KT_FAIL, "mmap failed: %s",
		       kt_errname(step_errno));
	close(fd);
}

static const char *result_of(const struct target *t)
{
	if (t->res == KT_SKIP)
		return "skipped";
	if (t->ratio)
		return t->res == KT_PASS ? "met" : "not met (TCG timing)";
	return t->res == KT_PASS ? "pass" : "**FAIL**";
}

/* The targets: TAP lines, then a Markdown table ("# target |" lines). */
static void print_targets(void)
{
	const struct target *t;
	int i;

	for (i = 0; i < ntargets; i++) {
		t = &targets[i];
		if (t->res == KT_SKIP) {
			snprintf(kt_skip_reason, sizeof(kt_skip_reason), "%s",
				 t->measured);
			kt_report(KT_SKIP, "target: %s: %s", t->subject,
				  t->what);
		} else if (t->ratio && t->res == KT_FAIL) {
			/* a TCG timing: shown, not a failure */
			kt_ran++;
			printf("not ok %d - target: %s: %s: %s, not met # TODO TCG timing, reported only\n",
			       kt_ran, t->subject, t->what, t->measured);
		} else {
			kt_report(t->res, "target: %s: %s: %s%s", t->subject,
				  t->what, t->measured,
				  !t->ratio ? "" : ", met");
		}
	}
	printf("# target | subject | target | measured | result |\n");
	printf("# target | --- | --- | --- | --- |\n");
	for (i = 0; i < ntargets; i++) {
		t = &targets[i];
		printf("# target | %s | %s | %s | %s |\n", t->subject, t->what,
		       t->measured, result_of(t));
	}
	fflush(stdout);
}

static void run(const struct subject *s, size_t len)
{
	char why[160] = "", pin[32] = "", seg[32] = "", copy[32] = "";
	char forkt[32] = "", pmd[32], small[32], ptes[32], name[160];
	struct inst in = { .fd = -1, .db = -1, .memfd = -1, .len = len };
	bool big = len > TARGET_LEN, targeted = s->kvmfr && !big;
	bool cp_ok = false;
	long seg_cpu = -1, seg_dma = -1;
	struct spread cp;
	struct ms_touch t;
	struct ms_smaps sm;

	if (big && mem_available() < (long long)(len + len / 4) &&
	    !strstr(s->name, "kvmfr")) {
		kt_skip("the guest has %lld MiB available, not enough for %zu MiB",
			mem_available() >> 20, len >> 20);
		printf("# | %s | %zu MiB | n/a: %s | | | | | | | | |\n", s->name,
		       len >> 20, kt_skip_reason);
		kt_report(KT_SKIP, "%s, %zu MiB", s->name, len >> 20);
		return;
	}
	if (s->make(&in, len, why, sizeof(why))) {
		inst_free(&in);
		kt_skip("%s", why);
		printf("# | %s | %zu MiB | n/a: %s | | | | | | | | |\n", s->name,
		       len >> 20, why);
		kt_report(KT_SKIP, "%s, %zu MiB", s->name, len >> 20);
		if (targeted)
			skip_subject_targets(s, why);
		return;
	}
	snprintf(name, sizeof(name), "%s%s%s%s", s->name,
		 in.note[0] ? " (" : "", in.note, in.note[0] ? ")" : "");
	first_touch(in.p, len, true, &t);
	ms_smaps(in.p, &sm);
	snprintf(pmd, sizeof(pmd), "%" PRIu64, sm.pmd >> 20);
	if (s->smaps_exact || sm.rss == len)
		snprintf(small, sizeof(small), "%" PRIu64, (sm.rss - sm.pmd) >> 10);
	else
		snprintf(small, sizeof(small), "(Rss %" PRIu64 " MiB)",
			 sm.rss >> 20);
	if (t.guarded)
		snprintf(ptes, sizeof(ptes), "%ld / %ld", t.pte_slots, t.slots);
	else
		snprintf(ptes, sizeof(ptes), "? / %ld", t.slots);
	if (!big) {
		cp_ok = copy_ratio(in.p, len, &cp);
		if (cp_ok)
			spread_str(&cp, copy, sizeof(copy));
		else
			snprintf(copy, sizeof(copy), "failed");
		snprintf(forkt, sizeof(forkt), "%.2f", fork_ms());
		pin_figure(&in, pin, sizeof(pin));
		segment_figure(&in, seg, sizeof(seg), &seg_cpu, &seg_dma);
	}
	printf("# | %s | %zu MiB | %ld | %.1f | %s | %s | %s | %lld | %s | %s | %s | %s |\n",
	       name, len >> 20, t.faults, t.ns / 1e6, pmd, small, ptes,
	       t.pt_bytes >> 10, copy, forkt, pin, seg);
	kt_report(KT_PASS, "%s, %zu MiB", s->name, len >> 20);
	if (targeted)
		add_subject_targets(s, name, in.p, &t, &cp, cp_ok, seg_cpu,
				    seg_dma);
	inst_free(&in);
}

int main(void)
{
	size_t sizes[] = { 64 * MIB, 1024 * MIB };
	struct kvmfr_edu_info info;
	uint32_t seg = MS_2M, old_seg = 0;
	struct inst ref = { .fd = -1, .db = -1, .memfd = -1 };
	char why[64], buf[128];
	uint64_t t0;
	int ntarg = RATIO_TARGETS;
	size_t i, j;

	kt_init();
	for (i = 0; i < KT_ARRAY_SIZE(subjects); i++)
		ntarg += subject_targets(&subjects[i]);
	kt_plan(KT_ARRAY_SIZE(subjects) * KT_ARRAY_SIZE(sizes) + ntarg);
	/*
	 * The first clock_gettime() faults in the vDSO's data page: not in
	 * the first subject's first touch, please.
	 */
	t0 = ms_now_ns();

	if (kt_read_file("/proc/sys/kernel/osrelease", buf, sizeof(buf)))
		strcpy(buf, "?");
	kt_diag("note: kernel %s; times from a TCG guest (emulated, compare within this run only); counts exact", buf);
	if (!kt_read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf,
			  sizeof(buf)))
		kt_diag("note: THP enabled: %s", buf);
	for (i = 0; i < (size_t)kt_ndev; i++)
		if (kt_devs[i].found)
			kt_diag("note: %s is %s, %" PRIu64 " MiB", kt_devs[i].label,
				kt_devs[i].name, kt_devs[i].size >> 20);

	edu = kt_importer_open();
	memset(&info, 0, sizeof(info));
	if (edu >= 0 && (ioctl(edu, KVMFR_EDU_INFO, &info) || !info.iommu)) {
		kt_diag("note: the edu importer is not behind an IOMMU: no segment counts");
		close(edu);
		edu = -1;
	} else if (edu >= 0 && ioctl(edu, KVMFR_EDU_SET_MAX_SEG, &seg)) {
		kt_diag("note: KVMFR_EDU_SET_MAX_SEG: %s: no segment counts",
			kt_errname(errno));
		close(edu);
		edu = -1;
	} else if (edu >= 0) {
		old_seg = seg;
	}

	/* the copy loop's reference source and its destination */
	if (make_thp(&ref, TARGET_LEN, why, sizeof(why))) {
		printf("Bail out! anonymous THP reference: %s\n", why);
		return 1;
	}
	memset(ref.p, 1, TARGET_LEN);
	ref_src = ref.p;
	copy_dst_len = (FRAME + 4095) & ~4095u;
	copy_dst = mmap(NULL, copy_dst_len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (copy_dst == MAP_FAILED) {
		printf("Bail out! copy destination: %s\n", kt_errname(errno));
		return 1;
	}
	memset(copy_dst, 0, FRAME);

	kt_diag("note: ratios are the median of %d alternating pairs (ABBA), the interquartile range in brackets; frame copy: %d frames of 1920x1080x4 per sample, anonymous THP time over the mapping's",
		PAIRS, SAMPLE_FRAMES);
	printf("# | mapping | size | faults | first touch ms | PMD-mapped MiB | 4 KiB-mapped KiB | 2 MiB slots with a PTE table | VmPTE + KiB | frame copy vs anon THP, median [IQR] | fork ms (best of 5) | io_uring pin ms | dma-buf segments CPU / DMA |\n");
	printf("# | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
	for (j = 0; j < KT_ARRAY_SIZE(sizes); j++)
		for (i = 0; i < KT_ARRAY_SIZE(subjects); i++)
			run(&subjects[i], sizes[j]);
	kt_diag("note: the table took %.1f s", (ms_now_ns() - t0) / 1e9);

	t0 = ms_now_ns();
	fork_target();
	kt_diag("note: the fork target took %.1f s", (ms_now_ns() - t0) / 1e9);
	t0 = ms_now_ns();
	read_target();
	kt_diag("note: the first-read target took %.1f s",
		(ms_now_ns() - t0) / 1e9);
	if (majors_seen)
		kt_diag("note: %ld of the faults counted were major faults (the faults column counts both)",
			majors_seen);
	print_targets();

	if (edu >= 0) {
		ioctl(edu, KVMFR_EDU_SET_MAX_SEG, &old_seg);
		close(edu);
	}
	inst_free(&ref);
	munmap(copy_dst, copy_dst_len);
	return kt_exit();
}
