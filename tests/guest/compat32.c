// SPDX-License-Identifier: GPL-2.0
/*
 * An i386 caller (built with -m32): GETSIZE and CREATE go through the
 * module's compat_ioctl with the 20-byte struct (number 0x40147542). The
 * dma-buf must show the same bytes as the device mapping, the padding is
 * ignored, and the bad-input table gives the same errnos as natively.
 */
#include "bad_input_cases.h"

#ifndef __i386__
#error "compat32.c is the 32-bit caller: build it with -m32"
#endif

static int getsize(struct kvmfr_dev *d)
{
	long long r;
	int fd;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	r = kt_getsize(fd);
	kt_close(fd);
	if (r < 0 || (uint64_t)r != d->size)
		return kt_fail("GETSIZE returned %lld (%s), size is %" PRIu64, r,
			       r < 0 ? kt_errname(errno) : "ok", d->size);
	return KT_PASS;
}

static int create_flags(struct kvmfr_dev *d)
{
	int fd, db, fl, fd_fl, res = KT_PASS;
	unsigned int flags;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	for (flags = 0; flags <= KVMFR_DMABUF_FLAG_CLOEXEC; flags++) {
		db = kt_create(fd, flags, kt_page, 2 * kt_page);
		if (db < 0) {
			res = kt_fail("CREATE(flags %u): %s", flags, kt_errname(errno));
			continue;
		}
		fl = fcntl(db, F_GETFL);
		fd_fl = fcntl(db, F_GETFD);
		if (fl < 0 || (fl & O_ACCMODE) != O_RDWR)
			res = kt_fail("flags %u: not O_RDWR (0x%x)", flags, fl);
		if (fd_fl < 0 || !!(fd_fl & FD_CLOEXEC) != !!flags)
			res = kt_fail("flags %u: FD_CLOEXEC is %s", flags,
				      fd_fl & FD_CLOEXEC ? "set" : "clear");
		if (lseek(db, 0, SEEK_END) != (off_t)(2 * kt_page))
			res = kt_fail("flags %u: lseek(SEEK_END) is not the size",
				      flags);
		kt_close(db);
	}
	kt_close(fd);
	return res;
}

static int padding_ignored(struct kvmfr_dev *d)
{
	int fd, db, res = KT_PASS;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create_padded(fd, 0, kt_page, kt_page, 0xff);
	if (db < 0)
		res = kt_fail("flags 0 with 0xff padding: %s", kt_errname(errno));
	else if (fcntl(db, F_GETFD) & FD_CLOEXEC)
		res = kt_fail("flags 0 with 0xff padding gave FD_CLOEXEC");
	kt_close(db);
	db = kt_create_padded(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, kt_page, 0xa5);
	if (db < 0)
		res = kt_fail("CLOEXEC with 0xa5 padding: %s", kt_errname(errno));
	else if (!(fcntl(db, F_GETFD) & FD_CLOEXEC))
		res = kt_fail("CLOEXEC with 0xa5 padding: no FD_CLOEXEC");
	kt_close(db);
	kt_close(fd);
	return res;
}

/* dma-buf of [off, off + len) against the device mapping, both ways. */
static int compare_at(struct kvmfr_dev *d, uint64_t off, uint64_t len)
{
	uint8_t *dev = NULL, *buf = NULL;
	int fd, db = -1, res = KT_PASS;
	uint64_t seed;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, off, len);
	if (db < 0) {
		kt_close(fd);
		return kt_fail("CREATE(offset 0x%" PRIx64 ", size 0x%" PRIx64 "): %s",
			       off, len, kt_errname(errno));
	}
	dev = kt_map(fd, 0, d->size);
	buf = kt_map(db, 0, len);
	if (dev && buf) {
		seed = kt_seed();
		kt_fill_at(dev + off, off, len, seed);
		if (!kt_check_at(buf, off, len, seed, "device -> dma-buf"))
			res = KT_FAIL;
		seed = kt_seed();
		kt_fill_at(buf, off, len, seed);
		if (!kt_check_at(dev + off, off, len, seed, "dma-buf -> device"))
			res = KT_FAIL;
		if (!kt_memeq(dev + off, buf, len, "device vs dma-buf"))
			res = KT_FAIL;
	} else {
		res = KT_FAIL;
	}
	kt_unmap(dev, d->size);
	kt_unmap(buf, len);
	kt_close(db);
	kt_close(fd);
	return res;
}

static int compare_offsets(struct kvmfr_dev *d)
{
	int res = compare_at(d, kt_page, 4 * kt_page);

	if (compare_at(d, d->size / 2 + kt_page, 8 * kt_page))
		res = KT_FAIL;
	return res;
}

static int compare_last_page(struct kvmfr_dev *d)
{
	return compare_at(d, d->size - kt_page, kt_page);
}

