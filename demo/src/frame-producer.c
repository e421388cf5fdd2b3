// SPDX-License-Identifier: GPL-2.0
/*
 * frame-producer - the VM side of the kvmfr demo (runs in level 2).
 *
 *   frame-producer [-d /dev/kvmfr0] [-t TIMEOUT_S]
 *
 * Maps the kvmfr device of the VM (IVSHMEM BAR2, whose backing is the host's
 * /dev/kvmfr0), waits for the client's control block, then writes the
 * frames the client asked for into two alternating slots, following the
 * handshake described in demo_frame.h. Progress goes to stdout; the last
 * line is "@@stat producer ...". Exit status 0 only if every frame was
 * sent and acknowledged.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvmfr.h"
#include "demo_frame.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll *word (1 ms sleeps) until it is >= want; false after timeout_ms. */
static int wait_u64(const uint64_t *word, uint64_t want, uint64_t timeout_ms)
{
	uint64_t start = now_ms();

	while (__atomic_load_n(word, __ATOMIC_ACQUIRE) < want) {
		if (now_ms() - start > timeout_ms)
			return 0;
		usleep(1000);
	}
	return 1;
}

int main(int argc, char **argv)
{
	const char *path = "/dev/kvmfr0";
	uint64_t timeout_ms = 120000, start, t0 = 0, bytes = 0;
	struct demo_ctrl *ctrl;
	uint32_t w, h, pitch, frames, session, *rows;
	uint64_t seq, size, fb;
	unsigned char *base;
	long ret;
	int fd, opt;

	while ((opt = getopt(argc, argv, "d:t:")) != -1) {
		switch (opt) {
		case 'd':
			path = optarg;
			break;
		case 't':
			timeout_ms = strtoull(optarg, NULL, 0) * 1000;
			break;
		default:
			fprintf(stderr, "usage: %s [-d DEV] [-t TIMEOUT_S]\n",
				argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	fd = open(path, O_RDWR);
	if (fd < 0) {
		printf("producer: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	ret = ioctl(fd, KVMFR_DMABUF_GETSIZE);
	if (ret <= 0) {
		printf("producer: KVMFR_DMABUF_GETSIZE: %s\n", strerror(errno));
		return 1;
	}
	size = ret;
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		printf("producer: mmap %s: %s\n", path, strerror(errno));
		return 1;
	}
	ctrl = (struct demo_ctrl *)base;
	printf("producer: %s is %llu MiB; waiting for the client\n", path,
	       (unsigned long long)(size >> 20));

	start = now_ms();
	while (__atomic_load_n(&ctrl->magic, __ATOMIC_ACQUIRE) != DEMO_CTRL_MAGIC) {
		if (now_ms() - start > timeout_ms) {
			printf("producer: no client after %llu s\n",
			       (unsigned long long)timeout_ms / 1000);
			return 1;
		}
		usleep(1000);
	}
	session = ctrl->session;
	frames = ctrl->frames;
	w = ctrl->width;
	h = ctrl->height;
	pitch = w * 4;
	fb = demo_frame_bytes(w, h);
	if (!w || !h || demo_layout_bytes(w, h) > size) {
		printf("producer: %ux%u frames do not fit in %llu bytes\n", w, h,
		       (unsigned long long)size);
		__atomic_store_n(&ctrl->producer, DEMO_PRODUCER_FAILED,
				 __ATOMIC_RELEASE);
		return 1;
	}
	rows = malloc((size_t)8 * 2 * w * 4);
	if (!rows)
		return 1;
	printf("producer: session %u: sending %u frames of %ux%u XRGB8888 (%llu bytes)\n",
	       session, frames, w, h, (unsigned long long)fb);
	__atomic_store_n(&ctrl->producer, DEMO_PRODUCER_RUNNING, __ATOMIC_RELEASE);

	for (seq = 1; seq <= frames; seq++) {
		unsigned int s = seq % DEMO_SLOTS;
		struct demo_frame_hdr *hdr = &ctrl->slot[s];
		uint64_t off = demo_slot_offset(s, w, h);
		uint32_t *px = (uint32_t *)(base + off);

		/* the slot is free once the client is done with seq - 2 */
		if (seq > DEMO_SLOTS &&
		    !wait_u64(&ctrl->ack, seq - DEMO_SLOTS, timeout_ms)) {
			printf("producer: client did not acknowledge frame %llu\n",
			       (unsigned long long)(seq - DEMO_SLOTS));
			__atomic_store_n(&ctrl->producer, DEMO_PRODUCER_FAILED,
					 __ATOMIC_RELEASE);
			return 1;
		}
		if (seq == 1)
			t0 = now_ms();

		demo_draw_frame(px, w, w, h, seq, rows);
		hdr->magic = DEMO_FRAME_MAGIC;
		hdr->format = DEMO_FMT_XRGB8888;
		hdr->width = w;
		hdr->height = h;
		hdr->pitch = pitch;
		hdr->session = session;
		hdr->offset = off;
		hdr->checksum = demo_checksum(px, fb);
		__atomic_store_n(&hdr->seq, seq, __ATOMIC_RELEASE);
		__atomic_store_n(&ctrl->published, seq, __ATOMIC_RELEASE);
		bytes += fb;

		if (seq % 10 == 0 || seq == frames)
			printf("producer: frame %llu/%u sent\n",
			       (unsigned long long)seq, frames);
	}

	if (!wait_u64(&ctrl->ack, frames, timeout_ms)) {
		printf("producer: client did not acknowledge the last frame\n");
		__atomic_store_n(&ctrl->producer, DEMO_PRODUCER_FAILED,
				 __ATOMIC_RELEASE);
		return 1;
	}
	__atomic_store_n(&ctrl->producer, DEMO_PRODUCER_DONE, __ATOMIC_RELEASE);
	start = now_ms() - t0;
	printf("producer: all %u frames acknowledged in %llu ms\n", frames,
	       (unsigned long long)start);
	printf("@@stat producer session=%u frames=%u bytes=%llu ms=%llu\n",
	       session, frames, (unsigned long long)bytes,
	       (unsigned long long)start);
	munmap(base, size);
	close(fd);
	return 0;
}
