"""Where the tables live and how they are loaded.

Built-in tables ship inside the wheel as ``ckptconv/mappings`` and sit at the top of a source tree as
``mappings/``, a folder per family (``effnet``, ``regnet``, ``resnet``). Extra directories
(``--tables DIR`` or ``CKPTCONV_TABLES``) hold more variants (``<family>/variants/*.toml``) and layouts
(``<family>/layouts/*.toml``); a name they share with a built-in of that family replaces it.
"""

from __future__ import annotations

import difflib
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NoLayout, Refused, TableError, UsageError
from ..model.families import FAMILIES
from ..model.variants import Variant, parse_variant
from ..options import PYCLS
from .layout import Layout, file_digest, parse_layout

ENV_VAR = "CKPTCONV_TABLES"


def builtin_dir() -> Path:
    """The built-in ``mappings`` directory, installed (inside the package) or in a source tree."""
    here = Path(__file__).resolve().parents[1]  # the package
    for candidate in (here / "mappings", here.parent / "mappings"):
        if (candidate / "effnet" / "layouts").is_dir():
            return candidate
    raise TableError(
        f"the built-in mapping tables are missing (looked in {here / 'mappings'} and {here.parent / 'mappings'})",
        fix="reinstall ckptconv: pip install --force-reinstall ckptconv",
    )


def builtin_layout_names() -> set[str]:
    """The layouts ckptconv ships (a user table of one of these names replaces it)."""
    return {p.stem for p in builtin_dir().glob("*/layouts/*.toml")}


MAX_TABLE_BYTES = 1 << 20  # a table is a page of text; anything bigger is not one


def _read_bytes(path: Path) -> bytes:
    """A table file's bytes: a regular file (a FIFO would block the run forever) of bounded size."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise TableError("is not a regular file (a FIFO, socket or device)", fix="tables are .toml files", path=str(path))
        if path.stat().st_size > MAX_TABLE_BYTES:
            raise TableError(f"is {path.stat().st_size} bytes; a table is at most {MAX_TABLE_BYTES}", path=str(path))
        return path.read_bytes()
    except OSError as e:
        raise TableError(f"cannot read ({e.strerror})", path=str(path)) from None


def _parse_toml(raw: bytes, path: Path) -> dict:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise TableError(f"not valid TOML ({e})", path=str(path)) from None
    except UnicodeDecodeError:
        raise TableError("not valid TOML (not UTF-8 text)", path=str(path)) from None


_PARSED: dict[tuple[str, str, str], object] = {}  # (path, family, sha256) -> its Layout or Variant


def _variant_file(data: dict, path: Path, digest: str, family: str) -> Variant:
    """A zoo variant file of ``family``'s folder: its numbers must make a model of that family."""
    variant = parse_variant(data, str(path), digest, stem=path.stem)
    if variant.family != family:
        raise TableError(f"its numbers make a {FAMILIES[variant.family].title} model, not one of {family}", fix=f"move it to {variant.family}/variants/", path=str(path))
    return variant


def _parsed(path: Path, family: str, parse):
    """The file's table or variant; parsed once per content in a process (every registry reads the
    file again, so an edited file is parsed afresh)."""
    raw = _read_bytes(path)
    key = (str(path), family, file_digest(raw))
    if key not in _PARSED:
        _PARSED[key] = parse(_parse_toml(raw, path), path, key[2], family)
    return _PARSED[key]


