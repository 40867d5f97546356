"""Everything about dtypes, in one place: names, torch dtypes, safetensors codes, sizes, casting.

A dtype is named as torch prints it without ``torch.`` (``float32``, ``bfloat16``, ``int64``).
``--dtype`` takes a short choice (``keep``, ``fp16``, ``bf16``, ``fp32``). torch is imported only
by the functions that take tensors, so the torch-free commands (``inspect`` of a safetensors
header, ``mappings``) can use the tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import MappingError, UsageError

if TYPE_CHECKING:
    import torch

# --dtype choice -> dtype name (None: keep the source's)
CHOICES = {"keep": None, "fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
# dtype name -> (safetensors code, bytes per element)
TABLE = {
    "float64": ("F64", 8), "float32": ("F32", 4), "float16": ("F16", 2), "bfloat16": ("BF16", 2),
    "int64": ("I64", 8), "int32": ("I32", 4), "int16": ("I16", 2), "int8": ("I8", 1),
    "uint8": ("U8", 1), "bool": ("BOOL", 1),
}
FLOATS = ("float64", "float32", "float16", "bfloat16")  # what a converted weight may be
FROM_SAFETENSORS = {code: name for name, (code, _) in TABLE.items()}
FP16_MAX = 65504.0


def name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``float32``."""
    return str(dtype).removeprefix("torch.")


def shapes_of(state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape, dtype name): what detection and the tables match a state dict by."""
    return {k: (tuple(v.shape), name(v.dtype)) for k, v in state_dict.items()}


def itemsize(dtype_name: str) -> int:
    return TABLE[dtype_name][1] if dtype_name in TABLE else 4


def safetensors_code(dtype: torch.dtype) -> str | None:
    entry = TABLE.get(name(dtype))
    return entry[0] if entry else None


def to_torch(dtype_name: str) -> torch.dtype:
    import torch

    return getattr(torch, dtype_name)


def choose(requested: str, floats: set[str]) -> str:
    """The dtype of the output's floating tensors: the ``--dtype`` choice, or the source's one dtype."""
    if requested not in CHOICES:
        raise UsageError(f"unknown --dtype {requested!r}", fix=f"use one of {', '.join(CHOICES)}")
    if CHOICES[requested]:
        return CHOICES[requested]
    if len(floats) > 1:
        raise MappingError(f"the weights mix floating dtypes {sorted(floats)}", fix="pass --dtype fp16, bf16 or fp32")
    dtype = floats.pop() if floats else "float32"
    if dtype not in FLOATS:
        raise MappingError(f"the weights are {dtype}, which ckptconv does not write", fix="pass --dtype fp16, bf16 or fp32")
    return dtype


def floats_of(state_dict: dict[str, torch.Tensor]) -> set[str]:
    return {name(t.dtype) for t in state_dict.values() if t.is_floating_point()}


def statistics_problem(key: str, tensor: torch.Tensor) -> str | None:
    """What is wrong with a BatchNorm statistic, if anything: a running_mean or running_var that is
    not finite, or a negative running_var, computes garbage with no error anywhere."""
    import torch

    if key.endswith(("running_var", "running_mean")) and tensor.is_floating_point():
        if not torch.isfinite(tensor).all():
            return f"{key} holds NaN or Inf: BatchNorm statistics no training writes"
        if key.endswith("running_var") and (tensor < 0).any():
            return f"{key} holds negative variances (min {tensor.min().item():g}): BatchNorm statistics no training writes"
    return None


def cast(tensor: torch.Tensor, dtype_name: str) -> torch.Tensor:
    """The tensor the output holds for a source tensor: floating tensors cast, integers untouched."""
    target = to_torch(dtype_name)
    return tensor.to(target) if tensor.is_floating_point() and tensor.dtype != target else tensor


def check_cast(key: str, tensor: torch.Tensor, dtype_name: str) -> None:
    """Refuse a cast that would change a value beyond rounding: overflow to Inf, or NaN/Inf in the source."""
    import torch

    if not tensor.is_floating_point() or name(tensor.dtype) == dtype_name:
        return
    if not torch.isfinite(tensor).all():
        raise MappingError(f"{key}: the source holds NaN or Inf; refusing to cast to {dtype_name}", fix="fix the checkpoint or use --dtype keep")
    if dtype_name == "float16":
        peak = tensor.abs().max().item() if tensor.numel() else 0.0
        if peak > FP16_MAX:
            raise MappingError(
                f"{key}: values up to {peak:.6g} overflow float16 (max {FP16_MAX:g})",
                fix="use --dtype bf16 (same range as float32) or keep",
            )
