// SPDX-License-Identifier: GPL-2.0
/*
 * A real DRM importer: vgem (CONFIG_DRM_VGEM, a module in Debian's kernels)
 * PRIME-imports kvmfr dma-bufs through the generic GEM import, a pinned
 * (non-dynamic) attachment mapped once at import time.
 *
 * What vgem offers, on 5.10 to 6.12 alike: DRM_IOCTL_PRIME_FD_TO_HANDLE
 * attaches and maps; DRM_IOCTL_PRIME_HANDLE_TO_FD of an imported handle
 * hands back the imported dma-buf itself; DRM_IOCTL_MODE_MAP_DUMB refuses
 * imported objects (drm_gem_dumb_map_offset), and vgem has no mmap-offset
 * ioctl of its own, so the CPU reaches an import only through that dma-buf's
 * own mmap, i.e. kvmfr's. vgem has one instance; a second DRM file (the
 * primary node beside the render node) is a second, independent importer.
 * Attachments are read from debugfs (dma_buf/bufinfo).
 *
 * Order: refusals first (not a dma-buf, MAP_DUMB of an import), then per
 * device the imports, bytes both ways, handles, a second importer, every
 * close order, SYNC (timed with and without the importer), then per IVSHMEM
 * device an import after removal and a removal while vgem holds an import.
 *
 * vgem is loaded from the modules tests/lib/add-modules.sh put in
 * /lib/kvmfr/vgem; without them the program skips.
 */
#include "kvmfr_test.h"

#include <sys/utsname.h>

/* ---------------------------------------------- DRM uapi (drm.h, drm_mode.h) */

struct drm_ver {
	int major, minor, patch;
	size_t name_len;
	char *name;
	size_t date_len;
	char *date;
	size_t desc_len;
	char *desc;
};

struct drm_gem_close_arg {
	uint32_t handle, pad;
};

struct drm_get_cap_arg {
	uint64_t capability, value;
};

struct drm_prime_arg {
	uint32_t handle, flags;
	int32_t fd;
};

struct drm_create_dumb_arg {
	uint32_t height, width, bpp, flags, handle, pitch;
	uint64_t size;
};

struct drm_map_dumb_arg {
	uint32_t handle, pad;
	uint64_t offset;
};

#define DRM_IOCTL_VERSION		_IOWR('d', 0x00, struct drm_ver)
#define DRM_IOCTL_GEM_CLOSE		_IOW('d', 0x09, struct drm_gem_close_arg)
#define DRM_IOCTL_GET_CAP		_IOWR('d', 0x0c, struct drm_get_cap_arg)
#define DRM_IOCTL_PRIME_HANDLE_TO_FD	_IOWR('d', 0x2d, struct drm_prime_arg)
#define DRM_IOCTL_PRIME_FD_TO_HANDLE	_IOWR('d', 0x2e, struct drm_prime_arg)
#define DRM_IOCTL_MODE_CREATE_DUMB	_IOWR('d', 0xb2, struct drm_create_dumb_arg)
#define DRM_IOCTL_MODE_MAP_DUMB		_IOWR('d', 0xb3, struct drm_map_dumb_arg)
#define DRM_CAP_PRIME			0x5
#define DRM_PRIME_CAP_IMPORT		0x1
#define DRM_CLOEXEC			O_CLOEXEC
#define DRM_RDWR			O_RDWR

_Static_assert(sizeof(struct drm_prime_arg) == 12, "drm_prime_handle");
_Static_assert(sizeof(struct drm_create_dumb_arg) == 32, "drm_mode_create_dumb");
_Static_assert(sizeof(struct drm_map_dumb_arg) == 16, "drm_mode_map_dumb");

#define BUFINFO		"/sys/kernel/debug/dma_buf/bufinfo"
#define REMOVE_TIMEOUT	60	/* seconds, TCG is slow */
#define SYNC_ROUNDS	201

static char vg_card[32], vg_render[32];	/* /dev/dri nodes of vgem */
static char vg_skip[256], vg_fail[256];
static long long refcnt_base;

/* ------------------------------------------------------------ vgem */

static bool node_is_vgem(const char *path)
{
	struct drm_ver v;
	char name[32] = "";
	int fd, r;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	memset(&v, 0, sizeof(v));
	v.name_len = sizeof(name) - 1;
	v.name = name;
	r = ioctl(fd, DRM_IOCTL_VERSION, &v);
	close(fd);
	return r == 0 && !strcmp(name, "vgem");
}

static bool vgem_find(void)
{
	struct dirent *de;
	char path[300];
	DIR *dir;

	vg_card[0] = vg_render[0] = '\0';
	dir = opendir("/dev/dri");
	while (dir && (de = readdir(dir))) {
		bool card = !strncmp(de->d_name, "card", 4);
		bool render = !strncmp(de->d_name, "renderD", 7);

		if (!card && !render)
			continue;
		snprintf(path, sizeof(path), "/dev/dri/%s", de->d_name);
		if ((card ? vg_card : vg_render)[0] || !node_is_vgem(path))
			continue;
		kt_strcpy(card ? vg_card : vg_render, path, sizeof(vg_card));
	}
	if (dir)
		closedir(dir);
	return vg_card[0] && vg_render[0];
}

