// SPDX-License-Identifier: GPL-2.0
/*
 * edu_dma - real device DMA through kvmfr's dma-bufs.
 *
 * QEMU's edu device, driven by kvmfr_edu.ko (/dev/kvmfr_edu, one importer
 * per open file), reads and writes dma-bufs exported by kvmfr, through the
 * IOMMU. Userspace checks what the device read against what it wrote through
 * the device mapping, and what the device wrote through the device mapping,
 * the dma-buf mapping and the importer's vmap. Every kvmfr device is tested,
 * static (RAM) and PCI (IVSHMEM BAR).
 *
 *   edu_dma           the suite (TAP 13, plan at the end)
 *   edu_dma marker    leave a DMA-written range in ivshmem device 0 for the
 *                     host to check after poweroff (see README.md)
 *
 * Needs kvmfr.ko and kvmfr_edu.ko loaded. Devices come from KVMFR_PCI
 * ("ADDR=MiB ...", the harness's list; index 0 is the marker's device) and
 * /sys/class/kvmfr (static devices). Each edu transfer takes about 100 ms.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <linux/dma-buf.h>

#include "kvmfr.h"
#include "pattern.h"
#include "kvmfr_edu.h"

#define EDU_NODE	"/dev/kvmfr_edu"
#define BUF_SIZE	KVMFR_EDU_BUF_SIZE
#define MAX_DEVS	16
#define GUARD		256		/* bytes checked around each DMA write */
#define LOOPS		100		/* attach/map cycles */
#define MARKER_OFF	0xfc00ull	/* marker range in ivshmem device 0 */
#define MARKER_LEN	2048u

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;

/* ------------------------------------------------------------------ TAP */

static int tap_n, tap_failed;

static void tap_start(bool pass)
{
	tap_n++;
	if (!pass)
		tap_failed++;
	printf("%sok %d - ", pass ? "" : "not ", tap_n);
}

static int tap_end(void)
{
	printf("1..%d\n", tap_n);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

/* Macros rather than functions, so that printf() checks their formats. */

/* One test line; evaluates to pass. */
#define tap(pass, ...) ({				\
	bool __pass = (pass);				\
	tap_start(__pass);				\
	printf(__VA_ARGS__);				\
	putchar('\n');					\
	__pass;						\
})

#define tap_skip(why, ...) do {				\
	tap_start(true);				\
	printf(__VA_ARGS__);				\
	printf(" # SKIP %s\n", why);			\
} while (0)

#define diag(...) do {					\
	fputs("# ", stdout);				\
	printf(__VA_ARGS__);				\
	putchar('\n');					\
} while (0)

#define bail(...) do {					\
	fputs("Bail out! ", stdout);			\
	printf(__VA_ARGS__);				\
	putchar('\n');					\
	tap_failed++;					\
	exit(tap_end());				\
} while (0)

/* errno name for messages, numbers for the rare ones */
static const char *errname(int e)
{
	static char buf[24]; /* "errno " and any int */

	switch (e) {
	case 0: return "success";
	case EBADF: return "EBADF";
	case EBUSY: return "EBUSY";
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case EIO: return "EIO";
	case ENODEV: return "ENODEV";
	case ENOTTY: return "ENOTTY";
	case ETIMEDOUT: return "ETIMEDOUT";
	}
	snprintf(buf, sizeof(buf), "errno %d", e);
	return buf;
}

/* A test that an operation returning -errno (0 on success) fails with want. */
static bool expect_err(int ret, int want, const char *what)
{
	if (!tap(ret == -want, "%s: %s", what, errname(want)))
		diag("got %s", errname(-ret));
	return ret == -want;
}

/* ------------------------------------------------------------ patterns */

/* Byte i of the pattern with seed s: bytes of the shared 64-bit words. */
static u8 pat_byte(u64 seed, u64 i)
{
	return kvmfr_pattern_word(seed, i >> 3) >> ((i & 7) * 8);
}

static void pat_fill(u8 *p, u64 seed, u64 first,
		     size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat_byte(seed, first + i);
}

/* Index of the first byte that differs, or -1. */
static long pat_check(const u8 *p, u64 seed, u64 first,
		      size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat_byte(seed, first + i))
			return (long)i;
	return -1;
}

static u64 next_seed(void)
{
	static u64 seed = 0x6564750000000000ull;	/* "edu" */

	return ++seed;
}

/* ------------------------------------------------------------- sysfs */

static int read_str(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	n = n < 0 ? -errno : 0;
	close(fd);
	return (int)n;
}

static long long read_ll(const char *path)
{
	char buf[64];

	if (read_str(path, buf, sizeof(buf)))
		return -1;
	return strtoll(buf, NULL, 0);
}

/* ------------------------------------------------------------ devices */

struct kdev {
	char label[64];
	char pci[32];		/* PCI address, empty for a static device */
	int index;		/* position in KVMFR_PCI, -1 for static */
	char name[32];		/* kvmfrN, found again after a rescan */
	int fd;
	u64 size;
	u8 *map;	/* the whole device, MAP_SHARED */
};

static struct kdev devs[MAX_DEVS];
static int ndevs;

/* The kvmfrN node of a PCI device, or -ENOENT. */
static int pci_node(const char *addr, char *name, size_t len)
{
	char path[128];
	struct dirent *de;
	DIR *d;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/kvmfr", addr);
	d = opendir(path);
	if (!d)
		return -ENOENT;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "kvmfr", 5) &&
		    strlen(de->d_name) < len) {
			memcpy(name, de->d_name, strlen(de->d_name) + 1);
			ret = 0;
			break;
		}
	closedir(d);
	return ret;
}

static int kdev_open(struct kdev *kd)
{
	char path[64];
	long long size;
	void *p;

	if (kd->pci[0] && pci_node(kd->pci, kd->name, sizeof(kd->name)))
		return -ENOENT;
	snprintf(path, sizeof(path), "/dev/%s", kd->name);
	kd->fd = open(path, O_RDWR | O_CLOEXEC);
	if (kd->fd < 0)
		return -errno;
	size = ioctl(kd->fd, KVMFR_DMABUF_GETSIZE);
	if (size <= 0) {
		close(kd->fd);
		return -EIO;
	}
	kd->size = (u64)size;
	p = mmap(NULL, kd->size, PROT_READ | PROT_WRITE, MAP_SHARED, kd->fd, 0);
	if (p == MAP_FAILED) {
		close(kd->fd);
		return -errno;
	}
	kd->map = p;
	return 0;
}

static void kdev_close(struct kdev *kd)
{
	if (kd->map)
		munmap((void *)kd->map, kd->size);
	if (kd->fd >= 0)
		close(kd->fd);
	kd->map = NULL;
	kd->fd = -1;
}

static void add_dev(const char *name, const char *pci, int index)
{
	struct kdev *kd;

	if (ndevs == MAX_DEVS)
		return;
	kd = &devs[ndevs++];
	memset(kd, 0, sizeof(*kd));
	kd->fd = -1;
	kd->index = index;
	snprintf(kd->name, sizeof(kd->name), "%s", name);
	snprintf(kd->pci, sizeof(kd->pci), "%s", pci);
	if (pci[0])
		snprintf(kd->label, sizeof(kd->label), "pci %s", pci);
	else
		snprintf(kd->label, sizeof(kd->label), "static %s", name);
}

