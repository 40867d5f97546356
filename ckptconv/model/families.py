"""The model families. torch-free. (The reference models each can be verified with are their
libraries': ``ckptconv/libraries``.)

A family is a kind of pycls network whose models differ only in numbers, so one set of tables
(``mappings/<family>/layouts``) maps them all: EfficientNet (pycls's EffNet); RegNet (an AnyNet with
the 3x3 stem and bottleneck blocks, whatever its numbers: pycls's RegNets and design-space AnyNets);
ResNet (an AnyNet with the ResNet or the CIFAR stem and basic or bottleneck blocks: pycls's
ResNe(X)ts, ``models/resnet.py`` included); and AnyNet (every other AnyNet: vanilla blocks, basic
blocks behind the 3x3 stem), which only pycls itself holds. A model's family follows from its
structure (``Variant.family``), never from its cfg's MODEL.TYPE.

Points (pycls's feature points) and reference levels may hold ``{n}`` (stage n, 1-based) and ``{i}``
(n - 1): a table's ``"layer{n}" = "s{n}"`` stands for every stage the model has.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    points: tuple[str, ...]  # pycls feature points, in forward order (``s{n}``: every stage)
    paddable: bool = False  # a library may pad its convolutions TF-"same" (mmcv's Conv2dAdaptivePadding): verify --padding applies


_EFFNET_POINTS = ("stem", "s{n}", "head", "logits")  # after the stem, each stage, head conv+BN+SiLU, fc
_ANYNET_POINTS = ("stem", "s{n}", "logits")  # after the stem, each stage, the fc

FAMILIES: dict[str, Family] = {
    "effnet": Family("effnet", "EfficientNet (pycls EffNet)", _EFFNET_POINTS, paddable=True),
    "regnet": Family("regnet", "RegNet and AnyNet with the 3x3 stem and bottleneck blocks (pycls RegNet, AnyNet)", _ANYNET_POINTS),
    "resnet": Family("resnet", "ResNet and ResNeXt (pycls AnyNet with the ResNet or CIFAR stem, and models/resnet.py)", _ANYNET_POINTS),
    "anynet": Family("anynet", "other AnyNets (vanilla blocks, or basic blocks behind the 3x3 stem): pycls only", _ANYNET_POINTS),
}


def expand(pattern: str, stages: int) -> list[str]:
    """A point or level name for every stage it stands for (itself when it names one thing)."""
    if "{n}" not in pattern and "{i}" not in pattern:
        return [pattern]
    return [pattern.format(n=n, i=n - 1) for n in range(1, stages + 1)]