/* Loads vgem (kt_load_modules); sets vg_skip or vg_fail. */
static void vgem_setup(void)
{
	char why[200];
	struct utsname u;
	int i;

	if (vgem_find())
		return;
	uname(&u);
	switch (kt_load_modules("vgem", why, sizeof(why))) {
	case 1:
		snprintf(vg_skip, sizeof(vg_skip), "kernel %.64s has no vgem: %.160s",
			 u.release, why);
		return;
	case -1:
		snprintf(vg_fail, sizeof(vg_fail), "%s", why);
		return;
	}
	for (i = 0; i < 100 && !vgem_find(); i++)
		kt_sleep_ms(50);
	if (!vg_card[0] || !vg_render[0])
		snprintf(vg_fail, sizeof(vg_fail),
			 "vgem loaded, but /dev/dri has no vgem card and render node");
}

static int drm_open(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		kt_diag("open %s: %s", path, kt_errname(errno));
	return fd;
}

/* PRIME import: 0 and the handle, or -errno. */
static int prime_import(int drm, int db, uint32_t *handle)
{
	struct drm_prime_arg a = { .fd = db };

	if (ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, &a))
		return -errno;
	*handle = a.handle;
	return 0;
}

/* PRIME export of a handle: a new fd, or -errno. */
static int prime_export(int drm, uint32_t handle)
{
	struct drm_prime_arg a = { .handle = handle,
				   .flags = DRM_CLOEXEC | DRM_RDWR,
				   .fd = -1 };

	if (ioctl(drm, DRM_IOCTL_PRIME_HANDLE_TO_FD, &a))
		return -errno;
	return a.fd;
}

static bool gem_close(int drm, uint32_t handle)
{
	struct drm_gem_close_arg a = { .handle = handle };

	if (!ioctl(drm, DRM_IOCTL_GEM_CLOSE, &a))
		return true;
	kt_diag("GEM_CLOSE(%u): %s", handle, kt_errname(errno));
	return false;
}

static ino_t fd_ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : st.st_ino;
}

/* Whether fds a and b are the same dma-buf (each has its own inode). */
static bool same_dmabuf(int a, int b)
{
	struct stat sa, sb;

	if (fstat(a, &sa) || fstat(b, &sb))
		return false;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * vgem attachments of the dma-buf with inode ino per debugfs bufinfo;
 * *total: all its attachments. -1: the buffer is not listed (freed), -2:
 * bufinfo unreadable.
 */
static int bufinfo_vgem(ino_t ino, int *total)
{
	char line[512], exp[64];
	unsigned long size, bino;
	unsigned int flags, mode;
	int state = 0, vgem = 0, all = 0;
	long count;
	FILE *f;

	*total = 0;
	f = fopen(BUFINFO, "r");
	if (!f)
		return -2;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (state == 0) {
			if (sscanf(line, "%lu %x %x %ld %63s %lu", &size, &flags,
				   &mode, &count, exp, &bino) == 6 && bino == ino)
				state = 1;
		} else if (state == 1) {
			if (!strcmp(line, "\tAttached Devices:"))
				state = 2;
		} else if (line[0] == '\t') {
			all++;
			vgem += !strcmp(line + 1, "vgem");
		} else {
			break;
		}
	}
	fclose(f);
	*total = all;
	return state ? vgem : -1;
}

/* Checks the number of vgem attachments of db (and that no other exist). */
static bool attached_is(int db, int want, const char *when)
{
	int total, n = bufinfo_vgem(fd_ino(db), &total);

	if (n == want && total == want)
		return true;
	if (n == -2)
		kt_diag("%s: cannot read %s", when, BUFINFO);
	else if (n == -1)
		kt_diag("%s: the dma-buf is not in %s", when, BUFINFO);
	else
		kt_diag("%s: %d vgem attachments (%d in all), expected %d",
			when, n, total, want);
	return false;
}

/* bufinfo no longer lists the dma-buf with inode ino. */
static bool freed(ino_t ino, const char *when)
{
	int total, n = bufinfo_vgem(ino, &total);

	if (n == -1)
		return true;
	kt_diag("%s: the dma-buf is still in %s (%d attachments)", when,
		BUFINFO, total);
	return false;
}

static bool dmabufs_is(struct kvmfr_dev *d, long long want, const char *when)
{
	long long n = kt_dmabufs(d);

	if (n == want)
		return true;
	kt_diag("%s: %s dmabufs reads %lld, expected %lld", when, d->name, n,
		want);
	return false;
}

/* ------------------------------------------------------------ fixture */

#define NR_RANGES 5

struct imp {
	int db;			/* kvmfr dma-buf */
	uint32_t handle;	/* its vgem handle */
	uint64_t off, len;
};

struct fixture {
	int fd, drm;
	uint8_t *dev;		/* whole-device mapping */
	int n;
	struct imp im[NR_RANGES];
};

/* One page; three at page 1; 1 MiB + 1 page in the middle; last page; all. */
static void ranges(const struct kvmfr_dev *d, struct imp *im)
{
	const uint64_t p = kt_page, s = d->size;
	const uint64_t r[NR_RANGES][2] = {
		{ 0, p }, { p, 3 * p }, { s / 2 + 5 * p, (1 << 20) + p },
		{ s - p, p }, { 0, s },
	};
	int i;

	for (i = 0; i < NR_RANGES; i++) {
		im[i].off = r[i][0];
		im[i].len = r[i][1];
	}
}

static void teardown(struct fixture *f, uint64_t dev_size)
{
	int i;

	for (i = 0; i < f->n; i++) {
		if (f->im[i].handle && f->drm >= 0)
			gem_close(f->drm, f->im[i].handle);
		kt_close(f->im[i].db);
	}
	kt_unmap(f->dev, dev_size);
	kt_close(f->drm);
	kt_close(f->fd);
}

