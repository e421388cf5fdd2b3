/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A loop device over a tmpfs file, for O_DIRECT I/O on kvmfr mappings: its
 * reads and writes move data between the pages of the user buffer, pinned
 * by the block layer, and the backing file (the loop driver copies through
 * the kernel's mapping of those pages). The tests read and write the
 * backing file without O_DIRECT to see what the block device got.
 */
#ifndef KVMFR_LOOP_DEV_H
#define KVMFR_LOOP_DEV_H

#include "kvmfr_test.h"

#include <linux/loop.h>

struct kt_loop {
	int dio;	/* the loop device, O_DIRECT */
	int back;	/* the backing file */
	int loop;	/* the loop device, to detach it */
	char path[64];	/* the backing file's name */
};

static inline void kt_loop_teardown(struct kt_loop *l)
{
	if (l->dio >= 0)
		close(l->dio);
	if (l->loop >= 0) {
		ioctl(l->loop, LOOP_CLR_FD);
		close(l->loop);
	}
	if (l->back >= 0) {
		close(l->back);
		unlink(l->path);
	}
	l->dio = l->loop = l->back = -1;
}

/*
 * Attaches a free loop device to a new @len-byte file at @path (loading
 * the driver from /lib/kvmfr/loop when it is a module). 0 when ready, 1
 * when the kernel has no loop driver, -1 on an error; @why says which.
 */
static inline int kt_loop_setup(struct kt_loop *l, const char *path,
				size_t len, char *why, size_t wlen)
{
	char dev[32];
	int ctl, n, r;

	l->dio = l->loop = l->back = -1;
	kt_strcpy(l->path, path, sizeof(l->path));
	r = kt_load_modules("loop", why, wlen);
	if (r)
		return r;
	l->back = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	n = ctl < 0 ? -1 : ioctl(ctl, LOOP_CTL_GET_FREE);
	if (ctl >= 0)
		close(ctl);
	if (l->back < 0 || ftruncate(l->back, (off_t)len) || n < 0) {
		snprintf(why, wlen, "backing file or LOOP_CTL_GET_FREE: %s",
			 kt_errname(errno));
		goto fail;
	}
	snprintf(dev, sizeof(dev), "/dev/loop%d", n);
	l->loop = open(dev, O_RDWR | O_CLOEXEC);
	if (l->loop < 0 || ioctl(l->loop, LOOP_SET_FD, l->back)) {
		snprintf(why, wlen, "%s: LOOP_SET_FD: %s", dev,
			 kt_errname(errno));
		goto fail;
	}
	l->dio = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (l->dio < 0) {
		snprintf(why, wlen, "%s with O_DIRECT: %s", dev,
			 kt_errname(errno));
		goto fail;
	}
	return 0;
fail:
	kt_loop_teardown(l);
	return -1;
}

#endif
