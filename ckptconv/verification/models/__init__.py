"""Reference models in plain torch, one per library layout of each family, for numeric verification.

Each takes every hyperparameter as an argument (variant, padding, BN eps, device) and exposes
``forward_levels(x)``: an ordered dict of the outputs a layout table's ``[levels]`` compares.
Build them on the meta device and load with ``assign=True`` to skip random initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import TableError
from ...libraries import references
from ...model.variants import Variant
from .ops import PYCLS_ARITH, Arith, Build


def reference_class(reference: str, variant: Variant) -> type[nn.Module]:
    """The reference model a table names for ``variant``'s family (its library's: ``ckptconv/libraries``)."""
    known = references(variant.family)
    if reference not in known:
        raise TableError(f"no reference model {reference!r} for {variant.family}", fix=f"use one of {', '.join(known)}")
    return known[reference].load()


def arith_of(reference: str, variant: Variant) -> Arith:
    """How the library a reference model stands for computes SiLU and pooling."""
    return getattr(reference_class(reference, variant), "arith", PYCLS_ARITH)


def build(reference: str, variant: Variant, b: Build = Build()) -> nn.Module:
    """An eval-mode reference model; on ``meta`` (the default device) it holds no memory until
    weights are assigned."""
    return reference_class(reference, variant)(variant, b).eval()


ALIGNMENT = 64  # bytes: what torch's allocator (and so every library's load_state_dict) gives


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """The tensor, or a copy in freshly allocated memory when its data is not 64-byte aligned.

    CPU kernels pick their vector loops by alignment, so the same weights at another address can
    round differently. safetensors data sits at 8-byte offsets; libraries copy weights into their
    own (aligned) parameters, so the references run on aligned memory too.
    """
    return t if t.data_ptr() % ALIGNMENT == 0 else t.clone()


def load(reference: str, variant: Variant, state_dict: dict[str, torch.Tensor], b: Build = Build()) -> nn.Module:
    """Build a reference and assign ``state_dict`` into it strictly, upcasting fp16/bf16 to fp32."""
    model = build(reference, variant, b)
    weights = {k: _aligned(v.float() if v.is_floating_point() else v) for k, v in state_dict.items()}
    model.load_state_dict(weights, strict=True, assign=True)
    return model


def pycls_model(variant: Variant, state_dict: dict[str, torch.Tensor], arith: Arith = PYCLS_ARITH) -> nn.Module:
    """pycls's network holding ``state_dict``, with its own BN eps (``variant.eps``: BN.EPS), computed
    with ``arith`` (pycls's own by default)."""
    return load("pycls", variant, state_dict, Build(eps=variant.eps, arith=arith))
