"""A folder written whole: the timm model folder of ``convert --hub`` (see ``ckptconv/hub.py``).

It is written into a temp folder beside DIR and renamed into place: a run that fails or is
interrupted leaves DIR as it was. An existing DIR is replaced only with --force, and only when it
holds nothing but the folder's own files (a folder this command wrote). torch-free.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from ..errors import OutputError, UsageError
from .files import TMP_PREFIX, check_writable_dir, same_file

CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
FILES = (CONFIG, WEIGHTS, CARD)


def check_folder(folder: Path, inputs: list[Path], force: bool, beside: Path | None = None) -> None:
    """Refuse, before anything is read: a folder name with a weights extension, an existing file,
    an existing folder without --force or holding files this command does not write, another
    output (``beside``: the config file) inside the folder."""
    if beside is not None and os.path.abspath(beside.parent) == os.path.abspath(folder):
        raise UsageError("the config file would be written inside the hub folder, which holds only its own three files",
                         fix="write --config-out beside the folder", path=str(beside))  # fmt: skip
    if folder.suffix in (".pth", ".pt", ".pyth", ".safetensors"):
        raise UsageError(f"--hub writes a folder, and {folder.name!r} is a file name", fix=f"name the folder without the extension (e.g. {folder.with_suffix('').name})", path=str(folder))
    check_writable_dir(folder.parent if str(folder.parent) else Path("."))
    if folder.exists() and not folder.is_dir():
        raise UsageError("the output exists and is not a folder; --hub writes a folder", fix="name another folder", path=str(folder))
    if folder.is_dir():
        if not force:
            raise UsageError("the output folder exists", fix="pass --force to replace it (the old folder stays until the new one is complete)", path=str(folder))
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in FILES or not p.is_file())
        if foreign:
            raise UsageError(f"the folder holds files --hub does not write ({', '.join(foreign[:5])}): it is not a folder this command made",
                             fix="remove them or name another folder; --force replaces only a folder of config.json, model.safetensors and README.md",
                             path=str(folder))  # fmt: skip
    for src in inputs:  # an input inside a folder --force would replace
        if any(same_file(folder / name, src) for name in FILES) or same_file(folder, src):
            raise UsageError(f"the output folder holds the input {str(src)!r}", fix="write the folder elsewhere; ckptconv never replaces an input", path=str(folder))


@contextlib.contextmanager
def temp_folder(folder: Path) -> Iterator[Path]:
    """A temp folder beside ``folder``, removed on any exception (Ctrl-C included) and made with
    signals held, so none is left behind; renamed into place by ``publish_folder``."""
    from ..signals import deferred

    temp = folder.with_name(f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{folder.name}")
    try:
        with deferred():
            temp.mkdir()
        yield temp
    except BaseException:
        with deferred():
            shutil.rmtree(temp, ignore_errors=True)
        raise


def publish_folder(temp: Path, folder: Path, replace: bool) -> None:
    """Rename the finished temp folder to ``folder``; an existing one (checked to be ours) is moved
    aside first and removed after: DIR is always either the old folder or the new one, whole."""
    from ..signals import publishing

    with publishing():
        old = None
        if replace and folder.is_dir():
            old = folder.with_name(f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-old-{folder.name}")
            os.rename(folder, old)
        try:
            os.rename(temp, folder)
        except OSError as e:
            if old is not None:
                os.rename(old, folder)
            raise OutputError(f"publishing the folder failed: {e.strerror or e}; nothing was written", path=str(folder)) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
