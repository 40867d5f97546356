#!/usr/bin/env python3
"""Ground truth for ``ckptconv convert IN model.onnx --to onnx``: what pycls 0.1.1 itself computes,
on tensors and on photos, for eight models, and how far onnxruntime runs a torch.onnx export of the
real pycls model from it (and how far a wrong preprocessing would be).

Ground truth for the suite (not part of the ckptconv package). It writes ``tests/data/onnx/``,
the ground truth for the tests of the ``--to onnx`` feature (opset 19, run in onnxruntime): they
hold ckptconv's graphs to it, both the graph that takes a normalized float32 N x 3 x H x W tensor and
the one that takes a photo's raw uint8 H x W x 3 pixels (BGR as ``cv2.imread`` gives them, or RGB as
PIL gives them) and does pycls's test-time preprocessing inside the graph.

Models, each built by pycls 0.1.1's own config and builder exactly as ``pycls_zoo.py`` does it
(``reset_cfg``, the values merged with yacs's ``merge_from_list`` through ``zoo.merge_values``,
``pycls.core.builders.build_model``):

- ``b0``: EfficientNet-B0 (zoo YAML values from ``zoo.py``)
- ``regnetx_200mf``, ``regnety_200mf``: RegNetX-200MF, RegNetY-200MF (zoo)
- ``resnet50``: pycls's zoo ResNet-50 (R-50-1x64d: an AnyNet, stride on the 3x3)
- ``resnet50_stride1x1``: ResNet-50 built by ``pycls/models/resnet.py`` (MODEL.TYPE resnet,
  MODEL.DEPTH 50, RESNET.TRANS_FUN bottleneck_transform, RESNET.STRIDE_1X1 True: stride on the 1x1).
  pycls 0.1.1's ResNet asserts TRAIN.DATASET and TEST.DATASET are cifar10/imagenet (the default is
  ""), so both are set to imagenet. Its state_dict has the zoo ResNet-50's keys and shapes exactly.
- ``regnety_200mf_ft10``: RegNetY-200MF with MODEL.NUM_CLASSES 10 (a fine-tuned head)
- ``regnet_custom``: MODEL.TYPE regnet, REGNET.DEPTH 8, W0 24, WA 12.0, WM 2.2, GROUP_W 8, SE_ON True,
  MODEL.NUM_CLASSES 100, TRAIN.IM_SIZE 160, TEST.IM_SIZE 184 (3 stages [1, 4, 3] x [24, 56, 120]:
  checked here to be no zoo structure)
- ``resnext50``: pycls's zoo ResNeXt-50 32x4d (X-50-32x4d, ``resnext50_32x4d`` in ckptconv and
  zoo.py: an AnyNet of res_bottleneck_block, BOT_MULS 0.5, 32 groups per stage through
  ANYNET.GROUP_WS [4, 8, 16, 32]; zoo.py's values), treated as ``resnet50``

Weights: ``zoo.recipe_state`` of the state_dict's shapes (``np.random.default_rng(0)``, the recipe
written out in ``pycls_zoo.py``'s docstring) EXCEPT the BatchNorm statistics, which are MEASURED
with the real pycls model (random statistics make an EfficientNet's logits almost the same for any
input): load the recipe, ``model.train()``, every BatchNorm2d ``reset_running_stats()`` and
``momentum = None``, one forward of
``np.random.default_rng([7, seed]).standard_normal((8, 3, 224, 224)).astype(np.float32)`` (seed = the
recipe seed, 0) under ``torch.no_grad()``; then ``running_mean`` as is, and ``running_var`` clamped
below, per layer, at ``0.1 * median(running_var) + 1e-3`` (in float64, then cast to float32).
``num_batches_tracked`` stays the recipe's 0. The final weights = the recipe with those arrays in
place; ``state_sha256`` is the SHA-256 of the C-order bytes of every state_dict array in order.

Writes (under the repository root):

- ``tests/data/onnx/<model>.weights.npz``: ``__cfg__`` (``cfg.dump()`` text, 0-d unicode array),
  ``__recipe_seed__`` (0-d int64), and per BatchNorm the measured ``<key>.running_mean`` and
  ``<key>.running_var`` (float32, keyed by their state_dict keys).
- ``tests/data/onnx/<model>.outputs.npz``: pycls's logits for every photo, and for the seeded
  tensor inputs (batch 1 and 4) the logits, the pooled features and every stage output (stem,
  s1..sN, EfficientNet's head conv) as per-channel means plus 512 values at stored positions.
- ``tests/data/onnx/inputs.npz``: pycls's full input tensors of two derived photos at each
  (TEST.IM_SIZE, TRAIN.IM_SIZE) (the shipped photos' 256/224 inputs are in
  ``tests/data/pipelines/pycls_reference.npz``; checked bit-equal here).
- ``tests/data/onnx/models.json``: per model its cfg values and ``cfg.dump()``, structure, its
  state_dict's [key, shape, dtype] rows in order (what the recipe walks), weight checksums and per
  photo the input shape and pycls's top-5.
- ``tests/data/onnx/photos.json``: the photos, the derived images' numpy recipes, and per size pycls's
  resized size, crop offset and input per-channel sums.
- ``tests/data/onnx/drift.json``: torch.onnx.export (dynamo=True, opset 19, dynamic batch/H/W) of each
  real pycls model run in onnxruntime against torch: max abs / relative logits differences for
  batch 1, 2, 5, an odd-sized input and the photos, with 1 and the default intra-op threads; and the
  preprocessing variants (correct ones done with other arithmetic, and deliberately wrong ones) as
  max abs differences of input and logits.
- ``tests/data/onnx/export_times.json``: seconds per export (the one file that is not byte-stable).

tests/data/onnx/README.md describes every file and array, and the measured tables.

Environment: the gt environment, ``tools/groundtruth/requirements/gt.txt`` (+ ``gt-nodeps.txt``;
``tools/groundtruth/README.md`` says how to make it): Python 3.11.7, torch 2.14.1 (PyPI's +cu130
build, run on the CPU), torchvision 0.29.1, pycls 0.1.1 (--no-deps) with yacs 0.1.8, iopath and
simplejson, onnx 1.23.2, onnxscript 0.7.2, onnxruntime 1.32.0, numpy 2.4.6, opencv-python-headless
5.0.0.93. The committed files were last made (when resnext50 was added) in a gt environment as
gt.txt makes it: opencv-python-headless 5.0.0.93 alone (``cv2.__version__`` 5.0.0, IPP 2026.0.0;
drift.json and models.json record it under ``versions``). The first seven models had been made in
an environment built before gt.txt was written, where mmcv-lite's dependency opencv-python 5.1.0.95
had been installed after opencv-python-headless and its files won the shared ``cv2/`` folder
(``cv2.__version__`` 5.1.0, IPP 2026.1.0). It makes no difference here: rerun under headless 5.0.0.93
alone, every npz file of those seven models, inputs.npz and photos.json came out byte-identical,
and their entries in models.json and drift.json identical (only ``versions`` changed); cv2.resize
of 5.0.0.93 and 5.1.0.95 had given identical float32 and uint8 results for all 14 (photo, size)
cases; and pycls's 256/224 inputs of the shipped photos are bit-identical to
tests/data/pipelines/pycls_reference.npz (checked on every run: photos.json
``equals_pipelines_reference``). CPU only, no network, nothing downloaded; torch runs with 1 thread.

Run from the repository root (about 4 minutes on 2 cores):
    .venv/gt/bin/python tools/groundtruth/onnx_pycls.py
(the committed files: ``.venv/gt/bin/python tools/groundtruth/onnx_pycls.py``, from the repo root). Deterministic:
a rerun in the same environment on the same machine writes the same bytes (all but
export_times.json). The .onnx files live in a temporary directory that is deleted at the end.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import torch

torch.set_num_threads(1)

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pycls.core.builders as builders  # noqa: E402
import pycls.datasets.imagenet as pycls_imagenet  # noqa: E402
import pycls.datasets.transforms as pycls_transforms  # noqa: E402
import pycls.models.regnet as pycls_regnet  # noqa: E402
import zoo  # noqa: E402  tools/groundtruth/zoo.py: run as a script, this folder is sys.path[0]
from PIL import Image  # noqa: E402
from pycls.core.config import cfg, reset_cfg  # noqa: E402

ROOT = zoo.REPO_ROOT
OUT = ROOT / "tests/data/onnx"
PHOTO_DIR = ROOT / "ckptconv/data/photos"
PIPELINES_NPZ = ROOT / "tests/data/pipelines/pycls_reference.npz"
REL = "tests/data/onnx"

RECIPE_SEED = 0
BN_INPUT_SHAPE = (8, 3, 224, 224)
TENSOR_BATCHES = (1, 4)
DRIFT_BATCHES = (1, 2, 5)
ODD_SHAPE = (1, 3, 199, 257)
SAMPLES = 512
# A wrong variant "changes" an image's input where it moves it by more than this (normalized
# units): 5x the largest difference of the correct variants (ORT's Resize: 2e-4). Antialiasing an
# upscaled image, a resize where none happens, a crop at an even margin change nothing or less.
MATERIAL_INPUT = 1e-3
# The tolerances drift.json recommends (checked against this run's numbers at the end).
RECOMMENDED = {"logits_max_rel": 2e-4, "input_max_abs": 1e-3}
OPSET = 19

# ---------------------------------------------------------------------------------------------
# The models (cfg values merged into a reset pycls 0.1.1 cfg, in this order).
# ---------------------------------------------------------------------------------------------


def _model_values() -> dict:
    resnet_1x1 = {"MODEL.TYPE": "resnet", "MODEL.DEPTH": 50, "MODEL.NUM_CLASSES": 1000,
                  "RESNET.TRANS_FUN": "bottleneck_transform", "RESNET.STRIDE_1X1": True,
                  "RESNET.NUM_GROUPS": 1, "RESNET.WIDTH_PER_GROUP": 64,
                  "TRAIN.DATASET": "imagenet", "TEST.DATASET": "imagenet",
                  "TRAIN.IM_SIZE": 224, "TEST.IM_SIZE": 256}
    ft10 = dict(zoo.yaml_values("regnety_200mf"))
    ft10["MODEL.NUM_CLASSES"] = 10
    custom = {"MODEL.TYPE": "regnet", "MODEL.NUM_CLASSES": 100, "REGNET.SE_ON": True,
              "REGNET.DEPTH": 8, "REGNET.W0": 24, "REGNET.WA": 12.0, "REGNET.WM": 2.2,
              "REGNET.GROUP_W": 8, "TRAIN.IM_SIZE": 160, "TEST.IM_SIZE": 184}
    return {
        "b0": ("(a) EfficientNet-B0, pycls zoo", zoo.yaml_values("b0")),
        "regnetx_200mf": ("(b) RegNetX-200MF, pycls zoo", zoo.yaml_values("regnetx_200mf")),
        "regnety_200mf": ("(c) RegNetY-200MF, pycls zoo", zoo.yaml_values("regnety_200mf")),
        "resnet50": ("(d) ResNet-50, pycls zoo R-50-1x64d (AnyNet, stride on the 3x3)",
                     zoo.yaml_values("resnet50")),
        "resnet50_stride1x1": ("(e) ResNet-50 of pycls/models/resnet.py (stride on the 1x1)",
                               resnet_1x1),
        "regnety_200mf_ft10": ("(f) RegNetY-200MF fine-tuned to 10 classes", ft10),
        "regnet_custom": ("(g) a RegNet of its own numbers (no zoo structure)", custom),
        "resnext50": ("(h) ResNeXt-50 32x4d, pycls zoo X-50-32x4d (AnyNet, groups via "
                      "ANYNET.GROUP_WS)", zoo.yaml_values("resnext50_32x4d")),
    }


# The zoo name (zoo.json, tests/data/manifests/pycls) of a model whose file stem is not it.
ZOO_NAMES = {"resnext50": "resnext50_32x4d"}


MODELS = _model_values()


def set_cfg(values: dict) -> None:
    reset_cfg()
    cfg.defrost()
    zoo.merge_values(cfg, values)


def build(values: dict) -> torch.nn.Module:
    set_cfg(values)
    torch.manual_seed(0)  # pycls's own init draws from torch; the recipe replaces every value
    model = builders.build_model()
    model.eval()
    return model


def stages(model) -> list[str]:
    """The stage modules' names in order: s1 .. sN."""
    return [n for n, _ in model.named_children() if n.startswith("s") and n[1:].isdigit()]