/* Static devices from sysfs, then PCI devices from KVMFR_PCI. */
static void find_devs(void)
{
	struct dirent **list;
	char path[300], type[32], name[32], *env, *tok, *save;
	int n, i, index = 0;

	n = scandir("/sys/class/kvmfr", &list, NULL, versionsort);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/sys/class/kvmfr/%s/type",
			 list[i]->d_name);
		if (!read_str(path, type, sizeof(type)) &&
		    !strcmp(type, "static"))
			add_dev(list[i]->d_name, "", -1);
		free(list[i]);
	}
	if (n >= 0)
		free(list);

	env = getenv("KVMFR_PCI");
	env = strdup(env ? env : "");
	for (tok = strtok_r(env, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		tok[strcspn(tok, "=")] = 0;
		if (!pci_node(tok, name, sizeof(name)))
			add_dev(name, tok, index);
		else
			tap(false, "KVMFR_PCI lists %s: it has a kvmfr device",
			    tok);
		index++;
	}
	free(env);
}

static int dmabuf_create(struct kdev *kd, u64 offset, u64 size)
{
	struct kvmfr_dmabuf_create c = {
		.flags = KVMFR_DMABUF_FLAG_CLOEXEC,
		.offset = offset,
		.size = size,
	};
	int fd = ioctl(kd->fd, KVMFR_DMABUF_CREATE, &c);

	return fd < 0 ? -errno : fd;
}

static long long dmabufs_of(struct kdev *kd)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/class/kvmfr/%s/dmabufs", kd->name);
	return read_ll(path);
}

/* -------------------------------------------------------- the importer */

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

static int edu_open(void)
{
	int fd = open(EDU_NODE, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		bail("cannot open %s: %s (is kvmfr_edu.ko loaded, with an edu device?)",
		     EDU_NODE, strerror(errno));
	return fd;
}

static int edu_import(int efd, int dbfd, u32 flags,
		      struct kvmfr_edu_import *imp)
{
	memset(imp, 0, sizeof(*imp));
	imp->fd = dbfd;
	imp->flags = flags;
	return xioctl(efd, KVMFR_EDU_IMPORT, imp);
}

static int edu_dma(int efd, u64 off, u32 len, u32 buf_off,
		   u32 dir, u32 *transfers)
{
	struct kvmfr_edu_dma d = {
		.offset = off, .len = len, .buf_off = buf_off, .dir = dir,
	};
	int ret = xioctl(efd, KVMFR_EDU_DMA, &d);

	if (transfers)
		*transfers = d.transfers;
	return ret;
}

static int edu_xfer(int efd, unsigned long req, u64 off, u32 len,
		    void *p)
{
	struct kvmfr_edu_xfer x = {
		.ptr = (uintptr_t)p, .offset = off, .len = len,
	};

	return xioctl(efd, req, &x);
}

static int edu_xfer_flags(int efd, unsigned long req, u64 off, u32 len,
			  void *p, u32 flags)
{
	struct kvmfr_edu_xfer x = {
		.ptr = (uintptr_t)p, .offset = off, .len = len, .flags = flags,
	};

	return xioctl(efd, req, &x);
}

/* What the edu buffer holds, as far as this program knows. */
static u8 shadow[BUF_SIZE];

static int buf_write(int efd, u32 off, u32 len, const void *p)
{
	int ret = edu_xfer(efd, KVMFR_EDU_BUF_WRITE, off, len, (void *)p);

	if (!ret)
		memcpy(shadow + off, p, len);
	return ret;
}

static void describe(const char *what, const struct kvmfr_edu_import *imp)
{
	diag("%s: %u DMA segments (%u CPU), %llu/%llu B mapped, IOVA %#llx-%#llx, %u gaps",
	     what, imp->nents, imp->orig_nents, imp->mapped, imp->size,
	     imp->dma_first, imp->dma_last, imp->breaks);
}

/* ------------------------------------------------------ data path tests */

/* A dma-buf of a device, imported by one importer. */
struct imported {
	struct kdev *kd;
	u64 dev_off;	/* start of the dma-buf in the device */
	u64 size;
	int dbfd;
	u8 *dbmap;	/* mmap of the dma-buf fd */
	int efd;
	struct kvmfr_edu_import imp;
};

static int import_range(struct imported *im, struct kdev *kd, u64 off,
			u64 size, u32 flags)
{
	void *p;
	int ret;

	memset(im, 0, sizeof(*im));
	im->kd = kd;
	im->dev_off = off;
	im->size = size;
	im->efd = -1;
	im->dbfd = dmabuf_create(kd, off, size);
	if (im->dbfd < 0)
		return im->dbfd;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, im->dbfd, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		close(im->dbfd);
		return ret;
	}
	im->dbmap = p;
	im->efd = edu_open();
	ret = edu_import(im->efd, im->dbfd, flags, &im->imp);
	if (ret) {
		close(im->efd);
		munmap(p, size);
		close(im->dbfd);
	}
	return ret;
}

static void release_range(struct imported *im)
{
	if (im->efd >= 0)
		close(im->efd);
	if (im->dbmap)
		munmap((void *)im->dbmap, im->size);
	if (im->dbfd >= 0)
		close(im->dbfd);
	im->efd = -1;
	im->dbfd = -1;
	im->dbmap = NULL;
}

struct xcase {
	u64 off;
	u32 len;
	u32 buf_off;
	const char *what;
};

static void show_diff(const char *where, long at, const u8 *p,
		      u8 want)
{
	diag("%s: first difference at byte %ld: 0x%02x, want 0x%02x", where, at,
	     p[at], want);
}

/* Userspace writes through the device mapping, edu reads by DMA. */
static void test_edu_reads(struct imported *im, const struct xcase *c)
{
	u8 *dev = im->kd->map + im->dev_off;
	u8 want[BUF_SIZE], got[BUF_SIZE];
	u64 seed = next_seed();
	u32 transfers = 0;
	long bad;
	int ret;

	pat_fill(dev + c->off, seed, c->off, c->len);
	ret = edu_dma(im->efd, c->off, c->len, c->buf_off, KVMFR_EDU_TO_EDU,
		      &transfers);
	if (!ret)
		ret = edu_xfer(im->efd, KVMFR_EDU_BUF_READ, 0, BUF_SIZE, got);
	memcpy(want, shadow, BUF_SIZE);
	pat_fill(want + c->buf_off, seed, c->off, c->len);
	bad = -1;
	for (int i = 0; !ret && i < BUF_SIZE && bad < 0; i++)
		if (got[i] != want[i])
			bad = i;
	if (!tap(!ret && bad < 0,
		 "%s: edu reads %u B at dma-buf offset %#llx (%s)",
		 im->kd->label, c->len, c->off, c->what)) {
		if (ret)
			diag("DMA or buffer read: %s", errname(-ret));
		else
			show_diff("edu buffer", bad, got, want[bad]);
	}
	diag("%u edu transfer(s)", transfers);
	if (!ret)
		memcpy(shadow, got, BUF_SIZE);
}

/* Check [lo, hi) of a view of the dma-buf: pattern in the DMA range, bg around it. */
static long check_written(const u8 *view, const struct xcase *c,
			  u64 seed, u64 bg, u64 lo, u64 hi,
			  u8 *want)
{
	long bad;

	bad = pat_check(view + lo, bg, lo, c->off - lo);
	if (bad >= 0) {
		*want = pat_byte(bg, lo + bad);
		return (long)lo + bad;
	}
	bad = pat_check(view + c->off, seed, c->off, c->len);
	if (bad >= 0) {
		*want = pat_byte(seed, c->off + bad);
		return (long)c->off + bad;
	}
	bad = pat_check(view + c->off + c->len, bg, c->off + c->len,
			hi - c->off - c->len);
	if (bad >= 0) {
		*want = pat_byte(bg, c->off + c->len + bad);
		return (long)(c->off + c->len) + bad;
	}
	return -1;
}

