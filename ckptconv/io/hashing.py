"""sha256 of a file in a background thread, started before torch is imported so the two overlap,
and the stamp of the very file hashed, so that what a meta records is the file the tensors came from.

hashlib releases the GIL while it digests large blocks, so a 250 MB checkpoint is hashed on the
second core while the first imports torch (about a second on this class of machine). A source is
hashed through one open file (``hash_file``) whose stamp (device, inode, size, time) the hash
keeps: before the outputs are published, the conversion checks it is the stamp of the file its
tensors were read from (``files.Opened``), still unchanged; otherwise the sha256 recorded would
belong to other bytes than the tensors converted (a source replaced mid-batch).
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from ..errors import FormatError

CHUNK = 8 << 20


def sha256_file(path: str | Path, chunk: int = CHUNK) -> str:
    """Streaming sha256: reads the file once in chunks, holding none of it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


Stamp = tuple[int, int, int, int]  # (device, inode, size, mtime in ns): which file, and whether it changed


@dataclass(frozen=True)
class Hashed:
    """A file's sha256 and the stamp of the very file that was hashed."""

    sha256: str
    stamp: Stamp


def stamp(st: os.stat_result) -> Stamp:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def changed(path: str | Path, what: str) -> FormatError:
    return FormatError(f"{what} changed while ckptconv read it (it was replaced or rewritten): the sha256 recorded would not be "
                       "the one of the tensors converted; nothing was written", fix="convert it again once it stays put", path=str(path))


def hash_file(path: str | Path, chunk: int = CHUNK) -> Hashed:
    """The file's sha256 through one open file, with that file's stamp (unchanged while hashed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        before = stamp(os.fstat(f.fileno()))
        while block := f.read(chunk):
            h.update(block)
        if stamp(os.fstat(f.fileno())) != before:
            raise changed(path, "the source")
    return Hashed(h.hexdigest(), before)


def start_hash(path: str | Path) -> Future:
    """A Future of ``hash_file(path)``, computed in a daemon thread (errors surface at .result())."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(hash_file(path))
        except BaseException as e:  # delivered to whoever asks for the result
            future.set_exception(e)

    threading.Thread(target=run, name="ckptconv-sha256", daemon=True).start()
    return future


def tensors_digest(crcs: dict[str, int]) -> str:
    """What a file's tensors are, in one string: sha256 over each key and its CRC-32, keys sorted. A
    meta records it, so an output whose tensors were replaced under a copied meta is never up to date."""
    return hashlib.sha256("".join(f"{k}\t{crcs[k]:08x}\n" for k in sorted(crcs)).encode()).hexdigest()
