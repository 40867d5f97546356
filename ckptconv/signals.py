"""Ctrl-C and SIGTERM end a run the same clean way, at any moment: exit 130 or 143, one line, no
output replaced, no temp file left.

``install()`` (the entry point calls it first) turns SIGINT into ``KeyboardInterrupt`` and SIGTERM
(what ``timeout``, CI cancellation and ``docker stop`` send) into ``Terminated``, a
``KeyboardInterrupt`` too, so every cleanup that handles one handles both. Three moments are special:
- inside ``deferred()`` (importing torch, whose native start-up a signal can break; writing a file,
  which torch.save would turn into another error) a signal is recorded and raised when it ends:
  never lost, never halfway;
- ``publishing()`` holds signals while outputs are published and after: the outputs are then
  complete, so an interrupt may no longer claim that nothing was replaced. The caller decides:
  ``done()`` (a single conversion: the run has succeeded, later signals are dropped) or
  ``release()`` (a batch between two jobs: a held signal stops it now);
- in a batch worker (``install_worker``) Ctrl-C is the parent's alone, and SIGTERM from the parent
  ends the job in hand cleanly, or an idle worker silently.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from .errors import EXIT_INTERRUPTED

EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""

    exit_code = EXIT_TERMINATED


_state = {"depth": 0, "pending": None, "held": 0, "dropping": False, "worker": False, "in_job": False}


def _raise(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def _handler(signum, frame) -> None:
    if _state["worker"] and not _state["in_job"]:
        os._exit(EXIT_TERMINATED)  # an idle batch worker, stopped by its parent
    if _state["dropping"]:
        return
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


def _raise_pending() -> None:
    if not _state["depth"] and _state["pending"] is not None:
        signum, _state["pending"] = _state["pending"], None
        _raise(signum)


@contextlib.contextmanager
def deferred():
    """Hold SIGINT/SIGTERM until the block ends, then raise the one that came."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        _raise_pending()


@contextlib.contextmanager
def publishing():
    """Hold signals while outputs are published, and keep holding them once they are: see the
    module's docstring. If publishing fails, the hold ends with it."""
    _state["depth"] += 1
    try:
        yield
    except BaseException:
        _state["depth"] -= 1
        raise
    _state["held"] += 1


def release() -> None:
    """End the holds ``publishing()`` left; a signal that came meanwhile is raised now."""
    _state["depth"] -= _state["held"]
    _state["held"] = 0
    _raise_pending()


def done() -> None:
    """The work is complete: SIGINT and SIGTERM are dropped from now on (no false 'interrupted')."""
    _state["dropping"], _state["pending"] = True, None


def exit_code(interrupt: KeyboardInterrupt) -> int:
    return getattr(interrupt, "exit_code", EXIT_INTERRUPTED)


def message(interrupt: KeyboardInterrupt) -> str:
    """The one line a run ends with when a signal stops it."""
    if getattr(interrupt, "message", None):
        return interrupt.message
    how = "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted"
    return f"{how}; nothing partial was written and no output was replaced"


def install_worker() -> None:
    """In a batch worker: Ctrl-C goes to the parent alone (it stops the workers); SIGTERM from the
    parent ends the job in hand cleanly (its temp file removed), or an idle worker silently. A
    worker whose parent dies any other way gets SIGTERM too (Linux): no worker outlives its batch,
    writing after the batch said it stopped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _handler)
    _state["worker"] = True
    _die_with_parent()


def _die_with_parent() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGTERM): the kernel sends this process SIGTERM when its parent exits."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's own stop is all there is
        pass


@contextlib.contextmanager
def job():
    """Mark a batch worker busy with a job (see ``install_worker``); a signal held by the job's
    publishing is raised as it ends. A job that SIGTERM ended (its temp file already removed) ends
    its worker too: back in the pool's queue it could wait forever on a lock an idle sibling,
    stopped by the same signal, died holding, and the parent waits for every worker."""
    _state["in_job"] = True
    try:
        try:
            yield
        finally:
            _state["in_job"] = False
            release()
    except Terminated:
        if _state["worker"]:
            os._exit(EXIT_TERMINATED)
        raise


def import_torch() -> None:
    """Import torch with signals held: a Ctrl-C in its native start-up would crash or be lost."""
    with deferred():
        import torch  # noqa: F401
