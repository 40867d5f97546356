"""Convert on load in mmengine (MMDetection, mmpretrain): no conversion step, and a wrong config fails.

Put ``custom_imports=dict(imports=['ckptconv.mmengine'], allow_failed_imports=False)`` in a config.
Importing this module registers:

- checkpoint schemes ``pycls-<layout>://`` (``pycls-mmdet://``, ``pycls-mmpretrain://``,
  ``pycls-mmdet-stages://``) and ``pycls-<layout>-bgr://``: a pycls file converted in memory by
  the same tables and checks as ``ckptconv convert`` (RGB weights, as the CLI writes by default; the
  ``-bgr`` schemes keep pycls's BGR order). mmengine passes a loader only the file name: the layout
  comes from the scheme, the model from the file. mmengine matches scheme prefixes as regular
  expressions, so no name here holds ``+`` or ``.``.
- the pipeline step ``PyclsResizeCrop`` (``openmmlab/transforms.py``): pycls's test resize and crop;
- the initializer ``CkptconvPretrained``, beside mmengine's ``Pretrained``:
  ``init_cfg=dict(type='CkptconvPretrained', checkpoint=..., layout='mmdet')`` loads a pycls file
  (converted in memory) or a converted file **strictly**, after checking the live model's settings
  against what the weights need: every convolution's padding, every BatchNorm's eps, and (on a
  detector or classifier, with ``prefix='backbone'``) the data preprocessor's colour order, mean and
  std. A disagreement raises with the one-line fix. mmengine's own ``Pretrained`` loads with
  ``strict=False`` and only logs what did not fit.

mmengine is an optional dependency (``pip install 'ckptconv[mmengine]'``); nothing else in ckptconv
imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from mmengine.registry import TRANSFORMS, WEIGHT_INITIALIZERS
from mmengine.runner import CheckpointLoader

from ..convert import checked
from ..errors import UsageError, VerificationError
from ..io.checkpoint import load
from ..libraries import library
from ..model.variants import Variant
from ..options import DEFAULT_LAYOUT, PYCLS, Request
from ..tables import detect, engine
from ..tables.layout import Layout
from ..tables.pipeline import mismatches, needed
from ..tables.registry import registry_for
from .scheme import parse_scheme, schemes
from .transforms import PyclsResizeCrop


def _loader(prefix: str, layout: str, order: str):
    def load_from_pycls(filename: str, map_location=None) -> dict[str, Any]:
        """mmengine logs "Loads checkpoint by pycls backend": its name after ``load_from_``."""
        converted, _ = checked(Request(source=Path(filename[len(prefix) :]), layout=layout, channel_order=order))
        return {"state_dict": converted.tensors, "meta": converted.meta}

    return load_from_pycls


for _scheme, _layout, _order in schemes(registry_for()):
    CheckpointLoader.register_scheme(prefixes=_scheme, loader=_loader(_scheme, _layout, _order), force=True)
TRANSFORMS.register_module(name="PyclsResizeCrop", module=PyclsResizeCrop, force=True)  # mmpretrain's and mmdet's registries find it as their parent's


def weights_for(checkpoint: str, layout: str | None = None, channel_order: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict mmengine would load and the meta saying what it needs: a pycls file (or a
    ``pycls-*://`` name) converted in memory, or a file ckptconv converted, read as mmengine reads it."""
    path, scheme_layout, scheme_order = parse_scheme(str(checkpoint))
    if scheme_layout is None:
        ckpt = load(Path(path))
        made = ckpt.meta.get("layout")
        if made and made != PYCLS:  # converted already: read it as mmengine does
            if layout and layout != made:
                raise UsageError(f"{path} holds the {made} layout, not {layout}", fix=f"pass layout='{made}' or convert it again")
            return ckpt.loaded_by(library("mmdet").loads, "mmengine")[1], ckpt.meta  # mmdet's and mmpretrain's loader: mmengine's
    converted, _ = checked(Request(source=Path(path), layout=scheme_layout or layout or DEFAULT_LAYOUT, channel_order=scheme_order or channel_order))
    return converted.tensors, converted.meta


