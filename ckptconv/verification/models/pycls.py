"""pycls 0.1.1 ``EffNet``, written from its structure; keys equal pycls's ``model_state`` exactly."""

from __future__ import annotations

import torch
from torch import nn

from ...tables.variants import Block, Variant
from .ops import Conv2d, Linear, Swish, batch_norm


class SE(nn.Module):
    """Squeeze-and-excitation: global average pool, 1x1 conv, SiLU, 1x1 conv, sigmoid, scale."""

    def __init__(self, w: int, w_se: int, device=None):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.f_ex = nn.Sequential(
            Conv2d(w, w_se, 1, bias=True, device=device), Swish(),
            Conv2d(w_se, w, 1, bias=True, device=device), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.f_ex(self.avg_pool(x))


class MBConv(nn.Module):
    """MBConv: 1x1 expand, BN, SiLU, kxk depthwise, BN, SiLU, SE, 1x1 project, BN, skip."""

    def __init__(self, blk: Block, padding: str, eps: float, device=None):
        super().__init__()
        self.exp = None
        if blk.has_expand:
            self.exp = Conv2d(blk.w_in, blk.w_exp, 1, padding=padding, device=device)
            self.exp_bn = batch_norm(blk.w_exp, eps, device)
            self.exp_af = Swish()
        self.dwise = Conv2d(
            blk.w_exp, blk.w_exp, blk.kernel, stride=blk.stride, groups=blk.w_exp, padding=padding, device=device
        )
        self.dwise_bn = batch_norm(blk.w_exp, eps, device)
        self.dwise_af = Swish()
        self.se = SE(blk.w_exp, blk.w_se, device)
        self.lin_proj = Conv2d(blk.w_exp, blk.w_out, 1, padding=padding, device=device)
        self.lin_proj_bn = batch_norm(blk.w_out, eps, device)
        self.has_skip = blk.has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_x = self.exp_af(self.exp_bn(self.exp(x))) if self.exp is not None else x
        f_x = self.dwise_af(self.dwise_bn(self.dwise(f_x)))
        f_x = self.lin_proj_bn(self.lin_proj(self.se(f_x)))
        return x + f_x if self.has_skip else f_x


class StemIN(nn.Module):
    """Stem: 3x3 conv with stride 2, BN, SiLU."""

    def __init__(self, w_out: int, padding: str, eps: float, device=None):
        super().__init__()
        self.conv = Conv2d(3, w_out, 3, stride=2, padding=padding, device=device)
        self.bn = batch_norm(w_out, eps, device)
        self.af = Swish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.af(self.bn(self.conv(x)))


class EffHead(nn.Module):
    """Head: 1x1 conv, BN, SiLU (the ``head`` point), global average pool, fully connected."""

    def __init__(self, w_in: int, w_out: int, num_classes: int, padding: str, eps: float, device=None):
        super().__init__()
        self.conv = Conv2d(w_in, w_out, 1, padding=padding, device=device)
        self.conv_bn = batch_norm(w_out, eps, device)
        self.conv_af = Swish()
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(w_out, num_classes, bias=True, device=device)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_af(self.conv_bn(self.conv(x)))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.avg_pool(x).flatten(1))


class EffNet(nn.Module):
    """pycls EffNet: stem, stages s1..s7 of MBConv blocks b1..bN, head. Eval-mode reference only."""

    def __init__(self, variant: Variant, padding: str = "symmetric", eps: float = 1e-5, device=None, out_indices=None):
        super().__init__()
        self.stem = StemIN(variant.stem_w, padding, eps, device)
        for s in range(1, len(variant.depths) + 1):
            stage = nn.Module()
            for blk in (b for b in variant.blocks if b.stage == s):
                stage.add_module(f"b{blk.block}", MBConv(blk, padding, eps, device))
            self.add_module(f"s{s}", stage)
        self.head = EffHead(variant.widths[-1], variant.head_w, variant.num_classes, padding, eps, device)
        self.num_stages = len(variant.depths)

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every pycls feature point: stem, s1..s7, head, logits."""
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
