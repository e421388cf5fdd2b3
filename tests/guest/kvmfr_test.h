/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the kvmfr guest test programs.
 *
 * - TAP 13 output in the kselftest style: a plan, one "ok"/"not ok" line per
 *   behaviour, "# " diagnostics, "# SKIP" for what cannot apply.
 * - Device discovery from the harness's environment: KVMFR_STATIC_MB="16,4"
 *   gives the static devices (kvmfr0, kvmfr1, ...), KVMFR_PCI="ADDR=MiB ..."
 *   gives the ivshmem devices, found again by PCI address through
 *   /sys/bus/pci/devices/ADDR/kvmfr/kvmfrN whenever needed. Without the
 *   environment the module's parameter and driver directory are used.
 * - sysfs access, errno expectations, pattern fill/check at device offsets,
 *   and fault probing (SIGBUS/SIGSEGV caught with sigsetjmp/siglongjmp).
 *
 * Everything is static inline so every program can include it whole; it
 * builds both as a 64-bit and as an i386 (-m32) program.
 */
#ifndef KVMFR_TEST_H
#define KVMFR_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define _FILE_OFFSET_BITS 64

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <linux/dma-buf.h>

#include "kvmfr.h"
#include "pattern.h"
#include "kvmfr_edu.h"

#define KT_UNUSED	__attribute__((unused))
#define KT_PRINTF(a, b)	__attribute__((format(printf, a, b)))
#define KT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KT_MAX_DEVS	16

/* The ABI as deployed clients compile it. */
#if defined(__x86_64__)
_Static_assert(sizeof(struct kvmfr_dmabuf_create) == 24, "x86-64 struct size");
_Static_assert(offsetof(struct kvmfr_dmabuf_create, offset) == 8, "offset");
_Static_assert(offsetof(struct kvmfr_dmabuf_create, size) == 16, "size");
_Static_assert(KVMFR_DMABUF_CREATE == 0x40187542, "x86-64 CREATE number");
#elif defined(__i386__)
_Static_assert(sizeof(struct kvmfr_dmabuf_create) == 20, "i386 struct size");
_Static_assert(offsetof(struct kvmfr_dmabuf_create, offset) == 4, "offset");
_Static_assert(offsetof(struct kvmfr_dmabuf_create, size) == 12, "size");
_Static_assert(KVMFR_DMABUF_CREATE == 0x40147542, "i386 CREATE number");
#endif
_Static_assert(KVMFR_DMABUF_GETSIZE == 0x7544, "GETSIZE number");
_Static_assert(KVMFR_DMABUF_FLAG_CLOEXEC == 0x1, "CLOEXEC flag");

#define KVMFR_CREATE_NR_X86_64	0x40187542u
#define KVMFR_CREATE_NR_I386	0x40147542u

/* ------------------------------------------------------------------ TAP */

enum { KT_PASS, KT_FAIL, KT_SKIP };

static int kt_planned KT_UNUSED;
static int kt_ran KT_UNUSED;
static int kt_failed KT_UNUSED;
static char kt_skip_reason[256] KT_UNUSED;
static size_t kt_page KT_UNUSED;

static inline KT_PRINTF(1, 2) void kt_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static inline void kt_plan(int n)
{
	kt_planned = n;
	printf("1..%d\n", n);
}

static inline KT_PRINTF(2, 3) void kt_report(int res, const char *fmt, ...)
{
	char name[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	kt_ran++;
	if (res == KT_PASS) {
		printf("ok %d - %s\n", kt_ran, name);
	} else if (res == KT_SKIP) {
		printf("ok %d - %s # SKIP %s\n", kt_ran, name,
		       kt_skip_reason[0] ? kt_skip_reason : "not applicable");
	} else {
		kt_failed++;
		printf("not ok %d - %s\n", kt_ran, name);
	}
	kt_skip_reason[0] = '\0';
	fflush(stdout);
}

/* For test functions: print why, return KT_FAIL. */
static inline KT_PRINTF(1, 2) int kt_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	return KT_FAIL;
}

static inline KT_PRINTF(1, 2) int kt_skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(kt_skip_reason, sizeof(kt_skip_reason), fmt, ap);
	va_end(ap);
	return KT_SKIP;
}

