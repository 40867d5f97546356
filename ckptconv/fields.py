"""Typed reading of data that comes from outside: tables, variant files, batch manifests, reports, meta.

Every value is checked for its type and range where it is read, so a typo or a hostile file ends in
one line naming the file, the field and what it must be, never in a traceback (or a hang) later.
``Fields(data, where, error)`` wraps one section; each getter returns the value or raises ``error``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from .errors import CkptError

_MISSING = object()
MAX_TEXT = 4096  # characters: names, templates and reasons are short
MAX_ITEMS = 4096  # entries of a list or table


def describe(value: Any) -> str:
    """A short, single-line rendering of an untrusted value for a message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Fields:
    """One section (a dict) of an untrusted document, read with checks."""

    def __init__(self, data: Any, where: str, error: type[CkptError], path: str | None = None, names: Callable[[str], str] | None = None):
        """``names``: how a field is called where the document came from (a pycls cfg's ``BN.EPS``
        for the model's ``[variant].eps``), so each message names what the user wrote."""
        self.where, self.error, self.path, self.names = where, error, path, names
        self.shown = names(where) if names and where else where
        if not isinstance(data, dict):
            self.fail(f"{self.shown} must be a table, not {type(data).__name__}")
        if len(data) > MAX_ITEMS:
            self.fail(f"{self.shown} has {len(data)} entries (at most {MAX_ITEMS})")
        self.data = data

    def fail(self, message: str, fix: str | None = None):
        raise self.error(message, fix=fix, path=self.path)

    def _full(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def at(self, key: str) -> str:
        """A field's name as the user wrote it."""
        return self.names(self._full(key)) if self.names else self._full(key)

    def has(self, key: str) -> bool:
        return key in self.data

    def only(self, allowed: tuple[str, ...] | set[str]) -> None:
        unknown = sorted(str(k) for k in self.data if k not in allowed)
        if unknown:
            self.fail(f"{self.shown} has unknown field(s) {unknown}", fix=f"use {', '.join(sorted(allowed))}")

    def _get(self, key: str, default: Any) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            self.fail(f"{self.shown or 'the file'} needs {key!r}")
        return default

    def text(self, key: str, default: Any = _MISSING, *, choices=None, pattern: str | None = None) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            self.fail(f"{self.at(key)} is {describe(value)}; expected a string")
        if choices is not None and value not in choices:
            self.fail(f"{self.at(key)} is {value!r}; expected one of {', '.join(choices)}")
        if pattern is not None and not re.fullmatch(pattern, value):
            self.fail(f"{self.at(key)} is {value!r}; expected a name like {pattern}")
        return value

    def integer(self, key: str, default: Any = _MISSING, *, lo: int, hi: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.fail(f"{self.at(key)} is {describe(value)}; expected an integer from {lo} to {hi}")
        return value

    def number(self, key: str, default: Any = _MISSING, *, lo: float, hi: float) -> float:
        value = self._get(key, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and lo <= value <= hi
        if not ok:
            self.fail(f"{self.at(key)} is {describe(value)}; expected a number from {lo:g} to {hi:g}")
        return float(value)

    def items(self, key: str, *, length: int | None = None, max_items: int = MAX_ITEMS) -> list[Any]:
        value = self._get(key, _MISSING)
        if not isinstance(value, list) or len(value) > max_items or (length is not None and len(value) != length):
            want = f"a list of {length}" if length is not None else f"a list (at most {max_items} entries)"
            self.fail(f"{self.at(key)} is {describe(value)}; expected {want}")
        return value

    def ints(self, key: str, *, lo: int, hi: int, length: int | None = None) -> tuple[int, ...]:
        values = self.items(key, length=length)
        sub = Fields({str(i): v for i, v in enumerate(values)}, self._full(key), self.error, self.path, self.names)
        return tuple(sub.integer(str(i), lo=lo, hi=hi) for i in range(len(values)))

    def numbers(self, key: str, *, lo: float, hi: float, length: int | None = None) -> tuple[float, ...]:
        values = self.items(key, length=length)
        sub = Fields({str(i): v for i, v in enumerate(values)}, self._full(key), self.error, self.path, self.names)
        return tuple(sub.number(str(i), lo=lo, hi=hi) for i in range(len(values)))

    def section(self, key: str, default: Any = _MISSING) -> Fields:
        where = self._full(key) if self.where else f"[{key}]"  # a top-level section reads as TOML writes it
        return Fields(self._get(key, default), where, self.error, self.path, self.names)

    def strings(self, key: str, default: Any = _MISSING) -> dict[str, str]:
        """A table of string -> string."""
        sub = self.section(key, default)
        return {str(k): sub.text(k) for k in sub.data}
