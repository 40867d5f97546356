"""Building blocks shared by the reference models: convolutions with either padding, BN, activations.

Padding decides whether pycls weights compute what pycls computed:
- ``symmetric``: pad (k-1)//2 on every side, as pycls and ``nn.Conv2d`` (mmdet ``conv_cfg=dict(type='Conv2d')``);
- ``same``: TensorFlow-style, as mmcv's ``Conv2dAdaptivePadding`` (mmdet's EfficientNet default): total
  padding ``max((ceil(i/s) - 1) * s + (k - 1) * d + 1 - i, 0)`` per axis, the smaller half top/left.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...options import PADDINGS


def swish(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(x), exactly as pycls 0.1.1 and mmcv's Swish compute it.

    ``F.silu`` gives the same function but rounds differently in the last bit on CPU; the shared
    fixtures are bit-exact only with this form.
    """
    return x * torch.sigmoid(x)


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swish(x)


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


def batch_norm(w: int, eps: float, device=None) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(w, eps=eps, device=device)


def conv_norm(conv: nn.Module, w: int, eps: float, device=None) -> nn.Sequential:
    """A convolution and its BN as torchvision keeps them: ``.0`` and ``.1`` (``Conv2dNormActivation``)."""
    return nn.Sequential(conv, batch_norm(w, eps, device))
