"""Ctrl-C and SIGTERM end a run the same clean way, at any moment: exit 130 or 143, one line,
nothing replaced, no temp file left.

``install()`` (the console entry point calls it first) turns SIGINT into ``KeyboardInterrupt`` and
SIGTERM (what ``timeout``, CI cancellation and ``docker stop`` send) into ``Terminated``, a
``KeyboardInterrupt`` too, so every cleanup that handles one handles both. Inside ``deferred()`` -
importing torch, whose native initialisation a signal can break; publishing an output - a signal
is only recorded, and raised as soon as the section ends: it is never lost, and never lands halfway.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from .errors import EXIT_INTERRUPTED

EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""

    exit_code = EXIT_TERMINATED


_state = {"depth": 0, "pending": None}


def _raise(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def _handler(signum, frame) -> None:
    if _state["depth"]:
        _state["pending"] = signum
        return
    _raise(signum)


def install(held: list[int] | None = None) -> None:
    """Route SIGINT and SIGTERM through this module (main thread only; elsewhere a no-op). ``held``:
    signals a bare handler recorded before this module could be imported; the first is raised."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handler)
    if held:
        _raise(held[0])


@contextlib.contextmanager
def deferred():
    """Hold SIGINT/SIGTERM until the block ends, then raise the one that came."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if not _state["depth"] and _state["pending"] is not None:
            signum, _state["pending"] = _state["pending"], None
            _raise(signum)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    return getattr(interrupt, "exit_code", EXIT_INTERRUPTED)


def describe(interrupt: KeyboardInterrupt) -> str:
    """The one line a run ends with when a signal stops it."""
    how = "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted"
    return f"{how}; nothing partial was written and no output was replaced"


_worker = {"in_job": False}


def install_worker() -> None:
    """In a batch worker: Ctrl-C goes to the parent alone (it stops the workers); SIGTERM from the
    parent ends the job in hand cleanly (its temp file removed), or the idle worker silently."""
    import os

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_term(signum, frame) -> None:
        if _worker["in_job"]:
            raise Terminated()
        os._exit(EXIT_TERMINATED)

    signal.signal(signal.SIGTERM, on_term)


@contextlib.contextmanager
def job():
    """Mark a batch worker busy with a job (see ``install_worker``)."""
    _worker["in_job"] = True
    try:
        yield
    finally:
        _worker["in_job"] = False


def import_torch() -> None:
    """Import torch with signals held: a Ctrl-C in its native start-up would crash or be lost."""
    with deferred():
        import torch  # noqa: F401