/* edu writes by DMA; userspace reads through every view of the memory. */
static void test_edu_writes(struct imported *im, const struct xcase *c)
{
	u8 *dev = im->kd->map + im->dev_off;
	u64 seed = next_seed(), bg = next_seed();
	u64 lo = c->off > GUARD ? c->off - GUARD : 0;
	u64 hi = c->off + c->len + GUARD;
	struct dma_buf_sync sync;
	u8 src[BUF_SIZE], want = 0, *copy;
	u32 transfers = 0;
	long bad;
	int ret;

	if (hi > im->size)
		hi = im->size;
	pat_fill(dev + lo, bg, lo, hi - lo);
	pat_fill(src, seed, c->off, c->len);
	ret = buf_write(im->efd, c->buf_off, c->len, src);
	if (!ret)
		ret = edu_dma(im->efd, c->off, c->len, c->buf_off,
			      KVMFR_EDU_FROM_EDU, &transfers);

	bad = ret ? -1 : check_written(dev, c, seed, bg, lo, hi, &want);
	if (!tap(!ret && bad < 0,
		 "%s: edu writes %u B at dma-buf offset %#llx (%s), seen through the device mapping",
		 im->kd->label, c->len, c->off, c->what)) {
		if (ret)
			diag("buffer write or DMA: %s", errname(-ret));
		else
			show_diff("device mapping (dma-buf offsets)", bad, dev, want);
	}
	diag("%u edu transfer(s)", transfers);

	/* The dma-buf's own mapping, inside a CPU access bracket. */
	sync.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ;
	ret = ret ?: xioctl(im->dbfd, DMA_BUF_IOCTL_SYNC, &sync);
	bad = ret ? -1 : check_written(im->dbmap, c, seed, bg, lo, hi, &want);
	sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ;
	if (!ret)
		ret = xioctl(im->dbfd, DMA_BUF_IOCTL_SYNC, &sync);
	if (!tap(!ret && bad < 0, "%s: ... and through the dma-buf mapping",
		 im->kd->label)) {
		if (ret)
			diag("%s", errname(-ret));
		else
			show_diff("dma-buf mapping", bad, im->dbmap, want);
	}

	/* The importer's kernel mapping (vmap in begin/end_cpu_access). */
	copy = calloc(1, im->size);
	if (!copy)
		bail("out of memory");
	ret = ret ?: edu_xfer(im->efd, KVMFR_EDU_VMAP_READ, lo, hi - lo,
			      copy + lo);
	bad = ret ? -1 : check_written(copy, c, seed, bg, lo, hi, &want);
	if (!tap(!ret && bad < 0, "%s: ... and through the importer's vmap",
		 im->kd->label)) {
		if (ret)
			diag("%s", errname(-ret));
		else
			show_diff("vmap", bad, copy, want);
	}

	/* The same, with the vmap made before begin_cpu_access. */
	memset(copy, 0, im->size);
	ret = ret ?: edu_xfer_flags(im->efd, KVMFR_EDU_VMAP_READ, lo, hi - lo,
				    copy + lo, KVMFR_EDU_VMAP_FIRST);
	bad = ret ? -1 : check_written(copy, c, seed, bg, lo, hi, &want);
	if (!tap(!ret && bad < 0,
		 "%s: ... and through a vmap made before begin_cpu_access",
		 im->kd->label)) {
		if (ret)
			diag("%s", errname(-ret));
		else
			show_diff("vmap", bad, copy, want);
	}
	free(copy);
}

