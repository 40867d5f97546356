"""Reading checkpoints: format detection, weights-only loading, integrity checks, weight-set choice.

- zip (torch >= 1.6): memory-mapped, so tensors that are not converted (optimizer momentum, the
  unused weight set) are never read from disk. torch does not check the zip's CRC-32s, so ckptconv
  checks ``data.pkl`` before unpickling and the bytes of every tensor it converts (as the writer
  copies them, or with ``verify_tensors``).
- legacy (torch < 1.6, pycls's 2020 zoo): loaded whole; the format carries no checksums.
- safetensors: read with the safetensors library; accepted as input when its keys belong to a
  known layout. The format carries no checksums.
- tar (torch < 0.4): refused.
The format comes from the file's first bytes, never from its name or a failed attempt.
"""

from __future__ import annotations

import json
import os
import re
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import FormatError, UnsafePickleError, UsageError

ZIP_MAGIC = b"PK\x03\x04"
# pickle protocol 2, then LONG1 0x1950a86a20f9469cfc6c: torch's legacy serialization magic number
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
TRUST_FIX = "if you trust the file's author, pass --trust-pickle (this runs code stored in the file)"

StateDict = dict[str, torch.Tensor]
CHUNK = 8 << 20


@dataclass(frozen=True)
class Span:
    """Where a tensor's bytes already lie in the source file: a zip record's data, with its CRC-32."""

    offset: int
    nbytes: int
    crc: int


@dataclass(frozen=True)
class Record:
    name: str
    span: Span


@dataclass
class Checkpoint:
    """A loaded checkpoint: its weight sets and what else its top level holds."""

    path: Path
    format: str  # zip | legacy | safetensors
    kind: str  # pycls | state_dict | bare | safetensors
    top_keys: list[str]
    weight_sets: dict[str, StateDict]  # 'model' and maybe 'ema' (pycls), else 'state_dict'
    errors: dict[str, float] = field(default_factory=dict)  # test_err / ema_err when recorded
    cfg: Any = None
    epoch: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # a ckptconv meta found in the file
    records: list[Record] | None = None  # zip only: every record's data span

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
            (name, sd), = sets.items()
            return name, sd
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

    def spans(self, state_dict: StateDict) -> dict[int, Span]:
        """For a memory-mapped zip: the file span of each tensor storage, by storage address.

        torch maps the whole file once and slices a storage per record, so every storage address
        is one base plus its record's data offset. The base is the one value consistent with all
        storages (sizes pin it down); if none is, the tensors are not where this expects and the
        result is empty (callers then read and write through memory, which is always correct).
        """
        if self.records is None:
            return {}
        storages = {}
        for t in state_dict.values():
            st = t.untyped_storage()
            if st.nbytes():
                storages[st.data_ptr()] = st.nbytes()
        data = [r.span for r in self.records if r.name.rsplit("/", 2)[-2:-1] == ["data"]]
        base: set[int] | None = None
        for ptr, n in storages.items():
            candidates = {ptr - sp.offset for sp in data if sp.nbytes == n}
            base = candidates if base is None else base & candidates
            if len(base) <= 1:
                break
        if base and len(base) > 1:
            # Sizes alone can repeat (an EMA set shaped like the model, laid out alike): ask the
            # kernel where this file is mapped, where it can tell.
            base &= _mapping_starts(self.path)
        if not base or len(base) != 1:
            return {}
        (b,) = base
        by_offset = {sp.offset: sp for sp in data}
        spans = {}
        for ptr, n in storages.items():
            sp = by_offset.get(ptr - b)
            if sp is None or sp.nbytes != n:
                return {}
            spans[ptr] = sp
        return spans

    def verify_tensors(self, state_dict: StateDict, spans: dict[int, Span] | None = None) -> None:
        """Check the bytes of every tensor in ``state_dict`` against the zip's CRC-32s (zip only).

        Bytes with a known span are read from the file through a small buffer, so checking does
        not make the tensors resident; others are checked in memory against any record's CRC.
        """
        if self.records is None:
            return
        spans = self.spans(state_dict) if spans is None else spans
        known = {(r.span.nbytes, r.span.crc) for r in self.records}
        seen: set[int] = set()
        with self.path.open("rb") as f:
            buf = bytearray(CHUNK)
            for key, tensor in state_dict.items():
                storage = tensor.untyped_storage()
                ptr = storage.data_ptr()
                if ptr in seen:
                    continue
                seen.add(ptr)
                if ptr in spans:
                    ok = file_crc(f.fileno(), spans[ptr], buf, str(self.path)) == spans[ptr].crc
                else:
                    data = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()
                    ok = (storage.nbytes(), zlib.crc32(data)) in known
                if not ok:
                    raise FormatError(
                        f"tensor {key}: its bytes fail the zip's CRC-32 check: the file is corrupt",
                        fix="download or copy it again",
                        path=str(self.path),
                    )


def _mapping_starts(path: Path) -> set[int]:
    """Start addresses of this process's mappings of ``path`` from offset 0 (Linux; else empty)."""
    try:
        ino = os.stat(path).st_ino
        with open("/proc/self/maps") as maps:
            lines = maps.readlines()
    except OSError:
        return set()
    starts = set()
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and int(fields[2], 16) == 0 and fields[4] == str(ino) and fields[5].rstrip("\n").endswith(path.name):
            starts.add(int(fields[0].split("-")[0], 16))
    return starts


