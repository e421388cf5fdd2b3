// SPDX-License-Identifier: GPL-2.0
/*
 * kvmfr_edu - test-only dma-buf importer for kvmfr, driving the DMA engine
 * of QEMU's "edu" PCI device (1234:11e8) so that the dma-bufs kvmfr exports
 * are read and written by a real device, through the IOMMU when there is one.
 *
 * /dev/kvmfr_edu: every open file is one importer (see kvmfr_edu.h). It
 * imports one dma-buf at a time, attaches the edu device to it, maps it for
 * DMA and moves data between the dma-buf and the edu device's 4 KiB buffer
 * (of which only the first 4095 bytes: see KVMFR_EDU_BUF_SIZE),
 * one DMA segment at a time.
 *
 * Importers are dynamic by default (dma_buf_dynamic_attach() with a
 * move_notify callback); KVMFR_EDU_IMPORT_STATIC makes a static one.
 *  - A dynamic importer uses its mapping only under the dma-buf's
 *    reservation lock, held for the whole transfer. move_notify runs under
 *    that lock: it unmaps and marks the attachment moved, so no transfer can
 *    use the old mapping once move_notify has returned. The next use maps
 *    again, which kvmfr refuses (-ENODEV) once its device is gone. Were the
 *    exporter not dynamic (no pin op), the dma-buf core would have mapped
 *    the buffer once at attach time and would keep returning that cached
 *    table: then the next use detaches and attaches again instead.
 *  - A static importer is never told about a move or a revocation. For a
 *    dynamic exporter such as kvmfr the core pinned and mapped the buffer
 *    at attach time and keeps that mapping until detach; kvmfr DMA-unmaps it
 *    when its device is removed. vmap, CPU access and new attachments then
 *    fail with -ENODEV.
 *
 * The edu model gives no error for a bad DMA: it truncates addresses to its
 * 28-bit mask, and an out-of-range transfer of its buffer stops the whole
 * machine in QEMU 7.2 (newer versions log it), so every transfer is checked
 * here first. Each transfer takes about 100 ms: the
 * model starts it from a 100 ms timer. Completion is polled, no interrupt.
 *
 * corrupt_dma=1 (a debugging aid, never set by the tests) shifts every
 * dma-buf transfer by one page, to show that the tests notice.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compat.h>
#include <linux/dma-buf.h>
#include <linux/dma-fence.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/fs.h>
#include <linux/iommu.h>
#include <linux/iopoll.h>
#include <linux/kref.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/overflow.h>
#include <linux/pci.h>
#include <linux/scatterlist.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

#include "kvmfr_edu_config.h"
#include "kvmfr_edu.h"

/*
 * Before 5.19 a reservation wait took a bool wait_all instead of a usage
 * class: waiting for DMA_RESV_USAGE_READ is waiting for all fences. The
 * function was dma_resv_wait_timeout_rcu() before 5.14.
 */
/* A write fence: before 5.19 the exclusive fence, which needs no slot. */
static int edu_resv_add_write_fence(struct dma_resv *resv,
				    struct dma_fence *fence)
{
#ifdef KVMFR_EDU_HAVE_DMA_RESV_USAGE
	int ret = dma_resv_reserve_fences(resv, 1);

	if (ret)
		return ret;
	dma_resv_add_fence(resv, fence, DMA_RESV_USAGE_WRITE);
#else
	dma_resv_add_excl_fence(resv, fence);
#endif
	return 0;
}

#ifndef KVMFR_EDU_HAVE_DMA_RESV_USAGE
#define DMA_RESV_USAGE_READ true
#ifndef KVMFR_EDU_HAVE_DMA_RESV_WAIT_TIMEOUT
#define dma_resv_wait_timeout dma_resv_wait_timeout_rcu
#endif
#endif

/*
 * Before 5.18 there is no struct iosys_map: a local one carries what
 * edu_vmap() gets from dma_buf_vmap(), a struct dma_buf_map (5.11 to 5.17)
 * or the address itself (5.10).
 */
#ifdef KVMFR_EDU_HAVE_IOSYS_MAP
#include <linux/iosys-map.h>
#else
#ifdef KVMFR_EDU_HAVE_DMA_BUF_MAP
#include <linux/dma-buf-map.h>
#endif
struct iosys_map {
	union {
		void __iomem *vaddr_iomem;
		void *vaddr;
	};
	bool is_iomem;
};

static void iosys_map_memcpy_to(struct iosys_map *dst, size_t dst_offset,
				const void *src, size_t len)
{
	if (dst->is_iomem)
		memcpy_toio(dst->vaddr_iomem + dst_offset, src, len);
	else
		memcpy(dst->vaddr + dst_offset, src, len);
}

static void iosys_map_memcpy_from(void *dst, const struct iosys_map *src,
				  size_t src_offset, size_t len)
{
	if (src->is_iomem)
		memcpy_fromio(dst, src->vaddr_iomem + src_offset, len);
	else
		memcpy(dst, src->vaddr + src_offset, len);
}
#endif

#ifdef KVMFR_EDU_HAVE_MODULE_IMPORT_NS_TOKEN
MODULE_IMPORT_NS(DMA_BUF);
#else
MODULE_IMPORT_NS("DMA_BUF");
#endif

