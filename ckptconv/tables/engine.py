"""The rule engine: expand a layout table for a variant, plan a conversion, check a state dict.

pycls is the hub. Every table (pycls's own, with identity rules, included) maps each pycls key of a
variant to a key of its layout or drops it, so converting from layout A to layout B goes
A -> pycls (the table of A, inverted) -> B (the table of B). The engine works on key names and
shapes only: it never touches tensor data and never imports torch.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..errors import MappingError, TableError
from ..model.variants import KeySpec, Variant
from ..options import PYCLS
from .layout import Layout, Rule


@dataclass(frozen=True)
class Entry:
    """What happens to one pycls key: mapped from ``source`` to ``target``, or dropped by ``rule``."""

    pycls: str
    source: str | None  # key in the input layout; None when the input layout lacks it
    target: str | None  # key in the output layout; None when dropped
    rule: str  # rule that decided (the output table's; from the hub, the input table's, inverted)
    reason: str | None  # why the key is dropped or absent
    spec: KeySpec  # shape and dtype the key must have

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spec.shape


def with_prefix(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def derive_index(layout: Layout, variant: Variant, stage: int, block: int) -> tuple[int, int]:
    """``({layer}, {index})`` of pycls block ``s{stage}.b{block}`` in the layout."""
    if not 1 <= stage <= variant.stages or (layout.stage_layer and stage > len(layout.stage_layer)):
        raise MappingError(f"stage {stage} does not exist in {variant.name} / table {layout.name}")
    layer = layout.layer_of(stage)
    offset = sum(variant.depths[t] for t in range(stage - 1) if layout.layer_of(t + 1) == layer)
    return layer, layout.first_block + offset + block - 1


def apply_rule(layout: Layout, variant: Variant, rule: Rule, captures: dict[str, str]) -> str:
    values = dict(captures)
    for name, table in layout.names.items():
        if name in values:
            values[name] = table[values[name]]
    if "{layer}" in rule.target or "{index}" in rule.target:
        values["layer"], values["index"] = derive_index(layout, variant, int(values["stage"]), int(values["block"]))
    if "{head_layer}" in rule.target:  # the layer after the last stage's (torchvision's features.8 of a 7-stage model)
        values["head_layer"] = layout.layer_of(variant.stages) + 1
    return rule.target.format(**values)


def match_key(layout: Layout, variant: Variant, key: str) -> tuple[Rule, str | None] | None:
    """The first rule matching ``key`` and the key it maps to (None for a drop); None if no rule."""
    for rule in layout.rules:
        captures = rule.match(key)
        if captures is not None and (rule.expand is None or _expands(variant, captures) == rule.expand) and (rule.se is None or _has_se(variant) == rule.se):
            return rule, (None if rule.drop is not None else apply_rule(layout, variant, rule, captures))
    return None


def _expands(variant: Variant, captures: dict[str, str]) -> bool:
    """Whether pycls block s{stage}.b{block} has its 1x1 expansion (EfficientNet)."""
    stage, block = int(captures["stage"]), int(captures["block"])
    return any(b.stage == stage and b.block == block and getattr(b, "has_expand", False) for b in variant.blocks)


def _has_se(variant: Variant) -> bool:
    return "se" in variant.features


def content_key(item: Layout | Variant) -> object:
    """What a table or variant's expansion depends on: its file (path and sha256), so every registry
    of a process shares one expansion of an unchanged file; an object built in code is its own key."""
    return (type(item).__name__, item.family, item.name, item.path, item.digest) if item.digest else item


_MAPS: dict[tuple[object, object], tuple] = {}


def table_map(layout: Layout, variant: Variant) -> tuple[tuple[KeySpec, Rule, str | None], ...]:
    """Every pycls key of the variant with the rule that takes it and its target (None: dropped).
    Computed once per table and variant file in a process.

    Raises ``TableError`` when the table leaves a pycls key unmatched or sends two keys to one target:
    those are bugs in the table, whatever the checkpoint.
    """
    key = (content_key(layout), content_key(variant))
    if key not in _MAPS:
        _MAPS[key] = _expand(layout, variant)
    return _MAPS[key]


def _expand(layout: Layout, variant: Variant) -> tuple[tuple[KeySpec, Rule, str | None], ...]:
    out, seen = [], {}
    for spec in variant.pycls_keys:
        hit = match_key(layout, variant, spec.key)
        if hit is None:
            raise TableError(
                f"table {layout.name!r} has no rule for pycls key {spec.key} of {variant.name}",
                fix="add a rule that maps it or one that drops it with a reason",
                path=layout.path,
            )
        rule, target = hit
        if target is not None:
            if target in seen:
                raise TableError(
                    f"table {layout.name!r} maps both {seen[target]} and {spec.key} to {target} for {variant.name}",
                    fix="each target key must come from exactly one source key",
                    path=layout.path,
                )
            seen[target] = spec.key
        out.append((spec, rule, target))
    return tuple(out)


@dataclass(frozen=True)
class Plan:
    """A conversion of one variant from one layout to another, key by key, in output order."""

    variant: Variant
    source: Layout
    target: Layout
    source_prefix: str
    target_prefix: str
    entries: tuple[Entry, ...]

    @property
    def source_layout(self) -> str:
        return self.source.name

    @property
    def target_layout(self) -> str:
        return self.target.name

    @property
    def mapped(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.source is not None and e.target is not None)

    @property
    def dropped(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.source is not None and e.target is None)

    @property
    def absent(self) -> tuple[Entry, ...]:
        """Target keys the input layout cannot provide (e.g. pycls ``head.fc`` from an mmdet file)."""
        return tuple(e for e in self.entries if e.source is None and e.target is not None)

    @property
    def source_keys(self) -> dict[str, Entry]:
        return {e.source: e for e in self.entries if e.source is not None}


def _side(layout: Layout, variant: Variant) -> dict[str, tuple[str | None, str, str | None]]:
    """pycls key -> (key in this layout or None, deciding rule, drop reason)."""
    return {spec.key: (target, rule.name, rule.drop) for spec, rule, target in table_map(layout, variant)}


def plan(variant: Variant, target: Layout, source: Layout, *, target_prefix: str = "", source_prefix: str = "") -> Plan:
    """Plan ``source`` -> ``target`` for ``variant``, through the pycls keys both tables map from."""
    src, dst = _side(source, variant), _side(target, variant)
    from_hub = source.name == PYCLS
    entries = []
    for spec in variant.pycls_keys:
        s_key, s_rule, s_why = src[spec.key]
        d_key, d_rule, d_why = dst[spec.key]
        if s_key is None and d_key is None:
            continue
        if s_key is None:
            why = f"the {source.name} layout has no {spec.key} (its rule {s_rule!r}: {s_why})"
            entries.append(Entry(spec.key, None, with_prefix(target_prefix, d_key), s_rule, why, spec))
        elif d_key is None:
            entries.append(Entry(spec.key, with_prefix(source_prefix, s_key), None, d_rule, d_why, spec))
        else:
            rule = d_rule if from_hub or target.name != PYCLS else f"{s_rule} (inverted)"
            entries.append(Entry(spec.key, with_prefix(source_prefix, s_key), with_prefix(target_prefix, d_key), rule, None, spec))
    return Plan(variant, source, target, source_prefix, target_prefix, tuple(entries))


def group_keys(keys) -> str:
    """Shorten a key list the way detectron2 does: ``a.b.{weight,bias}``, sorted."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key in sorted(keys):
        head, _, tail = key.rpartition(".")
        groups[head].append(tail)
    parts = []
    for head, tails in groups.items():
        inner = tails[0] if len(tails) == 1 else "{" + ",".join(tails) + "}"
        parts.append(f"{head}.{inner}" if head else inner)
    return ", ".join(parts)


