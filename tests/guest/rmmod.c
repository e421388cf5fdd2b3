// SPDX-License-Identifier: GPL-2.0
/*
 * Module unload while something still uses it: delete_module is refused
 * while a device fd is open, while only a device mapping remains, while only
 * a dma-buf fd remains and while only a dma-buf mapping remains. Once that
 * is released the module unloads, and finit_module with the original
 * parameters brings every device back: same names and sizes, static memory
 * zeroed again, PCI memory (the host's file) untouched.
 *
 * The module is always left loaded with its original parameters.
 */
#include "kvmfr_test.h"

enum holder { H_FD, H_DEVMAP, H_DMABUF_FD, H_DMABUF_MAP, H_COUNT };

static const char *const holder_name[H_COUNT] = {
	"an open device fd",
	"only a device mapping",
	"only a dma-buf fd",
	"only a dma-buf mapping",
};

#define TESTS_PER_CASE	8

static const char *ko_path;
static char params[160];

struct hold {
	int fd, db;
	uint8_t *dev, *buf;
	uint64_t size, off, len;
	uint64_t seed;
};

static bool module_loaded(void)
{
	return kt_exists("/sys/module/kvmfr");
}

static int do_rmmod(void)
{
	return syscall(SYS_delete_module, "kvmfr", O_NONBLOCK);
}

/* Waits for the devices' nodes after a load (probe is synchronous). */
static void wait_devices(void)
{
	uint64_t end = kt_now_ms() + 10000;
	int i, ok;

	do {
		for (i = 0, ok = 1; i < kt_ndev; i++)
			ok &= kt_resolve(&kt_devs[i]) && kt_exists(kt_devs[i].node);
		if (ok)
			return;
		kt_sleep_ms(50);
	} while (kt_now_ms() < end);
}

/* Fills every static device with 0xa5, puts a marker in every PCI one. */
static bool prepare_memory(uint64_t seed)
{
	bool ok = true;
	uint8_t *p;
	int i, fd;

	for (i = 0; i < kt_ndev; i++) {
		struct kvmfr_dev *d = &kt_devs[i];

		if (!kt_resolve(d))
			return false;
		fd = kt_open(d);
		if (fd < 0)
			return false;
		p = kt_map(fd, 0, d->size);
		kt_close(fd);
		if (!p)
			return false;
		if (d->pci) {
			kt_fill_at(p, 0, kt_page, seed);
			kt_fill_at(p + d->size - kt_page, d->size - kt_page,
				   kt_page, seed);
		} else {
			memset(p, 0xa5, d->size);
		}
		kt_unmap(p, d->size);
	}
	return ok;
}

static int take(struct kvmfr_dev *d, enum holder h, struct hold *o)
{
	memset(o, 0, sizeof(*o));
	o->fd = o->db = -1;
	o->size = d->size;
	o->off = 2 * kt_page;
	o->len = 4 * kt_page;
	o->seed = kt_seed();
	o->fd = kt_open(d);
	if (o->fd < 0)
		return -1;
	switch (h) {
	case H_FD:
		return 0;
	case H_DEVMAP:
		o->dev = kt_map(o->fd, 0, o->size);
		break;
	case H_DMABUF_FD:
	case H_DMABUF_MAP:
		o->db = kt_create(o->fd, KVMFR_DMABUF_FLAG_CLOEXEC, o->off, o->len);
		if (o->db < 0)
			kt_diag("CREATE: %s", kt_errname(errno));
		if (h == H_DMABUF_MAP && o->db >= 0) {
			o->buf = kt_map(o->db, 0, o->len);
			kt_close(o->db);
			o->db = -1;
			if (!o->buf)
				break;
		}
		break;
	default:
		break;
	}
	kt_close(o->fd);
	o->fd = -1;
	if ((h == H_DEVMAP && !o->dev) || (h == H_DMABUF_FD && o->db < 0) ||
	    (h == H_DMABUF_MAP && !o->buf))
		return -1;
	return 0;
}