/* Registers of BAR0 */
#define EDU_REG_ID		0x00
#define EDU_REG_LIVENESS	0x04
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_COUNT	0x90
#define EDU_REG_DMA_CMD		0x98

#define EDU_ID_MAGIC		0xed	/* low byte of the ID register */
#define EDU_DMA_START		0x1
#define EDU_DMA_TO_RAM		0x2	/* direction: edu buffer -> memory */

/* The edu buffer, as the DMA engine addresses it */
#define EDU_BUF_ADDR		0x40000
#define EDU_DMA_BITS		28
#define EDU_DMA_MASK		DMA_BIT_MASK(EDU_DMA_BITS)

#define EDU_POLL_US		2000
#define EDU_TIMEOUT_US		(5 * USEC_PER_SEC)
#define EDU_FENCE_TIMEOUT	(5 * HZ)
#define EDU_ASYNC_MAX_DELAY_MS	10000

static bool corrupt_dma;
module_param(corrupt_dma, bool, 0644);
MODULE_PARM_DESC(corrupt_dma,
		 "Debugging aid: shift every dma-buf transfer by one page (default off)");

struct kvmfr_edu {
	struct kref ref;		/* probe's, and one per open file */
	struct pci_dev *pdev;
	void __iomem *mmio;
	struct miscdevice misc;

	struct mutex lock;		/* the DMA engine and everything below */
	bool gone;			/* the PCI device was removed */
	bool stuck;			/* a transfer never completed */
	void *bounce;			/* coherent buffer for BUF_READ/WRITE */
	dma_addr_t bounce_dma;
};

/* One open file: one importer. */
struct kvmfr_edu_file {
	struct kvmfr_edu *edu;
	struct mutex lock;		/* serialises the file's ioctls */
	struct dma_buf *dmabuf;
	struct dma_buf_attachment *attach;
	bool dynamic;
	/*
	 * The mapping. For a dynamic attachment sgt, moved and moves are
	 * protected by the reservation lock, which move_notify runs under;
	 * for a static one by lock.
	 */
	struct sg_table *sgt;
	bool moved;
	unsigned int moves;

	/*
	 * One asynchronous DMA at a time (dynamic attachments only): the work
	 * runs it on async_sgt, signals async_fence (in the reservation
	 * object), then unmaps async_sgt if move_notify dropped it meanwhile.
	 */
	struct delayed_work async_work;
	struct kvmfr_edu_async async;
	struct sg_table *async_sgt;
	struct dma_fence *async_fence;
	spinlock_t fence_lock;
	u64 fence_context;
	u64 fence_seqno;
	bool async_queued;
	bool async_done;	/* release/acquire: the fields below are set */
	/* VMAP_HOLD's mapping, protected by lock */
	bool vmap_held;
	struct iosys_map held_map;
	int async_result;
	u32 async_transfers;
	u64 async_done_ns;
};

/* Only one edu device is driven; a second one is left alone. */
static atomic_t edu_bound = ATOMIC_INIT(0);

static void edu_free(struct kref *ref)
{
	struct kvmfr_edu *edu = container_of(ref, struct kvmfr_edu, ref);

	pci_dev_put(edu->pdev);
	mutex_destroy(&edu->lock);
	kfree(edu);
}

/* ------------------------------------------------------------------------
 * The DMA engine
 */

/* One transfer between @addr and the edu buffer at @buf_off. */
static int edu_transfer(struct kvmfr_edu *edu, dma_addr_t addr, u32 buf_off,
			u32 len, bool to_ram)
{
	u64 dev_addr = EDU_BUF_ADDR + buf_off;
	u32 cmd;
	int ret;

	lockdep_assert_held(&edu->lock);

	if (edu->gone)
		return -ENODEV;
	if (edu->stuck)
		return -EIO;
	/* The model copies out of its buffer's bounds if asked to. */
	if (!len || len > KVMFR_EDU_BUF_SIZE ||
	    buf_off > KVMFR_EDU_BUF_SIZE - len)
		return -EINVAL;
	/* It truncates addresses to its mask without telling. */
	if (addr > EDU_DMA_MASK || len - 1 > EDU_DMA_MASK - addr) {
		pci_err(edu->pdev, "DMA address %pad+%u beyond the %d-bit mask\n",
			&addr, len, EDU_DMA_BITS);
		return -EIO;
	}

	writeq(to_ram ? dev_addr : addr, edu->mmio + EDU_REG_DMA_SRC);
	writeq(to_ram ? addr : dev_addr, edu->mmio + EDU_REG_DMA_DST);
	writeq(len, edu->mmio + EDU_REG_DMA_COUNT);
	writel(EDU_DMA_START | (to_ram ? EDU_DMA_TO_RAM : 0),
	       edu->mmio + EDU_REG_DMA_CMD);

	ret = readl_poll_timeout(edu->mmio + EDU_REG_DMA_CMD, cmd,
				 !(cmd & EDU_DMA_START), EDU_POLL_US,
				 EDU_TIMEOUT_US);
	if (ret) {
		edu->stuck = true;
		pci_err(edu->pdev, "DMA of %u bytes at %pad did not complete\n",
			len, &addr);
		return ret;
	}
	/* The device's writes are seen before anything read after this. */
	dma_rmb();
	return 0;
}

