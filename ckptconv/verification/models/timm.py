"""timm ``efficientnet_bN`` (symmetric padding, BN eps 1e-5), written from its structure.

timm orders the arithmetic differently from pycls (``F.silu`` after BN, SE pooling by ``mean``), so
its outputs agree with pycls's to about 1e-7, not bit for bit; the real timm 1.0.31 does the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...model.variants import Block, Variant
from .ops import Arith, Build, Conv2d, Linear, conv

TIMM_ARITH = Arith(silu="silu", se_pool="mean", head_pool="mean")


class BatchNormAct2d(nn.BatchNorm2d):
    """BN followed by SiLU (or nothing), as timm fuses them."""

    def __init__(self, w: int, b: Build, act: bool = True):
        super().__init__(w, eps=b.eps, device=b.device)
        self.apply_act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return F.silu(x) if self.apply_act else x


class SqueezeExcite(nn.Module):
    """Mean over H and W, conv_reduce, SiLU, conv_expand, sigmoid gate."""

    def __init__(self, w: int, w_se: int, b: Build):
        super().__init__()
        self.conv_reduce = Conv2d(w, w_se, 1, bias=True, device=b.device)
        self.conv_expand = Conv2d(w_se, w, 1, bias=True, device=b.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.conv_expand(F.silu(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * s.sigmoid()


class DepthwiseSeparableConv(nn.Module):
    """First-stage block (no expansion): conv_dw, bn1, se, conv_pw, bn2, skip."""

    def __init__(self, blk: Block, b: Build):
        super().__init__()
        self.conv_dw = conv(b, blk.w_in, blk.w_in, blk.kernel, stride=blk.stride, groups=blk.w_in)
        self.bn1 = BatchNormAct2d(blk.w_in, b)
        self.se = SqueezeExcite(blk.w_in, blk.w_se, b)
        self.conv_pw = conv(b, blk.w_in, blk.w_out, 1)
        self.bn2 = BatchNormAct2d(blk.w_out, b, act=False)
        self.has_skip = blk.has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_pw(self.se(self.bn1(self.conv_dw(x)))))
        return x + out if self.has_skip else out


class InvertedResidual(nn.Module):
    """conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3, skip."""

    def __init__(self, blk: Block, b: Build):
        super().__init__()
        self.conv_pw, self.bn1 = conv(b, blk.w_in, blk.w_exp, 1), BatchNormAct2d(blk.w_exp, b)
        self.conv_dw = conv(b, blk.w_exp, blk.w_exp, blk.kernel, stride=blk.stride, groups=blk.w_exp)
        self.bn2 = BatchNormAct2d(blk.w_exp, b)
        self.se = SqueezeExcite(blk.w_exp, blk.w_se, b)
        self.conv_pwl, self.bn3 = conv(b, blk.w_exp, blk.w_out, 1), BatchNormAct2d(blk.w_out, b, act=False)
        self.has_skip = blk.has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        out = self.bn3(self.conv_pwl(self.se(out)))
        return x + out if self.has_skip else out


class TimmEfficientNet(nn.Module):
    """conv_stem, bn1, blocks.0 ... blocks.6, conv_head, bn2, global average pool, classifier."""

    arith = TIMM_ARITH

    def __init__(self, variant: Variant, b: Build = Build()):
        super().__init__()
        self.conv_stem, self.bn1 = conv(b, 3, variant.stem_w, 3, stride=2), BatchNormAct2d(variant.stem_w, b)
        stages = []
        for s in range(1, len(variant.depths) + 1):
            blocks = [blk for blk in variant.blocks if blk.stage == s]  # timm's ds block where pycls's has no expansion
            stages.append(nn.Sequential(*((InvertedResidual if blk.has_expand else DepthwiseSeparableConv)(blk, b) for blk in blocks)))
        self.blocks = nn.Sequential(*stages)
        self.conv_head, self.bn2 = conv(b, variant.widths[-1], variant.head_w, 1), BatchNormAct2d(variant.head_w, b)
        self.classifier = Linear(variant.head_w, variant.num_classes, device=b.device)

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.bn1(self.conv_stem(x))
        out = {"bn1": x}
        for i, stage in enumerate(self.blocks):
            x = out[f"blocks.{i}"] = stage(x)
        x = out["bn2"] = self.bn2(self.conv_head(x))
        out["logits"] = self.classifier(x.mean((2, 3)))
        return out
