"""Proving converted weights compute what pycls computed.

Three levels, each a ``Check`` in the ``Report``:
1. structure: keys, shapes and dtypes equal the target reference model's ``state_dict()`` (built
   independently of the tables), nothing extra; with the source, every tensor bit-identical to its
   source tensor after the requested cast.
2. numeric: the target reference with the converted weights and the settings under test (padding,
   BN eps) against the pycls reference, on a seeded input, at every level the table lists. fp32 and
   fp16/bf16 alike must be exactly equal, because the pycls side runs the source weights rounded
   to the output dtype (what the file should hold); the drift that rounding causes against the
   full-precision source is reported, not judged. Layouts whose library orders the arithmetic
   differently (timm) declare an fp32 tolerance in their table.
   Without the source, the pycls side runs the converted weights mapped back through the table,
   which still proves the settings under test reproduce pycls's arithmetic.
3. provenance: the file's meta (source sha256, arch, layout) agrees with what is checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import detect, engine, models
from .checkpoint import load
from .errors import VerificationError
from .hashing import start_sha256
from .registry import default_registry
from .tables import Layout
from .variants import Variant

DEFAULT_INPUT = (64, 96)  # small, so B5 verifies in a fraction of a second on a CPU
INPUT_SEED = 0
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Level:
    """One compared output: max absolute and relative difference, and whether it passes."""

    name: str
    point: str
    max_abs: float
    max_rel: float
    tolerance: float
    ok: bool
    drift_abs: float | None = None  # fp16/bf16 only: against the full-precision source


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    """Everything a verification found; ``ok`` only when every check passed."""

    path: str
    arch: str
    layout: str
    padding: str
    eps: float
    input_size: tuple[int, int]
    checks: list[Check] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def first_failure(self) -> str | None:
        return next((c.detail for c in self.checks if not c.ok), None)

    def add(self, name: str, ok: bool, detail: str) -> Check:
        check = Check(name, ok, detail)
        self.checks.append(check)
        return check

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise VerificationError(self.first_failure or "verification failed", path=self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "arch": self.arch,
            "layout": self.layout,
            "padding": self.padding,
            "eps": self.eps,
            "input_size": list(self.input_size),
            "checks": [c.__dict__ for c in self.checks],
            "levels": [lv.__dict__ for lv in self.levels],
            "first_failure": self.first_failure,
            "seconds": round(self.seconds, 4),
        }


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


def check_structure(report: Report, sd: dict[str, torch.Tensor], layout: Layout, variant: Variant, prefix: str, dtype: str) -> bool:
    """Keys, shapes and dtypes against the target reference model (plus the layout's prefix)."""
    reference = models.build(layout.reference, variant).state_dict()
    want_float = DTYPES[dtype]
    expected = {
        engine.with_prefix(prefix, k): (tuple(v.shape), want_float if v.is_floating_point() else v.dtype)
        for k, v in reference.items()
    }
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected]
    wrong = [
        f"{k}: {tuple(v.shape)} {str(v.dtype)[6:]} but the {layout.name} layout has {expected[k][0]} {str(expected[k][1])[6:]}"
        for k, v in sd.items()
        if k in expected and (tuple(v.shape), v.dtype) != expected[k]
    ]
    if missing:
        report.add("structure", False, f"missing key {missing[0]} (and {len(missing) - 1} more)" if len(missing) > 1 else f"missing key {missing[0]}")
    elif extra:
        report.add("structure", False, f"unexpected key {extra[0]}" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    elif wrong:
        report.add("structure", False, wrong[0] + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""))
    else:
        report.add("structure", True, f"{len(sd)} keys, shapes and dtypes match the {layout.name} {variant.name} layout")
    return not (missing or extra or wrong)


def cast(t: torch.Tensor, dtype: str) -> torch.Tensor:
    """The tensor the output holds for a source tensor: floating tensors cast, integers untouched."""
    return t.to(DTYPES[dtype]) if t.is_floating_point() and t.dtype != DTYPES[dtype] else t


def check_tensors(report: Report, plan: engine.Plan, source: dict[str, torch.Tensor], sd: dict[str, torch.Tensor], dtype: str) -> None:
    """Each converted tensor bit-identical to its source tensor after the requested cast."""
    for e in plan.mapped:
        if e.target not in sd or e.source not in source:
            continue
        if not bit_identical(sd[e.target], cast(source[e.source], dtype)):
            report.add("tensors", False, f"{e.target} is not bit-identical to source {e.source}")
            return
    report.add("tensors", True, f"{len(plan.mapped)} tensors bit-identical to their source tensors")


