"""OpenMMLab EfficientNets (mmdet 3.x, mmpretrain, and the efficientnet2mmdet.py stage layout).

Written from their structure: ``ConvModule`` (conv, bn, act), ``InvertedResidual`` (expand_conv,
depthwise_conv, se, linear_conv) and ``SELayer`` (conv1, conv2). mmdet 3.x and mmpretrain number
their layers 0..6 and merge pycls stages s4+s5 and s6+s7; the stage layout keeps conv1, layer1..7.
"""

from __future__ import annotations

import torch
from torch import nn

from ...tables.variants import Block, Variant
from .ops import Conv2d, Linear, Swish, batch_norm

# pycls stages held by each mmdet/mmpretrain layer 1..5 (layer 0 is the stem, layer 6 the head conv).
MMDET_STAGE_GROUPS = ((1,), (2,), (3,), (4, 5), (6, 7))


class ConvModule(nn.Module):
    """conv, then BN (if ``eps`` is given), then the activation (if any)."""

    def __init__(self, w_in, w_out, k, *, stride=1, groups=1, eps=None, act=None, bias=False, padding="symmetric", device=None):
        super().__init__()
        self.conv = Conv2d(w_in, w_out, k, stride=stride, groups=groups, bias=bias, padding=padding, device=device)
        if eps is not None:
            self.bn = batch_norm(w_out, eps, device)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        return self.act(x) if self.act is not None else x


class SELayer(nn.Module):
    """Global average pool, conv1 (1x1, bias, SiLU), conv2 (1x1, bias, sigmoid), scale."""

    def __init__(self, w: int, w_se: int, device=None):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = ConvModule(w, w_se, 1, bias=True, act=Swish(), device=device)
        self.conv2 = ConvModule(w_se, w, 1, bias=True, act=nn.Sigmoid(), device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv2(self.conv1(self.global_avgpool(x)))


class InvertedResidual(nn.Module):
    """expand_conv (if widened), depthwise_conv, se, linear_conv (no activation), skip."""

    def __init__(self, blk: Block, padding: str, eps: float, device=None):
        super().__init__()
        kw = dict(eps=eps, padding=padding, device=device)
        if blk.has_expand:
            self.expand_conv = ConvModule(blk.w_in, blk.w_exp, 1, act=Swish(), **kw)
        self.depthwise_conv = ConvModule(
            blk.w_exp, blk.w_exp, blk.kernel, stride=blk.stride, groups=blk.w_exp, act=Swish(), **kw
        )
        self.se = SELayer(blk.w_exp, blk.w_se, device)
        self.linear_conv = ConvModule(blk.w_exp, blk.w_out, 1, **kw)
        self.has_skip = blk.has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand_conv(x) if hasattr(self, "expand_conv") else x
        out = self.linear_conv(self.se(self.depthwise_conv(out)))
        return x + out if self.has_skip else out


def _stem(variant: Variant, padding: str, eps: float, device) -> ConvModule:
    return ConvModule(3, variant.stem_w, 3, stride=2, eps=eps, act=Swish(), padding=padding, device=device)


def _stage(variant: Variant, stages: tuple[int, ...], padding: str, eps: float, device) -> nn.Sequential:
    return nn.Sequential(*(InvertedResidual(b, padding, eps, device) for b in variant.blocks if b.stage in stages))


def _head(variant: Variant, padding: str, eps: float, device) -> ConvModule:
    return ConvModule(variant.widths[-1], variant.head_w, 1, eps=eps, act=Swish(), padding=padding, device=device)


class MMDetEfficientNet(nn.Module):
    """mmdet 3.x ``EfficientNet`` backbone: ``layers.0`` stem, ``layers.1-5`` stages, ``layers.6`` head
    conv; like mmdet, it builds only layers 0 ... max(out_indices)."""

    def __init__(self, variant: Variant, padding: str = "symmetric", eps: float = 1e-5, device=None, out_indices=None):
        super().__init__()
        layers = [
            _stem(variant, padding, eps, device),
            *(_stage(variant, g, padding, eps, device) for g in MMDET_STAGE_GROUPS),
            _head(variant, padding, eps, device),
        ]
        self.layers = nn.ModuleList(layers[: max(out_indices) + 1] if out_indices else layers)

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for i, layer in enumerate(self.layers):
            x = out[f"layers.{i}"] = layer(x)
        return out


class MMDetStagesEfficientNet(nn.Module):
    """The efficientnet2mmdet.py layout: ``conv1`` stem and ``layer1`` ... ``layer7``; no head."""

    def __init__(self, variant: Variant, padding: str = "symmetric", eps: float = 1e-5, device=None, out_indices=None):
        super().__init__()
        self.conv1 = _stem(variant, padding, eps, device)
        self.num_stages = len(variant.depths)
        for s in range(1, self.num_stages + 1):
            self.add_module(f"layer{s}", _stage(variant, (s,), padding, eps, device))

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.conv1(x)
        out = {"conv1": x}
        for s in range(1, self.num_stages + 1):
            x = out[f"layer{s}"] = getattr(self, f"layer{s}")(x)
        return out


class LinearClsHead(nn.Module):
    def __init__(self, w_in: int, num_classes: int, device=None):
        super().__init__()
        self.fc = Linear(w_in, num_classes, device=device)


class MMPretrainClassifier(nn.Module):
    """mmpretrain ``ImageClassifier``: EfficientNet backbone, GlobalAveragePooling neck, LinearClsHead."""

    def __init__(self, variant: Variant, padding: str = "symmetric", eps: float = 1e-5, device=None, out_indices=None):
        super().__init__()
        self.backbone = MMDetEfficientNet(variant, padding, eps, device)
        self.neck = nn.AdaptiveAvgPool2d((1, 1))
        self.head = LinearClsHead(variant.head_w, variant.num_classes, device)

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {f"backbone.{k}": v for k, v in self.backbone.forward_levels(x).items()}
        out["logits"] = self.head.fc(self.neck(out["backbone.layers.6"]).flatten(1))
        return out