/*
 * Move @len bytes between offset @offset of the DMA-mapped @sgt and the edu
 * buffer at @buf_off: one transfer per DMA segment the range touches.
 */
static int edu_dma_sgt(struct kvmfr_edu *edu, struct sg_table *sgt,
		       u64 offset, u32 len, u32 buf_off, bool to_ram,
		       u32 *transfers)
{
	struct scatterlist *sg;
	u64 seg_start = 0;
	unsigned int i;
	int ret = 0;

	mutex_lock(&edu->lock);
	for_each_sgtable_dma_sg(sgt, sg, i) {
		u64 seg_len = sg_dma_len(sg);
		dma_addr_t addr;
		u32 chunk;

		if (offset >= seg_start + seg_len) {
			seg_start += seg_len;
			continue;
		}
		chunk = min_t(u64, len, seg_start + seg_len - offset);
		addr = sg_dma_address(sg) + (offset - seg_start);
		if (corrupt_dma)
			addr += PAGE_SIZE;
		ret = edu_transfer(edu, addr, buf_off, chunk, to_ram);
		if (ret)
			break;
		(*transfers)++;
		offset += chunk;
		buf_off += chunk;
		len -= chunk;
		seg_start += seg_len;
		if (!len)
			break;
	}
	/* A table shorter than the dma-buf is the exporter's bug. */
	if (!ret && len)
		ret = -EIO;
	mutex_unlock(&edu->lock);
	return ret;
}

/* ------------------------------------------------------------------------
 * Importing
 */

static void edu_move_notify(struct dma_buf_attachment *attach)
{
	struct kvmfr_edu_file *f = attach->importer_priv;

	dma_resv_assert_held(attach->dmabuf->resv);

	/* A queued DMA still uses its mapping: the work unmaps it after. */
	if (f->sgt && f->sgt != f->async_sgt)
		dma_buf_unmap_attachment(attach, f->sgt, DMA_BIDIRECTIONAL);
	f->sgt = NULL;
	f->moved = true;
	f->moves++;
}

static const struct dma_buf_attach_ops edu_importer_ops = {
	.allow_peer2peer = false,
#ifdef KVMFR_EDU_HAVE_DMA_BUF_ATTACH_OPS_INVALIDATE_MAPPINGS
	.invalidate_mappings = edu_move_notify,
#else
	.move_notify = edu_move_notify,
#endif
};

static struct sg_table *edu_map_static(struct dma_buf_attachment *attach)
{
	struct sg_table *sgt;

#ifdef KVMFR_EDU_HAVE_DMA_BUF_MAP_ATTACHMENT_UNLOCKED
	sgt = dma_buf_map_attachment_unlocked(attach, DMA_BIDIRECTIONAL);
#else
	sgt = dma_buf_map_attachment(attach, DMA_BIDIRECTIONAL);
#endif
	return sgt ?: ERR_PTR(-ENOMEM);
}

static void edu_unmap_static(struct dma_buf_attachment *attach,
			     struct sg_table *sgt)
{
#ifdef KVMFR_EDU_HAVE_DMA_BUF_MAP_ATTACHMENT_UNLOCKED
	dma_buf_unmap_attachment_unlocked(attach, sgt, DMA_BIDIRECTIONAL);
#else
	dma_buf_unmap_attachment(attach, sgt, DMA_BIDIRECTIONAL);
#endif
}

static int edu_attach(struct kvmfr_edu_file *f)
{
	struct device *dev = &f->edu->pdev->dev;
	struct dma_buf_attachment *attach;

	if (f->dynamic) {
		/* No attachment yet: move_notify cannot run for this file. */
		f->moved = false;
		attach = dma_buf_dynamic_attach(f->dmabuf, dev,
						&edu_importer_ops, f);
	} else {
		attach = dma_buf_attach(f->dmabuf, dev);
	}
	if (IS_ERR(attach))
		return PTR_ERR(attach);
	f->attach = attach;
	return 0;
}

static void edu_unmap(struct kvmfr_edu_file *f)
{
	if (f->dynamic) {
		/* No queued DMA may outlive the mapping it uses. */
		flush_delayed_work(&f->async_work);
		dma_resv_lock(f->dmabuf->resv, NULL);
		if (f->sgt)
			dma_buf_unmap_attachment(f->attach, f->sgt,
						 DMA_BIDIRECTIONAL);
		f->sgt = NULL;
		dma_resv_unlock(f->dmabuf->resv);
	} else if (f->sgt) {
		edu_unmap_static(f->attach, f->sgt);
		f->sgt = NULL;
	}
}

static void edu_detach(struct kvmfr_edu_file *f)
{
	edu_unmap(f);
	dma_buf_detach(f->dmabuf, f->attach);
	f->attach = NULL;
}

/*
 * Make sure the file has a mapping it may use for DMA. For a dynamic
 * attachment, returns 0 with the reservation lock held: the mapping stays
 * valid until it is dropped.
 */
