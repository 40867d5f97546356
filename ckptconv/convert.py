"""Converting one checkpoint: check everything first; publish only what passed.

Order of work: refuse impossible outputs before reading anything; load (memory-mapped); choose
the weight set; find the variant; plan every key and check the state dict against the plan and
the cast; then write to a temp file (tensors copied from the input are CRC-checked on the way)
while verification runs, and rename it into place only when both succeeded.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__, detect, engine, files, writer
from . import verify as verification
from .checkpoint import Checkpoint, load
from .errors import FormatError, MappingError, UsageError
from .hashing import start_sha256
from .meta import encode_meta
from .registry import Registry, default_registry
from .tables import Layout
from .variants import Variant

DTYPE_CHOICES = {"keep": None, "fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
VERIFY_CHOICES = ("numeric", "structure", "none")
FP16_MAX = 65504.0


@dataclass
class Options:
    """What to convert to and how; the CLI fills it from its flags."""

    layout: str = "mmdet"  # target layout (a table name, or 'pycls')
    source_layout: str = "pycls"
    arch: str | None = None
    weights: str = "best"  # best | model | ema
    prefix: str | None = None  # None: the table's default
    dtype: str = "keep"  # keep | fp16 | bf16 | fp32
    verify: str = "numeric"  # numeric | structure | none
    input_size: tuple[int, int] = verification.DEFAULT_INPUT
    trust_pickle: bool = False
    force: bool = False
    dry_run: bool = False
    allow_partial: bool = False
    config_out: Path | None = None

    def fingerprint(self) -> dict[str, Any]:
        """The options that change an output's bytes (batch compares them to skip up-to-date files)."""
        return {"layout": self.layout, "from": self.source_layout, "weights": self.weights, "prefix": self.prefix, "dtype": self.dtype}


@dataclass
class Result:
    """What a conversion did; ``to_dict()`` is the ``--json`` report."""

    source: str
    output: str | None
    format: str
    arch: str
    arch_from: str
    source_layout: str
    layout: str
    table: str
    weights: str
    dtype: str
    plan: engine.Plan
    params: int
    bytes: int = 0
    seconds: float = 0.0
    report: verification.Report | None = None
    config: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    library: str = ""
    library_defaults: dict[str, Any] = field(default_factory=dict)  # when they differ from what the weights need

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.report.ok if self.report else True,
            "action": "dry-run" if self.dry_run else "converted",
            "source": self.source,
            "output": self.output,
            "format": self.format,
            "arch": self.arch,
            "arch_from": self.arch_from,
            "from": self.source_layout,
            "layout": self.layout,
            "table": self.table,
            "weights": self.weights,
            "dtype": self.dtype,
            "keys_mapped": len(self.plan.mapped),
            "keys_dropped": len(self.plan.dropped),
            "dropped": [{"key": e.source, "rule": e.rule, "reason": e.reason} for e in self.plan.dropped],
            "absent": [e.target for e in self.plan.absent],
            "params": self.params,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 4),
            "verification": self.report.to_dict() if self.report else None,
            "meta": self.meta,
        }


def _layout(registry: Registry, name: str) -> Layout | None:
    return None if name == engine.PYCLS else registry.layout(name)


def resolve_dtype(sd: dict[str, torch.Tensor], requested: str) -> str:
    if requested not in DTYPE_CHOICES:
        raise UsageError(f"unknown --dtype {requested!r}", fix=f"use one of {', '.join(DTYPE_CHOICES)}")
    if DTYPE_CHOICES[requested]:
        return DTYPE_CHOICES[requested]
    floats = {str(t.dtype)[6:] for t in sd.values() if t.is_floating_point()}
    if len(floats) != 1 or not floats <= set(verification.DTYPES):
        raise MappingError(f"the weights mix floating dtypes {sorted(floats)}", fix="pass --dtype fp16, bf16 or fp32")
    return floats.pop()


def check_cast(key: str, t: torch.Tensor, dtype: str) -> None:
    """Refuse a cast that would change a value beyond rounding: overflow to Inf, or NaN/Inf in the source."""
    if not t.is_floating_point() or str(t.dtype)[6:] == dtype:
        return
    if not torch.isfinite(t).all():
        raise MappingError(f"{key}: the source holds NaN or Inf; refusing to cast to {dtype}", fix="fix the checkpoint or use --dtype keep")
    if dtype == "float16":
        peak = t.abs().max().item() if t.numel() else 0.0
        if peak > FP16_MAX:
            raise MappingError(
                f"{key}: values up to {peak:.6g} overflow float16 (max {FP16_MAX:g})",
                fix="use --dtype bf16 (same range as float32) or keep",
            )


