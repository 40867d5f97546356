"""Writing outputs: atomically (temp file in the same directory, fsync, rename) in .pth or safetensors.

A crash or Ctrl-C never leaves a half-written output under the final name: the previous file stays
intact until the new one is complete. Leftover temp files are named ``.ckptconv-tmp-<pid>-...`` and
the next run into the same directory removes those whose process is gone.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import struct
import sys
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from .checkpoint import Span
from .errors import FormatError, OutputError, UsageError

TMP_PREFIX = ".ckptconv-tmp-"
COPY_CHUNK = 4 << 20
FORMATS = {".pth": "pth", ".pt": "pth", ".pyth": "pth", ".safetensors": "safetensors"}
# safetensors dtype names
ST_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}  # fmt: skip


def output_format(path: Path) -> str:
    """``pth`` or ``safetensors`` from the extension; anything else is a usage error."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot tell the output format from the extension {path.suffix or '(none)'!r}",
            fix="name the output .pth (torch; .pt and pycls's .pyth too) or .safetensors",
            path=str(path),
        )
    return fmt


def check_output(out: Path, sources: list[Path], force: bool) -> None:
    """Refuse before reading anything: existing output without --force, output == input, bad directory."""
    out_dir = out.parent if str(out.parent) else Path(".")
    if not out_dir.is_dir():
        raise UsageError(f"output directory {str(out_dir)!r} does not exist", fix="create it first", path=str(out))
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UsageError(f"output directory {str(out_dir)!r} is not writable", fix="choose another --out/--out-dir", path=str(out))
    if out.is_dir():
        raise UsageError("the output is a directory", fix="give a file name ending in .pth or .safetensors", path=str(out))
    for src in sources:
        if same_file(out, src):
            raise UsageError(
                f"the output is the input {str(src)!r} (same path, a symlink or a hard link to it)",
                fix="write to another file; ckptconv never overwrites its input, even with --force",
                path=str(out),
            )
    if out.exists() and not force:
        raise UsageError("the output exists", fix="pass --force to replace it (the old file stays until the new one is complete)", path=str(out))


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def clean_stale_temps(directory: Path) -> list[Path]:
    """Remove temp files left by ckptconv processes that no longer exist; return what was removed."""
    removed = []
    for tmp in directory.glob(f"{TMP_PREFIX}*"):
        try:
            pid = int(tmp.name[len(TMP_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PendingWrite:
    """An output written to a temp file beside its final name, published by ``commit()`` only.

    ``write()`` may run in a background thread while the caller verifies; ``abort()`` removes the
    temp file whatever state the write is in. Errors while writing become ``OutputError``s.
    """

    def __init__(self, path: Path):
        self.path = path
        self.directory = path.parent if str(path.parent) else Path(".")
        clean_stale_temps(self.directory)
        self.tmp = self.directory / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}"
        self.size = 0
        self.cancelled = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, write: Callable[[BinaryIO], None]) -> int:
        if self.cancelled:
            raise OutputError("the write was cancelled", path=str(self.path))
        try:
            with open(self.tmp, "x+b") as f:  # readable too: the pth writer parses what torch wrote
                write(f)
                f.flush()
                os.fsync(f.fileno())
                self.size = f.tell()
            if self.cancelled:  # aborted while writing: leave nothing behind
                self.tmp.unlink(missing_ok=True)
        except OSError as e:
            self.abort()
            why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise OutputError(
                f"writing failed: {why}; nothing was written", fix="free space or choose another output", path=str(self.path)
            ) from None
        return self.size

    def start(self, write: Callable[[BinaryIO], None]) -> None:
        """Run ``write`` in a daemon thread; ``wait()`` returns its size or raises its error."""

        def run() -> None:
            try:
                self.write(write)
            except BaseException as e:  # handed to wait()
                self._error = e

        self._thread = threading.Thread(target=run, name="ckptconv-write", daemon=True)
        self._thread.start()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def wait(self) -> int:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.size

    def commit(self) -> int:
        os.replace(self.tmp, self.path)
        _fsync_dir(self.directory)
        return self.size

    def abort(self, *, wait: bool = False) -> None:
        """Remove the temp file; with ``wait``, first let a background write finish (it then cleans)."""
        self.cancelled = True
        if wait and self._thread is not None:
            self._thread.join()
        self.tmp.unlink(missing_ok=True)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> int:
    """Write through ``write(f)`` to a temp file beside ``path``, fsync, rename; return bytes written.

    On any failure, KeyboardInterrupt included, the temp file is removed and ``path`` is untouched.
    """
    pending = PendingWrite(path)
    try:
        pending.write(write)
        return pending.commit()
    except BaseException:
        pending.abort()
        raise


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def compact(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor itself when it owns exactly its bytes, else a contiguous copy of just its values.

    torch.save writes whole storages: a view into a larger storage would drag the rest along.
    """
    storage = tensor.untyped_storage()
    if tensor.is_contiguous() and tensor.storage_offset() == 0 and storage.nbytes() == tensor.nbytes:
        return tensor
    return tensor.contiguous().clone()


@dataclass(frozen=True)
class Source:
    """Where unchanged tensors can be copied from: the input file, each storage's span in it, and
    the source key of each (to name a corrupt one)."""

    path: Path
    spans: dict[int, Span]
    names: dict[int, str]

    def corrupt(self, ptr: int) -> FormatError:
        return FormatError(
            f"tensor {self.names.get(ptr, '?')}: its bytes fail the zip's CRC-32 check: the file is corrupt",
            fix="download or copy it again",
            path=str(self.path),
        )


def _copy_checked(src_fd: int, span: Span, dst_fd: int, dst_off: int, buf: bytearray) -> bool:
    """Copy a source span to ``dst_off`` through ``buf``, checking its CRC-32 on the way: one read,
    one write, nothing left resident. False when the bytes do not match the CRC (a corrupt source)."""
    view = memoryview(buf)
    crc, pos, end = 0, span.offset, span.offset + span.nbytes
    while pos < end:
        n = os.preadv(src_fd, [view[: min(len(view), end - pos)]], pos)
        if n <= 0:
            raise FormatError("truncated zip checkpoint: a record ends past the end of the file")
        crc = zlib.crc32(view[:n], crc)
        _pwrite_all(dst_fd, view[:n], dst_off + pos - span.offset)
        pos += n
    return crc == span.crc


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        k = os.pwrite(fd, data, offset)
        data, offset = data[k:], offset + k


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The tensor's bytes in memory, as the machine holds them (contiguous tensors: no copy)."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data


def _put(dst_fd: int, offset: int, t: torch.Tensor, src_fd: int | None, source: Source | None, exact: bool, buf: bytearray) -> int:
    """Write one tensor's bytes at ``offset`` and return their CRC-32: read from the source file
    (and checked) when it holds them unchanged, else from memory."""
    ptr = t.untyped_storage().data_ptr()
    span = source.spans.get(ptr) if source is not None and exact else None
    if span is not None and src_fd is not None:
        if not _copy_checked(src_fd, span, dst_fd, offset, buf):
            raise source.corrupt(ptr)
        return span.crc
    data = tensor_bytes(t)
    _pwrite_all(dst_fd, data, offset)
    return zlib.crc32(data)


def _storages_in_pickle_order(obj: Any) -> list[torch.Tensor]:
    """One tensor per distinct storage, in the order torch.save meets them (dicts and lists in order)."""
    out, seen = [], set()

    def walk(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            ptr = x.untyped_storage().data_ptr()
            if ptr not in seen:
                seen.add(ptr)
                out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(obj)
    return out


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


def write_pth(f: BinaryIO, obj: Any, source: Source | None = None) -> str:
    """torch.save(obj) with every tensor's bytes written once, straight from the source file when
    unchanged there, so converting never makes the tensors resident in this process.

    torch writes the zip's structure (pickle, record headers, alignment) with holes where storage
    bytes go (``skip_data``); the holes are then filled (from the source file through one small
    buffer, checking each record's CRC-32 as it passes; else from memory) and each record's CRC-32
    is set. Returns "streamed", or "torch.save" if torch's layout is not the one expected.
    """
    from torch.serialization import skip_data

    tensors = _storages_in_pickle_order(obj)
    with skip_data():
        torch.save(obj, f)
    f.flush()
    entries = sorted(
        (e for e in _zip_entries(f) if e.name.rsplit("/", 2)[-2:-1] == ["data"]), key=lambda e: int(e.name.rsplit("/", 1)[1])
    )
    if [e.size for e in entries] != [t.untyped_storage().nbytes() for t in tensors]:
        f.seek(0)
        f.truncate()
        torch.save(obj, f)
        return "torch.save"
    fd = f.fileno()
    src_fd = os.open(source.path, os.O_RDONLY) if source and source.spans else None
    try:
        buf = bytearray(COPY_CHUNK)
        for entry, t in zip(entries, tensors):
            crc = _put(fd, entry.data_offset, t, src_fd, source, True, buf)
            for at in entry.crc_offsets:
                os.pwrite(fd, struct.pack("<I", crc), at)
    finally:
        if src_fd is not None:
            os.close(src_fd)
    f.seek(0, os.SEEK_END)
    return "streamed"


def write_safetensors(f: BinaryIO, tensors: dict[str, torch.Tensor], metadata: dict[str, str], source: Source | None = None) -> None:
    """Stream a safetensors file: header first, then each tensor's bytes once, in order; unchanged
    tensors come straight from the source file (CRC-checked on the way), the rest from memory.

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
        if t.dtype not in ST_DTYPES:
            raise OutputError(f"{name}: dtype {t.dtype} has no safetensors equivalent")
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    f.write(len(raw).to_bytes(8, "little"))
    f.write(raw)
    f.flush()
    start = f.tell()
    src_fd = os.open(source.path, os.O_RDONLY) if source and source.spans else None
    buf = bytearray(COPY_CHUNK)
    try:
        for name, t in tensors.items():
            exact = t.is_contiguous() and t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.nbytes
            if t.nbytes:
                _put(f.fileno(), start + header[name]["data_offsets"][0], t, src_fd, source, exact, buf)
    finally:
        if src_fd is not None:
            os.close(src_fd)
    f.seek(start + offset)