static inline int kt_exit(void)
{
	if (kt_ran != kt_planned) {
		kt_diag("test program bug: planned %d tests, ran %d",
			kt_planned, kt_ran);
		return 1;
	}
	kt_diag("%d of %d tests failed", kt_failed, kt_ran);
	return kt_failed ? 1 : 0;
}

static inline const char *kt_errname(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "E?";
}

static inline const char *kt_signame(int sig)
{
	const char *s;

	if (!sig)
		return "no signal";
	s = sigabbrev_np(sig);
	return s ? s : "SIG?";
}

/*
 * The outcome of a call that must fail: true if it returned -1 with errno
 * want, else prints what happened instead.
 */
static inline bool kt_errno_is(long ret, int err, int want, const char *what)
{
	if (ret == -1 && err == want)
		return true;
	if (ret == -1)
		kt_diag("%s: expected %s, got %s", what, kt_errname(want),
			kt_errname(err));
	else
		kt_diag("%s: expected %s, but it returned %ld", what,
			kt_errname(want), ret);
	return false;
}

/* ------------------------------------------------------------ files */

/* Reads a small file; strips the trailing newline. 0 or -errno. */
static inline int kt_read_file(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	err = errno;
	close(fd);
	if (n < 0)
		return -err;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

/* Writes s to a sysfs file in one write(). 0 or -errno. */
static inline int kt_write_file(const char *path, const char *s)
{
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	if (n < 0)
		err = -errno;
	else if ((size_t)n != strlen(s))
		err = -EIO;
	if (close(fd) && !err)
		err = -errno;
	return err;
}

static inline long long kt_read_ll(const char *path)
{
	char buf[64], *end;
	long long v;

	if (kt_read_file(path, buf, sizeof(buf)))
		return -1;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || end == buf || *end)
		return -1;
	return v;
}

/* finit_module() of the module file at @path with @params; keeps errno. */
static inline int kt_load_module(const char *path, const char *params)
{
	int fd, r, e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = syscall(SYS_finit_module, fd, params, 0);
	e = errno;
	close(fd);
	errno = e;
	return r;
}

static inline bool kt_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/*
 * Loads the modules tests/lib/add-modules.sh put in /lib/kvmfr/@set, in
 * the order of its list (an empty list: all built in). 0 when loaded (or
 * already there), 1 when the initramfs has none (@why: its "absent" note),
 * -1 when loading failed (@why: which module and the error).
 */
static inline int kt_load_modules(const char *set, char *why, size_t len)
{
	char path[256], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/lib/kvmfr/%s/list", set);
	f = fopen(path, "r");
	if (!f) {
		snprintf(path, sizeof(path), "/lib/kvmfr/%s/absent", set);
		if (kt_read_file(path, why, len))
			snprintf(why, len, "no /lib/kvmfr/%s in the initramfs", set);
		return 1;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] && kt_load_module(line, "") && errno != EEXIST) {
			snprintf(why, len, "loading %.128s: %s", line,
				 kt_errname(errno));
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

/* Bounded string copy, always terminated. */
static inline void kt_strcpy(char *dst, const char *src, size_t len)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Module reference count: every open file and dma-buf of ours holds one. */
static inline long long kt_module_refcnt(void)
{
	return kt_read_ll("/sys/module/kvmfr/refcnt");
}

static inline int kt_count_fds(void)
{
	struct dirent *de;
	int n = 0;
	DIR *dir;

	dir = opendir("/proc/self/fd");
	if (!dir)
		return -1;
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1;	/* the directory's own fd */
}

/*
 * /dev/kmsg opened at its end: kt_kmsg_find() then sees only what is
 * logged from now on. -1 (errno set) if it cannot be read.
 */
static inline int kt_kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0 && lseek(fd, 0, SEEK_END) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The text of the next kernel log record on @fd that contains @needle,
 * into @out. False if there is none (yet).
 */
static inline bool kt_kmsg_find(int fd, const char *needle, char *out,
				size_t len)
{
	char rec[1024], *text;
	ssize_t n;

	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;	/* records overwritten meanwhile */
		if (n <= 0)
			return false;
		rec[n] = '\0';
		text = strchr(rec, ';');
		if (text && strstr(text, needle)) {
			kt_strcpy(out, text + 1, len);
			out[strcspn(out, "\n")] = '\0';
			return true;
		}
	}
}

/* ---------------------------------------------------------- devices */

