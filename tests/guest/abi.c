// SPDX-License-Identifier: GPL-2.0
/*
 * The ABI the deployed clients rely on: class and node names, numbering,
 * sysfs attributes, GETSIZE as a return value, CREATE returning an O_RDWR
 * dma-buf fd (FD_CLOEXEC iff asked), padding ignored, zeroed static memory.
 */
#include "kvmfr_test.h"

static long long refcnt_base;

static int static_zeroed(struct kvmfr_dev *d)
{
	int fd, res = KT_FAIL;
	void *p;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = kt_map(fd, 0, d->size);
	if (p && kt_is_zero(p, d->size, d->name))
		res = KT_PASS;
	kt_unmap(p, d->size);
	kt_close(fd);
	return res;
}

static int pci_numbering(struct kvmfr_dev *d)
{
	int rank = 0, i;

	for (i = 0; i < kt_ndev; i++)
		if (kt_devs[i].pci && strcmp(kt_devs[i].pci_addr, d->pci_addr) < 0)
			rank++;
	if (d->num != kt_nstatic + rank)
		return kt_fail("%s is %s, expected kvmfr%d (statics first, then bus order)",
			       d->pci_addr, d->name, kt_nstatic + rank);
	return KT_PASS;
}

static int type_attr(struct kvmfr_dev *d)
{
	const char *want = d->pci ? "pci" : "static";
	char buf[64];

	if (kt_dev_attr(d, "type", buf, sizeof(buf)))
		return kt_fail("%s/type: %s", d->sysdir, strerror(errno));
	if (strcmp(buf, want))
		return kt_fail("type reads '%s', expected '%s'", buf, want);
	return KT_PASS;
}

static int size_attr(struct kvmfr_dev *d)
{
	char path[160];
	long long v;

	snprintf(path, sizeof(path), "%s/size", d->sysdir);
	v = kt_read_ll(path);
	if (v < 0)
		return kt_fail("%s unreadable or not a decimal number", path);
	if (!d->expect_size)
		return kt_skip("no expected size in the environment (reads %lld)", v);
	if ((uint64_t)v != d->expect_size)
		return kt_fail("size reads %lld, expected %" PRIu64, v,
			       d->expect_size);
	return KT_PASS;
}

static int node_matches_sysfs(struct kvmfr_dev *d)
{
	unsigned int maj, min;
	char buf[64];
	struct stat st;

	if (stat(d->node, &st))
		return kt_fail("stat %s: %s", d->node, strerror(errno));
	if (!S_ISCHR(st.st_mode))
		return kt_fail("%s is not a character device", d->node);
	if (kt_dev_attr(d, "dev", buf, sizeof(buf)) ||
	    sscanf(buf, "%u:%u", &maj, &min) != 2)
		return kt_fail("%s/dev unreadable", d->sysdir);
	if (major(st.st_rdev) != maj || minor(st.st_rdev) != min)
		return kt_fail("%s is %u:%u, sysfs says %u:%u", d->node,
			       major(st.st_rdev), minor(st.st_rdev), maj, min);
	return KT_PASS;
}

static int link_basename_is(const char *path, const char *want)
{
	char buf[256];
	const char *base;
	ssize_t n;

	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return kt_fail("readlink %s: %s", path, strerror(errno));
	buf[n] = '\0';
	base = strrchr(buf, '/');
	base = base ? base + 1 : buf;
	if (strcmp(base, want))
		return kt_fail("%s -> %s, expected .../%s", path, buf, want);
	return KT_PASS;
}

static int device_link(struct kvmfr_dev *d)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/device", d->sysdir);
	return link_basename_is(path, d->pci_addr);
}

static int pci_driver(struct kvmfr_dev *d)
{
	char path[160];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver",
		 d->pci_addr);
	return link_basename_is(path, "kvmfr");
}

static int dmabufs_at_rest(struct kvmfr_dev *d)
{
	long long n = kt_dmabufs(d);

	if (n != 0)
		return kt_fail("%s/dmabufs reads %lld", d->sysdir, n);
	return KT_PASS;
}

static int getsize(struct kvmfr_dev *d)
{
	long long r;
	int fd;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	r = kt_getsize(fd);
	kt_close(fd);
	if (r < 0)
		return kt_fail("GETSIZE failed: %s", kt_errname(errno));
	if ((uint64_t)r != d->size)
		return kt_fail("GETSIZE returned %lld, size is %" PRIu64, r,
			       d->size);
	return KT_PASS;
}

static int getsize_ignores_arg(struct kvmfr_dev *d)
{
	long long r;
	int fd;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	r = ioctl(fd, KVMFR_DMABUF_GETSIZE, (unsigned long)0xdead0000);
	kt_close(fd);
	if (r < 0 || (uint64_t)r != d->size)
		return kt_fail("GETSIZE with a junk argument returned %lld (%s)",
			       r, r < 0 ? kt_errname(errno) : "");
	return KT_PASS;
}

