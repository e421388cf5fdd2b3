// SPDX-License-Identifier: GPL-2.0
/*
 * frame-producer - the VM side of the kvmfr demo (runs in level 2).
 *
 *   frame-producer [-d /dev/kvmfr0] [-s SESSION] [-t TIMEOUT_S]
 *
 * Maps the kvmfr device of the VM (IVSHMEM BAR2, whose backing is the host's
 * /dev/kvmfr0), waits until the client has set up SESSION in the control
 * block, then writes the frames the client asked for into two alternating
 * slots, following the handshake described in demo_frame.h. Progress goes
 * to stdout; the last line is "@@stat producer ...". Exit status 0 only if
 * every frame was sent and acknowledged.
 *
 * Run as PID 1 (it is the VM's /init), it first sets the VM up itself,
 * because every exec costs about a second under nested TCG: mounts devtmpfs,
 * proc and sysfs, sends its output to ttyS1, loads /lib/demo/kvmfr.ko, takes
 * SESSION from $DEMO_SESSION (a kernel command line variable). Afterwards it
 * has the edu device (the GPU assigned to the VM) copy a page of the last
 * frame by DMA, lists the PCI devices and the taint flags on ttyS1, writes the kernel log
 * to ttyS2 between "@@dmesg begin" and "@@dmesg end", and powers off.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "kvmfr.h"
#include "demo_frame.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll *word (1 ms sleeps) until it is >= want; false after timeout_ms. */
static int wait_u64(const uint64_t *word, uint64_t want, uint64_t timeout_ms)
{
	uint64_t start = now_ms();

	while (__atomic_load_n(word, __ATOMIC_ACQUIRE) < want) {
		if (now_ms() - start > timeout_ms)
			return 0;
		usleep(1000);
	}
	return 1;
}

