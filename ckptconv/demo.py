"""The demo: the whole path on this machine, no download. Writes a pycls training checkpoint with
random weights (as pycls's trainer saves one, optimizer state included), converts it and verifies
it, and writes the config fragment beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import synthetic
from .convert import Request, Result, convert
from .errors import UsageError
from .files import atomic_write, make_out_dir
from .registry import Registry


@dataclass(frozen=True)
class Demo:
    checkpoint: Path
    result: Result
    config: Path


def paths(out_dir: Path, arch: str, layout: str) -> tuple[Path, Path, Path]:
    src = out_dir / f"EN-{arch.upper()}_demo.pyth"
    return src, out_dir / f"{src.stem}_{layout}.pth", out_dir / f"{src.stem}_{layout}_config.py"


def run(out_dir: Path, arch: str, layout: str, force: bool, registry: Registry) -> Demo:
    import torch

    variant = registry.variant(arch)
    registry.layout(layout)  # an unknown layout fails before anything is written
    src, out, config = paths(out_dir, variant.name, layout)
    if src.exists() and not force:
        raise UsageError("the demo checkpoint exists", fix="pass --force to write it again", path=str(src))
    make_out_dir(out_dir)
    ckpt = synthetic.pycls_checkpoint(variant)
    atomic_write(src, lambda f: torch.save(ckpt, f))
    result = convert(Request(src, out, layout=layout, force=force, config_out=config), registry)
    return Demo(src, result, config)
