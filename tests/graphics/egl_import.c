// SPDX-License-Identifier: GPL-2.0
/*
 * The importer clients really use: Mesa's EGL imports a kvmfr frame the way
 * the Looking Glass client does (KVMFR_DMABUF_CREATE for a frame slot,
 * eglCreateImage(EGL_LINUX_DMA_BUF_EXT) with a DRM fourcc, pitch and offset,
 * glEGLImageTargetTexture2DOES), and what it samples is compared, pixel by
 * pixel, with what the producer wrote.
 *
 * Each device gets one frame slot at a non-zero device offset. The slot
 * holds a header (FRAME_OFF bytes) and then a WIDTH x HEIGHT frame whose rows
 * are PITCH bytes apart, PITCH > WIDTH * 4; every byte of the slot (header,
 * row padding too) is the test pattern, so an import at the wrong offset or
 * pitch never reads back right. The producer writes through its mapping of
 * the kvmfr device, between DMA_BUF_IOCTL_SYNC START and END on the
 * dma-buf. The consumer draws the image into a framebuffer object with a
 * shader that fetches texel (x, y) for pixel (x, y) and reads it back with
 * glReadPixels: both XRGB8888 (alpha reads back 255) and ARGB8888 (alpha
 * kept). Then the producer writes the next frame into the same slot and the
 * same EGLImage, sampled again, must show it.
 *
 * The platform is KVMFR_EGL_PLATFORM: "device-sw" (default; the EGL device
 * platform's software device, EGL_MESA_device_software: Mesa's swrast,
 * llvmpipe with no DRM device), "surfaceless" (EGL_PLATFORM_SURFACELESS_MESA
 * with vgem loaded, which makes Mesa pick kms_swrast on vgem's render node)
 * or "gbm" (GBM on vgem's render node); vgem is loaded from /lib/kvmfr/vgem
 * like vgem_import does. kms_swrast cannot sample an imported dma-buf on
 * vgem: the program checks the reason (vgem refuses MODE_MAP_DUMB of an
 * import) and skips, naming it. Where the display does not offer
 * EGL_EXT_image_dma_buf_import the program skips, naming the driver, the
 * Mesa version and the display's extensions.
 *
 * Planted bugs, for seeing the tests fail: KVMFR_EGL_PLANT=offset gives EGL
 * a plane offset one row too far (tests 1 to 3 fail); KVMFR_EGL_PLANT=stale
 * has the producer leave the slot alone and checks the re-sampled image
 * against the next frame it would have written (the "next frame" test
 * fails).
 */
#include "kvmfr_test.h"

#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES3/gl3.h>
#include <GLES2/gl2ext.h>
#include <dlfcn.h>

#define FOURCC(a, b, c, d) ((uint32_t)(a) | ((uint32_t)(b) << 8) | \
			    ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))
#define FMT_XRGB8888	FOURCC('X', 'R', '2', '4')
#define FMT_ARGB8888	FOURCC('A', 'R', '2', '4')

#define WIDTH		200
#define HEIGHT		120
#define PITCH		1024		/* > WIDTH * 4 = 800 */
#define FRAME_OFF	4096		/* the frame, after the slot's header */
#define SLOT_OFF	(1 << 20)	/* the slot, in the device */
#define SLOT_SIZE	(FRAME_OFF + PITCH * HEIGHT)	/* 126976: 31 pages */

static EGLDisplay dpy = EGL_NO_DISPLAY;
static EGLContext ctx = EGL_NO_CONTEXT;
static GLuint prog, fbo, rb;
static PFNEGLCREATEIMAGEKHRPROC create_image;
static PFNEGLDESTROYIMAGEKHRPROC destroy_image;
static PFNGLEGLIMAGETARGETTEXTURE2DOESPROC image_target;
static char no_egl[2048];	/* why the display cannot import: skip */
static const char *plant = "";
static void *gbm;		/* struct gbm_device, libgbm.so.1 opened at run time */
static void (*gbm_destroy)(void *gbm);
static int gbm_fd = -1;
static const char *volatile step = "set-up";	/* for a crash report */
static const char *volatile case_label = "";

/* --------------------------------------------------------- EGL, GL */

static const char *vs_src =
	"#version 300 es\n"
	"void main() {\n"
	"  vec2 p = vec2(float((gl_VertexID & 1) * 4 - 1),\n"
	"                float((gl_VertexID & 2) * 2 - 1));\n"
	"  gl_Position = vec4(p, 0.0, 1.0);\n"
	"}\n";

