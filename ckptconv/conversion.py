"""A prepared conversion as one value: what ``convert.prepare`` decided and cast, nothing written yet.

Its own module so that the writers of an output (``hub.py`` for a timm folder, ``onnx/target.py``
for a graph) name the type without importing ``convert``, which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .io import writer
from .io.checkpoint import Checkpoint
from .io.hashing import Hashed
from .model.variants import Variant
from .options import ONNX, Request
from .tables.engine import Plan
from .tables.layout import Layout
from .verification import checks


@dataclass(frozen=True, kw_only=True)
class Conversion:
    """A prepared conversion: everything that will be written, checked and cast, nothing written yet."""

    request: Request
    checkpoint: Checkpoint
    weight_set: str  # the set converted: model | ema | state_dict
    variant: Variant
    arch_from: str  # how the variant was found: --arch, cfg, meta, shapes
    plan: Plan
    dtype: str
    source: dict[str, torch.Tensor]  # the chosen weight set (source keys)
    tensors: dict[str, torch.Tensor]  # the output (target keys, in output order)
    copies: writer.Copies  # output tensors whose bytes go file to file
    meta: dict[str, Any]
    config: str | None
    colours: checks.Colours  # the order source and output take, and the preprocessing the output needs
    order_from: str  # what said the source's order
    notes: tuple[str, ...] = ()  # what the run must say about how the model was found (which of two cfgs won)
    source_hash: Hashed | None = None  # the source's sha256 (in the meta) and the stamp of the file hashed
    graph: bytes | None = None  # --to onnx: the stamped graph, exported by ``checked`` (the meta is its provenance)

    @property
    def target(self) -> Layout:
        return self.plan.target

    @property
    def layout(self) -> str:
        """What is written: the target table's name, or onnx."""
        return ONNX if self.request.layout == ONNX else self.plan.target_layout

    @property
    def params(self) -> int:
        return sum(t.numel() for t in self.tensors.values() if t.is_floating_point())

    @property
    def library_defaults(self) -> dict[str, Any]:
        """The library's own settings, when they would compute other features from these weights."""
        need, defaults = self.target.needs(self.variant), dict(self.target.library_defaults)
        built = self.variant.library(self.target.name).get("eps")  # e.g. torchvision's efficientnet_b5()
        defaults.setdefault("padding", "symmetric")  # nn.Conv2d's
        defaults["eps"] = built if built is not None else defaults.get("eps", 1e-5)  # BatchNorm2d's
        return defaults if any(defaults.get(k, need[k]) != need[k] for k in ("padding", "eps")) else {}
