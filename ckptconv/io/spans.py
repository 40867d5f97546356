"""Bytes of tensors and of file spans, and their CRC-32s: the one reader of a span (checking a
record, hashing an index's tensors, copying a record file to file) and the one CRC of a tensor."""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable

import torch

from ..errors import FormatError
from .zipindex import Span

Sink = Callable[[memoryview, int], None]  # (chunk, its offset within the span)


def read_span(fd: int, span: Span, buf: bytearray, name: str = "", sink: Sink | None = None) -> int:
    """CRC-32 of a file span, read through ``buf`` (the page cache serves it; nothing stays mapped),
    each chunk handed to ``sink`` on the way (a copy writes it out: one read, one write)."""
    view = memoryview(buf)
    crc, pos, end = 0, span.offset, span.offset + span.nbytes
    while pos < end:
        n = os.preadv(fd, [view[: min(len(view), end - pos)]], pos)
        if n <= 0:
            raise FormatError("truncated zip checkpoint: a record ends past the end of the file", fix="download or copy it again", path=name)
        crc = zlib.crc32(view[:n], crc)
        if sink is not None:
            sink(view[:n], pos - span.offset)
        pos += n
    return crc


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The tensor's bytes in memory, as the machine holds them (contiguous tensors: no copy)."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data


def tensor_crc(t: torch.Tensor) -> int:
    """CRC-32 of a tensor's bytes, as a zip record of it holds them."""
    return zlib.crc32(tensor_bytes(t))
