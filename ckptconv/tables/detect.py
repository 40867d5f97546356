"""Which variant (and layout) a checkpoint holds: from pycls's dumped cfg, or from tensor shapes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

from . import engine
from ..errors import FormatError, MappingError, UsageError
from .families import FAMILIES
from .registry import Registry
from .layout import Layout
from .variants import Variant

Shapes = dict[str, tuple[tuple[int, ...], str]]  # key -> (shape, dtype name)


def _scalar(text: str) -> Any:
    text = text.strip().strip("'\"")
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_cfg(cfg: Any) -> dict[str, dict[str, Any]]:
    """Sections of a pycls cfg: a dict, or the YAML string ``cfg.dump()`` writes (block or flow lists).

    Only what arch detection needs is understood: top-level sections of ``KEY: value`` lines,
    with lists written ``[a, b]`` or as ``- a`` lines.
    """
    if isinstance(cfg, dict):
        return {str(k): dict(v) for k, v in cfg.items() if isinstance(v, dict)}
    if not isinstance(cfg, str):
        return {}
    sections: dict[str, dict[str, Any]] = {}
    section = key = None
    for line in cfg.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if indent == 0:
            name, _, rest = text.partition(":")
            section, key = (name, None) if not rest.strip() else (None, None)
            if section is not None:
                sections[section] = {}
            continue
        if section is None:
            continue
        if text.startswith("- ") and key is not None:
            sections[section].setdefault(key, []).append(_scalar(text[2:]))
            continue
        m = re.match(r"([A-Za-z_][\w]*):\s*(.*)$", text)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if value.startswith("[") and value.endswith("]"):
            sections[section][key] = [_scalar(v) for v in value[1:-1].split(",") if v.strip()]
        elif value:
            sections[section][key] = _scalar(value)
    return sections


# the keys of a family's cfg section without which a dump says nothing about the variant
_REQUIRED = {"EN": ("DEPTHS", "WIDTHS"), "REGNET": ("DEPTH", "W0", "WA", "WM"), "ANYNET": ("DEPTHS", "WIDTHS")}


def _matching(section: dict[str, Any], variants: list[Variant]) -> str | None:
    for v in variants:
        want = v.cfg()
        if all(_same(section.get(k), want[k]) for k in want if k in section):
            return v.name
    return None


def _families_of(model_type: str) -> list:
    if not model_type:  # blank (pycls's default when a model is built in code): any family may be meant
        return list(FAMILIES.values())
    found = [f for f in FAMILIES.values() if model_type in f.model_types]
    if not found:
        types = sorted({t for f in FAMILIES.values() for t in f.model_types})
        raise FormatError(f"the checkpoint's cfg says MODEL.TYPE: {model_type}; ckptconv converts {', '.join(types)}",
                          fix="convert a checkpoint of one of those models")  # fmt: skip
    return found


def arch_from_cfg(cfg: Any, variants: dict[str, Variant]) -> str | None:
    """The variant whose numbers the cfg holds (its MODEL.TYPE's section: EN, REGNET or ANYNET);
    None when the cfg says nothing. Raises when it names another model type, or a type whose
    numbers no variant has."""
    sections = parse_cfg(cfg)
    model_type = str(sections.get("MODEL", {}).get("TYPE") or "").strip().lower()
    for fam in _families_of(model_type):
        section = sections.get(fam.section)
        if not section or not all(k in section for k in _REQUIRED[fam.section]):
            continue
        name = _matching(section, [v for v in variants.values() if v.family == fam.name])
        if name:
            return name
        if not model_type:  # a blank type's default sections say nothing
            continue
        shown = ", ".join(f"{k} {section.get(k)}" for k in _REQUIRED[fam.section])
        raise MappingError(
            f"the checkpoint's cfg has {fam.section} numbers no known variant has ({shown})",
            fix="add a variant file for it (see README: adding a variant) or pass --tables DIR",
        )
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(b, (bool, str)) or isinstance(a, (bool, str)):
        return a == b
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


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


def candidates(registry: Registry, layouts: list[Layout]) -> list[tuple[Layout, Variant]]:
    """Every (layout, variant) pair a file may hold: the variants of each layout's family it can hold."""
    return [(lay, v) for lay in layouts for v in registry.variants_of(lay.family) if lay.refusal(v) is None]


def exact_matches(shapes: Shapes, registry: Registry, layouts: list[Layout]) -> Iterator[Match]:
    """Every candidate the state dict fits exactly, in candidate order, checking only those with as
    many keys (fast path); lazily, so the first costs only what comes before it."""
    prefixes = {"", common_prefix(shapes)}
    for lay, v in candidates(registry, layouts):
        for prefix in prefixes:
            want = expected_keys(v, lay, prefix)
            if len(want) == len(shapes) and all(want.get(k) == tuple(s) for k, (s, _) in shapes.items()):
                yield Match(lay, v, prefix, 0, 0, 0)


def exact_match(shapes: Shapes, registry: Registry, layouts: list[Layout]) -> Match | None:
    """The first candidate the state dict fits exactly."""
    return next(exact_matches(shapes, registry, layouts), None)


def rank(shapes: Shapes, registry: Registry, layouts: list[Layout]) -> list[Match]:
    """Every layout x variant x prefix candidate, best fit first; partial fits count misfits."""
    prefixes = {""}
    if common_prefix(shapes):
        prefixes.add(common_prefix(shapes))
    found = [score(shapes, v, lay, prefix) for lay, v in candidates(registry, layouts) for prefix in prefixes]
    return sorted(found, key=lambda m: (m.misfits, m.missing))


def _requested(name: str, exact: Match | None, shapes: Shapes, registry: Registry, layouts: list[Layout]) -> tuple[Variant, str, str]:
    """``--arch``: it must agree with the tensors when they fit a variant exactly."""
    variant = registry.variant(name)
    if exact and exact.variant is not variant:
        raise UsageError(f"--arch {variant.name} disagrees with the tensors, which are {exact.variant.name}", fix=f"pass --arch {exact.variant.name} or omit --arch")
    if exact:
        return variant, "--arch", exact.prefix
    return variant, "--arch", next((m.prefix for m in rank(shapes, registry, layouts) if m.variant is variant), "")


def _stated(cfg: Any, meta: dict[str, Any] | None, registry: Registry) -> list[tuple[str, str]]:
    """What the file says it is: (cfg, name) from pycls's cfg, (meta, name) from a ckptconv meta."""
    stated = [("cfg", name)] if (name := arch_from_cfg(cfg, registry.variants)) else []
    if meta and isinstance(meta.get("arch"), str) and meta["arch"] in registry.variants:
        stated.append(("meta", meta["arch"]))
    return stated


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


def resolve_arch(requested: str | None, cfg: Any, shapes: Shapes, registry: Registry, layout: str, meta: dict[str, Any] | None = None) -> tuple[Variant, str, str]:
    """The variant to convert, how it was found (--arch, cfg, meta, shapes) and the key prefix, for a
    state dict in ``layout`` (in whichever family has the variant).

    ``--arch``, the cfg and a ckptconv meta must agree with the tensors when the tensors fit a
    variant exactly; a disagreement names both.
    """
    layouts = registry.layouts_named(layout)
    exact = exact_match(shapes, registry, layouts)
    if requested:
        return _requested(requested, exact, shapes, registry, layouts)
    stated = _stated(cfg, meta, registry)
    for how, name in stated:
        if exact and exact.variant.name != name:
            raise MappingError(f"the checkpoint's {how} says {name} but its tensors are {exact.variant.name}", fix=f"pass --arch {exact.variant.name} if the tensors are right")
    if exact:
        return exact.variant, stated[0][0] if stated else "shapes", exact.prefix
    ranked = rank(shapes, registry, layouts)
    elsewhere = _elsewhere(shapes, registry, layouts, ranked[0])
    if elsewhere is not None:
        raise elsewhere
    if stated:  # the file names a variant the tensors do not fit: let the plan name every misfit
        how, name = stated[0]
        return registry.variant(name), how, next((m.prefix for m in ranked if m.variant.name == name), "")
    raise _no_fit(ranked[0], shapes)
