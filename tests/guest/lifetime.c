// SPDX-License-Identifier: GPL-2.0
/*
 * Lifetimes: a dma-buf outlives the device fd, mappings outlive both fds,
 * dup, fork, SCM_RIGHTS and exec keep or drop dma-bufs as fd semantics say,
 * and the dmabufs attribute follows the last reference, not the last close.
 */
#include "kvmfr_test.h"

#include <sys/socket.h>

static long long refcnt_base;

static int count_is(struct kvmfr_dev *d, long long want, const char *when)
{
	long long n = kt_dmabufs(d);

	if (n == want)
		return 0;
	kt_diag("%s: dmabufs reads %lld, expected %lld", when, n, want);
	return -1;
}

static int dmabuf_outlives_fd(struct kvmfr_dev *d)
{
	uint64_t off = 2 * kt_page, len = 4 * kt_page, seed = kt_seed();
	int fd, db, fd2, res = KT_PASS;
	uint8_t *buf, *dev = NULL;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, off, len);
	kt_close(fd);
	if (db < 0)
		return kt_fail("CREATE: %s", kt_errname(errno));
	if (count_is(d, 1, "device fd closed"))
		res = KT_FAIL;
	buf = kt_map(db, 0, len);
	fd2 = kt_open(d);
	if (fd2 >= 0)
		dev = kt_map(fd2, 0, d->size);
	if (buf && dev) {
		kt_fill_at(buf, off, len, seed);
		if (!kt_check_at(dev + off, off, len, seed, "dma-buf -> new device fd"))
			res = KT_FAIL;
		seed = kt_seed();
		kt_fill_at(dev + off, off, len, seed);
		if (!kt_check_at(buf, off, len, seed, "new device fd -> dma-buf"))
			res = KT_FAIL;
	} else {
		res = KT_FAIL;
	}
	kt_unmap(buf, len);
	kt_unmap(dev, d->size);
	kt_close(fd2);
	kt_close(db);
	if (count_is(d, 0, "all closed"))
		res = KT_FAIL;
	return res;
}

static int mappings_outlive_fds(struct kvmfr_dev *d)
{
	uint64_t off = d->size - 4 * kt_page, len = 4 * kt_page, seed;
	uint8_t *buf = NULL, *dev = NULL;
	int fd, db, res = KT_PASS;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, off, len);
	if (db >= 0) {
		buf = kt_map(db, 0, len);
		dev = kt_map(fd, 0, d->size);
	}
	kt_close(db);
	kt_close(fd);
	if (!buf || !dev) {
		kt_unmap(buf, len);
		kt_unmap(dev, d->size);
		return kt_fail("setup failed");
	}
	if (count_is(d, 1, "fds closed, dma-buf mapped"))
		res = KT_FAIL;
	seed = kt_seed();
	kt_fill_at(buf, off, len, seed);
	if (!kt_check_at(dev + off, off, len, seed, "dma-buf map -> device map"))
		res = KT_FAIL;
	seed = kt_seed();
	kt_fill_at(dev + off, off, len, seed);
	if (!kt_check_at(buf, off, len, seed, "device map -> dma-buf map"))
		res = KT_FAIL;
	kt_unmap(buf, len);
	if (count_is(d, 0, "dma-buf unmapped"))
		res = KT_FAIL;
	seed = kt_seed();
	kt_fill_at(dev, 0, kt_page, seed);
	if (!kt_check_at(dev, 0, kt_page, seed, "device map after all that"))
		res = KT_FAIL;
	kt_unmap(dev, d->size);
	return res;
}

/* Split dma-buf mapping: the count drops after the last piece goes. */
static int split_mapping(struct kvmfr_dev *d)
{
	uint64_t len = 4 * kt_page;
	int fd, db, res = KT_PASS;
	uint8_t *buf;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, len);
	kt_close(fd);
	if (db < 0)
		return kt_fail("CREATE: %s", kt_errname(errno));
	buf = kt_map(db, 0, len);
	kt_close(db);
	if (!buf)
		return KT_FAIL;
	munmap(buf + kt_page, kt_page);
	buf[0] = 1;
	buf[2 * kt_page] = 2;
	munmap(buf, kt_page);
	if (count_is(d, 1, "two pieces still mapped"))
		res = KT_FAIL;
	munmap(buf + 2 * kt_page, kt_page);
	if (count_is(d, 1, "one piece still mapped"))
		res = KT_FAIL;
	munmap(buf + 3 * kt_page, kt_page);
	if (count_is(d, 0, "all pieces unmapped"))
		res = KT_FAIL;
	return res;
}

