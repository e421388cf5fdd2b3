// SPDX-License-Identifier: GPL-2.0
/*
 * The importer's dma_buf_attach_ops.invalidate_mappings (7.1+), called
 * move_notify before.
 */
#include <linux/dma-buf.h>

void probe(struct dma_buf_attachment *attach);
void probe(struct dma_buf_attachment *attach)
{
	attach->importer_ops->invalidate_mappings(attach);
}
