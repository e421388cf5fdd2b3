// SPDX-License-Identifier: GPL-2.0
/*
 * kvmfr_mem - the memory behind a kvmfr device (kvmfr_mem.h).
 *
 * RAM: a file on a private tmpfs mount with huge=within_size, every page
 * allocated and zeroed at creation, in 2 MiB folios where the allocator
 * has them. The memory holds one reference on each folio for its whole
 * life, so that nothing swaps, migrates or splits a folio behind a user's
 * mapping or pin; the folios are GFP_HIGHUSER (never ZONE_MOVABLE or CMA,
 * which a long-term pin would first migrate out of) and unevictable.
 *
 * BAR: the IVSHMEM BAR gets struct pages from memremap_pages(), as 2 MiB
 * compound pages where the kernel can make them and the BAR is aligned,
 * and a kernel mapping (memremap) for vmaps. kvmfr.c takes users off the
 * memory before kvmfr_mem_unmap_bar() takes the pages away.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pagemap.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/vmalloc.h>

#include "kvmfr_config.h"
#include "kvmfr_mem.h"

#ifdef KVMFR_HAVE_HUGE_FAULT_PE_SIZE
#include <linux/huge_mm.h>
#include <linux/pfn_t.h>
#endif

#ifdef KVMFR_HAVE_CC_PLATFORM_HAS
#include <linux/cc_platform.h>
#else
#include <linux/mem_encrypt.h>
#endif

#ifndef KVMFR_HAVE_KMAP_LOCAL_PAGE
/* Before 5.11. Without highmem (64-bit) every page is in the direct map. */
static inline void *kmap_local_page(struct page *page)
{
	BUILD_BUG_ON(IS_ENABLED(CONFIG_HIGHMEM));
	return page_address(page);
}

static inline void kunmap_local(const void *addr)
{
}
#endif

/* No flags for shmem_file_setup*(): not VM_NORESERVE, account it all. */
#ifdef KVMFR_HAVE_EMPTY_VMA_FLAGS
#define KVMFR_SHMEM_FLAGS EMPTY_VMA_FLAGS
#else
#define KVMFR_SHMEM_FLAGS 0
#endif

static struct vfsmount *kvmfr_shm_mnt; /* tmpfs, huge=within_size */

/*
 * A private tmpfs for RAM, asking for 2 MiB folios wherever they fit
 * inside the file (as i915's and DRM's huge mounts do). Without THP tmpfs
 * refuses the option: the plain mount gives 4 KiB pages.
 */
int kvmfr_mem_init(void)
{
	struct file_system_type *tmpfs = get_fs_type("tmpfs");
	char opts[] = "huge=within_size"; /* parsed in place */
	struct vfsmount *mnt;

	if (!tmpfs)
		return -ENODEV;
	mnt = vfs_kern_mount(tmpfs, SB_KERNMOUNT, KBUILD_MODNAME, opts);
	if (IS_ERR(mnt))
		mnt = vfs_kern_mount(tmpfs, SB_KERNMOUNT, KBUILD_MODNAME, NULL);
	if (IS_ERR(mnt))
		return PTR_ERR(mnt);
	kvmfr_shm_mnt = mnt;
	return 0;
}

void kvmfr_mem_exit(void)
{
	kern_unmount(kvmfr_shm_mnt);
}

/*
 * Number of pages from @page to the end of its folio (compound page): a
 * folio is held, locked and released as one, through any of its pages.
 */
static unsigned long kvmfr_folio_tail(struct page *page)
{
	struct page *head = compound_head(page);

	return compound_nr(head) - (page_to_pfn(page) - page_to_pfn(head));
}

