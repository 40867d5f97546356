"""Verifying a converted file, alone or against its source, with the checks conversion runs.

Per file: **identity** (the tensors, the file's meta and the options name one variant and layout),
the **weight sets** (the set the layout's library loads is the one checked; other sets in the file
must agree with it), then ``checks.run``: structure, and with ``--source`` **provenance** and
bit identity, then the forward passes with the settings under test. Without the source, the pycls
side runs the file's own weights mapped back through the table: that cannot see a swapped block,
but it proves the settings under test reproduce pycls's arithmetic.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UsageError
from ..io import dtypes
from ..io.checkpoint import Checkpoint, load
from ..io.files import is_graph, local_graph
from ..io.hashing import start_hash
from ..model import structure
from ..model.families import FAMILIES
from ..model.variants import replaced
from ..options import PYCLS, Expectations
from ..preflight import check_expectations
from ..tables import detect, engine
from ..tables import pipeline as preprocess
from ..tables.registry import Registry, registry_for
from ..verification import checks
from ..verification.report import Report


def _check_meta(report: Report, ckpt: Checkpoint, match: detect.Match, opts: Expectations) -> None:
    """The tensors, the meta and the options must tell the same arch and layout."""
    meta, arch, layout = ckpt.meta, opts.arch, opts.layout
    problems = list(ckpt.meta_problems)
    if arch and arch != match.variant.name and match.exact:
        problems.append(f"--arch {arch} was asked but the tensors are {match.variant.name}")
    if meta.get("arch") and meta["arch"] != match.variant.name:
        problems.append(f"meta records arch {meta['arch']} but the tensors are {match.variant.name}")
    if meta.get("layout") and meta["layout"] != match.layout_name:
        problems.append(f"meta records layout {meta['layout']} but the keys are {match.layout_name}")
    if "prefix" in meta and meta["prefix"] != match.prefix:
        problems.append(f"meta records prefix {meta['prefix']!r} but the keys have {match.prefix!r}")
    if layout and meta.get("layout") and meta["layout"] != layout:
        problems.append(f"meta records layout {meta['layout']} but --layout {layout} was asked")
    if arch and meta.get("arch") and meta["arch"] != arch:
        problems.append(f"meta records arch {meta['arch']} but --arch {arch} was asked")
    if opts.channel_order and meta.get("channel_order") and meta["channel_order"] != opts.channel_order:
        problems.append(f"meta records channel order {meta['channel_order']} but --channel-order {opts.channel_order} was asked: "
                        f"the file says what its weights take")
    if meta or problems:
        report.add("identity", not problems, problems[0] if problems else f"meta agrees with the tensors ({match.variant.name}, {match.layout_name})")


def _back(match: detect.Match, registry: Registry) -> engine.Plan:
    """The file's keys mapped back to pycls's (``match``: what the file is taken for)."""
    return engine.plan(match.variant, match.layout, registry.pycls_layout(match.variant.family), target_prefix=match.prefix)


def _by_pycls_key(sd: dict, back: engine.Plan) -> dict[str, tuple[str, torch.Tensor]]:
    """pycls key -> (the key in this file, its tensor)."""
    return {e.pycls: (e.target, sd[e.target]) for e in back.mapped if e.target in sd}


def _check_sets(report: Report, ckpt: Checkpoint, found: Found, registry: Registry) -> None:
    """Every other weight set of the layout must hold what the loaded one holds (a pycls file's
    model and EMA sets are meant to differ: pycls itself picks one)."""
    match, loaded = found.match, found.loaded
    if match.layout_name == PYCLS or len(ckpt.weight_sets) < 2:
        return
    want = _by_pycls_key(found.sd, found.back)
    for name, sd in ckpt.weight_sets.items():
        if name == loaded:
            continue
        other = detect.identify(dtypes.shapes_of(sd), registry)
        same = (other.layout, other.prefix) == (match.layout, match.prefix)
        got = _by_pycls_key(sd, found.back if same else _back(other, registry)) if other.exact and other.variant is match.variant else {}
        differ = sorted(key for p, (key, t) in want.items() if p not in got or not checks.bit_identical(got[p][1], t))
        if differ:
            more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
            report.add("weight sets", False, f"weight sets {loaded} and {name} disagree ({engine.group_keys(differ[:4])}{more}): "
                       f"{match.layout.library.title} loads {loaded}; keep one set, or make them equal")
            return
    report.add("weight sets", True, f"{', '.join(ckpt.weight_sets)} hold the same weights; {match.layout_name} loads {loaded}")


def _partial_ok(sd: dict, match: detect.Match, registry: Registry) -> frozenset[str]:
    """Keys a file may lack: exactly what some layout lacks, as --allow-partial writes it back."""
    missing = set(detect.expected_keys(match.variant, match.layout, match.prefix)) - set(sd)
    for lay in registry.layouts_by_family[match.variant.family].values() if missing else ():
        if missing == {e.target for e in engine.plan(match.variant, match.layout, lay, target_prefix=match.prefix).absent}:
            return frozenset(missing)
    return frozenset()


def _check_applies(opts: Expectations, match: detect.Match) -> None:
    """An option the file's family has no use for is a usage error, never a pass it did not test."""
    family = FAMILIES[match.variant.family]
    if opts.padding is not None and not family.paddable:
        raise UsageError(f"--padding applies to EfficientNets (mmcv's Conv2dAdaptivePadding), and this is {family.title}: "
                         "every library pads its convolutions as pycls does", fix="leave out --padding")


