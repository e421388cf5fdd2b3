// SPDX-License-Identifier: GPL-2.0
/*
 * PCI removal and driver unbind with live users. With a device fd, a device
 * mapping, a dma-buf fd and a dma-buf mapping alive (and, in some cycles, a
 * child process hammering the mappings), the PCI function is removed
 * (sysfs remove) or unbound from the driver. Then: both mappings fault with
 * SIGBUS, ioctls and mmaps on the old fds fail with ENODEV, closing works
 * and drops every module reference; rescan/bind brings the device back with
 * the bytes it had (the memory is the host's file). "stale" cycles rebind
 * while the old users are still open.
 */
#include "kvmfr_test.h"

enum mode { REMOVE, UNBIND };

struct cycle {
	enum mode mode;
	bool stale;	/* bring the device back before closing the old users */
	bool toucher;	/* a child touches the mappings during the removal */
};

/* The first PCI device gets every kind of cycle, the others two. */
static const struct cycle first_cycles[] = {
	{ REMOVE, false, true },
	{ REMOVE, true, false },
	{ UNBIND, false, true },
	{ UNBIND, true, false },
	{ REMOVE, false, false },
};

static const struct cycle other_cycles[] = {
	{ REMOVE, false, false },
	{ UNBIND, true, true },
};

#define DETACH_TIMEOUT	60	/* seconds, TCG is slow */
#define ATTACH_TIMEOUT	30

static long long refcnt_base;

struct users {
	int fd, db;
	uint8_t *dev, *buf;
	uint64_t size, boff, blen;
	uint64_t seed;
	uint8_t *saved;		/* copy of a page this cycle never writes */
	uint64_t saved_off;
	pid_t toucher;
	int toucher_pipe;
};

static int cycle_tests(const struct cycle *c)
{
	return 14 + c->stale + c->toucher;
}

static const char *mode_name(enum mode m)
{
	return m == REMOVE ? "remove" : "unbind";
}

static const char *back_name(enum mode m)
{
	return m == REMOVE ? "rescan" : "bind";
}

/* The marker pages: first, middle, last. */
static uint64_t marker_off(const struct users *u, int i)
{
	return i == 0 ? 0 : i == 1 ? u->size / 2 : u->size - kt_page;
}

static int setup_users(struct kvmfr_dev *d, struct users *u)
{
	long long n;
	int i;

	memset(u, 0, sizeof(*u));
	u->fd = u->db = -1;
	u->toucher = -1;
	u->toucher_pipe = -1;
	u->size = d->size;
	u->boff = u->size / 2 - 2 * kt_page;
	u->blen = 4 * kt_page;
	u->saved_off = (u->size / 3) & ~(uint64_t)(kt_page - 1);
	u->fd = kt_open(d);
	if (u->fd < 0)
		return KT_FAIL;
	u->dev = kt_map(u->fd, 0, u->size);
	u->db = kt_create(u->fd, KVMFR_DMABUF_FLAG_CLOEXEC, u->boff, u->blen);
	if (u->db < 0)
		return kt_fail("CREATE: %s", kt_errname(errno));
	u->buf = kt_map(u->db, 0, u->blen);
	u->saved = malloc(kt_page);
	if (!u->dev || !u->buf || !u->saved)
		return KT_FAIL;
	u->seed = kt_seed();
	for (i = 0; i < 3; i++)
		kt_fill_at(u->dev + marker_off(u, i), marker_off(u, i), kt_page,
			   u->seed);
	memcpy(u->saved, u->dev + u->saved_off, kt_page);
	/* The dma-buf covers the middle marker: check it through both. */
	if (!kt_check_at(u->buf + 2 * kt_page, u->size / 2, kt_page, u->seed,
			 "dma-buf before removal"))
		return KT_FAIL;
	n = kt_dmabufs(d);
	if (n != 1)
		return kt_fail("dmabufs reads %lld with one dma-buf", n);
	return KT_PASS;
}

