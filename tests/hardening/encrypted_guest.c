// SPDX-License-Identifier: GPL-2.0
/*
 * kvmfr in a memory-encrypted guest (AMD SEV, Intel TDX), which TCG cannot
 * run: there an IVSHMEM device's memory is kept from the kernel's
 * encrypted direct-map alias of its pages (docs/design.md, "Encrypted
 * guests"). The same path is taken with bar_direct_map=off, which this
 * program sets before binding an IVSHMEM device again: mappings work,
 * GUP-based access (O_DIRECT, process_vm_readv) fails with EFAULT,
 * /proc/self/mem goes through the decrypted kernel mapping with the right
 * bytes, dma-buf imports fail with EOPNOTSUPP; static devices are
 * unaffected; bound again with "auto" the device is back to normal. A
 * value other than auto/off is refused with EINVAL.
 */
#include "../guest/kvmfr_test.h"
#include "../guest/loop_dev.h"

#include <sys/uio.h>

#define PARAM		"/sys/module/kvmfr/parameters/bar_direct_map"
#define LEN		(4 * kt_page)

struct drm_prime_arg {
	uint32_t handle, flags;
	int32_t fd;
};

#define DRM_IOCTL_PRIME_FD_TO_HANDLE	_IOWR('d', 0x2e, struct drm_prime_arg)

static struct kvmfr_dev *pci_dev, *static_dev;
static struct kt_loop dio = { -1, -1, -1, "" };
static char why[256];		/* why the cases cannot run at all */
static char dio_why[256];	/* why there is no loop device */

/* Unbind and bind @d with bar_direct_map=@mode. */
static int rebind(struct kvmfr_dev *d, const char *mode)
{
	int ret = 0, i;

	if (kt_write_file("/sys/bus/pci/drivers/kvmfr/unbind", d->pci_addr))
		return kt_fail("unbind %s: %s", d->pci_addr, kt_errname(errno));
	if (kt_write_file(PARAM, mode))
		ret = kt_fail("bar_direct_map=%s: %s", mode, kt_errname(errno));
	if (kt_write_file("/sys/bus/pci/drivers/kvmfr/bind", d->pci_addr))
		ret = kt_fail("bind %s: %s", d->pci_addr, kt_errname(errno));
	for (i = 0; i < 100 && !kt_resolve(d); i++)
		kt_sleep_ms(20);
	if (!d->found)
		ret = kt_fail("%s did not come back", d->pci_addr);
	return ret;
}

/* A filled mapping of the device's first LEN bytes, or NULL. */
static uint8_t *map_filled(struct kvmfr_dev *d, int *fd, uint64_t seed)
{
	uint8_t *p;

	*fd = kt_open(d);
	if (*fd < 0)
		return NULL;
	p = kt_map(*fd, 0, LEN);
	if (!p) {
		kt_close(*fd);
		return NULL;
	}
	kt_fill_at(p, 0, LEN, seed);
	madvise(p, LEN, MADV_DONTNEED);	/* the kernel must fault them */
	return p;
}

static void unmap_close(uint8_t *p, int fd)
{
	kt_unmap(p, LEN);
	kt_close(fd);
}

/* O_DIRECT write from @d's mapping: its errno, or 0 and the bytes arrived. */
static int dio_write(struct kvmfr_dev *d, int *err)
{
	uint64_t seed = kt_seed();
	uint8_t *p, *buf;
	int fd, res = KT_PASS;

	*err = 0;
	buf = malloc(LEN);
	p = buf ? map_filled(d, &fd, seed) : NULL;
	if (!p) {
		free(buf);
		return KT_FAIL;
	}
	if (pwrite(dio.dio, p, LEN, 0) != (ssize_t)LEN)
		*err = errno;
	else if (pread(dio.back, buf, LEN, 0) != (ssize_t)LEN ||
		 !kt_check_at(buf, 0, LEN, seed, "block device after O_DIRECT"))
		res = KT_FAIL;
	unmap_close(p, fd);
	free(buf);
	return res;
}