/* texel (x, y) for pixel (x, y): no filtering, no coordinates to round */
static const char *fs_src =
	"#version 300 es\n"
	"precision highp float;\n"
	"uniform highp sampler2D tex;\n"
	"out vec4 color;\n"
	"void main() {\n"
	"  color = texelFetch(tex, ivec2(gl_FragCoord.xy), 0);\n"
	"}\n";

static bool has_ext(const char *list, const char *ext)
{
	size_t n = strlen(ext);
	const char *p = list;

	while (p && (p = strstr(p, ext))) {
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return true;
		p += n;
	}
	return false;
}

static GLuint shader(GLenum type, const char *src)
{
	GLuint s = glCreateShader(type);
	GLint ok = 0;
	char log[512];

	glShaderSource(s, 1, &src, NULL);
	glCompileShader(s);
	glGetShaderiv(s, GL_COMPILE_STATUS, &ok);
	if (!ok) {
		glGetShaderInfoLog(s, sizeof(log), NULL, log);
		kt_diag("shader: %s", log);
	}
	return s;
}

/* vgem's render node for GBM (the modules from /lib/kvmfr/vgem) */
static int open_vgem_render(void)
{
	char path[64], line[256];
	FILE *f;
	int i, fd;

	f = fopen("/lib/kvmfr/vgem/list", "r");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		fd = open(line, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (syscall(SYS_finit_module, fd, "", 0) && errno != EEXIST)
				kt_diag("loading %s: %s", line, kt_errname(errno));
			close(fd);
		}
	}
	if (f)
		fclose(f);
	for (i = 128; i < 136; i++) {
		struct {
			int major, minor, patch;
			size_t name_len;
			char *name;
			size_t date_len;
			char *date;
			size_t desc_len;
			char *desc;
		} v;
		char name[16] = "";

		snprintf(path, sizeof(path), "/dev/dri/renderD%d", i);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		memset(&v, 0, sizeof(v));
		v.name_len = sizeof(name) - 1;
		v.name = name;
		if (!ioctl(fd, _IOWR('d', 0x00, v), &v) && !strcmp(name, "vgem")) {
			kt_diag("GBM on %s (vgem)", path);
			return fd;
		}
		close(fd);
	}
	return -1;
}

/* DRM uapi (drm.h, drm_mode.h) */
struct prime_arg {
	uint32_t handle, flags;
	int32_t fd;
};

struct map_dumb_arg {
	uint32_t handle, pad;
	uint64_t offset;
};

struct gem_close_arg {
	uint32_t handle, pad;
};

#define IOCTL_GEM_CLOSE		_IOW('d', 0x09, struct gem_close_arg)
#define IOCTL_PRIME_FD_TO_HANDLE _IOWR('d', 0x2e, struct prime_arg)
#define IOCTL_MODE_MAP_DUMB	_IOWR('d', 0xb3, struct map_dumb_arg)

static char map_dumb_err[64];

/*
 * What kms_swrast does to reach an imported dma-buf's pixels: PRIME-import
 * it on its DRM node (vgem's, gbm_fd) and mmap it at the offset
 * DRM_IOCTL_MODE_MAP_DUMB gives. True if vgem hands out that offset for an
 * import of a kvmfr dma-buf.
 */
static bool kms_swrast_maps_imports(void)
{
	struct map_dumb_arg map = { 0 };
	struct prime_arg prime = { 0 };
	struct gem_close_arg gem_close = { 0 };
	struct kvmfr_dev *d = &kt_devs[0];
	int dev, db;
	bool ok;

	kt_strcpy(map_dumb_err, "no test import", sizeof(map_dumb_err));
	if (gbm_fd < 0 || !d->found)
		return false;
	dev = kt_open(d);
	db = dev >= 0 ? kt_create(dev, 0, 0, kt_page) : -1;
	prime.fd = db;
	if (db < 0 || ioctl(gbm_fd, IOCTL_PRIME_FD_TO_HANDLE, &prime)) {
		snprintf(map_dumb_err, sizeof(map_dumb_err), "PRIME import: %s",
			 kt_errname(errno));
		ok = false;
	} else {
		map.handle = prime.handle;
		ok = !ioctl(gbm_fd, IOCTL_MODE_MAP_DUMB, &map);
		snprintf(map_dumb_err, sizeof(map_dumb_err), "%s",
			 ok ? "it maps" : kt_errname(errno));
		gem_close.handle = prime.handle;
		ioctl(gbm_fd, IOCTL_GEM_CLOSE, &gem_close);
	}
	kt_close(db);
	kt_close(dev);
	return ok;
}

