// SPDX-License-Identifier: GPL-2.0
/*
 * frame-client - the host side of the kvmfr demo (runs in level 1), using
 * /dev/kvmfr0 the way the Looking Glass client does.
 *
 *   frame-client [-d DEV] [-n FRAMES] [-W WIDTH] [-H HEIGHT] [-s SESSION]
 *                [-t TIMEOUT_S] [-x EXPORT_DEV -X EXPORT_SEQ]
 *
 * Opens DEV O_RDWR, asks its size with KVMFR_DMABUF_GETSIZE, maps all of it
 * once, zeroes it and writes the control block (demo_frame.h). Then, for
 * every frame the producer in the VM publishes: checks the slot header,
 * reads the pixels through the device mapping and through a dma-buf of the
 * slot (created with KVMFR_DMABUF_FLAG_CLOEXEC at the slot's page-aligned
 * offset, size height x pitch rounded up to the page size, recreated only
 * when a larger one is needed, read between DMA_BUF_IOCTL_SYNC START and
 * END), compares both with the producer's checksum and with the frame
 * regenerated here, and acknowledges the frame.
 *
 * Frame EXPORT_SEQ, as read through its dma-buf, is copied to EXPORT_DEV
 * (another kvmfr device, whose backing file the outermost host reads) as a
 * struct demo_export followed by the pixels at DEMO_PAGE_SIZE.
 *
 * Output: progress lines, "@@check ok|fail TEXT" lines and a final
 * "@@stat client ..." line. Exit status 0 only if every frame arrived and
 * matched through both paths.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvmfr.h"
#include "demo_frame.h"

struct slot_buf {
	int fd;
	unsigned char *map;
	uint64_t offset;
	uint64_t size;
};

struct stats {
	uint64_t dev_ok, dmabuf_ok, bytes_dev, bytes_dmabuf;
	uint64_t mismatches, lost, dmabufs_created;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void check(int ok, const char *what)
{
	printf("@@check %s %s\n", ok ? "ok" : "fail", what);
}

/* Make sure sb covers [offset, offset + size) of the device. */
static int slot_buf_get(struct slot_buf *sb, int devfd, uint64_t offset,
			uint64_t size, struct stats *st)
{
	struct kvmfr_dmabuf_create create;
	int fd, flags;

	if (sb->fd >= 0 && sb->offset == offset && sb->size >= size)
		return 0;
	if (sb->fd >= 0) {
		munmap(sb->map, sb->size);
		close(sb->fd);
		sb->fd = -1;
	}

	/* the padding after flags is left as it is, as clients do */
	create.flags = KVMFR_DMABUF_FLAG_CLOEXEC;
	create.offset = offset;
	create.size = size;
	fd = ioctl(devfd, KVMFR_DMABUF_CREATE, &create);
	if (fd < 0) {
		printf("client: KVMFR_DMABUF_CREATE offset %llu size %llu: %s\n",
		       (unsigned long long)offset, (unsigned long long)size,
		       strerror(errno));
		return -1;
	}
	flags = fcntl(fd, F_GETFD);
	if (flags < 0 || !(flags & FD_CLOEXEC)) {
		printf("client: dma-buf fd %d lacks FD_CLOEXEC\n", fd);
		close(fd);
		return -1;
	}
	sb->map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (sb->map == MAP_FAILED) {
		printf("client: mmap of the dma-buf: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	sb->fd = fd;
	sb->offset = offset;
	sb->size = size;
	st->dmabufs_created++;
	return 0;
}

static int dmabuf_sync(int fd, uint64_t flags)
{
	struct dma_buf_sync sync = { .flags = flags };

	if (ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync)) {
		printf("client: DMA_BUF_IOCTL_SYNC %#llx: %s\n",
		       (unsigned long long)flags, strerror(errno));
		return -1;
	}
	return 0;
}

static void export_frame(const char *path, const unsigned char *px,
			 const struct demo_frame_hdr *hdr)
{
	struct demo_export *ex;
	uint64_t fb = (uint64_t)hdr->height * hdr->pitch;
	unsigned char *map;
	long size;
	int fd;

	fd = open(path, O_RDWR);
	if (fd < 0) {
		printf("client: open %s: %s\n", path, strerror(errno));
		check(0, "export a frame for the PNG");
		return;
	}
	size = ioctl(fd, KVMFR_DMABUF_GETSIZE);
	if (size < (long)(DEMO_PAGE_SIZE + fb)) {
		printf("client: %s is too small for a frame\n", path);
		check(0, "export a frame for the PNG");
		close(fd);
		return;
	}
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		printf("client: mmap %s: %s\n", path, strerror(errno));
		check(0, "export a frame for the PNG");
		close(fd);
		return;
	}
	ex = (struct demo_export *)map;
	memset(ex, 0, sizeof(*ex));
	memcpy(map + DEMO_PAGE_SIZE, px, fb);
	ex->format = hdr->format;
	ex->width = hdr->width;
	ex->height = hdr->height;
	ex->pitch = hdr->pitch;
	ex->session = hdr->session;
	ex->seq = hdr->seq;
	ex->checksum = hdr->checksum;
	__atomic_store_n(&ex->magic, DEMO_EXPORT_MAGIC, __ATOMIC_RELEASE);
	munmap(map, size);
	close(fd);
	printf("client: frame %llu exported to %s\n",
	       (unsigned long long)hdr->seq, path);
}