/* Device fd and mapping, vgem render fd, n dma-bufs imported. */
static bool setup(struct kvmfr_dev *d, struct fixture *f, int n)
{
	struct imp *im;
	int i, r;

	memset(f, 0, sizeof(*f));
	f->drm = -1;
	ranges(d, f->im);
	f->fd = kt_open(d);
	if (f->fd < 0)
		return false;
	f->dev = kt_map(f->fd, 0, d->size);
	f->drm = drm_open(vg_render);
	if (!f->dev || f->drm < 0) {
		teardown(f, d->size);
		return false;
	}
	for (i = 0; i < n; i++, f->n++) {
		im = &f->im[i];
		im->db = kt_create(f->fd, KVMFR_DMABUF_FLAG_CLOEXEC, im->off,
				   im->len);
		if (im->db < 0) {
			kt_diag("CREATE(offset 0x%" PRIx64 ", size 0x%" PRIx64 "): %s",
				im->off, im->len, kt_errname(errno));
			teardown(f, d->size);
			return false;
		}
		r = prime_import(f->drm, im->db, &im->handle);
		if (r) {
			kt_diag("PRIME_FD_TO_HANDLE of [0x%" PRIx64 ", +0x%" PRIx64 "): %s",
				im->off, im->len, kt_errname(-r));
			f->n++;
			teardown(f, d->size);
			return false;
		}
	}
	return true;
}

/* The import's dma-buf as vgem hands it back, mapped; NULL on failure. */
static uint8_t *map_reexport(struct fixture *f, const struct imp *im, int *out)
{
	uint8_t *p;
	int fd;

	*out = -1;
	fd = prime_export(f->drm, im->handle);
	if (fd < 0) {
		kt_diag("PRIME_HANDLE_TO_FD(%u): %s", im->handle, kt_errname(-fd));
		return NULL;
	}
	p = kt_map(fd, 0, im->len);
	if (!p) {
		close(fd);
		return NULL;
	}
	*out = fd;
	return p;
}

/* ------------------------------------------------------ refusals */

static int not_a_dmabuf(void)
{
	struct kvmfr_dev *d = &kt_devs[0];
	uint32_t h = 0;
	int fd, drm, r, res = KT_PASS;

	if (!kt_resolve(d))
		return kt_fail("%s: no such device", d->label);
	fd = kt_open(d);
	drm = drm_open(vg_render);
	if (fd < 0 || drm < 0) {
		kt_close(fd);
		kt_close(drm);
		return KT_FAIL;
	}
	r = prime_import(drm, fd, &h);
	if (!kt_errno_is(r ? -1 : 0, -r, EINVAL, "PRIME_FD_TO_HANDLE of /dev/kvmfr0"))
		res = KT_FAIL;
	if (!r)
		gem_close(drm, h);
	kt_close(drm);
	kt_close(fd);
	return res;
}

/* DRM maps no imported object; a vgem buffer of its own it does map. */
static int map_dumb_refused(void)
{
	struct drm_create_dumb_arg c = { .height = 16, .width = 256, .bpp = 32 };
	struct drm_map_dumb_arg m;
	struct kvmfr_dev *d = &kt_devs[0];
	int fd, drm, db = -1, r, e, res = KT_PASS;
	uint32_t h = 0;

	if (!kt_resolve(d))
		return kt_fail("%s: no such device", d->label);
	fd = kt_open(d);
	drm = drm_open(vg_card);	/* MAP_DUMB is not for render nodes */
	if (fd < 0 || drm < 0)
		goto close_fds;
	if (ioctl(drm, DRM_IOCTL_MODE_CREATE_DUMB, &c)) {
		res = kt_fail("CREATE_DUMB: %s", kt_errname(errno));
		goto close_fds;
	}
	memset(&m, 0, sizeof(m));
	m.handle = c.handle;
	if (ioctl(drm, DRM_IOCTL_MODE_MAP_DUMB, &m))
		res = kt_fail("MAP_DUMB of vgem's own buffer: %s", kt_errname(errno));
	gem_close(drm, c.handle);

	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, kt_page, 2 * kt_page);
	if (db < 0 || prime_import(drm, db, &h)) {
		res = kt_fail("CREATE or import: %s", kt_errname(errno));
		goto close_fds;
	}
	memset(&m, 0, sizeof(m));
	m.handle = h;
	r = ioctl(drm, DRM_IOCTL_MODE_MAP_DUMB, &m);
	e = errno;
	if (!kt_errno_is(r, e, EINVAL, "MAP_DUMB of the import"))
		res = KT_FAIL;
	gem_close(drm, h);
	kt_close(db);
	kt_close(drm);
	kt_close(fd);
	return res;

close_fds:
	kt_close(db);
	kt_close(drm);
	kt_close(fd);
	return KT_FAIL;
}

/* ------------------------------------------------ per-device cases */

static int reexport_same(struct kvmfr_dev *d)
{
	struct fixture f;
	int i, j, fd, res = KT_PASS;

	if (!setup(d, &f, NR_RANGES))
		return KT_FAIL;
	for (i = 0; i < f.n; i++) {
		for (j = 0; j < i; j++)
			if (f.im[i].handle == f.im[j].handle)
				res = kt_fail("ranges %d and %d got handle %u", i,
					      j, f.im[i].handle);
		fd = prime_export(f.drm, f.im[i].handle);
		if (fd < 0) {
			res = kt_fail("PRIME_HANDLE_TO_FD(%u): %s",
				      f.im[i].handle, kt_errname(-fd));
			continue;
		}
		if (!same_dmabuf(fd, f.im[i].db))
			res = kt_fail("range %d: handle %u exports inode %lu, imported %lu",
				      i, f.im[i].handle, (unsigned long)fd_ino(fd),
				      (unsigned long)fd_ino(f.im[i].db));
		close(fd);
	}
	teardown(&f, d->size);
	return res;
}

