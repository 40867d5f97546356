"""``--to onnx``: a prepared pycls conversion as one ONNX graph, checked in onnxruntime, then published.

The graph computes pycls's own function, so a conversion to ONNX is a conversion to pycls's keys
and BGR weights (every model pycls trains fits its own table) followed by an export: ``as_pycls``
(``ckptconv.onnx``) says so to the conversion's planner, ``export`` makes the stamped graph, ``check`` runs it in
onnxruntime against ckptconv's pycls reference (seeded tensors at every output; for an image graph,
the shipped photos through pycls's own pipeline), and ``snippet`` is what the run prints: a photo
file to pycls's logits in onnxruntime, in a few lines.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
import torch

from ..io.meta import read_meta
from ..io.store import is_url
from ..options import ONNX, Request
from ..serialize import python
from ..verification.report import Report
from . import IMAGE, INPUT, LOGITS, OPSET
from .deploy import Deploy, provenance, pycls_stats, serialize, to_onnx
from .network import level_names
from .provenance import load, read_graph_meta, read_provenance
from .run import check_image_graph, check_tensor_graph

if TYPE_CHECKING:  # the type only, for readers
    from ..conversion import Conversion


def deploy_of(request: Request) -> Deploy:
    """What graph a request asks for: its input, the order of that input, the stage outputs."""
    return Deploy(input=request.onnx_input or "image", channel_order=request.channel_order or "rgb", levels=request.levels)


def provenance_of(c: Conversion) -> dict[str, Any]:
    """The provenance a conversion's graph carries (``c``: a ``Conversion`` to ONNX)."""
    sha = c.source_hash.sha256 if c.source_hash else ""
    return asdict(provenance(c.variant, deploy_of(c.request), pycls_stats(c.variant), c.weight_set, sha))


def floats(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}


def export(c: Conversion) -> bytes:
    """The conversion's weights (pycls keys, BGR) as the serialized graph its request asks for,
    stamped with its provenance and ckptconv's meta."""
    sha = c.source_hash.sha256 if c.source_hash else ""
    model = to_onnx(c.variant, floats(c.tensors), deploy_of(c.request), weights=c.weight_set, source_sha256=sha, meta=c.meta)
    return serialize(model)


def check_graph(c: Conversion) -> Report:
    """The exported graph (``c.graph``) checked: its provenance and meta read back as stamped, and
    with ``--verify numeric`` its numbers (``check_numerics``). Raises ``VerificationError`` on a failure."""
    report = Report(str(c.request.output or ""), c.variant.name, ONNX, "symmetric", c.variant.eps, c.request.input_size, paddable=False)
    model = load(c.graph)  # parsed once for every reader below (a ResNet-50 graph is 100 MB)
    read, (meta, problems) = read_provenance(model), read_graph_meta(model)
    same = read == provenance_of(c) and not problems and meta == read_meta(c.meta)[0]
    report.add("provenance", same, "the graph's metadata_props read back as stamped" if same else "the graph's metadata_props do not read back as stamped")
    if same and c.request.verify == "numeric":
        check_numerics(report, model, c, read["input"])
    report.raise_if_failed()
    return report


def check_numerics(report: Report, model: onnx.ModelProto, c: Conversion, takes: str) -> None:
    """The graph (``takes``: its input, as its provenance says) in onnxruntime against pycls's reference
    on ``c``'s weights: seeded tensors at every output, or, for an image graph, the shipped photos
    through pycls's own pipeline."""
    state = floats(c.tensors)
    graph = check_image_graph(model, c.variant, state, pycls_stats(c.variant)) if takes == "image" else check_tensor_graph(model, c.variant, state)
    report.checks.extend(graph.checks)
    report.levels.extend(graph.levels)


def outputs(variant, levels: bool) -> list[str]:
    return [LOGITS, *level_names(variant)] if levels else [LOGITS]


def snippet(meta: dict[str, Any], output: Path | None, variant, levels: bool) -> str:
    """Python that runs the graph on a photo file with onnxruntime, as its provenance says to feed it."""
    path = python("OUT" if output is None else str(output) if is_url(output) else str(output.resolve()))
    head = (f"# {variant.name} as one ONNX graph (opset {OPSET}), pycls's logits from onnxruntime.\n"
            "# pip install onnxruntime" + (" opencv-python-headless" if meta["input"] == "image" and meta["channel_order"] == "bgr" else " pillow")
            + ("" if meta["input"] == "image" else " ckptconv") + "\n")
    names = python(outputs(variant, levels))
    body = _image_feed(meta) if meta["input"] == "image" else _tensor_feed(meta)
    run = (f"session = ort.InferenceSession({path}, providers=['CPUExecutionProvider'])\n"
           f"outputs = session.run({names}, {{{python(IMAGE if meta['input'] == 'image' else INPUT)}: x}})\n"
           "logits = outputs[0]  # 1 x classes\n"
           "print(logits.argmax(1))\n")
    return head + body + run


def _image_feed(meta: dict[str, Any]) -> str:
    size = f"# any size: the graph resizes the short side to {meta['resize']}, crops {meta['crop']} and normalizes as pycls\n"
    if meta["channel_order"] == "bgr":
        return "import cv2\nimport onnxruntime as ort\n\n" + size + "x = cv2.imread('photo.jpg')  # H x W x 3 uint8, BGR\n"
    return ("import numpy as np\nimport onnxruntime as ort\nfrom PIL import Image\n\n" + size
            + "x = np.asarray(Image.open('photo.jpg').convert('RGB'))  # H x W x 3 uint8, RGB\n")


def _tensor_feed(meta: dict[str, Any]) -> str:
    flip = "x = x.flip(0)  # BGR, as the graph takes it\n" if meta["channel_order"] == "bgr" else ""
    return ("import numpy as np\nimport onnxruntime as ort\nimport torch\nfrom PIL import Image\n"
            "from ckptconv.transforms import PyclsResizeCrop\n\n"
            "x = torch.from_numpy(np.array(Image.open('photo.jpg').convert('RGB'))).permute(2, 0, 1)  # 3 x H x W uint8, RGB\n"
            f"x = PyclsResizeCrop(resize={meta['resize']}, crop={meta['crop']})(x)  # pycls's resize and centre crop, then /255\n"
            + flip +
            f"x = (x - torch.tensor({python(list(meta['mean']))}).view(3, 1, 1)) / torch.tensor({python(list(meta['std']))}).view(3, 1, 1)\n"
            "x = x[None].numpy()  # 1 x 3 x H x W float32; any batch and size the model takes\n")