struct kvmfr_dev {
	bool pci;
	int index;		/* position in KVMFR_STATIC_MB or KVMFR_PCI */
	char pci_addr[32];
	uint64_t expect_size;	/* from the environment, 0 if unknown */
	char label[48];		/* stable name for test lines */
	/* filled by kt_resolve() */
	bool found;
	int num;		/* N of kvmfrN */
	char name[32];
	char node[48];
	char sysdir[96];
	uint64_t size;
};

static struct kvmfr_dev kt_devs[KT_MAX_DEVS] KT_UNUSED;
static int kt_ndev KT_UNUSED;
static int kt_nstatic KT_UNUSED;
static int kt_npci KT_UNUSED;
static char kt_static_param[128] KT_UNUSED;	/* expected static_size_mb */

static inline int kt_pci_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static inline void kt_add_static(uint64_t mib)
{
	struct kvmfr_dev *d;

	if (kt_ndev >= KT_MAX_DEVS)
		return;
	d = &kt_devs[kt_ndev++];
	memset(d, 0, sizeof(*d));
	d->index = kt_nstatic++;
	d->expect_size = mib << 20;
	snprintf(d->label, sizeof(d->label), "kvmfr%d", d->index);
}

static inline void kt_add_pci(const char *addr, uint64_t mib)
{
	struct kvmfr_dev *d;

	if (kt_ndev >= KT_MAX_DEVS)
		return;
	d = &kt_devs[kt_ndev++];
	memset(d, 0, sizeof(*d));
	d->pci = true;
	d->index = kt_npci++;
	d->expect_size = mib << 20;
	kt_strcpy(d->pci_addr, addr, sizeof(d->pci_addr));
	snprintf(d->label, sizeof(d->label), "pci:%.32s", addr);
}

static inline void kt_parse_env(void)
{
	char buf[512], *tok, *save, *eq;
	const char *s;

	s = getenv("KVMFR_STATIC_MB");
	if (!s && !kt_read_file("/sys/module/kvmfr/parameters/static_size_mb",
				buf, sizeof(buf)) && strcmp(buf, "(null)"))
		s = buf;
	if (s) {
		kt_strcpy(kt_static_param, s, sizeof(kt_static_param));
		kt_strcpy(buf, kt_static_param, sizeof(buf));
		for (tok = strtok_r(buf, ", ", &save); tok;
		     tok = strtok_r(NULL, ", ", &save))
			kt_add_static(strtoull(tok, NULL, 0));
	}

	s = getenv("KVMFR_PCI");
	if (s) {
		kt_strcpy(buf, s, sizeof(buf));
		for (tok = strtok_r(buf, " \t", &save); tok;
		     tok = strtok_r(NULL, " \t", &save)) {
			eq = strchr(tok, '=');
			if (eq)
				*eq++ = '\0';
			kt_add_pci(tok, eq ? strtoull(eq, NULL, 0) : 0);
		}
	} else {
		char addrs[KT_MAX_DEVS][32];
		struct dirent *de;
		int n = 0, i;
		DIR *dir;

		dir = opendir("/sys/bus/pci/drivers/kvmfr");
		while (dir && (de = readdir(dir)) && n < KT_MAX_DEVS)
			if (strchr(de->d_name, ':'))
				kt_strcpy(addrs[n++], de->d_name, 32);
		if (dir)
			closedir(dir);
		qsort(addrs, n, 32, kt_pci_cmp);
		for (i = 0; i < n; i++)
			kt_add_pci(addrs[i], 0);
	}
}

/* kvmfrN of a PCI function, or -1 if it has none (unbound, removed). */
static inline int kt_pci_num(const char *addr)
{
	char path[128];
	struct dirent *de;
	int num = -1;
	DIR *dir;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/kvmfr", addr);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((de = readdir(dir)))
		if (sscanf(de->d_name, "kvmfr%d", &num) == 1)
			break;
	closedir(dir);
	return num;
}

/* Finds the device's current kvmfrN and size. */
static inline bool kt_resolve(struct kvmfr_dev *d)
{
	char path[160];
	long long size;
	int num;

	d->found = false;
	d->size = 0;
	d->name[0] = '\0';
	num = d->pci ? kt_pci_num(d->pci_addr) : d->index;
	if (num < 0)
		return false;
	snprintf(path, sizeof(path), "/sys/class/kvmfr/kvmfr%d", num);
	if (!kt_exists(path))
		return false;
	d->num = num;
	snprintf(d->name, sizeof(d->name), "kvmfr%d", num);
	snprintf(d->node, sizeof(d->node), "/dev/kvmfr%d", num);
	kt_strcpy(d->sysdir, path, sizeof(d->sysdir));
	snprintf(path, sizeof(path), "%s/size", d->sysdir);
	size = kt_read_ll(path);
	d->size = size > 0 ? (uint64_t)size : d->expect_size;
	d->found = d->size != 0;
	return d->found;
}