def _settings(match: detect.Match, ckpt: Checkpoint, opts: Expectations) -> tuple[str, float]:
    """The padding and BN eps under test: the options, else the meta's (when well-formed), else the table's."""
    recorded = ckpt.meta.get("settings") or {}
    padding = recorded.get("padding") if recorded.get("padding") in ("symmetric", "same") else match.layout.settings["padding"]
    eps = recorded.get("eps")
    eps = float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 < eps < 1 else match.variant.eps
    return opts.padding or padding, float(opts.eps) if opts.eps is not None else eps


def _colours(report, ckpt: Checkpoint, match: detect.Match, opts: Expectations, registry: Registry, source=None) -> checks.Colours:
    """The order the file takes (the options, its meta, or assumed: said in a note), and the
    pipeline of the side the checks run (the file's library; for a pycls file, the source's) as
    the user configures it (the options) or as the weights need it. ``source``: (order, layout)."""
    order, said = (opts.channel_order, "--channel-order") if opts.channel_order else preprocess.source_order(ckpt.meta, match.layout_name, match.layout.pipeline)
    if said.startswith("assumed"):
        report.notes.append(f"channel order {order.upper()} {said}; pass --channel-order to check another")
    if source is None:
        have, side, side_order = order, match.layout, order
    elif match.layout_name == PYCLS:  # written back to pycls: the checks run the source's library
        have, side, side_order = source[0], source[1], source[0]
    else:
        have, side, side_order = source[0], match.layout, order
    stats = registry.pycls_layout(match.variant.family).pipeline
    need = preprocess.needed(side.pipeline, side_order, stats)
    return checks.Colours(have, order, preprocess.configured(side.pipeline, need, opts), stats)


def _against_itself(report, found: Found, ckpt, opts, registry) -> None:
    """Without the source: the file's weights mapped back to pycls are the pycls side."""
    plan, sd, match = found.back, found.sd, found.match
    source = {e.source: sd[e.target] for e in plan.mapped if e.target in sd}
    colours = _colours(report, ckpt, match, opts, registry)
    checks.run(report, checks.Case(plan, source, sd, found.dtype, colours, _partial_ok(sd, match, registry)), "numeric")


def _against_source(report, found: Found, ckpt: Checkpoint, opts: Expectations, sha: Future | None, registry) -> None:
    sd, match, dtype = found.sd, found.match, found.dtype
    src = load(opts.source, trust_pickle=opts.trust_pickle)
    recorded = ckpt.meta.get("source_sha256")
    if sha is not None and recorded:
        actual = sha.result().sha256
        report.add("provenance", actual == recorded, f"source sha256 matches the meta ({recorded[:12]})" if actual == recorded else
                   f"source sha256 {actual[:12]} differs from the {recorded[:12]} recorded in the meta: not the file this was converted from")
    chosen = opts.weights or (ckpt.meta["weights"] if ckpt.meta.get("weights") in ("model", "ema") else "best")
    if src.kind == "pycls" and chosen in ("model", "ema") and chosen not in src.weight_sets:
        report.add("provenance", False, f"the file was converted from the {chosen} weights, but {opts.source} has no {chosen}_state")
        return
    _, source_sd = src.select(chosen if src.kind == "pycls" else "best")
    src_match = detect.identify(dtypes.shapes_of(source_sd), registry, arch=match.variant.name, extra=[match.variant])
    if not src_match.exact or src_match.variant is not match.variant:
        report.add("source", False, f"the source is not a {match.variant.name} checkpoint in any known layout (closest: {src_match.layout_name} {src_match.variant.name})")
        return
    variant = _as_stated(report, ckpt.meta, match.variant, src, registry)
    plan = engine.plan(variant, match.layout, src_match.layout, target_prefix=match.prefix, source_prefix=src_match.prefix)
    have = preprocess.source_order(src.meta, src_match.layout_name, src_match.layout.pipeline)[0]
    colours = _colours(report, ckpt, match, opts, registry, (have, src_match.layout))
    case = checks.Case(plan, source_sd, sd, dtype, colours, frozenset(e.target for e in plan.absent), independent=True)
    checks.run(report, case, "numeric")


