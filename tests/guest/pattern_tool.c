// SPDX-License-Identifier: GPL-2.0
/*
 * kvmfr-pattern: the data handshake between the host harness and the guest.
 *
 *   kvmfr-pattern verify   every ivshmem device i of KVMFR_PCI holds
 *                          KVMFR_HOST_SEED(i) (written by the host before
 *                          boot): checked through a device mmap, a
 *                          whole-device dma-buf and dma-bufs at offsets.
 *   kvmfr-pattern write    writes KVMFR_GUEST_SEED(i) over every ivshmem
 *                          device through a device mmap, msync, munmap; the
 *                          host checks the backing files after poweroff.
 */
#include "kvmfr_test.h"

#define VERIFY_TESTS	8
#define WRITE_TESTS	4

/* A dma-buf of [off, off + len) mmapped and checked against seed. */
static int check_dmabuf(int fd, uint64_t seed, uint64_t off, uint64_t len)
{
	int db, res = KT_FAIL;
	void *p;

	db = kt_create(fd, KVMFR_DMABUF_FLAG_CLOEXEC, off, len);
	if (db < 0)
		return kt_fail("CREATE(offset 0x%" PRIx64 ", size 0x%" PRIx64
			       "): %s", off, len, kt_errname(errno));
	p = kt_map(db, 0, len);
	if (p && kt_check_at(p, off, len, seed, "dma-buf mapping"))
		res = KT_PASS;
	kt_unmap(p, len);
	kt_close(db);
	return res;
}

static void verify(struct kvmfr_dev *d)
{
	uint64_t seed = KVMFR_HOST_SEED(d->index), size = d->size, mid;
	const char *l = d->label;
	int fd = -1, res;
	void *p = NULL;

	if (!d->found) {
		kt_diag("%s: device not found", l);
		for (res = 0; res < VERIFY_TESTS; res++)
			kt_report(KT_FAIL, "%s: verify step %d", l, res + 1);
		return;
	}
	kt_report(d->expect_size && size != d->expect_size ? KT_FAIL : KT_PASS,
		  "%s: %s size is %" PRIu64 " bytes", l, d->name, size);

	fd = kt_open(d);
	if (fd >= 0)
		p = kt_map(fd, 0, size);
	kt_report(p ? KT_PASS : KT_FAIL, "%s: open and mmap whole device", l);

	res = p && kt_check_at(p, 0, size, seed, "device mapping");
	kt_report(res ? KT_PASS : KT_FAIL,
		  "%s: host pattern through the device mapping", l);

	kt_report(fd >= 0 ? check_dmabuf(fd, seed, 0, size) : KT_FAIL,
		  "%s: host pattern through a whole-device dma-buf", l);
	kt_report(fd >= 0 ? check_dmabuf(fd, seed, kt_page, kt_page) : KT_FAIL,
		  "%s: host pattern through a dma-buf at the second page", l);
	mid = size / 2 + 3 * kt_page;
	kt_report(fd >= 0 ? check_dmabuf(fd, seed, mid, 16 * kt_page) : KT_FAIL,
		  "%s: host pattern through a dma-buf in the middle", l);
	kt_report(fd >= 0 ? check_dmabuf(fd, seed, size - kt_page, kt_page) :
		  KT_FAIL, "%s: host pattern through a dma-buf at the last page",
		  l);

	kt_unmap(p, size);
	kt_close(fd);
	res = kt_dmabufs(d);
	if (res)
		kt_diag("%s: dmabufs reads %d", l, res);
	kt_report(res ? KT_FAIL : KT_PASS, "%s: no dma-buf left behind", l);
}

static void write_pattern(struct kvmfr_dev *d)
{
	uint64_t seed = KVMFR_GUEST_SEED(d->index), size = d->size;
	const char *l = d->label;
	void *p = NULL;
	int fd = -1, i;

	if (!d->found) {
		kt_diag("%s: device not found", l);
		for (i = 0; i < WRITE_TESTS; i++)
			kt_report(KT_FAIL, "%s: write step %d", l, i + 1);
		return;
	}
	fd = kt_open(d);
	if (fd >= 0)
		p = kt_map(fd, 0, size);
	kt_report(p ? KT_PASS : KT_FAIL, "%s: open and mmap whole %s", l,
		  d->name);
	if (p)
		kt_fill_at(p, 0, size, seed);
	kt_report(p && kt_check_at(p, 0, size, seed, "read back") ? KT_PASS :
		  KT_FAIL, "%s: guest pattern written and read back", l);
	i = p ? msync(p, size, MS_SYNC) : -1;
	if (p && i)
		kt_diag("msync: %s", kt_errname(errno));
	kt_report(i ? KT_FAIL : KT_PASS, "%s: msync", l);
	i = p ? munmap(p, size) : -1;
	kt_close(fd);
	kt_report(i ? KT_FAIL : KT_PASS, "%s: munmap", l);
}

int main(int argc, char **argv)
{
	bool do_verify;
	int i;

	if (argc != 2 || (strcmp(argv[1], "verify") && strcmp(argv[1], "write"))) {
		fprintf(stderr, "usage: %s verify|write\n", argv[0]);
		return 2;
	}
	do_verify = !strcmp(argv[1], "verify");

	kt_start();
	kt_parse_env();
	for (i = 0; i < kt_ndev; i++)
		if (kt_devs[i].pci && !kt_resolve(&kt_devs[i]))
			kt_diag("%s: no kvmfr device", kt_devs[i].label);
	if (!kt_npci) {
		printf("1..0 # SKIP no ivshmem device in KVMFR_PCI\n");
		return 0;
	}
	kt_plan(kt_npci * (do_verify ? VERIFY_TESTS : WRITE_TESTS));
	for (i = 0; i < kt_ndev; i++) {
		if (!kt_devs[i].pci)
			continue;
		if (do_verify)
			verify(&kt_devs[i]);
		else
			write_pattern(&kt_devs[i]);
	}
	return kt_exit();
}