static void test_data_paths(struct kdev *kd)
{
	const u64 off = 0x11000, size = 1 << 20;
	struct imported im;
	int ret;

	if (kd->size < off + size) {
		tap_skip("device too small", "%s: DMA data paths", kd->label);
		return;
	}
	ret = import_range(&im, kd, off, size, 0);
	if (!tap(!ret && im.imp.mapped == size && im.imp.nents >= 1,
		 "%s: dma-buf [%#llx, +%#llx) imported and mapped for edu",
		 kd->label, off, size)) {
		diag("import: %s, mapped %llu B", errname(-ret),
		     im.imp.mapped);
		if (ret)
			return;
	}
	describe(kd->label, &im.imp);

	const struct xcase cases[] = {
		{ 0, BUF_SIZE, 0, "a page but its last byte" },
		{ 0x3001, 1000, 0x123, "unaligned" },
		{ 0xf801, BUF_SIZE, 0, "across a page and a 64 KiB boundary" },
		{ size - 0x900, 0x900, 0x6ff, "up to the last byte" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		test_edu_reads(&im, &cases[i]);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		test_edu_writes(&im, &cases[i]);

	/* vmap writes, the device mapping and edu see them */
	{
		u64 seed = next_seed(), at = 0x20010;
		u8 src[512], got[BUF_SIZE];
		long bad;

		pat_fill(src, seed, at, sizeof(src));
		ret = edu_xfer(im.efd, KVMFR_EDU_VMAP_WRITE, at, sizeof(src),
			       src);
		bad = ret ? -1 : pat_check(kd->map + off + at, seed, at,
					   sizeof(src));
		if (!tap(!ret && bad < 0,
			 "%s: importer writes through vmap, seen through the device mapping",
			 kd->label))
			diag("%s, first difference at byte %ld", errname(-ret), bad);
		ret = ret ?: edu_dma(im.efd, at, sizeof(src), 0,
				     KVMFR_EDU_TO_EDU, NULL);
		ret = ret ?: edu_xfer(im.efd, KVMFR_EDU_BUF_READ, 0,
				      sizeof(src), got);
		bad = ret ? -1 : pat_check(got, seed, at, sizeof(src));
		if (!tap(!ret && bad < 0, "%s: ... and read by edu by DMA",
			 kd->label))
			diag("%s, first difference at byte %ld", errname(-ret), bad);
		if (!ret)
			memcpy(shadow, got, sizeof(src));
	}
	release_range(&im);
}

/* The whole device as one dma-buf: edu writes its first and last bytes. */
static void test_whole_device(struct kdev *kd)
{
	const struct xcase cases[] = {
		{ 0, 512, 0, "first bytes" },
		{ kd->size - BUF_SIZE, BUF_SIZE, 0, "last 4095 bytes" },
	};
	struct imported im;
	int ret;

	ret = import_range(&im, kd, 0, kd->size, 0);
	if (!tap(!ret && im.imp.mapped == kd->size,
		 "%s: whole device (%llu MiB) imported and mapped for edu",
		 kd->label, kd->size >> 20)) {
		diag("import: %s, mapped %llu B", errname(-ret),
		     im.imp.mapped);
		if (ret)
			return;
	}
	describe(kd->label, &im.imp);
	for (size_t i = 0; i < 2; i++) {
		u64 seed = next_seed();
		u8 src[BUF_SIZE];
		long bad;

		pat_fill(src, seed, cases[i].off, cases[i].len);
		ret = buf_write(im.efd, 0, cases[i].len, src);
		ret = ret ?: edu_dma(im.efd, cases[i].off, cases[i].len, 0,
				     KVMFR_EDU_FROM_EDU, NULL);
		bad = ret ? -1 : pat_check(kd->map + cases[i].off, seed,
					   cases[i].off, cases[i].len);
		if (!tap(!ret && bad < 0,
			 "%s: whole-device mapping: edu writes the %s",
			 kd->label, cases[i].what))
			diag("%s, first difference at byte %ld", errname(-ret), bad);
	}
	release_range(&im);
}

/* ------------------------------------------------------ failure cases */

static void test_failures(struct kdev *kd)
{
	struct kvmfr_edu_import imp;
	struct kvmfr_edu_dma d;
	u8 buf[BUF_SIZE + 1];
	int efd = edu_open(), dbfd, ret;

	expect_err(edu_import(efd, -1, 0, &imp), EBADF,
		   "import of fd -1");
	expect_err(edu_import(efd, kd->fd, 0, &imp), EINVAL,
		   "import of a kvmfr device fd, not a dma-buf");
	expect_err(edu_dma(efd, 0, 16, 0, KVMFR_EDU_FROM_EDU, NULL), EINVAL,
		   "DMA before any import");
	expect_err(xioctl(efd, KVMFR_EDU_MAP, &imp), EINVAL,
		   "map before any import");
	expect_err(xioctl(efd, KVMFR_EDU_UNMAP, NULL), EINVAL,
		   "unmap before any import");
	expect_err(xioctl(efd, KVMFR_EDU_RELEASE, NULL), EINVAL,
		   "release before any import");
	expect_err(edu_xfer(efd, KVMFR_EDU_VMAP_READ, 0, 16, buf), EINVAL,
		   "vmap read before any import");
	expect_err(xioctl(efd, _IO(KVMFR_EDU_IOC, 0x7f), NULL), ENOTTY,
		   "unknown ioctl");
	expect_err(edu_xfer(efd, KVMFR_EDU_BUF_READ, 0, 0, buf), EINVAL,
		   "edu buffer read of 0 bytes");
	expect_err(edu_xfer(efd, KVMFR_EDU_BUF_WRITE, 0, BUF_SIZE + 1, buf),
		   EINVAL, "edu buffer write of 4096 bytes (one more than usable)");
	expect_err(edu_xfer(efd, KVMFR_EDU_BUF_READ, 4000, 200, buf), EINVAL,
		   "edu buffer read past its end");

	dbfd = dmabuf_create(kd, 0, 2 * 4096);
	if (dbfd < 0)
		bail("%s: cannot create a dma-buf: %s", kd->label,
		     errname(-dbfd));
	memset(&imp, 0, sizeof(imp));
	imp.fd = dbfd;
	imp.flags = 0x2;
	expect_err(xioctl(efd, KVMFR_EDU_IMPORT, &imp), EINVAL,
		   "import with an unknown flag");
	ret = edu_import(efd, dbfd, 0, &imp);
	if (!tap(!ret, "import of an 8 KiB dma-buf"))
		bail("import failed: %s", errname(-ret));
	expect_err(edu_import(efd, dbfd, 0, &imp), EBUSY,
		   "second import on the same file");
	expect_err(edu_dma(efd, 0, 0, 0, KVMFR_EDU_FROM_EDU, NULL), EINVAL,
		   "DMA of 0 bytes");
	expect_err(edu_dma(efd, 0, BUF_SIZE + 1, 0, KVMFR_EDU_FROM_EDU, NULL),
		   EINVAL, "DMA of 4096 bytes (one more than usable)");
	expect_err(edu_dma(efd, 0, 16, BUF_SIZE - 8, KVMFR_EDU_FROM_EDU, NULL),
		   EINVAL, "DMA past the end of the edu buffer");
	expect_err(edu_dma(efd, 2 * 4096 - 8, 16, 0, KVMFR_EDU_FROM_EDU, NULL),
		   EINVAL, "DMA past the end of the dma-buf");
	expect_err(edu_dma(efd, UINT64_MAX - 7, 16, 0, KVMFR_EDU_TO_EDU, NULL),
		   EINVAL, "DMA at an offset that overflows");
	expect_err(edu_dma(efd, 0, 16, 0, 2, NULL), EINVAL,
		   "DMA in an unknown direction");
	memset(&d, 0, sizeof(d));
	d.len = 16;
	d.flags = 1;
	expect_err(xioctl(efd, KVMFR_EDU_DMA, &d), EINVAL,
		   "DMA with an unknown flag");
	expect_err(edu_xfer(efd, KVMFR_EDU_VMAP_READ, 4096, 4097, buf),
		   EINVAL, "vmap read past the end of the dma-buf");
	expect_err(edu_xfer(efd, KVMFR_EDU_VMAP_WRITE, 0, 0, buf), EINVAL,
		   "vmap write of 0 bytes");
	expect_err(edu_xfer(efd, KVMFR_EDU_VMAP_READ, 0, 16, NULL), EFAULT,
		   "vmap read to a NULL user pointer");
	expect_err(edu_xfer_flags(efd, KVMFR_EDU_VMAP_READ, 0, 16, buf, 0x4),
		   EINVAL, "vmap read with an unknown flag");
	{
		struct kvmfr_edu_async a = { .len = 16, .delay_ms = 10001 };

		expect_err(xioctl(efd, KVMFR_EDU_DMA_ASYNC, &a), EINVAL,
			   "asynchronous DMA delayed by more than 10 s");
		a.delay_ms = 0;
		a.dir = 2;
		expect_err(xioctl(efd, KVMFR_EDU_DMA_ASYNC, &a), EINVAL,
			   "asynchronous DMA in an unknown direction");
	}
	expect_err(xioctl(efd, KVMFR_EDU_RELEASE, NULL), 0, "release");
	ret = edu_import(efd, dbfd, KVMFR_EDU_IMPORT_STATIC, &imp);
	{
		struct kvmfr_edu_async a = { .len = 16 };

		expect_err(ret ?: xioctl(efd, KVMFR_EDU_DMA_ASYNC, &a), EINVAL,
			   "asynchronous DMA by a static importer");
	}
	close(dbfd);
	close(efd);
}

/* --------------------------------------------------------- lifetimes */

static void test_many_importers(struct kdev *a, struct kdev *b)
{
	struct imported im[4];
	const u64 at = 0x7ff0;
	u8 src[64], got[64];
	u64 seed = next_seed();
	bool all = true;
	long bad;
	int ret;

	/* a: two importers (dynamic, static) of one dma-buf, one of another */
	ret = import_range(&im[0], a, 0x40000, 0x40000, 0);
	if (!ret) {
		im[1] = im[0];
		im[1].efd = edu_open();
		im[1].dbmap = NULL;
		ret = edu_import(im[1].efd, im[0].dbfd, KVMFR_EDU_IMPORT_STATIC,
				 &im[1].imp);
		im[1].dbfd = -1;
	}
	ret = ret ?: import_range(&im[2], a, 0, 0x10000,
				  KVMFR_EDU_IMPORT_STATIC);
	ret = ret ?: import_range(&im[3], b, 0x10000, 0x100000, 0);
	if (!tap(!ret, "4 importers at once: 2 of one dma-buf of %s, 1 of another, 1 of %s",
		 a->label, b->label)) {
		diag("%s", errname(-ret));
		bail("cannot set up the importers");
	}
	for (int i = 0; i < 4; i++) {
		char what[96];

		snprintf(what, sizeof(what), "importer %d (%s, %s)", i,
			 im[i].kd->label,
			 i == 1 || i == 2 ? "static" : "dynamic");
		describe(what, &im[i].imp);
	}

	/* importer 0 writes, importer 1 (static, same dma-buf) reads back */
	pat_fill(src, seed, at, sizeof(src));
	ret = buf_write(im[0].efd, 0, sizeof(src), src);
	ret = ret ?: edu_dma(im[0].efd, at, sizeof(src), 0, KVMFR_EDU_FROM_EDU,
			     NULL);
	bad = ret ? -1 : pat_check(a->map + 0x40000 + at, seed, at, sizeof(src));
	all &= tap(!ret && bad < 0, "importer 0 (dynamic) writes by DMA");
	ret = ret ?: edu_dma(im[1].efd, at, sizeof(src), 256, KVMFR_EDU_TO_EDU,
			     NULL);
	ret = ret ?: edu_xfer(im[1].efd, KVMFR_EDU_BUF_READ, 256, sizeof(got),
			      got);
	bad = ret ? -1 : pat_check(got, seed, at, sizeof(got));
	all &= tap(!ret && bad < 0,
		   "importer 1 (static, same dma-buf) reads it back by DMA");

	/* importer 3 writes the other device while the others stay attached */
	seed = next_seed();
	pat_fill(src, seed, at, sizeof(src));
	ret = buf_write(im[3].efd, 0, sizeof(src), src);
	ret = ret ?: edu_dma(im[3].efd, at, sizeof(src), 0, KVMFR_EDU_FROM_EDU,
			     NULL);
	bad = ret ? -1 : pat_check(b->map + 0x10000 + at, seed, at, sizeof(src));
	all &= tap(!ret && bad < 0, "importer 3 writes %s by DMA", b->label);

	/* closing importer 0 leaves importer 1's attachment working */
	close(im[0].efd);
	im[0].efd = -1;
	ret = edu_dma(im[1].efd, at, sizeof(src), 512, KVMFR_EDU_TO_EDU, NULL);
	tap(!ret, "importer 1 still does DMA after importer 0 closed");
	if (!all)
		diag("last error: %s", errname(-ret));

	close(im[1].efd);
	release_range(&im[0]);
	release_range(&im[2]);
	release_range(&im[3]);
}

/* The importer holds the dma-buf: closing the fd does not free it. */
static void test_importer_holds_dmabuf(struct kdev *kd)
{
	struct kvmfr_edu_import imp;
	long long before = dmabufs_of(kd), held, after;
	int efd = edu_open(), dbfd, ret;

	dbfd = dmabuf_create(kd, 0, 4096);
	ret = dbfd < 0 ? dbfd : edu_import(efd, dbfd, 0, &imp);
	if (dbfd >= 0)
		close(dbfd);
	held = dmabufs_of(kd);
	ret = ret ?: xioctl(efd, KVMFR_EDU_RELEASE, NULL);
	after = dmabufs_of(kd);
	if (!tap(!ret && held == before + 1 && after == before,
		 "%s: importer keeps its dma-buf after the fd is closed, frees it on release",
		 kd->label))
		diag("%s; dmabufs %lld, %lld while imported, %lld after release",
		     errname(-ret), before, held, after);
	close(efd);
}

static void test_cycles(struct kdev *kd)
{
	struct kvmfr_edu_import imp, first;
	const u32 kinds[] = { 0, KVMFR_EDU_IMPORT_STATIC };
	long long before = dmabufs_of(kd);
	int dbfd, efd, ret = 0, i;
	u8 src[64];
	u64 seed;
	long bad;

	dbfd = dmabuf_create(kd, 0x100000, 0x100000);
	if (dbfd < 0)
		bail("%s: cannot create a dma-buf: %s", kd->label,
		     errname(-dbfd));
	efd = edu_open();
	for (size_t k = 0; k < 2; k++) {
		const char *kind = kinds[k] ? "static" : "dynamic";

		memset(&first, 0, sizeof(first));
		for (i = 0; i < LOOPS && !ret; i++) {
			ret = edu_import(efd, dbfd, kinds[k], &imp);
			if (!i)
				first = imp;
			if (!ret && (imp.nents != first.nents ||
				     imp.mapped != first.mapped))
				ret = -EIO;
			ret = ret ?: xioctl(efd, KVMFR_EDU_RELEASE, NULL);
		}
		if (!tap(!ret, "%s: %d x import (%s attach + map) and release",
			 kd->label, LOOPS, kind))
			diag("cycle %d: %s", i, errname(-ret));

		ret = edu_import(efd, dbfd, kinds[k], &imp);
		for (i = 0; i < LOOPS && !ret; i++) {
			ret = xioctl(efd, KVMFR_EDU_UNMAP, NULL);
			ret = ret ?: xioctl(efd, KVMFR_EDU_MAP, &imp);
			if (!ret && imp.nents != first.nents)
				ret = -EIO;
		}
		if (!tap(!ret, "%s: %d x unmap and map again of one %s attachment",
			 kd->label, LOOPS, kind))
			diag("cycle %d: %s", i, errname(-ret));

		seed = next_seed();
		pat_fill(src, seed, 0x100, sizeof(src));
		ret = buf_write(efd, 0, sizeof(src), src);
		ret = ret ?: edu_dma(efd, 0x100, sizeof(src), 0,
				     KVMFR_EDU_FROM_EDU, NULL);
		bad = ret ? -1 : pat_check(kd->map + 0x100000 + 0x100, seed,
					   0x100, sizeof(src));
		if (!tap(!ret && bad < 0, "%s: DMA still lands right after the cycles (%s)",
			 kd->label, kind))
			diag("%s, first difference at byte %ld", errname(-ret), bad);
		ret = xioctl(efd, KVMFR_EDU_RELEASE, NULL);
	}
	close(efd);
	close(dbfd);
	if (!tap(dmabufs_of(kd) == before, "%s: no dma-buf left behind",
		 kd->label))
		diag("dmabufs %lld, was %lld", dmabufs_of(kd), before);
}

/* ---------------------------------------------------------- removal */

/*
 * In a child that writes to sysfs: drop the parent's importer and dma-buf
 * fds, or a removal waiting for an importer to detach would wait for us.
 */
static void close_inherited(void)
{
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
}

/* Write to a sysfs file in a child: a hang must not hang the suite. */
static int write_with_timeout(const char *path, const char *s, int seconds)
{
	pid_t pid = fork();
	int status, waited;

	if (pid < 0)
		return -errno;
	if (!pid) {
		close_inherited();
		_exit(write_str(path, s) ? 1 : 0);
	}
	for (waited = 0; waited < seconds * 10; waited++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) && !WEXITSTATUS(status) ?
			       0 : -EIO;
		usleep(100000);
	}
	return -ETIMEDOUT;
}

static bool wait_node(struct kdev *kd, int seconds)
{
	for (int i = 0; i < seconds * 10; i++) {
		if (!pci_node(kd->pci, kd->name, sizeof(kd->name)))
			return true;
		usleep(100000);
	}
	return false;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
}

/* BAR2 of a PCI device, from sysfs: [*start, *end]. */
static int bar2_of(const char *pci, u64 *start, u64 *end)
{
	char path[96], line[128];
	FILE *f;
	int i, ret = -EIO;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource", pci);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	for (i = 0; i <= 2 && fgets(line, sizeof(line), f); i++)
		if (i == 2 && sscanf(line, "%llx %llx", start, end) == 2 &&
		    *start)
			ret = 0;
	fclose(f);
	return ret;
}

/* Lines of /proc/vmallocinfo whose phys= lies in [start, end]. */
static int kernel_maps_of(u64 start, u64 end)
{
	char line[512], *p;
	int n = 0;
	FILE *f = fopen("/proc/vmallocinfo", "r");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		u64 phys;

		p = strstr(line, " phys=");
		if (p && sscanf(p, " phys=%llx", &phys) == 1 &&
		    phys >= start && phys <= end) {
			diag("vmallocinfo: %.*s", (int)strcspn(line, "\n"),
			     line);
			n++;
		}
	}
	fclose(f);
	return n;
}