static int edu_lock_mapping(struct kvmfr_edu_file *f)
{
	struct dma_resv *resv = f->dmabuf->resv;
	struct sg_table *sgt;
	int tries, ret;

	if (!f->dynamic) {
		if (!f->attach) {
			ret = edu_attach(f);
			if (ret)
				return ret;
		}
		if (!f->sgt) {
			sgt = edu_map_static(f->attach);
			if (IS_ERR(sgt))
				return PTR_ERR(sgt);
			f->sgt = sgt;
		}
		return 0;
	}

	for (tries = 0; tries < 4; tries++) {
		if (!f->attach) {
			ret = edu_attach(f);
			if (ret)
				return ret;
		}
		dma_resv_lock(resv, NULL);
		if (f->moved && !dma_buf_is_dynamic(f->dmabuf)) {
			/* Only a new attachment reaches the exporter again. */
			dma_resv_unlock(resv);
			edu_detach(f);
			continue;
		}
		f->moved = false;
		ret = dma_resv_wait_timeout(resv, DMA_RESV_USAGE_READ, true,
					    EDU_FENCE_TIMEOUT);
		if (ret <= 0) {
			dma_resv_unlock(resv);
			return ret ?: -ETIMEDOUT;
		}
		if (!f->sgt) {
			sgt = dma_buf_map_attachment(f->attach,
						     DMA_BIDIRECTIONAL);
			if (IS_ERR_OR_NULL(sgt)) {
				dma_resv_unlock(resv);
				return sgt ? PTR_ERR(sgt) : -ENOMEM;
			}
			f->sgt = sgt;
		}
		return 0;
	}
	return -EAGAIN;
}

static void edu_unlock_mapping(struct kvmfr_edu_file *f)
{
	if (f->dynamic)
		dma_resv_unlock(f->dmabuf->resv);
}

static void edu_describe(struct kvmfr_edu_file *f, struct kvmfr_edu_import *r)
{
	struct sg_table *sgt = f->sgt;
	struct scatterlist *sg;
	dma_addr_t next = 0;
	unsigned int i;

	r->size = f->dmabuf->size;
	r->mapped = 0;
	r->nents = sgt->nents;
	r->orig_nents = sgt->orig_nents;
	r->breaks = 0;
	r->moves = f->moves;
	r->dma_first = 0;
	r->dma_last = 0;
	for_each_sgtable_dma_sg(sgt, sg, i) {
		dma_addr_t addr = sg_dma_address(sg);

		if (!i)
			r->dma_first = addr;
		else if (addr != next)
			r->breaks++;
		next = addr + sg_dma_len(sg);
		r->mapped += sg_dma_len(sg);
		r->dma_last = next - 1;
	}
}

static int edu_vmap(struct dma_buf *dmabuf, struct iosys_map *map);
static void edu_vunmap(struct dma_buf *dmabuf, struct iosys_map *map);

/* A vmap kept across calls, as a kernel importer scanning out would. */
static int edu_ioc_vmap_hold(struct kvmfr_edu_file *f)
{
	int ret;

	if (!f->dmabuf)
		return -EINVAL;
	if (f->vmap_held)
		return -EBUSY;
	ret = edu_vmap(f->dmabuf, &f->held_map);
	if (!ret)
		f->vmap_held = true;
	return ret;
}

static int edu_ioc_vmap_drop(struct kvmfr_edu_file *f)
{
	if (!f->vmap_held)
		return -EINVAL;
	edu_vunmap(f->dmabuf, &f->held_map);
	f->vmap_held = false;
	return 0;
}

static void edu_release_import(struct kvmfr_edu_file *f)
{
	if (!f->dmabuf)
		return;
	edu_ioc_vmap_drop(f);
	flush_delayed_work(&f->async_work);
	if (f->attach)
		edu_detach(f);
	dma_buf_put(f->dmabuf);
	f->dmabuf = NULL;
	f->moves = 0;
}

/* ------------------------------------------------------------------------
 * ioctls
 */

static int edu_ioc_map(struct kvmfr_edu_file *f, struct kvmfr_edu_import *r)
{
	int ret;

	if (!f->dmabuf)
		return -EINVAL;
	ret = edu_lock_mapping(f);
	if (ret)
		return ret;
	edu_describe(f, r);
	edu_unlock_mapping(f);
	return 0;
}

