"""What ckptconv can be asked, defined once: every option's choices and the two frozen requests.

The CLI (``cli/options.py``), a batch (one ``Request`` per file, varied with ``dataclasses.replace``)
and the Python API (keyword arguments) all fill a ``Request`` to convert and an ``Expectations`` to
verify; nothing else holds an option or its default. torch-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from .errors import UsageError
from .io.paths import Planned
from .io.store import is_url, location

Weights = Literal["best", "model", "ema"]  # best: as pycls's load_checkpoint picks (model, or EMA when its error is lower)
Dtype = Literal["keep", "fp16", "bf16", "fp32"]
ChannelOrder = Literal["rgb", "bgr"]
Verification = Literal["numeric", "structure", "none"]
Padding = Literal["symmetric", "same"]  # pycls's (k-1)//2 on every side, or TensorFlow's "same" (mmcv Conv2dAdaptivePadding)
Format = Literal["pth", "safetensors"]
OnnxInput = Literal["image", "tensor"]  # a photo's uint8 pixels (pycls's preprocessing inside the graph), or pycls's normalized tensor

WEIGHTS: tuple[str, ...] = get_args(Weights)
DTYPES: tuple[str, ...] = get_args(Dtype)
ORDERS: tuple[str, ...] = get_args(ChannelOrder)
VERIFICATIONS: tuple[str, ...] = get_args(Verification)
PADDINGS: tuple[str, ...] = get_args(Padding)
FORMATS: tuple[str, ...] = get_args(Format)
ONNX_INPUTS: tuple[str, ...] = get_args(OnnxInput)

PYCLS = "pycls"  # the hub layout: every table maps from pycls's keys
ONNX = "onnx"  # not a table: pycls's own function as an ONNX graph (ckptconv/onnx/), exported from pycls's keys
DEFAULT_LAYOUT = "mmdet"
DEFAULT_INPUT = (64, 96)  # the numeric check's input: small, so B5 verifies in a fraction of a second
MAX_INPUT = 640  # per side: B5's own resolution is 456; beyond this a check only costs memory
NAME = r"[a-z0-9][a-z0-9_.-]{0,63}"  # layout and variant names
PREFIX = r"([A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z_][A-Za-z0-9_]*)*"  # a dotted module path
LICENSE = r"[a-z0-9][a-z0-9.+-]{0,63}"  # a Hugging Face licence identifier: mit, apache-2.0, cc-by-nc-4.0, other
HUB_LAYOUTS = ("timm", "transformers")  # the layouts --hub writes a model folder of
FOLDER_LAYOUTS = ("transformers",)  # the layouts written only as a model folder (from_pretrained loads a folder), --hub or not


def choice(value: Any, choices: tuple[str, ...], option: str) -> None:
    if value not in choices:
        raise UsageError(f"unknown {option} {value!r}", fix=f"use one of {', '.join(choices)}")


def local_only(*named: tuple[str, Any]) -> None:
    """Options read from local files only, as yet: a URL there is a usage error (docs/storage.md)."""
    for option, value in named:
        if is_url(value):
            raise UsageError(f"{option} {value}: this option reads local files only (object storage reaches IN, OUT and --config-out of convert, "
                             "and FILE of verify and inspect)", fix="copy the file locally and pass its path")


# each step of a pipeline's geometry: pycls's way first, then the others a library may take
GEOMETRY = {
    "size": ("pycls", "library", "squash"),  # the long side floor((long / short) * R) in double; int(R * long / short); R x R
    "resampler": ("cv2", "antialias"),  # bilinear without antialiasing (cv2.resize INTER_LINEAR); PIL's antialiased bilinear
    "pixels": ("float32", "uint8"),  # what is resized: float32 pixels (pycls), or uint8 ones rounded back (PIL, mmcv's default load)
    "crop": ("ceil", "round", "floor"),  # the centre crop at ceil((L - C) / 2), at round-half-even (torchvision, timm, mmcv), or at int((L - C) / 2) (transformers)
}


@dataclass(frozen=True)
class Geometry:
    """How a pipeline resizes and crops (see ``GEOMETRY``); the default is pycls's."""

    size: str = "pycls"
    resampler: str = "cv2"
    pixels: str = "float32"
    crop: str = "ceil"

    def __post_init__(self) -> None:
        for step, choices in GEOMETRY.items():
            choice(getattr(self, step), choices, f"geometry {step}")


PYCLS_GEOMETRY = Geometry()


def check_input_size(size: tuple[int, ...]) -> None:
    if len(size) != 2 or not all(isinstance(s, int) and 8 <= s <= MAX_INPUT for s in size):
        raise UsageError(f"--input-size {' '.join(map(str, size))} is out of range", fix=f"use two sizes from 8 to {MAX_INPUT}")