/* The EGL device platform's software device (EGL_MESA_device_software) */
static EGLDisplay software_device_display(void)
{
	PFNEGLQUERYDEVICESEXTPROC query_devices;
	PFNEGLQUERYDEVICESTRINGEXTPROC device_string;
	EGLDeviceEXT devs[16];
	EGLint n = 0, i;

	query_devices = (PFNEGLQUERYDEVICESEXTPROC)eglGetProcAddress("eglQueryDevicesEXT");
	device_string = (PFNEGLQUERYDEVICESTRINGEXTPROC)
		eglGetProcAddress("eglQueryDeviceStringEXT");
	if (!query_devices || !device_string || !query_devices(16, devs, &n))
		return EGL_NO_DISPLAY;
	for (i = 0; i < n; i++)
		if (has_ext(device_string(devs[i], EGL_EXTENSIONS),
			    "EGL_MESA_device_software"))
			return eglGetPlatformDisplay(EGL_PLATFORM_DEVICE_EXT,
						     devs[i], NULL);
	return EGL_NO_DISPLAY;
}

/*
 * Display, context, program and framebuffer; fills no_egl when the display
 * cannot import dma-bufs, returns false when something that should work
 * did not.
 */
static bool egl_setup(void)
{
	const char *platform_name = getenv("KVMFR_EGL_PLATFORM");
	PFNEGLGETDISPLAYDRIVERNAMEPROC driver_name;
	static const EGLint ctx_attr[] = { EGL_CONTEXT_MAJOR_VERSION, 3,
					   EGL_NONE };
	const char *ext, *driver;
	EGLint major, minor;
	GLint linked = 0;

	if (!platform_name || !strcmp(platform_name, "device-sw")) {
		platform_name = "device-sw";
		dpy = software_device_display();
	} else if (!strcmp(platform_name, "surfaceless")) {
		/* with vgem loaded: Mesa picks kms_swrast on its render node */
		gbm_fd = open_vgem_render();
		dpy = eglGetPlatformDisplay(EGL_PLATFORM_SURFACELESS_MESA,
					    EGL_DEFAULT_DISPLAY, NULL);
	} else if (!strcmp(platform_name, "gbm")) {
		void *lib = dlopen("libgbm.so.1", RTLD_NOW);
		void *(*gbm_create)(int fd) = lib ? dlsym(lib, "gbm_create_device") : NULL;

		gbm_destroy = lib ? dlsym(lib, "gbm_device_destroy") : NULL;
		gbm_fd = open_vgem_render();
		gbm = gbm_fd >= 0 && gbm_create ? gbm_create(gbm_fd) : NULL;
		if (!gbm) {
			snprintf(no_egl, sizeof(no_egl),
				 "KVMFR_EGL_PLATFORM=gbm: no vgem render node or gbm_create_device failed");
			return true;
		}
		dpy = eglGetPlatformDisplay(EGL_PLATFORM_GBM_KHR, gbm, NULL);
	} else {
		kt_diag("KVMFR_EGL_PLATFORM=%s: device-sw, surfaceless or gbm", platform_name);
		return false;
	}
	if (dpy == EGL_NO_DISPLAY || !eglInitialize(dpy, &major, &minor)) {
		snprintf(no_egl, sizeof(no_egl), "no EGL display on the %s platform (0x%x)",
			 platform_name, eglGetError());
		return true;
	}
	ext = eglQueryString(dpy, EGL_EXTENSIONS);
	driver_name = (PFNEGLGETDISPLAYDRIVERNAMEPROC)
		eglGetProcAddress("eglGetDisplayDriverName");
	driver = driver_name ? driver_name(dpy) : "?";
	kt_diag("EGL %d.%d, %s platform, driver %s, %s %s", major, minor,
		platform_name, driver ? driver : "?",
		eglQueryString(dpy, EGL_VENDOR), eglQueryString(dpy, EGL_VERSION));
	kt_diag("EGL extensions: %s", ext);
	if (!has_ext(ext, "EGL_EXT_image_dma_buf_import") ||
	    !has_ext(ext, "EGL_KHR_surfaceless_context")) {
		snprintf(no_egl, sizeof(no_egl),
			 "EGL %s on the %s platform (driver %s) lacks EGL_EXT_image_dma_buf_import or EGL_KHR_surfaceless_context; it offers: %.1500s",
			 eglQueryString(dpy, EGL_VERSION), platform_name,
			 driver ? driver : "?", ext);
		return true;
	}
	if (driver && !strcmp(driver, "kms_swrast") && !kms_swrast_maps_imports() &&
	    !getenv("KVMFR_EGL_FORCE")) {
		snprintf(no_egl, sizeof(no_egl),
			 "Mesa's kms_swrast (%s platform, on vgem's render node) reaches an imported dma-buf's pixels through DRM_IOCTL_MODE_MAP_DUMB, which that node refuses for a PRIME import of a kvmfr dma-buf (%s): eglCreateImage succeeds, then drawing with the image crashes (SIGSEGV; KVMFR_EGL_FORCE=1 runs it anyway)",
			 platform_name, map_dumb_err);
		return true;
	}
	create_image = (PFNEGLCREATEIMAGEKHRPROC)eglGetProcAddress("eglCreateImageKHR");
	destroy_image = (PFNEGLDESTROYIMAGEKHRPROC)eglGetProcAddress("eglDestroyImageKHR");
	image_target = (PFNGLEGLIMAGETARGETTEXTURE2DOESPROC)
		eglGetProcAddress("glEGLImageTargetTexture2DOES");
	if (!create_image || !destroy_image || !image_target) {
		kt_diag("eglGetProcAddress: no eglCreateImageKHR/eglDestroyImageKHR/glEGLImageTargetTexture2DOES");
		return false;
	}
	if (!eglBindAPI(EGL_OPENGL_ES_API))
		return false;
	ctx = eglCreateContext(dpy, EGL_NO_CONFIG_KHR, EGL_NO_CONTEXT, ctx_attr);
	if (ctx == EGL_NO_CONTEXT ||
	    !eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, ctx)) {
		kt_diag("OpenGL ES 3 context without a surface: 0x%x", eglGetError());
		return false;
	}
	kt_diag("GL_RENDERER %s, GL_VERSION %s", glGetString(GL_RENDERER),
		glGetString(GL_VERSION));
	if (!has_ext((const char *)glGetString(GL_EXTENSIONS), "GL_OES_EGL_image")) {
		kt_diag("GL_OES_EGL_image is missing");
		return false;
	}

	prog = glCreateProgram();
	glAttachShader(prog, shader(GL_VERTEX_SHADER, vs_src));
	glAttachShader(prog, shader(GL_FRAGMENT_SHADER, fs_src));
	glLinkProgram(prog);
	glGetProgramiv(prog, GL_LINK_STATUS, &linked);
	if (!linked)
		return false;
	glUseProgram(prog);
	glUniform1i(glGetUniformLocation(prog, "tex"), 0);

	glGenRenderbuffers(1, &rb);
	glBindRenderbuffer(GL_RENDERBUFFER, rb);
	glRenderbufferStorage(GL_RENDERBUFFER, GL_RGBA8, WIDTH, HEIGHT);
	glGenFramebuffers(1, &fbo);
	glBindFramebuffer(GL_FRAMEBUFFER, fbo);
	glFramebufferRenderbuffer(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0,
				  GL_RENDERBUFFER, rb);
	if (glCheckFramebufferStatus(GL_FRAMEBUFFER) != GL_FRAMEBUFFER_COMPLETE) {
		kt_diag("the RGBA8 framebuffer is incomplete");
		return false;
	}
	glViewport(0, 0, WIDTH, HEIGHT);
	glDisable(GL_BLEND);
	return glGetError() == GL_NO_ERROR;
}

