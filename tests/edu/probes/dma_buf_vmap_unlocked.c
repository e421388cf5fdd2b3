// SPDX-License-Identifier: GPL-2.0
/*
 * dma_buf_vmap_unlocked() (6.2+); since then dma_buf_vmap() wants the
 * reservation lock held, before it took a lock of its own.
 */
#include <linux/dma-buf.h>

int probe(struct dma_buf *dmabuf, struct iosys_map *map);
int probe(struct dma_buf *dmabuf, struct iosys_map *map)
{
	return dma_buf_vmap_unlocked(dmabuf, map);
}
