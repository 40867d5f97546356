"""pycls 0.1.1 ``EffNet``, written from its structure; keys equal pycls's ``model_state`` exactly.

Built with pycls's arithmetic by default; with a library's (``Build.arith``) it computes pycls's
network the way that library would, so the two compare bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn

from ...model.variants import Block, Variant
from .ops import Act, Build, Linear, bn, conv


class SE(nn.Module):
    """Squeeze-and-excitation: global average pool, 1x1 conv, SiLU, 1x1 conv, sigmoid, scale."""

    def __init__(self, w: int, w_se: int, b: Build):
        super().__init__()
        self.f_ex = nn.Sequential(conv(b, w, w_se, 1, bias=True), Act(b.arith), conv(b, w_se, w, 1, bias=True), nn.Sigmoid())
        self.arith = b.arith

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.f_ex(self.arith.pool(x, "se"))


class MBConv(nn.Module):
    """MBConv: 1x1 expand, BN, SiLU, kxk depthwise, BN, SiLU, SE, 1x1 project, BN, skip."""

    def __init__(self, blk: Block, b: Build):
        super().__init__()
        self.exp = None
        if blk.has_expand:
            self.exp, self.exp_bn, self.exp_af = conv(b, blk.w_in, blk.w_exp, 1), bn(b, blk.w_exp), Act(b.arith)
        self.dwise = conv(b, blk.w_exp, blk.w_exp, blk.kernel, stride=blk.stride, groups=blk.w_exp)
        self.dwise_bn, self.dwise_af = bn(b, blk.w_exp), Act(b.arith)
        self.se = SE(blk.w_exp, blk.w_se, b)
        self.lin_proj, self.lin_proj_bn = conv(b, blk.w_exp, blk.w_out, 1), bn(b, blk.w_out)
        self.has_skip = blk.has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_x = self.exp_af(self.exp_bn(self.exp(x))) if self.exp is not None else x
        f_x = self.dwise_af(self.dwise_bn(self.dwise(f_x)))
        f_x = self.lin_proj_bn(self.lin_proj(self.se(f_x)))
        return x + f_x if self.has_skip else f_x


class StemIN(nn.Module):
    """Stem: 3x3 conv with stride 2, BN, SiLU."""

    def __init__(self, w_out: int, b: Build):
        super().__init__()
        self.conv, self.bn, self.af = conv(b, 3, w_out, 3, stride=2), bn(b, w_out), Act(b.arith)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.af(self.bn(self.conv(x)))


class EffHead(nn.Module):
    """Head: 1x1 conv, BN, SiLU (the ``head`` point), global average pool, fully connected."""

    def __init__(self, w_in: int, w_out: int, num_classes: int, b: Build):
        super().__init__()
        self.conv, self.conv_bn, self.conv_af = conv(b, w_in, w_out, 1), bn(b, w_out), Act(b.arith)
        self.fc = Linear(w_out, num_classes, bias=True, device=b.device)
        self.arith = b.arith

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_af(self.conv_bn(self.conv(x)))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.arith.pool(x, "head").flatten(1))


class EffNet(nn.Module):
    """pycls EffNet: stem, stages s1..sN of MBConv blocks b1..bM, head. Eval-mode reference only."""

    def __init__(self, variant: Variant, b: Build = Build()):
        super().__init__()
        self.stem = StemIN(variant.stem_w, b)
        for s in range(1, len(variant.depths) + 1):
            stage = nn.Module()
            for blk in (blk for blk in variant.blocks if blk.stage == s):
                stage.add_module(f"b{blk.block}", MBConv(blk, b))
            self.add_module(f"s{s}", stage)
        self.head = EffHead(variant.widths[-1], variant.head_w, variant.num_classes, b)
        self.num_stages = len(variant.depths)

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every pycls feature point: stem, s1..sN, head, logits."""
        out = {"stem": self.stem(x)}
        x = out["stem"]
        for s in range(1, self.num_stages + 1):
            for block in getattr(self, f"s{s}").children():
                x = block(x)
            out[f"s{s}"] = x
        out["head"] = self.head.features(x)
        out["logits"] = self.head.classify(out["head"])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_levels(x)["logits"]
