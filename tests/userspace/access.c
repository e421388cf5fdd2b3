// SPDX-License-Identifier: GPL-2.0
/*
 * kvmfr-access DEVICE: what the calling user can do with a kvmfr device, as
 * the Looking Glass client does it: open it read-write, map its first page,
 * export that page as a dma-buf (KVMFR_DMABUF_CREATE) and see through the
 * dma-buf's own mapping what was written through the device mapping.
 * Prints one line; exit 0 if all of it worked, 2 if open() failed (the line
 * names the errno: "open: EACCES"), 1 for any other failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvmfr.h"

static const char *errname(int e)
{
	switch (e) {
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ENODEV: return "ENODEV";
	case ENXIO: return "ENXIO";
	case EINVAL: return "EINVAL";
	default: return strerror(e);
	}
}

int main(int argc, char **argv)
{
	struct kvmfr_dmabuf_create req = { .flags = KVMFR_DMABUF_FLAG_CLOEXEC };
	long page = sysconf(_SC_PAGESIZE);
	uint32_t stamp = 0x6b766d66 ^ (uint32_t)getpid();
	volatile uint32_t *dev_map, *buf_map;
	int fd, buf;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DEVICE\n", argv[0]);
		return 1;
	}
	fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("open: %s\n", errname(errno));
		return 2;
	}
	dev_map = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (dev_map == MAP_FAILED) {
		printf("mmap of the device: %s\n", errname(errno));
		return 1;
	}
	dev_map[1] = stamp;
	req.size = page;
	buf = ioctl(fd, KVMFR_DMABUF_CREATE, &req);
	if (buf < 0) {
		printf("KVMFR_DMABUF_CREATE: %s\n", errname(errno));
		return 1;
	}
	buf_map = mmap(NULL, page, PROT_READ, MAP_SHARED, buf, 0);
	if (buf_map == MAP_FAILED) {
		printf("mmap of the dma-buf: %s\n", errname(errno));
		return 1;
	}
	if (buf_map[1] != stamp) {
		printf("the dma-buf reads 0x%08x where the device mapping wrote 0x%08x\n",
		       buf_map[1], stamp);
		return 1;
	}
	printf("opened, mapped, dma-buf of one page created and mapped, it reads what the device mapping wrote\n");
	return 0;
}