/* The held object still does its job after the refused unload. */
static int still_works(enum holder h, struct hold *o)
{
	uint8_t *p;

	switch (h) {
	case H_FD:
		if (kt_getsize(o->fd) != (long long)o->size)
			return kt_fail("GETSIZE: %s", kt_errname(errno));
		return KT_PASS;
	case H_DEVMAP:
		kt_fill_at(o->dev + o->off, o->off, o->len, o->seed);
		return kt_check_at(o->dev + o->off, o->off, o->len, o->seed,
				   "device mapping") ? KT_PASS : KT_FAIL;
	case H_DMABUF_FD:
		if (lseek(o->db, 0, SEEK_END) != (off_t)o->len)
			return kt_fail("lseek on the dma-buf");
		p = kt_map(o->db, 0, o->len);
		if (!p)
			return KT_FAIL;
		kt_fill_at(p, o->off, o->len, o->seed);
		kt_unmap(p, o->len);
		return KT_PASS;
	case H_DMABUF_MAP:
		kt_fill_at(o->buf, o->off, o->len, o->seed);
		return kt_check_at(o->buf, o->off, o->len, o->seed,
				   "dma-buf mapping") ? KT_PASS : KT_FAIL;
	default:
		return KT_FAIL;
	}
}

static void release(struct hold *o)
{
	kt_unmap(o->dev, o->size);
	kt_unmap(o->buf, o->len);
	kt_close(o->db);
	kt_close(o->fd);
	o->dev = o->buf = NULL;
	o->db = o->fd = -1;
}

static int refused(void)
{
	int r, e;

	errno = 0;
	r = do_rmmod();
	e = errno;
	if (r == -1 && (e == EBUSY || e == EWOULDBLOCK))
		return module_loaded() ? KT_PASS :
			kt_fail("delete_module failed but the module is gone");
	if (r == 0)
		return kt_fail("delete_module succeeded while in use");
	return kt_fail("delete_module: expected EBUSY or EWOULDBLOCK, got %s",
		       kt_errname(e));
}

static int unloads(void)
{
	int i, r = -1, e = 0;

	/* Releases are synchronous; allow a little slack, and say so. */
	for (i = 0; i < 40; i++) {
		r = do_rmmod();
		e = errno;
		if (!r || (e != EBUSY && e != EWOULDBLOCK))
			break;
		kt_sleep_ms(50);
	}
	if (r)
		return kt_fail("delete_module: %s (refcnt %lld)", kt_errname(e),
			       kt_module_refcnt());
	if (i)
		kt_diag("delete_module needed %d retries", i);
	return KT_PASS;
}

static int all_gone(void)
{
	struct dirent *de;
	int res = KT_PASS;
	DIR *dir;

	if (module_loaded())
		res = kt_fail("/sys/module/kvmfr still exists");
	if (kt_exists("/sys/class/kvmfr"))
		res = kt_fail("/sys/class/kvmfr still exists");
	if (kt_exists("/sys/bus/pci/drivers/kvmfr"))
		res = kt_fail("/sys/bus/pci/drivers/kvmfr still exists");
	dir = opendir("/dev");
	while (dir && (de = readdir(dir)))
		/* kvmfrN (not tests/edu's kvmfr_edu) */
		if (!strncmp(de->d_name, "kvmfr", 5) &&
		    de->d_name[5] >= '0' && de->d_name[5] <= '9')
			res = kt_fail("/dev/%s still exists", de->d_name);
	if (dir)
		closedir(dir);
	return res;
}

static int reloads(void)
{
	if (kt_load_module(ko_path, params))
		return kt_fail("finit_module(%s, \"%s\"): %s", ko_path, params,
			       kt_errname(errno));
	wait_devices();
	return KT_PASS;
}

