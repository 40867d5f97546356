"""What a library's pipeline must do to an image file for a set of weights: geometry (resize and
crop), colour order and normalization.

pycls networks take **BGR** input: pycls reads images with OpenCV and never converts them, and
normalizes with ImageNet's mean and std in BGR order, after dividing by 255. Every target's stock
pipeline feeds RGB. A conversion therefore writes weights for one channel order (``rgb`` by
default: the stem conv's input channels reversed, so the stock pipeline computes what pycls
computed) and says what the pipeline must do: reverse channels or not, with which mean and std.

A table's ``[pipeline]`` says how its library turns an image file into the network's input: the
order its loader reads (mmcv: BGR; PIL: RGB), the units of its mean/std (255 for mmengine's data
preprocessors, 1 after ToTensor), and the config flag that reverses channels (``bgr_to_rgb``,
``to_rgb``), if any; ``[pipeline.stock]`` says how the library's own transforms resize and crop
(``Geometry``), where they are not pycls's. torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..options import GEOMETRY, ORDERS, PYCLS, PYCLS_GEOMETRY, Geometry

INPUT_CONV = "stem.conv.weight"  # the pycls key of the first convolution: the one that sees colours


STEP_WORDS = {
    ("size", "library"): "its resize computes the long side as int(R * long / short) (pycls: floor((long / short) * R))",
    ("size", "squash"): "it squashes the image to R x R (timm's crop_mode='squash'; pycls keeps the aspect ratio)",
    ("resampler", "antialias"): "its resize antialiases (pycls: cv2's bilinear, none)",
    ("pixels", "uint8"): "it resizes uint8 pixels (pycls resizes float32: LoadImageFromFile(to_float32=True))",
    ("crop", "round"): "its centre crop rounds the offset half to even (pycls: ceil((L - C) / 2))",
    ("crop", "floor"): "its centre crop floors the offset, int((L - C) / 2) (pycls: ceil((L - C) / 2))",
}


def steps_off(g: Geometry) -> list[str]:
    """What a pipeline's geometry does otherwise than pycls, in words."""
    return [STEP_WORDS[f.name, getattr(g, f.name)] for f in fields(g) if getattr(g, f.name) != GEOMETRY[f.name][0]]


@dataclass(frozen=True)
class Pipeline:
    """How a library turns an image file into a network's input (a table's ``[pipeline]``)."""

    reads: str  # rgb | bgr: what its image loader gives
    scale: float  # 255: mean/std in pixel values; 1: after dividing by 255
    flip_flag: str  # the config flag that reverses channels before normalizing ("" if there is none)
    mean: tuple[float, float, float] | None = None  # pycls's table only: the stats pycls trained with
    std: tuple[float, float, float] | None = None
    order: str = "rgb"  # the order of mean/std above
    stock: Geometry = PYCLS_GEOMETRY  # how the library's own transforms resize and crop
    sizes: str = "pycls"  # pycls: the printed pipeline resizes and crops as pycls tests; own: a detector's, to its own scale


@dataclass(frozen=True)
class Preprocess:
    """What a pipeline does to an image file: resize and crop (``geometry``), reverse channels or
    not, then (x - mean) / std in its own units. ``feeds`` is the channel order the network then sees."""

    flip: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float
    feeds: str
    geometry: Geometry = field(default=PYCLS_GEOMETRY)

    def config(self) -> dict[str, object]:
        return {"flip": self.flip, "mean": [round(m, 4) for m in self.mean], "std": [round(s, 4) for s in self.std]}


def in_order(values: tuple[float, ...], have: str, want: str) -> tuple[float, float, float]:
    """Per-channel values (a mean, a std) given in order ``have``, in order ``want``."""
    return tuple(values) if have == want else tuple(reversed(values))  # type: ignore[return-value]


def needed(pipeline: Pipeline, weights_order: str, stats: Pipeline) -> Preprocess:
    """The preprocessing ``pipeline`` must do for weights that take ``weights_order`` input:
    reverse what its loader reads when that differs, then pycls's mean and std in that order."""
    flip = pipeline.reads != weights_order
    mean = tuple(m * pipeline.scale for m in in_order(stats.mean, stats.order, weights_order))
    std = tuple(s * pipeline.scale for s in in_order(stats.std, stats.order, weights_order))
    return Preprocess(flip, mean, std, pipeline.scale, weights_order)  # type: ignore[arg-type]


def as_configured(pipeline: Pipeline, flip: bool, mean, std, geometry: Geometry = PYCLS_GEOMETRY) -> Preprocess:
    """The preprocessing a user's config sets (verify --bgr-to-rgb/--mean/--std/--transforms, a config's test pipeline)."""
    feeds = ("rgb" if pipeline.reads == "bgr" else "bgr") if flip else pipeline.reads
    return Preprocess(flip, tuple(mean), tuple(std), pipeline.scale, feeds, geometry)


STATS_TOLERANCE = 1e-3  # relative, of max(1, |value|): configs write mean/std rounded to a few digits


def mismatches(need: Preprocess, flip: bool, mean, std) -> list[tuple[str, object, object]]:
    """What a pipeline as configured (its channel flip, mean and std; None: not set) does otherwise
    than the weights need: ``(flip | mean | std, what it has, what it needs)`` each."""
    out: list[tuple[str, object, object]] = [] if flip == need.flip else [("flip", flip, need.flip)]
    for what, have, want in (("mean", mean, need.mean), ("std", std, need.std)):
        fits = have is not None and len(have) == 3 and all(abs(a - b) <= STATS_TOLERANCE * max(1.0, abs(b)) for a, b in zip(have, want))
        if not fits:
            out.append((what, None if have is None else [round(float(v), 3) for v in have], [round(v, 3) for v in want]))
    return out


def crop_pct(crop: int, resize: int) -> float:
    """timm's crop_pct for pycls's resize-then-crop: timm resizes to floor(crop / crop_pct)."""
    for digits in range(4, 9):
        pct = round(crop / resize, digits)
        if int(crop / pct) == resize:
            return pct
    return crop / resize


def default_order(pipeline: Pipeline) -> str:
    """The order a layout's weights take unless asked otherwise: what its pipeline can feed without
    a change to the user's code. RGB everywhere but pycls itself (it reads BGR and never converts)."""
    return "bgr" if pipeline.reads == "bgr" and not pipeline.flip_flag else "rgb"


def source_order(meta: dict, layout_name: str, pipeline: Pipeline) -> tuple[str, str]:
    """The order a file's weights take, and what said so: its meta; pycls's own layout (BGR); a
    ckptconv meta without the field (made before ckptconv reversed channels: BGR); else the
    layout's default (a library's weights most likely take what its pipeline feeds)."""
    if meta.get("channel_order") in ORDERS:
        return meta["channel_order"], "meta"
    if layout_name == PYCLS:
        return "bgr", "pycls takes BGR"
    if meta.get("ckptconv_version"):
        return "bgr", "made by a ckptconv that kept pycls's BGR order"
    return default_order(pipeline), f"assumed: no channel order recorded, taken as the {layout_name} layout's default"


def configured(pipeline: Pipeline, need: Preprocess, expect) -> Preprocess:
    """The preprocessing a user's settings (``Expectations``: flip, mean, std, geometry; None: as
    the weights need) make ``pipeline`` do."""
    flip = need.flip if expect.flip is None else expect.flip
    geometry = pipeline.stock if expect.geometry == "stock" else expect.geometry or need.geometry
    return as_configured(pipeline, flip, expect.mean or need.mean, expect.std or need.std, geometry)
