// SPDX-License-Identifier: GPL-2.0
/*
 * enum dma_resv_usage (5.19+): what to wait for is a usage class; before it,
 * a bool wait_all (every fence, or only the exclusive one).
 */
#include <linux/dma-resv.h>

long probe(struct dma_resv *obj);
long probe(struct dma_resv *obj)
{
	return dma_resv_wait_timeout(obj, DMA_RESV_USAGE_READ, true, 1);
}
