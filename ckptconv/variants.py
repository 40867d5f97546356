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

STAGES = 7  # EfficientNet B0-B7 all have seven MBConv stages
BN_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
# pycls feature points, in forward order: after the stem, after each stage, after head conv+BN+SiLU,
# and the classifier's logits.
POINTS = ("stem", *(f"s{i}" for i in range(1, STAGES + 1)), "head", "logits")


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
    im_size: int
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


def parse_variant(data: dict[str, Any], path: Path) -> Variant:
    """Build a ``Variant`` from a parsed variant TOML file, checking every field."""
    try:
        head, en = data["variant"], data["en"]
        fields = dict(
            name=str(head["name"]),
            title=str(head.get("title", head["name"])),
            config=str(head.get("config", "")),
            im_size=int(head["im_size"]),
            stem_w=int(en["stem_w"]),
            depths=tuple(int(x) for x in en["depths"]),
            widths=tuple(int(x) for x in en["widths"]),
            exp_ratios=tuple(float(x) for x in en["exp_ratios"]),
            kernels=tuple(int(x) for x in en["kernels"]),
            strides=tuple(int(x) for x in en["strides"]),
            se_r=float(en["se_r"]),
            head_w=int(en["head_w"]),
            num_classes=int(en.get("num_classes", 1000)),
            path=str(path),
        )
    except KeyError as e:
        raise TableError(f"variant file has no {e.args[0]!r}", fix="see mappings/variants/b0.toml", path=str(path))
    except (TypeError, ValueError) as e:
        raise TableError(f"variant file has a malformed value ({e})", path=str(path))
    for field in ("depths", "widths", "exp_ratios", "kernels", "strides"):
        if len(fields[field]) != STAGES:
            raise TableError(f"[en].{field} has {len(fields[field])} entries, expected {STAGES}", path=str(path))
    if path.stem != fields["name"]:
        raise TableError(f"variant {fields['name']!r} must live in {fields['name']}.toml", path=str(path))
    return Variant(**fields)