/* RAM of @npages pages; kvmfr_mem_free() undoes a partial one too. */
int kvmfr_mem_alloc_ram(struct kvmfr_mem *mem, const char *name,
			unsigned long npages)
{
	const gfp_t gfp = GFP_HIGHUSER | __GFP_RETRY_MAYFAIL;
	struct address_space *mapping;
	unsigned long i, j, n;
	struct page *page;

	mem->bar = false;
	mem->no_direct_map = false;
	mem->npages = 0;
	mem->nr_huge = 0;
	mem->devmap_pmds = false;
	mem->pages = kvmalloc_array(npages, sizeof(*mem->pages), GFP_KERNEL);
	if (!mem->pages)
		return -ENOMEM;

	mem->shm = shmem_file_setup_with_mnt(kvmfr_shm_mnt, name,
					     (loff_t)npages << PAGE_SHIFT,
					     KVMFR_SHMEM_FLAGS);
	if (IS_ERR(mem->shm)) {
		int ret = PTR_ERR(mem->shm);

		mem->shm = NULL;
		return ret;
	}
	mapping = mem->shm->f_mapping;
	mapping_set_gfp_mask(mapping, GFP_HIGHUSER);
	mapping_set_unevictable(mapping);

	for (i = 0; i < npages; i += n) {
		page = shmem_read_mapping_page_gfp(mapping, i, gfp);
		if (IS_ERR(page))
			return PTR_ERR(page);
		/* One reference on the folio, for the pages up to its end. */
		n = min(kvmfr_folio_tail(page), npages - i);
		for (j = 0; j < n; j++)
			mem->pages[i + j] = pfn_to_page(page_to_pfn(page) + j);
		if (compound_nr(compound_head(page)) >= KVMFR_PMD_PAGES)
			mem->nr_huge += n;
		mem->npages = i + n;
		cond_resched();
	}
	return 0;
}

/*
 * Whether this is a guest whose memory the CPU encrypts (AMD SEV, Intel
 * TDX). Its kernel maps the BAR's struct pages (the direct map of
 * memremap_pages) encrypted, while the host shares the BAR in the clear:
 * whatever reached the memory through that alias (O_DIRECT, process_vm_*,
 * swiotlb bouncing, vmsplice) would read and write ciphertext. Before
 * 5.16 (no cc_platform_has) any memory encryption counts.
 */
static bool kvmfr_mem_guest_encrypted(void)
{
#ifdef KVMFR_HAVE_CC_PLATFORM_HAS
	return cc_platform_has(CC_ATTR_GUEST_MEM_ENCRYPT);
#else
	return mem_encrypt_active();
#endif
}

/*
 * bar_direct_map=auto|off: whether the kernel may reach IVSHMEM memory
 * through its struct pages' direct map (GUP users such as O_DIRECT,
 * process_vm_readv, vmsplice and VFIO pins; dma-buf attachments). auto:
 * yes, except in a memory-encrypted guest; off: never, e.g. where that
 * alias has another memory type than the user mappings (docs/design.md).
 * Read when a device is probed.
 */
enum { KVMFR_DIRECT_MAP_AUTO, KVMFR_DIRECT_MAP_OFF };
static const char *const kvmfr_direct_map_names[] = { "auto", "off" };
static int kvmfr_direct_map = KVMFR_DIRECT_MAP_AUTO;

static int kvmfr_direct_map_set(const char *val, const struct kernel_param *kp)
{
	int i = sysfs_match_string(kvmfr_direct_map_names, val);

	if (i < 0)
		return -EINVAL;
	WRITE_ONCE(kvmfr_direct_map, i);
	return 0;
}

static int kvmfr_direct_map_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n",
			  kvmfr_direct_map_names[READ_ONCE(kvmfr_direct_map)]);
}

static const struct kernel_param_ops kvmfr_direct_map_ops = {
	.set = kvmfr_direct_map_set,
	.get = kvmfr_direct_map_get,
};
module_param_cb(bar_direct_map, &kvmfr_direct_map_ops, NULL, 0644);
MODULE_PARM_DESC(bar_direct_map,
		 "IVSHMEM by struct pages: auto (not if encrypted) or off");

/*
 * The BAR at @start of @size bytes, for PCI device @dev: its kernel mapping
 * and its struct pages. Nothing is left behind on failure.
 */
