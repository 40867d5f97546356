"""What the ground-truth scripts beside this file share: the pycls model zoo as data, the
random-weights recipe and its input, and the key-manifest format.

Plain Python (numpy is imported inside the two recipe functions), so each script's environment
can import it. The scripts run as ``python tools/groundtruth/<script>.py``, which puts this folder
first on ``sys.path``: ``import zoo`` finds this file, with no path set by hand.

The numbers are the model-defining lines of pycls's ``configs/dds_baselines/**/*.yaml`` (MODEL.*,
REGNET.* / ANYNET.* / EN.*, TRAIN.IM_SIZE, TEST.IM_SIZE) as of the pycls commit that pycls 0.1.1
was released from (4cf2524, 2020-09-08). For RegNet/ResNet/ResNeXt they are the same at master;
the first tagged version, 0.1, still had GROUP_WS [6, 128, 256, 512] for R-50 and [64, 8, 16, 32]
for X-50. Master adds one line to every EfficientNet YAML, MODEL.ACTIVATION_FUN: silu, a key
pycls 0.1.1 does not have (pycls_zoo.py records it as master_only_keys).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

PYCLS_VERSION = "0.1.1"
REPO_ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------
# The zoo, as data (see the module docstring for where the numbers come from).
# ---------------------------------------------------------------------------------------------

# size: (DEPTH, W0, WA, WM, GROUP_W), the REGNET.* lines; RegNetY's YAMLs add REGNET.SE_ON: True.
# Sizes are spelled as in the model names here (regnetx_1.6gf); pycls's zoo names and config
# files spell them in capitals (RegNetX-1.6GF).
REGNET_KEYS = ("REGNET.DEPTH", "REGNET.W0", "REGNET.WA", "REGNET.WM", "REGNET.GROUP_W")
REGNETX = {
    "200mf": (13, 24, 36.44, 2.49, 8),
    "400mf": (22, 24, 24.48, 2.54, 16),
    "600mf": (16, 48, 36.97, 2.24, 24),
    "800mf": (16, 56, 35.73, 2.28, 16),
    "1.6gf": (18, 80, 34.01, 2.25, 24),
    "3.2gf": (25, 88, 26.31, 2.25, 48),
    "4.0gf": (23, 96, 38.65, 2.43, 40),
    "6.4gf": (17, 184, 60.83, 2.07, 56),
    "8.0gf": (23, 80, 49.56, 2.88, 120),
    "12gf":  (19, 168, 73.36, 2.37, 112),
    "16gf":  (22, 216, 55.59, 2.1, 128),
    "32gf":  (23, 320, 69.86, 2.0, 168),
}
REGNETY = {
    "200mf": (13, 24, 36.44, 2.49, 8),
    "400mf": (16, 48, 27.89, 2.09, 8),
    "600mf": (15, 48, 32.54, 2.32, 16),
    "800mf": (14, 56, 38.84, 2.4, 16),
    "1.6gf": (27, 48, 20.71, 2.65, 24),
    "3.2gf": (21, 80, 42.63, 2.66, 24),
    "4.0gf": (22, 96, 31.41, 2.24, 64),
    "6.4gf": (25, 112, 33.22, 2.27, 72),
    "8.0gf": (17, 192, 76.82, 2.19, 56),
    "12gf":  (19, 168, 73.36, 2.37, 112),
    "16gf":  (18, 200, 106.23, 2.48, 112),
    "32gf":  (20, 232, 115.89, 2.53, 232),
}
REGNET_SIZES = list(REGNETX)

# ResNet-N / ResNeXt-N 32x4d: ANYNET.DEPTHS by N.
RESNET_DEPTHS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
# (ANYNET.BOT_MULS, ANYNET.GROUP_WS) by family; the other ANYNET lines are the same for all six.
RESNET_BLOCKS = {"resnet": ([0.25] * 4, [64, 128, 256, 512]),
                 "resnext": ([0.5] * 4, [4, 8, 16, 32])}

# b: (STEM_W, DEPTHS, WIDTHS, HEAD_W) of EN.*, then TRAIN.IM_SIZE, TEST.IM_SIZE.
EFFNET = {
    "b0": (32, [1, 2, 2, 3, 3, 4, 1], [16, 24, 40, 80, 112, 192, 320], 1280, 224, 256),
    "b1": (32, [2, 3, 3, 4, 4, 5, 2], [16, 24, 40, 80, 112, 192, 320], 1280, 240, 274),
    "b2": (32, [2, 3, 3, 4, 4, 5, 2], [16, 24, 48, 88, 120, 208, 352], 1408, 260, 298),
    "b3": (40, [2, 3, 3, 5, 5, 6, 2], [24, 32, 48, 96, 136, 232, 384], 1536, 300, 342),
    "b4": (48, [2, 4, 4, 6, 6, 8, 2], [24, 32, 56, 112, 160, 272, 448], 1792, 380, 434),
    "b5": (48, [3, 5, 5, 7, 7, 9, 3], [24, 40, 64, 128, 176, 304, 512], 2048, 456, 522),
}
# The same in every EfficientNet YAML.
EN_STRIDES = [1, 2, 2, 2, 1, 2, 1]
EN_EXP_RATIOS = [1, 6, 6, 6, 6, 6, 6]
EN_KERNELS = [3, 3, 5, 3, 5, 5, 3]

# RegNet and ResNe(X)t YAMLs: TRAIN.IM_SIZE, TEST.IM_SIZE.
IM_SIZES = (224, 256)
NUM_CLASSES = 1000

# The 36 model names, in the order of zoo.json and openmmlab_targets.json (targets.json puts
# the EfficientNets first).
NAMES = ([f"regnetx_{s}" for s in REGNET_SIZES] + [f"regnety_{s}" for s in REGNET_SIZES]
         + [f"resnet{d}" for d in RESNET_DEPTHS] + [f"resnext{d}_32x4d" for d in RESNET_DEPTHS]
         + list(EFFNET))


def family(name: str) -> str:
    """regnetx, regnety, resnet, resnext or effnet."""
    for prefix in ("regnetx", "regnety", "resnext", "resnet"):
        if name.startswith(prefix):
            return prefix
    return "effnet"


def regnet_numbers(name: str) -> tuple:
    """(DEPTH, W0, WA, WM, GROUP_W) of regnetx_<size> / regnety_<size>."""
    fam, size = name.split("_")
    return (REGNETX if fam == "regnetx" else REGNETY)[size]


def resnet_depth(name: str) -> int:
    return int(re.match(r"resne(?:x)?t(\d+)", name).group(1))


# ---------------------------------------------------------------------------------------------
# The zoo as pycls's cfg sees it.
# ---------------------------------------------------------------------------------------------

def yaml_values(name: str) -> dict:
    """The model-defining lines of the model's YAML, {"SECTION.KEY": value}, in the YAML's order."""
    fam = family(name)
    model_type = {"regnetx": "regnet", "regnety": "regnet", "effnet": "effnet"}.get(fam, "anynet")
    values = {"MODEL.TYPE": model_type, "MODEL.NUM_CLASSES": NUM_CLASSES}
    train_size, test_size = IM_SIZES
    if model_type == "regnet":
        if fam == "regnety":
            values["REGNET.SE_ON"] = True
        values.update(zip(REGNET_KEYS, regnet_numbers(name)))
    elif model_type == "anynet":
        bot_muls, group_ws = RESNET_BLOCKS[fam]
        values.update({"ANYNET.STEM_TYPE": "res_stem_in", "ANYNET.STEM_W": 64,
                       "ANYNET.BLOCK_TYPE": "res_bottleneck_block",
                       "ANYNET.STRIDES": [1, 2, 2, 2],
                       "ANYNET.DEPTHS": list(RESNET_DEPTHS[resnet_depth(name)]),
                       "ANYNET.WIDTHS": [256, 512, 1024, 2048],
                       "ANYNET.BOT_MULS": list(bot_muls), "ANYNET.GROUP_WS": list(group_ws)})
    else:
        stem_w, depths, widths, head_w, train_size, test_size = EFFNET[name]
        values.update({"EN.STEM_W": stem_w, "EN.STRIDES": list(EN_STRIDES),
                       "EN.DEPTHS": list(depths), "EN.WIDTHS": list(widths),
                       "EN.EXP_RATIOS": list(EN_EXP_RATIOS), "EN.KERNELS": list(EN_KERNELS),
                       "EN.HEAD_W": head_w})
    values.update({"TRAIN.IM_SIZE": train_size, "TEST.IM_SIZE": test_size})
    return values


def plain(value):
    """cfg value -> JSON value (yacs keeps lists as lists, tuples stay tuples)."""
    if isinstance(value, (list, tuple)):
        return [plain(x) for x in value]
    return value


def cfg_get(cfg, key: str):
    """cfg["SECTION"]["KEY"] for "SECTION.KEY"."""
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def merge_values(cfg, values: dict) -> None:
    """Merge {"SECTION.KEY": value} into pycls's yacs cfg the way a YAML file would be (through
    yacs's parsing and type checks, merge_from_list), then check every value arrived exactly."""
    flat = []
    for key, value in values.items():
        flat += [key, value if isinstance(value, str) else str(value)]
    cfg.merge_from_list(flat)
    for key, value in values.items():
        got = plain(cfg_get(cfg, key))
        assert got == value and type(got) is type(value), (key, got, value)