static int bytes_dev_to_import(struct kvmfr_dev *d)
{
	uint64_t seed = kt_seed();
	struct fixture f;
	int i, fd, res = KT_PASS;
	char what[96];
	uint8_t *p;

	if (!setup(d, &f, NR_RANGES))
		return KT_FAIL;
	kt_fill_at(f.dev, 0, d->size, seed);
	for (i = 0; i < f.n; i++) {
		p = map_reexport(&f, &f.im[i], &fd);
		if (!p) {
			res = KT_FAIL;
			continue;
		}
		snprintf(what, sizeof(what), "import at 0x%" PRIx64 " (+0x%" PRIx64 ")",
			 f.im[i].off, f.im[i].len);
		if (!kt_check_at(p, f.im[i].off, f.im[i].len, seed, what))
			res = KT_FAIL;
		kt_unmap(p, f.im[i].len);
		close(fd);
	}
	teardown(&f, d->size);
	return res;
}

static int bytes_import_to_dev(struct kvmfr_dev *d)
{
	struct fixture f;
	int i, fd, res = KT_PASS;
	char what[96];
	uint64_t seed;
	uint8_t *p;

	if (!setup(d, &f, NR_RANGES))
		return KT_FAIL;
	for (i = 0; i < f.n; i++) {
		p = map_reexport(&f, &f.im[i], &fd);
		if (!p) {
			res = KT_FAIL;
			continue;
		}
		seed = kt_seed();
		kt_fill_at(p, f.im[i].off, f.im[i].len, seed);
		snprintf(what, sizeof(what), "device at 0x%" PRIx64 " (+0x%" PRIx64 ")",
			 f.im[i].off, f.im[i].len);
		if (!kt_check_at(f.dev + f.im[i].off, f.im[i].off, f.im[i].len,
				 seed, what))
			res = KT_FAIL;
		kt_unmap(p, f.im[i].len);
		close(fd);
	}
	teardown(&f, d->size);
	return res;
}

static int import_twice(struct kvmfr_dev *d)
{
	struct fixture f;
	uint32_t h2 = 0;
	int r, res = KT_PASS;

	if (!setup(d, &f, 2))
		return KT_FAIL;
	if (!attached_is(f.im[1].db, 1, "first import"))
		res = KT_FAIL;
	r = prime_import(f.drm, f.im[1].db, &h2);
	if (r)
		res = kt_fail("second import: %s", kt_errname(-r));
	else if (h2 != f.im[1].handle)
		res = kt_fail("second import: handle %u, first %u", h2,
			      f.im[1].handle);
	if (!attached_is(f.im[1].db, 1, "second import"))
		res = KT_FAIL;
	if (!dmabufs_is(d, 2, "imported twice"))
		res = KT_FAIL;
	teardown(&f, d->size);
	return res;
}

static int second_file(struct kvmfr_dev *d)
{
	struct fixture f;
	int drm2, fd, r, res = KT_PASS;
	uint32_t h2 = 0;

	if (!setup(d, &f, 3))
		return KT_FAIL;
	drm2 = drm_open(vg_card);
	if (drm2 < 0) {
		teardown(&f, d->size);
		return KT_FAIL;
	}
	r = prime_import(drm2, f.im[2].db, &h2);
	if (r) {
		res = kt_fail("import by %s: %s", vg_card, kt_errname(-r));
		goto out;
	}
	if (!attached_is(f.im[2].db, 2, "imported by both files"))
		res = KT_FAIL;
	fd = prime_export(drm2, h2);
	if (fd < 0 || !same_dmabuf(fd, f.im[2].db))
		res = kt_fail("%s's handle %u does not export the imported dma-buf",
			      vg_card, h2);
	if (fd >= 0)
		close(fd);
	/* the first file's import stays when the second goes */
	kt_close(drm2);
	drm2 = -1;
	if (!attached_is(f.im[2].db, 1, "second file closed"))
		res = KT_FAIL;
out:
	kt_close(drm2);
	teardown(&f, d->size);
	return res;
}

enum close_step { HANDLE, DMABUF, DRMFD };

static const char *step_name(enum close_step s)
{
	return s == HANDLE ? "GEM handle" : s == DMABUF ? "dma-buf fd" : "DRM fd";
}

/*
 * Closes the import's holders in order a, b (the third stays open) and
 * checks after each step what must still be alive. The kvmfr device fd is
 * closed first every time. The buffer must live exactly as long as its fd
 * or the import does; vgem's attachment exactly as long as the import.
 */
