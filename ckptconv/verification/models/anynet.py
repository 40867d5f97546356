"""pycls 0.1.1 ``AnyNet`` (RegNet, ResNet, ResNeXt, every design-space AnyNet, ``models/resnet.py``)
and the models of the libraries that have them, written from their structure.

Blocks (``Bottleneck.kind``): the bottleneck: 1x1 conv, BN, ReLU; 3x3 grouped conv, BN, ReLU;
[squeeze-and-excitation]; 1x1 conv, BN; the stride on the 3x3 (on the first 1x1 with
``stride_1x1``: models/resnet.py's default, mmdet's ``style='caffe'``); the basic block: 3x3 conv
(the stride), BN, ReLU, 3x3 conv, BN; both plus the shortcut (a strided 1x1 conv and BN where width
or stride change), then ReLU. The vanilla block: 3x3 conv, BN, ReLU, 3x3 conv, BN, ReLU, no
shortcut. Stems: a 3x3 conv with stride 2 (simple_stem_in), a 7x7 with stride 2 and a 3x3 max pool
(res_stem_in), a 3x3 with stride 1 (res_stem_cifar); each with BN and ReLU. Head: global average
pool and an fc. The libraries differ in module names (so in state-dict keys and their order) and,
for timm's RegNet, in how SE pools (a mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import TableError
from ...model.variants import AnyNet, Bottleneck
from .ops import Arith, Build, Conv2d, Linear, batch_norm, conv_norm

TIMM_REGNET_ARITH = Arith(se_pool="mean")


def _conv_bn(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return bn(conv(x))


@dataclass
class Parts:
    """The modules one block computes with, wherever a library keeps them (``c``: bottleneck only)."""

    kind: str
    a: nn.Module
    a_bn: nn.Module
    b: nn.Module
    b_bn: nn.Module
    c: nn.Module | None = None
    c_bn: nn.Module | None = None
    se: nn.Module | None = None
    proj: nn.Module | None = None
    proj_bn: nn.Module | None = None


def block_forward(p: Parts, x: torch.Tensor) -> torch.Tensor:
    """One block (see the module doc); the sum is exact in either order, so all libraries agree bit for bit."""
    f = F.relu(_conv_bn(p.a, p.a_bn, x))
    f = _conv_bn(p.b, p.b_bn, f)
    if p.kind == "vanilla_block":
        return F.relu(f)
    if p.kind == "res_bottleneck_block":
        f = F.relu(f)
        f = p.se(f) if p.se is not None else f
        f = _conv_bn(p.c, p.c_bn, f)
    shortcut = _conv_bn(p.proj, p.proj_bn, x) if p.proj is not None else x
    return F.relu(shortcut + f)


def _convs(blk: Bottleneck, device) -> tuple[nn.Module, ...]:
    """a, b, c (None but for bottlenecks) and proj (None where the block does not project)."""
    proj = Conv2d(blk.w_in, blk.w_out, 1, stride=blk.stride, device=device) if blk.has_proj else None
    if blk.kind != "res_bottleneck_block":
        a = Conv2d(blk.w_in, blk.w_out, 3, stride=blk.stride, device=device)
        return a, Conv2d(blk.w_out, blk.w_out, 3, device=device), None, proj
    s_a, s_b = (blk.stride, 1) if blk.stride_1x1 else (1, blk.stride)
    a = Conv2d(blk.w_in, blk.w_b, 1, stride=s_a, device=device)
    b = Conv2d(blk.w_b, blk.w_b, 3, stride=s_b, groups=blk.groups, device=device)
    return a, b, Conv2d(blk.w_b, blk.w_out, 1, device=device), proj


def _widths(blk: Bottleneck) -> tuple[int, int]:
    """The widths after a and after b."""
    return (blk.w_b, blk.w_b) if blk.kind == "res_bottleneck_block" else (blk.w_out, blk.w_out)


class SE(nn.Module):
    """Squeeze-and-excitation: average pool, 1x1 conv, ReLU, 1x1 conv, sigmoid, scale. pycls keeps the
    convolutions in ``f_ex`` (0 and 2); torchvision and timm call them ``fc1`` and ``fc2``
    (``sequential=False``), and timm pools with a mean (``mean=True``)."""

    def __init__(self, w: int, w_se: int, device=None, *, sequential: bool = True, mean: bool = False):
        super().__init__()
        fc1, fc2 = Conv2d(w, w_se, 1, bias=True, device=device), Conv2d(w_se, w, 1, bias=True, device=device)
        if sequential:
            self.f_ex = nn.Sequential(fc1, nn.ReLU(), fc2, nn.Sigmoid())
        else:
            self.fc1, self.fc2 = fc1, fc2
        self.mean = mean  # timm pools with x.mean((2, 3)), the others with AdaptiveAvgPool2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean((2, 3), keepdim=True) if self.mean else F.adaptive_avg_pool2d(x, 1)
        gate = self.f_ex(pooled) if hasattr(self, "f_ex") else torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))
        return x * gate


def _stem_conv(variant: AnyNet, device) -> Conv2d:
    k, s = {"simple_stem_in": (3, 2), "res_stem_in": (7, 2), "res_stem_cifar": (3, 1)}[variant.stem_type]
    return Conv2d(3, variant.stem_w, k, stride=s, device=device)


def _stem(variant: AnyNet, conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = F.relu(bn(conv(x)))
    return F.max_pool2d(x, 3, stride=2, padding=1) if variant.stem_type == "res_stem_in" else x


def _logits(fc: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _stage_blocks(variant: AnyNet, s: int) -> list[Bottleneck]:
    return [b for b in variant.blocks if b.stage == s]


class _Model(nn.Module):
    """Shared forward: the stem, the stages (each a list of blocks with ``parts()``), the head.
    ``level_names``: the stem's and a pattern for each stage's (``layer{n}``)."""

    level_names: tuple[str, str]

    def stem_parts(self) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def stages(self) -> list[nn.Module]:
        raise NotImplementedError

    def classifier(self) -> nn.Module | None:
        return None

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = _stem(self.variant, *self.stem_parts(), x)
        out = {self.level_names[0]: x}
        for n, stage in enumerate(self.stages(), 1):
            for block in stage.children():
                x = block_forward(block.parts(), x)
            out[self.level_names[1].format(n=n)] = x
        if self.classifier() is not None:
            out["logits"] = _logits(self.classifier(), x)
        return out


class ConvNorm(nn.Module):
    """A convolution and its BN as ``conv`` and ``bn``: pycls's stem, timm's ``ConvNormAct``."""

    def __init__(self, conv: nn.Module, w: int, eps: float, device=None):
        super().__init__()
        self.conv, self.bn = conv, batch_norm(w, eps, device)


class _ClsHead(nn.Module):
    """``head.fc``: pycls's AnyHead, timm's ClassifierHead, mmpretrain's LinearClsHead."""

    def __init__(self, variant: AnyNet, device):
        super().__init__()
        self.fc = Linear(variant.widths[-1], variant.num_classes, device=device)


