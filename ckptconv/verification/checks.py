"""The checks that prove converted weights compute what pycls computed, shared by convert and verify.

``run(report, case, level)`` judges a ``Case``: the ``output`` tensors (keys of ``plan.target``)
against the ``source`` tensors (keys of ``plan.source``):

1. structure: keys, shapes and dtypes equal the target reference model's ``state_dict()`` (built
   independently of the tables), nothing extra;
2. tensors: every output tensor bit-identical to its source tensor after the cast (only where the
   two are independent: ``verify --source``; a conversion checks the file it wrote, read back:
   ``convert._read_back``);
3. finite and numeric: the reference of the layout that is not pycls, with the settings under test
   (padding, BN eps), against the pycls reference on the same weights, on a seeded input, at every
   level its table lists, **bit for bit**. The pycls side runs the source weights rounded to the
   output dtype and computes with the library's arithmetic (timm's and torchvision's ``F.silu``,
   timm's mean pooling: ``models.arith_of``), so the two must be exactly equal whatever the weights;
   how far the library's result is from pycls's own arithmetic at full precision is reported per
   level as drift, never judged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..io import dtypes
from ..model.variants import Variant
from ..options import PYCLS
from ..tables import engine
from ..tables.engine import Plan
from ..tables.layout import Layout
from ..tables.pipeline import INPUT_CONV, Pipeline, Preprocess
from . import models
from .report import Level, Report

INPUT_SEED = 0


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits of a tensor as integers, so NaN == NaN and -0.0 != 0.0."""
    if not t.is_floating_point():
        return t
    return t.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()])


def bit_identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a is b:  # the very tensor (nothing cast or copied): equal without reading its bytes
        return True
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if not prefix:
        return dict(sd)
    n = len(prefix) + 1
    return {k[n:]: v for k, v in sd.items()}


def _count(items: list[str], what: str) -> str:
    return f"{what} {items[0]}" + (f" (and {len(items) - 1} more)" if len(items) > 1 else "")


_REFERENCE_KEYS: dict[tuple, dict[str, tuple]] = {}


def reference_keys(reference: str, variant: Variant, out_indices: tuple[int, ...]) -> dict[str, tuple]:
    """The reference model's state_dict keys: shape, floating or not, dtype. Cached per variant file: read-only."""
    key = (reference, engine.content_key(variant), out_indices)
    if key not in _REFERENCE_KEYS:
        sd = models.build(reference, variant, models.Build(out_indices=out_indices or None)).state_dict()
        _REFERENCE_KEYS[key] = {k: (tuple(v.shape), v.is_floating_point(), v.dtype) for k, v in sd.items()}
    return _REFERENCE_KEYS[key]


def check_structure(report: Report, sd: dict[str, torch.Tensor], plan: Plan, dtype: str, partial_ok: set[str]) -> bool:
    """Keys, shapes and dtypes against the target reference model (plus the prefix). Keys in
    ``partial_ok`` may be missing (a pycls file written with --allow-partial lacks them)."""
    layout, variant = plan.target, plan.variant
    want_float = dtypes.to_torch(dtype)
    expected = {
        engine.with_prefix(plan.target_prefix, k): (shape, want_float if floating else kind)
        for k, (shape, floating, kind) in reference_keys(layout.reference, variant, tuple(layout.config.get("out_indices", ()))).items()
    }
    missing = [k for k in expected if k not in sd and k not in partial_ok]
    extra = [k for k in sd if k not in expected]
    wrong = [
        f"{k}: {tuple(v.shape)} {dtypes.name(v.dtype)} but the {layout.name} layout has {expected[k][0]} {dtypes.name(expected[k][1])}"
        for k, v in sd.items()
        if k in expected and (tuple(v.shape), v.dtype) != expected[k]
    ]
    problem = _count(missing, "missing key") if missing else _count(extra, "unexpected key") if extra else _count(wrong, "")[1:] if wrong else None
    if problem is None:
        absent = f"; lacks {engine.group_keys(k for k in expected if k not in sd)}, as --allow-partial writes it" if len(sd) < len(expected) else ""
        report.add("structure", True, f"{len(sd)} keys, shapes and dtypes match the {layout.name} {variant.name} layout{absent}")
        return True
    report.add("structure", False, problem)
    return False


