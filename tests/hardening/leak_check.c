// SPDX-License-Identifier: GPL-2.0
/*
 * End-of-run leak check, run after every other program has exited: no kvmfr
 * dma-buf is alive (debugfs bufinfo and sysfs counts), the module is not
 * referenced, and kmemleak (where the kernel has it) finds nothing new.
 *
 *   kvmfr-leak_check clear   forget the leaks kmemleak knows of (boot noise)
 *   kvmfr-leak_check         the checks
 */
#include "../guest/kvmfr_test.h"

#define KMEMLEAK	"/sys/kernel/debug/kmemleak"
#define BUFINFO		"/sys/kernel/debug/dma_buf/bufinfo"

/* Lines of bufinfo naming our exporter. */
static int count_bufinfo(void)
{
	char line[512];
	int n = 0;
	FILE *f;

	f = fopen(BUFINFO, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "\tkvmfr") || strstr(line, " kvmfr "))
			n++;
	fclose(f);
	return n;
}

static int test_no_dmabufs(void)
{
	int i, n = count_bufinfo(), bad = 0;

	if (n < 0)
		kt_diag("no %s, checking sysfs counts only", BUFINFO);
	else if (n)
		bad = kt_fail("%d kvmfr dma-bufs alive per %s", n, BUFINFO);
	for (i = 0; i < kt_ndev; i++) {
		if (!kt_resolve(&kt_devs[i]))
			continue;
		if (kt_dmabufs(&kt_devs[i]) != 0)
			bad = kt_fail("%s: %lld dma-bufs alive", kt_devs[i].label,
				      kt_dmabufs(&kt_devs[i]));
	}
	return bad ? KT_FAIL : KT_PASS;
}

static int test_refcnt(void)
{
	long long n = kt_module_refcnt();

	if (n != 0)
		return kt_fail("module refcnt %lld, want 0", n);
	return KT_PASS;
}

static int test_kmemleak(void)
{
	char line[256];
	int n = 0;
	FILE *f;

	if (!kt_exists(KMEMLEAK))
		return kt_skip("kernel without kmemleak");
	/* Objects are reported once older than 5 s: scan, wait, scan. */
	if (kt_write_file(KMEMLEAK, "scan"))
		return kt_fail("kmemleak scan: %s", strerror(errno));
	sleep(6);
	if (kt_write_file(KMEMLEAK, "scan"))
		return kt_fail("kmemleak scan: %s", strerror(errno));
	f = fopen(KMEMLEAK, "r");
	if (!f)
		return kt_fail("%s: %s", KMEMLEAK, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (n++ < 60)
			printf("# %s", line);
	}
	fclose(f);
	if (n)
		return kt_fail("kmemleak reports (%d lines above)", n);
	return KT_PASS;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "clear")) {
		if (kt_exists(KMEMLEAK)) {
			kt_write_file(KMEMLEAK, "scan");
			kt_write_file(KMEMLEAK, "clear");
		}
		return 0;
	}
	kt_init();
	kt_plan(3);
	kt_report(test_no_dmabufs(), "no kvmfr dma-buf alive after all programs exited");
	kt_report(test_refcnt(), "kvmfr module not referenced after all programs exited");
	kt_report(test_kmemleak(), "kmemleak finds no leak");
	return kt_exit();
}