static inline int kt_dev_attr(const struct kvmfr_dev *d, const char *attr,
			      char *buf, size_t len)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s", d->sysdir, attr);
	return kt_read_file(path, buf, len);
}

/* Live dma-bufs of the device per sysfs, -1 if unreadable. */
static inline long long kt_dmabufs(const struct kvmfr_dev *d)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/dmabufs", d->sysdir);
	return kt_read_ll(path);
}

static inline int kt_open(const struct kvmfr_dev *d)
{
	int fd = open(d->node, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		kt_diag("open %s: %s", d->node, strerror(errno));
	return fd;
}

/*
 * Keeps the IVSHMEM functions from binding to kvmfr (@on: a
 * driver_override no driver has), or lets them again and, if kvmfr is
 * loaded, binds them. 0, or -1 if a sysfs write failed.
 */
static inline int kt_hold_pci(bool on)
{
	char path[128];
	int i, bad = 0;

	for (i = 0; i < kt_ndev; i++) {
		if (!kt_devs[i].pci)
			continue;
		snprintf(path, sizeof(path),
			 "/sys/bus/pci/devices/%s/driver_override",
			 kt_devs[i].pci_addr);
		if (kt_write_file(path, on ? "kvmfr-held-off" : "\n"))
			bad = 1;
		else if (!on && kt_exists("/sys/module/kvmfr") &&
			 kt_write_file("/sys/bus/pci/drivers/kvmfr/bind",
				       kt_devs[i].pci_addr))
			bad = 1;
	}
	return bad ? -1 : 0;
}

static inline void kt_start(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n");
	kt_page = sysconf(_SC_PAGESIZE);
}

/* TAP header, environment, devices; bails out if there is nothing to test. */
static inline void kt_init(void)
{
	int i;

	kt_start();
	kt_parse_env();
	if (!kt_ndev) {
		printf("Bail out! no kvmfr device: KVMFR_STATIC_MB and KVMFR_PCI unset and the kvmfr module is not loaded\n");
		exit(1);
	}
	for (i = 0; i < kt_ndev; i++)
		if (!kt_resolve(&kt_devs[i]))
			kt_diag("%s: no such kvmfr device", kt_devs[i].label);
}

/* ------------------------------------------------------ test tables */

#define KT_STATIC	1
#define KT_PCI		2
#define KT_ALL		3

struct kt_case {
	const char *name;
	int (*fn)(struct kvmfr_dev *d);
	int types;
};

static inline bool kt_case_applies(const struct kt_case *c,
				   const struct kvmfr_dev *d)
{
	return c->types & (d->pci ? KT_PCI : KT_STATIC);
}

static inline int kt_count_cases(const struct kt_case *cases, size_t n)
{
	int count = 0, i;
	size_t j;

	for (i = 0; i < kt_ndev; i++)
		for (j = 0; j < n; j++)
			count += kt_case_applies(&cases[j], &kt_devs[i]);
	return count;
}

static sigjmp_buf kt_case_env KT_UNUSED;
static volatile sig_atomic_t kt_case_sig KT_UNUSED;
static pid_t kt_case_pid KT_UNUSED;

/*
 * A fault the test did not expect fails the running case instead of killing
 * the program; in a forked child it ends the child with 128 + signal.
 */
static KT_UNUSED void kt_case_handler(int sig)
{
	if (getpid() != kt_case_pid)
		_exit(128 + sig);
	kt_case_sig = sig;
	siglongjmp(kt_case_env, 1);
}

static inline void kt_guard(bool on)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on ? kt_case_handler : SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	kt_case_pid = getpid();
}

/* Runs one case with the fault guard. */
static inline int kt_guarded(int (*fn)(struct kvmfr_dev *d),
			     struct kvmfr_dev *d)
{
	volatile int res = KT_FAIL;

