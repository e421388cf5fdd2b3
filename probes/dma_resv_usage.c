// SPDX-License-Identifier: GPL-2.0
/*
 * enum dma_resv_usage (5.19+): a reservation wait names the class of fences
 * to wait for; before, it took a bool "all fences or only the exclusive one".
 */
#include <linux/dma-resv.h>

long probe(struct dma_resv *obj);
long probe(struct dma_resv *obj)
{
	return dma_resv_wait_timeout(obj, DMA_RESV_USAGE_BOOKKEEP, false, 1);
}