/* The EGLImage of a frame at plane offset off of dma-buf db. */
static EGLImageKHR import_frame(int db, uint32_t fourcc, uint32_t off)
{
	const EGLint attr[] = {
		EGL_WIDTH, WIDTH,
		EGL_HEIGHT, HEIGHT,
		EGL_LINUX_DRM_FOURCC_EXT, (EGLint)fourcc,
		EGL_DMA_BUF_PLANE0_FD_EXT, db,
		EGL_DMA_BUF_PLANE0_OFFSET_EXT, (EGLint)off,
		EGL_DMA_BUF_PLANE0_PITCH_EXT, PITCH,
		EGL_NONE
	};
	EGLImageKHR img;

	step = "eglCreateImage";
	img = create_image(dpy, EGL_NO_CONTEXT, EGL_LINUX_DMA_BUF_EXT, NULL, attr);
	if (img == EGL_NO_IMAGE_KHR)
		kt_diag("eglCreateImage(EGL_LINUX_DMA_BUF_EXT, offset %u, pitch %d): 0x%x",
			off, PITCH, eglGetError());
	return img;
}

/* Binds img to a new texture; 0 on failure. */
static GLuint bind_image(EGLImageKHR img)
{
	GLuint tex;
	GLenum e;

	step = "glEGLImageTargetTexture2DOES";
	glGenTextures(1, &tex);
	glActiveTexture(GL_TEXTURE0);
	glBindTexture(GL_TEXTURE_2D, tex);
	glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
	glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
	image_target(GL_TEXTURE_2D, (GLeglImageOES)img);
	e = glGetError();
	if (e != GL_NO_ERROR) {
		kt_diag("glEGLImageTargetTexture2DOES: GL error 0x%x", e);
		glDeleteTextures(1, &tex);
		return 0;
	}
	return tex;
}