	kt_guard(true);
	if (sigsetjmp(kt_case_env, 1) == 0)
		res = fn(d);
	else
		res = kt_fail("unexpected SIG%s in the test (fds and mappings of the test leak)",
			      kt_signame(kt_case_sig));
	kt_guard(false);
	return res;
}

/* Runs every case on every device, device after device. */
static inline void kt_run_cases(const struct kt_case *cases, size_t n)
{
	struct kvmfr_dev *d;
	int i, res;
	size_t j;

	for (i = 0; i < kt_ndev; i++) {
		d = &kt_devs[i];
		if (d->found)
			kt_diag("%s is %s (%s, %" PRIu64 " bytes)", d->label,
				d->name, d->pci ? "pci" : "static", d->size);
		for (j = 0; j < n; j++) {
			if (!kt_case_applies(&cases[j], d))
				continue;
			if (!kt_resolve(d)) {
				kt_diag("%s: device not found", d->label);
				res = KT_FAIL;
			} else {
				res = kt_guarded(cases[j].fn, d);
			}
			kt_report(res, "%s: %s", d->label, cases[j].name);
		}
	}
}

/* ------------------------------------------------------------ ioctl */

static inline int kt_create(int fd, unsigned int flags, uint64_t off,
			    uint64_t size)
{
	struct kvmfr_dmabuf_create c;

	memset(&c, 0, sizeof(c));
	c.flags = flags;
	c.offset = off;
	c.size = size;
	return ioctl(fd, KVMFR_DMABUF_CREATE, &c);
}

/* CREATE with the native layout built byte by byte, padding set to pad. */
static inline int kt_create_padded(int fd, unsigned int flags, uint64_t off,
				   uint64_t size, uint8_t pad)
{
	unsigned char raw[sizeof(struct kvmfr_dmabuf_create)];

	memset(raw, pad, sizeof(raw));
	raw[offsetof(struct kvmfr_dmabuf_create, flags)] = flags;
	memcpy(raw + offsetof(struct kvmfr_dmabuf_create, offset), &off, 8);
	memcpy(raw + offsetof(struct kvmfr_dmabuf_create, size), &size, 8);
	return ioctl(fd, KVMFR_DMABUF_CREATE, raw);
}

/* A CREATE that must fail with want; closes the fd if it did not fail. */
static inline bool kt_create_fails(int fd, unsigned int flags, uint64_t off,
				   uint64_t size, int want)
{
	char what[160];
	int r, e;

	errno = 0;
	r = kt_create(fd, flags, off, size);
	e = errno;
	if (r >= 0)
		close(r);
	snprintf(what, sizeof(what),
		 "CREATE(flags 0x%x, offset 0x%" PRIx64 ", size 0x%" PRIx64 ")",
		 flags, off, size);
	return kt_errno_is(r, e, want, what);
}

static inline long long kt_getsize(int fd)
{
	return ioctl(fd, KVMFR_DMABUF_GETSIZE);
}

/* An mmap that must fail with want; unmaps if it did not fail. */
static inline bool kt_mmap_fails(int fd, uint64_t off, size_t len, int prot,
				 int flags, int want, const char *what)
{
	char buf[200];
	void *p;
	int e;

	errno = 0;
	p = mmap(NULL, len, prot, flags, fd, (off_t)off);
	e = errno;
	snprintf(buf, sizeof(buf), "%s mmap(len 0x%zx, offset 0x%" PRIx64 ")",
		 what, len, off);
	if (p != MAP_FAILED) {
		munmap(p, len);
		return kt_errno_is(0, 0, want, buf);
	}
	return kt_errno_is(-1, e, want, buf);
}

/* MAP_SHARED read/write mapping, NULL (with a diagnostic) on failure. */
static inline void *kt_map(int fd, uint64_t off, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       (off_t)off);

	if (p == MAP_FAILED) {
		kt_diag("mmap(len 0x%zx, offset 0x%" PRIx64 ") failed: %s", len,
			off, kt_errname(errno));
		return NULL;
	}
	return p;
}

static inline void kt_unmap(void *p, size_t len)
{
	if (p && munmap(p, len))
		kt_diag("munmap failed: %s", kt_errname(errno));
}

static inline void kt_close(int fd)
{
	if (fd >= 0 && close(fd))
		kt_diag("close(%d) failed: %s", fd, kt_errname(errno));
}

/* --------------------------------------------------------- patterns */

