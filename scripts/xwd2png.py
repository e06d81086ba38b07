#!/usr/bin/env python3
"""An X window dump (xwd -root, 24/32-bit TrueColor) to PNG, with the standard library only:
scripts/tauri-sample.sh's screenshots. Usage: xwd2png.py IN.xwd OUT.png"""
import struct
import sys
import zlib


def main(src, dst):
    data = open(src, "rb").read()
    fields = struct.unpack(">25I", data[:100])
    header_size, _, _, depth, width, height = fields[:6]
    byte_order, bpp, bytes_per_line = fields[7], fields[11], fields[12]
    red_mask, green_mask, blue_mask = fields[14:17]
    ncolors = fields[19]
    if bpp not in (24, 32):
        raise SystemExit(f"{src}: {bpp} bits per pixel, expected 24 or 32 (depth {depth})")
    offset = header_size + 12 * ncolors
    step = bpp // 8
    order = "little" if byte_order == 0 else "big"

    def shift(mask):
        return (mask & -mask).bit_length() - 1

    shifts = [shift(m) for m in (red_mask, green_mask, blue_mask)]
    rows = bytearray()
    for y in range(height):
        line = data[offset + y * bytes_per_line: offset + (y + 1) * bytes_per_line]
        rows.append(0)
        for x in range(width):
            pixel = int.from_bytes(line[x * step:(x + 1) * step], order)
            rows += bytes(((pixel & m) >> s) & 0xFF for m, s in zip((red_mask, green_mask, blue_mask), shifts))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(bytes(rows), 6)) + chunk(b"IEND", b"")
    open(dst, "wb").write(png)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
