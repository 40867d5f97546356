#!/usr/bin/env python3
"""Ground truth: which versions of each target library load the files ckptconv converts, strictly,
and compute pycls 0.1.1's outputs from them (issue 32's version table).

Part of the ground truth the test suite holds ckptconv to (README.md beside this file; not part of
the ckptconv package). It writes, under the repository root:

- ``tests/data/versions/measured.json``: everything measured, per library and version: the
  companion packages' versions, per model and target layout the conversion, whether the library
  imported and built the model, the strict load (missing / unexpected keys, shape mismatches), the
  largest differences to pycls on a seeded input and on a shipped photo, and the verdict;
- ``ckptconv/data/versions.json``: the runtime table ckptconv ships, derived from measured.json
  (``{"source": ..., "libraries": {library: {version: "same" | reason}}}``);
- ``docs/versions.md``: the tables between ``<!-- versions:begin -->`` and
  ``<!-- versions:end -->`` (the intro above them is written by hand).

What one measurement is. In the venv that holds the version (see below), per model: pycls 0.1.1's
own code builds it (``reset_cfg``, the model's values merged as a YAML would be, ``torch.manual_seed(0)``,
``build_model()``), its weights are ``zoo.recipe_state`` (numpy ``default_rng(0)``) with the
BatchNorm statistics MEASURED (every BatchNorm2d ``reset_running_stats()`` with momentum None,
train mode, ``torch.manual_seed(0)``, 4 batches ``default_rng(20 + i).standard_normal((8, 3, 64,
64))`` under no_grad, momentum restored, eval), ``pycls.core.checkpoint.save_checkpoint(model,
construct_optimizer(model), 9)`` writes the ``.pyth``, and a fresh pycls model loaded from it by
pycls's ``load_checkpoint`` gives the reference: logits and stage outputs (stem, s1 ... and
EfficientNet's head conv) on the seeded input ``default_rng(1).standard_normal((2, 3, 64, 64))``
(float32, BGR as pycls takes it) and on one shipped photo, ``ckptconv/data/photos/chelsea.png``,
as pycls's own test pipeline gives it (``tests/data/pipelines/pycls_reference.npz``
``chelsea__256_224``, made by photos.py with pycls's ``ImageNet.__getitem__``).
Then, per target layout, in a temporary directory: ``python -m ckptconv convert M.pyth OUT --to
LIB [...] --json`` (this venv's Python, ``PYTHONPATH`` = this checkout: THIS checkout's ckptconv),
and the file loaded exactly as the printed text says:

- timm / torchvision ``pth-bgr`` (``--channel-order bgr``) and ``pth-rgb`` (the default): the snippet
  exec-ed as printed, then ``model(seeded)`` (``seeded.flip(1)`` for RGB weights); the photo through
  the snippet's ``preprocess`` (PIL RGB; see below for BGR);
- timm ``hub`` (``--hub``; RGB weights: ckptconv refuses BGR for a folder): the snippet exec-ed
  (``timm.create_model('local-dir:DIR', pretrained=True)``), ``model(seeded.flip(1))``, the photo
  through ``preprocess``. timm has ``local-dir:`` from 1.0.16 on: before it the run is recorded
  (its error) but not counted in the verdict, and the table notes it;
- transformers ``folder`` (RGB weights): the snippet exec-ed (``from_pretrained``); strictness from a
  second ``from_pretrained(DIR, output_loading_info=True)``; ``model(pixel_values=seeded.flip(1))``;
  the photo through ``preprocess``;
- mmpretrain ``pth``: the text pasted over the stock config of its family (MMPRETRAIN_STOCK: the text
  replaces its model whole, "a child of any mmpretrain config"; alone, ``_delete_`` reaches the
  classifier's constructor), its ``custom_imports`` imported, ``model`` built with the merged
  ``data_preprocessor`` (as mmengine's Runner sets it), ``init_weights()``
  (the printed Pretrained), ``model(seeded, mode='tensor')``; a second build loaded by
  ``load_checkpoint(..., strict=True)``; the photo through the printed ``test_pipeline`` and the
  model's data preprocessor;
- mmdet ``pth``: the fragment pasted over the config its comment names (``_base_``, from the installed
  ``mmdet/.mim/configs``), the backbone built, ``init_weights()``, its outputs at its ``out_indices``
  against pycls's stages (RegNet/ResNet layer i = s(i+1); EfficientNet layers 0..6 = stem, s1, s2,
  s3, s5, s7, head conv); a second build loaded strictly; the photo (mmdet prints no test pipeline:
  a detector resizes to its own scale) through LoadImageFromFile, PyclsResizeCrop(256, 224),
  PackDetInputs (meta keys img_path, ori_shape, img_shape: no dataset sets img_id) and the pasted
  config's data preprocessor;
- onnxruntime ``tensor`` (``--onnx-input tensor``) and ``image`` (the default graph, which takes a
  photo's pixels): the printed snippet exec-ed with its ``'photo.jpg'`` replaced by the photo's path
  (its preprocessing, its ``InferenceSession``), its ``logits`` against pycls on the photo; the
  tensor graph also runs the seeded input.

Strict: the file's tensors against the built model's ``state_dict()``. Differences: ``max_abs`` and
``max_rel`` = max|diff| / max|pycls|. Tolerances (TOLERANCE), those the suite holds each target to,
all as max_rel (this recipe's photo logits reach ~1e3, so the suite's absolute ones are taken
relative): BGR ``.pth`` seeded 1e-5 (tests/test_printed.py); RGB weights on the reversed seeded input
(``pth-rgb``, ``hub``, ``folder``) 1e-4 and every photo 2e-4 (tests/test_transformers.py,
tests/test_onnx.py); ONNX graphs 2e-4 (tests/test_onnx.py). A version is "same" when every counted
run loads strictly and is within them; otherwise its verdict names what differs. ckptconv's
refusals (a target that cannot hold the model: REFUSED) are recorded, not counted; any other
refusal is a difference. ``--render`` judges every recorded run again, so a changed tolerance needs
no new measurement.

timm and torchvision ``.pth`` are converted twice: ``pth-bgr`` (``--channel-order bgr``, the seeded
input as pycls takes it) and ``pth-rgb`` (the default order: the seeded input reversed, and the
photo through the printed ``preprocess``). A BGR snippet printed before the fix normalized before
the channel flip its comment asked for (FINDINGS; ``photo_as_commented`` records what it gave); one
printed since reverses the channels inside ``preprocess``, and its photo is judged.

The venvs. gt (requirements/gt.txt + gt-nodeps.txt) holds the pinned versions. The others are the
same venv with one package swapped at a time (``pip install --no-deps``: torch stays 2.14.1) and
rebuilt to gt after each library; requirements/versions.txt lists every swap, with the companions
each version declares and the measured outcome. From the repository root:

    python3.11 -m venv /work/venvs-ver/v
    /work/venvs-ver/v/bin/pip install -r tools/groundtruth/requirements/gt.txt
    /work/venvs-ver/v/bin/pip install --no-deps -r tools/groundtruth/requirements/gt-nodeps.txt
    /work/venvs-ver/v/bin/pip install --no-deps timm==0.9.16     # one line of versions.txt
    /work/venvs-ver/v/bin/python tools/groundtruth/versions.py --library timm --version 0.9.16

``--library L --version V`` measures the installed L (it must be V) and merges the row into
measured.json (``--only MODEL ...``: those models, merged into the row); ``--not-measured REASON``
records L V as not measured (an install that fails, a version no torch here takes); ``--render``
rewrites versions.json and docs/versions.md from measured.json alone (any Python 3.11). Every
measurement ends by rendering them. Temporary files live in a TemporaryDirectory; pycls's
save_checkpoint writes under it too.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SCRIPT = "tools/groundtruth/versions.py"
MEASURED = "tests/data/versions/measured.json"
RUNTIME = "ckptconv/data/versions.json"
DOC = "docs/versions.md"
BEGIN, END = "<!-- versions:begin -->", "<!-- versions:end -->"
ABS = "/abs/path"

LIBRARIES = ("timm", "torchvision", "mmdet", "mmpretrain", "transformers", "onnxruntime")
PINNED = {"timm": "1.0.31", "torchvision": "0.29.1", "mmdet": "3.3.0", "mmpretrain": "1.2.0",
          "transformers": "5.25.0", "onnxruntime": "1.32.0"}  # the gt venv's and CI's versions
COMPANIONS = {  # shown in the table beside each version
    "timm": ("torch", "torchvision", "huggingface_hub", "safetensors"),
    "torchvision": ("torch", "pillow"),
    "mmdet": ("mmengine", "mmcv-lite", "torch"),
    "mmpretrain": ("mmengine", "mmcv-lite", "torch", "transformers"),
    "transformers": ("torch", "huggingface_hub", "tokenizers", "safetensors"),
    "onnxruntime": ("onnx", "onnxscript", "torch"),
}
RECORDED = ("pycls", "numpy", "opencv-python-headless", "pillow")  # recorded too, not shown
# Each library's target layouts, with the convert options and the colour order the weights take.
LAYOUTS = {"timm": ("pth-bgr", "pth-rgb", "hub"), "torchvision": ("pth-bgr", "pth-rgb"), "mmdet": ("pth",),
           "mmpretrain": ("pth",), "transformers": ("folder",), "onnxruntime": ("tensor", "image")}
ORDER = {"pth-bgr": "bgr", "pth-rgb": "rgb", "pth": "bgr", "hub": "rgb", "folder": "rgb", "tensor": "bgr", "image": "bgr"}
TOLERANCE = {  # layout -> input -> (measure, limit): see the docstring for where each comes from
    "pth-bgr": {"seeded": ("max_rel", 1e-5), "photo": ("max_rel", 2e-4)},
    "pth-rgb": {"seeded": ("max_rel", 1e-4), "photo": ("max_rel", 2e-4)},
    "pth": {"seeded": ("max_rel", 1e-5), "photo": ("max_rel", 2e-4)},
    "hub": {"seeded": ("max_rel", 1e-4), "photo": ("max_rel", 2e-4)},
    "folder": {"seeded": ("max_rel", 1e-4), "photo": ("max_rel", 2e-4)},
    "tensor": {"seeded": ("max_rel", 2e-4), "photo": ("max_rel", 2e-4)},
    "image": {"photo": ("max_rel", 2e-4)},
}
# What the measurements found wrong in ckptconv itself, the same in every version (so not in the verdicts).
FINDINGS = [
    "timm and torchvision .pth with --channel-order bgr, in the ckptconv these versions were first measured with: the "
    "printed preprocess normalized the RGB pixels with pycls's BGR-ordered mean and std, and its comment said to reverse "
    "the channels after it; the photo input was then up to 0.38 normalized units from pycls's (reversing before Normalize "
    "gives pycls's within 1e-6). Recorded as photo_as_commented in those pth-bgr runs. Fixed since: the printed transform "
    "reverses the channels before Normalize, and the pth-bgr runs measured after the fix (a photo entry) judge the photo.",
]
HUB_SINCE = (1, 0, 16)  # timm's create_model('local-dir:...') (docs/commands.md)

MODELS = {
    "b0": "EfficientNet-B0 (pycls zoo)",
    "regnetx_200mf": "RegNetX-200MF (pycls zoo)",
    "regnety_200mf": "RegNetY-200MF (pycls zoo)",
    "resnet50": "ResNet-50, pycls zoo R-50-1x64d (AnyNet: stride on the 3x3)",
    "resnet50_stride1x1": "ResNet-50 of pycls/models/resnet.py, RESNET.STRIDE_1X1 True (stride on the 1x1)",
    "resnext50_32x4d": "ResNeXt-50 32x4d, pycls zoo X-50-32x4d",
}
RESNET_1X1 = {"MODEL.TYPE": "resnet", "MODEL.DEPTH": 50, "MODEL.NUM_CLASSES": 1000,
              "RESNET.TRANS_FUN": "bottleneck_transform", "RESNET.STRIDE_1X1": True,
              "TRAIN.DATASET": "imagenet", "TEST.DATASET": "imagenet", "TRAIN.IM_SIZE": 224, "TEST.IM_SIZE": 256}
# (library, model) pairs ckptconv refuses by design (its message is recorded): not a version question.
REFUSED = {("mmdet", "regnety_200mf"), ("mmpretrain", "regnety_200mf"), ("timm", "resnet50_stride1x1"),
           ("torchvision", "resnet50_stride1x1"), ("transformers", "b0"), ("transformers", "resnext50_32x4d")}
PHOTO = "chelsea.png"
PHOTO_REF = ("tests/data/pipelines/pycls_reference.npz", "chelsea__256_224")
MMPRETRAIN_STOCK = {"EfficientNet": "efficientnet/efficientnet-b0_8xb32_in1k.py", "RegNet": "regnet/regnetx-400mf_8xb128_in1k.py",
                    "ResNet": "resnet/resnet50_8xb32_in1k.py", "ResNeXt": "resnext/resnext50-32x4d_8xb32_in1k.py"}
MMDET_EFFNET_LAYERS = ["stem", "s1", "s2", "s3", "s5", "s7", "head.conv_swish"]


# ---------------------------------------------------------------------------------------------
# Rendering: measured.json -> versions.json and docs/versions.md (standard library only)
# ---------------------------------------------------------------------------------------------

def version_key(text: str) -> tuple:
    return tuple(int(n) for n in re.findall(r"\d+", text))


def runtime_table(measured: dict) -> dict:
    """ckptconv/data/versions.json: {library: {version: "same" | reason}}, of the versions measured
    (a version not measured is not in it: ``verify --in-library`` says so where one fails)."""
    dates = sorted(row["measured"] for rows in measured["libraries"].values() for row in rows.values())
    span = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    libraries = {lib: {v: rows[v]["verdict"] for v in sorted(rows, key=version_key) if rows[v]["status"] != "not measured"}
                 for lib, rows in sorted(measured["libraries"].items())}
    return {"source": f"{SCRIPT} from {MEASURED}, measured {span}", "libraries": libraries}


def runtime_text(measured: dict) -> str:
    return json.dumps(runtime_table(measured), indent=1, ensure_ascii=False) + "\n"


def md(text: str) -> str:
    """Text for a Markdown table cell: one line, pipes and angle brackets escaped."""
    text = " ".join(str(text).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")


def companions(row: dict, library: str) -> str:
    vers = row.get("versions", {})
    return ", ".join(f"{p} {vers[p]}" for p in COMPANIONS[library] if vers.get(p))


def status(row: dict) -> str:
    if row["verdict"] == "same":
        return "same"
    return {"not measured": "not measured", "import failed": "does not import"}.get(row["status"], "differs")


def render_library(library: str, rows: dict) -> list[str]:
    lines = [f"### {library}", "", "| version | measured with | verdict | what differs |", "| --- | --- | --- | --- |"]
    for v in sorted(rows, key=version_key, reverse=True):
        row = rows[v]
        what = [] if row["verdict"] == "same" else [row["verdict"].removeprefix(status(row) + ": ")]
        what += row.get("notes", [])
        pin = " (CI)" if PINNED.get(library) == v else ""
        lines.append(f"| {md(v)}{pin} | {md(companions(row, library))} | {status(row)} | {md('; '.join(what))} |")
    return lines + [""]


def render_block(measured: dict) -> str:
    """The generated part of docs/versions.md (between the markers, markers excluded)."""
    out = [f"Generated by `{SCRIPT}` from `{MEASURED}`; do not edit by hand.", ""]
    out += [f"Models: {', '.join(f'{k} ({v})' for k, v in sorted(measured['models'].items()))}.", ""]
    tol = "; ".join(f"{layout}: " + ", ".join(f"{inp} {m} <= {lim:g}" for inp, (m, lim) in sorted(t.items(), reverse=True))
                    for layout, t in sorted(measured["tolerance"].items()))
    out += [f"Tolerances ({md(measured['tolerance_note'])}): {tol}.", ""]
    out += [f"Found in ckptconv itself, the same in every version (not in the verdicts): {md(f)}" for f in measured["findings"]]
    out += [""] if measured["findings"] else []
    for library in LIBRARIES:
        if library in measured["libraries"]:
            out += render_library(library, measured["libraries"][library])
    return "\n".join(out).rstrip() + "\n"


def render_doc(text: str, measured: dict) -> str:
    """docs/versions.md's text with the block between the markers replaced."""
    head, sep, rest = text.partition(BEGIN + "\n")
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{DOC} lacks the markers {BEGIN} / {END}")
    return head + BEGIN + "\n" + render_block(measured) + END + tail


