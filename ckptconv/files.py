"""Files written safely: temp file in the same directory, fsync, rename; outputs checked first.

A crash or Ctrl-C never leaves a half-written output under the final name: the previous file stays
intact until the new one is complete. Leftover temp files are named ``.ckptconv-tmp-<pid>-...`` and
the next run into the same directory removes those whose process is gone. No torch here: the batch
parent and the fast commands use this module without paying for it.
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import OutputError, UsageError

TMP_PREFIX = ".ckptconv-tmp-"
FORMATS = {".pth": "pth", ".pt": "pth", ".pyth": "pth", ".safetensors": "safetensors"}


def output_format(path: Path) -> str:
    """``pth`` or ``safetensors`` from the extension; anything else is a usage error."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot tell the output format from the extension {path.suffix or '(none)'!r}",
            fix="name the output .pth (torch; .pt and pycls's .pyth too) or .safetensors",
            path=str(path),
        )
    return fmt


def check_output(out: Path, sources: list[Path], force: bool) -> None:
    """Refuse before reading anything: existing output without --force, output == input, bad directory."""
    out_dir = out.parent if str(out.parent) else Path(".")
    if not out_dir.is_dir():
        raise UsageError(f"output directory {str(out_dir)!r} does not exist", fix="create it first", path=str(out))
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UsageError(f"output directory {str(out_dir)!r} is not writable", fix="choose another --out/--out-dir", path=str(out))
    if out.is_dir():
        raise UsageError("the output is a directory", fix="give a file name ending in .pth or .safetensors", path=str(out))
    for src in sources:
        if same_file(out, src):
            raise UsageError(
                f"the output is the input {str(src)!r} (same path, a symlink or a hard link to it)",
                fix="write to another file; ckptconv never overwrites its input, even with --force",
                path=str(out),
            )
    if out.exists() and not force:
        raise UsageError("the output exists", fix="pass --force to replace it (the old file stays until the new one is complete)", path=str(out))


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def clean_stale_temps(directory: Path) -> list[Path]:
    """Remove temp files left by ckptconv processes that no longer exist; return what was removed."""
    removed = []
    for tmp in directory.glob(f"{TMP_PREFIX}*"):
        try:
            pid = int(tmp.name[len(TMP_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PendingWrite:
    """An output written to a temp file beside its final name, published by ``commit()`` only.

    ``write()`` may run in a background thread while the caller verifies; ``abort()`` removes the
    temp file whatever state the write is in. Errors while writing become ``OutputError``s.
    """

    def __init__(self, path: Path):
        self.path = path
        self.directory = path.parent if str(path.parent) else Path(".")
        clean_stale_temps(self.directory)
        self.tmp = self.directory / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}"
        self.size = 0
        self.cancelled = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, write: Callable[[BinaryIO], None]) -> int:
        if self.cancelled:
            raise OutputError("the write was cancelled", path=str(self.path))
        try:
            with open(self.tmp, "x+b") as f:  # readable too: the pth writer parses what torch wrote
                write(f)
                f.flush()
                os.fsync(f.fileno())
                self.size = f.tell()
            if self.cancelled:  # aborted while writing: leave nothing behind
                self.tmp.unlink(missing_ok=True)
        except OSError as e:
            self.abort()
            why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise OutputError(
                f"writing failed: {why}; nothing was written", fix="free space or choose another output", path=str(self.path)
            ) from None
        return self.size

    def start(self, write: Callable[[BinaryIO], None]) -> None:
        """Run ``write`` in a daemon thread; ``wait()`` returns its size or raises its error."""

        def run() -> None:
            try:
                self.write(write)
            except BaseException as e:  # handed to wait()
                self._error = e

        self._thread = threading.Thread(target=run, name="ckptconv-write", daemon=True)
        self._thread.start()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def wait(self) -> int:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.size

    def commit(self) -> int:
        os.replace(self.tmp, self.path)
        _fsync_dir(self.directory)
        return self.size

    def abort(self, *, wait: bool = False) -> None:
        """Remove the temp file; with ``wait``, first let a background write finish (it then cleans)."""
        self.cancelled = True
        if wait and self._thread is not None:
            self._thread.join()
        self.tmp.unlink(missing_ok=True)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> int:
    """Write through ``write(f)`` to a temp file beside ``path``, fsync, rename; return bytes written.

    On any failure, KeyboardInterrupt included, the temp file is removed and ``path`` is untouched.
    """
    pending = PendingWrite(path)
    try:
        pending.write(write)
        return pending.commit()
    except BaseException:
        pending.abort()
        raise


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
