#!/usr/bin/env python3
"""Ground truth for ``ckptconv convert ... --to transformers``: what Hugging Face transformers' RegNet and
ResNet classes build, which pycls 0.1.1 models they can express, and that pycls's weights, renamed,
compute in transformers what they compute in pycls. Made by the real packages, nothing by hand.

Ground truth for the suite (not part of the ckptconv package). Versions (checked at start; the
script stops on any other): pycls 0.1.1, torch 2.14.1, torchvision 0.29.1, timm 1.0.31,
transformers 5.25.0, safetensors 0.8.0, huggingface_hub 2.4.0, numpy 2.4.6, pillow 13.0.0, on
Python 3.11 (CPU, one torch thread). The environment is ``tools/groundtruth/requirements/gt.txt``
(a pinned freeze of the venv this ran in). No network: ``HF_HUB_OFFLINE=1``; every
model is built from a config, nothing is downloaded.

It writes ``tests/data/transformers/`` (under the repository root, or ``--out-root``):

- ``manifests/<model>.json`` for regnetx_200mf, regnetx_3.2gf, regnety_200mf, regnety_800mf,
  regnety_200mf_nc10 (the zoo RegNetY-200MF with a 10-class head), regnety_custom (REGNET.DEPTH 8,
  W0 24, WA 12.0, WM 2.2, GROUP_W 8, SE_ON, 3 stages), resnet50 (the zoo's AnyNet R-50: stride on the
  3x3) and resnet50_stride1x1 (pycls's models/resnet.py, RESNET.STRIDE_1X1 True: stride on the 1x1):
  ``{"source", "pycls": {cfg values, the numbers pycls built}, "config": <config.json exactly as
  save_pretrained writes it>, "keys": [[key, shape, dtype], ...] (RegNet/ResNetForImageClassification
  state_dict order), "pycls_to_transformers": [[pycls key, transformers key], ...] (pycls state_dict
  order), "first_conv": the transformers key whose input channels are reversed for RGB weights}``.
  The correspondence is established here, independently of ckptconv: both models are built and
  their leaf modules (convs, BNs, linears, activations, pools) are paired in definition order and
  every hyper-parameter compared (kernel, stride, effective padding, groups, dilation, bias, widths,
  BN eps, pool geometry); a pairing with any difference is not a correspondence.
- ``<model>.statistics.npz``: the measured BatchNorm statistics (see the recipe below), float32, one
  ``<pycls BN key>.running_mean`` / ``.running_var`` per BatchNorm2d.
- ``numerics.json`` / ``numerics.npz``: pycls vs transformers logits on seeded inputs, per-stage
  outputs (``output_hidden_states``; ``ResNetBackbone`` feature maps), the ``save_pretrained`` ->
  ``AutoModelForImageClassification.from_pretrained`` round trip, and the shipped photos through
  pycls 0.1.1's own test pipeline vs transformers' image processor.
- ``facts.json``: what RegNetConfig / ResNetConfig express and how the classes build (each fact with
  the installed source file, line and text, looked up at run time: a line that is gone stops the
  script), the pycls field -> config field correspondence, every fit and refusal decided by building
  and comparing, a structural survey of the whole zoo, EfficientNet, TimmWrapper and the image
  processor.
- with ``--torch213-python PY`` also ``torch213_check.json``: the same transformers version run under
  torch 2.13.0 (the CI's CPU torch) in another venv, loading the folders written here.

Weight recipe. pycls's model is built by pycls's own builder (``reset_cfg``, cfg merged as a YAML
would be, ``builders.build_model``). Its weights are ``zoo.recipe_state`` (numpy, seed 0) of its
state_dict shapes, EXCEPT the BatchNorm running statistics, which are measured with the real pycls
model: load the recipe weights, ``model.train()``, every BatchNorm2d ``reset_running_stats()`` and
``momentum = None`` (cumulative average: one batch gives that batch's mean and unbiased variance),
one forward of ``np.random.default_rng([7, 0]).standard_normal((8, 3, 224, 224)).astype(np.float32)``
under ``torch.no_grad()``; then per BatchNorm2d ``floor = 0.1 * torch.median(running_var) + 1e-3``
(float32 torch arithmetic; torch.median is the lower middle value) and
``running_var = running_var.clamp(min=floor)``. ``num_batches_tracked`` stays the recipe's 0. The
statistics npz holds the result, so ``recipe_state`` + the npz rebuilds the exact weights.

Inputs. Seeded: ``np.random.default_rng([11, b]).standard_normal((b, 3, S, S)).astype(np.float32)``
for b = 1 and 2, S = 224 (160 for regnetx_3.2gf, resnet50, resnet50_stride1x1); eval mode, no_grad.
Photos: ``ckptconv/data/photos/*.png`` through ``pycls.datasets.imagenet.ImageNet.__getitem__`` on a
one-image dataset, split val, TEST.IM_SIZE 256, TRAIN.IM_SIZE 224 (as tools/groundtruth/photos.py).

Which tests read what: tests/data/transformers/README.md.

Run (from the repository root, in the venv of requirements/gt.txt):
    .venv/gt/bin/python tools/groundtruth/transformers_pycls.py [--out-root DIR]
        [--torch213-python .venv/tf213/bin/python]   # a venv of torch==2.13.0 and the same transformers
The torch 2.13.0 venv: ``python -m venv V; V/bin/pip install torch==2.13.0; V/bin/pip install
transformers==5.25.0``. Deterministic: a rerun in the same venv on the same machine writes the
same bytes (npz with fixed zip timestamps; no times, paths or dates in any output).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import pycls.core.builders as builders  # noqa: E402
import pycls.core.config as pycls_config  # noqa: E402
import pycls.datasets.imagenet as pycls_imagenet  # noqa: E402
import pycls.models.anynet as pycls_anynet  # noqa: E402
import pycls.models.effnet as pycls_effnet  # noqa: E402
import pycls.models.regnet as pycls_regnet  # noqa: E402
import pycls.models.resnet as pycls_resnet  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import transformers  # noqa: E402
import transformers.configuration_utils as tf_configuration_utils  # noqa: E402
import transformers.conversion_mapping as tf_conversion_mapping  # noqa: E402
import transformers.image_processing_backends as tf_backends  # noqa: E402
import transformers.image_transforms as tf_image_transforms  # noqa: E402
import transformers.models.auto.auto_factory as tf_auto_factory  # noqa: E402
import transformers.models.auto.image_processing_auto as tf_auto_ip  # noqa: E402
import transformers.models.auto.modeling_auto as tf_auto_modeling  # noqa: E402
import transformers.models.convnext.image_processing_convnext as tf_convnext_ip  # noqa: E402
import transformers.models.efficientnet.configuration_efficientnet as tf_effnet_cfg  # noqa: E402
import transformers.models.efficientnet.modeling_efficientnet as tf_effnet  # noqa: E402
import transformers.models.regnet.configuration_regnet as tf_regnet_cfg  # noqa: E402
import transformers.models.regnet.modeling_regnet as tf_regnet  # noqa: E402
import transformers.models.resnet.configuration_resnet as tf_resnet_cfg  # noqa: E402
import transformers.models.resnet.modeling_resnet as tf_resnet  # noqa: E402
import transformers.models.timm_wrapper.configuration_timm_wrapper as tf_timm_cfg  # noqa: E402
import transformers.models.timm_wrapper.image_processing_timm_wrapper as tf_timm_ip  # noqa: E402
import transformers.models.timm_wrapper.modeling_timm_wrapper as tf_timm  # noqa: E402
import transformers.utils.generic as tf_generic  # noqa: E402
import zoo  # noqa: E402  (tools/groundtruth/zoo.py: run as a script, this folder is sys.path[0])
from PIL import Image  # noqa: E402
from pycls.core.config import cfg, reset_cfg  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (  # noqa: E402
    AutoBackbone,
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    ConvNextImageProcessor,
    ConvNextImageProcessorPil,
    EfficientNetConfig,
    EfficientNetForImageClassification,
    RegNetConfig,
    RegNetForImageClassification,
    ResNetBackbone,
    ResNetConfig,
    ResNetForImageClassification,
    TimmWrapperForImageClassification,
)
from transformers.image_utils import PILImageResampling  # noqa: E402

torch.set_num_threads(1)
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
warnings.filterwarnings("ignore")

REPO_ROOT = zoo.REPO_ROOT
EXPECTED_VERSIONS = {
    "pycls": "0.1.1", "torch": "2.14.1", "torchvision": "0.29.1", "timm": "1.0.31", "transformers": "5.25.0",
    "safetensors": "0.8.0", "huggingface_hub": "2.4.0", "numpy": "2.4.6", "pillow": "13.0.0",
}

# ---------------------------------------------------------------------------------------------
# Small helpers: versions, evidence from installed source, deterministic files.
# ---------------------------------------------------------------------------------------------


def versions() -> dict:
    out = {name: importlib.metadata.version(name) for name in EXPECTED_VERSIONS}
    out["torch"] = out["torch"].split("+")[0]
    out["torchvision"] = out["torchvision"].split("+")[0]
    wrong = {k: v for k, v in out.items() if v != EXPECTED_VERSIONS[k]}
    if wrong:
        raise SystemExit(f"these versions differ from the pinned ones: {wrong} (expected {EXPECTED_VERSIONS})")
    import cv2

    out["torch.__version__"] = torch.__version__
    out["python"] = sys.version.split()[0]
    out["cv2.__version__ (the cv2 module pycls's pipeline imports)"] = cv2.__version__
    for dist in ("opencv-python-headless", "opencv-python"):
        try:
            out[f"{dist} (installed distribution)"] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    out["torch threads"] = torch.get_num_threads()
    return out


def _relpath(path: str) -> str:
    path = str(path)
    return path.split("site-packages/", 1)[1] if "site-packages/" in path else path


def src(obj, *needles: str) -> dict:
    """Where ``obj``'s installed source says each needle: file (relative to site-packages), the
    object's qualified name, and per needle the line number and its text. Stops if a needle is gone."""
    lines, start = inspect.getsourcelines(obj)
    start = max(start, 1)
    where = {"file": _relpath(inspect.getsourcefile(obj)),
             "object": getattr(obj, "__qualname__", getattr(obj, "__name__", "")), "lines": []}
    for needle in needles:
        hits = [i for i, line in enumerate(lines) if needle in line]
        if not hits:
            raise SystemExit(f"{where['file']}:{where['object']} no longer contains {needle!r}")
        where["lines"].append({"line": start + hits[0], "text": lines[hits[0]].strip()})
    return where


def fact(statement: str, value, *sources: dict) -> dict:
    return {"fact": statement, "value": value, "sources": list(sources)}


def write_npz(path: Path, arrays: dict) -> None:
    """np.savez_compressed stamps the current time into the zip; this writes fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            body = io.BytesIO()
            np.lib.format.write_array(body, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, body.getvalue(), compresslevel=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def dumps(obj, indent: int = 0) -> str:
    """JSON with dicts one key a line and lists of scalars on one line (short, diff-friendly)."""
    pad = "  " * (indent + 1)
    if isinstance(obj, dict) and len(obj) > 20 and not any(isinstance(v, (dict, list)) for v in obj.values()):
        return json.dumps(obj, ensure_ascii=False)  # id2label / label2id: one line
    if isinstance(obj, dict) and obj:
        items = [f"{pad}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        if all(isinstance(v, list) and not any(isinstance(x, dict) or (isinstance(x, list) and any(
                isinstance(y, (dict, list)) for y in x)) for x in v) for v in obj):  # rows: one a line
            return "[\n" + ",\n".join(f"{pad}{json.dumps(v)}" for v in obj) + "\n" + "  " * indent + "]"
        items = [f"{pad}{dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(obj, ensure_ascii=False)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(obj) + "\n")


def error_text(e: BaseException) -> str:
    """The exception's type and first line, temp dir paths replaced by DIR (reruns write the same bytes)."""
    text = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}" if str(e) else type(e).__name__
    return re.sub(re.escape(tempfile.gettempdir()) + r"/tmp[A-Za-z0-9_]+", "DIR", text)


def f(x: float) -> float:
    """A float for JSON: float64 value of the measurement, rounded to 9 significant digits."""
    return float(f"{float(x):.9g}")


def maxabs(a, b) -> float:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return f(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def maxrel(a, b) -> float:
    """max |a - b| / max |a| (a is the reference)."""
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return f(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) / np.max(np.abs(a.astype(np.float64))))


def seeded_input(b: int, size: int) -> np.ndarray:
    return np.random.default_rng([11, b]).standard_normal((b, 3, size, size)).astype(np.float32)