static void toucher_sig(int sig)
{
	_exit(sig == SIGBUS ? 42 : 43);
}

/* A child that reads and writes both mappings until it gets a signal. */
static void start_toucher(struct users *u)
{
	struct sigaction sa;
	int p[2];
	char c = 0;
	uint64_t i;

	if (pipe(p))
		return;
	fflush(stdout);
	u->toucher = fork();
	if (u->toucher == 0) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = toucher_sig;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, NULL);
		sigaction(SIGSEGV, &sa, NULL);
		close(u->fd);
		close(u->db);
		close(p[0]);
		alarm(DETACH_TIMEOUT * 2);
		for (i = 0;; i++) {
			volatile uint8_t *a = u->dev + (i * kt_page * 7) % u->size;
			volatile uint8_t *b = u->buf + (i * kt_page) % u->blen;

			/* Rewrite what is there: the content must not change. */
			*a = *a;
			*b = *b;
			if (i == 64 && write(p[1], &c, 1) != 1)
				_exit(44);
		}
	}
	close(p[1]);
	if (u->toucher < 0) {
		close(p[0]);
		return;
	}
	/* Wait until it has gone round a few times. */
	if (read(p[0], &c, 1) != 1)
		kt_diag("toucher did not start");
	u->toucher_pipe = p[0];
}

static int detach(struct kvmfr_dev *d, enum mode m, pid_t *pending)
{
	char path[160];

	if (m == REMOVE) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove",
			 d->pci_addr);
		return kt_write_file_bounded(path, "1", DETACH_TIMEOUT, pending);
	}
	return kt_write_file_bounded("/sys/bus/pci/drivers/kvmfr/unbind", d->pci_addr,
			     DETACH_TIMEOUT, pending);
}

/* Rescan or bind, then wait for /sys/bus/pci/devices/ADDR/kvmfr/kvmfrN. */
static int attach(struct kvmfr_dev *d, enum mode m)
{
	char path[160];
	uint64_t end;
	pid_t pending;
	int r;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", d->pci_addr);
	if (m == REMOVE || !kt_exists(path))
		r = kt_write_file_bounded("/sys/bus/pci/rescan", "1", ATTACH_TIMEOUT,
				  &pending);
	else
		r = kt_write_file_bounded("/sys/bus/pci/drivers/kvmfr/bind", d->pci_addr,
				  ATTACH_TIMEOUT, &pending);
	if (r) {
		kt_diag("%s: %s", back_name(m), kt_errname(-r));
		return KT_FAIL;
	}
	end = kt_now_ms() + ATTACH_TIMEOUT * 1000;
	while (kt_now_ms() < end) {
		if (kt_resolve(d) && kt_exists(d->node))
			return KT_PASS;
		kt_sleep_ms(50);
	}
	return kt_fail("%s did not come back as a kvmfr device", d->pci_addr);
}

static int gone(struct kvmfr_dev *d, const char *old_sysdir,
		const char *old_node, enum mode m)
{
	char path[160];
	int res = KT_PASS;

	if (kt_exists(old_sysdir))
		res = kt_fail("%s still exists", old_sysdir);
	if (kt_exists(old_node))
		res = kt_fail("%s still exists", old_node);
	if (m == REMOVE) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s",
			 d->pci_addr);
		if (kt_exists(path))
			res = kt_fail("%s still exists after remove", path);
	} else {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver",
			 d->pci_addr);
		if (kt_exists(path))
			res = kt_fail("%s still bound after unbind", d->pci_addr);
	}
	return res;
}

