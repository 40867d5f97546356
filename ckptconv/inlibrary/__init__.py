"""``verify --in-library``: the proof where the user runs it. The converted file is loaded the way its
library's users load it, in the library installed here at its own version (each library's
``Library.runner``: the code or config ckptconv printed for the file, or the user's own
``--config``), photos are run through that library's preprocessing and model, and each is judged
against pycls's pipeline and model (``proof``): the shipped photos, or ``--images DIR``.

A library that is not installed is "not checked", never a pass. A version the ground truth measured
computing otherwise (``data/versions.json``, docs/versions.md) is named in the verdict; so is a version
outside the table, where it fails.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from ..verification.report import Report
from .images import ImageSet, decoder

if TYPE_CHECKING:  # torch is imported when a check runs, not when a command's options are checked
    from .proof import Runner, Side, Tally
    from .target import Target

VERSIONS = Path(__file__).resolve().parents[1] / "data" / "versions.json"
PROGRESS: ContextVar[Callable[[str, int, int], None] | None] = ContextVar("in_library_progress", default=None)  # (file, done, total), set by the CLI


def installed(package: str) -> str | None:
    """The installed version of ``package`` (a distribution), or None."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def _measured() -> dict[str, dict[str, str]]:
    try:
        return json.loads(VERSIONS.read_text("utf-8"))["libraries"]
    except (OSError, ValueError, KeyError):
        return {}


def measured(package: str, found: str) -> str | None:
    """What the ground truth found ``package`` at version ``found`` to do: "same", a reason, or None (not measured)."""
    return _measured().get(package, {}).get(found)


def _load(runner_path: str, target: Target) -> Runner:
    module, _, name = runner_path.partition(":")
    return getattr(importlib.import_module(module), name)(target)


def run_in_library(report: Report, runner: Callable[[], Runner], package: str, side: Side, images: ImageSet, recorded: dict | None = None) -> Tally | None:
    """Load with ``runner`` (in ``package``) and prove every image; the verdict goes into ``report``.
    What the library prints (mmengine logs to stdout) goes to stderr: stdout is ckptconv's (--json: one object)."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's own (deprecations, mmcv-lite's missing ops): a verdict is what it computes
        return _run(report, runner, package, side, images, recorded)


def _run(report: Report, runner: Callable[[], Runner], package: str, side: Side, images: ImageSet, recorded: dict | None) -> Tally | None:
    if not report.ok:  # the library would be judged on weights already known bad
        report.not_checked.append("in-library: not run: the file failed the checks above")
        return None
    found = installed(package)
    if found is None:
        report.not_checked.append(f"in-library: not checked: {package} is not installed (pip install {package}, then verify again)")
        return None
    known = measured(package, found)
    if known not in (None, "same"):
        report.add("in-library", False, f"{package} {found} computes otherwise than pycls on these files (measured: {known}); docs/versions.md lists the versions that do not")
        return None
    try:
        loaded = runner()
    except ModuleNotFoundError as e:  # the loading code imports a package that is not here: it did not run
        name = e.name or _one_line(e)
        report.not_checked.append(f"in-library: not checked: {name} is not installed, and the code that loads the file imports it (pip install {name})")
        return None
    except Exception as e:  # the library's own refusal (a strict load, a config it cannot build) is the verdict
        report.add("in-library", False, f"{package} {found} could not load the file: {_one_line(e)}")
        return None
    from .proof import ImageFailed, prove

    tick = PROGRESS.get()
    try:
        tally = prove(loaded, side, images, (lambda done, total: tick(report.path, done, total)) if tick else None)
    except ImageFailed as e:
        report.add("in-library", False, f"{package} {found} could not run {e.image}: {_one_line(e.__cause__)}")
        return None
    from .verdict import judge

    judge(report, loaded, tally, images, decoder(), known is None, recorded)
    return tally


def _one_line(e: BaseException | None) -> str:
    text = " ".join(str(e).split())[:400]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def check_target(report: Report, target: Target, side: Side, images: ImageSet, recorded: dict | None = None) -> None:
    """The file ``target`` in its library, if that library has an in-library runner."""
    library = target.layout.library
    if not library.runner:
        report.not_checked.append(f"in-library: not checked: ckptconv has no in-library check for {library.title}")
        return
    run_in_library(report, lambda: _load(library.runner, target), library.package or library.name, side, images, recorded)