# ---------------------------------------------------------------------------------------------
# Random weights and input (the recipe is written out in pycls_zoo.py's docstring, which
# zoo.json quotes as its weight_recipe).
# ---------------------------------------------------------------------------------------------

def recipe_state(shapes: dict) -> dict:
    """{key: shape}, in state_dict order -> {key: numpy array} (float32; BN counters int64)."""
    import numpy as np

    rng = np.random.default_rng(0)
    state = {}
    for key, shape in shapes.items():
        leaf = key.rpartition(".")[2]
        if leaf == "num_batches_tracked":
            state[key] = np.zeros(shape, dtype=np.int64)
            continue
        if leaf == "running_mean":
            arr = 0.2 * rng.standard_normal(shape)
        elif leaf == "running_var":
            arr = rng.uniform(0.5, 1.5, shape)
        elif leaf == "weight" and len(shape) == 1:  # BatchNorm
            arr = 1.0 + 0.1 * rng.standard_normal(shape)
        elif leaf == "bias":
            arr = 0.05 * rng.standard_normal(shape)
        elif leaf == "weight":  # conv / fc
            fan_in = math.prod(shape[1:])
            arr = rng.standard_normal(shape) * math.sqrt(1.0 / fan_in)
        else:
            raise KeyError(f"{key}: no rule in the weight recipe")
        state[key] = arr.astype(np.float32)
    return state


def recipe_input():
    """The (2, 3, 64, 64) float32 input that goes with the recipe's weights."""
    import numpy as np

    return np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Key manifests: {"source": ..., "keys": [[key, shape, dtype], ...]}, one key a line.
# ---------------------------------------------------------------------------------------------

def manifest_rows(state_dict) -> list:
    """[key, shape, dtype] per tensor, in order (dtype as torch names it, without "torch.")."""
    return [[key, list(t.shape), str(t.dtype).replace("torch.", "")]
            for key, t in state_dict.items()]


def write_manifest(path, source: str, rows: list) -> int:
    """Write the manifest (through a temporary file beside it); return the number of keys."""
    text = ("{\n" + f'  "source": {json.dumps(source)},\n' + '  "keys": [\n'
            + ",\n".join("    " + json.dumps(row) for row in rows) + "\n  ]\n}\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return len(rows)