def render_config(layout: Layout, variant: Variant, checkpoint: str, prefix: str) -> str | None:
    """The target library config the weights need, from the table's template."""
    template = layout.config.get("template")
    if not template:
        return None
    widths = [variant.point_width(p) for p in layout.levels.values()]
    out_indices = tuple(layout.config.get("out_indices", ()))
    values = {
        "arch": variant.name,
        "title": variant.title,
        "version": __version__,
        "checkpoint": checkpoint,
        "init_prefix": f", prefix='{prefix}'" if prefix else "",
        "prefix": prefix,
        "out_indices": out_indices,
        "in_channels": [widths[i] for i in out_indices],
        "level_widths": widths,
        "head_w": variant.head_w,
        "num_classes": variant.num_classes,
    }
    return template.format(**values).strip() + "\n"


def build_meta(ckpt: Checkpoint, sha: str, variant: Variant, layout: Layout | None, weights: str, dtype: str, prefix: str, opts: Options) -> dict[str, Any]:
    table = layout.name if layout else engine.PYCLS
    return {
        "ckptconv_version": __version__,
        "source": ckpt.path.name,
        "source_sha256": sha,
        "source_format": ckpt.format,
        "arch": variant.name,
        "layout": table,
        "table": table,
        "table_version": layout.version if layout else 1,
        "weights": weights,
        "dtype": dtype,
        "prefix": prefix,
        "settings": dict(layout.settings) if layout else {"padding": "symmetric", "eps": 1e-5},
        "epoch": ckpt.epoch if ckpt.epoch is not None else ckpt.meta.get("epoch"),
        "options": opts.fingerprint(),  # what was asked: batch re-runs skip outputs made the same way
    }


def convert(
    src: str | Path,
    out: str | Path | None,
    opts: Options | None = None,
    registry: Registry | None = None,
    *,
    source_sha256: str | Future | None = None,
) -> Result:
    """Convert ``src`` to ``out`` (None only with ``dry_run``). Raises a ``CkptError`` on any problem.

    ``source_sha256``: the source's hash, or a Future of it, when the caller started it already
    (the CLI starts it before importing torch; batch has it from its up-to-date check).
    """
    start = time.perf_counter()
    opts = opts or Options()
    registry = registry or default_registry()
    src = Path(src)
    target = _layout(registry, opts.layout)
    source_layout = _layout(registry, opts.source_layout)
    if target is None and source_layout is None:
        raise UsageError("--from and --to are both pycls", fix="pick a target layout")
    if opts.verify not in VERIFY_CHOICES:
        raise UsageError(f"unknown verification {opts.verify!r}", fix=f"use one of {', '.join(VERIFY_CHOICES)}")
    out_path = Path(out) if out is not None else None
    fmt = files.output_format(out_path) if out_path is not None else "none"
    if out_path is None and not opts.dry_run:
        raise UsageError("no output file given", fix="pass OUT, or --dry-run to only print the plan")
    if out_path is not None and not opts.dry_run:
        files.check_output(out_path, [src], opts.force)
        if opts.config_out:
            files.check_output(Path(opts.config_out), [src], opts.force)
    sha = start_sha256(src) if source_sha256 is None and not opts.dry_run and src.is_file() else source_sha256
    ckpt = load(src, trust_pickle=opts.trust_pickle)
    chosen, source_sd = ckpt.select(opts.weights)
    shapes = {k: (tuple(v.shape), str(v.dtype)[6:]) for k, v in source_sd.items()}
    variant, arch_from, source_prefix = detect.resolve_arch(opts.arch, ckpt.cfg, shapes, registry, source_layout, ckpt.meta)
    prefix = opts.prefix if opts.prefix is not None else (target.prefix if target else "")
    plan = engine.plan(variant, target, source=source_layout, target_prefix=prefix, source_prefix=source_prefix)
    engine.check_source(plan, shapes, variants=registry.variants)
    if plan.absent and (target is not None or not opts.allow_partial):
        raise MappingError(
            f"the {plan.source_layout} layout lacks {len(plan.absent)} key(s) {plan.target_layout} needs: "
            + engine.group_keys(e.target for e in plan.absent),
            fix="pass --allow-partial to write a pycls file without them"
            if target is None
            else f"convert from the pycls checkpoint instead (--from pycls --to {plan.target_layout})",
        )
    dtype = resolve_dtype(source_sd, opts.dtype)
    kept = {e.source: source_sd[e.source] for e in plan.mapped}
    spans = ckpt.spans(kept)  # where unchanged tensors lie in the input, to copy them from there
    out_sd = {}
    for e in plan.mapped:
        check_cast(e.source, kept[e.source], dtype)
        out_sd[e.target] = writer.compact(verification.cast(kept[e.source], dtype))
    # Tensors copied from the input are CRC-checked as they are copied; check the rest now.
    copied = {p for t in out_sd.values() if (p := t.untyped_storage().data_ptr()) in spans}
    if not opts.dry_run:
        ckpt.verify_tensors({k: t for k, t in kept.items() if t.untyped_storage().data_ptr() not in copied}, spans)
    sha_hex = sha.result() if isinstance(sha, Future) else (sha or "")
    meta = build_meta(ckpt, sha_hex, variant, target, chosen, dtype, prefix, opts)
    result = Result(
        source=str(src),
        output=str(out_path) if out_path else None,
        format=fmt,
        arch=variant.name,
        arch_from=arch_from,
        source_layout=plan.source_layout,
        layout=plan.target_layout,
        table=(target or source_layout).table_id,
        weights=chosen,
        dtype=dtype,
        plan=plan,
        params=sum(t.numel() for t in out_sd.values() if t.is_floating_point()),
        meta=meta,
        dry_run=opts.dry_run,
    )
    if target is not None:
        result.config = render_config(target, variant, str(out_path or "OUT"), prefix)
        result.library = target.library
        if any(target.library_defaults.get(k, v) != v for k, v in target.settings.items() if k in ("padding", "eps")):
            result.library_defaults = dict(target.library_defaults)
    if opts.dry_run:
        result.seconds = time.perf_counter() - start
        return result
    names = {t.untyped_storage().data_ptr(): k for k, t in kept.items()}
    source = writer.Source(ckpt.path, spans, names) if copied else None
    pending = files.PendingWrite(out_path)
    pending.start(lambda f: _write(f, fmt, out_sd, meta, target, source))  # I/O overlaps verification
    config = files.PendingWrite(Path(opts.config_out)) if opts.config_out and result.config else None
    try:
        if config is not None:
            config.write(lambda f: f.write(result.config.encode()))
        if opts.verify != "none":
            result.report = verify_conversion(plan, kept, out_sd, dtype, opts, str(out_path), registry)
            result.report.raise_if_failed()
        pending.wait()
    except KeyboardInterrupt:
        pending.abort()
        config and config.abort()
        raise
    except BaseException as e:
        pending.abort(wait=True)
        config and config.abort()
        if isinstance(pending.error, FormatError) and not isinstance(e, FormatError):
            raise pending.error from None  # a corrupt input explains a failed check: say that
        raise
    result.bytes = pending.commit()
    if config is not None:
        config.commit()
    result.seconds = time.perf_counter() - start
    return result


