"""Which model (and layout) a checkpoint holds: its structure (``structure``: cfg, meta, shapes), or
the zoo model and layout its keys fit (files of a library's layout, ``inspect``, ``verify``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import MappingError, UsageError
from ..model import structure
from ..model.variants import Variant, parse_variant, replaced
from ..options import PYCLS
from . import engine
from .layout import Layout
from .registry import Registry

Shapes = dict[str, tuple[tuple[int, ...], str]]  # key -> (shape, dtype name)


_EXPECTED: dict[tuple[object, object, str], dict[str, tuple[int, ...]]] = {}


def expected_keys(variant: Variant, layout: Layout, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Every key and shape a full checkpoint of ``variant`` has in ``layout``. Cached per file: read-only."""
    key = (engine.content_key(variant), engine.content_key(layout), prefix)
    if key not in _EXPECTED:
        _EXPECTED[key] = {engine.with_prefix(prefix, t): spec.shape for spec, _, t in engine.table_map(layout, variant) if t is not None}
    return _EXPECTED[key]


@dataclass(frozen=True)
class Match:
    """A (layout, variant, prefix) candidate and how well a state dict fits it."""

    layout: Layout
    variant: Variant
    prefix: str
    missing: int
    unexpected: int
    wrong_shape: int

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_shape)

    @property
    def misfits(self) -> int:
        return self.missing + self.unexpected + self.wrong_shape

    @property
    def layout_name(self) -> str:
        return self.layout.name


def score(shapes: Shapes, variant: Variant, layout: Layout, prefix: str = "") -> Match:
    want = expected_keys(variant, layout, prefix)
    missing = sum(k not in shapes for k in want)
    unexpected = sum(k not in want for k in shapes)
    wrong = sum(1 for k, (s, _) in shapes.items() if k in want and tuple(s) != want[k])
    return Match(layout, variant, prefix, missing, unexpected, wrong)


def common_prefix(keys) -> str:
    """The first key segment when every key shares it (``backbone`` of ``backbone.layers.0...``)."""
    firsts = {k.split(".", 1)[0] for k in keys if "." in k}
    return firsts.pop() if len(firsts) == 1 and all("." in k for k in keys) else ""


def candidates(registry: Registry, layouts: list[Layout], extra: list[Variant] = ()) -> list[tuple[Layout, Variant]]:
    """Every (layout, variant) pair a file may hold: the zoo variants (and ``extra``, e.g. the model a
    meta records) of each layout's family that it can hold."""
    models = [*extra, *registry.variants.values()]
    return [(lay, v) for lay in layouts for v in models if v.family == lay.family and lay.refusal(v) is None]


def exact_matches(shapes: Shapes, registry: Registry, layouts: list[Layout], extra: list[Variant] = ()) -> Iterator[Match]:
    """Every candidate the state dict fits exactly, in candidate order, checking only those with as
    many keys (fast path); lazily, so the first costs only what comes before it."""
    prefixes = {"", common_prefix(shapes)}
    for lay, v in candidates(registry, layouts, extra):
        for prefix in prefixes:
            want = expected_keys(v, lay, prefix)
            if len(want) == len(shapes) and all(want.get(k) == tuple(s) for k, (s, _) in shapes.items()):
                yield Match(lay, v, prefix, 0, 0, 0)


def exact_match(shapes: Shapes, registry: Registry, layouts: list[Layout]) -> Match | None:
    """The first candidate the state dict fits exactly."""
    return next(exact_matches(shapes, registry, layouts), None)


def rank(shapes: Shapes, registry: Registry, layouts: list[Layout], extra: list[Variant] = ()) -> list[Match]:
    """Every layout x variant x prefix candidate, best fit first; partial fits count misfits."""
    prefixes = {""}
    if common_prefix(shapes):
        prefixes.add(common_prefix(shapes))
    found = [score(shapes, v, lay, prefix) for lay, v in candidates(registry, layouts, extra) for prefix in prefixes]
    return sorted(found, key=lambda m: (m.misfits, m.missing))