def _table(meta: dict[str, Any]) -> tuple[Layout, Variant]:
    """The layout the weights are in and the model they are, as their meta records them."""
    registry = registry_for()
    variant = detect.recorded_model(meta, registry)
    if variant is None:
        raise UsageError("the weights record no model ckptconv knows", fix="convert them with ckptconv first")
    return registry.layout(meta["layout"], variant.family), variant


def check_modules(module: torch.nn.Module, table: Layout, variant: Variant) -> list[str]:
    """Where the live model's convolutions or BatchNorms differ from what the weights need."""
    need_eps, advice = variant.eps, table.needs(variant)["config"]
    problems: list[str] = []
    for name, m in module.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.eps != need_eps:
            problems.append(f"{name or 'the model'} is a BatchNorm with eps {m.eps:g}; these weights need {need_eps:g} (norm_cfg=dict(eps={need_eps:g}))")
        elif isinstance(m, torch.nn.Conv2d) and _padding(m) != "symmetric":
            problems.append(f"{name or 'the model'} pads {_padding(m)}; these weights need symmetric padding ({advice or 'nn.Conv2d'})")
    return problems


# the activations pycls's networks compute, by family: EfficientNet's Swish (x * sigmoid(x); mmcv's
# Swish, torch's SiLU) and its SE gate; every AnyNet's ReLU and SE gate. Anything else (an act_cfg
# of ReLU in an EfficientNet, HSwish, GELU) computes other features from the same weights.
ACTIVATIONS = {"effnet": ("Swish", "SiLU", "Sigmoid"), "anynet": ("ReLU", "Sigmoid")}
_MMCV_ACTIVATIONS = ("Swish", "HSwish", "HSigmoid", "Clamp", "GELU", "Clip")


def _activation(m: torch.nn.Module) -> bool:
    return type(m).__module__.startswith("torch.nn.modules.activation") or type(m).__name__ in _MMCV_ACTIVATIONS


def check_activations(module: torch.nn.Module, variant: Variant) -> list[str]:
    """Where the live model's activations are not pycls's (``ACTIVATIONS``)."""
    allowed = ACTIVATIONS["effnet" if variant.family == "effnet" else "anynet"]
    found = sorted({type(m).__name__ for m in module.modules() if _activation(m)} - set(allowed))
    if not found:
        return []
    need = "dict(type='Swish')" if variant.family == "effnet" else "dict(type='ReLU')"
    return [f"the model computes {', '.join(found)} where pycls's {variant.title} computes {' and '.join(allowed[:-1])} (act_cfg={need})"]


def check_strides(module: torch.nn.Module, table: Layout, variant: Variant) -> list[str]:
    """Where the live model strides another convolution than pycls's: the same keys and shapes,
    other features (mm's ResNet style='caffe' strides the first 1x1, 'pytorch' the 3x3)."""
    want = variant.conv_strides()
    plan = engine.plan(variant, table, registry_for().pycls_layout(variant.family))
    problems = []
    for e in plan.mapped:
        name = e.target.removesuffix(".weight")
        if e.target.endswith(".weight") and e.pycls.endswith(".weight"):
            conv = _submodule(module, name)
            need = want.get(e.pycls.removesuffix(".weight"), 1)
            if isinstance(conv, torch.nn.Conv2d) and conv.stride[0] != need:
                problems.append(f"{name} strides {conv.stride[0]} where pycls's {e.pycls.removesuffix('.weight')} strides {need}"
                                + (f" (style={_style(variant)!r})" if variant.family == "resnet" else ""))
    return problems


def _submodule(module: torch.nn.Module, name: str) -> torch.nn.Module | None:
    try:
        return module.get_submodule(name)
    except AttributeError:
        return None


def _style(variant: Variant) -> str:
    return "caffe" if "stride_1x1" in variant.features else "pytorch"


