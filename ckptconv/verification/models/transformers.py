"""transformers' ``RegNetForImageClassification`` and ``ResNetForImageClassification`` (5.25.0),
written from their structure: the module names (so the state-dict keys and their order) are
theirs, the arithmetic pycls's (``anynet.block_forward``), which it is.

Each conv is a ``RegNetConvLayer``/``ResNetConvLayer`` (``convolution``, ``normalization``, padding
k // 2, no bias); the embedder is the stem (RegNet: 3x3 stride 2; ResNet: 7x7 stride 2, then a 3x3
stride-2 max pool); a stage's layers are ``shortcut`` (a strided 1x1 and BN where width or stride
change), then ``layer``: 1x1, BN, ReLU; 3x3 grouped, BN, ReLU; [SE as ``layer.2``: average pool,
1x1, ReLU, 1x1, sigmoid, scale]; 1x1, BN (ResNet's basic layer: two 3x3); the sum, then ReLU. The
head is an adaptive average pool and ``classifier.1`` (``classifier.0`` is a Flatten).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...model.variants import AnyNet, Bottleneck
from .anynet import Parts, _convs, _Model, _stage_blocks, _stem_conv, _widths
from .ops import Build, Conv2d, Linear, batch_norm


class ConvLayer(nn.Module):
    """``RegNetConvLayer`` / ``ResNetConvLayer``: ``convolution`` then ``normalization``."""

    def __init__(self, conv: nn.Module, w: int, eps: float, device=None):
        super().__init__()
        self.convolution, self.normalization = conv, batch_norm(w, eps, device)


class Layer(nn.Module):
    """``RegNetXLayer``/``RegNetYLayer``/``ResNetBottleNeckLayer``/``ResNetBasicLayer``: ``shortcut``
    (where the block projects), then ``layer.0``, ``layer.1``, [``layer.2`` the SE], and the last 1x1."""

    def __init__(self, blk: Bottleneck, eps: float, device=None):
        super().__init__()
        a, b, c, proj = _convs(blk, device)
        w_a, w_b = _widths(blk)
        self.kind = blk.kind
        if proj is not None:
            self.shortcut = ConvLayer(proj, blk.w_out, eps, device)
        parts = [ConvLayer(a, w_a, eps, device), ConvLayer(b, w_b, eps, device)]
        if blk.w_se:
            parts.append(_SELayer(blk.w_b, blk.w_se, device))
        if c is not None:
            parts.append(ConvLayer(c, blk.w_out, eps, device))
        self.layer = nn.Sequential(*parts)

    def parts(self) -> Parts:
        a, b, *rest = self.layer
        se = rest[0] if len(rest) == 2 else None
        c = rest[-1] if rest else None
        ds = getattr(self, "shortcut", None)
        return Parts(self.kind, a.convolution, a.normalization, b.convolution, b.normalization, c.convolution if c else None,
                     c.normalization if c else None, se, ds.convolution if ds else None, ds.normalization if ds else None)


class _SELayer(nn.Module):
    """``RegNetSELayer``: AdaptiveAvgPool2d, ``attention`` (1x1, ReLU, 1x1, sigmoid), scale: pycls's SE
    under another name."""

    def __init__(self, w: int, w_se: int, device=None):
        super().__init__()
        fc1, fc2 = Conv2d(w, w_se, 1, bias=True, device=device), Conv2d(w_se, w, 1, bias=True, device=device)
        self.attention = nn.Sequential(fc1, nn.ReLU(), fc2, nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(F.adaptive_avg_pool2d(x, 1))


class _Stage(nn.Module):
    def __init__(self, blocks: list[Bottleneck], eps: float, device):
        super().__init__()
        self.layers = nn.Sequential(*(Layer(blk, eps, device) for blk in blocks))


class _Backbone(nn.Module):
    """``RegNetModel`` / ``ResNetModel``: ``embedder.embedder`` and ``encoder.stages.{i}``."""

    def __init__(self, variant: AnyNet, eps: float, device):
        super().__init__()
        self.embedder = nn.Module()
        self.embedder.embedder = ConvLayer(_stem_conv(variant, device), variant.stem_w, eps, device)
        self.encoder = nn.Module()
        self.encoder.stages = nn.ModuleList(_Stage(_stage_blocks(variant, s), eps, device) for s in range(1, variant.stages + 1))


class TransformersAnyNet(_Model):
    """``<model>.embedder``, ``<model>.encoder.stages.{i}.layers.{j}``, ``classifier.1``; the levels
    are ``output_hidden_states``: ``hidden_states.0`` the embedder's (pycls's stem, max pool
    included), ``hidden_states.{n}`` stage n's."""

    level_names = ("hidden_states.0", "hidden_states.{n}")
    model_name = ""

    def __init__(self, variant: AnyNet, b: Build = Build()):
        super().__init__()
        self.variant = variant
        self.add_module(self.model_name, _Backbone(variant, b.eps, b.device))
        self.classifier = nn.Sequential(nn.Flatten(), Linear(variant.widths[-1], variant.num_classes, device=b.device))

    def _backbone(self) -> _Backbone:
        return getattr(self, self.model_name)

    def stem_parts(self):
        stem = self._backbone().embedder.embedder
        return stem.convolution, stem.normalization

    def stages(self):
        return [stage.layers for stage in self._backbone().encoder.stages]

    def classifier(self) -> nn.Module:  # the method _Model calls; the module is registered as "classifier" (keys classifier.1.*)
        return self._modules["classifier"][1]


class TransformersRegNet(TransformersAnyNet):
    """``RegNetForImageClassification``: the model under ``regnet.``."""

    model_name = "regnet"


class TransformersResNet(TransformersAnyNet):
    """``ResNetForImageClassification``: the model under ``resnet.``."""

    model_name = "resnet"
