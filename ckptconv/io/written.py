"""An output ckptconv wrote, judged without torch and in one read: its meta, its sha256, and whether
its tensors are the bytes the meta says were written.

A batch rerun asks this of every existing output before any worker starts (so a run with nothing
to do never imports torch). One sequential pass hashes the whole file and computes each tensor's
CRC-32 on the same bytes: a zip record must match the zip's own CRC-32, and the tensors' digest
must equal the meta's ``tensors_crc`` (so tensors replaced under a copied meta are not ours).
"""

from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CkptError
from . import dtypes
from .files import is_graph
from .formats import read_safetensors_header, sniff
from .hashing import CHUNK, tensors_digest
from .meta import decode_meta, plain_meta, read_meta
from .zipindex import Span, TensorRef, read_index


@dataclass(frozen=True)
class Written:
    """What an existing output holds: its meta, its sha256, and whether its tensors are intact and
    the ones its meta records."""

    meta: dict[str, Any]
    sha256: str
    intact: bool
    params: int  # elements of its floating tensors


def read_written(path: Path) -> Written | None:
    """The output at ``path`` as ckptconv wrote it, or None when it is not one ckptconv can judge
    (unreadable, another format, more than one weight set, no meta)."""
    if is_graph(path):
        return _graph(path)
    try:
        found = _safetensors(path) if sniff(path) == "safetensors" else _zip(path)
    except (CkptError, OSError):
        return None
    if found is None:
        return None
    meta, spans, stored, params = found
    sha, crcs = _one_pass(path, spans)
    intact = all(crcs.get(k) == crc for k, crc in stored.items()) and tensors_digest(crcs) == meta.get("tensors_crc")
    return Written(meta, sha, intact, params)


def _graph(path: Path) -> Written | None:
    """An ONNX graph ckptconv wrote (the onnx extra reads it; no torch): its meta, and intact when
    its graph is the one its ``graph_sha256`` names (``onnx/provenance.py``)."""
    try:
        from ..onnx.graph_files import read_graph
        from ..onnx.provenance import load, read_graph_meta, read_provenance

        data = read_graph(path)
        model = load(data)
        read_provenance(model)  # refuses a graph changed since it was stamped
        meta, problems = read_graph_meta(model)
    except (CkptError, OSError, ImportError):
        return None
    params = sum(math.prod(t.dims) for t in model.graph.initializer if t.data_type in (1, 10, 11, 16))  # float, float16, double, bfloat16
    return Written(meta, hashlib.sha256(data).hexdigest(), not problems, params) if meta else None


def _zip(path: Path) -> tuple[dict, dict[str, Span], dict[str, int], int] | None:
    """The meta and each tensor's record of a {"state_dict", "meta"} zip or of a plain state dict
    with its meta in ``_metadata`` (each record's CRC-32 to match)."""
    tree = (index := read_index(path)).tree
    if isinstance(tree, dict) and set(tree) == {"state_dict", "meta"} and isinstance(tree["state_dict"], dict):
        sd, meta = tree["state_dict"], tree["meta"]
    elif isinstance(tree, dict) and (meta := plain_meta(tree)) is not None:
        sd = tree
    else:
        return None
    spans = {}
    for key, ref in sd.items():
        span = index.records.get(ref.record) if isinstance(ref, TensorRef) else None
        if span is None or not ref.whole_storage_contiguous or span.nbytes != _nbytes(ref):
            return None
        spans[key] = span
    meta, _ = read_meta(meta)
    params = sum(math.prod(ref.shape) for ref in sd.values() if ref.dtype in dtypes.FLOATS)
    return (meta, spans, {k: s.crc for k, s in spans.items()}, params) if meta else None


def _safetensors(path: Path) -> tuple[dict, dict[str, Span], dict[str, int], int] | None:
    """The meta and each tensor's bytes of a safetensors file (the format stores no CRC-32)."""
    header = read_safetensors_header(path)
    with path.open("rb") as f:
        start = 8 + int.from_bytes(f.read(8), "little")
    spans = {k: Span(start + v["data_offsets"][0], v["data_offsets"][1] - v["data_offsets"][0], 0) for k, v in header.items() if k != "__metadata__"}
    meta, _ = read_meta(decode_meta(header.get("__metadata__") or {}))
    tensors = [v for k, v in header.items() if k != "__metadata__"]
    params = sum(math.prod(v["shape"]) for v in tensors if dtypes.FROM_SAFETENSORS[v["dtype"]] in dtypes.FLOATS)
    return (meta, spans, {}, params) if meta else None


def _nbytes(ref: TensorRef) -> int:
    return math.prod(ref.shape) * dtypes.itemsize(ref.dtype)


def _one_pass(path: Path, spans: dict[str, Span]) -> tuple[str, dict[str, int]]:
    """The file's sha256 and each span's CRC-32, reading every byte once, in file order."""
    sha, crcs, pos, seen = hashlib.sha256(), {}, 0, {}
    with path.open("rb") as f:
        for key, span in sorted(spans.items(), key=lambda kv: kv[1].offset):
            if span.offset < pos:  # one record for two keys, or spans that overlap (never ours)
                crcs[key] = seen.get((span.offset, span.nbytes), -1)
                continue
            _digest(f, span.offset - pos, sha)
            crcs[key] = seen[span.offset, span.nbytes] = _digest(f, span.nbytes, sha, crc=True)
            pos = span.offset + span.nbytes
        while block := f.read(CHUNK):
            sha.update(block)
    return sha.hexdigest(), crcs


def _digest(f, nbytes: int, sha, crc: bool = False) -> int:
    """Read ``nbytes`` into the sha256 (and a CRC-32, returned); -1 when the file ends first."""
    value = 0
    while nbytes > 0:
        block = f.read(min(CHUNK, nbytes))
        if not block:
            return -1
        sha.update(block)
        value = zlib.crc32(block, value) if crc else value
        nbytes -= len(block)
    return value
