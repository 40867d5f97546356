"""Reading the PNG photos ckptconv ships (``ckptconv/data/photos``), without an imaging library.

They are 8-bit RGB, non-interlaced, and each row uses filter type 0 (none) or 2 ("Up"), as
``tools/groundtruth/photos.py`` writes them: undoing "Up" is a sum down the rows, mod 256, so
decoding is zlib and numpy. A standard decoder (cv2, PIL) reads the same pixels; anything else is
refused rather than decoded wrong. torch-free.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import FormatError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 4096 * 4096


def _chunks(data: bytes, path: str):
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        (n,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        if len(body) != n or zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + n : pos + 12 + n] or b"\0\0\0\0")[0]:
            raise FormatError("a PNG chunk is truncated or fails its CRC", path=path)
        yield kind, body
        pos += 12 + n


def read_rgb(path: str | Path) -> np.ndarray:
    """The photo's pixels, H x W x 3 uint8 in RGB order (as PIL gives them; cv2.imread gives BGR)."""
    path = str(path)
    data = Path(path).read_bytes()
    if not data.startswith(SIGNATURE):
        raise FormatError("not a PNG file", path=path)
    chunks = list(_chunks(data, path))
    if not chunks or chunks[0][0] != b"IHDR":
        raise FormatError("a PNG file without its IHDR chunk", path=path)
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if (depth, colour, interlace) != (8, 2, 0) or not 0 < w * h <= MAX_PIXELS:
        raise FormatError(f"a {w}x{h} PNG of depth {depth}, colour type {colour}, interlace {interlace}; ckptconv reads 8-bit RGB, not interlaced", path=path)
    raw = np.frombuffer(zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT")), np.uint8)
    if raw.size != h * (1 + 3 * w):
        raise FormatError("the PNG's pixel data has the wrong size", path=path)
    rows = raw.reshape(h, 1 + 3 * w)
    if not np.isin(rows[:, 0], (0, 2)).all():
        raise FormatError("a PNG row uses a filter other than none or Up (ckptconv's photos use only those)", path=path)
    out, previous = np.empty((h, 3 * w), np.uint8), np.zeros(3 * w, np.uint8)
    for y in range(h):
        previous = out[y] = rows[y, 1:] + previous if rows[y, 0] == 2 else rows[y, 1:]
    return out.reshape(h, w, 3)
