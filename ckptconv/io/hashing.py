"""sha256 of a file in a background thread, started before torch is imported so the two overlap.

hashlib releases the GIL while it digests large blocks, so a 250 MB checkpoint is hashed on the
second core while the first imports torch (about a second on this class of machine).
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future
from pathlib import Path

CHUNK = 8 << 20


def sha256_file(path: str | Path, chunk: int = CHUNK) -> str:
    """Streaming sha256: reads the file once in chunks, holding none of it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def start_sha256(path: str | Path) -> Future:
    """A Future of the file's sha256, computed in a daemon thread (errors surface at .result())."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(sha256_file(path))
        except BaseException as e:  # delivered to whoever asks for the result
            future.set_exception(e)

    threading.Thread(target=run, name="ckptconv-sha256", daemon=True).start()
    return future


def tensors_digest(crcs: dict[str, int]) -> str:
    """What a file's tensors are, in one string: sha256 over each key and its CRC-32, keys sorted. A
    meta records it, so an output whose tensors were replaced under a copied meta is never up to date."""
    return hashlib.sha256("".join(f"{k}\t{crcs[k]:08x}\n" for k in sorted(crcs)).encode()).hexdigest()
