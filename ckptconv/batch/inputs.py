"""A batch's inputs: files, directories (their tree mirrored under --out-dir), globs and manifests
(TOML ``[[checkpoint]]`` or JSON), read field by field with types. torch-free."""

from __future__ import annotations

import glob
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..fields import Fields
from ..options import DTYPES, ORDERS, WEIGHTS

SOURCE_SUFFIXES = (".pyth", ".pth", ".pt")
MANIFEST_SUFFIXES = (".toml", ".json")
EPOCH = re.compile(r"model_epoch_(\d+)\.pyth")  # pycls's checkpoint names (pycls/core/checkpoint.py)
ENTRY_FIELDS = {"source", "arch", "layout", "weights", "output", "prefix", "dtype", "channel_order", "trust_pickle"}


@dataclass(frozen=True)
class Entry:
    """One input of a batch: its source, its output's path under --out-dir (without the format's
    extension unless a manifest named it), and the request fields a manifest set for it."""

    source: Path
    name: Path
    fields: dict[str, Any] = field(default_factory=dict)
    named: bool = False  # the manifest gave the output name, extension included
    run_cfg: Path | None = None  # a pycls run's OUT_DIR/config.yaml, beside its checkpoints/ folder


def run_config(checkpoint: Path) -> Path | None:
    """The config.yaml pycls's trainer dumps into OUT_DIR (``dump_cfg``) for a checkpoint it saved
    as OUT_DIR/checkpoints/model_epoch_NNNN.pyth: it states the model the tensors cannot show."""
    config = checkpoint.parent.parent / "config.yaml"
    if EPOCH.fullmatch(checkpoint.name) and checkpoint.parent.name == "checkpoints" and config.is_file():
        return config
    return None


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _search(directory: Path, exclude: Path | None, every_epoch: bool) -> list[Path]:
    """The checkpoints under ``directory``; of a pycls run's ``checkpoints/model_epoch_NNNN.pyth``
    only the last epoch unless ``every_epoch``."""
    found = []
    for path in sorted(directory.rglob("*")):
        if path.suffix in SOURCE_SUFFIXES and path.is_file() and not path.name.startswith("."):
            if exclude is None or exclude not in path.resolve().parents:
                found.append(path)
    return found if every_epoch else _last_epochs(found)


def _last_epochs(paths: list[Path]) -> list[Path]:
    """Each run's last ``model_epoch_NNNN.pyth`` (pycls's trainer writes one per epoch into
    OUT_DIR/checkpoints; the last is what training ended with); other files as they are."""
    last: dict[Path, tuple[int, Path]] = {}
    for path in paths:
        m = EPOCH.fullmatch(path.name)
        if m and (path.parent not in last or int(m.group(1)) > last[path.parent][0]):
            last[path.parent] = (int(m.group(1)), path)
    keep = {p for _, p in last.values()}
    return [p for p in paths if not EPOCH.fullmatch(p.name) or p in keep]


def output_name(checkpoint: Path, root: Path, every_epoch: bool) -> Path:
    """A file's output name under --out-dir, without extension: its path under ``root``; for a
    pycls run's ``checkpoints/model_epoch_NNNN.pyth``, the run's (``run_01``, or the run folder's own
    name when it is ``root``), and with ``every_epoch`` the epoch's (``run_01/epoch_0010``)."""
    m = EPOCH.fullmatch(checkpoint.name)
    if not (m and checkpoint.parent.name == "checkpoints"):
        return checkpoint.relative_to(root).with_suffix("")
    run = checkpoint.parent.parent
    inside = run.resolve() != root.resolve() and root.resolve() in run.resolve().parents
    name = run.relative_to(root) if inside else Path(run.resolve().name)  # root is the run, or its checkpoints folder
    return name / f"epoch_{m.group(1)}" if every_epoch else name


