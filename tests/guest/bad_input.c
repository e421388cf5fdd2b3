// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input to the device ioctls from a 64-bit process: each fails with its
 * precise errno and nothing else happens (no fd, no dma-buf, no reference).
 */
#include "bad_input_cases.h"

/* The i386 number of CREATE is not a 64-bit process's ioctl. */
static int i386_number(struct kvmfr_dev *d)
{
	unsigned char raw[20];
	uint64_t off = 0, size = kt_page;
	int fd, res;

	memset(raw, 0, sizeof(raw));
	memcpy(raw + 4, &off, 8);
	memcpy(raw + 12, &size, 8);
	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	res = bi_ioctl_fails(fd, KVMFR_CREATE_NR_I386, raw, ENOTTY);
	kt_close(fd);
	return res;
}

static const struct kt_case cases[] = {
	BI_CASES,
	{ "the i386 CREATE number fails with ENOTTY", i386_number, KT_ALL },
	BI_LAST_CASE,
};

int main(void)
{
	kt_init();
	kt_plan(kt_count_cases(cases, KT_ARRAY_SIZE(cases)));
	bi_refcnt_base = kt_module_refcnt();
	kt_run_cases(cases, KT_ARRAY_SIZE(cases));
	return kt_exit();
}