@dataclass
class Registry:
    """All variants and layouts, family by family, from the built-in directory and any extra ones
    (``<dir>/<family>/variants/*.toml``, ``<dir>/<family>/layouts/*.toml``), loaded on first use."""

    extra_dirs: tuple[Path, ...] = ()
    _variants: dict[str, Variant] | None = field(default=None, repr=False)
    _layouts: dict[str, dict[str, Layout]] | None = field(default=None, repr=False)  # family -> name -> table

    @classmethod
    def from_env(cls, extra: tuple[str | Path, ...] = ()) -> Registry:
        env = tuple(p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p)
        dirs = tuple(Path(p) for p in (*env, *extra))
        for d in dirs:
            if not d.is_dir():
                raise UsageError(f"tables directory {str(d)!r} does not exist", fix=f"pass a directory holding <family>/variants/ or <family>/layouts/ ({', '.join(FAMILIES)})")
        return cls(dirs)

    @property
    def dirs(self) -> tuple[Path, ...]:
        return (builtin_dir(), *self.extra_dirs)

    def table_files(self) -> list[Path]:
        """Every table and variant file the registry reads: inputs of a run, which no output may be."""
        return [p for d in self.dirs for p in sorted(d.glob("*/*/*.toml"))]

    def _load(self, family: str, sub: str, parse) -> dict:
        found = {}
        for d in self.dirs:
            for path in sorted((d / family / sub).glob("*.toml"), key=lambda p: p.stem):
                item = _parsed(path, family, parse)
                found[item.name] = item
        return found

    @property
    def variants(self) -> dict[str, Variant]:
        """Every variant of every family, by name (names are unique across families)."""
        if self._variants is None:
            found: dict[str, Variant] = {}
            for family in FAMILIES:
                for name, variant in self._load(family, "variants", _variant_file).items():
                    if name in found:
                        raise TableError(f"variant {name!r} is in two families ({found[name].family}, {family})", path=variant.path)
                    found[name] = variant
                    self._check_libraries(variant)
            self._variants = found
        return self._variants

    def _check_libraries(self, variant: Variant) -> None:
        """A variant's ``[libraries.<layout>]`` names a layout of its family (a typo would be ignored)."""
        layouts = [n for n in self.layouts_by_family[variant.family] if n != PYCLS]
        unknown = sorted(set(variant.libraries) - set(layouts))
        if unknown:
            raise TableError(f"[libraries.{unknown[0]}] names no layout of {variant.family}", fix=f"use {', '.join(layouts)}", path=variant.path)

    @property
    def layouts_by_family(self) -> dict[str, dict[str, Layout]]:
        """family -> layout name -> its table."""
        if self._layouts is None:
            self._layouts = {family: self._load(family, "layouts", parse_layout) for family in FAMILIES}
        return self._layouts

    @property
    def layout_names(self) -> list[str]:
        return sorted({name for tables in self.layouts_by_family.values() for name in tables})

    def all_layouts(self) -> list[Layout]:
        return [table for tables in self.layouts_by_family.values() for table in tables.values()]

    def layouts_named(self, name: str) -> list[Layout]:
        """The table of layout ``name`` in every family that has one (a usage error if none does)."""
        found = [tables[name] for tables in self.layouts_by_family.values() if name in tables]
        if not found:
            raise UsageError(f"unknown layout {name!r}{_did_you_mean(name, self.layout_names)}", fix=f"use one of {', '.join(self.layout_names)} (see: ckptconv mappings)")
        return found

    def variants_of(self, family: str) -> list[Variant]:
        return [v for v in self.variants.values() if v.family == family]

    def variant(self, name: str) -> Variant:
        try:
            return self.variants[name.lower()]
        except KeyError:
            raise UsageError(f"unknown arch {name!r}{self._arch_hint(name)}", fix=f"use one of {', '.join(self.variants)} (see: ckptconv mappings)") from None

    def _arch_hint(self, name: str) -> str:
        """"did you mean b3" for a library's own name of a model (timm's efficientnet_b3), or a typo."""
        by_library = {entry["name"].lower(): (v.name, library) for v in self.variants.values() for library, entry in v.libraries.items() if entry.get("name")}
        if name.lower() in by_library:
            arch, library = by_library[name.lower()]
            return f" (did you mean {arch}? {library} calls it {name})"
        return _did_you_mean(name.lower(), list(self.variants))

    def layout(self, name: str, family: str) -> Layout:
        """The table of layout ``name`` for ``family``; a usage error naming the family's layouts if it has none."""
        self.layouts_named(name)
        tables = self.layouts_by_family.get(family, {})
        if name not in tables:
            others = self.layouts_named(name)
            why = next((t.library.lacks[family] for t in others if family in t.library.lacks), "")  # what the library's class lacks, if it says
            raise NoLayout(
                f"{FAMILIES[family].title} has no {name} layout (it is a layout of {', '.join(t.family for t in others)} only)" + (f": {why}" if why else ""),
                fix=f"use one of its layouts: {', '.join(tables)} (see: ckptconv mappings)",
            )
        return tables[name]

    def targets(self, variant: Variant) -> dict[str, str]:
        """Each layout of the variant's family but pycls: ``"yes"``, or ``"refused: <feature>"`` (a
        table's refusal), or ``"refused: <what>"`` (what the library's class cannot build: ``groups 32 (s1)``)."""
        out = {}
        for name, table in self.layouts_by_family[variant.family].items():
            if name != PYCLS:
                refusal = table.refusal(variant)
                out[name] = "yes" if refusal is None else f"refused: {refusal.when}"
                try:
                    table.built(variant) if refusal is None else None
                except Refused as e:
                    out[name] = f"refused: {e.message.split(':')[0]}"
        return out

    def pycls_layout(self, family: str) -> Layout:
        """The family's pycls table: the one every other maps from."""
        return self.layout(PYCLS, family)


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


_REGISTRIES: dict[tuple[str, tuple[str, ...]], Registry] = {}


def registry_for(tables: tuple[str | Path, ...] = ()) -> Registry:
    """The built-in tables, ``$CKPTCONV_TABLES`` and the directories ``tables``: one registry per
    process for each, read on first use (until ``read_afresh``)."""
    key = (os.environ.get(ENV_VAR, ""), tuple(str(t) for t in tables))
    if key not in _REGISTRIES:
        _REGISTRIES[key] = Registry.from_env(tuple(tables))
    return _REGISTRIES[key]


def read_afresh() -> None:
    """Forget the registries read so far: a new command-line run or batch reads the tables again
    (a table may have changed since)."""
    _REGISTRIES.clear()
