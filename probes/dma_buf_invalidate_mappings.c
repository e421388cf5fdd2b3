// SPDX-License-Identifier: GPL-2.0
/* dma_buf_invalidate_mappings() (7.1+), dma_buf_move_notify() before. */
#include <linux/dma-buf.h>

void probe(struct dma_buf *dmabuf);
void probe(struct dma_buf *dmabuf)
{
	dma_buf_invalidate_mappings(dmabuf);
}