static int close_order(struct kvmfr_dev *d, enum close_step a, enum close_step b)
{
	enum close_step order[2] = { a, b };
	bool handle = true, dbfd = true, drmfd = true;
	struct fixture f;
	int i, res = KT_PASS;
	char when[64];
	ino_t ino;

	if (!setup(d, &f, 2))
		return KT_FAIL;
	ino = fd_ino(f.im[1].db);
	kt_unmap(f.dev, d->size);
	f.dev = NULL;
	kt_close(f.fd);
	f.fd = -1;
	for (i = 0; i < 2; i++) {
		switch (order[i]) {
		case HANDLE:
			if (!gem_close(f.drm, f.im[1].handle))
				res = KT_FAIL;
			f.im[1].handle = 0;
			handle = false;
			break;
		case DMABUF:
			kt_close(f.im[1].db);
			f.im[1].db = -1;
			dbfd = false;
			break;
		case DRMFD:
			kt_close(f.drm);
			f.drm = -1;
			f.im[0].handle = f.im[1].handle = 0;
			drmfd = false;
			break;
		}
		snprintf(when, sizeof(when), "%s closed", step_name(order[i]));
		/* im[0], imported beside it, keeps its fd: one buffer more */
		if (!dmabufs_is(d, 1 + (dbfd || (handle && drmfd)), when))
			res = KT_FAIL;
		if (dbfd || (handle && drmfd)) {
			int total, n = bufinfo_vgem(ino, &total);
			int want = handle && drmfd;

			if (n != want || total != want)
				res = kt_fail("%s: %d vgem attachments (%d in all), expected %d",
					      when, n, total, want);
		} else if (!freed(ino, when)) {
			res = KT_FAIL;
		}
	}
	teardown(&f, d->size);
	if (!dmabufs_is(d, 0, "all closed"))
		res = KT_FAIL;
	return res;
}

static int close_handle_dmabuf(struct kvmfr_dev *d)
{
	return close_order(d, HANDLE, DMABUF);
}

static int close_dmabuf_handle(struct kvmfr_dev *d)
{
	return close_order(d, DMABUF, HANDLE);
}

static int close_drm_dmabuf(struct kvmfr_dev *d)
{
	return close_order(d, DRMFD, DMABUF);
}

static int close_dmabuf_drm(struct kvmfr_dev *d)
{
	return close_order(d, DMABUF, DRMFD);
}

/* The import alone keeps the buffer: re-exported, it still has the bytes. */
static int import_keeps_bytes(struct kvmfr_dev *d)
{
	uint64_t seed = kt_seed();
	struct fixture f;
	int fd, res = KT_PASS;
	uint8_t *p;

	if (!setup(d, &f, 3))
		return KT_FAIL;
	kt_fill_at(f.dev + f.im[2].off, f.im[2].off, f.im[2].len, seed);
	kt_close(f.im[2].db);
	f.im[2].db = -1;
	p = map_reexport(&f, &f.im[2], &fd);
	if (!p) {
		teardown(&f, d->size);
		return KT_FAIL;
	}
	if (!kt_check_at(p, f.im[2].off, f.im[2].len, seed, "re-exported"))
		res = KT_FAIL;
	seed = kt_seed();
	kt_fill_at(p, f.im[2].off, f.im[2].len, seed);
	if (!kt_check_at(f.dev + f.im[2].off, f.im[2].off, f.im[2].len, seed,
			 "device after a write through the re-export"))
		res = KT_FAIL;
	kt_unmap(p, f.im[2].len);
	close(fd);
	teardown(&f, d->size);
	return res;
}

static int sync_pair(int db)
{
	struct dma_buf_sync s = { DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW };

	if (ioctl(db, DMA_BUF_IOCTL_SYNC, &s))
		return -errno;
	s.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
	if (ioctl(db, DMA_BUF_IOCTL_SYNC, &s))
		return -errno;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * Microseconds of a SYNC START + END pair: the median and the minimum of
 * SYNC_ROUNDS (the host is shared: a mean would mostly measure its load).
 */
static bool time_sync(int db, double *median, double *min)
{
	static double t[SYNC_ROUNDS];
	struct timespec a, b;
	int i;

	for (i = 0; i < SYNC_ROUNDS; i++) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (sync_pair(db))
			return false;
		clock_gettime(CLOCK_MONOTONIC, &b);
		t[i] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3;
	}
	qsort(t, SYNC_ROUNDS, sizeof(t[0]), cmp_double);
	*median = t[SYNC_ROUNDS / 2];
	*min = t[0];
	return true;
}

/*
 * SYNC with vgem attached: kvmfr syncs every mapping of the buffer for the
 * CPU and back. Timed on the whole device, without and with the import.
 */
static int sync_with_import(struct kvmfr_dev *d)
{
	struct fixture f;
	double without = 0, with = 0, min_without = 0, min_with = 0;
	int r, res = KT_PASS;
	int db;

	if (!setup(d, &f, 0))
		return KT_FAIL;
	db = kt_create(f.fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, d->size);
	if (db < 0) {
		teardown(&f, d->size);
		return kt_fail("CREATE whole device: %s", kt_errname(errno));
	}
	f.im[0].db = db;
	f.n = 1;
	if (!time_sync(db, &without, &min_without))
		res = kt_fail("SYNC without an importer: %s", kt_errname(errno));
	r = prime_import(f.drm, db, &f.im[0].handle);
	if (r) {
		teardown(&f, d->size);
		return kt_fail("import: %s", kt_errname(-r));
	}
	r = sync_pair(db);
	if (r)
		res = kt_fail("SYNC with vgem attached: %s", kt_errname(-r));
	if (!time_sync(db, &with, &min_with))
		res = kt_fail("SYNC with vgem attached: %s", kt_errname(errno));
	kt_diag("SYNC START+END of %" PRIu64 " MiB, median (min) of %d: %.1f (%.1f) us alone, %.1f (%.1f) us with vgem attached",
		d->size >> 20, SYNC_ROUNDS, without, min_without, with, min_with);
	teardown(&f, d->size);
	return res;
}

