"""The provenance an ONNX graph of ckptconv's carries in its ``metadata_props``, and reading it back
from a file that may come from anyone.

``metadata_props`` is a list of string pairs, so every value is text. The fields are the meta's
(``io/meta.py``: ``ckptconv_version``, ``source_sha256``, ``weights``, ``arch``, ``channel_order``,
each held to the same pattern or choices) plus what only a graph has: ``input`` (``tensor`` or
``image``), the preprocessing (``resize``: TEST.IM_SIZE, ``crop``: TRAIN.IM_SIZE, ``mean`` and
``std`` in 0..1 units, in the order ``channel_order`` names) and ``opset``. ``channel_order`` is the
order of the graph's input: the tensor's, or the pixels' (BGR as ``cv2.imread`` reads, RGB as PIL).
For a tensor graph the preprocessing is what the caller must do; an image graph does it itself.

Beside them the graph carries ckptconv's whole meta (``io/meta.py``: the options it was converted
with, the model's numbers ...), encoded as a safetensors file's metadata is, and read back by the
same reader (``read_graph_meta``), so a batch judges an existing graph up to date as it judges any
output; and ``graph_sha256``, the sha256 of the graph message itself, so a graph changed after
ckptconv wrote it is not taken for ckptconv's.

A reader takes the known keys only (others are left behind), each bounded in length and parsed by
a strict pattern; a graph with no ``ckptconv_version`` is not ckptconv's, and a missing, repeated
or malformed field, or one the graph contradicts (its opset, its input, its sha256), refuses the file.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

import onnx
from google.protobuf.message import DecodeError

from ..errors import FormatError
from ..fields import describe
from ..io.meta import FIELDS, HEX64, MAX_TEXT, SETS, VERSION, decode_meta, encode_meta, read_meta
from ..options import NAME, ORDERS
from ..version import __version__
from . import IMAGE, INPUT, OPSET

INPUTS = ("tensor", "image")  # what a graph takes: a normalized N x 3 x H x W tensor, or a photo's pixels
MAX_PROPS = 64
NUMBER = r"-?[0-9]{1,8}(\.[0-9]{1,20})?(e[-+]?[0-9]{1,3})?"
SIZE = r"[1-9][0-9]{0,3}"
FIXES = "convert the source again with ckptconv convert IN model.onnx --to onnx"
# key -> (the pattern its text must match, or its choices; what that means)
RULES: dict[str, tuple[str | tuple[str, ...], str]] = {
    "ckptconv_version": (VERSION, "a version number"), "source_sha256": (HEX64, "a sha256 in hex, or nothing"),
    "weights": (SETS, f"one of {', '.join(SETS)}"), "arch": (NAME, "a name (a-z, 0-9, _ . -)"),
    "channel_order": (ORDERS, f"one of {', '.join(ORDERS)}"), "input": (INPUTS, f"one of {', '.join(INPUTS)}"),
    "resize": (SIZE, "a size in pixels"), "crop": (SIZE, "a size in pixels"),
    "mean": (f"{NUMBER},{NUMBER},{NUMBER}", "three numbers"), "std": (f"{NUMBER},{NUMBER},{NUMBER}", "three numbers"),
    "opset": (r"[1-9][0-9]{0,2}", "an opset number"),
}
GRAPH_SHA256 = "graph_sha256"  # the sha256 of the serialized graph message: what the file's weights and nodes are


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where a graph's weights came from and what its input is (see the module doc)."""

    arch: str
    weights: str
    source_sha256: str
    channel_order: str
    input: str
    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    opset: int = OPSET
    ckptconv_version: str = __version__

    def props(self) -> dict[str, str]:
        """The fields as ``metadata_props`` text (floats by ``repr``: they read back exactly)."""
        text = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: ",".join(repr(float(x)) for x in v) if isinstance(v, tuple) else str(v) for k, v in text.items()}


def _value(key: str, text: str) -> Any:
    """One field's text as its value; FormatError when it is not what the field must be."""
    rule, means = RULES[key]
    fits = text in rule if isinstance(rule, tuple) else len(text) <= MAX_TEXT and re.fullmatch(rule, text) is not None
    if fits and key in ("mean", "std"):
        value = tuple(float(x) for x in text.split(","))
        fits = all(math.isfinite(x) for x in value) and (key == "mean" or all(x > 0 for x in value))
        means += "" if fits else " (finite; std positive)"
    if not fits:
        raise FormatError(f"metadata_props {key} is {describe(text)}; expected {means}", fix=FIXES)
    return value if key in ("mean", "std") else int(text) if key in ("resize", "crop", "opset") else text


