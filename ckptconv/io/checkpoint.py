"""Reading checkpoints: format detection, weights-only loading, integrity checks, weight-set choice.

- zip (torch >= 1.6): memory-mapped, so tensors that are not converted (optimizer momentum, the
  unused weight set) are never read from disk. torch does not check the zip's CRC-32s, so ckptconv
  checks ``data.pkl`` before unpickling and the bytes of every tensor it converts (as the writer
  copies them, or with ``verify_tensors``); ``zipindex`` knows each tensor's record.
- legacy (torch < 1.6, pycls's 2020 zoo): loaded whole; the format carries no checksums.
- safetensors: read with the safetensors library after checking its header; accepted as input when
  its keys belong to a known layout. The format carries no checksums.
- tar (torch < 0.4): refused.
The format comes from the file's first bytes, never from its name or a failed attempt.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import FormatError, UnsafePickleError, UsageError
from . import dtypes
from .files import Opened
from .formats import read_safetensors_header, sniff
from .hashing import tensors_digest
from .meta import cfg_of, decode_meta, plain_meta, read_meta
from .spans import read_span, tensor_crc
from .store import RemoteFile, Url, location
from .zipindex import Span, TensorRef, ZipIndex, read_index

TRUST_FIX = "if you trust the file's author, pass --trust-pickle (this runs code stored in the file)"
CHUNK = 8 << 20

StateDict = dict[str, torch.Tensor]


@dataclass
class Checkpoint:
    """A loaded checkpoint: its weight sets and what else its top level holds."""

    path: Path
    format: str  # zip | legacy | safetensors
    kind: str  # pycls | state_dict | bare | safetensors
    top_keys: list[str]
    weight_sets: dict[str, StateDict]  # by name: model, ema (pycls), state_dict, state_dict_ema (see SET_KEYS)
    errors: dict[str, float] = field(default_factory=dict)  # test_err / ema_err when recorded
    cfg: Any = None
    epoch: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # the ckptconv meta found in the file, typed
    meta_problems: list[str] = field(default_factory=list)
    index: ZipIndex | None = None  # zip only
    refs: dict[str, dict[str, TensorRef]] = field(default_factory=dict)  # weight set -> key -> its record
    opened: Opened | None = None  # the file every read went and goes through (None: made in memory)

    @property
    def reads(self) -> Path:
        """The name of the very file this checkpoint was read from (``files.Opened``), for later reads."""
        return self.opened.reads if self.opened is not None else self.path

    def select(self, weights: str) -> tuple[str, StateDict]:
        """Pick a weight set: ``best`` as pycls's load_checkpoint does, or force ``model`` / ``ema``."""
        sets = self.weight_sets
        if self.kind != "pycls":
            if weights in ("model", "ema"):
                raise UsageError(
                    f"--weights {weights} needs a pycls checkpoint with model_state/ema_state, "
                    f"but the file holds a {self.kind} ({', '.join(self.top_keys[:8]) or 'no keys'})",
                    fix="omit --weights",
                    path=str(self.path),
                )
            name = next(iter(sets))
            return name, sets[name]
        if weights == "best":
            test_err = self.errors.get("test_err", 100.0)
            ema_err = self.errors.get("ema_err", 100.0)
            name = "model" if test_err <= ema_err or "ema" not in sets else "ema"
            return name, sets[name]
        if weights not in sets:
            raise UsageError(
                f"--weights {weights}: the checkpoint has no {weights}_state (it has {', '.join(self.top_keys)})",
                fix=f"use --weights {' or '.join(sorted(sets))} or best",
                path=str(self.path),
            )
        return weights, sets[weights]

    def loaded_by(self, loads: tuple[str, ...], loader: str) -> tuple[str, StateDict]:
        """The weight set a library's loader takes from this file: the first of ``loads`` it holds
        ("best": pycls's pick), else the whole file (``Library.loads``; ``loader`` names it)."""
        for name in loads:
            if name == "best" and self.kind == "pycls":
                return self.select("best")
            if name in self.weight_sets:
                return name, self.weight_sets[name]
        if self.kind in ("bare", "safetensors"):
            return "state_dict", self.weight_sets["state_dict"]
        raise FormatError(
            f"{loader} loads the whole file as a state dict, but it holds {', '.join(self.top_keys[:8])}",
            fix=f"convert it again: the {loader} layout is written as a bare state dict",
            path=str(self.path),
        )

    def fetch(self, *names: str) -> None:
        """Bring in the bytes of these weight sets where the input is an object read by range
        (``ranged``): their records alone, or the whole object when a tensor's record is unknown.
        A local file holds every byte already."""
        if not getattr(self.opened, "ranged", False):
            return
        spans = [self.index.records.get(ref.record) if self.index is not None and (ref := self.refs.get(name, {}).get(key)) else None
                 for name in names for key in self.weight_sets[name]]
        if all(spans):
            self.opened.fetch([(s.offset, s.offset + s.nbytes) for s in spans])
        else:
            self.opened.fetch_all()

    def spans(self, weight_set: str) -> dict[str, Span]:
        """The record of every tensor of ``weight_set`` whose file bytes are exactly its value, so they
        may be copied file to file: the whole record, contiguous, in this machine's byte order, and
        just as torch loaded it. Empty for other formats, or when the index could not be read."""
        if self.index is None or self.index.byteorder != sys.byteorder:
            return {}
        out = {}
        for key, t in self.weight_sets.get(weight_set, {}).items():
            ref = self.refs.get(weight_set, {}).get(key)
            span = self.index.records.get(ref.record) if ref else None
            exact = ref is not None and ref.whole_storage_contiguous and ref.shape == tuple(t.shape) and ref.dtype == dtypes.name(t.dtype)
            if span is not None and exact and span.nbytes == t.untyped_storage().nbytes() == t.nbytes:
                out[key] = span
        return out

    def tensors_digest(self, weight_set: str) -> str:
        """``tensors_digest`` of the set's tensors: a record's CRC-32 from the zip's directory where the
        record is exactly the tensor (nothing read), else the CRC-32 of the tensor's bytes."""
        sd, refs = self.weight_sets[weight_set], self.refs.get(weight_set, {})
        crcs = {}
        for key, t in sd.items():
            ref = refs.get(key)
            span = self.index.records.get(ref.record) if self.index is not None and ref is not None else None
            exact = span is not None and ref.whole_storage_contiguous and span.nbytes == t.nbytes
            crcs[key] = span.crc if exact else tensor_crc(t)
        return tensors_digest(crcs)

    def verify_tensors(self, weight_set: str, keys) -> None:
        """Check the bytes of each tensor of ``keys`` against the zip's CRC-32s (zip only).

        A tensor whose record is known is checked in the file through a small buffer (so checking
        does not make it resident); others in memory, against any record of their size.
        """
        if self.index is None:
            return
        sd, refs = self.weight_sets[weight_set], self.refs.get(weight_set, {})
        known = {(sp.nbytes, sp.crc) for sp in self.index.records.values()}
        checked: set[str] = set()
        with self.reads.open("rb") as f:
            buf = bytearray(CHUNK)
            for key in keys:
                ref = refs.get(key)
                if ref is not None and ref.record in self.index.records:
                    if ref.record in checked:
                        continue
                    checked.add(ref.record)
                    span = self.index.records[ref.record]
                    ok = read_span(f.fileno(), span, buf, str(self.path)) == span.crc
                else:
                    storage = sd[key].untyped_storage()
                    data = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()
                    ok = (storage.nbytes(), zlib.crc32(data)) in known
                if not ok:
                    raise FormatError(
                        f"tensor {key}: its bytes fail the zip's CRC-32 check: the file is corrupt",
                        fix="download or copy it again",
                        path=str(self.path),
                    )