# --- pycls ------------------------------------------------------------------------------------


class _PyclsF(nn.Module):
    """BasicTransform / BottleneckTransform: a, a_bn, b, b_bn, [se], [c, c_bn]."""

    def __init__(self, blk: Bottleneck, convs: tuple, eps: float, device, mean: bool = False):
        super().__init__()
        a, b, c = convs
        w_a, w_b = _widths(blk)
        self.a, self.a_bn = a, batch_norm(w_a, eps, device)
        self.b, self.b_bn = b, batch_norm(w_b, eps, device)
        if blk.w_se:
            self.se = SE(blk.w_b, blk.w_se, device, mean=mean)
        if c is not None:
            self.c, self.c_bn = c, batch_norm(blk.w_out, eps, device)


class PyclsBlock(nn.Module):
    """``ResBottleneckBlock`` / ``ResBasicBlock``: ``proj``, ``bn`` (the shortcut), then ``f``;
    ``VanillaBlock``: ``a``, ``a_bn``, ``b``, ``b_bn`` (no shortcut)."""

    def __init__(self, blk: Bottleneck, eps: float, device=None, arith: Arith = Arith()):
        super().__init__()
        a, b, c, proj = _convs(blk, device)
        self.kind = blk.kind
        if blk.kind == "vanilla_block":
            self.a, self.a_bn, self.b, self.b_bn = a, batch_norm(blk.w_out, eps, device), b, batch_norm(blk.w_out, eps, device)
            return
        if proj is not None:
            self.proj, self.bn = proj, batch_norm(blk.w_out, eps, device)
        self.f = _PyclsF(blk, (a, b, c), eps, device, mean=arith.se_pool == "mean")

    def parts(self) -> Parts:
        if self.kind == "vanilla_block":
            return Parts(self.kind, self.a, self.a_bn, self.b, self.b_bn)
        f = self.f
        return Parts(self.kind, f.a, f.a_bn, f.b, f.b_bn, getattr(f, "c", None), getattr(f, "c_bn", None), getattr(f, "se", None),
                     getattr(self, "proj", None), getattr(self, "bn", None))


