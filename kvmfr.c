// SPDX-License-Identifier: GPL-2.0
/*
 * kvmfr - shared framebuffer devices for virtual machines and their host.
 *
 * Each /dev/kvmfrN is a range of memory that userspace maps with mmap() and
 * exports, a page-aligned slice at a time, as dma-bufs that a GPU imports.
 * The memory is either host RAM ("static" devices, created at load time from
 * the static_size_mb= list) or, inside a virtual machine, BAR2 of an IVSHMEM
 * PCI device, which the host side backs with a file or its own /dev/kvmfrN.
 *
 * Ownership, in one place:
 *  - struct kvmfr_dev is refcounted by its embedded struct device. The driver
 *    (module init or PCI probe) holds one reference until the device is
 *    removed; every open file and every dma-buf holds one more. User mappings
 *    hold their file (device file or dma-buf file), and so the device.
 *  - Removal (PCI remove/unbind/hot-unplug) marks the device dead under
 *    kdev->lock, zaps every user mapping of the device and of its dma-bufs
 *    (they all share kdev->inode's address space), tells dynamic importers
 *    to drop their mappings, waits for their fences, then waits until every
 *    importer has unmapped and every vmap is gone (pinned importers hold
 *    the BAR like a long-term pin: nobody's mapping is taken away), unmaps
 *    the kernel mapping of the BAR, waits for transient page pins and only
 *    then unmaps the BAR's struct pages. Faults and new mappings check the
 *    dead flag under kdev->lock, so nothing can map the memory afterwards.
 *  - The memory itself (kvmfr_mem.c) is the device's: static memory, a
 *    tmpfs file in 2 MiB folios, lives until the last reference to the
 *    device goes; a BAR's struct pages until removal has waited for every
 *    user of them.
 *
 * Locking: kdev->lock (rwsem) is taken for read by everything that maps
 * the memory (fault, mmap, attach, map, vmap) and for write only to set
 * kdev->dead. It nests inside mmap_lock and the dma-buf reservation lock;
 * the only lock of ours taken under it is buf->lock (map). kdev->bufs_lock
 * protects the list of live dma-bufs and nests outside the reservation lock
 * and buf->lock, which protects a buffer's DMA and importer mappings.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cdev.h>
#include <linux/compat.h>
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/overflow.h>
#include <linux/pagemap.h>
#include <linux/pci.h>
#include <linux/pseudo_fs.h>
#include <linux/rwsem.h>
#include <linux/scatterlist.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "kvmfr_config.h"
#include "kvmfr.h"
#include "kvmfr_mem.h"

/*
 * Kernel differences, decided by the compile-time probes in probes/; the
 * code below uses the newest kernel's names. A kernel older than the
 * oldest supported one (5.10) already failed in probes/run.sh.
 */
#if defined(KVMFR_HAVE_IOSYS_MAP)
#include <linux/iosys-map.h>
#define KVMFR_VMAP_TAKES_MAP 1
#elif defined(KVMFR_HAVE_DMA_BUF_MAP)
#include <linux/dma-buf-map.h>
#define KVMFR_VMAP_TAKES_MAP 1
#define iosys_map dma_buf_map
#define iosys_map_set_vaddr dma_buf_map_set_vaddr
#else
/* The vmap op returns the address: see kvmfr_dmabuf_vmap_addr(). */
struct iosys_map {
	void *vaddr;
};

static inline void iosys_map_set_vaddr(struct iosys_map *map, void *vaddr)
{
	map->vaddr = vaddr;
}
#endif

#ifndef KVMFR_HAVE_DMA_BUF_INVALIDATE_MAPPINGS
static inline void dma_buf_invalidate_mappings(struct dma_buf *dmabuf)
{
	dma_buf_move_notify(dmabuf);
}
#endif

#ifndef KVMFR_HAVE_VM_FLAGS_SET
static inline void vm_flags_set(struct vm_area_struct *vma, unsigned long flags)
{
	vma->vm_flags |= flags;
}
#endif

#ifdef KVMFR_HAVE_MODULE_IMPORT_NS_TOKEN
MODULE_IMPORT_NS(DMA_BUF);
#else
MODULE_IMPORT_NS("DMA_BUF");
#endif

#define KVMFR_MAX_MINORS (MINORMASK + 1)
#define KVMFR_FS_MAGIC 0x6b766d66 /* "kvmf" */

/* Pages mapped by one fault: a 2 MiB-aligned window, clipped to the VMA. */
#define KVMFR_FAULT_WINDOW KVMFR_PMD_PAGES

enum kvmfr_type {
	KVMFR_TYPE_STATIC,
	KVMFR_TYPE_PCI,
};

/* A page range of a device as seen by one kind of mapping. */
struct kvmfr_range {
	struct kvmfr_dev *kdev;
	pgoff_t first;
	pgoff_t npages;
};

struct kvmfr_dev {
	struct device dev;
	struct cdev cdev;
	enum kvmfr_type type;
	u64 size;
	struct kvmfr_mem mem; /* kvmfr_mem.c */
	struct kvmfr_range whole; /* the range device mmaps see */

	struct rw_semaphore lock;
	bool dead;

	/* Address space shared by all user mappings of the device. */
	struct inode *inode;

	struct mutex bufs_lock; /* protects bufs */
	struct list_head bufs;
	atomic_t nr_bufs;

	/*
	 * Importer mappings and vmaps of the BAR that removal waits for; the
	 * last one to go wakes idle_wq.
	 */
	atomic_t nr_users;
	wait_queue_head_t idle_wq;

	struct pci_dev *pdev; /* PCI devices only */
};

/* One exported dma-buf: a page range of a device. */
struct kvmfr_buf {
	struct kvmfr_range range; /* range.kdev holds a device reference */
	struct dma_buf *dmabuf;
	struct list_head node; /* on kdev->bufs */

	struct mutex lock; /* protects dmas and maps */
	struct list_head dmas; /* DMA mappings, one per device and direction */
	struct list_head maps; /* live importer mappings */

	/* vmap, serialised by the dma-buf core (one at a time, refcounted) */
	void *vaddr; /* vmap of static memory or of the dummy page */
	struct page *dummy; /* what a vmap after removal maps */
	bool bar_vmapped; /* a vmap of the BAR is live (counts in nr_users) */
};

/*
 * One DMA mapping of a buffer's pages for one importing device and
 * direction, shared by all of that device's attachments: the DMA API
 * tracks at most 8 overlapping writable mappings of a cache line.
 */
struct kvmfr_dma {
	struct sg_table sgt;
	struct device *dev;
	enum dma_data_direction dir;
	unsigned int users; /* kvmfr_maps using it */
	struct list_head node; /* on buf->dmas */
};

/* One importer mapping: a private copy of the shared DMA mapping's table. */
struct kvmfr_map {
	struct sg_table sgt; /* what the importer gets */
	struct kvmfr_dma *dma;
	struct list_head node; /* on buf->maps */
};

/* The static_size_mb= list, in MiB, in device order. */
struct kvmfr_sizes {
	u32 *mb;
	unsigned int count;
};

static struct kvmfr_sizes static_sizes;
static dev_t kvmfr_devt;
static DEFINE_IDA(kvmfr_minors);
static struct vfsmount *kvmfr_mnt;

/* Static devices, newest first, for module unload. */
static struct kvmfr_dev **static_devs;

static struct kvmfr_dev *to_kvmfr_dev(struct device *dev)
{
	return container_of(dev, struct kvmfr_dev, dev);
}

