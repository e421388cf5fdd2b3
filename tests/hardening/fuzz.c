// SPDX-License-Identifier: GPL-2.0
/*
 * Seeded, time-bounded fuzzer of kvmfr with a model of the right answers.
 *
 * Random sequences of open/close, GETSIZE and CREATE with edge values,
 * mmap/munmap/mremap/mprotect/madvise/fork on device and dma-buf fds,
 * DMA_BUF_IOCTL_SYNC and SET_NAME, and PCI unbind/bind. Every call's result
 * is checked against what the module must answer (precise errno, SIGBUS on a
 * revoked mapping, data equal through every live mapping of the same bytes),
 * so this finds wrong answers as well as kernel reports.
 *
 *   KVMFR_FUZZ_SEED=N     replay a run (the seed is always printed)
 *   KVMFR_FUZZ_SECONDS=N  time bound (default 10)
 *   KVMFR_FUZZ_UNBIND=1   also unbind/bind PCI devices
 */
#include "../guest/kvmfr_test.h"

#include <linux/dma-buf.h>
#include <sys/wait.h>
#include <time.h>

#define MAX_FDS		24
#define MAX_MAPS	32

struct fz_fd {
	int fd;			/* -1: free slot */
	int dev;		/* index into kt_devs */
	unsigned int gen;	/* device generation it was opened in */
	bool dmabuf;
	uint64_t off;		/* dma-buf: device offset */
	uint64_t size;		/* bytes reachable through the fd */
};

struct fz_map {
	uint8_t *addr;		/* NULL: free slot */
	size_t len;
	int dev;
	unsigned int gen;
	uint64_t devoff;	/* device offset of addr */
	bool readonly;
};

static struct fz_fd fds[MAX_FDS];
static struct fz_map maps[MAX_MAPS];
static unsigned int gen[KT_MAX_DEVS];
static bool unbound[KT_MAX_DEVS];
static uint64_t rng;
static unsigned long ops, mismatches, counts[16];

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static KT_PRINTF(1, 2) void mismatch(const char *fmt, ...)
{
	va_list ap;

	mismatches++;
	if (mismatches > 20)
		return;
	printf("# MISMATCH at op %lu: ", ops);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static bool stale(int dev, unsigned int g)
{
	return g != gen[dev] || unbound[dev];
}

/* An edge value for an offset or size on a device of size sz. */
static uint64_t edge(uint64_t sz)
{
	uint64_t pg = kt_page;

	switch (below(14)) {
	case 0: return 0;
	case 1: return 1;
	case 2: return pg - 1;
	case 3: return pg;
	case 4: return sz - pg;
	case 5: return sz;
	case 6: return sz + pg;
	case 7: return 1ull << 32;
	case 8: return 1ull << 63;
	case 9: return ~0ull;
	case 10: return ~0ull & ~(pg - 1);
	case 11: return rnd();
	default: return below(sz / pg + 1) * pg;
	}
}

/* ------------------------------------------------- guarded memory access */

static sigjmp_buf fz_env;
static volatile sig_atomic_t fz_sig;

static void fz_handler(int sig)
{
	fz_sig = sig;
	siglongjmp(fz_env, 1);
}

/* Reads or writes a word; returns 0 or the signal it raised. */
static int access_word(volatile uint64_t *p, uint64_t *val, bool write)
{
	struct sigaction sa, obus, osegv;
	int sig = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fz_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &obus);
	sigaction(SIGSEGV, &sa, &osegv);
	fz_sig = 0;
	if (sigsetjmp(fz_env, 1) == 0) {
		if (write)
			*p = *val;
		else
			*val = *p;
	} else {
		sig = fz_sig;
	}
	sigaction(SIGBUS, &obus, NULL);
	sigaction(SIGSEGV, &osegv, NULL);
	return sig;
}

/* ------------------------------------------------------------ objects */

