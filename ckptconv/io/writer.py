"""Writing the two output formats, .pth (torch's zip) and safetensors, each tensor's bytes once.

Tensors the output holds unchanged from a zip input go straight from the input file to the output
(CRC-checked on the way), so a conversion never makes them resident: ``Copies`` names them by
output key, with the input record ``zipindex`` found for each. Everything else is written from
memory. Where the file goes and how it is published safely is ``files``.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..errors import FormatError, OutputError
from . import dtypes
from .spans import read_span, tensor_bytes, tensor_crc
from .zipindex import Span

COPY_CHUNK = 4 << 20


def compact(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor itself when it owns exactly its bytes, else a contiguous copy of just its values.

    torch.save writes whole storages: a view into a larger storage would drag the rest along.
    """
    storage = tensor.untyped_storage()
    if tensor.is_contiguous() and tensor.storage_offset() == 0 and storage.nbytes() == tensor.nbytes:
        return tensor
    return tensor.contiguous().clone()


@dataclass(frozen=True)
class Copies:
    """Output tensors whose bytes are an input record, unchanged: output key -> that record's span
    in ``path``, and the source key of each (to name a corrupt one)."""

    path: Path  # the name the input is read by (``Checkpoint.reads``)
    spans: dict[str, Span] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    shown: Path | None = None  # the input's name as the user gave it, for messages
    crcs: dict[str, int] = field(default_factory=dict)  # every output tensor's CRC-32, computed once (``with_crcs``)

    def with_crcs(self, tensors: dict[str, torch.Tensor]) -> Copies:
        """These copies, knowing the CRC-32 of every output tensor: a copied one's is its record's."""
        return replace(self, crcs={k: self.spans[k].crc if k in self.spans else tensor_crc(t) for k, t in tensors.items()})

    def corrupt(self, key: str) -> FormatError:
        return FormatError(
            f"tensor {self.names.get(key, key)}: its bytes fail the zip's CRC-32 check: the file is corrupt",
            fix="download or copy it again",
            path=str(self.shown or self.path),
        )


@dataclass
class Written:
    """How the output was written: which path ran, and how many tensors came from where."""

    method: str = ""  # zip-surgery | torch.save | safetensors-stream
    copied: int = 0  # tensors copied file to file
    from_memory: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "copied_from_input": self.copied, "from_memory": self.from_memory}


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        k = os.pwrite(fd, data, offset)
        data, offset = data[k:], offset + k


def _put(dst_fd: int, offset: int, key: str, t: torch.Tensor, src_fd: int | None, copies: Copies | None, done: Written, buf: bytearray) -> int:
    """Write one tensor's bytes at ``offset`` and return their CRC-32: copied from the input file (and
    checked) when ``copies`` names it, else from memory."""
    span = copies.spans.get(key) if copies is not None and src_fd is not None else None
    if span is not None:
        if read_span(src_fd, span, buf, str(copies.shown or copies.path), lambda chunk, at: _pwrite_all(dst_fd, chunk, offset + at)) != span.crc:
            raise copies.corrupt(key)
        done.copied += 1
        return span.crc
    data = tensor_bytes(t)
    _pwrite_all(dst_fd, data, offset)
    done.from_memory += 1
    return copies.crcs[key] if copies is not None and key in copies.crcs else zlib.crc32(data)