/* ------------------------------------------------------------------------
 * Module parameter: static_size_mb=A,B,... (MiB, any number of devices)
 */

static int kvmfr_sizes_set(const char *val, const struct kernel_param *kp)
{
	struct kvmfr_sizes *sizes = kp->arg;
	unsigned int count = 0, i = 0;
	char *str, *list, *cur, *tok;
	u32 *mb;
	int ret;

	str = kstrdup(val, GFP_KERNEL);
	if (!str)
		return -ENOMEM;

	list = strim(str);
	if (*list)
		for (count = 1, cur = list; *cur; cur++)
			count += *cur == ',';

	mb = kcalloc(count, sizeof(*mb), GFP_KERNEL);
	if (count && !mb) {
		ret = -ENOMEM;
		goto free_str;
	}

	cur = list;
	while (count && (tok = strsep(&cur, ","))) {
		ret = kstrtou32(strim(tok), 0, &mb[i]);
		if (ret || !mb[i]) {
			pr_err("static_size_mb: '%s' is not a size in MiB\n",
			       tok);
			ret = -EINVAL;
			goto free_mb;
		}
		i++;
	}

	kfree(sizes->mb);
	sizes->mb = mb;
	sizes->count = count;
	kfree(str);
	return 0;

free_mb:
	kfree(mb);
free_str:
	kfree(str);
	return ret;
}

static int kvmfr_sizes_get(char *buf, const struct kernel_param *kp)
{
	const struct kvmfr_sizes *sizes = kp->arg;
	unsigned int i;
	int len = 0;

	for (i = 0; i < sizes->count; i++)
		len += scnprintf(buf + len, PAGE_SIZE - len, "%s%u",
				 i ? "," : "", sizes->mb[i]);
	len += scnprintf(buf + len, PAGE_SIZE - len, "\n");
	return len;
}

static void kvmfr_sizes_free(void *arg)
{
	struct kvmfr_sizes *sizes = arg;

	kfree(sizes->mb);
	sizes->mb = NULL;
	sizes->count = 0;
}

static const struct kernel_param_ops kvmfr_sizes_ops = {
	.set = kvmfr_sizes_set,
	.get = kvmfr_sizes_get,
	.free = kvmfr_sizes_free,
};

module_param_cb(static_size_mb, &kvmfr_sizes_ops, &static_sizes, 0444);
MODULE_PARM_DESC(static_size_mb,
		 "Sizes in MiB of the RAM-backed devices, comma separated");

/* ------------------------------------------------------------------------
 * Device objects
 */

static ssize_t size_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	return sysfs_emit(buf, "%llu\n", to_kvmfr_dev(dev)->size);
}
static DEVICE_ATTR_RO(size);

static ssize_t type_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	return sysfs_emit(buf, "%s\n",
			  to_kvmfr_dev(dev)->type == KVMFR_TYPE_PCI ? "pci" :
								      "static");
}
static DEVICE_ATTR_RO(type);

static ssize_t dmabufs_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%d\n",
			  atomic_read(&to_kvmfr_dev(dev)->nr_bufs));
}
static DEVICE_ATTR_RO(dmabufs);

static struct attribute *kvmfr_dev_attrs[] = {
	&dev_attr_size.attr,
	&dev_attr_type.attr,
	&dev_attr_dmabufs.attr,
	NULL,
};
ATTRIBUTE_GROUPS(kvmfr_dev);

static struct class kvmfr_class = {
	.name = KBUILD_MODNAME,
	.dev_groups = kvmfr_dev_groups,
};

/* Runs when the last reference goes: no file, mapping or dma-buf is left. */
static void kvmfr_dev_release(struct device *dev)
{
	struct kvmfr_dev *kdev = to_kvmfr_dev(dev);

	kvmfr_mem_free(&kdev->mem);
	if (kdev->inode)
		iput(kdev->inode);
	kfree(kdev);
}

static struct kvmfr_dev *kvmfr_dev_alloc(enum kvmfr_type type, u64 size,
					 struct device *parent)
{
	struct kvmfr_dev *kdev;

	kdev = kzalloc(sizeof(*kdev), GFP_KERNEL);
	if (!kdev)
		return NULL;

	kdev->type = type;
	kdev->size = size;
	kdev->whole.kdev = kdev;
	kdev->whole.npages = size >> PAGE_SHIFT;
	init_rwsem(&kdev->lock);
	mutex_init(&kdev->bufs_lock);
	INIT_LIST_HEAD(&kdev->bufs);
	atomic_set(&kdev->nr_bufs, 0);
	atomic_set(&kdev->nr_users, 0);
	init_waitqueue_head(&kdev->idle_wq);

	/* From here on, put_device() frees kdev through kvmfr_dev_release. */
	device_initialize(&kdev->dev);
	kdev->dev.class = &kvmfr_class;
	kdev->dev.parent = parent;
	kdev->dev.release = kvmfr_dev_release;
	return kdev;
}

static const struct file_operations kvmfr_fops;

/* Give the device a minor, an address space and a node. */
static int kvmfr_dev_add(struct kvmfr_dev *kdev)
{
	int minor, ret;

	kdev->inode = alloc_anon_inode(kvmfr_mnt->mnt_sb);
	if (IS_ERR(kdev->inode)) {
		ret = PTR_ERR(kdev->inode);
		kdev->inode = NULL;
		return ret;
	}
	/* The core maps no folio with a PMD across its mapping's i_size. */
	i_size_write(kdev->inode, kdev->size);

	minor = ida_alloc_max(&kvmfr_minors, KVMFR_MAX_MINORS - 1, GFP_KERNEL);
	if (minor < 0)
		return minor;

	kdev->dev.devt = MKDEV(MAJOR(kvmfr_devt), minor);
	ret = dev_set_name(&kdev->dev, KBUILD_MODNAME "%d", minor);
	if (ret)
		goto free_minor;

	dma_coerce_mask_and_coherent(&kdev->dev, DMA_BIT_MASK(64));

	cdev_init(&kdev->cdev, &kvmfr_fops);
	kdev->cdev.owner = THIS_MODULE;
	ret = cdev_device_add(&kdev->cdev, &kdev->dev);
	if (ret)
		goto free_minor;
	return 0;

free_minor:
	ida_free(&kvmfr_minors, minor);
	kdev->dev.devt = 0;
	return ret;
}

static void kvmfr_dev_del(struct kvmfr_dev *kdev)
{
	cdev_device_del(&kdev->cdev, &kdev->dev);
	ida_free(&kvmfr_minors, MINOR(kdev->dev.devt));
}

/*
 * Cut every user off the device's memory: later faults, mmaps, attachments
 * and mappings fail; existing user mappings are zapped; dynamic importers are
 * told to unmap. Nobody's DMA mapping or vmap is taken away here: removal
 * then waits for them (kvmfr_dev_wait_fences, kvmfr_dev_wait_unused). The
 * device object itself lives on until its last reference.
 */
