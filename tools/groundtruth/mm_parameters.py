#!/usr/bin/env python3
"""Write ckptconv/data/mm_parameters.json: the parameters each MMDetection / mmpretrain class
ckptconv's configs build takes, from tests/data/signatures.json (``inspect.signature`` of the real
classes, recorded by tools/groundtruth/design_space_mm.py). A class that takes ``**kwargs`` and
hands them to its base (ResNeXt, ResNet_CIFAR, ResNetV1c/d -> ResNet) gets its base's too.
``verify --config`` holds a config's backbone and neck keys to these lists: a key the class does
not take is a config mmengine cannot build. Run from the repository root:

    python tools/groundtruth/mm_parameters.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASES = {"backbones.ResNeXt": "backbones.ResNet", "backbones.ResNet_CIFAR": "backbones.ResNet",
         "backbones.ResNetV1c": "backbones.ResNet", "backbones.ResNetV1d": "backbones.ResNet"}  # each passes **kwargs to ResNet.__init__


def parameters(classes: dict) -> dict[str, list[str]]:
    out = {}
    for name, sig in classes.items():
        names = [p["name"] for p in sig["params"] if p["kind"] not in ("VAR_KEYWORD", "VAR_POSITIONAL")]
        if sig["accepts_kwargs"]:
            base = classes[BASES[name]]
            names += [p["name"] for p in base["params"] if p["name"] not in names and p["kind"] not in ("VAR_KEYWORD", "VAR_POSITIONAL")]
        out[name.split(".", 1)[1]] = sorted(set(names))
    return out


def main() -> None:
    sig = json.loads((ROOT / "tests" / "data" / "signatures.json").read_text())
    data = {"source": f"tests/data/signatures.json ({sig['source']}), by tools/groundtruth/mm_parameters.py", "versions": sig["versions"],
            **{lib: parameters({k: v for k, v in sig[lib].items() if k.startswith(("backbones.", "necks."))}) for lib in ("mmdet", "mmpretrain")}}
    (ROOT / "ckptconv" / "data" / "mm_parameters.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
