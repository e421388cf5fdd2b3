// SPDX-License-Identifier: GPL-2.0
/*
 * cc_platform_has() (5.16+): whether this is a confidential-computing guest
 * whose memory is encrypted (AMD SEV, Intel TDX). Before it, x86 asked
 * mem_encrypt_active().
 */
#include <linux/cc_platform.h>

bool probe(void);
bool probe(void)
{
	return cc_platform_has(CC_ATTR_GUEST_MEM_ENCRYPT);
}
