"""What a checkpoint holds, without reading its tensor data.

zip files are memory-mapped (tensors are counted and measured, never read); safetensors files are
described from their JSON header alone. The legacy format has no index, so it is loaded whole.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from .errors import CkptError
from .io import dtypes
from .io.checkpoint import load
from .io.files import is_graph, local_graph
from .io.formats import read_safetensors_header, sniff
from .io.meta import decode_meta, read_meta
from .io.ranged import open_remote
from .io.store import Url, is_url, location
from .libraries import libraries
from .options import PYCLS
from .tables import detect, engine
from .tables.registry import Registry
from .tables.render import recorded_config


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _model(shapes, registry: Registry, cfg: Any, meta: dict) -> tuple[detect.Match | None, str, list]:
    """The model and layout a weight set holds: the structure a pycls file's cfg, meta or tensors
    give, else the zoo model and layout its keys fit; and what said so."""
    ranked = detect.rank(shapes, registry, registry.all_layouts())  # the near misses a file is said to be close to
    if ranked[0].exact:  # which exact fit: the rule verify applies too (the layout a ckptconv meta names among equal ones)
        best = detect.identify(shapes, registry, prefer=meta.get("layout") if isinstance(meta.get("layout"), str) else None)
        stated = _stated(cfg, shapes, registry, meta, best.variant)
        return best, ("cfg and shapes" if stated.startswith(" and cfg") else "shapes") + stated.removeprefix(" and cfg"), ranked
    try:
        variant, how = detect.pycls_structure(cfg, shapes, registry, meta)
    except CkptError:
        return None, "", ranked
    match = detect.score(shapes, variant, registry.pycls_layout(variant.family))
    return (match, how, ranked) if match.exact else (None, "", ranked)


def _stated(cfg: Any, shapes, registry: Registry, meta: dict, variant) -> str:
    words = ""
    try:
        if cfg is not None and detect.pycls_structure(cfg, shapes, registry)[0].structure() == variant.structure():
            words = " and cfg"
    except CkptError:
        pass
    return words + (", agreeing with the ckptconv meta" if meta.get("arch") == variant.name else "")


def describe_set(shapes: dict[str, tuple[tuple[int, ...], str]], registry: Registry, cfg: Any, meta: dict) -> dict[str, Any]:
    """Counts, dtypes, bytes and the model and layout a weight set fits (and what told us)."""
    counts = Counter(d for _, d in shapes.values())
    info: dict[str, Any] = {
        "tensors": len(shapes),
        "params": sum(_numel(s) for s, d in shapes.values() if d.startswith(("float", "bfloat"))),
        "bytes": sum(_numel(s) * dtypes.itemsize(d) for s, d in shapes.values()),
        "dtypes": dict(counts),
    }
    best, via, ranked = _model(shapes, registry, cfg, meta)
    if best is None:
        closest = ranked[0]
        info.update(fit=fit_words(closest), layout=None, arch=None, closest=f"{closest.layout_name} {closest.variant.name}",
                    misfits={"missing": closest.missing, "unexpected": closest.unexpected, "wrong_shape": closest.wrong_shape})
        partial = [m for m in ranked if m.layout_name == PYCLS and not m.unexpected and not m.wrong_shape and m.missing]
        if partial:
            info["note"] = f"a partial pycls {partial[0].variant.name} file ({partial[0].missing} keys absent)"
        return info
    twins = [m.layout_name for m in ranked[1:] if m.exact and m.variant is best.variant and m.prefix == best.prefix]
    info.update(fit=fit_words(best, twins), layout=best.layout_name, arch=best.variant.name, prefix=best.prefix, detected_from=via,
                model=best.variant.title, assumed=list(best.variant.assumed))
    if twins:  # timm's and torchvision's ResNet keys are the same: both load the file
        info["also_fits"] = twins
    return info


def loaded_by(ckpt) -> dict[str, str]:
    """Which weight set each library's loader would take from the file (or why none)."""
    out = {}
    for lib in libraries().values():
        try:
            out[lib.title] = ckpt.loaded_by(lib.loads, lib.title)[0]
        except CkptError:
            out[lib.title] = f"the whole file as weights ({', '.join(ckpt.top_keys[:4])}): nothing it can use"
    return out


