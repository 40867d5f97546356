"""The libraries ckptconv converts for, one module each (``ckptconv/libraries/<name>.py``), each
exporting ``LIBRARY``: everything ckptconv knows about the library that is not a table's data. A
table (``mappings/<family>/layouts/*.toml``) names its library in ``[layout] library``; what the
library does is found here, never in a list elsewhere. torch-free: a reference model is named by its
import path and loaded only when a check runs it.

A new target library is its module here (or one passed to ``register``) plus its tables.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import TableError


@dataclass(frozen=True)
class Reference:
    """ckptconv's plain-torch rebuild of one of the library's classes, which verification runs the
    converted weights through: ``path`` is ``module:Class`` (imported when a check runs), ``levels``
    the outputs its ``forward_levels`` gives (``{n}``/``{i}``: one per stage)."""

    path: str
    levels: tuple[str, ...]

    def load(self) -> type:
        module, _, name = self.path.partition(":")
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Library:
    """One target library: how its loader picks a weight set from a file, its reference models per
    family, how it builds a model of each family from a model's numbers, the parts of its printed
    snippet only it knows, and whether it is an OpenMMLab library (mmengine loads it; metafiles)."""

    name: str  # what a table's [layout] library says
    title: str  # how messages name it
    loads: tuple[str, ...]  # the weight sets its loader takes from a file, in order ("best": pycls's pick); none there: the whole file
    references: Mapping[str, Mapping[str, Reference]] = field(default_factory=dict)  # family -> reference name -> model
    builders: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)  # family -> Variant -> Built (raises Cannot)
    snippets: Mapping[str, Callable[..., str]] = field(default_factory=dict)  # config template placeholder -> (variant, preprocess) -> text
    openmmlab: bool = False
    lacks: Mapping[str, str] = field(default_factory=dict)  # family -> why the library has no table of it (the field its class lacks)
    package: str = ""  # the distribution ``verify --in-library`` looks for (default: ``name``)
    runner: str = ""  # ``module:function`` loading a file as the library's users do (``ckptconv.inlibrary``); "": no in-library check


_EXTRA: dict[str, Library] = {}
_FOUND: dict[str, Library] = {}


def libraries() -> dict[str, Library]:
    """Every library: this package's modules' ``LIBRARY``, and any ``register``ed."""
    if not _FOUND:
        for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
            found = getattr(importlib.import_module(f"{__name__}.{module}"), "LIBRARY", None)
            if isinstance(found, Library):
                _FOUND[found.name] = found
    return {**_FOUND, **_EXTRA}


def register(library: Library) -> None:
    """Add a library defined outside this package (its module imported by the caller)."""
    _EXTRA[library.name] = library


def unregister(name: str) -> None:
    _EXTRA.pop(name, None)


def library(name: str, where: str = "") -> Library:
    """The library called ``name``; a ``TableError`` naming the known ones otherwise."""
    found = libraries()
    if name not in found:
        raise TableError(f"{where + ': ' if where else ''}no library {name!r}", fix=f"use one of {', '.join(sorted(found))} (ckptconv/libraries/)")
    return found[name]


def references(family: str) -> dict[str, Reference]:
    """Every reference model of ``family``, by name, across the libraries (one name, one model)."""
    out: dict[str, Reference] = {}
    for lib in libraries().values():
        for name, ref in lib.references.get(family, {}).items():
            if out.setdefault(name, ref) != ref:
                raise TableError(f"two libraries name different {family} reference models {name!r}")
    return out