static int mapping_sigbus(uint8_t *p, uint64_t len, uint64_t fresh_off,
			  const char *what)
{
	int res = KT_PASS;
	char w[64];

	if (!p)
		return kt_fail("no %s", what);
	snprintf(w, sizeof(w), "%s, touched page", what);
	if (!kt_probe_raises(p, false, SIGBUS, w) ||
	    !kt_probe_raises(p, true, SIGBUS, w))
		res = KT_FAIL;
	snprintf(w, sizeof(w), "%s, untouched page", what);
	if (fresh_off < len &&
	    (!kt_probe_raises(p + fresh_off, false, SIGBUS, w) ||
	     !kt_probe_raises(p + fresh_off + 8, true, SIGBUS, w)))
		res = KT_FAIL;
	return res;
}

static int old_ioctls_enodev(struct users *u)
{
	int res = KT_PASS, r, e;

	if (u->fd < 0)
		return kt_fail("no device fd");
	errno = 0;
	r = ioctl(u->fd, KVMFR_DMABUF_GETSIZE);
	e = errno;
	if (!kt_errno_is(r, e, ENODEV, "GETSIZE on the old fd"))
		res = KT_FAIL;
	if (!kt_create_fails(u->fd, 0, 0, kt_page, ENODEV))
		res = KT_FAIL;
	return res;
}

static int old_dmabuf_mmap_enodev(struct users *u)
{
	if (u->db < 0)
		return kt_fail("no dma-buf fd");
	return kt_mmap_fails(u->db, 0, kt_page, PROT_READ | PROT_WRITE,
			     MAP_SHARED, ENODEV, "old dma-buf") ? KT_PASS : KT_FAIL;
}

static int old_dev_mmap_enodev(struct users *u)
{
	if (u->fd < 0)
		return kt_fail("no device fd");
	return kt_mmap_fails(u->fd, 0, kt_page, PROT_READ | PROT_WRITE,
			     MAP_SHARED, ENODEV, "old device fd") ? KT_PASS : KT_FAIL;
}

static int toucher_result(struct users *u)
{
	int status;

	if (u->toucher < 0)
		return kt_fail("no toucher was started");
	status = kt_wait_child(u->toucher, DETACH_TIMEOUT);
	u->toucher = -1;
	if (u->toucher_pipe >= 0)
		close(u->toucher_pipe);
	u->toucher_pipe = -1;
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 42)
		return KT_PASS;
	if (status == -1)
		return kt_fail("toucher still running");
	if (WIFSIGNALED(status))
		return kt_fail("toucher killed by SIG%s",
			       kt_signame(WTERMSIG(status)));
	return kt_fail("toucher exited with %d (42 is SIGBUS, 43 SIGSEGV)",
		       WEXITSTATUS(status));
}

static int release_users(struct users *u)
{
	int res = KT_PASS;

	if (u->toucher > 0) {
		kill(u->toucher, SIGKILL);
		kt_wait_child(u->toucher, 5);
		u->toucher = -1;
	}
	if (u->toucher_pipe >= 0)
		close(u->toucher_pipe);
	if (u->buf && munmap(u->buf, u->blen))
		res = kt_fail("munmap of the dma-buf mapping: %s", kt_errname(errno));
	if (u->dev && munmap(u->dev, u->size))
		res = kt_fail("munmap of the device mapping: %s", kt_errname(errno));
	if (u->db >= 0 && close(u->db))
		res = kt_fail("close of the dma-buf: %s", kt_errname(errno));
	if (u->fd >= 0 && close(u->fd))
		res = kt_fail("close of the device fd: %s", kt_errname(errno));
	u->buf = u->dev = NULL;
	u->db = u->fd = -1;
	u->toucher_pipe = -1;
	return res;
}

static int refcnt_back(void)
{
	long long rc = kt_module_refcnt();

	if (rc != refcnt_base)
		return kt_fail("module refcnt %lld, %lld before", rc, refcnt_base);
	return KT_PASS;
}

static int same_size(struct kvmfr_dev *d, const struct users *u)
{
	kt_diag("%s is back as %s", d->pci_addr, d->name);
	if (!d->found)
		return kt_fail("not found");
	if (d->size != u->size)
		return kt_fail("size %" PRIu64 ", was %" PRIu64, d->size, u->size);
	return KT_PASS;
}

