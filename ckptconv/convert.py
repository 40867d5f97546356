"""Converting one checkpoint, top to bottom.

A frozen ``Request`` says what to do. ``convert`` checks every output path against the inputs
(before reading anything), ``prepare``s the conversion (load memory-mapped, choose the weight set,
find the variant, plan every key, check the state dict against the plan, cast: nothing written),
runs the shared checks, then writes to temp files and publishes them together. A dry run is
``prepare`` and nothing more.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from . import signals
from .conversion import Conversion
from .errors import MappingError
from .io import dtypes, files, hashing, writer
from .io.checkpoint import Checkpoint, load, span_values, written_records
from .io.hashing import Hashed, tensors_digest
from .io.meta import encode_meta, plain_state_dict
from .io.store import is_url
from .model.families import FAMILIES
from .options import ONNX, PYCLS, Expectations, Request
from .preflight import Ready, ready
from .tables import engine
from .tables.engine import Plan
from .tables.pipeline import configured, needed, source_order
from .tables.registry import Registry, builtin_dir, builtin_layout_names, registry_for
from .tables.render import render_config
from .tables.resolve import Identified, Resolved, model_of, output_options, resolve
from .verification import checks
from .verification.report import Report
from .version import __version__


def _resolve(hashed: Hashed | Future | None) -> Hashed | None:
    return hashed.result() if isinstance(hashed, Future) else hashed


def _identify(request: Request, ckpt: Checkpoint, sd: dict, registry: Registry) -> Identified:
    """The model the checkpoint holds: --arch, else its structure (--cfg or its own cfg, its meta, its tensors)."""
    shapes = dtypes.shapes_of(sd)
    return model_of(request, ckpt.cfg, shapes, ckpt.meta, registry)


def _check_absent(plan: Plan, allow_partial: bool) -> None:
    if not plan.absent or (plan.target.name == PYCLS and allow_partial):
        return
    to_pycls = plan.target.name == PYCLS
    raise MappingError(
        f"the {plan.source_layout} layout lacks {len(plan.absent)} key(s) {plan.target_layout} needs: "
        + engine.group_keys(e.target for e in plan.absent),
        fix="pass --allow-partial to write a pycls file without them"
        if to_pycls
        else f"convert from the pycls checkpoint instead (--from pycls --to {plan.target_layout})",
    )


def _output_tensors(plan: Plan, source: dict[str, torch.Tensor], dtype: str, flips: frozenset[str]) -> dict[str, torch.Tensor]:
    """The output tensors, cast (and the first conv reversed), in the order the library's own
    ``state_dict()`` lists them (mmdet and timm keep a block's shortcut last, pycls first)."""
    out = {}
    for e in _in_reference_order(plan):
        dtypes.check_cast(e.source, source[e.source], dtype)
        out[e.target] = writer.compact(checks.expected(e, source, dtype, flips))
    return out


def _in_reference_order(plan: Plan) -> list[engine.Entry]:
    target = plan.target
    keys = checks.reference_keys(target.reference, plan.variant, tuple(target.config.get("out_indices", ())))
    rank = {engine.with_prefix(plan.target_prefix, k): i for i, k in enumerate(keys)}
    return sorted(plan.mapped, key=lambda e: rank.get(e.target, len(rank)))


def colours(ckpt: Checkpoint, plan: Plan, order: str, registry: Registry) -> tuple[checks.Colours, str]:
    """The order the source takes (and what said so), the order the output will, and the
    preprocessing the library of the side the checks run (the target; from the way back to pycls,
    the source) then needs."""
    have, said = source_order(ckpt.meta, plan.source_layout, plan.source.pipeline)
    stats = registry.pycls_layout(plan.variant.family).pipeline
    side, side_order = (plan.source, have) if plan.target.name == PYCLS else (plan.target, order)
    return checks.Colours(have, order, needed(side.pipeline, side_order, stats), stats), said


def _check_statistics(ckpt: Checkpoint, plan: Plan, source: dict[str, torch.Tensor], copies: writer.Copies) -> None:
    """BatchNorm statistics no training writes (NaN, Inf, a negative variance) are refused, naming
    the key; a tensor copied file to file is read from its record, never paged in."""
    for e in plan.mapped:
        if e.source.endswith(("running_var", "running_mean")):
            span = copies.spans.get(e.target)
            values = source[e.source] if span is None else span_values(ckpt.reads, span, source[e.source])
            problem = dtypes.statistics_problem(e.source, values)
            if problem:
                raise MappingError(problem, fix="recompute them (pycls's precise BN) or convert another checkpoint")


def _copies(ckpt: Checkpoint, weight_set: str, plan: Plan, source: dict, tensors: dict) -> writer.Copies:
    """The output tensors that are their source tensors, unchanged, with a known input record."""
    spans = ckpt.spans(weight_set)
    kept = [e for e in plan.mapped if e.source in spans and tensors[e.target] is source[e.source]]
    return writer.Copies(ckpt.reads, {e.target: spans[e.source] for e in kept}, {e.target: e.source for e in kept}, shown=ckpt.path)


def prepare(request: Request | Ready, *, source_hash: Hashed | Future | None = None) -> Conversion:
    """Load, select, detect, plan, check and cast; write nothing. Raises a ``CkptError`` on any misfit.
    --to onnx: the conversion to pycls's keys and BGR weights the graph is exported from."""
    request = ready(request, writes=False).request  # an unusable option or unknown name fails before anything is read
    if request.layout != ONNX:
        return _prepare(request, source_hash)
    from .onnx import as_pycls, graph_meta
    from .onnx.target import provenance_of, snippet

    c = _prepare(as_pycls(request), source_hash)
    c = replace(c, request=request, meta=graph_meta(c.meta, request), colours=replace(c.colours, target=request.channel_order or "rgb"))
    return replace(c, config=snippet(provenance_of(c), request.output, c.variant, request.levels))


def _prepare(request: Request, source_hash: Hashed | Future | None) -> Conversion:
    registry = registry_for(request.tables)
    ckpt = load(request.source, trust_pickle=request.trust_pickle)
    weight_set, sd = ckpt.select(request.weights)
    ckpt.fetch(weight_set)  # an object on a store: this set's records, and no other
    found = _identify(request, ckpt, sd, registry)
    variant, arch_from = found.variant, found.how
    r = resolve(request, variant, registry)
    plan = engine.plan(variant, r.target, r.source, target_prefix=r.prefix, source_prefix=found.prefix)
    engine.check_source(plan, dtypes.shapes_of(sd), variants=registry.variants_of(variant.family))
    _check_absent(plan, request.allow_partial)
    if not plan.mapped:
        raise MappingError(f"the {r.target.name} table maps none of the {variant.name} keys: the output would hold no weights",
                           fix=f"check the table's rules ({r.target.path or r.target.name})")
    dtype = dtypes.choose(request.dtype, dtypes.floats_of(sd))
    colour, order_from = colours(ckpt, plan, r.channel_order, registry)
    tensors = _output_tensors(plan, sd, dtype, colour.flips)
    copies = _copies(ckpt, weight_set, plan, sd, tensors).with_crcs(tensors)  # each tensor's CRC-32, once
    _check_statistics(ckpt, plan, sd, copies)
    ckpt.verify_tensors(weight_set, [e.source for e in plan.mapped if e.target not in copies.spans])
    hashed = _resolve(source_hash)
    meta = build_meta(request, r, ckpt, hashed.sha256 if hashed else "", weight_set, dtype)
    meta["tensors_crc"] = tensors_digest(copies.crcs)  # what is written
    config = render_config(r.target, variant, request.output, r.prefix, needed(r.target.pipeline, colour.target, colour.stats))
    return Conversion(request=request, checkpoint=ckpt, weight_set=weight_set, variant=variant, arch_from=arch_from, plan=plan,
                      dtype=dtype, source=sd, tensors=tensors, copies=copies, meta=meta, config=config, colours=colour, order_from=order_from,
                      notes=found.notes, source_hash=hashed)


def build_meta(request: Request, r: Resolved, ckpt: Checkpoint, sha: str, weight_set: str, dtype: str) -> dict[str, Any]:
    target, order = r.target, r.channel_order
    return {
        "ckptconv_version": __version__,
        "source": ckpt.path.name,
        "source_sha256": sha,
        "source_format": ckpt.format,
        "arch": r.variant.name,
        "layout": target.name,
        "table": target.name,
        "table_version": target.version,
        "table_sha256": target.digest,
        "weights": weight_set,
        "dtype": dtype,
        "prefix": r.prefix,
        "channel_order": order,
        "settings": {"padding": target.settings["padding"], "eps": r.variant.eps, "channel_order": order},
        "epoch": ckpt.epoch if ckpt.epoch is not None else ckpt.meta.get("epoch"),
        "options": output_options(request, r),
        "model": r.variant.record(),  # the numbers it was built from: read back by verify and the way back to pycls
        "assumed": list(r.variant.assumed),
    } | ({"source_errors": dict(ckpt.errors)} if ckpt.errors else {})  # pycls's test_err / ema_err: verify --in-library shows them beside its accuracy


@dataclass
class Result:
    """What a conversion did; ``to_dict()`` is the ``--json`` report."""

    conversion: Conversion
    output: Path | None = None
    format: str = "none"
    bytes: int = 0
    seconds: float = 0.0
    report: Report | None = None
    written: writer.Written = field(default_factory=writer.Written)

    @property
    def ok(self) -> bool:
        return self.report.ok if self.report else True

    def to_dict(self) -> dict[str, Any]:
        c, plan = self.conversion, self.conversion.plan
        return {
            "ok": self.ok,
            "action": "converted" if self.output else "dry-run",
            "source": str(c.request.source),
            "output": str(self.output) if self.output else None,
            "format": self.format,
            "arch": c.variant.name,
            "arch_from": c.arch_from,
            "from": plan.source_layout,
            "layout": c.layout,
            "table": plan.target.table_id,
            "weights": c.weight_set,
            "dtype": c.dtype,
            "keys_mapped": len(plan.mapped),
            "keys_dropped": len(plan.dropped),
            "dropped": [{"key": e.source, "rule": e.rule, "reason": e.reason} for e in plan.dropped],
            "absent": [e.target for e in plan.absent],
            "params": c.params,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 4),
            "channel_order": c.colours.target,
            "source_channel_order": {"order": c.colours.source, "from": c.order_from},
            "preprocessing": _preprocessing(c),
            "verification": self.report.to_dict() if self.report else None,
            "write": self.written.to_dict() if self.output else None,
            "source_read": _source_read(c.checkpoint),
            "config": c.config,
            "warnings": warnings(c),
            "meta": c.meta,
        }