def span_values(path: Path, span: Span, like: torch.Tensor) -> torch.Tensor:
    """A small tensor's values read from its record with pread, as ``like`` holds them (dtype,
    shape): nothing of the memory-mapped file is paged in."""
    with open(path, "rb") as f:
        data = os.pread(f.fileno(), span.nbytes, span.offset)
    if len(data) != span.nbytes:
        raise FormatError("truncated zip checkpoint: a record ends past the end of the file", path=str(path))
    return torch.frombuffer(bytearray(data), dtype=like.dtype).view(like.shape)


def written_records(path: Path, loads: tuple[str, ...], loader: str) -> dict[str, tuple[tuple[int, ...], str, int]]:
    """Each tensor of the weight set a loader (``loads``) takes from a file just written: its shape, dtype
    and the CRC-32 of its bytes where the file's own index (zip central directory and data.pkl;
    safetensors header) puts them, read through a small buffer: nothing is mapped or kept."""
    buf = bytearray(CHUNK)
    if sniff(path) == "safetensors":
        header = read_safetensors_header(path)
        start = 8 + int.from_bytes(path.open("rb").read(8), "little")
        entries = {k: (tuple(v["shape"]), dtypes.FROM_SAFETENSORS[v["dtype"]], v["data_offsets"]) for k, v in header.items() if k != "__metadata__"}
        with path.open("rb") as f:
            return {k: (shape, dtype, read_span(f.fileno(), Span(start + a, b - a, 0), buf, str(path))) for k, (shape, dtype, (a, b)) in entries.items()}
    ckpt = load(path)
    name, sd = ckpt.loaded_by(loads, loader)
    refs, out = ckpt.refs.get(name, {}), {}
    with path.open("rb") as f:
        for key, t in sd.items():
            ref = refs.get(key)
            span = ckpt.index.records.get(ref.record) if ckpt.index is not None and ref is not None else None
            crc = read_span(f.fileno(), span, buf, str(path)) if span is not None and ref.whole_storage_contiguous else -1
            out[key] = (tuple(t.shape), dtypes.name(t.dtype), crc if span is not None and crc == span.crc else -1)
    return out


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _torch_load(path: Path, fmt: str, trust_pickle: bool, reads: Path | None = None) -> Any:
    """torch.load (of ``reads``, the open file), weights-only unless trusted; every failure becomes
    a FormatError naming the file."""
    try:
        with warnings.catch_warnings():  # torch's asides on odd pickles would bury the one error line
            warnings.simplefilter("ignore")
            return torch.load(reads or path, map_location="cpu", weights_only=not trust_pickle, mmap=fmt == "zip")
    except Exception as e:  # noqa: BLE001 - the boundary with untrusted bytes: name what torch said
        text = str(e)
        found = _GLOBAL.search(text)
        if found and ("weights_only" in text.lower() or "Weights only" in text):
            name = found.group(1)
            raise UnsafePickleError(
                f"refused to unpickle global {name}: weights-only loading allows tensors and plain "
                "containers only, and this file asks for more",
                fix=TRUST_FIX,
                global_name=name,
                path=str(path),
            ) from None
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise FormatError(
            f"truncated or corrupt checkpoint ({type(e).__name__}: {first[:200]})",
            fix="download or copy it again",
            path=str(path),
        ) from None


