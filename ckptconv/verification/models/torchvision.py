"""torchvision ``efficientnet_bN``, written from its structure.

``features.0`` stem (conv, BN, SiLU), ``features.1``..``7`` the stages of ``MBConv`` blocks (each a
``block`` Sequential: [expand], depthwise, SE, project, every conv with its BN as ``.0``/``.1``),
``features.8`` the head conv, then ``classifier.1``. torchvision computes SiLU with ``nn.SiLU``
(``F.silu``) where pycls computes x * sigmoid(x), and pools with AdaptiveAvgPool2d as pycls does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...model.variants import Block, Variant
from .ops import Arith, Build, Linear, bn, conv

TORCHVISION_ARITH = Arith(silu="silu")


def _conv_norm(b: Build, w_in: int, w_out: int, k: int, *, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """A convolution and its BN as ``.0`` and ``.1`` (torchvision's ``Conv2dNormActivation``)."""
    return nn.Sequential(conv(b, w_in, w_out, k, stride=stride, groups=groups), bn(b, w_out))


class SqueezeExcitation(nn.Module):
    """avgpool, fc1, SiLU, fc2, sigmoid, scale."""

    def __init__(self, w: int, w_se: int, b: Build):
        super().__init__()
        self.fc1, self.fc2 = conv(b, w, w_se, 1, bias=True), conv(b, w_se, w, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(F.silu(self.fc1(F.adaptive_avg_pool2d(x, 1))))) * x


class MBConv(nn.Module):
    """``block``: [expand 1x1 + BN + SiLU], depthwise + BN + SiLU, SE, project 1x1 + BN; skip."""

    def __init__(self, blk: Block, b: Build):
        super().__init__()
        layers = [_conv_norm(b, blk.w_in, blk.w_exp, 1)] if blk.has_expand else []
        layers.append(_conv_norm(b, blk.w_exp, blk.w_exp, blk.kernel, stride=blk.stride, groups=blk.w_exp))
        layers.append(SqueezeExcitation(blk.w_exp, blk.w_se, b))
        layers.append(_conv_norm(b, blk.w_exp, blk.w_out, 1))
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

    arith = TORCHVISION_ARITH

    def __init__(self, variant: Variant, b: Build = Build()):
        super().__init__()
        stem = _conv_norm(b, 3, variant.stem_w, 3, stride=2)
        stages = [nn.Sequential(*(MBConv(blk, b) for blk in variant.blocks if blk.stage == s)) for s in range(1, len(variant.depths) + 1)]
        head = _conv_norm(b, variant.widths[-1], variant.head_w, 1)
        self.features = nn.Sequential(stem, *stages, head)
        self.classifier = nn.Sequential(nn.Dropout(), Linear(variant.head_w, variant.num_classes, device=b.device))

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
