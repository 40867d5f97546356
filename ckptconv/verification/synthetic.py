"""pycls-format checkpoints with random weights, for the demo, the tests and the benchmarks.

They are what pycls's trainer writes (``epoch``, ``model_state``, ``optimizer_state`` with SGD
momentum buffers, ``cfg`` as ``cfg.dump()`` YAML, optionally ``ema_state`` and errors), with weights
scaled so activations stay finite and BatchNorm statistics that look trained, so padding and
BN-eps mistakes show up in the outputs. They are not ImageNet models.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..model.variants import Variant


def random_state(variant: Variant, seed: int = 0) -> dict[str, torch.Tensor]:
    """A pycls ``model_state`` for ``variant``: every key and shape of the real model, random weights,
    and BatchNorm statistics measured on a random batch, as training leaves them (so activations
    keep a sane scale through 40-odd blocks instead of blowing up)."""
    sd = _random_weights(variant, seed)
    _calibrate(variant, sd, seed)
    return sd


@torch.no_grad()
def _calibrate(variant: Variant, sd: dict[str, torch.Tensor], seed: int) -> None:
    from . import models

    model = models.build("pycls", variant, models.Build(device="cpu", eps=variant.eps))
    model.load_state_dict(sd, assign=True)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
    model.train()
    gen = torch.Generator().manual_seed(seed + 7)
    model.forward_levels(torch.randn(8, 3, 64, 96, generator=gen))
    for key, value in model.state_dict().items():
        if key.endswith("running_mean"):
            sd[key] = value.detach().clone()
        elif key.endswith("running_var"):  # no near-dead channel amplifies noise a thousandfold
            sd[key] = value.detach().clamp(min=0.1 * value.median().item() + 1e-3)


def _random_weights(variant: Variant, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for spec in variant.pycls_keys:
        name = spec.key.rsplit(".", 1)[-1]
        shape = spec.shape
        if name == "num_batches_tracked":
            sd[spec.key] = torch.tensor(100_000, dtype=torch.int64)
        elif name == "running_mean":
            sd[spec.key] = torch.randn(shape, generator=gen) * 0.2
        elif name == "running_var":
            sd[spec.key] = torch.rand(shape, generator=gen) * 1.5 + 0.05
        elif name == "weight" and len(shape) == 1:  # BN gamma
            sd[spec.key] = 1.0 + torch.randn(shape, generator=gen) * 0.1
        elif name == "bias":
            sd[spec.key] = torch.randn(shape, generator=gen) * 0.05
        else:  # conv / fc weight: He-style scale keeps 50-odd layers finite
            fan_in = math.prod(shape[1:])
            sd[spec.key] = torch.randn(shape, generator=gen) * math.sqrt(1.0 / fan_in)
    return sd


MODEL_TYPE = {"en": "effnet", "regnet": "regnet", "anynet": "anynet"}  # the cfg section of a model's numbers -> MODEL.TYPE
SECTIONS = {"en": "EN", "regnet": "REGNET", "anynet": "ANYNET"}


def _typed(value: Any, default: Any) -> Any:
    """A model's number with the type pycls's default for its key has (1.0, not 1, for a float)."""
    return float(value) if isinstance(default, float) else value


def cfg_yaml(variant: Variant) -> str:
    """The model's part of pycls's ``cfg.dump()``: its numbers under their keys, typed as pycls's
    defaults are, written by PyYAML's ``safe_dump`` as pycls writes it (sorted keys, block lists)."""
    import yaml

    from ..io.pycls_cfg import facts

    section = SECTIONS[variant.section]
    defaults, numbers = facts()["defaults"][section], {}
    for key, value in variant.numbers().items():
        if key == "se_r" and section == "ANYNET":
            numbers |= {"SE_ON": bool(value), "SE_R": float(value or 0.25)}
        elif key != "stride_1x1":  # an AnyNet never strides the 1x1 (models/resnet.py's RESNET.STRIDE_1X1 does)
            numbers[key.upper()] = _typed(value, defaults[key.upper()])
    cfg = {"BN": {"EPS": float(variant.eps)}, section: numbers, "MODEL": {"NUM_CLASSES": variant.num_classes, "TYPE": MODEL_TYPE[variant.section]},
           "TEST": {"IM_SIZE": variant.test_size}, "TRAIN": {"IM_SIZE": variant.im_size}, "NUM_GPUS": 8, "OUT_DIR": "."}
    return yaml.safe_dump(cfg)


def optimizer_state(model_state: dict[str, torch.Tensor], seed: int = 1) -> dict[str, Any]:
    """SGD state as ``torch.optim.SGD.state_dict()`` holds it: one momentum buffer per parameter."""
    gen = torch.Generator().manual_seed(seed)
    params = [k for k in model_state if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    state = {i: {"momentum_buffer": torch.randn(model_state[k].shape, generator=gen) * 1e-3} for i, k in enumerate(params)}
    group = {"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 1e-5, "nesterov": True, "params": list(range(len(params)))}
    return {"state": state, "param_groups": [group]}


def pycls_checkpoint(
    variant: Variant,
    *,
    seed: int = 0,
    optimizer: bool = True,
    ema: bool = False,
    errors: tuple[float, float] | None = None,
    cfg: bool = True,
    epoch: int = 99,
) -> dict[str, Any]:
    """A checkpoint dict as pycls's trainer saves it."""
    ckpt: dict[str, Any] = {"epoch": epoch, "model_state": random_state(variant, seed)}
    if ema:
        ckpt["ema_state"] = random_state(variant, seed + 1000)
    if errors is not None:
        ckpt["test_err"], ckpt["ema_err"] = errors
    if optimizer:
        ckpt["optimizer_state"] = optimizer_state(ckpt["model_state"], seed + 1)
    if cfg:
        ckpt["cfg"] = cfg_yaml(variant)
    return ckpt


def save(obj: Any, path: str | Path, *, legacy: bool = False) -> Path:
    """``torch.save`` in the zip format, or the legacy format of torch < 1.6 (pycls's 2020 zoo)."""
    path = Path(path)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path