def render(root: Path) -> None:
    """measured.json refreshed (this script's fixed fields, every run judged again), then the two files from it."""
    path = root / MEASURED
    measured = refresh(json.loads(path.read_text()))
    path.write_text(json.dumps(measured, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    (root / RUNTIME).write_text(runtime_text(measured))
    doc = root / DOC
    doc.write_text(render_doc(doc.read_text(), measured))
    print(f"wrote {path}, {root / RUNTIME} and {doc}")


# ---------------------------------------------------------------------------------------------
# Verdicts (standard library only)
# ---------------------------------------------------------------------------------------------

def judge(entry: dict, layout: str) -> None:
    """entry['problems']: what keeps the run from 'same'; entry['ok']: none."""
    problems = []
    if "refused" in entry:  # a pair ckptconv refuses by design (REFUSED): nothing to judge
        entry["problems"], entry["ok"] = problems, True
        return
    entry["builds"] = "class" in entry or "photo" in entry  # a model built (an ONNX session ran)
    if "error" in entry:
        problems.append(entry["error"])
    strict = entry.get("strict")
    if strict is not None and not strict.get("ok"):
        problems.append("strict load: " + ", ".join(f"{len(strict[k])} {k}" for k in ("missing", "unexpected", "shape_mismatch") if strict[k])
                        + ("" if strict.get("weights_equal_file", True) else " (weights differ from the file)"))
    if entry.get("strict_load_checkpoint", "ok") != "ok":
        problems.append("load_checkpoint(strict=True): " + entry["strict_load_checkpoint"])
    if "error" not in entry:
        for inp, (measure, limit) in TOLERANCE[layout].items():
            if inp == "photo" and "photo_as_commented" in entry:  # a BGR snippet printed before the fix (FINDINGS): its photo is not judged
                continue
            res = entry.get(inp) or {}
            worst = res.get(measure)
            if worst is None:
                problems.append(f"{inp}: {res.get('error', 'no result')}")
            elif worst > limit:
                problems.append(f"{inp} input: {measure} {worst:.2g} > {limit:g}")
    entry["problems"], entry["ok"] = problems, not problems


def short(text: str, n: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def verdict(row: dict) -> str:
    """'same', or what differs: each problem once, with the model/layout runs it hit."""
    if row["status"] == "not measured":
        return "not measured: " + row["reason"]
    if row["status"] == "import failed":
        return "does not import: " + short(row["import"])
    hits: dict[str, list[str]] = {}
    for model, layouts in row["runs"].items():
        for layout, entry in layouts.items():
            if entry.get("counted", True):
                for p in entry["problems"]:
                    hits.setdefault(short(p), []).append(f"{model}/{layout}")
    return "same" if not hits else "; ".join(f"{p} ({', '.join(w)})" for p, w in hits.items())


def rejudge(row: dict) -> None:
    """Every run of a row judged by this script's tolerances, then the row's verdict and notes."""
    for layouts in row.get("runs", {}).values():
        for layout, entry in layouts.items():
            if layout == "hub" and version_key(row["versions"]["timm"]) < HUB_SINCE:
                entry.update(counted=False, not_counted="--hub folders need timm >= 1.0.16 (create_model('local-dir:...'))")
            judge(entry, layout)
    row["verdict"], row["notes"] = verdict(row), notes(row)


def notes(row: dict) -> list[str]:
    """What the table says beside the verdict: runs measured but not counted, and why."""
    out = {}
    for layouts in row.get("runs", {}).values():
        for entry in layouts.values():
            if not entry.get("counted", True) and entry["problems"]:
                out.setdefault(entry["not_counted"], short(entry["problems"][0], 160))
    return [f"{why}: {first}" for why, first in out.items()]


# ---------------------------------------------------------------------------------------------
# The pycls side (torch, numpy and pycls are imported inside: rendering needs none of them)
# ---------------------------------------------------------------------------------------------

def model_values(name: str) -> dict:
    import zoo

    return dict(RESNET_1X1) if name == "resnet50_stride1x1" else zoo.yaml_values(name)


def pycls_model(name: str, run_dir: Path):
    """pycls 0.1.1's model for ``name`` (cfg reset and merged, OUT_DIR run_dir); returns (model, cfg)."""
    import pycls.core.builders as builders
    import torch
    import zoo
    from pycls.core.config import cfg, reset_cfg

    reset_cfg()
    zoo.merge_values(cfg, model_values(name))
    cfg.OUT_DIR = str(run_dir)
    torch.manual_seed(0)
    return builders.build_model(), cfg


def pycls_checkpoint(name: str, tmp: Path) -> Path:
    """The .pyth pycls's save_checkpoint writes for the recipe weights with measured statistics."""
    import cases
    import pycls.core.checkpoint as checkpoint
    import pycls.core.optimizer as optimizer
    import torch
    import zoo

    model, cfg = pycls_model(name, tmp / "pycls-run")
    state = zoo.recipe_state({k: tuple(v.shape) for k, v in model.state_dict().items()})
    model.load_state_dict({k: torch.from_numpy(a) for k, a in state.items()}, strict=True)
    cases.measure_statistics(model, 64, cfg.BN.MOM)  # as the docstring says: pycls's precise-BN, cumulative
    written = checkpoint.save_checkpoint(model, optimizer.construct_optimizer(model), 9)
    path = tmp / f"{name}.pyth"
    shutil.move(written, path)
    shutil.rmtree(tmp / "pycls-run")
    return path


def pycls_reference(name: str, path: Path, tmp: Path) -> dict:
    """{'seeded' | 'photo': {'input', 'logits', stage: output}} from a fresh model pycls loaded from path."""
    import cases
    import numpy as np
    import pycls.core.checkpoint as checkpoint
    import torch
    import zoo

    model, _ = pycls_model(name, tmp / "pycls-run")
    checkpoint.load_checkpoint(str(path), model)
    model.eval()
    with np.load(ROOT / PHOTO_REF[0]) as z:
        photo = torch.from_numpy(z[PHOTO_REF[1]])[None]
    out = {}
    for kind, x in (("seeded", torch.from_numpy(zoo.recipe_input())), ("photo", photo)):
        y, feats = cases.run_hooked(model, x, cases.pycls_points(model))
        out[kind] = {"input": x, "logits": y, **feats}
    return out


# ---------------------------------------------------------------------------------------------
# Conversion and shared checks
# ---------------------------------------------------------------------------------------------

def convert_args(library: str, layout: str, model: str) -> tuple[str, list[str]]:
    """(output name, the convert options) of one target layout."""
    if layout == "hub":
        return f"{model}.timm-hub", ["--to", "timm", "--hub"]
    if layout == "folder":
        return f"{model}.transformers", ["--to", "transformers"]
    if library == "onnxruntime":
        extra = ["--onnx-input", "tensor"] if layout == "tensor" else []
        return f"{model}.{layout}.onnx", ["--to", "onnx", *extra, "--channel-order", "bgr"]
    if layout == "pth-rgb":  # the default channel order
        return f"{model}.{library}.rgb.pth", ["--to", library]
    return f"{model}.{library}.pth", ["--to", library, "--channel-order", "bgr"]


def convert(src: Path, tmp: Path, library: str, layout: str, model: str) -> tuple[dict, str | None, Path]:
    """ckptconv convert in a subprocess of this venv: (record, printed text or None, output path)."""
    out, opts = convert_args(library, layout, model)
    args = ["-m", "ckptconv", "convert", src.name, out, *opts, "--json"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp, env=env)
    record = {"command": "python " + " ".join(args), "exit_code": proc.returncode}
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        record["error"] = short((proc.stderr or proc.stdout).strip()[-600:].replace(str(tmp), ABS), 600)
        return record, None, tmp / out
    record["ok"] = doc.get("ok")
    if doc.get("error"):
        record["error"] = str(doc["error"]).replace(str(tmp), ABS)
    text = doc.get("config") if isinstance(doc.get("config"), str) else None
    return record, text, tmp / out


def compare(ref, got) -> dict:
    import numpy as np

    ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    got = got.detach().numpy() if hasattr(got, "detach") else np.asarray(got)
    if tuple(ref.shape) != tuple(got.shape):
        return {"error": f"shape {list(got.shape)}, pycls's {list(ref.shape)}"}
    d = float(np.abs(ref.astype(np.float64) - got.astype(np.float64)).max())
    return {"max_abs": d, "max_rel": d / float(np.abs(ref).max())}


def worst(levels: dict) -> dict:
    """Several compared levels as one result: the largest of each measure, and the levels."""
    bad = [f"{k}: {v['error']}" for k, v in levels.items() if "error" in v]
    if bad:
        return {"error": "; ".join(bad), "levels": levels}
    return {"max_abs": max(v["max_abs"] for v in levels.values()),
            "max_rel": max(v["max_rel"] for v in levels.values()), "levels": levels}


def strict_check(model, sd: dict) -> dict:
    """The file's tensors against the model's state_dict (key names listed up to 5 per kind)."""
    import torch

    msd = model.state_dict()
    missing = sorted(set(msd) - set(sd))
    unexpected = sorted(set(sd) - set(msd))
    shapes = sorted(k for k in set(msd) & set(sd) if tuple(msd[k].shape) != tuple(sd[k].shape))
    ok = not missing and not unexpected and not shapes
    equal = ok and all(torch.equal(msd[k], sd[k].to(msd[k].dtype)) for k in msd)
    return {"missing": missing[:5], "unexpected": unexpected[:5], "shape_mismatch": shapes[:5],
            "counts": [len(missing), len(unexpected), len(shapes)], "n_keys": len(msd), "weights_equal_file": equal, "ok": ok}


def file_state(path: Path) -> dict:
    """The tensors a converted file holds (a folder: its model.safetensors)."""
    import torch

    if path.is_dir():
        from safetensors.torch import load_file

        return load_file(str(path / "model.safetensors"))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    return obj.get("state_dict", obj) if isinstance(obj, dict) else obj


def error_text(exc: BaseException, tmp: Path, where: str = "") -> str:
    """The exception verbatim, with the innermost library line that raised."""
    msg = f"{where}{type(exc).__name__}: {exc}"
    inner = [f for f in traceback.extract_tb(exc.__traceback__) if "site-packages" in f.filename]
    if inner:
        at = inner[-1]
        msg += f" (at {at.filename.split('site-packages/')[-1]}:{at.lineno}: {(at.line or '').strip()})"
    return short(msg.replace(str(tmp), ABS), 600)


def exec_printed(text: str, tmp: Path, name: str) -> dict:
    """The printed text exec-ed as printed (what it prints is swallowed); its namespace."""
    ns: dict = {"__name__": "ckptconv_printed"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(text, f"<ckptconv printed {name}>", "exec"), ns)  # noqa: S102 - ckptconv's own printed text
    return ns


def photo_image():
    from PIL import Image

    return Image.open(ROOT / "ckptconv" / "data" / "photos" / PHOTO).convert("RGB")


def forward(model, x, library: str):
    import torch

    with torch.no_grad():
        return model(pixel_values=x).logits if library == "transformers" else model(x)


# ---------------------------------------------------------------------------------------------
# The runners: the converted file loaded exactly as the printed text says (see the docstring).
# Each fills ``res`` step by step; ``res['stage']`` names the step an exception came from.
# ---------------------------------------------------------------------------------------------

def run_torch(text: str, out: Path, ref: dict, tmp: Path, layout: str, library: str, res: dict) -> None:
    """timm, torchvision and transformers: the printed snippet exec-ed, its ``model`` and ``preprocess``."""
    res["stage"] = "the printed snippet"
    ns = exec_printed(text, tmp, f"{library}/{layout}")
    model = ns["model"].eval()
    res["class"] = f"{type(model).__module__}.{type(model).__qualname__}"
    if library == "transformers":
        res["stage"] = "from_pretrained(DIR, output_loading_info=True)"
        res["loading_info"] = loading_info(out)
    res["strict"] = strict_check(model, file_state(out))
    if any(res.get("loading_info", {}).values()):
        res["strict"]["ok"] = False
    x = ref["seeded"]["input"]
    res["stage"] = "model(seeded input)"
    res["seeded"] = compare(ref["seeded"]["logits"], forward(model, x if ORDER[layout] == "bgr" else x.flip(1), library))
    res["stage"] = "the printed preprocess on the photo"
    photo = ns["preprocess"](photo_image())
    if ORDER[layout] == "rgb" or "x = x.flip(0)" not in text:  # a BGR snippet since the fix reverses the channels inside preprocess
        res["photo"] = compare(ref["photo"]["logits"], forward(model, photo[None], library))
    else:  # the closing comment of a BGR snippet: reverse the channels after the transforms
        res["photo_as_commented"] = compare(ref["photo"]["logits"], forward(model, photo.flip(0)[None], library))


def loading_info(folder: Path) -> dict:
    from transformers import AutoModelForImageClassification

    _, info = AutoModelForImageClassification.from_pretrained(str(folder), output_loading_info=True)
    keys = ("missing_keys", "unexpected_keys", "mismatched_keys")
    return {k: sorted(str(x) for x in (info.get(k) or []))[:5] for k in keys}


def quiet_mm() -> None:
    import logging

    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.ERROR)


def strict_load(build, path: Path, tmp: Path) -> str:
    """A second build loaded by mmengine's load_checkpoint(..., strict=True): 'ok' or the error."""
    import mmengine.runner

    try:
        mmengine.runner.load_checkpoint(build(), str(path), map_location="cpu", strict=True, logger="silent")
    except Exception as exc:  # noqa: BLE001  (the library's refusal is the finding)
        return error_text(exc, tmp)
    return "ok"


def run_steps(steps: list) -> dict:
    results = {"img_path": str(ROOT / "ckptconv" / "data" / "photos" / PHOTO)}
    for step in steps:
        results = step(results)
    return results


def run_mmpretrain(text: str, out: Path, ref: dict, tmp: Path, layout: str, library: str, res: dict) -> None:
    from mmengine.registry import DefaultScope
    from mmengine.utils import import_modules_from_strings
    from mmpretrain.registry import MODELS, TRANSFORMS

    with DefaultScope.overwrite_default_scope("mmpretrain"):
        res["stage"] = "the config pasted over a stock config of its family"
        cfg = pasted(text, mmpretrain_base(text), tmp, res)
        import_modules_from_strings(**cfg.custom_imports)

        def build():
            model_cfg = cfg.model.copy()
            model_cfg.setdefault("data_preprocessor", cfg.data_preprocessor)  # as mmengine's Runner does
            return MODELS.build(model_cfg)

        res["stage"] = "MODELS.build(cfg.model)"
        model = build()
        res["class"] = f"{type(model.backbone).__module__}.{type(model.backbone).__qualname__}"
        res["stage"] = "model.init_weights()"
        quiet_mm()
        model.init_weights()
        res["strict"] = strict_check(model, file_state(out))
        res["strict_load_checkpoint"] = strict_load(build, out, tmp)
        model.eval()
        res["stage"] = "model(seeded input, mode='tensor')"
        res["seeded"] = compare(ref["seeded"]["logits"], mm_forward(model, ref["seeded"]["input"]))
        res["stage"] = "the printed test_pipeline and data_preprocessor on the photo"
        packed = run_steps([TRANSFORMS.build(t) for t in cfg.test_pipeline])
        batch = model.data_preprocessor({"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, False)
        res["photo"] = compare(ref["photo"]["logits"], mm_forward(model, batch["inputs"]))


def pasted(text: str, base: Path, tmp: Path, res: dict):
    """The printed config as users paste it: a child of ``base`` (a stock config), read by mmengine."""
    from mmengine.config import Config

    res["base_config"] = str(base).split("/.mim/")[-1]
    (tmp / "pasted.py").write_text(f"_base_ = [{str(base)!r}]\n" + text)
    return Config.fromfile(str(tmp / "pasted.py"))


def mmpretrain_base(text: str) -> Path:
    """The stock mmpretrain config of the printed backbone's family: the printed model replaces its model
    whole (``_delete_``), as the text says it does in "a child of any mmpretrain config"."""
    import mmpretrain

    backbone = re.search(r"backbone=dict\(\s*type='(\w+)'", text).group(1)
    path = Path(mmpretrain.__file__).parent / ".mim" / "configs" / MMPRETRAIN_STOCK[backbone]
    if not path.exists():
        raise LookupError(f"this mmpretrain ships no configs/{MMPRETRAIN_STOCK[backbone]}")
    return path


def mm_forward(model, x):
    import torch

    with torch.no_grad():
        return model(x, mode="tensor")


def mmdet_base(text: str) -> Path:
    """The MMDetection config the fragment's comment names as its ``_base_``, from the installed mmdet."""
    import mmdet

    m = re.search(r"_base_ = \['\./([\w.-]+\.py)'\]", text)
    hits = sorted((Path(mmdet.__file__).parent / ".mim" / "configs").rglob(m.group(1))) if m else []
    if not hits:
        raise LookupError(f"the fragment names {m.group(1) if m else 'no _base_'}, which this mmdet does not ship")
    return hits[0]


def levels(backbone, out_indices, outs, ref: dict) -> dict:
    """Each backbone output against the pycls stage it stands for."""
    effnet = type(backbone).__name__ == "EfficientNet"
    assert len(out_indices) == len(outs), (out_indices, len(outs))
    found = {}
    for i, got in zip(out_indices, outs):
        point = MMDET_EFFNET_LAYERS[i] if effnet else f"s{i + 1}"
        found[f"{point}->out[{i}]"] = compare(ref[point], got)
    return worst(found)


def run_mmdet(text: str, out: Path, ref: dict, tmp: Path, layout: str, library: str, res: dict) -> None:
    import torch
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("mmdet"):
        res["stage"] = "the fragment pasted over its _base_"
        cfg = pasted(text, mmdet_base(text), tmp, res)
        res["stage"] = "MODELS.build(cfg.model.backbone)"
        backbone = MODELS.build(cfg.model.backbone)
        res["class"] = f"{type(backbone).__module__}.{type(backbone).__qualname__}"
        res["stage"] = "backbone.init_weights()"
        quiet_mm()
        backbone.init_weights()
        res["strict"] = strict_check(backbone, file_state(out))
        res["strict_load_checkpoint"] = strict_load(lambda: MODELS.build(cfg.model.backbone), out, tmp)
        backbone.eval()
        indices = list(cfg.model.backbone.out_indices)
        res["stage"] = "backbone(seeded input)"
        with torch.no_grad():
            res["seeded"] = levels(backbone, indices, backbone(ref["seeded"]["input"]), ref["seeded"])
        res["stage"] = "LoadImageFromFile, PyclsResizeCrop(256, 224), PackDetInputs, the config's data_preprocessor"
        with torch.no_grad():
            res["photo"] = levels(backbone, indices, backbone(mmdet_photo(cfg)), ref["photo"])


def mmdet_photo(cfg):
    """The photo through a test pipeline of pycls's resize and crop and the pasted config's data preprocessor."""
    from mmdet.registry import MODELS, TRANSFORMS

    import ckptconv.mmengine  # noqa: F401  (registers PyclsResizeCrop, as the printed configs' custom_imports do)

    steps = [TRANSFORMS.build(dict(type="LoadImageFromFile")), TRANSFORMS.build(dict(type="PyclsResizeCrop", resize=256, crop=224)),
             TRANSFORMS.build(dict(type="PackDetInputs", meta_keys=("img_path", "ori_shape", "img_shape")))]  # no dataset sets img_id
    packed = run_steps(steps)
    pre = MODELS.build(cfg.model.data_preprocessor)
    return pre({"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, False)["inputs"]


def run_onnx(text: str, out: Path, ref: dict, tmp: Path, layout: str, library: str, res: dict) -> None:
    """The printed snippet with its 'photo.jpg' the shipped photo; the tensor graph also on the seeded input."""
    res["stage"] = "the printed snippet"
    assert text.count("'photo.jpg'") == 1, "the snippet names no 'photo.jpg' to replace"
    ns = exec_printed(text.replace("'photo.jpg'", repr(str(ROOT / "ckptconv" / "data" / "photos" / PHOTO))), tmp, f"onnx/{layout}")
    res["photo"] = compare(ref["photo"]["logits"], ns["logits"])
    if layout == "tensor":
        res["stage"] = "session.run(seeded input)"
        session = ns["session"]
        got = session.run(None, {session.get_inputs()[0].name: ref["seeded"]["input"].numpy()})[0]
        res["seeded"] = compare(ref["seeded"]["logits"], got)


RUNNERS = {"timm": run_torch, "torchvision": run_torch, "transformers": run_torch,
           "mmpretrain": run_mmpretrain, "mmdet": run_mmdet, "onnxruntime": run_onnx}


# ---------------------------------------------------------------------------------------------
# One library version
# ---------------------------------------------------------------------------------------------

def installed(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_versions(library: str) -> dict:
    names = (library, *COMPANIONS[library], *RECORDED)
    out = {p: installed(p) for p in dict.fromkeys(names)}
    out["python"] = sys.version.split()[0]
    return {k: v for k, v in out.items() if v is not None}


def import_library(library: str) -> str:
    """Import what the printed texts need, as the ground truth does: 'ok' or the error."""
    import stubs

    try:
        if library == "mmdet":
            stubs.stub_mmcv_ext()
            if installed("mmpretrain"):  # mmdet.models imports mmpretrain where it is installed, as in gt
                stubs.hide_multimodal_from_mmpretrain()
            import mmdet.models  # noqa: F401
        elif library == "mmpretrain":
            stubs.hide_multimodal_from_mmpretrain()
            import mmpretrain.models  # noqa: F401
        elif library == "timm":
            import timm  # noqa: F401
            import torchvision  # noqa: F401  (the snippet's transforms)
        else:
            __import__(library)
    except Exception as exc:  # noqa: BLE001  (what fails to import is the finding)
        return error_text(exc, ROOT)
    return "ok"


def run_layout(library: str, layout: str, model: str, src: Path, ref: dict, tmp: Path) -> dict:
    """Convert src to one layout in tmp and load it as printed: the run's entry, judged."""
    tmp.mkdir()
    os.link(src, tmp / src.name)
    record, text, out = convert(tmp / src.name, tmp, library, layout, model)
    entry: dict = {"convert": record}
    if (library, model) in REFUSED and record["exit_code"] != 0:
        entry.update(refused=record.get("error", ""), problems=[], ok=True)
        return entry
    if record["exit_code"] != 0 or text is None:
        entry["error"] = "convert: " + record.get("error", f"exit {record['exit_code']}")
    else:
        try:
            RUNNERS[library](text, out, ref, tmp, layout, library, entry)
        except Exception as exc:  # noqa: BLE001  (what the printed text raises is the finding)
            entry["error"] = error_text(exc, tmp, entry.get("stage", "") + ": ")
    entry.pop("stage", None)
    if (library, model) in REFUSED:
        entry["note"] = "converted, although ckptconv refused this pair when the table was made"
    judge(entry, layout)
    return entry


def measure_model(library: str, model: str, tmp: Path) -> dict:
    tmp.mkdir()
    src = pycls_checkpoint(model, tmp)
    ref = pycls_reference(model, src, tmp)
    runs = {}
    for layout in LAYOUTS[library]:
        runs[layout] = e = run_layout(library, layout, model, src, ref, tmp / layout)
        print(f"  {model:20s} {layout:7s} {'ok' if e['ok'] else 'DIFFERS'} {'; '.join(e['problems'])[:300]}", flush=True)
    shutil.rmtree(tmp)
    return runs


def measure(library: str, version: str, only) -> dict:
    row = {"measured": datetime.date.today().isoformat(), "status": "measured", "versions": installed_versions(library)}
    if row["versions"].get(library) != version:
        raise SystemExit(f"{library} {row['versions'].get(library)} is installed here, not {version}")
    sys.path.insert(0, str(ROOT))  # the printed texts import ckptconv.transforms / ckptconv.mmengine
    row["import"] = import_library(library)
    row["runs"] = {}
    if row["import"] != "ok":
        row["status"] = "import failed"
        return row
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="gt-versions-") as td:
        for model in only or MODELS:
            print(f"{library} {version}: {model}", flush=True)
            row["runs"][model] = measure_model(library, model, Path(td).resolve() / model)
    return row


# ---------------------------------------------------------------------------------------------
# measured.json
# ---------------------------------------------------------------------------------------------

PROCEDURE = (
    "Per library version, in a venv holding it beside torch 2.14.1 (requirements/versions.txt): each model built by "
    "pycls 0.1.1, weights zoo.recipe_state with measured BatchNorm statistics, written by pycls's save_checkpoint; "
    "`python -m ckptconv convert M.pyth OUT --to LIB ... --json` with this checkout's ckptconv; the output loaded as the "
    "printed text says (snippet exec-ed, config built, fragment pasted over its _base_, ONNX snippet run in onnxruntime); "
    "strict: the file's tensors vs the built model's state_dict; differences to pycls (reloaded by its load_checkpoint) "
    "on the seeded input default_rng(1) 2x3x64x64 and on chelsea.png through the printed preprocessing (pycls's side: "
    "its own test pipeline). tools/groundtruth/versions.py's docstring says every step.")
TOLERANCE_NOTE = ("max_rel = max|diff| / max|pycls|. pth and pth-bgr seeded: tests/test_printed.py's 1e-5; RGB weights on "
                  "the reversed seeded input (pth-rgb, hub, folder): tests/test_transformers.py's 1e-4, and every photo its "
                  "2e-4, taken relative here (this recipe's photo logits reach 1e3); ONNX graphs: tests/test_onnx.py's 2e-4")


def skeleton(old: dict | None) -> dict:
    """measured.json's fixed fields, from this script, over the measured rows of ``old``."""
    return {
        "made_by": SCRIPT, "procedure": PROCEDURE, "models": MODELS,
        "layouts": {lib: list(v) for lib, v in LAYOUTS.items()}, "weights_order": ORDER,
        "tolerance": {k: {i: list(t) for i, t in v.items()} for k, v in TOLERANCE.items()}, "tolerance_note": TOLERANCE_NOTE,
        "findings": FINDINGS,
        "refused_by_design": sorted(f"{lib}/{m}" for lib, m in REFUSED),
        "photo": {"file": f"ckptconv/data/photos/{PHOTO}", "pycls_input": ":".join(PHOTO_REF)},
        "libraries": (old or {}).get("libraries", {}),
    }


def refresh(doc: dict) -> dict:
    doc = skeleton(doc)
    for rows in doc["libraries"].values():
        for row in rows.values():
            rejudge(row)
    return doc


def merge(root: Path, library: str, version: str, row: dict, only) -> None:
    """The row merged into measured.json (with --only, into the runs the row already has)."""
    path = root / MEASURED
    doc = skeleton(json.loads(path.read_text()) if path.exists() else None)
    rows = doc["libraries"].setdefault(library, {})
    if only and version in rows and row["status"] == "measured":
        row["runs"] = {**rows[version].get("runs", {}), **row["runs"]}
    rejudge(row)
    rows[version] = row
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"{library} {version}: {row['verdict']}")


def not_measured(library: str, version: str, reason: str, pairs: list[str]) -> dict:
    versions = dict(p.split("=", 1) for p in pairs)
    return {"measured": datetime.date.today().isoformat(), "status": "not measured", "reason": reason,
            "versions": versions, "runs": {}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", choices=LIBRARIES)
    ap.add_argument("--version", help="the installed version of --library (checked)")
    ap.add_argument("--only", nargs="+", choices=list(MODELS), help="these models only, merged into the row")
    ap.add_argument("--not-measured", metavar="REASON", help="record LIBRARY VERSION as not measured, and why")
    ap.add_argument("--with", dest="pairs", nargs="*", default=[], metavar="PACKAGE=VERSION",
                    help="with --not-measured: the companion versions it was tried with")
    ap.add_argument("--render", action="store_true", help="only rewrite versions.json and docs/versions.md")
    ap.add_argument("--out-root", type=Path, default=ROOT, help="the repository root to write under")
    args = ap.parse_args(argv)
    os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error")
    if not args.render:
        if not (args.library and args.version):
            ap.error("--library and --version are needed (or --render)")
        if args.not_measured:
            row = not_measured(args.library, args.version, args.not_measured, args.pairs)
        else:
            row = measure(args.library, args.version, args.only)
        merge(args.out_root, args.library, args.version, row, args.only)
    render(args.out_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