static int edu_ioc_import(struct kvmfr_edu_file *f, struct kvmfr_edu_import *r)
{
	struct dma_buf *dmabuf;
	int ret;

	if (r->flags & ~KVMFR_EDU_IMPORT_STATIC)
		return -EINVAL;
	if (f->dmabuf)
		return -EBUSY;

	dmabuf = dma_buf_get(r->fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	f->dmabuf = dmabuf;
	f->dynamic = !(r->flags & KVMFR_EDU_IMPORT_STATIC);
	f->moves = 0;

	ret = edu_attach(f);
	if (!ret)
		ret = edu_ioc_map(f, r);
	if (ret)
		edu_release_import(f);
	return ret;
}

static int edu_ioc_unmap(struct kvmfr_edu_file *f)
{
	if (!f->dmabuf)
		return -EINVAL;
	if (f->attach)
		edu_unmap(f);
	return 0;
}

static int edu_ioc_dma(struct kvmfr_edu_file *f, struct kvmfr_edu_dma *d)
{
	int ret;

	if (d->flags || d->reserved)
		return -EINVAL;
	if (d->dir != KVMFR_EDU_TO_EDU && d->dir != KVMFR_EDU_FROM_EDU)
		return -EINVAL;
	if (!d->len || d->len > KVMFR_EDU_BUF_SIZE ||
	    d->buf_off > KVMFR_EDU_BUF_SIZE - d->len)
		return -EINVAL;
	if (!f->dmabuf)
		return -EINVAL;
	if (d->offset > f->dmabuf->size || d->len > f->dmabuf->size - d->offset)
		return -EINVAL;

	ret = edu_lock_mapping(f);
	if (ret)
		return ret;
	d->transfers = 0;
	ret = edu_dma_sgt(f->edu, f->sgt, d->offset, d->len, d->buf_off,
			  d->dir == KVMFR_EDU_FROM_EDU, &d->transfers);
	edu_unlock_mapping(f);
	return ret;
}

/* ------------------------------------------------------------------------
 * Asynchronous DMA with a fence (dynamic importers)
 */

static const char *edu_fence_driver_name(struct dma_fence *fence)
{
	return KBUILD_MODNAME;
}

static const char *edu_fence_timeline_name(struct dma_fence *fence)
{
	return "edu-async";
}

static const struct dma_fence_ops edu_fence_ops = {
	.get_driver_name = edu_fence_driver_name,
	.get_timeline_name = edu_fence_timeline_name,
};

static void edu_async_work(struct work_struct *work)
{
	struct kvmfr_edu_file *f = container_of(to_delayed_work(work),
						struct kvmfr_edu_file,
						async_work);
	const struct kvmfr_edu_async *a = &f->async;
	u32 transfers = 0;
	int ret;

	ret = edu_dma_sgt(f->edu, f->async_sgt, a->offset, a->len, a->buf_off,
			  a->dir == KVMFR_EDU_FROM_EDU, &transfers);
	f->async_result = ret;
	f->async_transfers = transfers;
	f->async_done_ns = ktime_get_ns();
	smp_store_release(&f->async_done, true);

	/* The exporter may free the memory once this is signalled. */
	dma_fence_signal(f->async_fence);
	dma_fence_put(f->async_fence);
	f->async_fence = NULL;

	dma_resv_lock(f->dmabuf->resv, NULL);
	if (f->async_sgt != f->sgt)
		dma_buf_unmap_attachment(f->attach, f->async_sgt,
					 DMA_BIDIRECTIONAL);
	f->async_sgt = NULL;
	dma_resv_unlock(f->dmabuf->resv);
}

static int edu_ioc_dma_async(struct kvmfr_edu_file *f,
			     const struct kvmfr_edu_async *a)
{
	struct dma_resv *resv;
	struct dma_fence *fence;
	int ret;

	if (a->dir != KVMFR_EDU_TO_EDU && a->dir != KVMFR_EDU_FROM_EDU)
		return -EINVAL;
	if (!a->len || a->len > KVMFR_EDU_BUF_SIZE ||
	    a->buf_off > KVMFR_EDU_BUF_SIZE - a->len)
		return -EINVAL;
	if (a->delay_ms > EDU_ASYNC_MAX_DELAY_MS)
		return -EINVAL;
	if (!f->dmabuf || !f->dynamic)
		return -EINVAL;
	if (a->offset > f->dmabuf->size || a->len > f->dmabuf->size - a->offset)
		return -EINVAL;

	flush_delayed_work(&f->async_work);

	fence = kzalloc(sizeof(*fence), GFP_KERNEL);
	if (!fence)
		return -ENOMEM;

	ret = edu_lock_mapping(f);
	if (ret)
		goto free_fence;
	resv = f->dmabuf->resv;
	dma_fence_init(fence, &edu_fence_ops, &f->fence_lock, f->fence_context,
		       ++f->fence_seqno);
	ret = edu_resv_add_write_fence(resv, fence);
	if (ret) {
		edu_unlock_mapping(f);
		dma_fence_put(fence);
		return ret;
	}
	f->async_fence = fence;	/* the work's reference */
	f->async_sgt = f->sgt;
	f->async = *a;
	f->async_queued = true;
	f->async_done = false;
	edu_unlock_mapping(f);

	queue_delayed_work(system_unbound_wq, &f->async_work,
			   msecs_to_jiffies(a->delay_ms));
	return 0;

free_fence:
	kfree(fence);
	return ret;
}

static void edu_ioc_async_status(struct kvmfr_edu_file *f,
				 struct kvmfr_edu_async_status *st)
{
	st->queued = f->async_queued;
	st->done = smp_load_acquire(&f->async_done);
	if (st->done) {
		st->result = f->async_result;
		st->transfers = f->async_transfers;
		st->done_ns = f->async_done_ns;
	}
}

/* The edu buffer from and to user memory, through the bounce buffer. */
static int edu_ioc_buf(struct kvmfr_edu *edu, const struct kvmfr_edu_xfer *x,
		       bool write)
{
	void __user *uptr = u64_to_user_ptr(x->ptr);
	void *tmp;
	int ret;

	if (x->flags || !x->len || x->len > KVMFR_EDU_BUF_SIZE ||
	    x->offset > KVMFR_EDU_BUF_SIZE - x->len)
		return -EINVAL;

	tmp = kmalloc(x->len, GFP_KERNEL);
	if (!tmp)
		return -ENOMEM;
	if (write && copy_from_user(tmp, uptr, x->len)) {
		ret = -EFAULT;
		goto out;
	}

	mutex_lock(&edu->lock);
	if (edu->gone) {
		ret = -ENODEV;
	} else if (write) {
		memcpy(edu->bounce + x->offset, tmp, x->len);
		ret = edu_transfer(edu, edu->bounce_dma + x->offset, x->offset,
				   x->len, false);
	} else {
		ret = edu_transfer(edu, edu->bounce_dma + x->offset, x->offset,
				   x->len, true);
		if (!ret)
			memcpy(tmp, edu->bounce + x->offset, x->len);
	}
	mutex_unlock(&edu->lock);

	if (!ret && !write && copy_to_user(uptr, tmp, x->len))
		ret = -EFAULT;
out:
	kfree(tmp);
	return ret;
}

static int edu_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
#if defined(KVMFR_EDU_HAVE_DMA_BUF_VMAP_UNLOCKED)
	return dma_buf_vmap_unlocked(dmabuf, map);
#elif defined(KVMFR_EDU_HAVE_IOSYS_MAP)
	return dma_buf_vmap(dmabuf, map);
#elif defined(KVMFR_EDU_HAVE_DMA_BUF_MAP)
	struct dma_buf_map m;
	int ret = dma_buf_vmap(dmabuf, &m);

	map->is_iomem = m.is_iomem;
	if (m.is_iomem)
		map->vaddr_iomem = m.vaddr_iomem;
	else
		map->vaddr = m.vaddr;
	return ret;
#else
	map->is_iomem = false;
	map->vaddr = dma_buf_vmap(dmabuf);
	return map->vaddr ? 0 : -ENOMEM;
#endif
}