static void kvmfr_dev_revoke(struct kvmfr_dev *kdev)
{
	struct kvmfr_buf *buf;

	down_write(&kdev->lock);
	kdev->dead = true;
	up_write(&kdev->lock);

	/*
	 * A fault that saw the device alive holds its folio locked until its
	 * entry is in place (kvmfr_page_fault): zap again after those.
	 */
	unmap_mapping_range(kdev->inode->i_mapping, 0, 0, 1);
	kvmfr_mem_fault_barrier(&kdev->mem);
	unmap_mapping_range(kdev->inode->i_mapping, 0, 0, 1);

	/*
	 * A buffer on the list cannot be freed while bufs_lock is held: its
	 * release op takes the lock first. So its dma_buf is still valid here.
	 */
	mutex_lock(&kdev->bufs_lock);
	list_for_each_entry(buf, &kdev->bufs, node) {
		dma_resv_lock(buf->dmabuf->resv, NULL);
		dma_buf_invalidate_mappings(buf->dmabuf);
		dma_resv_unlock(buf->dmabuf->resv);
	}
	mutex_unlock(&kdev->bufs_lock);
}

/*
 * Wait up to @timeout jiffies for every fence of @resv, the importers' work
 * included: > 0 once all are signalled, 0 on timeout.
 */
static long kvmfr_resv_wait_idle(struct dma_resv *resv, unsigned long timeout)
{
#if defined(KVMFR_HAVE_DMA_RESV_USAGE)
	return dma_resv_wait_timeout(resv, DMA_RESV_USAGE_BOOKKEEP, false,
				     timeout);
#elif defined(KVMFR_HAVE_DMA_RESV_WAIT_TIMEOUT)
	/* before 5.19: "true" is every fence, shared and exclusive */
	return dma_resv_wait_timeout(resv, true, false, timeout);
#else
	return dma_resv_wait_timeout_rcu(resv, true, false, timeout);
#endif
}

#define KVMFR_WAIT_SLICE (HZ / 10)
#define KVMFR_WARN_FIRST (1 * HZ)
#define KVMFR_WARN_EVERY (10 * HZ)

/* "removal waits" lines: the first after 1 s, then one every 10 s. */
static void kvmfr_wait_warn(struct kvmfr_dev *kdev, unsigned long start,
			    unsigned long *next, const char *what)
{
	if (time_before(jiffies, start + *next))
		return;
	*next = jiffies - start + KVMFR_WARN_EVERY;
	dev_warn(kdev->dev.parent, "%s: removal waits %u s for %s\n",
		 dev_name(&kdev->dev), jiffies_to_msecs(jiffies - start) / 1000,
		 what);
}

/*
 * After move_notify: wait until the work importers queued on each buffer
 * (the fences of its reservation object) is done. Holds bufs_lock for one
 * slice at a time, so that buffers can still be released meanwhile.
 */
static void kvmfr_dev_wait_fences(struct kvmfr_dev *kdev)
{
	unsigned long start = jiffies, next = KVMFR_WARN_FIRST;
	struct kvmfr_buf *buf;
	bool busy;

	do {
		busy = false;
		mutex_lock(&kdev->bufs_lock);
		list_for_each_entry(buf, &kdev->bufs, node) {
			if (kvmfr_resv_wait_idle(buf->dmabuf->resv,
						 KVMFR_WAIT_SLICE) <= 0) {
				busy = true;
				break;
			}
		}
		mutex_unlock(&kdev->bufs_lock);
		if (busy)
			kvmfr_wait_warn(kdev, start, &next,
					"importers' fences");
	} while (busy);
}

/* Name one importer device that still has a mapping, for the warning. */
static void kvmfr_dev_name_user(struct kvmfr_dev *kdev, char *name, size_t len)
{
	struct kvmfr_buf *buf;
	struct kvmfr_map *map;

	snprintf(name, len, "%d mapping(s) and vmap(s), e.g. a vmap",
		 atomic_read(&kdev->nr_users));
	mutex_lock(&kdev->bufs_lock);
	list_for_each_entry(buf, &kdev->bufs, node) {
		mutex_lock(&buf->lock);
		map = list_first_entry_or_null(&buf->maps, struct kvmfr_map,
					       node);
		if (map)
			snprintf(name, len,
				 "%d mapping(s) and vmap(s), e.g. by %s %s",
				 atomic_read(&kdev->nr_users),
				 dev_driver_string(map->dma->dev),
				 dev_name(map->dma->dev));
		mutex_unlock(&buf->lock);
		if (map)
			break;
	}
	mutex_unlock(&kdev->bufs_lock);
}

/*
 * Wait until no importer has the memory DMA-mapped and no vmap of it is
 * left. Dynamic importers unmap when told (move_notify); pinned importers
 * (no move_notify) and kernel vmap users keep their mapping, valid and
 * backed by the BAR, until they let go of it themselves, like the holder
 * of a long-term page pin.
 */
static void kvmfr_dev_wait_unused(struct kvmfr_dev *kdev)
{
	unsigned long start = jiffies, next = KVMFR_WARN_FIRST;
	char what[128];

	while (!wait_event_timeout(kdev->idle_wq, !atomic_read(&kdev->nr_users),
				   KVMFR_WAIT_SLICE)) {
		if (time_before(jiffies, start + next))
			continue;
		kvmfr_dev_name_user(kdev, what, sizeof(what));
		kvmfr_wait_warn(kdev, start, &next, what);
	}
}

static void kvmfr_dev_put_user(struct kvmfr_dev *kdev)
{
	if (atomic_dec_and_test(&kdev->nr_users))
		wake_up_all(&kdev->idle_wq);
}

/* ------------------------------------------------------------------------
 * User mappings (device and dma-buf)
 */

/* Map the pages [first, first + n) of @r at @addr, skipping mapped ones. */
static vm_fault_t kvmfr_insert_pages(struct vm_area_struct *vma,
				     unsigned long addr,
				     const struct kvmfr_range *r, pgoff_t first,
				     unsigned long n)
{
	struct page **pages = r->kdev->mem.pages + r->first + first;

	while (n) {
		unsigned long left = n;
		int ret;

		ret = vm_insert_pages(vma, addr, pages, &left);
		if (!ret)
			break;
		if (ret != -EBUSY)
			return vmf_error(ret);
		/* Page n - left is already mapped (a racing fault): skip it. */
		left--;
		addr += (n - left) << PAGE_SHIFT;
		pages += n - left;
		n = left;
	}
	return VM_FAULT_NOPAGE;
}

static vm_fault_t kvmfr_vm_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	const struct kvmfr_range *r = vma->vm_private_data;
	struct kvmfr_dev *kdev = r->kdev;
	unsigned long start, end, addr = vmf->address & PAGE_MASK;
	pgoff_t pgoff = vmf->pgoff - r->first;
	vm_fault_t ret;

	if (vmf->pgoff < r->first || pgoff >= r->npages)
		return VM_FAULT_SIGBUS;

	/* Fault in the aligned window around the address, within bounds. */
	start = max(vma->vm_start,
		    ALIGN_DOWN(addr, KVMFR_FAULT_WINDOW << PAGE_SHIFT));
	end = min(vma->vm_end,
		  ALIGN_DOWN(addr, KVMFR_FAULT_WINDOW << PAGE_SHIFT) +
			  (KVMFR_FAULT_WINDOW << PAGE_SHIFT));
	end = min(end, addr + ((r->npages - pgoff) << PAGE_SHIFT));

	down_read(&kdev->lock);
	if (kdev->dead)
		ret = VM_FAULT_SIGBUS;
	else
		ret = kvmfr_insert_pages(vma, start, r,
					 pgoff - ((addr - start) >> PAGE_SHIFT),
					 (end - start) >> PAGE_SHIFT);
	up_read(&kdev->lock);
	return ret;
}

/*
 * The kernel's access to a mapping on behalf of another process (ptrace,
 * /proc/PID/mem) where it cannot pin the pages: a BAR whose direct map is
 * not used (VM_IO, see kvmfr_mmap_range), or a removed device.
 */