/* Draws the bound texture into the framebuffer and reads it back (RGBA). */
static bool draw_and_read(uint8_t *rgba)
{
	GLenum e;

	step = "glDrawArrays and glReadPixels";
	glClearColor(0, 0, 0, 0);
	glClear(GL_COLOR_BUFFER_BIT);
	glDrawArrays(GL_TRIANGLE_STRIP, 0, 3);
	glPixelStorei(GL_PACK_ALIGNMENT, 4);
	glReadPixels(0, 0, WIDTH, HEIGHT, GL_RGBA, GL_UNSIGNED_BYTE, rgba);
	e = glGetError();
	if (e != GL_NO_ERROR)
		kt_diag("draw and glReadPixels: GL error 0x%x", e);
	return e == GL_NO_ERROR;
}

/*
 * Compares the read-back RGBA pixels with the frame at frame in memory
 * (little-endian B, G, R, A/X bytes). Row y of the read-back is texel row y,
 * which is memory row y (gl_FragCoord and texel coordinates both start at
 * the image's first row).
 */
static bool same_pixels(const uint8_t *rgba, const uint8_t *frame, bool alpha,
			const char *what)
{
	int x, y, bad = 0;

	step = "comparing the pixels";
	for (y = 0; y < HEIGHT; y++)
		for (x = 0; x < WIDTH; x++) {
			const uint8_t *m = frame + (size_t)y * PITCH + x * 4;
			const uint8_t *p = rgba + ((size_t)y * WIDTH + x) * 4;
			uint8_t a = alpha ? m[3] : 0xff;

			if (p[0] == m[2] && p[1] == m[1] && p[2] == m[0] && p[3] == a)
				continue;
			if (!bad++)
				kt_diag("%s: pixel (%d, %d) reads RGBA %02x%02x%02x%02x, the producer wrote %02x%02x%02x%02x",
					what, x, y, p[0], p[1], p[2], p[3],
					m[2], m[1], m[0], a);
		}
	if (bad)
		kt_diag("%s: %d of %d pixels differ", what, bad, WIDTH * HEIGHT);
	return !bad;
}

/*
 * How the importer holds the dma-buf of fd db: its attachments (debugfs
 * dma_buf/bufinfo, -1 if unreadable) and this process's mappings of it
 * besides the producer's (none: the producer maps the device).
 */