def _storages_in_order(sd: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """One (key, tensor) per distinct storage, in the order torch.save meets them."""
    out, seen = [], set()
    for key, t in sd.items():
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            out.append((key, t))
    return out


def _open_source(copies: Copies | None) -> int | None:
    return os.open(copies.path, os.O_RDONLY) if copies is not None and copies.spans else None


@dataclass(frozen=True)
class _Entry:
    name: str
    data_offset: int
    size: int
    crc_offsets: tuple[int, ...]  # where the CRC-32 is recorded: local header or data descriptor, and central directory


def _zip_entries(f: BinaryIO) -> list[_Entry]:
    """Each record of a freshly written zip with the positions of its CRC fields."""
    fd = f.fileno()
    with zipfile.ZipFile(f) as zf:
        infos = zf.infolist()
        cd_offset = zf.start_dir
    entries, pos = [], cd_offset
    for info in infos:
        fixed = os.pread(fd, 46, pos)
        if fixed[:4] != b"PK\x01\x02":
            raise OutputError("the zip torch.save wrote has an unexpected central directory")
        n, m, k = struct.unpack("<HHH", fixed[28:34])
        local = os.pread(fd, 30, info.header_offset)
        flags = struct.unpack("<H", local[6:8])[0]
        data_offset = info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30]))
        if flags & 0x08:  # data descriptor after the data, with or without its signature
            desc = data_offset + info.compress_size
            local_crc = desc + 4 if os.pread(fd, 4, desc) == b"PK\x07\x08" else desc
        else:
            local_crc = info.header_offset + 14
        entries.append(_Entry(info.filename, data_offset, info.file_size, (local_crc, pos + 16)))
        pos += 46 + n + m + k
    return entries


def write_pth(f: BinaryIO, obj: Any, sd: dict[str, torch.Tensor], copies: Copies | None = None) -> Written:
    """torch.save(obj) (whose tensors are those of ``sd``) with every tensor's bytes written once,
    straight from the input file where ``copies`` names them, so they never become resident.

    torch writes the zip's structure (pickle, record headers, alignment) with holes where storage
    bytes go (``skip_data``); the holes are then filled and each record's CRC-32 is set. If torch's
    layout is not the one expected, plain torch.save runs instead (and says so).
    """
    from torch.serialization import skip_data

    tensors = _storages_in_order(sd)
    with skip_data():
        torch.save(obj, f)
    f.flush()
    entries = sorted(
        (e for e in _zip_entries(f) if e.name.rsplit("/", 2)[-2:-1] == ["data"]), key=lambda e: int(e.name.rsplit("/", 1)[1])
    )
    if [e.size for e in entries] != [t.untyped_storage().nbytes() for _, t in tensors]:
        f.seek(0)
        f.truncate()
        torch.save(obj, f)
        return Written("torch.save", 0, len(tensors))
    done, fd, src_fd = Written("zip-surgery"), f.fileno(), _open_source(copies)
    try:
        buf = bytearray(COPY_CHUNK)
        for entry, (key, t) in zip(entries, tensors):
            crc = _put(fd, entry.data_offset, key, t, src_fd, copies, done, buf)
            for at in entry.crc_offsets:
                os.pwrite(fd, struct.pack("<I", crc), at)
    finally:
        if src_fd is not None:
            os.close(src_fd)
    f.seek(0, os.SEEK_END)
    return done


def write_safetensors(f: BinaryIO, tensors: dict[str, torch.Tensor], metadata: dict[str, str], copies: Copies | None = None) -> Written:
    """Stream a safetensors file: header first, then each tensor's bytes once, in order; tensors that
    ``copies`` names come straight from the input file (CRC-checked on the way), the rest from memory.

    Values are written as the machine holds them, which must be little-endian as the format is.
    """
    if sys.byteorder != "little":
        raise OutputError("safetensors output needs a little-endian machine")
    bad = {k: type(v).__name__ for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad:
        raise TypeError(f"safetensors metadata must be str -> str; got {bad}")
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, t in tensors.items():
        code = dtypes.safetensors_code(t.dtype)
        if code is None:
            raise OutputError(f"{name}: dtype {t.dtype} has no safetensors equivalent")
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    f.write(len(raw).to_bytes(8, "little"))
    f.write(raw)
    f.flush()
    start, done, src_fd = f.tell(), Written("safetensors-stream"), _open_source(copies)
    buf = bytearray(COPY_CHUNK)
    try:
        for name, t in tensors.items():
            if t.nbytes:
                _put(f.fileno(), start + header[name]["data_offsets"][0], name, t, src_fd, copies, done, buf)
    finally:
        if src_fd is not None:
            os.close(src_fd)
    f.seek(start + offset)
    return done
