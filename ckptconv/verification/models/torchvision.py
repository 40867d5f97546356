"""torchvision ``efficientnet_bN``, written from its structure.

``features.0`` stem (conv, BN, SiLU), ``features.1``..``7`` the stages of ``MBConv`` blocks (each a
``block`` Sequential: [expand], depthwise, SE, project, every conv with its BN as ``.0``/``.1``),
``features.8`` the head conv, then ``classifier.1``. torchvision computes SiLU with ``nn.SiLU``
where pycls computes x * sigmoid(x): outputs agree to about 1e-7, not bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...tables.variants import Block, Variant
from .ops import Conv2d, Linear, conv_norm


class SqueezeExcitation(nn.Module):
    """avgpool, fc1, SiLU, fc2, sigmoid, scale."""

    def __init__(self, w: int, w_se: int, device=None):
        super().__init__()
        self.fc1 = Conv2d(w, w_se, 1, bias=True, device=device)
        self.fc2 = Conv2d(w_se, w, 1, bias=True, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(F.silu(self.fc1(F.adaptive_avg_pool2d(x, 1))))) * x


class MBConv(nn.Module):
    """``block``: [expand 1x1 + BN + SiLU], depthwise + BN + SiLU, SE, project 1x1 + BN; skip."""

    def __init__(self, blk: Block, padding: str, eps: float, device=None):
        super().__init__()
        layers = []
        if blk.has_expand:
            layers.append(conv_norm(Conv2d(blk.w_in, blk.w_exp, 1, padding=padding, device=device), blk.w_exp, eps, device))
        dwise = Conv2d(blk.w_exp, blk.w_exp, blk.kernel, stride=blk.stride, groups=blk.w_exp, padding=padding, device=device)
        layers.append(conv_norm(dwise, blk.w_exp, eps, device))
        layers.append(SqueezeExcitation(blk.w_exp, blk.w_se, device))
        layers.append(conv_norm(Conv2d(blk.w_exp, blk.w_out, 1, padding=padding, device=device), blk.w_out, eps, device))
        self.block = nn.Sequential(*layers)
        self.has_skip = blk.has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.block:
            out = layer(out)
            if isinstance(layer, nn.Sequential) and layer is not self.block[-1]:
                out = F.silu(out)
        return x + out if self.has_skip else out


class TorchvisionEfficientNet(nn.Module):
    """``features.0``..``8`` and ``classifier.1`` (``classifier.0`` is dropout: no weights)."""

    def __init__(self, variant: Variant, padding: str = "symmetric", eps: float = 1e-5, device=None, out_indices=None):
        super().__init__()
        stem = conv_norm(Conv2d(3, variant.stem_w, 3, stride=2, padding=padding, device=device), variant.stem_w, eps, device)
        stages = [nn.Sequential(*(MBConv(b, padding, eps, device) for b in variant.blocks if b.stage == s)) for s in range(1, len(variant.depths) + 1)]
        head = conv_norm(Conv2d(variant.widths[-1], variant.head_w, 1, padding=padding, device=device), variant.head_w, eps, device)
        self.features = nn.Sequential(stem, *stages, head)
        self.classifier = nn.Sequential(nn.Dropout(), Linear(variant.head_w, variant.num_classes, device=device))

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        last = len(self.features) - 1
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in (0, last):  # stem and head: conv, BN, SiLU
                x = F.silu(x)
            out[f"features.{i}"] = x
        out["logits"] = self.classifier[1](F.adaptive_avg_pool2d(x, 1).flatten(1))
        return out