def _tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def strip_module(sd: dict, path: Path) -> dict:
    """Remove DataParallel's ``module.`` prefix, only when every key has it."""
    prefixed = [k.startswith("module.") for k in sd]
    if all(prefixed):
        return {k[len("module.") :]: v for k, v in sd.items()}
    if any(prefixed):
        sample = next(k for k in sd if k.startswith("module."))
        plain = next(k for k in sd if not k.startswith("module."))
        raise FormatError(
            f"mixed key prefixes: {sum(prefixed)} of {len(sd)} keys start with 'module.' (e.g. {sample}) "
            f"and the rest do not (e.g. {plain})",
            fix="the state dict mixes a DataParallel model with another; save one model's state_dict",
            path=str(path),
        )
    return sd


def _number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        return float(value)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# each weight set a file may hold, by its name here (``--weights``, meta) -> its top-level key
SET_KEYS = {"model": "model_state", "ema": "ema_state", "state_dict": "state_dict", "state_dict_ema": "state_dict_ema"}


def _weight_sets(obj: dict, path: Path) -> tuple[str, dict[str, tuple[str, ...]]]:
    """The kind of file and where each of its weight sets sits (a path of top-level keys)."""
    for key in ("model_state", "ema_state"):
        if obj.get(key) is not None and not _tensor_dict(obj[key]):
            raise FormatError(f"{key} is not a dict of named tensors", path=str(path))
    where = {name: (key,) for name, key in SET_KEYS.items() if _tensor_dict(obj.get(key))}
    if "model" in where:
        return "pycls", where
    if where:
        return "state_dict", where
    if _tensor_dict(obj):
        return "bare", {"state_dict": ()}
    top = ", ".join(str(k) for k in list(obj)[:12])
    raise FormatError(
        f"no state dict found; the top level holds {top or 'nothing'}",
        fix="ckptconv reads pycls checkpoints (model_state), {'state_dict': ...} dicts and bare state dicts",
        path=str(path),
    )


