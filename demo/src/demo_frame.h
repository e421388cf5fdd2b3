/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kvmfr end-to-end demo: what the frame producer (in the VM, "level 2")
 * and the client (on the host, "level 1") agree on.
 *
 * Device layout, like the Looking Glass producer's: page 0 holds the control
 * block below, the pixels of the two frame slots start at page-aligned (in
 * fact 1 MiB-aligned) offsets after it, so each slot can be exported as a
 * dma-buf of its own.
 *
 * Handshake, all in the shared memory, polled with short sleeps:
 *  - The client zeroes the device, writes the session number, frame count
 *    and size into the control block and then, last, ctrl->ready =
 *    DEMO_READY(session) with release ordering.
 *  - The producer of that session waits for that value (a value naming
 *    another session, left over or from another VM mapping the device, or
 *    0 while the client rewrites the block, is no go-ahead). Frame seq (1, 2, ...) goes into slot
 *    seq % 2, and only once ctrl->ack >= seq - 2, that is once the client is
 *    done with the frame that used that slot before. It writes the pixels
 *    and the slot header, then stores slot->seq and ctrl->published = seq
 *    with release ordering.
 *  - The client waits for ctrl->published >= seq, checks the slot, reads the
 *    frame through the device mapping and through a dma-buf, and stores
 *    ctrl->ack = seq. No frame can be overwritten before it was checked, so
 *    none can be lost.
 *  - After the last ack, if the VM has an edu device (the stand-in for the
 *    GPU assigned with VFIO), the producer has it copy the first
 *    DEMO_DMA_BYTES of the last frame by DMA, device to edu to device, to
 *    DEMO_DMA_OFFSET, and
 *    stores ctrl->dma_seq; both DMAs go through the IOMMU mapping that the
 *    host's QEMU set up for the ivshmem BAR, i.e. the long-term pinned
 *    /dev/kvmfr0 pages.
 *  - Then the producer stores ctrl->producer = DONE and never touches the
 *    device again; the client waits for that (and checks the DMA copy)
 *    before it starts the next session.
 *
 * The picture is a pure function of (seq, width, height), so the client can
 * regenerate it and compare every byte, on top of the producer's checksum.
 */
#ifndef DEMO_FRAME_H
#define DEMO_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define DEMO_CTRL_MAGIC		0x4446524bu	/* "KRFD" */
#define DEMO_READY(session)	((uint64_t)DEMO_CTRL_MAGIC << 32 | (session))
#define DEMO_FRAME_MAGIC	0x4d52464bu	/* "KFRM" */
#define DEMO_EXPORT_MAGIC	0x5852464bu	/* "KFRX" */
#define DEMO_FMT_XRGB8888	0x34325258u	/* DRM fourcc "XR24" */

#define DEMO_SLOTS		2
#define DEMO_SLOT_ALIGN		(1u << 20)
#define DEMO_PAGE_SIZE		4096u
#define DEMO_DMA_OFFSET		(16u << 20)	/* edu's copy of a frame page */
/* QEMU 7.2's edu rejects (and aborts QEMU on) a full 4096-byte transfer */
#define DEMO_DMA_BYTES		4095u

enum demo_producer_state {
	DEMO_PRODUCER_NONE,
	DEMO_PRODUCER_RUNNING,
	DEMO_PRODUCER_DONE,
	DEMO_PRODUCER_FAILED,
};

struct demo_frame_hdr {
	uint32_t magic;		/* DEMO_FRAME_MAGIC */
	uint32_t format;	/* DEMO_FMT_XRGB8888 */
	uint64_t seq;		/* stored last, with release ordering */
	uint32_t width;
	uint32_t height;
	uint32_t pitch;		/* bytes per row */
	uint32_t session;
	uint64_t offset;	/* of the pixels in the device, page aligned */
	uint64_t checksum;	/* demo_checksum() of height * pitch bytes */
};