static int add_fd(int fd, int dev, bool dmabuf, uint64_t off, uint64_t size)
{
	int i;

	for (i = 0; i < MAX_FDS; i++) {
		if (fds[i].fd < 0) {
			fds[i] = (struct fz_fd){ fd, dev, gen[dev], dmabuf,
						 off, size };
			return i;
		}
	}
	close(fd);
	return -1;
}

static struct fz_fd *pick_fd(bool want_dmabuf, bool any)
{
	int i, start = below(MAX_FDS);

	for (i = 0; i < MAX_FDS; i++) {
		struct fz_fd *f = &fds[(start + i) % MAX_FDS];

		if (f->fd >= 0 && (any || f->dmabuf == want_dmabuf))
			return f;
	}
	return NULL;
}

static struct fz_map *pick_map(void)
{
	int i, start = below(MAX_MAPS);

	for (i = 0; i < MAX_MAPS; i++)
		if (maps[(start + i) % MAX_MAPS].addr)
			return &maps[(start + i) % MAX_MAPS];
	return NULL;
}

static struct fz_map *free_map(void)
{
	int i;

	for (i = 0; i < MAX_MAPS; i++)
		if (!maps[i].addr)
			return &maps[i];
	return NULL;
}

static void drop_map(struct fz_map *m)
{
	if (munmap(m->addr, m->len))
		mismatch("munmap %p+%zu: %s", m->addr, m->len,
			 strerror(errno));
	m->addr = NULL;
}

/* ------------------------------------------------------------ ops */

static void op_open(void)
{
	int dev = below(kt_ndev), fd;
	struct kvmfr_dev *d = &kt_devs[dev];

	if (unbound[dev] || !d->found)
		return;
	fd = open(d->node, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		mismatch("open %s: %s", d->node, strerror(errno));
		return;
	}
	add_fd(fd, dev, false, 0, d->size);
}

static void op_close(void)
{
	struct fz_fd *f = pick_fd(false, true);

	if (!f)
		return;
	if (close(f->fd))
		mismatch("close: %s", strerror(errno));
	f->fd = -1;
}

static void op_getsize(void)
{
	struct fz_fd *f = pick_fd(false, false);
	long ret;

	if (!f)
		return;
	ret = ioctl(f->fd, KVMFR_DMABUF_GETSIZE);
	if (stale(f->dev, f->gen)) {
		if (ret != -1 || errno != ENODEV)
			mismatch("GETSIZE on a removed device: %ld (%s)", ret,
				 strerror(errno));
	} else if (ret < 0 || (uint64_t)ret != kt_devs[f->dev].size) {
		mismatch("GETSIZE: %ld, want %llu", ret,
			 (unsigned long long)kt_devs[f->dev].size);
	}
}

static void op_create(void)
{
	struct fz_fd *f = pick_fd(false, false);
	uint64_t sz, off, len, end;
	unsigned int flags;
	int ret, err, want;

	if (!f)
		return;
	sz = f->size;
	flags = below(4) ? below(2) : (unsigned int)below(256);
	off = edge(sz);
	len = edge(sz);

	if (stale(f->dev, f->gen))
		want = ENODEV;
	else if (flags & ~KVMFR_DMABUF_FLAG_CLOEXEC || !len ||
		 off % kt_page || len % kt_page ||
		 __builtin_add_overflow(off, len, &end) || end > sz)
		want = EINVAL;
	else
		want = 0;

	ret = kt_create_padded(f->fd, flags, off, len, (uint8_t)rnd());
	err = errno;
	if (want && (ret != -1 || err != want)) {
		mismatch("CREATE flags %#x off %#llx size %#llx: got %d (%s), want %s",
			 flags, (unsigned long long)off,
			 (unsigned long long)len, ret, kt_errname(err),
			 kt_errname(want));
	} else if (!want && ret < 0) {
		mismatch("CREATE flags %#x off %#llx size %#llx failed: %s",
			 flags, (unsigned long long)off,
			 (unsigned long long)len, kt_errname(err));
	}
	if (ret >= 0)
		add_fd(ret, f->dev, true, off, len);
}