@dataclass(frozen=True, kw_only=True)
class Request:
    """What to convert and how. ``output`` None: prepare only (a dry run, or a conversion in memory)."""

    source: Path
    output: Path | None = None
    layout: str = DEFAULT_LAYOUT  # the layout to write: a table name, pycls included
    source_layout: str = PYCLS
    arch: str | None = None  # None: from the checkpoint's cfg, else its meta, else its shapes
    weights: Weights = "best"
    prefix: str | None = None  # None: the table's default
    dtype: Dtype = "keep"
    channel_order: ChannelOrder | None = None  # what the written weights take; None: the layout's default
    verify: Verification = "numeric"
    input_size: tuple[int, int] = DEFAULT_INPUT
    allow_partial: bool = False
    trust_pickle: bool = False
    force: bool = False
    config_out: Path | None = None
    tables: tuple[Path, ...] = ()  # extra table directories, beside the built-in ones and $CKPTCONV_TABLES
    cfg: Path | None = None  # a pycls YAML stating the model (the run's config.yaml); None: the checkpoint's own cfg
    cfg_is_run: bool = False  # cfg is the run's OUT_DIR/config.yaml that batch found beside the checkpoint, not one the user named
    hub: bool = False  # output is a model folder (timm: ckptconv/hub.py; transformers, always: ckptconv/hub_transformers.py)
    license: str | None = None  # the hub folder's model card licence (a Hub licence identifier)
    labels: Path | None = None  # --to transformers: a file of class names, one per line (config.json's id2label); None: LABEL_i
    made_by: str = "convert"  # the command whose output this is (convert, batch): a model card names it
    onnx_input: OnnxInput | None = None  # --to onnx: what the graph takes; None: image
    levels: bool = False  # --to onnx: the stage outputs (stem, s1 ... sN) as outputs too, after the logits

    def check(self) -> None:
        """Refuse option values that cannot work, before anything is read."""
        choice(self.verify, VERIFICATIONS, "--verify")
        choice(self.weights, WEIGHTS, "--weights")
        choice(self.dtype, DTYPES, "--dtype")
        if self.channel_order is not None:
            choice(self.channel_order, ORDERS, "--channel-order")
        check_input_size(self.input_size)
        if self.prefix and not re.fullmatch(PREFIX, self.prefix):
            raise UsageError(f"--prefix {self.prefix!r} is not a dotted module path", fix="use e.g. backbone or model.backbone (no empty segments)")
        self._check_hub()
        self._check_onnx()
        local_only(("--cfg", self.cfg), ("--labels", self.labels))
        if self.labels is not None and self.layout != "transformers":
            raise UsageError(f"--labels names the classes in a transformers config.json, and --to is {self.layout}", fix="pass --to transformers, or leave --labels out")

    @property
    def folder(self) -> bool:
        """The output is a model folder: --hub, or a layout that is only ever a folder (transformers)."""
        return self.hub or self.layout in FOLDER_LAYOUTS

    def _check_hub(self) -> None:
        if self.license is not None and not self.folder:
            raise UsageError("--license goes into the model card of a hub folder", fix="pass --hub too, or leave --license out")
        if not self.folder:
            return
        if self.layout not in HUB_LAYOUTS:
            raise UsageError(f"--hub writes the folder timm or transformers loads, not {self.layout}", fix="pass --to timm or --to transformers with --hub")
        who = "timm" if self.layout == "timm" else "transformers"
        if self.channel_order == "bgr":
            raise UsageError(f"{who}'s pipeline feeds RGB: a model folder holds RGB weights", fix="leave --channel-order out (a folder's weights take RGB)")
        if self.prefix:
            raise UsageError(f"{who} loads a model folder's tensors by their own names: --prefix would hide them", fix="leave --prefix out")
        if self.license is not None and not re.fullmatch(LICENSE, self.license):
            raise UsageError(f"--license {self.license!r} is not a licence identifier", fix="use the Hub's form, e.g. mit, apache-2.0, cc-by-nc-4.0 or other")

    def _check_onnx(self) -> None:
        if self.layout != ONNX:
            if self.onnx_input is not None or self.levels:
                raise UsageError(f"--onnx-input and --levels shape an ONNX graph, and --to is {self.layout}", fix="pass --to onnx, or leave them out")
            return
        if self.onnx_input is not None:
            choice(self.onnx_input, ONNX_INPUTS, "--onnx-input")
        if self.dtype in ("fp16", "bf16"):
            raise UsageError(f"--dtype {self.dtype}: ckptconv's ONNX graphs compute in float32", fix="leave --dtype out with --to onnx")
        if self.prefix:
            raise UsageError("an ONNX graph has no state dict keys: --prefix does not apply", fix="leave --prefix out with --to onnx")

    def planned(self) -> list[Planned]:
        """Every path the conversion will create: OUT (a folder with --hub or --to transformers) and --config-out."""
        out = [Planned(self.output, "OUT", folder=self.folder)] if self.output is not None else []
        return out + ([Planned(self.config_out, "--config-out")] if self.config_out is not None else [])

    def inputs(self) -> list[Path]:
        """Every file the run reads that the user named: no output may be one of them."""
        return [p for p in (self.source, self.cfg, self.labels) if p is not None]


