/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * kvmfr_edu - test-only dma-buf importer driving QEMU's "edu" PCI device.
 *
 * Interface of /dev/kvmfr_edu, shared by the module and the guest test
 * program. Every open file is one importer: it imports at most one dma-buf
 * at a time, with its own attachment to the edu device. The edu DMA engine
 * and its 4 KiB buffer are shared by all files, one transfer at a time.
 */
#ifndef KVMFR_EDU_H
#define KVMFR_EDU_H

#include <linux/ioctl.h>
#include <linux/types.h>

/*
 * Usable bytes of the edu device's 4 KiB buffer, the DMA engine's other end.
 * QEMU 7.2's edu model stops the whole machine (hw_error) on a transfer that
 * includes the buffer's last byte (an off-by-one in its range check, fixed
 * in later versions), so that byte is never used.
 */
#define KVMFR_EDU_BUF_SIZE		4095

/* Import with dma_buf_attach() instead of a dynamic (move_notify) one. */
#define KVMFR_EDU_IMPORT_STATIC		0x1

/**
 * struct kvmfr_edu_import - argument of KVMFR_EDU_IMPORT and KVMFR_EDU_MAP
 * @fd:         in (IMPORT only): the dma-buf file descriptor
 * @flags:      in (IMPORT only): KVMFR_EDU_IMPORT_* bits, others rejected
 * @size:       out: size of the dma-buf in bytes
 * @mapped:     out: sum of the DMA lengths of the mapped segments
 * @nents:      out: number of DMA segments (nents of the mapped table)
 * @orig_nents: out: number of CPU segments (orig_nents of the table)
 * @breaks:     out: DMA segments that do not start where the previous ended
 * @moves:      out: move_notify calls seen by this file so far
 * @dma_first:  out: DMA address of the first segment
 * @dma_last:   out: DMA address of the last byte of the last segment
 */
struct kvmfr_edu_import {
	__s32 fd;
	__u32 flags;
	__u64 size;
	__u64 mapped;
	__u32 nents;
	__u32 orig_nents;
	__u32 breaks;
	__u32 moves;
	__u64 dma_first;
	__u64 dma_last;
};

/* DMA directions, as the edu device sees them */
#define KVMFR_EDU_TO_EDU		0	/* edu reads the dma-buf */
#define KVMFR_EDU_FROM_EDU		1	/* edu writes the dma-buf */

/**
 * struct kvmfr_edu_dma - argument of KVMFR_EDU_DMA
 * @offset:    in: offset in the dma-buf, any alignment
 * @len:       in: bytes to move, 1 to KVMFR_EDU_BUF_SIZE
 * @buf_off:   in: offset in the edu buffer; buf_off + len <= BUF_SIZE
 * @dir:       in: KVMFR_EDU_TO_EDU or KVMFR_EDU_FROM_EDU
 * @flags:     in: must be 0
 * @transfers: out: edu transfers used (one per DMA segment crossed)
 * @reserved:  must be 0
 */
struct kvmfr_edu_dma {
	__u64 offset;
	__u32 len;
	__u32 buf_off;
	__u32 dir;
	__u32 flags;
	__u32 transfers;
	__u32 reserved;
};

/**
 * struct kvmfr_edu_xfer - argument of the buffer and vmap copies
 * @ptr:    in: user buffer
 * @offset: in: offset in the edu buffer (BUF_*) or in the dma-buf (VMAP_*)
 * @len:    in: bytes to copy; 1 to BUF_SIZE for BUF_*, any for VMAP_*
 * @flags:  in: 0 for BUF_*; KVMFR_EDU_VMAP_* for VMAP_*
 */
struct kvmfr_edu_xfer {
	__u64 ptr;
	__u64 offset;
	__u32 len;
	__u32 flags;
};

/* flags of KVMFR_EDU_VMAP_READ/WRITE */
#define KVMFR_EDU_VMAP_FIRST		0x1	/* vmap, then begin_cpu_access */
#define KVMFR_EDU_VMAP_NO_CPU_ACCESS	0x2	/* vmap only, no CPU access bracket */

/**
 * struct kvmfr_edu_async - argument of KVMFR_EDU_DMA_ASYNC
 * @offset:   in: offset in the dma-buf, any alignment
 * @len:      in: bytes to move, 1 to KVMFR_EDU_BUF_SIZE
 * @buf_off:  in: offset in the edu buffer; buf_off + len <= BUF_SIZE
 * @dir:      in: KVMFR_EDU_TO_EDU or KVMFR_EDU_FROM_EDU
 * @delay_ms: in: time before the transfer starts, at most 10000
 */
struct kvmfr_edu_async {
	__u64 offset;
	__u32 len;
	__u32 buf_off;
	__u32 dir;
	__u32 delay_ms;
};

