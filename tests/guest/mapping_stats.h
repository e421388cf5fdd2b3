/* SPDX-License-Identifier: GPL-2.0 */
/*
 * How a mapping is mapped, as the kernel reports it: shared by the huge
 * page tests (huge_pages.c) and the benchmark (bench.c).
 *
 * - ms_smaps(): the smaps entry of the VMA that contains an address. The
 *   PMD-mapped bytes are the sum of every "*PmdMapped" field and
 *   AnonHugePages, plus Shared_/Private_Hugetlb (2 MiB hugetlb pages, which
 *   smaps leaves out of Rss: added to it here) (5.10 to 7.x name them
 *   alike, but a field a kernel lacks
 *   is simply absent, so whatever is there is summed); Rss minus that is
 *   the 4 KiB-mapped part. Pages the kernel does not count in smaps at
 *   all (special/PFN PTEs, device pages behind a PMD on some kernels) make
 *   Rss smaller than the mapping: then smaps cannot say, and the page-table
 *   count below is the authority.
 * - ms_vmpte(): VmPTE of /proc/self/status, in bytes (page-table pages:
 *   PTE tables, and PMD tables too on the kernels of the matrix).
 * - ms_touch(): first touch, one write per 4 KiB page, measured: faults,
 *   minor and major (getrusage), time, and page-table bytes added for the
 *   range alone. For the latter the PMD (and PUD) tables of the range are made
 *   to exist before the touch, by touching an anonymous page placed in a
 *   free 2 MiB slot of each 1 GiB region the range reaches into: then
 *   every 4 KiB page-table page the touch adds is a PTE table, and each
 *   PTE table maps exactly one 2 MiB slot of the range with 4 KiB entries.
 *   So pte_slots = added VmPTE / 4 KiB is exact, and the slots mapped by
 *   PMDs are the touched slots minus those. (A range that is not 2 MiB
 *   aligned shares its first and last slot with its neighbours, whose PTE
 *   table may exist already and is then not counted.) Not for anonymous
 *   THP: x86
 *   deposits a PTE table with every anonymous huge PMD (for a later
 *   split), so VmPTE grows as with 4 KiB pages there; file, shmem and
 *   device PMDs get no deposit.
 * - ms_no_pmds(): why a device's user mappings cannot be PMD-mapped here,
 *   or NULL where they must be.
 * - A minimal io_uring (raw syscalls) for long-term pins of fixed buffers.
 */
#ifndef KVMFR_MAPPING_STATS_H
#define KVMFR_MAPPING_STATS_H

#include <linux/io_uring.h>
#include <sys/resource.h>
#include <sys/uio.h>

#define MS_2M	((uint64_t)2 << 20)

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000
#endif

struct ms_smaps {
	bool found;
	uint64_t start, end;
	uint64_t rss;
	uint64_t pmd;		/* sum of *PmdMapped, AnonHugePages, *_Hugetlb */
	uint64_t kernel_page;	/* KernelPageSize */
	char pmd_fields[128];	/* which fields were non-zero, e.g. "ShmemPmdMapped" */
};

/* The smaps entry of the VMA containing @addr. */
static inline bool ms_smaps(const void *addr, struct ms_smaps *s)
{
	uint64_t a = (uintptr_t)addr, lo, hi, v;
	char line[512], name[64];
	bool in = false;
	FILE *f;

	memset(s, 0, sizeof(*s));
	f = fopen("/proc/self/smaps", "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			if (in)
				break;
			in = lo <= a && a < hi;
			if (in) {
				s->found = true;
				s->start = lo;
				s->end = hi;
			}
			continue;
		}
		if (!in || sscanf(line, "%63[^:]: %" SCNu64 " kB", name, &v) != 2)
			continue;
		v <<= 10;
		if (!strcmp(name, "Rss")) {
			s->rss = v;
		} else if (!strcmp(name, "KernelPageSize")) {
			s->kernel_page = v;
		} else if (!strcmp(name, "AnonHugePages") ||
			   strstr(name, "PmdMapped") ||
			   strstr(name, "_Hugetlb")) {
			/* hugetlb pages are not in Rss: add them to both */
			if (strstr(name, "_Hugetlb"))
				s->rss += v;
			s->pmd += v;
			if (v && strlen(s->pmd_fields) + strlen(name) + 2 <
					 sizeof(s->pmd_fields)) {
				if (s->pmd_fields[0])
					strcat(s->pmd_fields, "+");
				strcat(s->pmd_fields, name);
			}
		}
	}
	fclose(f);
	if (!s->pmd_fields[0])
		strcpy(s->pmd_fields, "none");
	return s->found;
}