static int devices_back(void)
{
	char buf[128], want_name[32];
	int i, rank, j, res = KT_PASS;

	if (kt_read_file("/sys/module/kvmfr/parameters/static_size_mb", buf,
			 sizeof(buf)) || strcmp(buf, kt_static_param))
		res = kt_fail("static_size_mb does not read '%s'", kt_static_param);
	for (i = 0; i < kt_ndev; i++) {
		struct kvmfr_dev *d = &kt_devs[i];

		if (!kt_resolve(d)) {
			res = kt_fail("%s did not come back", d->label);
			continue;
		}
		rank = 0;
		for (j = 0; d->pci && j < kt_ndev; j++)
			if (kt_devs[j].pci &&
			    strcmp(kt_devs[j].pci_addr, d->pci_addr) < 0)
				rank++;
		snprintf(want_name, sizeof(want_name), "kvmfr%d",
			 d->pci ? kt_nstatic + rank : d->index);
		if (strcmp(d->name, want_name))
			res = kt_fail("%s is %s, expected %s", d->label, d->name,
				      want_name);
		if (kt_dev_attr(d, "type", buf, sizeof(buf)) ||
		    strcmp(buf, d->pci ? "pci" : "static"))
			res = kt_fail("%s: wrong type", d->label);
		if (d->expect_size && d->size != d->expect_size)
			res = kt_fail("%s: size %" PRIu64 ", expected %" PRIu64,
				      d->label, d->size, d->expect_size);
		if (!kt_exists(d->node))
			res = kt_fail("%s: no %s", d->label, d->node);
	}
	return res;
}

static int check_memory(bool pci, uint64_t seed)
{
	int i, fd, res = KT_PASS, n = 0;
	uint8_t *p;

	for (i = 0; i < kt_ndev; i++) {
		struct kvmfr_dev *d = &kt_devs[i];

		if (d->pci != pci)
			continue;
		n++;
		if (!d->found)
			return kt_fail("%s missing", d->label);
		fd = kt_open(d);
		if (fd < 0)
			return KT_FAIL;
		p = kt_map(fd, 0, d->size);
		kt_close(fd);
		if (!p)
			return KT_FAIL;
		if (!pci && !kt_is_zero(p, d->size, d->name))
			res = KT_FAIL;
		if (pci && (!kt_check_at(p, 0, kt_page, seed, d->name) ||
			    !kt_check_at(p + d->size - kt_page, d->size - kt_page,
					 kt_page, seed, d->name)))
			res = KT_FAIL;
		kt_unmap(p, d->size);
	}
	if (!n)
		return kt_skip("no %s device", pci ? "PCI" : "static");
	return res;
}

/* ------------------------------------------- zero-fill over dirty pages */

#define DIRTY_MB	256	/* anonymous memory dirtied before the reload, */
				/* at most a quarter of MemAvailable */

static size_t dirty_bytes(void)
{
	char line[128];
	long long kb = -1;
	size_t max = (size_t)DIRTY_MB << 20;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	if (kb > 0 && (size_t)kb * 1024 / 4 < max)
		max = (size_t)kb * 1024 / 4 & ~(size_t)(kt_page - 1);
	return max;
}

struct pfns {
	uint64_t *v;
	size_t n, cap;
};

static void pfns_add(struct pfns *s, uint64_t pfn)
{
	if (s->n == s->cap) {
		uint64_t *v = realloc(s->v, (s->cap * 2 + 1024) * sizeof(*v));

		if (!v)
			return;
		s->v = v;
		s->cap = s->cap * 2 + 1024;
	}
	s->v[s->n++] = pfn;
}

