"""The reference models verification can run, by the name a table gives in ``[layout].reference``,
and the outputs (levels) each one gives. torch-free: tables are checked against this when they load;
``ckptconv.models`` builds the models and a test holds each model to its entry here.
"""

from __future__ import annotations

STAGES = 7  # EfficientNet B0-B7 all have seven MBConv stages
# pycls feature points, in forward order: after the stem, after each stage, after head conv+BN+SiLU,
# and the classifier's logits.
POINTS = ("stem", *(f"s{i}" for i in range(1, STAGES + 1)), "head", "logits")

LEVELS: dict[str, tuple[str, ...]] = {
    "pycls": POINTS,
    "mmdet": tuple(f"layers.{i}" for i in range(7)),
    "mmdet-stages": ("conv1", *(f"layer{s}" for s in range(1, STAGES + 1))),
    "mmpretrain": (*(f"backbone.layers.{i}" for i in range(7)), "logits"),
    "timm": ("bn1", *(f"blocks.{i}" for i in range(STAGES)), "bn2", "logits"),
}