/* A "Name: N kB" line of /proc/self/status in bytes, -1 if absent. */
static inline long long ms_status_kb(const char *field)
{
	char line[256];
	long long v = -1, n;
	size_t len = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, len) && line[len] == ':' &&
		    sscanf(line + len + 1, "%lld", &n) == 1) {
			v = n << 10;
			break;
		}
	fclose(f);
	return v;
}

static inline long long ms_vmpte(void)
{
	return ms_status_kb("VmPTE");
}

/*
 * Page faults so far, minor and major: a fault that gives up the mmap lock
 * (VM_FAULT_RETRY, e.g. 5.10 balancing dirty pages on the first write to a
 * shared folio) is not counted, its retry is, as a major one.
 */
static inline long ms_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

static inline uint64_t ms_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* What one first touch of a range cost. */
struct ms_touch {
	long faults;		/* minor and major faults (getrusage) */
	uint64_t ns;		/* time of the touch loop */
	long long pt_bytes;	/* page-table bytes added (VmPTE) */
	long pte_slots;		/* 2 MiB slots mapped by a PTE table (exact if guarded) */
	long slots;		/* 2 MiB slots the range covers */
	bool guarded;		/* PMD tables made to exist first (see above) */
};

/*
 * An anonymous page at the start of a free 2 MiB slot of the 1 GiB region
 * @region outside [lo, hi), touched, so that the region's PMD table (and
 * the tables above it) exist. NULL if every slot is taken.
 */
static inline void *ms_guard_page(uint64_t region, uint64_t lo, uint64_t hi)
{
	uint64_t slot, start = region << 30, end = start + (1ull << 30);
	void *p;

	for (slot = start; slot < end; slot += MS_2M) {
		if ((slot >= lo && slot < hi) || !slot)
			continue;
		p = mmap((void *)(uintptr_t)slot, 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED)
			continue;
		if (p != (void *)(uintptr_t)slot) {	/* no NOREPLACE */
			munmap(p, 4096);
			return NULL;
		}
		*(volatile char *)p = 1;
		return p;
	}
	return NULL;
}

/*
 * First touch of [p, p + len): one write per 4 KiB page (or a read if
 * !write), with the counts above. The range must not have been touched.
 */
static inline void ms_first_touch(volatile uint8_t *p, size_t len, bool write,
				  struct ms_touch *t)
{
	uint64_t a = (uintptr_t)p, lo = a & ~(MS_2M - 1);
	uint64_t hi = (a + len + MS_2M - 1) & ~(MS_2M - 1);
	void *below, *above = NULL;
	long long pt0, pt1;
	uint64_t t0;
	long f0;
	size_t i;

	memset(t, 0, sizeof(*t));
	/*
	 * A guard in each 1 GiB region the range touches (at most two:
	 * ranges of up to 1 GiB); then every page-table page the touch adds
	 * is a PTE table of the range.
	 */
	t->slots = (hi - lo) / MS_2M;
	below = ms_guard_page(lo >> 30, lo, hi);
	if ((hi - 1) >> 30 != lo >> 30)
		above = ms_guard_page((hi - 1) >> 30, lo, hi);
	t->guarded = below && ((hi - 1) >> 30 == lo >> 30 || above) &&
		     ((hi - 1) >> 30) - (lo >> 30) <= 1;

	pt0 = ms_vmpte();
	f0 = ms_faults();
	t0 = ms_now_ns();
	if (write)
		for (i = 0; i < len; i += 4096)
			p[i] = (uint8_t)i;
	else
		for (i = 0; i < len; i += 4096)
			(void)p[i];
	t->ns = ms_now_ns() - t0;
	t->faults = ms_faults() - f0;
	pt1 = ms_vmpte();
	t->pt_bytes = pt1 - pt0;
	t->pte_slots = t->pt_bytes / 4096;
	if (below)
		munmap(below, 4096);
	if (above)
		munmap(above, 4096);
}

/* ------------------------------------------------------------ io_uring */

struct ms_ring {
	int fd;
	unsigned int *sq_tail, *sq_mask, *sq_array;
	unsigned int *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	void *sq_map, *cq_map, *sqe_map;
	size_t sq_len, cq_len, sqe_len;
};