static int sync_flags(int db, unsigned long long flags)
{
	struct dma_buf_sync s = { flags };

	return ioctl(db, DMA_BUF_IOCTL_SYNC, &s) ? -errno : 0;
}

/*
 * Where the DMA layer bounces vgem's mapping through swiotlb (swiotlb=force;
 * SEV and TDX guests always), vgem's mapping is a copy: END copies the
 * memory into it, START copies it back. Proof that SYNC reaches the
 * importer's mapping: memory changed behind the sync's back (as the host
 * changes IVSHMEM memory) is replaced by the copy at the next START. Not
 * bounced (no copy to make): skipped. Closing the import (an unmap without
 * DMA_ATTR_SKIP_CPU_SYNC) copies the bounce buffer back once more: shown,
 * not asserted.
 */
static int sync_reaches_import(struct kvmfr_dev *d)
{
	uint64_t off = 4 * kt_page, len = 16 * kt_page;
	uint64_t s1 = kt_seed(), s2 = kt_seed(), s3 = kt_seed();
	long long used0, used1;
	int r, res = KT_PASS;
	struct fixture f;
	uint8_t *p;

	if (!setup(d, &f, 0))
		return KT_FAIL;
	f.im[0].db = kt_create(f.fd, KVMFR_DMABUF_FLAG_CLOEXEC, off, len);
	f.n = 1;
	used0 = kt_read_ll("/sys/kernel/debug/swiotlb/io_tlb_used");
	r = f.im[0].db < 0 ? -errno : prime_import(f.drm, f.im[0].db, &f.im[0].handle);
	if (r) {
		teardown(&f, d->size);
		return kt_fail("CREATE or import: %s", kt_errname(-r));
	}
	used1 = kt_read_ll("/sys/kernel/debug/swiotlb/io_tlb_used");
	if (used0 < 0 || used1 <= used0) {
		teardown(&f, d->size);
		return kt_skip("vgem's mapping is not bounced (swiotlb io_tlb_used %lld -> %lld): SYNC has no copy to make",
			       used0, used1);
	}
	p = kt_map(f.im[0].db, 0, len);
	if (!p) {
		teardown(&f, d->size);
		return KT_FAIL;
	}
	sync_flags(f.im[0].db, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW);
	kt_fill_at(p, off, len, s1);
	sync_flags(f.im[0].db, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW);
	kt_fill_at(f.dev + off, off, len, s2);	/* behind the sync's back */
	sync_flags(f.im[0].db, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW);
	if (!kt_check_at(p, off, len, s1, "after START, vgem's copy"))
		res = kt_fail("START did not copy vgem's bounce buffer back");
	sync_flags(f.im[0].db, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW);
	kt_fill_at(f.dev + off, off, len, s3);
	gem_close(f.drm, f.im[0].handle);
	f.im[0].handle = 0;
	kt_diag("closing the import %s",
		kvmfr_pattern_check((const uint64_t *)(f.dev + off), s3, off / 8,
				    len / 8) == len / 8 ?
			"left the memory alone" :
			"copied vgem's bounce buffer over the memory");
	kt_unmap(p, len);
	teardown(&f, d->size);
	return res;
}

static int nothing_left(struct kvmfr_dev *d)
{
	long long rc = kt_module_refcnt();

	if (!dmabufs_is(d, 0, "at the end"))
		return KT_FAIL;
	if (rc != refcnt_base)
		return kt_fail("module refcnt %lld, %lld at start", rc, refcnt_base);
	return KT_PASS;
}

static const struct kt_case cases[] = {
	{ "imports at 5 offsets/sizes get distinct handles that export the imported dma-bufs",
	  reexport_same, KT_ALL },
	{ "device writes read back through each import's dma-buf", bytes_dev_to_import, KT_ALL },
	{ "writes through each import's dma-buf read back through the device", bytes_import_to_dev, KT_ALL },
	{ "importing again returns the same handle and attaches vgem once", import_twice, KT_ALL },
	{ "a second DRM file imports as a second vgem attachment of the same dma-buf", second_file, KT_ALL },
	{ "close GEM handle then dma-buf fd: detached at the handle, freed at the fd", close_handle_dmabuf, KT_ALL },
	{ "close dma-buf fd then GEM handle: the import keeps the buffer until the handle", close_dmabuf_handle, KT_ALL },
	{ "close DRM fd then dma-buf fd: detached with the DRM file, freed at the fd", close_drm_dmabuf, KT_ALL },
	{ "close dma-buf fd then DRM fd: freed with the DRM file", close_dmabuf_drm, KT_ALL },
	{ "an import alone keeps the bytes, read and written through its re-export", import_keeps_bytes, KT_ALL },
	{ "DMA_BUF_IOCTL_SYNC START/END work with vgem attached (timed)", sync_with_import, KT_ALL },
	{ "with swiotlb bouncing, SYNC START copies vgem's mapping back over the memory", sync_reaches_import, KT_ALL },
	{ "no dma-buf or module reference left", nothing_left, KT_ALL },
};

/* ---------------------------------------------------- IVSHMEM removal */

/*
 * A child that writes 1 to the device's sysfs remove when fired. It is
 * forked before the test opens or maps anything, so it holds none of the
 * test's fds or mappings: a removal waiting for those would wait for the
 * very child that runs it.
 */
struct remover {
	pid_t pid;
	int go;		/* write end of the trigger pipe */
};