/* Adds the page frames behind [p, p + len) (present pages, root only). */
static int pfns_of(struct pfns *s, const void *p, size_t len)
{
	size_t i = 0, n = len / kt_page, k, got;
	uint64_t e[512];
	int fd, ret = 0;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (i < n) {
		off_t at = ((uintptr_t)p / kt_page + i) * sizeof(*e);
		ssize_t r;

		k = n - i < KT_ARRAY_SIZE(e) ? n - i : KT_ARRAY_SIZE(e);
		r = pread(fd, e, k * sizeof(*e), at);
		if (r <= 0) {
			ret = -1;
			break;
		}
		got = r / sizeof(*e);
		/* bit 63 present, bits 0-54 the frame */
		for (k = 0; k < got; k++)
			if ((e[k] >> 63) & 1 && (e[k] & ((1ull << 55) - 1)))
				pfns_add(s, e[k] & ((1ull << 55) - 1));
		i += got;
	}
	close(fd);
	return ret;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Fill the static devices with a pattern and note their frames in @dirty
 * (sorted on return).
 */
static int fill_static(struct pfns *dirty)
{
	uint8_t *p;
	int i, fd;

	for (i = 0; i < kt_ndev; i++) {
		struct kvmfr_dev *d = &kt_devs[i];

		if (d->pci)
			continue;
		if (!kt_resolve(d) || (fd = kt_open(d)) < 0)
			return kt_fail("%s: cannot open", d->label);
		p = kt_map(fd, 0, d->size);
		kt_close(fd);
		if (!p)
			return KT_FAIL;
		memset(p, 0xa5, d->size);
		pfns_of(dirty, p, d->size);
		kt_unmap(p, d->size);
	}
	qsort(dirty->v, dirty->n, sizeof(*dirty->v), cmp_u64);
	return KT_PASS;
}

/* The static devices read zero; counts their frames found in @dirty. */
static int check_static_zero(const struct pfns *dirty, size_t *reused,
			     size_t *pages)
{
	struct pfns now = { 0 };
	int res = KT_PASS, i, fd;
	uint8_t *p;
	size_t j;

	for (i = 0; i < kt_ndev; i++) {
		struct kvmfr_dev *d = &kt_devs[i];

		if (d->pci)
			continue;
		if (!kt_resolve(d) || (fd = kt_open(d)) < 0) {
			res = kt_fail("%s: cannot open after the reload",
				      d->label);
			break;
		}
		p = kt_map(fd, 0, d->size);
		kt_close(fd);
		if (!p) {
			res = KT_FAIL;
			break;
		}
		if (!kt_is_zero(p, d->size, d->name))
			res = KT_FAIL;
		now.n = 0;
		pfns_of(&now, p, d->size);
		for (j = 0; j < now.n; j++)
			*reused += !!bsearch(&now.v[j], dirty->v, dirty->n,
					     sizeof(*dirty->v), cmp_u64);
		*pages += d->size / kt_page;
		kt_unmap(p, d->size);
	}
	free(now.v);
	return res;
}

#define ZERO_ROUNDS	4	/* reloads at most, until frames are reused */

/*
 * Dirty DIRTY_MB of anonymous memory and free it; then, round after round,
 * fill the static devices with a pattern, note every page frame that held
 * data, unload (the pages go back to the page allocator dirty) and load
 * again: every byte of the new static memory must read zero, and some of
 * its frames must be ones that held data (the just-freed blocks are the
 * allocator's likeliest answer), else the check proved nothing: a fresh
 * guest's free memory is zero anyway.
 */
static int zero_over_dirty(void)
{
	size_t dirty_len = dirty_bytes(), reused = 0, pages = 0;
	struct pfns dirty = { 0 };
	int res = KT_PASS, round = 0, i, n = 0;
	uint8_t *p;

	for (i = 0; i < kt_ndev; i++)
		n += !kt_devs[i].pci;
	if (!n)
		return kt_skip("no static device");
	p = mmap(NULL, dirty_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED) {
		memset(p, 0x5a, dirty_len);
		pfns_of(&dirty, p, dirty_len);
		munmap(p, dirty_len);
	}
	while (res == KT_PASS && !reused && round < ZERO_ROUNDS) {
		round++;
		pages = 0;
		res = fill_static(&dirty);
		if (res == KT_PASS && unloads() == KT_PASS &&
		    reloads() == KT_PASS)
			res = check_static_zero(&dirty, &reused, &pages);
		else
			res = KT_FAIL;
	}
	kt_diag("static memory after %d reload(s): %zu of %zu pages held data before (%zu frames dirtied)",
		round, reused, pages, dirty.n);
	free(dirty.v);
	if (res == KT_PASS && !reused)
		return kt_skip("none of the new static pages held data before: nothing shown");
	return res;
}

/* --------------------------------------- static pages back at unload */

#define FREE_SLACK	128	/* pages of noise allowed (one 2 MiB block: 512) */

/*
 * Free pages of the page allocator, including those parked on the per-CPU
 * lists (MemFree leaves them out), from /proc/zoneinfo.
 */
static long long free_pages_all(void)
{
	char line[256];
	long long n = 0, v;
	FILE *f;

	f = fopen("/proc/zoneinfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " pages free %lld", &v) == 1 ||
		    sscanf(line, " count: %lld", &v) == 1)
			n += v;
	}
	fclose(f);
	return n;
}

