"""Files written safely: every output checked against every input first; temp file, fsync, publish.

- Before anything is read, each output a run will write (checkpoint, config, report, batch outputs)
  is checked against every input and every other output, links resolved: never the same file.
- An output is written to a temp file in its own directory, fsynced, and published by a rename
  (``--force``) or by a hard link that fails if the name exists (without ``--force``), so two runs
  racing for one new name cannot both succeed. A crash or Ctrl-C leaves no half-written output
  under the final name; the previous file stays intact until the new one is complete.
- A temp file is locked (``flock``) by the process writing it for its whole life. Leftovers are
  removed by the next run into that directory only when no process holds their lock, however
  many PID namespaces or hosts share the directory.
No torch here: the batch parent and the fast commands use this module without paying for it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import OutputError, UsageError, io_error
from . import store
from .paths import Planned, check_plan
from .store import is_url

TMP_PREFIX = ".ckptconv-tmp-"
FORMATS = {".pth": "pth", ".pt": "pth", ".pyth": "pth", ".safetensors": "safetensors", ".onnx": "onnx"}
STALE_AFTER = 60.0  # seconds: a temp file this young may be one being created right now


def is_graph(path: Path) -> bool:
    """An ONNX graph, by its name: inspect and verify read it with the onnx extra, never as a checkpoint."""
    return (path.suffix if is_url(path) else Path(path).suffix).lower() == ".onnx"


def local_graph(path: Path | store.Url) -> None:
    """An ONNX graph is read from a local file only, as yet (docs/storage.md)."""
    if is_url(path):
        raise UsageError("an ONNX graph is read from a local file only, as yet", fix="copy the object locally and pass its path", path=str(path))


def output_format(path: Path) -> str:
    """``pth`` or ``safetensors`` from the extension; anything else is a usage error."""
    if not is_url(path) and path.is_dir():
        raise UsageError("the output is a directory", fix="give a file name ending in .pth or .safetensors", path=str(path))
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot tell the output format from the extension {path.suffix or '(none)'!r}",
            fix="name the output .pth (torch; .pt and pycls's .pyth too), .safetensors, or .onnx with --to onnx",
            path=str(path),
        )
    return fmt


def check_input(path: Path | store.Url) -> None:
    """An input the user named is a regular file, or an object on a store (``store.check_source``)."""
    store.check_source(path) if is_url(path) else check_regular(path)


def check_regular(path: Path) -> os.stat_result:
    """The input's stat, refusing what is not a regular file (a directory, a FIFO, a device)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError("no such file", fix="check the path (a relative one is taken from the current directory)", path=str(path)) from None
    except OSError as e:
        raise UsageError(f"cannot read ({e.strerror})", fix="check the file's permissions", path=str(path)) from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError("is a directory, not a checkpoint file", fix="pass the .pyth/.pth file inside it", path=str(path))
    if not stat.S_ISREG(st.st_mode):
        raise UsageError("is not a regular file (a FIFO, socket or device)", fix="pass a checkpoint file", path=str(path))
    return st


class Opened:
    """An input opened once: every later read goes through this very file, by ``reads`` (a name for
    the open file itself, /proc/self/fd/N, that no rename of ``path`` can redirect, and that any
    library can open whatever bytes ``path`` is spelt in), for as long as the object lives.
    ``stamp`` says which file it is (``hashing.stamp``)."""

    def __init__(self, path: Path):
        check_regular(path)
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise UsageError(f"cannot read ({e.strerror})", path=str(path)) from None
        weakref.finalize(self, os.close, self.fd)
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode):  # swapped for a FIFO since it was checked
            raise UsageError("is not a regular file (a FIFO, socket or device)", fix="pass a checkpoint file", path=str(path))
        self.path, self.stamp = path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        proc = Path(f"/proc/self/fd/{self.fd}")
        self.reads = proc if proc.exists() else path  # (without /proc: by name, the stamp checked when it is used)

    def unchanged(self) -> bool:
        """The open file was not rewritten since it was opened (same size and time)."""
        st = os.fstat(self.fd)
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == self.stamp


