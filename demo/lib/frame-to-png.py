#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""frame-to-png.py EXPORT_FILE OUT.png

Read the frame the demo client exported into a kvmfr device (the backing file
of level 1's export ivshmem device): a struct demo_export (demo_frame.h) at
offset 0, XRGB8888 pixels at offset 4096. Write it as an 8-bit RGB PNG and
print "seq=N session=N width=W height=H checksum_ok=0|1".
"""
import struct
import sys
import zlib

EXPORT_MAGIC = 0x5852464B      # "KFRX"
FMT_XRGB8888 = 0x34325258      # "XR24"
PAGE = 4096
HDR = struct.Struct("<6IQQ")   # magic format width height pitch session seq checksum


def checksum(data):
    """demo_checksum(): FNV-1a over little-endian 64-bit words."""
    h = 0xCBF29CE484222325
    for (w,) in struct.iter_unpack("<Q", data):
        h = ((h ^ w) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def png_chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        head = f.read(PAGE)
        magic, fmt, width, height, pitch, session, seq, csum = HDR.unpack_from(head)
        if magic != EXPORT_MAGIC:
            sys.exit(f"frame-to-png: no exported frame in {src} (magic {magic:#x})")
        if fmt != FMT_XRGB8888 or not width or not height or pitch < width * 4:
            sys.exit(f"frame-to-png: unexpected frame {width}x{height} pitch {pitch} format {fmt:#x}")
        pixels = f.read(height * pitch)
    if len(pixels) != height * pitch:
        sys.exit(f"frame-to-png: {src} is too short for {width}x{height}")

    raw = bytearray()
    for y in range(height):
        row = pixels[y * pitch:y * pitch + width * 4]
        rgb = bytearray(width * 3)
        rgb[0::3] = row[2::4]      # XRGB8888 is B, G, R, X in memory
        rgb[1::3] = row[1::4]
        rgb[2::3] = row[0::4]
        raw += b"\0" + rgb         # filter type 0 (none)

    png = b"\x89PNG\r\n\x1a\n"
    png += png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += png_chunk(b"IDAT", zlib.compress(bytes(raw), 6))
    png += png_chunk(b"IEND", b"")
    with open(out, "wb") as f:
        f.write(png)
    ok = int(checksum(pixels) == csum) if pitch * height % 8 == 0 else 0
    print(f"seq={seq} session={session} width={width} height={height} checksum_ok={ok}")


if __name__ == "__main__":
    main()
