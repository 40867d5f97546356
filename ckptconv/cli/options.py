"""The command-line options of the conversion commands (pycls2mmdet, convert, batch) and of verify,
and the one place each turns into the request the library takes (``request_from``, ``expectations_from``).

Choices and defaults come from ``ckptconv.options``: nothing here restates them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..options import DEFAULT_INPUT, DTYPES, ONNX_INPUTS, ORDERS, PADDINGS, VERIFICATIONS, WEIGHTS, Expectations, Request


class Location(click.ParamType):
    """A local path, or a URL of a file system fsspec resolves (``s3://bucket/key``): ``io.store.location``.
    A URL stays a URL (click.Path would make ``s3://b/k`` the local ``s3:/b/k``)."""

    name = "path"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        from ..io.store import location

        return location(value)


LOCATION = Location()


class LocalPath(click.Path):
    """A local path only: a URL here is refused (exit 2), never read as the local path ``s3:/b/k``."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        from ..io.store import is_url, location

        if isinstance(value, str) and is_url(location(value)):
            self.fail(f"{value.split('://', 1)[0]}:// URLs are not taken here yet: batch, report merge and --tables read and write local paths "
                      "(docs/storage.md says what takes a URL)", param, ctx)
        return super().convert(value, param, ctx)

REQUEST_OPTIONS = ("arch", "cfg", "weights", "prefix", "dtype", "channel_order", "input_size", "trust_pickle", "force", "hub", "license", "labels", "onnx_input", "levels")


def input_size_option(f):
    return click.option(
        "--input-size",
        nargs=2,
        type=click.IntRange(min=8),
        default=DEFAULT_INPUT,
        show_default=True,
        metavar="H W",
        help="Input of the numeric check. The variant's own resolution (e.g. 300 300 for b3) is slower.",
    )(f)


_ARCH_HELP = ("Model (b0 ... b5, regnetx_200mf ... regnety_32gf, resnet50 ...: ckptconv mappings lists them). "
              "Default: from the checkpoint's cfg, else its tensor shapes.")
_ORDER_HELP = ("Colour order the written weights take. rgb (default; bgr for --to pycls): the stem's input channels reversed, "
               "so a library's stock RGB pipeline computes what pycls computed from BGR images. bgr: as pycls trained them.")
_CONVERSION = [
    click.option("--arch", metavar="ARCH", help=_ARCH_HELP),
    click.option("--cfg", type=LOCATION, metavar="FILE",
                 help="A pycls YAML stating the model (the run's config.yaml): for checkpoints saved without their cfg, "
                      "or to state what the tensors cannot show (strides, where the stride sits, BN eps)."),
    click.option("--weights", type=click.Choice(WEIGHTS), default="best", show_default=True,
                 help="pycls weight set: best picks as pycls's load_checkpoint does (model_state unless ema_err < test_err)."),
    click.option("--prefix", metavar="TEXT", default=None, help="Prepend TEXT. to every output key (e.g. backbone). Default: the table's."),
    click.option("--dtype", type=click.Choice(DTYPES), default="keep", show_default=True,
                 help="Cast floating tensors (never num_batches_tracked); refuses values that would overflow."),
    click.option("--channel-order", type=click.Choice(ORDERS), default=None, help=_ORDER_HELP),
    click.option("--verify", "verify", type=click.Choice([v for v in VERIFICATIONS if v != "none"]), default="numeric", show_default=True,
                 help="numeric: keys, shapes, bit identity and a forward pass against the pycls reference; structure: all but the forward pass."),
    click.option("--no-verify", is_flag=True, help="Skip verification (not recommended)."),
    input_size_option,
    click.option("--force", is_flag=True, help="Replace an existing output (atomically: the old file stays until the new one is complete)."),
    click.option("--trust-pickle", is_flag=True, help="DANGEROUS: unpickle any object the file asks for. Only for files from people you trust."),
]
_HUB = [
    click.option("--hub", is_flag=True, help="With --to timm: OUT is a folder timm loads with create_model('local-dir:OUT', pretrained=True) "
                                             "and the Hugging Face Hub serves as it is: config.json, model.safetensors, README.md (a model card). "
                                             "--to transformers always writes a folder (AutoModelForImageClassification.from_pretrained)."),
    click.option("--license", metavar="ID", default=None, help="The licence of the weights, for the hub folder's model card (mit, apache-2.0, other ...)."),
    click.option("--labels", type=LOCATION, metavar="FILE", default=None,
                 help="With --to transformers: the class names, one per line in class order, for config.json's id2label (default: LABEL_0 ...)."),
]


_ONNX = [
    click.option("--onnx-input", type=click.Choice(ONNX_INPUTS), default=None,
                 help="With --to onnx: image (default): the graph takes a photo's uint8 H x W x 3 pixels of any size, in the --channel-order "
                      "they come in (rgb as PIL decodes, bgr as cv2.imread), and does pycls's resize, crop and normalization itself; "
                      "tensor: it takes pycls's normalized float32 N x 3 x H x W input, in --channel-order."),
    click.option("--levels", is_flag=True, help="With --to onnx: the stage outputs (stem, s1 ... sN: what a detector's neck takes) as outputs too."),
]


def onnx_options(f):
    """--onnx-input --levels (convert and batch)."""
    for decorator in reversed(_ONNX):
        f = decorator(f)
    return f


def hub_options(f):
    """--hub --license (convert and batch: pycls2mmdet writes MMDetection files only)."""
    for decorator in reversed(_HUB):
        f = decorator(f)
    return f


def conversion_options(f):
    """--arch --weights --prefix --dtype --channel-order --verify/--no-verify --input-size --force --trust-pickle."""
    for decorator in reversed(_CONVERSION):
        f = decorator(f)
    return f


def output_options(f):
    f = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")(f)
    f = click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout and nothing else.")(f)
    return f


def request_from(kw: dict[str, Any], tables: tuple[Path, ...], **fields: Any) -> Request:
    """The conversion options given on the command line as the library's ``Request``."""
    values = {name: kw[name] for name in REQUEST_OPTIONS if name in kw}  # --hub/--license: convert and batch only
    values["input_size"] = tuple(values["input_size"])
    verify = "none" if kw["no_verify"] else kw["verify"]
    return Request(**values, verify=verify, tables=tables, **fields)


_VERIFY = [
    click.option("--source", type=LOCATION, help="The pycls checkpoint FILE was converted from: adds bit identity, numerics against it, and its sha256."),
    click.option("--arch", metavar="ARCH", help="Expected model; default: the file's meta, else its shapes."),
    click.option("--layout", help="Expected layout; default: the file's meta, else its keys."),
    click.option("--weights", type=click.Choice(WEIGHTS), default=None, help="Source weight set to compare with; default: the one the meta records."),
    click.option("--padding", type=click.Choice(PADDINGS), help="Padding your detector config uses (same = Conv2dAdaptivePadding, mmdet's default)."),
    click.option("--eps", type=float, help="BN eps your detector config uses (mmdet's default is 1e-3)."),
    click.option("--channel-order", type=click.Choice(ORDERS), help="Colour order the file's weights take; default: its meta."),
    click.option("--bgr-to-rgb/--no-bgr-to-rgb", "--to-rgb/--no-to-rgb", "flip", default=None,
                 help="Whether your pipeline reverses the channels it loads (mmdet bgr_to_rgb, mmpretrain to_rgb); default: what the weights need."),
    click.option("--mean", nargs=3, type=float, default=None, metavar="M M M", help="Your pipeline's mean, in its units and order (mmdet: 0..255)."),
    click.option("--std", nargs=3, type=float, default=None, metavar="S S S", help="Your pipeline's std, in its units and order."),
    click.option("--transforms", type=click.Choice(["printed", "stock"]), default="printed", show_default=True,
                 help="Your pipeline's resize and crop: printed (pycls's, as the printed config or snippet does them) or stock "
                      "(the library's own Resize/ResizeEdge and CenterCrop, which give other inputs)."),
    input_size_option,
    click.option("--trust-pickle", is_flag=True, help="DANGEROUS: unpickle any object the files ask for."),
    click.option("--in-library", is_flag=True, help="Also load each file in the library installed here, as its users do (the code or config ckptconv prints, "
                 "or --config), and hold what it computes on photos to pycls's pipeline and model. A library not installed: 'not checked', exit 3."),
    click.option("--images", type=click.Path(path_type=Path), metavar="DIR",
                 help="With --in-library: your images (a folder, or one sub-folder per class) in place of the shipped photos."),
    click.option("--labels", type=click.Path(path_type=Path), metavar="FILE",
                 help="With --images in class folders: the class names, one per line in class order (default: the folder names, sorted)."),
]
EXPECTATIONS = ("source", "arch", "layout", "weights", "padding", "eps", "channel_order", "flip", "mean", "std", "input_size", "trust_pickle",
                "in_library", "images", "labels")
TRANSFORMS = {"printed": None, "stock": "stock"}  # --transforms -> Expectations.geometry


def verify_options(f):
    for decorator in reversed(_VERIFY):
        f = decorator(f)
    return f


def expectations_from(kw: dict[str, Any], tables: tuple[Path, ...]) -> Expectations:
    """verify's options as the library's ``Expectations``."""
    values = {name: kw[name] for name in EXPECTATIONS}
    values["input_size"] = tuple(values["input_size"])
    return Expectations(**values, geometry=TRANSFORMS[kw["transforms"]], tables=tables)