static int kvmfr_vm_access(struct vm_area_struct *vma, unsigned long addr,
			   void *buf, int len, int write)
{
	const struct kvmfr_range *r = vma->vm_private_data;
	struct kvmfr_dev *kdev = r->kdev;
	pgoff_t pgoff = vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT);
	u64 end = (u64)(r->first + r->npages) << PAGE_SHIFT;
	u64 off = ((u64)pgoff << PAGE_SHIFT) + offset_in_page(addr);
	int ret;

	if (pgoff < r->first || off >= end)
		return -EIO;
	if (write && !(vma->vm_flags & VM_WRITE))
		return -EACCES;
	len = min_t(u64, len, min_t(u64, end - off, vma->vm_end - addr));

	down_read(&kdev->lock);
	if (kdev->dead)
		ret = -EIO;
	else
		ret = kvmfr_mem_access(&kdev->mem, off, buf, len, write);
	up_read(&kdev->lock);
	return ret;
}

static const struct vm_operations_struct kvmfr_vm_ops = {
	.fault = kvmfr_vm_fault,
	.access = kvmfr_vm_access,
};

#ifdef KVMFR_HAVE_HUGE_FAULT_PE_SIZE
/*
 * Kernels without compound ZONE_DEVICE pages: a BAR's mapping takes the
 * 2 MiB around a fault as one devmap PMD where the VMA covers it and its
 * addresses and device pages agree modulo 2 MiB; elsewhere the core falls
 * back to kvmfr_vm_fault. Removal sets dead under kdev->lock before it
 * zaps, so a PMD inserted under the read lock is zapped with the rest.
 */
static vm_fault_t kvmfr_vm_huge_fault(struct vm_fault *vmf,
				      enum page_entry_size pe_size)
{
	struct vm_area_struct *vma = vmf->vma;
	const struct kvmfr_range *r = vma->vm_private_data;
	struct kvmfr_dev *kdev = r->kdev;
	unsigned long haddr = vmf->address & PMD_MASK;
	pgoff_t pgoff;
	vm_fault_t ret;

	if (pe_size != PE_SIZE_PMD || haddr < vma->vm_start ||
	    haddr + PMD_SIZE > vma->vm_end)
		return VM_FAULT_FALLBACK;
	pgoff = vma->vm_pgoff + ((haddr - vma->vm_start) >> PAGE_SHIFT);
	if (pgoff < r->first || pgoff - r->first + KVMFR_PMD_PAGES > r->npages)
		return VM_FAULT_FALLBACK;

	down_read(&kdev->lock);
	if (kdev->dead)
		ret = VM_FAULT_SIGBUS;
	else
		ret = kvmfr_mem_insert_pmd(&kdev->mem, vmf, pgoff);
	up_read(&kdev->lock);
	return ret;
}

static const struct vm_operations_struct kvmfr_devmap_vm_ops = {
	.fault = kvmfr_vm_fault,
	.huge_fault = kvmfr_vm_huge_fault,
	.access = kvmfr_vm_access,
};
#endif

/*
 * Faults of a mapping placed so that the core can map whole 2 MiB folios:
 * the page goes back to the core, which maps its folio with one PMD where
 * the VMA covers it (finish_fault) and with one PTE elsewhere. The page is
 * returned locked: removal locks every folio after setting dead and
 * zapping, so a fault that saw the device alive has mapped its page before
 * that, and the second zap takes it away. The reference taken here is the
 * mapping's.
 */
static vm_fault_t kvmfr_page_fault(struct vm_fault *vmf)
{
	const struct kvmfr_range *r = vmf->vma->vm_private_data;
	struct kvmfr_dev *kdev = r->kdev;
	struct page *page;

	if (vmf->pgoff < r->first || vmf->pgoff - r->first >= r->npages)
		return VM_FAULT_SIGBUS;
	page = kdev->mem.pages[vmf->pgoff];

	down_read(&kdev->lock);
	if (kdev->dead) {
		up_read(&kdev->lock);
		return VM_FAULT_SIGBUS;
	}
	lock_page(page);
	get_page(page);
	up_read(&kdev->lock);
	vmf->page = page;
	return VM_FAULT_LOCKED;
}

static const struct vm_operations_struct kvmfr_pmd_vm_ops = {
	.fault = kvmfr_page_fault,
	.access = kvmfr_vm_access,
};

/*
 * Whether @vma can map whole folios with PMDs: its addresses and file
 * offsets (device pages) agree modulo 2 MiB and the memory has 2 MiB
 * folios (kvmfr_mem_pmd_folios). Otherwise faults insert 2 MiB windows of
 * PTEs themselves.
 */
static bool kvmfr_vma_can_pmd(struct kvmfr_dev *kdev,
			      struct vm_area_struct *vma)
{
	if (!kvmfr_mem_pmd_folios(&kdev->mem))
		return false;
	return !(((vma->vm_start >> PAGE_SHIFT) - vma->vm_pgoff) %
		 KVMFR_PMD_PAGES);
}

/*
 * Set up a mapping of @r. Pages are mapped as ordinary (refcounted, not
 * PFNMAP) entries on first touch, so the mapping can be long-term pinned,
 * e.g. by VFIO when QEMU uses the device as guest RAM. The mapping can never
 * grow. Its file offsets are device pages, also for a dma-buf (vm_pgoff is
 * moved by the buffer's start), so that they match the folios' alignment.
 */
static int kvmfr_mmap_range(struct kvmfr_range *r, struct vm_area_struct *vma)
{
	struct kvmfr_dev *kdev = r->kdev;
	int ret;

	/* MAP_SHARED of a read-only fd has VM_MAYSHARE without VM_SHARED. */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_pgoff >= r->npages ||
	    vma_pages(vma) > r->npages - vma->vm_pgoff)
		return -EINVAL;

	/*
	 * An early answer only: removal may come right after, before the VMA
	 * is linked where its zap would find it, but every fault checks dead.
	 * (The VMA's own lock, taken below, must not nest inside kdev->lock:
	 * faults take them the other way round.)
	 */
	down_read(&kdev->lock);
	ret = kdev->dead ? -ENODEV : 0;
	up_read(&kdev->lock);
	if (ret)
		return ret;

	vma->vm_pgoff += r->first;
	if (kvmfr_vma_can_pmd(kdev, vma)) {
		/* No VM_MIXEDMAP: its PMDs would be zapped as special. */
		vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
		vma->vm_ops = &kvmfr_pmd_vm_ops;
	} else {
		vm_flags_set(vma, VM_MIXEDMAP | VM_DONTEXPAND | VM_DONTDUMP);
		vma->vm_ops = &kvmfr_vm_ops;
#ifdef KVMFR_HAVE_HUGE_FAULT_PE_SIZE
		if (kdev->mem.devmap_pmds) {
			/* huge faults also where THP is "madvise" */
			vm_flags_set(vma, VM_HUGEPAGE);
			vma->vm_ops = &kvmfr_devmap_vm_ops;
		}
#endif
	}
	vma->vm_page_prot = kvmfr_mem_user_prot(&kdev->mem, vma->vm_page_prot);
	/*
	 * Where the kernel's own alias of the pages is not to be used (a BAR
	 * in a memory-encrypted guest, or bar_direct_map=off), VM_IO keeps
	 * GUP away from them: O_DIRECT, process_vm_*, vmsplice and pins fail
	 * with EFAULT instead of touching ciphertext; /proc/PID/mem uses
	 * kvmfr_vm_access.
	 */
	if (!kvmfr_mem_direct_map_ok(&kdev->mem))
		vm_flags_set(vma, VM_IO);
	vma->vm_private_data = r;
	return 0;
}

