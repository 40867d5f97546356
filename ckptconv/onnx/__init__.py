"""ONNX graphs of pycls models, proven in onnxruntime (issue 31).

A graph computes pycls's own function: ckptconv's pycls reference model on the checkpoint's weights,
exported by torch's dynamo exporter at opset 19 (``network.py``), so every model pycls trains can be
exported, with nothing refused for want of a library class. Its input is one of
- ``tensor``: a normalized float32 N x 3 x H x W tensor (dynamic batch, height and width), in BGR
  (pycls's own order) or RGB (the channels reversed by a Gather in front of the network);
- ``image``: a photo's uint8 H x W x 3 pixels of any size, BGR as ``cv2.imread`` gives them or RGB
  as PIL does, with pycls's test-time resize, crop and normalization inside the graph (``front.py``).
Outputs: ``logits``, and on request the stage outputs ``stem``, ``s1`` … ``sN``. The provenance
(source sha256, weight set, model, channel order, input, preprocessing, opset, ckptconv version)
rides in ``metadata_props`` (``provenance.py``); ``run.py`` runs a graph in onnxruntime against the
reference and names the step that is wrong.

Needs the ``onnx`` extra (onnx, onnxscript, onnxruntime). This module imports none of them until a
name below is used, so ``missing_packages()`` can be asked first.
"""

from __future__ import annotations

import importlib
import importlib.util

EXTRA = "onnx"  # pip install 'ckptconv[onnx]'
PACKAGES = ("onnx", "onnxscript", "onnxruntime")
# the graphs' names and limits, here so that reading a graph (provenance.py) never imports torch
OPSET = 19
INPUT = "input"  # the network's input: pycls's normalized BGR tensor (a tensor graph's, in its channel order)
IMAGE = "image"  # an image graph's input: uint8 H x W x 3
LOGITS = "logits"
MAX_BYTES = (1 << 31) - 1  # protobuf's limit for one message: a larger graph needs external data

_PUBLIC = {
    "Deploy": "deploy", "to_onnx": "deploy", "serialize": "deploy", "with_front": "deploy", "image_preprocess": "deploy",
    "pycls_stats": "deploy", "export_network": "network", "level_names": "network", "image_front": "front",
    "tensor_front": "front", "compose": "front", "Provenance": "provenance", "read_provenance": "provenance",
    "stamp": "provenance", "session": "run", "outputs": "run", "check_tensor_graph": "run", "check_image_graph": "run",
    "pycls_input": "run", "GraphCheck": "run", "LOGITS_TOLERANCE": "run", "INPUT_TOLERANCE": "run",
}
__all__ = ["EXTRA", "PACKAGES", "as_pycls", "graph_meta", "graph_options", "missing_packages", *_PUBLIC]


def as_pycls(request):
    """The conversion a graph is exported from: pycls's keys and BGR weights, in float32 (torch-free)."""
    from dataclasses import replace

    from ..options import PYCLS

    return replace(request, layout=PYCLS, channel_order="bgr", dtype="fp32" if request.dtype == "keep" else request.dtype)


def graph_options(request) -> dict:
    """What a graph's bytes depend on beyond its pycls conversion's options (the meta's ``options``)."""
    return {"layout": "onnx", "channel_order": request.channel_order or "rgb", "input": request.onnx_input or "image", "levels": request.levels}


def graph_meta(meta: dict, request) -> dict:
    """The meta of the pycls conversion a graph is exported from, as the graph's: what it is, what it takes."""
    options = graph_options(request)
    settings = {**meta.get("settings", {}), "channel_order": options["channel_order"]}
    out = {k: v for k, v in meta.items() if k not in ("tensors_crc", "prefix")}
    return {**out, "layout": "onnx", "channel_order": options["channel_order"], "settings": settings, "options": {**meta["options"], **options}}


def missing_packages() -> list[str]:
    """The packages of the ``onnx`` extra that are not installed (none imported)."""
    return [p for p in PACKAGES if importlib.util.find_spec(p) is None]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
