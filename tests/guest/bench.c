// SPDX-License-Identifier: GPL-2.0
/*
 * kvmfr-bench: the figures of `make bench` (tests/bench/run, issue 12),
 * measured in one guest for kvmfr and for what a user could pick instead.
 *
 * Subjects: kvmfr's static device and IVSHMEM device, each through the
 * device mapping and through a dma-buf mmap of it; anonymous memory with
 * MADV_HUGEPAGE (THP) and with MADV_NOHUGEPAGE (4 KiB); a memfd (shmem);
 * a memfd with MFD_HUGETLB (2 MiB hugetlb pages from the pool, which this
 * program sizes and empties again); udmabuf over a memfd and over a
 * hugetlb memfd (where the kernel has /dev/udmabuf).
 *
 * For each, at 64 MiB and at 1 GiB (where the guest has the memory and the
 * device): first touch (one write per 4 KiB page: minor faults, time), how
 * the touched mapping is mapped (smaps: PMD-mapped and 4 KiB-mapped bytes;
 * page tables: PTE tables added, each one 2 MiB slot mapped by 4 KiB
 * entries; see mapping_stats.h), VmPTE growth. At 64 MiB also: a frame-copy
 * loop (8 frames of 1920x1080x4 out of the mapping into anonymous memory)
 * as a ratio to the same loop out of anonymous THP memory, alternating, the
 * best of 5 rounds each (> 1: faster than anonymous THP); fork() with the
 * mapping live (best of 5); a
 * long-term pin of the whole mapping (io_uring IORING_REGISTER_BUFFERS);
 * and, for dma-bufs, the scatterlist an importer with 2 MiB maximum DMA
 * segment gets (tests/edu's importer: the exporter's CPU segments and the
 * DMA segments after the IOMMU).
 *
 * Prints TAP: one test per subject and size (measured, or skipped with the
 * reason), the table as "# |" lines (Markdown), notes as "# note:" lines.
 * Times come from a TCG guest: compare them within one run only.
 */
#include "kvmfr_test.h"
#include "mapping_stats.h"

#include <linux/memfd.h>
#include <linux/udmabuf.h>

#define MIB		(1ull << 20)
#define FRAME		(1920u * 1080u * 4u)
#define COPIES		8	/* frames per copy loop (one pass over 64 MiB) */
#define ROUNDS		5
#define FORKS		5

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
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
		 dmabuf ? in->db : in->fd, 0);
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
	{ "kvmfr static, device mmap", make_static, true },
	{ "kvmfr static, dma-buf mmap", make_static_db, true },
	{ "kvmfr IVSHMEM, device mmap", make_pci, false },
	{ "kvmfr IVSHMEM, dma-buf mmap", make_pci_db, false },
	{ "anonymous, MADV_HUGEPAGE", make_thp, true },
	{ "anonymous, MADV_NOHUGEPAGE", make_4k, true },
	{ "memfd (shmem)", make_memfd, true },
	{ "memfd MFD_HUGETLB", make_memfd_huge, true },
	{ "udmabuf over memfd", make_udmabuf, false },
	{ "udmabuf over hugetlb memfd", make_udmabuf_huge, false },
};

/* ---------------------------------------------------------- figures */

static uint8_t *ref_src, *copy_dst;	/* anonymous THP source, destination */

/* COPIES frames out of @src, cycling through it: the time. */
static uint64_t copy_loop(const uint8_t *src, size_t len)
{
	size_t frames = len / FRAME;
	uint64_t t0 = ms_now_ns();
	int i;

	for (i = 0; i < COPIES; i++)
		memcpy(copy_dst, src + (i % frames) * FRAME, FRAME);
	return ms_now_ns() - t0;
}

/*
 * The copy loop out of anonymous THP memory and out of @src, alternating,
 * ROUNDS times; the best time of each (a loaded host only ever adds time):
 * the THP loop's over this one's.
 */
static double copy_ratio(const uint8_t *src, size_t len)
{
	uint64_t ref = UINT64_MAX, mine = UINT64_MAX, t;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		t = copy_loop(ref_src, len);
		if (t < ref)
			ref = t;
		t = copy_loop(src, len);
		if (t < mine)
			mine = t;
	}
	return (double)ref / mine;
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

static void segment_figure(struct inst *in, char *out, size_t olen)
{
	struct kvmfr_edu_import imp;

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

static void run(const struct subject *s, size_t len)
{
	char why[160] = "", pin[32] = "", seg[32] = "", copy[32] = "";
	char forkt[32] = "", pmd[32], small[32], ptes[32];
	struct inst in = { .fd = -1, .db = -1, .memfd = -1, .len = len };
	struct ms_touch t;
	struct ms_smaps sm;
	bool big = len > 64 * MIB;

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
		return;
	}
	ms_first_touch(in.p, len, true, &t);
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
		snprintf(copy, sizeof(copy), "%.2f", copy_ratio(in.p, len));
		snprintf(forkt, sizeof(forkt), "%.2f", fork_ms());
		pin_figure(&in, pin, sizeof(pin));
		segment_figure(&in, seg, sizeof(seg));
	}
	printf("# | %s%s%s%s | %zu MiB | %ld | %.1f | %s | %s | %s | %lld | %s | %s | %s | %s |\n",
	       s->name, in.note[0] ? " (" : "", in.note, in.note[0] ? ")" : "",
	       len >> 20, t.faults, t.ns / 1e6, pmd, small, ptes,
	       t.pt_bytes >> 10, copy, forkt, pin, seg);
	kt_report(KT_PASS, "%s, %zu MiB", s->name, len >> 20);
	inst_free(&in);
}

int main(void)
{
	size_t sizes[] = { 64 * MIB, 1024 * MIB };
	struct kvmfr_edu_info info;
	uint32_t seg = MS_2M, old_seg = 0;
	struct inst ref = { .fd = -1, .db = -1, .memfd = -1 };
	char why[64], buf[128];
	size_t i, j;

	kt_init();
	kt_plan(KT_ARRAY_SIZE(subjects) * KT_ARRAY_SIZE(sizes));

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
	if (make_thp(&ref, 64 * MIB, why, sizeof(why))) {
		printf("Bail out! anonymous THP reference: %s\n", why);
		return 1;
	}
	memset(ref.p, 1, 64 * MIB);
	ref_src = ref.p;
	copy_dst = malloc(FRAME);
	memset(copy_dst, 0, FRAME);

	printf("# | mapping | size | faults | first touch ms | PMD-mapped MiB | 4 KiB-mapped KiB | 2 MiB slots with a PTE table | VmPTE + KiB | frame copy vs anon THP | fork ms (best of 5) | io_uring pin ms | dma-buf segments CPU / DMA |\n");
	printf("# | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
	for (j = 0; j < KT_ARRAY_SIZE(sizes); j++)
		for (i = 0; i < KT_ARRAY_SIZE(subjects); i++)
			run(&subjects[i], sizes[j]);

	if (edu >= 0) {
		ioctl(edu, KVMFR_EDU_SET_MAX_SEG, &old_seg);
		close(edu);
	}
	inst_free(&ref);
	return kt_exit();
}
