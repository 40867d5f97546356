"""Where the tables live and how they are loaded.

Built-in tables ship inside the wheel as ``ckptconv/mappings`` and sit at the top of a source tree as
``mappings/``. Extra directories (``--tables DIR`` or ``CKPTCONV_TABLES``) hold more variants
(``variants/*.toml``) and layouts (``layouts/*.toml``); a name they share with a built-in replaces it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TableError, UsageError
from .tables import Layout, file_digest, parse_layout
from .variants import Variant, parse_variant

ENV_VAR = "CKPTCONV_TABLES"


def builtin_dir() -> Path:
    """The built-in ``mappings`` directory, installed (inside the package) or in a source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "mappings", here.parent / "mappings"):
        if (candidate / "layouts").is_dir():
            return candidate
    raise TableError(
        f"the built-in mapping tables are missing (looked in {here / 'mappings'} and {here.parent / 'mappings'})",
        fix="reinstall ckptconv: pip install --force-reinstall ckptconv",
    )


MAX_TABLE_BYTES = 1 << 20  # a table is a page of text; anything bigger is not one


def _read_toml(path: Path) -> tuple[dict, str]:
    """The parsed file and the sha256 of its bytes."""
    try:
        if path.stat().st_size > MAX_TABLE_BYTES:
            raise TableError(f"is {path.stat().st_size} bytes; a table is at most {MAX_TABLE_BYTES}", path=str(path))
        raw = path.read_bytes()
        return tomllib.loads(raw.decode("utf-8")), file_digest(raw)
    except tomllib.TOMLDecodeError as e:
        raise TableError(f"not valid TOML ({e})", path=str(path)) from None
    except UnicodeDecodeError:
        raise TableError("not valid TOML (not UTF-8 text)", path=str(path)) from None
    except OSError as e:
        raise TableError(f"cannot read ({e.strerror})", path=str(path)) from None


@dataclass
class Registry:
    """All variants and layouts from the built-in directory and any extra ones, loaded on first use."""

    extra_dirs: tuple[Path, ...] = ()
    _variants: dict[str, Variant] | None = field(default=None, repr=False)
    _layouts: dict[str, Layout] | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, extra: tuple[str | Path, ...] = ()) -> "Registry":
        env = tuple(p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p)
        dirs = tuple(Path(p) for p in (*env, *extra))
        for d in dirs:
            if not d.is_dir():
                raise UsageError(f"tables directory {str(d)!r} does not exist", fix="pass a directory holding variants/ or layouts/")
        return cls(dirs)

    @property
    def dirs(self) -> tuple[Path, ...]:
        return (builtin_dir(), *self.extra_dirs)

    def _load(self, sub: str, parse):
        found = {}
        for d in self.dirs:
            for path in sorted((d / sub).glob("*.toml"), key=lambda p: p.stem):
                data, digest = _read_toml(path)
                item = parse(data, path, digest)
                found[item.name] = item
        return found

    @property
    def variants(self) -> dict[str, Variant]:
        if self._variants is None:
            self._variants = self._load("variants", parse_variant)
        return self._variants

    @property
    def layouts(self) -> dict[str, Layout]:
        if self._layouts is None:
            self._layouts = self._load("layouts", parse_layout)
        return self._layouts

    def variant(self, name: str) -> Variant:
        try:
            return self.variants[name.lower()]
        except KeyError:
            raise UsageError(f"unknown arch {name!r}", fix=f"use one of {', '.join(self.variants)}") from None

    def layout(self, name: str) -> Layout:
        try:
            return self.layouts[name]
        except KeyError:
            raise UsageError(
                f"unknown layout {name!r}", fix=f"use one of {', '.join(self.layouts)} (see: ckptconv mappings)"
            ) from None


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry for the built-in tables plus ``$CKPTCONV_TABLES``; cached per process."""
    global _default
    if _default is None:
        _default = Registry.from_env()
    return _default