static int content_kept(struct kvmfr_dev *d, const struct users *u)
{
	int fd, res = KT_PASS, i;
	uint8_t *p;

	if (!u->seed)
		return kt_fail("nothing was written before the removal");
	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	p = kt_map(fd, 0, d->size);
	kt_close(fd);
	if (!p)
		return KT_FAIL;
	for (i = 0; i < 3; i++)
		if (!kt_check_at(p + marker_off(u, i), marker_off(u, i), kt_page,
				 u->seed, "marker written before removal"))
			res = KT_FAIL;
	if (u->saved && !kt_memeq(p + u->saved_off, u->saved, kt_page,
				  "page read before removal"))
		res = KT_FAIL;
	kt_unmap(p, d->size);
	return res;
}

static int new_device_works(struct kvmfr_dev *d)
{
	uint64_t off = kt_page, len = 4 * kt_page, seed = kt_seed();
	uint8_t *dev = NULL, *buf = NULL;
	int fd, db = -1, res = KT_PASS;
	long long n;

	n = kt_dmabufs(d);
	if (n != 0)
		res = kt_fail("dmabufs of the new device reads %lld", n);
	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	if (kt_getsize(fd) != (long long)d->size)
		res = kt_fail("GETSIZE: %s", kt_errname(errno));
	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, off, len);
	if (db >= 0) {
		dev = kt_map(fd, 0, d->size);
		buf = kt_map(db, 0, len);
	}
	if (dev && buf) {
		kt_fill_at(buf, off, len, seed);
		if (!kt_check_at(dev + off, off, len, seed, "new dma-buf -> device"))
			res = KT_FAIL;
	} else {
		res = kt_fail("CREATE or mmap failed: %s", kt_errname(errno));
	}
	kt_unmap(buf, len);
	kt_unmap(dev, d->size);
	kt_close(db);
	kt_close(fd);
	n = kt_dmabufs(d);
	if (n != 0)
		res = kt_fail("dmabufs reads %lld after closing", n);
	return res;
}