static void op_mmap(void)
{
	struct fz_fd *f = pick_fd(false, true);
	bool private = !below(8);
	uint64_t off, len, end;
	struct fz_map *m;
	void *p;
	int want;

	m = free_map();
	if (!f || !m)
		return;
	off = below(5) ? below(f->size / kt_page) * kt_page : edge(f->size);
	if (off % kt_page || off > (1ull << 40))
		off = f->size + kt_page;	/* aligned, past the end */
	len = below(3) ? (below(32) + 1) * kt_page : f->size - off + kt_page;
	if (len > (1ull << 36) || !len)
		len = kt_page;

	if (private)
		want = EINVAL;
	else if (__builtin_add_overflow(off, len, &end) || end > f->size)
		want = EINVAL;
	else if (stale(f->dev, f->gen))
		want = ENODEV;
	else
		want = 0;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 private ? MAP_PRIVATE : MAP_SHARED, f->fd, off);
	if (p == MAP_FAILED) {
		if (!want || errno != want)
			mismatch("mmap %s off %#llx len %#llx%s: %s, want %s",
				 f->dmabuf ? "dma-buf" : "device",
				 (unsigned long long)off,
				 (unsigned long long)len,
				 private ? " private" : "",
				 kt_errname(errno), kt_errname(want));
		return;
	}
	if (want) {
		mismatch("mmap %s off %#llx len %#llx%s succeeded, want %s",
			 f->dmabuf ? "dma-buf" : "device",
			 (unsigned long long)off, (unsigned long long)len,
			 private ? " private" : "", kt_errname(want));
		munmap(p, len);
		return;
	}
	*m = (struct fz_map){ p, len, f->dev, f->gen, f->off + off, false };
}

static void op_munmap(void)
{
	struct fz_map *m = pick_map();

	if (!m)
		return;
	if (m->len > kt_page && below(2)) {
		/* Unmap the first page only: the VMA splits. */
		if (munmap(m->addr, kt_page))
			mismatch("partial munmap: %s", strerror(errno));
		m->addr += kt_page;
		m->len -= kt_page;
		m->devoff += kt_page;
		return;
	}
	drop_map(m);
}

static void op_mremap(void)
{
	struct fz_map *m = pick_map();
	void *p;

	if (!m)
		return;
	switch (below(3)) {
	case 0:	/* grow: never allowed */
		p = mremap(m->addr, m->len, m->len + kt_page, MREMAP_MAYMOVE);
		if (p != MAP_FAILED) {
			mismatch("mremap grew a mapping");
			m->addr = p;
			drop_map(m);
		}
		break;
	case 1:	/* shrink */
		if (m->len <= kt_page)
			break;
		p = mremap(m->addr, m->len, m->len - kt_page, 0);
		if (p == MAP_FAILED)
			mismatch("mremap shrink: %s", strerror(errno));
		else
			m->len -= kt_page;
		break;
	default: /* move */
		p = mremap(m->addr, m->len, m->len, MREMAP_MAYMOVE);
		if (p == MAP_FAILED)
			mismatch("mremap move: %s", strerror(errno));
		else
			m->addr = p;
		break;
	}
}

static void op_mprotect(void)
{
	struct fz_map *m = pick_map();

	if (!m)
		return;
	m->readonly = !m->readonly;
	if (mprotect(m->addr, m->len,
		     PROT_READ | (m->readonly ? 0 : PROT_WRITE)))
		mismatch("mprotect: %s", strerror(errno));
}

static void op_madvise(void)
{
	struct fz_map *m = pick_map();

	if (!m)
		return;
	if (madvise(m->addr, m->len, MADV_DONTNEED))
		mismatch("madvise DONTNEED: %s", strerror(errno));
}

