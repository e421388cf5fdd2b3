// SPDX-License-Identifier: GPL-2.0
/*
 * vm_operations_struct.huge_fault(vmf, enum page_entry_size) (up to 6.5;
 * then an order) and vmf_insert_pfn_pmd(vmf, pfn_t, write): how a kernel
 * without compound ZONE_DEVICE pages maps a BAR's 2 MiB blocks with
 * devmap PMDs, as device-dax does there.
 */
#include <linux/mm.h>
#include <linux/huge_mm.h>
#include <linux/pfn_t.h>

static vm_fault_t probe_fault(struct vm_fault *vmf,
			      enum page_entry_size pe_size)
{
	if (pe_size != PE_SIZE_PMD)
		return VM_FAULT_FALLBACK;
	return vmf_insert_pfn_pmd(vmf, __pfn_to_pfn_t(0, PFN_DEV | PFN_MAP),
				  true);
}

extern const struct vm_operations_struct probe_ops;
const struct vm_operations_struct probe_ops = { .huge_fault = probe_fault };
