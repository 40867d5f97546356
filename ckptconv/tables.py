"""Layout tables: declarative key-mapping rules from pycls to one target layout.

A table is a TOML file in ``mappings/layouts/``. Its rules are an ordered list; the first rule whose
``from`` pattern matches a whole pycls key wins. A rule either maps (``to``) or drops the key
(``drop = "why"``). Patterns use placeholders, never raw regex:

- ``{stage}``, ``{block}``: decimal integers (pycls's ``s{stage}.b{block}``, both 1-based);
- ``{name}`` declared in ``[names.name]``: one of that table's keys, written as its value;
- any other ``{name}``: one key segment (no dots), written unchanged.

In ``to`` two more values exist, computed from ``[index]`` and the variant's depths:
``{layer}`` is ``stage_layer[stage - 1]``; ``{index}`` numbers blocks from ``first_block`` within a
layer, continuing across the stages that share it (mmdet's ``layers.4`` holds s4 then s5).
A rule may restrict captured integers with ``where = { stage = [1] }``. The rules live in
``[mapping] rules = [...]``, one inline table per line, so a reviewer reads them as a column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TableError

INT_PLACEHOLDERS = ("stage", "block")
DERIVED_PLACEHOLDERS = ("layer", "index")
CONTAINERS = ("state_dict", "plain", "pycls")
PADDINGS = ("symmetric", "same")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Rule:
    """One ordered rule: ``source`` pattern to ``target`` template, or a drop with its reason."""

    name: str
    source: str
    target: str | None
    drop: str | None
    where: dict[str, frozenset[int]]
    regex: re.Pattern[str]

    def match(self, key: str) -> dict[str, str] | None:
        m = self.regex.fullmatch(key)
        if m is None:
            return None
        captures = m.groupdict()
        for name, allowed in self.where.items():
            if int(captures[name]) not in allowed:
                return None
        return captures


@dataclass(frozen=True, eq=False)
class Layout:
    """A target layout: its rules, the settings its weights need and how to verify and describe it."""

    name: str
    version: int
    summary: str
    library: str
    reference: str
    container: str
    prefix: str
    settings: dict[str, Any]
    library_defaults: dict[str, Any]
    stage_layer: tuple[int, ...]
    first_block: int
    names: dict[str, dict[str, str]]
    rules: tuple[Rule, ...]
    levels: dict[str, str]
    tolerance: float
    config: dict[str, Any]
    path: str = ""

    @property
    def table_id(self) -> str:
        return f"{self.name}@{self.version}"


def _compile(pattern: str, names: dict[str, dict[str, str]], where: str) -> re.Pattern[str]:
    """Turn a placeholder pattern into an anchored regex with one named group per placeholder."""
    parts, pos, seen = [], 0, set()
    for m in _PLACEHOLDER.finditer(pattern):
        parts.append(re.escape(pattern[pos : m.start()]))
        name = m.group(1)
        if name in seen:
            raise TableError(f"{where}: placeholder {{{name}}} appears twice in {pattern!r}")
        if name in DERIVED_PLACEHOLDERS:
            raise TableError(f"{where}: {{{name}}} is computed for 'to' and cannot appear in 'from'")
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
        raise TableError(f"{where}: unbalanced brace in {pattern!r}")
    return re.compile("".join(parts))


def _parse_rule(raw: Any, i: int, names: dict[str, dict[str, str]], has_index: bool, where: str) -> Rule:
    at = f"{where}: [mapping] rules[{i}]"
    if not isinstance(raw, dict):
        raise TableError(f"{at} is not a table")
    unknown = set(raw) - {"name", "from", "to", "drop", "where"}
    if unknown:
        raise TableError(f"{at} has unknown field(s) {sorted(unknown)}", fix="use name, from, to, drop, where")
    if "name" not in raw or "from" not in raw:
        raise TableError(f"{at} needs 'name' and 'from'")
    name, source = str(raw["name"]), str(raw["from"])
    at = f"{where}: rule {name!r}"
    if ("to" in raw) == ("drop" in raw):
        raise TableError(f"{at} needs exactly one of 'to' (map) or 'drop' (reason to drop)")
    regex = _compile(source, names, at)
    captured = set(regex.groupindex)
    target = raw.get("to")
    if target is not None:
        target = str(target)
        for ph in _PLACEHOLDER.findall(target):
            if ph in DERIVED_PLACEHOLDERS:
                if not has_index:
                    raise TableError(f"{at} uses {{{ph}}} but the table has no [index] section")
                if not {"stage", "block"} <= captured:
                    raise TableError(f"{at} uses {{{ph}}}, which needs {{stage}} and {{block}} in 'from'")
            elif ph not in captured:
                raise TableError(f"{at}: 'to' uses {{{ph}}}, which 'from' does not capture")
    where_raw = raw.get("where", {})
    if not isinstance(where_raw, dict):
        raise TableError(f"{at}: 'where' must be a table like {{ stage = [1] }}")
    restrict = {}
    for ph, values in where_raw.items():
        if ph not in INT_PLACEHOLDERS or ph not in captured:
            raise TableError(f"{at}: 'where' can restrict only captured {{stage}} or {{block}}, not {ph!r}")
        restrict[ph] = frozenset(int(v) for v in (values if isinstance(values, list) else [values]))
    drop = None if "drop" not in raw else str(raw["drop"])
    return Rule(name, source, target, drop, restrict, regex)


def parse_layout(data: dict[str, Any], path: Path) -> Layout:
    """Validate a parsed layout TOML and compile its rules; every problem is a ``TableError``."""
    where = str(path)
    try:
        head = data["layout"]
        name = str(head["name"])
        version = int(head["version"])
        reference = str(head["reference"])
    except (KeyError, TypeError, ValueError) as e:
        raise TableError(f"[layout] needs name, version (an integer) and reference ({e})", path=where)
    if path.stem != name:
        raise TableError(f"layout {name!r} must live in {name}.toml", path=where)
    container = str(head.get("container", "state_dict"))
    if container not in CONTAINERS:
        raise TableError(f"[layout].container is {container!r}; use one of {', '.join(CONTAINERS)}", path=where)
    names = {str(k): {str(a): str(b) for a, b in v.items()} for k, v in data.get("names", {}).items()}
    for reserved in (*INT_PLACEHOLDERS, *DERIVED_PLACEHOLDERS):
        if reserved in names:
            raise TableError(f"[names.{reserved}] would shadow the built-in {{{reserved}}}", path=where)
    index = data.get("index")
    stage_layer = tuple(int(x) for x in index.get("stage_layer", ())) if index else ()
    raw_rules = data.get("mapping", {}).get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise TableError("the table has no [mapping] rules = [...] list", path=where)
    rules = tuple(_parse_rule(r, i, names, index is not None, where) for i, r in enumerate(raw_rules))
    dupes = {r.name for r in rules if sum(q.name == r.name for q in rules) > 1}
    if dupes:
        raise TableError(f"rule names must be unique; repeated: {sorted(dupes)}", path=where)
    settings = dict(data.get("settings", {}))
    padding = settings.setdefault("padding", "symmetric")
    if padding not in PADDINGS:
        raise TableError(f"[settings].padding is {padding!r}; use symmetric or same", path=where)
    settings["eps"] = float(settings.setdefault("eps", 1e-5))
    verify = data.get("verify", {})
    return Layout(
        name=name,
        version=version,
        summary=str(head.get("summary", "")),
        library=str(head.get("library", "")),
        reference=reference,
        container=container,
        prefix=str(head.get("prefix", "")),
        settings=settings,
        library_defaults=dict(data.get("library_defaults", {})),
        stage_layer=stage_layer,
        first_block=int(index.get("first_block", 0)) if index else 0,
        names=names,
        rules=rules,
        levels={str(k): str(v) for k, v in data.get("levels", {}).items()},
        tolerance=float(verify.get("tolerance", 0.0)),
        config=dict(data.get("config", {})),
        path=where,
    )
