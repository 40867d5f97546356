"""A class-names file the user names (``--labels``), read as the hostile input any file is: one name
per line, in class order, UTF-8, bounded, no control characters, no name twice. torch-free."""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

from ..errors import UsageError
from ..fields import describe
from .files import read_text

MAX_NAME = 256  # characters of one class name
FIX = "give one class name per line, in class order (as ImageNet's synset words are listed)"


def read_labels(path: Path) -> tuple[str, ...]:
    """The class names of ``path``, in order; a usage error naming the line that is not one."""
    text = read_text(path, "--labels")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    names = tuple(line.removesuffix("\r") for line in lines)
    seen: dict[str, int] = {}
    for number, name in enumerate(names, 1):
        problem = _problem(name) or (f"names {describe(name)} again (line {seen[name]})" if name in seen else None)
        if problem:
            raise UsageError(f"--labels line {number} {problem}", fix=FIX, path=str(path))
        seen[name] = number
    if not names:
        raise UsageError("--labels names no class", fix=FIX, path=str(path))
    return names


def _problem(name: str) -> str | None:
    if not name.strip():
        return "is blank"
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long (at most {MAX_NAME})"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        return f"holds a control character: {describe(name)}"
    return None


def labels_sha256(names: tuple[str, ...]) -> str:
    """What a model folder's classes are, for an output's recorded options (a changed file: not up to date)."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()