def _from_pickle(path: Path, fmt: str, obj: Any, index: ZipIndex | None) -> Checkpoint:
    if not isinstance(obj, dict):
        raise FormatError(f"the top level is a {type(obj).__name__}, not a dict of weights", fix="save a state dict or a pycls checkpoint", path=str(path))
    kind, where = _weight_sets(obj, path)
    sets, refs = {}, {}
    for name, keys in where.items():
        sd = obj
        for k in keys:
            sd = sd[k]
        sets[name] = strip_module(sd, path)
        known = index.refs(keys) if index is not None else {}
        refs[name] = strip_module(known, path) if known else {}
        if index is not None:
            _check_storages(sets[name], refs[name], index, path)
    errors = {k: v for k in ("test_err", "ema_err") if (v := _number(obj.get(k))) is not None} if kind == "pycls" else {}
    epoch = obj.get("epoch")
    meta, problems = read_meta(plain_meta(obj) if kind == "bare" else obj.get("meta"))
    return Checkpoint(
        path, fmt, kind, [str(k) for k in obj], sets, errors, cfg_of(obj.get("cfg")),
        epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None, meta, problems, index, refs,
    )


def _check_storages(sd: dict, refs: dict, index: ZipIndex, path: Path) -> None:
    """Every tensor's storage is exactly its record: torch takes a storage's size from the pickle
    and reads that many bytes from where its record starts, so a crafted size reads past the record
    (into the next one, or past the end of the file) with no error anywhere."""
    for key, t in sd.items():
        ref = refs.get(key)
        span = index.records.get(ref.record) if ref is not None else None
        if isinstance(t, torch.Tensor) and span is not None and t.untyped_storage().nbytes() != span.nbytes:
            raise FormatError(f"tensor {key}: its storage claims {t.untyped_storage().nbytes()} bytes but its record holds {span.nbytes}: "
                              f"the file is crafted or corrupt", fix="download or copy it again", path=str(path))


def _from_safetensors(path: Path, opened: Opened) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if getattr(opened, "ranged", False):  # load_file reads every tensor now: an object's whole
        opened.fetch_all()
    header = read_safetensors_header(path, opened.reads)
    try:
        sd = load_file(str(opened.reads), device="cpu")
    except (SafetensorError, ValueError, OSError) as e:
        raise FormatError(f"truncated or corrupt safetensors file ({e})", fix="download or copy it again", path=str(path)) from None
    meta, problems = read_meta(decode_meta(header.get("__metadata__") or {}))
    return Checkpoint(path, "safetensors", "safetensors", sorted(sd), {"state_dict": strip_module(sd, path)}, meta=meta, meta_problems=problems, opened=opened)


def _open(path: Path | Url, opened: Opened | RemoteFile | None) -> Opened | RemoteFile:
    """The input opened once: a local file, or an object read by range (``ranged``)."""
    if opened is not None:
        return opened
    if isinstance(path, Url):
        from .ranged import open_remote

        return open_remote(path)
    return Opened(path)


def load(path: str | Path | Url, *, trust_pickle: bool = False, opened: Opened | RemoteFile | None = None) -> Checkpoint:
    """Load a checkpoint safely: format from its magic bytes, weights-only, memory-mapped when zip;
    every read, now and later, through the one file opened here (``files.Opened``; a URL's object:
    ``store.RemoteFile``, whose weight sets are fetched by ``Checkpoint.fetch``)."""
    path = location(path)
    opened = _open(path, opened)
    fmt = sniff(path, opened.reads)
    if fmt == "safetensors":
        return _from_safetensors(path, opened)
    index = read_index(path, opened.reads) if fmt == "zip" else None
    if index is not None and getattr(opened, "ranged", False):  # a number pickled as a tensor (test_err) is read now
        opened.fetch([(s.offset, s.offset + s.nbytes) for s in index.top_level()])
    ckpt = _from_pickle(path, fmt, _torch_load(path, fmt, trust_pickle, opened.reads), index)
    ckpt.opened = opened
    return ckpt