MAX_TEXT_FILE = 1 << 20  # a pycls cfg dump is a few KB; ImageNet-21k's class names about 500 KB


def read_text(path: Path, what: str) -> str:
    """A small UTF-8 text file the user named (a cfg, class names): a usage error, never a traceback or a hang."""
    check_regular(path)
    try:
        if path.stat().st_size > MAX_TEXT_FILE:
            raise UsageError(f"{what} {path} is {path.stat().st_size} bytes; ckptconv reads at most {MAX_TEXT_FILE} of such a text", path=str(path))
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {what} ({e.strerror})", path=str(path)) from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} is not UTF-8 text", fix="save it as UTF-8 text", path=str(path)) from None


def same_file(a: Path, b: Path) -> bool:
    """Same file: one path, a symlink to the other, or a hard link (both existing)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_writable_dir(directory: Path, what: str = "output directory") -> None:
    if not directory.is_dir():
        raise UsageError(f"{what} {str(directory)!r} does not exist", fix="create it first")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {str(directory)!r} is not writable", fix="choose another directory")


def make_out_dir(out_dir: Path, what: str = "--out-dir") -> None:
    """Create an output directory (its parent must exist and be writable), or check an existing one."""
    if not out_dir.exists():
        check_writable_dir(out_dir.parent if str(out_dir.parent) else Path("."), f"the parent of {what}")
        try:
            out_dir.mkdir()
        except FileExistsError:  # another job of the same sharded batch made it first
            pass
        except OSError as e:
            raise UsageError(f"cannot create {what} {str(out_dir)!r} ({e.strerror})", fix="choose another directory") from None
    check_writable_dir(out_dir, what)


def check_output(out: Path, force: bool = True) -> None:
    """The output's folder takes it, and it is no folder or device; an existing file only with ``force``."""
    check_writable_dir(out.parent if str(out.parent) else Path("."))
    try:
        st = os.stat(out)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise UsageError("the output is a directory", fix="give a file name ending in .pth or .safetensors", path=str(out))
    if not stat.S_ISREG(st.st_mode):
        raise UsageError("the output is not a regular file (a FIFO, socket or device)", fix="write to a file", path=str(out))
    if not force:
        raise UsageError("the output exists", fix="pass --force (the API: force=True) to replace it; the old file stays until the new one is complete", path=str(out))


def check_outputs(planned: list[Planned], inputs: list[Path], force: bool) -> None:
    """Refuse, before anything is read: a plan whose paths meet (``paths.check_plan``: an output
    that is an input or another output, links resolved), a file that exists without ``force``, or
    whose directory is missing or read-only. (A folder's own rules are ``folder.check_folder``.)"""
    remote = [p for p in planned if is_url(p.path)]
    if remote:  # a URL is no local path: its own checks (``store``), the local ones for the rest
        store.check_outputs(remote, inputs, force)
    check_plan([p for p in planned if not is_url(p.path)], [i for i in inputs if not is_url(i)])
    planned = [p for p in planned if not is_url(p.path)]
    for p in planned:
        if not p.folder:
            check_output(p.path, force)


MAX_REPORT_BYTES = 64 << 20


def check_report_output(report: Path, inputs: list[Path], what: str = "--report") -> None:
    """A --report file may replace an earlier ckptconv report (a rerun in CI), never an input, and
    never another existing file: that would need the user's say."""
    check_plan([Planned(report, what)], [i for i in inputs if not is_url(i)])  # a local report is never an object on a store
    check_replaceable_report(report)


def check_replaceable_report(report: Path) -> None:
    """The report's folder takes it, and what is there already is a ckptconv report (or nothing)."""
    check_output(report, force=True)
    if report.is_file() and not _is_report(report):
        raise UsageError("the report file exists and is not a ckptconv report", fix="remove it or name another --report file", path=str(report))


def _is_report(path: Path) -> bool:
    """A JSON object with a ``files`` list, as ``verify`` and ``batch`` write."""
    import json

    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return False
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("files"), list)