def recipe_state(model) -> dict:
    """zoo.recipe_state of the model's state_dict shapes, once every weight is known to be a
    BatchNorm2d's (1-D) or a conv's / fc's (the recipe's rules tell them apart by rank)."""
    modules = dict(model.named_modules())
    sd = model.state_dict()
    for key, tensor in sd.items():
        mod_name, _, param = key.rpartition(".")
        module = modules[mod_name]
        is_bn = isinstance(module, torch.nn.BatchNorm2d)
        known = is_bn or isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))
        if param == "weight" and (not known or is_bn != (tensor.dim() == 1)):
            raise KeyError(f"{key}: no rule in the weight recipe for {type(module).__name__}")
    state = zoo.recipe_state({k: tuple(t.shape) for k, t in sd.items()})
    for key, tensor in sd.items():
        assert str(tensor.dtype).replace("torch.", "") == str(state[key].dtype), key
    return state


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def write_npz(path: Path, arrays: dict) -> None:
    """npz with fixed zip timestamps (np.savez_compressed stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            body = io.BytesIO()
            arr = np.asarray(arr)
            if not arr.flags.c_contiguous:  # (np.ascontiguousarray would make a 0-d array 1-d)
                arr = np.ascontiguousarray(arr)
            np.lib.format.write_array(body, arr, allow_pickle=False)
            zf.writestr(info, body.getvalue(), compresslevel=9)
    path.write_bytes(buf.getvalue())


def dumps(obj, indent: int = 0) -> str:
    """JSON with dicts one key a line and lists of scalars on one line (the layout of zoo.json)."""
    pad = "  " * (indent + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{pad}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        items = [f"{pad}{dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(obj)


def write_json(path: Path, obj) -> None:
    path.write_text(dumps(obj) + "\n")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def versions() -> dict:
    dist = importlib.metadata.version
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for name in ("pycls", "torch", "torchvision", "onnx", "onnxscript", "onnx-ir", "onnxruntime",
                 "numpy", "opencv-python-headless", "opencv-python", "pillow", "yacs"):
        try:
            out[name] = dist(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["torch.__version__"] = torch.__version__
    out["onnxruntime_device"] = ort.get_device()
    out["cv2.__version__"] = cv2.__version__
    ipp = [line.strip() for line in cv2.getBuildInformation().splitlines()
           if line.strip().startswith("Intel IPP:")]
    out["cv2_ipp"] = ipp[0].split(":", 1)[1].strip() if ipp else None
    out["cv2_use_optimized"] = bool(cv2.useOptimized())
    out["torch_num_threads"] = torch.get_num_threads()
    out["cpu_count"] = os.cpu_count()
    return out


# ---------------------------------------------------------------------------------------------
# Weights: the numpy recipe + measured BatchNorm statistics
# ---------------------------------------------------------------------------------------------

def state_sha(state: dict) -> str:
    """SHA-256 of the C-order bytes of every array in order (as zoo.json's weights_sha256)."""
    h = hashlib.sha256()
    for arr in state.values():
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def bn_input(seed: int) -> np.ndarray:
    return np.random.default_rng([7, seed]).standard_normal(BN_INPUT_SHAPE).astype(np.float32)


def measure_bn(model, recipe: dict) -> tuple[dict, dict]:
    """Load the recipe, measure the statistics in train mode; returns (stats, info)."""
    model.load_state_dict({k: torch.from_numpy(v) for k, v in recipe.items()}, strict=True)
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    assert cfg.EN.DC_RATIO == 0.0  # no drop-connect in train mode
    bns = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert all(type(m) is torch.nn.BatchNorm2d for m in bns.values())
    model.train()
    for m in bns.values():
        m.reset_running_stats()
        m.momentum = None
    with torch.no_grad():
        model(torch.from_numpy(bn_input(RECIPE_SEED)))
    model.eval()
    stats, clamped = {}, 0
    for n, m in bns.items():
        mean = m.running_mean.detach().numpy().astype(np.float32)
        var64 = m.running_var.detach().numpy().astype(np.float64)
        floor = 0.1 * float(np.median(var64)) + 1e-3
        clamped += int((var64 < floor).sum())
        stats[f"{n}.running_mean"] = mean
        stats[f"{n}.running_var"] = np.maximum(var64, floor).astype(np.float32)
        assert int(m.num_batches_tracked) == 1
    return stats, {"bn_layers": len(bns), "bn_channels": int(sum(m.num_features for m in bns.values())),
                   "running_var_channels_clamped": clamped}


def final_state(recipe: dict, stats: dict) -> dict:
    state = dict(recipe)
    for k, v in stats.items():
        assert state[k].shape == v.shape and state[k].dtype == v.dtype, k
        state[k] = v
    return state


# ---------------------------------------------------------------------------------------------
# Photos: the shipped ones, and images derived from them by exact numpy operations
# ---------------------------------------------------------------------------------------------

def shipped_photos() -> list[Path]:
    return sorted(PHOTO_DIR.glob("*.png"))


def derived_recipes(resize: int) -> dict:
    """name -> recipe (data). ops apply in order to cv2.imread(source) (BGR uint8, H x W x 3):
    ["slice", [y0, y1], [x0, x1]] -> a[y0:y1, x0:x1]; ["repeat", k, axis] -> np.repeat(a, k, axis)."""
    return {
        "chelsea_small": {"source": "chelsea.png", "ops": [["slice", [40, 230], [100, 290]]],
                          "why": "190x190, smaller than TEST.IM_SIZE 256: pycls upscales it"},
        "rocket_x4": {"source": "rocket_strip.png", "ops": [["repeat", 4, 0], ["repeat", 4, 1]],
                      "why": "1756x868: pycls downscales by ~3.4, where antialiasing matters most"},
        f"astronaut_exact{resize}": {
            "source": "astronaut_crop.png", "ops": [["slice", [10, 10 + resize + 57], [20, 20 + resize]]],
            "why": (f"short side exactly TEST.IM_SIZE {resize}: pycls does not resize; the long side "
                    f"{resize + 57} leaves an odd margin, so the crop offset rounds (ceil)")},
    }


def apply_recipe(recipe: dict) -> np.ndarray:
    a = cv2.imread(str(PHOTO_DIR / recipe["source"]))
    for op in recipe["ops"]:
        if op[0] == "slice":
            a = a[op[1][0]:op[1][1], op[2][0]:op[2][1]]
        elif op[0] == "repeat":
            a = np.repeat(a, op[1], axis=op[2])
        else:
            raise ValueError(op)
    return np.ascontiguousarray(a)


def pycls_item(path: Path) -> np.ndarray:
    """pycls 0.1.1's ImageNet.__getitem__ on a one-image dataset, split 'val', with the sizes
    already in cfg (as tools/groundtruth/photos.py builds it)."""
    dataset = pycls_imagenet.ImageNet.__new__(pycls_imagenet.ImageNet)  # no __init__: it lists a folder
    dataset._data_path, dataset._split = str(path.parent), "val"
    dataset._imdb = [{"im_path": str(path), "class": 0}]
    im, label = dataset[0]
    crop = cfg.TRAIN.IM_SIZE
    assert label == 0 and im.dtype == np.float32 and im.shape == (3, crop, crop), (im.dtype, im.shape)
    return im


def pycls_prepare(bgr_float: np.ndarray) -> np.ndarray:
    """pycls 0.1.1's own ImageNet._prepare_im (split val) on an H x W x 3 float32 image."""
    dataset = pycls_imagenet.ImageNet.__new__(pycls_imagenet.ImageNet)
    dataset._split = "val"
    return dataset._prepare_im(bgr_float.astype(np.float32))


MEAN_BGR = [float(v) for v in pycls_imagenet._MEAN]
STD_BGR = [float(v) for v in pycls_imagenet._SD]


def size_rule(h: int, w: int, resize: int) -> tuple[int, int]:
    """pycls's transforms.scale size (read off its output below; asserted equal)."""
    if (w <= h and w == resize) or (h <= w and h == resize):
        return h, w
    if w < h:
        return int(math.floor((float(h) / w) * resize)), resize
    return resize, int(math.floor((float(w) / h) * resize))


def crop_offsets(hw, crop: int) -> tuple[int, int]:
    """The (y, x) pycls's own center_crop picks: run it on an image of its own indices."""
    h, w = hw
    index = np.stack([*np.meshgrid(np.arange(h), np.arange(w), indexing="ij"),
                      np.zeros((h, w), np.int64)], axis=2)
    corner = pycls_transforms.center_crop(crop, index)[0, 0]
    return int(corner[0]), int(corner[1])


def finish(resized: np.ndarray, crop: int, offsets=None, mean=None, std=None) -> np.ndarray:
    """After the resize, pycls's way (its center_crop, HWC->CHW, /255, its color_norm), with
    optional other crop offsets or mean/std."""
    if offsets is None:
        im = pycls_transforms.center_crop(crop, resized)
    else:
        y, x = offsets
        im = resized[y:y + crop, x:x + crop, :]
    im = im.transpose([2, 0, 1]) / 255.0
    return pycls_transforms.color_norm(im, mean or MEAN_BGR, std or STD_BGR)


# Resizers: cv2 (pycls's), cv2 without IPP / on uint8, torch's interpolate, onnxruntime's Resize.

def resize_cv2(im_f32, hw, *, ipp=True):
    old = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(ipp)
    try:
        return cv2.resize(im_f32, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    finally:
        cv2.ipp.setUseIPP(old)


def resize_torch(im_f32, hw, *, antialias):
    t = torch.from_numpy(np.ascontiguousarray(im_f32.transpose(2, 0, 1)))[None]
    out = torch.nn.functional.interpolate(t, size=hw, mode="bilinear", align_corners=False,
                                          antialias=antialias)
    return out[0].numpy().transpose(1, 2, 0).astype(np.float32)


class OrtResize:
    """onnxruntime's Resize (opset 19, linear, half_pixel), no antialias or antialias=1."""

    def __init__(self):
        from onnx import TensorProto, helper
        self.sessions = {}
        for aa in (0, 1):
            x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])
            s = helper.make_tensor_value_info("sizes", TensorProto.INT64, [4])
            y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "oh", "ow"])
            node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                                    coordinate_transformation_mode="half_pixel", antialias=aa)
            model = helper.make_model(helper.make_graph([node], "resize", [x, s], [y]),
                                      opset_imports=[helper.make_opsetid("", OPSET)])
            model.ir_version = 9
            onnx.checker.check_model(model)
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            self.sessions[aa] = ort.InferenceSession(model.SerializeToString(), so,
                                                     providers=["CPUExecutionProvider"])

    def __call__(self, im_f32, hw, *, antialias=0):
        x = np.ascontiguousarray(im_f32.transpose(2, 0, 1))[None]
        y = self.sessions[antialias].run(None, {"x": x, "sizes": np.array([1, 3, *hw], np.int64)})[0]
        return y[0].transpose(1, 2, 0).astype(np.float32)