def identify(shapes: Shapes, registry: Registry, *, layout: str | None = None, arch: str | None = None, prefer: str | None = None,
             extra: list[Variant] = ()) -> Match:
    """The (layout, model, prefix) a file's tensors hold, in the named layout or any: what ``verify``
    and ``inspect`` take a file for (a source to convert: ``resolve_arch``, which a request steers).

    The tensors decide: an exact fit wins even when ``arch`` names another model (the caller
    reports the disagreement); among equal fits (mmdet with prefix 'backbone' is also a layout
    whose own keys start with 'backbone.'), the ``prefer``-red layout; without an exact fit, the
    closest candidate of ``arch``. ``extra``: models beside the zoo's (the custom model a meta records).
    """
    layouts = registry.layouts_named(layout) if layout else registry.all_layouts()
    ranked = list(exact_matches(shapes, registry, layouts, list(extra))) or rank(shapes, registry, layouts, list(extra))
    ranked.sort(key=lambda m: (m.misfits, m.layout_name != prefer))
    if ranked[0].exact or not arch:
        return ranked[0]
    return next(m for m in ranked if m.variant.name == arch)


def _requested(name: str, exact: Match | None, shapes: Shapes, registry: Registry, layouts: list[Layout], stated: Variant | None) -> tuple[Variant, str, str]:
    """``--arch``: it must agree with the tensors when they fit a variant exactly, and with the
    model a cfg states (which alone says BN eps: the model then has the cfg's); a fine-tuned
    classifier (head.fc of another size) keeps the zoo model's name."""
    variant = structure.fit_classes(registry.variant(name), _classes(shapes))
    if stated is not None:
        named = structure.named(stated, list(registry.variants.values()))
        if named.structure() != variant.structure():
            raise UsageError(f"--arch {variant.name} disagrees with the cfg, which states {named.name}", fix=f"pass --arch {named.name}, or omit --arch")
        variant = replaced(variant, eps=named.eps, title=named.title if named.eps != variant.eps else variant.title)
    if exact and exact.variant.structure() != variant.structure():
        raise UsageError(f"--arch {variant.name} disagrees with the tensors, which are {exact.variant.name}", fix=f"pass --arch {exact.variant.name} or omit --arch")
    if exact:
        return variant, "--arch", exact.prefix
    return variant, "--arch", next((m.prefix for m in rank(shapes, registry, layouts) if m.variant.name == variant.name), "")


def _classes(shapes: Shapes) -> int | None:
    """The classes of a pycls state dict's classifier (None: it has none)."""
    fc = shapes.get("head.fc.weight")
    return int(fc[0][0]) if fc and len(fc[0]) == 2 else None


def _zoo_fit(shapes: Shapes, registry: Registry) -> Variant | None:
    """The zoo model (with its classifier resized) whose keys and shapes the pycls tensors are."""
    classes, headless = _classes(shapes), "head.fc.weight" not in shapes  # a backbone saved without its classifier
    for v in registry.variants.values():
        v = structure.fit_classes(v, classes)
        want = {k: s for k, s in expected_keys(v, registry.pycls_layout(v.family)).items() if not (headless and k.startswith("head.fc."))}
        if len(want) == len(shapes) and all(want.get(k) == tuple(s) for k, (s, _) in shapes.items()):
            return v
    return None


def recorded_model(meta: dict[str, Any] | None, registry: Registry) -> Variant | None:
    """The model a ckptconv meta records: its numbers (``model``), else a zoo name (``arch``)."""
    if not meta:
        return None
    if isinstance(meta.get("model"), dict):
        return structure.named(parse_variant(meta["model"], error=MappingError), list(registry.variants.values()))
    if isinstance(meta.get("arch"), str) and meta["arch"] in registry.variants:
        return registry.variant(meta["arch"])
    return None


def _elsewhere(shapes: Shapes, registry: Registry, layouts: list[Layout], best: Match) -> MappingError | None:
    """The tensors fit another layout exactly: say which (a --from that names the wrong one)."""
    names = {lay.name for lay in layouts}
    others = [m for m in rank(shapes, registry, [t for t in registry.all_layouts() if t.name not in names]) if m.exact]
    if not others:
        return None
    m = others[0]
    return MappingError(
        f"this is already a {m.layout_name} {m.variant.name} checkpoint, not {best.layout_name}",
        fix=f"ckptconv convert IN OUT --from {m.layout_name} --to ...",
    )


def _no_fit(best: Match, shapes: Shapes) -> MappingError:
    common = len(shapes) - best.unexpected
    if common < len(shapes) / 2:  # not a near miss: say what it looks like instead
        return MappingError(
            f"this is not a model ckptconv converts: only {common} of its {len(shapes)} keys are keys of a "
            f"{best.layout_name} variant (closest: {best.variant.name}); its keys are {engine.key_groups(shapes)}",
            fix="ckptconv converts pycls models to and from the layouts `ckptconv mappings` lists; pass --from if this is one of them",
        )
    return MappingError(
        f"the tensors fit no known variant in the {best.layout_name} layout; closest is {best.variant.name} "
        f"({best.missing} missing, {best.unexpected} unexpected, {best.wrong_shape} wrong-shape keys)",
        fix=f"pass --arch {best.variant.name} to see each problem, or ckptconv inspect FILE",
    )