def _write(f, fmt: str, sd: dict[str, torch.Tensor], meta: dict[str, Any], target: Layout | None, source: writer.Source | None) -> None:
    if fmt == "safetensors":
        writer.write_safetensors(f, sd, encode_meta(meta), source)
        return
    container = target.container if target else "pycls"
    if container == "state_dict":
        obj: Any = {"state_dict": sd, "meta": meta}
    elif container == "pycls":
        obj = {"epoch": meta.get("epoch") or 0, "model_state": sd}
    else:
        obj = sd
    writer.write_pth(f, obj, source)


def verify_conversion(
    plan: engine.Plan, source: dict, converted: dict, dtype: str, opts: Options, path: str, registry: Registry
) -> verification.Report:
    """Verify a conversion in memory: structure, bit identity, and (by default) numerics."""
    start = time.perf_counter()
    layout = plan.target or plan.source
    settings = layout.settings  # the settings the weights need: verification of a conversion uses them
    report = verification.Report(path, plan.variant.name, layout.name, settings["padding"], settings["eps"], opts.input_size)
    if plan.target is not None:
        ok = verification.check_structure(report, converted, plan.target, plan.variant, plan.target_prefix, dtype)
    else:
        ok = verification.check_pycls_structure(report, converted, plan.variant, registry)
    verification.check_tensors(report, plan, source, converted, dtype)
    if ok and opts.verify == "numeric" and report.ok:
        cast = verification.cast
        if plan.target is not None:  # the target reference on the output, pycls on the source (as cast)
            pycls_sd = {e.pycls: cast(source[e.source], dtype) for e in plan.mapped}
            drift = {e.pycls: source[e.source] for e in plan.mapped} if dtype != "float32" else None
            target_sd = verification.strip_prefix(converted, plan.target_prefix)
            verification.compare(report, plan.variant, plan.target, target_sd, pycls_sd, drift_sd=drift)
        else:  # back to pycls: the source layout's reference on the source, pycls on the output
            source_sd = verification.strip_prefix({k: cast(v, dtype) for k, v in source.items()}, plan.source_prefix)
            verification.compare(report, plan.variant, plan.source, source_sd, converted)
    return verification.timed(report, start)
