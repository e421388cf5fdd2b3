// SPDX-License-Identifier: GPL-2.0
/* dma_buf_map_attachment_unlocked() (6.1+): takes the reservation lock. */
#include <linux/dma-buf.h>

struct sg_table *probe(struct dma_buf_attachment *attach);
struct sg_table *probe(struct dma_buf_attachment *attach)
{
	return dma_buf_map_attachment_unlocked(attach, DMA_BIDIRECTIONAL);
}
