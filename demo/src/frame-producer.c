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
 * lists the PCI devices and the taint flags on ttyS1, writes the kernel log
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

static int produce(const char *path, uint32_t want_session, uint64_t timeout_ms)
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
		usleep(1000);
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

		if (seq % 50 == 0 || seq == frames)
			printf("producer: frame %llu/%u sent\n",
			       (unsigned long long)seq, frames);
	}

	if (!wait_u64(&ctrl->ack, frames, timeout_ms)) {
		printf("producer: client did not acknowledge the last frame\n");
		set_state(ctrl, DEMO_PRODUCER_FAILED);
		return 1;
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
		rc = produce("/dev/kvmfr0", session ? strtoul(session, NULL, 0) : 1,
			     300000);
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
	return produce(path, session, timeout_ms);
}