static void set_state(struct demo_ctrl *ctrl, uint32_t state)
{
	__atomic_store_n(&ctrl->producer, state, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------------
 * The assigned GPU stand-in: QEMU's edu device (1234:11e8), driven from
 * userspace through sysfs. Its DMA engine copies up to 4 KiB between memory
 * and a buffer at 0x40000 of its BAR0; with no IOMMU in the VM, DMA
 * addresses are guest-physical.
 */
#define EDU_DMA_SRC	0x80
#define EDU_DMA_DST	0x88
#define EDU_DMA_COUNT	0x90
#define EDU_DMA_CMD	0x98
#define EDU_CMD_START	0x1
#define EDU_CMD_TO_RAM	0x2
#define EDU_BUFFER	0x40000

static int read_line(const char *path, char *buf, size_t len);

static int find_pci(const char *id, char *dir, size_t len)
{
	char path[PATH_MAX], vendor[16], device[16], both[40];
	struct dirent *de;
	DIR *d = opendir("/sys/bus/pci/devices");
	int found = 0;

	while (d && !found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", de->d_name);
		read_line(path, vendor, sizeof(vendor));
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", de->d_name);
		read_line(path, device, sizeof(device));
		snprintf(both, sizeof(both), "%s:%s", vendor, device);
		if (!strcmp(both, id)) {
			snprintf(dir, len, "/sys/bus/pci/devices/%s", de->d_name);
			found = 1;
		}
	}
	if (d)
		closedir(d);
	return found;
}

/* Start of BAR bar of the PCI device in dir, from its "resource" file. */
static uint64_t bar_start(const char *dir, int bar)
{
	char path[PATH_MAX], line[128];
	unsigned long long start = 0;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "%s/resource", dir);
	f = fopen(path, "r");
	for (i = 0; f && i <= bar && fgets(line, sizeof(line), f); i++)
		if (i == bar)
			sscanf(line, "%llx", &start);
	if (f)
		fclose(f);
	return start;
}

static void edu_write(volatile unsigned char *regs, unsigned int reg, uint64_t v)
{
	*(volatile uint64_t *)(regs + reg) = v;
}

/* One edu transfer, polled to completion (edu takes 100 ms per transfer). */
static int edu_dma(volatile unsigned char *regs, uint64_t src, uint64_t dst,
		   uint64_t count, uint64_t cmd)
{
	uint64_t start = now_ms();

	edu_write(regs, EDU_DMA_SRC, src);
	edu_write(regs, EDU_DMA_DST, dst);
	edu_write(regs, EDU_DMA_COUNT, count);
	edu_write(regs, EDU_DMA_CMD, cmd | EDU_CMD_START);
	while (*(volatile uint32_t *)(regs + EDU_DMA_CMD) & EDU_CMD_START) {
		if (now_ms() - start > 30000)
			return -1;
		usleep(10000);
	}
	return 0;
}

/*
 * Have edu copy [src_off, src_off + DEMO_DMA_BYTES) of the kvmfr device to dst_off
 * by DMA: BAR2 -> edu buffer -> BAR2. Returns 0 if it did, 1 if there is no
 * edu, -1 on errors (printed).
 */
static int edu_copy(const char *kvmfr_pci, uint64_t src_off, uint64_t dst_off)
{
	char edu[PATH_MAX], path[PATH_MAX + 16];
	volatile unsigned char *regs;
	uint64_t bar2 = bar_start(kvmfr_pci, 2);
	uint16_t cmd;
	int fd, ret = -1;

	if (!find_pci("0x1234:0x11e8", edu, sizeof(edu)))
		return 1;
	/* memory decoding on, and bus mastering, which DMA needs */
	snprintf(path, sizeof(path), "%s/enable", edu);
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, "1", 1) != 1)
		printf("producer: enable %s: %s\n", edu, strerror(errno));
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/config", edu);
	fd = open(path, O_RDWR);
	if (fd < 0 || pread(fd, &cmd, 2, 4) != 2) {
		printf("producer: %s: %s\n", path, strerror(errno));
		goto out;
	}
	cmd |= 0x6;
	if (pwrite(fd, &cmd, 2, 4) != 2) {
		printf("producer: bus mastering for edu: %s\n", strerror(errno));
		goto out;
	}
	close(fd);

	snprintf(path, sizeof(path), "%s/resource0", edu);
	fd = open(path, O_RDWR | O_SYNC);
	regs = fd < 0 ? MAP_FAILED : mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
					  MAP_SHARED, fd, 0);
	if (regs == MAP_FAILED) {
		printf("producer: mmap %s: %s\n", path, strerror(errno));
		goto out;
	}
	if ((*(volatile uint32_t *)regs & 0xff) != 0xed) {
		printf("producer: %s is no edu (id %#x)\n", edu,
		       *(volatile uint32_t *)regs);
	} else if (edu_dma(regs, bar2 + src_off, EDU_BUFFER, DEMO_DMA_BYTES, 0) ||
		   edu_dma(regs, EDU_BUFFER, bar2 + dst_off, DEMO_DMA_BYTES,
			   EDU_CMD_TO_RAM)) {
		printf("producer: edu DMA did not complete\n");
	} else {
		printf("producer: edu %s copied %u bytes by DMA: BAR2 %#llx -> edu -> BAR2 %#llx\n",
		       strrchr(edu, '/') + 1, DEMO_DMA_BYTES,
		       (unsigned long long)(bar2 + src_off),
		       (unsigned long long)(bar2 + dst_off));
		ret = 0;
	}
	munmap((void *)regs, 1 << 20);
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int produce(const char *path, const char *kvmfr_pci,
		   uint32_t want_session, uint64_t timeout_ms)
{
	uint64_t start, t0 = 0, bytes = 0, seq, size, fb;
	uint32_t w, h, pitch, frames, *rows;
	struct demo_ctrl *ctrl;
	unsigned char *base;
	long ret;
	int fd;

	fd = open(path, O_RDWR);
	if (fd < 0) {
		printf("producer: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	ret = ioctl(fd, KVMFR_DMABUF_GETSIZE);
	if (ret <= 0) {
		printf("producer: KVMFR_DMABUF_GETSIZE: %s\n", strerror(errno));
		return 1;
	}
	size = ret;
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		printf("producer: mmap %s: %s\n", path, strerror(errno));
		return 1;
	}
	ctrl = (struct demo_ctrl *)base;
	printf("producer: %s is %llu MiB; waiting for the client (session %u)\n",
	       path, (unsigned long long)(size >> 20), want_session);

	start = now_ms();
	while (__atomic_load_n(&ctrl->ready, __ATOMIC_ACQUIRE) !=
	       DEMO_READY(want_session)) {
		if (now_ms() - start > timeout_ms) {
			printf("producer: no client after %llu s\n",
			       (unsigned long long)timeout_ms / 1000);
			return 1;
		}
		/* maybe for minutes (another session first): poll gently */
		usleep(20000);
	}
	frames = ctrl->frames;
	w = ctrl->width;
	h = ctrl->height;
	pitch = w * 4;
	fb = demo_frame_bytes(w, h);
	if (!w || !h || demo_layout_bytes(w, h) > size) {
		printf("producer: %ux%u frames do not fit in %llu bytes\n", w, h,
		       (unsigned long long)size);
		set_state(ctrl, DEMO_PRODUCER_FAILED);
		return 1;
	}
	rows = malloc((size_t)8 * 2 * w * 4);
	if (!rows)
		return 1;
	printf("producer: session %u: sending %u frames of %ux%u XRGB8888 (%llu bytes each)\n",
	       want_session, frames, w, h, (unsigned long long)fb);
	set_state(ctrl, DEMO_PRODUCER_RUNNING);

	for (seq = 1; seq <= frames; seq++) {
		unsigned int s = seq % DEMO_SLOTS;
		struct demo_frame_hdr *hdr = &ctrl->slot[s];
		uint64_t off = demo_slot_offset(s, w, h);
		uint32_t *px = (uint32_t *)(base + off);

		/* the slot is free once the client is done with seq - 2 */
		if (seq > DEMO_SLOTS &&
		    !wait_u64(&ctrl->ack, seq - DEMO_SLOTS, timeout_ms)) {
			printf("producer: client did not acknowledge frame %llu\n",
			       (unsigned long long)(seq - DEMO_SLOTS));
			set_state(ctrl, DEMO_PRODUCER_FAILED);
			return 1;
		}
		if (seq == 1)
			t0 = now_ms();

		demo_draw_frame(px, w, w, h, seq, rows);
		hdr->magic = DEMO_FRAME_MAGIC;
		hdr->format = DEMO_FMT_XRGB8888;
		hdr->width = w;
		hdr->height = h;
		hdr->pitch = pitch;
		hdr->session = want_session;
		hdr->offset = off;
		hdr->checksum = demo_checksum(px, fb);
		__atomic_store_n(&hdr->seq, seq, __ATOMIC_RELEASE);
		__atomic_store_n(&ctrl->published, seq, __ATOMIC_RELEASE);
		bytes += fb;

		if (seq % 100 == 0 || seq == frames)
			printf("producer: frame %llu/%u sent\n",
			       (unsigned long long)seq, frames);
	}

	if (!wait_u64(&ctrl->ack, frames, timeout_ms)) {
		printf("producer: client did not acknowledge the last frame\n");
		set_state(ctrl, DEMO_PRODUCER_FAILED);
		return 1;
	}
	/* the GPU's part: DMA through the host's IOMMU mapping of the BAR */
	if (kvmfr_pci) {
		uint64_t src = demo_slot_offset(frames % DEMO_SLOTS, w, h);
		int ret;

		memset(base + DEMO_DMA_OFFSET, 0, DEMO_PAGE_SIZE);
		ret = edu_copy(kvmfr_pci, src, DEMO_DMA_OFFSET);
		if (!ret) {
			printf("@@check %s level 2 (session %u): the assigned edu's DMA copy of the start of frame %u matches it (both DMAs through the host IOMMU)\n",
			       memcmp(base + DEMO_DMA_OFFSET, base + src,
				      DEMO_DMA_BYTES) ? "fail" : "ok",
			       want_session, frames);
			ctrl->dma_offset = DEMO_DMA_OFFSET;
			__atomic_store_n(&ctrl->dma_seq, frames, __ATOMIC_RELEASE);
		} else if (ret < 0) {
			printf("@@check fail level 2 (session %u): DMA by the assigned edu\n",
			       want_session);
		}
	}
	/* the last store to the device: the client may start a new session */
	set_state(ctrl, DEMO_PRODUCER_DONE);
	start = now_ms() - t0;
	printf("producer: all %u frames acknowledged in %llu ms\n", frames,
	       (unsigned long long)start);
	printf("@@stat producer session=%u frames=%u bytes=%llu ms=%llu\n",
	       want_session, frames, (unsigned long long)bytes,
	       (unsigned long long)start);
	munmap(base, size);
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------------
 * PID 1 of the VM
 */

static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	int ok;

	buf[0] = 0;
	if (!f)
		return 0;
	ok = fgets(buf, len, f) != NULL;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return ok;
}

static int open_port(const char *path)
{
	struct termios t;
	int fd = open(path, O_WRONLY | O_NOCTTY);

	if (fd >= 0 && !tcgetattr(fd, &t)) {
		cfmakeraw(&t);
		tcsetattr(fd, TCSANOW, &t);
	}
	return fd;
}

static void list_pci_devices(void)
{
	char path[PATH_MAX], vendor[16], device[16], drv[PATH_MAX];
	struct dirent *de;
	DIR *dir = opendir("/sys/bus/pci/devices");
	ssize_t n;

	while (dir && (de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", de->d_name);
		read_line(path, vendor, sizeof(vendor));
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", de->d_name);
		read_line(path, device, sizeof(device));
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", de->d_name);
		n = readlink(path, drv, sizeof(drv) - 1);
		drv[n > 0 ? n : 0] = 0;
		printf("@@l2 pci %s %s:%s driver=%s\n", de->d_name, vendor, device,
		       strrchr(drv, '/') ? strrchr(drv, '/') + 1 : "");
	}
	if (dir)
		closedir(dir);
}

/* The kernel log, "<level>" prefixes dropped, to fd. */
static void dump_kernel_log(int fd)
{
	int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	char *buf, *line, *end;

	if (len <= 0 || !(buf = malloc(len + 1)))
		return;
	len = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, len);
	if (len < 0)
		len = 0;
	buf[len] = 0;
	dprintf(fd, "@@dmesg begin\n");
	for (line = buf; *line; line = end) {
		end = strchr(line, '\n');
		end = end ? end + 1 : line + strlen(line);
		if (*line == '<' && strchr(line, '>') && strchr(line, '>') < end)
			line = strchr(line, '>') + 1;
		if (write(fd, line, end - line) < 0)
			break;
	}
	dprintf(fd, "@@dmesg end\n");
	free(buf);
}

static int vm_init(void)
{
	const char *session = getenv("DEMO_SESSION");
	char up[64], line[256];
	int fd, logfd, rc = 1;

	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	fd = open_port("/dev/ttyS1");
	logfd = open_port("/dev/ttyS2");
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	read_line("/proc/uptime", up, sizeof(up));
	up[strcspn(up, " ")] = 0;
	printf("@@l2 up %s\n", up);

	fd = open("/lib/demo/kvmfr.ko", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || syscall(SYS_finit_module, fd, "", 0)) {
		printf("@@check fail level 2: load kvmfr.ko: %s\n", strerror(errno));
	} else {
		read_line("/sys/class/kvmfr/kvmfr0/type", line, 32);
		read_line("/sys/class/kvmfr/kvmfr0/size", line + 32, 64);
		printf("@@check %s level 2 (session %s): kvmfr.ko loaded, /dev/kvmfr0 is an IVSHMEM BAR2 (%s, %s bytes)\n",
		       strcmp(line, "pci") ? "fail" : "ok", session ? session : "?",
		       line, line + 32);
		rc = produce("/dev/kvmfr0", "/sys/class/kvmfr/kvmfr0/device",
			     session ? strtoul(session, NULL, 0) : 1, 900000);
	}
	if (fd >= 0)
		close(fd);
	printf("@@l2 producer-exit %d\n", rc);
	list_pci_devices();
	read_line("/proc/sys/kernel/tainted", line, sizeof(line));
	printf("@@kvmfr tainted %s\n", line);
	if (logfd >= 0) {
		dump_kernel_log(logfd);
		tcdrain(logfd);
	}
	printf("@@l2 done\n");
	tcdrain(1);
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = "/dev/kvmfr0";
	uint64_t timeout_ms = 120000;
	uint32_t session = 1;
	int opt;

	if (getpid() == 1)
		return vm_init();

	while ((opt = getopt(argc, argv, "d:s:t:")) != -1) {
		switch (opt) {
		case 'd':
			path = optarg;
			break;
		case 's':
			session = strtoul(optarg, NULL, 0);
			break;
		case 't':
			timeout_ms = strtoull(optarg, NULL, 0) * 1000;
			break;
		default:
			fprintf(stderr, "usage: %s [-d DEV] [-s SESSION] [-t TIMEOUT_S]\n",
				argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	return produce(path, NULL, session, timeout_ms);
}
