"""onnxruntime: an image graph fed a photo's pixels, decoded as pycls decodes them, in the order its
metadata_props record; the network's input is the graph's own (the normalized tap ckptconv's
preprocessing computes), its logits its output."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from .images import pycls_decode
from .proof import LOGITS, Ran


@dataclass
class Graph:
    library: str
    version: str
    how: str
    session: Any
    pixels: str  # the order the graph takes its pixels in

    def run(self, path: Path) -> Ran:
        from ..onnx import LOGITS as GRAPH_LOGITS
        from ..onnx.front import NORMALIZED
        from ..onnx.run import outputs

        bgr = pycls_decode(path)
        pixels = bgr if self.pixels == "bgr" else bgr.flip(0)
        got = outputs(self.session, pixels.permute(1, 2, 0).contiguous().numpy())
        return Ran(bgr.flip(0), torch.from_numpy(got[NORMALIZED][0]), {LOGITS: torch.from_numpy(got[GRAPH_LOGITS])})


def onnxruntime(model, pixels: str, where: Path) -> Graph:
    """A session of the graph (``model``: its parsed ModelProto) with the normalized tap as an output."""
    from ..onnx.front import NORMALIZED
    from ..onnx.run import session

    return Graph("onnxruntime", version("onnxruntime"), f"onnxruntime.InferenceSession({where.name}) on the CPU", session(model, (NORMALIZED,)), pixels)


def check_graph(report, model, read: dict[str, Any], c, *, opts, path: Path) -> None:
    """``verify FILE.onnx --source IN --in-library``: an image graph in the onnxruntime installed here, on photos."""
    from ..onnx.deploy import pycls_stats
    from ..onnx.target import floats
    from . import run_in_library
    from .images import image_set
    from .proof import Side

    if read["input"] != "image":
        report.not_checked.append("in-library: not checked: a tensor graph takes no photo (the checks above ran it in onnxruntime on seeded tensors)")
        return
    from .verdict import recorded_error

    side = Side(c.variant, floats(c.tensors), "bgr", pycls_stats(c.variant))
    run_in_library(report, lambda: onnxruntime(model, read["channel_order"], path), "onnxruntime", side, image_set(opts.images, opts.labels),
                   recorded_error(c.meta))
