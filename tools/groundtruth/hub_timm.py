#!/usr/bin/env python3
"""Ground truth: the folders ``ckptconv convert SRC DIR --to timm --hub`` writes load in the REAL timm
through ``timm.create_model('local-dir:DIR', pretrained=True)``, strictly, and compute what the
``.pth`` path computes; timm's own data config of the loaded model is pycls's preprocessing.

Part of the ground truth the test suite holds ckptconv to (README.md beside this file; not part of
the ckptconv package). Runs in the gt environment (requirements/gt.txt), ckptconv from this checkout
(``PYTHONPATH`` = the repository root; the checkout first on ``sys.path`` here). For each case it
writes a synthetic pycls checkpoint (``ckptconv.verification.synthetic.pycls_checkpoint``: random
weights, BN statistics measured in train mode), then runs, as subprocesses,

    python -m ckptconv convert SRC DIR --to timm --hub --license mit
    python -m ckptconv convert SRC OUT.pth --to timm

and records, in ``tests/data/hub/timm.json``:

- ``config_json``: the text of DIR/config.json and its sha256 (the suite holds ckptconv's
  config.json to these exact bytes: config.json does not depend on the weights);
- ``files``: DIR's file names; ``card_front_matter``: README.md's YAML front matter as
  ``yaml.safe_load`` reads it;
- ``loaded``: whether ``create_model('local-dir:DIR', pretrained=True)`` loaded (timm loads strictly)
  and the error text if not; ``architecture``, ``num_classes`` of the model timm built;
- ``max_abs_logits_vs_pth``: logits of that model against the model the ``.pth`` conversion's printed
  snippet builds (its imports and its ``model = ...`` line) + ``timm.models.load_checkpoint(model,
  OUT.pth)``, on one seeded input (eval);
- ``data_config`` and ``data_config_test_size``: ``timm.data.resolve_data_config(model=model)``
  without and with ``use_test_size=True``; ``transform_resize``: the resize size of
  ``timm.data.create_transform(**data_config)``'s first step (what timm resizes the short side to).

Run from the repository root:
    .venv/gt/bin/python tools/groundtruth/hub_timm.py [--out-root DIR]
--out-root is a repository root to write under (default: this checkout; inputs are read from here).
Deterministic: rerunning on one machine writes the same bytes (logits differences are exact 0.0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CASES = {  # case -> (zoo variant, number of classes: a fine-tuned head when not 1000)
    "b0": ("b0", 1000), "b3": ("b3", 1000), "b0_nc10": ("b0", 10),
    "regnetx_200mf": ("regnetx_200mf", 1000), "regnety_200mf": ("regnety_200mf", 1000), "resnet50": ("resnet50", 1000),
}
# checkpoints pycls 0.1.1's own save_checkpoint wrote (tests/data/design_space/checkpoints): a custom
# RegNetY with a 10-class head, whose cfg dump says TRAIN.DATASET imagenet
PYCLS_FILES = {"regnety_small_nc10": ROOT / "tests" / "data" / "design_space" / "checkpoints" / "regnety_small_nc10.pyth"}


def _ckptconv(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "ckptconv", *args, "--json"], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"ckptconv {' '.join(args)} failed: {done.stderr}")
    return json.loads(done.stdout)


def _printed_model(snippet: str):
    """The model the .pth path's printed snippet builds: its imports and its ``model = ...`` line."""
    lines = snippet.splitlines()
    code = [ln for ln in lines if ln.startswith(("import ", "from "))] + [next(ln for ln in lines if ln.startswith("model = "))]
    scope: dict = {}
    exec("\n".join(code), scope)  # noqa: S102 - ckptconv's own printed snippet, in the ground-truth environment
    return scope["model"]


def _front_matter(text: str):
    import yaml

    head, sep, _ = text.partition("\n---\n")
    assert head.startswith("---\n") and sep, "no front matter"
    return yaml.safe_load(head[4:])


def _synthetic(name: str, arch: str, classes: int, work: Path) -> Path:
    from ckptconv.tables.registry import Registry
    from ckptconv.verification import synthetic

    variant = Registry().variant(arch)
    variant = replace(variant, num_classes=classes) if classes != variant.num_classes else variant
    return synthetic.save(synthetic.pycls_checkpoint(variant), work / f"{name}.pyth")


def case(name: str, src: Path, work: Path) -> dict:
    import timm
    import torch

    folder, pth = work / name, work / f"{name}.pth"
    _ckptconv("convert", str(src), str(folder), "--to", "timm", "--hub", "--license", "mit")
    printed = _ckptconv("convert", str(src), str(pth), "--to", "timm")
    size = printed["meta"]["model"]["variant"].get("im_size", 224)
    config = (folder / "config.json").read_text()
    out = {"config_json": config, "config_json_sha256": hashlib.sha256(config.encode()).hexdigest(),
           "files": sorted(p.name for p in folder.iterdir()), "card_front_matter": _front_matter((folder / "README.md").read_text())}
    try:
        model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    except Exception as e:  # noqa: BLE001 - recorded: the test fails on it
        return {**out, "loaded": False, "error": f"{type(e).__name__}: {e}"}
    plain = _printed_model(printed["config"]).eval()
    timm.models.load_checkpoint(plain, str(pth))
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (model(x) - plain(x)).abs().max().item()
    data = timm.data.resolve_data_config(model=model)
    data_test = timm.data.resolve_data_config(model=model, use_test_size=True)
    resize = timm.data.create_transform(**data).transforms[0].size
    jsonable = lambda d: {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(d.items())}  # noqa: E731
    return {**out, "loaded": True, "architecture": model.pretrained_cfg.get("architecture"), "num_classes": model.num_classes,
            "max_abs_logits_vs_pth": diff, "data_config": jsonable(data), "data_config_test_size": jsonable(data_test),
            "transform_resize": resize}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-root", type=Path, default=ROOT, help="repository root to write tests/data/hub/timm.json under")
    args = ap.parse_args(argv)
    import timm
    import torch

    torch.set_num_threads(1)
    results = {}
    with tempfile.TemporaryDirectory(prefix="ckptconv-hub-") as tmp:
        sources = {name: _synthetic(name, arch, classes, Path(tmp)) for name, (arch, classes) in CASES.items()}
        for name, src in {**sources, **PYCLS_FILES}.items():
            results[name] = case(name, src, Path(tmp))
            print(name, results[name].get("loaded"), results[name].get("max_abs_logits_vs_pth"), flush=True)
    record = {"timm": timm.__version__, "torch": torch.__version__, "cases": results}
    target = args.out_root / "tests" / "data" / "hub" / "timm.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
