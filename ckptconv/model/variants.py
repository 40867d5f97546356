"""Models as numbers: a zoo model's variant file (``mappings/<family>/variants/*.toml``), or the
numbers any pycls checkpoint was built from (its cfg, its meta, its shapes: ``model/structure.py``).

Everything structural follows from a variant's numbers: its blocks, its pycls state-dict keys and
shapes (``pycls_keys``), its family and the channel width at every feature point. Two kinds:
- ``EffNet``: pycls's ``cfg.EN`` numbers, any number of stages;
- ``AnyNet``: per-stage numbers (stem and block type, depths, widths, strides, bottleneck
  multipliers, group widths, SE, where the stride sits); ``[regnet]`` numbers give the stages as
  pycls 0.1.1's ``RegNet`` derives them (``regnet_stages``), ``[anynet]`` numbers are pycls's
  ``cfg.ANYNET`` (pycls's ``models/resnet.py`` is an AnyNet with its own numbers).
The numbers are one format wherever they come from: ``parse_variant`` reads a variant file, a
ckptconv meta's ``model`` and the numbers a cfg or the shapes make. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import TableError
from ..fields import Fields
from ..options import NAME
from .families import FAMILIES, expand

BN_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
STEMS = ("simple_stem_in", "res_stem_in", "res_stem_cifar")  # 3x3/2; 7x7/2 + max pool; 3x3/1
BLOCKS = ("vanilla_block", "res_basic_block", "res_bottleneck_block")
MAX_STAGES = 16


@dataclass(frozen=True)
class KeySpec:
    """One state-dict entry: key, shape and dtype name (``float32`` / ``int64``)."""

    key: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class _Keys:
    """Builds a pycls state dict's key list, module by module."""

    def __init__(self) -> None:
        self.keys: list[KeySpec] = []

    def conv(self, name: str, w_out: int, w_in: int, k: int, bias: bool = False) -> None:
        self.keys.append(KeySpec(f"{name}.weight", (w_out, w_in, k, k)))
        if bias:
            self.keys.append(KeySpec(f"{name}.bias", (w_out,)))

    def bn(self, name: str, w: int) -> None:
        self.keys.extend(KeySpec(f"{name}.{p}", (w,)) for p in BN_PARAMS[:4])
        self.keys.append(KeySpec(f"{name}.num_batches_tracked", (), "int64"))

    def fc(self, name: str, w_out: int, w_in: int) -> None:
        self.keys += [KeySpec(f"{name}.weight", (w_out, w_in)), KeySpec(f"{name}.bias", (w_out,))]


