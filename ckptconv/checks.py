"""The checks that prove converted weights compute what pycls computed, shared by convert and verify.

``run(report, plan, source, output, dtype, level)`` checks the ``output`` tensors (keys of
``plan.target``) against the ``source`` tensors (keys of ``plan.source``):

1. structure: keys, shapes and dtypes equal the target reference model's ``state_dict()`` (built
   independently of the tables), nothing extra;
2. tensors: every output tensor bit-identical to its source tensor after the cast (skipped when the
   source was derived from the output itself, as ``verify`` does without ``--source``);
3. finite and numeric: the reference of the layout that is not pycls, with the settings under test
   (padding, BN eps), against the pycls reference, on a seeded input, at every level its table
   lists. fp32 and fp16/bf16 alike must be exactly equal, because the pycls side runs the source
   weights rounded to the output dtype; the drift that rounding causes against the full-precision
   source is reported, not judged. Layouts whose library orders the arithmetic differently (timm)
   declare a tolerance in their table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from . import dtypes, engine, models
from .engine import PYCLS, Plan
from .errors import VerificationError
from .tables import Layout
from .variants import Variant

DEFAULT_INPUT = (64, 96)  # small, so B5 verifies in a fraction of a second on a CPU
MAX_INPUT = 640  # per side: B5's own resolution is 456; beyond this a check only costs memory
INPUT_SEED = 0
LEVELS = ("numeric", "structure", "none")


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
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """TF "same" padding equals symmetric padding where a strided convolution meets an odd size:
        the numeric check runs at even sizes, where the padding settings under test differ."""
        even = tuple(s + s % 2 for s in self.input_size)
        if even != tuple(self.input_size):
            self.notes.append(f"input {self.input_size[0]}x{self.input_size[1]} checked as {even[0]}x{even[1]}: "
                              "padding settings differ only at even sizes")  # fmt: skip
            self.input_size = even

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
            "notes": self.notes,
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


def _count(items: list[str], what: str) -> str:
    return f"{what} {items[0]}" + (f" (and {len(items) - 1} more)" if len(items) > 1 else "")


def check_structure(report: Report, sd: dict[str, torch.Tensor], plan: Plan, dtype: str, partial_ok: set[str]) -> bool:
    """Keys, shapes and dtypes against the target reference model (plus the prefix). Keys in
    ``partial_ok`` may be missing (a pycls file written with --allow-partial lacks them)."""
    layout, variant = plan.target, plan.variant
    want_float = dtypes.to_torch(dtype)
    expected = {
        engine.with_prefix(plan.target_prefix, k): (tuple(v.shape), want_float if v.is_floating_point() else v.dtype)
        for k, v in models.build(layout.reference, variant).state_dict().items()
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


def check_tensors(report: Report, plan: Plan, source: dict[str, torch.Tensor], sd: dict[str, torch.Tensor], dtype: str) -> None:
    """Each converted tensor bit-identical to its source tensor after the requested cast."""
    for e in plan.mapped:
        if e.target not in sd or e.source not in source:
            continue
        if not bit_identical(sd[e.target], dtypes.cast(source[e.source], dtype)):
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


@dataclass(frozen=True)
class Sides:
    """What the numeric check runs: a layout's reference on its weights, pycls's on the same in pycls keys."""

    layout: Layout
    weights: dict[str, torch.Tensor]  # keys of ``layout``, prefix stripped
    pycls: dict[str, torch.Tensor]  # pycls keys, in the output's dtype
    drift: dict[str, torch.Tensor] | None  # pycls keys at full precision, when a cast rounded them


def sides(plan: Plan, source: dict[str, torch.Tensor], output: dict[str, torch.Tensor], dtype: str) -> Sides:
    """The layout that is not pycls (the target, else the source) and its weights, and pycls's."""
    pycls = {e.pycls: dtypes.cast(source[e.source], dtype) for e in plan.mapped}
    drift = {e.pycls: source[e.source] for e in plan.mapped} if dtype != "float32" else None
    if plan.target.name != PYCLS or plan.source.name == PYCLS:
        return Sides(plan.target, strip_prefix(output, plan.target_prefix), pycls, drift)
    weights = {k: dtypes.cast(v, dtype) for k, v in source.items()}
    return Sides(plan.source, strip_prefix(weights, plan.source_prefix), pycls, None)


@torch.inference_mode()
def compare(report: Report, variant: Variant, s: Sides) -> None:
    """Run both references on the seeded input; record every level of the layout."""
    x = make_input(report.input_size)
    got = models.load(s.layout.reference, variant, s.weights, padding=report.padding, eps=report.eps).forward_levels(x)
    _judge_finite(report, got)
    want = models.pycls_model(variant, _fill_absent(variant, s.pycls)).forward_levels(x)
    drift = models.pycls_model(variant, _fill_absent(variant, s.drift)).forward_levels(x) if s.drift else None
    for name, point in s.layout.levels.items():
        a, b = got[name], want[point]
        max_abs, max_rel = _diff(a, b)
        tol = s.layout.tolerance * max(1.0, b.abs().max().item()) if s.layout.tolerance else 0.0
        ok = bit_identical(a, b) if tol == 0 else max_abs <= tol
        level = Level(name, point, max_abs, max_rel, tol, ok)
        if drift is not None:
            level.drift_abs = _diff(a, drift[point])[0]
        report.levels.append(level)
    _judge_levels(report, s.layout)


def _judge_levels(report: Report, layout: Layout) -> None:
    bad = next((lv for lv in report.levels if not lv.ok), None)
    if bad is None:
        how = "bit for bit" if not layout.tolerance else f"within {layout.tolerance:g} (relative to each level's magnitude)"
        report.add("numeric", True, f"all {len(report.levels)} levels equal pycls's {how} (padding={report.padding}, eps={report.eps:g})")
        return
    need = layout.settings
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
        weights = _fill_absent(variant, weights)
    model = models.load(layout.reference, variant, weights, padding=report.padding, eps=report.eps)
    _judge_finite(report, model.forward_levels(make_input(report.input_size)))


def run(report: Report, plan: Plan, source: dict, output: dict, dtype: str, level: str, *, partial_ok=frozenset(), with_tensors=True) -> Report:
    """Structure, then (``with_tensors``) bit identity, then (``level`` numeric) the forward passes."""
    start = time.perf_counter()
    fits = check_structure(report, output, plan, dtype, set(partial_ok))
    if with_tensors:
        check_tensors(report, plan, source, output, dtype)
    if fits and report.ok and level == "numeric":
        s = sides(plan, source, output, dtype)
        if s.layout.name == PYCLS:  # pycls to pycls: nothing to compare it with but itself
            forward_finite(report, plan.variant, s.layout, s.weights)
        else:
            compare(report, plan.variant, s)
    report.seconds += time.perf_counter() - start
    return report
