// SPDX-License-Identifier: GPL-2.0
/*
 * Floor (5.10): struct dev_pagemap describes its memory with a struct range
 * and nr_range, which kvmfr_pci_probe() fills.
 */
#include <linux/memremap.h>

void probe(struct dev_pagemap *pgmap);
void probe(struct dev_pagemap *pgmap)
{
	pgmap->type = MEMORY_DEVICE_GENERIC;
	pgmap->range.start = 0;
	pgmap->range.end = PAGE_SIZE - 1;
	pgmap->nr_range = 1;
}
