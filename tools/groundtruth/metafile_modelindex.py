#!/usr/bin/env python3
"""Ground truth: the metafile ``ckptconv batch ... --metafile FILE`` writes is one OpenMMLab's own
``model-index`` tool (0.1.11, the package mmpretrain's ``mim`` tooling reads metafiles with) loads
and checks without an error, and every ``Config`` it names is a config mmengine 0.10.7 reads.

Part of the ground truth the test suite holds ckptconv to (README.md beside this file; not part of
the ckptconv package). Runs in the gt environment (requirements/gt.txt: model-index, mmengine),
ckptconv from this checkout. It writes synthetic pycls checkpoints of b0, regnetx_200mf,
regnety_200mf (refused by both OpenMMLab targets: not listed) and resnet50, runs

    python -m ckptconv batch ZOO --to mmdet,mmpretrain,timm --out-dir OUT --configs \
        --metafile OUT/metafile.yml --verify structure

and records in ``tests/data/hub/metafile.json``: ``modelindex.load(OUT/metafile.yml)``'s
``collect_check_errors()`` (the parts checked and their errors), the model names it read with the collection each is in and the keys of
each model's metadata, and whether ``mmengine.Config.fromfile`` read each ``Config``. The tests
hold ckptconv's metafile to that shape (tests/test_hub.py).

Run from the repository root:
    .venv/gt/bin/python tools/groundtruth/metafile_modelindex.py [--out-root DIR]
--out-root is a repository root to write under (default: this checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
ARCHS = ("b0", "regnetx_200mf", "regnety_200mf", "resnet50")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-root", type=Path, default=ROOT, help="repository root to write tests/data/hub/metafile.json under")
    args = ap.parse_args(argv)
    import modelindex
    import yaml
    from mmengine.config import Config

    from ckptconv.tables.registry import Registry
    from ckptconv.verification import synthetic

    with tempfile.TemporaryDirectory(prefix="ckptconv-metafile-") as tmp:
        zoo, out = Path(tmp) / "zoo", Path(tmp) / "out"
        zoo.mkdir()
        for arch in ARCHS:
            synthetic.save(synthetic.pycls_checkpoint(Registry().variant(arch)), zoo / f"{arch}.pyth")
        argv = [sys.executable, "-m", "ckptconv", "batch", str(zoo), "--to", "mmdet,mmpretrain,timm", "--out-dir", str(out),
                "--configs", "--metafile", str(out / "metafile.yml"), "--verify", "structure", "-q"]
        subprocess.run(argv, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        index = modelindex.load(str(out / "metafile.yml"))
        raw = yaml.safe_load((out / "metafile.yml").read_text())
        configs = {m["Name"]: _reads(Config, out / m["Config"]) for m in raw["Models"]}
        record = {
            "model_index": modelindex.__version__ if hasattr(modelindex, "__version__") else "0.1.11",
            "checked": [e["type"] for e in index.collect_check_errors()],  # every part model-index checked ...
            "check_errors": [f"{e['type']}: {sorted(e['errors'])}" for e in index.collect_check_errors() if e["errors"]],  # ... and what failed
            "models": {m.name: {"in_collection": m.in_collection, "metadata_keys": sorted(raw_m["Metadata"]), "keys": sorted(raw_m)}
                       for m, raw_m in zip(index.models, raw["Models"])},
            "collections": sorted(c.name for c in index.collections),
            "configs_read_by_mmengine": configs,
        }
    target = args.out_root / "tests" / "data" / "hub" / "metafile.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(json.dumps(record, indent=1)[:1500])


def _reads(config_cls, path: Path) -> bool:
    try:
        config_cls.fromfile(str(path))
        return True
    except Exception as e:  # noqa: BLE001 - recorded: the test fails on it
        print(f"{path}: {type(e).__name__}: {e}")
        return False


if __name__ == "__main__":
    main()
