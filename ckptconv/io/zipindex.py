"""What a torch zip checkpoint holds where: each record's span and CRC-32, and each tensor's record.

torch.load neither checks the zip's CRC-32s nor says which record a tensor came from. This module
reads the zip's central directory (checking every record against its local header, refusing
compressed records, which torch never writes) and reads ``data.pkl`` a second time with an inert
unpickler: one that builds no object but plain containers and records, for every tensor, the zip
record holding its bytes. Nothing in the pickle is ever called; an unknown global only means the
tensors' records stay unknown (and the writer then takes the plain path).
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FormatError

ZIP_MAGIC = b"PK\x03\x04"
MAX_PICKLE = 256 << 20  # bytes of data.pkl the index reads; torch's own are kilobytes
STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool",
}


@dataclass(frozen=True)
class Span:
    """Where a record's data lies in the file, with its CRC-32."""

    offset: int
    nbytes: int
    crc: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor as data.pkl describes it: its storage's record and its view of that storage."""

    record: str
    dtype: str
    offset: int  # in elements
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def whole_storage_contiguous(self) -> bool:
        expected, step = [], 1
        for size in reversed(self.shape):
            expected.append(step)
            step *= size
        return self.offset == 0 and tuple(reversed(expected)) == tuple(self.stride)


@dataclass(frozen=True)
class ZipIndex:
    records: dict[str, Span]
    byteorder: str
    tree: Any  # data.pkl's object graph with TensorRef leaves; None when it could not be read inertly

    def top_level(self) -> list[Span]:
        """The records of tensors at the top level of the pickled object (a number saved as a tensor)."""
        node = self.tree if isinstance(self.tree, dict) else {}
        return [self.records[v.record] for v in node.values() if isinstance(v, TensorRef) and v.record in self.records]

    def refs(self, path: tuple[str, ...]) -> dict[str, TensorRef]:
        """The TensorRefs of the state dict at ``path`` in the pickled object ({} if unknown)."""
        node = self.tree
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return {}
        return {k: v for k, v in node.items() if isinstance(k, str) and isinstance(v, TensorRef)}


def _local_span(fd: int, info: zipfile.ZipInfo, name: str) -> Span:
    header = os.pread(fd, 30, info.header_offset)  # not f.read: that would buffer 8 KB per record
    if len(header) != 30 or header[:4] != ZIP_MAGIC:
        raise FormatError(f"zip record {info.filename} has no local header", path=name)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    if os.pread(fd, name_len, info.header_offset + 30) != info.filename.encode("utf-8"):
        raise FormatError(f"zip record {info.filename}: its local header names another record (a crafted zip)", path=name)
    if info.compress_type != zipfile.ZIP_STORED:
        raise FormatError(f"zip record {info.filename} is compressed; torch never compresses its records", path=name)
    return Span(info.header_offset + 30 + name_len + extra_len, info.file_size, info.CRC)


def read_index(path: Path, reads: Path | None = None) -> ZipIndex:
    """Check the zip's structure and data.pkl's CRC, then index every record and tensor (read by
    ``reads``, an ``Opened`` file's name, when given; ``path`` is the name messages give)."""
    try:
        with zipfile.ZipFile(reads or path) as zf, (reads or path).open("rb") as f:
            infos = zf.infolist()
            pkl = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
            if len(pkl) != 1:
                raise FormatError("a zip file, but not one torch.save wrote (no data.pkl)", path=str(path))
            records = {i.filename: _local_span(f.fileno(), i, str(path)) for i in infos}
            if pkl[0].file_size > MAX_PICKLE:
                raise FormatError(f"data.pkl is {pkl[0].file_size} bytes; torch writes kilobytes", path=str(path))
            raw = zf.read(pkl[0])  # raises BadZipFile on a CRC mismatch
            root = pkl[0].filename[: -len("data.pkl")]
            byteorder = zf.read(root + "byteorder").decode("ascii", "replace") if root + "byteorder" in records else "little"
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - zipfile raises many types on corrupt bytes (BadZipFile, UnicodeDecodeError, ...)
        raise FormatError(f"truncated or corrupt zip checkpoint ({type(e).__name__}: {e})", fix="download or copy it again", path=str(path)) from None
    return ZipIndex(records, byteorder, _scan(raw, root))


class _Storage:
    def __init__(self, key: str, dtype: str):
        self.key, self.dtype = key, dtype


class _Dict(dict):
    """OrderedDict's stand-in: a dict that takes the attributes (``_metadata``) pickle sets on it."""


class _Unknown(Exception):
    pass


def _rebuild_tensor(storage, offset, shape, stride, *args, **kwargs):
    if not isinstance(storage, _Storage):
        raise _Unknown
    return TensorRef(storage.key, storage.dtype, int(offset), tuple(shape), tuple(stride))


def _first(data, *args, **kwargs):  # _rebuild_parameter(data, requires_grad, hooks): the tensor itself
    return data


def _from_type(func, new_type, args, state):  # _rebuild_from_type_v2: rebuild with func(*args)
    return func(*args)


_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _first,
    ("torch._utils", "_rebuild_parameter_with_state"): _first,
    ("torch._tensor", "_rebuild_from_type_v2"): _from_type,
    ("collections", "OrderedDict"): _Dict,
}


class _InertUnpickler(pickle.Unpickler):
    """Builds plain containers and TensorRefs only; any other global stops the scan."""

    def __init__(self, raw: bytes | io.BufferedIOBase, root: str):
        super().__init__(io.BytesIO(raw) if isinstance(raw, bytes) else raw)
        self.root = root

    def find_class(self, module: str, name: str):
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        raise _Unknown

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[2], str)):
            raise _Unknown
        dtype = pid[1] if isinstance(pid[1], str) else None
        if dtype is None:
            raise _Unknown
        return _Storage(f"{self.root}data/{pid[2]}", dtype)


LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy (torch < 1.6) file


def legacy_tree(path: Path) -> Any:
    """The object graph of a legacy (torch < 1.6) checkpoint, read as inertly as data.pkl is: its
    magic number, protocol and sys_info, then the pickle of the object, tensors as TensorRefs (their
    bytes follow the pickle and are never read). None when it cannot be read so."""
    try:
        with path.open("rb") as f:
            magic, _, info = (_InertUnpickler(f, "").load() for _ in range(3))
            if magic != LEGACY_MAGIC_NUMBER or not isinstance(info, dict):
                return None
            return _InertUnpickler(f, "").load()
    except Exception:  # noqa: BLE001 - an unreadable pickle only means: judged by a worker, with torch
        return None


def _scan(raw: bytes, root: str) -> Any:
    try:
        return _InertUnpickler(raw, root).load()
    except Exception:  # noqa: BLE001 - an unreadable pickle only means: no record for any tensor
        return None