def _source_read(ckpt: Checkpoint) -> dict[str, int] | None:
    """What was read of a source on object storage (bytes, the object's size, requests); None for a local file."""
    return ckpt.opened.read_stats() if getattr(ckpt.opened, "ranged", False) else None


def _preprocessing(c: Conversion) -> dict[str, Any]:
    """What the output's input needs: the pipeline's config, or what an ONNX graph records it takes."""
    if c.layout != ONNX:
        return needed(c.target.pipeline, c.colours.target, c.colours.stats).config()
    from .onnx.target import provenance_of

    p = provenance_of(c)
    keys = ("input", "channel_order", "resize", "crop") + (("mean", "std") if p["input"] == "tensor" else ())
    return {k: list(p[k]) if isinstance(p[k], tuple) else p[k] for k in keys} | {"inside_the_graph": p["input"] == "image"}


def warnings(c: Conversion) -> list[str]:
    """What a user of these weights must not overlook, one line each."""
    out = list(c.notes)
    if defaults := c.library_defaults:
        settings = ", ".join(f"{k}={defaults[k]}" if k == "padding" else f"BN eps={defaults[k]:g}" for k in ("padding", "eps") if k in defaults)
        builder = c.variant.library(c.target.name)
        who = builder["builder"] if "eps" in builder and builder.get("builder") else c.target.loads_into
        out.append(f"{who}'s defaults ({settings}) compute different features from these weights: use the config printed with them (the API: Converted.config)")
    for what in c.variant.assumed:
        out.append(f"assumed {what}; pass --cfg with the run's config.yaml (or --arch) to state the model")
    if c.order_from.startswith("assumed"):
        out.append(f"the source's channel order is {c.order_from} ({c.colours.source.upper()}); pass --channel-order to say otherwise")
    for table in {c.target.path: c.target, c.plan.source.path: c.plan.source}.values():
        if table.path and not Path(table.path).resolve().is_relative_to(builtin_dir().resolve()) and table.name in builtin_layout_names():
            out.append(f"the {table.name} table is {table.path}, not ckptconv's own: it replaces the built-in {table.name} layout")
    return out


