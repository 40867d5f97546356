#!/usr/bin/env python3
"""Ground truth: MMDetection's and mmpretrain's own stock configs of pycls's families, as the REAL
mmengine resolves them, so that the tests can build every config fragment ckptconv prints as a
child (``_base_ = ['./<stock>.py']`` + the fragment) of EACH stock config of its family that the
library ships, not of one hand-picked config.

It runs ``mmengine.config.Config.fromfile(path).to_dict()`` (defaults: custom imports imported) on
every ``.py`` under ``mmdet/.mim/configs`` and ``mmpretrain/.mim/configs`` of the installed
packages (``_base_/`` files included: they are parents a user may name too), in sorted path order,
and keeps those whose resolved ``model.type`` or ``model.backbone.type`` (a scope prefix such as
``mmpretrain.`` stripped) is one of pycls's families:

- ``EfficientNet`` -> family ``effnet``; ``RegNet`` -> ``regnet``; ``ResNet``, ``ResNeXt``,
  ``ResNet_CIFAR`` -> ``resnet``; ``ResNetV1c`` / ``ResNetV1d`` are recorded with family ``null``
  (their deep stem, and V1d's average-pool shortcut, are nothing a pycls model can be).
- mmdet's ResNet / ResNeXt / ResNetV1c / ResNetV1d detectors (hundreds of them) are deduplicated:
  one entry per distinct signature (the backbone dict, ``model.data_preprocessor``, and the neck's
  type + in_channels, or the list of them), the first in sorted path order; the other paths are in
  its ``same_as``. Every mmdet EfficientNet and RegNet config, and every mmpretrain one, is kept.

Writes ``tests/data/openmmlab/stock_configs.json`` (README.md beside it describes every field):
``versions``, ``configs`` (keyed ``"<package>:<path under .mim/configs>"``: ``family``,
``package_path``, ``backbone_type``, the resolved ``model``, the top-level ``data_preprocessor``,
``test_dataloader.dataset.pipeline``, ``val_dataloader.dataset.pipeline``, ``test_pipeline``,
``load_from`` where set; ``tuples`` lists where the resolved values were tuples, which JSON turns
into lists, and ``model_repr`` is Python's ``repr`` of the resolved model, to paste into a .py),
``failed`` (every config of either package that does not load here, with its error), and
``elsewhere`` (configs whose only family backbone is not at ``model.backbone``, e.g. a tracker's
``model.detector.backbone``: listed, not kept). Nothing is written by hand; configs are data, and
only their resolved values are recorded (no code of mmdet/mmpretrain/mmengine is copied).

Read by tests/test_mmengine.py (every printed fragment as a child of each stock config of its
family).

mmdet imports mmcv's compiled ``mmcv._ext`` (mmcv-lite has none) and torchvision, which the
torch213 environment lacks: stubs.py stands in before anything imports them (a config's
``custom_imports`` may import mmdet or mmpretrain modules).

Run in the torch213 environment (requirements/torch213.txt + torch213-nodeps.txt; README.md beside
this file says how to make it), from the repository root:
    .venv/torch213/bin/python tools/groundtruth/stock_configs.py [--out DIR]
``--out`` is a repository root to write under (default: this repository). Deterministic: a rerun
in the same environment writes the same bytes (paths of the environment in error messages are
replaced by ``<site-packages>`` / ``<tmp>``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import tempfile
from pathlib import Path

import stubs  # tools/groundtruth/stubs.py (this folder is sys.path[0] when run as a script)

stubs.stub_mmcv_ext()
stubs.stub_torchvision()
stubs.hide_multimodal_from_mmpretrain()

import cases  # noqa: E402  (write_json: the suite's JSON layout)
import mmcv  # noqa: E402
import mmdet  # noqa: E402
import mmengine  # noqa: E402
import mmpretrain  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_SUB = Path("tests/data/openmmlab")
PACKAGES = {"mmdet": mmdet, "mmpretrain": mmpretrain}
VERSIONS = {"mmdet": mmdet.__version__, "mmpretrain": mmpretrain.__version__,
            "mmengine": mmengine.__version__, "mmcv-lite": mmcv.__version__,
            "torch": torch.__version__}
FAMILY = {"EfficientNet": "effnet", "RegNet": "regnet", "ResNet": "resnet", "ResNeXt": "resnet",
          "ResNet_CIFAR": "resnet", "ResNetV1c": None, "ResNetV1d": None}
NULL_WHY = {
    "ResNetV1c": "ResNetV1c: deep stem (three 3x3 convs) in place of the 7x7; pycls has no such stem",
    "ResNetV1d": ("ResNetV1d: deep stem and average-pool downsample shortcuts; pycls has neither"),
}
# mmdet's configs of these are deduplicated by signature; every other one is kept
DEDUP = {("mmdet", t) for t in ("ResNet", "ResNeXt", "ResNetV1c", "ResNetV1d")}
PIPELINES = [("test_dataloader", "test_dataloader.dataset.pipeline"),
             ("val_dataloader", "val_dataloader.dataset.pipeline")]

logging.getLogger("mmengine").setLevel(logging.ERROR)


def config_root(pkg: str) -> Path:
    return Path(PACKAGES[pkg].__file__).parent / ".mim" / "configs"


def bare_type(t) -> str | None:
    """'mmpretrain.ResNet' -> 'ResNet' (a registry scope prefix); None for a non-string."""
    return t.rsplit(".", 1)[-1] if isinstance(t, str) else None


def plain(v, path: list, tuples: list, odd: list):
    """The resolved value as JSON data: dicts (keys as str), lists; a tuple becomes a list and
    its path is appended to ``tuples``; anything JSON cannot hold exactly (a non-finite float, an
    object) becomes its repr and its path is appended to ``odd``."""
    if isinstance(v, dict):
        return {str(k): plain(x, path + [str(k)], tuples, odd) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        if isinstance(v, tuple):
            tuples.append(list(path))
        return [plain(x, path + [i], tuples, odd) for i, x in enumerate(v)]
    if isinstance(v, float) and not math.isfinite(v):
        odd.append(list(path))
        return repr(v)
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    odd.append(list(path))
    return repr(v)


def python_value(v):
    """The resolved value as plain Python (ConfigDict -> dict, lists and tuples kept), for repr."""
    if isinstance(v, dict):
        return {k: python_value(x) for k, x in v.items()}
    if isinstance(v, tuple):
        return tuple(python_value(x) for x in v)
    if isinstance(v, list):
        return [python_value(x) for x in v]
    return v


def clean_error(e: BaseException) -> str:
    """``Type: message`` with this environment's paths replaced, so reruns and other venvs agree."""
    text = f"{type(e).__name__}: {e}"
    for root in sorted({str(Path(m.__file__).parent.parent) for m in PACKAGES.values()},
                       key=len, reverse=True):
        text = text.replace(root, "<site-packages>")
    tmp = re.escape(tempfile.gettempdir().rstrip("/"))
    text = re.sub(tmp + r"/tmp[\w.-]*(/tmp[\w.-]*)?", "<tmp>", text)
    return text


