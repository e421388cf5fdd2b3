// SPDX-License-Identifier: GPL-2.0
/*
 * uring-pin - long-term pin a kvmfr device mapping the way VFIO does, with
 * io_uring fixed buffers (runs in level 1, with raw io_uring syscalls).
 *
 *   uring-pin [-d /dev/kvmfr0] [-f DUMP_FILE]
 *
 * IORING_REGISTER_BUFFERS pins the pages of a buffer with
 * pin_user_pages(FOLL_WRITE | FOLL_LONGTERM), the same call VFIO's
 * VFIO_IOMMU_MAP_DMA uses for guest RAM. This program registers the mapping
 * of the whole device as one fixed buffer, then
 *  - writes the whole device from the pinned buffer to DUMP_FILE (a tmpfs
 *    file) with IORING_OP_WRITE_FIXED and compares the file with the
 *    mapping; the frames left in the slots by the demo must still match
 *    their checksums in the dump;
 *  - reads a pattern from a second file into the last MiB of the device with
 *    IORING_OP_READ_FIXED and checks it through the mapping and through a
 *    dma-buf of that range;
 *  - unregisters the buffer and checks that the pin count went back.
 * Prints "@@check ok|fail|skip TEXT" lines. Exit status 0 if nothing failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kvmfr.h"
#include "demo_frame.h"

#define CHUNK		(4u << 20)
#define SCRATCH		(1u << 20)

struct ring {
	int fd;
	unsigned int *sq_tail, *sq_mask, *sq_array;
	unsigned int *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int failures;

static void check(int ok, const char *what)
{
	printf("@@check %s %s\n", ok ? "ok" : "fail", what);
	failures += !ok;
}

static int ring_init(struct ring *r, unsigned int entries)
{
	struct io_uring_params p;
	unsigned char *sq, *cq;
	size_t sq_len, cq_len;

	memset(&p, 0, sizeof(p));
	r->fd = syscall(__NR_io_uring_setup, entries, &p);
	if (r->fd < 0)
		return -1;
	sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (cq_len > sq_len)
			sq_len = cq_len;
		cq_len = sq_len;
	}
	sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		  r->fd, IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		return -1;
	cq = sq;
	if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
		cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
		if (cq == MAP_FAILED)
			return -1;
	}
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		       IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED)
		return -1;
	r->sq_tail = (unsigned int *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned int *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned int *)(sq + p.sq_off.array);
	r->cq_head = (unsigned int *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned int *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned int *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

/* One fixed-buffer read or write, waited for; returns cqe->res. */
static int ring_rw_fixed(struct ring *r, int opcode, int fd, void *addr,
			 unsigned int len, uint64_t off)
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

/* Transfer all of [addr, addr + len) at file offset off, chunk by chunk. */
static int ring_rw_all(struct ring *r, int opcode, int fd, unsigned char *addr,
		       uint64_t len, uint64_t off)
{
	uint64_t done = 0;
	int ret;

	while (done < len) {
		unsigned int n = len - done > CHUNK ? CHUNK : len - done;

		ret = ring_rw_fixed(r, opcode, fd, addr + done, n, off + done);
		if (ret <= 0)
			return ret ? ret : -EIO;
		done += ret;
	}
	return 0;
}

/* Pinned pages of this process in kB, from /proc/self/status (VmPin). */
static long vm_pin_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static uint64_t scratch_word(uint64_t i)
{
	uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
	return z ^ (z >> 29);
}

/* Frames left in the slots must match their checksums in the dump too. */
static void check_dumped_frames(const unsigned char *dump, uint64_t size)
{
	const struct demo_ctrl *ctrl = (const void *)dump;
	char what[160];
	unsigned int s, good = 0, seen = 0;

	for (s = 0; s < DEMO_SLOTS; s++) {
		const struct demo_frame_hdr *hdr = &ctrl->slot[s];
		uint64_t fb = (uint64_t)hdr->height * hdr->pitch;

		if (hdr->magic != DEMO_FRAME_MAGIC || !hdr->seq)
			continue;
		seen++;
		if (hdr->offset + fb <= size &&
		    demo_checksum(dump + hdr->offset, fb) == hdr->checksum)
			good++;
	}
	if (!seen) {
		printf("uring-pin: no demo frames in the device to check\n");
		return;
	}
	snprintf(what, sizeof(what),
		 "the %u frame(s) left in the slots match their checksums in the dump written from the pinned buffer",
		 seen);
	check(good == seen, what);
}

