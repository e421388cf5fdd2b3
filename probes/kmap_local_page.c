// SPDX-License-Identifier: GPL-2.0
/* kmap_local_page() (5.11+), the short-lived kernel mapping of a page. */
#include <linux/highmem.h>

void *probe(struct page *page);
void *probe(struct page *page)
{
	return kmap_local_page(page);
}