/* ------------------------------------------------------------------------
 * dma-buf exporter
 */

static int kvmfr_dmabuf_attach(struct dma_buf *dmabuf,
			       struct dma_buf_attachment *attach)
{
	struct kvmfr_buf *buf = dmabuf->priv;
	int ret = 0;

	/*
	 * An importer's DMA mapping goes through the pages' kernel alias
	 * wherever it is bounced (as all DMA of a memory-encrypted guest is):
	 * refused where that alias is no use.
	 */
	if (!kvmfr_mem_direct_map_ok(&buf->range.kdev->mem))
		return -EOPNOTSUPP;
	down_read(&buf->range.kdev->lock);
	if (buf->range.kdev->dead)
		ret = -ENODEV;
	up_read(&buf->range.kdev->lock);
	return ret;
}

/*
 * The memory never moves, so pinning has nothing to do; having pin/unpin
 * makes this a dynamic exporter, which is what lets dynamic importers map
 * afresh after dma_buf_invalidate_mappings() instead of reusing a cached mapping.
 */
static int kvmfr_dmabuf_pin(struct dma_buf_attachment *attach)
{
	struct kvmfr_buf *buf = attach->dmabuf->priv;

	return READ_ONCE(buf->range.kdev->dead) ? -ENODEV : 0;
}

static void kvmfr_dmabuf_unpin(struct dma_buf_attachment *attach)
{
}

/* The shared DMA mapping of @buf for @dev and @dir, made if needed. */
/* Pages from @i on that are physically contiguous, at most @max of them. */
static unsigned long kvmfr_chunk(struct page **pages, unsigned long npages,
				 unsigned long i, unsigned long max)
{
	unsigned long n = 1;

	while (i + n < npages && n < max &&
	       page_to_pfn(pages[i + n]) == page_to_pfn(pages[i]) + n)
		n++;
	return n;
}

/*
 * A table of @npages pages in segments of physically contiguous pages of at
 * most @max_seg bytes. Not sg_alloc_table_from_pages_segment(): up to 6.12
 * it also splits wherever two ZONE_DEVICE pages' pgmap fields differ, which
 * is at every head/tail boundary of a compound page (a tail page's field is
 * its compound_head): two segments per 2 MiB of a BAR.
 */
static int kvmfr_sgt_alloc(struct sg_table *sgt, struct page **pages,
			   unsigned long npages, unsigned int max_seg)
{
	unsigned long i, n, nents = 0;
	unsigned long max = max(max_seg >> PAGE_SHIFT, 1U);
	struct scatterlist *sg;
	int ret;

	for (i = 0; i < npages; i += kvmfr_chunk(pages, npages, i, max))
		nents++;
	ret = sg_alloc_table(sgt, nents, GFP_KERNEL);
	if (ret)
		return ret;
	for (i = 0, sg = sgt->sgl; i < npages; i += n, sg = sg_next(sg)) {
		n = kvmfr_chunk(pages, npages, i, max);
		sg_set_page(sg, pages[i], n << PAGE_SHIFT, 0);
	}
	return 0;
}

static struct kvmfr_dma *kvmfr_dma_get(struct kvmfr_buf *buf,
				       struct device *dev,
				       enum dma_data_direction dir)
{
	struct page **pages = buf->range.kdev->mem.pages + buf->range.first;
	unsigned long npages = buf->range.npages;
	struct kvmfr_dma *dma;
	int ret;

	lockdep_assert_held(&buf->lock);

	list_for_each_entry(dma, &buf->dmas, node) {
		if (dma->dev == dev && dma->dir == dir) {
			dma->users++;
			return dma;
		}
	}

	dma = kzalloc(sizeof(*dma), GFP_KERNEL);
	if (!dma)
		return ERR_PTR(-ENOMEM);
	dma->dev = dev;
	dma->dir = dir;
	dma->users = 1;

	ret = kvmfr_sgt_alloc(&dma->sgt, pages, npages,
			      dma_get_max_seg_size(dev));
	if (ret)
		goto free_dma;

	/*
	 * Other devices may map the same pages at once, which the DMA API
	 * only allows without the implicit CPU sync; the caller syncs.
	 */
	ret = dma_map_sgtable(dev, &dma->sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
	if (ret)
		goto free_table;
	list_add(&dma->node, &buf->dmas);
	return dma;

free_table:
	sg_free_table(&dma->sgt);
free_dma:
	kfree(dma);
	return ERR_PTR(ret);
}

static void kvmfr_dma_put(struct kvmfr_buf *buf, struct kvmfr_dma *dma)
{
	lockdep_assert_held(&buf->lock);

	if (--dma->users)
		return;
	list_del(&dma->node);
	/* With the CPU sync: a swiotlb bounce buffer is copied back. */
	dma_unmap_sgtable(dma->dev, &dma->sgt, dma->dir, 0);
	sg_free_table(&dma->sgt);
	kfree(dma);
}

/* The importer's own copy of @src: same pages, same DMA segments. */
static int kvmfr_sgt_copy(struct sg_table *dst, const struct sg_table *src)
{
	struct scatterlist *d, *s;
	unsigned int i;
	int ret;

	ret = sg_alloc_table(dst, src->orig_nents, GFP_KERNEL);
	if (ret)
		return ret;
	d = dst->sgl;
	for_each_sgtable_sg(src, s, i) {
		sg_set_page(d, sg_page(s), s->length, s->offset);
		if (i < src->nents) {
			sg_dma_address(d) = sg_dma_address(s);
			sg_dma_len(d) = sg_dma_len(s);
		}
		d = sg_next(d);
	}
	dst->nents = src->nents;
	return 0;
}

static struct sg_table *kvmfr_dmabuf_map(struct dma_buf_attachment *attach,
					 enum dma_data_direction dir)
{
	struct kvmfr_buf *buf = attach->dmabuf->priv;
	struct kvmfr_dev *kdev = buf->range.kdev;
	struct kvmfr_dma *dma;
	struct kvmfr_map *map;
	int ret;

	map = kzalloc(sizeof(*map), GFP_KERNEL);
	if (!map)
		return ERR_PTR(-ENOMEM);

	/* Removal waits for every map that got past the dead check. */
	down_read(&kdev->lock);
	if (kdev->dead) {
		ret = -ENODEV;
		goto unlock;
	}

	mutex_lock(&buf->lock);
	dma = kvmfr_dma_get(buf, attach->dev, dir);
	if (IS_ERR(dma)) {
		ret = PTR_ERR(dma);
		goto unlock_buf;
	}
	ret = kvmfr_sgt_copy(&map->sgt, &dma->sgt);
	if (ret)
		goto put_dma;
	dma_sync_sgtable_for_device(dma->dev, &dma->sgt, dma->dir);
	map->dma = dma;
	list_add(&map->node, &buf->maps);
	atomic_inc(&kdev->nr_users);
	mutex_unlock(&buf->lock);
	up_read(&kdev->lock);
	return &map->sgt;

put_dma:
	kvmfr_dma_put(buf, dma);
unlock_buf:
	mutex_unlock(&buf->lock);
unlock:
	up_read(&kdev->lock);
	kfree(map);
	return ERR_PTR(ret);
}

static void kvmfr_dmabuf_unmap(struct dma_buf_attachment *attach,
			       struct sg_table *sgt,
			       enum dma_data_direction dir)
{
	struct kvmfr_map *map = container_of(sgt, struct kvmfr_map, sgt);
	struct kvmfr_buf *buf = attach->dmabuf->priv;