static int dio_missing(void)
{
	static int state = -2;

	if (state == -2)
		state = kt_loop_setup(&dio, "/tmp/kvmfr-enc-dio", LEN, dio_why,
				      sizeof(dio_why));
	if (state == 1)
		return kt_skip("no loop driver: %s", dio_why);
	if (state == -1)
		return kt_fail("%s", dio_why);
	return 0;
}

/* ------------------------------------------------------------- cases */

static int bad_value_refused(void)
{
	char buf[16];
	int r = kt_write_file(PARAM, "sometimes");

	if (r != -EINVAL)
		return kt_fail("bar_direct_map=sometimes: %s, want EINVAL",
			       r ? kt_errname(-r) : "accepted");
	if (kt_read_file(PARAM, buf, sizeof(buf)) || strcmp(buf, "auto"))
		return kt_fail("bar_direct_map reads '%s' after it, want auto",
			       buf);
	return KT_PASS;
}

static int mapping_works(void)
{
	uint64_t seed = kt_seed();
	uint8_t *p, *q;
	int fd, res = KT_PASS;

	p = map_filled(pci_dev, &fd, seed);
	if (!p)
		return KT_FAIL;
	q = kt_map(fd, 0, LEN);
	if (!q)
		res = KT_FAIL;
	else if (!kt_check_at(q, 0, LEN, seed, "second mapping"))
		res = KT_FAIL;
	if (q)
		kt_unmap(q, LEN);
	unmap_close(p, fd);
	return res;
}

static int o_direct_refused(void)
{
	int err, res = dio_missing();

	if (res)
		return res;
	res = dio_write(pci_dev, &err);
	if (res != KT_PASS)
		return res;
	if (err != EFAULT)
		return kt_fail("O_DIRECT write from the mapping: %s, want EFAULT",
			       err ? kt_errname(err) : "it succeeded");
	return KT_PASS;
}

static int process_vm_refused(void)
{
	uint64_t x, seed = kt_seed();
	struct iovec local = { &x, sizeof(x) }, remote;
	int fd, res = KT_PASS;
	uint8_t *p;
	ssize_t r;

	p = map_filled(pci_dev, &fd, seed);
	if (!p)
		return KT_FAIL;
	remote = (struct iovec){ p, sizeof(x) };
	r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	if (r < 0 && errno == ENOSYS)
		res = kt_skip("kernel without process_vm_readv (CONFIG_CROSS_MEMORY_ATTACH)");
	else if (r >= 0 || errno != EFAULT)
		res = kt_fail("process_vm_readv: %s, want EFAULT",
			      r >= 0 ? "it succeeded" : kt_errname(errno));
	unmap_close(p, fd);
	return res;
}

static int proc_mem_works(void)
{
	uint64_t seed = kt_seed(), seed2 = kt_seed();
	int fd, mem, res = KT_PASS;
	uint8_t *p, *buf;

	buf = malloc(LEN);
	p = buf ? map_filled(pci_dev, &fd, seed) : NULL;
	if (!p) {
		free(buf);
		return KT_FAIL;
	}
	mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (mem < 0) {
		res = kt_fail("/proc/self/mem: %s", kt_errname(errno));
	} else if (pread(mem, buf, LEN, (off_t)(uintptr_t)p) != (ssize_t)LEN) {
		res = kt_fail("read of /proc/self/mem: %s", kt_errname(errno));
	} else if (!kt_check_at(buf, 0, LEN, seed, "read by /proc/self/mem")) {
		res = KT_FAIL;
	} else {
		kt_fill_at(buf, 0, LEN, seed2);
		if (pwrite(mem, buf, LEN, (off_t)(uintptr_t)p) != (ssize_t)LEN)
			res = kt_fail("write of /proc/self/mem: %s",
				      kt_errname(errno));
		else if (!kt_check_at(p, 0, LEN, seed2,
				      "/proc/self/mem write, seen in the mapping"))
			res = KT_FAIL;
	}
	if (mem >= 0)
		close(mem);
	unmap_close(p, fd);
	free(buf);
	return res;
}

