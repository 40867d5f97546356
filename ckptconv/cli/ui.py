"""The terminal: one small wrapper over rich, and the one place errors become a line and an exit code.

rich is imported on first use, so commands that print nothing fancy (``--help``) never pay for it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any

import click

from ..errors import CkptError
from ..serialize import terminal


class UI:
    """info / success / warning / error / table / json, honouring --json and --quiet."""

    def __init__(self, *, json_mode: bool = False, quiet: bool = False):
        self.json_mode = json_mode
        self.quiet = quiet or json_mode

    @cached_property
    def out(self):
        from rich.console import Console

        # Piped output keeps whole keys on one line, for grep and diff.
        return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 250)

    @cached_property
    def err(self):
        from rich.console import Console

        return Console(stderr=True, highlight=False, soft_wrap=True)

    def info(self, text: str, *, markup: bool = False) -> None:
        """Print a line; ``text`` is literal unless ``markup`` (brackets in key lists stay as they are)."""
        if not self.quiet:
            self.out.print(text if markup else _escape(text))

    def success(self, text: str) -> None:
        if not self.quiet:
            self.out.print(f"[green]✓[/green] {_escape(text)}")

    def warning(self, text: str) -> None:
        if not self.quiet:  # --quiet: nothing but errors; --json: nothing but the object
            self.err.print(f"[yellow]warning:[/yellow] {_escape(text)}")

    def notice(self, text: str) -> None:
        """A line that is always said (on stderr), --quiet or not: --json says it in its object."""
        if not self.json_mode:
            self.err.print(f"[cyan]note:[/cyan] {_escape(text)}")

    def error(self, text: str) -> None:
        self.err.print(f"[red]error:[/red] {_escape(text)}")

    def plain(self, text: str) -> None:
        """Text that must reach stdout unstyled (config snippets meant for copying); control
        characters escaped, line breaks kept."""
        if not self.quiet:
            click.echo("\n".join(terminal(line) for line in text.split("\n")))

    def table(self, title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]], *, force: bool = False) -> None:
        if self.quiet and not force:
            return
        from rich.table import Table

        table = Table(title=None if title is None else _escape(title), title_justify="left", show_edge=False, pad_edge=False)
        for col in columns:
            table.add_column(_escape(col), overflow="fold")
        for row in rows:
            table.add_row(*(_escape(str(c)) for c in row))
        self.out.print(table)

    def json(self, obj: Any) -> None:
        click.echo(json.dumps(obj, indent=2, default=str))  # ensure_ascii: every control character escaped

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Turn a CkptError into one line and its exit code; Ctrl-C into exit 130."""
        try:
            yield
        except CkptError as e:
            self._fail(str(e), e.exit_code)
        except KeyboardInterrupt as e:
            from ..signals import exit_code, message

            self._fail(message(e), exit_code(e))

    def _fail(self, message: str, code: int) -> None:
        if self.json_mode:
            self.json({"ok": False, "error": message, "exit_code": code})
        self.error(message)
        sys.exit(code)


def _escape(text: str) -> str:
    """Literal text for rich: control characters escaped (``serialize.terminal``), markup disarmed."""
    from rich.markup import escape

    return escape(terminal(text))


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def human_params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"