def _as_stated(report: Report, meta: dict, variant, src: Checkpoint, registry: Registry):
    """The model as the source's own cfg states it (its BN eps, where its strides sit): what the
    file's meta records must agree with it, and pycls's side of the checks computes with it."""
    stated = structure.from_cfg(src.cfg, f"the source's cfg ({src.path})") if src.cfg is not None else None
    if stated is None:
        return variant
    stated = structure.named(stated, list(registry.variants.values()))
    recorded = (meta.get("settings") or {}).get("eps", variant.eps)
    problems = [f"the meta records BN eps {recorded:g} but the source's cfg says BN.EPS {stated.eps:g}"] if recorded != stated.eps else []
    problems += [f"the meta records the model {variant.name} but the source's cfg states {stated.name}"] if stated.structure() != variant.structure() else []
    if problems:
        report.add("provenance", False, f"{problems[0]}: the meta was changed, or the file was converted from another model; convert the source again")
    return replaced(variant, eps=stated.eps) if stated.eps != variant.eps else variant


@dataclass(frozen=True)
class Found:
    """What a verified file is taken for, decided once and carried through every check: the match
    (layout, model, prefix), the weight set its library loads and its tensors, their dtype, and the
    plan back to pycls's keys (every check without the source runs it)."""

    match: detect.Match
    loaded: str
    sd: dict
    dtype: str
    back: engine.Plan


def _found(ckpt: Checkpoint, opts: Expectations, registry: Registry) -> Found:
    """The file's model and layout, from the set its library loads (identified again when that is
    not the set the file's best guess was made from)."""
    first, first_sd = ckpt.select("best")
    recorded = detect.recorded_model(ckpt.meta, registry)
    ask = {"layout": opts.layout, "arch": opts.arch, "prefer": ckpt.meta.get("layout"), "extra": [recorded] if recorded is not None else []}
    match = detect.identify(dtypes.shapes_of(first_sd), registry, **ask)
    loaded, sd = ckpt.loaded_by(match.layout.library.loads, match.layout.library.title)
    if loaded != first:
        match = detect.identify(dtypes.shapes_of(sd), registry, **ask)
    floats = dtypes.floats_of(sd)
    return Found(match, loaded, sd, floats.pop() if len(floats) == 1 else "float32", _back(match, registry))


def verify_file(path: str | Path, opts: Expectations | None = None) -> Report:
    """Verify a converted file. A failed check is in the report; ``CkptError`` is raised only when
    a file cannot be read or an option is unusable."""
    opts = opts or Expectations()
    check_expectations(opts)
    return verify_checked(path, opts)


def verify_checked(path: str | Path, opts: Expectations) -> Report:
    """``verify_file`` for expectations already checked (``preflight.check_expectations``)."""
    if is_graph(path):
        from functools import partial

        local_graph(path)
        from ..inlibrary.graph import check_graph
        from ..onnx.graph_files import verify_graph

        return verify_graph(Path(path), opts, partial(check_graph, opts=opts, path=Path(path)) if opts.in_library else None)
    start = time.perf_counter()
    registry = registry_for(opts.tables)
    sha = start_hash(opts.source) if opts.source is not None and Path(opts.source).is_file() else None  # overlaps the loads
    ckpt = load(path, trust_pickle=opts.trust_pickle)
    ckpt.fetch(*ckpt.weight_sets)  # an object on a store: every weight set is checked, so all are read
    found = _found(ckpt, opts, registry)
    match = found.match
    _check_applies(opts, match)
    report = Report(str(path), match.variant.name, match.layout_name, *_settings(match, ckpt, opts), tuple(opts.input_size),
                    paddable=FAMILIES[match.variant.family].paddable)
    _check_meta(report, ckpt, match, opts)
    _check_sets(report, ckpt, found, registry)
    if opts.source is None:
        _against_itself(report, found, ckpt, opts, registry)
    else:
        _against_source(report, found, ckpt, opts, sha, registry)
    if opts.in_library:
        _in_library(report, Path(path), found, ckpt, opts, registry)
    report.seconds = time.perf_counter() - start
    return report


def _in_library(report: Report, path: Path, found: Found, ckpt: Checkpoint, opts: Expectations, registry: Registry) -> None:
    """``--in-library``: the file in its library as installed here, on photos (``ckptconv.inlibrary``)."""
    from ..inlibrary import check_target
    from ..inlibrary.images import image_set
    from ..inlibrary.proof import Side
    from ..inlibrary.target import target_of
    from ..inlibrary.verdict import recorded_error

    match = found.match
    takes = opts.channel_order or preprocess.source_order(ckpt.meta, match.layout_name, match.layout.pipeline)[0]
    stats = registry.pycls_layout(match.variant.family).pipeline
    state = checks.fill_absent(match.variant, {e.pycls: found.sd[e.target] for e in found.back.mapped if e.target in found.sd})
    side = Side(match.variant, {k: dtypes.cast(v, "float32") for k, v in state.items()}, takes, stats)
    target = target_of(path, match.variant, match.layout, match.prefix, takes, stats, opts.config)
    check_target(report, target, side, image_set(opts.images, opts.labels), recorded_error(ckpt.meta))