static void importer_diag(int db)
{
	char line[512], exp[64], path[256];
	unsigned long size, ino, maj, min, node;
	unsigned long long start, end, off;
	unsigned int flags, mode;
	int state = 0, attached = -1, maps = 0;
	struct stat st;
	char perms[8];
	long count;
	FILE *f;

	if (fstat(db, &st))
		return;
	f = fopen("/sys/kernel/debug/dma_buf/bufinfo", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (state == 0) {
			if (sscanf(line, "%lu %x %x %ld %63s %lu", &size, &flags,
				   &mode, &count, exp, &ino) == 6 && ino == st.st_ino)
				state = 1;
		} else if (state == 1) {
			if (!strncmp(line, "\tAttached Devices:", 18)) {
				state = 2;
				attached = 0;
			}
		} else if (line[0] == '\t') {
			attached++;
		} else {
			break;
		}
	}
	if (f)
		fclose(f);
	f = fopen("/proc/self/maps", "r");
	while (f && fgets(line, sizeof(line), f)) {
		path[0] = '\0';
		if (sscanf(line, "%llx-%llx %7s %llx %lx:%lx %lu %255s", &start,
			   &end, perms, &off, &maj, &min, &node, path) >= 7 &&
		    node == st.st_ino && strstr(path, "dmabuf"))
			maps++;
	}
	if (f)
		fclose(f);
	kt_diag("the EGL import holds %d device attachment(s) of the dma-buf (bufinfo) and %d mapping(s) of it in this process",
		attached, maps);
}

/* ---------------------------------------------------- the producer */

struct slot {
	int dev, db;
	uint8_t *map;		/* the producer's mapping of the slot (device) */
	uint64_t seed;
};

static int sync_flags(int db, unsigned long long flags)
{
	struct dma_buf_sync s = { flags };

	return ioctl(db, DMA_BUF_IOCTL_SYNC, &s) ? -errno : 0;
}

/* The producer writes a new frame (the whole slot) inside SYNC START/END. */
static bool produce(struct slot *s)
{
	int r;

	step = "the producer's write";
	s->seed = kt_seed();
	r = sync_flags(s->db, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE);
	if (r) {
		kt_diag("SYNC START: %s", kt_errname(-r));
		return false;
	}
	kt_fill_at(s->map, SLOT_OFF, SLOT_SIZE, s->seed);
	r = sync_flags(s->db, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE);
	if (r)
		kt_diag("SYNC END: %s", kt_errname(-r));
	return !r;
}

static void slot_close(struct slot *s)
{
	kt_unmap(s->map, SLOT_SIZE);
	kt_close(s->db);
	kt_close(s->dev);
}

static bool slot_open(struct kvmfr_dev *d, struct slot *s)
{
	memset(s, 0, sizeof(*s));
	s->db = -1;
	s->dev = kt_open(d);
	if (s->dev < 0)
		return false;
	s->db = kt_create(s->dev, 0, SLOT_OFF, SLOT_SIZE);
	if (s->db < 0) {
		kt_diag("KVMFR_DMABUF_CREATE(offset 0x%x, size 0x%x): %s",
			SLOT_OFF, SLOT_SIZE, kt_errname(errno));
		slot_close(s);
		return false;
	}
	s->map = kt_map(s->dev, SLOT_OFF, SLOT_SIZE);
	if (!s->map || !produce(s)) {
		slot_close(s);
		return false;
	}
	return true;
}

/* The frame the producer's last write put in the slot, from its seed */
static const uint8_t *written(const struct slot *s)
{
	static uint64_t slot[SLOT_SIZE / 8];

	kt_fill_at(slot, SLOT_OFF, SLOT_SIZE, s->seed);
	return (const uint8_t *)slot + FRAME_OFF;
}

static uint32_t egl_offset(void)
{
	return !strcmp(plant, "offset") ? FRAME_OFF + PITCH : FRAME_OFF;
}

/* ------------------------------------------------------------ tests */

static int import_exact(struct kvmfr_dev *d, uint32_t fourcc, bool alpha)
{
	static uint8_t rgba[WIDTH * HEIGHT * 4];
	int res = KT_FAIL;
	EGLImageKHR img;
	struct slot s;
	GLuint tex;

	if (!slot_open(d, &s))
		return KT_FAIL;
	img = import_frame(s.db, fourcc, egl_offset());
	if (img != EGL_NO_IMAGE_KHR) {
		tex = bind_image(img);
		if (tex && draw_and_read(rgba) &&
		    same_pixels(rgba, written(&s), alpha, "first frame"))
			res = KT_PASS;
		glDeleteTextures(1, &tex);
		destroy_image(dpy, img);
	}
	slot_close(&s);
	return res;
}

static int import_xrgb(struct kvmfr_dev *d)
{
	return import_exact(d, FMT_XRGB8888, false);
}

static int import_argb(struct kvmfr_dev *d)
{
	return import_exact(d, FMT_ARGB8888, true);
}