static void edu_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
#if defined(KVMFR_EDU_HAVE_DMA_BUF_VMAP_UNLOCKED)
	dma_buf_vunmap_unlocked(dmabuf, map);
#elif defined(KVMFR_EDU_HAVE_IOSYS_MAP)
	dma_buf_vunmap(dmabuf, map);
#elif defined(KVMFR_EDU_HAVE_DMA_BUF_MAP)
	struct dma_buf_map m = { .is_iomem = map->is_iomem };

	if (map->is_iomem)
		m.vaddr_iomem = map->vaddr_iomem;
	else
		m.vaddr = map->vaddr;
	dma_buf_vunmap(dmabuf, &m);
#else
	dma_buf_vunmap(dmabuf, map->vaddr);
#endif
}

/*
 * The dma-buf from and to user memory through its kernel mapping: by
 * default vmap inside begin/end_cpu_access; KVMFR_EDU_VMAP_FIRST vmaps
 * before begin_cpu_access, KVMFR_EDU_VMAP_NO_CPU_ACCESS does no CPU access
 * calls at all.
 */
static int edu_ioc_vmap(struct kvmfr_edu_file *f,
			const struct kvmfr_edu_xfer *x, bool write)
{
	enum dma_data_direction dir = write ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
	void __user *uptr = u64_to_user_ptr(x->ptr);
	bool first = x->flags & KVMFR_EDU_VMAP_FIRST;
	bool access = !(x->flags & KVMFR_EDU_VMAP_NO_CPU_ACCESS);
	struct iosys_map map;
	size_t done, n;
	void *tmp;
	int ret = 0, ret2;

	if (x->flags & ~(KVMFR_EDU_VMAP_FIRST | KVMFR_EDU_VMAP_NO_CPU_ACCESS))
		return -EINVAL;
	if (!x->len)
		return -EINVAL;
	if (!f->dmabuf)
		return -EINVAL;
	if (x->offset > f->dmabuf->size || x->len > f->dmabuf->size - x->offset)
		return -EINVAL;

	tmp = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!tmp)
		return -ENOMEM;

	if (first) {
		ret = edu_vmap(f->dmabuf, &map);
		if (ret)
			goto free;
	}
	if (access) {
		ret = dma_buf_begin_cpu_access(f->dmabuf, dir);
		if (ret)
			goto vunmap;
	}
	if (!first) {
		ret = edu_vmap(f->dmabuf, &map);
		if (ret)
			goto end_access;
	}

	for (done = 0; done < x->len; done += n) {
		n = min_t(size_t, x->len - done, PAGE_SIZE);
		if (write) {
			if (copy_from_user(tmp, uptr + done, n)) {
				ret = -EFAULT;
				break;
			}
			iosys_map_memcpy_to(&map, x->offset + done, tmp, n);
		} else {
			iosys_map_memcpy_from(tmp, &map, x->offset + done, n);
			if (copy_to_user(uptr + done, tmp, n)) {
				ret = -EFAULT;
				break;
			}
		}
		cond_resched();
	}

	if (!first)
		edu_vunmap(f->dmabuf, &map);