/* At offset 0 of the device. */
struct demo_ctrl {
	uint64_t ready;		/* client: DEMO_READY(session), stored last */
	uint32_t session;	/* client */
	uint32_t frames;	/* client: how many frames to send */
	uint32_t width;		/* client */
	uint32_t height;	/* client */
	uint32_t producer;	/* producer: enum demo_producer_state */
	uint32_t reserved;
	uint64_t published;	/* producer: newest complete frame */
	uint64_t ack;		/* client: newest frame it is done with */
	uint64_t dma_seq;	/* producer: frame whose first page the VM's */
	uint64_t dma_offset;	/* assigned edu copied here by DMA (0: none) */
	struct demo_frame_hdr slot[DEMO_SLOTS];
};

/* At offset 0 of the export device; the pixels follow at DEMO_PAGE_SIZE. */
struct demo_export {
	uint32_t magic;		/* DEMO_EXPORT_MAGIC, stored last */
	uint32_t format;
	uint32_t width;
	uint32_t height;
	uint32_t pitch;
	uint32_t session;
	uint64_t seq;
	uint64_t checksum;
};

static inline uint64_t demo_align(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

static inline uint64_t demo_frame_bytes(uint32_t width, uint32_t height)
{
	return (uint64_t)width * 4 * height;
}

/* Offset of a slot's pixels in the device. */
static inline uint64_t demo_slot_offset(unsigned int slot, uint32_t width,
					uint32_t height)
{
	return DEMO_SLOT_ALIGN +
	       slot * demo_align(demo_frame_bytes(width, height), DEMO_SLOT_ALIGN);
}

/* Device size the layout needs. */
static inline uint64_t demo_layout_bytes(uint32_t width, uint32_t height)
{
	return demo_slot_offset(DEMO_SLOTS, width, height);
}

/* FNV-1a over 64-bit words; len is a multiple of 8. */
static inline uint64_t demo_checksum(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		h ^= w[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* ------------------------------------------------------------------------
 * The picture: eight bands of scrolling colour bars, a bouncing square, a
 * caption and the frame number in a 5x7 bitmap font of our own.
 */

struct demo_glyph {
	char c;
	uint8_t rows[7];	/* bit 4 is the leftmost column */
};

static const struct demo_glyph demo_font[] = {
	{ '0', { 0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e } },
	{ '1', { 0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e } },
	{ '2', { 0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f } },
	{ '3', { 0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e } },
	{ '4', { 0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02 } },
	{ '5', { 0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e } },
	{ '6', { 0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e } },
	{ '7', { 0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08 } },
	{ '8', { 0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e } },
	{ '9', { 0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c } },
	{ 'A', { 0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11 } },
	{ 'D', { 0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c } },
	{ 'E', { 0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f } },
	{ 'F', { 0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10 } },
	{ 'K', { 0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11 } },
	{ 'M', { 0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11 } },
	{ 'O', { 0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e } },
	{ 'R', { 0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11 } },
	{ 'V', { 0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04 } },
	{ ' ', { 0, 0, 0, 0, 0, 0, 0 } },
};

static inline const uint8_t *demo_glyph_rows(char c)
{
	size_t i;

	for (i = 0; i < sizeof(demo_font) / sizeof(demo_font[0]); i++)
		if (demo_font[i].c == c)
			return demo_font[i].rows;
	return demo_font[sizeof(demo_font) / sizeof(demo_font[0]) - 1].rows;
}

static inline void demo_fill_rect(uint32_t *px, uint32_t stride, uint32_t w,
				  uint32_t h, int x0, int y0, int rw, int rh,
				  uint32_t colour)
{
	int x, y;

	for (y = y0 < 0 ? 0 : y0; y < y0 + rh && y < (int)h; y++)
		for (x = x0 < 0 ? 0 : x0; x < x0 + rw && x < (int)w; x++)
			px[(size_t)y * stride + x] = colour;
}

/* Text at (x0, y0), each font pixel drawn as a scale x scale square. */
static inline void demo_draw_text(uint32_t *px, uint32_t stride, uint32_t w,
				  uint32_t h, int x0, int y0, int scale,
				  const char *s, uint32_t colour)
{
	int gx, gy;

	for (; *s; s++, x0 += 6 * scale) {
		const uint8_t *rows = demo_glyph_rows(*s);

		for (gy = 0; gy < 7; gy++)
			for (gx = 0; gx < 5; gx++)
				if (rows[gy] & (0x10 >> gx))
					demo_fill_rect(px, stride, w, h,
						       x0 + gx * scale,
						       y0 + gy * scale,
						       scale, scale, colour);
	}
}

static inline uint32_t demo_scale_rgb(uint32_t rgb, uint32_t num, uint32_t den)
{
	uint32_t r = (rgb >> 16 & 0xff) * num / den;
	uint32_t g = (rgb >> 8 & 0xff) * num / den;
	uint32_t b = (rgb & 0xff) * num / den;

	return r << 16 | g << 8 | b;
}

/*
 * One row of band b: eight colour bars, each shaded from full to 5/8
 * brightness, repeated twice so that any window of w pixels can be copied.
 * row has room for 2 * w pixels.
 */
static inline void demo_band_row(uint32_t *row, uint32_t w, unsigned int b)
{
	static const uint32_t bars[8] = {
		0xffffff, 0xffff00, 0x00ffff, 0x00ff00,
		0xff00ff, 0xff0000, 0x0000ff, 0x303030,
	};
	uint32_t x, bar_w = w / 8 ? w / 8 : 1;

	for (x = 0; x < w; x++) {
		uint32_t bar = x / bar_w % 8, in = x % bar_w;
		uint32_t level = 8 * bar_w - 3 * in;	/* 8/8 .. 5/8 */

		row[x] = demo_scale_rgb(bars[(bar + b) % 8],
					level * (b % 2 ? 3 : 4),
					8 * bar_w * 4);
		row[x + w] = row[x];
	}
}

/*
 * Draw frame seq into px (stride in pixels). rows is scratch space for
 * 8 * 2 * w pixels. The result only depends on (seq, w, h).
 */
static inline void demo_draw_frame(uint32_t *px, uint32_t stride, uint32_t w,
				   uint32_t h, uint64_t seq, uint32_t *rows)
{
	uint32_t band_h = h / 8 ? h / 8 : 1;
	unsigned int b;
	uint64_t shift;
	uint32_t y;
	char num[24];
	int i, n, box, bx, by, span;

	for (b = 0; b < 8; b++)
		demo_band_row(rows + (size_t)b * 2 * w, w, b);

	/* band b scrolls by (b + 1) * 3 pixels per frame, odd bands leftwards */
	for (y = 0; y < h; y++) {
		b = y / band_h < 8 ? y / band_h : 7;
		shift = seq * (b + 1) * 3 % w;

		if (b % 2)
			shift = w - shift;
		memcpy(px + (size_t)y * stride,
		       rows + (size_t)b * 2 * w + shift % w, (size_t)w * 4);
	}

	/* a square bouncing between the edges */
	box = (int)(h / 6) ? (int)(h / 6) : 1;
	span = (int)w - box > 0 ? (int)w - box : 1;
	bx = (int)(seq * 7 % (2 * span));
	if (bx >= span)
		bx = 2 * span - bx;
	span = (int)h - box > 0 ? (int)h - box : 1;
	by = (int)(seq * 5 % (2 * span));
	if (by >= span)
		by = 2 * span - by;
	demo_fill_rect(px, stride, w, h, bx, by, box, box, 0xffffff);
	demo_fill_rect(px, stride, w, h, bx + box / 4, by + box / 4,
		       box / 2, box / 2, 0x000000);

	/* caption and frame number on a black panel */
	n = 0;
	do {
		num[n++] = '0' + seq % 10;
		seq /= 10;
	} while (seq && n < (int)sizeof(num) - 1);
	for (i = 0; i < n / 2; i++) {
		char c = num[i];

		num[i] = num[n - 1 - i];
		num[n - 1 - i] = c;
	}
	num[n] = 0;
	demo_fill_rect(px, stride, w, h, 8, 8, 6 * 3 * 10 + 8, 7 * 3 + 8,
		       0x000000);
	demo_draw_text(px, stride, w, h, 12, 12, 3, "KVMFR DEMO", 0xffffff);
	demo_fill_rect(px, stride, w, h, 8, 8 + 7 * 3 + 8 + 4,
		       6 * 6 * n + 8, 7 * 6 + 8, 0x000000);
	demo_draw_text(px, stride, w, h, 12, 8 + 7 * 3 + 8 + 8, 6, num,
		       0xffff00);
}

#endif
