"""One ONNX graph of a pycls model, top to bottom: export pycls's network (``network.py``), compose
the front its input needs (``front.py``), stamp the provenance (``provenance.py``), check its size.

What is made is asked with one frozen ``Deploy``: the input (a normalized tensor, or a photo's
pixels), its channel order, and whether the stage outputs are outputs too. Nothing here writes a
file: the caller publishes the bytes through ckptconv's writer.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import torch

from ..model.variants import Variant
from ..options import ORDERS, ChannelOrder, choice
from ..tables.pipeline import Pipeline, Preprocess, needed
from ..tables.registry import registry_for
from .front import compose, image_front, tensor_front
from .network import check_size, export_network
from .provenance import INPUTS, Provenance, stamp


@dataclass(frozen=True, kw_only=True)
class Deploy:
    """What graph to make. ``input``: ``tensor`` (normalized float32 N x 3 x H x W) or ``image``
    (uint8 H x W x 3 pixels, preprocessed inside the graph); ``channel_order``: the order of that
    input (for pixels: ``bgr`` as cv2.imread reads, ``rgb`` as PIL); ``levels``: the stage outputs
    ``stem``, ``s1`` … ``sN`` as outputs too, after ``logits``."""

    input: str = "tensor"
    channel_order: ChannelOrder = "rgb"
    levels: bool = False

    def check(self) -> None:
        choice(self.input, INPUTS, "ONNX input")
        choice(self.channel_order, ORDERS, "--channel-order")


def pycls_stats(variant: Variant) -> Pipeline:
    """pycls's own pipeline (its mean and std, BGR order), from the model family's pycls table."""
    return registry_for().pycls_layout(variant.family).pipeline


def image_preprocess(pixels: str, stats: Pipeline) -> Preprocess:
    """What an image graph does to pixels in order ``pixels`` for pycls's BGR network: reverse them
    unless they are BGR, then pycls's mean and std (BGR order, 0..1 units), pycls's geometry."""
    return needed(Pipeline(reads=pixels, scale=1, flip_flag=""), "bgr", stats)


def with_front(network: onnx.ModelProto, variant: Variant, deploy: Deploy, stats: Pipeline) -> onnx.ModelProto:
    """The exported network with the front ``deploy`` asks for (none for a BGR tensor)."""
    if deploy.input == "image":
        return compose(image_front(image_preprocess(deploy.channel_order, stats), variant.test_size, variant.im_size), network)
    return compose(tensor_front(), network) if deploy.channel_order == "rgb" else network


def provenance(variant: Variant, deploy: Deploy, stats: Pipeline, weights: str, source_sha256: str) -> Provenance:
    """The graph's provenance: mean and std in the order of its input, 0..1 units."""
    pre = needed(Pipeline(reads=deploy.channel_order, scale=1, flip_flag=""), deploy.channel_order, stats)
    return Provenance(arch=variant.name, weights=weights, source_sha256=source_sha256, channel_order=deploy.channel_order,
                      input=deploy.input, resize=variant.test_size, crop=variant.im_size, mean=pre.mean, std=pre.std)


def to_onnx(variant: Variant, state_dict: dict[str, torch.Tensor], deploy: Deploy = Deploy(), *, weights: str = "model",
            source_sha256: str = "", stats: Pipeline | None = None, meta: dict | None = None) -> onnx.ModelProto:
    """pycls's model (``state_dict``: pycls keys, pycls's BGR weights) as the ONNX graph ``deploy``
    asks for, its provenance stamped (``weights``: the set converted; ``source_sha256``: the source
    file's; ``meta``: ckptconv's meta of the conversion, carried beside it)."""
    deploy.check()
    stats = stats or pycls_stats(variant)
    model = with_front(export_network(variant, state_dict, deploy.levels), variant, deploy, stats)
    return stamp(model, provenance(variant, deploy, stats, weights, source_sha256), meta)


def serialize(model: onnx.ModelProto) -> bytes:
    """The graph as the bytes of one .onnx file; refused beyond protobuf's 2 GiB."""
    check_size(model.ByteSize(), "the ONNX graph")
    return model.SerializeToString()
