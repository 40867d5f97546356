#!/usr/bin/env python3
"""Write ckptconv/data/mm_parameters.json: the parameters each MMDetection / mmpretrain class
ckptconv's configs build takes, from tests/data/signatures.json (``inspect.signature`` of the real
classes, recorded by tools/groundtruth/design_space_mm.py). A class that takes ``**kwargs`` and
hands them to its base (ResNeXt, ResNet_CIFAR, ResNetV1c/d -> ResNet) gets its base's too.
``verify --config`` holds a config's backbone and neck keys to these lists: a key the class does
not take is a config mmengine cannot build. Standard library only: any Python 3.11 runs it, from
the repository root, after design_space_mm.py:

    python tools/groundtruth/mm_parameters.py [--out-root DIR]
"""

from __future__ import annotations

import argparse
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-root", type=Path, default=ROOT, help="repository root to write ckptconv/data/mm_parameters.json under")
    args = ap.parse_args(argv)
    sig = json.loads((ROOT / "tests" / "data" / "signatures.json").read_text())
    data = {"source": f"tests/data/signatures.json ({sig['source']}), by tools/groundtruth/mm_parameters.py", "versions": sig["versions"],
            **{lib: parameters({k: v for k, v in sig[lib].items() if k.startswith(("backbones.", "necks."))}) for lib in ("mmdet", "mmpretrain")}}
    target = args.out_root / "ckptconv" / "data" / "mm_parameters.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
