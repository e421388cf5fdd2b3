// SPDX-License-Identifier: GPL-2.0
/*
 * static_size_mb= at load time: malformed lists and zero sizes are refused
 * with EINVAL, a size beyond the machine's memory with ENOMEM, each leaving
 * nothing behind; many devices in one list work; and a 4 GiB device works
 * when the guest has the memory (sizes are 64-bit throughout). The module
 * is reloaded with its original parameters at the end.
 */
#include "../guest/kvmfr_test.h"

#include <sys/syscall.h>

static int load(const char *params)
{
	const char *ko = getenv("KVMFR_KO");

	return kt_load_module(ko ? ko : "/lib/kvmfr/kvmfr.ko", params);
}

static int unload(void)
{
	return syscall(SYS_delete_module, "kvmfr", O_NONBLOCK);
}

static bool loaded(void)
{
	return kt_exists("/sys/module/kvmfr");
}

static int refused(const char *params, int want)
{
	int ret = load(params);

	if (!kt_errno_is(ret, errno, want, params)) {
		if (!ret)
			unload();
		return KT_FAIL;
	}
	if (loaded() || kt_exists("/sys/class/kvmfr"))
		return kt_fail("'%s': refused, but the module or its class is left",
			       params);
	return KT_PASS;
}

static long long mem_total_kib(void)
{
	char line[128];
	long long kib = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %lld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static int many_devices(void)
{
	char params[256] = "static_size_mb=", path[64];
	int i, n = 24;

	for (i = 0; i < n; i++)
		snprintf(params + strlen(params), sizeof(params) - strlen(params),
			 "%s%d", i ? "," : "", 1 + i % 3);
	if (load(params))
		return kt_fail("'%s': %s", params, kt_errname(errno));
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/sys/class/kvmfr/kvmfr%d/size", i);
		if (kt_read_ll(path) != (long long)(1 + i % 3) << 20) {
			unload();
			return kt_fail("%s: %lld", path, kt_read_ll(path));
		}
	}
	if (unload())
		return kt_fail("rmmod: %s", kt_errname(errno));
	return KT_PASS;
}

/* 4 GiB: everything but GETSIZE, which cannot express it, works. */
static int four_gib(void)
{
	const uint64_t size = 4ull << 30;
	uint64_t *map, *buf_map;
	long got;
	int fd, buf, ret = KT_PASS;

	if (mem_total_kib() < (long long)(size >> 10) + (1 << 20))
		return kt_skip("guest has %lld MiB of memory",
			       mem_total_kib() >> 10);
	if (load("static_size_mb=4096"))
		return kt_fail("load with 4096 MiB: %s", kt_errname(errno));
	fd = open("/dev/kvmfr0", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = kt_fail("open: %s", kt_errname(errno));
		goto out;
	}
	/* The ioctl syscall returns an int: the size can't be its value. */
	got = ioctl(fd, KVMFR_DMABUF_GETSIZE);
	if (!kt_errno_is(got, errno, EOVERFLOW, "GETSIZE of 4 GiB"))
		ret = KT_FAIL;
	if (kt_read_ll("/sys/class/kvmfr/kvmfr0/size") != (long long)size)
		ret = kt_fail("sysfs size %lld",
			      kt_read_ll("/sys/class/kvmfr/kvmfr0/size"));

	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		ret = kt_fail("mmap 4 GiB: %s", kt_errname(errno));
		goto close_fd;
	}
	map[size / 8 - 1] = 0x4b564d4652ull;
	buf = kt_create(fd, 0, size - kt_page, kt_page);
	if (buf < 0) {
		ret = kt_fail("dma-buf at 4 GiB - page: %s", kt_errname(errno));
	} else {
		buf_map = mmap(NULL, kt_page, PROT_READ, MAP_SHARED, buf, 0);
		if (buf_map == MAP_FAILED)
			ret = kt_fail("dma-buf mmap: %s", kt_errname(errno));
		else if (buf_map[kt_page / 8 - 1] != 0x4b564d4652ull)
			ret = kt_fail("last word through the dma-buf: %#llx",
				      (unsigned long long)buf_map[kt_page / 8 - 1]);
		if (buf_map != MAP_FAILED)
			munmap(buf_map, kt_page);
		close(buf);
	}
	if (map[0] != 0)
		ret = kt_fail("first word not zero: %#llx",
			      (unsigned long long)map[0]);
	munmap(map, size);
close_fd:
	close(fd);
out:
	if (unload())
		ret = kt_fail("rmmod: %s", kt_errname(errno));
	return ret;
}

int main(void)
{
	char orig[160];
	long long ram_mib;

	kt_init();
	kt_plan(9);
	snprintf(orig, sizeof(orig), "static_size_mb=%s", kt_static_param);
	if (unload()) {
		printf("Bail out! rmmod kvmfr: %s\n", kt_errname(errno));
		return 1;
	}
	ram_mib = mem_total_kib() >> 10;

	kt_report(refused("static_size_mb=0", EINVAL),
		  "static_size_mb=0 is refused with EINVAL");
	kt_report(refused("static_size_mb=16,0", EINVAL),
		  "a zero in the list is refused with EINVAL");
	kt_report(refused("static_size_mb=abc", EINVAL),
		  "a non-number is refused with EINVAL");
	kt_report(refused("static_size_mb=16,", EINVAL),
		  "an empty list entry is refused with EINVAL");
	kt_report(refused("static_size_mb=4294967296", EINVAL),
		  "a size beyond 32 bits of MiB is refused with EINVAL");
	{
		char p[64];

		snprintf(p, sizeof(p), "static_size_mb=%lld", ram_mib * 2);
		kt_report(refused(p, ENOMEM),
			  "twice the guest's memory (%lld MiB) is refused with ENOMEM",
			  ram_mib * 2);
	}
	kt_report(many_devices(), "24 static devices in one list");
	kt_report(four_gib(), "a 4 GiB static device: sysfs size, GETSIZE EOVERFLOW, mmap, dma-buf at its last page");

	kt_report(load(orig) ? kt_fail("reload '%s': %s", orig,
				       kt_errname(errno)) : KT_PASS,
		  "module reloaded with its original parameters");
	return kt_exit();
}
