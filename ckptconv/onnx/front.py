"""Graphs composed in front of pycls's network (``network.py``, which takes pycls's BGR tensor).

- ``tensor_front``: a normalized float32 N x 3 x H x W tensor in RGB order, its channels reversed
  into pycls's BGR (a Gather: an exact permutation; the network's weights stay pycls's own).
- ``image_front``: a photo's uint8 H x W x 3 pixels, BGR as ``cv2.imread`` gives them or RGB as PIL
  does, any size, through pycls's test preprocessing as ``ImageNet.__getitem__`` does it: float32;
  the short side resized to TEST.IM_SIZE (``Resize`` linear, ``half_pixel``, no antialiasing, the
  long side ``floor((long / short) * R)`` in double, no resize where the short side already is R);
  a centre crop of TRAIN.IM_SIZE at ``ceil((L - C) / 2)``; ``/ 255``; the channels reversed where
  the pixels are RGB; pycls's mean and std in BGR order; a batch axis. The sizes and offsets come
  from the image's own ``Shape``, so one graph takes any size (ckptconv/transforms.py states the
  same steps in torch; onnxruntime's Resize is within 2e-4 normalized units of pycls's cv2).

Every value the front makes is named under ``preprocess/``. Three are steps a check can tap
(``run.py`` adds them as outputs of its own copy): ``RESIZED`` (float32, 0..255, the pixels' own
channel order), ``CROPPED`` (likewise), ``NORMALIZED`` (the network's input). The front follows a
``tables.pipeline.Preprocess``, whose ``geometry`` may also name a library's steps (antialiasing, a
uint8 resize, a crop rounded half to even, another size rule): that is how a check is shown to
catch each of them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..tables.pipeline import Preprocess
from . import IMAGE, INPUT, OPSET

PREFIX = "preprocess/"
RESIZED, CROPPED, NORMALIZED = f"{PREFIX}resized", f"{PREFIX}cropped", f"{PREFIX}input"
TAPS = (RESIZED, CROPPED, NORMALIZED)
BGR_RGB = [2, 1, 0]  # reverses the channel axis


class _Graph:
    """A front under construction: nodes and constants, every value named under ``preprocess/``."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []

    def _name(self, kind: str) -> str:
        return f"{PREFIX}{kind}_{len(self.nodes) + len(self.constants)}"

    def const(self, values, dtype) -> str:
        name = self._name("const")
        self.constants.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        out = out or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def model(self, inputs: list[onnx.ValueInfoProto], output: str, shape: list) -> onnx.ModelProto:
        result = helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)
        graph = helper.make_graph(self.nodes, "preprocess", inputs, [result], initializer=self.constants)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _long_side(g: _Graph, short: str, long: str, resize: int, rule: str) -> str:
    """The resized long side (int64): pycls's ``floor((long / short) * R)`` or a library's
    ``int(R * long / short)``, in double precision as Python computes them."""
    short_d, long_d, r = g.op("Cast", short, to=TensorProto.DOUBLE), g.op("Cast", long, to=TensorProto.DOUBLE), g.const([resize], np.float64)
    value = g.op("Mul", g.op("Div", long_d, short_d), r) if rule == "pycls" else g.op("Div", g.op("Mul", r, long_d), short_d)
    return g.op("Cast", g.op("Floor", value), to=TensorProto.INT64)


def _size(g: _Graph, hw: str, resize: int, rule: str) -> str:
    """(height, width) after the resize, int64 [2], from the image's (height, width): the short side
    to ``resize`` (``rule`` pycls: unchanged where it already is; squash: ``resize`` x ``resize``)."""
    r = g.const([resize], np.int64)
    if rule == "squash":
        return g.op("Concat", r, r, axis=0)
    h, w = g.op("Slice", hw, g.const([0], np.int64), g.const([1], np.int64)), g.op("Slice", hw, g.const([1], np.int64), g.const([2], np.int64))
    short, long = g.op("Min", h, w), g.op("Max", h, w)
    new = _long_side(g, short, long, resize, rule)
    tall = g.op("Less", w, h) if rule == "pycls" else g.op("Greater", h, w)  # pycls: w < h; a library: h > w
    size = g.op("Where", tall, g.op("Concat", new, r, axis=0), g.op("Concat", r, new, axis=0))
    return g.op("Where", g.op("Equal", short, r), hw, size) if rule == "pycls" else size