static inline void ms_ring_exit(struct ms_ring *r)
{
	if (r->sqe_map)
		munmap(r->sqe_map, r->sqe_len);
	if (r->cq_map && r->cq_map != r->sq_map)
		munmap(r->cq_map, r->cq_len);
	if (r->sq_map)
		munmap(r->sq_map, r->sq_len);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

/* 0, or -errno (the ring is left cleaned up). */
static inline int ms_ring_init(struct ms_ring *r, unsigned int entries)
{
	struct io_uring_params p;
	unsigned char *sq, *cq;
	int err;

	memset(r, 0, sizeof(*r));
	memset(&p, 0, sizeof(p));
	r->fd = syscall(__NR_io_uring_setup, entries, &p);
	if (r->fd < 0)
		return -errno;
	r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (r->cq_len > r->sq_len)
			r->sq_len = r->cq_len;
		r->cq_len = r->sq_len;
	}
	sq = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		goto fail;
	r->sq_map = sq;
	cq = sq;
	if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
		cq = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
		if (cq == MAP_FAILED)
			goto fail;
	}
	r->cq_map = cq;
	r->sqe_len = p.sq_entries * sizeof(struct io_uring_sqe);
	r->sqe_map = mmap(NULL, r->sqe_len, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (r->sqe_map == MAP_FAILED) {
		r->sqe_map = NULL;
		goto fail;
	}
	r->sqes = r->sqe_map;
	r->sq_tail = (unsigned int *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned int *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned int *)(sq + p.sq_off.array);
	r->cq_head = (unsigned int *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned int *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned int *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
fail:
	err = -errno;
	ms_ring_exit(r);
	return err;
}

/* IORING_REGISTER_BUFFERS of one buffer: 0 or -errno. */
static inline int ms_ring_register(struct ms_ring *r, void *p, size_t len)
{
	struct iovec iov = { .iov_base = p, .iov_len = len };

	if (syscall(__NR_io_uring_register, r->fd, IORING_REGISTER_BUFFERS,
		    &iov, 1))
		return -errno;
	return 0;
}

static inline int ms_ring_unregister(struct ms_ring *r)
{
	if (syscall(__NR_io_uring_register, r->fd, IORING_UNREGISTER_BUFFERS,
		    NULL, 0))
		return -errno;
	return 0;
}

/* One fixed-buffer read or write (buffer 0), waited for: cqe->res. */
static inline int ms_ring_rw_fixed(struct ms_ring *r, int opcode, int fd,
				   void *addr, unsigned int len, uint64_t off)
{
	unsigned int tail = *r->sq_tail, idx = tail & *r->sq_mask, head;
	struct io_uring_sqe *sqe = &r->sqes[idx];
	int ret;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = opcode;
	sqe->fd = fd;
	sqe->addr = (uintptr_t)addr;
	sqe->len = len;
	sqe->off = off;
	sqe->buf_index = 0;
	sqe->user_data = 1;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	ret = syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS,
		      NULL, 0);
	if (ret < 0)
		return -errno;
	head = *r->cq_head;
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		return -EAGAIN;
	ret = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return ret;
}

/* ------------------------------------------------- where PMDs are due */

/*
 * NULL if every 2 MiB of an aligned mapping of @d must be PMD-mapped, else
 * why not (into @buf): static memory always is, an IVSHMEM BAR where its
 * address is 2 MiB aligned (compound ZONE_DEVICE pages from Linux 5.17,
 * devmap PMDs before: docs/design.md).
 */
static inline const char *ms_no_pmds(const struct kvmfr_dev *d, char *buf,
				     size_t len)
{
	unsigned long long start = 0, end, flags;
	char path[128], line[160];
	FILE *f;
	int i;

	if (d->size < MS_2M) {
		snprintf(buf, len, "smaller than 2 MiB");
		return buf;
	}
	if (!d->pci)
		return NULL;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource",
		 d->pci_addr);
	f = fopen(path, "r");
	for (i = 0; f && i < 3 && fgets(line, sizeof(line), f); i++)
		if (i == 2 && sscanf(line, "%llx %llx %llx", &start, &end,
				     &flags) != 3)
			start = 0;
	if (f)
		fclose(f);
	if (!start) {
		snprintf(buf, len, "BAR2 address unknown (%s)", path);
		return buf;
	}
	if (start & (MS_2M - 1)) {
		snprintf(buf, len, "BAR2 at %#llx is not 2 MiB aligned", start);
		return buf;
	}
	return NULL;
}

#endif /* KVMFR_MAPPING_STATS_H */