static int dup_fd(struct kvmfr_dev *d)
{
	int fd, db, db2, res = KT_PASS;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create(fd, 0, kt_page, kt_page);
	kt_close(fd);
	if (db < 0)
		return kt_fail("CREATE: %s", kt_errname(errno));
	db2 = dup(db);
	kt_close(db);
	if (count_is(d, 1, "original closed, dup open"))
		res = KT_FAIL;
	if (lseek(db2, 0, SEEK_END) != (off_t)kt_page)
		res = kt_fail("dup'd fd does not give the size");
	kt_close(db2);
	if (count_is(d, 0, "dup closed"))
		res = KT_FAIL;
	return res;
}

#define MANY 64

static int many_dmabufs(struct kvmfr_dev *d)
{
	uint64_t pages = d->size / kt_page;
	int fd, db[MANY], i, res = KT_PASS;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	for (i = 0; i < MANY; i++) {
		db[i] = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC,
				  (i * 37 % pages) * kt_page, kt_page);
		if (db[i] < 0)
			res = kt_fail("CREATE %d: %s", i, kt_errname(errno));
	}
	kt_close(fd);
	if (res == KT_PASS && count_is(d, MANY, "all created"))
		res = KT_FAIL;
	for (i = 0; i < MANY; i += 2)
		kt_close(db[i]);
	if (res == KT_PASS && count_is(d, MANY / 2, "half closed"))
		res = KT_FAIL;
	for (i = 1; i < MANY; i += 2)
		kt_close(db[i]);
	if (count_is(d, 0, "all closed"))
		res = KT_FAIL;
	return res;
}

static int fork_inherits(struct kvmfr_dev *d)
{
	uint64_t off = 5 * kt_page, len = 2 * kt_page, s1 = kt_seed(), s2 = kt_seed();
	uint8_t *buf = NULL, *dev = NULL;
	int fd, db, res = KT_PASS, status;
	pid_t pid;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	db = kt_create(fd, 0, off, len);
	if (db >= 0) {
		buf = kt_map(db, 0, len);
		dev = kt_map(fd, 0, d->size);
	}
	kt_close(fd);
	if (!buf || !dev) {
		kt_unmap(buf, len);
		kt_unmap(dev, d->size);
		kt_close(db);
		return kt_fail("setup failed");
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		uint8_t *own;

		kt_fill_at(buf, off, kt_page, s1);
		own = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, db, 0);
		if (own == MAP_FAILED)
			_exit(2);
		kt_fill_at(own + kt_page, off + kt_page, kt_page, s2);
		close(db);
		_exit(0);	/* leaves its mappings to exit */
	}
	if (pid < 0) {
		res = kt_fail("fork: %s", kt_errname(errno));
	} else {
		status = kt_wait_child(pid, 60);
		if (!kt_child_ok(status, "child writing the inherited dma-buf"))
			res = KT_FAIL;
		if (!kt_check_at(dev + off, off, kt_page, s1,
				 "write through the inherited mapping") ||
		    !kt_check_at(dev + off + kt_page, off + kt_page, kt_page, s2,
				 "write through the child's own mapping"))
			res = KT_FAIL;
	}
	if (count_is(d, 1, "child gone, parent holds it"))
		res = KT_FAIL;
	kt_unmap(buf, len);
	kt_unmap(dev, d->size);
	kt_close(db);
	if (count_is(d, 0, "parent closed it"))
		res = KT_FAIL;
	return res;
}

static int send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))], c = 'x';
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm;

	memset(cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))], c;
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

static int scm_rights(struct kvmfr_dev *d)
{
	uint64_t off = 7 * kt_page, len = kt_page, seed = kt_seed();
	int fd, db, db2, sv[2], res = KT_PASS;
	uint8_t *buf, *dev;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		if (errno == ENOSYS || errno == EAFNOSUPPORT)
			return kt_skip("no unix sockets in this kernel (%s)",
				       kt_errname(errno));
		return kt_fail("socketpair: %s", kt_errname(errno));
	}
	fd = kt_open(d);
	if (fd < 0) {
		close(sv[0]);
		close(sv[1]);
		return KT_FAIL;
	}
	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, off, len);
	if (db < 0 || send_fd(sv[0], db)) {
		res = kt_fail("CREATE or sendmsg failed: %s", kt_errname(errno));
		db2 = -1;
	} else {
		kt_close(db);
		db = -1;
		db2 = recv_fd(sv[1]);
	}
	close(sv[0]);
	close(sv[1]);
	if (db2 < 0) {
		kt_close(db);
		kt_close(fd);
		return kt_fail("no dma-buf received");
	}
	if (count_is(d, 1, "sent and original closed"))
		res = KT_FAIL;
	buf = kt_map(db2, 0, len);
	dev = kt_map(fd, 0, d->size);
	if (buf && dev) {
		kt_fill_at(dev + off, off, len, seed);
		if (!kt_check_at(buf, off, len, seed, "received dma-buf"))
			res = KT_FAIL;
	} else {
		res = KT_FAIL;
	}
	kt_unmap(buf, len);
	kt_unmap(dev, d->size);
	kt_close(db2);
	kt_close(fd);
	if (count_is(d, 0, "received one closed"))
		res = KT_FAIL;
	return res;
}