@dataclass(frozen=True, kw_only=True)
class Expectations:
    """What ``verify`` is asked: what the file should be, and the settings the user's config uses
    (None: what the file's meta records, else what the weights need)."""

    source: Path | None = None  # the pycls file it was converted from: adds bit identity and provenance
    arch: str | None = None
    layout: str | None = None
    weights: Weights | None = None  # the source's weight set; None: the one the meta records
    padding: Padding | None = None
    eps: float | None = None
    channel_order: ChannelOrder | None = None  # what the file's weights take
    flip: bool | None = None  # the pipeline reverses the channels it loads (bgr_to_rgb / to_rgb)
    mean: tuple[float, float, float] | None = None  # the pipeline's mean and std, in its own units
    std: tuple[float, float, float] | None = None
    geometry: Geometry | Literal["stock"] | None = None  # its resize and crop: None as printed (pycls's), "stock": the library's own
    input_size: tuple[int, int] = DEFAULT_INPUT
    trust_pickle: bool = False
    tables: tuple[Path, ...] = ()
    in_library: bool = False  # also load the file in its library as installed here (ckptconv.inlibrary)
    images: Path | None = None  # with in_library: the user's images in place of the shipped photos
    labels: Path | None = None  # with images in class folders: the class names, in class order
    config: Path | None = None  # with in_library: the user's own config or loading code in place of the printed one

    def __post_init__(self) -> None:
        self.check()  # an Expectations is usable, or is not made

    def check(self) -> None:
        local_only(("--source", self.source), ("--images", self.images), ("--labels", self.labels), ("a loading config", self.config))
        if self.weights is not None:
            choice(self.weights, WEIGHTS, "--weights")
        if self.padding is not None:
            choice(self.padding, PADDINGS, "--padding")
        if self.channel_order is not None:
            choice(self.channel_order, ORDERS, "--channel-order")
        if self.eps is not None and not (isinstance(self.eps, (int, float)) and 0 < self.eps < 1):
            raise UsageError(f"--eps {self.eps!r} is not a BatchNorm eps", fix="use a small positive number like 1e-5")
        check_input_size(self.input_size)
        if not self.in_library and (self.images is not None or self.config is not None):
            raise UsageError(f"{'--images' if self.images is not None else 'a loading config'} goes with --in-library", fix="add --in-library")
        if self.labels is not None and self.images is None:
            raise UsageError("--labels names the classes of --images DIR", fix="add --images DIR (one sub-folder per class)")
        if not (self.geometry is None or self.geometry == "stock" or isinstance(self.geometry, Geometry)):
            raise UsageError(f"unknown --transforms {self.geometry!r}", fix="use printed or stock")
        for name, values in (("--mean", self.mean), ("--std", self.std)):
            if values is not None and (len(values) != 3 or not all(isinstance(v, (int, float)) and 0 < abs(v) < 1e4 for v in values)):
                raise UsageError(f"{name} needs three numbers in the pipeline's units", fix="e.g. --mean 123.675 116.28 103.53")


def build(cls: type, where: str, **values: Any):
    """``cls(**values)`` from the Python API's keyword arguments: an unknown name is a
    ``UsageError`` that lists the known ones; paths may be strings, sizes and table lists sequences."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"{where} got unknown option(s) {', '.join(unknown)}", fix=f"use {', '.join(sorted(known))}")
    if cls is Request and not isinstance(values.get("source"), (str, Path)):
        raise UsageError(f"{where} needs a source: the path of the checkpoint to convert, not {values.get('source')!r}")
    for name in ("source", "output", "config_out", "cfg"):
        if values.get(name) is not None and not isinstance(values[name], Path):
            values[name] = location(values[name])  # a URL stays a URL
    for name, each in (("tables", Path), ("input_size", int)):
        if name in values:
            values[name] = tuple(each(v) for v in values[name])
    return cls(**values)