/* Write a word through one mapping, read it through every other one. */
static void op_touch(void)
{
	struct fz_map *m = pick_map(), *o;
	uint64_t at, val = rnd(), got;
	int sig, i;

	if (!m)
		return;
	at = below(m->len / 8) * 8;
	sig = access_word((uint64_t *)(m->addr + at), &val,
			  !m->readonly);
	if (stale(m->dev, m->gen)) {
		if (sig != SIGBUS)
			mismatch("access to a revoked mapping: signal %d, want SIGBUS",
				 sig);
		return;
	}
	if (sig) {
		mismatch("access at %#llx of a live %s mapping: signal %d",
			 (unsigned long long)(m->devoff + at),
			 m->readonly ? "read-only" : "writable", sig);
		return;
	}
	for (i = 0; i < MAX_MAPS; i++) {
		uint64_t devat = m->devoff + at;

		o = &maps[i];
		if (!o->addr || o == m || o->dev != m->dev ||
		    stale(o->dev, o->gen) || devat < o->devoff ||
		    devat >= o->devoff + o->len)
			continue;
		sig = access_word((uint64_t *)(o->addr + devat - o->devoff),
				  &got, false);
		if (sig || got != val)
			mismatch("device offset %#llx: wrote %#llx, another mapping reads %#llx (signal %d)",
				 (unsigned long long)devat,
				 (unsigned long long)val,
				 (unsigned long long)got, sig);
	}
}

