"""Every path a run will create, as one list checked before anything is read or written: the one
home of "which files may this run write". torch-free.

A run plans its outputs first (checkpoints, hub folders, configs, reports, metafiles) as
``Planned`` paths, then ``check_plan`` refuses, whether or not their directories exist yet:
- two planned paths that are one path (symlinks resolved, ``..`` followed as the file system
  does) or one file (a hard link);
- a planned path inside a planned folder: a folder is published whole, and would replace it;
- a planned path that is an input, and a planned folder that holds an input.
The checks are linear in the number of paths (a zoo of 50,000 files plans in a blink): each path
is one key of a set, and containment is a walk up each path's parents.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class Planned:
    """A path the run will create: ``what`` names it as the user gave it ("OUT", "--report",
    "the output of run_01/...pyth"); ``folder``: a folder written whole (a hub folder)."""

    path: Path
    what: str
    folder: bool = False


def where(path: Path) -> str:
    """The path a name leads to: absolute, symlinks of its existing parts resolved, the rest as written."""
    return os.path.normcase(os.path.realpath(path))


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file: a hard link to it is the same file under another name."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _ancestors(key: str) -> Iterable[str]:
    return (str(p) for p in Path(key).parents)


def _label(p: Planned) -> str:
    return f"{p.what} ({p.path})" if str(p.path) not in p.what else p.what


def check_plan(planned: Iterable[Planned], inputs: Iterable[Path]) -> None:
    """Refuse a plan in which two paths meet: see the module's docstring. Raises ``UsageError``
    naming both paths and what each is."""
    planned = list(planned)
    by_key: dict[str, Planned] = {}
    for p in planned:
        key = where(p.path)
        if key in by_key:
            raise UsageError(f"{_label(by_key[key])} and {_label(p)} are the same file (one path, or a link to it)", fix="give each output its own name")
        by_key[key] = p
    folders = {key: p for key, p in by_key.items() if p.folder}
    for key, p in by_key.items():
        outer = next((folders[a] for a in _ancestors(key) if a in folders), None)
        if outer is not None:
            raise UsageError(f"{_label(p)} would be written inside the folder {_label(outer)}, which is published whole and holds only its own files",
                             fix=f"write {p.what} beside the folder")
    _check_inputs(by_key, folders, list(inputs))


def _check_inputs(by_key: dict[str, Planned], folders: dict[str, Planned], inputs: list[Path]) -> None:
    identities = {ident: p for p in by_key.values() if (ident := _identity(p.path)) is not None}
    for src in inputs:
        key, ident = where(src), _identity(src)
        hit = by_key.get(key) or (identities.get(ident) if ident is not None else None)
        if hit is not None:
            raise UsageError(f"the output is the input {str(src)!r} (same path, a symlink or a hard link to it)",
                             fix="write to another file; ckptconv never overwrites its input, even with --force", path=str(hit.path))
        outer = next((folders[a] for a in _ancestors(key) if a in folders), None)
        if outer is not None:
            raise UsageError(f"the output folder holds the input {str(src)!r}", fix="write the folder elsewhere; ckptconv never replaces an input", path=str(outer.path))
