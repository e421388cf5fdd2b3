/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The memory behind a kvmfr device, for kvmfr.c: host RAM (a file on a
 * private tmpfs mount) or an IVSHMEM BAR (ZONE_DEVICE pages), both seen as
 * an array of struct pages in device order. kvmfr.c maps, exports and
 * revokes them without knowing which kind it has.
 */
#ifndef KVMFR_MEM_H
#define KVMFR_MEM_H

#include <linux/memremap.h>
#include <linux/mm.h>

#define KVMFR_PMD_PAGES (PMD_SIZE >> PAGE_SHIFT)

struct kvmfr_mem {
	struct page **pages; /* npages pages, in device order */
	unsigned long npages;
	unsigned long nr_huge; /* pages in PMD-sized folios */
	/* a BAR without compound pages whose 2 MiB blocks get devmap PMDs */
	bool devmap_pmds;
	bool bar; /* a PCI BAR, shared with the host; else RAM */
	/* a BAR whose direct map is not to be used (bar_direct_map=) */
	bool no_direct_map;

	/* RAM: the file, of which mem holds one reference per folio */
	struct file *shm;

	/* BAR: its struct pages and its kernel mapping (until unmapped) */
	struct dev_pagemap pgmap;
	void *kaddr;
};

int kvmfr_mem_init(void);
void kvmfr_mem_exit(void);

int kvmfr_mem_alloc_ram(struct kvmfr_mem *mem, const char *name,
			unsigned long npages);
int kvmfr_mem_map_bar(struct kvmfr_mem *mem, struct device *dev,
		      phys_addr_t start, resource_size_t size);
void kvmfr_mem_unmap_bar(struct kvmfr_mem *mem, struct device *dev);
void kvmfr_mem_free(struct kvmfr_mem *mem);

bool kvmfr_mem_pmd_folios(const struct kvmfr_mem *mem);
vm_fault_t kvmfr_mem_insert_pmd(struct kvmfr_mem *mem, struct vm_fault *vmf,
				pgoff_t pgoff);
bool kvmfr_mem_direct_map_ok(const struct kvmfr_mem *mem);
int kvmfr_mem_access(struct kvmfr_mem *mem, u64 offset, void *buf, int len,
		     bool write);
pgprot_t kvmfr_mem_user_prot(const struct kvmfr_mem *mem, pgprot_t prot);
void *kvmfr_mem_vmap(struct kvmfr_mem *mem, pgoff_t first, unsigned long n,
		     bool *borrowed);
void kvmfr_mem_fault_barrier(struct kvmfr_mem *mem);

#endif
