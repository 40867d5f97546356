"""The model families of the pycls zoo, and the reference models each can be verified with. torch-free.

A family is a pycls model class (EffNet, or AnyNet with one stem) whose variants differ only in
numbers. Each has its pycls feature points (what verification compares), its number of stages, the
cfg section and MODEL.TYPE that describe its variants in a pycls cfg dump, and the references: the
plain-torch models of ``ckptconv.verification.models`` a table may name in ``[layout].reference``, with the
outputs (levels) each gives. Tables are checked against this when they load; a test holds every
reference model to its entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _stages(n: int) -> tuple[str, ...]:
    return tuple(f"s{i}" for i in range(1, n + 1))


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    stages: int
    points: tuple[str, ...]  # pycls feature points, in forward order
    model_types: tuple[str, ...]  # cfg MODEL.TYPE values of its checkpoints
    section: str  # the cfg section holding its numbers
    references: dict[str, tuple[str, ...]] = field(default_factory=dict)  # reference name -> its levels


_EFFNET_POINTS = ("stem", *_stages(7), "head", "logits")  # after the stem, each stage, head conv+BN+SiLU, fc
_ANYNET_POINTS = ("stem", *_stages(4), "logits")  # after the stem, each stage, the fc
_RESNET_LIKE = {  # mmdet/mmpretrain RegNet, ResNet, ResNeXt; timm's and torchvision's ResNet (resnet only)
    "mmdet-resnet": ("stem", *(f"layer{i}" for i in range(1, 5))),
    "mmpretrain-resnet": ("backbone.stem", *(f"backbone.layer{i}" for i in range(1, 5)), "logits"),
    "resnet": ("stem", *(f"layer{i}" for i in range(1, 5)), "logits"),
}

FAMILIES: dict[str, Family] = {
    "effnet": Family(
        "effnet", "EfficientNet (pycls EffNet)", 7, _EFFNET_POINTS, ("effnet", "efficientnet"), "EN",
        {
            "pycls": _EFFNET_POINTS,
            "mmdet": tuple(f"layers.{i}" for i in range(7)),
            "mmdet-stages": ("conv1", *(f"layer{s}" for s in range(1, 8))),
            "mmpretrain": (*(f"backbone.layers.{i}" for i in range(7)), "logits"),
            "timm": ("bn1", *(f"blocks.{i}" for i in range(7)), "bn2", "logits"),
            "torchvision": tuple(f"features.{i}" for i in range(9)) + ("logits",),
        },
    ),
    "regnet": Family(
        "regnet", "RegNetX and RegNetY (pycls RegNet, an AnyNet)", 4, _ANYNET_POINTS, ("regnet",), "REGNET",
        {
            "pycls": _ANYNET_POINTS,
            "mmdet-resnet": _RESNET_LIKE["mmdet-resnet"],
            "mmpretrain-resnet": _RESNET_LIKE["mmpretrain-resnet"],
            "timm-regnet": ("stem", *_stages(4), "logits"),
            "torchvision-regnet": ("stem", *(f"trunk_output.block{i}" for i in range(1, 5)), "logits"),
        },
    ),
    "resnet": Family(
        "resnet", "ResNet and ResNeXt (pycls AnyNet with the ResNet stem)", 4, _ANYNET_POINTS, ("anynet",), "ANYNET",
        {"pycls": _ANYNET_POINTS, **_RESNET_LIKE},
    ),
}  # fmt: skip


def family(name: str) -> Family:
    return FAMILIES[name]