/* A seed no earlier run or test used, so stale data never matches. */
static inline uint64_t kt_seed(void)
{
	static uint64_t counter;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return kvmfr_pattern_word((uint64_t)ts.tv_sec * 1000000000ull +
				  ts.tv_nsec, ((uint64_t)getpid() << 32) +
				  ++counter);
}

/*
 * Fill/check the bytes that sit at device offset dev_off, seen at p. The
 * pattern depends on the absolute device position, so a range mapped at the
 * wrong offset never matches.
 */
static inline void kt_fill_at(volatile void *p, uint64_t dev_off, size_t len,
			      uint64_t seed)
{
	kvmfr_pattern_fill((uint64_t *)p, seed, dev_off / 8, len / 8);
}

static inline bool kt_check_at(const volatile void *p, uint64_t dev_off,
			       size_t len, uint64_t seed, const char *what)
{
	const volatile uint64_t *w = p;
	uint64_t n = len / 8, i;

	i = kvmfr_pattern_check(w, seed, dev_off / 8, n);
	if (i == n)
		return true;
	kt_diag("%s: device offset 0x%" PRIx64 " reads 0x%016" PRIx64
		", expected 0x%016" PRIx64, what, dev_off + i * 8, w[i],
		kvmfr_pattern_word(seed, dev_off / 8 + i));
	return false;
}

static inline bool kt_memeq(const volatile void *a, const volatile void *b,
			    size_t len, const char *what)
{
	const volatile uint8_t *x = a, *y = b;
	size_t i;

	if (!memcmp((const void *)a, (const void *)b, len))
		return true;
	for (i = 0; i < len && x[i] == y[i]; i++)
		;
	kt_diag("%s: differ at byte 0x%zx: 0x%02x vs 0x%02x", what, i, x[i],
		y[i]);
	return false;
}

static inline bool kt_is_zero(const volatile void *p, size_t len,
			      const char *what)
{
	const volatile uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i]) {
			kt_diag("%s: byte 0x%zx is not zero (0x%016" PRIx64 ")",
				what, i * 8, w[i]);
			return false;
		}
	return true;
}

/* ---------------------------------------------------- fault probing */

static sigjmp_buf kt_probe_env KT_UNUSED;
static volatile sig_atomic_t kt_probe_sig KT_UNUSED;

static KT_UNUSED void kt_probe_handler(int sig)
{
	kt_probe_sig = sig;
	siglongjmp(kt_probe_env, 1);
}

/*
 * Touches one byte. Returns 0 if the access worked, otherwise the signal it
 * raised: SIGBUS, SIGSEGV, or SIGALRM if it did not finish in 20 s.
 */
static inline int kt_probe(volatile void *addr, bool write)
{
	struct sigaction sa, obus, osegv, oalrm;
	volatile int sig = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kt_probe_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &obus);
	sigaction(SIGSEGV, &sa, &osegv);
	sigaction(SIGALRM, &sa, &oalrm);
	kt_probe_sig = 0;
	if (sigsetjmp(kt_probe_env, 1) == 0) {
		alarm(20);
		if (write)
			*(volatile uint8_t *)addr = 0x5a;
		else
			(void)*(volatile uint8_t *)addr;
		alarm(0);
		sig = 0;
	} else {
		alarm(0);
		sig = kt_probe_sig;
	}
	sigaction(SIGBUS, &obus, NULL);
	sigaction(SIGSEGV, &osegv, NULL);
	sigaction(SIGALRM, &oalrm, NULL);
	return sig;
}

/* An access that must raise want (SIGBUS or SIGSEGV). */
static inline bool kt_probe_raises(volatile void *addr, bool write, int want,
				   const char *what)
{
	int sig = kt_probe(addr, write);

	if (sig == want)
		return true;
	kt_diag("%s %s: expected SIG%s, got %s%s", what,
		write ? "write" : "read", kt_signame(want),
		sig ? "SIG" : "", kt_signame(sig));
	return false;
}

/*
 * Waits for a child, at most timeout_s seconds (then kills it). Returns the
 * wait status, or -1.
 */
static inline int kt_wait_child(pid_t pid, int timeout_s)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int status, i;
	pid_t r;

	for (i = 0; i < timeout_s * 100; i++) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		nanosleep(&ts, NULL);
	}
	kt_diag("child %d did not finish in %d s, killing it", (int)pid,
		timeout_s);
	kill(pid, SIGKILL);
	/* It may be stuck in the kernel, where SIGKILL cannot reach it. */
	for (i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) != 0)
			return -1;
		nanosleep(&ts, NULL);
	}
	kt_diag("child %d survives SIGKILL: stuck in the kernel", (int)pid);
	return -1;
}