def meta_words(meta: dict) -> str:
    """A ckptconv meta in one line: what, from where, how."""
    if not meta:
        return ""
    what = f"{meta.get('arch', '?')} in the {meta.get('layout', '?')} layout (table version {meta.get('table_version', '?')})"
    how = ", ".join(f"{v} {k}" for k, v in (("weights", meta.get("weights")), ("input", str(meta.get("channel_order", "")).upper()),
                                                ("dtype", meta.get("dtype"))) if v)
    source = f"from {meta.get('source', '?')} (sha256 {str(meta.get('source_sha256', ''))[:12]}...)" if meta.get("source_sha256") else ""
    return " ".join(part for part in (what, f"[{how}]" if how else "", source, f"by ckptconv {meta.get('ckptconv_version', '?')}") if part)


def fit_words(best, twins: list[str] = ()) -> str:
    if best.exact:
        names = " or ".join([best.layout_name, *twins])
        return f"{names} {best.variant.name}" + (f", prefix {best.prefix!r}" if best.prefix else "")
    return (f"no exact fit: closest is {best.layout_name} {best.variant.name} ({best.missing} keys missing, "
            f"{best.unexpected} unexpected, {best.wrong_shape} of the wrong shape)")


def top_level_words(kind: str, top_keys: list[str]) -> str:
    """What the top level holds, in words: a bare state dict is not a list of 400 keys."""
    if kind in ("bare", "safetensors"):
        return f"the state dict itself: {len(top_keys)} tensors under {engine.key_groups(top_keys)}"
    return ", ".join(top_keys)


def inspect_file(path: str | Path | Url, registry: Registry, *, trust_pickle: bool = False) -> dict[str, Any]:
    path = location(path)
    if is_graph(path):
        local_graph(path)
        from .onnx.graph_files import inspect_graph
        from .preflight import require_onnx

        require_onnx("reading an ONNX graph")
        return inspect_graph(path)
    opened = open_remote(path) if is_url(path) else None  # an object: its head and index, read by range
    reads = opened.reads if opened is not None else None
    fmt = sniff(path, reads)
    out: dict[str, Any] = {"path": str(path), "format": fmt, "file_bytes": opened.size if opened is not None else path.stat().st_size}
    if opened is not None:
        out["read"] = opened.read_stats()
    if fmt == "safetensors":
        header = read_safetensors_header(path, reads)
        meta, _ = read_meta(decode_meta(header.pop("__metadata__", None) or {}))
        shapes = {k: (tuple(v["shape"]), dtypes.FROM_SAFETENSORS[v["dtype"]]) for k, v in header.items()}
        out.update(kind="safetensors", top_level_keys=None, top_level=top_level_words("safetensors", list(shapes)), meta=meta, meta_words=meta_words(meta))
        out["loaded_by"] = {lib.title: "state_dict (the whole file)" for lib in libraries().values()}
        out["weight_sets"] = {"state_dict": describe_set(shapes, registry, None, meta)}
        out["config"] = recorded_config(path, meta, registry)
        return out
    ckpt = load(path, trust_pickle=trust_pickle, opened=opened)
    out["loaded_by"] = loaded_by(ckpt)
    out.update(kind=ckpt.kind, top_level_keys=ckpt.top_keys, top_level=top_level_words(ckpt.kind, ckpt.top_keys),
               meta=ckpt.meta, meta_words=meta_words(ckpt.meta), epoch=ckpt.epoch, has_cfg=ckpt.cfg is not None)
    if ckpt.kind == "pycls":
        out["errors"] = ckpt.errors
        out["best"] = ckpt.select("best")[0]
    sets = {}
    for name, sd in ckpt.weight_sets.items():
        shapes = dtypes.shapes_of(sd)
        sets[name] = describe_set(shapes, registry, ckpt.cfg, ckpt.meta)
    out["weight_sets"] = sets
    out["config"] = recorded_config(path, ckpt.meta, registry)
    return out
