"""How timm, torchvision, MMDetection and mmpretrain build a pycls model through their public API.

``build(library, variant)`` gives the Python (timm, torchvision: a call) or the backbone dict body
(mmdet, mmpretrain) that builds exactly the variant's structure, or raises ``Refused`` saying what
the library's class cannot express and which target can. A zoo model keeps its variant file's
``[libraries.<library>]`` builder (and note); any other model is built from its numbers. Every
decision is the library's own rule applied to those numbers (tests/data/design_space/facts.json,
``libraries``), never a lookup of known models:

- timm RegNet derives its stages from (depth, w0, wa, wm) in torch float32 (pycls: float64) and
  asserts 4 stride-2 stages; torchvision's ``BlockParams.from_init_params`` computes in float32 too,
  rounds bottleneck widths with ``_make_divisible`` (half up; pycls rounds half to even) and always
  strides 2, while ``BlockParams(...)`` takes pycls's per-stage lists as they are; mm RegNet uses
  pycls's own float64 rule but builds mid = planes in a one-group stage (bot_mul ignored);
- the ResNet classes have fixed patterns: timm a 64-wide stem, strides 1, 2, 2, ..., at most 4
  stages, any stage widths; torchvision 4 stages of 64..512 x expansion; mm doubles
  base_channels x expansion per stage (mmpretrain's expansion free, mmdet's 4), depths from
  arch_settings only; the groups and width per group follow from pycls's bottleneck widths;
- EfficientNet: timm rounds mid_chs = make_divisible(in * e) with no setting, rounds SE widths
  (rd_round_fn, settable) and dilates past output stride 32; torchvision rounds every channel count
  to a multiple of 8 and fixes SE at in // 4; mm builds its named archs only (pycls's b0..b5).

Nothing here sets BN eps, padding (mm ``conv_cfg``) or out_indices: the caller does. torch-free.
"""

from __future__ import annotations

import ast
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import Refused, UsageError
from ..model.variants import AnyNet, Variant

if TYPE_CHECKING:
    from . import Library

DEFAULT_CLASSES = 1000  # every named builder's and create_model's default classifier


@dataclass(frozen=True)
class Built:
    """How a library builds a model: ``text`` is a Python call (``kind`` "call": timm, torchvision)
    or the body of an mm backbone dict (``kind`` "dict"); ``name`` is timm's registered model name
    when the text is ``timm.create_model(name, ...)``; ``note`` one line when the library's
    same-named builder is another model."""

    text: str
    kind: str
    name: str = ""
    note: str = ""


class Cannot(Exception):
    """What the library's class cannot express, in one line; ``build`` adds the alternatives."""


def short(built: Built) -> str:
    """``RegNet(BlockParams)``, ``regnety_008``, ``ResNet_CIFAR``: what a target builds, in a word."""
    if built.kind == "dict":
        return ast.literal_eval(ast.parse(f"dict({built.text})", mode="eval").body.keywords[0].value)
    call = ast.parse(built.text, mode="eval").body
    if built.name:
        return built.name
    outer = dotted(call.func).split(".")[-1]
    inner = call.args[0] if call.args and isinstance(call.args[0], ast.Call) else None
    if inner is None:
        return outer
    parts = dotted(inner.func).split(".")
    first_class = next((i for i, p in enumerate(parts) if p[:1].isupper()), len(parts) - 1)
    return f"{outer}({'.'.join(parts[first_class:])})"


def anynet_reason(library: str, v: Variant) -> str:
    assert isinstance(v, AnyNet)
    if v.block_type == "vanilla_block":
        return f"pycls's vanilla_block has no residual connection; every {library} ResNet/RegNet block adds a shortcut"
    return (f"{v.stem_type} with {v.block_type}: {library}'s basic-block ResNet has the 7x7/2 + max-pool stem, "
            f"its RegNet bottleneck blocks only")


class Code(str):
    """Python text placed as it is (a nested call, a name)."""


def lit(x: object) -> str:
    if isinstance(x, Code):
        return str(x)
    if isinstance(x, tuple):
        return "(" + ", ".join(map(lit, x)) + ("," if len(x) == 1 else "") + ")"
    if isinstance(x, list):
        return "[" + ", ".join(map(lit, x)) + "]"
    return repr(x)  # int, float (round-trips), str, bool, None


def num(x: float) -> Code:
    """A number as it reads: 6 for 6.0, 0.25 as 0.25 (float() of it gives x back)."""
    return Code(str(int(x)) if float(x).is_integer() else repr(float(x)))


def call(fn: str, *args: object, **kwargs: object) -> Code:
    return Code(f"{fn}({', '.join([*map(lit, args), *(f'{k}={lit(v)}' for k, v in kwargs.items())])})")