def verify(conversion: Conversion, level: str | None = None, *, expect: Expectations | None = None) -> Report:
    """The shared checks on a prepared conversion, with the settings its weights need, or with a
    config's (``expect``: its padding, eps and pipeline; verify --config on a pycls file it converts
    on load). Bit identity of the tensors is checked on the file written: ``_read_back``."""
    plan, settings, colours = conversion.plan, conversion.target.needs(conversion.variant), conversion.colours
    padding, eps = settings["padding"], settings["eps"]
    if expect is not None:
        padding, eps = expect.padding or padding, expect.eps if expect.eps is not None else eps
        colours = replace(colours, pipeline=configured(conversion.target.pipeline, colours.pipeline, expect))
    report = Report(str(conversion.request.output or ""), conversion.variant.name, plan.target_layout, padding, eps, conversion.request.input_size,
                    paddable=FAMILIES[conversion.variant.family].paddable)
    case = checks.Case(plan, conversion.source, conversion.tensors, conversion.dtype, colours, frozenset(e.target for e in plan.absent))
    return checks.run(report, case, level or conversion.request.verify)


def _read_back(c: Conversion, written: Path, report: Report) -> None:
    """The temp file just written, read through its own index as the target's library reads it:
    every tensor of the conversion, with its shape and dtype, and its bytes' CRC-32 equal to the
    source record's (tensors copied file to file) or to the converted tensor's (cast, or the first
    conv reversed). Raises ``VerificationError`` before anything is published."""
    found = written_records(written, c.target.library.loads, c.target.library.title)
    problem = None
    for key, t in c.tensors.items():
        want = (tuple(t.shape), dtypes.name(t.dtype), c.copies.crcs[key])
        if found.get(key) != want:
            problem = f"{key} is not in the written file as converted" + ("" if key in found else " (missing)")
            break
    if problem is None and len(found) != len(c.tensors):
        problem = f"the written file holds {len(found)} tensors, not {len(c.tensors)}"
    copied = sum(k in c.copies.spans for k in c.tensors)
    report.add("tensors", problem is None, problem or f"the written file holds all {len(c.tensors)} tensors as converted, read back "
               f"({copied} copied from the source, checked against its CRC-32s)")
    report.raise_if_failed()