def _offsets(g: _Graph, size: str, crop: int, rule: str) -> str:
    """(y, x) of the centre crop, int64 [2]: ``ceil((L - C) / 2)`` (pycls) or half to even (``round``)."""
    margin = g.op("Sub", size, g.const([crop, crop], np.int64))
    if rule == "ceil":  # margins are never negative: the short side is resized to R >= C
        return g.op("Div", g.op("Add", margin, g.const([1, 1], np.int64)), g.const([2, 2], np.int64))
    half = g.op("Div", g.op("Cast", margin, to=TensorProto.DOUBLE), g.const([2.0, 2.0], np.float64))
    return g.op("Cast", g.op("Round", half), to=TensorProto.INT64)  # ONNX Round: half to even


def _normalize(g: _Graph, x: str, pre: Preprocess) -> str:
    """``/ 255`` (mean and std in 0..1 units), the channels reversed if ``pre.flip``, then
    ``(x - mean) / std``: pycls's ``color_norm``, all in float32."""
    x = g.op("Div", x, g.const(255.0, np.float32)) if pre.scale == 1 else x
    x = g.op("Gather", x, g.const(BGR_RGB, np.int64), axis=1) if pre.flip else x
    x = g.op("Sub", x, g.const(np.reshape(pre.mean, (1, 3, 1, 1)), np.float32))
    return g.op("Div", x, g.const(np.reshape(pre.std, (1, 3, 1, 1)), np.float32), out=NORMALIZED)


def image_front(pre: Preprocess, resize: int, crop: int) -> onnx.ModelProto:
    """uint8 H x W x 3 pixels in, ``NORMALIZED`` (1 x 3 x crop x crop, the order ``pre.feeds``)
    out: ``pre``'s resize (short side to ``resize``), centre crop and normalization."""
    if not 0 < crop <= resize:
        raise ValueError(f"crop {crop} must be positive and at most resize {resize}")
    geometry, g = pre.geometry, _Graph()
    hw = g.op("Slice", g.op("Shape", IMAGE), g.const([0], np.int64), g.const([2], np.int64))
    size = _size(g, hw, resize, geometry.size)
    x = g.op("Unsqueeze", g.op("Transpose", IMAGE, perm=[2, 0, 1]), g.const([0], np.int64))
    x = g.op("Cast", x, to=TensorProto.FLOAT) if geometry.pixels == "float32" else x
    x = g.op("Resize", x, "", "", g.op("Concat", g.const([1, 3], np.int64), size, axis=0), mode="linear",
             coordinate_transformation_mode="half_pixel", antialias=int(geometry.resampler == "antialias"))
    x = g.op("Cast", x, to=TensorProto.FLOAT, out=RESIZED) if geometry.pixels == "uint8" else g.op("Identity", x, out=RESIZED)
    start = _offsets(g, size, crop, geometry.crop)
    x = g.op("Slice", x, start, g.op("Add", start, g.const([crop, crop], np.int64)), g.const([2, 3], np.int64), out=CROPPED)
    image = helper.make_tensor_value_info(IMAGE, TensorProto.UINT8, ["height", "width", 3])
    return g.model([image], _normalize(g, x, pre), [1, 3, crop, crop])


def tensor_front() -> onnx.ModelProto:
    """An RGB N x 3 x H x W tensor in, the same in pycls's BGR order out (``NORMALIZED``)."""
    g = _Graph()
    out = g.op("Gather", INPUT, g.const(BGR_RGB, np.int64), axis=1, out=NORMALIZED)
    shape = ["batch", 3, "height", "width"]
    return g.model([helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, shape)], out, shape)


def compose(front: onnx.ModelProto, network: onnx.ModelProto) -> onnx.ModelProto:
    """One graph: ``front``'s output feeds the network's ``input``; the network's outputs stay."""
    front = onnx.ModelProto.FromString(front.SerializeToString())
    front.ir_version = network.ir_version  # merge_models asks for one IR version
    model = onnx.compose.merge_models(front, network, io_map=[(NORMALIZED, INPUT)], producer_name=network.producer_name,
                                      producer_version=network.producer_version)
    opsets = {(o.domain, o.version) for o in model.opset_import}  # both import opset 19: keep one entry
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(opsets))
    return model
