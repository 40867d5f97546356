"""Layout tables: declarative key-mapping rules from pycls to one layout, validated when they load.

A table is a TOML file in ``mappings/layouts/``; pycls itself is one (identity rules). Its rules are
an ordered list; the first rule whose ``from`` pattern matches a whole pycls key wins. A rule either
maps (``to``) or drops the key (``drop = "why"``). Patterns use placeholders, never raw regex:

- ``{stage}``, ``{block}``: decimal integers (pycls's ``s{stage}.b{block}``, both 1-based);
- ``{name}`` declared in ``[names.name]``: one of that table's keys, written as its value;
- any other ``{name}``: one key segment (no dots), written unchanged.

In ``to`` three more values exist, computed from ``[index]`` and the model's depths: ``{layer}`` is
``stage_layer[stage - 1]`` (or ``stage + stage_offset``, for any number of stages); ``{index}``
numbers blocks from ``first_block`` within a layer, continuing across the stages that share it
(mmdet's ``layers.4`` holds s4 then s5); ``{head_layer}`` is the layer after the last stage's.
``[levels]`` may name every stage at once: ``"layer{n}" = "s{n}"`` (``{i}`` is n - 1).
A rule may restrict captured integers with ``where = { stage = [1] }``, an EfficientNet block
rule to blocks with or without their 1x1 expansion (``where = { expand = false }``), and any rule to
models with or without squeeze-and-excitation (``where = { se = true }``: transformers numbers a
RegNetY block's last conv one further than a RegNetX's). The rules live in
``[mapping] rules = [...]``, one inline table per line, so a reviewer reads them as a column.

Every section is checked here, so a typo is one ``TableError`` naming the file, the field and the
fix, never a traceback during a conversion.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Refused, TableError
from ..fields import Fields
from ..libraries import Library, library
from ..libraries.building import Built, build
from ..model.families import FAMILIES, Family
from ..options import GEOMETRY, NAME, ORDERS, PADDINGS, PREFIX, Geometry
from .pipeline import Pipeline

INT_PLACEHOLDERS = ("stage", "block")
DERIVED_PLACEHOLDERS = ("layer", "index", "head_layer")
CONTAINERS = ("state_dict", "plain", "pycls")
# what a [config] template may use; convert.render_config fills each
CONFIG_FIELDS = frozenset({
    "arch", "title", "version", "checkpoint", "init_prefix", "prefix", "out_indices", "in_channels", "level_widths",
    "num_classes", "eps", "stage_indices", "last_stage", "channel_order", "mean", "std", "flip", "crop_size", "resize_size", "crop_pct", "input_note", "load_note",
    "builder", "builder_note", "library_name", "eps_note", "load_weights",  # the layout's builder, else the variant's [libraries.<library>]
    "torch_transform", "mm_test_pipeline",  # the test-time preprocessing that gives pycls's input
    "head_w",  # EfficientNet
    "depth", "stage_blocks", "groups", "width_per_group", "regnet_arch", "stage_widths", "stage_group_widths", "se_ratio",  # AnyNet
})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_QUOTED_PLACEHOLDER = re.compile(r"""(['"])\{([A-Za-z_][A-Za-z0-9_]*)(![rsa])?\}\1""")
SECTIONS = ("layout", "settings", "library_defaults", "pipeline", "index", "names", "mapping", "refuse", "levels", "config")
# what a table may refuse a model for (see Variant.features)
FEATURES = ("se", "stride_1x1", "stem:simple_stem_in", "stem:res_stem_in", "stem:res_stem_cifar",
            "block:vanilla_block", "block:res_basic_block", "block:res_bottleneck_block")
MAX_INDEX = 64
SIZES = ("pycls", "own")  # [pipeline] sizes: who decides the input's size (a detector resizes to its own scale)


@dataclass(frozen=True)
class Rule:
    """One ordered rule: ``source`` pattern to ``target`` template, or a drop with its reason."""

    name: str
    source: str
    target: str | None
    drop: str | None
    where: dict[str, frozenset[int]]
    regex: re.Pattern[str]
    expand: bool | None = None  # only blocks that have (True) or lack (False) pycls's exp conv
    se: bool | None = None  # only models with (True) or without (False) squeeze-and-excitation

    def match(self, key: str) -> dict[str, str] | None:
        m = self.regex.fullmatch(key)
        if m is None:
            return None
        captures = m.groupdict()
        for name, allowed in self.where.items():
            if int(captures[name]) not in allowed:
                return None
        return captures


@dataclass(frozen=True)
class Refusal:
    """A kind of variant a layout cannot hold: when the variant has ``when``, why, and what to use."""

    when: str
    reason: str
    alternative: str


@dataclass(frozen=True, eq=False)
class Layout:
    """A layout: its rules, the settings its weights need and how to verify and describe it."""

    name: str
    version: int
    summary: str
    library: Library  # ckptconv/libraries: its loader, reference models, builders
    model_class: str  # the library class the layout loads into, in words (the table's ``class``)
    reference: str
    container: str
    prefix: str
    settings: dict[str, Any]
    library_defaults: dict[str, Any]
    stage_layer: tuple[int, ...]  # pycls stage -> target layer; empty: stage + stage_offset, for any number of stages
    first_block: int
    names: dict[str, dict[str, str]]
    rules: tuple[Rule, ...]
    levels: dict[str, str]
    config: dict[str, Any]
    family: str = "effnet"
    pipeline: Pipeline = Pipeline("rgb", 1.0, "")
    refuse: tuple[Refusal, ...] = ()
    stage_offset: int = 0
    path: str = ""
    digest: str = ""  # sha256 of the table file: outputs record it, so batch knows a changed table

    @property
    def loads_into(self) -> str:
        """The library and class, in words: "timm (efficientnet_bN)"."""
        return self.model_class or self.library.title

    @property
    def table_id(self) -> str:
        return f"{self.name}@{self.version}"

    def refusal(self, variant) -> Refusal | None:
        """Why this layout cannot hold ``variant``, if it cannot (e.g. no SE in MMDetection's RegNet)."""
        found = next((r for r in self.refuse if r.when in variant.features), None)
        if found is None and self.stage_layer and len(self.stage_layer) != variant.stages:
            found = Refusal("stages", f"the {self.name} table maps models of {len(self.stage_layer)} stages, not {variant.stages}", "another layout")
        return found

    def check_holds(self, variant) -> None:
        """Refused, before anything is read further or written, when this layout cannot hold
        ``variant``: a refusal of the table's, or a model the library's classes cannot build."""
        refusal = self.refusal(variant)
        if refusal is not None:
            raise Refused(f"{variant.name} cannot be converted to {self.name}: {refusal.reason}", fix=f"use {refusal.alternative}")
        try:
            self.built(variant)
        except Refused as e:
            raise Refused(f"{variant.name} cannot be converted to {self.name}: {e.message}", fix=e.fix) from None

    def built(self, variant) -> Built | None:
        """How the layout's library builds ``variant`` through its public API (None for a layout
        without a library builder, pycls's own); raises Refused when its classes cannot."""
        return build(self.library, variant) if self.library.builders else None

    def needs(self, variant) -> dict[str, Any]:
        """What the weights of ``variant`` need in this layout's library: the table's padding, the
        model's own BN eps (its cfg's BN.EPS), and the one-line advice (``{eps}`` filled in)."""
        return {"padding": self.settings["padding"], "eps": variant.eps, "config": self.settings["config"].format(eps=f"{variant.eps:g}")}

    def layer_of(self, stage: int) -> int:
        """The target layer pycls stage ``stage`` (1-based) goes to."""
        return self.stage_layer[stage - 1] if self.stage_layer else stage + self.stage_offset

    def levels_for(self, variant) -> dict[str, str]:
        """Every level of the layout for ``variant`` (patterns expanded to its stages) and its pycls point."""
        out, h = {}, variant.stages + 1  # {h}: the layer after the last stage (torchvision's head)
        for level, point in self.levels.items():
            for n in range(1, variant.stages + 1) if "{n}" in level or "{i}" in level else (0,):
                out[level.format(n=n, i=n - 1, h=h)] = point.format(n=n, i=n - 1)
        return out

    def out_levels(self, variant) -> dict[int, str]:
        """The levels a library config's ``out_indices`` can select: index -> level name."""
        pattern = self.config.get("out_level")
        return indexed_levels(pattern, self.levels_for(variant)) if pattern else {}



def _compile(pattern: str, names: dict[str, dict[str, str]], fail) -> re.Pattern[str]:
    """Turn a placeholder pattern into an anchored regex with one named group per placeholder."""
    parts, pos, seen = [], 0, set()
    for m in _PLACEHOLDER.finditer(pattern):
        if m.start() == pos and pos > 0 and parts and pattern[pos - 1] == "}":
            fail(f"two placeholders touch in {pattern!r}: where one ends and the next begins is ambiguous (and matching "
                 "every key that way takes time quadratic in its length); put a literal between them, such as a dot")
        parts.append(re.escape(pattern[pos : m.start()]))
        name = m.group(1)
        if name in seen:
            fail(f"placeholder {{{name}}} appears twice in {pattern!r}")
        if name in DERIVED_PLACEHOLDERS:
            fail(f"{{{name}}} is computed for 'to' and cannot appear in 'from'")
        seen.add(name)
        if name in INT_PLACEHOLDERS:
            parts.append(f"(?P<{name}>[0-9]+)")
        elif name in names:
            alternatives = sorted(names[name], key=len, reverse=True)
            parts.append(f"(?P<{name}>{'|'.join(re.escape(a) for a in alternatives)})")
        else:
            parts.append(f"(?P<{name}>[^.]+)")
        pos = m.end()
    parts.append(re.escape(pattern[pos:]))
    if re.search(r"[{}]", _PLACEHOLDER.sub("", pattern)):
        fail(f"unbalanced brace in {pattern!r}")
    return re.compile("".join(parts))


def _check_target(target: str, captured: set[str], has_index: bool, fail) -> None:
    if re.search(r"[{}]", _PLACEHOLDER.sub("", target)):
        fail(f"unbalanced brace in {target!r}")
    for ph in _PLACEHOLDER.findall(target):
        if ph in DERIVED_PLACEHOLDERS:
            if not has_index:
                fail(f"uses {{{ph}}} but the table has no [index] section")
            if ph != "head_layer" and not {"stage", "block"} <= captured:
                fail(f"uses {{{ph}}}, which needs {{stage}} and {{block}} in 'from'")
        elif ph not in captured:
            fail(f"'to' uses {{{ph}}}, which 'from' does not capture")


def _parse_rule(raw: Any, i: int, names: dict[str, dict[str, str]], has_index: bool, path: str) -> Rule:
    f = Fields(raw, f"[mapping] rules[{i}]", TableError, path)
    f.only({"name", "from", "to", "drop", "where"})
    name, source = f.text("name", pattern=NAME), f.text("from")

    def fail(message: str) -> None:
        raise TableError(f"rule {name!r}: {message}", path=path)

    if f.has("to") == f.has("drop"):
        fail("needs exactly one of 'to' (map) or 'drop' (reason to drop)")
    regex = _compile(source, names, fail)
    captured = set(regex.groupindex)
    target = f.text("to") if f.has("to") else None
    if target is not None:
        _check_target(target, captured, has_index, fail)
    where = f.section("where", {})
    restrict, flags = {}, {}
    for ph in where.data:
        if ph == "se" or (ph == "expand" and {"stage", "block"} <= captured):
            if not isinstance(where.data[ph], bool):
                fail(f"'where' {ph} is {where.data[ph]!r}; expected true or false")
            flags[ph] = where.data[ph]
        elif ph not in INT_PLACEHOLDERS or ph not in captured:
            fail(f"'where' can restrict only captured {{stage}} or {{block}}, expand or se, not {ph!r}")
        else:
            restrict[ph] = frozenset(where.ints(ph, lo=0, hi=10_000))
    drop = f.text("drop") if f.has("drop") else None
    return Rule(name, source, target, drop, restrict, regex, flags.get("expand"), flags.get("se"))


def _names(f: Fields) -> dict[str, dict[str, str]]:
    section = f.section("names", {})
    names = {str(k): section.strings(k) for k in section.data}
    for reserved in (*INT_PLACEHOLDERS, *DERIVED_PLACEHOLDERS):
        if reserved in names:
            f.fail(f"[names.{reserved}] would shadow the built-in {{{reserved}}}")
    return names


def _rules(f: Fields, names: dict[str, dict[str, str]], has_index: bool) -> tuple[Rule, ...]:
    mapping = f.section("mapping", {})
    mapping.only({"rules"})
    if not isinstance(mapping.data.get("rules"), list) or not mapping.data["rules"]:
        f.fail("the table has no [mapping] rules = [...] list")
    rules = tuple(_parse_rule(r, i, names, has_index, f.path) for i, r in enumerate(mapping.items("rules")))
    dupes = {r.name for r in rules if sum(q.name == r.name for q in rules) > 1}
    if dupes:
        f.fail(f"rule names must be unique; repeated: {sorted(dupes)}")
    return rules


def _settings(f: Fields) -> dict[str, Any]:
    s = f.section("settings", {})
    s.only({"padding", "config"})
    config = s.text("config", "")
    if set(_PLACEHOLDER.findall(config)) - {"eps"} or re.search(r"[{}]", _PLACEHOLDER.sub("", config)):
        s.fail("[settings].config may use only the placeholder {eps}", fix="write literal braces as {{ and }}")
    return {"padding": s.text("padding", "symmetric", choices=PADDINGS), "config": config}


def _library_defaults(f: Fields) -> dict[str, Any]:
    s = f.section("library_defaults", {})
    s.only({"padding", "eps"})
    out: dict[str, Any] = {}
    if s.has("padding"):
        out["padding"] = s.text("padding", choices=PADDINGS)
    if s.has("eps"):
        out["eps"] = s.number("eps", lo=1e-12, hi=0.1)
    return out


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    """``name`` is one of ``patterns``, or an instance of one (``layer3`` of ``layer{n}``)."""
    as_regex = lambda p: re.escape(p).replace(r"\{n\}", "[0-9]+").replace(r"\{i\}", "[0-9]+")  # noqa: E731
    return any(name == p or re.fullmatch(as_regex(p), name.replace("{n}", "0").replace("{i}", "0").replace("{h}", "0")) for p in patterns)


def _levels(f: Fields, family: Family, reference: str, lib: Library) -> dict[str, str]:
    levels = f.strings("levels", {})
    known = lib.references[family.name][reference].levels
    for level, point in levels.items():
        if not _matches(level, known):
            f.fail(f"[levels] {level!r} is not an output of the {reference} reference", fix=f"use {', '.join(known)}")
        staged = "{n}" in level or "{i}" in level
        if not _matches(point, family.points) or staged != ("{n}" in point):
            f.fail(f"[levels] {level!r} = {point!r} is not a pycls point of {family.name}", fix=f"use {', '.join(family.points)}")
    return levels


def _refuse(f: Fields) -> tuple[Refusal, ...]:
    if not f.has("refuse"):
        return ()
    out = []
    for i, raw in enumerate(f.items("refuse", max_items=16)):
        r = Fields(raw, f"[[refuse]] {i + 1}", TableError, f.path)
        r.only({"when", "reason", "alternative"})
        out.append(Refusal(r.text("when", choices=FEATURES), r.text("reason"), r.text("alternative")))
    return tuple(out)


def indexed_levels(pattern: str, levels: dict[str, str]) -> dict[int, str]:
    """index -> level name for ``[config].out_level`` (``"layers.{i}"``, or ``"layer{n}"`` with
    n = i + 1), for the names ``levels`` has (expanded for a model)."""
    names = {i: pattern.format(i=i, n=i + 1) for i in range(len(levels) + 1)}
    return {i: name for i, name in names.items() if name in levels}


def _config(f: Fields, levels: dict[str, str]) -> dict[str, Any]:
    c = f.section("config", {})
    c.only({"template", "out_indices", "out_level", "default_out_indices", "base"})
    out: dict[str, Any] = {}
    if c.has("template"):
        template = c.text("template")
        try:
            used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
        except ValueError as e:
            c.fail(f"[config].template is not a valid template ({e})", fix="write literal braces as {{ and }}")
        unknown = sorted(u for u in used if u not in CONFIG_FIELDS)
        if unknown:
            c.fail(f"[config].template uses unknown placeholder(s) {unknown}", fix=f"use {', '.join(sorted(CONFIG_FIELDS))}")
        quoted = _QUOTED_PLACEHOLDER.search(template)
        if quoted:
            c.fail(f"[config].template quotes a value by hand ({quoted.group(0)}): a quote inside the value would end the string",
                   fix=f"write {{{quoted.group(2)}!r}}: the value is then written as a Python literal")
        out["template"] = template
    if c.has("out_indices"):
        out["out_indices"] = c.ints("out_indices", lo=0, hi=MAX_INDEX)
    if c.has("base"):  # the stock config (under the library's .mim/configs) the printed fragment is written to be a child of
        out["base"] = c.text("base", pattern=r"[a-z0-9_]+/[A-Za-z0-9_.-]+\.py")
    if c.has("default_out_indices"):  # what the library's backbone builds when a config gives none
        out["default_out_indices"] = c.ints("default_out_indices", lo=0, hi=MAX_INDEX)
    if c.has("out_level"):  # the level out_indices[i] selects in a library's config: "layers.{i}", "layer{n}" (n = i + 1)
        out["out_level"] = level = c.text("out_level", pattern=r"[A-Za-z0-9_.]*\{[in]\}[A-Za-z0-9_.]*")
        if not any(_matches(level.format(i=i, n=i + 1), tuple(levels)) for i in range(MAX_INDEX)) and level not in levels:
            c.fail(f"[config].out_level {level!r} names no level of [levels]", fix="spell it as [levels] names the backbone's outputs")
    return out


def _check_fixed(f: Fields, stage_layer: tuple[int, ...], levels: dict[str, str], config: dict[str, Any]) -> None:
    """A table of fixed names (an explicit stage_layer, levels without {n}): its levels name stages
    it maps, and its out_indices select levels it has."""
    for level, point in levels.items():
        m = re.fullmatch(r"s(\d+)", point)
        if stage_layer and m and int(m.group(1)) > len(stage_layer):
            f.fail(f"[levels] {level!r} = {point!r}: the table maps {len(stage_layer)} stages", fix=f"use s1 ... s{len(stage_layer)}")
    pattern = config.get("out_level")
    if not pattern or any("{" in level for level in levels):
        return
    have = indexed_levels(pattern, levels)
    for i in config.get("out_indices", ()):
        if i not in have:
            f.fail(f"[config].out_indices has {i}, but {pattern.format(i=i, n=i + 1)!r} is no level of [levels]", fix=f"use {', '.join(map(str, have))}")


def _pipeline(f: Fields) -> Pipeline:
    p = f.section("pipeline", {})
    p.only({"reads", "scale", "flip_flag", "order", "mean", "std", "stock", "sizes"})
    stats = {}
    if p.has("mean") or p.has("std"):
        stats = {"mean": p.numbers("mean", lo=0.0, hi=1.0, length=3), "std": p.numbers("std", lo=1e-3, hi=1.0, length=3),
                 "order": p.text("order", choices=ORDERS)}
    stock = p.section("stock", {})
    stock.only(set(GEOMETRY))
    geometry = Geometry(**{step: stock.text(step, choices[0], choices=choices) for step, choices in GEOMETRY.items()})
    return Pipeline(
        reads=p.text("reads", "rgb", choices=ORDERS),
        scale=p.number("scale", 1.0, lo=1.0, hi=255.0),
        flip_flag=p.text("flip_flag", "", pattern=r"([a-z_]{1,32})?"),
        stock=geometry,
        sizes=p.text("sizes", "pycls", choices=SIZES),
        **stats,
    )


def _index(f: Fields) -> tuple[tuple[int, ...], int, int, bool]:
    """``[index]``: ``stage_layer`` (an explicit list: the table maps models of exactly that many
    stages) or ``stage_offset`` (layer = stage + offset, any number of stages), and ``first_block``."""
    if not f.has("index"):
        return (), 0, 0, False
    index = f.section("index")
    index.only({"stage_layer", "stage_offset", "first_block"})
    if index.has("stage_layer") == index.has("stage_offset"):
        index.fail("[index] needs exactly one of stage_layer (a list) or stage_offset (layer = stage + offset)")
    layers = index.ints("stage_layer", lo=0, hi=64) if index.has("stage_layer") else ()
    return layers, index.integer("stage_offset", 0, lo=-1, hi=64), index.integer("first_block", 0, lo=0, hi=64), True


def _head(f: Fields, path: Path, family: str) -> dict[str, Any]:
    """``[layout]``: the name (its file's), the library (``ckptconv/libraries``) and which of its
    reference models verifies the layout, how the file holds the weights, the default prefix."""
    head = f.section("layout")
    head.only({"name", "version", "summary", "library", "class", "reference", "container", "prefix"})
    name = head.text("name", pattern=NAME)
    if path.stem != name:
        f.fail(f"layout {name!r} must live in {name}.toml")
    lib = library(head.text("library", pattern=NAME), f"{path}: [layout] library")
    reference = head.text("reference", choices=tuple(lib.references.get(family, {})))
    return dict(name=name, version=head.integer("version", lo=1, hi=1_000_000), summary=head.text("summary", ""), library=lib,
                model_class=head.text("class", ""), reference=reference, container=head.text("container", "state_dict", choices=CONTAINERS),
                prefix=head.text("prefix", "", pattern=f"({PREFIX})?"))


def parse_layout(data: dict[str, Any], path: Path, digest: str = "", family: str = "effnet") -> Layout:
    """Validate a parsed layout TOML of ``family`` and compile its rules; every problem is a ``TableError``."""
    f = Fields(data, "", TableError, str(path))
    f.only(SECTIONS)
    head = _head(f, path, family)
    stage_layer, stage_offset, first_block, has_index = _index(f)
    names = _names(f)
    levels = _levels(f, FAMILIES[family], head["reference"], head["library"])
    config = _config(f, levels)
    _check_fixed(f, stage_layer, levels, config)
    return Layout(
        **head, settings=_settings(f), library_defaults=_library_defaults(f), stage_layer=stage_layer, stage_offset=stage_offset,
        first_block=first_block, names=names, rules=_rules(f, names, has_index), levels=levels, config=config, family=family,
        pipeline=_pipeline(f), refuse=_refuse(f), path=str(path), digest=digest,
    )


def file_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