def bn_input() -> np.ndarray:
    return np.random.default_rng([7, 0]).standard_normal((8, 3, 224, 224)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# pycls models
# ---------------------------------------------------------------------------------------------

def regnet_values(name: str, **extra) -> dict:
    values = zoo.yaml_values(name)
    values = {k: v for k, v in values.items() if not k.startswith(("TRAIN.", "TEST."))}
    values.update(extra)
    return values


CUSTOM_REGNET = {"MODEL.TYPE": "regnet", "MODEL.NUM_CLASSES": 1000, "REGNET.SE_ON": True, "REGNET.DEPTH": 8,
                 "REGNET.W0": 24, "REGNET.WA": 12.0, "REGNET.WM": 2.2, "REGNET.GROUP_W": 8}
RESNET50_STRIDE_1X1 = {"MODEL.TYPE": "resnet", "MODEL.DEPTH": 50, "MODEL.NUM_CLASSES": 1000,
                       "RESNET.TRANS_FUN": "bottleneck_transform", "RESNET.NUM_GROUPS": 1,
                       "RESNET.WIDTH_PER_GROUP": 64, "RESNET.STRIDE_1X1": True,
                       "TRAIN.DATASET": "imagenet", "TEST.DATASET": "imagenet"}

# name -> (pycls cfg values, seeded input size, what it is)
MODELS = {
    "regnetx_200mf": (regnet_values("regnetx_200mf"), 224, "pycls zoo RegNetX-200MF"),
    "regnetx_3.2gf": (regnet_values("regnetx_3.2gf"), 160, "pycls zoo RegNetX-3.2GF"),
    "regnety_200mf": (regnet_values("regnety_200mf"), 224, "pycls zoo RegNetY-200MF"),
    "regnety_800mf": (regnet_values("regnety_800mf"), 224, "pycls zoo RegNetY-800MF"),
    "regnety_200mf_nc10": (regnet_values("regnety_200mf", **{"MODEL.NUM_CLASSES": 10}), 224,
                           "pycls zoo RegNetY-200MF fine-tuned to 10 classes (MODEL.NUM_CLASSES 10)"),
    "regnety_custom": (dict(CUSTOM_REGNET), 224,
                       "a RegNetY of its own numbers: REGNET.DEPTH 8, W0 24, WA 12.0, WM 2.2, GROUP_W 8, SE_ON True"),
    "resnet50": ({k: v for k, v in zoo.yaml_values("resnet50").items() if not k.startswith(("TRAIN.", "TEST."))},
                 160, "pycls zoo ResNet-50 (MODEL.TYPE anynet, R-50-1x64d: stride on the 3x3)"),
    "resnet50_stride1x1": (dict(RESNET50_STRIDE_1X1), 160,
                           "ResNet-50 of pycls's models/resnet.py (MODEL.TYPE resnet, RESNET.STRIDE_1X1 True: stride on the 1x1)"),
}


def set_cfg(values: dict) -> None:
    reset_cfg()
    cfg.defrost()
    zoo.merge_values(cfg, values)


def build_pycls(values: dict) -> nn.Module:
    set_cfg(values)
    torch.manual_seed(0)
    model = builders.build_model()
    model.eval()
    return model


def pycls_numbers(values: dict) -> dict:
    """The numbers pycls builds from the cfg (after RegNet's quantization), as AnyNet arguments,
    plus BN.EPS; for models/resnet.py the fixed ImageNet ResNet numbers it builds."""
    set_cfg(values)
    mtype = cfg.MODEL.TYPE
    if mtype == "regnet":
        args = pycls_regnet.RegNet.get_args()
    elif mtype == "anynet":
        args = pycls_anynet.AnyNet.get_args()
    elif mtype == "resnet":
        g, gw = cfg.RESNET.NUM_GROUPS, cfg.RESNET.WIDTH_PER_GROUP
        w_b = g * gw
        args = {"stem_type": "res_stem_in (models/resnet.py ResStemIN)", "stem_w": 64,
                "block_type": cfg.RESNET.TRANS_FUN, "ds": list(pycls_resnet._IN_STAGE_DS[cfg.MODEL.DEPTH]),
                "ws": [256, 512, 1024, 2048], "ss": [1, 2, 2, 2],
                "bottleneck_ws": [w_b, w_b * 2, w_b * 4, w_b * 8], "num_gs": g,
                "stride_1x1": cfg.RESNET.STRIDE_1X1, "nc": cfg.MODEL.NUM_CLASSES}
    else:
        raise ValueError(mtype)
    out = {k: zoo.plain(v) for k, v in args.items()}
    out["bn_eps"] = cfg.BN.EPS
    out["model_type"] = mtype
    return out


# ---------------------------------------------------------------------------------------------
# The transformers config that reproduces a pycls model (a proposal; building and comparing decides)
# ---------------------------------------------------------------------------------------------

def propose_config(numbers: dict, **override):
    """RegNetConfig / ResNetConfig with pycls's numbers in the fields that exist. What no field can
    say (bottleneck ratio, SE ratio, BN eps, per-stage group widths, strides after stage 1, the stem)
    is left to the class; the structural comparison shows whether that matches. groups_width is the
    largest stage group width: pycls's RegNet caps GROUP_W at a narrower stage's width (RegNetX-8.0GF:
    GROUP_W 120, stage 1 80 wide), and transformers' max(1, out // groups_width) does the same."""
    n = numbers
    if n["model_type"] == "resnet":
        kw = dict(num_channels=3, embedding_size=n["stem_w"], hidden_sizes=list(n["ws"]), depths=list(n["ds"]),
                  layer_type="bottleneck", hidden_act="relu", downsample_in_first_stage=n["ss"][0] == 2,
                  downsample_in_bottleneck=bool(n["stride_1x1"]), num_labels=n["nc"])
        kw.update(override)
        return ResNetConfig(**kw)
    if n["stem_type"] == "res_stem_in":  # AnyNet with a ResNet stem: transformers' ResNet
        layer_type = "basic" if n["block_type"] == "res_basic_block" else "bottleneck"
        kw = dict(num_channels=3, embedding_size=n["stem_w"], hidden_sizes=list(n["ws"]), depths=list(n["ds"]),
                  layer_type=layer_type, hidden_act="relu", downsample_in_first_stage=n["ss"][0] == 2,
                  downsample_in_bottleneck=False, num_labels=n["nc"])
        kw.update(override)
        return ResNetConfig(**kw)
    kw = dict(num_channels=3, embedding_size=n["stem_w"], hidden_sizes=list(n["ws"]), depths=list(n["ds"]),
              groups_width=int(max(n["gws"])) if n["gws"] else 1, layer_type="y" if n["se_r"] else "x",
              hidden_act="relu", downsample_in_first_stage=n["ss"][0] == 2, num_labels=n["nc"])
    kw.update(override)
    return RegNetConfig(**kw)


def build_transformers(config):
    torch.manual_seed(0)
    cls = RegNetForImageClassification if isinstance(config, RegNetConfig) else ResNetForImageClassification
    model = cls(config)
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------
# Structural comparison: leaf modules paired in definition order, every hyper-parameter compared.
# ---------------------------------------------------------------------------------------------

ACTIVATIONS = {"ReLU": "relu", "Sigmoid": "sigmoid", "SiLU": "swish", "Swish": "swish"}
SKIPPED = ("Identity", "Flatten", "Dropout", "ZeroPad2d")


def _effective_padding(name: str, conv: nn.Conv2d, modules: dict) -> list:
    """[left, right, top, bottom] zero padding the conv sees: its own, or (padding='valid') a
    ZeroPad2d sibling that its parent applies first (transformers' EfficientNet)."""
    kh, kw = conv.kernel_size
    if isinstance(conv.padding, str):
        if conv.padding == "same":
            assert conv.stride == (1, 1) and kh % 2 == 1 and kw % 2 == 1
            return [kw // 2, kw // 2, kh // 2, kh // 2]
        parent = modules[name.rpartition(".")[0]]
        pads = [m for m in parent.children() if isinstance(m, nn.ZeroPad2d)]
        if not pads:
            return [0, 0, 0, 0]
        assert len(pads) == 1
        return [int(p) for p in pads[0].padding]
    ph, pw = conv.padding
    return [pw, pw, ph, ph]


def describe(name: str, m: nn.Module, modules: dict) -> dict | None:
    t = type(m).__name__
    if isinstance(m, nn.Conv2d):
        return {"type": "conv", "in": m.in_channels, "out": m.out_channels, "kernel": list(m.kernel_size),
                "stride": list(m.stride), "padding_lrtb": _effective_padding(name, m, modules),
                "dilation": list(m.dilation), "groups": m.groups, "bias": m.bias is not None}
    if isinstance(m, nn.BatchNorm2d):
        return {"type": "bn", "features": m.num_features, "eps": m.eps, "affine": m.affine,
                "track_running_stats": m.track_running_stats}
    if isinstance(m, nn.Linear):
        return {"type": "linear", "in": m.in_features, "out": m.out_features, "bias": m.bias is not None}
    if isinstance(m, nn.MaxPool2d):
        return {"type": "maxpool", "kernel": m.kernel_size, "stride": m.stride, "padding": m.padding,
                "ceil_mode": m.ceil_mode}
    if isinstance(m, nn.AdaptiveAvgPool2d):
        assert tuple(np.broadcast_to(m.output_size, 2)) == (1, 1)
        return {"type": "global_avgpool"}
    if isinstance(m, nn.AvgPool2d):  # transformers' EfficientNet: AvgPool2d(hidden_dim, ceil_mode=True)
        return {"type": "global_avgpool", "note": f"AvgPool2d(kernel={m.kernel_size}, ceil_mode={m.ceil_mode})"}
    if t in ACTIVATIONS:
        return {"type": ACTIVATIONS[t]}
    if t in SKIPPED:
        return None
    raise TypeError(f"{name}: no structural description for {t}")


def leaves(model: nn.Module) -> list:
    modules = dict(model.named_modules())
    out = []
    for name, m in model.named_modules():
        if list(m.children()):
            continue
        d = describe(name, m, modules)
        if d is not None:
            out.append((name, m, d))
    return out


def compare_structure(pycls_model: nn.Module, tf_model: nn.Module, max_report: int = 12, activations: bool = True) -> dict:
    """Pair leaf modules in definition order. Returns {"equal": bool, "mismatches": [...],
    "pairs": [(pycls name, transformers name), ...] for param-holding modules with the same
    type and shapes (the correspondence; with mismatches it is only a best effort)}."""
    a, b = leaves(pycls_model), leaves(tf_model)
    if not activations:  # EfficientNet: transformers defines its SE's activations after both convs
        a = [row for row in a if row[2]["type"] not in ("relu", "sigmoid", "swish")]
        b = [row for row in b if row[2]["type"] not in ("relu", "sigmoid", "swish")]
    mismatches = []
    if len(a) != len(b):
        mismatches.append({"what": "number of leaf modules", "pycls": len(a), "transformers": len(b)})
    pairs = []
    for (pn, _, pd), (tn, _, td) in zip(a, b):
        if pd["type"] != td["type"]:
            mismatches.append({"pycls": pn, "transformers": tn, "field": "type", "pycls_value": pd["type"],
                               "transformers_value": td["type"]})
            continue
        for k in sorted(set(pd) | set(td)):
            if k == "note":
                continue
            if pd.get(k) != td.get(k):
                mismatches.append({"pycls": pn, "transformers": tn, "field": k, "pycls_value": pd.get(k),
                                   "transformers_value": td.get(k)})
        if pd["type"] in ("conv", "bn", "linear"):
            pairs.append((pn, tn))
    counts = {}
    for mm in mismatches:
        key = mm.get("field", mm["what"] if "what" in mm else "?")
        counts[key] = counts.get(key, 0) + 1
    return {"equal": not mismatches, "mismatch_count": len(mismatches), "mismatch_fields": counts,
            "first_mismatches": mismatches[:max_report], "pairs": pairs}


def key_mapping(pycls_model: nn.Module, tf_model: nn.Module, pairs: list) -> list | None:
    """[[pycls key, transformers key], ...] in pycls state_dict order from the module pairs, or None
    when the pairs do not cover both state_dicts with equal shapes."""
    psd, tsd = pycls_model.state_dict(), tf_model.state_dict()
    pmods, tmods = dict(pycls_model.named_modules()), dict(tf_model.named_modules())
    mapping = {}
    for pn, tn in pairs:
        pkeys = list(pmods[pn].state_dict().keys())
        tkeys = list(tmods[tn].state_dict().keys())
        if pkeys != tkeys:
            return None
        for k in pkeys:
            if tuple(psd[f"{pn}.{k}"].shape) != tuple(tsd[f"{tn}.{k}"].shape):
                return None
            mapping[f"{pn}.{k}"] = f"{tn}.{k}"
    if set(mapping) != set(psd) or set(mapping.values()) != set(tsd) or len(set(mapping.values())) != len(mapping):
        return None
    return [[k, mapping[k]] for k in psd]


# ---------------------------------------------------------------------------------------------
# Weights: the recipe, with measured BatchNorm statistics
# ---------------------------------------------------------------------------------------------

def measured_state(values: dict) -> tuple[dict, dict]:
    """(final pycls state as numpy arrays, the measured statistics {bn key: array})."""
    model = build_pycls(values)
    sd = model.state_dict()
    state = zoo.recipe_state({k: tuple(t.shape) for k, t in sd.items()})
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    model.train()
    for m in bns.values():
        m.reset_running_stats()
        m.momentum = None
    with torch.no_grad():
        model(torch.from_numpy(bn_input()))
    stats = {}
    for n, m in bns.items():
        rv = m.running_var.detach().clone()
        floor = 0.1 * torch.median(rv) + 1e-3
        rv = rv.clamp(min=floor)
        assert rv.dtype == torch.float32 and m.running_mean.dtype == torch.float32
        stats[f"{n}.running_mean"] = m.running_mean.detach().numpy().copy()
        stats[f"{n}.running_var"] = rv.numpy().copy()
    for k, v in stats.items():
        assert k in state and state[k].shape == v.shape
        state[k] = v
    return state, stats


def load_pycls(values: dict, state: dict) -> nn.Module:
    model = build_pycls(values)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    model.eval()
    return model


def tf_state(state: dict, mapping: list, rgb: bool = False, first_conv: str | None = None) -> dict:
    out = {}
    for pk, tk in mapping:
        t = torch.from_numpy(state[pk].copy())
        if rgb and tk == first_conv:
            t = t.flip(1).contiguous()
        out[tk] = t
    return out


def load_tf(config, sd: dict):
    model = build_transformers(config)
    result = model.load_state_dict(sd, strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    model.eval()
    return model, {"missing_keys": list(result.missing_keys), "unexpected_keys": list(result.unexpected_keys)}


# ---------------------------------------------------------------------------------------------
# Forward passes with per-stage outputs
# ---------------------------------------------------------------------------------------------

def pycls_forward(model: nn.Module, x: np.ndarray) -> tuple[torch.Tensor, dict]:
    recorded, hooks = {}, []
    names = ["stem"] + [n for n, _ in model.named_children() if n.startswith("s") and n[1:].isdigit()]

    def keep(name):
        def hook(_m, _i, out):
            recorded[name] = out.detach().clone()
        return hook

    for n in names:
        hooks.append(getattr(model, n).register_forward_hook(keep(n)))
    with torch.no_grad():
        logits = model(torch.from_numpy(x.copy()))
    for h in hooks:
        h.remove()
    return logits, {n: recorded[n] for n in names}


def tf_forward(model, x: np.ndarray):
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(x.copy()), output_hidden_states=True)
    return out.logits, out.hidden_states


def stage_match(pycls_feats: dict, tensors) -> list:
    """For each transformers tensor: its shape, and the pycls feature it equals (smallest max abs
    difference among those of the same shape)."""
    rows = []
    for i, t in enumerate(tensors):
        cands = [(maxabs(v, t), n) for n, v in pycls_feats.items() if tuple(v.shape) == tuple(t.shape)]
        best = min(cands) if cands else (None, None)
        rows.append({"index": i, "shape": list(t.shape), "equals_pycls": best[1], "max_abs": best[0],
                     "max_rel": maxrel(pycls_feats[best[1]], t) if best[1] else None})
    return rows


# ---------------------------------------------------------------------------------------------
# Facts from the installed sources
# ---------------------------------------------------------------------------------------------

def source_facts() -> dict:
    R, RC, S, SC = tf_regnet, tf_regnet_cfg.RegNetConfig, tf_resnet, tf_resnet_cfg.ResNetConfig
    regnet = {
        "config_fields": fact(
            "RegNetConfig's fields (and defaults); nothing else shapes the model: no bottleneck ratio, SE ratio, "
            "BN eps, per-stage strides or group widths, stem kind or head width",
            {"num_channels": 3, "embedding_size": 32, "hidden_sizes": [128, 192, 512, 1088], "depths": [2, 6, 12, 2],
             "groups_width": 64, "layer_type": "y", "hidden_act": "relu", "downsample_in_first_stage": True},
            src(RC, "num_channels: int = 3", "embedding_size: int = 32", "hidden_sizes:", "depths:",
                "groups_width: int = 64", 'layer_type: str = "y"', 'hidden_act: str = "relu"',
                "downsample_in_first_stage: bool = True")),
        "downsample_in_first_stage_docstring": fact(
            "the docstring says downsample_in_first_stage defaults to False; the field's default is True "
            "(what RegNetConfig() builds: stage 1 strides 2, as pycls's REGNET.STRIDE 2)",
            {"docstring": False, "field_default": RegNetConfig().downsample_in_first_stage},
            src(RC, "downsample_in_first_stage (`bool`, *optional*, defaults to `False`)",
                "downsample_in_first_stage: bool = True")),
        "stem": fact(
            "stem (RegNetEmbeddings): one RegNetConvLayer: conv kernel 3, stride 2, padding kernel_size // 2 = 1, "
            "no bias; BatchNorm2d with torch's default eps 1e-5 (no eps argument); activation config.hidden_act",
            {"kernel": 3, "stride": 2, "padding": 1, "bn_eps": nn.BatchNorm2d(1).eps, "activation": "hidden_act (relu)"},
            src(R.RegNetEmbeddings, "kernel_size=3, stride=2, activation=config.hidden_act"),
            src(R.RegNetConvLayer, "padding=kernel_size // 2", "bias=False", "nn.BatchNorm2d(out_channels)",
                "ACT2FN[activation] if activation is not None else nn.Identity()")),
        "block_x": fact(
            "layer_type 'x' (RegNetXLayer): 1x1 conv in->out (BN, act), 3x3 conv out->out with stride and groups "
            "(BN, act), 1x1 conv out->out (BN, no act); residual add, then act. The bottleneck width is "
            "out_channels: bottleneck ratio fixed at 1 (pycls BOT_MUL 1.0)",
            {"bottleneck_width": "out_channels", "bot_mul": 1.0},
            src(R.RegNetXLayer, "RegNetConvLayer(in_channels, out_channels, kernel_size=1, activation=config.hidden_act)",
                "RegNetConvLayer(out_channels, out_channels, stride=stride, groups=groups, activation=config.hidden_act)",
                "RegNetConvLayer(out_channels, out_channels, kernel_size=1, activation=None)",
                "hidden_state += residual", "hidden_state = self.activation(hidden_state)")),
        "block_y": fact(
            "layer_type 'y' (RegNetYLayer): the x layer with an SE layer after the 3x3 conv; the SE width is "
            "int(round(in_channels / 4)) of the LAYER's input width (pycls: int(round(w_in * SE_R)) of the block's "
            "input width: equal exactly when SE_R = 0.25)",
            {"se_width": "int(round(in_channels / 4))"},
            src(R.RegNetYLayer, "RegNetSELayer(out_channels, reduced_channels=int(round(in_channels / 4)))")),
        "se": fact(
            "SE (RegNetSELayer): AdaptiveAvgPool2d((1, 1)), 1x1 conv with bias, ReLU (always ReLU, not hidden_act), "
            "1x1 conv with bias, Sigmoid; multiplies the input",
            {"activation": "ReLU", "gate": "Sigmoid"},
            src(R.RegNetSELayer, "self.pooler = nn.AdaptiveAvgPool2d((1, 1))", "nn.Conv2d(in_channels, reduced_channels, kernel_size=1)",
                "nn.ReLU()", "nn.Conv2d(reduced_channels, in_channels, kernel_size=1)", "nn.Sigmoid()",
                "hidden_state = hidden_state * attention")),
        "groups": fact(
            "groups of the 3x3 conv = max(1, out_channels // groups_width): one groups_width for every stage; a "
            "stage narrower than groups_width gets 1 group (= pycls's adjust_ws_gs_comp, which caps the group width "
            "at the stage width)",
            "max(1, out_channels // config.groups_width)",
            src(R.RegNetXLayer, "groups = max(1, out_channels // config.groups_width)"),
            src(R.RegNetYLayer, "groups = max(1, out_channels // config.groups_width)")),
        "stride": fact(
            "the stride sits on the 3x3 (grouped) conv of the first layer of a stage, and on its shortcut 1x1 conv; "
            "stage 1 strides 2 if downsample_in_first_stage else 1; every later stage strides 2 (RegNetStage's "
            "default stride=2, not configurable)",
            {"stage_1": "2 if downsample_in_first_stage else 1", "later_stages": 2, "conv": "3x3"},
            src(R.RegNetEncoder, "stride=2 if config.downsample_in_first_stage else 1",
                "self.stages.append(RegNetStage(config, in_channels, out_channels, depth=depth))"),
            src(R.RegNetStage, "stride: int = 2", "*[layer(config, out_channels, out_channels) for _ in range(depth - 1)]")),
        "shortcut": fact(
            "shortcut: a 1x1 conv (stride = the layer's stride, no bias) + BatchNorm2d when in != out or stride != 1, "
            "else identity (pycls: proj + bn under the same rule)",
            "in_channels != out_channels or stride != 1",
            src(R.RegNetXLayer, "should_apply_shortcut = in_channels != out_channels or stride != 1"),
            src(R.RegNetShortCut, "nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)",
                "self.normalization = nn.BatchNorm2d(out_channels)")),
        "bn_eps": fact("every BatchNorm2d is built without eps: torch's default 1e-5; no config field sets it",
                       nn.BatchNorm2d(1).eps,
                       src(R.RegNetConvLayer, "self.normalization = nn.BatchNorm2d(out_channels)"),
                       src(R.RegNetShortCut, "self.normalization = nn.BatchNorm2d(out_channels)")),
        "head": fact(
            "head: RegNetModel.pooler AdaptiveAvgPool2d((1, 1)); classifier = Sequential(Flatten(), Linear(hidden_sizes[-1], "
            "num_labels)): key classifier.1; no head conv (pycls 0.1.1's AnyHead: avg_pool, fc)",
            {"pool": "AdaptiveAvgPool2d((1, 1))", "classifier": "Sequential(Flatten, Linear)", "fc_key": "classifier.1"},
            src(R.RegNetModel, "self.pooler = nn.AdaptiveAvgPool2d((1, 1))"),
            src(R.RegNetForImageClassification, "nn.Flatten()",
                "nn.Linear(config.hidden_sizes[-1], config.num_labels) if config.num_labels > 0 else nn.Identity()")),
        "hidden_states": fact(
            "output_hidden_states: (embedder output, then each stage's output): len(depths) + 1 tensors",
            "embedder, stage 1..N", src(R.RegNetEncoder, "hidden_states = hidden_states + (hidden_state,)")),
        "no_backbone": fact(
            "transformers has no RegNetBackbone (modeling_regnet's __all__; AutoBackbone's mapping has no regnet)",
            {"RegNetBackbone": hasattr(transformers, "RegNetBackbone"),
             "regnet_in_MODEL_FOR_BACKBONE_MAPPING_NAMES": "regnet" in tf_auto_modeling.MODEL_FOR_BACKBONE_MAPPING_NAMES},
            src(R, '__all__ = ["RegNetForImageClassification", "RegNetModel", "RegNetPreTrainedModel"]')),
        "conversion_script": fact(
            "the wheel ships no convert_regnet_to_pytorch.py (nor any convert_* script for regnet/resnet): the files "
            "of the two model folders",
            {_relpath(str(Path(mod.__file__).parent)): sorted(p.name for p in Path(mod.__file__).parent.glob("*.py"))
             for mod in (R, S)}),
        "no_load_time_renaming": fact(
            "conversion_mapping.py (key renamings applied by from_pretrained) has no entry for regnet or resnet: "
            "a folder's keys must be the state_dict keys",
            {"regnet": tf_conversion_mapping.get_checkpoint_conversion_mapping("regnet"),
             "resnet": tf_conversion_mapping.get_checkpoint_conversion_mapping("resnet")}),
    }
    resnet = {
        "config_fields": fact(
            "ResNetConfig's fields (and defaults); no groups / width_per_group, no bottleneck reduction, no BN eps",
            {"num_channels": 3, "embedding_size": 64, "hidden_sizes": [256, 512, 1024, 2048], "depths": [3, 4, 6, 3],
             "layer_type": "bottleneck", "hidden_act": "relu", "downsample_in_first_stage": False,
             "downsample_in_bottleneck": False, "out_features / out_indices": "backbone only"},
            src(SC, "embedding_size: int = 64", "hidden_sizes:", "depths:", 'layer_type: str = "bottleneck"',
                "downsample_in_first_stage: bool = False", "downsample_in_bottleneck: bool = False")),
        "stem": fact(
            "stem (ResNetEmbeddings): conv 7x7 stride 2 padding 3 (kernel_size // 2), no bias, BatchNorm2d (eps 1e-5), "
            "ReLU (hidden_act), MaxPool2d(3, stride 2, padding 1): pycls's res_stem_in exactly; fixed, whatever the config",
            {"kernel": 7, "stride": 2, "padding": 3, "maxpool": {"kernel": 3, "stride": 2, "padding": 1}},
            src(S.ResNetEmbeddings, "kernel_size=7, stride=2, activation=config.hidden_act",
                "self.pooler = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)"),
            src(S.ResNetConvLayer, "padding=kernel_size // 2", "self.normalization = nn.BatchNorm2d(out_channels)")),
        "bottleneck": fact(
            "bottleneck layer: 1x1 in->out//4, 3x3 out//4->out//4, 1x1 out//4->out (reduction fixed at 4 = pycls BOT_MUL "
            "0.25; no groups: ResNetConvLayer has a groups argument but the bottleneck never passes it)",
            {"reduction": 4, "bot_mul": 0.25, "groups": 1},
            src(S.ResNetBottleNeckLayer, "reduction: int = 4", "reduces_channels = out_channels // reduction"),
            src(S.ResNetStage, "downsample_in_bottleneck=config.downsample_in_bottleneck")),
        "downsample_in_bottleneck": fact(
            "downsample_in_bottleneck=True puts the stride of a stage's first layer on its first 1x1 conv (pycls "
            "models/resnet.py RESNET.STRIDE_1X1 True, 'MSRA'); False (default) on the 3x3 (pycls AnyNet's bottleneck, "
            "and models/resnet.py with STRIDE_1X1 False). Only the first layer of a stage has a stride",
            {"True": "stride on the first 1x1", "False": "stride on the 3x3"},
            src(S.ResNetBottleNeckLayer, "in_channels, reduces_channels, kernel_size=1, stride=stride if downsample_in_bottleneck else 1",
                "ResNetConvLayer(reduces_channels, reduces_channels, stride=stride if not downsample_in_bottleneck else 1)")),
        "downsample_in_first_stage": fact(
            "downsample_in_first_stage: stage 1 strides 2 if True else 1 (default False = pycls's ResNet STRIDES "
            "[1, 2, 2, 2]); later stages always 2",
            {"stage_1": "2 if True else 1", "later": 2},
            src(S.ResNetEncoder, "stride=2 if config.downsample_in_first_stage else 1",
                "self.stages.append(ResNetStage(config, in_channels, out_channels, depth=depth))")),
        "layer_type": fact(
            "layer_type 'bottleneck' (ResNetBottleNeckLayer) or 'basic' (ResNetBasicLayer: 3x3 with stride, 3x3; "
            "pycls AnyNet's res_basic_block)", ["basic", "bottleneck"],
            src(S.ResNetStage, 'layer = ResNetBottleNeckLayer if config.layer_type == "bottleneck" else ResNetBasicLayer'),
            src(S.ResNetBasicLayer, "ResNetConvLayer(in_channels, out_channels, stride=stride)")),
        "depths_hidden_sizes": fact(
            "depths / hidden_sizes: per stage, any number of stages (stage i maps hidden_sizes[i-1] -> hidden_sizes[i], "
            "stage 1 embedding_size -> hidden_sizes[0])", "per stage",
            src(S.ResNetEncoder, "config.embedding_size", "in_out_channels = zip(config.hidden_sizes, config.hidden_sizes[1:])")),
        "shortcut": fact("shortcut: 1x1 conv (stride) + BN when in != out or stride != 1", "in != out or stride != 1",
                         src(S.ResNetBottleNeckLayer, "should_apply_shortcut = in_channels != out_channels or stride != 1")),
        "head": fact("head: AdaptiveAvgPool2d((1, 1)), classifier Sequential(Flatten, Linear): key classifier.1",
                     "classifier.1", src(S.ResNetForImageClassification, "nn.Flatten()")),
        "backbone": fact(
            "ResNetBackbone: embedder + encoder (keys without the 'resnet.' prefix, no classifier); feature maps "
            "for config.out_features among stage_names ['stem', 'stage1', ...]: 'stem' is the embedder output "
            "(after the max pool)",
            {"stage_names": ResNetConfig().stage_names},
            src(S.ResNetBackbone, "self.embedder = ResNetEmbeddings(config)", "if stage in self.out_features:"),
            src(SC, 'self.stage_names = ["stem"] + [f"stage{idx}" for idx in range(1, len(self.depths) + 1)]')),
    }
    E, EC = tf_effnet, tf_effnet_cfg.EfficientNetConfig
    effnet = {
        "stem_padding": fact(
            "EfficientNet's stem pads (left 0, right 1, top 0, bottom 1) with ZeroPad2d and convolves 'valid': "
            "TF-style asymmetric padding, fixed (no config field). pycls pads 1 on every side",
            {"transformers_lrtb": [0, 1, 0, 1], "pycls_lrtb": [1, 1, 1, 1]},
            src(E.EfficientNetEmbeddings, "self.padding = nn.ZeroPad2d(padding=(0, 1, 0, 1))",
                'config.num_channels, self.out_dim, kernel_size=3, stride=2, padding="valid", bias=False'),
            src(pycls_effnet.StemIN, "nn.Conv2d(w_in, w_out, 3, stride=2, padding=1, bias=False)")),
        "depthwise_padding": fact(
            "stride-2 depthwise convs pad correct_pad(k, adjust): adjust=True (default) gives (k//2-1, k//2, k//2-1, k//2); "
            "blocks listed in config.depthwise_padding get adjust=False: (k//2, k//2, k//2, k//2) = pycls's symmetric padding",
            "depthwise_padding: block indices",
            src(E.EfficientNetDepthwiseLayer, 'conv_pad = "valid" if self.stride == 2 else "same"',
                "padding = correct_pad(kernel_size, adjust=adjust_padding)"),
            src(E.EfficientNetEncoder, "adjust_padding = curr_block_num not in config.depthwise_padding"),
            src(E.correct_pad, "return (correct[1] - 1, correct[1], correct[0] - 1, correct[0])")),
        "batch_norm_eps": fact("EfficientNetConfig has batch_norm_eps (default 1e-3; pycls 1e-5)", 1e-3,
                               src(EC, "batch_norm_eps: float = 0.001")),
        "se_width": fact("SE width max(1, int(in_dim * squeeze_expansion_ratio)) of the block input (pycls int(w_in * se_r))",
                         "max(1, int(in_dim * 0.25))",
                         src(E.EfficientNetSqueezeExciteLayer, "self.dim_se = max(1, int(in_dim * config.squeeze_expansion_ratio))"),
                         src(pycls_effnet.MBConv, "self.se = SE(w_exp, int(w_in * se_r))")),
        "widths": fact("channel widths are round_filters(width_coefficient * base) (multiples of depth_divisor), repeats "
                       "ceil(depth_coefficient * n)", "round_filters",
                       src(E.round_filters, "new_dim = max(divisor, int(num_channels + divisor / 2) // divisor * divisor)"),
                       src(E.EfficientNetEncoder, "return int(math.ceil(self.depth_coefficient * repeats))")),
        "head_pool": fact("the pooler is AvgPool2d(hidden_dim, ceil_mode=True): a global mean for maps up to hidden_dim wide",
                          "AvgPool2d(config.hidden_dim, ceil_mode=True)",
                          src(E.EfficientNetModel, "self.pooler = nn.AvgPool2d(config.hidden_dim, ceil_mode=True)")),
        "activation": fact("hidden_act 'swish' is torch's nn.SiLU; pycls 0.1.1 computes x * torch.sigmoid(x) (Swish)",
                           {"transformers": type(transformers.activations.ACT2FN["swish"]).__name__, "pycls": "Swish"},
                           src(EC, 'hidden_act: str = "swish"'), src(pycls_effnet.Swish, "return x * torch.sigmoid(x)")),
    }
    A = pycls_anynet
    pycls_facts = {
        "bottleneck": fact("pycls's bottleneck width w_b = int(round(w_out * bm)), groups w_b // gw, stride on the 3x3 (b)",
                           "int(round(w_out * bm))",
                           src(A.BottleneckTransform, "w_b = int(round(w_out * bm))", "g = w_b // gw",
                               "self.b = nn.Conv2d(w_b, w_b, 3, stride=stride, padding=1, groups=g, bias=False)")),
        "se_width": fact("pycls's SE width int(round(w_in * se_r)), w_in the block's input width; SE activation ReLU",
                         "int(round(w_in * se_r))",
                         src(A.BottleneckTransform, "w_se = int(round(w_in * se_r))"),
                         src(A.SE, "nn.ReLU(inplace=cfg.MEM.RELU_INPLACE)")),
        "proj": fact("pycls's projection shortcut when (w_in != w_out) or (stride != 1)", "(w_in != w_out) or (stride != 1)",
                     src(A.ResBottleneckBlock, "self.proj_block = (w_in != w_out) or (stride != 1)")),
        "simple_stem": fact("simple_stem_in: 3x3 conv stride 2 padding 1, BN, ReLU", {"kernel": 3, "stride": 2, "padding": 1},
                            src(A.SimpleStemIN, "nn.Conv2d(w_in, w_out, 3, stride=2, padding=1, bias=False)")),
        "res_stem_in": fact("res_stem_in: 7x7 stride 2 padding 3, BN, ReLU, MaxPool2d(3, stride=2, padding=1)", "7x7 + maxpool",
                            src(A.ResStemIN, "nn.Conv2d(w_in, w_out, 7, stride=2, padding=3, bias=False)",
                                "self.pool = nn.MaxPool2d(3, stride=2, padding=1)")),
        "regnet_groups": fact("pycls RegNet caps the group width at the bottleneck width (adjust_ws_gs_comp) and uses one "
                              "GROUP_W, BOT_MUL and STRIDE for every stage", "min(g, w_bot)",
                              src(pycls_regnet.adjust_ws_gs_comp, "gs = [min(g, w_bot) for g, w_bot in zip(gs, ws_bot)]"),
                              src(pycls_regnet.RegNet.get_args, "s_gs = [cfg.REGNET.GROUP_W for _ in range(num_stages)]",
                                  "s_ss = [cfg.REGNET.STRIDE for _ in range(num_stages)]")),
        "resnet_stride_1x1": fact("pycls models/resnet.py: (s1, s3) = (stride, 1) if cfg.RESNET.STRIDE_1X1 else (1, stride); "
                                  "STRIDE_1X1 defaults to True", True,
                                  src(pycls_resnet.BottleneckTransform, "(s1, s3) = (stride, 1) if cfg.RESNET.STRIDE_1X1 else (1, stride)")),
        "bn_eps": fact("every pycls BatchNorm2d takes eps=cfg.BN.EPS (default 1e-5)", 1e-5,
                       src(A.SimpleStemIN, "eps=cfg.BN.EPS")),
        "no_head_w": fact("pycls 0.1.1's cfg has no ANYNET.HEAD_W / REGNET.HEAD_W (pycls master added a head conv); "
                          "EN.HEAD_W is EfficientNet's", sorted(k for k in pycls_config._C.ANYNET.keys()),
                          src(pycls_anynet.AnyHead, "self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))", "self.fc = nn.Linear(w_in, nc, bias=True)")),
    }
    return {"regnet": regnet, "resnet": resnet, "efficientnet": effnet, "pycls": pycls_facts}


# pycls field -> transformers config field (what the structural comparisons below decide).
CORRESPONDENCE = {
    "RegNetConfig": {
        "REGNET.STEM_W / ANYNET.STEM_W": "embedding_size",
        "REGNET.STEM_TYPE / ANYNET.STEM_TYPE": "must be simple_stem_in (3x3 stride 2): the only stem",
        "REGNET.BLOCK_TYPE / ANYNET.BLOCK_TYPE": "must be res_bottleneck_block",
        "WIDTHS (RegNet: the quantized stage widths pycls's get_args builds)": "hidden_sizes",
        "DEPTHS (RegNet: the stage depths get_args builds)": "depths",
        "GROUP_WS / REGNET.GROUP_W": "groups_width: one value; every stage's group width must equal it, or be capped at a stage width below it",
        "BOT_MULS / REGNET.BOT_MUL": "none: must be 1.0",
        "SE_ON / SE_R": "layer_type 'y' when SE_ON (SE_R must be 0.25), 'x' otherwise",
        "STRIDES / REGNET.STRIDE": "downsample_in_first_stage (stage 1: 2 -> True, 1 -> False); every later stage must be 2",
        "HEAD_W": "none (pycls 0.1.1 has no HEAD_W for AnyNet/RegNet; the head is pool + fc)",
        "BN.EPS": "none: must be 1e-5",
        "MODEL.NUM_CLASSES": "num_labels (id2label / label2id in config.json)",
        "MEM.RELU_INPLACE, BN.MOM": "no effect on the computation in eval",
    },
    "ResNetConfig": {
        "ANYNET.STEM_W (res_stem_in) / models/resnet.py's 64": "embedding_size",
        "ANYNET.STEM_TYPE": "must be res_stem_in (7x7 + max pool): the only stem",
        "ANYNET.BLOCK_TYPE": "res_bottleneck_block -> layer_type 'bottleneck'; res_basic_block -> 'basic'",
        "ANYNET.WIDTHS / models/resnet.py's 256..2048": "hidden_sizes",
        "ANYNET.DEPTHS / MODEL.DEPTH's stage depths": "depths",
        "ANYNET.BOT_MULS": "none: must be 0.25 (reduction 4)",
        "ANYNET.GROUP_WS / RESNET.NUM_GROUPS": "none: groups must be 1 (GROUP_WS = the bottleneck widths; NUM_GROUPS 1)",
        "ANYNET.STRIDES": "downsample_in_first_stage (stage 1: 2 -> True, 1 -> False); later stages must be 2",
        "RESNET.STRIDE_1X1 (models/resnet.py)": "downsample_in_bottleneck (AnyNet: False)",
        "ANYNET.SE_ON": "must be False",
        "BN.EPS": "none: must be 1e-5",
        "MODEL.NUM_CLASSES": "num_labels",
    },
}


# ---------------------------------------------------------------------------------------------
# One model end to end
# ---------------------------------------------------------------------------------------------

def first_conv_key(mapping: list) -> str:
    return mapping[0][1] if mapping[0][0] == "stem.conv.weight" else next(t for p, t in mapping if p == "stem.conv.weight")


def config_json(model) -> tuple[dict, dict]:
    """save_pretrained into a temp dir: (config.json as written, {files, safetensors metadata/keys})."""
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        conf = json.loads((Path(d) / "config.json").read_text())
        with safe_open(str(Path(d) / "model.safetensors"), "pt") as sf:
            meta = sf.metadata()
            keys = list(sf.keys())
        files = sorted(os.listdir(d))
    return conf, {"files": files, "safetensors_metadata": meta, "safetensors_key_count": len(keys),
                  "safetensors_keys_sorted": keys == sorted(keys)}


def roundtrip(model, x: np.ndarray, logits: torch.Tensor) -> dict:
    """save_pretrained -> AutoModelForImageClassification.from_pretrained(dir, output_loading_info=True)."""
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        loaded, info = AutoModelForImageClassification.from_pretrained(d, output_loading_info=True)
        loaded.eval()
        with torch.no_grad():
            again = loaded(pixel_values=torch.from_numpy(x.copy())).logits
        dtypes = sorted({str(t.dtype).replace("torch.", "") for t in loaded.state_dict().values()})
    return {"class": type(loaded).__name__, "loading_info": {k: sorted(v) if isinstance(v, (set, list)) else v
                                                             for k, v in info.items()},
            "training": loaded.training, "dtypes": dtypes, "logits_max_abs_vs_in_memory": maxabs(logits, again)}


def run_model(name: str, values: dict, size: int, what: str, out_dir: Path, arrays: dict, keep_dir: Path | None) -> dict:
    numbers = pycls_numbers(values)
    config = propose_config(numbers)
    pycls_model = build_pycls(values)
    tf_model = build_transformers(config)
    structure = compare_structure(pycls_model, tf_model)
    if not structure["equal"]:
        raise SystemExit(f"{name}: transformers' model does not reproduce pycls's: {structure['first_mismatches']}")
    mapping = key_mapping(pycls_model, tf_model, structure["pairs"])
    assert mapping is not None, name
    first_conv = first_conv_key(mapping)

    state, stats = measured_state(values)
    write_npz(out_dir / f"{name}.statistics.npz", stats)
    pycls_model = load_pycls(values, state)
    tf_bgr, strict = load_tf(config, tf_state(state, mapping))
    tf_rgb, strict_rgb = load_tf(config, tf_state(state, mapping, rgb=True, first_conv=first_conv))
    assert strict == strict_rgb == {"missing_keys": [], "unexpected_keys": []}

    conf, saved = config_json(tf_bgr)
    rows = zoo.manifest_rows(tf_bgr.state_dict())
    manifest = {
        "source": (f"transformers {transformers.__version__} {type(tf_bgr).__name__}({type(config).__name__}(...)).state_dict(), "
                   f"torch {torch.__version__.split('+')[0]}; the config reproduces {what}, built by pycls {zoo.PYCLS_VERSION}'s "
                   "builder (tools/groundtruth/transformers_pycls.py)"),
        "pycls": {"cfg": values, "built": numbers},
        "config": conf,
        "first_conv": first_conv,
        "keys": rows,
        "pycls_to_transformers": mapping,
    }
    write_json(out_dir / "manifests" / f"{name}.json", manifest)

    result = {"what": what, "input_size": size, "transformers_class": type(tf_bgr).__name__,
              "config_class": type(config).__name__, "load_state_dict_strict": strict,
              "num_keys": len(rows), "num_mapped": len(mapping), "saved_folder": saved, "seeded": {}}
    for b in (1, 2):
        x = seeded_input(b, size)
        p_logits, p_feats = pycls_forward(pycls_model, x)
        t_logits, hidden = tf_forward(tf_bgr, x)
        r_logits, _ = tf_forward(tf_rgb, x[:, ::-1])
        arrays[f"{name}__b{b}__pycls_logits"] = p_logits.numpy()
        arrays[f"{name}__b{b}__transformers_logits"] = t_logits.numpy()
        row = {"input": f"np.random.default_rng([11, {b}]).standard_normal(({b}, 3, {size}, {size})).astype(np.float32)",
               "logits_max_abs": maxabs(p_logits, t_logits), "logits_max_rel": maxrel(p_logits, t_logits),
               "logits_bit_identical": bool(torch.equal(p_logits, t_logits)),
               "pycls_logits_max_abs_value": f(p_logits.abs().max()),
               "top1_equal": bool(torch.equal(p_logits.argmax(1), t_logits.argmax(1))),
               "rgb_weights_on_reversed_input": {"logits_max_abs": maxabs(p_logits, r_logits),
                                                 "logits_max_rel": maxrel(p_logits, r_logits)},
               "hidden_states": stage_match(p_feats, hidden)}
        if isinstance(config, ResNetConfig):
            row["resnet_backbone"] = backbone_check(config, tf_bgr, x, p_feats)
        if b == 1:
            row["save_pretrained_roundtrip"] = roundtrip(tf_bgr, x, t_logits)
        result["seeded"][f"b{b}"] = row
    if keep_dir is not None:  # the folder the torch 2.13.0 check loads
        tf_bgr.save_pretrained(keep_dir / name)
    return {"result": result, "pycls": pycls_model, "tf_rgb": tf_rgb, "config": config, "state": state, "mapping": mapping}


def backbone_check(config: ResNetConfig, tf_model, x: np.ndarray, p_feats: dict) -> dict:
    """ResNetBackbone with every stage as out_features, loaded with the classification model's weights
    (the 'resnet.' prefix dropped, classifier left out), and AutoBackbone.from_pretrained on the
    classification folder."""
    stages = ["stem"] + [f"stage{i}" for i in range(1, len(config.depths) + 1)]
    bconf = ResNetConfig(**{k: getattr(config, k) for k in ("num_channels", "embedding_size", "hidden_sizes", "depths",
                                                            "layer_type", "hidden_act", "downsample_in_first_stage",
                                                            "downsample_in_bottleneck")}, out_features=stages)
    torch.manual_seed(0)
    bb = ResNetBackbone(bconf).eval()
    sd = {k[len("resnet."):]: v for k, v in tf_model.state_dict().items() if k.startswith("resnet.")}
    res = bb.load_state_dict(sd, strict=True)
    with torch.no_grad():
        maps = bb(torch.from_numpy(x.copy())).feature_maps
    out = {"out_features": stages, "load_state_dict_strict": {"missing_keys": list(res.missing_keys),
                                                              "unexpected_keys": list(res.unexpected_keys)},
           "keys_are_classification_keys_without_prefix": sorted(bb.state_dict()) == sorted(sd),
           "feature_maps": stage_match(p_feats, maps)}
    with tempfile.TemporaryDirectory() as d:
        tf_model.save_pretrained(d)
        try:
            AutoBackbone.from_pretrained(d, out_features=stages)
            out["AutoBackbone.from_pretrained(classification folder)"] = {"loaded": True}
        except Exception as e:  # noqa: BLE001 - the error is the finding
            out["AutoBackbone.from_pretrained(classification folder)"] = {
                "loaded": False, "error": error_text(e),
                "why": src(tf_auto_factory._BaseAutoBackboneClass.from_pretrained,
                           "if not hf_api().repo_exists(pretrained_model_name_or_path):")}
        bb2, info = ResNetBackbone.from_pretrained(d, out_features=stages, output_loading_info=True)
        bb2.eval()
        with torch.no_grad():
            maps2 = bb2(torch.from_numpy(x.copy())).feature_maps
    out["ResNetBackbone.from_pretrained(classification folder, out_features=all)"] = {
        "loading_info": {k: sorted(v) if isinstance(v, (set, list)) else v for k, v in info.items()},
        "feature_maps_max_abs_vs_ResNetBackbone": max(maxabs(a, b) for a, b in zip(maps, maps2))}
    return out


# ---------------------------------------------------------------------------------------------
# Photos: pycls's own pipeline vs transformers' image processor
# ---------------------------------------------------------------------------------------------

MEAN_BGR = [float(v) for v in pycls_imagenet._MEAN]
STD_BGR = [float(v) for v in pycls_imagenet._SD]
MEAN_RGB, STD_RGB = MEAN_BGR[::-1], STD_BGR[::-1]
PHOTO_DIR = REPO_ROOT / "ckptconv" / "data" / "photos"


def pycls_item(path: Path, resize: int = 256, crop: int = 224) -> np.ndarray:
    """pycls 0.1.1's ImageNet.__getitem__ on a one-image dataset, split 'val' (CHW float32, BGR)."""
    cfg.TEST.IM_SIZE, cfg.TRAIN.IM_SIZE = resize, crop
    dataset = pycls_imagenet.ImageNet.__new__(pycls_imagenet.ImageNet)  # no __init__: it lists a data folder
    dataset._data_path, dataset._split = str(path.parent), "val"
    dataset._imdb = [{"im_path": str(path), "class": 0}]
    im, label = dataset[0]
    assert label == 0 and im.dtype == np.float32 and im.shape == (3, crop, crop)
    return im


PROCESSOR_FIELDS = {
    "do_resize": True, "size": {"shortest_edge": 224}, "crop_pct": 224 / 256, "resample": int(PILImageResampling.BILINEAR),
    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": MEAN_RGB, "image_std": STD_RGB,
}


def processors() -> dict:
    return {"ConvNextImageProcessor (torchvision backend)": ConvNextImageProcessor(**PROCESSOR_FIELDS),
            "ConvNextImageProcessorPil (PIL backend)": ConvNextImageProcessorPil(**PROCESSOR_FIELDS)}


def processor_facts() -> dict:
    proc = ConvNextImageProcessor(**PROCESSOR_FIELDS)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        proc.save_pretrained(d)
        written = json.loads((Path(d) / "preprocessor_config.json").read_text())
        auto = AutoImageProcessor.from_pretrained(d)
        out["preprocessor_config.json"] = written
        out["AutoImageProcessor.from_pretrained(that folder)"] = type(auto).__name__
    with tempfile.TemporaryDirectory() as d:  # a model folder without preprocessor_config.json
        RegNetForImageClassification(RegNetConfig(hidden_sizes=[8, 16], depths=[1, 1], groups_width=8,
                                                  embedding_size=8, num_labels=2)).save_pretrained(d)
        try:
            auto = AutoImageProcessor.from_pretrained(d)
            out["AutoImageProcessor.from_pretrained(model folder without preprocessor_config.json)"] = {
                "class": type(auto).__name__, "fields": {k: _plain(v) for k, v in auto.to_dict().items()
                                                         if k in ("size", "crop_pct", "resample", "image_mean", "image_std")}}
        except Exception as e:  # noqa: BLE001 - the error is the finding
            out["AutoImageProcessor.from_pretrained(model folder without preprocessor_config.json)"] = {
                "error": error_text(e)}
    out["sources"] = [
        src(tf_auto_ip, '("regnet", {"torchvision": "ConvNextImageProcessor", "pil": "ConvNextImageProcessorPil"})',
            '("resnet", {"torchvision": "ConvNextImageProcessor", "pil": "ConvNextImageProcessorPil"})'),
        src(tf_convnext_ip.ConvNextImageProcessor, "resize_shortest_edge = int(shortest_edge / crop_pct)",
            "if shortest_edge < 384:", "return self.center_crop("),
        src(tf_image_transforms.get_resize_output_image_size, "int(requested_new_short * long / short)"),
        src(tf_backends.TorchvisionBackend.resize, "antialias: bool = True",
            "return tvF.resize(image, new_size, interpolation=interpolation, antialias=antialias)"),
        src(tf_backends.TorchvisionBackend.center_crop, "crop_top = int((image_height - crop_height) / 2.0)"),
        src(tf_backends.TorchvisionBackend.process_image, "image = torch.from_numpy(image)"),
    ]
    out["rules"] = {
        "class": "ConvNextImageProcessor: AutoImageProcessor's class for model_type regnet and resnet (torchvision "
                 "backend by default; ConvNextImageProcessorPil the PIL one)",
        "size_rule": "short side -> int(shortest_edge / crop_pct) = 256, long side int(256 * long / short) (floor); "
                     "pycls: int(math.floor(long / short * 256)) in float64 (one pixel less in rare cases)",
        "crop_offset": "int((L - 224) / 2.0) = floor; pycls: ceil((L - 224) / 2)",
        "antialias": "torchvision backend: tvF.resize(antialias=True) on the uint8 tensor (result rounded to uint8); "
                     "PIL backend: PIL's resize; pycls: cv2.resize INTER_LINEAR on float32, no antialias",
        "normalization": "x / 255 then (x - mean) / std with pycls's mean/std in RGB order (fused in the torchvision backend)",
        "not_expressible": "no option for a ceil crop offset, no antialias switch, no float32 resize, no BGR output",
    }
    return out


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def info_summary(info: dict) -> dict:
    """from_pretrained's loading info; a key list longer than 6 is summarized (count, the key
    suffixes it holds, the first 3)."""
    def text(x) -> str:  # mismatched_keys holds (key, shape in the file, shape in the model)
        if isinstance(x, tuple) and len(x) == 3:
            return f"{x[0]}: {list(x[1])} in the file, {list(x[2])} in the model"
        return str(x)

    out = {}
    for k, v in info.items():
        v = sorted(map(text, v)) if isinstance(v, (set, list, tuple)) else v
        if isinstance(v, list) and len(v) > 6:
            v = {"count": len(v), "suffixes": sorted({x.split(":")[0].rpartition(".")[2] for x in v}), "first": v[:3]}
        out[k] = v
    return out


def topk(logits: torch.Tensor, k: int) -> list:
    return [int(i) for i in logits.topk(k, dim=1).indices[0]]


def photos_part(models: dict, arrays: dict) -> dict:
    photos = sorted(PHOTO_DIR.glob("*.png"))
    ref = np.load(REPO_ROOT / "tests" / "data" / "pipelines" / "pycls_reference.npz")
    procs = processors()
    inputs, per_model = {}, {name: {} for name in models}
    for path in photos:
        P = pycls_item(path)
        rgb_exact = np.ascontiguousarray(P[::-1])
        rec = {"pycls_input_vs_tests/data/pipelines/pycls_reference.npz": maxabs(P, ref[f"{path.stem}__256_224"])}
        proc_inputs = {}
        for label, proc in procs.items():
            pv = proc(images=Image.open(path).convert("RGB"), return_tensors="pt")["pixel_values"]
            assert tuple(pv.shape) == (1, 3, 224, 224) and pv.dtype == torch.float32, (label, pv.shape, pv.dtype)
            proc_inputs[label] = pv
            rec[label] = {"input_max_abs_vs_pycls_rgb": maxabs(rgb_exact, pv[0]),
                          "input_mean_abs_vs_pycls_rgb": f(np.mean(np.abs(rgb_exact.astype(np.float64) - pv[0].numpy())))}
        inputs[path.stem] = rec
        for name, m in models.items():
            with torch.no_grad():
                p_logits = m["pycls"](torch.from_numpy(P[None].copy()))
                exact = m["tf_rgb"](pixel_values=torch.from_numpy(rgb_exact[None].copy())).logits
            arrays[f"{name}__{path.stem}__pycls_logits"] = p_logits.numpy()
            row = {"pycls_top5": topk(p_logits, 5),
                   "pycls_input_rgb_with_reversed_first_conv": _agreement(p_logits, exact)}
            for label, pv in proc_inputs.items():
                with torch.no_grad():
                    t_logits = m["tf_rgb"](pixel_values=pv).logits
                row[label] = _agreement(p_logits, t_logits)
                if label.startswith("ConvNextImageProcessor ("):
                    arrays[f"{name}__{path.stem}__processor_logits"] = t_logits.numpy()
            per_model[name][path.stem] = row
    return {"inputs": inputs, "models": per_model}


def _agreement(p: torch.Tensor, t: torch.Tensor) -> dict:
    p5, t5 = topk(p, 5), topk(t, 5)
    return {"logits_max_abs": maxabs(p, t), "logits_max_rel": maxrel(p, t), "top1_agree": p5[0] == t5[0],
            "top5_same_order": p5 == t5, "top5_overlap": len(set(p5) & set(t5)), "top5": t5}


# ---------------------------------------------------------------------------------------------
# Fits and refusals, decided by building and comparing
# ---------------------------------------------------------------------------------------------

SMALL = 64  # input side for the refusal/fit experiments (cheap; every stage stays > 1 pixel)


def experiment(label: str, values: dict, lacking: str | None, override: dict | None = None, expect_fit: bool = False) -> dict:
    """Build pycls's model and the closest transformers model (propose_config + override), compare
    structure; where the modules pair up with equal shapes, load the recipe weights with measured BN
    statistics (as the 8 models) strictly and compare logits on the b=1 seeded input at 64x64."""
    numbers = pycls_numbers(values)
    config = propose_config(numbers, **(override or {}))
    pm = build_pycls(values)
    try:
        tm = build_transformers(config)
    except Exception as e:  # noqa: BLE001 - the error is the finding
        assert not expect_fit, (label, e)
        return {"pycls_cfg": values, "pycls_built": numbers, "closest_config": _config_fields(config),
                "transformers_build_error": error_text(e), "fits": False, "lacking": lacking}
    cmp_ = compare_structure(pm, tm, max_report=6)
    mapping = key_mapping(pm, tm, cmp_["pairs"])
    row = {"pycls_cfg": values, "pycls_built": numbers, "closest_config": _config_fields(config),
           "structure_equal": cmp_["equal"], "mismatch_count": cmp_["mismatch_count"],
           "mismatch_fields": cmp_["mismatch_fields"], "first_mismatches": cmp_["first_mismatches"],
           "keys_and_shapes_pair_up": mapping is not None}
    if mapping is not None:
        state, _ = measured_state(values)
        pm.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        res = tm.load_state_dict(tf_state(state, mapping), strict=True)
        x = seeded_input(1, SMALL)
        with torch.no_grad():
            a = pm(torch.from_numpy(x.copy()))
            b = tm(pixel_values=torch.from_numpy(x.copy())).logits
        row["load_state_dict_strict"] = {"missing_keys": list(res.missing_keys), "unexpected_keys": list(res.unexpected_keys)}
        row["logits_64px"] = {"max_abs": maxabs(a, b), "max_rel": maxrel(a, b), "top1_equal": bool(torch.equal(a.argmax(1), b.argmax(1)))}
    fits = cmp_["equal"] and mapping is not None and row["logits_64px"]["max_rel"] < 1e-5
    row["fits"] = fits
    if lacking:
        row["lacking"] = lacking
    assert fits == expect_fit, (label, fits, cmp_["first_mismatches"])
    return row


def _config_fields(config) -> dict:
    keys = ("embedding_size", "hidden_sizes", "depths", "groups_width", "layer_type", "hidden_act",
            "downsample_in_first_stage", "downsample_in_bottleneck", "num_labels")
    return {k: _plain(getattr(config, k)) for k in keys if hasattr(config, k)} | {"class": type(config).__name__}


def anynet(stem_type: str, block_type: str, stem_w: int, ds, ws, ss, bms, gws, se_on=False, se_r=0.25, nc=10) -> dict:
    v = {"MODEL.TYPE": "anynet", "MODEL.NUM_CLASSES": nc, "ANYNET.STEM_TYPE": stem_type, "ANYNET.STEM_W": stem_w,
         "ANYNET.BLOCK_TYPE": block_type, "ANYNET.DEPTHS": list(ds), "ANYNET.WIDTHS": list(ws), "ANYNET.STRIDES": list(ss)}
    if bms is not None:
        v["ANYNET.BOT_MULS"] = list(bms)
    if gws is not None:
        v["ANYNET.GROUP_WS"] = list(gws)
    if se_on:
        v["ANYNET.SE_ON"] = True
        v["ANYNET.SE_R"] = se_r
    return v


def fits_and_refusals() -> dict:
    x200 = regnet_values("regnetx_200mf")
    y200 = regnet_values("regnety_200mf")
    small_ds, small_ws = [1, 1, 2, 2], [24, 56, 152, 368]
    out = {}
    out["fits"] = {
        "anynet_simple_stem_uniform_groups": experiment(
            "anynet uniform", anynet("simple_stem_in", "res_bottleneck_block", 32, small_ds, small_ws, [2, 2, 2, 2],
                                     [1.0] * 4, [8] * 4), None, expect_fit=True),
        "anynet_stage1_stride_1 (downsample_in_first_stage False)": experiment(
            "anynet s1 stride 1", anynet("simple_stem_in", "res_bottleneck_block", 32, small_ds, small_ws, [1, 2, 2, 2],
                                         [1.0] * 4, [8] * 4), None, expect_fit=True),
        "regnetx_8.0gf_capped_group_width (GROUP_W 120 > stage-1 width 80)": experiment(
            "8.0gf", dict(regnet_values("regnetx_8.0gf"), **{"REGNET.DEPTH": 6}), None, expect_fit=True),
        "anynet_resnet_basic_block (R-18-like, res_stem_in)": experiment(
            "basic", anynet("res_stem_in", "res_basic_block", 64, [2, 2, 2, 2], [64, 128, 256, 512], [1, 2, 2, 2], None, None),
            None, expect_fit=True),
    }
    out["refusals"] = {
        "resnext50_32x4d": experiment(
            "resnext", {k: v for k, v in zoo.yaml_values("resnext50_32x4d").items() if not k.startswith(("TRAIN.", "TEST."))},
            "ResNetConfig has no groups / width_per_group field and a fixed reduction of 4: the bottleneck is out // 4 "
            "wide with groups 1 (ResNeXt-50 32x4d: out // 2 wide, 32 groups)"),
        "regnet_bot_mul_0.5": experiment(
            "bot mul", dict(x200, **{"REGNET.BOT_MUL": 0.5}),
            "RegNetConfig has no bottleneck-ratio field: RegNetX/YLayer make the bottleneck out_channels wide (BOT_MUL 1)"),
        "regnet_se_r_0.5": experiment(
            "se_r", dict(y200, **{"REGNET.SE_R": 0.5}),
            "RegNetConfig has no SE-ratio field: RegNetYLayer's SE width is int(round(in_channels / 4)) (SE_R 0.25)"),
        "regnet_bn_eps_1e-3": experiment(
            "eps", dict(x200, **{"BN.EPS": 1e-3}),
            "RegNetConfig has no BN eps field: every BatchNorm2d is built with torch's default eps 1e-5 (keys and shapes "
            "load strictly; the features differ)"),
        "regnet_stride_1": experiment(
            "stride 1", dict(x200, **{"REGNET.STRIDE": 1}),
            "RegNetConfig has no per-stage stride: downsample_in_first_stage sets stage 1 only; every later stage "
            "strides 2 (keys and shapes load strictly; the features differ)", override={"downsample_in_first_stage": False}),
        "anynet_per_stage_group_widths": experiment(
            "gws", anynet("simple_stem_in", "res_bottleneck_block", 32, small_ds, small_ws, [2, 2, 2, 2], [1.0] * 4, [8, 8, 8, 16]),
            "RegNetConfig has one groups_width for every stage: per-stage GROUP_WS that differ cannot be said (the "
            "closest config, groups_width 16, does not even build: 56 channels are not divisible by 56 // 16 = 3 groups)"),
        "anynet_resnet_stem_with_regnet_blocks": experiment(
            "stem", anynet("res_stem_in", "res_bottleneck_block", 32, small_ds, small_ws, [2, 2, 2, 2], [1.0] * 4, [8] * 4),
            "RegNet's stem is always a 3x3 stride-2 conv; ResNet's stem takes a 7x7 + max pool but its layers have "
            "reduction 4 and no groups (closest: ResNetConfig)"),
        "anynet_cifar_stem (res_stem_cifar: 3x3 stride 1)": experiment(
            "cifar", anynet("res_stem_cifar", "res_bottleneck_block", 32, small_ds, small_ws, [2, 2, 2, 2], [1.0] * 4, [8] * 4),
            "RegNet's stem conv always strides 2 (shapes equal a CIFAR stem's: keys load strictly, the features differ)"),
        "anynet_vanilla_block": experiment(
            "vanilla", anynet("res_stem_in", "vanilla_block", 64, [1, 1, 1, 1], [64, 128, 256, 512], [1, 2, 2, 2], None, None),
            "neither class has a block without a residual connection (pycls's vanilla_block)"),
        "resnet50_stride1x1_as_default_config (downsample_in_bottleneck False)": experiment(
            "r50 1x1", dict(RESNET50_STRIDE_1X1), "downsample_in_bottleneck must be True for RESNET.STRIDE_1X1 True",
            override={"downsample_in_bottleneck": False}),
        "resnet50_anynet_with_downsample_in_bottleneck True": experiment(
            "r50 3x3", {k: v for k, v in zoo.yaml_values("resnet50").items() if not k.startswith(("TRAIN.", "TEST."))},
            "downsample_in_bottleneck must be False for pycls's AnyNet R-50 (stride on the 3x3)",
            override={"downsample_in_bottleneck": True}),
        "anynet_se_with_resnet_stem": experiment(
            "se resnet", anynet("res_stem_in", "res_bottleneck_block", 64, [1, 1, 1, 1], [256, 512, 1024, 2048], [1, 2, 2, 2],
                                [0.25] * 4, [64, 128, 256, 512], se_on=True),
            "ResNetConfig has no SE; RegNetConfig's layers have SE but a 3x3 stem"),
    }
    # HEAD_W: pycls 0.1.1 cannot even say it
    head = {}
    for key in ("ANYNET.HEAD_W", "REGNET.HEAD_W"):
        reset_cfg()
        cfg.defrost()
        try:
            cfg.merge_from_list([key, "1280"])
            head[key] = "accepted"
        except Exception as e:  # noqa: BLE001 - the error is the finding
            head[key] = error_text(e)
    out["refusals"]["head_w"] = {"pycls_0.1.1_cfg_merge": head, "fits": False,
                                 "lacking": "pycls 0.1.1 has no HEAD_W for AnyNet/RegNet (a master-only head conv); "
                                            "neither transformers class has a head conv (pool + Linear only)"}
    # BN eps given to the config as an extra kwarg: accepted, stored, unused
    c = RegNetConfig(batch_norm_eps=1e-3, hidden_sizes=[8, 16], depths=[1, 1], groups_width=8, embedding_size=8)
    m = RegNetForImageClassification(c)
    out["refusals"]["regnet_bn_eps_1e-3"]["RegNetConfig(batch_norm_eps=1e-3)"] = {
        "accepted": True, "config_attribute": c.batch_norm_eps,
        "bn_eps_built": sorted({mm.eps for mm in m.modules() if isinstance(mm, nn.BatchNorm2d)})}
    out["refusals"]["efficientnet_b0"] = efficientnet_b0()
    return out


def efficientnet_b0() -> dict:
    values = {k: v for k, v in zoo.yaml_values("b0").items() if not k.startswith(("TRAIN.", "TEST."))}
    pm = build_pycls(values)
    # every stride-2 block index (first block of the stride-2 stages), so their depthwise pads are symmetric
    repeats, strides = zoo.EFFNET["b0"][1], zoo.EN_STRIDES
    starts = np.cumsum([0] + repeats[:-1]).tolist()
    dw_sym = [int(s) for s, st in zip(starts, strides) if st == 2]
    conf = EfficientNetConfig(width_coefficient=1.0, depth_coefficient=1.0, image_size=224, hidden_dim=1280,
                              batch_norm_eps=1e-5, depthwise_padding=dw_sym, num_labels=1000, dropout_rate=0.2)
    torch.manual_seed(0)
    tm = EfficientNetForImageClassification(conf).eval()
    cmp_ = compare_structure(pm, tm, max_report=6, activations=False)
    mapping = key_mapping(pm, tm, cmp_["pairs"])
    row = {"compared": "convs, BNs, linears and pools in definition order (activations left out: transformers' SE "
                       "defines both convs before its activations)",
           "pycls_cfg": values, "closest_config": {"class": "EfficientNetConfig", "width_coefficient": 1.0, "depth_coefficient": 1.0,
                                                   "hidden_dim": 1280, "batch_norm_eps": 1e-5, "depthwise_padding": dw_sym},
           "structure_equal": cmp_["equal"], "mismatch_count": cmp_["mismatch_count"],
           "mismatch_fields": cmp_["mismatch_fields"], "first_mismatches": cmp_["first_mismatches"],
           "keys_and_shapes_pair_up": mapping is not None}
    assert mapping is not None
    state, _ = measured_state(values)
    pm.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    res = tm.load_state_dict(tf_state(state, mapping), strict=True)
    x = seeded_input(1, 224)
    with torch.no_grad():
        a = pm(torch.from_numpy(x.copy()))
        b = tm(pixel_values=torch.from_numpy(x.copy())).logits
        # the experiment: the stem's ZeroPad2d replaced by a symmetric one (not something a config can do)
        tm.efficientnet.embeddings.padding = nn.ZeroPad2d(1)
        c = tm(pixel_values=torch.from_numpy(x.copy())).logits
    row["load_state_dict_strict"] = {"missing_keys": list(res.missing_keys), "unexpected_keys": list(res.unexpected_keys)}
    row["logits_224px"] = {"as_built": {"max_abs": maxabs(a, b), "max_rel": maxrel(a, b)},
                           "stem_padding_patched_to_symmetric (experiment only)": {"max_abs": maxabs(a, c), "max_rel": maxrel(a, c)}}
    row["fits"] = False
    row["lacking"] = ("EfficientNetConfig has no stem-padding field: the stem always pads (0, 1, 0, 1) (TF 'same' for "
                      "stride 2) where pycls pads 1 on every side. batch_norm_eps and depthwise_padding can say pycls's "
                      "eps and symmetric depthwise pads; with the stem patched the logits agree up to SiLU vs x*sigmoid(x)")
    return row


def zoo_survey() -> dict:
    """Every pycls zoo RegNet and ResNe(X)t, built on the meta device (no memory, no weights) by pycls
    and as the proposed transformers config: structure equal or not."""
    rows = {}
    for name in zoo.NAMES:
        if zoo.family(name) == "effnet":
            continue
        values = {k: v for k, v in zoo.yaml_values(name).items() if not k.startswith(("TRAIN.", "TEST."))}
        numbers = pycls_numbers(values)
        config = propose_config(numbers)
        with torch.device("meta"):
            pm = build_pycls(values)
            tm = build_transformers(config)
        cmp_ = compare_structure(pm, tm, max_report=3)
        mapping = key_mapping(pm, tm, cmp_["pairs"])
        rows[name] = {"config": _config_fields(config), "structure_equal": cmp_["equal"],
                      "keys_and_shapes_pair_up": mapping is not None, "mismatch_fields": cmp_["mismatch_fields"]}
    return rows


# ---------------------------------------------------------------------------------------------
# TimmWrapper
# ---------------------------------------------------------------------------------------------

def timm_wrapper_part() -> dict:
    arch = "regnetx_002"
    # a RegNetY of its own numbers (timm's RegNet needs 4 stages: the 3-stage regnety_custom cannot be built)
    model_args = {"depth": 10, "w0": 32, "wa": 20.0, "wm": 2.0, "group_size": 16, "se_ratio": 0.25}
    nc = 10
    torch.manual_seed(0)
    ref = timm.create_model(arch, pretrained=False, num_classes=nc, **model_args).eval()
    state = zoo.recipe_state({k: tuple(t.shape) for k, t in ref.state_dict().items()})
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    ref.load_state_dict(tensors, strict=True)
    plain = timm.create_model(arch, pretrained=False, num_classes=nc)
    pretrained_cfg = {"input_size": [3, 224, 224], "interpolation": "bilinear", "crop_pct": 0.875, "crop_mode": "center",
                      "mean": MEAN_RGB, "std": STD_RGB, "num_classes": nc, "first_conv": "stem.conv", "classifier": "head.fc"}
    config = {"architecture": arch, "num_classes": nc, "num_features": ref.num_features, "global_pool": "avg",
              "model_args": model_args, "pretrained_cfg": pretrained_cfg}
    x = torch.from_numpy(seeded_input(1, 224))
    with torch.no_grad():
        ref_logits = ref(x)
    out = {"written_config.json": config,
           "weights": "zoo.recipe_state of timm.create_model('regnetx_002', num_classes=10, **model_args).state_dict() "
                      "shapes, saved with safetensors.torch.save_file(metadata={'format': 'pt'})",
           "model_args_change_the_structure": {
               "num_keys (with model_args / regnetx_002 plain)": [len(ref.state_dict()), len(plain.state_dict())],
               "head.fc.weight (with / plain)": [list(ref.state_dict()["head.fc.weight"].shape),
                                                 list(plain.state_dict()["head.fc.weight"].shape)]}}
    ref_shapes = [[k, list(v.shape)] for k, v in ref.state_dict().items()]
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "regnet_custom_timm"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        tm = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
        with torch.no_grad():
            timm_logits = tm(x)
        out["timm.create_model('local-dir:DIR', pretrained=True)"] = {"logits_max_abs_vs_reference": maxabs(ref_logits, timm_logits)}
        auto_conf = AutoConfig.from_pretrained(folder)
        out["AutoConfig.from_pretrained(DIR)"] = {"class": type(auto_conf).__name__, "model_type": auto_conf.model_type,
                                                  "architecture": auto_conf.architecture, "num_labels": auto_conf.num_labels,
                                                  "model_args": auto_conf.model_args}
        for label, loader in (("TimmWrapperForImageClassification.from_pretrained(DIR)", TimmWrapperForImageClassification),
                              ("AutoModelForImageClassification.from_pretrained(DIR)", AutoModelForImageClassification)):
            m, info = loader.from_pretrained(folder, output_loading_info=True)
            m.eval()
            with torch.no_grad():
                logits = m(pixel_values=x).logits
            sd = m.state_dict()
            out[label] = {"class": type(m).__name__,
                          "loading_info": {k: sorted(v) if isinstance(v, (set, list)) else v for k, v in info.items()},
                          "model_args_applied (keys and shapes = timm.create_model(arch, **model_args))":
                              [[k[len("timm_model."):], list(v.shape)] for k, v in sd.items()] == ref_shapes,
                          "state_dict_key_prefix": sorted({k.split(".")[0] for k in sd}),
                          "logits_max_abs_vs_timm": maxabs(ref_logits, logits)}
        ip = AutoImageProcessor.from_pretrained(folder)
        out["AutoImageProcessor.from_pretrained(DIR)"] = {"class": type(ip).__name__,
                                                          "data_config": _plain(getattr(ip, "data_config", None))}
        # the wrapper's own save_pretrained: what it writes
        with tempfile.TemporaryDirectory() as d2:
            m.save_pretrained(d2)
            written = json.loads((Path(d2) / "config.json").read_text())
            with safe_open(str(Path(d2) / "model.safetensors"), "pt") as sf:
                keys = list(sf.keys())
        written.pop("label_names", None)
        out["TimmWrapper save_pretrained"] = {"config.json (label_names dropped here)": written,
                                              "safetensors_keys_have_timm_model_prefix": any(k.startswith("timm_model.") for k in keys)}
        # without model_args: the plain architecture cannot take these weights
        folder2 = Path(d) / "no_model_args"
        folder2.mkdir()
        (folder2 / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "model_args"}, indent=2) + "\n")
        save_file(tensors, str(folder2 / "model.safetensors"), metadata={"format": "pt"})
        try:
            m2, info2 = AutoModelForImageClassification.from_pretrained(folder2, output_loading_info=True)
            out["without model_args"] = {"loaded": True, "loading_info": {k: sorted(map(str, v)) if isinstance(v, (set, list)) else v
                                                                          for k, v in info2.items()}}
        except Exception as e:  # noqa: BLE001 - the error is the finding
            out["without model_args"] = {"loaded": False, "error": error_text(e)}
            torch.manual_seed(0)
            _, info3 = AutoModelForImageClassification.from_pretrained(folder2, output_loading_info=True,
                                                                       ignore_mismatched_sizes=True)
            out["without model_args"]["with ignore_mismatched_sizes=True"] = info_summary(info3)
        folder3 = Path(d) / "no_pretrained_cfg"
        folder3.mkdir()
        (folder3 / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "pretrained_cfg"}, indent=2) + "\n")
        save_file(tensors, str(folder3 / "model.safetensors"), metadata={"format": "pt"})
        try:
            AutoModelForImageClassification.from_pretrained(folder3)
            out["without pretrained_cfg"] = {"loaded": True}
        except Exception as e:  # noqa: BLE001 - the error is the finding
            out["without pretrained_cfg"] = {"loaded": False, "error": error_text(e)}
    out["sources"] = [
        src(tf_configuration_utils.PreTrainedConfig._get_config_dict, "if \"model_type\" not in config_dict and is_timm_config_dict(config_dict):",
            'config_dict["model_type"] = "timm_wrapper"'),
        src(tf_generic.is_timm_config_dict, 'return "pretrained_cfg" in config_dict'),
        src(tf_timm_cfg.TimmWrapperConfig, "model_args: dict[str, Any] | None = None", 'num_labels_in_dict = config_dict.pop("num_classes", None)',
            'config_dict["pretrained_cfg"].pop("num_classes", None)'),
        src(tf_timm.TimmWrapperForImageClassification, "extra_init_kwargs = config.model_args or {}",
            "config, num_classes=config.num_labels, **extra_init_kwargs"),
        src(tf_timm._create_timm_model_with_error_handling, "model = timm.create_model(", "pretrained=False,"),
        src(tf_timm.TimmWrapperPreTrainedModel, 'base_model_prefix = "timm_model"'),
        src(tf_conversion_mapping._build_checkpoint_conversion_mapping, '"timm_wrapper": [PrefixChange(prefix_to_add="timm_model")],'),
        src(tf_timm_ip.TimmWrapperImageProcessor, "timm.data.resolve_data_config(pretrained_cfg, model=None, verbose=False)"),
    ]
    return out


