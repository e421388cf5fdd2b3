/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * kvmfr - shared framebuffer devices for virtual machines and their host.
 *
 * Userspace interface of /dev/kvmfrN. The layout and the ioctl numbers are
 * binary compatible with the clients already deployed (Looking Glass, its
 * OBS plugin): do not reorder, resize or renumber anything here.
 */
#ifndef _UAPI_LINUX_KVMFR_H
#define _UAPI_LINUX_KVMFR_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Create the dma-buf fd with O_CLOEXEC set. */
#define KVMFR_DMABUF_FLAG_CLOEXEC 0x1

/**
 * struct kvmfr_dmabuf_create - argument of KVMFR_DMABUF_CREATE
 * @flags:  KVMFR_DMABUF_FLAG_* bits; any other bit is rejected with EINVAL
 * @offset: start of the buffer in the device, a multiple of the page size
 * @size:   length of the buffer, a non-zero multiple of the page size
 *
 * The padding the compiler puts after @flags (7 bytes on x86-64, 3 on i386)
 * is ignored by the kernel: callers need not clear it.
 */
struct kvmfr_dmabuf_create {
	__u8 flags;
	__u64 offset;
	__u64 size;
};

/* Returns the size of the device in bytes as the ioctl's return value. */
#define KVMFR_DMABUF_GETSIZE _IO('u', 0x44)

/* Returns a new dma-buf file descriptor (O_RDWR) for a range of the device. */
#define KVMFR_DMABUF_CREATE _IOW('u', 0x42, struct kvmfr_dmabuf_create)

#endif /* _UAPI_LINUX_KVMFR_H */
