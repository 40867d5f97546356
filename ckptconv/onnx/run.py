"""Running a ckptconv ONNX graph in onnxruntime and holding it to ckptconv's pycls reference.

- A tensor graph: seeded tensors (batch 1 and 4 at TRAIN.IM_SIZE, batch 2 at an odd, non-square
  size) at every output it has (``logits``, and ``stem``, ``s1`` … ``sN`` when exported), against the
  reference model's ``forward_levels`` on the same tensor in BGR order.
- An image graph: photos (the shipped ones by default) as uint8 pixels in the order the graph
  records, against pycls's own pipeline (``ckptconv.transforms``: cv2's float32 bilinear resize,
  the ceil crop, /255, BGR mean and std) and the reference model on that input. Where it fails, the
  check names the first step that is wrong, from the graph's own intermediate values (``front.TAPS``,
  added as outputs of the checked copy only): the resize size, its interpolation (antialiasing, a
  uint8 resize), the crop offset, the channel order, the mean and std, or else the network.

onnxruntime runs on the CPU with ``THREADS`` intra-op threads: the ground truth found 1 and 2
threads bit-identical, and a fixed count keeps a check repeatable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from ..errors import VerificationError
from ..model.variants import Variant
from ..tables.pipeline import Pipeline, Preprocess
from ..transforms import crop_offsets, pycls_size, resize_linear
from ..verification.checks import make_input
from ..verification.halves import INPUT_TOLERANCE, LOGITS_TOLERANCE, Reference, level, normalized, pycls_input, rejudged, within
from ..verification.photo import photos
from ..verification.report import Check, Level
from . import LOGITS
from .deploy import image_preprocess
from .front import CROPPED, NORMALIZED, RESIZED, TAPS
from .provenance import load, read_provenance

THREADS = 1
Image = tuple[str, torch.Tensor]  # (name, 3 x H x W uint8 RGB), as verification.photo.photos() gives them


@dataclass
class GraphCheck:
    """What a graph check found: each output compared (``Level``) and the verdict (``Check``)."""

    levels: list[Level] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failure(self) -> str | None:
        return next((c.detail for c in self.checks if not c.ok), None)


def session(data: bytes | onnx.ModelProto, taps: tuple[str, ...] = ()) -> ort.InferenceSession:
    """An onnxruntime CPU session of the graph, with the values ``taps`` names as outputs too."""
    model = load(data)
    if taps:
        made = {o for node in model.graph.node for o in node.output}
        absent = [t for t in taps if t not in made]
        if absent:
            raise VerificationError(f"the graph computes no {', '.join(absent)}: its preprocessing is not the one ckptconv builds",
                                    fix="convert the source again with ckptconv convert IN model.onnx --to onnx")
        model = onnx.ModelProto.FromString(model.SerializeToString())
        model.graph.output.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in taps)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = THREADS, 1, 3
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types; its message says what it refused
        raise VerificationError(f"onnxruntime cannot load the graph: {str(e).strip()[:300]}", fix="convert the source again") from e


def outputs(sess: ort.InferenceSession, feed: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the session on its one input."""
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: feed})))


def _in_order(x: torch.Tensor, order: str) -> np.ndarray:
    """A BGR N x 3 x H x W tensor as a graph taking ``order`` is fed."""
    return (x if order == "bgr" else x.flip(1)).contiguous().numpy()


def tensor_cases(variant: Variant) -> list[tuple[int, int, int]]:
    """(batch, height, width) of the seeded tensors: 1 and 4 at TRAIN.IM_SIZE, 2 at an odd, non-square size."""
    c = variant.im_size
    return [(1, c, c), (4, c, c), (2, c + 7, c + 41)]


def _tensor_failure(sess: ort.InferenceSession, order: str, x: torch.Tensor, want: dict, bad: Level) -> str:
    """Which output differs first, in forward order, and whether the graph takes the other channel order."""
    detail = f"{bad.name}: {bad.point} differs from pycls's by {bad.max_rel:.3g} relative to its largest value (tolerance {LOGITS_TOLERANCE:g})"
    detail += f"; the difference starts at {bad.point}" if bad.point != LOGITS else ""
    other = "rgb" if order == "bgr" else "bgr"
    if level(bad.name, LOGITS, outputs(sess, _in_order(x, other))[LOGITS], want[LOGITS], LOGITS_TOLERANCE).ok:
        detail += f": the graph takes {other.upper()} input, not {order.upper()} as its metadata_props say"
    return detail