static bool remover_arm(struct kvmfr_dev *d, struct remover *rm)
{
	char path[160], c;
	int p[2];

	rm->pid = rm->go = -1;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", d->pci_addr);
	if (pipe2(p, O_CLOEXEC)) {
		kt_diag("pipe: %s", kt_errname(errno));
		return false;
	}
	fflush(stdout);
	rm->pid = fork();
	if (rm->pid == 0) {
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(0);	/* disarmed */
		_exit(-kt_write_file(path, "1"));
	}
	close(p[0]);
	if (rm->pid < 0) {
		kt_diag("fork: %s", kt_errname(errno));
		close(p[1]);
		return false;
	}
	rm->go = p[1];
	return true;
}

static void remover_fire(struct remover *rm)
{
	if (write(rm->go, "1", 1) != 1)
		kt_diag("firing the remover: %s", kt_errname(errno));
	close(rm->go);
	rm->go = -1;
}

/* Lets an unfired remover go without removing anything. */
static void remover_disarm(struct remover *rm)
{
	if (rm->go < 0)
		return;
	close(rm->go);
	rm->go = -1;
	kt_wait_child(rm->pid, REMOVE_TIMEOUT);
	rm->pid = -1;
}

static bool removal_status_ok(int status)
{
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status))
		kt_diag("remove: %s", kt_errname(WEXITSTATUS(status)));
	return kt_child_ok(status, "remove");
}

static int rescan(struct kvmfr_dev *d)
{
	uint64_t end;
	int r;

	r = kt_write_file("/sys/bus/pci/rescan", "1");
	if (r)
		return kt_fail("rescan: %s", kt_errname(-r));
	end = kt_now_ms() + 30000;
	while (kt_now_ms() < end) {
		if (kt_resolve(d) && kt_exists(d->node))
			return KT_PASS;
		kt_sleep_ms(50);
	}
	return kt_fail("%s did not come back as a kvmfr device", d->pci_addr);
}

/* Import of a dma-buf whose device is gone: ENODEV, nothing attached. */
static int import_after_remove(struct kvmfr_dev *d)
{
	int fd, db = -1, drm = -1, r, res = KT_PASS;
	struct remover rm;
	uint32_t h = 0;

	if (!remover_arm(d, &rm))
		return KT_FAIL;
	fd = kt_open(d);
	if (fd >= 0)
		db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, kt_page, 4 * kt_page);
	kt_close(fd);
	drm = drm_open(vg_render);
	if (db < 0 || drm < 0) {
		remover_disarm(&rm);
		kt_close(db);
		kt_close(drm);
		return kt_fail("CREATE or DRM open failed");
	}
	remover_fire(&rm);
	if (!removal_status_ok(kt_wait_child(rm.pid, REMOVE_TIMEOUT))) {
		res = kt_fail("the removal of %s did not finish", d->pci_addr);
		goto out;
	}
	r = prime_import(drm, db, &h);
	if (!kt_errno_is(r ? -1 : 0, -r, ENODEV, "PRIME_FD_TO_HANDLE after remove"))
		res = KT_FAIL;
	if (!r)
		gem_close(drm, h);
	if (!attached_is(db, 0, "failed import"))
		res = KT_FAIL;
out:
	kt_close(drm);
	kt_close(db);
	return res;
}

struct held {
	int fd, db, drm, rdb;
	uint32_t handle;
	uint8_t *map;		/* mapping of vgem's re-export of db */
	uint64_t len;
	ino_t ino;
	struct remover rm;
	bool reaped;		/* remover's status is in status */
	int status;
};

static void release_held(struct held *h)
{
	if (h->handle && h->drm >= 0)
		gem_close(h->drm, h->handle);
	h->handle = 0;
	kt_close(h->drm);
	kt_unmap(h->map, h->len);
	kt_close(h->rdb);
	kt_close(h->db);
	kt_close(h->fd);
	h->drm = h->rdb = h->db = h->fd = -1;
	h->map = NULL;
}

/* fds, import, re-export and its mapping, with a pattern written */
static int held_setup(struct kvmfr_dev *d, struct held *h)
{
	uint64_t seed = kt_seed();
	int r;

	h->len = 16 * kt_page;
	h->fd = kt_open(d);
	h->drm = drm_open(vg_render);
	if (h->fd < 0 || h->drm < 0)
		return KT_FAIL;
	h->db = kt_create(h->fd, KVMFR_DMABUF_FLAG_CLOEXEC, 2 * kt_page, h->len);
	if (h->db < 0)
		return kt_fail("CREATE: %s", kt_errname(errno));
	h->ino = fd_ino(h->db);
	r = prime_import(h->drm, h->db, &h->handle);
	if (r)
		return kt_fail("import: %s", kt_errname(-r));
	h->rdb = prime_export(h->drm, h->handle);
	if (h->rdb < 0)
		return kt_fail("re-export: %s", kt_errname(-h->rdb));
	h->map = kt_map(h->rdb, 0, h->len);
	if (!h->map)
		return KT_FAIL;
	kt_fill_at(h->map, 2 * kt_page, h->len, seed);
	if (!kt_check_at(h->map, 2 * kt_page, h->len, seed, "before removal"))
		return KT_FAIL;
	if (!attached_is(h->db, 1, "before removal"))
		return KT_FAIL;
	return KT_PASS;
}