@dataclass(frozen=True, kw_only=True, eq=False)
class Variant:
    """A model: its names, the resolutions pycls trains and tests it at, its classes and BN eps, and
    what each library that has it calls it (zoo variants)."""

    name: str
    title: str
    config: str = ""  # pycls config name; zoo files are called <config>.pyth
    im_size: int = 224  # TRAIN.IM_SIZE: trained at, and the centre crop pycls tests with
    test_size: int = 256  # TEST.IM_SIZE: pycls resizes the short side to this before the crop
    num_classes: int = 1000
    eps: float = 1e-5  # BN.EPS: what every BatchNorm of the model, in any library, must use
    libraries: dict[str, dict[str, Any]] = field(default_factory=dict)  # layout -> {builder, name, eps, note}
    zoo: str = ""  # the zoo variant this model's structure is (a fine-tuned head or another eps keeps it)
    assumed: tuple[str, ...] = ()  # what the checkpoint could not tell, and was taken as (shapes only)
    path: str = ""
    digest: str = ""  # sha256 of the variant file (or of the numbers): outputs record it, batch compares it

    section = ""  # the numbers' section: en, anynet, regnet

    @property
    def depths(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def widths(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def stages(self) -> int:
        return len(self.depths)

    @property
    def family(self) -> str:
        raise NotImplementedError

    @property
    def points(self) -> tuple[str, ...]:
        """pycls's feature points of this model, in forward order."""
        return tuple(p for pattern in FAMILIES[self.family].points for p in expand(pattern, self.stages))

    @property
    def features(self) -> frozenset[str]:
        """What a table may refuse a model for (``se``: squeeze-and-excitation, ...)."""
        return frozenset()

    def library(self, name: str) -> dict[str, Any]:
        return self.libraries.get(name, {})

    def numbers(self) -> dict[str, Any]:
        """The section of numbers this model is built from (``[en]``, ``[anynet]``, ``[regnet]``)."""
        raise NotImplementedError

    def head(self) -> dict[str, Any]:
        """What every model has beside its numbers: classes, BN eps, test sizes."""
        return {"num_classes": self.num_classes, "eps": self.eps, "im_size": self.im_size, "test_size": self.test_size}

    def record(self) -> dict[str, Any]:
        """The model as a ckptconv meta records it (read back with ``parse_variant``)."""
        return {"variant": {"name": self.name, "title": self.title, **self.head(), **({"zoo": self.zoo} if self.zoo else {})},
                self.section: self.numbers()}

    def structure(self) -> str:
        """What decides the network's convolutions (its numbers, not its classes or eps): equal for a
        zoo model and its fine-tuned copies."""
        return json.dumps({self.section: self.numbers()}, sort_keys=True)


# --- EfficientNet --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MBConv:
    """One MBConv block: stage and block are 1-based, as in pycls keys (``s2.b1``)."""

    stage: int
    block: int
    w_in: int
    w_exp: int
    w_se: int
    w_out: int
    kernel: int
    stride: int

    @property
    def has_expand(self) -> bool:
        return self.w_exp != self.w_in

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.w_in == self.w_out


Block = MBConv  # the EfficientNet reference models' name for it


@dataclass(frozen=True, kw_only=True, eq=False)
class EffNet(Variant):
    """An EfficientNet: pycls ``cfg.EN``."""

    stem_w: int
    en_depths: tuple[int, ...]
    en_widths: tuple[int, ...]
    exp_ratios: tuple[float, ...]
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    se_r: float
    head_w: int

    section = "en"

    @property
    def depths(self) -> tuple[int, ...]:
        return self.en_depths

    @property
    def widths(self) -> tuple[int, ...]:
        return self.en_widths

    @property
    def family(self) -> str:
        return "effnet"

    @cached_property
    def blocks(self) -> tuple[MBConv, ...]:
        """Every MBConv block in forward order; the first block of a stage carries its stride."""
        blocks, w_in = [], self.stem_w
        for s, (depth, w_out) in enumerate(zip(self.depths, self.widths)):
            for b in range(depth):
                w_exp = int(w_in * self.exp_ratios[s])
                stride = self.strides[s] if b == 0 else 1
                blocks.append(MBConv(s + 1, b + 1, w_in, w_exp, int(w_in * self.se_r), w_out, self.kernels[s], stride))
                w_in = w_out
        return tuple(blocks)

    def point_width(self, point: str) -> int:
        """Channels at a pycls feature point."""
        special = {"stem": self.stem_w, "head": self.head_w, "logits": self.num_classes}
        return special[point] if point in special else self.widths[int(point[1:]) - 1]

    def conv_strides(self) -> dict[str, int]:
        """pycls convolution (its weight's key without ``.weight``) -> its stride, where it is not 1."""
        return {"stem.conv": 2} | {f"s{b.stage}.b{b.block}.dwise": b.stride for b in self.blocks if b.stride != 1}

    @cached_property
    def pycls_keys(self) -> tuple[KeySpec, ...]:
        """pycls ``EffNet.state_dict()`` keys, shapes and dtypes, in module order."""
        k = _Keys()
        k.conv("stem.conv", self.stem_w, 3, 3)
        k.bn("stem.bn", self.stem_w)
        for blk in self.blocks:
            p = f"s{blk.stage}.b{blk.block}"
            if blk.has_expand:
                k.conv(f"{p}.exp", blk.w_exp, blk.w_in, 1)
                k.bn(f"{p}.exp_bn", blk.w_exp)
            k.conv(f"{p}.dwise", blk.w_exp, 1, blk.kernel)
            k.bn(f"{p}.dwise_bn", blk.w_exp)
            k.conv(f"{p}.se.f_ex.0", blk.w_se, blk.w_exp, 1, bias=True)
            k.conv(f"{p}.se.f_ex.2", blk.w_exp, blk.w_se, 1, bias=True)
            k.conv(f"{p}.lin_proj", blk.w_out, blk.w_exp, 1)
            k.bn(f"{p}.lin_proj_bn", blk.w_out)
        k.conv("head.conv", self.head_w, self.widths[-1], 1)
        k.bn("head.conv_bn", self.head_w)
        k.fc("head.fc", self.num_classes, self.head_w)
        return tuple(k.keys)

    def numbers(self) -> dict[str, Any]:
        return {"stem_w": self.stem_w, "depths": list(self.depths), "widths": list(self.widths), "exp_ratios": list(self.exp_ratios),
                "kernels": list(self.kernels), "strides": list(self.strides), "se_r": self.se_r, "head_w": self.head_w}

    def config_values(self) -> dict[str, Any]:
        return {"head_w": self.head_w}


# --- AnyNet (RegNet, ResNet, ResNeXt, design-space models) --------------------------------------------


@dataclass(frozen=True)
class Bottleneck:
    """One pycls AnyNet block (``kind``: vanilla_block, res_basic_block, res_bottleneck_block):
    stage and block 1-based; the bottleneck's 1x1 -> w_b, grouped 3x3, [SE], 1x1 -> w_out (basic and
    vanilla: two 3x3 of w_out, so w_b == w_out), a projection shortcut where width or stride change
    (vanilla blocks have no shortcut at all). ``stride_1x1``: the stride on the first 1x1."""

    stage: int
    block: int
    w_in: int
    w_b: int
    w_out: int
    groups: int
    stride: int
    w_se: int  # 0: no SE
    kind: str = "res_bottleneck_block"
    stride_1x1: bool = False

    @property
    def has_proj(self) -> bool:
        return self.kind != "vanilla_block" and (self.w_in != self.w_out or self.stride != 1)


@dataclass(frozen=True, kw_only=True, eq=False)
class AnyNet(Variant):
    """A pycls AnyNet: a stem, stages of blocks, a head."""

    stem_type: str  # simple_stem_in | res_stem_in | res_stem_cifar
    stem_w: int
    stage_depths: tuple[int, ...]
    stage_widths: tuple[int, ...]
    strides: tuple[int, ...]
    bot_muls: tuple[float, ...]  # bottleneck blocks only (else 1.0)
    group_ws: tuple[int, ...]  # bottleneck blocks only (else the width)
    se_r: float  # 0: no SE
    block_type: str = "res_bottleneck_block"
    stride_1x1: bool = False  # models/resnet.py with RESNET.STRIDE_1X1: the stride on the first 1x1
    regnet: dict[str, Any] | None = None  # the cfg.REGNET numbers the stages came from

    @property
    def section(self) -> str:  # type: ignore[override]
        return "regnet" if self.regnet is not None else "anynet"

    @property
    def depths(self) -> tuple[int, ...]:
        return self.stage_depths

    @property
    def widths(self) -> tuple[int, ...]:
        return self.stage_widths

    @property
    def family(self) -> str:
        if self.block_type == "res_bottleneck_block" and self.stem_type == "simple_stem_in":
            return "regnet"
        if self.block_type != "vanilla_block" and self.stem_type != "simple_stem_in":
            return "resnet"
        return "anynet"

    @property
    def features(self) -> frozenset[str]:
        out = {f"stem:{self.stem_type}", f"block:{self.block_type}"}
        out |= {"se"} if self.se_r else set()
        out |= {"stride_1x1"} if self.stride_1x1 and any(s != 1 for s in self.strides) else set()
        return frozenset(out)

    @cached_property
    def blocks(self) -> tuple[Bottleneck, ...]:
        blocks, w_in = [], self.stem_w
        for s, (depth, w_out) in enumerate(zip(self.depths, self.widths)):
            w_b = int(round(w_out * self.bot_muls[s]))
            groups = w_b // min(self.group_ws[s], w_b)
            for b in range(depth):
                stride = self.strides[s] if b == 0 else 1
                w_se = int(round(w_in * self.se_r)) if self.se_r else 0
                blocks.append(Bottleneck(s + 1, b + 1, w_in, w_b, w_out, groups, stride, w_se, self.block_type, self.stride_1x1))
                w_in = w_out
        return tuple(blocks)

    def point_width(self, point: str) -> int:
        if point == "stem":
            return self.stem_w
        return self.num_classes if point == "logits" else self.widths[int(point[1:]) - 1]

    def conv_strides(self) -> dict[str, int]:
        """pycls convolution (its weight's key without ``.weight``) -> its stride, where it is not 1:
        the stem (but the CIFAR one), each first block's projection and the conv that strides (the 3x3,
        or the first 1x1 with RESNET.STRIDE_1X1; a basic or vanilla block's first 3x3)."""
        out = {} if self.stem_type == "res_stem_cifar" else {"stem.conv": 2}
        for b in self.blocks:
            if b.stride != 1:
                p = f"s{b.stage}.b{b.block}"
                striding = ("f.a" if b.stride_1x1 else "f.b") if b.kind == "res_bottleneck_block" else "f.a" if b.kind == "res_basic_block" else "a"
                out |= {f"{p}.{striding}": b.stride} | ({f"{p}.proj": b.stride} if b.has_proj else {})
        return out

    @cached_property
    def pycls_keys(self) -> tuple[KeySpec, ...]:
        """pycls ``AnyNet.state_dict()`` keys, shapes and dtypes, in module order."""
        k = _Keys()
        k.conv("stem.conv", self.stem_w, 3, 7 if self.stem_type == "res_stem_in" else 3)
        k.bn("stem.bn", self.stem_w)
        for blk in self.blocks:
            _block_keys(k, blk)
        k.fc("head.fc", self.num_classes, self.widths[-1])
        return tuple(k.keys)

    def numbers(self) -> dict[str, Any]:
        if self.regnet is not None:
            return dict(self.regnet)
        out = {"stem_type": self.stem_type, "stem_w": self.stem_w, "block_type": self.block_type, "depths": list(self.depths),
               "widths": list(self.widths), "strides": list(self.strides)}
        if self.block_type == "res_bottleneck_block":
            out |= {"bot_muls": list(self.bot_muls), "group_ws": list(self.group_ws), "se_r": self.se_r, "stride_1x1": self.stride_1x1}
        return out

    def config_values(self) -> dict[str, Any]:
        """What the families' config templates may use beyond the common placeholders."""
        first = self.blocks[0]
        return {
            "head_w": self.widths[-1],  # what the classifier reads
            "depth": sum(self.depths) * (3 if self.block_type == "res_bottleneck_block" else 2) + 2,  # ResNet-50's 50
            "stage_blocks": list(self.depths),
            "groups": first.groups,
            "width_per_group": first.w_b // first.groups,  # torchvision's and timm's ResNet(X) argument
            "regnet_arch": self.regnet_arch(),
            "stage_widths": list(self.widths),
            "stage_group_widths": [min(g, int(round(w * m))) for g, w, m in zip(self.group_ws, self.widths, self.bot_muls)],
            "se_ratio": self.se_r or None,
        }

    def regnet_arch(self) -> str:
        if self.regnet is None:
            return ""
        r = self.regnet
        return f"dict(w0={r['w0']}, wa={r['wa']}, wm={r['wm']}, group_w={r['group_w']}, depth={r['depth']}, bot_mul={r['bot_mul']})"


def _block_keys(k: _Keys, blk: Bottleneck) -> None:
    p = f"s{blk.stage}.b{blk.block}"
    if blk.kind == "vanilla_block":  # a, a_bn, b, b_bn; no shortcut
        k.conv(f"{p}.a", blk.w_out, blk.w_in, 3)
        k.bn(f"{p}.a_bn", blk.w_out)
        k.conv(f"{p}.b", blk.w_out, blk.w_out, 3)
        k.bn(f"{p}.b_bn", blk.w_out)
        return
    if blk.has_proj:
        k.conv(f"{p}.proj", blk.w_out, blk.w_in, 1)
        k.bn(f"{p}.bn", blk.w_out)
    if blk.kind == "res_basic_block":
        k.conv(f"{p}.f.a", blk.w_out, blk.w_in, 3)
        k.bn(f"{p}.f.a_bn", blk.w_out)
        k.conv(f"{p}.f.b", blk.w_out, blk.w_out, 3)
        k.bn(f"{p}.f.b_bn", blk.w_out)
        return
    k.conv(f"{p}.f.a", blk.w_b, blk.w_in, 1)
    k.bn(f"{p}.f.a_bn", blk.w_b)
    k.conv(f"{p}.f.b", blk.w_b, blk.w_b // blk.groups, 3)
    k.bn(f"{p}.f.b_bn", blk.w_b)
    if blk.w_se:
        k.conv(f"{p}.f.se.f_ex.0", blk.w_se, blk.w_b, 1, bias=True)
        k.conv(f"{p}.f.se.f_ex.2", blk.w_b, blk.w_se, 1, bias=True)
    k.conv(f"{p}.f.c", blk.w_out, blk.w_b, 1)
    k.bn(f"{p}.f.c_bn", blk.w_out)


def regnet_stages(depth: int, w0: float, wa: float, wm: float, group_w: int, bot_mul: float) -> tuple[list[int], list[int], list[int]]:
    """(depths, widths, group widths) of the stages pycls 0.1.1 builds from cfg.REGNET.

    Per-block widths w0 + wa * j are snapped to the nearest power of wm times w0 and to a
    multiple of 8; runs of equal widths are the stages (however many come out). Each stage's group
    width is capped at its bottleneck width, and the bottleneck width rounded to a multiple of it
    (ties to even, as Python's round; RegNetX-400MF's last stage is 384 by that, not 400).
    """
    widths = []
    for j in range(depth):
        u = w0 + wa * j
        w = w0 * wm ** round(math.log(u / w0) / math.log(wm))
        widths.append(int(round(w / 8) * 8))
    stage_widths, stage_depths = [], []
    for w in widths:
        if stage_widths and stage_widths[-1] == w:
            stage_depths[-1] += 1
        else:
            stage_widths.append(w)
            stage_depths.append(1)
    groups, final = [], []
    for w in stage_widths:
        w_bot = int(w * bot_mul)
        g = min(group_w, w_bot)
        w_bot = int(round(w_bot / g) * g)
        groups.append(g)
        final.append(int(w_bot / bot_mul))
    return stage_depths, final, groups


# --- reading numbers -------------------------------------------------------------------------------


def _head(f: Fields, path: str, stem: str | None) -> dict[str, Any]:
    head = f.section("variant")
    head.only({"name", "title", "config", "im_size", "test_size", "num_classes", "eps", "zoo"})
    name = head.text("name", pattern=NAME)
    if stem is not None and stem != name:
        f.fail(f"variant {name!r} must live in {name}.toml")
    return dict(
        name=name, title=head.text("title", name), config=head.text("config", ""), im_size=head.integer("im_size", 224, lo=8, hi=4096),
        test_size=head.integer("test_size", 256, lo=8, hi=4096), num_classes=head.integer("num_classes", 1000, lo=1, hi=100_000),
        eps=head.number("eps", 1e-5, lo=1e-12, hi=0.1), zoo=head.text("zoo", "", pattern=f"({NAME})?"), libraries=_libraries(f), path=path,
    )


def _libraries(f: Fields) -> dict[str, dict[str, Any]]:
    """``[libraries.<layout>]``: ``name`` (the library's own name for the model, e.g. timm's),
    ``builder`` (the call or config that builds it), ``eps`` (the BN eps that builder uses, when it
    is not what the weights need), ``note``. The registry checks each is a layout of the family."""
    section = f.section("libraries", {})
    out = {}
    for lib in section.data:
        if not re.fullmatch(NAME, str(lib)):
            section.fail(f"[libraries.{lib}] is not a layout name", fix="name a layout of the family, e.g. [libraries.timm]")
        entry = section.section(lib)
        entry.only({"name", "builder", "eps", "note"})
        out[lib] = {"name": entry.text("name", "", pattern=r"[A-Za-z0-9_.]{0,64}"), "builder": entry.text("builder", ""), "note": entry.text("note", "")}
        if entry.has("eps"):
            out[lib]["eps"] = entry.number("eps", lo=1e-12, hi=0.1)
    return out


def _stage_lists(s: Fields, names: tuple[str, ...], spec: dict[str, tuple]) -> dict[str, tuple]:
    """Per-stage lists, each as long as ``depths`` (1 to MAX_STAGES stages)."""
    n = len(s.items("depths", max_items=MAX_STAGES))
    if n == 0:
        s.fail(f"{s.at('depths')} is empty; a model has at least one stage")
    out = {}
    for name in names:
        kind, lo, hi = spec[name]
        out[name] = (s.ints if kind is int else s.numbers)(name, lo=lo, hi=hi, length=n)
    return out


def _effnet(f: Fields, common: dict[str, Any]) -> EffNet:
    en = f.section("en")
    en.only({"stem_w", "depths", "widths", "exp_ratios", "kernels", "strides", "se_r", "head_w"})
    lists = _stage_lists(en, ("depths", "widths", "exp_ratios", "kernels", "strides"), {
        "depths": (int, 1, 64), "widths": (int, 1, 8192), "exp_ratios": (float, 1.0, 16.0), "kernels": (int, 1, 15), "strides": (int, 1, 2)})
    return EffNet(
        **common, stem_w=en.integer("stem_w", lo=1, hi=4096), en_depths=lists["depths"], en_widths=lists["widths"],
        exp_ratios=lists["exp_ratios"], kernels=lists["kernels"], strides=lists["strides"],
        se_r=en.number("se_r", 0.25, lo=0.01, hi=1.0), head_w=en.integer("head_w", lo=1, hi=16384),
    )


def _regnet(f: Fields, common: dict[str, Any]) -> AnyNet:
    r = f.section("regnet")
    r.only({"depth", "w0", "wa", "wm", "group_w", "bot_mul", "se_on", "se_r", "stem_w", "stride", "stem_type"})
    numbers = dict(
        depth=r.integer("depth", lo=1, hi=128), w0=r.integer("w0", lo=8, hi=4096), wa=r.number("wa", lo=0.0, hi=4096.0),
        wm=r.number("wm", lo=1.01, hi=16.0), group_w=r.integer("group_w", lo=1, hi=4096), bot_mul=r.number("bot_mul", 1.0, lo=0.01, hi=8.0),
    )
    depths, widths, groups = regnet_stages(**numbers)
    if len(depths) > MAX_STAGES:
        r.fail(f"[regnet] numbers make {len(depths)} stages (at most {MAX_STAGES})")
    se_on = r.data.get("se_on", False) is True
    stride, stem_w = r.integer("stride", 2, lo=1, hi=2), r.integer("stem_w", 32, lo=1, hi=4096)
    stem_type, se_r = r.text("stem_type", "simple_stem_in", choices=STEMS), r.number("se_r", 0.25, lo=0.01, hi=1.0)
    recorded = {**numbers, "se_on": se_on, "se_r": se_r, "stem_w": stem_w, "stride": stride, "stem_type": stem_type}
    n = len(depths)
    return AnyNet(
        **common, stem_type=stem_type, stem_w=stem_w, stage_depths=tuple(depths), stage_widths=tuple(widths), strides=(stride,) * n,
        bot_muls=(numbers["bot_mul"],) * n, group_ws=tuple(groups), se_r=se_r if se_on else 0.0, regnet=recorded,
    )


def _anynet(f: Fields, common: dict[str, Any]) -> AnyNet:
    a = f.section("anynet")
    a.only({"stem_type", "stem_w", "block_type", "depths", "widths", "strides", "bot_muls", "group_ws", "se_r", "stride_1x1"})
    block = a.text("block_type", "res_bottleneck_block", choices=BLOCKS)
    bottleneck = block == "res_bottleneck_block"
    names = ("depths", "widths", "strides") + (("bot_muls", "group_ws") if bottleneck else ())
    lists = _stage_lists(a, names, {"depths": (int, 1, 256), "widths": (int, 1, 8192), "strides": (int, 1, 2),
                                    "bot_muls": (float, 0.01, 8.0), "group_ws": (int, 1, 8192)})
    if not bottleneck:
        a.only({"stem_type", "stem_w", "block_type", "depths", "widths", "strides"})  # pycls asserts bm, gw and se_r are None
    n = len(lists["depths"])
    return AnyNet(
        **common, stem_type=a.text("stem_type", choices=STEMS), stem_w=a.integer("stem_w", lo=1, hi=4096), block_type=block,
        stage_depths=lists["depths"], stage_widths=lists["widths"], strides=lists["strides"],
        bot_muls=lists.get("bot_muls", (1.0,) * n), group_ws=lists.get("group_ws", lists["widths"]),
        se_r=a.number("se_r", 0.0, lo=0.0, hi=1.0) if bottleneck else 0.0, stride_1x1=bottleneck and a.data.get("stride_1x1", False) is True,
    )


_SECTIONS = {"en": _effnet, "regnet": _regnet, "anynet": _anynet}


def numbers_digest(record: dict[str, Any]) -> str:
    """sha256 of a model's numbers (for a model made from a cfg, a meta or shapes: no file)."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def parse_variant(data: dict[str, Any], path: str = "", digest: str = "", *, stem: str | None = None, error: type = TableError,
                  names: Callable[[str], str] | None = None) -> Variant:
    """A model from its numbers: ``[variant]`` and one of ``[en]``, ``[regnet]``, ``[anynet]`` (plus
    ``[libraries.*]`` in a variant file), every field checked for type and range. ``stem``: the
    variant file's name, which must be the variant's; ``names``: how the document names each field
    (``Fields``: a pycls cfg's keys)."""
    f = Fields(data, "", error, path or None, names)
    found = [s for s in _SECTIONS if s in data]
    if len(found) != 1:
        f.fail(f"the numbers need exactly one of [{'], ['.join(_SECTIONS)}]; found {found or 'none'}")
    f.only({"variant", "libraries", found[0]})
    head = _head(f, path, stem)
    if stem is not None:  # a zoo variant file: the model is itself
        head["zoo"] = head["name"]
    variant = _SECTIONS[found[0]](f, head)
    if any(b.kind == "res_bottleneck_block" and b.w_b % b.groups for b in variant.blocks if isinstance(b, Bottleneck)):
        f.fail(f"[{found[0]}] group widths leave a stage's bottleneck width not divisible by its groups (pycls cannot build it)")
    object.__setattr__(variant, "digest", digest or numbers_digest(variant.record()))
    return variant


def replaced(variant: Variant, **changes: Any) -> Variant:
    """The variant with ``changes`` (another classifier, eps, name...), its digest the digest of
    its new record (a cached expansion keyed by the old one never serves it)."""
    from dataclasses import replace

    new = replace(variant, **changes)
    if new.record() != variant.record():
        object.__setattr__(new, "digest", numbers_digest(new.record()))
    return new