def _write(f, fmt: str, c: Conversion) -> writer.Written:
    if fmt == "safetensors":
        # "format": "pt" as torch's own safetensors writers put it: transformers 4.x refuses a file with metadata but no format
        return writer.write_safetensors(f, c.tensors, {**encode_meta(c.meta), "format": "pt"}, c.copies)
    container = c.target.container
    if container == "state_dict":
        obj: Any = {"state_dict": c.tensors, "meta": c.meta}
    elif container == "pycls":
        obj = {"epoch": c.meta.get("epoch") or 0, "model_state": c.tensors}
    else:
        obj = plain_state_dict(c.tensors, c.meta)
    return writer.write_pth(f, obj, c.tensors, c.copies)


def checked(request: Request | Ready, *, source_hash: Hashed | Future | None = None) -> tuple[Conversion, Report | None]:
    """``prepare``, then the checks the request asks for, raising ``VerificationError`` when one
    fails: a conversion ready to write or use in memory (the Python API, convert on load)."""
    conversion = prepare(request, source_hash=source_hash)
    request = conversion.request
    if request.layout == ONNX:
        from .onnx.target import check_graph, export

        conversion = replace(conversion, graph=export(conversion))
        return conversion, check_graph(conversion) if request.verify != "none" else None
    if request.folder:  # a model the library cannot build from config.json is refused before the checks run
        folder = folder_kind(conversion)
        folder.check(conversion)
        where = os.path.abspath(request.output) if request.output is not None else "DIR"  # in memory: where the folder would be
        conversion = replace(conversion, config=folder.usage(conversion, where, _hub_residual(conversion)))
    report = verify(conversion) if request.verify != "none" else None
    if report is not None:
        report.raise_if_failed()
    return conversion, report


def _hub_residual(c: Conversion) -> float | None:
    """How far timm's own transforms are from pycls's input (the model card says it)."""
    from .verification.photo import stock_residual

    if c.colours.stats is None:
        return None
    return stock_residual(c.target.pipeline, c.colours.target, c.colours.stats, (c.variant.test_size, c.variant.im_size))


def folder_kind(c: Conversion):
    """The module that says what the model folder of ``c``'s library holds: ``ckptconv/hub.py``
    (timm) or ``ckptconv/hub_transformers.py``; each gives ``check``, ``usage`` and ``files``."""
    if c.target.library.name == "transformers":
        from . import hub_transformers

        return hub_transformers
    from . import hub

    return hub


def _encoded(content: dict[str, Any] | str) -> bytes:
    """A folder file's bytes: a JSON object through json.dumps, the card as it is."""
    import json

    return (json.dumps(content, indent=2) + "\n").encode() if isinstance(content, dict) else content.encode()


