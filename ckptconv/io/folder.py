"""A folder written whole: the timm model folder of ``convert --hub`` (see ``ckptconv/hub.py``) and
the transformers one of ``--to transformers`` (``ckptconv/hub_transformers.py``).

It is written into a locked temp folder beside DIR, every file fsynced, and renamed into place: a
run that fails or is interrupted leaves DIR as it was, and a temp folder a killed run left is
removed by the next run into that directory. An existing DIR is replaced only with --force, and
only when it holds nothing but the folder's own files (a folder this command wrote), checked again
as it is replaced. torch-free.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import UsageError, io_error
from .files import TMP_PREFIX, check_writable_dir, clean_stale_temps, fsync_dir, lock

CONFIG, WEIGHTS, CARD, PREPROCESSOR = "config.json", "model.safetensors", "README.md", "preprocessor_config.json"
FILES = (CONFIG, WEIGHTS, CARD)  # timm's folder
LAYOUT_FILES = {"transformers": (CONFIG, WEIGHTS, PREPROCESSOR, CARD)}  # AutoImageProcessor needs preprocessor_config.json
OURS = frozenset(FILES).union(*LAYOUT_FILES.values())  # what a folder ckptconv made may hold (--force replaces only such a folder)


def files_of(layout: str) -> tuple[str, ...]:
    """The files of the model folder of ``layout``."""
    return LAYOUT_FILES.get(layout, FILES)


def check_folder(folder: Path, force: bool) -> None:
    """Refuse, before anything is read: a folder name with a weights extension, an existing file,
    an existing folder without --force or holding files this command does not write. (What may not
    be inside it, an input or another output, is the run's plan: ``paths.check_plan``.)"""
    if folder.suffix in (".pth", ".pt", ".pyth", ".safetensors"):
        raise UsageError(f"OUT is a model folder (--hub, --to transformers), and {folder.name!r} is a file name", fix=f"name the folder without the extension (e.g. {folder.with_suffix('').name})", path=str(folder))
    check_writable_dir(folder.parent if str(folder.parent) else Path("."))
    if folder.exists() and not folder.is_dir():
        raise UsageError("the output exists and is not a folder; a model folder (--hub, --to transformers) is written", fix="name another folder", path=str(folder))
    if folder.is_dir():
        if not force:
            raise UsageError("the output folder exists", fix="pass --force to replace it (the old folder stays until the new one is complete)", path=str(folder))
        foreign = _foreign(folder)
        if foreign:
            raise UsageError(f"the folder holds files ckptconv does not write ({', '.join(foreign[:5])}): it is not a folder this command made",
                             fix=f"remove them or name another folder; --force replaces only a folder of {', '.join(sorted(OURS))}",
                             path=str(folder))


def _foreign(folder: Path) -> list[str]:
    """What the folder holds besides the hub folder's own regular files."""
    return sorted(p.name for p in folder.iterdir() if p.name not in OURS or p.is_symlink() or not p.is_file())


class PendingFolder:
    """A folder written whole, with the file writer's guarantees applied again: a temp folder beside
    its final name, locked by this process for its whole life (``clean_stale_temps`` removes one
    nobody holds), each file fsynced and the folder too, every OSError one ``OutputError`` line,
    published by ``commit()`` only (symlink-aware, and never over files that appeared meanwhile)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.parent = folder.parent if str(folder.parent) else Path(".")
        clean_stale_temps(self.parent)
        self.temp = self.parent / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{folder.name}"
        try:
            os.mkdir(self.temp)
            self.fd = os.open(self.temp, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise io_error(e, "creating the folder", folder) from None
        lock(self.fd)

    def write(self, name: str, write: Callable[[BinaryIO], object]):
        """Write ``name`` inside the folder through ``write(f)``, fsynced; signals wait until it ends."""
        from ..signals import deferred

        try:
            with deferred(), open(self.temp / name, "xb") as f:
                result = write(f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise io_error(e, "writing the folder", self.folder / name) from None
        return result

    def commit(self, *, replace: bool) -> None:
        """Publish the folder under its name (see ``_publish``); the parent folder fsynced after."""
        from ..signals import publishing

        try:
            os.fsync(self.fd)
        except OSError as e:
            raise io_error(e, "writing the folder", self.folder) from None
        with publishing():
            _publish(self.temp, self.folder, replace)
        self.close()
        fsync_dir(self.parent)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1

    def abort(self) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)
        self.close()


@contextlib.contextmanager
def pending_folder(folder: Path) -> Iterator[PendingFolder]:
    """A ``PendingFolder``, removed on any exception (Ctrl-C included); made with signals held, so a
    signal while it is created is raised only once it is registered for removal: none is left."""
    from ..signals import deferred

    with deferred():
        pending = PendingFolder(folder)
    try:
        yield pending
    except BaseException:
        with deferred():  # a second signal must not cut the clean-up short
            pending.abort()
        raise


def _publish(temp: Path, folder: Path, replace: bool) -> None:
    """Rename the finished temp folder to ``folder``. What is there is first moved aside (a symlink
    as the link itself: what it points at is not ours to remove) and checked again: if the folder
    gained files meanwhile it is put back and nothing is replaced. DIR is always the old folder or
    the new one, whole."""
    old = _aside(folder) if replace and (folder.is_symlink() or folder.is_dir()) else None
    if old is None and os.path.lexists(folder):
        raise UsageError("the output appeared while converting (another run?)", fix="pass --force to replace it", path=str(folder))
    try:
        os.rename(temp, folder)
    except OSError as e:
        if old is not None:
            os.rename(old, folder)
        raise io_error(e, "publishing the folder", folder) from None
    if old is not None:
        os.unlink(old) if old.is_symlink() else shutil.rmtree(old, ignore_errors=True)


def _aside(folder: Path) -> Path:
    """Move the existing output out of the way, checked once more to hold only the folder's own files."""
    old = folder.with_name(f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-old-{folder.name}")
    os.rename(folder, old)
    foreign = [] if old.is_symlink() else _foreign(old)
    if foreign:
        os.rename(old, folder)
        raise UsageError(f"the folder gained files while converting ({', '.join(foreign[:5])}): nothing was replaced",
                         fix="remove them or name another folder", path=str(folder))
    return old