/* True if the wait status is a clean exit(0); explains otherwise. */
static inline bool kt_child_ok(int status, const char *what)
{
	if (status != -1 && WIFEXITED(status) && !WEXITSTATUS(status))
		return true;
	if (status == -1)
		kt_diag("%s: child timed out", what);
	else if (WIFSIGNALED(status))
		kt_diag("%s: child killed by SIG%s", what,
			kt_signame(WTERMSIG(status)));
	else
		kt_diag("%s: child exited with %d", what, WEXITSTATUS(status));
	return false;
}

static inline uint64_t kt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void kt_sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * Writes a sysfs file from a child so that a write blocking in the kernel
 * (a driver waiting for its users) is seen as a failure, not a hang.
 * Returns 0, -errno of the write, or -ETIMEDOUT with *pending set (the
 * child still blocked in the write).
 */
static inline int kt_write_file_bounded(const char *path, const char *val,
					int timeout_s, pid_t *pending)
{
	int status, i;
	pid_t pid, r;

	*pending = -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(-kt_write_file(path, val));
	if (pid < 0)
		return -errno;
	for (i = 0; i < timeout_s * 50; i++) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? -WEXITSTATUS(status) : -EINTR;
		kt_sleep_ms(20);
	}
	*pending = pid;
	return -ETIMEDOUT;
}

/* ------------------------------------------------------------ importer */

/*
 * tests/edu's dma-buf importer (kvmfr_edu.ko driving QEMU's edu device),
 * loaded by the guest init before the suite when the guest has edu. Each
 * open file of /dev/kvmfr_edu is one importer. Returns the fd, or -1 with
 * errno (ENOENT: no importer in this guest).
 */
static inline int kt_importer_open(void)
{
	return open("/dev/kvmfr_edu", O_RDWR | O_CLOEXEC);
}

/*
 * Import, attach and map dma-buf @db for DMA (a static importer if
 * @pinned: attached without move_notify). Fails unless the whole buffer
 * is mapped.
 */
static inline int kt_importer_import(int edu, int db, bool pinned)
{
	struct kvmfr_edu_import imp;

	memset(&imp, 0, sizeof(imp));
	imp.fd = db;
	imp.flags = pinned ? KVMFR_EDU_IMPORT_STATIC : 0;
	if (ioctl(edu, KVMFR_EDU_IMPORT, &imp)) {
		kt_diag("importer: IMPORT: %s", strerror(errno));
		return -1;
	}
	if (imp.mapped != imp.size) {
		kt_diag("importer: %llu of %llu bytes mapped for DMA",
			(unsigned long long)imp.mapped,
			(unsigned long long)imp.size);
		return -1;
	}
	return 0;
}

/*
 * The device moves @len bytes (at most KVMFR_EDU_BUF_SIZE) between the
 * imported dma-buf at @off and @p: to_device, the device reads the dma-buf
 * (DMA into its buffer, then read back into @p); else it writes @p into the
 * dma-buf by DMA.
 */
static inline int kt_importer_dma(int edu, uint64_t off, void *p, uint32_t len,
				  bool to_device)
{
	struct kvmfr_edu_xfer x = { .ptr = (uintptr_t)p, .len = len };
	struct kvmfr_edu_dma dma = {
		.offset = off, .len = len,
		.dir = to_device ? KVMFR_EDU_TO_EDU : KVMFR_EDU_FROM_EDU,
	};

	if (!to_device && ioctl(edu, KVMFR_EDU_BUF_WRITE, &x)) {
		kt_diag("importer: BUF_WRITE: %s", strerror(errno));
		return -1;
	}
	if (ioctl(edu, KVMFR_EDU_DMA, &dma)) {
		kt_diag("importer: DMA %s at 0x%" PRIx64 ": %s",
			to_device ? "from the dma-buf" : "into the dma-buf", off,
			strerror(errno));
		return -1;
	}
	if (to_device && ioctl(edu, KVMFR_EDU_BUF_READ, &x)) {
		kt_diag("importer: BUF_READ: %s", strerror(errno));
		return -1;
	}
	return 0;
}

#endif /* KVMFR_TEST_H */