def _write_folder(c: Conversion, folder: Path, report: Report | None) -> tuple[writer.Written, int]:
    """The model folder (timm: ckptconv/hub.py; transformers: ckptconv/hub_transformers.py):
    model.safetensors written and read back, then the library's JSON files and the model card, in a
    temp folder renamed into place whole (with the config file, if asked)."""
    from .io import folder as folder_io

    residual = _hub_residual(c)
    config_out = c.request.config_out if c.config else None
    with folder_io.pending_folder(folder) as pending, files.all_or_nothing(config_out) as (snippet,):
        written = pending.write(folder_io.WEIGHTS, lambda f: _write(f, "safetensors", c))
        if report is not None:
            _read_back(c, pending.temp / folder_io.WEIGHTS, report)
        for name, content in folder_kind(c).files(c, report, residual).items():  # the card says what the read-back proved
            data = _encoded(content)
            pending.write(name, lambda f, data=data: f.write(data))
        if snippet is not None:
            snippet.write(lambda f: f.write(c.config.encode()))
        _still_the_source(c)
        with signals.publishing():
            pending.commit(replace=c.request.force)
            if snippet is not None:
                snippet.commit(replace=c.request.force)
    return written, sum((folder / name).stat().st_size for name in folder_io.files_of(c.target.name))


def _write_graph(c: Conversion, output: Path, report: Report | None) -> tuple[writer.Written, int]:
    """The graph ``checked`` exported (and ran, when verifying) written to a temp file, read back
    byte for byte, and published with the snippet (--config-out), both or neither."""
    config_out = c.request.config_out
    with files.all_or_nothing(output, config_out) as (pending, config):
        pending.write(lambda f: f.write(c.graph))
        if report is not None:
            same = pending.tmp.read_bytes() == c.graph
            report.add("graph file", same, "the written file holds the graph checked, byte for byte" if same else "the written file is not the graph checked")
            report.raise_if_failed()
        if config is not None:
            config.write(lambda f: f.write(c.config.encode()))
        _still_the_source(c)
        with signals.publishing():
            size = pending.commit(replace=c.request.force)
            if config is not None:
                config.commit(replace=c.request.force)
    return writer.Written(method="onnx"), size


def _still_the_source(c: Conversion) -> None:
    """The file hashed is the file the tensors were read from, unchanged since: the sha256 in the
    meta is the tensors' (every read went through that open file: ``Checkpoint.opened``)."""
    opened = c.checkpoint.opened
    if opened is not None and ((c.source_hash is not None and c.source_hash.stamp != opened.stamp) or not opened.unchanged()):
        raise hashing.changed(c.request.source, "the source")


def _write_outputs(c: Conversion, output: Path, fmt: str, report: Report | None) -> tuple[writer.Written, int]:
    """Write OUT (and the config) to temp files, read OUT back (when verifying), and publish both
    together. (Writing while checking was measured in benchmarks/: it saved nothing.)"""
    config_out = c.request.config_out if c.config else None
    with files.all_or_nothing(output, config_out) as (pending, config):
        written = pending.write(lambda f: _write(f, fmt, c))
        if report is not None:
            _read_back(c, pending.tmp, report)
        if config is not None:
            config.write(lambda f: f.write(c.config.encode()))
        _still_the_source(c)
        with signals.publishing():  # both published, or neither; then the run is done
            size = pending.commit(replace=c.request.force)
            if config is not None:
                config.commit(replace=c.request.force)
    return written, size


def convert(request: Request | Ready, *, source_hash: Hashed | Future | None = None) -> Result:
    """Convert ``request.source`` to ``request.output``. Raises a ``CkptError`` on any problem;
    nothing is left behind but the published outputs."""
    start = time.perf_counter()
    checked_once = ready(request, writes=True)
    request, fmt = checked_once.request, checked_once.format
    hashed = source_hash if source_hash is not None or is_url(request.source) else hashing.start_hash(request.source)  # an object is not read whole
    conversion, report = checked(checked_once, source_hash=hashed)
    write = {"hub": _write_folder, "onnx": _write_graph}.get(fmt) or (lambda c, out, r: _write_outputs(c, out, fmt, r))
    written, size = write(conversion, request.output, report)
    seconds = time.perf_counter() - start
    return Result(conversion, output=request.output, format=fmt, bytes=size, seconds=seconds, report=report, written=written)
