// SPDX-License-Identifier: GPL-2.0
/*
 * dev_pagemap.vmemmap_shift (5.17+): ZONE_DEVICE memory as compound pages,
 * which lets a BAR's 2 MiB folios be mapped with one PMD each.
 */
#include <linux/memremap.h>

void probe(struct dev_pagemap *pgmap);
void probe(struct dev_pagemap *pgmap)
{
	pgmap->vmemmap_shift = PMD_SHIFT - PAGE_SHIFT;
}