end_access:
	if (access) {
		ret2 = dma_buf_end_cpu_access(f->dmabuf, dir);
		if (!ret)
			ret = ret2;
	}
vunmap:
	if (first)
		edu_vunmap(f->dmabuf, &map);
free:
	kfree(tmp);
	return ret;
}

static void edu_ioc_info(struct kvmfr_edu *edu, struct kvmfr_edu_info *info)
{
	struct device *dev = &edu->pdev->dev;
	struct iommu_domain *dom = iommu_get_domain_for_dev(dev);

	info->dma_mask_bits = fls64(dma_get_mask(dev));
	info->max_seg_size = dma_get_max_seg_size(dev);
	info->iommu = dom && (dom->type & __IOMMU_DOMAIN_DMA_API);
	info->strict = dom && dom->type == IOMMU_DOMAIN_DMA;
}

/* Every importer's maximum DMA segment; @size gets the old one back. */
static int edu_ioc_set_max_seg(struct kvmfr_edu *edu, u32 *size)
{
	struct device *dev = &edu->pdev->dev;
	u32 old = dma_get_max_seg_size(dev);

	if (*size < PAGE_SIZE || *size > SZ_1G || !IS_ALIGNED(*size, PAGE_SIZE))
		return -EINVAL;
	if (!dev->dma_parms)
		return -EOPNOTSUPP;
	dma_set_max_seg_size(dev, *size);
	*size = old;
	return 0;
}

static long edu_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct kvmfr_edu_file *f = filp->private_data;
	void __user *uarg = (void __user *)arg;
	union {
		struct kvmfr_edu_import imp;
		struct kvmfr_edu_dma dma;
		struct kvmfr_edu_xfer xfer;
		struct kvmfr_edu_info info;
		struct kvmfr_edu_async async;
		struct kvmfr_edu_async_status status;
		u32 max_seg;
	} u;
	unsigned int size = _IOC_SIZE(cmd);
	long ret;

	switch (cmd) {
	case KVMFR_EDU_IMPORT:
	case KVMFR_EDU_DMA:
	case KVMFR_EDU_BUF_READ:
	case KVMFR_EDU_BUF_WRITE:
	case KVMFR_EDU_VMAP_READ:
	case KVMFR_EDU_VMAP_WRITE:
	case KVMFR_EDU_DMA_ASYNC:
	case KVMFR_EDU_SET_MAX_SEG:
		if (copy_from_user(&u, uarg, size))
			return -EFAULT;
		break;
	case KVMFR_EDU_RELEASE:
	case KVMFR_EDU_UNMAP:
	case KVMFR_EDU_MAP:
	case KVMFR_EDU_INFO:
	case KVMFR_EDU_ASYNC_STATUS:
	case KVMFR_EDU_VMAP_HOLD:
	case KVMFR_EDU_VMAP_DROP:
		memset(&u, 0, sizeof(u));
		break;
	default:
		return -ENOTTY;
	}

	mutex_lock(&f->lock);
	switch (cmd) {
	case KVMFR_EDU_IMPORT:
		ret = edu_ioc_import(f, &u.imp);
		break;
	case KVMFR_EDU_RELEASE:
		ret = f->dmabuf ? 0 : -EINVAL;
		edu_release_import(f);
		break;
	case KVMFR_EDU_UNMAP:
		ret = edu_ioc_unmap(f);
		break;
	case KVMFR_EDU_MAP:
		ret = edu_ioc_map(f, &u.imp);
		break;
	case KVMFR_EDU_DMA:
		ret = edu_ioc_dma(f, &u.dma);
		break;
	case KVMFR_EDU_BUF_READ:
	case KVMFR_EDU_BUF_WRITE:
		ret = edu_ioc_buf(f->edu, &u.xfer, cmd == KVMFR_EDU_BUF_WRITE);
		break;
	case KVMFR_EDU_VMAP_READ:
	case KVMFR_EDU_VMAP_WRITE:
		ret = edu_ioc_vmap(f, &u.xfer, cmd == KVMFR_EDU_VMAP_WRITE);
		break;
	case KVMFR_EDU_DMA_ASYNC:
		ret = edu_ioc_dma_async(f, &u.async);
		break;
	case KVMFR_EDU_ASYNC_STATUS:
		edu_ioc_async_status(f, &u.status);
		ret = 0;
		break;
	case KVMFR_EDU_VMAP_HOLD:
		ret = edu_ioc_vmap_hold(f);
		break;
	case KVMFR_EDU_VMAP_DROP:
		ret = edu_ioc_vmap_drop(f);
		break;
	case KVMFR_EDU_SET_MAX_SEG:
		ret = edu_ioc_set_max_seg(f->edu, &u.max_seg);
		break;
	default:	/* KVMFR_EDU_INFO */
		edu_ioc_info(f->edu, &u.info);
		ret = 0;
		break;
	}
	mutex_unlock(&f->lock);

	if (!ret && (_IOC_DIR(cmd) & _IOC_READ) &&
	    copy_to_user(uarg, &u, size))
		ret = -EFAULT;
	return ret;
}

