// SPDX-License-Identifier: GPL-2.0
/*
 * mm->get_unmapped_area, the address allocator of a process (up to 6.8; then
 * mm_get_unmapped_area()). Up to 5.17 thp_get_unmapped_area() aligned only
 * DAX files, so kvmfr pads and aligns through this hook itself.
 */
#include <linux/mm_types.h>
#include <linux/sched.h>

unsigned long probe(struct file *file, unsigned long addr, unsigned long len,
		    unsigned long pgoff, unsigned long flags);
unsigned long probe(struct file *file, unsigned long addr, unsigned long len,
		    unsigned long pgoff, unsigned long flags)
{
	return current->mm->get_unmapped_area(file, addr, len, pgoff, flags);
}
