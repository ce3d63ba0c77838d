#!/usr/bin/env python3
"""Draws the app icons in www/icons/ (run from anywhere: python3 scripts/make_icons.py).

A street scene in the page's CamVid class colours: sky, buildings, a tree, a pole, the
pavement, the road with its centre line, and a car. Plain Python (zlib + struct), so the
PNGs can be redrawn without an image library; the output is byte-for-byte reproducible.
"""

import os
import struct
import zlib

# The class colours of src/model/weights.rs.
SKY = (128, 128, 128)
BUILDING = (128, 0, 0)
POLE = (192, 192, 128)
ROAD = (128, 64, 128)
PAVEMENT = (60, 40, 222)
TREE = (128, 128, 0)
CAR = (64, 0, 128)
BACKGROUND = (17, 17, 17)  # the page's #111

HORIZON = 0.56
VANISH = (0.5, 0.47)


def scene(x, y):
    """The colour at (x, y) in the unit square, y down."""
    # The car, in front of everything; its windows are the page background.
    if 0.57 <= x <= 0.85 and 0.70 <= y <= 0.86:
        if 0.62 <= x <= 0.80 and 0.72 <= y <= 0.77:
            return BACKGROUND
        return CAR
    if 0.60 <= x <= 0.82 and 0.64 <= y <= 0.70:
        return CAR
    if y >= HORIZON:
        # The road: a trapezoid towards the vanishing point, its centre line dashed.
        t = (y - VANISH[1]) / (1 - VANISH[1])
        half = 0.04 + 0.50 * t
        if abs(x - 0.5) <= half:
            line = 0.004 + 0.018 * t
            if abs(x - 0.5) <= line and int((y - HORIZON) * 60 * (1.2 - 0.6 * t)) % 3 != 2:
                return POLE
            return ROAD
        return PAVEMENT
    # The pole and its lamp.
    if 0.255 <= x <= 0.275 and 0.20 <= y:
        return POLE
    if 0.255 <= x <= 0.36 and 0.20 <= y <= 0.22:
        return POLE
    # The tree: a crown on a short trunk.
    if (x - 0.40) ** 2 + (y - 0.40) ** 2 <= 0.085**2:
        return TREE
    if 0.39 <= x <= 0.41 and y >= 0.40:
        return BUILDING
    # Buildings along both sides of the street.
    if x <= 0.22 and y >= 0.16:
        return BUILDING
    if 0.14 <= x <= 0.33 and y >= 0.30:
        return BUILDING
    if x >= 0.72 and y >= 0.10:
        return BUILDING
    if 0.58 <= x <= 0.76 and y >= 0.27:
        return BUILDING
    return SKY


def rounded_square(x, y, r):
    """Whether (x, y) lies in the unit square with corners rounded by radius r."""
    cx = min(max(x, r), 1 - r)
    cy = min(max(y, r), 1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def draw(size, corner):
    """RGBA rows of the scene, corners rounded by `corner` (0: full bleed), 4x4 samples a
    pixel."""
    n = 4
    rows = []
    for py in range(size):
        row = bytearray()
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(n):
                for sx in range(n):
                    x = (px + (sx + 0.5) / n) / size
                    y = (py + (sy + 0.5) / n) / size
                    if corner and not rounded_square(x, y, corner):
                        continue
                    c = scene(x, y)
                    acc[0] += c[0]
                    acc[1] += c[1]
                    acc[2] += c[2]
                    acc[3] += 255
            a = acc[3] // (n * n)
            if a == 0:
                row += bytes(4)
            else:
                # Colour averaged over the covered samples only (no dark fringe).
                cover = acc[3] // 255
                row += bytes((acc[0] // cover, acc[1] // cover, acc[2] // cover, a))
        rows.append(bytes(row))
    return rows


def png(size, rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + r for r in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "www", "icons")
    os.makedirs(out, exist_ok=True)
    icons = {
        # "any": the scene on a rounded square, transparent corners.
        "icon-192.png": (192, 0.18),
        "icon-512.png": (512, 0.18),
        # "maskable": full bleed; the launcher crops it to its own shape (at least the centre
        # circle of 80% stays), and a street scene reads the same with its edges cut.
        "icon-maskable-512.png": (512, 0.0),
        # iOS rounds the corners itself and shows transparency as black.
        "apple-touch-icon.png": (180, 0.0),
    }
    for name, (size, corner) in icons.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(png(size, draw(size, corner)))
        print(name)


if __name__ == "__main__":
    main()