@dataclass(frozen=True)
class Colours:
    """The channel order the source and the output weights take, and the target pipeline's
    preprocessing as configured (None: no pipeline check)."""

    source: str = "bgr"
    target: str = "bgr"
    pipeline: Preprocess | None = None
    stats: Pipeline | None = None  # pycls's own pipeline (the pycls table's): its mean and std

    @property
    def flips(self) -> frozenset[str]:
        """pycls keys whose tensors are reversed along their input channels between the two."""
        return frozenset({INPUT_CONV}) if self.source != self.target else frozenset()


def flip_input(t: torch.Tensor) -> torch.Tensor:
    """The first convolution's weights for the other channel order: input channels reversed."""
    return t.flip(1).contiguous()


def expected(e, source: dict[str, torch.Tensor], dtype: str, flips: frozenset[str]) -> torch.Tensor:
    """What the output must hold for entry ``e``: the source tensor cast, and reversed if it flips."""
    t = dtypes.cast(source[e.source], dtype)
    return flip_input(t) if e.pycls in flips else t


def check_tensors(report: Report, plan: Plan, source: dict[str, torch.Tensor], sd: dict[str, torch.Tensor], dtype: str, flips=frozenset(), where: str = "") -> None:
    """Each converted tensor bit-identical to its source tensor after the cast (and the channel
    reversal of the first convolution, when the two take different channel orders)."""
    for e in plan.mapped:
        if e.target not in sd or e.source not in source:
            continue
        if not bit_identical(sd[e.target], expected(e, source, dtype, flips)):
            report.add("tensors", False, f"{e.target} is not bit-identical to source {e.source}" + (" with its input channels reversed" if e.pycls in flips else ""))
            return
    detail = f"{len(plan.mapped)} tensors{where} bit-identical to their source tensors"
    report.add("tensors", True, detail + (f" ({INPUT_CONV}'s input channels reversed: {' -> '.join(sorted({'rgb', 'bgr'}))} order)" if flips else ""))


