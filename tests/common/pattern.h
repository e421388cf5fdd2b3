/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Data patterns shared by the host side of the harness and the guest suite.
 *
 * Every 64-bit word of a device is a pure function of (seed, word index), so
 * either side can check any range it did not write without exchanging data.
 * The host fills each ivshmem backing file with KVMFR_HOST_SEED(i) before
 * boot; the guest checks it, and at the end writes KVMFR_GUEST_SEED(i), which
 * the host checks after poweroff. i is the ivshmem device's index in the
 * harness's KVMFR_PCI list.
 */
#ifndef KVMFR_TEST_PATTERN_H
#define KVMFR_TEST_PATTERN_H

#include <stdint.h>

#define KVMFR_HOST_SEED(i)	(0x686f737400000000ull + (uint64_t)(i))
#define KVMFR_GUEST_SEED(i)	(0x6775657300000000ull + (uint64_t)(i))

/* splitmix64 of (seed, index): cheap, and no two nearby words are equal */
static inline uint64_t kvmfr_pattern_word(uint64_t seed, uint64_t index)
{
	uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fill or check words [first, first + count) of buf (buf[0] is word first). */
static inline void kvmfr_pattern_fill(uint64_t *buf, uint64_t seed,
				      uint64_t first, uint64_t count)
{
	for (uint64_t i = 0; i < count; i++)
		buf[i] = kvmfr_pattern_word(seed, first + i);
}

/* Returns the index of the first mismatching word, or count if all match. */
static inline uint64_t kvmfr_pattern_check(const volatile uint64_t *buf,
					   uint64_t seed, uint64_t first,
					   uint64_t count)
{
	for (uint64_t i = 0; i < count; i++)
		if (buf[i] != kvmfr_pattern_word(seed, first + i))
			return i;
	return count;
}

#endif