int main(int argc, char **argv)
{
	const char *path = "/dev/kvmfr0", *export_path = NULL;
	uint32_t frames = 30, w = 640, h = 360, session = 1;
	uint64_t timeout_ms = 600000, export_seq = 0;
	struct slot_buf sbuf[DEMO_SLOTS];
	struct stats st = { 0 };
	uint64_t seq, size, fb, fb_pages, start, t_first = 0, t_last = 0, dma_seq;
	uint32_t *expect, *rows;
	struct demo_ctrl *ctrl;
	unsigned char *base;
	char what[160];
	int fd, opt, devsize, failed = 0;
	unsigned int i;

	while ((opt = getopt(argc, argv, "d:n:W:H:s:t:x:X:")) != -1) {
		switch (opt) {
		case 'd':
			path = optarg;
			break;
		case 'n':
			frames = strtoul(optarg, NULL, 0);
			break;
		case 'W':
			w = strtoul(optarg, NULL, 0);
			break;
		case 'H':
			h = strtoul(optarg, NULL, 0);
			break;
		case 's':
			session = strtoul(optarg, NULL, 0);
			break;
		case 't':
			timeout_ms = strtoull(optarg, NULL, 0) * 1000;
			break;
		case 'x':
			export_path = optarg;
			break;
		case 'X':
			export_seq = strtoull(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: %s [-d DEV] [-n FRAMES] [-W W] [-H H] [-s SESSION] [-t TIMEOUT_S] [-x EXPORT_DEV -X SEQ]\n",
				argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < DEMO_SLOTS; i++)
		sbuf[i].fd = -1;

	fd = open(path, O_RDWR);
	if (fd < 0) {
		printf("client: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	/* the Looking Glass client keeps the size in an int */
	devsize = ioctl(fd, KVMFR_DMABUF_GETSIZE);
	if (devsize <= 0) {
		printf("client: KVMFR_DMABUF_GETSIZE: %s\n", strerror(errno));
		return 1;
	}
	size = devsize;
	fb = demo_frame_bytes(w, h);
	fb_pages = demo_align(fb, sysconf(_SC_PAGESIZE));
	if (!frames || !w || !h || demo_layout_bytes(w, h) > size) {
		printf("client: %u frames of %ux%u do not fit in %llu bytes\n",
		       frames, w, h, (unsigned long long)size);
		return 1;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		printf("client: mmap %s: %s\n", path, strerror(errno));
		return 1;
	}
	expect = malloc(fb);
	rows = malloc((size_t)8 * 2 * w * 4);
	if (!expect || !rows)
		return 1;

	/* a fresh session: nothing of an earlier one can pass for a frame */
	memset(base, 0, size);
	ctrl = (struct demo_ctrl *)base;
	ctrl->session = session;
	ctrl->frames = frames;
	ctrl->width = w;
	ctrl->height = h;
	__atomic_store_n(&ctrl->ready, DEMO_READY(session), __ATOMIC_RELEASE);
	printf("client: %s (%llu MiB) mapped; session %u: waiting for %u frames of %ux%u\n",
	       path, (unsigned long long)(size >> 20), session, frames, w, h);

	start = now_ms();
	for (seq = 1; seq <= frames; seq++) {
		struct demo_frame_hdr *hdr = &ctrl->slot[seq % DEMO_SLOTS];
		struct slot_buf *sb = &sbuf[seq % DEMO_SLOTS];
		uint64_t published, sum, off;
		int ok_dev, ok_buf;

		while ((published = __atomic_load_n(&ctrl->published,
						    __ATOMIC_ACQUIRE)) < seq) {
			if (__atomic_load_n(&ctrl->producer, __ATOMIC_ACQUIRE) ==
			    DEMO_PRODUCER_FAILED) {
				printf("client: the producer gave up at frame %llu\n",
				       (unsigned long long)seq);
				goto out;
			}
			if (now_ms() - start > timeout_ms) {
				printf("client: no frame %llu after %llu s\n",
				       (unsigned long long)seq,
				       (unsigned long long)timeout_ms / 1000);
				goto out;
			}
			/* while the VM boots, poll gently: wakeups cost under TCG */
			usleep(seq == 1 ? 20000 : 1000);
		}
		if (seq == 1) {
			t_first = now_ms();
			printf("client: first frame after %llu ms\n",
			       (unsigned long long)(t_first - start));
			/* from here on, each frame gets the full timeout */
		}
		start = now_ms();
		if (published > seq + 1)
			st.lost++;	/* cannot happen with the handshake */

		if (__atomic_load_n(&hdr->seq, __ATOMIC_ACQUIRE) != seq ||
		    hdr->magic != DEMO_FRAME_MAGIC ||
		    hdr->format != DEMO_FMT_XRGB8888 ||
		    hdr->session != session || hdr->width != w ||
		    hdr->height != h || hdr->pitch != w * 4 ||
		    hdr->offset != demo_slot_offset(seq % DEMO_SLOTS, w, h)) {
			printf("client: frame %llu: bad slot header (seq %llu, magic %#x, session %u, %ux%u pitch %u, offset %llu)\n",
			       (unsigned long long)seq,
			       (unsigned long long)hdr->seq, hdr->magic,
			       hdr->session, hdr->width, hdr->height,
			       hdr->pitch, (unsigned long long)hdr->offset);
			st.lost++;
			goto out;
		}
		off = hdr->offset;
		demo_draw_frame(expect, w, w, h, seq, rows);

		/* path 1: the mapping of the whole device */
		sum = demo_checksum(base + off, fb);
		ok_dev = sum == hdr->checksum && !memcmp(base + off, expect, fb);
		if (ok_dev) {
			st.dev_ok++;
			st.bytes_dev += fb;
		} else {
			st.mismatches++;
			printf("client: frame %llu differs through the device mapping (checksum %#llx, header %#llx)\n",
			       (unsigned long long)seq, (unsigned long long)sum,
			       (unsigned long long)hdr->checksum);
		}

		/* path 2: a dma-buf of the slot, as a GPU would import it */
		ok_buf = 0;
		if (!slot_buf_get(sb, fd, off, fb_pages, &st) &&
		    !dmabuf_sync(sb->fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)) {
			sum = demo_checksum(sb->map, fb);
			ok_buf = sum == hdr->checksum &&
				 !memcmp(sb->map, expect, fb);
			if (seq == export_seq && export_path)
				export_frame(export_path, sb->map, hdr);
			if (dmabuf_sync(sb->fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ))
				ok_buf = 0;
		}
		if (ok_buf) {
			st.dmabuf_ok++;
			st.bytes_dmabuf += fb;
		} else {
			st.mismatches++;
			printf("client: frame %llu differs through its dma-buf\n",
			       (unsigned long long)seq);
		}

		/* the producer must not have touched the slot meanwhile */
		if (__atomic_load_n(&hdr->seq, __ATOMIC_ACQUIRE) != seq) {
			st.lost++;
			printf("client: slot of frame %llu reused too early\n",
			       (unsigned long long)seq);
		}

		__atomic_store_n(&ctrl->ack, seq, __ATOMIC_RELEASE);
		t_last = now_ms();
		if (seq % 50 == 0 || seq == frames)
			printf("client: frame %llu/%u verified (device mapping and dma-buf)\n",
			       (unsigned long long)seq, frames);
	}
	/* the producer is done with the device once it says so */
	start = now_ms();
	while (__atomic_load_n(&ctrl->producer, __ATOMIC_ACQUIRE) != DEMO_PRODUCER_DONE) {
		if (now_ms() - start > 30000) {
			printf("client: the producer did not finish\n");
			failed = 1;
			break;
		}
		usleep(1000);
	}

	/* a page the VM's assigned device copied by DMA, if it has one */
	dma_seq = __atomic_load_n(&ctrl->dma_seq, __ATOMIC_ACQUIRE);
	if (dma_seq >= 1 && dma_seq <= frames &&
	    ctrl->dma_offset + DEMO_DMA_BYTES <= size) {
		demo_draw_frame(expect, w, w, h, dma_seq, rows);
		snprintf(what, sizeof(what),
			 "session %u: the start of frame %llu that the VM's assigned edu copied by DMA reads back intact here",
			 session, (unsigned long long)dma_seq);
		check(!memcmp(base + ctrl->dma_offset, expect, DEMO_DMA_BYTES),
		      what);
	} else {
		printf("client: session %u: no DMA copy by an assigned device\n",
		       session);
	}
out:
	seq--;
	if (st.dev_ok != frames || st.dmabuf_ok != frames || st.mismatches ||
	    st.lost)
		failed = 1;
	/* so that nothing of this session can pass for the next one */
	__atomic_store_n(&ctrl->ready, 0, __ATOMIC_RELEASE);

	snprintf(what, sizeof(what),
		 "session %u: %llu/%u frames verified through the device mapping",
		 session, (unsigned long long)st.dev_ok, frames);
	check(st.dev_ok == frames, what);
	snprintf(what, sizeof(what),
		 "session %u: %llu/%u frames verified through dma-bufs (%llu created, CLOEXEC)",
		 session, (unsigned long long)st.dmabuf_ok, frames,
		 (unsigned long long)st.dmabufs_created);
	check(st.dmabuf_ok == frames, what);
	snprintf(what, sizeof(what),
		 "session %u: no frame lost or corrupt (%llu mismatches, %llu lost)",
		 session, (unsigned long long)st.mismatches,
		 (unsigned long long)st.lost);
	check(!st.mismatches && !st.lost && seq == frames, what);

	printf("@@stat client session=%u frames=%llu dev_ok=%llu dmabuf_ok=%llu bytes_dev=%llu bytes_dmabuf=%llu mismatches=%llu lost=%llu ms=%llu\n",
	       session, (unsigned long long)seq, (unsigned long long)st.dev_ok,
	       (unsigned long long)st.dmabuf_ok,
	       (unsigned long long)st.bytes_dev,
	       (unsigned long long)st.bytes_dmabuf,
	       (unsigned long long)st.mismatches, (unsigned long long)st.lost,
	       (unsigned long long)(t_last > t_first ? t_last - t_first : 0));

	for (i = 0; i < DEMO_SLOTS; i++) {
		if (sbuf[i].fd < 0)
			continue;
		munmap(sbuf[i].map, sbuf[i].size);
		close(sbuf[i].fd);
	}
	munmap(base, size);
	close(fd);
	return failed;
}