def _padding(conv: torch.nn.Conv2d) -> str:
    """symmetric: (k - 1) // 2 * dilation on every side, as pycls pads; else what it does."""
    if type(conv).__name__ == "Conv2dAdaptivePadding":  # mmcv's TF-style "same" padding
        return "same (Conv2dAdaptivePadding)"
    want = tuple((k - 1) // 2 * d for k, d in zip(conv.kernel_size, conv.dilation))
    return "symmetric" if conv.padding == want else f"{conv.padding} where pycls pads {want}"


def check_preprocessor(preprocessor: torch.nn.Module, table: Layout, order: str) -> list[str]:
    """The data preprocessor's channel flip, mean and std against what weights taking ``order`` need."""
    need = needed(table.pipeline, order, registry_for().pycls_layout(table.family).pipeline)
    flip = bool(getattr(preprocessor, "_channel_conversion", getattr(preprocessor, "to_rgb", False)))
    mean, std = (getattr(preprocessor, what, None) for what in ("mean", "std"))  # buffers, when it normalizes
    listed = [None if t is None else t.flatten().tolist() for t in (mean, std)]
    problems = []
    for what, have, want in mismatches(need, flip, *listed):
        if what == "flip":
            problems.append(f"the data preprocessor {'reverses' if have else 'keeps'} the channels it loads; these weights take {order.upper()}: set {table.pipeline.flip_flag}={want}")
        else:
            problems.append(f"the data preprocessor's {what} is {have}; these weights need {want}")
    return problems


def _mark_initialized(module: torch.nn.Module) -> None:
    """Children run their own init_weights after this initializer (mmengine runs custom initializers
    first): marked, they keep the loaded weights."""
    for m in module.modules():
        if hasattr(m, "init_weights"):
            m.is_init = True


def load_strictly(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    missing, unexpected = _misfit(module, state_dict)
    if missing or unexpected:
        first = (missing or unexpected)[0]
        raise VerificationError(f"{what} does not fit the model: {len(missing)} missing and {len(unexpected)} unexpected keys (first: {first})",
                                fix="check the backbone's type and arch against the config ckptconv prints, and init_cfg's prefix")
    wrong = [k for k, v in module.state_dict().items() if tuple(v.shape) != tuple(state_dict[k].shape)]
    if wrong:
        raise VerificationError(f"{what} does not fit the model: {wrong[0]} is {tuple(state_dict[wrong[0]].shape)} in the weights, "
                                f"{tuple(module.state_dict()[wrong[0]].shape)} in the model", fix="check the backbone's arch")
    module.load_state_dict(state_dict, strict=True)


def _misfit(module: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    want = set(module.state_dict())
    return sorted(want - set(state_dict)), sorted(set(state_dict) - want)


@WEIGHT_INITIALIZERS.register_module(name="CkptconvPretrained", force=True)
class CkptconvPretrained:
    """``init_cfg=dict(type='CkptconvPretrained', checkpoint=..., layout='mmdet', prefix=None)``.

    ``checkpoint``: a pycls file (converted in memory; ``channel_order`` as for the CLI), a
    ``pycls-*://`` name, or a file ckptconv converted. ``prefix``: where the weights go in the module
    that owns the init_cfg (``'backbone'`` on a detector or classifier: then its data preprocessor
    is checked too). Raises ``VerificationError`` naming the first setting or key that does not fit.
    """

    def __init__(self, checkpoint: str, layout: str | None = None, prefix: str | None = None, channel_order: str | None = None):
        self.checkpoint, self.layout, self.prefix, self.channel_order = str(checkpoint), layout, prefix, channel_order

    def __call__(self, module: torch.nn.Module) -> None:
        state_dict, meta = weights_for(self.checkpoint, self.layout, self.channel_order)
        target = module.get_submodule(self.prefix.rstrip(".")) if self.prefix else module
        table, variant = _table(meta)
        problems = check_modules(target, table, variant) + check_activations(target, variant) + check_strides(target, table, variant)
        preprocessor = getattr(module, "data_preprocessor", None)
        if preprocessor is not None:
            problems += check_preprocessor(preprocessor, table, meta.get("channel_order", "bgr"))
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            raise VerificationError(f"{self.checkpoint}: {problems[0]}{more}", fix="set what the config ckptconv prints sets")
        load_strictly(target, state_dict, self.checkpoint)
        _mark_initialized(target)