def find_family_dicts(v, path: list, hits: list) -> None:
    """Every dict anywhere below ``v`` whose type is one of FAMILY: (dotted path, type)."""
    if isinstance(v, dict):
        if bare_type(v.get("type")) in FAMILY:
            hits.append((".".join(map(str, path)), v["type"]))
        for k, x in v.items():
            find_family_dicts(x, path + [str(k)], hits)
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            find_family_dicts(x, path + [i], hits)


def family_backbone(model) -> tuple[str, dict] | None:
    """(where, dict) of the family type at ``model`` or ``model.backbone``, else None."""
    if not isinstance(model, dict):
        return None
    if bare_type(model.get("type")) in FAMILY:
        return "model", model
    bb = model.get("backbone")
    if isinstance(bb, dict) and bare_type(bb.get("type")) in FAMILY:
        return "model.backbone", bb
    return None


def canonical(v) -> str:
    return json.dumps(plain(v, [], [], []), sort_keys=True)


def neck_signature(neck):
    if isinstance(neck, dict):
        return [neck.get("type"), plain(neck.get("in_channels"), [], [], [])]
    if isinstance(neck, (list, tuple)):
        return [neck_signature(n) for n in neck]
    return None


def signature(model: dict) -> str:
    return json.dumps([canonical(model.get("backbone")), canonical(model.get("data_preprocessor")),
                       neck_signature(model.get("neck"))])


