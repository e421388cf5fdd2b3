// SPDX-License-Identifier: GPL-2.0
/*
 * Host side of the data-crossing checks: fills an ivshmem backing file with
 * the host pattern before the guest boots, and checks the guest pattern in it
 * after the guest powered off.  The patterns are defined in
 * tests/common/pattern.h, shared with the guest suite.
 *
 *   pattern fill FILE INDEX [SIZE_MIB]   write KVMFR_HOST_SEED(INDEX) over FILE
 *                                        (created / resized to SIZE_MIB first)
 *   pattern verify-guest FILE INDEX      check KVMFR_GUEST_SEED(INDEX)
 *   pattern verify-host FILE INDEX       check KVMFR_HOST_SEED(INDEX)
 *
 * Exit status: 0 = done / pattern matches, 1 = mismatch, 2 = usage or I/O error.
 * A mismatch is described on stdout (first bad word, count of bad words).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/pattern.h"

static int usage(void)
{
	fprintf(stderr,
		"usage: pattern fill FILE INDEX [SIZE_MIB]\n"
		"       pattern verify-guest FILE INDEX\n"
		"       pattern verify-host FILE INDEX\n");
	return 2;
}

static int parse_index(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || !*s || *end ? -1 : 0;
}

/* Map the whole of FILE; the size must be a non-zero multiple of 8 bytes. */
static uint64_t *map_file(const char *path, int fd, size_t *words)
{
	struct stat st;
	void *p;

	if (fstat(fd, &st) < 0) {
		fprintf(stderr, "pattern: stat %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (st.st_size <= 0 || st.st_size % 8) {
		fprintf(stderr, "pattern: %s: size %jd is not a positive multiple of 8\n",
			path, (intmax_t)st.st_size);
		return NULL;
	}
	p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "pattern: mmap %s: %s\n", path, strerror(errno));
		return NULL;
	}
	*words = st.st_size / 8;
	return p;
}

static int fill(const char *path, uint64_t index, const char *size_mib)
{
	size_t words;
	uint64_t *p;
	int fd;

	fd = open(path, O_RDWR | O_CREAT, 0600);
	if (fd < 0) {
		fprintf(stderr, "pattern: open %s: %s\n", path, strerror(errno));
		return 2;
	}
	if (size_mib) {
		uint64_t mib;

		if (parse_index(size_mib, &mib) || !mib ||
		    ftruncate(fd, (off_t)(mib << 20)) < 0) {
			fprintf(stderr, "pattern: cannot size %s to %s MiB\n",
				path, size_mib);
			return 2;
		}
	}
	p = map_file(path, fd, &words);
	if (!p)
		return 2;
	kvmfr_pattern_fill(p, KVMFR_HOST_SEED(index), 0, words);
	if (msync(p, words * 8, MS_SYNC) < 0) {
		fprintf(stderr, "pattern: msync %s: %s\n", path, strerror(errno));
		return 2;
	}
	munmap(p, words * 8);
	close(fd);
	return 0;
}

static int verify(const char *path, uint64_t seed, const char *what)
{
	uint64_t first_bad = UINT64_MAX, bad = 0, i = 0;
	size_t words;
	uint64_t *p;
	int fd;

	fd = open(path, O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "pattern: open %s: %s\n", path, strerror(errno));
		return 2;
	}
	p = map_file(path, fd, &words);
	if (!p)
		return 2;
	/* kvmfr_pattern_check stops at the first mismatch: resume after it */
	while (i < words) {
		uint64_t off = kvmfr_pattern_check(p + i, seed, i, words - i);

		if (off == words - i)
			break;
		if (first_bad == UINT64_MAX)
			first_bad = i + off;
		bad++;
		i += off + 1;
	}
	if (bad) {
		printf("%s pattern mismatch in %s: %" PRIu64 " of %zu words differ; "
		       "first at byte 0x%" PRIx64 ": expected 0x%016" PRIx64
		       ", found 0x%016" PRIx64 "\n",
		       what, path, bad, words, first_bad * 8,
		       kvmfr_pattern_word(seed, first_bad), p[first_bad]);
	}
	munmap(p, words * 8);
	close(fd);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint64_t index;

	if (argc < 4 || parse_index(argv[3], &index))
		return usage();
	if (!strcmp(argv[1], "fill") && argc <= 5)
		return fill(argv[2], index, argc == 5 ? argv[4] : NULL);
	if (!strcmp(argv[1], "verify-guest") && argc == 4)
		return verify(argv[2], KVMFR_GUEST_SEED(index), "guest");
	if (!strcmp(argv[1], "verify-host") && argc == 4)
		return verify(argv[2], KVMFR_HOST_SEED(index), "host");
	return usage();
}
