"""The demo: the whole path on this machine, no download. Writes a pycls training checkpoint with random
weights (as pycls's trainer saves one, optimizer state included), converts it, verifies it, and
writes the config fragment beside it.

Running it again succeeds: the files it made before (recognised by their content: the checkpoint
is the same bytes, the conversion records that checkpoint's sha256, the config says ckptconv wrote
it) are made again; anything else under those names is refused without --force.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from .convert import Result, convert
from .errors import CkptError, UsageError
from .io.checkpoint import load
from .io.files import atomic_write, make_out_dir
from .model.variants import Variant
from .options import Request
from .tables.registry import registry_for
from .verification import synthetic


@dataclass(frozen=True)
class Demo:
    checkpoint: Path
    result: Result
    config: Path
    again: bool  # the files were there from an earlier demo


def paths(out_dir: Path, variant: Variant, layout: str) -> tuple[Path, Path, Path]:
    """Named as pycls's zoo names its files: EN-B0_demo.pyth, RegNetX-200MF_demo.pyth, ResNet-50_demo.pyth."""
    stem = f"EN-{variant.name.upper()}" if variant.family == "effnet" else variant.title
    src = out_dir / f"{stem}_demo.pyth"
    return src, out_dir / f"{src.stem}_{layout}.pth", out_dir / f"{src.stem}_{layout}_config.py"


def _ours(out: Path, config: Path, sha: str) -> bool:
    """The conversion and config under these names came from the demo checkpoint ``sha``."""
    try:
        made = not out.exists() or load(out).meta.get("source_sha256") == sha
    except CkptError:
        return False
    text = config.read_text(errors="replace")[:400] if config.is_file() else "# converted by ckptconv"
    return made and text.startswith("#") and "ckptconv" in text


def run(out_dir: Path, arch: str, layout: str, force: bool, tables: tuple[Path, ...] = ()) -> Demo:
    import torch

    registry = registry_for(tables)
    variant = registry.variant(arch)
    registry.layout(layout, variant.family)  # a layout the variant has not fails before anything is written
    src, out, config = paths(out_dir, variant, layout)
    buffer = io.BytesIO()
    torch.save(synthetic.pycls_checkpoint(variant), buffer)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    again = src.is_file() and hashlib.sha256(src.read_bytes()).hexdigest() == sha
    if src.exists() and not (again or force):
        raise UsageError("exists and is not a file the demo wrote", fix="pass --force to replace it, or choose another --out-dir", path=str(src))
    if not force and not _ours(out, config, sha):
        raise UsageError(f"{out.name} or {config.name} exists and was not made by the demo", fix="pass --force to replace them", path=str(out_dir))
    make_out_dir(out_dir)
    if not again:
        atomic_write(src, lambda f: f.write(data))
    result = convert(Request(source=src, output=out, layout=layout, force=True, config_out=config, tables=tables))
    return Demo(src, result, config, again)