/*
 * Diagnostics only: the memory types the kernel reserved for [start, end]
 * (x86 PAT, debugfs) and the firmware's MTRRs.
 */
static void show_memtypes(u64 start, u64 end)
{
	static int mtrr_shown;
	char line[256];
	FILE *f = fopen("/sys/kernel/debug/x86/pat_memtype_list", "r");

	while (f && fgets(line, sizeof(line), f)) {
		u64 a, b;

		if (sscanf(line, "PAT: [mem 0x%llx-0x%llx]", &a, &b) == 2 &&
		    a <= end && b > start)
			diag("pat_memtype_list: %.*s", (int)strcspn(line, "\n"),
			     line);
	}
	if (f)
		fclose(f);
	f = mtrr_shown++ ? NULL : fopen("/proc/mtrr", "r");
	while (f && fgets(line, sizeof(line), f))
		diag("mtrr: %.*s", (int)strcspn(line, "\n"), line);
	if (f)
		fclose(f);
}

/* Remove a PCI device in a child process; returns its pid. */
static pid_t remove_in_background(const char *pci)
{
	char path[96];
	pid_t pid;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", pci);
	pid = fork();
	if (!pid) {
		close_inherited();
		_exit(write_str(path, "1") ? 1 : 0);
	}
	return pid;
}