def variant_inputs(bgr: np.ndarray, resize: int, crop: int, ort_resize: OrtResize) -> dict:
    """Each preprocessing variant's input tensor (3, C, C); everything not named is pycls's way."""
    h, w = bgr.shape[:2]
    hw = size_rule(h, w, resize)
    f32 = bgr.astype(np.float32)
    resized = hw != (h, w)

    def rs(fn):
        return fn() if resized else f32

    out = {
        # Correct, computed with other arithmetic:
        "cv2_without_ipp": finish(rs(lambda: resize_cv2(f32, hw, ipp=False)), crop),
        "torch_interpolate_bilinear": finish(rs(lambda: resize_torch(f32, hw, antialias=False)), crop),
        "onnxruntime_resize_linear_half_pixel": finish(rs(lambda: ort_resize(f32, hw)), crop),
        # Wrong:
        "channels_reversed": pycls_prepare(bgr[:, :, ::-1].astype(np.float32)),
        "mean_std_rgb_order": finish(rs(lambda: resize_cv2(f32, hw)), crop,
                                     mean=MEAN_BGR[::-1], std=STD_BGR[::-1]),
        "resize_antialias_torch": finish(rs(lambda: resize_torch(f32, hw, antialias=True)), crop),
        "resize_antialias_onnxruntime": finish(rs(lambda: ort_resize(f32, hw, antialias=1)), crop),
        "crop_offset_half_to_even": finish(
            rs(lambda: resize_cv2(f32, hw)), crop,
            offsets=(int(round((hw[0] - crop) / 2)), int(round((hw[1] - crop) / 2)))),
        "resize_uint8": finish(
            rs(lambda: cv2.resize(bgr, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
               .astype(np.float32)), crop),
    }
    return out


CORRECT_VARIANTS = ["cv2_without_ipp", "torch_interpolate_bilinear",
                    "onnxruntime_resize_linear_half_pixel"]
WRONG_VARIANTS = ["channels_reversed", "mean_std_rgb_order", "resize_antialias_torch",
                  "resize_antialias_onnxruntime", "crop_offset_half_to_even", "resize_uint8"]


def prepare_images(tmp: Path, sizes: list, pipelines: dict) -> tuple[dict, dict]:
    """Per (R, C): {image: (path, bgr)}; and photos.json's content."""
    doc = {"shipped": {}, "derived": {}, "sizes": {}}
    per_size = {}
    for path in shipped_photos():
        bgr = cv2.imread(str(path))
        rgb_pil = np.asarray(Image.open(path).convert("RGB"))
        doc["shipped"][path.stem] = {
            "file": str(path.relative_to(ROOT)), "image_shape": list(bgr.shape),
            "bgr_sha256": sha256(bgr.tobytes()), "file_sha256": sha256(path.read_bytes()),
            "pil_rgb_equals_cv2_bgr_reversed": bool(np.array_equal(rgb_pil, bgr[:, :, ::-1]))}
    for resize, crop in sizes:
        images = {p.stem: (p, cv2.imread(str(p))) for p in shipped_photos()}
        for name, recipe in derived_recipes(resize).items():
            bgr = apply_recipe(recipe)
            path = tmp / f"{name}.png"
            assert cv2.imwrite(str(path), bgr)
            assert np.array_equal(cv2.imread(str(path)), bgr)  # lossless round trip
            images[name] = (path, bgr)
            doc["derived"].setdefault(name, {**recipe, "image_shape": list(bgr.shape),
                                             "bgr_sha256": sha256(bgr.tobytes())})
        per_size[(resize, crop)] = images
    return per_size, doc


# ---------------------------------------------------------------------------------------------
# Tensors, features
# ---------------------------------------------------------------------------------------------

def tensor_input(batch: int, c: int) -> np.ndarray:
    return np.random.default_rng([11, batch]).standard_normal((batch, 3, c, c)).astype(np.float32)


def odd_input() -> np.ndarray:
    return np.random.default_rng([12, *ODD_SHAPE]).standard_normal(ODD_SHAPE).astype(np.float32)


def positions(shape) -> np.ndarray:
    size = int(np.prod(shape))
    if size <= SAMPLES:
        return np.arange(size, dtype=np.int32)
    pos = np.random.default_rng([13, *shape]).choice(size, SAMPLES, replace=False)
    return np.sort(pos).astype(np.int32)


def run_features(model, x: np.ndarray, is_effnet: bool) -> tuple[dict, np.ndarray]:
    recorded = {}
    hooks = []

    def keep(name, flatten=False):
        def hook(_m, _i, out):
            out = out.detach().clone()
            recorded[name] = out.reshape(out.shape[0], -1) if flatten else out
        return hook

    names = ["stem"] + stages(model) + (["head_conv"] if is_effnet else [])
    hooks.append(model.stem.register_forward_hook(keep("stem")))
    for s in stages(model):
        hooks.append(getattr(model, s).register_forward_hook(keep(s)))
    if is_effnet:
        hooks.append(model.head.conv_swish.register_forward_hook(keep("head_conv")))
    hooks.append(model.head.avg_pool.register_forward_hook(keep("pool", flatten=True)))
    with torch.no_grad():
        logits = model(torch.from_numpy(x.copy())).numpy()
    for h in hooks:
        h.remove()
    feats = {n: recorded[n].numpy() for n in names + ["pool"]}
    return feats, logits


def torch_logits(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()


# ---------------------------------------------------------------------------------------------
# Export and onnxruntime
# ---------------------------------------------------------------------------------------------

def export(model, c: int, path: Path) -> dict:
    from torch.export import Dim

    x = torch.from_numpy(tensor_input(2, c))
    tries = [("batch_h_w", {"x": {0: Dim("batch", min=1, max=1024), 2: Dim("h", min=32, max=4096),
                                   3: Dim("w", min=32, max=4096)}}),
             ("batch", {"x": {0: Dim("batch", min=1, max=1024)}})]
    errors = {}
    for label, dyn in tries:
        t0 = time.perf_counter()
        try:
            torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=OPSET,
                              dynamic_shapes=dyn, input_names=["x"], output_names=["logits"])
        except Exception as e:  # record and try the next
            errors[label] = f"{type(e).__name__}: {str(e)[:500]}"
            continue
        seconds = time.perf_counter() - t0
        m = onnx.load(str(path))
        onnx.checker.check_model(m)
        ops = {}
        for node in m.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        return {"dynamic_shapes": label, "failed_attempts": errors, "seconds": seconds,
                "graph_input": [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
                                for i in m.graph.input],
                "graph_output": [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
                                 for o in m.graph.output],
                "opset": [[o.domain, o.version] for o in m.opset_import],
                "ir_version": m.ir_version,
                "op_types": dict(sorted(ops.items())), "num_nodes": len(m.graph.node),
                "num_initializers": len(m.graph.initializer)}
    raise RuntimeError(f"export failed: {errors}")


def sessions(path: Path) -> dict:
    out = {}
    for label, threads in (("threads_1", 1), ("threads_default", 0)):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        out[label] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return out


def diff(a: np.ndarray, ref: np.ndarray) -> dict:
    d = float(np.abs(a.astype(np.float64) - ref.astype(np.float64)).max())
    return {"max_abs": d, "max_rel": d / float(np.abs(ref).max())}


def fmax(values):
    return max(values) if values else None


def summarize(drift: dict) -> dict:
    """Maxima of the correct runs, minima of the wrong variants (where they change the input),
    over every model and image; and whether the recommended tolerances sit between them."""
    ort_runs = []
    for m, d in drift.items():
        for t, r in d["ort_vs_torch"].items():
            for k, v in r.items():
                if isinstance(v, dict) and "max_rel" in v:
                    ort_runs.append((v["max_rel"], v["max_abs"], m, t, k))
    worst = max(ort_runs)
    out = {"ort_model_vs_torch": {"max_rel": worst[0], "max_abs": max(r[1] for r in ort_runs),
                                  "max_rel_at": f"{worst[2]} {worst[3]} {worst[4]}"},
           "variants": {}}
    for vname in CORRECT_VARIANTS + WRONG_VARIANTS:
        rows = [(e["logits_max_rel_onnxruntime"], e["logits_max_abs_onnxruntime"], e["input_max_abs"], m, img)
                for m, d in drift.items() for img, e in d["preprocessing"][vname]["per_image"].items()]
        if vname in CORRECT_VARIANTS:
            top = max(rows)
            out["variants"][vname] = {
                "kind": "correct", "logits_max_rel": top[0], "logits_max_rel_at": f"{top[3]} {top[4]}",
                "logits_max_abs": max(r[1] for r in rows), "input_max_abs": max(r[2] for r in rows)}
        else:
            material = [r for r in rows if r[2] > MATERIAL_INPUT]
            low = min(material)
            out["variants"][vname] = {
                "kind": "wrong", "images_where_input_differs": f"{len(material)} of {len(rows)}",
                "logits_min_rel": low[0], "logits_min_rel_at": f"{low[3]} {low[4]}",
                "logits_min_abs": min(r[1] for r in material), "logits_max_abs": max(r[1] for r in rows),
                "input_min_abs": min(r[2] for r in material), "input_max_abs": max(r[2] for r in rows)}
    v = out["variants"]
    correct_rel = max([out["ort_model_vs_torch"]["max_rel"]]
                      + [v[n]["logits_max_rel"] for n in CORRECT_VARIANTS])
    correct_in = max(v[n]["input_max_abs"] for n in CORRECT_VARIANTS)
    wrong_rel = min(v[n]["logits_min_rel"] for n in WRONG_VARIANTS)
    wrong_in = min(v[n]["input_min_abs"] for n in WRONG_VARIANTS)
    out["correct_logits_max_rel"], out["wrong_logits_min_rel"] = correct_rel, wrong_rel
    out["correct_input_max_abs"], out["wrong_input_min_abs"] = correct_in, wrong_in
    out["recommended"] = dict(RECOMMENDED)
    out["recommended_margins"] = {
        "logits": [RECOMMENDED["logits_max_rel"] / correct_rel, wrong_rel / RECOMMENDED["logits_max_rel"]],
        "input": [RECOMMENDED["input_max_abs"] / correct_in, wrong_in / RECOMMENDED["input_max_abs"]]}
    out["recommended_holds"] = all(min(m) >= 2 for m in out["recommended_margins"].values())
    if not out["recommended_holds"]:
        print("WARNING: the recommended tolerances are not 2x inside this run's numbers:",
              out["recommended_margins"], flush=True)
    return out


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def check_custom_not_zoo(custom_values: dict, custom_rows: list, manifests: dict) -> dict:
    """Its RegNet.get_args() against every zoo RegNet's, and its state_dict rows against every
    zoo manifest (tests/data/manifests/pycls)."""
    set_cfg(custom_values)
    mine = pycls_regnet.RegNet.get_args()
    same_args = []
    for name in zoo.NAMES:
        if zoo.family(name) in ("regnetx", "regnety"):
            set_cfg(zoo.yaml_values(name))
            theirs = pycls_regnet.RegNet.get_args()
            keys = ("ds", "ws", "gws", "bms", "ss", "se_r", "stem_w", "block_type")
            if all(zoo.plain(mine[k]) == zoo.plain(theirs[k]) for k in keys):
                same_args.append(name)
    same_rows = [n for n, rows in manifests.items() if rows == custom_rows]
    assert not same_args and not same_rows, (same_args, same_rows)
    return {"regnet_get_args": {k: zoo.plain(v) for k, v in mine.items()},
            "zoo_regnets_with_the_same_stages": same_args,
            "zoo_manifests_with_the_same_keys_and_shapes": same_rows}


def main() -> int:
    assert importlib.metadata.version("pycls") == zoo.PYCLS_VERSION
    OUT.mkdir(parents=True, exist_ok=True)
    vers = versions()
    manifests = {p.stem: json.loads(p.read_text())["keys"]
                 for p in sorted((ROOT / "tests/data/manifests/pycls").glob("*.json"))}
    zoo_json = json.loads((ROOT / "tests/data/zoo.json").read_text())["models"]
    pipelines = dict(np.load(PIPELINES_NPZ))
    sizes = sorted({(v["TEST.IM_SIZE"], v["TRAIN.IM_SIZE"]) for _, v in MODELS.values()},
                   reverse=True)
    ort_resize = OrtResize()

    models_doc, drift_doc, times_doc = {}, {}, {}
    inputs_npz = {}
    with tempfile.TemporaryDirectory(prefix="onnx_pycls_") as tmpdir:
        tmp = Path(tmpdir)
        per_size, photos_doc = prepare_images(tmp, sizes, pipelines)

        # pycls's own input per (size, image), and each variant's
        pycls_inputs, variants = {}, {}
        for (resize, crop), images in per_size.items():
            key = f"{resize}_{crop}"
            set_cfg({"TEST.IM_SIZE": resize, "TRAIN.IM_SIZE": crop})
            size_doc = photos_doc["sizes"].setdefault(key, {})
            for name, (path, bgr) in images.items():
                x = pycls_item(path)
                hw = pycls_transforms.scale(resize, bgr.astype(np.float32)).shape[:2]
                assert tuple(hw) == size_rule(*bgr.shape[:2], resize), (name, hw)
                yx = crop_offsets(hw, crop)
                resized = resize_cv2(bgr.astype(np.float32), hw) if tuple(hw) != bgr.shape[:2] \
                    else bgr.astype(np.float32)
                assert np.array_equal(finish(resized, crop), x), name  # the steps, checked
                x = np.ascontiguousarray(x)
                pycls_inputs[(key, name)] = x
                variants[(key, name)] = variant_inputs(bgr, resize, crop, ort_resize)
                entry = {"image_shape": list(bgr.shape), "resized_hw": list(hw),
                         "resized": tuple(hw) != bgr.shape[:2],
                         "resized_channel_sums": [float(v) for v in
                                                  resized.astype(np.float64).sum(axis=(0, 1))],
                         "crop_yx": list(yx),
                         "input_shape": list(x.shape),
                         "input_channel_sums": [float(v) for v in x.astype(np.float64).sum(axis=(1, 2))]}
                ref_key = f"{name}__{key}"
                if ref_key in pipelines:
                    entry["full_input"] = f"tests/data/pipelines/pycls_reference.npz:{ref_key}"
                    entry["equals_pipelines_reference"] = bool(np.array_equal(pipelines[ref_key], x))
                    entry["max_abs_vs_pipelines_reference"] = float(np.abs(pipelines[ref_key] - x).max())
                elif name in ("chelsea_small", "rocket_x4"):
                    inputs_npz[f"{name}__{key}"] = x
                    entry["full_input"] = f"{REL}/inputs.npz:{name}__{key}"
                else:
                    entry["full_input"] = None
                size_doc[name] = entry
            print(f"pycls inputs at {key}: {list(images)}", flush=True)

        for mname, (label, values) in MODELS.items():
            t_model = time.perf_counter()
            model = build(values)
            resize, crop = cfg.TEST.IM_SIZE, cfg.TRAIN.IM_SIZE
            size_key = f"{resize}_{crop}"
            is_effnet = values["MODEL.TYPE"] == "effnet"
            cfg_dump = cfg.dump()
            cls = type(model)
            rows = zoo.manifest_rows(model.state_dict())
            recipe = recipe_state(model)
            stats, bn_info = measure_bn(model, recipe)
            state = final_state(recipe, stats)
            model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
            model.eval()
            assert cfg.dump() == cfg_dump
            sd_check = {k: v.detach().numpy() for k, v in model.state_dict().items()}
            assert state_sha(sd_check) == state_sha(state)

            weights_path = OUT / f"{mname}.weights.npz"
            write_npz(weights_path, {"__cfg__": np.array(cfg_dump), "__recipe_seed__":
                                     np.array(RECIPE_SEED, np.int64), **stats})
            # Self-check: the recipe + the stored statistics rebuild the exact weights.
            with np.load(weights_path, allow_pickle=False) as z:
                stored = {k: z[k] for k in z.files if not k.startswith("__")}
                assert z["__cfg__"].shape == () and str(z["__cfg__"]) == cfg_dump
            rebuilt = final_state(zoo.recipe_state({k: tuple(v.shape) for k, v in sd_check.items()}),
                                  stored)
            assert state_sha(rebuilt) == state_sha(state)

            rec = {"label": label, "pycls_class": f"{cls.__module__}.{cls.__name__}",
                   "cfg_values": values, "cfg_dump": cfg_dump,
                   "num_classes": cfg.MODEL.NUM_CLASSES, "train_im_size": crop,
                   "test_im_size": resize, "num_state_keys": len(rows),
                   "num_params": int(sum(p.numel() for p in model.parameters())),
                   "stages": stages(model),
                   "weights_file": f"{REL}/{mname}.weights.npz", "recipe_seed": RECIPE_SEED,
                   "recipe_sha256": state_sha(recipe), "state_sha256": state_sha(state),
                   "bn_statistics": bn_info,
                   "zoo_manifests_with_the_same_keys_and_shapes":
                       [n for n, r in manifests.items() if r == rows],
                   "state_keys": rows}
            zoo_name = ZOO_NAMES.get(mname, mname)
            zoo_name = zoo_name if zoo_name in zoo_json else None
            if zoo_name and "numeric" in zoo_json[zoo_name]:
                rec["recipe_sha256_equals_zoo_json"] = (
                    zoo_json[zoo_name]["numeric"]["weights_sha256"] == rec["recipe_sha256"])
            if values["MODEL.TYPE"] == "regnet":
                rec["regnet_get_args"] = {k: zoo.plain(v)
                                          for k, v in pycls_regnet.RegNet.get_args().items()}
            if mname == "regnet_custom":
                rec["not_a_zoo_structure"] = check_custom_not_zoo(values, rows, manifests)
                set_cfg(values)

            # 3. Tensor inputs: logits, pool, stages (per-channel means + samples).
            out_npz = {}
            feat_shapes = {}
            for b in TENSOR_BATCHES:
                feats, logits = run_features(model, tensor_input(b, crop), is_effnet)
                out_npz[f"tensor_b{b}__logits"] = logits.astype(np.float32)
                out_npz[f"tensor_b{b}__pool"] = feats.pop("pool").astype(np.float32)
                for s, arr in feats.items():
                    pos = positions(arr.shape[1:])
                    out_npz.setdefault(f"stage__{s}__positions", pos)
                    feat_shapes[s] = list(arr.shape[1:])
                    out_npz[f"tensor_b{b}__{s}__mean"] = (
                        arr.astype(np.float64).mean(axis=(2, 3)).astype(np.float32))
                    out_npz[f"tensor_b{b}__{s}__values"] = arr.reshape(b, -1)[:, pos].astype(np.float32)
            rec["tensor_inputs"] = {
                "C": crop, "batches": list(TENSOR_BATCHES),
                "recipe": "np.random.default_rng([11, batch]).standard_normal((batch, 3, C, C)).astype(np.float32)",
                "stage_shapes": feat_shapes}

            # 2. Photos: pycls's logits on pycls's own inputs.
            photo_logits = {}
            rec["photos"] = {}
            for name, (path, bgr) in per_size[(resize, crop)].items():
                x = pycls_item(path)  # again, with this model's cfg set
                assert np.array_equal(x, pycls_inputs[(size_key, name)])
                logits = torch_logits(model, x[None])[0]
                photo_logits[name] = logits
                out_npz[f"photo__{name}__logits"] = logits.astype(np.float32)
                top5 = np.argsort(-logits.astype(np.float64), kind="stable")[:5]
                rec["photos"][name] = {"image_shape": list(bgr.shape), "input_shape": list(x.shape),
                                       "inputs": f"{REL}/photos.json sizes.{size_key}.{name}",
                                       "top5": [int(i) for i in top5],
                                       "top5_logits": [float(logits[i]) for i in top5]}
            stack = np.stack(list(photo_logits.values())).astype(np.float64)
            rec["photo_logit_spread"] = {
                "max_abs_logit": float(np.abs(stack).max()),
                "max_std_across_photos": float(stack.std(axis=0).max()),
                "distinct_top1": len({int(np.argmax(v)) for v in stack})}
            write_npz(OUT / f"{mname}.outputs.npz", out_npz)
            rec["outputs_file"] = f"{REL}/{mname}.outputs.npz"
            models_doc[mname] = rec

            # 4. Export, onnxruntime drift, preprocessing variants.
            onnx_path = tmp / f"{mname}.onnx"
            exp = export(model, crop, onnx_path)
            times_doc[mname] = round(exp.pop("seconds"), 1)
            sess = sessions(onnx_path)
            d = {"export": exp, "ort_vs_torch": {}}
            for slabel, s in sess.items():
                r = {}
                for b in DRIFT_BATCHES:
                    x = tensor_input(b, crop)
                    r[f"batch_{b}"] = diff(s.run(None, {"x": x})[0], torch_logits(model, x))
                x = odd_input()
                try:
                    r["odd_shape_" + "x".join(map(str, ODD_SHAPE))] = diff(
                        s.run(None, {"x": x})[0], torch_logits(model, x))
                except Exception as e:  # a static-H/W graph refuses it
                    r["odd_shape_" + "x".join(map(str, ODD_SHAPE))] = f"{type(e).__name__}: {str(e)[:200]}"
                per_image = {}
                for name in photo_logits:
                    x = np.ascontiguousarray(pycls_inputs[(size_key, name)][None])
                    per_image[name] = diff(s.run(None, {"x": x})[0][0], photo_logits[name])
                batch_x = np.stack([pycls_inputs[(size_key, n)] for n in photo_logits])
                r["photos_one_by_one"] = {"max_abs": fmax([v["max_abs"] for v in per_image.values()]),
                                          "max_rel": fmax([v["max_rel"] for v in per_image.values()]),
                                          "per_image": per_image}
                got = s.run(None, {"x": batch_x})[0]
                r["photos_as_one_batch"] = {
                    "batch": len(photo_logits),
                    "max_abs": fmax([diff(got[i], photo_logits[n])["max_abs"] for i, n in enumerate(photo_logits)]),
                    "max_rel": fmax([diff(got[i], photo_logits[n])["max_rel"] for i, n in enumerate(photo_logits)])}
                d["ort_vs_torch"][slabel] = r
            # repeatability of the default-threads session
            x = tensor_input(5, crop)
            d["threads_default_repeatable"] = bool(np.array_equal(
                sess["threads_default"].run(None, {"x": x})[0], sess["threads_default"].run(None, {"x": x})[0]))

            pre = {}
            for vname in CORRECT_VARIANTS + WRONG_VARIANTS:
                per_image = {}
                for name in photo_logits:
                    ref_x = pycls_inputs[(size_key, name)]
                    vx = variants[(size_key, name)][vname]
                    lt = torch_logits(model, vx[None])[0]
                    e = {"input_max_abs": float(np.abs(vx.astype(np.float64) - ref_x).max()),
                         "logits_max_abs_torch": diff(lt, photo_logits[name])["max_abs"],
                         "logits_max_rel_torch": diff(lt, photo_logits[name])["max_rel"]}
                    lo = sess["threads_1"].run(None, {"x": np.ascontiguousarray(vx[None])})[0][0]
                    e["logits_max_abs_onnxruntime"] = diff(lo, photo_logits[name])["max_abs"]
                    e["logits_max_rel_onnxruntime"] = diff(lo, photo_logits[name])["max_rel"]
                    per_image[name] = e
                changed = [v for v in per_image.values() if v["input_max_abs"] > MATERIAL_INPUT]
                pre[vname] = {
                    "kind": "correct" if vname in CORRECT_VARIANTS else "wrong",
                    "input_max_abs": fmax([v["input_max_abs"] for v in per_image.values()]),
                    "input_min_abs_where_input_differs":
                        min([v["input_max_abs"] for v in changed]) if changed else None,
                    "logits_max_abs_torch": fmax([v["logits_max_abs_torch"] for v in per_image.values()]),
                    "logits_max_abs_onnxruntime": fmax([v["logits_max_abs_onnxruntime"] for v in per_image.values()]),
                    "logits_max_rel_onnxruntime": fmax([v["logits_max_rel_onnxruntime"] for v in per_image.values()]),
                    "images_where_input_differs": len(changed),
                    "logits_min_abs_onnxruntime_where_input_differs":
                        min([v["logits_max_abs_onnxruntime"] for v in changed]) if changed else None,
                    "logits_min_rel_onnxruntime_where_input_differs":
                        min([v["logits_max_rel_onnxruntime"] for v in changed]) if changed else None,
                    "per_image": per_image}
            d["preprocessing"] = pre
            drift_doc[mname] = d
            del sess
            onnx_path.unlink()
            print(f"{mname}: export {times_doc[mname]}s ({exp['dynamic_shapes']}), "
                  f"ort b5 {d['ort_vs_torch']['threads_1']['batch_5']}, "
                  f"photos {d['ort_vs_torch']['threads_1']['photos_one_by_one']['max_abs']:.3g}, "
                  f"total {time.perf_counter() - t_model:.0f}s", flush=True)
            del model

    write_npz(OUT / "inputs.npz", inputs_npz)
    photos_doc["source"] = ("pycls 0.1.1 pycls.datasets.imagenet.ImageNet.__getitem__ (one-image "
                            "dataset, split val), tools/groundtruth/onnx_pycls.py")
    photos_doc["derived_recipe"] = ("a = cv2.imread(ckptconv/data/photos/<source>) (BGR uint8); for op "
                                    "in ops: ['slice', [y0, y1], [x0, x1]] -> a[y0:y1, x0:x1]; "
                                    "['repeat', k, axis] -> np.repeat(a, k, axis). pycls read the "
                                    "result from a lossless PNG (cv2.imwrite; read back identical)")
    write_json(OUT / "photos.json", photos_doc)
    write_json(OUT / "models.json", {
        "source": f"pycls {zoo.PYCLS_VERSION} (PyPI), tools/groundtruth/onnx_pycls.py",
        "versions": vers,
        "weight_recipe": ("zoo.recipe_state (tools/groundtruth/pycls_zoo.py docstring), "
                          "np.random.default_rng(recipe_seed) over the state_dict keys in order; "
                          "then every <bn>.running_mean / <bn>.running_var replaced by the arrays "
                          "in <model>.weights.npz; num_batches_tracked stays 0"),
        "bn_statistics_recipe": (
            "recipe loaded; model.train(); every BatchNorm2d reset_running_stats(), momentum=None; "
            "one forward of np.random.default_rng([7, recipe_seed]).standard_normal((8, 3, 224, 224))"
            ".astype(np.float32) under torch.no_grad(); running_mean as float32; running_var in "
            "float64 clamped below at 0.1 * median(running_var of that layer) + 1e-3, then float32"),
        "state_sha256": "SHA-256 of the C-order bytes of every state_dict array in order (float32 / int64)",
        "models": models_doc})
    write_json(OUT / "drift.json", {
        "source": "tools/groundtruth/onnx_pycls.py",
        "versions": vers,
        "export_call": (f"torch.onnx.export(model, (x,), f, dynamo=True, opset_version={OPSET}, "
                        "dynamic_shapes={'x': {0: Dim('batch', min=1, max=1024), 2: Dim('h', min=32, "
                        "max=4096), 3: Dim('w', min=32, max=4096)}}, input_names=['x'], "
                        "output_names=['logits']); x = the batch-2 tensor input (falls back to a "
                        "dynamic batch only if that fails; export.dynamic_shapes says which)"),
        "onnxruntime": {"providers": ["CPUExecutionProvider"],
                        "threads_1": "SessionOptions.intra_op_num_threads = 1",
                        "threads_default": f"intra_op_num_threads = 0 (onnxruntime's default; "
                                           f"os.cpu_count() = {os.cpu_count()})",
                        "graph_optimization_level": "default (ORT_ENABLE_ALL)"},
        "units": ("max_abs: max |a - b| of the logits (or of the normalized input); max_rel: max_abs "
                  "/ max |reference logits|; the reference is pycls's torch model on pycls's own input"),
        "inputs": {"batch_B": "np.random.default_rng([11, B]).standard_normal((B, 3, C, C)).astype(np.float32), C = TRAIN.IM_SIZE",
                   "odd_shape": f"np.random.default_rng([12, *{ODD_SHAPE}]).standard_normal({ODD_SHAPE}).astype(np.float32)",
                   "photos": "pycls's own input of every photo of photos.json at the model's sizes"},
        "preprocessing_variants": {
            "cv2_without_ipp": "correct: cv2.resize with cv2.ipp.setUseIPP(False)",
            "torch_interpolate_bilinear": "correct rule, torch arithmetic: F.interpolate(bilinear, align_corners=False, antialias=False) on float32",
            "onnxruntime_resize_linear_half_pixel": "correct rule, onnxruntime arithmetic: ONNX Resize (opset 19, mode linear, coordinate_transformation_mode half_pixel, antialias 0) on float32 0..255 NCHW",
            "channels_reversed": "wrong: RGB pixels through pycls's pipeline (BGR mean/std)",
            "mean_std_rgb_order": "wrong: BGR pixels normalized with mean/std in RGB order",
            "resize_antialias_torch": "wrong: F.interpolate(bilinear, antialias=True) on float32",
            "resize_antialias_onnxruntime": "wrong: ONNX Resize linear half_pixel with antialias=1",
            "crop_offset_half_to_even": "wrong: crop at int(round((L - C) / 2)) instead of ceil",
            "resize_uint8": "wrong: cv2.resize INTER_LINEAR on the uint8 image, then float32",
            "note": ("everything a variant does not name is pycls's way (its size rule, cv2 resize, "
                     "ceil crop, /255, BGR mean/std). logits_*_torch: pycls's torch model on the "
                     "variant's input; logits_*_onnxruntime: the exported graph (1 thread) on it. "
                     "A variant that does not change an image's input (no resize, even margin) "
                     "counts in images_where_input_differs only where it moves the input by more "
                     f"than {MATERIAL_INPUT} (normalized)")},
        "summary": summarize(drift_doc),
        "models": drift_doc})
    (OUT / "export_times.json").write_text(json.dumps(
        {"note": "seconds per torch.onnx.export(dynamo=True) call on this machine (varies per run)",
         "cpu_count": os.cpu_count(), "seconds": times_doc}, indent=1) + "\n")
    for p in sorted(OUT.iterdir()):
        print(f"{p.relative_to(ROOT)}: {p.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
