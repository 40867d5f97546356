"""A file's serialization format from its first bytes, and a safetensors header read and checked:
torch-free, so a batch judges its existing outputs before any worker imports torch."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from ..errors import FormatError, UsageError
from . import dtypes
from .files import check_regular
from .zipindex import ZIP_MAGIC

# pickle protocol 2, then LONG1 0x1950a86a20f9469cfc6c: torch's legacy serialization magic number
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
MAX_HEADER = 100 << 20  # bytes of a safetensors JSON header


def sniff(path: Path, reads: Path | None = None) -> str:
    """The serialization format from the first bytes: zip, legacy or safetensors; tar is refused.
    ``reads``: the name to read it by (an ``Opened`` file's), ``path`` the one messages give."""
    size = check_regular(reads or path).st_size
    try:
        with (reads or path).open("rb") as f:
            head = f.read(512)
    except OSError as e:
        raise UsageError(f"cannot read ({e.strerror})", path=str(path)) from None
    if not head:
        raise FormatError("the file is empty (0 bytes)", fix="copy the checkpoint again", path=str(path))
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(LEGACY_MAGIC):
        return "legacy"
    if len(head) >= 262 and head[257:262] == b"ustar":
        raise FormatError(
            "this is the tar format of torch < 0.4, which ckptconv does not read",
            fix="load it with that old torch and save it again with torch.save",
            path=str(path),
        )
    if len(head) > 9 and head[8:9] == b"{" and 8 + struct.unpack("<Q", head[:8])[0] <= size:
        return "safetensors"
    if head.startswith(b"\x80"):
        raise FormatError(
            "a pickle, but not one torch.save wrote (no torch magic number)",
            fix="ckptconv reads files written by torch.save or safetensors",
            path=str(path),
        )
    raise FormatError(
        f"not a checkpoint: neither torch zip, legacy torch, nor safetensors (it starts with {head[:8]!r})",
        fix="pass a .pyth/.pth file written by torch.save, or a .safetensors file",
        path=str(path),
    )


def read_safetensors_header(path: Path, reads: Path | None = None) -> dict[str, Any]:
    """The JSON header of a safetensors file, read without touching tensor data, every entry checked."""
    try:
        with (reads or path).open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > MAX_HEADER:
                raise FormatError(f"the safetensors header claims {n} bytes (at most {MAX_HEADER})", path=str(path))
            header = json.loads(f.read(n))
    except (OSError, struct.error, ValueError, RecursionError) as e:
        raise FormatError(f"truncated or corrupt safetensors file ({type(e).__name__})", fix="download or copy it again", path=str(path)) from None
    if not isinstance(header, dict):
        raise FormatError("the safetensors header is not a table", path=str(path))
    for name, entry in header.items():
        if name != "__metadata__" and not _tensor_entry(entry):
            raise FormatError(f"safetensors entry {name[:80]!r} is malformed (dtype, shape, data_offsets)", path=str(path))
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())):
        raise FormatError("the safetensors __metadata__ is not a table of strings", path=str(path))
    return header


def _tensor_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or entry.get("dtype") not in dtypes.FROM_SAFETENSORS:
        return False
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    ints = lambda xs, n=None: isinstance(xs, list) and (n is None or len(xs) == n) and len(xs) <= 16 and all(  # noqa: E731
        isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in xs
    )
    return ints(shape) and ints(offsets, 2) and offsets[0] <= offsets[1]
