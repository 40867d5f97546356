"""The ckptconv command line: parses and renders; the library converts, verifies and writes.

Only this package imports click and rich, and torch is imported inside the commands that need it,
so ``ckptconv --help``, ``--version`` and ``ckptconv mappings`` start fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..version import __version__
from .options import LocalPath


class Context:
    """Global options, shared by every command."""

    def __init__(self, tables: tuple[Path, ...]):
        from ..tables.registry import read_afresh

        self.tables = tables
        read_afresh()  # each run reads the tables afresh (a test may run many in one process)

    @property
    def registry(self):
        from ..tables.registry import registry_for

        return registry_for(self.tables)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="ckptconv")
@click.option(
    "--tables",
    "tables",
    multiple=True,
    type=LocalPath(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Extra tables directory (variants/*.toml, layouts/*.toml); repeatable. Also $CKPTCONV_TABLES.",
)
@click.pass_context
def main(ctx: click.Context, tables: tuple[Path, ...]) -> None:
    """Convert pycls checkpoints (EfficientNet, RegNetX/Y, ResNet, ResNeXt: its whole zoo) to
    MMDetection, mmpretrain, timm and torchvision, and verify that the converted weights compute what
    pycls computed.

    \b
    Exit codes: 0 success, 1 conversion or verification failed, 2 usage error,
    130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
    """
    ctx.obj = Context(tables)


def _register() -> None:
    from . import batch, convert, demo, inspect, mappings, report, verify

    for module in (convert, verify, batch, report, mappings, inspect, demo):
        for command in module.COMMANDS:
            main.add_command(command)


_register()


def collect_rarely() -> None:
    """Run the cycle collector rarely: a run is short and makes many objects (torch's import, the
    reference models, the pickles) but little cyclic garbage; at Python's default thresholds the
    collections cost 8-11 % of a B5 conversion (benchmarks/, ``--only tricks``). A library caller's
    process keeps its own settings: only the command line changes them."""
    import gc

    gc.set_threshold(100_000, 50, 1000)


def run() -> None:
    """Run the command, then exit without tearing the interpreter down.

    Every file is written, fsynced and renamed before a command returns, so nothing is left to
    clean up; skipping teardown saves the ~0.4 s that unloading torch takes (benchmarks/). Ctrl-C
    and SIGTERM outside a command's own handling (while options are parsed) end the same way as
    inside: one line, 130 or 143. Exceptions that escape a command (bugs) still end through Python,
    with their traceback.
    """
    import os
    import sys

    from ..signals import exit_code, message

    try:
        collect_rarely()
        code = main(prog_name="ckptconv", standalone_mode=False) or 0
    except click.ClickException as e:
        e.show()
        code = e.exit_code
    except (click.Abort, KeyboardInterrupt) as e:
        interrupt = e if isinstance(e, KeyboardInterrupt) else e.__cause__ or KeyboardInterrupt()
        print(f"error: {message(interrupt)}", file=sys.stderr)
        code = exit_code(interrupt)
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
