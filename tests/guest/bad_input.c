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

/*
 * An fd opened read-only can read the memory but must not hand out a
 * writable dma-buf of it: CREATE fails with EACCES. GETSIZE still works.
 */
static int readonly_fd(struct kvmfr_dev *d)
{
	long long base = kt_dmabufs(d);
	int fd, res = KT_PASS;

	fd = open(d->node, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kt_fail("open O_RDONLY: %s", kt_errname(errno));
	if (!kt_create_fails(fd, 0, 0, kt_page, EACCES))
		res = KT_FAIL;
	if (kt_getsize(fd) != (long long)d->size)
		res = kt_fail("GETSIZE on an O_RDONLY fd: %lld", kt_getsize(fd));
	kt_close(fd);
	if (kt_dmabufs(d) != base)
		res = kt_fail("dma-buf count %lld, want %lld", kt_dmabufs(d),
			      base);
	return res;
}

static const struct kt_case cases[] = {
	BI_CASES,
	{ "the i386 CREATE number fails with ENOTTY", i386_number, KT_ALL },
	{ "CREATE on an O_RDONLY fd fails with EACCES", readonly_fd, KT_ALL },
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