	mutex_lock(&buf->lock);
	list_del(&map->node);
	kvmfr_dma_put(buf, map->dma);
	mutex_unlock(&buf->lock);

	sg_free_table(&map->sgt);
	kfree(map);
	kvmfr_dev_put_user(buf->range.kdev);
}

static int kvmfr_dmabuf_begin_cpu_access(struct dma_buf *dmabuf,
					 enum dma_data_direction dir)
{
	struct kvmfr_buf *buf = dmabuf->priv;
	struct kvmfr_dma *dma;

	if (READ_ONCE(buf->range.kdev->dead))
		return -ENODEV;

	mutex_lock(&buf->lock);
	list_for_each_entry(dma, &buf->dmas, node)
		dma_sync_sgtable_for_cpu(dma->dev, &dma->sgt, dma->dir);
	mutex_unlock(&buf->lock);
	return 0;
}

static int kvmfr_dmabuf_end_cpu_access(struct dma_buf *dmabuf,
				       enum dma_data_direction dir)
{
	struct kvmfr_buf *buf = dmabuf->priv;
	struct kvmfr_dma *dma;

	if (READ_ONCE(buf->range.kdev->dead))
		return -ENODEV;

	mutex_lock(&buf->lock);
	list_for_each_entry(dma, &buf->dmas, node)
		dma_sync_sgtable_for_device(dma->dev, &dma->sgt, dma->dir);
	mutex_unlock(&buf->lock);
	return 0;
}

static int kvmfr_dmabuf_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	struct kvmfr_buf *buf = dmabuf->priv;

	return kvmfr_mmap_range(&buf->range, vma);
}

/*
 * What a vmap made after removal maps: one private zeroed page repeated over
 * the buffer's size, so that a stale kernel user reads zeros and its writes
 * go nowhere, never to the BAR's old address.
 */
static void *kvmfr_vmap_dummy(struct kvmfr_buf *buf)
{
	unsigned long i, npages = buf->range.npages;
	struct page **pages;
	void *vaddr = NULL;

	buf->dummy = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!buf->dummy)
		return NULL;
	pages = kvmalloc_array(npages, sizeof(*pages), GFP_KERNEL);
	if (pages) {
		for (i = 0; i < npages; i++)
			pages[i] = buf->dummy;
		vaddr = vmap(pages, npages, VM_MAP, PAGE_KERNEL);
		kvfree(pages);
	}
	if (!vaddr) {
		__free_page(buf->dummy);
		buf->dummy = NULL;
	}
	return vaddr;
}

/*
 * Never fails for a removed device: dma_buf_vmap() warns on any error, and
 * a kernel importer racing with removal is not a bug. A vmap of the BAR
 * counts as a user of the memory that removal waits for.
 */
static int kvmfr_dmabuf_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct kvmfr_buf *buf = dmabuf->priv;
	struct kvmfr_dev *kdev = buf->range.kdev;
	void *vaddr;

	down_read(&kdev->lock);
	if (kdev->dead) {
		vaddr = kvmfr_vmap_dummy(buf);
	} else {
		/* A borrowed BAR mapping stays until removal has waited. */
		vaddr = kvmfr_mem_vmap(&kdev->mem, buf->range.first,
				       buf->range.npages, &buf->bar_vmapped);
		if (buf->bar_vmapped)
			atomic_inc(&kdev->nr_users);
	}
	up_read(&kdev->lock);

	if (!vaddr)
		return -ENOMEM;
	if (!buf->bar_vmapped)
		buf->vaddr = vaddr;
	iosys_map_set_vaddr(map, vaddr);
	return 0;
}

static void kvmfr_dmabuf_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct kvmfr_buf *buf = dmabuf->priv;

	if (buf->bar_vmapped) {
		buf->bar_vmapped = false;
		kvmfr_dev_put_user(buf->range.kdev);
		return;
	}
	vunmap(buf->vaddr);
	buf->vaddr = NULL;
	if (buf->dummy) {
		__free_page(buf->dummy);
		buf->dummy = NULL;
	}
}

static void kvmfr_dmabuf_release(struct dma_buf *dmabuf)
{
	struct kvmfr_buf *buf = dmabuf->priv;
	struct kvmfr_dev *kdev = buf->range.kdev;

	mutex_lock(&kdev->bufs_lock);
	list_del(&buf->node);
	mutex_unlock(&kdev->bufs_lock);
	atomic_dec(&kdev->nr_bufs);

	mutex_destroy(&buf->lock);
	kfree(buf);
	put_device(&kdev->dev);
}

#ifndef KVMFR_VMAP_TAKES_MAP
/* Before 5.11 the vmap op returned the address, NULL on failure. */
static void *kvmfr_dmabuf_vmap_addr(struct dma_buf *dmabuf)
{
	struct iosys_map map;

	return kvmfr_dmabuf_vmap(dmabuf, &map) ? NULL : map.vaddr;
}

static void kvmfr_dmabuf_vunmap_addr(struct dma_buf *dmabuf, void *vaddr)
{
	struct iosys_map map = { .vaddr = vaddr };

	kvmfr_dmabuf_vunmap(dmabuf, &map);
}
#endif

static const struct dma_buf_ops kvmfr_dmabuf_ops = {
	.attach = kvmfr_dmabuf_attach,
	.pin = kvmfr_dmabuf_pin,
	.unpin = kvmfr_dmabuf_unpin,
	.map_dma_buf = kvmfr_dmabuf_map,
	.unmap_dma_buf = kvmfr_dmabuf_unmap,
	.begin_cpu_access = kvmfr_dmabuf_begin_cpu_access,
	.end_cpu_access = kvmfr_dmabuf_end_cpu_access,
	.mmap = kvmfr_dmabuf_mmap,
#ifdef KVMFR_VMAP_TAKES_MAP
	.vmap = kvmfr_dmabuf_vmap,
	.vunmap = kvmfr_dmabuf_vunmap,
#else
	.vmap = kvmfr_dmabuf_vmap_addr,
	.vunmap = kvmfr_dmabuf_vunmap_addr,
#endif
	.release = kvmfr_dmabuf_release,
};

static int kvmfr_create_dmabuf(struct kvmfr_dev *kdev, u8 flags, u64 offset,
			       u64 size)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	struct dma_buf *dmabuf;
	struct kvmfr_buf *buf;
	u64 end;
	int ret;

	if (flags & ~KVMFR_DMABUF_FLAG_CLOEXEC)
		return -EINVAL;
	if (!size || !PAGE_ALIGNED(offset) || !PAGE_ALIGNED(size))
		return -EINVAL;
	if (check_add_overflow(offset, size, &end) || end > kdev->size)
		return -EINVAL;
	if (READ_ONCE(kdev->dead))
		return -ENODEV;

	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	buf->range.kdev = kdev;
	buf->range.first = offset >> PAGE_SHIFT;
	buf->range.npages = size >> PAGE_SHIFT;
	mutex_init(&buf->lock);
	INIT_LIST_HEAD(&buf->dmas);
	INIT_LIST_HEAD(&buf->maps);

	exp_info.ops = &kvmfr_dmabuf_ops;
	exp_info.size = size;
	exp_info.flags = O_RDWR;
	exp_info.priv = buf;
	dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(dmabuf)) {
		ret = PTR_ERR(dmabuf);
		goto free_buf;
	}

	/* The dma-buf owns buf now, and buf owns this device reference. */
	get_device(&kdev->dev);
	buf->dmabuf = dmabuf;
	/* Its user mappings join the device's, so removal zaps them too. */
	dmabuf->file->f_mapping = kdev->inode->i_mapping;

	/*
	 * A removal racing with this misses the new buffer, which is fine:
	 * attach, map, mmap and vmap all check kdev->dead themselves.
	 */
	mutex_lock(&kdev->bufs_lock);
	list_add(&buf->node, &kdev->bufs);
	mutex_unlock(&kdev->bufs_lock);
	atomic_inc(&kdev->nr_bufs);

	ret = dma_buf_fd(dmabuf, O_RDWR | (flags & KVMFR_DMABUF_FLAG_CLOEXEC ?
						   O_CLOEXEC :
						   0));
	if (ret < 0)
		dma_buf_put(dmabuf); /* frees buf through release */
	return ret;