def entry_of(pkg: str, rel: str, cfg: dict, where: str, bb: dict) -> dict:
    btype = bb["type"]
    fam = FAMILY[bare_type(btype)]
    tuples, odd = [], []
    e = {"family": fam}
    if fam is None:
        e["family_null_why"] = NULL_WHY[bare_type(btype)]
    e["package_path"] = f"{pkg}/.mim/configs/{rel}"
    e["backbone_at"] = where
    e["backbone_type"] = btype
    e["model"] = plain(cfg["model"], ["model"], tuples, odd)
    if cfg.get("data_preprocessor") is not None:
        e["data_preprocessor"] = plain(cfg["data_preprocessor"], ["data_preprocessor"], tuples, odd)
    for top, name in PIPELINES:
        dl = cfg.get(top)
        ds = dl.get("dataset") if isinstance(dl, dict) else None
        if isinstance(ds, dict) and ds.get("pipeline") is not None:
            e[name] = plain(ds["pipeline"], [name], tuples, odd)
    if cfg.get("test_pipeline") is not None:
        e["test_pipeline"] = plain(cfg["test_pipeline"], ["test_pipeline"], tuples, odd)
    if cfg.get("load_from"):
        e["load_from"] = plain(cfg["load_from"], ["load_from"], tuples, odd)
    e["tuples"] = tuples
    if odd:
        e["not_json"] = odd
    e["model_repr"] = repr(python_value(cfg["model"]))
    return e


def load_all() -> tuple[dict, dict, dict]:
    """(kept entries, failures, elsewhere) over both packages, sorted by key."""
    kept, failed, elsewhere = {}, {}, {}
    first_of = {}  # mmdet signature -> kept key
    for pkg in PACKAGES:
        root = config_root(pkg)
        for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
            rel = path.relative_to(root).as_posix()
            key = f"{pkg}:{rel}"
            try:
                cfg = Config.fromfile(str(path)).to_dict()
            except Exception as e:  # noqa: BLE001 (recorded, not dropped)
                failed[key] = clean_error(e)
                continue
            found = family_backbone(cfg.get("model"))
            if found is None:
                hits = []
                find_family_dicts(cfg.get("model"), ["model"], hits)
                if hits:
                    elsewhere[key] = [list(h) for h in hits]
                continue
            where, bb = found
            e = entry_of(pkg, rel, cfg, where, bb)
            if (pkg, bare_type(bb["type"])) in DEDUP:
                sig = signature(cfg["model"])
                if sig in first_of:
                    kept[first_of[sig]].setdefault("same_as", []).append(key)
                    continue
                first_of[sig] = key
            kept[key] = e
    return kept, failed, elsewhere


def counts(kept: dict) -> dict:
    out = {}
    for key, e in kept.items():
        pkg = key.split(":", 1)[0]
        fam = str(e["family"]) if e["family"] else "null"
        c = out.setdefault(pkg, {}).setdefault(fam, {"entries": 0, "configs": 0})
        c["entries"] += 1
        c["configs"] += 1 + len(e.get("same_as", []))
    return {p: {f: out[p][f] for f in sorted(out[p])} for p in sorted(out)}


def build() -> dict:
    kept, failed, elsewhere = load_all()
    return {
        "versions": VERSIONS,
        "source": ("tools/groundtruth/stock_configs.py: mmengine.config.Config.fromfile(<package>/"
                   ".mim/configs/<path>).to_dict() of every config the installed mmdet and "
                   "mmpretrain ship; kept: resolved model.type or model.backbone.type in EfficientNet, "
                   "RegNet, ResNet, ResNeXt, ResNet_CIFAR (family effnet/regnet/resnet), "
                   "ResNetV1c, ResNetV1d (family null); mmdet's ResNet-like configs one per signature "
                   "(backbone, model.data_preprocessor, neck type + in_channels), the others in same_as"),
        "counts": counts(kept),
        "configs": kept,
        "failed": failed,
        "elsewhere": elsewhere,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT, help="repository root to write under")
    args = ap.parse_args(argv)
    data = build()
    path = args.out / OUT_SUB / "stock_configs.json"
    cases.write_json(path, data)
    print(f"wrote {path}: {len(data['configs'])} entries, {len(data['failed'])} failed, "
          f"{len(data['elsewhere'])} elsewhere; counts {json.dumps(data['counts'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