static int attach_refused(void)
{
	struct drm_prime_arg a = { 0 };
	int fd, db, drm, i, res = KT_PASS;
	char no_vgem[200];

	if (kt_load_modules("vgem", no_vgem, sizeof(no_vgem)) > 0)
		return kt_skip("no vgem to import with: %s", no_vgem);
	for (i = 0; i < 100 && !kt_exists("/dev/dri/renderD128"); i++)
		kt_sleep_ms(20);
	drm = open("/dev/dri/renderD128", O_RDWR | O_CLOEXEC);
	if (drm < 0)
		return kt_skip("no DRM render node (vgem) to import with: %s",
			       kt_errname(errno));
	fd = kt_open(pci_dev);
	db = fd < 0 ? -1 : kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, LEN);
	if (db < 0) {
		res = kt_fail("CREATE: %s", kt_errname(errno));
	} else {
		a.fd = db;
		if (!ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, &a))
			res = kt_fail("vgem imported the dma-buf, want EOPNOTSUPP");
		else if (errno != EOPNOTSUPP)
			res = kt_fail("PRIME import: %s, want EOPNOTSUPP",
				      kt_errname(errno));
	}
	kt_close(db);
	kt_close(fd);
	close(drm);
	return res;
}

static int static_unaffected(void)
{
	int err, res = dio_missing();

	if (res)
		return res;
	if (!static_dev)
		return kt_skip("no static device");
	res = dio_write(static_dev, &err);
	if (res == KT_PASS && err)
		res = kt_fail("O_DIRECT write from a static device's mapping: %s",
			      kt_errname(err));
	return res;
}

static int normal_again(void)
{
	int err, res = dio_missing();

	if (res)
		return res;
	res = rebind(pci_dev, "auto");
	if (res)
		return res;
	res = dio_write(pci_dev, &err);
	if (res == KT_PASS && err)
		res = kt_fail("O_DIRECT write after a normal bind: %s",
			      kt_errname(err));
	return res;
}

static const struct {
	const char *name;
	int (*fn)(void);
} cases[] = {
	{ "bar_direct_map=sometimes is refused with EINVAL, auto kept", bad_value_refused },
	{ "O_DIRECT from a mapping fails with EFAULT", o_direct_refused },
	{ "process_vm_readv of a mapping fails with EFAULT", process_vm_refused },
	{ "dma-buf import by vgem fails with EOPNOTSUPP", attach_refused },
	{ "loads and stores through the mapping reach the device", mapping_works },
	{ "/proc/self/mem reads and writes the mapping with the right bytes", proc_mem_works },
	{ "a static device's mapping still does O_DIRECT", static_unaffected },
	{ "bound again with bar_direct_map=auto: O_DIRECT from the mapping works", normal_again },
};

int main(void)
{
	size_t i, n = KT_ARRAY_SIZE(cases);
	int res, j;

	kt_init();
	kt_plan(n);
	for (j = 0; j < kt_ndev; j++) {
		if (kt_devs[j].pci && kt_devs[j].found && !pci_dev)
			pci_dev = &kt_devs[j];
		if (!kt_devs[j].pci && kt_devs[j].found && !static_dev)
			static_dev = &kt_devs[j];
	}
	if (!pci_dev)
		snprintf(why, sizeof(why), "no IVSHMEM device");
	/* the first case runs before the rebind, with bar_direct_map=auto */
	kt_report(pci_dev ? cases[0].fn() : kt_skip("%s", why),
		  "%s", cases[0].name);
	if (pci_dev && rebind(pci_dev, "off"))
		snprintf(why, sizeof(why), "rebinding with bar_direct_map=off failed");
	for (i = 1; i < n; i++) {
		if (why[0])
			res = i == 1 && pci_dev ? kt_fail("%s", why) :
						  kt_skip("%s", why);
		else
			res = cases[i].fn();
		kt_report(res, "%s: bar_direct_map=off (as in a memory-encrypted guest): %s",
			  pci_dev ? pci_dev->label : "pci", cases[i].name);
	}
	/* whatever failed above, leave the device bound, with auto */
	kt_write_file(PARAM, "auto");
	if (pci_dev && !kt_resolve(pci_dev))
		kt_write_file("/sys/bus/pci/drivers/kvmfr/bind", pci_dev->pci_addr);
	kt_loop_teardown(&dio);
	return kt_exit();
}
