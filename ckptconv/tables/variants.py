"""The models of the pycls zoo as data: a variant file per model, ``mappings/<family>/variants/*.toml``.

Everything structural follows from a variant's numbers: its blocks, its pycls state-dict keys and
shapes (``pycls_keys``) and the channel width at every feature point. Two kinds:
- ``EffNet``: pycls's ``cfg.EN`` numbers (EfficientNet B0-B5);
- ``AnyNet``: per-stage numbers (depths, widths, strides, bottleneck multipliers, group widths, SE);
  a RegNet file holds pycls's ``cfg.REGNET`` numbers and ``regnet_stages`` derives the stages from
  them as pycls 0.1.1 does; a ResNet or ResNeXt file holds its ``cfg.ANYNET`` numbers.
A variant also names its counterpart in the libraries that have one (``[libraries]``).
Nothing here imports torch, so arch detection and the mapping plan are cheap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import TableError
from .families import FAMILIES
from ..fields import Fields
from .layout import NAME

BN_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


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
    """A model of the pycls zoo: its family, names, the resolutions pycls trains and tests it at,
    and what each library that has it calls it."""

    name: str
    family: str
    title: str
    config: str  # pycls config name; zoo files are called <config>.pyth
    im_size: int  # TRAIN.IM_SIZE: trained at, and the centre crop pycls tests with
    test_size: int  # TEST.IM_SIZE: pycls resizes the short side to this (bilinear) before the crop
    num_classes: int
    libraries: dict[str, dict[str, Any]] = field(default_factory=dict)  # library -> {builder, eps, ...}
    path: str = ""
    digest: str = ""  # sha256 of the variant file: outputs record it, so batch knows a changed one

    @property
    def depths(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def widths(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def features(self) -> frozenset[str]:
        """What a table may refuse a variant for (``se``: squeeze-and-excitation)."""
        return frozenset()

    def library(self, name: str) -> dict[str, Any]:
        return self.libraries.get(name, {})


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

    @property
    def depths(self) -> tuple[int, ...]:
        return self.en_depths

    @property
    def widths(self) -> tuple[int, ...]:
        return self.en_widths

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

    def cfg(self) -> dict[str, Any]:
        """The variant as pycls's ``cfg.EN`` section (upper-case keys), for matching a dumped cfg."""
        return {
            "STEM_W": self.stem_w, "DEPTHS": list(self.depths), "WIDTHS": list(self.widths),
            "EXP_RATIOS": list(self.exp_ratios), "KERNELS": list(self.kernels), "STRIDES": list(self.strides),
            "SE_R": self.se_r, "HEAD_W": self.head_w,
        }  # fmt: skip

    def config_values(self) -> dict[str, Any]:
        return {"head_w": self.head_w}


@dataclass(frozen=True)
class Bottleneck:
    """One pycls ``ResBottleneckBlock``: 1x1, 3x3 (grouped, strided), [SE], 1x1, with a projection
    shortcut where width or stride change."""

    stage: int
    block: int
    w_in: int
    w_b: int
    w_out: int
    groups: int
    stride: int
    w_se: int  # 0: no SE

    @property
    def has_proj(self) -> bool:
        return self.w_in != self.w_out or self.stride != 1