int main(int argc, char **argv)
{
	const char *path = "/dev/kvmfr0", *dump_path = "/tmp/uring-pin.dump";
	struct kvmfr_dmabuf_create create;
	struct dma_buf_sync sync;
	unsigned char *base, *dump, *view;
	uint64_t *pat, i, size;
	struct iovec iov;
	struct ring r;
	char what[200], src_path[256];
	long pinned, before;
	int fd, dfd, sfd, bfd, opt, ret, ok;

	while ((opt = getopt(argc, argv, "d:f:")) != -1) {
		switch (opt) {
		case 'd':
			path = optarg;
			break;
		case 'f':
			dump_path = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-d DEV] [-f DUMP_FILE]\n",
				argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	fd = open(path, O_RDWR);
	if (fd < 0) {
		printf("uring-pin: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	size = (uint64_t)ioctl(fd, KVMFR_DMABUF_GETSIZE);
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED || size < 2 * SCRATCH) {
		printf("uring-pin: mmap %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (ring_init(&r, 4)) {
		printf("uring-pin: io_uring_setup: %s\n", strerror(errno));
		check(0, "set up an io_uring");
		return 1;
	}

	before = vm_pin_kb();
	iov.iov_base = base;
	iov.iov_len = size;
	ret = syscall(__NR_io_uring_register, r.fd, IORING_REGISTER_BUFFERS,
		      &iov, 1);
	snprintf(what, sizeof(what),
		 "IORING_REGISTER_BUFFERS long-term pins the whole %s mapping (%llu MiB)",
		 path, (unsigned long long)(size >> 20));
	if (ret && errno == EOPNOTSUPP) {
		/* io_uring refused every file-backed mapping before 6.5 */
		printf("@@check skip %s: EOPNOTSUPP, this kernel's io_uring takes no file-backed buffers\n",
		       what);
		return 0;
	}
	if (ret) {
		printf("uring-pin: IORING_REGISTER_BUFFERS: %s\n", strerror(errno));
		check(0, what);
		return 1;
	}
	pinned = vm_pin_kb();
	printf("uring-pin: VmPin %ld kB before, %ld kB with the buffer registered\n",
	       before, pinned);
	snprintf(what + strlen(what), sizeof(what) - strlen(what),
		 "; VmPin grew by %ld kB", pinned - before);
	check(pinned - before >= (long)(size >> 10), what);

	/* pinned buffer -> tmpfs file, then compare with the mapping */
	dfd = open(dump_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (dfd < 0) {
		printf("uring-pin: open %s: %s\n", dump_path, strerror(errno));
		return 1;
	}
	ret = ring_rw_all(&r, IORING_OP_WRITE_FIXED, dfd, base, size, 0);
	dump = mmap(NULL, size, PROT_READ, MAP_SHARED, dfd, 0);
	ok = !ret && dump != MAP_FAILED && !memcmp(dump, base, size);
	if (ret)
		printf("uring-pin: IORING_OP_WRITE_FIXED: %s\n", strerror(-ret));
	snprintf(what, sizeof(what),
		 "IORING_OP_WRITE_FIXED of all %llu MiB from the pinned buffer to tmpfs equals the mapping",
		 (unsigned long long)(size >> 20));
	check(ok, what);
	if (ok)
		check_dumped_frames(dump, size);

	/* tmpfs file -> pinned buffer (last MiB), check through two views */
	snprintf(src_path, sizeof(src_path), "%s.src", dump_path);
	sfd = open(src_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	pat = malloc(SCRATCH);
	if (sfd < 0 || !pat)
		return 1;
	for (i = 0; i < SCRATCH / 8; i++)
		pat[i] = scratch_word(i);
	if (write(sfd, pat, SCRATCH) != SCRATCH)
		return 1;
	memset(base + size - SCRATCH, 0, SCRATCH);
	ret = ring_rw_all(&r, IORING_OP_READ_FIXED, sfd, base + size - SCRATCH,
			  SCRATCH, 0);
	if (ret)
		printf("uring-pin: IORING_OP_READ_FIXED: %s\n", strerror(-ret));
	check(!ret && !memcmp(base + size - SCRATCH, pat, SCRATCH),
	      "IORING_OP_READ_FIXED into the pinned buffer shows through the device mapping");

	create.flags = KVMFR_DMABUF_FLAG_CLOEXEC;
	create.offset = size - SCRATCH;
	create.size = SCRATCH;
	bfd = ioctl(fd, KVMFR_DMABUF_CREATE, &create);
	ok = 0;
	if (bfd >= 0) {
		view = mmap(NULL, SCRATCH, PROT_READ, MAP_SHARED, bfd, 0);
		sync.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ;
		if (view != MAP_FAILED && !ioctl(bfd, DMA_BUF_IOCTL_SYNC, &sync)) {
			ok = !memcmp(view, pat, SCRATCH);
			sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ;
			ok &= !ioctl(bfd, DMA_BUF_IOCTL_SYNC, &sync);
			munmap(view, SCRATCH);
		}
		close(bfd);
	}
	check(ok, "... and through a dma-buf of that range");

	ret = syscall(__NR_io_uring_register, r.fd, IORING_UNREGISTER_BUFFERS,
		      NULL, 0);
	snprintf(what, sizeof(what),
		 "IORING_UNREGISTER_BUFFERS releases the pin (VmPin %ld kB)",
		 vm_pin_kb());
	check(!ret && vm_pin_kb() == before, what);

	close(r.fd);
	close(sfd);
	close(dfd);
	unlink(src_path);
	unlink(dump_path);
	munmap(base, size);
	close(fd);
	return failures != 0;
}
