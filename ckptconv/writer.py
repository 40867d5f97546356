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
import sys
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from .errors import OutputError, UsageError

TMP_PREFIX = ".ckptconv-tmp-"
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


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> int:
    """Write through ``write(f)`` to a temp file beside ``path``, fsync, rename; return bytes written.

    On any failure, KeyboardInterrupt included, the temp file is removed and ``path`` is untouched.
    """
    directory = path.parent if str(path.parent) else Path(".")
    clean_stale_temps(directory)
    tmp = directory / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}"
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise OutputError(f"writing failed: {why}; nothing was written", fix="free space or choose another output", path=str(path)) from None
        raise
    _fsync_dir(directory)
    return size


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


def write_pth(f: BinaryIO, obj: Any) -> None:
    torch.save(obj, f)


def write_safetensors(f: BinaryIO, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Stream a safetensors file: header first, then each tensor's bytes once, in order, no buffering.

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
    for t in tensors.values():
        if t.nbytes:
            f.write(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)