/* Wait up to @seconds for the child: 0 it succeeded, -EIO it failed. */
static int wait_child(pid_t pid, double seconds)
{
	int status;

	for (double t0 = now_s(); now_s() - t0 < seconds; usleep(20000))
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) && !WEXITSTATUS(status) ?
			       0 : -EIO;
	return -ETIMEDOUT;
}

/* The kernel log from now on. */
static int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/* Wait up to @seconds for a kernel log line holding all three strings. */
static bool kmsg_wait(int fd, const char *a, const char *b, const char *c,
		      double seconds)
{
	char rec[1024];
	double t0 = now_s();
	bool found = false;

	if (fd < 0)
		return false;
	while (!found && now_s() - t0 < seconds) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);

		if (n < 0 && errno == EAGAIN) {
			usleep(50000);
			continue;
		}
		if (n < 0 && errno != EPIPE)
			break;
		if (n <= 0)
			continue;
		rec[n] = 0;
		if (strstr(rec, a) && strstr(rec, b) && strstr(rec, c)) {
			diag("kernel: %.*s", (int)strcspn(rec, "\n"), rec);
			found = true;
		}
	}
	close(fd);
	return found;
}

static void rescan(struct kdev *kd)
{
	int ret = write_str("/sys/bus/pci/rescan", "1");

	if (!tap(!ret && wait_node(kd, 20) && !kdev_open(kd),
		 "%s: rescan brings the device back", kd->label))
		bail("%s did not come back: %s", kd->pci, errname(-ret));
	diag("%s is /dev/%s again", kd->pci, kd->name);
}

/*
 * A pinned importer (no move_notify) keeps a valid mapping of the BAR until
 * it detaches: removal waits for it, its DMA meanwhile still lands in the
 * BAR, and its IOVAs are never handed to another mapping (here: a new
 * import of static memory, which must stay untouched).
 */
static void test_pinned_removal(struct kdev *kd, struct kdev *other)
{
	const u64 size = 0x100000;
	struct imported pin, fresh;
	u64 seed1 = next_seed(), seed2 = next_seed(), bg = next_seed();
	u8 src[64];
	pid_t pid;
	bool waits, apart;
	long bad;
	int ret, kmsg, removed;

	ret = import_range(&pin, kd, 0, size, KVMFR_EDU_IMPORT_STATIC);
	pat_fill(src, seed1, 0x2000, sizeof(src));
	ret = ret ?: buf_write(pin.efd, 0, sizeof(src), src);
	ret = ret ?: edu_dma(pin.efd, 0x2000, sizeof(src), 0,
			     KVMFR_EDU_FROM_EDU, NULL);
	bad = ret ? -1 : pat_check(kd->map + 0x2000, seed1, 0x2000,
				   sizeof(src));
	if (!tap(!ret && bad < 0,
		 "%s: a pinned (static) importer of a 1 MiB dma-buf does DMA",
		 kd->label)) {
		diag("%s", errname(-ret));
		return;
	}
	describe("pinned importer", &pin.imp);

	/* Only the importer keeps the dma-buf and its mapping. */
	munmap((void *)pin.dbmap, pin.size);
	pin.dbmap = NULL;
	close(pin.dbfd);
	pin.dbfd = -1;
	kdev_close(kd);

	kmsg = kmsg_open();
	pid = remove_in_background(kd->pci);
	tap(kmsg_wait(kmsg, kd->pci, "removal waits", "kvmfr_edu", 10),
	    "%s: removal logs that it waits for the pinned importer (kvmfr_edu)",
	    kd->label);
	removed = wait_child(pid, 0.5);
	waits = removed == -ETIMEDOUT;
	tap(waits, "%s: removal waits while the pinned importer has the dma-buf mapped",
	    kd->label);

	/* A new mapping meanwhile: static memory, filled with a background. */
	pat_fill(other->map, bg, 0, size);
	ret = import_range(&fresh, other, 0, size, 0);
	if (!ret)
		describe("new import meanwhile", &fresh.imp);
	apart = !ret && (fresh.imp.dma_last < pin.imp.dma_first ||
			 fresh.imp.dma_first > pin.imp.dma_last);
	tap(apart, "%s: a new import of %s during the removal gets IOVAs apart from the pinned importer's",
	    kd->label, other->label);

	pat_fill(src, seed2, 0x3000, sizeof(src));
	ret = buf_write(pin.efd, 0, sizeof(src), src);
	ret = ret ?: edu_dma(pin.efd, 0x3000, sizeof(src), 0,
			     KVMFR_EDU_FROM_EDU, NULL);
	if (!tap(!ret, "%s: the pinned importer's DMA during the removal succeeds",
		 kd->label))
		diag("%s", errname(-ret));
	bad = pat_check(other->map, bg, 0, size);
	if (!tap(bad < 0, "%s: ... and does not reach %s's memory", kd->label,
		 other->label))
		diag("%s changed at byte %#lx", other->label, bad);
	if (!ret)
		release_range(&fresh);

	close(pin.efd);
	pin.efd = -1;
	ret = waits ? wait_child(pid, 30) : removed;
	if (!tap(!ret, "%s: removal completes once the pinned importer detaches",
		 kd->label))
		bail("removal of %s: %s", kd->pci, errname(-ret));
	release_range(&pin);

	if (kmsg >= 0)
		close(kmsg);
	rescan(kd);
	bad = pat_check(kd->map + 0x2000, seed1, 0x2000, sizeof(src));
	if (bad < 0)
		bad = pat_check(kd->map + 0x3000, seed2, 0x3000, sizeof(src));
	tap(bad < 0, "%s: the pinned importer's DMA before and during the removal is in the BAR",
	    kd->label);
}

/*
 * A dynamic importer with a fenced DMA queued: removal tells it to unmap
 * (move_notify), waits for its fence, and returns only after the DMA is
 * done. Then a vmap of the revoked dma-buf: no warning, no BAR.
 */