/* Reads "key:\tvalue" from the fd's fdinfo. */
static int fdinfo_field(int fd, const char *key, char *val, size_t len)
{
	char path[64], buf[1024], *line, *save;
	size_t klen = strlen(key);

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (kt_read_file(path, buf, sizeof(buf)))
		return -1;
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			line += klen + 1;
			line += strspn(line, " \t");
			snprintf(val, len, "%s", line);
			return 0;
		}
	return -1;
}

static int create_gives_dmabuf(struct kvmfr_dev *d)
{
	char name[128];
	int fd, db;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create(fd, 0, 0, kt_page);
	kt_close(fd);
	if (db < 0)
		return kt_fail("CREATE(0, page) failed: %s", kt_errname(errno));
	if (fdinfo_field(db, "exp_name", name, sizeof(name))) {
		kt_close(db);
		return kt_fail("fd %d has no exp_name in fdinfo: not a dma-buf", db);
	}
	kt_diag("exporter name '%s'", name);
	kt_close(db);
	return KT_PASS;
}

static int dmabuf_rdwr(struct kvmfr_dev *d)
{
	int fd, db, fl;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create(fd, 0, kt_page, kt_page);
	kt_close(fd);
	if (db < 0)
		return kt_fail("CREATE failed: %s", kt_errname(errno));
	fl = fcntl(db, F_GETFL);
	kt_close(db);
	if (fl < 0 || (fl & O_ACCMODE) != O_RDWR)
		return kt_fail("F_GETFL gives 0x%x, access mode is not O_RDWR", fl);
	return KT_PASS;
}

static int cloexec_case(struct kvmfr_dev *d, unsigned int flags, bool want)
{
	int fd, db, fl;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create(fd, flags, 0, 2 * kt_page);
	kt_close(fd);
	if (db < 0)
		return kt_fail("CREATE(flags 0x%x) failed: %s", flags,
			       kt_errname(errno));
	fl = fcntl(db, F_GETFD);
	kt_close(db);
	if (fl < 0 || !!(fl & FD_CLOEXEC) != want)
		return kt_fail("flags 0x%x: F_GETFD gives 0x%x, expected FD_CLOEXEC %s",
			       flags, fl, want ? "set" : "clear");
	return KT_PASS;
}

static int no_cloexec(struct kvmfr_dev *d)
{
	return cloexec_case(d, 0, false);
}

static int with_cloexec(struct kvmfr_dev *d)
{
	return cloexec_case(d, KVMFR_DMABUF_FLAG_CLOEXEC, true);
}

/* CREATE(off, size): lseek(SEEK_END) and fdinfo size must both be size. */
static int sized_dmabuf(struct kvmfr_dev *d, uint64_t off, uint64_t size)
{
	char val[64];
	off_t end;
	int fd, db;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, off, size);
	kt_close(fd);
	if (db < 0)
		return kt_fail("CREATE(offset 0x%" PRIx64 ", size 0x%" PRIx64
			       ") failed: %s", off, size, kt_errname(errno));
	end = lseek(db, 0, SEEK_END);
	if (end < 0 || (uint64_t)end != size) {
		kt_close(db);
		return kt_fail("lseek(SEEK_END) gives %lld (%s), expected %" PRIu64,
			       (long long)end, end < 0 ? kt_errname(errno) : "ok",
			       size);
	}
	if (fdinfo_field(db, "size", val, sizeof(val)) ||
	    strtoull(val, NULL, 10) != size) {
		kt_close(db);
		return kt_fail("fdinfo size is not %" PRIu64, size);
	}
	kt_close(db);
	return KT_PASS;
}

static int lseek_end(struct kvmfr_dev *d)
{
	return sized_dmabuf(d, kt_page, 3 * kt_page);
}

static int last_page(struct kvmfr_dev *d)
{
	return sized_dmabuf(d, d->size - kt_page, kt_page);
}

static int whole_device(struct kvmfr_dev *d)
{
	return sized_dmabuf(d, 0, d->size);
}

static int padding_ignored(struct kvmfr_dev *d)
{
	int fd, db, fl, res = KT_PASS;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create_padded(fd, 0, kt_page, 2 * kt_page, 0xff);
	if (db < 0) {
		res = kt_fail("CREATE(flags 0) with 0xff padding: %s",
			      kt_errname(errno));
	} else {
		if (lseek(db, 0, SEEK_END) != (off_t)(2 * kt_page))
			res = kt_fail("flags 0 with 0xff padding: wrong size");
		fl = fcntl(db, F_GETFD);
		if (fl < 0 || (fl & FD_CLOEXEC))
			res = kt_fail("flags 0 with 0xff padding: FD_CLOEXEC set");
		kt_close(db);
	}
	db = kt_create_padded(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, kt_page, 0xff);
	if (db < 0) {
		res = kt_fail("CREATE(CLOEXEC) with 0xff padding: %s",
			      kt_errname(errno));
	} else {
		fl = fcntl(db, F_GETFD);
		if (fl < 0 || !(fl & FD_CLOEXEC))
			res = kt_fail("CLOEXEC with 0xff padding: FD_CLOEXEC clear");
		kt_close(db);
	}
	kt_close(fd);
	return res;
}

