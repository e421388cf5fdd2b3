// SPDX-License-Identifier: GPL-2.0
/*
 * struct dma_buf_map (5.11 to 5.17), the dma-buf vmap op's argument until
 * it became struct iosys_map. Before it (5.10) the op returned the address.
 */
#include <linux/dma-buf-map.h>

void probe(struct dma_buf_map *map, void *vaddr);
void probe(struct dma_buf_map *map, void *vaddr)
{
	dma_buf_map_set_vaddr(map, vaddr);
}