def _graph_sha256(model: onnx.ModelProto) -> str:
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()


def _props(model: onnx.ModelProto) -> dict[str, str]:
    """The graph's metadata_props as a dict: bounded in number, no key twice."""
    if len(model.metadata_props) > MAX_PROPS:
        raise FormatError(f"the graph has {len(model.metadata_props)} metadata_props (a ckptconv graph has fewer than {MAX_PROPS})", fix=FIXES)
    props: dict[str, str] = {}
    for p in model.metadata_props:
        if p.key in props:
            raise FormatError(f"metadata_props holds {describe(p.key)} twice", fix=FIXES)
        props[p.key] = p.value
    return props


def _contradictions(model: onnx.ModelProto, read: dict[str, Any]) -> None:
    """Refuse provenance the graph itself contradicts: its opset, the input it takes."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset != read["opset"]:
        raise FormatError(f"metadata_props opset is {read['opset']} but the graph imports opset {opset}", fix=FIXES)
    want = IMAGE if read["input"] == "image" else INPUT
    names = [i.name for i in model.graph.input]
    if names != [want]:
        raise FormatError(f"metadata_props input is {read['input']} but the graph's inputs are {describe(names)} (expected [{want!r}])", fix=FIXES)
    if read[GRAPH_SHA256] != _graph_sha256(model):
        raise FormatError("the graph is not the one its metadata_props describe (its graph_sha256 differs): it was changed after ckptconv wrote it", fix=FIXES)


def load(data: bytes | onnx.ModelProto) -> onnx.ModelProto:
    """The graph of ``data`` (serialized bytes, or a ModelProto as it is); FormatError if not ONNX."""
    if isinstance(data, onnx.ModelProto):
        return data
    try:
        return onnx.load_model_from_string(bytes(data))
    except (DecodeError, ValueError, TypeError) as e:
        raise FormatError(f"not an ONNX model: {type(e).__name__}: {str(e)[:200]}", fix="pass the .onnx file ckptconv wrote") from None


def read_provenance(data: bytes | onnx.ModelProto) -> dict[str, Any]:
    """The provenance of a ckptconv ONNX graph, every field checked (``Provenance``'s fields, typed);
    FormatError, one line, for any other file or a missing, repeated, malformed or contradicted field."""
    model = load(data)
    props = _props(model)
    if "ckptconv_version" not in props:
        raise FormatError("not a ckptconv ONNX graph: its metadata_props hold no ckptconv_version", fix=f"{FIXES}, or check the graph yourself")
    missing = [k for k in (*RULES, GRAPH_SHA256) if k not in props]
    if missing:
        raise FormatError(f"the graph's metadata_props lack {', '.join(missing)}", fix=FIXES)
    read = {k: _value(k, props[k]) for k in RULES}
    if not re.fullmatch(HEX64, props[GRAPH_SHA256]) or not props[GRAPH_SHA256]:
        raise FormatError(f"metadata_props {GRAPH_SHA256} is {describe(props[GRAPH_SHA256])}; expected a sha256 in hex", fix=FIXES)
    _contradictions(model, {**read, GRAPH_SHA256: props[GRAPH_SHA256]})
    return asdict(Provenance(**read))


def read_graph_meta(data: bytes | onnx.ModelProto) -> tuple[dict[str, Any], list[str]]:
    """ckptconv's meta the graph carries, read as a safetensors file's metadata is (``io/meta.py``):
    its known, well-typed fields, and a problem line for each ill-typed one."""
    props = _props(load(data))
    return read_meta(decode_meta({k: v for k, v in props.items() if k in FIELDS}))


def stamp(model: onnx.ModelProto, provenance: Provenance, meta: dict[str, Any] | None = None) -> onnx.ModelProto:
    """``model`` with ``provenance`` (and ckptconv's ``meta``) in its metadata_props, replacing those
    keys, read back to check it is what a reader will accept. Returns the same, changed, ModelProto."""
    ours = {**encode_meta(meta or {}), **provenance.props(), GRAPH_SHA256: _graph_sha256(model)}
    clash = [k for k in encode_meta(meta or {}) if k in RULES and encode_meta(meta)[k] != ours[k]]
    if clash:
        raise ValueError(f"the meta and the provenance disagree on {', '.join(clash)}")
    props = {p.key: p.value for p in model.metadata_props if p.key not in ours and p.key not in FIELDS}
    onnx.helper.set_model_props(model, {**props, **ours})
    if read_provenance(model) != asdict(provenance) or read_graph_meta(model)[1]:
        raise ValueError(f"provenance {provenance} does not read back as written")
    return model