/* The child reads every mapping and must see what the parent sees. */
static void op_fork(void)
{
	uint64_t parent[MAX_MAPS], got;
	int i, status, sig;
	pid_t pid;

	for (i = 0; i < MAX_MAPS; i++)
		if (maps[i].addr && !stale(maps[i].dev, maps[i].gen))
			access_word((uint64_t *)maps[i].addr, &parent[i], false);
	pid = fork();
	if (pid < 0) {
		mismatch("fork: %s", strerror(errno));
		return;
	}
	if (!pid) {
		for (i = 0; i < MAX_MAPS; i++) {
			if (!maps[i].addr)
				continue;
			sig = access_word((uint64_t *)maps[i].addr, &got,
					  false);
			if (stale(maps[i].dev, maps[i].gen) ?
			    sig != SIGBUS : sig || got != parent[i])
				_exit(1);
		}
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		mismatch("forked child saw different memory (status %#x)",
			 status);
}

static void op_sync(void)
{
	static const uint64_t valid[] = {
		DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ,
		DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE,
		DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW,
		DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ,
		DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW,
	};
	struct fz_fd *f = pick_fd(true, false);
	struct dma_buf_sync s;
	bool ok = below(4);
	int ret, want;

	if (!f)
		return;
	s.flags = ok ? valid[below(KT_ARRAY_SIZE(valid))] : rnd() | 0x8;
	want = !ok ? EINVAL : stale(f->dev, f->gen) ? ENODEV : 0;
	ret = ioctl(f->fd, DMA_BUF_IOCTL_SYNC, &s);
	if (want ? ret != -1 || errno != want : ret != 0)
		mismatch("SYNC %#llx: %d (%s), want %s",
			 (unsigned long long)s.flags, ret, kt_errname(errno),
			 kt_errname(want));
}

static void op_set_name(void)
{
	struct fz_fd *f = pick_fd(true, false);
	char name[32];

	if (!f)
		return;
	snprintf(name, sizeof(name), "fuzz-%lu", ops);
	if (ioctl(f->fd, DMA_BUF_SET_NAME_B, name))
		mismatch("SET_NAME: %s", strerror(errno));
}

static void op_unbind_bind_dev(int dev)
{
	struct kvmfr_dev *d = &kt_devs[dev];
	const char *path = unbound[dev] ? "/sys/bus/pci/drivers/kvmfr/bind" :
					  "/sys/bus/pci/drivers/kvmfr/unbind";
	int ret;

	if (!d->pci || !getenv("KVMFR_FUZZ_UNBIND"))
		return;
	ret = kt_write_file(path, d->pci_addr);
	if (ret) {
		mismatch("%s %s: %s", path, d->pci_addr, strerror(-ret));
		return;
	}
	if (!unbound[dev]) {
		unbound[dev] = true;
		gen[dev]++;
		return;
	}
	unbound[dev] = false;
	if (!kt_resolve(d))
		mismatch("%s did not come back after bind", d->pci_addr);
}

static void op_unbind_bind(void)
{
	op_unbind_bind_dev(below(kt_ndev));
}

static void (*const op_table[])(void) = {
	op_open, op_close, op_getsize, op_create, op_mmap, op_munmap,
	op_mremap, op_mprotect, op_madvise, op_touch, op_touch, op_touch,
	op_fork, op_sync, op_set_name, op_unbind_bind,
};

/* ------------------------------------------------------------ main */

int main(void)
{
	const char *s = getenv("KVMFR_FUZZ_SEED");
	const char *t = getenv("KVMFR_FUZZ_SECONDS");
	long long before[KT_MAX_DEVS], after;
	struct timespec t0, now;
	uint64_t seed;
	int i, dev, leaks = 0;
	double secs = t ? atof(t) : 10;

	kt_init();
	kt_plan(3);
	seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ getpid();
	rng = seed ? seed : 1;
	kt_diag("seed %llu (replay: KVMFR_FUZZ_SEED=%llu), %.0f s%s",
		(unsigned long long)seed, (unsigned long long)seed, secs,
		getenv("KVMFR_FUZZ_UNBIND") ? ", with unbind/bind" : "");

	for (i = 0; i < MAX_FDS; i++)
		fds[i].fd = -1;
	for (dev = 0; dev < kt_ndev; dev++)
		before[dev] = kt_dmabufs(&kt_devs[dev]);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (i = 0; i < 64; i++, ops++) {
			unsigned int op = below(KT_ARRAY_SIZE(op_table));

			counts[op]++;
			op_table[op]();
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - t0.tv_sec +
		 (now.tv_nsec - t0.tv_nsec) / 1e9 < secs);

	/* Cross-check every live mapping against the others, word by word. */
	for (i = 0; i < MAX_MAPS; i++) {
		struct fz_map *m = &maps[i];
		uint64_t at, val;

		if (!m->addr || stale(m->dev, m->gen))
			continue;
		for (at = 0; at < m->len && at < 64 * kt_page; at += 8 * 97) {
			if (access_word((uint64_t *)(m->addr + at), &val, false))
				mismatch("final read of a live mapping faulted");
		}
	}

	kt_report(mismatches ? KT_FAIL : KT_PASS,
		  "fuzz: %lu operations, every answer as the model predicts (%lu mismatches)",
		  ops, mismatches);

	/* Put everything back: bind devices, drop mappings and fds. */
	for (dev = 0; dev < kt_ndev; dev++)
		if (unbound[dev])
			op_unbind_bind_dev(dev);
	for (i = 0; i < MAX_MAPS; i++)
		if (maps[i].addr)
			drop_map(&maps[i]);
	for (i = 0; i < MAX_FDS; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);

	kt_report(mismatches ? KT_FAIL : KT_PASS,
		  "fuzz: clean teardown of every mapping and fd");

	for (dev = 0; dev < kt_ndev; dev++) {
		kt_resolve(&kt_devs[dev]);
		after = kt_dmabufs(&kt_devs[dev]);
		if (gen[dev])	/* rebound: a new device, nothing live on it */
			before[dev] = 0;
		if (after != before[dev]) {
			kt_diag("%s: %lld dma-bufs before, %lld after",
				kt_devs[dev].label, before[dev], after);
			leaks++;
		}
	}
	kt_report(leaks ? KT_FAIL : KT_PASS,
		  "fuzz: dma-buf counts back to their baseline");

	kt_diag("ops: open %lu close %lu getsize %lu create %lu mmap %lu munmap %lu mremap %lu mprotect %lu madvise %lu touch %lu fork %lu sync %lu set_name %lu unbind/bind %lu",
		counts[0], counts[1], counts[2], counts[3], counts[4],
		counts[5], counts[6], counts[7], counts[8],
		counts[9] + counts[10] + counts[11], counts[12], counts[13],
		counts[14], counts[15]);
	return kt_exit();
}
