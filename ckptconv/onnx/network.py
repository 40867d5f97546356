"""pycls's network as an ONNX graph: ckptconv's pycls reference model, exported by torch's dynamo
exporter at opset 19.

The graph computes pycls's own function on pycls's own weights: input ``input``, a normalized float32
N x 3 x H x W tensor in pycls's **BGR** order, with dynamic batch, height and width; outputs
``logits`` and, on request, the stage outputs ``stem``, ``s1`` … ``sN`` (what a detector's neck
takes). The exporter's optimizer folds each BatchNorm into its convolution, so the graph holds no
BatchNormalization; onnxruntime runs it within 2.6e-5 of torch, relative to the largest logit
(tests/data/onnx/README.md, "The exported graph on pycls's own inputs"). Another channel order and
the preprocessing of a photo are graphs composed in front of this one (``front.py``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import onnx
import torch
from torch import nn

from ..errors import CkptError, Refused
from ..model.variants import Variant
from ..verification.models import pycls_model
from . import INPUT, LOGITS, MAX_BYTES, OPSET

MIN_SIDE, MAX_SIDE, MAX_BATCH = 32, 4096, 1024  # the dynamic axes' range, as the ground truth exported them


def level_names(variant: Variant) -> tuple[str, ...]:
    """The stage outputs a graph gives on request, in forward order: ``stem``, ``s1`` … ``sN``."""
    return ("stem", *(f"s{n}" for n in range(1, variant.stages + 1)))


class _Outputs(nn.Module):
    """The reference model's ``forward_levels`` as a tuple, in the graph's output order."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        levels = self.model.forward_levels(x)
        return tuple(levels[n] for n in self.names)


@contextlib.contextmanager
def _quiet():
    """The exporter logs and warns about things that do not concern a pycls model (torchvision's
    ops absent, its own deprecations); a library must not write to the terminal."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def check_size(nbytes: int, what: str) -> None:
    """Refuse a graph that one protobuf file cannot hold (ckptconv writes no external data)."""
    if nbytes > MAX_BYTES:
        raise Refused(f"{what} is {nbytes / (1 << 30):.1f} GiB; one ONNX file holds at most 2 GiB and ckptconv writes no external data",
                      fix="convert to another target (--to pycls, timm, torchvision), or export with torch.onnx yourself and save with external data")


def export_network(variant: Variant, state_dict: dict[str, torch.Tensor], levels: bool = False) -> onnx.ModelProto:
    """pycls's network with ``state_dict`` (pycls keys, BGR weights) as an opset-19 graph: input
    ``input`` (N x 3 x H x W, BGR, normalized), outputs ``logits`` (and ``level_names`` if ``levels``)."""
    check_size(sum(t.numel() * t.element_size() for t in state_dict.values()), f"{variant.name}'s weights")
    names = (LOGITS, *level_names(variant)) if levels else (LOGITS,)
    module = _Outputs(pycls_model(variant, state_dict), names).eval()
    example = torch.zeros(2, 3, variant.im_size, variant.im_size)  # batch 2: torch.export specializes a size-1 axis
    dims = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH), 2: torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE),
            3: torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE)}
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(module, (example,), dynamo=True, opset_version=OPSET, input_names=[INPUT],
                                        output_names=list(names), dynamic_shapes={"x": dims}, verbose=False)
    except Exception as e:  # the exporter's own types vary by torch version; its message says what failed
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CkptError(f"torch.onnx.export could not export {variant.name}: {type(e).__name__}: {first[:300]}",
                        fix="report it with the model's numbers (ckptconv inspect); the other targets are unaffected") from e
    return program.model_proto