static void run_cycle(struct kvmfr_dev *d, const struct cycle *c, int nr)
{
	char old_sysdir[96], old_node[48], name[128];
	struct users u;
	pid_t pending = -1;
	int r, res;

	snprintf(name, sizeof(name), "%s cycle %d (%s%s%s)", d->label, nr,
		 mode_name(c->mode), c->stale ? ", stale users" : "",
		 c->toucher ? ", toucher" : "");
	if (!kt_resolve(d)) {
		kt_diag("%s: device not found, trying to bring it back", d->label);
		attach(d, c->mode);
	}
	kt_strcpy(old_sysdir, d->sysdir, sizeof(old_sysdir));
	kt_strcpy(old_node, d->node, sizeof(old_node));

	memset(&u, 0, sizeof(u));
	u.fd = u.db = u.toucher = u.toucher_pipe = -1;
	res = d->found ? setup_users(d, &u) : KT_FAIL;
	kt_report(res, "%s: set up fd, mapping, dma-buf and its mapping", name);
	if (c->toucher && res == KT_PASS)
		start_toucher(&u);

	r = detach(d, c->mode, &pending);
	if (r)
		kt_diag("%s: %s", mode_name(c->mode), kt_errname(-r));
	kt_report(r ? KT_FAIL : KT_PASS, "%s: %s returns with users alive", name,
		  mode_name(c->mode));
	if (r == -ETIMEDOUT) {
		/* The kernel waits for the users: let it go on, then carry on. */
		release_users(&u);
		if (kt_wait_child(pending, DETACH_TIMEOUT) == -1)
			kt_diag("%s still blocked after the users were released",
				mode_name(c->mode));
	}

	kt_report(gone(d, old_sysdir, old_node, c->mode), "%s: %s and %s are gone",
		  name, old_node, old_sysdir);
	kt_report(mapping_sigbus(u.dev, u.size, u.size / 2 + 5 * kt_page,
				 "device mapping"),
		  "%s: device mapping raises SIGBUS", name);
	kt_report(mapping_sigbus(u.buf, u.blen, 3 * kt_page, "dma-buf mapping"),
		  "%s: dma-buf mapping raises SIGBUS", name);
	kt_report(old_ioctls_enodev(&u), "%s: ioctls on the old fd fail with ENODEV",
		  name);
	kt_report(old_dmabuf_mmap_enodev(&u),
		  "%s: mmap of the old dma-buf fails with ENODEV", name);
	kt_report(old_dev_mmap_enodev(&u),
		  "%s: new mmap of the old device fd fails with ENODEV", name);
	if (c->toucher)
		kt_report(toucher_result(&u),
			  "%s: a child touching the mappings got SIGBUS", name);

	if (!c->stale) {
		kt_report(release_users(&u), "%s: closing and unmapping everything works",
			  name);
		kt_report(refcnt_back(), "%s: no module reference left", name);
	}
	kt_report(attach(d, c->mode), "%s: %s brings %s back", name,
		  back_name(c->mode), d->pci_addr);
	kt_report(same_size(d, &u), "%s: same size after %s", name,
		  back_name(c->mode));
	kt_report(d->found ? content_kept(d, &u) : KT_FAIL,
		  "%s: bytes written before the removal are still there", name);
	kt_report(d->found ? new_device_works(d) : KT_FAIL,
		  "%s: the new device and its dma-bufs work", name);
	if (c->stale) {
		res = old_ioctls_enodev(&u);
		if (old_dev_mmap_enodev(&u) || old_dmabuf_mmap_enodev(&u))
			res = KT_FAIL;
		kt_report(res, "%s: old fds still fail with ENODEV after %s", name,
			  back_name(c->mode));
		kt_report(release_users(&u), "%s: closing and unmapping everything works",
			  name);
		kt_report(refcnt_back(), "%s: no module reference left", name);
	}
	free(u.saved);
}

int main(void)
{
	int i, n = 0, nr = 0;
	size_t j, count;
	const struct cycle *cycles;
	bool first = true, bound;

	kt_init();
	for (i = 0; i < kt_ndev; i++) {
		if (!kt_devs[i].pci)
			continue;
		cycles = first ? first_cycles : other_cycles;
		count = first ? KT_ARRAY_SIZE(first_cycles) : KT_ARRAY_SIZE(other_cycles);
		for (j = 0; j < count; j++)
			n += cycle_tests(&cycles[j]);
		first = false;
	}
	if (!kt_npci) {
		printf("1..0 # SKIP no PCI kvmfr device\n");
		return 0;
	}
	kt_plan(n + 2);
	refcnt_base = kt_module_refcnt();

	first = true;
	for (i = 0; i < kt_ndev; i++) {
		if (!kt_devs[i].pci)
			continue;
		cycles = first ? first_cycles : other_cycles;
		count = first ? KT_ARRAY_SIZE(first_cycles) : KT_ARRAY_SIZE(other_cycles);
		for (j = 0; j < count; j++)
			run_cycle(&kt_devs[i], &cycles[j], ++nr);
		first = false;
	}

	bound = true;
	for (i = 0; i < kt_ndev; i++) {
		if (!kt_devs[i].pci)
			continue;
		if (!kt_resolve(&kt_devs[i]) && attach(&kt_devs[i], REMOVE) &&
		    attach(&kt_devs[i], UNBIND))
			bound = false;
		kt_diag("%s ends as %s", kt_devs[i].pci_addr,
			kt_devs[i].found ? kt_devs[i].name : "(nothing)");
		if (!kt_devs[i].found)
			bound = false;
	}
	kt_report(bound ? KT_PASS : KT_FAIL, "every PCI device is bound at the end");
	kt_report(refcnt_back(), "no module reference left at the end");
	return kt_exit();
}