int kvmfr_mem_map_bar(struct kvmfr_mem *mem, struct device *dev,
		      phys_addr_t start, resource_size_t size)
{
	unsigned long i, npages = size >> PAGE_SHIFT;
	struct page *first;
	void *addr;
	bool off;
	int ret;

	mem->bar = true;
	off = READ_ONCE(kvmfr_direct_map) == KVMFR_DIRECT_MAP_OFF;
	mem->no_direct_map = off || kvmfr_mem_guest_encrypted();
	mem->npages = 0;
	mem->nr_huge = 0;
	mem->devmap_pmds = false;
	mem->pages = kvmalloc_array(npages, sizeof(*mem->pages), GFP_KERNEL);
	if (!mem->pages)
		return -ENOMEM;

	/* Write-back kernel mapping for vmap; decrypted, being MMIO. */
	mem->kaddr = memremap(start, size, MEMREMAP_WB);
	if (!mem->kaddr) {
		ret = -ENOMEM;
		goto free_pages;
	}

	mem->pgmap.type = MEMORY_DEVICE_GENERIC;
	mem->pgmap.range.start = start;
	mem->pgmap.range.end = start + size - 1;
	mem->pgmap.nr_range = 1;
	if (IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE) &&
	    IS_ALIGNED(start | size, PMD_SIZE)) {
#if defined(KVMFR_HAVE_DEV_PAGEMAP_VMEMMAP_SHIFT)
		/* 2 MiB compound pages, so that user mappings can use PMDs. */
		mem->pgmap.vmemmap_shift = PMD_SHIFT - PAGE_SHIFT;
		mem->nr_huge = npages;
#elif defined(KVMFR_HAVE_HUGE_FAULT_PE_SIZE)
		/* 4 KiB pages, mapped 2 MiB at a time by kvmfr_mem_insert_pmd */
		mem->devmap_pmds = IS_ENABLED(CONFIG_ARCH_HAS_PTE_DEVMAP);
#endif
	}
	addr = memremap_pages(&mem->pgmap, dev_to_node(dev));
	if (IS_ERR(addr)) {
		ret = PTR_ERR(addr);
		dev_err(dev, "cannot create struct pages for the BAR: %d\n",
			ret);
		goto unmap_kaddr;
	}

	first = pfn_to_page(PHYS_PFN(start));
	for (i = 0; i < npages; i++)
		mem->pages[i] = pfn_to_page(page_to_pfn(first) + i);
	mem->npages = npages;
	return 0;

unmap_kaddr:
	memunmap(mem->kaddr);
	mem->kaddr = NULL;
free_pages:
	kvfree(mem->pages);
	mem->pages = NULL;
	return ret;
}

/* After the user mappings are zapped only transient pins can remain. */
static void kvmfr_mem_wait_unpinned(struct kvmfr_mem *mem, struct device *dev)
{
	unsigned int waited = 0;
	unsigned long i, busy;
	struct page *head;

	for (;;) {
		busy = 0;
		/* Pins of a compound page count on its head. */
		for (i = 0; i < mem->npages; i += kvmfr_folio_tail(head)) {
			head = compound_head(mem->pages[i]);
			busy += page_ref_count(head) != 1;
		}
		if (!busy)
			return;
		if (waited++ == 50)
			dev_info(dev, "waiting for %lu pinned pages\n", busy);
		msleep(100);
	}
}

/*
 * Take the BAR away. The caller has cut every user off it: no mapping, no
 * importer and no vmap is left, only transient page pins may be.
 */
void kvmfr_mem_unmap_bar(struct kvmfr_mem *mem, struct device *dev)
{
	memunmap(mem->kaddr);
	mem->kaddr = NULL;
	kvmfr_mem_wait_unpinned(mem, dev);
	memunmap_pages(&mem->pgmap);
}

/* At the last reference to the device: what is left of the memory. */
void kvmfr_mem_free(struct kvmfr_mem *mem)
{
	unsigned long i;

	/*
	 * RAM: drop the reference held on each folio; a page still pinned
	 * by someone is freed by its last put, after the file is gone. A
	 * BAR's pages went with kvmfr_mem_unmap_bar().
	 */
	if (!mem->bar)
		for (i = 0; i < mem->npages;
		     i += kvmfr_folio_tail(mem->pages[i]))
			put_page(mem->pages[i]);
	kvfree(mem->pages);
	mem->pages = NULL;
	mem->npages = 0;
	if (mem->shm)
		fput(mem->shm);
	mem->shm = NULL;
}

/*
 * Whether the memory comes in folios the core can map with PMDs: RAM with
 * at least one 2 MiB folio (each folio then decides: the core maps a
 * small one a page per fault), a BAR only when its struct pages are 2 MiB
 * compound pages. RAM without any (shmem THP denied, or a load on a
 * fragmented machine) is better off with 2 MiB windows of PTEs per fault.
 */
bool kvmfr_mem_pmd_folios(const struct kvmfr_mem *mem)
{
	if (!IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE))
		return false;
	return mem->nr_huge != 0;
}