/* Runs in the exec'd image: argv = --exec-probe CLOEXEC_FD PLAIN_FD SIZE */
static int exec_probe(char **argv)
{
	int cloexec_fd = atoi(argv[2]), plain_fd = atoi(argv[3]);
	off_t size = atoll(argv[4]);
	int bad = 0;

	if (fcntl(cloexec_fd, F_GETFD) != -1 || errno != EBADF) {
		printf("# exec'd image still has the CLOEXEC dma-buf fd %d\n",
		       cloexec_fd);
		bad |= 1;
	}
	if (lseek(plain_fd, 0, SEEK_END) != size) {
		printf("# exec'd image lost the plain dma-buf fd %d\n", plain_fd);
		bad |= 2;
	}
	return bad;
}

static int exec_cloexec(struct kvmfr_dev *d)
{
	char a1[16], a2[16], a3[32];
	int fd, cdb, pdb, res = KT_PASS, status;
	pid_t pid;

	fd = kt_open(d);
	if (fd < 0)
		return KT_FAIL;
	cdb = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, 0, kt_page);
	pdb = kt_create(fd, 0, kt_page, 2 * kt_page);
	kt_close(fd);
	if (cdb < 0 || pdb < 0) {
		kt_close(cdb);
		kt_close(pdb);
		return kt_fail("CREATE: %s", kt_errname(errno));
	}
	snprintf(a1, sizeof(a1), "%d", cdb);
	snprintf(a2, sizeof(a2), "%d", pdb);
	snprintf(a3, sizeof(a3), "%zu", 2 * kt_page);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char *args[] = { "kvmfr-lifetime", "--exec-probe", a1, a2, a3, NULL };

		execv("/proc/self/exe", args);
		_exit(99);
	}
	if (pid < 0) {
		res = kt_fail("fork: %s", kt_errname(errno));
	} else {
		status = kt_wait_child(pid, 60);
		if (!kt_child_ok(status, "exec'd image"))
			res = KT_FAIL;
	}
	kt_close(cdb);
	kt_close(pdb);
	if (count_is(d, 0, "both closed"))
		res = KT_FAIL;
	return res;
}

static int no_reference_left(struct kvmfr_dev *d)
{
	long long rc = kt_module_refcnt();

	if (count_is(d, 0, "end"))
		return KT_FAIL;
	if (rc != refcnt_base)
		return kt_fail("module refcnt %lld, %lld at start", rc, refcnt_base);
	return KT_PASS;
}

static const struct kt_case cases[] = {
	{ "dma-buf fd outlives the device fd", dmabuf_outlives_fd, KT_ALL },
	{ "mappings outlive both fds", mappings_outlive_fds, KT_ALL },
	{ "split dma-buf mapping keeps it alive until the last piece", split_mapping, KT_ALL },
	{ "dup'd dma-buf fd keeps it alive", dup_fd, KT_ALL },
	{ "64 live dma-bufs are counted and released", many_dmabufs, KT_ALL },
	{ "forked child inherits the dma-buf fd and mapping", fork_inherits, KT_ALL },
	{ "dma-buf fd passed over a unix socket keeps working", scm_rights, KT_ALL },
	{ "exec closes the CLOEXEC dma-buf and keeps the plain one", exec_cloexec, KT_ALL },
	{ "no dma-buf or module reference left behind", no_reference_left, KT_ALL },
};

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "--exec-probe"))
		return exec_probe(argv);
	kt_init();
	kt_plan(kt_count_cases(cases, KT_ARRAY_SIZE(cases)));
	refcnt_base = kt_module_refcnt();
	kt_run_cases(cases, KT_ARRAY_SIZE(cases));
	return kt_exit();
}
