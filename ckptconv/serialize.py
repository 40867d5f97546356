"""Strings that cross into another language, each through that language's serializer: the one home
of quoting. Every value that comes from a file or the command line (a file name, a meta field, a
licence, a key) reaches a Python config, YAML, JSON, Markdown or the terminal through one of these,
never by formatting it in raw. torch-free.

- ``python``: a Python literal (``repr``), read back as the same value, never as code;
- ``comment``: text for a Python or YAML comment line (no line break can end the comment);
- ``yaml``: a YAML scalar, double-quoted as JSON writes it (``no`` stays the string "no");
- ``markdown`` / ``markdown_code``: text and inline code of a Markdown document (no heading,
  link, HTML or fence can be forged);
- ``shell``: one word of a POSIX shell command line;
- ``terminal``: control characters shown as escapes (no forged log line, no terminal escape).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
_LINE_BREAKS = {0x2028: "\\u2028", 0x2029: "\\u2029", 0x85: "\\x85"}


def terminal(text: str) -> str:
    """Control characters (newlines, terminal escapes) shown as escapes; a lone surrogate (a file
    name that is not UTF-8) as its escape: a stranger's name can never forge a line or restyle the
    terminal, and printing it never fails."""
    text = str(text).translate(_CONTROL | _LINE_BREAKS)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def python(value: Any) -> str:
    """A Python literal of ``value`` (str, number, bool, None, and lists, tuples, dicts of them)."""
    return repr(value)


def comment(text: str) -> str:
    """Text safe inside a ``#`` comment: nothing in it can end the line."""
    return terminal(text)


_YAML_ESCAPE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]")


def yaml(value: Any) -> str:
    """A YAML scalar: strings double-quoted (JSON's form, which YAML reads as a double-quoted
    scalar), numbers, booleans and null as YAML reads them back."""
    if isinstance(value, str):  # JSON's escapes, and \uXXXX for what YAML would not read as written
        return _YAML_ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False))
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    raise TypeError(f"not a YAML scalar: {type(value).__name__}")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&])")


def markdown(text: str) -> str:
    """Text for a Markdown paragraph or list item: every character Markdown or HTML gives a meaning
    escaped, and line breaks shown as escapes, so a file name can start no heading, link or tag."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", terminal(text))


def markdown_code(text: str) -> str:
    """An inline code span of ``text``: fenced with more backticks than any run inside it."""
    text = terminal(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def shell(word: str) -> str:
    """One word of a shell command line, quoted where the shell would read it otherwise."""
    return shlex.quote(terminal(word))