def key_groups(keys, limit: int = 8) -> str:
    """Keys grouped by their first segment, with counts, in order: 'stem (10), s1 (12), ...'."""
    counts: dict[str, int] = {}
    for key in keys:
        head = key.split(".", 1)[0]
        counts[head] = counts.get(head, 0) + 1
    parts = [f"{head} ({n})" for head, n in counts.items()]
    more = f", and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def check_source(
    plan_: Plan,
    shapes: dict[str, tuple[tuple[int, ...], str]],
    *,
    variants: list[Variant] | None = None,
) -> None:
    """Check an input state dict (key -> (shape, dtype name)) against the plan; raise on any misfit.

    Every problem is named: unmatched keys (and which rule, if any, would take them), missing keys,
    shapes that differ (and which variant they would fit), dtypes that are not floating point where
    weights are expected. The first problem leads the message; the count of the rest follows.
    """
    expected = plan_.source_keys
    variant = plan_.variant
    problems: list[str] = []
    unexpected = [k for k in shapes if k not in expected]
    for key in unexpected:
        problems.append(_diagnose_unexpected(key, plan_))
    # A key the target drops anyway (pycls's head.fc for mmdet) may be missing: nothing is lost.
    missing = [e for e in plan_.entries if e.source is not None and e.target is not None and e.source not in shapes]
    for e in missing:
        problems.append(f"{e.source}: missing from the checkpoint (target {e.target} would be left unfilled)")
    for key, (shape, dtype) in shapes.items():
        entry = expected.get(key)
        if entry is None:
            continue
        if tuple(shape) != entry.shape:
            fits = _variants_fitting(entry.pycls, tuple(shape), variants or [], exclude=variant.name)
            hint = f"; is this a {fits[0]} checkpoint? pass --arch {fits[0]} or omit --arch to detect it" if fits else ""
            problems.append(
                f"{key}: shape {tuple(shape)} but {variant.name} expects {entry.shape}{hint}"
            )
        elif (entry.spec.dtype == "int64") != (dtype in ("int64", "int32")):
            problems.append(f"{key}: dtype {dtype} but {variant.name} expects {entry.spec.dtype}")
    if problems:
        more = f" (+{len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        err = MappingError(
            problems[0] + more,
            fix=None if "pass --arch" in problems[0] else _fix_for(plan_, unexpected, missing),
        )
        err.problems = problems
        raise err