@torch.inference_mode()
def check_tensor_graph(data: bytes | onnx.ModelProto, variant: Variant, state_dict: dict[str, torch.Tensor]) -> GraphCheck:
    """A tensor graph against pycls's model (``state_dict``: pycls keys, BGR weights) on seeded
    tensors, at every output, each within ``LOGITS_TOLERANCE`` relative to its largest value (or
    ``SLACK`` times pycls's own float32 error, where that is larger: ``Reference``)."""
    order, sess = read_provenance(data)["channel_order"], session(data)
    reference, result, worst_own = Reference(variant, state_dict), GraphCheck(), 0.0
    for batch, h, w in tensor_cases(variant):
        x = make_input((h, w), batch)
        got, want = outputs(sess, _in_order(x, order)), reference(x)
        unknown = [n for n in got if n not in want] + [LOGITS] * (LOGITS not in got)
        if unknown:
            result.checks.append(Check("onnx tensor graph", False, f"the graph's outputs are not pycls's model's: {', '.join(unknown)}"))
            return result
        names = [n for n in got if n != LOGITS] + [LOGITS]  # forward order: a difference shows where it starts
        levels = [level(f"batch {batch} at {h}x{w}", n, got[n], want[n], LOGITS_TOLERANCE) for n in names]
        if not all(lv.ok for lv in levels):
            levels, own = rejudged(levels, got, want, reference, x)
            worst_own = max(worst_own, own)
        result.levels += levels
        bad = next((lv for lv in levels if not lv.ok), None)
        if bad is not None:
            result.checks.append(Check("onnx tensor graph", False, _tensor_failure(sess, order, x, want, bad)))
            return result
    worst = max(lv.max_rel for lv in result.levels)
    points = ", ".join(dict.fromkeys(lv.point for lv in result.levels))
    result.checks.append(Check("onnx tensor graph", True, f"{len(tensor_cases(variant))} seeded tensors (batch 1, 4 and 2) at {points}, each output "
                               + within(worst, worst_own)))
    return result


def _crop_at(cropped: torch.Tensor, resized: torch.Tensor, near: tuple[int, int], reach: int = 4) -> str:
    """Where in the resized image the graph's crop was taken, searched near pycls's offset."""
    crop, (h, w) = cropped.shape[-1], resized.shape[-2:]
    for y in range(max(0, near[0] - reach), min(h - crop, near[0] + reach) + 1):
        for x in range(max(0, near[1] - reach), min(w - crop, near[1] + reach) + 1):
            if torch.equal(cropped, resized[:, y : y + crop, x : x + crop]):
                return f"({y}, {x})"
    return f"no window within {reach} pixels of pycls's"


def _geometry_step(got: dict, image: torch.Tensor, resize: int, crop: int, std: tuple) -> str | None:
    """The first wrong geometric step (resize size, interpolation, crop offset), from the graph's own
    resized and cropped image; ``image`` is 3 x H x W float32 in the pixels' order, 0..255."""
    (h, w), size = image.shape[-2:], pycls_size(image.shape[-2], image.shape[-1], resize)
    resized = torch.from_numpy(got[RESIZED][0])
    if tuple(resized.shape[-2:]) != size:
        return (f"resize size: the graph resizes {h}x{w} to {resized.shape[-2]}x{resized.shape[-1]}; pycls to {size[0]}x{size[1]} (the short side "
                f"to {resize}, the long side floor((long / short) * {resize}), no resize where the short side is {resize})")
    want = resize_linear(image, size) if size != (h, w) else image
    off = (resized - want).abs().max().item() / (255 * min(std))
    if off > INPUT_TOLERANCE:
        uint8 = torch.equal(resized, resized.round()) and not torch.equal(want, want.round())
        how = "it resizes uint8 pixels (pycls resizes float32)" if uint8 else "antialiasing or another interpolation (pycls: bilinear, half-pixel centres, no antialiasing)"
        return f"resize interpolation: the resized image differs from pycls's by {off:.3g} normalized units: {how}"
    y, x = crop_offsets(*size, crop)
    cropped = torch.from_numpy(got[CROPPED][0])
    if cropped.shape != (3, crop, crop) or not torch.equal(cropped, resized[:, y : y + crop, x : x + crop]):
        found = _crop_at(cropped, resized, (y, x)) if cropped.shape == (3, crop, crop) else f"a {tuple(cropped.shape[-2:])} window"
        return f"crop offset: the graph crops {crop}x{crop} at (y, x) = {found}; pycls at ceil((L - C) / 2) = ({y}, {x})"
    return None