static void test_fenced_removal(struct kdev *kd)
{
	const u64 size = 0x100000, at = 0x5001, vat = 0x7000;
	struct kvmfr_edu_async a = {
		.offset = at, .len = BUF_SIZE, .dir = KVMFR_EDU_FROM_EDU,
		.delay_ms = 1000,
	};
	struct kvmfr_edu_async_status st = { 0 };
	struct dma_buf_sync sync = { DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW };
	struct kvmfr_edu_import imp;
	u64 seed = next_seed(), bg = next_seed(), vseed = next_seed();
	u64 bar_start = 0, bar_end = 0, t0, t1;
	struct imported dyn;
	u8 src[BUF_SIZE], page[4096];
	char path[96];
	bool zero;
	int ret, other;
	void *p;
	long bad;

	if (!tap(!bar2_of(kd->pci, &bar_start, &bar_end),
		 "%s: BAR2 from sysfs", kd->label))
		return;
	diag("%s: BAR2 %#llx-%#llx", kd->label, bar_start, bar_end);
	tap(kernel_maps_of(bar_start, bar_end) > 0,
	    "%s: before removal /proc/vmallocinfo lists a kernel mapping of the BAR",
	    kd->label);

	ret = import_range(&dyn, kd, 0, size, 0);
	pat_fill(kd->map + vat, bg, vat, 64);
	pat_fill(src, seed, at, BUF_SIZE);
	ret = ret ?: buf_write(dyn.efd, 0, BUF_SIZE, src);
	ret = ret ?: xioctl(dyn.efd, KVMFR_EDU_DMA_ASYNC, &a);
	if (!tap(!ret, "%s: a dynamic importer queues a fenced DMA that starts in 1 s",
		 kd->label)) {
		diag("%s", errname(-ret));
		release_range(&dyn);
		return;
	}
	munmap((void *)dyn.dbmap, dyn.size);
	dyn.dbmap = NULL;
	kdev_close(kd);

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", kd->pci);
	t0 = now_ns();
	ret = write_with_timeout(path, "1", 60);
	t1 = now_ns();
	if (!tap(!ret, "%s: removal with a fenced DMA queued completes",
		 kd->label))
		bail("removal of %s: %s", kd->pci, errname(-ret));
	xioctl(dyn.efd, KVMFR_EDU_ASYNC_STATUS, &st);
	if (!tap(st.done && !st.result && st.done_ns <= t1,
		 "%s: removal returns only after the importer's fenced DMA is done",
		 kd->label))
		diag("DMA done %u, %s", st.done, errname(-st.result));
	diag("removal took %.3f s; the DMA was done %.3f s before it returned",
	     (t1 - t0) / 1e9, st.done ? ((double)t1 - st.done_ns) / 1e9 : 0);

	expect_err(edu_dma(dyn.efd, 0x2000, 64, 0, KVMFR_EDU_FROM_EDU, NULL),
		   ENODEV, "after removal: DMA by the dynamic importer (told by move_notify)");
	expect_err(xioctl(dyn.efd, KVMFR_EDU_MAP, &imp), ENODEV,
		   "after removal: the dynamic importer cannot map again");

	memset(page, 0xa5, sizeof(page));
	ret = edu_xfer_flags(dyn.efd, KVMFR_EDU_VMAP_READ, 0x5000,
			     sizeof(page), page, KVMFR_EDU_VMAP_NO_CPU_ACCESS);
	zero = true;
	for (size_t i = 0; i < sizeof(page); i++)
		zero &= !page[i];
	if (!tap(!ret && zero,
		 "after removal: a vmap succeeds and reads zeros, not the BAR"))
		diag("%s", errname(-ret));
	pat_fill(src, vseed, vat, 64);
	expect_err(edu_xfer_flags(dyn.efd, KVMFR_EDU_VMAP_WRITE, vat, 64, src,
				  KVMFR_EDU_VMAP_NO_CPU_ACCESS), 0,
		   "after removal: a write through a new vmap");
	expect_err(edu_xfer_flags(dyn.efd, KVMFR_EDU_VMAP_READ, 0, 64, page,
				  KVMFR_EDU_VMAP_FIRST), ENODEV,
		   "after removal: vmap, then begin_cpu_access");
	expect_err(edu_xfer(dyn.efd, KVMFR_EDU_VMAP_READ, 0, 64, page), ENODEV,
		   "after removal: begin_cpu_access (before any vmap)");
	tap(kernel_maps_of(bar_start, bar_end) == 0,
	    "%s: after removal no kernel mapping of the BAR is left (/proc/vmallocinfo), its dma-buf still alive",
	    kd->label);
	expect_err(xioctl(dyn.dbfd, DMA_BUF_IOCTL_SYNC, &sync), ENODEV,
		   "after removal: DMA_BUF_IOCTL_SYNC on the dma-buf");
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, dyn.dbfd, 0);
	expect_err(p == MAP_FAILED ? -errno : 0, ENODEV,
		   "after removal: mmap of the dma-buf");
	if (p != MAP_FAILED)
		munmap(p, 4096);
	other = edu_open();
	expect_err(edu_import(other, dyn.dbfd, 0, &imp), ENODEV,
		   "after removal: a new importer cannot attach");
	close(other);
	expect_err(xioctl(dyn.efd, KVMFR_EDU_RELEASE, NULL), 0,
		   "after removal: the dynamic importer releases");
	release_range(&dyn);

	rescan(kd);
	bad = pat_check(kd->map + at, seed, at, BUF_SIZE);
	if (!tap(bad < 0, "%s: the fenced DMA is in the BAR", kd->label))
		diag("first difference at byte %ld", bad);
	bad = pat_check(kd->map + vat, bg, vat, 64);
	if (!tap(bad < 0, "%s: the vmap write after removal did not reach the BAR",
		 kd->label))
		diag("first difference at byte %ld", bad);

	ret = import_range(&dyn, kd, 0, size, 0);
	seed = next_seed();
	pat_fill(src, seed, 0x3000, 64);
	ret = ret ?: buf_write(dyn.efd, 0, 64, src);
	ret = ret ?: edu_dma(dyn.efd, 0x3000, 64, 0, KVMFR_EDU_FROM_EDU, NULL);
	bad = ret ? -1 : pat_check(kd->map + 0x3000, seed, 0x3000, 64);
	if (!tap(!ret && bad < 0, "%s: after rescan a new import does DMA",
		 kd->label))
		diag("%s", errname(-ret));
	release_range(&dyn);
}

/* A vmap kept by a kernel importer holds the BAR like a pinned mapping. */
static void test_vmap_held_removal(struct kdev *kd)
{
	struct imported im;
	int ret, kmsg, removed;
	bool waits;
	pid_t pid;

	ret = import_range(&im, kd, 0, 0x10000, 0);
	ret = ret ?: xioctl(im.efd, KVMFR_EDU_VMAP_HOLD, NULL);
	if (!tap(!ret, "%s: a dynamic importer keeps a vmap of its dma-buf",
		 kd->label)) {
		diag("%s", errname(-ret));
		release_range(&im);
		return;
	}
	expect_err(xioctl(im.efd, KVMFR_EDU_VMAP_HOLD, NULL), EBUSY,
		   "a second held vmap on the same file");
	munmap((void *)im.dbmap, im.size);
	im.dbmap = NULL;
	kdev_close(kd);

	kmsg = kmsg_open();
	pid = remove_in_background(kd->pci);
	tap(kmsg_wait(kmsg, kd->pci, "removal waits", "a vmap", 10),
	    "%s: removal logs that it waits for a vmap", kd->label);
	removed = wait_child(pid, 0.5);
	waits = removed == -ETIMEDOUT;
	tap(waits, "%s: removal waits while the vmap is held", kd->label);
	expect_err(xioctl(im.efd, KVMFR_EDU_VMAP_DROP, NULL), 0,
		   "the importer drops its vmap");
	ret = waits ? wait_child(pid, 30) : removed;
	if (!tap(!ret, "%s: removal completes once the vmap is dropped",
		 kd->label))
		bail("removal of %s: %s", kd->pci, errname(-ret));
	expect_err(xioctl(im.efd, KVMFR_EDU_VMAP_DROP, NULL), EINVAL,
		   "dropping a vmap that is not held");
	if (kmsg >= 0)
		close(kmsg);
	release_range(&im);
	rescan(kd);
}

/*
 * More importers of one page than the DMA API debug code tracks (8 mappings
 * of a cache line; one more is a warning, a panic with panic_on_warn).
 */
#define OVERLAP_IMPORTERS 10

