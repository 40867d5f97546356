"""What an in-library run loads: the file, the model and layout verification found in it, the order
its weights take, and the loading code ckptconv prints for it (or the user's own: ``--config``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..model.variants import Variant
from ..tables.layout import Layout


@dataclass(frozen=True)
class Target:
    path: Path
    variant: Variant
    layout: Layout
    prefix: str
    takes: str  # the channel order the weights take
    printed: str  # the code (or config fragment) ckptconv prints for the file
    transform: str  # the printed torchvision transform that gives pycls's input (in the order the weights take)
    config: Path | None = None  # the user's own loading code or config, in place of the printed one

    @property
    def library(self) -> str:
        return self.layout.library.name


def target_of(path: Path, variant: Variant, layout: Layout, prefix: str, takes: str, stats, config: Path | None) -> Target:
    """The printed code for ``path`` as ``convert`` printed it (``render_config``)."""
    from ..tables.pipeline import needed
    from ..tables.render import render_config, torch_transform

    pre = needed(layout.pipeline, takes, stats)
    printed = render_config(layout, variant, path.resolve(), prefix, pre) or ""
    return Target(path, variant, layout, prefix, takes, printed, torch_transform(variant, pre), config)