def make_input(size: tuple[int, int], batch: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(INPUT_SEED)
    return torch.randn(batch, 3, *size, generator=gen)


def _fill_absent(variant: Variant, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
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


@torch.inference_mode()
def compare(
    report: Report,
    variant: Variant,
    layout: Layout,
    layout_sd: dict[str, torch.Tensor],
    pycls_sd: dict[str, torch.Tensor],
    *,
    drift_sd: dict[str, torch.Tensor] | None = None,
) -> None:
    """Run both references on the seeded input; record every level of the layout."""
    x = make_input(report.input_size)
    target = models.load(layout.reference, variant, layout_sd, padding=report.padding, eps=report.eps)
    got = target.forward_levels(x)
    _judge_finite(report, got)
    want = models.pycls_model(variant, _fill_absent(variant, pycls_sd)).forward_levels(x)
    drift = models.pycls_model(variant, _fill_absent(variant, drift_sd)).forward_levels(x) if drift_sd else None
    for name, point in layout.levels.items():
        a, b = got[name], want[point]
        max_abs, max_rel = _diff(a, b)
        tol = layout.tolerance * max(1.0, b.abs().max().item()) if layout.tolerance else 0.0
        ok = bit_identical(a, b) if tol == 0 else max_abs <= tol
        level = Level(name, point, max_abs, max_rel, tol, ok)
        if drift is not None:
            level.drift_abs = _diff(a, drift[point])[0]
        report.levels.append(level)
    _judge_levels(report, layout)


def _judge_levels(report: Report, layout: Layout) -> None:
    bad = next((lv for lv in report.levels if not lv.ok), None)
    if bad is None:
        how = "bit for bit" if not layout.tolerance else f"within {layout.tolerance:g} (relative to each level's magnitude)"
        report.add("numeric", True, f"all {len(report.levels)} levels equal pycls's {how} (padding={report.padding}, eps={report.eps:g})")
        return
    need = layout.settings
    wrong = [
        f"{k}={report_value}"
        for k, report_value in (("padding", report.padding), ("eps", f"{report.eps:g}"))
        if str(need[k] if k == "padding" else f"{need[k]:g}") != str(report_value)
    ]
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
def forward_finite(report: Report, variant: Variant, layout: Layout | None, layout_sd: dict[str, torch.Tensor]) -> None:
    """The reference of ``layout`` (None: pycls) runs the weights to finite outputs at every level."""
    reference = layout.reference if layout else "pycls"
    weights = layout_sd if layout else _fill_absent(variant, layout_sd)
    target = models.load(reference, variant, weights, padding=report.padding, eps=report.eps)
    _judge_finite(report, target.forward_levels(make_input(report.input_size)))


def timed(report: Report, start: float) -> Report:
    report.seconds = time.perf_counter() - start
    return report


def _identify(shapes, registry, layout_name: str | None, arch: str | None, prefer: str | None = None):
    """Best (layout, variant, prefix) match for a state dict, in the named layout or any.

    The tensors decide: an exact fit wins even when ``arch`` names another variant (the caller
    reports the disagreement); among equal fits (mmdet with prefix 'backbone' is also a layout
    whose own keys start with 'backbone.'), the ``prefer``-red layout; without an exact fit, the
    closest candidate of ``arch``.
    """
    known = (engine.PYCLS, *registry.layouts)
    names = [layout_name] if layout_name else list(known)
    ranked = detect.rank(shapes, registry, [None if n == engine.PYCLS else registry.layout(n) for n in names])
    ranked.sort(key=lambda m: (m.misfits, m.layout_name != prefer))
    if ranked[0].exact or not arch:
        return ranked[0]
    return next(m for m in ranked if m.variant.name == arch)


def _shapes(sd: dict[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), str(v.dtype)[6:]) for k, v in sd.items()}


def verify_file(
    path,
    *,
    source=None,
    arch: str | None = None,
    layout: str | None = None,
    weights: str | None = None,
    padding: str | None = None,
    eps: float | None = None,
    input_size: tuple[int, int] = DEFAULT_INPUT,
    registry=None,
    trust_pickle: bool = False,
) -> Report:
    """Verify a converted file, alone or against its source. A failed check is in the report;
    ``CkptError`` is raised only when a file cannot be read or an option is unusable."""
    start = time.perf_counter()
    registry = registry or default_registry()
    if arch:
        registry.variant(arch)
    if layout and layout != engine.PYCLS:
        registry.layout(layout)
    # the source's hash (whole file) runs on the other core while both files load
    source_sha = start_sha256(source) if source is not None and Path(source).is_file() else None
    ckpt = load(path, trust_pickle=trust_pickle)
    _, sd = ckpt.select("best")
    meta = ckpt.meta
    match = _identify(_shapes(sd), registry, layout, arch, meta.get("layout"))
    variant, lay = match.variant, match.layout
    settings = (lay.settings if lay else {"padding": "symmetric", "eps": 1e-5}) | {
        k: v for k, v in (meta.get("settings") or {}).items() if k in ("padding", "eps")
    }
    report = Report(
        str(path), variant.name, match.layout_name,
        padding or settings["padding"], float(eps if eps is not None else settings["eps"]), tuple(input_size),
    )  # fmt: skip
    _check_meta(report, meta, match, arch, layout)
    floats = {str(t.dtype)[6:] for t in sd.values() if t.is_floating_point()}
    dtype = floats.pop() if len(floats) == 1 else "float32"
    if lay is not None:
        fits = check_structure(report, sd, lay, variant, match.prefix, dtype)
    else:
        fits = check_pycls_structure(report, sd, variant, registry)
    if not fits:
        return timed(report, start)
    if source is None:
        if lay is not None:  # the settings under test against pycls's arithmetic, on the file's own weights
            plan = engine.plan(variant, lay, target_prefix=match.prefix)
            compare(report, variant, lay, strip_prefix(sd, match.prefix), {e.pycls: sd[e.target] for e in plan.mapped})
        else:
            forward_finite(report, variant, None, sd)
        return timed(report, start)
    src = load(source, trust_pickle=trust_pickle)
    if source_sha is not None and meta.get("source_sha256"):
        sha, actual = meta["source_sha256"], source_sha.result()
        report.add("provenance", actual == sha, f"source sha256 matches the meta ({sha[:12]})" if actual == sha else
                   f"source sha256 {actual[:12]} differs from the {sha[:12]} recorded in the meta: not the file this was converted from")  # fmt: skip
    chosen = weights or (meta["weights"] if meta.get("weights") in ("model", "ema") else "best")
    _, source_sd = src.select(chosen if src.kind == "pycls" else "best")
    src_match = _identify(_shapes(source_sd), registry, None, variant.name)
    if not src_match.exact or src_match.variant is not variant:
        report.add("source", False, f"the source is not a {variant.name} checkpoint in any known layout (closest: {src_match.layout_name} {src_match.variant.name})")
        return timed(report, start)
    plan = engine.plan(variant, lay, source=src_match.layout, target_prefix=match.prefix, source_prefix=src_match.prefix)
    check_tensors(report, plan, source_sd, sd, dtype)
    if not report.ok:
        return timed(report, start)
    by_pycls = {e.pycls: e for e in plan.entries}
    if lay is not None:  # converted to a layout: compare it with the source in pycls keys
        pycls_sd = {k: cast(source_sd[e.source], dtype) for k, e in by_pycls.items() if e.source}
        drift = {k: source_sd[e.source] for k, e in by_pycls.items() if e.source} if dtype != "float32" else None
        compare(report, variant, lay, strip_prefix(sd, match.prefix), pycls_sd, drift_sd=drift)
    elif src_match.layout is not None:  # converted back to pycls: compare with the source layout
        compare(report, variant, src_match.layout, strip_prefix(source_sd, src_match.prefix), dict(sd))
    return timed(report, start)


def check_pycls_structure(report: Report, sd: dict, variant: Variant, registry) -> bool:
    """A pycls file fits when it is whole, or lacks exactly what some layout lacks (--allow-partial)."""
    want = {s.key: s.shape for s in variant.pycls_keys}
    wrong = [k for k, v in sd.items() if k not in want or tuple(v.shape) != want[k]]
    missing = {k for k in want if k not in sd}
    if wrong:
        report.add("structure", False, f"{wrong[0]} does not fit pycls {variant.name}")
        return False
    if not missing:
        report.add("structure", True, f"{len(sd)} pycls keys fit {variant.name}")
        return True
    lacking = [
        name for name, lay in registry.layouts.items()
        if missing == {e.target for e in engine.plan(variant, None, source=lay).absent}
    ]  # fmt: skip
    detail = f"partial pycls {variant.name} file: lacks {engine.group_keys(missing)}"
    if lacking:
        report.add("structure", True, f"{detail}, as written from the {' / '.join(lacking)} layout with --allow-partial")
    else:
        report.add("structure", False, detail)
    return bool(lacking)


def _check_meta(report: Report, meta: dict, match, arch: str | None, layout: str | None) -> None:
    """The tensors, the meta and the options must tell the same arch and layout."""
    problems = []
    if arch and arch != match.variant.name and match.exact:
        problems.append(f"--arch {arch} was asked but the tensors are {match.variant.name}")
    if meta.get("arch") and meta["arch"] != match.variant.name:
        problems.append(f"meta records arch {meta['arch']} but the tensors are {match.variant.name}")
    if meta.get("layout") and meta["layout"] != match.layout_name:
        problems.append(f"meta records layout {meta['layout']} but the keys are {match.layout_name}")
    if layout and meta.get("layout") and meta["layout"] != layout:
        problems.append(f"meta records layout {meta['layout']} but --layout {layout} was asked")
    if arch and meta.get("arch") and meta["arch"] != arch:
        problems.append(f"meta records arch {meta['arch']} but --arch {arch} was asked")
    if meta or problems:
        report.add("identity", not problems, problems[0] if problems else f"meta agrees with the tensors ({match.variant.name}, {match.layout_name})")
