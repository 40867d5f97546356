"""OpenMMLab EfficientNets (mmdet 3.x, mmpretrain, and the efficientnet2mmdet.py stage layout).

Written from their structure: ``ConvModule`` (conv, bn, act), ``InvertedResidual`` (expand_conv,
depthwise_conv, se, linear_conv) and ``SELayer`` (conv1, conv2). mmdet 3.x and mmpretrain number
their layers 0..6 and merge pycls stages s4+s5 and s6+s7; the stage layout keeps conv1, layer1..7.
mmcv computes SiLU as x * sigmoid(x) (its Swish) and pools with AdaptiveAvgPool2d: pycls's arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

from ...model.variants import Block, Variant
from .ops import Act, Build, Linear, bn, conv

# pycls stages held by each mmdet/mmpretrain layer 1..5 (layer 0 is the stem, layer 6 the head conv).
MMDET_STAGE_GROUPS = ((1,), (2,), (3,), (4, 5), (6, 7))


class ConvModule(nn.Module):
    """conv, then BN (``norm``), then the activation (``act``: a module, or None)."""

    def __init__(self, conv_: nn.Module, b: Build, *, norm: bool = True, act: nn.Module | None = None):
        super().__init__()
        self.conv = conv_
        if norm:
            self.bn = bn(b, conv_.out_channels)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        return self.act(x) if self.act is not None else x


class SELayer(nn.Module):
    """Global average pool, conv1 (1x1, bias, SiLU), conv2 (1x1, bias, sigmoid), scale."""

    def __init__(self, w: int, w_se: int, b: Build):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = ConvModule(conv(b, w, w_se, 1, bias=True), b, norm=False, act=Act(b.arith))
        self.conv2 = ConvModule(conv(b, w_se, w, 1, bias=True), b, norm=False, act=nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv2(self.conv1(self.global_avgpool(x)))


class InvertedResidual(nn.Module):
    """expand_conv (if widened), depthwise_conv, se, linear_conv (no activation), skip."""

    def __init__(self, blk: Block, b: Build):
        super().__init__()
        if blk.has_expand:
            self.expand_conv = ConvModule(conv(b, blk.w_in, blk.w_exp, 1), b, act=Act(b.arith))
        dwise = conv(b, blk.w_exp, blk.w_exp, blk.kernel, stride=blk.stride, groups=blk.w_exp)
        self.depthwise_conv = ConvModule(dwise, b, act=Act(b.arith))
        self.se = SELayer(blk.w_exp, blk.w_se, b)
        self.linear_conv = ConvModule(conv(b, blk.w_exp, blk.w_out, 1), b)
        self.has_skip = blk.has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand_conv(x) if hasattr(self, "expand_conv") else x
        out = self.linear_conv(self.se(self.depthwise_conv(out)))
        return x + out if self.has_skip else out


def _stem(variant: Variant, b: Build) -> ConvModule:
    return ConvModule(conv(b, 3, variant.stem_w, 3, stride=2), b, act=Act(b.arith))


def _stage(variant: Variant, stages: tuple[int, ...], b: Build) -> nn.Sequential:
    return nn.Sequential(*(InvertedResidual(blk, b) for blk in variant.blocks if blk.stage in stages))


def _head(variant: Variant, b: Build) -> ConvModule:
    return ConvModule(conv(b, variant.widths[-1], variant.head_w, 1), b, act=Act(b.arith))


class MMDetEfficientNet(nn.Module):
    """mmdet 3.x ``EfficientNet`` backbone: ``layers.0`` stem, ``layers.1-5`` stages, ``layers.6`` head
    conv; like mmdet, it builds only layers 0 ... max(out_indices)."""

    def __init__(self, variant: Variant, b: Build = Build()):
        super().__init__()
        layers = [_stem(variant, b), *(_stage(variant, g, b) for g in MMDET_STAGE_GROUPS), _head(variant, b)]
        self.layers = nn.ModuleList(layers[: max(b.out_indices) + 1] if b.out_indices else layers)

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for i, layer in enumerate(self.layers):
            x = out[f"layers.{i}"] = layer(x)
        return out


class MMDetStagesEfficientNet(nn.Module):
    """The efficientnet2mmdet.py layout: ``conv1`` stem and ``layer1`` ... ``layer7``; no head."""

    def __init__(self, variant: Variant, b: Build = Build()):
        super().__init__()
        self.conv1 = _stem(variant, b)
        self.num_stages = len(variant.depths)
        for s in range(1, self.num_stages + 1):
            self.add_module(f"layer{s}", _stage(variant, (s,), b))

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

    def __init__(self, variant: Variant, b: Build = Build()):
        super().__init__()
        self.backbone = MMDetEfficientNet(variant, Build(b.padding, b.eps, b.arith, b.device))
        self.neck = nn.AdaptiveAvgPool2d((1, 1))
        self.head = LinearClsHead(variant.head_w, variant.num_classes, b.device)

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {f"backbone.{k}": v for k, v in self.backbone.forward_levels(x).items()}
        out["logits"] = self.head.fc(self.neck(out["backbone.layers.6"]).flatten(1))
        return out
