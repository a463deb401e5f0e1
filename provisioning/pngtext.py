"""Just enough raster graphics for a printable PNG label without Pillow: a 5x7 bitmap font, a 1-bit
canvas and a PNG encoder (zlib + CRC from the standard library)."""

from __future__ import annotations

import struct
import zlib

# 5x7 glyphs, one string per row, '#' = ink. Upper case only: labels are printed in capitals.
_FONT_ROWS: dict[str, str] = {
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "###.. #..#. #...# #...# #...# #..#. ###..",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "-": "..... ..... ..... ##### ..... ..... .....",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    "/": "....# ....# ...#. ..#.. .#... #.... #....",
    " ": "..... ..... ..... ..... ..... ..... .....",
}
FONT: dict[str, list[str]] = {c: rows.split() for c, rows in _FONT_ROWS.items()}
GLYPH_W, GLYPH_H, ADVANCE = 5, 7, 6  # pixels at scale 1; ADVANCE includes one column of space


class Canvas:
    """A 1-bit image, white by default; ``ink[y][x]`` is True for black."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.ink = [[False] * width for _ in range(height)]

    def fill(self, x: int, y: int, w: int, h: int) -> None:
        for yy in range(max(0, y), min(self.height, y + h)):
            row = self.ink[yy]
            for xx in range(max(0, x), min(self.width, x + w)):
                row[xx] = True

    def text(self, x: int, y: int, text: str, scale: int) -> int:
        """Draw ``text`` (upper-cased; unknown characters as spaces) with its top-left at (x, y); returns
        the x after the last character."""
        for ch in text.upper():
            glyph = FONT.get(ch, FONT[" "])
            for gy, row in enumerate(glyph):
                for gx, c in enumerate(row):
                    if c == "#":
                        self.fill(x + gx * scale, y + gy * scale, scale, scale)
            x += ADVANCE * scale
        return x

    def matrix(self, x: int, y: int, modules: list[list[bool]], scale: int) -> None:
        for r, row in enumerate(modules):
            for c, dark in enumerate(row):
                if dark:
                    self.fill(x + c * scale, y + r * scale, scale, scale)

    def png(self, dpi: int | None = None) -> bytes:
        """Encode as a 1-bit greyscale PNG (0 = black), with the print resolution when given."""
        raw = bytearray()
        for row in self.ink:
            raw.append(0)  # filter: none
            byte, nbits = 0, 0
            for dark in row:
                byte = (byte << 1) | (0 if dark else 1)
                nbits += 1
                if nbits == 8:
                    raw.append(byte)
                    byte, nbits = 0, 0
            if nbits:
                raw.append(byte << (8 - nbits) | ((1 << (8 - nbits)) - 1))

        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

        out = b"\x89PNG\r\n\x1a\n" + chunk(
            b"IHDR", struct.pack(">IIBBBBB", self.width, self.height, 1, 0, 0, 0, 0)
        )
        if dpi:
            ppm = round(dpi / 0.0254)
            out += chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))
        return out + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")