# ---------------------------------------------------------------------------------------------
# Loading variants: what from_pretrained makes of a folder ckptconv might write
# ---------------------------------------------------------------------------------------------

def loading_variants(m: dict) -> dict:
    """The regnety_200mf weights in hand-written folders: config.json from the config, and
    model.safetensors with (a) every state_dict key, (b) without num_batches_tracked,
    (c) without safetensors metadata, (d) in sorted key order."""
    config, tf_model = m["config"], None
    sd = tf_state(m["state"], m["mapping"])
    x = torch.from_numpy(seeded_input(1, 224))
    tf_model, _ = load_tf(config, sd)
    with torch.no_grad():
        ref = tf_model(pixel_values=x).logits
    out = {}
    variants = {
        "all state_dict keys, metadata {'format': 'pt'}": (sd, {"format": "pt"}),
        "without num_batches_tracked": ({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, {"format": "pt"}),
        "no safetensors metadata": (sd, None),
        "classifier keys left out (a headless folder)": ({k: v for k, v in sd.items() if not k.startswith("classifier.")}, {"format": "pt"}),
    }
    for label, (tensors, meta) in variants.items():
        with tempfile.TemporaryDirectory() as d:
            config.save_pretrained(d)
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(Path(d) / "model.safetensors"), metadata=meta)
            try:
                model, info = AutoModelForImageClassification.from_pretrained(d, output_loading_info=True)
                model.eval()
                with torch.no_grad():
                    logits = model(pixel_values=x).logits
                nbt = {k: int(v) for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
                random_init = [k for k in info["missing_keys"] if not k.endswith("num_batches_tracked")]
                out[label] = {"loaded": True, "class": type(model).__name__, "loading_info": info_summary(info),
                              "logits_max_abs_vs_in_memory": None if random_init else maxabs(ref, logits),
                              "randomly_initialized": sorted(random_init),
                              "num_batches_tracked_values": sorted(set(nbt.values()))}
            except Exception as e:  # noqa: BLE001 - the error is the finding
                out[label] = {"loaded": False, "error": error_text(e)}
    with tempfile.TemporaryDirectory() as d:
        tf_model.save_pretrained(d)
        try:
            AutoBackbone.from_pretrained(d)
            out["AutoBackbone.from_pretrained(a RegNet folder)"] = {"loaded": True}
        except Exception as e:  # noqa: BLE001 - the error is the finding
            out["AutoBackbone.from_pretrained(a RegNet folder)"] = {"loaded": False,
                                                                   "error": error_text(e)}
    return out


# ---------------------------------------------------------------------------------------------
# torch 2.13.0: the same transformers in another venv loads the folders written here
# ---------------------------------------------------------------------------------------------

TORCH213_SNIPPET = r"""
import json, os, sys, importlib.metadata
os.environ["HF_HUB_OFFLINE"] = "1"; os.environ["TRANSFORMERS_OFFLINE"] = "1"; os.environ["TRANSFORMERS_VERBOSITY"] = "error"
import numpy as np, torch
torch.set_num_threads(1)
import transformers
from transformers import AutoModelForImageClassification
transformers.utils.logging.disable_progress_bar()
root, sizes = sys.argv[1], json.loads(sys.argv[2])
out = {"versions": {n: importlib.metadata.version(n) for n in ("torch", "transformers", "numpy", "safetensors", "huggingface_hub")},
       "models": {}}
for name, size in sizes.items():
    m, info = AutoModelForImageClassification.from_pretrained(os.path.join(root, name), output_loading_info=True)
    m.eval()
    row = {"class": type(m).__name__, "loading_info": {k: sorted(map(str, v)) for k, v in info.items()}}
    for b in (1, 2):
        x = np.random.default_rng([11, b]).standard_normal((b, 3, size, size)).astype(np.float32)
        with torch.no_grad():
            logits = m(pixel_values=torch.from_numpy(x)).logits
        np.save(os.path.join(root, f"{name}__b{b}.npy"), logits.numpy())
    out["models"][name] = row
print(json.dumps(out))
"""


def torch213_check(python: str, folder: Path, arrays: dict) -> dict:
    sizes = {name: spec[1] for name, spec in MODELS.items()}
    done = subprocess.run([python, "-c", TORCH213_SNIPPET, str(folder), json.dumps(sizes)], capture_output=True, text=True)
    if done.returncode != 0:
        return {"ran": False, "stderr_tail": done.stderr.strip().splitlines()[-5:]}
    res = json.loads(done.stdout.strip().splitlines()[-1])
    for name in sizes:
        row = res["models"][name]
        for b in (1, 2):
            other = np.load(folder / f"{name}__b{b}.npy")
            mine = arrays[f"{name}__b{b}__transformers_logits"]
            ref = arrays[f"{name}__b{b}__pycls_logits"]
            row[f"b{b}"] = {"logits_max_abs_vs_torch_2.14.1_transformers": maxabs(mine, other),
                            "logits_max_abs_vs_pycls_torch_2.14.1": maxabs(ref, other),
                            "bit_identical_to_torch_2.14.1": bool(np.array_equal(mine, other))}
    res["ran"] = True
    res["what"] = ("AutoModelForImageClassification.from_pretrained on the save_pretrained folders of the 8 models "
                   "(written under torch 2.14.1), under torch 2.13.0 in another venv, seeded inputs as in numerics.json")
    return res


# ---------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-root", type=Path, default=REPO_ROOT, help="repository root to write under")
    ap.add_argument("--torch213-python", help="python of a venv with torch 2.13.0 and the same transformers")
    args = ap.parse_args(argv)
    out_dir = args.out_root / "tests" / "data" / "transformers"
    vers = versions()

    arrays: dict = {}
    results, models = {}, {}
    with tempfile.TemporaryDirectory() as keep:
        keep_dir = Path(keep) if args.torch213_python else None
        for name, (values, size, what) in MODELS.items():
            print(f"[model] {name}", flush=True)
            m = run_model(name, values, size, what, out_dir, arrays, keep_dir)
            results[name] = m["result"]
            models[name] = m
        print("[loading variants]", flush=True)
        variants = loading_variants(models["regnety_200mf"])
        print("[photos]", flush=True)
        photos = photos_part(models, arrays)
        if args.torch213_python:
            print("[torch 2.13.0]", flush=True)
            write_json(out_dir / "torch213_check.json", torch213_check(args.torch213_python, keep_dir, arrays))

    summary = {}
    for name, r in results.items():
        summary[name] = {
            "seeded_logits_max_abs": max(r["seeded"][b]["logits_max_abs"] for b in ("b1", "b2")),
            "seeded_logits_max_rel": max(r["seeded"][b]["logits_max_rel"] for b in ("b1", "b2")),
            "seeded_rgb_logits_max_abs": max(r["seeded"][b]["rgb_weights_on_reversed_input"]["logits_max_abs"] for b in ("b1", "b2")),
            "photos_exact_input_logits_max_abs": max(v["pycls_input_rgb_with_reversed_first_conv"]["logits_max_abs"]
                                                     for v in photos["models"][name].values()),
            "photos_processor_top1_agree": sum(v["ConvNextImageProcessor (torchvision backend)"]["top1_agree"]
                                               for v in photos["models"][name].values()),
            "photos_processor_logits_max_abs": max(v["ConvNextImageProcessor (torchvision backend)"]["logits_max_abs"]
                                                   for v in photos["models"][name].values()),
            "photos": len(photos["models"][name]),
        }
    numerics = {
        "versions": vers,
        "recipe": {
            "weights": "zoo.recipe_state(seed 0) of pycls's state_dict shapes; BatchNorm running_mean/var from "
                       "<model>.statistics.npz (measured: train mode, reset_running_stats, momentum None, one forward of "
                       "np.random.default_rng([7, 0]).standard_normal((8, 3, 224, 224)).astype(np.float32), no_grad; "
                       "running_var.clamp(min=0.1 * torch.median(running_var) + 1e-3) per BatchNorm2d); num_batches_tracked 0",
            "seeded_input": "np.random.default_rng([11, b]).standard_normal((b, 3, S, S)).astype(np.float32), b = 1, 2",
            "transformers_weights": "pycls's tensors under the keys of manifests/<model>.json pycls_to_transformers (BGR, as pycls); "
                                    "rgb_weights_on_reversed_input: the first conv's input channels reversed, fed x[:, ::-1]",
            "photos": "pycls 0.1.1's ImageNet.__getitem__ (split val, 256/224) -> pycls model; the RGB transformers model "
                      "fed (a) the image processor's pixel_values from PIL.Image.open(photo).convert('RGB'), (b) pycls's own "
                      "input reversed to RGB",
            "processor_fields": PROCESSOR_FIELDS,
        },
        "summary": summary,
        "models": results,
        "photos": photos,
        "npz": "numerics.npz: <model>__b<b>__pycls_logits / __transformers_logits (seeded inputs), "
               "<model>__<photo>__pycls_logits / __processor_logits (ConvNextImageProcessor, torchvision backend, RGB weights)",
    }
    write_json(out_dir / "numerics.json", numerics)
    write_npz(out_dir / "numerics.npz", {k: arrays[k] for k in sorted(arrays)})

    print("[facts]", flush=True)
    facts = {
        "versions": vers,
        "sources": source_facts(),
        "pycls_to_config": CORRESPONDENCE,
        "models": {name: {"config_class": r["config_class"], "transformers_class": r["transformers_class"],
                          "config": _config_fields(models[name]["config"])} for name, r in results.items()},
        "experiments": fits_and_refusals(),
        "zoo_survey": zoo_survey(),
        "loading": loading_variants_doc(variants),
        "image_processor": processor_facts(),
        "timm_wrapper": timm_wrapper_part(),
    }
    write_json(out_dir / "facts.json", facts)
    print("done", flush=True)
    return 0


def loading_variants_doc(variants: dict) -> dict:
    return {"what": "regnety_200mf: save_pretrained's folder and hand-written folders (config.json + model.safetensors) "
                    "loaded with AutoModelForImageClassification.from_pretrained(DIR, output_loading_info=True), offline",
            "variants": variants}


if __name__ == "__main__":
    sys.exit(main())