class PyclsAnyNet(_Model):
    """pycls ``AnyNet``: ``stem`` (conv, bn), ``s1``..``sN`` of blocks ``b1``..``bM``, ``head.fc``."""

    level_names = ("stem", "s{n}")
    block = PyclsBlock

    def __init__(self, variant: AnyNet, b: Build = Build()):
        super().__init__()
        self.variant = variant
        eps, device = b.eps, b.device
        self.stem = ConvNorm(_stem_conv(variant, device), variant.stem_w, eps, device)
        for s in range(1, variant.stages + 1):
            stage = nn.Module()
            for blk in _stage_blocks(variant, s):
                stage.add_module(f"b{blk.block}", self.block(blk, eps, device, b.arith))
            self.add_module(f"s{s}", stage)
        self.head = _ClsHead(variant, device)

    def stem_parts(self):
        return self.stem.conv, self.stem.bn

    def stages(self):
        return [getattr(self, f"s{s}") for s in range(1, self.variant.stages + 1)]

    def classifier(self):
        return self.head.fc


# --- torchvision's, timm's and OpenMMLab's ResNet (and mmdet/mmpretrain's RegNet) -------------------


def _no_se(variant: AnyNet, reference: str) -> None:
    if variant.se_r:
        raise TableError(f"the {reference} reference has no squeeze-and-excitation, which {variant.name} needs")


class ResNetBlock(nn.Module):
    """``Bottleneck``: conv1, bn1, conv2, bn2, conv3, bn3; ``BasicBlock``: conv1, bn1, conv2, bn2;
    then ``downsample.0``/``.1`` (the shortcut) last."""

    def __init__(self, blk: Bottleneck, eps: float, device=None):
        super().__init__()
        a, b, c, proj = _convs(blk, device)
        w_a, w_b = _widths(blk)
        self.kind = blk.kind
        self.conv1, self.bn1 = a, batch_norm(w_a, eps, device)
        self.conv2, self.bn2 = b, batch_norm(w_b, eps, device)
        if c is not None:
            self.conv3, self.bn3 = c, batch_norm(blk.w_out, eps, device)
        if proj is not None:
            self.downsample = nn.Sequential(proj, batch_norm(blk.w_out, eps, device))

    def parts(self) -> Parts:
        ds = getattr(self, "downsample", None)
        c = (self.conv3, self.bn3) if hasattr(self, "conv3") else (None, None)
        return Parts(self.kind, self.conv1, self.bn1, self.conv2, self.bn2, *c, None, *(ds if ds is not None else (None, None)))


class ResNet(_Model):
    """conv1, bn1, [max pool], layer1..layerN of ``ResNetBlock``s numbered from 0, [fc]: torchvision's
    and timm's ResNet/ResNeXt, mmdet's ResNet/ResNeXt/RegNet backbones (no fc), mmpretrain's
    ResNet_CIFAR (the 3x3 stride-1 stem)."""

    level_names = ("stem", "layer{n}")
    has_fc = True

    def __init__(self, variant: AnyNet, b: Build = Build()):
        super().__init__()
        _no_se(variant, type(self).__name__)
        self.variant = variant
        eps, device = b.eps, b.device
        self.conv1, self.bn1 = _stem_conv(variant, device), batch_norm(variant.stem_w, eps, device)
        for s in range(1, variant.stages + 1):
            self.add_module(f"layer{s}", nn.Sequential(*(ResNetBlock(blk, eps, device) for blk in _stage_blocks(variant, s))))
        if self.has_fc:
            self.fc = Linear(variant.widths[-1], variant.num_classes, device=device)

    def stem_parts(self):
        return self.conv1, self.bn1

    def stages(self):
        return [getattr(self, f"layer{s}") for s in range(1, self.variant.stages + 1)]

    def classifier(self):
        return getattr(self, "fc", None)


class MMDetResNet(ResNet):
    """mmdet's ``ResNet``/``ResNeXt``/``RegNet`` backbone: the same without an fc."""

    has_fc = False