static int edu_open(struct inode *inode, struct file *filp)
{
	/* misc_open() holds misc_mtx: remove cannot run concurrently. */
	struct kvmfr_edu *edu = container_of(filp->private_data,
					     struct kvmfr_edu, misc);
	struct kvmfr_edu_file *f;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	mutex_init(&f->lock);
	INIT_DELAYED_WORK(&f->async_work, edu_async_work);
	spin_lock_init(&f->fence_lock);
	f->fence_context = dma_fence_context_alloc(1);
	kref_get(&edu->ref);
	f->edu = edu;
	filp->private_data = f;
	return 0;
}

static int edu_release(struct inode *inode, struct file *filp)
{
	struct kvmfr_edu_file *f = filp->private_data;

	edu_release_import(f);
	flush_delayed_work(&f->async_work);
	mutex_destroy(&f->lock);
	kref_put(&f->edu->ref, edu_free);
	kfree(f);
	return 0;
}

static const struct file_operations edu_fops = {
	.owner = THIS_MODULE,
	.open = edu_open,
	.release = edu_release,
	.unlocked_ioctl = edu_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/* ------------------------------------------------------------------------
 * PCI driver
 */

static int edu_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct kvmfr_edu *edu;
	u32 val;
	int ret;

	if (atomic_cmpxchg(&edu_bound, 0, 1))
		return -EBUSY;

	edu = kzalloc(sizeof(*edu), GFP_KERNEL);
	if (!edu) {
		ret = -ENOMEM;
		goto unbind;
	}
	kref_init(&edu->ref);
	mutex_init(&edu->lock);
	edu->pdev = pci_dev_get(pdev);

	ret = pci_enable_device_mem(pdev);
	if (ret)
		goto put;
	ret = pci_request_region(pdev, 0, KBUILD_MODNAME);
	if (ret)
		goto disable;
	edu->mmio = pci_iomap(pdev, 0, 0);
	if (!edu->mmio) {
		ret = -ENOMEM;
		goto release;
	}

	val = readl(edu->mmio + EDU_REG_ID);
	writel(0x5a5a0ff0, edu->mmio + EDU_REG_LIVENESS);
	if ((val & 0xff) != EDU_ID_MAGIC ||
	    readl(edu->mmio + EDU_REG_LIVENESS) != ~0x5a5a0ff0u) {
		pci_err(pdev, "not an edu device (ID register %#x)\n", val);
		ret = -ENODEV;
		goto unmap;
	}

	ret = dma_set_mask_and_coherent(&pdev->dev, EDU_DMA_MASK);
	if (ret)
		goto unmap;
	pci_set_master(pdev);

	edu->bounce = dma_alloc_coherent(&pdev->dev, KVMFR_EDU_BUF_SIZE,
					 &edu->bounce_dma, GFP_KERNEL);
	if (!edu->bounce) {
		ret = -ENOMEM;
		goto clear_master;
	}

	edu->misc.minor = MISC_DYNAMIC_MINOR;
	edu->misc.name = KBUILD_MODNAME;
	edu->misc.fops = &edu_fops;
	edu->misc.parent = &pdev->dev;
	edu->misc.mode = 0600;
	ret = misc_register(&edu->misc);
	if (ret)
		goto free_bounce;

	pci_set_drvdata(pdev, edu);
	pci_info(pdev, "edu %u.%u, /dev/%s\n", val >> 24, (val >> 16) & 0xff,
		 KBUILD_MODNAME);
	return 0;

free_bounce:
	dma_free_coherent(&pdev->dev, KVMFR_EDU_BUF_SIZE, edu->bounce,
			  edu->bounce_dma);
clear_master:
	pci_clear_master(pdev);
unmap:
	pci_iounmap(pdev, edu->mmio);
release:
	pci_release_region(pdev, 0);
disable:
	pci_disable_device(pdev);
put:
	kref_put(&edu->ref, edu_free);
unbind:
	atomic_set(&edu_bound, 0);
	return ret;
}

/* Open files keep their state; everything they try afterwards fails. */
static void edu_remove(struct pci_dev *pdev)
{
	struct kvmfr_edu *edu = pci_get_drvdata(pdev);

	misc_deregister(&edu->misc);

	mutex_lock(&edu->lock);
	edu->gone = true;
	dma_free_coherent(&pdev->dev, KVMFR_EDU_BUF_SIZE, edu->bounce,
			  edu->bounce_dma);
	edu->bounce = NULL;
	mutex_unlock(&edu->lock);

	pci_clear_master(pdev);
	pci_iounmap(pdev, edu->mmio);
	pci_release_region(pdev, 0);
	pci_disable_device(pdev);
	kref_put(&edu->ref, edu_free);
	atomic_set(&edu_bound, 0);
}

static const struct pci_device_id edu_ids[] = {
	{ PCI_DEVICE(0x1234, 0x11e8) },
	{ }
};
MODULE_DEVICE_TABLE(pci, edu_ids);

static struct pci_driver edu_driver = {
	.name = KBUILD_MODNAME,
	.id_table = edu_ids,
	.probe = edu_probe,
	.remove = edu_remove,
};
module_pci_driver(edu_driver);

MODULE_DESCRIPTION("kvmfr test: dma-buf importer driving QEMU's edu DMA engine");
MODULE_LICENSE("GPL");