static int compare_whole(struct kvmfr_dev *d)
{
	return compare_at(d, 0, d->size);
}

static int sync_compat(struct kvmfr_dev *d)
{
	static const uint64_t flags[] = {
		DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ,
		DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ,
		DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW,
		DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW,
	};
	struct dma_buf_sync sync;
	int fd, db, res = KT_PASS, r, e;
	size_t i;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, kt_page);
	kt_close(fd);
	if (db < 0)
		return kt_fail("CREATE: %s", kt_errname(errno));
	for (i = 0; i < KT_ARRAY_SIZE(flags); i++) {
		sync.flags = flags[i];
		if (ioctl(db, DMA_BUF_IOCTL_SYNC, &sync))
			res = kt_fail("SYNC 0x%" PRIx64 ": %s", (uint64_t)flags[i],
				      kt_errname(errno));
	}
	sync.flags = 0x8;
	r = ioctl(db, DMA_BUF_IOCTL_SYNC, &sync);
	e = errno;
	if (!kt_errno_is(r, e, EINVAL, "SYNC 0x8"))
		res = KT_FAIL;
	kt_close(db);
	return res;
}

/*
 * The same from a 32-bit process with an importer attached and mapped
 * (tests/edu's): after the END of a WRITE bracket the device reads what the
 * CPU wrote; inside a READ bracket the CPU reads what the device wrote.
 */
static int sync_compat_importer(struct kvmfr_dev *d)
{
	const uint32_t len = KVMFR_EDU_BUF_SIZE & ~7u;
	uint64_t buf[KVMFR_EDU_BUF_SIZE / 8];
	struct dma_buf_sync sync;
	int fd, db = -1, edu, res = KT_FAIL;
	uint64_t seed = kt_seed();
	uint8_t *map = NULL;

	edu = kt_importer_open();
	if (edu < 0)
		return kt_skip("no dma-buf importer in this guest (/dev/kvmfr_edu: %s)",
			       strerror(errno));
	fd = kt_open(d);
	if (fd >= 0)
		db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, kt_page);
	kt_close(fd);
	if (db < 0 || !(map = kt_map(db, 0, kt_page)) ||
	    kt_importer_import(edu, db, false))
		goto out;
	sync.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE;
	if (ioctl(db, DMA_BUF_IOCTL_SYNC, &sync))
		goto out;
	kt_fill_at(map, 0, len, seed);
	sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE;
	if (ioctl(db, DMA_BUF_IOCTL_SYNC, &sync) ||
	    kt_importer_dma(edu, 0, buf, len, true) ||
	    !kt_check_at(buf, 0, len, seed, "device read after END"))
		goto out;
	seed = kt_seed();
	kt_fill_at(buf, 0, len, seed);
	sync.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ;
	if (kt_importer_dma(edu, 0, buf, len, false) ||
	    ioctl(db, DMA_BUF_IOCTL_SYNC, &sync) ||
	    !kt_check_at(map, 0, len, seed, "CPU read after START"))
		goto out;
	sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ;
	if (!ioctl(db, DMA_BUF_IOCTL_SYNC, &sync))
		res = KT_PASS;
out:
	if (res != KT_PASS && errno)
		kt_diag("last error: %s", kt_errname(errno));
	kt_unmap(map, kt_page);
	kt_close(db);
	close(edu);
	return res;
}

static const struct kt_case cases[] = {
	BI_CASES,
	{ "GETSIZE returns the size", getsize, KT_ALL },
	{ "CREATE gives an O_RDWR dma-buf, FD_CLOEXEC iff asked", create_flags, KT_ALL },
	{ "padding garbage is ignored", padding_ignored, KT_ALL },
	{ "dma-buf mappings agree with the device mapping", compare_offsets, KT_ALL },
	{ "dma-buf of the last page agrees with the device", compare_last_page, KT_ALL },
	{ "whole-device dma-buf agrees with the device", compare_whole, KT_ALL },
	{ "DMA_BUF_IOCTL_SYNC through compat, no importer: START/END accepted, bad flags EINVAL", sync_compat, KT_ALL },
	{ "DMA_BUF_IOCTL_SYNC through compat with an importer mapped: device DMA and CPU see each other's writes", sync_compat_importer, KT_ALL },
	BI_LAST_CASE,
};

int main(void)
{
	kt_init();
	kt_diag("i386 caller: CREATE is 0x%lx, struct of %zu bytes",
		(unsigned long)KVMFR_DMABUF_CREATE,
		sizeof(struct kvmfr_dmabuf_create));
	kt_plan(kt_count_cases(cases, KT_ARRAY_SIZE(cases)));
	bi_refcnt_base = kt_module_refcnt();
	kt_run_cases(cases, KT_ARRAY_SIZE(cases));
	return kt_exit();
}