static int held_zapped(struct held *h)
{
	uint64_t end = kt_now_ms() + REMOVE_TIMEOUT * 1000;
	int sig = 0, status;

	while (kt_now_ms() < end) {
		sig = kt_probe(h->map + 5 * kt_page, false);
		if (sig)
			break;
		kt_sleep_ms(20);
	}
	/* Not asserted: does the removal wait for the pinned importer? */
	end = kt_now_ms() + 3000;
	while (kt_now_ms() < end) {
		if (waitpid(h->rm.pid, &status, WNOHANG) == h->rm.pid) {
			h->reaped = true;
			h->status = status;
			break;
		}
		kt_sleep_ms(20);
	}
	kt_diag("the removal %s with vgem holding the import",
		h->reaped ? "finished" : "still runs 3 s after the zap");
	if (sig == SIGBUS)
		return KT_PASS;
	if (!sig)
		return kt_fail("the mapping still reads after %d s", REMOVE_TIMEOUT);
	return kt_fail("touching the mapping raised SIG%s", kt_signame(sig));
}

/*
 * Removal while vgem holds an import (a pinned importer). The removal runs
 * in a child; it may wait for the importer to let go (kvmfr's design for
 * pinned importers) or finish at once (revoking the mapping under it):
 * either way user mappings must fault at once, and the removal must be done
 * once the handle and the fds are closed, leaving nothing behind.
 */
static void remove_while_imported(struct kvmfr_dev *d)
{
	char old_sysdir[96], old_node[48];
	struct held h;
	int res;

	bool fired = false;

	kt_strcpy(old_sysdir, d->sysdir, sizeof(old_sysdir));
	kt_strcpy(old_node, d->node, sizeof(old_node));
	memset(&h, 0, sizeof(h));
	h.fd = h.db = h.drm = h.rdb = -1;
	res = remover_arm(d, &h.rm) ? held_setup(d, &h) : KT_FAIL;
	kt_report(res, "%s: removal with a vgem import: set up import, re-export, mapping",
		  d->label);
	if (res == KT_PASS) {
		remover_fire(&h.rm);
		fired = true;
	}
	kt_report(fired ? held_zapped(&h) : KT_FAIL,
		  "%s: removal with a vgem import: the dma-buf mapping raises SIGBUS",
		  d->label);

	release_held(&h);
	res = KT_FAIL;
	if (fired && removal_status_ok(h.reaped ? h.status :
				       kt_wait_child(h.rm.pid, REMOVE_TIMEOUT)))
		res = KT_PASS;
	if (!fired && h.rm.pid > 0)
		remover_disarm(&h.rm);
	kt_report(res, "%s: removal with a vgem import: done once handle and fds are closed",
		  d->label);

	res = KT_PASS;
	if (kt_exists(old_node) || kt_exists(old_sysdir))
		res = kt_fail("%s or %s is still there", old_node, old_sysdir);
	if (h.ino && !freed(h.ino, "after removal"))
		res = KT_FAIL;
	if (kt_module_refcnt() != refcnt_base)
		res = kt_fail("module refcnt %lld, %lld at start",
			      kt_module_refcnt(), refcnt_base);
	kt_report(res, "%s: removal with a vgem import: device gone, dma-buf freed, no module reference",
		  d->label);
}

#define PCI_TESTS 7

static void run_pci(struct kvmfr_dev *d)
{
	int res;

	res = kt_resolve(d) ? import_after_remove(d) : KT_FAIL;
	kt_report(res, "%s: import of a dma-buf of the removed device fails with ENODEV",
		  d->label);
	kt_report(rescan(d), "%s: rescan brings the device back", d->label);

	if (kt_resolve(d))
		remove_while_imported(d);
	else
		for (res = 0; res < 4; res++)
			kt_report(KT_FAIL, "%s: removal with a vgem import (device missing)",
				  d->label);
	kt_report(rescan(d), "%s: rescan brings the device back again", d->label);
}

int main(void)
{
	int i;

	kt_init();
	vgem_setup();
	if (vg_skip[0]) {
		printf("1..0 # SKIP %s\n", vg_skip);
		return 0;
	}
	if (vg_fail[0]) {
		kt_plan(1);
		kt_diag("%s", vg_fail);
		kt_report(KT_FAIL, "vgem is loaded");
		return kt_exit();
	}
	kt_plan(3 + kt_count_cases(cases, KT_ARRAY_SIZE(cases)) +
		PCI_TESTS * kt_npci);
	refcnt_base = kt_module_refcnt();
	{
		struct drm_get_cap_arg c = { .capability = DRM_CAP_PRIME };
		int drm = drm_open(vg_render);
		int res = KT_PASS;

		if (drm < 0 || ioctl(drm, DRM_IOCTL_GET_CAP, &c))
			res = kt_fail("GET_CAP(PRIME): %s", kt_errname(errno));
		else if (!(c.value & DRM_PRIME_CAP_IMPORT))
			res = kt_fail("PRIME caps 0x%" PRIx64 " lack IMPORT", c.value);
		kt_close(drm);
		kt_report(res, "vgem is loaded (%s, %s) and can PRIME-import",
			  vg_card, vg_render);
	}
	kt_report(not_a_dmabuf(), "PRIME_FD_TO_HANDLE of a kvmfr device fd fails with EINVAL");
	kt_report(map_dumb_refused(),
		  "MODE_MAP_DUMB of an imported kvmfr dma-buf fails with EINVAL");
	kt_run_cases(cases, KT_ARRAY_SIZE(cases));
	for (i = 0; i < kt_ndev; i++)
		if (kt_devs[i].pci)
			run_pci(&kt_devs[i]);
	return kt_exit();
}
