// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection: make the n-th slab allocation of one system call fail, for
 * n = 1, 2, ... until the call succeeds, and check after every failure that
 * the call returned an error and left nothing behind. Swept: dma-buf
 * creation, module load with static devices, PCI probe through bind. Plus
 * dma-buf fd exhaustion with RLIMIT_NOFILE.
 *
 * Needs CONFIG_FAULT_INJECTION_DEBUG_FS and CONFIG_FAILSLAB (the debug
 * kernel); the sweeps are skipped where /proc/thread-self/fail-nth is missing.
 */
#include "../guest/kvmfr_test.h"

#include <sys/resource.h>
#include <sys/syscall.h>

#define FAIL_NTH	"/proc/thread-self/fail-nth"
#define MAX_STEPS	4000

static bool have_fail_nth(void)
{
	return kt_exists(FAIL_NTH) &&
	       kt_exists("/sys/kernel/debug/failslab/verbose");
}

/* Address of kernel symbol NAME and of the next symbol after it. */
static int symbol_range(const char *name, unsigned long long *start,
			unsigned long long *end)
{
	unsigned long long a;
	char line[512], sym[256], t;
	FILE *f;

	*start = 0;
	*end = ~0ull;
	f = fopen("/proc/kallsyms", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx %c %255s", &a, &t, sym) == 3 &&
		    !strcmp(sym, name) && !strchr(line, '['))
			*start = a;
	rewind(f);
	while (*start && fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx %c %255s", &a, &t, sym) == 3 &&
		    a > *start && a < *end)
			*end = a;
	fclose(f);
	return *start && *end != ~0ull ? 0 : -1;
}

/*
 * x86's add_pages() WARNs whenever __add_pages() fails (arch/x86/mm/
 * init_64.c): an injected failure of its section bookkeeping (reached from
 * memremap_pages() in kvmfr's PCI probe) is a kernel warning, a panic with
 * panic_on_warn, that says nothing about kvmfr. So nothing below
 * add_pages() is failed (failslab's stack-trace filter); every other
 * allocation, memremap_pages()'s own included, stays in the sweeps.
 */
static void reject_add_pages(void)
{
	unsigned long long start, end;
	char buf[32];

	if (symbol_range("add_pages", &start, &end)) {
		kt_diag("add_pages not in /proc/kallsyms: no reject range");
		return;
	}
	snprintf(buf, sizeof(buf), "%#llx", end);
	if (kt_write_file("/sys/kernel/debug/failslab/reject-end", buf))
		return;
	snprintf(buf, sizeof(buf), "%#llx", start);
	if (kt_write_file("/sys/kernel/debug/failslab/reject-start", buf))
		return;
	kt_diag("failslab: not failing allocations below add_pages (%#llx-%#llx), it WARNs on failure",
		start, end);
}

/* Fail GFP_KERNEL allocations too, and quietly: a stack dump is a report. */
static int setup_failslab(void)
{
	if (kt_write_file("/sys/kernel/debug/failslab/verbose", "0") ||
	    kt_write_file("/sys/kernel/debug/failslab/ignore-gfp-wait", "N"))
		return -1;
	reject_add_pages();
	return 0;
}

/* Arms the n-th fault of this thread's next calls. */
static int arm(int n)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", n);
	return kt_write_file(FAIL_NTH, buf);
}

/* True if the armed fault was injected; disarms it either way. */
static bool injected(void)
{
	char buf[16];
	bool hit;

	if (kt_read_file(FAIL_NTH, buf, sizeof(buf)))
		return false;
	hit = !strcmp(buf, "0");
	kt_write_file(FAIL_NTH, "0");
	return hit;
}