/* Unloading gives back every page of the static devices. */
static int unload_frees_static(void)
{
	long long before, after, want = 0;
	int i;

	for (i = 0; i < kt_ndev; i++)
		if (!kt_devs[i].pci)
			want += kt_devs[i].size / kt_page;
	if (!want)
		return kt_skip("no static device");
	before = free_pages_all();
	if (unloads() != KT_PASS)
		return KT_FAIL;
	after = free_pages_all();
	if (reloads() != KT_PASS)
		return KT_FAIL;
	if (before < 0 || after < 0)
		return kt_fail("cannot read /proc/zoneinfo");
	kt_diag("rmmod freed %lld pages; the static devices have %lld",
		after - before, want);
	if (after - before < want - FREE_SLACK)
		return kt_fail("%lld of the static devices' %lld pages came back",
			       after - before, want);
	return KT_PASS;
}

static void run_case(struct kvmfr_dev *d, enum holder h)
{
	uint64_t seed = kt_seed();
	const char *hn = holder_name[h];
	const char *l = d->label;
	struct hold o;
	bool held;
	int res;

	if (!module_loaded()) {
		kt_diag("module not loaded before the case: loading it");
		reloads();
	}
	memset(&o, 0, sizeof(o));
	o.fd = o.db = -1;
	held = kt_resolve(d) && prepare_memory(seed) && !take(d, h, &o);
	kt_report(held ? refused() : kt_fail("could not take %s", hn),
		  "%s: rmmod refused while %s remains", l, hn);
	kt_report(held ? still_works(h, &o) : KT_FAIL,
		  "%s: %s still works after the refused rmmod", l, hn);
	release(&o);
	res = unloads();
	kt_report(res, "%s: rmmod succeeds once %s is released", l, hn);
	kt_report(res == KT_PASS ? all_gone() : KT_FAIL,
		  "%s: module, class, driver and nodes are gone", l);
	kt_report(module_loaded() ? kt_fail("still loaded") : reloads(),
		  "%s: finit_module with static_size_mb=%s", l, kt_static_param);
	kt_report(devices_back(), "%s: devices back with their names, types and sizes",
		  l);
	kt_report(check_memory(false, seed), "%s: static memory is zeroed again", l);
	kt_report(check_memory(true, seed), "%s: PCI memory kept across the reload",
		  l);
}

int main(void)
{
	struct kvmfr_dev *targets[2] = { NULL, NULL };
	int i, n = 0, h, fd;
	long long rc;

	kt_init();
	ko_path = getenv("KVMFR_KO");
	if (!ko_path)
		ko_path = "/lib/kvmfr/kvmfr.ko";
	fd = open(ko_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("Bail out! cannot open the module %s (KVMFR_KO): %s; not unloading\n",
		       ko_path, strerror(errno));
		return 1;
	}
	close(fd);
	if (kt_static_param[0])
		snprintf(params, sizeof(params), "static_size_mb=%s",
			 kt_static_param);

	for (i = 0; i < kt_ndev; i++) {
		if (!kt_devs[i].pci && !targets[0])
			targets[0] = &kt_devs[i];
		if (kt_devs[i].pci && !targets[1])
			targets[1] = &kt_devs[i];
	}
	n = (!!targets[0] + !!targets[1]) * H_COUNT * TESTS_PER_CASE;
	kt_plan(n + 3);
	rc = kt_module_refcnt();
	if (rc)
		kt_diag("module refcnt is %lld before the tests", rc);

	for (i = 0; i < 2; i++)
		for (h = 0; targets[i] && h < H_COUNT; h++)
			run_case(targets[i], h);

	kt_report(module_loaded() ? unload_frees_static() :
		  kt_fail("module not loaded"),
		  "rmmod gives every static page back to the page allocator");
	if (module_loaded())
		kt_report(zero_over_dirty(),
			  "static memory is zero-filled at load, on pages that held data before");
	else
		kt_report(kt_fail("module not loaded"),
			  "static memory is zero-filled at load, on pages that held data before");

	if (!module_loaded()) {
		kt_diag("module not loaded at the end: loading it");
		reloads();
	}
	kt_report(module_loaded() && !devices_back() ? KT_PASS : KT_FAIL,
		  "module loaded with its original parameters at the end");
	return kt_exit();
}
