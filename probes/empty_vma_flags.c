// SPDX-License-Identifier: GPL-2.0
/*
 * vma_flags_t (7.x), the type shmem_file_setup() and friends take their
 * flags in; before it they took an unsigned long.
 */
#include <linux/mm_types.h>

vma_flags_t probe(void);
vma_flags_t probe(void)
{
	return EMPTY_VMA_FLAGS;
}
