// SPDX-License-Identifier: GPL-2.0
/*
 * sg_alloc_table_from_pages_segment() (5.15+); before it the same table came
 * from __sg_alloc_table_from_pages(), which returned the last entry.
 */
#include <linux/scatterlist.h>

int probe(struct sg_table *sgt, struct page **pages, unsigned int n);
int probe(struct sg_table *sgt, struct page **pages, unsigned int n)
{
	return sg_alloc_table_from_pages_segment(sgt, pages, n, 0,
						 n * PAGE_SIZE, PAGE_SIZE,
						 GFP_KERNEL);
}