@dataclass(frozen=True, kw_only=True, eq=False)
class AnyNet(Variant):
    """A pycls AnyNet (RegNet, ResNet, ResNeXt): a stem, four stages of bottleneck blocks, a head."""

    stem_type: str  # simple_stem_in (3x3) | res_stem_in (7x7 and a max pool)
    stem_w: int
    stage_depths: tuple[int, ...]
    stage_widths: tuple[int, ...]
    strides: tuple[int, ...]
    bot_muls: tuple[float, ...]
    group_ws: tuple[int, ...]
    se_r: float  # 0: no SE
    regnet: dict[str, Any] | None = None  # the cfg.REGNET numbers the stages came from

    @property
    def depths(self) -> tuple[int, ...]:
        return self.stage_depths

    @property
    def widths(self) -> tuple[int, ...]:
        return self.stage_widths

    @property
    def features(self) -> frozenset[str]:
        return frozenset({"se"}) if self.se_r else frozenset()

    @cached_property
    def blocks(self) -> tuple[Bottleneck, ...]:
        blocks, w_in = [], self.stem_w
        for s, (depth, w_out) in enumerate(zip(self.depths, self.widths)):
            w_b = int(round(w_out * self.bot_muls[s]))
            groups = w_b // min(self.group_ws[s], w_b)
            for b in range(depth):
                stride = self.strides[s] if b == 0 else 1
                w_se = int(round(w_in * self.se_r)) if self.se_r else 0
                blocks.append(Bottleneck(s + 1, b + 1, w_in, w_b, w_out, groups, stride, w_se))
                w_in = w_out
        return tuple(blocks)

    def point_width(self, point: str) -> int:
        if point == "stem":
            return self.stem_w
        return self.num_classes if point == "logits" else self.widths[int(point[1:]) - 1]

    @cached_property
    def pycls_keys(self) -> tuple[KeySpec, ...]:
        """pycls ``AnyNet.state_dict()`` keys, shapes and dtypes, in module order."""
        k = _Keys()
        k.conv("stem.conv", self.stem_w, 3, 3 if self.stem_type == "simple_stem_in" else 7)
        k.bn("stem.bn", self.stem_w)
        for blk in self.blocks:
            p = f"s{blk.stage}.b{blk.block}"
            if blk.has_proj:
                k.conv(f"{p}.proj", blk.w_out, blk.w_in, 1)
                k.bn(f"{p}.bn", blk.w_out)
            k.conv(f"{p}.f.a", blk.w_b, blk.w_in, 1)
            k.bn(f"{p}.f.a_bn", blk.w_b)
            k.conv(f"{p}.f.b", blk.w_b, blk.w_b // blk.groups, 3)
            k.bn(f"{p}.f.b_bn", blk.w_b)
            if blk.w_se:
                k.conv(f"{p}.f.se.f_ex.0", blk.w_se, blk.w_b, 1, bias=True)
                k.conv(f"{p}.f.se.f_ex.2", blk.w_b, blk.w_se, 1, bias=True)
            k.conv(f"{p}.f.c", blk.w_out, blk.w_b, 1)
            k.bn(f"{p}.f.c_bn", blk.w_out)
        k.fc("head.fc", self.num_classes, self.widths[-1])
        return tuple(k.keys)

    def cfg(self) -> dict[str, Any]:
        """The variant as its cfg section (REGNET or ANYNET), for matching a dumped cfg."""
        if self.regnet is not None:
            return {key.upper(): value for key, value in self.regnet.items()}
        return {
            "STEM_TYPE": self.stem_type, "STEM_W": self.stem_w, "DEPTHS": list(self.depths), "WIDTHS": list(self.widths),
            "STRIDES": list(self.strides), "BOT_MULS": list(self.bot_muls), "GROUP_WS": list(self.group_ws),
        }  # fmt: skip

    def config_values(self) -> dict[str, Any]:
        """What the families' config templates may use beyond the common placeholders."""
        first = self.blocks[0]
        return {
            "head_w": self.widths[-1],  # what the classifier reads
            "depth": sum(self.depths) * 3 + 2,  # ResNet-50's 50: 3 layers a block, the stem, the fc
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


def regnet_stages(depth: int, w0: float, wa: float, wm: float, group_w: int, bot_mul: float) -> tuple[list[int], list[int], list[int]]:
    """(depths, widths, group widths) of the four stages pycls 0.1.1 builds from cfg.REGNET.

    Per-block widths w0 + wa * j are snapped to the nearest power of wm times w0 and to a
    multiple of 8; runs of equal widths are the stages. Each stage's group width is capped at its
    bottleneck width, and the bottleneck width rounded to a multiple of it (ties to even, as
    Python's round; RegNetX-400MF's last stage is 384 by that, not 400).
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


def _head(f: Fields, path: Path, family: str) -> dict[str, Any]:
    head = f.section("variant")
    head.only({"name", "title", "config", "im_size", "test_size", "num_classes"})
    name = head.text("name", pattern=NAME)
    if path.stem != name:
        f.fail(f"variant {name!r} must live in {name}.toml")
    return dict(
        name=name, family=family, title=head.text("title", name), config=head.text("config", ""),
        im_size=head.integer("im_size", lo=8, hi=4096), test_size=head.integer("test_size", lo=8, hi=4096),
        num_classes=head.integer("num_classes", 1000, lo=1, hi=100_000), libraries=_libraries(f),
    )  # fmt: skip


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


def _effnet(f: Fields, common: dict[str, Any]) -> EffNet:
    en = f.section("en")
    en.only({"stem_w", "depths", "widths", "exp_ratios", "kernels", "strides", "se_r", "head_w"})
    n = FAMILIES["effnet"].stages
    return EffNet(
        **common, stem_w=en.integer("stem_w", lo=1, hi=4096), en_depths=en.ints("depths", lo=1, hi=64, length=n),
        en_widths=en.ints("widths", lo=1, hi=8192, length=n), exp_ratios=en.numbers("exp_ratios", lo=1.0, hi=16.0, length=n),
        kernels=en.ints("kernels", lo=1, hi=15, length=n), strides=en.ints("strides", lo=1, hi=2, length=n),
        se_r=en.number("se_r", lo=0.01, hi=1.0), head_w=en.integer("head_w", lo=1, hi=16384),
    )  # fmt: skip


def _regnet(f: Fields, common: dict[str, Any]) -> AnyNet:
    r = f.section("regnet")
    r.only({"depth", "w0", "wa", "wm", "group_w", "bot_mul", "se_on", "se_r", "stem_w", "stride"})
    numbers = dict(
        depth=r.integer("depth", lo=1, hi=64), w0=r.integer("w0", lo=8, hi=4096), wa=r.number("wa", lo=0.0, hi=4096.0),
        wm=r.number("wm", lo=1.01, hi=16.0), group_w=r.integer("group_w", lo=1, hi=4096), bot_mul=r.number("bot_mul", 1.0, lo=0.01, hi=8.0),
    )  # fmt: skip
    se_on = r.data.get("se_on", False) is True
    depths, widths, groups = regnet_stages(**numbers)
    if len(depths) != FAMILIES["regnet"].stages:
        r.fail(f"[regnet] numbers make {len(depths)} stages; a RegNet has {FAMILIES['regnet'].stages}")
    stride = r.integer("stride", 2, lo=1, hi=2)
    return AnyNet(
        **common, stem_type="simple_stem_in", stem_w=r.integer("stem_w", 32, lo=1, hi=4096), stage_depths=tuple(depths),
        stage_widths=tuple(widths), strides=(stride,) * 4, bot_muls=(numbers["bot_mul"],) * 4, group_ws=tuple(groups),
        se_r=r.number("se_r", 0.25, lo=0.01, hi=1.0) if se_on else 0.0, regnet={**numbers, "se_on": se_on},
    )  # fmt: skip


def _anynet(f: Fields, common: dict[str, Any]) -> AnyNet:
    a = f.section("anynet")
    a.only({"stem_type", "stem_w", "depths", "widths", "strides", "bot_muls", "group_ws", "se_r"})
    return AnyNet(
        **common, stem_type=a.text("stem_type", choices=("simple_stem_in", "res_stem_in")), stem_w=a.integer("stem_w", lo=1, hi=4096),
        stage_depths=a.ints("depths", lo=1, hi=64, length=4), stage_widths=a.ints("widths", lo=1, hi=8192, length=4),
        strides=a.ints("strides", lo=1, hi=2, length=4), bot_muls=a.numbers("bot_muls", lo=0.01, hi=8.0, length=4),
        group_ws=a.ints("group_ws", lo=1, hi=4096, length=4), se_r=a.number("se_r", 0.0, lo=0.0, hi=1.0),
    )  # fmt: skip


_SECTIONS = {"effnet": ("en", _effnet), "regnet": ("regnet", _regnet), "resnet": ("anynet", _anynet)}


def parse_variant(data: dict[str, Any], path: Path, digest: str = "", family: str = "effnet") -> Variant:
    """Build a variant of ``family`` from a parsed variant TOML file, checking every field and its range."""
    f = Fields(data, "", TableError, str(path))
    section, build = _SECTIONS[family]
    f.only({"variant", "libraries", section})
    common = _head(f, path, family)
    return build(f, {**common, "path": str(path), "digest": digest})