def body(type_: str, **kwargs: object) -> str:
    """An mm backbone dict's body: ``type='RegNet', arch=dict(...)``."""
    return ", ".join([f"type={type_!r}", *(f"{k}={lit(v)}" for k, v in kwargs.items())])


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def is_named(func: ast.AST) -> bool:
    """A named builder (``timm.create_model``, ``torchvision.models.resnet50``), not a class."""
    return dotted(func).split(".")[-1][:1].islower()


def classes(named: bool, n: int) -> dict[str, int]:
    """``num_classes`` for a call: always for a class, for a named builder when not its 1000."""
    return {"num_classes": n} if n != DEFAULT_CLASSES or not named else {}


def with_classes(text: str, n: int) -> str:
    """A variant file's call with the model's classes (the file's builders build 1000)."""
    tree = ast.parse(text, mode="eval")
    call = tree.body
    if not isinstance(call, ast.Call):
        raise UsageError(f"the variant file's builder {text!r} is not a call")
    call.keywords = [k for k in call.keywords if k.arg != "num_classes"]
    call.keywords += [ast.keyword(arg=k, value=ast.Constant(v)) for k, v in classes(is_named(call.func), n).items()]
    return ast.unparse(tree)


def created(text: str) -> str:
    """The model name of a ``timm.create_model('name', ...)`` text, else ""."""
    call = ast.parse(text, mode="eval").body
    if isinstance(call, ast.Call) and dotted(call.func) == "timm.create_model" and call.args and isinstance(call.args[0], ast.Constant):
        return str(call.args[0].value)
    return ""


def f32(x: float) -> float:
    """x rounded to float32, as torch's default dtype holds every intermediate."""
    return struct.unpack("f", struct.pack("f", x))[0]


def make_divisible(v: float, divisor: int = 8) -> int:
    """timm's make_divisible and torchvision's make_divisible: nearest multiple (half up), at least
    ``divisor``, never more than 10% below v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def block_widths_f32(r: dict) -> list[int]:
    """Per-block widths from (depth, w0, wa, wm) as timm's generate_regnet and torchvision's
    from_init_params compute them: torch float32 (arange * wa + w0, log ratio, round half to even,
    w0 * wm ** k, round to a multiple of 8); the Python scalars enter as float32."""
    w0, wa, wm, log_wm = f32(r["w0"]), f32(r["wa"]), f32(r["wm"]), f32(math.log(r["wm"]))
    out = []
    for j in range(r["depth"]):
        cont = f32(f32(f32(j) * wa) + w0)
        k = round(f32(f32(math.log(f32(cont / w0))) / log_wm))
        out.append(int(round(f32(f32(w0 * f32(wm**k)) / 8)) * 8))
    return out


def runs(widths: list[int]) -> tuple[list[int], list[int]]:
    """(depths, widths) of the runs of equal widths: the stages (the widths never decrease)."""
    depths, stage_widths = [], []
    for w in widths:
        if stage_widths and stage_widths[-1] == w:
            depths[-1] += 1
        else:
            stage_widths.append(w)
            depths.append(1)
    return depths, stage_widths


def float32_stages(r: dict, round_bottleneck) -> tuple[list[int], list[int], list[int]]:
    """(depths, widths, group widths) from float32 block widths, each stage's bottleneck width made
    compatible with its group (capped at the bottleneck width) by ``round_bottleneck(w_bot, g)``."""
    depths, widths = runs(block_widths_f32(r))
    bm, groups, final = r["bot_mul"], [], []
    for w in widths:
        w_bot = int(w * bm)
        g = min(r["group_w"], w_bot)
        groups.append(g)
        final.append(int(round_bottleneck(w_bot, g) / bm))
    return depths, final, groups


def pycls_stages(v: AnyNet) -> tuple[list[int], list[int], list[int]]:
    return list(v.depths), list(v.widths), list(v.group_ws)


def first_blocks(v: AnyNet) -> list:
    return [b for b in v.blocks if b.block == 1]


def stride_on_1x1(v: AnyNet) -> bool:
    return "stride_1x1" in v.features


def per_stage(library: str, how: str) -> Cannot:
    return Cannot(f"AnyNet per-stage numbers: {library}'s RegNet {how} derives stage depths and widths from (depth, w0, wa, wm) only; "
                   f"it has no per-stage depth/width/stride/group lists")


def no_se(library: str) -> Cannot:
    return Cannot(f"SE: {library}'s RegNet and ResNet have no squeeze-and-excitation after the 3x3 (its ResNet plugins and SEResNet put "
                   f"attention elsewhere)")


# (block, depths, groups, width per group) -> the named builder: the library's ResNet class with them
TIMM_RESNETS = {
    ("res_basic_block", (2, 2, 2, 2), 1, 64): "resnet18", ("res_basic_block", (3, 4, 6, 3), 1, 64): "resnet34",
    ("res_bottleneck_block", (3, 4, 6, 3), 1, 64): "resnet50", ("res_bottleneck_block", (3, 4, 23, 3), 1, 64): "resnet101",
    ("res_bottleneck_block", (3, 8, 36, 3), 1, 64): "resnet152", ("res_bottleneck_block", (3, 4, 6, 3), 32, 4): "resnext50_32x4d",
    ("res_bottleneck_block", (3, 4, 23, 3), 32, 4): "resnext101_32x4d", ("res_bottleneck_block", (3, 4, 23, 3), 32, 8): "resnext101_32x8d",
    ("res_bottleneck_block", (3, 4, 23, 3), 64, 4): "resnext101_64x4d", ("res_bottleneck_block", (3, 4, 6, 3), 1, 128): "wide_resnet50_2",
    ("res_bottleneck_block", (3, 4, 23, 3), 1, 128): "wide_resnet101_2",
}


CIFAR_STEM = ("res_stem_cifar (3x3 stride-1 conv, no max-pool) has no {library} counterpart: its ResNet stem is a 7x7/2 conv + max-pool "
              "(or a deep stem), its RegNet stem a 3x3/2 conv")


def common_groups(v: AnyNet) -> int | None:
    """The bottleneck's groups if every stage has the same, else None (basic blocks: 1)."""
    found = {b.groups for b in first_blocks(v)} if v.block_type == "res_bottleneck_block" else {1}
    return found.pop() if len(found) == 1 else None