static int test_create_sweep(struct kvmfr_dev *d)
{
	long long base = kt_dmabufs(d);
	int fd, n, ret, err, fds = kt_count_fds();
	bool hit;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	fds++;
	for (n = 1; n <= MAX_STEPS; n++) {
		arm(n);
		ret = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, kt_page,
				4 * kt_page);
		err = errno;
		hit = injected();
		if (ret >= 0) {
			close(ret);
			if (!hit)
				break;
			continue;	/* the failure was absorbed: fine */
		}
		if (!hit) {
			close(fd);
			return kt_fail("CREATE failed without an injected fault: %s",
				       kt_errname(err));
		}
		if (kt_dmabufs(d) != base || kt_count_fds() != fds) {
			close(fd);
			return kt_fail("step %d (%s): %lld dma-bufs, %d fds left behind",
				       n, kt_errname(err), kt_dmabufs(d),
				       kt_count_fds());
		}
	}
	close(fd);
	if (n > MAX_STEPS)
		return kt_fail("CREATE never succeeded in %d steps", MAX_STEPS);
	kt_diag("%s: CREATE succeeded after %d injected failures", d->label,
		n - 1);
	if (kt_dmabufs(d) != base)
		return kt_fail("%lld dma-bufs after the sweep, %lld before",
			       kt_dmabufs(d), base);
	return KT_PASS;
}

static bool module_loaded(void)
{
	return kt_exists("/sys/module/kvmfr");
}

static int load_module(const char *params)
{
	const char *ko = getenv("KVMFR_KO");

	return kt_load_module(ko ? ko : "/lib/kvmfr/kvmfr.ko", params);
}

/* Module load with static devices, failing each allocation in turn. */
static int load_sweep(const char *params)
{
	int n, ret, err;
	bool hit;

	for (n = 1; n <= MAX_STEPS; n++) {
		arm(n);
		ret = load_module(params);
		err = errno;
		hit = injected();
		if (!ret && !hit)
			break;
		if (!ret) {
			if (syscall(SYS_delete_module, "kvmfr", O_NONBLOCK))
				return kt_fail("rmmod after load at step %d: %s",
					       n, kt_errname(errno));
			continue;
		}
		if (!hit)
			return kt_fail("load failed without an injected fault: %s",
				       kt_errname(err));
		if (module_loaded() || kt_exists("/sys/class/kvmfr"))
			return kt_fail("step %d (%s): module or class left behind",
				       n, kt_errname(err));
	}
	if (!module_loaded())
		return kt_fail("module never loaded in %d steps", MAX_STEPS);
	kt_diag("module load succeeded after %d injected failures", n - 1);
	return KT_PASS;
}

#define FAILSLAB	"/sys/kernel/debug/failslab/"

/*
 * The load sweep by default fails only allocations made with kvmfr's own
 * code on the stack (failslab's stack-trace filter, any address in the x86-64
 * module area: kvmfr is the only module) and keeps the PCI functions from
 * binding during it (driver_override): a failure in the module loader itself
 * is the loader's business, and the PCI probe has its own sweep. That is
 * about 50 loads instead of about 650 at 0.7 s each under TCG with the debug
 * kernel. KVMFR_FAULT_LOAD_ALL=1 sweeps every allocation of the load.
 */
static bool load_all(void)
{
	const char *s = getenv("KVMFR_FAULT_LOAD_ALL");

	return s && *s && strcmp(s, "0");
}

static int require_module_frames(bool on)
{
	if (!on)
		return kt_write_file(FAILSLAB "require-start", "0") ||
		       kt_write_file(FAILSLAB "require-end",
				     "0xffffffffffffffff");
	return kt_write_file(FAILSLAB "stacktrace-depth", "64") ||
	       kt_write_file(FAILSLAB "require-end", "0xffffffffff000000") ||
	       kt_write_file(FAILSLAB "require-start", "0xffffffffa0000000");
}

static int test_load_sweep(void)
{
	char params[160] = "";
	bool narrow = !load_all();
	int res;

	if (kt_static_param[0])
		snprintf(params, sizeof(params), "static_size_mb=%s",
			 kt_static_param);

	if (syscall(SYS_delete_module, "kvmfr", O_NONBLOCK))
		return kt_fail("rmmod kvmfr: %s (is something still open?)",
			       kt_errname(errno));
	if (narrow && (kt_hold_pci(true) || require_module_frames(true))) {
		kt_diag("cannot narrow the sweep (driver_override, failslab/require-*): sweeping every allocation");
		require_module_frames(false);
		kt_hold_pci(false);
		narrow = false;
	}
	if (narrow)
		kt_diag("load sweep: allocations under kvmfr code only, PCI functions held off");
	res = load_sweep(params);
	if (narrow) {
		if (require_module_frames(false))
			res = kt_fail("failslab require-start/end not reset");
		if (kt_hold_pci(false))
			res = kt_fail("PCI functions not bound again after the sweep");
	}
	return res;
}

