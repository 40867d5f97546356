"""EfficientNet variants as data: pycls's ``cfg.EN`` numbers, read from ``mappings/variants/*.toml``.

Everything structural follows from these numbers: the blocks (``Variant.blocks``), the pycls
state-dict keys and shapes (``Variant.pycls_keys``) and the channel width at every feature point.
Nothing here imports torch, so arch detection and the mapping plan are cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import TableError
from .fields import Fields
from .references import POINTS, STAGES
from .tables import NAME

BN_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
__all__ = ["POINTS", "STAGES", "Block", "KeySpec", "Variant", "parse_variant"]


@dataclass(frozen=True)
class KeySpec:
    """One state-dict entry: key, shape and dtype name (``float32`` / ``int64``)."""

    key: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class Block:
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


@dataclass(frozen=True)
class Variant:
    """An EfficientNet variant: pycls ``cfg.EN`` plus the resolution it is trained at."""

    name: str
    title: str
    config: str
    im_size: int  # TRAIN.IM_SIZE: trained at, and the centre crop pycls tests with
    test_size: int  # TEST.IM_SIZE: pycls resizes the short side to this (bilinear) before the crop
    stem_w: int
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    exp_ratios: tuple[float, ...]
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    se_r: float
    head_w: int
    num_classes: int
    path: str = ""
    digest: str = ""  # sha256 of the variant file: outputs record it, so batch knows a changed one

    @cached_property
    def blocks(self) -> tuple[Block, ...]:
        """Every MBConv block in forward order; the first block of a stage carries its stride."""
        blocks, w_in = [], self.stem_w
        for s in range(STAGES):
            for b in range(self.depths[s]):
                w_exp = int(w_in * self.exp_ratios[s])
                stride = self.strides[s] if b == 0 else 1
                blocks.append(
                    Block(s + 1, b + 1, w_in, w_exp, int(w_in * self.se_r), self.widths[s], self.kernels[s], stride)
                )
                w_in = self.widths[s]
        return tuple(blocks)

    def point_width(self, point: str) -> int:
        """Channels at a pycls feature point (see ``POINTS``)."""
        if point == "stem":
            return self.stem_w
        if point == "head":
            return self.head_w
        if point == "logits":
            return self.num_classes
        return self.widths[int(point[1:]) - 1]

    @cached_property
    def pycls_keys(self) -> tuple[KeySpec, ...]:
        """pycls ``EffNet.state_dict()`` keys, shapes and dtypes, in module order."""
        keys: list[KeySpec] = []

        def conv(name: str, w_out: int, w_in: int, k: int, bias: bool = False) -> None:
            keys.append(KeySpec(f"{name}.weight", (w_out, w_in, k, k)))
            if bias:
                keys.append(KeySpec(f"{name}.bias", (w_out,)))

        def bn(name: str, w: int) -> None:
            keys.extend(KeySpec(f"{name}.{p}", (w,)) for p in BN_PARAMS[:4])
            keys.append(KeySpec(f"{name}.num_batches_tracked", (), "int64"))

        conv("stem.conv", self.stem_w, 3, 3)
        bn("stem.bn", self.stem_w)
        for blk in self.blocks:
            p = f"s{blk.stage}.b{blk.block}"
            if blk.has_expand:
                conv(f"{p}.exp", blk.w_exp, blk.w_in, 1)
                bn(f"{p}.exp_bn", blk.w_exp)
            conv(f"{p}.dwise", blk.w_exp, 1, blk.kernel)
            bn(f"{p}.dwise_bn", blk.w_exp)
            conv(f"{p}.se.f_ex.0", blk.w_se, blk.w_exp, 1, bias=True)
            conv(f"{p}.se.f_ex.2", blk.w_exp, blk.w_se, 1, bias=True)
            conv(f"{p}.lin_proj", blk.w_out, blk.w_exp, 1)
            bn(f"{p}.lin_proj_bn", blk.w_out)
        conv("head.conv", self.head_w, self.widths[-1], 1)
        bn("head.conv_bn", self.head_w)
        keys.append(KeySpec("head.fc.weight", (self.num_classes, self.head_w)))
        keys.append(KeySpec("head.fc.bias", (self.num_classes,)))
        return tuple(keys)

    def cfg_en(self) -> dict[str, Any]:
        """The variant as pycls's ``cfg.EN`` section (upper-case keys), for matching a dumped cfg."""
        return {
            "STEM_W": self.stem_w,
            "DEPTHS": list(self.depths),
            "WIDTHS": list(self.widths),
            "EXP_RATIOS": list(self.exp_ratios),
            "KERNELS": list(self.kernels),
            "STRIDES": list(self.strides),
            "SE_R": self.se_r,
            "HEAD_W": self.head_w,
        }


def parse_variant(data: dict[str, Any], path: Path, digest: str = "") -> Variant:
    """Build a ``Variant`` from a parsed variant TOML file, checking every field and its range."""
    f = Fields(data, "", TableError, str(path))
    f.only({"variant", "en"})
    head, en = f.section("variant"), f.section("en")
    head.only({"name", "title", "config", "im_size", "test_size"})
    en.only({"stem_w", "depths", "widths", "exp_ratios", "kernels", "strides", "se_r", "head_w", "num_classes"})
    name = head.text("name", pattern=NAME)
    if path.stem != name:
        f.fail(f"variant {name!r} must live in {name}.toml")
    return Variant(
        name=name,
        title=head.text("title", name),
        config=head.text("config", ""),
        im_size=head.integer("im_size", lo=8, hi=4096),
        test_size=head.integer("test_size", lo=8, hi=4096),
        stem_w=en.integer("stem_w", lo=1, hi=4096),
        depths=en.ints("depths", lo=1, hi=64, length=STAGES),
        widths=en.ints("widths", lo=1, hi=8192, length=STAGES),
        exp_ratios=en.numbers("exp_ratios", lo=1.0, hi=16.0, length=STAGES),
        kernels=en.ints("kernels", lo=1, hi=15, length=STAGES),
        strides=en.ints("strides", lo=1, hi=2, length=STAGES),
        se_r=en.number("se_r", lo=0.01, hi=1.0),
        head_w=en.integer("head_w", lo=1, hi=16384),
        num_classes=en.integer("num_classes", 1000, lo=1, hi=100_000),
        path=str(path),
        digest=digest,
    )
