// SPDX-License-Identifier: GPL-2.0
/* struct iosys_map (5.18+), the dma-buf vmap op's argument since. */
#include <linux/iosys-map.h>

void probe(struct iosys_map *map, void *vaddr);
void probe(struct iosys_map *map, void *vaddr)
{
	iosys_map_set_vaddr(map, vaddr);
}