def fitting_base_width(w_bs: list[int], planes: tuple[int, ...], groups: int) -> int | None:
    """The integer base_width with floor(planes * (base_width / 64)) * groups == w_b in every stage."""
    q = w_bs[0] // groups
    for bw in range(max(1, math.ceil(64 * q / planes[0])), math.ceil(64 * (q + 1) / planes[0]) + 1):
        if all(int(math.floor(p * (bw / 64)) * groups) == w for p, w in zip(planes, w_bs)):
            return bw
    return None



def resnet_common(library: str, v: AnyNet, se_words: str = "") -> None:
    """What no library's ResNet builds: SE after the 3x3, and (but mmpretrain's ResNet_CIFAR) the CIFAR stem."""
    if v.se_r:
        raise Cannot(se_words or f"SE after the 3x3: {library}'s ResNet has no squeeze-and-excitation there")
    if v.stem_type == "res_stem_cifar" and library != "mmpretrain":
        raise Cannot(CIFAR_STEM.format(library=library))


def build(lib: Library, v: Variant) -> Built:
    """How ``lib`` builds this model through its public API, from its numbers; raises
    Refused(what cannot be expressed and why, fix=the nearest alternative: another target, or a
    setting) when it cannot."""
    try:
        return _build(lib, v)
    except Cannot as e:
        raise Refused(str(e), fix=alternatives(lib, v)) from None


def _build(lib: Library, v: Variant) -> Built:
    if v.family == "anynet":
        raise Cannot(anynet_reason(lib.name, v))
    if v.family not in lib.builders:
        raise Cannot(f"{lib.title} builds no {v.family} model ckptconv knows of")
    return lib.builders[v.family](v)


def alternatives(lib: Library, v: Variant) -> str:
    """The targets that do build the model (the fix a refusal names)."""
    from . import libraries

    found = []
    for other in libraries().values():
        if other is lib or v.family not in other.builders:
            continue
        try:
            found.append(f"{other.name} ({short(_build(other, v))})")
        except Cannot:
            pass
    if not found:
        return "keep the pycls layout (no other library's class builds this model)"
    return f"convert to {' or '.join(found)} instead, or keep the pycls layout"


def from_zoo(library: str, v: Variant, kind: str = "call") -> Built | None:
    """A zoo model: its variant file's builder (and note), with its classes; None for another model."""
    entry = v.library(library) if v.zoo else {}
    builder, note = entry.get("builder", ""), entry.get("note", "")
    if not builder:
        return None
    if kind == "dict":
        return Built(builder, "dict", "", note)
    text = with_classes(builder, v.num_classes)
    return Built(text, "call", created(text), note)


def zoo_or(library: str, from_numbers: Callable[[str, Variant], Built], kind: str = "call") -> Callable[[Variant], Built]:
    """A family's builder: the variant file's for a zoo model, else ``from_numbers``."""
    return lambda v: from_zoo(library, v, kind) or from_numbers(library, v)