def _colour_step(got: dict, pixels: str, pre: Preprocess) -> str | None:
    """The first wrong colour step (channel order, mean and std), from the graph's own crop."""
    x, have = torch.from_numpy(got[CROPPED][0]) / 255.0, torch.from_numpy(got[NORMALIZED][0])
    bgr, rgb = (pre.mean, pre.std), (pre.mean[::-1], pre.std[::-1])
    flip = "reverses" if not pre.flip else "does not reverse"
    order = f"channel order: the graph {flip} {pixels.upper()} pixels, so the network gets RGB; pycls's network takes BGR"
    stats = f"mean and std: the graph normalizes with mean {list(rgb[0])}, std {list(rgb[1])} (RGB order); pycls's are {list(bgr[0])}, {list(bgr[1])} (BGR)"
    for flipped, (mean, std), words in ((pre.flip, bgr, None), (not pre.flip, bgr, order), (pre.flip, rgb, stats), (not pre.flip, rgb, f"{order}; and {stats}")):
        if (normalized(x.flip(0) if flipped else x, mean, std) - have).abs().max().item() <= INPUT_TOLERANCE:
            return words
    return f"normalization: the network's input is not (x / 255 - mean) / std with pycls's BGR mean {list(pre.mean)} and std {list(pre.std)}"


def _image_failure(got: dict, rgb: torch.Tensor, pixels: str, variant: Variant, pre: Preprocess, levels: list[Level]) -> str:
    """The first step of the image graph that is wrong, in words."""
    image = (rgb if pixels == "rgb" else rgb.flip(0)).to(torch.float32)
    step = _geometry_step(got, image, variant.test_size, variant.im_size, pre.std) or _colour_step(got, pixels, pre)
    if step is None and not levels[0].ok:
        step = f"preprocessing: the network's input differs from pycls's by {levels[0].max_abs:.3g} normalized units"
    logits = levels[1]
    return (step or "network: on pycls's own input") + f"; logits {logits.max_rel:.3g} off relative to the largest (tolerance {LOGITS_TOLERANCE:g})"


@torch.inference_mode()
def check_image_graph(data: bytes | onnx.ModelProto, variant: Variant, state_dict: dict[str, torch.Tensor], stats: Pipeline,
                      images: Iterable[Image] | None = None) -> GraphCheck:
    """An image graph on photos (``images``: (name, 3 x H x W uint8 RGB); the shipped photos by
    default) fed as pixels in the order it records, against pycls's pipeline and model, one half at
    a time: the input the graph makes within ``INPUT_TOLERANCE`` of pycls's (every wrong
    preprocessing the ground truth tried is at least 13x that off), and the graph's logits within
    ``LOGITS_TOLERANCE`` of pycls's model on that same input (or ``SLACK`` times pycls's own float32
    error, where that is larger), so a model that amplifies its input's last digits is no false
    alarm. A failure names the step."""
    pixels, sess = read_provenance(data)["channel_order"], session(data, TAPS)
    reference, result, worst_own = Reference(variant, state_dict), GraphCheck(), 0.0
    pre, pycls = image_preprocess(pixels, stats), image_preprocess("bgr", stats)
    for name, rgb in images if images is not None else photos():
        got = outputs(sess, (rgb if pixels == "rgb" else rgb.flip(0)).permute(1, 2, 0).contiguous().numpy())
        x, fed = pycls_input(rgb.flip(0), variant.test_size, variant.im_size, pycls), torch.from_numpy(got[NORMALIZED])
        want = reference(fed)  # the network judged alone, on the input the graph made: the input is judged against pycls's
        levels = [level(name, "input", got[NORMALIZED], x, INPUT_TOLERANCE, relative=False), level(name, LOGITS, got[LOGITS], want[LOGITS], LOGITS_TOLERANCE)]
        if levels[0].ok and not levels[1].ok:  # the preprocessing is pycls's: is the network's difference float32's own?
            (levels[1],), own = rejudged(levels[1:], got, want, reference, fed)
            worst_own = max(worst_own, own)
        result.levels += levels
        if not all(lv.ok for lv in levels):
            result.checks.append(Check("onnx image graph", False, f"{name}: {_image_failure(got, rgb, pixels, variant, pre, levels)}"))
            return result
    inputs, logits = result.levels[0::2], result.levels[1::2]
    result.checks.append(Check("onnx image graph", True, f"{len(logits)} photos as {pixels.upper()} pixels give pycls's input within {INPUT_TOLERANCE:g} "
                               f"normalized units ({max(lv.max_abs for lv in inputs):.2g} at most), and on it the graph's network gives logits "
                               + within(max(lv.max_rel for lv in logits), worst_own)))
    return result
