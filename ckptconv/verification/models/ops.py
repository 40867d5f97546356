"""Building blocks shared by the reference models: how a model is built (``Build``: padding, BN eps,
the library's arithmetic), convolutions with either padding, BN, activations and pooling.

Padding decides whether pycls weights compute what pycls computed:
- ``symmetric``: pad (k-1)//2 on every side, as pycls and ``nn.Conv2d`` (mmdet ``conv_cfg=dict(type='Conv2d')``);
- ``same``: TensorFlow-style, as mmcv's ``Conv2dAdaptivePadding`` (mmdet's EfficientNet default): total
  padding ``max((ceil(i/s) - 1) * s + (k - 1) * d + 1 - i, 0)`` per axis, the smaller half top/left.

``Arith`` says how a library computes the same functions as pycls: SiLU as ``x * sigmoid(x)`` (pycls,
mmcv's Swish) or ``F.silu`` (timm, torchvision), and global pooling as ``adaptive_avg_pool2d``
(pycls, mmcv, torchvision) or ``x.mean((2, 3))`` (timm). Equal functions, other roundings in the
last bit; verification builds pycls's side with the library's arithmetic, so the two compare exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...options import PADDINGS


@dataclass(frozen=True)
class Arith:
    """How a library computes SiLU and global average pooling (pycls's way by default)."""

    silu: str = "mul"  # mul: x * sigmoid(x); silu: F.silu
    se_pool: str = "adaptive"  # adaptive: F.adaptive_avg_pool2d; mean: x.mean((2, 3), keepdim=True)
    head_pool: str = "adaptive"

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x) if self.silu == "silu" else x * torch.sigmoid(x)

    def pool(self, x: torch.Tensor, where: str = "se") -> torch.Tensor:
        """Global average pool to N x C x 1 x 1, in the SE block (``se``) or before the classifier (``head``)."""
        kind = self.se_pool if where == "se" else self.head_pool
        return x.mean((2, 3), keepdim=True) if kind == "mean" else F.adaptive_avg_pool2d(x, 1)

    def describe(self) -> str:
        """What is computed otherwise than pycls computes it (pycls: x * sigmoid(x), adaptive pooling)."""
        parts = ["SiLU as F.silu"] if self.silu == "silu" else []
        parts += [f"{w} pooling as x.mean" for w, k in (("SE", self.se_pool), ("head", self.head_pool)) if k == "mean"]
        return ", ".join(parts)


PYCLS_ARITH = Arith()


@dataclass(frozen=True)
class Build:
    """Everything a reference model is built with besides the variant's numbers."""

    padding: str = "symmetric"
    eps: float = 1e-5
    arith: Arith = PYCLS_ARITH
    device: object = "meta"
    out_indices: tuple[int, ...] | None = None  # the layers a detector uses (mmdet builds none beyond the last)

    def __post_init__(self) -> None:
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, not {self.padding!r}")


class Act(nn.Module):
    """SiLU, computed as the library computes it."""

    def __init__(self, arith: Arith = PYCLS_ARITH):
        super().__init__()
        self.arith = arith

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.arith.act(x)


def swish(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(x), exactly as pycls 0.1.1 and mmcv's Swish compute it (``F.silu`` rounds otherwise)."""
    return x * torch.sigmoid(x)


def same_padding(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """(before, after) padding of one axis for TF-style "same" convolution."""
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class NoInit:
    """Reference models always receive their weights (``load_state_dict(..., assign=True)``):
    drawing random initial values, even on the meta device, would only cost time."""

    def reset_parameters(self) -> None:
        pass


class Linear(NoInit, nn.Linear):
    pass


class Conv2d(NoInit, nn.Conv2d):
    """Convolution without bias unless asked, padded ``symmetric`` or ``same`` (see module doc)."""

    def __init__(self, w_in, w_out, k, *, stride=1, groups=1, bias=False, padding="symmetric", device=None):
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, not {padding!r}")
        pad = (k - 1) // 2 if padding == "symmetric" else 0
        super().__init__(w_in, w_out, k, stride=stride, padding=pad, groups=groups, bias=bias, device=device)
        self.same = padding == "same" and k > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
            left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
            x = F.pad(x, [left, right, top, bottom])
        return super().forward(x)


def conv(b: Build, w_in: int, w_out: int, k: int, *, stride: int = 1, groups: int = 1, bias: bool = False) -> Conv2d:
    """A convolution padded and placed as ``b`` says."""
    return Conv2d(w_in, w_out, k, stride=stride, groups=groups, bias=bias, padding=b.padding, device=b.device)


def batch_norm(w: int, eps: float, device=None) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(w, eps=eps, device=device)


def bn(b: Build, w: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(w, eps=b.eps, device=b.device)


def conv_norm(conv: nn.Module, w: int, eps: float, device=None) -> nn.Sequential:
    """A convolution and its BN as torchvision keeps them: ``.0`` and ``.1`` (``Conv2dNormActivation``)."""
    return nn.Sequential(conv, batch_norm(w, eps, device))