class TempFile:
    """A temp file beside ``path``, locked by this process for as long as it lives."""

    def __init__(self, path: Path):
        directory = path.parent if str(path.parent) else Path(".")
        clean_stale_temps(directory)
        self.path = directory / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        lock(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.close()


def clean_stale_temps(directory: Path) -> list[Path]:
    """Remove ckptconv temp files and temp folders no process holds (older than a minute); return
    what was removed. A live writer holds a lock on its temp file, or on its temp folder, until it
    publishes or removes it."""
    removed = []
    for tmp in directory.glob(f"{TMP_PREFIX}*"):
        try:
            st = tmp.lstat()
            if time.time() - st.st_mtime < STALE_AFTER or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                continue
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | (os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a live writer: leave it
            shutil.rmtree(tmp) if stat.S_ISDIR(st.st_mode) else tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def lock(fd: int) -> None:
    """Hold ``fd``'s lock for as long as it is open (a file system without locks: the age rule alone
    protects the temp)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass


def fsync_dir(directory: Path) -> None:
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


def _publish(tmp: Path, path: Path, replace: bool) -> None:
    """Rename over ``path`` (replace), or hard-link to it, failing if it exists meanwhile."""
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise UsageError("the output appeared while converting (another run?)", fix="pass --force to replace it", path=str(path)) from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists():  # a file system without hard links: the existence check is all there is
            raise UsageError("the output appeared while converting (another run?)", fix="pass --force to replace it", path=str(path)) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


class PendingWrite:
    """An output written to a locked temp file beside its final name, published by ``commit()``
    only; ``abort()`` removes the temp file. Errors while writing become ``OutputError``s."""

    def __init__(self, path: Path):
        self.path = path
        self.directory = path.parent if str(path.parent) else Path(".")
        self.temp = TempFile(path)
        self.tmp = self.temp.path
        self.size = 0

    def write(self, write: Callable[[BinaryIO], object]):
        """Write the temp file with signals held: torch.save turns a signal inside it into another
        error; the signal is raised once the write ends (the caller then removes the temp file)."""
        from ..signals import deferred

        try:
            with deferred(), os.fdopen(os.dup(self.temp.fd), "r+b") as f:  # readable: the pth writer parses what torch wrote
                result = write(f)
                f.flush()
                os.fsync(f.fileno())
                self.size = f.tell()
        except OSError as e:
            self.abort()
            raise io_error(e, "writing", self.path) from None
        return result

    def commit(self, *, replace: bool = True) -> int:
        from ..signals import publishing

        try:
            with publishing():  # a signal now would leave the output half published; then it is held
                _publish(self.tmp, self.path, replace)
        except FileNotFoundError:
            raise OutputError("the temp file vanished before it was published (removed by another program)", path=str(self.path)) from None
        except OSError as e:
            raise OutputError(f"publishing failed: {e.strerror or e}; nothing was written", path=str(self.path)) from None
        self.temp.close()
        fsync_dir(self.directory)
        return self.size

    def abort(self) -> None:
        self.temp.remove()


@contextlib.contextmanager
def all_or_nothing(*paths: Path | None) -> Iterator[list[PendingWrite | None]]:
    """A ``PendingWrite`` for each path (``None`` stays ``None``); on any exception inside, Ctrl-C
    included, every temp file is removed. They are created with signals held, so a signal that comes
    while one is being created is raised only once it is registered for removal: none is left."""
    from ..signals import deferred

    pending: list[PendingWrite | None] = []
    try:
        with deferred():
            for path in paths:
                pending.append(None if path is None else store.PendingUpload(path) if is_url(path) else PendingWrite(path))
        yield pending
    except BaseException:
        with deferred():  # a second signal must not cut the clean-up short
            for p in pending:
                if p is not None:
                    p.abort()
        raise


def atomic_write(path: Path, write: Callable[[BinaryIO], object], *, replace: bool = True) -> int:
    """Write through ``write(f)`` to a temp file beside ``path``, fsync, publish; return bytes written.

    On any failure, KeyboardInterrupt included, the temp file is removed and ``path`` is untouched.
    """
    with all_or_nothing(path) as (pending,):
        pending.write(write)
        return pending.commit(replace=replace)