def _check_cfg_fits(stated: Variant, shapes: Shapes, registry: Registry) -> None:
    """The cfg's model must have the tensors' shapes; it alone says what tensors cannot (the stride
    placement of models/resnet.py, BN eps), so a zoo model of the same tensors does not overrule it."""
    try:
        structure.check_cfg_fits(stated, shapes)
    except MappingError as e:
        fit = _zoo_fit(shapes, registry)
        if fit is None:
            raise
        raise MappingError(f"the checkpoint's cfg says {stated.name} but its tensors are {fit.name} ({e.message})",
                           fix=f"pass --arch {fit.name} if the tensors are right") from None


def pycls_structure(cfg: Any, shapes: Shapes, registry: Registry, meta: dict[str, Any] | None = None,
                    where: str = "the checkpoint's cfg") -> tuple[Variant, str]:
    """The model a pycls state dict holds, and what said so: its cfg (the checkpoint's, or
    ``--cfg``: ``where`` names it), a ckptconv meta, the zoo model its tensors are, else the tensors
    alone (what they cannot tell is assumed and listed). A zoo structure goes by the zoo's name."""
    zoo = list(registry.variants.values())
    stated = structure.from_cfg(cfg, where)
    if stated is not None:
        stated = structure.named(stated, zoo)
        _check_cfg_fits(stated, shapes, registry)
        return stated, "cfg"
    recorded = recorded_model(meta, registry)
    if recorded is not None:
        return recorded, "meta"
    fit = _zoo_fit(shapes, registry)
    if fit is not None:
        assumed = ("the stride on the 3x3, as pycls's AnyNet (models/resnet.py strides the first 1x1 by default, RESNET.STRIDE_1X1)",)
        return replaced(fit, assumed=assumed) if "stem:res_stem_in" in fit.features and "block:res_bottleneck_block" in fit.features else fit, "shapes"
    return structure.named(structure.from_shapes(shapes), zoo), "shapes"


def resolve_arch(requested: str | None, cfg: Any, shapes: Shapes, registry: Registry, layout: str, meta: dict[str, Any] | None = None,
                 where: str = "the checkpoint's cfg") -> tuple[Variant, str, str]:
    """The model to convert, how it was found (--arch, cfg, meta, shapes) and the key prefix, for a
    state dict in ``layout``. ``--arch`` must agree with the tensors when they fit a zoo model
    exactly, and with the cfg's model; a pycls file's structure comes from its cfg (``where`` names
    it), meta or tensors (``pycls_structure``); a library layout's from a ckptconv meta, else the
    zoo model its keys are."""
    layouts, meta = registry.layouts_named(layout), meta or {}
    exact = exact_match(shapes, registry, layouts)
    if requested:
        stated = structure.from_cfg(cfg, where) if layout == PYCLS else None
        return _requested(requested, exact, shapes, registry, layouts, stated)
    prefix = common_prefix(shapes) if not any(k.startswith("stem.") for k in shapes) else ""
    bare = {k[len(prefix) + 1 :] if prefix else k: v for k, v in shapes.items()}
    if layout == PYCLS and _pycls_like(bare):
        variant, how = pycls_structure(cfg, bare, registry, meta, where)
        return variant, how, prefix
    if exact:
        return exact.variant, "meta" if meta.get("arch") == exact.variant.name else "shapes", exact.prefix
    recorded = recorded_model(meta, registry)
    ranked = rank(shapes, registry, layouts, [recorded] if recorded is not None else [])
    if recorded is not None and ranked[0].exact:
        return recorded, "meta", ranked[0].prefix
    elsewhere = _elsewhere(shapes, registry, layouts, ranked[0])
    if elsewhere is not None:
        raise elsewhere
    if recorded is not None:  # the meta names a model the keys do not fit: let the plan name every misfit
        return recorded, "meta", ""
    raise _no_fit(ranked[0], shapes)


def _pycls_like(shapes: Shapes) -> bool:
    """The keys are pycls's (a stem and numbered stages), whatever model they are."""
    return "stem.conv.weight" in shapes and any(k.startswith("s1.b1.") for k in shapes)