/*
 * The next frame, written into the same slot inside SYNC START/END while the
 * EGLImage and its texture live, is what the same texture samples next.
 */
static int next_frame(struct kvmfr_dev *d)
{
	static uint8_t rgba[WIDTH * HEIGHT * 4];
	int res = KT_FAIL;
	EGLImageKHR img;
	struct slot s;
	GLuint tex = 0;

	if (!slot_open(d, &s))
		return KT_FAIL;
	img = import_frame(s.db, FMT_XRGB8888, egl_offset());
	if (img == EGL_NO_IMAGE_KHR)
		goto out;
	tex = bind_image(img);
	if (!tex || !draw_and_read(rgba) ||
	    !same_pixels(rgba, written(&s), false, "first frame"))
		goto out_image;
	importer_diag(s.db);
	if (!strcmp(plant, "stale")) {
		/* the expected frame: what the producer would have written */
		uint64_t seed = kt_seed();
		static uint8_t want[SLOT_SIZE];

		kt_fill_at(want, SLOT_OFF, SLOT_SIZE, seed);
		if (draw_and_read(rgba) &&
		    same_pixels(rgba, want + FRAME_OFF, false, "next frame"))
			res = KT_PASS;
		goto out_image;
	}
	if (!produce(&s))
		goto out_image;
	if (draw_and_read(rgba) &&
	    same_pixels(rgba, written(&s), false, "next frame"))
		res = KT_PASS;
out_image:
	glDeleteTextures(1, &tex);
	destroy_image(dpy, img);
out:
	slot_close(&s);
	return res;
}

static const struct kt_case cases[] = {
	{ "XRGB8888 frame (dma-buf at device offset 1 MiB, plane offset 4096, pitch 1024 > 200 * 4) imported with EGL, sampled into an FBO, reads back pixel-exact (alpha 255)", import_xrgb, KT_ALL },
	{ "ARGB8888 frame imported with EGL reads back pixel-exact, alpha kept", import_argb, KT_ALL },
	{ "the producer's next frame in the same slot, written inside SYNC START/END, is what the same EGLImage samples next", next_frame, KT_ALL },
};

/*
 * A crash inside Mesa (a rasterizer thread, too) leaves GL unusable: the
 * test that was running fails with the step it was in, the rest with it.
 */
static void crashed(int sig)
{
	char msg[300];
	int n;

	n = snprintf(msg, sizeof(msg),
		     "# SIG%s during %s\nnot ok %d - %s (crashed; the remaining tests did not run)\n",
		     sig == SIGSEGV ? "SEGV" : "BUS", step, kt_ran + 1, case_label);
	if (write(STDOUT_FILENO, msg, n) < 0)
		_exit(3);
	_exit(1);
}

static void run_cases(void)
{
	static char label[400];
	struct sigaction sa;
	struct kvmfr_dev *d;
	size_t j;
	int i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = crashed;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	for (i = 0; i < kt_ndev; i++) {
		d = &kt_devs[i];
		for (j = 0; j < KT_ARRAY_SIZE(cases); j++) {
			snprintf(label, sizeof(label), "%s: %s", d->label, cases[j].name);
			case_label = label;
			if (!kt_resolve(d)) {
				kt_diag("%s: device not found", d->label);
				kt_report(KT_FAIL, "%s", label);
				continue;
			}
			kt_report(cases[j].fn(d), "%s", label);
		}
	}
}

int main(void)
{
	bool ok;

	plant = getenv("KVMFR_EGL_PLANT") ? getenv("KVMFR_EGL_PLANT") : "";
	kt_init();
	ok = egl_setup();
	if (no_egl[0]) {
		printf("1..0 # SKIP %s\n", no_egl);
		return 0;
	}
	kt_plan(1 + kt_count_cases(cases, KT_ARRAY_SIZE(cases)));
	kt_report(ok ? KT_PASS : KT_FAIL,
		  "EGL display with EGL_EXT_image_dma_buf_import, a surfaceless OpenGL ES 3 context and an RGBA8 framebuffer");
	if (!ok)
		return kt_exit();
	if (*plant)
		kt_diag("planted bug: %s", plant);
	run_cases();
	eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
	eglDestroyContext(dpy, ctx);
	eglTerminate(dpy);
	if (gbm && gbm_destroy)
		gbm_destroy(gbm);
	kt_close(gbm_fd);
	return kt_exit();
}