def file_crc(fd: int, span: Span, buf: bytearray, name: str = "") -> int:
    """CRC-32 of a file span, read through ``buf`` (the page cache serves it; nothing stays mapped)."""
    crc, pos, end = 0, span.offset, span.offset + span.nbytes
    view = memoryview(buf)
    while pos < end:
        n = os.preadv(fd, [view[: min(len(view), end - pos)]], pos)
        if n <= 0:
            raise FormatError("truncated zip checkpoint: a record ends past the end of the file", path=name)
        crc = zlib.crc32(view[:n], crc)
        pos += n
    return crc


def sniff(path: Path) -> str:
    """The serialization format from the first bytes: zip, legacy, safetensors or tar."""
    if path.is_dir():
        raise UsageError("is a directory, not a checkpoint file", fix="pass the .pyth/.pth file inside it", path=str(path))
    try:
        with path.open("rb") as f:
            head = f.read(512)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise UsageError("no such file", path=str(path)) from None
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
        "not a checkpoint: neither torch zip, legacy torch, nor safetensors (it starts with "
        f"{head[:8]!r})",
        fix="pass a .pyth/.pth file written by torch.save, or a .safetensors file",
        path=str(path),
    )


def _zip_records(path: Path) -> list[Record]:
    """Every record's data span and CRC-32, after checking ``data.pkl`` itself (which unpickling trusts)."""
    try:
        with zipfile.ZipFile(path) as zf, path.open("rb") as f:
            infos = zf.infolist()
            pkl = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
            if len(pkl) != 1:
                raise FormatError("a zip file, but not one torch.save wrote (no data.pkl)", path=str(path))
            zf.read(pkl[0])  # raises BadZipFile on a CRC mismatch
            records = []
            fd = f.fileno()
            for info in infos:
                header = os.pread(fd, 30, info.header_offset)  # not f.read: that would buffer 8 KB per record
                if len(header) != 30 or header[:4] != ZIP_MAGIC:
                    raise FormatError(f"zip record {info.filename} has no local header", path=str(path))
                name_len, extra_len = struct.unpack("<HH", header[26:30])
                offset = info.header_offset + 30 + name_len + extra_len
                records.append(Record(info.filename, Span(offset, info.file_size, info.CRC)))
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - zipfile raises many types on corrupt bytes (BadZipFile, UnicodeDecodeError, ...)
        raise FormatError(
            f"truncated or corrupt zip checkpoint ({type(e).__name__}: {e})", fix="download or copy it again", path=str(path)
        ) from None
    return records


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _torch_load(path: Path, fmt: str, trust_pickle: bool) -> Any:
    """torch.load, weights-only unless trusted; every failure becomes a FormatError naming the file."""
    try:
        with warnings.catch_warnings():  # torch's asides on odd pickles would bury the one error line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=not trust_pickle, mmap=fmt == "zip")
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


def strip_module(sd: StateDict, path: Path) -> StateDict:
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
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    return float(value) if isinstance(value, (int, float)) else None


def _from_pickle(path: Path, fmt: str, obj: Any) -> Checkpoint:
    if not isinstance(obj, dict):
        raise FormatError(
            f"the top level is a {type(obj).__name__}, not a dict of weights",
            fix="save a state dict or a pycls checkpoint",
            path=str(path),
        )
    top = [str(k) for k in obj]
    if "model_state" in obj:
        sets = {"model": obj["model_state"]}
        if "ema_state" in obj and obj["ema_state"] is not None:
            sets["ema"] = obj["ema_state"]
        for name, sd in sets.items():
            if not _tensor_dict(sd):
                raise FormatError(f"{name}_state is not a dict of named tensors", path=str(path))
        errors = {k: v for k in ("test_err", "ema_err") if (v := _number(obj.get(k))) is not None}
        epoch = obj.get("epoch")
        kind = "pycls"
    elif _tensor_dict(obj.get("state_dict")):
        sets, errors, epoch, kind = {"state_dict": obj["state_dict"]}, {}, None, "state_dict"
    elif _tensor_dict(obj):
        sets, errors, epoch, kind = {"state_dict": obj}, {}, None, "bare"
    else:
        raise FormatError(
            f"no state dict found; the top level holds {', '.join(top[:12]) or 'nothing'}",
            fix="ckptconv reads pycls checkpoints (model_state), {'state_dict': ...} dicts and bare state dicts",
            path=str(path),
        )
    sets = {name: strip_module(sd, path) for name, sd in sets.items()}
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    return Checkpoint(
        path, fmt, kind, top, sets, errors, obj.get("cfg"), epoch if isinstance(epoch, int) else None, dict(meta)
    )


def _from_safetensors(path: Path) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        header = read_safetensors_header(path)
        sd = load_file(str(path), device="cpu")
    except (SafetensorError, ValueError, OSError, struct.error) as e:
        raise FormatError(f"truncated or corrupt safetensors file ({e})", fix="download or copy it again", path=str(path)) from None
    from .meta import decode_meta

    meta = decode_meta(header.get("__metadata__") or {})
    return Checkpoint(path, "safetensors", "safetensors", sorted(sd), {"state_dict": strip_module(sd, path)}, meta=meta)


def load(path: str | Path, *, trust_pickle: bool = False) -> Checkpoint:
    """Load a checkpoint safely: format from its magic bytes, weights-only, memory-mapped when zip."""
    path = Path(path)
    fmt = sniff(path)
    if fmt == "safetensors":
        return _from_safetensors(path)
    records = _zip_records(path) if fmt == "zip" else None
    ckpt = _from_pickle(path, fmt, _torch_load(path, fmt, trust_pickle))
    ckpt.records = records
    return ckpt


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, read without touching tensor data."""
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))