def make_input(size: tuple[int, int], batch: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(INPUT_SEED)
    return torch.randn(batch, 3, *size, generator=gen)


def fill_absent(variant: Variant, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """pycls weights with zeros where a layout has no tensor (its outputs are then not compared)."""
    out = dict(sd)
    for spec in variant.pycls_keys:
        if spec.key not in out:
            out[spec.key] = torch.zeros(spec.shape, dtype=torch.int64 if spec.dtype == "int64" else torch.float32)
    return out


def _diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float("inf"), float("inf")
    d = (a - b).abs().max().item()
    scale = b.abs().max().item()
    return d, d / scale if scale > 0 else (0.0 if d == 0 else float("inf"))


@dataclass(frozen=True)
class Sides:
    """What the numeric check runs: a layout's reference on its weights, pycls's on the same in pycls
    keys; both in BGR form (the first conv un-reversed, an exact permutation), so they must agree
    bit for bit whatever order the file takes; ``order``: the one the layout's weights take as written."""

    layout: Layout
    weights: dict[str, torch.Tensor]  # keys of ``layout``, prefix stripped, BGR form
    pycls: dict[str, torch.Tensor]  # pycls keys, in the output's dtype, BGR form
    drift: dict[str, torch.Tensor] | None  # pycls keys at full precision, when a cast rounded them
    order: str  # the channel order the layout's weights take in the file


def _to_bgr(sd: dict, key: str | None, order: str) -> dict:
    if order == "bgr" or key is None or key not in sd:
        return sd
    return {**sd, key: flip_input(sd[key])}


def _input_conv(plan: Plan, side: str) -> str | None:
    """The key of the first convolution in the target's (or the source's) keys, prefix stripped."""
    e = next((e for e in plan.entries if e.pycls == INPUT_CONV), None)
    key, prefix = (e.target, plan.target_prefix) if side == "target" else (e.source, plan.source_prefix)
    return key[len(prefix) + 1 :] if key and prefix else key


def sides(plan: Plan, source: dict[str, torch.Tensor], output: dict[str, torch.Tensor], dtype: str, colours: Colours) -> Sides:
    """The layout that is not pycls (the target, else the source) and its weights, and pycls's."""
    pycls = _to_bgr({e.pycls: dtypes.cast(source[e.source], dtype) for e in plan.mapped}, INPUT_CONV, colours.source)
    drift = _to_bgr({e.pycls: source[e.source] for e in plan.mapped}, INPUT_CONV, colours.source) if dtype != "float32" else None
    if plan.target.name != PYCLS or plan.source.name == PYCLS:
        written = strip_prefix(output, plan.target_prefix)
        return Sides(plan.target, _to_bgr(written, _input_conv(plan, "target"), colours.target), pycls, drift, colours.target)
    written = strip_prefix({k: dtypes.cast(v, dtype) for k, v in source.items()}, plan.source_prefix)
    return Sides(plan.source, _to_bgr(written, _input_conv(plan, "source"), colours.source), pycls, None, colours.source)


def reference(layout: Layout, variant: Variant, weights: dict[str, torch.Tensor], report: Report) -> torch.nn.Module:
    """The layout's reference model holding ``weights``, with the settings under test."""
    out_indices = layout.config.get("out_indices")
    build = models.Build(report.padding, report.eps, models.arith_of(layout.reference, variant), out_indices=tuple(out_indices) if out_indices else None)
    return models.load(layout.reference, variant, weights, build)


@torch.inference_mode()
def compare(report: Report, variant: Variant, s: Sides) -> None:
    """Run both references on the seeded input; record every level of the layout, bit for bit, and
    its drift from pycls's own arithmetic at full precision."""
    x = make_input(report.input_size)
    got = reference(s.layout, variant, s.weights, report).forward_levels(x)  # each model freed once it has run:
    _judge_finite(report, got)  # one model's upcast weights at a time (a bf16 RegNetY-32GF stays near twice its file)
    arith = models.arith_of(s.layout.reference, variant)
    want = models.pycls_model(variant, fill_absent(variant, s.pycls), arith).forward_levels(x)  # with the model's own BN eps
    own = s.drift is not None or arith != models.PYCLS_ARITH
    exact = models.pycls_model(variant, fill_absent(variant, s.drift or s.pycls)).forward_levels(x) if own else None
    for name, point in s.layout.levels_for(variant).items():
        a, b = got[name], want[point]
        level = Level(name, point, *_diff(a, b), 0.0, bit_identical(a, b))
        if exact is not None:
            level.drift_abs, level.drift_rel = _diff(a, exact[point])
        report.levels.append(level)
    _judge_levels(report, s.layout, variant, arith, s.drift is not None)


def _drift_words(report: Report, arith, rounded: bool) -> str:
    """How far the library's result is from pycls's own arithmetic at full precision: said once, and
    only when it is not zero (the arithmetic itself is named where the levels are)."""
    worst = max((lv for lv in report.levels if lv.drift_rel is not None), key=lambda lv: lv.drift_rel, default=None)
    if worst is None or worst.drift_rel == 0:
        return ""
    why = " and weights rounded to the output dtype" if rounded and arith != models.PYCLS_ARITH else " (weights rounded to the output dtype)" if rounded else ""
    return f"; drift from pycls's own arithmetic{why} up to {worst.drift_rel:.2g} relative at {worst.name}, reported, not judged"


def _judge_levels(report: Report, layout: Layout, variant: Variant, arith, rounded: bool) -> None:
    bad = next((lv for lv in report.levels if not lv.ok), None)
    if bad is None:
        how = "bit for bit" + (f", pycls computed as {layout.loads_into} computes ({arith.describe()})" if arith != models.PYCLS_ARITH else "")
        report.add("numeric", True, f"all {len(report.levels)} levels equal pycls's {how} ({report.settings})" + _drift_words(report, arith, rounded))
        return
    need = layout.needs(variant)
    wrong = [f"padding={report.padding}"] if report.padding != need["padding"] else []
    wrong += [f"eps={report.eps:g}"] if report.eps != need["eps"] else []
    detail = f"level {bad.name} differs from pycls {bad.point} by up to {bad.max_abs:.3g} (max abs), {bad.max_rel:.3g} (relative)"
    if wrong:
        detail += f" with {', '.join(wrong)}: these weights need padding={need['padding']} and BN eps={need['eps']:g}"
        if need.get("config"):
            detail += f"; set {need['config']}"
    elif bad.max_abs == float("inf"):
        detail += ": non-finite values (NaN or Inf) in the outputs"
    report.add("numeric", False, detail)


def _judge_finite(report: Report, levels: dict[str, torch.Tensor]) -> None:
    bad = next((n for n, t in levels.items() if not torch.isfinite(t).all()), None)
    report.add("finite", bad is None, "forward pass finite at every level" if bad is None else f"level {bad} has NaN or Inf outputs")


@torch.inference_mode()
def forward_finite(report: Report, variant: Variant, layout: Layout, weights: dict[str, torch.Tensor]) -> None:
    """The reference of ``layout`` runs the weights to finite outputs at every level."""
    if layout.name == PYCLS:
        weights = fill_absent(variant, weights)
    model = reference(layout, variant, weights, report)
    _judge_finite(report, model.forward_levels(make_input(report.input_size)))


@dataclass(frozen=True)
class Case:
    """What the checks judge: the plan, the source weights (keys of ``plan.source``), the output
    (keys of ``plan.target``) and its dtype, the channel orders and pipeline, the keys a partial file
    may lack, and whether the source is independent of the output (then bit identity is checked)."""

    plan: Plan
    source: dict[str, torch.Tensor]
    output: dict[str, torch.Tensor]
    dtype: str
    colours: Colours = Colours()
    partial_ok: frozenset[str] = frozenset()
    independent: bool = False


def check_statistics(report: Report, sd: dict[str, torch.Tensor]) -> None:
    problems = [p for k, t in sd.items() if (p := dtypes.statistics_problem(k, t))]
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        report.add("statistics", False, f"{problems[0]}{more}")


def run(report: Report, case: Case, level: str) -> Report:
    """Structure, then (an independent source) bit identity, then (``level`` numeric) the forward
    passes: the settings under test exactly, then a real photo through the target's preprocessing."""
    from . import photo

    start = time.perf_counter()
    plan = case.plan
    fits = check_structure(report, case.output, plan, case.dtype, set(case.partial_ok))
    if level == "numeric":  # it reads the statistics: a structural check pages in nothing
        check_statistics(report, case.output)
    if case.independent:
        check_tensors(report, plan, case.source, case.output, case.dtype, case.colours.flips)
    if fits and report.ok and level == "numeric":
        s = sides(plan, case.source, case.output, case.dtype, case.colours)
        if s.layout.name == PYCLS:  # pycls to pycls: nothing to compare it with but itself
            forward_finite(report, plan.variant, s.layout, s.weights)
        else:
            compare(report, plan.variant, s)
            if case.colours.pipeline is not None and case.colours.stats is not None:
                sizes = (plan.variant.test_size, plan.variant.im_size)
                photo.check(report, s.layout.pipeline, case.colours.pipeline, s.order, case.colours.stats, sizes)
    report.seconds += time.perf_counter() - start
    return report