def _relative_name(text: str, where: str, path: Path) -> Path:
    """A manifest's output name: a relative path inside --out-dir, never absolute or climbing out."""
    name = Path(text)
    if not text or name.is_absolute() or ".." in name.parts or "\0" in text:
        raise UsageError(f"{where}: output {text!r} must be a relative path inside --out-dir (no '..', not absolute)", path=str(path))
    return name


def _manifest_entry(raw: Any, i: int, path: Path) -> Entry:
    f = Fields(raw, f"entry {i + 1}", UsageError, str(path))
    f.only(ENTRY_FIELDS)
    source = Path(f.text("source"))
    fields: dict[str, Any] = {key: f.text(key) for key in ("arch", "layout", "prefix") if f.has(key)}
    for key, choices in (("weights", WEIGHTS), ("dtype", DTYPES), ("channel_order", ORDERS)):
        if f.has(key):
            fields[key] = f.text(key, choices=choices)
    if f.has("trust_pickle") and f.data["trust_pickle"] is not False:
        fields["trust_pickle"] = True
    source = source if source.is_absolute() else path.parent / source
    if f.has("output"):
        return Entry(source, _relative_name(f.text("output"), f"entry {i + 1}", path), fields, named=True)
    return Entry(source, Path(source.stem), fields)


def read_manifest(path: Path) -> list[Entry]:
    """Entries of a TOML (``[[checkpoint]]``) or JSON (``{"checkpoints": [...]}`` or a list) manifest."""
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
            entries = data.get("checkpoint", data.get("checkpoints"))
        else:
            data = json.loads(path.read_text())
            entries = data if isinstance(data, list) else data.get("checkpoints") if isinstance(data, dict) else None
    except (OSError, ValueError, RecursionError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read the manifest ({type(e).__name__}: {str(e)[:200]})", path=str(path)) from None
    if not isinstance(entries, list) or not entries:
        raise UsageError(
            "the manifest lists no checkpoints",
            fix='write [[checkpoint]] tables (TOML) or {"checkpoints": [...]} (JSON), each with a source',
            path=str(path),
        )
    return [_manifest_entry(raw, i, path) for i, raw in enumerate(entries)]


def manifests(sources: Iterable[str]) -> list[Path]:
    """The manifests among the sources: inputs of the run, like the checkpoints they name."""
    return [Path(s) for s in sources if Path(s).suffix in MANIFEST_SUFFIXES]


def collect(sources: Iterable[str], out_dir: Path, *, every_epoch: bool = False) -> list[Entry]:
    """Entries from files, directories (their tree mirrored under --out-dir; of each pycls run the
    last epoch's checkpoint unless ``every_epoch``), globs and manifests."""
    entries: list[Entry] = []
    exclude = out_dir.resolve() if out_dir.exists() else None
    for text in sources:
        path = Path(text)
        if path.suffix in MANIFEST_SUFFIXES and path.is_file():
            entries += read_manifest(path)
        elif path.is_dir():
            if exclude is not None and (exclude == path.resolve() or exclude in path.resolve().parents):
                raise UsageError(f"--out-dir {str(out_dir)!r} holds the input folder {text!r}: the outputs would be mixed with the sources "
                                 "(and taken for sources on the next run)", fix="choose an --out-dir outside the input folder")
            found = _search(path, exclude, every_epoch)
            if not found:
                raise UsageError(f"no *.pyth or *.pth files under {text!r}", fix="pass checkpoint files, a directory of them, or a manifest")
            entries += [Entry(p, output_name(p, path, every_epoch), run_cfg=run_config(p)) for p in found]
        elif _is_glob(text):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matched:
                raise UsageError(f"the pattern {text!r} matches no file")
            entries += [Entry(p, Path(p.stem), run_cfg=run_config(p)) for p in matched]
        else:
            entries.append(Entry(path, Path(path.stem), run_cfg=run_config(path)))  # a missing file fails as that file's own error
    if not entries:
        raise UsageError("no checkpoints to convert", fix="pass files, directories, globs or a manifest")
    return entries