/**
 * struct kvmfr_edu_async_status - argument of KVMFR_EDU_ASYNC_STATUS
 * @queued:    out: 1 if an asynchronous DMA was queued on this file
 * @done:      out: 1 once it finished (and its fence was signalled)
 * @result:    out: 0 or the -errno of the transfer, once done
 * @transfers: out: edu transfers used, once done
 * @done_ns:   out: CLOCK_MONOTONIC time at which the transfer finished
 */
struct kvmfr_edu_async_status {
	__u32 queued;
	__u32 done;
	__s32 result;
	__u32 transfers;
	__u64 done_ns;
};

/**
 * struct kvmfr_edu_info - argument of KVMFR_EDU_INFO
 * @dma_mask_bits: DMA mask of the edu device, in bits
 * @max_seg_size:  largest DMA segment the edu device accepts
 * @iommu:         1 if the edu device translates through an IOMMU DMA domain
 * @strict:        1 if that domain invalidates the IOTLB on every unmap
 */
struct kvmfr_edu_info {
	__u32 dma_mask_bits;
	__u32 max_seg_size;
	__u32 iommu;
	__u32 strict;
};

#define KVMFR_EDU_IOC			'E'
/* dma_buf_get() + attach + map the whole dma-buf for DMA (bidirectional) */
#define KVMFR_EDU_IMPORT	_IOWR(KVMFR_EDU_IOC, 0x01, struct kvmfr_edu_import)
/* unmap + detach + dma_buf_put(); also done when the file is closed */
#define KVMFR_EDU_RELEASE	_IO(KVMFR_EDU_IOC, 0x02)
/* drop the DMA mapping, keep the attachment */
#define KVMFR_EDU_UNMAP		_IO(KVMFR_EDU_IOC, 0x03)
/* map again if needed, report the mapping */
#define KVMFR_EDU_MAP		_IOR(KVMFR_EDU_IOC, 0x04, struct kvmfr_edu_import)
/* one DMA through the edu engine, split at DMA segment boundaries */
#define KVMFR_EDU_DMA		_IOWR(KVMFR_EDU_IOC, 0x05, struct kvmfr_edu_dma)
/* edu buffer -> user (by DMA into a coherent bounce buffer) */
#define KVMFR_EDU_BUF_READ	_IOW(KVMFR_EDU_IOC, 0x06, struct kvmfr_edu_xfer)
/* user -> edu buffer (by DMA from a coherent bounce buffer) */
#define KVMFR_EDU_BUF_WRITE	_IOW(KVMFR_EDU_IOC, 0x07, struct kvmfr_edu_xfer)
/* dma-buf -> user through dma_buf_vmap(), inside begin/end_cpu_access */
#define KVMFR_EDU_VMAP_READ	_IOW(KVMFR_EDU_IOC, 0x08, struct kvmfr_edu_xfer)
/* user -> dma-buf through dma_buf_vmap(), inside begin/end_cpu_access */
#define KVMFR_EDU_VMAP_WRITE	_IOW(KVMFR_EDU_IOC, 0x09, struct kvmfr_edu_xfer)
/* properties of the edu device's DMA setup */
#define KVMFR_EDU_INFO		_IOR(KVMFR_EDU_IOC, 0x0a, struct kvmfr_edu_info)
/*
 * Dynamic importers only: queue one DMA that starts after delay_ms, with a
 * fence in the dma-buf's reservation object (usage WRITE) signalled when it
 * is done; returns at once. One at a time per file (a new one waits for the
 * previous). A move_notify meanwhile does not cut it short: the importer
 * unmaps that mapping only after the DMA.
 */
#define KVMFR_EDU_DMA_ASYNC	_IOW(KVMFR_EDU_IOC, 0x0b, struct kvmfr_edu_async)
/* the state of the last KVMFR_EDU_DMA_ASYNC of this file */
#define KVMFR_EDU_ASYNC_STATUS	_IOR(KVMFR_EDU_IOC, 0x0c, struct kvmfr_edu_async_status)
/* dma_buf_vmap() the imported dma-buf and keep it (EBUSY if already held) */
#define KVMFR_EDU_VMAP_HOLD	_IO(KVMFR_EDU_IOC, 0x0d)
/* dma_buf_vunmap() what VMAP_HOLD mapped (EINVAL if nothing); also on release */
#define KVMFR_EDU_VMAP_DROP	_IO(KVMFR_EDU_IOC, 0x0e)
/*
 * Set the edu device's largest DMA segment (dma_set_max_seg_size(), for
 * every importer, in bytes, a multiple of 4096 from 4096 to 1 GiB); the old
 * value is written back. Mappings made before keep their segments. For
 * segment counts against an importer that takes 2 MiB segments
 * (tests/guest/huge_pages.c); the PCI default is 64 KiB.
 */
#define KVMFR_EDU_SET_MAX_SEG	_IOWR(KVMFR_EDU_IOC, 0x0f, __u32)

#endif