class MMPretrainResNet(nn.Module):
    """mmpretrain ``ImageClassifier``: the mmdet-style backbone under ``backbone.``, a global average
    pool neck and ``head.fc`` (LinearClsHead)."""

    def __init__(self, variant: AnyNet, b: Build = Build()):
        super().__init__()
        self.backbone = MMDetResNet(variant, b)
        self.head = _ClsHead(variant, b.device)

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {f"backbone.{k}": v for k, v in self.backbone.forward_levels(x).items()}
        out["logits"] = _logits(self.head.fc, out[f"backbone.layer{self.backbone.variant.stages}"])
        return out


# --- timm's RegNet ------------------------------------------------------------------------------------


class TimmRegNetBlock(nn.Module):
    """timm ``Bottleneck`` of ``regnetx_*``/``regnety_*``: conv1, conv2, [se], conv3, downsample (last)."""

    def __init__(self, blk: Bottleneck, eps: float, device=None, arith: Arith = TIMM_REGNET_ARITH):
        super().__init__()
        a, b, c, proj = _convs(blk, device)
        self.conv1, self.conv2 = ConvNorm(a, blk.w_b, eps, device), ConvNorm(b, blk.w_b, eps, device)
        if blk.w_se:
            self.se = SE(blk.w_b, blk.w_se, device, sequential=False, mean=True)
        self.conv3 = ConvNorm(c, blk.w_out, eps, device)
        if proj is not None:
            self.downsample = ConvNorm(proj, blk.w_out, eps, device)

    def parts(self) -> Parts:
        ds = getattr(self, "downsample", None)
        shortcut = (ds.conv, ds.bn) if ds is not None else (None, None)
        return Parts("res_bottleneck_block", self.conv1.conv, self.conv1.bn, self.conv2.conv, self.conv2.bn, self.conv3.conv,
                     self.conv3.bn, getattr(self, "se", None), *shortcut)


class TimmRegNet(PyclsAnyNet):
    """timm ``RegNet``: pycls's names for the stem, the stages ``s1``..``sN`` with blocks ``b1``..``bM``
    and ``head.fc``; its own inside each block."""

    block = TimmRegNetBlock
    arith = TIMM_REGNET_ARITH


# --- torchvision's RegNet ---------------------------------------------------------------------------


class _TorchvisionF(nn.Module):
    def __init__(self, blk: Bottleneck, convs: tuple, eps: float, device):
        super().__init__()
        a, b, c = convs
        self.a, self.b = conv_norm(a, blk.w_b, eps, device), conv_norm(b, blk.w_b, eps, device)
        if blk.w_se:
            self.se = SE(blk.w_b, blk.w_se, device, sequential=False)
        self.c = conv_norm(c, blk.w_out, eps, device)


class TorchvisionRegNetBlock(nn.Module):
    """torchvision ``ResBottleneckBlock``: ``proj`` (first), then ``f`` (a, b, [se], c)."""

    def __init__(self, blk: Bottleneck, eps: float, device=None):
        super().__init__()
        a, b, c, proj = _convs(blk, device)
        if proj is not None:
            self.proj = conv_norm(proj, blk.w_out, eps, device)
        self.f = _TorchvisionF(blk, (a, b, c), eps, device)

    def parts(self) -> Parts:
        f, proj = self.f, getattr(self, "proj", None)
        return Parts("res_bottleneck_block", *f.a, *f.b, *f.c, getattr(f, "se", None), *(proj if proj is not None else (None, None)))


class TorchvisionRegNet(_Model):
    """torchvision ``RegNet``: ``stem`` (0, 1), ``trunk_output.block1``..``blockN`` of blocks
    ``blockS-0``..``blockS-(M-1)``, ``fc``."""

    level_names = ("stem", "trunk_output.block{n}")

    def __init__(self, variant: AnyNet, b: Build = Build()):
        super().__init__()
        self.variant = variant
        eps, device = b.eps, b.device
        self.stem = conv_norm(_stem_conv(variant, device), variant.stem_w, eps, device)
        self.trunk_output = nn.Module()
        for s in range(1, variant.stages + 1):
            stage = nn.Module()
            for blk in _stage_blocks(variant, s):
                stage.add_module(f"block{s}-{blk.block - 1}", TorchvisionRegNetBlock(blk, eps, device))
            self.trunk_output.add_module(f"block{s}", stage)
        self.fc = Linear(variant.widths[-1], variant.num_classes, device=device)

    def stem_parts(self):
        return tuple(self.stem)

    def stages(self):
        return list(self.trunk_output.children())

    def classifier(self):
        return self.fc