free_buf:
	mutex_destroy(&buf->lock);
	kfree(buf);
	return ret;
}

/* ------------------------------------------------------------------------
 * Character device
 */

static int kvmfr_open(struct inode *inode, struct file *filp)
{
	struct kvmfr_dev *kdev =
		container_of(inode->i_cdev, struct kvmfr_dev, cdev);
	int ret = 0;

	down_read(&kdev->lock);
	if (kdev->dead) {
		ret = -ENODEV;
	} else {
		/* The file owns this reference until release. */
		get_device(&kdev->dev);
		filp->private_data = kdev;
		filp->f_mapping = kdev->inode->i_mapping;
	}
	up_read(&kdev->lock);
	return ret;
}

static int kvmfr_release(struct inode *inode, struct file *filp)
{
	struct kvmfr_dev *kdev = filp->private_data;

	put_device(&kdev->dev);
	return 0;
}

static int kvmfr_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct kvmfr_dev *kdev = filp->private_data;

	return kvmfr_mmap_range(&kdev->whole, vma);
}

#ifdef KVMFR_HAVE_MM_GET_UNMAPPED_AREA_HOOK
/*
 * Place mappings of 2 MiB or more at an address congruent to their file
 * offset modulo 2 MiB, so that whole folios can be mapped with PMDs: ask
 * the process's allocator for 2 MiB more than needed and slide up. A hint
 * the allocator honours is kept; if the padded request fails, the plain
 * one is made. (Newer kernels' thp_get_unmapped_area() does the same for
 * any file; up to 5.17 it did so only for DAX.)
 */
static unsigned long kvmfr_get_unmapped_area(struct file *filp,
					     unsigned long addr,
					     unsigned long len,
					     unsigned long pgoff,
					     unsigned long flags)
{
	unsigned long off = pgoff << PAGE_SHIFT;
	unsigned long ret;

	if (!IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE) || in_compat_syscall() ||
	    (flags & MAP_FIXED) || len < PMD_SIZE || len + PMD_SIZE < len)
		goto plain;
	ret = current->mm->get_unmapped_area(filp, addr, len + PMD_SIZE, pgoff,
					     flags);
	if (IS_ERR_VALUE(ret))
		goto plain;
	if (ret == addr)
		return ret;
	return ret + ((off - ret) & (PMD_SIZE - 1));
plain:
	return current->mm->get_unmapped_area(filp, addr, len, pgoff, flags);
}
#else
static unsigned long kvmfr_get_unmapped_area(struct file *filp,
					     unsigned long addr,
					     unsigned long len,
					     unsigned long pgoff,
					     unsigned long flags)
{
	return thp_get_unmapped_area(filp, addr, len, pgoff, flags);
}
#endif

/*
 * The size is the return value, and the ioctl syscall returns an int: a
 * device of 2 GiB or more cannot report its size this way (sysfs can).
 */
static long kvmfr_getsize(struct kvmfr_dev *kdev)
{
	if (kdev->size > INT_MAX)
		return -EOVERFLOW;
	return kdev->size;
}

static long kvmfr_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct kvmfr_dev *kdev = filp->private_data;
	struct kvmfr_dmabuf_create create;

	if (cmd != KVMFR_DMABUF_GETSIZE && cmd != KVMFR_DMABUF_CREATE)
		return -ENOTTY;
	if (READ_ONCE(kdev->dead))
		return -ENODEV;

	switch (cmd) {
	case KVMFR_DMABUF_GETSIZE:
		return kvmfr_getsize(kdev);
	case KVMFR_DMABUF_CREATE:
		/* A read-only opener must not get a writable dma-buf. */
		if (!(filp->f_mode & FMODE_WRITE))
			return -EACCES;
		if (copy_from_user(&create, (void __user *)arg, sizeof(create)))
			return -EFAULT;
		return kvmfr_create_dmabuf(kdev, create.flags, create.offset,
					   create.size);
	}
	return -ENOTTY;
}

#ifdef CONFIG_COMPAT
/* The i386 layout: the u64 members are only 4-byte aligned there. */
struct kvmfr_dmabuf_create32 {
	__u8 flags;
	compat_u64 offset;
	compat_u64 size;
};

#define KVMFR_DMABUF_CREATE32 _IOW('u', 0x42, struct kvmfr_dmabuf_create32)

static long kvmfr_compat_ioctl(struct file *filp, unsigned int cmd,
			       unsigned long arg)
{
	struct kvmfr_dev *kdev = filp->private_data;
	struct kvmfr_dmabuf_create32 create;

	switch (cmd) {
	case KVMFR_DMABUF_GETSIZE:
		if (READ_ONCE(kdev->dead))
			return -ENODEV;
		return kvmfr_getsize(kdev);
	case KVMFR_DMABUF_CREATE32:
		if (READ_ONCE(kdev->dead))
			return -ENODEV;
		if (!(filp->f_mode & FMODE_WRITE))
			return -EACCES;
		if (copy_from_user(&create, compat_ptr(arg), sizeof(create)))
			return -EFAULT;
		return kvmfr_create_dmabuf(kdev, create.flags, create.offset,
					   create.size);
	default:
		return kvmfr_ioctl(filp, cmd, (unsigned long)compat_ptr(arg));
	}
}
#endif

static const struct file_operations kvmfr_fops = {
	.owner = THIS_MODULE,
	.open = kvmfr_open,
	.release = kvmfr_release,
	.mmap = kvmfr_mmap,
	.get_unmapped_area = kvmfr_get_unmapped_area,
	.fsync = noop_fsync, /* msync(): the memory has no backing store */
	.unlocked_ioctl = kvmfr_ioctl,
#ifdef CONFIG_COMPAT
	.compat_ioctl = kvmfr_compat_ioctl,
#endif
};

/* ------------------------------------------------------------------------
 * Static (host RAM) devices
 */

static struct kvmfr_dev *kvmfr_static_create(unsigned int index, u32 mb)
{
	u64 size = (u64)mb << 20;
	struct kvmfr_dev *kdev;
	char name[32];
	int ret;

	if ((size >> PAGE_SHIFT) > totalram_pages()) {
		pr_err("static device %u: %u MiB is more than the RAM of this machine\n",
		       index, mb);
		return ERR_PTR(-ENOMEM);
	}

	kdev = kvmfr_dev_alloc(KVMFR_TYPE_STATIC, size, NULL);
	if (!kdev)
		return ERR_PTR(-ENOMEM);