/*
 * Map the 2 MiB of a BAR at device page @pgoff (2 MiB aligned) at the PMD
 * of @vmf, where the kernel has no compound ZONE_DEVICE pages: a devmap
 * PMD, as device-dax makes there. It holds no page reference (the VMA is
 * VM_MIXEDMAP, so zap and fork treat it as special); GUP still pins the
 * 4 KiB pages under it, through their dev_pagemap. Its memory type comes
 * from the BAR's PAT reservation (memremap_pages), whose effective type is
 * the 4 KiB mappings' too. The caller keeps removal out (kdev->lock).
 */
vm_fault_t kvmfr_mem_insert_pmd(struct kvmfr_mem *mem, struct vm_fault *vmf,
				pgoff_t pgoff)
{
#ifdef KVMFR_HAVE_HUGE_FAULT_PE_SIZE
	unsigned long pfn;

	if (!mem->devmap_pmds || !IS_ALIGNED(pgoff, KVMFR_PMD_PAGES) ||
	    pgoff + KVMFR_PMD_PAGES > mem->npages)
		return VM_FAULT_FALLBACK;
	pfn = page_to_pfn(mem->pages[pgoff]);
	return vmf_insert_pfn_pmd(vmf, __pfn_to_pfn_t(pfn, PFN_DEV | PFN_MAP),
				  vmf->flags & FAULT_FLAG_WRITE);
#else
	return VM_FAULT_FALLBACK;
#endif
}

/*
 * Whether the kernel may reach the memory through its struct pages (GUP,
 * DMA mapping): not a BAR probed with bar_direct_map=off or in a
 * memory-encrypted guest. kvmfr_mem_access() and kvmfr_mem_vmap() work
 * either way.
 */
bool kvmfr_mem_direct_map_ok(const struct kvmfr_mem *mem)
{
	return !mem->no_direct_map;
}

/*
 * Copy @len bytes at byte @offset of the memory to (@write) or from @buf,
 * through mappings that are right in every guest: the BAR's own kernel
 * mapping (decrypted, being MMIO), or each RAM page's. The caller keeps
 * the memory from going away meanwhile. Returns @len.
 */
int kvmfr_mem_access(struct kvmfr_mem *mem, u64 offset, void *buf, int len,
		     bool write)
{
	int done = 0, n;
	void *p;

	while (done < len) {
		n = min_t(u64, len - done, PAGE_SIZE - offset_in_page(offset));
		if (mem->bar)
			p = mem->kaddr + offset;
		else
			p = kmap_local_page(mem->pages[offset >> PAGE_SHIFT]) +
			    offset_in_page(offset);
		if (write)
			memcpy(p, buf + done, n);
		else
			memcpy(buf + done, p, n);
		if (!mem->bar)
			kunmap_local(p);
		done += n;
		offset += n;
	}
	return len;
}

/* A BAR is shared with the host: never encrypted (SEV). */
pgprot_t kvmfr_mem_user_prot(const struct kvmfr_mem *mem, pgprot_t prot)
{
	return mem->bar ? pgprot_decrypted(prot) : prot;
}

/*
 * A kernel mapping of the pages [@first, @first + @n): for RAM a new vmap
 * (the caller vunmaps it), for a BAR part of its kernel mapping, which
 * stays until kvmfr_mem_unmap_bar() (*@borrowed set: nothing to undo, but
 * the caller must keep the BAR's removal waiting until it is done with it).
 */
void *kvmfr_mem_vmap(struct kvmfr_mem *mem, pgoff_t first, unsigned long n,
		     bool *borrowed)
{
	*borrowed = mem->bar;
	if (mem->bar)
		return mem->kaddr + (first << PAGE_SHIFT);
	return vmap(mem->pages + first, n, VM_MAP, PAGE_KERNEL);
}

/*
 * Wait for faults that saw the memory available to finish mapping it: such
 * a fault holds its folio locked until its entry is in place.
 */
void kvmfr_mem_fault_barrier(struct kvmfr_mem *mem)
{
	unsigned long i;

	for (i = 0; i < mem->npages; i += kvmfr_folio_tail(mem->pages[i])) {
		lock_page(mem->pages[i]);
		unlock_page(mem->pages[i]);
	}
}
