"""Reference models in plain torch, one per library layout of each family, for numeric verification.

Each takes every hyperparameter as an argument (variant, padding, BN eps, device) and exposes
``forward_levels(x)``: an ordered dict of the outputs a layout table's ``[levels]`` compares.
Build them on the meta device and load with ``assign=True`` to skip random initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import TableError
from ...tables.variants import Variant
from .anynet import MMDetResNet, MMPretrainResNet, PyclsAnyNet, ResNet, TimmRegNet, TorchvisionRegNet
from .mm import MMDetEfficientNet, MMDetStagesEfficientNet, MMPretrainClassifier
from .pycls import EffNet
from .timm import TimmEfficientNet
from .torchvision import TorchvisionEfficientNet

REFERENCES: dict[str, dict[str, type[nn.Module]]] = {  # family -> reference name (a table's) -> model
    "effnet": {
        "pycls": EffNet,
        "mmdet": MMDetEfficientNet,
        "mmdet-stages": MMDetStagesEfficientNet,
        "mmpretrain": MMPretrainClassifier,
        "timm": TimmEfficientNet,
        "torchvision": TorchvisionEfficientNet,
    },
    "regnet": {"pycls": PyclsAnyNet, "mmdet-resnet": MMDetResNet, "mmpretrain-resnet": MMPretrainResNet, "timm-regnet": TimmRegNet, "torchvision-regnet": TorchvisionRegNet},
    "resnet": {"pycls": PyclsAnyNet, "mmdet-resnet": MMDetResNet, "mmpretrain-resnet": MMPretrainResNet, "resnet": ResNet},
}


def build(reference: str, variant: Variant, *, padding: str = "symmetric", eps: float = 1e-5, device="meta", out_indices=None) -> nn.Module:
    """An eval-mode reference model; on ``meta`` (default) it holds no memory until weights are
    assigned. ``out_indices``: the layers a detector uses (mmdet builds none beyond the last)."""
    known = REFERENCES.get(variant.family, {})
    if reference not in known:
        raise TableError(f"no reference model {reference!r} for {variant.family}", fix=f"use one of {', '.join(known)}")
    cls = known[reference]
    return cls(variant, padding=padding, eps=eps, device=device, out_indices=out_indices).eval()


ALIGNMENT = 64  # bytes: what torch's allocator (and so every library's load_state_dict) gives


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """The tensor, or a copy in freshly allocated memory when its data is not 64-byte aligned.

    CPU kernels pick their vector loops by alignment, so the same weights at another address can
    round differently. safetensors data sits at 8-byte offsets; libraries copy weights into their
    own (aligned) parameters, so the references run on aligned memory too.
    """
    return t if t.data_ptr() % ALIGNMENT == 0 else t.clone()


def load(reference: str, variant: Variant, state_dict: dict[str, torch.Tensor], *, padding="symmetric", eps=1e-5, out_indices=None) -> nn.Module:
    """Build a reference and assign ``state_dict`` into it strictly, upcasting fp16/bf16 to fp32."""
    model = build(reference, variant, padding=padding, eps=eps, out_indices=out_indices)
    weights = {k: _aligned(v.float() if v.is_floating_point() else v) for k, v in state_dict.items()}
    model.load_state_dict(weights, strict=True, assign=True)
    return model


def pycls_model(variant: Variant, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    return load("pycls", variant, state_dict)