	snprintf(name, sizeof(name), KBUILD_MODNAME "-static%u", index);
	ret = kvmfr_mem_alloc_ram(&kdev->mem, name, size >> PAGE_SHIFT);
	if (ret) {
		pr_err("static device %u: cannot allocate %u MiB\n", index, mb);
		goto put_dev;
	}

	ret = kvmfr_dev_add(kdev);
	if (ret)
		goto put_dev;
	dev_info(&kdev->dev, "%u MiB of RAM, %lu MiB of it in 2 MiB pages\n",
		 mb, kdev->mem.nr_huge >> (20 - PAGE_SHIFT));
	return kdev;

put_dev:
	put_device(&kdev->dev);
	return ERR_PTR(ret);
}

static void kvmfr_static_destroy_all(void)
{
	unsigned int i;

	if (!static_devs)
		return;
	for (i = static_sizes.count; i--;) {
		if (!static_devs[i])
			continue;
		kvmfr_dev_del(static_devs[i]);
		put_device(&static_devs[i]->dev);
	}
	kfree(static_devs);
	static_devs = NULL;
}

static int kvmfr_static_create_all(void)
{
	struct kvmfr_dev *kdev;
	unsigned int i;

	if (!static_sizes.count)
		return 0;

	static_devs =
		kcalloc(static_sizes.count, sizeof(*static_devs), GFP_KERNEL);
	if (!static_devs)
		return -ENOMEM;

	for (i = 0; i < static_sizes.count; i++) {
		kdev = kvmfr_static_create(i, static_sizes.mb[i]);
		if (IS_ERR(kdev)) {
			kvmfr_static_destroy_all();
			return PTR_ERR(kdev);
		}
		static_devs[i] = kdev;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * IVSHMEM PCI devices
 */

#define KVMFR_IVSHMEM_BAR 2

static int kvmfr_pci_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	resource_size_t start = pci_resource_start(pdev, KVMFR_IVSHMEM_BAR);
	resource_size_t size = pci_resource_len(pdev, KVMFR_IVSHMEM_BAR);
	struct kvmfr_dev *kdev;
	int ret;

	if (!IS_ENABLED(CONFIG_ZONE_DEVICE)) {
		dev_err(&pdev->dev,
			"kernel built without CONFIG_ZONE_DEVICE\n");
		return -ENODEV;
	}
	if (!size ||
	    !IS_ALIGNED(start | size, PAGES_PER_SUBSECTION << PAGE_SHIFT)) {
		dev_err(&pdev->dev,
			"BAR%d %pa+%pa: need a non-empty BAR aligned to %lu KiB\n",
			KVMFR_IVSHMEM_BAR, &start, &size,
			(PAGES_PER_SUBSECTION << PAGE_SHIFT) >> 10);
		return -ENODEV;
	}

	ret = pci_enable_device_mem(pdev);
	if (ret)
		return ret;

	ret = pci_request_region(pdev, KVMFR_IVSHMEM_BAR, KBUILD_MODNAME);
	if (ret)
		goto disable_device;

	ret = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret)
		goto release_region;

	kdev = kvmfr_dev_alloc(KVMFR_TYPE_PCI, size, &pdev->dev);
	if (!kdev) {
		ret = -ENOMEM;
		goto release_region;
	}
	kdev->pdev = pdev;

	ret = kvmfr_mem_map_bar(&kdev->mem, &pdev->dev, start, size);
	if (ret)
		goto put_dev;

	ret = kvmfr_dev_add(kdev);
	if (ret)
		goto unmap_bar;

	pci_set_drvdata(pdev, kdev);
	dev_dbg(&pdev->dev, "%s: %pa bytes at %pa\n", dev_name(&kdev->dev),
		&size, &start);
	return 0;

unmap_bar:
	kvmfr_mem_unmap_bar(&kdev->mem, &pdev->dev);
put_dev:
	put_device(&kdev->dev);
release_region:
	pci_release_region(pdev, KVMFR_IVSHMEM_BAR);
disable_device:
	pci_disable_device(pdev);
	return ret;
}

static void kvmfr_pci_remove(struct pci_dev *pdev)
{
	struct kvmfr_dev *kdev = pci_get_drvdata(pdev);

	kvmfr_dev_del(kdev);
	kvmfr_dev_revoke(kdev);
	kvmfr_dev_wait_fences(kdev);
	kvmfr_dev_wait_unused(kdev);
	/* No importer or vmap uses it any more; a later vmap gets a dummy. */
	kvmfr_mem_unmap_bar(&kdev->mem, &pdev->dev);
	/* Files and dma-bufs may still hold kdev; they only see it dead. */
	put_device(&kdev->dev);
	pci_release_region(pdev, KVMFR_IVSHMEM_BAR);
	pci_disable_device(pdev);
}

static const struct pci_device_id kvmfr_pci_ids[] = {
	{ PCI_DEVICE(PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1110) },
	{}
};
MODULE_DEVICE_TABLE(pci, kvmfr_pci_ids);

static struct pci_driver kvmfr_pci_driver = {
	.name = KBUILD_MODNAME,
	.id_table = kvmfr_pci_ids,
	.probe = kvmfr_pci_probe,
	.remove = kvmfr_pci_remove,
};

/* ------------------------------------------------------------------------
 * Module
 */

static int kvmfr_fs_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, KVMFR_FS_MAGIC) ? 0 : -ENOMEM;
}

static struct file_system_type kvmfr_fs_type = {
	.name = KBUILD_MODNAME,
	.init_fs_context = kvmfr_fs_init_fs_context,
	.kill_sb = kill_anon_super,
};

static int __init kvmfr_init(void)
{
	int ret;

	ret = class_register(&kvmfr_class);
	if (ret)
		return ret;

	ret = alloc_chrdev_region(&kvmfr_devt, 0, KVMFR_MAX_MINORS,
				  KBUILD_MODNAME);
	if (ret)
		goto unregister_class;

	kvmfr_mnt = kern_mount(&kvmfr_fs_type);
	if (IS_ERR(kvmfr_mnt)) {
		ret = PTR_ERR(kvmfr_mnt);
		goto unregister_chrdev;
	}

	ret = kvmfr_mem_init();
	if (ret)
		goto unmount;

	ret = kvmfr_static_create_all();
	if (ret)
		goto exit_mem;

	ret = pci_register_driver(&kvmfr_pci_driver);
	if (ret)
		goto destroy_static;
	return 0;

destroy_static:
	kvmfr_static_destroy_all();
exit_mem:
	kvmfr_mem_exit();
unmount:
	kern_unmount(kvmfr_mnt);
unregister_chrdev:
	unregister_chrdev_region(kvmfr_devt, KVMFR_MAX_MINORS);
unregister_class:
	class_unregister(&kvmfr_class);
	return ret;
}

static void __exit kvmfr_exit(void)
{
	pci_unregister_driver(&kvmfr_pci_driver);
	kvmfr_static_destroy_all();
	kvmfr_mem_exit();
	kern_unmount(kvmfr_mnt);
	unregister_chrdev_region(kvmfr_devt, KVMFR_MAX_MINORS);
	class_unregister(&kvmfr_class);
	ida_destroy(&kvmfr_minors);
}

module_init(kvmfr_init);
module_exit(kvmfr_exit);

MODULE_DESCRIPTION("Shared framebuffer devices (RAM and IVSHMEM) for VMs");
MODULE_LICENSE("GPL");
MODULE_VERSION(KVMFR_VERSION);