static int dmabufs_counts(struct kvmfr_dev *d)
{
	int fd, db[3], i, res = KT_PASS;
	long long n;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	for (i = 0; i < 3; i++) {
		db[i] = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, i * kt_page,
				  kt_page);
		if (db[i] < 0)
			res = kt_fail("CREATE %d failed: %s", i, kt_errname(errno));
	}
	kt_close(fd);
	n = kt_dmabufs(d);
	if (res == KT_PASS && n != 3)
		res = kt_fail("3 live dma-bufs, dmabufs reads %lld", n);
	kt_close(db[0]);
	n = kt_dmabufs(d);
	if (res == KT_PASS && n != 2)
		res = kt_fail("2 live dma-bufs, dmabufs reads %lld", n);
	for (i = 1; i < 3; i++)
		kt_close(db[i]);
	n = kt_dmabufs(d);
	if (n != 0)
		res = kt_fail("all dma-bufs closed, dmabufs reads %lld", n);
	return res;
}

static const struct kt_case cases[] = {
	{ "static memory reads zero before any write (fresh guest)", static_zeroed, KT_STATIC },
	{ "numbered after the statics in PCI bus order", pci_numbering, KT_PCI },
	{ "type attribute", type_attr, KT_ALL },
	{ "size attribute is the configured size", size_attr, KT_ALL },
	{ "/dev node is a char device matching sysfs dev", node_matches_sysfs, KT_ALL },
	{ "device link is the PCI function", device_link, KT_PCI },
	{ "PCI function is bound to driver kvmfr", pci_driver, KT_PCI },
	{ "dmabufs reads 0 at rest", dmabufs_at_rest, KT_ALL },
	{ "GETSIZE returns the size", getsize, KT_ALL },
	{ "GETSIZE ignores its argument", getsize_ignores_arg, KT_ALL },
	{ "CREATE returns a dma-buf fd", create_gives_dmabuf, KT_ALL },
	{ "dma-buf fd is O_RDWR", dmabuf_rdwr, KT_ALL },
	{ "dma-buf fd has no FD_CLOEXEC without the flag", no_cloexec, KT_ALL },
	{ "dma-buf fd has FD_CLOEXEC with KVMFR_DMABUF_FLAG_CLOEXEC", with_cloexec, KT_ALL },
	{ "lseek(SEEK_END) and fdinfo give the dma-buf size", lseek_end, KT_ALL },
	{ "padding bytes set to 0xff are ignored", padding_ignored, KT_ALL },
	{ "dmabufs counts live dma-bufs", dmabufs_counts, KT_ALL },
	{ "dma-buf of the last page", last_page, KT_ALL },
	{ "dma-buf of the whole device", whole_device, KT_ALL },
};

static int count_class_entries(void)
{
	struct dirent *de;
	DIR *dir;
	int n = 0;

	dir = opendir("/sys/class/kvmfr");
	if (!dir)
		return -1;
	while ((de = readdir(dir)))
		if (!strncmp(de->d_name, "kvmfr", 5))
			n++;
	closedir(dir);
	return n;
}

int main(void)
{
	char buf[128];
	long long rc;
	int n;

	kt_init();
	kt_plan(5 + kt_count_cases(cases, KT_ARRAY_SIZE(cases)));
	refcnt_base = kt_module_refcnt();

	kt_report(kt_exists("/sys/class/kvmfr") ? KT_PASS : KT_FAIL,
		  "class kvmfr exists");

	n = count_class_entries();
	if (n != kt_ndev)
		kt_diag("/sys/class/kvmfr has %d devices, expected %d", n, kt_ndev);
	kt_report(n == kt_ndev ? KT_PASS : KT_FAIL,
		  "one class device per static size and PCI function");

	if (kt_read_file("/sys/module/kvmfr/parameters/static_size_mb", buf,
			 sizeof(buf)))
		n = kt_fail("static_size_mb parameter unreadable");
	else if (strcmp(buf, kt_static_param))
		n = kt_fail("static_size_mb reads '%s', expected '%s'", buf,
			    kt_static_param);
	else
		n = KT_PASS;
	kt_report(n, "static_size_mb parameter reads back as given");

	n = kt_exists("/sys/bus/pci/drivers/kvmfr/bind") &&
	    kt_exists("/sys/bus/pci/drivers/kvmfr/unbind");
	kt_report(n ? KT_PASS : KT_FAIL, "PCI driver kvmfr is registered");

	kt_run_cases(cases, KT_ARRAY_SIZE(cases));

	rc = kt_module_refcnt();
	if (rc != refcnt_base)
		kt_diag("module refcnt %lld, was %lld before the tests", rc,
			refcnt_base);
	kt_report(rc == refcnt_base && rc >= 0 ? KT_PASS : KT_FAIL,
		  "module reference count back to its starting value");
	return kt_exit();
}
