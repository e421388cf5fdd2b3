/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The bad-input table of KVMFR_DMABUF_CREATE and unknown ioctls, shared by
 * bad_input.c (64-bit, native ioctl) and compat32.c (i386, compat_ioctl):
 * every bad argument fails with its precise errno and leaves nothing behind.
 */
#ifndef KVMFR_BAD_INPUT_CASES_H
#define KVMFR_BAD_INPUT_CASES_H

#include "kvmfr_test.h"

/* Every CREATE of list must fail with want. */
struct bi_arg {
	unsigned int flags;
	uint64_t off, size;
};

static int bi_expect(struct kvmfr_dev *d, const struct bi_arg *list, int n,
		     int want)
{
	int fd, i, res = KT_PASS;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	for (i = 0; i < n; i++)
		if (!kt_create_fails(fd, list[i].flags, list[i].off,
				     list[i].size, want))
			res = KT_FAIL;
	kt_close(fd);
	return res;
}

#define BI_EXPECT(d, want, ...) ({					\
	const struct bi_arg __l[] = { __VA_ARGS__ };			\
	bi_expect(d, __l, KT_ARRAY_SIZE(__l), want);			\
})

static int bi_size_zero(struct kvmfr_dev *d)
{
	uint64_t p = kt_page;

	return BI_EXPECT(d, EINVAL, { 0, 0, 0 }, { 0, p, 0 },
			 { KVMFR_DMABUF_FLAG_CLOEXEC, 0, 0 });
}

static int bi_unaligned_offset(struct kvmfr_dev *d)
{
	uint64_t p = kt_page;

	return BI_EXPECT(d, EINVAL, { 0, 1, p }, { 0, p / 2, p },
			 { 0, p - 1, p }, { 0, p + 8, p });
}

static int bi_unaligned_size(struct kvmfr_dev *d)
{
	uint64_t p = kt_page;

	return BI_EXPECT(d, EINVAL, { 0, 0, 1 }, { 0, 0, p - 1 },
			 { 0, 0, p + 1 }, { 0, p, 2 * p - 8 });
}

static int bi_past_end(struct kvmfr_dev *d)
{
	uint64_t p = kt_page, s = d->size;

	return BI_EXPECT(d, EINVAL, { 0, 0, s + p }, { 0, s - p, 2 * p },
			 { 0, s, p }, { 0, s + p, p }, { 0, 0, 2 * s },
			 { 0, s / 2, s });
}

/* A kernel truncating offset or size to 32 bits would accept these. */
static int bi_high_bits(struct kvmfr_dev *d)
{
	uint64_t p = kt_page;

	return BI_EXPECT(d, EINVAL, { 0, 1ull << 32, p },
			 { 0, (1ull << 32) + p, p }, { 0, 0, (1ull << 32) + p },
			 { 0, 1ull << 63, p }, { 0, 0, 1ull << 63 });
}

/* offset + size wraps around 2^64 to something inside the device. */
static int bi_overflow(struct kvmfr_dev *d)
{
	uint64_t p = kt_page, mask = ~(uint64_t)(kt_page - 1), s = d->size;

	return BI_EXPECT(d, EINVAL, { 0, p, ~0ull & mask },
			 { 0, p, -p }, { 0, -p, p }, { 0, ~0ull & mask, 2 * p },
			 { 0, s - p, 2 * p - (s - p) });
}

static int bi_unknown_flags(struct kvmfr_dev *d)
{
	uint64_t p = kt_page;

	return BI_EXPECT(d, EINVAL, { 0x2, 0, p }, { 0x80, 0, p }, { 0x3, 0, p },
			 { 0xfe, 0, p }, { 0x81, 0, p });
}

static int bi_ioctl_fails(int fd, unsigned long cmd, void *arg, int want)
{
	char what[64];
	int r, e;

	errno = 0;
	r = ioctl(fd, cmd, arg);
	e = errno;
	if (r >= 0 && (cmd & 0xffff) == (KVMFR_DMABUF_CREATE & 0xffff))
		close(r);
	snprintf(what, sizeof(what), "ioctl 0x%lx", cmd);
	return kt_errno_is(r, e, want, what) ? KT_PASS : KT_FAIL;
}

static int bi_null_arg(struct kvmfr_dev *d)
{
	int fd, res;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	res = bi_ioctl_fails(fd, KVMFR_DMABUF_CREATE, NULL, EFAULT);
	kt_close(fd);
	return res;
}

/* The argument lies in memory that was unmapped. */
static int bi_unmapped_arg(struct kvmfr_dev *d)
{
	void *p;
	int fd, res;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = mmap(NULL, 2 * kt_page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		kt_close(fd);
		return kt_fail("anonymous mmap: %s", kt_errname(errno));
	}
	munmap(p, 2 * kt_page);
	res = bi_ioctl_fails(fd, KVMFR_DMABUF_CREATE, (char *)p + 64, EFAULT);
	kt_close(fd);
	return res;
}

/* The argument starts in a mapped page and ends in an unmapped one. */
static int bi_straddling_arg(struct kvmfr_dev *d)
{
	char *p;
	int fd, res;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = mmap(NULL, 2 * kt_page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		kt_close(fd);
		return kt_fail("anonymous mmap: %s", kt_errname(errno));
	}
	munmap(p + kt_page, kt_page);
	memset(p, 0, kt_page);	/* flags 0, offset 0 as far as mapped */
	res = bi_ioctl_fails(fd, KVMFR_DMABUF_CREATE, p + kt_page - 8, EFAULT);
	munmap(p, kt_page);
	kt_close(fd);
	return res;
}