/* PCI probe through the driver's bind file, failing each allocation. */
static int test_bind_sweep(struct kvmfr_dev *d)
{
	char path[128];
	int n, ret;
	bool hit;

	if (!d->pci)
		return kt_skip("static device");
	ret = kt_write_file("/sys/bus/pci/drivers/kvmfr/unbind", d->pci_addr);
	if (ret)
		return kt_fail("unbind %s: %s", d->pci_addr, strerror(-ret));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver",
		 d->pci_addr);
	for (n = 1; n <= MAX_STEPS; n++) {
		arm(n);
		ret = kt_write_file("/sys/bus/pci/drivers/kvmfr/bind",
				    d->pci_addr);
		hit = injected();
		if (!ret && !hit)
			break;
		if (!ret) {
			kt_write_file("/sys/bus/pci/drivers/kvmfr/unbind",
				      d->pci_addr);
			continue;
		}
		if (kt_exists(path) || kt_pci_num(d->pci_addr) >= 0)
			return kt_fail("step %d (%s): failed probe left a driver or node",
				       n, strerror(-ret));
	}
	if (!kt_resolve(d))
		return kt_fail("%s has no kvmfr device after the sweep",
			       d->pci_addr);
	kt_diag("%s: probe succeeded after %d injected failures", d->label,
		n - 1);
	return KT_PASS;
}

/* dma-buf creation when the fd table is full: EMFILE and no leak. */
static int test_fd_exhaustion(struct kvmfr_dev *d)
{
	long long base = kt_dmabufs(d);
	int fd, ret, made = 0, i, bufs[64];
	struct rlimit old, lim;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	getrlimit(RLIMIT_NOFILE, &old);
	lim = old;
	lim.rlim_cur = kt_count_fds() + 8;
	setrlimit(RLIMIT_NOFILE, &lim);
	while (made < 64) {
		ret = kt_create(fd, 0, 0, kt_page);
		if (ret < 0)
			break;
		bufs[made++] = ret;
	}
	i = errno;
	setrlimit(RLIMIT_NOFILE, &old);
	ret = KT_PASS;
	if (made == 64 || i != EMFILE)
		ret = kt_fail("after %d dma-bufs: %s, want EMFILE", made,
			      kt_errname(i));
	else if (kt_dmabufs(d) != base + made)
		ret = kt_fail("%lld live dma-bufs, want %lld", kt_dmabufs(d),
			      base + made);
	for (i = 0; i < made; i++)
		close(bufs[i]);
	close(fd);
	if (ret == KT_PASS && kt_dmabufs(d) != base)
		ret = kt_fail("%lld dma-bufs after closing, want %lld",
			      kt_dmabufs(d), base);
	return ret;
}

int main(void)
{
	bool fi;
	int i;

	kt_init();
	kt_plan(2 * kt_ndev + 1 + kt_npci);
	fi = have_fail_nth() && !setup_failslab();

	for (i = 0; i < kt_ndev; i++)
		kt_report(test_fd_exhaustion(&kt_devs[i]),
			  "%s: dma-buf creation with a full fd table fails with EMFILE, no leak",
			  kt_devs[i].label);

	for (i = 0; i < kt_ndev; i++)
		kt_report(fi ? test_create_sweep(&kt_devs[i]) :
			       kt_skip("no fail-nth/failslab in this kernel"),
			  "%s: CREATE under fail-nth sweep fails cleanly until it succeeds",
			  kt_devs[i].label);

	for (i = 0; i < kt_ndev; i++) {
		if (!kt_devs[i].pci)
			continue;
		kt_report(fi ? test_bind_sweep(&kt_devs[i]) :
			       kt_skip("no fail-nth/failslab in this kernel"),
			  "%s: PCI probe under fail-nth sweep fails cleanly until it succeeds",
			  kt_devs[i].label);
	}

	kt_report(fi ? test_load_sweep() :
		       kt_skip("no fail-nth/failslab in this kernel"),
		  "module load with static devices under fail-nth sweep fails cleanly until it succeeds");
	for (i = 0; i < kt_ndev; i++)
		if (!kt_resolve(&kt_devs[i]))
			kt_diag("%s missing at the end", kt_devs[i].label);
	return kt_exit();
}