static void test_overlapping_importers(struct kdev *kd)
{
	const u64 off = 0x80000, size = 0x10000;
	struct kvmfr_edu_import imp;
	int efd[OVERLAP_IMPORTERS], dbfd, ret = 0, i, n = 0, good = 0;
	u8 got[64];
	u64 seed = next_seed();

	dbfd = dmabuf_create(kd, off, size);
	if (dbfd < 0)
		bail("%s: cannot create a dma-buf: %s", kd->label,
		     errname(-dbfd));
	for (i = 0; i < OVERLAP_IMPORTERS; i++) {
		efd[i] = edu_open();
		ret = ret ?: edu_import(efd[i], dbfd,
					i & 1 ? KVMFR_EDU_IMPORT_STATIC : 0,
					&imp);
		n += !ret;
	}
	if (!tap(n == OVERLAP_IMPORTERS,
		 "%s: %d importers (half dynamic, half static) of one dma-buf mapped at once",
		 kd->label, OVERLAP_IMPORTERS))
		diag("%d mapped, then %s", n, errname(-ret));
	for (i = 0; i < n; i++) {
		u64 at = 0x100 + 64 * (u64)i;

		pat_fill(kd->map + off + at, seed, at, sizeof(got));
		ret = edu_dma(efd[i], at, sizeof(got), 0, KVMFR_EDU_TO_EDU,
			      NULL);
		ret = ret ?: edu_xfer(efd[i], KVMFR_EDU_BUF_READ, 0,
				      sizeof(got), got);
		good += !ret && pat_check(got, seed, at, sizeof(got)) < 0;
		if (!ret)
			memcpy(shadow, got, sizeof(got));
	}
	tap(n && good == n, "%s: each of them reads its part of the dma-buf by DMA",
	    kd->label);
	for (i = 0; i < OVERLAP_IMPORTERS; i++)
		close(efd[i]);
	close(dbfd);
}

/* ------------------------------------------------------------- main */

static void test_edu_itself(void)
{
	struct kvmfr_edu_info info;
	u8 a[BUF_SIZE], b[BUF_SIZE];
	int efd = edu_open(), ret;

	ret = xioctl(efd, KVMFR_EDU_INFO, &info);
	if (ret)
		bail("KVMFR_EDU_INFO: %s", errname(-ret));
	diag("edu: DMA mask %u bits, max segment %u B, IOMMU %s%s",
	     info.dma_mask_bits, info.max_seg_size,
	     info.iommu ? "DMA domain" : "none",
	     info.iommu ? (info.strict ? " (strict)" : " (lazy)") : "");
	tap(info.iommu, "edu translates through an IOMMU DMA domain");
	tap(info.dma_mask_bits == 28, "edu DMA mask is 28 bits");

	pat_fill(a, next_seed(), 0, BUF_SIZE);
	ret = buf_write(efd, 0, BUF_SIZE, a);
	ret = ret ?: edu_xfer(efd, KVMFR_EDU_BUF_READ, 0, BUF_SIZE, b);
	if (!tap(!ret && !memcmp(a, b, BUF_SIZE),
		 "edu buffer: 4095 B written and read back by DMA"))
		diag("%s", errname(-ret));
	close(efd);
}

static struct kdev *marker_dev(void)
{
	for (int i = 0; i < ndevs; i++)
		if (devs[i].index == 0)
			return &devs[i];
	return NULL;
}

/*
 * The range [MARKER_OFF, +MARKER_LEN) of ivshmem device 0 is zeroed by the
 * CPU and then written by edu with the guest pattern KVMFR_GUEST_SEED(0):
 * the host finds the guest pattern there only if the DMA reached the file.
 */
static int run_marker(void)
{
	struct kdev *kd = marker_dev();
	u64 first = MARKER_OFF / 8, count = MARKER_LEN / 8;
	u64 words[MARKER_LEN / 8];
	struct imported im;
	u32 transfers = 0;
	bool zero;
	int ret;

	if (!kd || kdev_open(kd))
		bail("no ivshmem device 0 (KVMFR_PCI=\"%s\")",
		     getenv("KVMFR_PCI") ?: "");
	zero = true;
	for (u32 i = 0; i < MARKER_LEN; i++)
		kd->map[MARKER_OFF + i] = 0;
	for (u32 i = 0; i < MARKER_LEN; i++)
		zero &= kd->map[MARKER_OFF + i] == 0;
	tap(zero, "%s: marker range [%#llx, +%#x) zeroed by the CPU",
	    kd->label, MARKER_OFF, MARKER_LEN);
	ret = import_range(&im, kd, 0, 0x20000, 0);
	kvmfr_pattern_fill((uint64_t *)words, KVMFR_GUEST_SEED(0), first, count);
	ret = ret ?: buf_write(im.efd, 0, MARKER_LEN, words);
	ret = ret ?: edu_dma(im.efd, MARKER_OFF, MARKER_LEN, 0,
			     KVMFR_EDU_FROM_EDU, &transfers);
	if (!tap(!ret && kvmfr_pattern_check((uint64_t *)
					     (kd->map + MARKER_OFF),
					     KVMFR_GUEST_SEED(0), first,
					     count) == count,
		 "%s: edu wrote guest pattern 0, words [%#llx, %#llx), by DMA",
		 kd->label, first, first + count))
		diag("%s", errname(-ret));
	diag("%u edu transfer(s); the host checks these bytes of ivshmem 0 after poweroff",
	     transfers);
	if (!ret)
		release_range(&im);
	kdev_close(kd);
	return tap_end();
}

int main(int argc, char **argv)
{
	struct kdev *first_static = NULL, *first_pci = NULL, *last_pci = NULL;
	int i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "marker"))) {
		fprintf(stderr, "usage: %s [marker]\n", argv[0]);
		return 2;
	}
	printf("TAP version 13\n");
	find_devs();
	if (argc == 2)
		return run_marker();
	if (!ndevs)
		bail("no kvmfr device (is kvmfr.ko loaded?)");
	for (i = 0; i < ndevs; i++) {
		if (kdev_open(&devs[i]))
			bail("cannot open and map %s (/dev/%s)", devs[i].label,
			     devs[i].name);
		diag("%s: /dev/%s, %llu MiB", devs[i].label,
		     devs[i].name, devs[i].size >> 20);
		if (devs[i].pci[0]) {
			u64 start, end;

			if (!bar2_of(devs[i].pci, &start, &end)) {
				diag("%s: BAR2 %#llx-%#llx", devs[i].label,
				     start, end);
				show_memtypes(start, end);
			}
			first_pci = first_pci ?: &devs[i];
			last_pci = &devs[i];
		} else {
			first_static = first_static ?: &devs[i];
		}
	}

	test_failures(&devs[0]);
	test_edu_itself();
	for (i = 0; i < ndevs; i++)
		test_data_paths(&devs[i]);
	for (i = 0; i < ndevs; i++)
		test_whole_device(&devs[i]);
	if (first_static && first_pci)
		test_many_importers(first_static, first_pci);
	else
		tap_skip("needs a static and a PCI device", "4 importers at once");
	if (first_pci)
		test_overlapping_importers(first_pci);
	else
		tap_skip("no PCI device", "10 importers of one page");
	test_importer_holds_dmabuf(&devs[0]);
	test_cycles(first_static ?: &devs[0]);
	if (last_pci && first_static)
		test_pinned_removal(last_pci, first_static);
	else
		tap_skip("needs a static and a PCI device",
			 "a pinned importer holds the BAR through removal");
	if (last_pci) {
		test_fenced_removal(last_pci);
		test_vmap_held_removal(last_pci);
	} else {
		tap_skip("no PCI device", "removal waits for fenced DMA");
	}

	for (i = 0; i < ndevs; i++)
		kdev_close(&devs[i]);
	return tap_end();
}