/* CREATE only reads its argument: read-only memory is fine. */
static int bi_readonly_arg(struct kvmfr_dev *d)
{
	struct kvmfr_dmabuf_create *c;
	int fd, db, res = KT_PASS;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	c = mmap(NULL, kt_page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED) {
		kt_close(fd);
		return kt_fail("anonymous mmap: %s", kt_errname(errno));
	}
	c->flags = KVMFR_DMABUF_FLAG_CLOEXEC;
	c->offset = 0;
	c->size = kt_page;
	mprotect(c, kt_page, PROT_READ);
	db = ioctl(fd, KVMFR_DMABUF_CREATE, c);
	if (db < 0)
		res = kt_fail("CREATE from read-only memory: %s", kt_errname(errno));
	kt_close(db);
	munmap(c, kt_page);
	kt_close(fd);
	return res;
}

static int bi_unknown_ioctl(struct kvmfr_dev *d)
{
	uint64_t buf[8] = { 0 };
	int fd, res;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	res = bi_ioctl_fails(fd, _IO('u', 0x99), NULL, ENOTTY);
	if (bi_ioctl_fails(fd, _IO('u', 0x99), buf, ENOTTY))
		res = KT_FAIL;
	if (bi_ioctl_fails(fd, _IO('v', 0x42), buf, ENOTTY))
		res = KT_FAIL;
	kt_close(fd);
	return res;
}

/* _IOW('u', 0x42, a 16-byte struct): CREATE's number with the wrong size. */
static int bi_create_wrong_size(struct kvmfr_dev *d)
{
	struct { uint64_t offset, size; } arg = { 0, kt_page };
	int fd, res;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	res = bi_ioctl_fails(fd, _IOW('u', 0x42, arg), &arg, ENOTTY);
	kt_close(fd);
	return res;
}

/* Other directions and sizes of the two numbers; dma-buf ioctls. */
static int bi_other_encodings(struct kvmfr_dev *d)
{
	static const unsigned long cmds[] = {
		0x00007542,	/* _IO('u', 0x42) */
		0x80187542,	/* _IOR('u', 0x42, 24 bytes) */
		0xc0187542,	/* _IOWR('u', 0x42, 24 bytes) */
		0x80147542,	/* _IOR('u', 0x42, 20 bytes) */
		0x40047544,	/* _IOW('u', 0x44, int) */
		0x80087544,	/* _IOR('u', 0x44, u64) */
		0x40086200,	/* DMA_BUF_IOCTL_SYNC */
	};
	unsigned char buf[64];
	int fd, res = KT_PASS;
	size_t i;

	memset(buf, 0, sizeof(buf));
	memcpy(buf + 16, &kt_page, sizeof(kt_page) < 8 ? sizeof(kt_page) : 8);
	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	for (i = 0; i < KT_ARRAY_SIZE(cmds); i++)
		if (bi_ioctl_fails(fd, cmds[i], buf, ENOTTY))
			res = KT_FAIL;
	kt_close(fd);
	return res;
}

static long long bi_refcnt_base;

/* After all of the above: nothing leaked, and the device still works. */
static int bi_nothing_left(struct kvmfr_dev *d)
{
	long long n, rc;
	int fd, db, res = KT_PASS;

	n = kt_dmabufs(d);
	if (n != 0)
		res = kt_fail("dmabufs reads %lld", n);
	rc = kt_module_refcnt();
	if (rc != bi_refcnt_base)
		res = kt_fail("module refcnt %lld, %lld at start", rc,
			      bi_refcnt_base);
	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	if (kt_getsize(fd) != (long long)d->size)
		res = kt_fail("GETSIZE no longer returns the size");
	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, d->size);
	if (db < 0)
		res = kt_fail("a good CREATE now fails: %s", kt_errname(errno));
	kt_close(db);
	kt_close(fd);
	return res;
}

#define BI_CASES							\
	{ "CREATE with size 0 fails with EINVAL", bi_size_zero, KT_ALL },	\
	{ "CREATE with an unaligned offset fails with EINVAL", bi_unaligned_offset, KT_ALL }, \
	{ "CREATE with an unaligned size fails with EINVAL", bi_unaligned_size, KT_ALL }, \
	{ "CREATE past the end fails with EINVAL", bi_past_end, KT_ALL },	\
	{ "CREATE with offset or size above 32 bits fails with EINVAL", bi_high_bits, KT_ALL }, \
	{ "CREATE with offset+size overflowing u64 fails with EINVAL", bi_overflow, KT_ALL }, \
	{ "CREATE with unknown flag bits fails with EINVAL", bi_unknown_flags, KT_ALL }, \
	{ "CREATE with a NULL argument fails with EFAULT", bi_null_arg, KT_ALL }, \
	{ "CREATE with an unmapped argument fails with EFAULT", bi_unmapped_arg, KT_ALL }, \
	{ "CREATE with an argument running into unmapped memory fails with EFAULT", bi_straddling_arg, KT_ALL }, \
	{ "CREATE reads its argument from read-only memory", bi_readonly_arg, KT_ALL }, \
	{ "unknown ioctl fails with ENOTTY", bi_unknown_ioctl, KT_ALL },	\
	{ "CREATE's number with a 16-byte size fails with ENOTTY", bi_create_wrong_size, KT_ALL }, \
	{ "other encodings of the kvmfr numbers fail with ENOTTY", bi_other_encodings, KT_ALL }

#define BI_LAST_CASE							\
	{ "no dma-buf or reference left, device still works", bi_nothing_left, KT_ALL }

#endif /* KVMFR_BAD_INPUT_CASES_H */