def _fix_for(plan_: Plan, unexpected: list[str], missing: list[Entry]) -> str:
    if unexpected and not missing:
        return "this checkpoint has keys the table does not know; check --arch and --layout (ckptconv inspect FILE)"
    if missing and not unexpected:
        return "the checkpoint is incomplete; was it saved from a partially built model?"
    return f"check --arch ({plan_.variant.name}) and --from/--layout; ckptconv inspect FILE shows what the file holds"


def _diagnose_unexpected(key: str, plan_: Plan) -> str:
    """Say why an input key has no place: no rule matches it, or its rule leads nowhere in this arch."""
    variant, table = plan_.variant, plan_.target
    if plan_.source.name == PYCLS:
        bare = key[len(plan_.source_prefix) + 1 :] if plan_.source_prefix and key.startswith(plan_.source_prefix + ".") else key
        try:
            hit = match_key(table, variant, bare)
        except MappingError as e:
            return f"{key}: {e.message}"
        if hit is None:
            return f"{key}: no rule of table {table.table_id} matches this key (it is neither mapped nor dropped)"
        rule, target = hit
        if target is None:
            return f"{key}: rule {rule.name!r} would drop it, but pycls {variant.name} has no such key"
        return f"{key}: rule {rule.name!r} maps it to {target}, but {variant.name} has no such key"
    return f"{key}: not a key of the {plan_.source_layout} layout for {variant.name}"


def _variants_fitting(pycls_key: str, shape: tuple[int, ...], variants: list[Variant], exclude: str) -> list[str]:
    return [
        v.name
        for v in variants
        if v.name != exclude and any(s.key == pycls_key and s.shape == shape for s in v.pycls_keys)
    ]
