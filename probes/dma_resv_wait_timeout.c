// SPDX-License-Identifier: GPL-2.0
/* dma_resv_wait_timeout() (5.14+); it was dma_resv_wait_timeout_rcu(). */
#include <linux/dma-resv.h>

long probe(struct dma_resv *obj);
long probe(struct dma_resv *obj)
{
	return dma_resv_wait_timeout(obj, true, false, 1);
}
