#!/usr/bin/env python3
"""Ground truth for pycls's design spaces (issue 19), made by the REAL pycls 0.1.1, timm 1.0.31
and torchvision 0.29.1: which of the models pycls can build (not only its zoo) each library's own
public classes can express, proven numerically.

For every case of ``cases.py`` beside this script (AnyNet over every stem x block type, RegNet
with custom numbers, pycls's ``models/resnet.py``, EffNet; about 45) it

1. builds the model with pycls 0.1.1's own code (reset cfg, merge the values as a YAML would,
   ``pycls.core.builders.build_model``) and records in ``tests/data/design_space/cases.json`` the
   case's values, the exact ``cfg.dump()`` text, the ``model_state`` manifest, the parameter
   count and pycls's own complexity (flops/params/acts at TRAIN.IM_SIZE);
2. gives it weights (``cases.PROCEDURE``: zoo.py's seeded recipe, one SGD step, then BatchNorm
   statistics measured over 4 seeded batches as precise-BN does);
3. for timm and torchvision decides whether the library's public classes can express exactly
   pycls's structure, builds each candidate by ``eval`` of the very call text it records, maps
   pycls's keys onto it with the mappings written below (nowhere else), loads strictly and
   compares logits and per-stage features on a seeded (2, 3, 64, 64) input (32x32 for CIFAR);
   writes ``manifests/<library>/<case>.json`` for the chosen call and the results (or the
   reason it cannot, with the nearest attempts measured) into ``targets.json`` (mmdet and
   mmpretrain entries come from ``design_space_mm.py`` and are kept);
4. for the cases marked ``checkpoint``: saves the checkpoint with pycls's own
   ``pycls.core.checkpoint.save_checkpoint`` (cfg.OUT_DIR = /tmp/ckptconv-design-space/<case>,
   epoch 9 -> ``checkpoints/model_epoch_0010.pyth``) and copies it to
   ``checkpoints/<case>.pyth``, with ``<case>.features.npz`` beside it (input, pycls's logits
   and stage outputs, timm's and torchvision's logits and stages where expressible);
5. writes ``facts.json``: what pycls 0.1.1's builders read and compute (each fact with the file
   and function it was read from, checked on the built models where it can be), the checkpoint
   layout (from a real ``save_checkpoint``), OUT_DIR and sweep layout, and the timm/torchvision
   rules that decide expressibility.

All under ``tests/data/design_space/`` of the repository (or ``--out``). Deterministic: the same
bytes on a rerun on the same machine (fixed seeds, 2 threads, zip timestamps fixed).

Run in the gt environment (requirements/gt.txt; README.md beside this file says how to make it),
from the repository root, before design_space_mm.py (which reads the checkpoints written here):
    .venv/gt/bin/python tools/groundtruth/design_space.py [--out DIR] [--only CASE ...]
--out is a repository root to write under; with --only it merges into the files already there.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import cases  # noqa: E402  (this folder is sys.path[0] when run as a script)
import numpy as np  # noqa: E402
import pycls.core.builders as pycls_builders  # noqa: E402
import pycls.core.checkpoint as pycls_checkpoint  # noqa: E402
import pycls.core.config as pycls_config  # noqa: E402
import pycls.core.net as pycls_net  # noqa: E402
import timm  # noqa: E402
import timm.models.efficientnet  # noqa: E402,F401
import timm.models.regnet  # noqa: E402,F401
import timm.models.resnet  # noqa: E402,F401
import torch  # noqa: E402
import torchvision  # noqa: E402
import torchvision.models.efficientnet  # noqa: E402,F401
import torchvision.models.regnet  # noqa: E402,F401
import torchvision.models.resnet  # noqa: E402,F401
import zoo  # noqa: E402
from pycls.core.config import cfg as pycls_cfg  # noqa: E402

torch.set_num_threads(2)

VERSIONS = {"pycls": zoo.PYCLS_VERSION, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "timm": timm.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}
LIBS = ["timm", "torchvision"]
REL_TOL = 1e-5  # above this (max |diff| / max |pycls|) the structure is not the same
OUT_SUB = Path("tests/data/design_space")


# ---------------------------------------------------------------------------------------------
# What pycls built: the per-stage numbers, normalized over the four model types.
# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# Key mappings pycls -> library (written here; each returns {pycls key: library key}).
# ---------------------------------------------------------------------------------------------

_BLOCK_RESNET = {"proj": "downsample.0", "bn": "downsample.1", "f.a": "conv1", "f.a_bn": "bn1",
                 "f.b": "conv2", "f.b_bn": "bn2", "f.c": "conv3", "f.c_bn": "bn3"}
_BLOCK_TIMM_REGNET = {"proj": "downsample.conv", "bn": "downsample.bn", "f.a": "conv1.conv",
                      "f.a_bn": "conv1.bn", "f.b": "conv2.conv", "f.b_bn": "conv2.bn",
                      "f.se.f_ex.0": "se.fc1", "f.se.f_ex.2": "se.fc2", "f.c": "conv3.conv",
                      "f.c_bn": "conv3.bn"}
_BLOCK_TV_REGNET = {"proj": "proj.0", "bn": "proj.1", "f.a": "f.a.0", "f.a_bn": "f.a.1",
                    "f.b": "f.b.0", "f.b_bn": "f.b.1", "f.se.f_ex.0": "f.se.fc1",
                    "f.se.f_ex.2": "f.se.fc2", "f.c": "f.c.0", "f.c_bn": "f.c.1"}


def map_resnet(keys):
    """timm ResNet and torchvision ResNet (the same names)."""
    fixed = {"stem.conv": "conv1", "stem.bn": "bn1", "head.fc": "fc"}
    out = {}
    for k in keys:
        i, j, mod, leaf = cases.split_key(k)
        out[k] = (fixed[mod] if i is None else f"layer{i}.{j - 1}.{_BLOCK_RESNET[mod]}") + "." + leaf
    return out


def map_timm_regnet(keys):
    fixed = {"stem.conv": "stem.conv", "stem.bn": "stem.bn", "head.fc": "head.fc"}
    out = {}
    for k in keys:
        i, j, mod, leaf = cases.split_key(k)
        out[k] = (fixed[mod] if i is None else f"s{i}.b{j}.{_BLOCK_TIMM_REGNET[mod]}") + "." + leaf
    return out


def map_tv_regnet(keys):
    fixed = {"stem.conv": "stem.0", "stem.bn": "stem.1", "head.fc": "fc"}
    out = {}
    for k in keys:
        i, j, mod, leaf = cases.split_key(k)
        out[k] = (fixed[mod] if i is None else
                  f"trunk_output.block{i}.block{i}-{j - 1}.{_BLOCK_TV_REGNET[mod]}") + "." + leaf
    return out


def _expanding_blocks(keys) -> set:
    return {(i, j) for i, j, mod, _ in map(cases.split_key, keys) if mod == "exp"}


def map_timm_effnet(keys):
    exp = _expanding_blocks(keys)
    fixed = {"stem.conv": "conv_stem", "stem.bn": "bn1", "head.conv": "conv_head",
             "head.conv_bn": "bn2", "head.fc": "classifier"}
    ir = {"exp": "conv_pw", "exp_bn": "bn1", "dwise": "conv_dw", "dwise_bn": "bn2",
          "se.f_ex.0": "se.conv_reduce", "se.f_ex.2": "se.conv_expand", "lin_proj": "conv_pwl",
          "lin_proj_bn": "bn3"}
    ds = {"dwise": "conv_dw", "dwise_bn": "bn1", "se.f_ex.0": "se.conv_reduce",
          "se.f_ex.2": "se.conv_expand", "lin_proj": "conv_pw", "lin_proj_bn": "bn2"}
    out = {}
    for k in keys:
        i, j, mod, leaf = cases.split_key(k)
        if i is None:
            out[k] = fixed[mod] + "." + leaf
        else:
            out[k] = f"blocks.{i - 1}.{j - 1}." + (ir if (i, j) in exp else ds)[mod] + "." + leaf
    return out


def map_tv_effnet(keys):
    exp = _expanding_blocks(keys)
    n = max(i for i, _, _, _ in map(cases.split_key, keys) if i is not None)
    fixed = {"stem.conv": "features.0.0", "stem.bn": "features.0.1",
             "head.conv": f"features.{n + 1}.0", "head.conv_bn": f"features.{n + 1}.1",
             "head.fc": "classifier.1"}
    with_exp = {"exp": "0.0", "exp_bn": "0.1", "dwise": "1.0", "dwise_bn": "1.1",
                "se.f_ex.0": "2.fc1", "se.f_ex.2": "2.fc2", "lin_proj": "3.0", "lin_proj_bn": "3.1"}
    no_exp = {"dwise": "0.0", "dwise_bn": "0.1", "se.f_ex.0": "1.fc1", "se.f_ex.2": "1.fc2",
              "lin_proj": "2.0", "lin_proj_bn": "2.1"}
    out = {}
    for k in keys:
        i, j, mod, leaf = cases.split_key(k)
        if i is None:
            out[k] = fixed[mod] + "." + leaf
        else:
            table = with_exp if (i, j) in exp else no_exp
            out[k] = f"features.{i}.{j - 1}.block.{table[mod]}.{leaf}"
    return out


# ---------------------------------------------------------------------------------------------
# Candidates: the exact constructor call (evaluated as written) for each library.
# ---------------------------------------------------------------------------------------------

NAMESPACE = {"timm": timm, "torchvision": torchvision, "torch": torch, "functools": functools}


class Cand:
    def __init__(self, lib, cls, call, mapping, pairs, expect="match", why=""):
        self.lib, self.cls, self.call, self.mapping, self.pairs = lib, cls, call, mapping, pairs
        self.expect, self.why = expect, why

    def build(self):
        return eval(self.call, dict(NAMESPACE))  # noqa: S307 (our own call text)


def _norm_arg(sp, torch_name="torch.nn.BatchNorm2d") -> str:
    return f"functools.partial({torch_name}, eps={sp['eps']!r})"


def _pairs(kind, lib, n, effnet=False):
    if kind == "regnet":
        st = {"timm": "stem", "torchvision": "stem"}[lib]
        stage = {"timm": "s{}", "torchvision": "trunk_output.block{}"}[lib]
        return [("stem", st)] + [(f"s{i}", stage.format(i)) for i in range(1, n + 1)]
    if kind == "resnet":
        return [("stem", "maxpool")] + [(f"s{i}", f"layer{i}") for i in range(1, n + 1)]
    if lib == "timm":
        return ([("stem", "bn1")] + [(f"s{i}", f"blocks.{i - 1}") for i in range(1, n + 1)]
                + [("head.conv_swish", "bn2")])
    return ([("stem", "features.0")] + [(f"s{i}", f"features.{i}") for i in range(1, n + 1)]
            + [("head.conv_swish", f"features.{n + 1}")])


TIMM_REGNET_NAME = {"200mf": "002", "400mf": "004", "600mf": "006", "800mf": "008",
                    "1.6gf": "016", "3.2gf": "032", "4.0gf": "040", "6.4gf": "064",
                    "8.0gf": "080", "12gf": "120", "16gf": "160", "32gf": "320"}
TV_REGNET_NAME = {"200mf": "200mf", "400mf": "400mf", "600mf": "600mf", "800mf": "800mf",
                  "1.6gf": "1_6gf", "3.2gf": "3_2gf", "4.0gf": "4gf", "6.4gf": "6_4gf",
                  "8.0gf": "8gf", "12gf": "12gf", "16gf": "16gf", "32gf": "32gf"}
# (block, layers, groups, per-group width) -> the name timm and torchvision both register
RESNET_NAMES = {("basic", (2, 2, 2, 2), 1, 64): "resnet18", ("basic", (3, 4, 6, 3), 1, 64): "resnet34",
                ("bneck", (3, 4, 6, 3), 1, 64): "resnet50", ("bneck", (3, 4, 23, 3), 1, 64): "resnet101",
                ("bneck", (3, 8, 36, 3), 1, 64): "resnet152",
                ("bneck", (3, 4, 6, 3), 32, 4): "resnext50_32x4d",
                ("bneck", (3, 4, 6, 3), 1, 128): "wide_resnet50_2"}


def zoo_regnet_size(sp) -> tuple | None:
    """('x'|'y', size) when the case carries a zoo model's RegNet numbers."""
    r = sp.get("regnet")
    if not r or r["bot_mul"] != 1.0 or r["stride"] != 2 or sp["stem_w"] != 32 \
            or sp["stem_type"] != "simple_stem_in":
        return None
    nums = (r["depth"], r["w0"], r["wa"], r["wm"], r["group_w"])
    table = zoo.REGNETY if sp["se_r"] else zoo.REGNETX
    if sp["se_r"] not in (None, 0.25):
        return None
    for size, v in table.items():
        if v == nums:
            return ("y" if sp["se_r"] else "x"), size
    return None


def zoo_effnet_name(sp) -> str | None:
    for b, (stem_w, ds, ws, head_w, _, _) in zoo.EFFNET.items():
        if (sp["stem_w"], sp["ds"], sp["ws"], sp["head_w"]) == (stem_w, ds, ws, head_w) \
                and sp["ss"] == zoo.EN_STRIDES and sp["ers"] == zoo.EN_EXP_RATIOS \
                and sp["ks"] == zoo.EN_KERNELS and sp["se_r"] == 0.25:
            return b
    return None


def resnet_shape(sp) -> dict:
    """What a ResNet-family class needs to know: block kind, planes, groups, per-group width."""
    basic = sp["block_type"] == "res_basic_block"
    exp = 1 if basic else 4
    r = {"block": "basic" if basic else "bneck", "layers": tuple(sp["ds"])}
    if basic:
        r.update(groups=1, pw=64, planes=list(sp["ws"]), ok_planes=True)
        return r
    r["planes"] = [w // exp for w in sp["ws"]]
    r["ok_planes"] = all(w % exp == 0 for w in sp["ws"])
    gs = set(sp["groups"])
    r["groups"] = sp["groups"][0] if len(gs) == 1 else None
    r["pw"] = [wb // g for wb, g in zip(sp["w_bs"], sp["groups"])]
    return r


def _blocks_rule(sp) -> str | None:
    """Shared refusals for the ResNet-shaped classes of timm and torchvision."""
    if sp.get("se_r"):
        return ("SE after the 3x3 on w_b (pycls) has no place: timm ResNet's attn_layer='se' "
                "and torchvision have SE only after conv3 (timm) or not at all (torchvision)")
    return None


def timm_cands(case, sp, n_stages) -> tuple[list, str | None]:
    """(candidates, reason no exact one exists or None)."""
    if sp["model_type"] == "effnet":
        return timm_effnet_cands(sp, n_stages)
    refusal = timm_refusal(sp)
    if refusal:
        return [], refusal
    if sp["stem_type"] == "simple_stem_in":  # bottleneck: RegNet-shaped
        return timm_regnet_cands(sp, n_stages)
    return timm_resnet_cands(sp, n_stages)  # res_stem_in


def timm_refusal(sp) -> str | None:
    """Why no timm class can hold this AnyNet / RegNet / resnet.py model at all, or None."""
    mt = sp["model_type"]
    stem, block = sp["stem_type"], sp["block_type"]
    if block == "vanilla_block":
        return ("pycls's vanilla_block has no residual connection; every timm ResNet/RegNet "
                "block adds a shortcut (nearest: none; timm's VGG downsamples by max-pool)")
    if stem == "res_stem_cifar":
        return ("res_stem_cifar (3x3 stride-1 conv, no max-pool) has no timm counterpart: "
                "timm ResNet's stem is a 7x7/2 conv + max-pool (or a 3-conv deep stem, or "
                "a strided conv instead of the pool), timm RegNet's a 3x3/2 conv")
    if stem == "simple_stem_in" and block == "res_basic_block":
        return ("simple_stem_in with res_basic_block: timm's basic-block network (ResNet) "
                "has a 7x7/2 + max-pool or deep stem; timm RegNet has bottleneck blocks only")
    if stem == "simple_stem_in":
        if mt != "regnet":
            return ("AnyNet per-stage numbers: timm RegNet(RegNetCfg) derives stage depths "
                    "and widths from (depth, w0, wa, wm) only and always builds 4 stride-2 "
                    "stages; it has no per-stage depth/width/stride/group lists (nearest: "
                    "torchvision RegNet(BlockParams(...)))")
        return None
    if mt == "regnet":
        return ("REGNET.STEM_TYPE res_stem_in: timm RegNet's stem is always a 3x3/2 "
                "ConvNormAct; timm ResNet has the 7x7 stem but not RegNet's blocks/widths")
    return _blocks_rule(sp)


def timm_regnet_cands(sp, n_stages) -> tuple[list, str | None]:
    """A RegNet (simple_stem_in, bottleneck): timm's named model when the numbers are a zoo
    model's, and RegNet(RegNetCfg(...)) with the numbers."""
    r = sp["regnet"]
    kw = [f"depth={r['depth']}", f"w0={r['w0']}", f"wa={r['wa']!r}", f"wm={r['wm']!r}",
          f"group_size={r['group_w']}"]
    if r["bot_mul"] != 1.0:
        kw.append(f"bottle_ratio={r['bot_mul']!r}")
    if sp["se_r"]:
        kw.append(f"se_ratio={sp['se_r']!r}")
    if sp["stem_w"] != 32:
        kw.append(f"stem_width={sp['stem_w']}")
    if sp["eps"] != 1e-5:
        kw.append(f"norm_layer={_norm_arg(sp)}")
    call = (f"timm.models.regnet.RegNet(timm.models.regnet.RegNetCfg({', '.join(kw)}), "
            f"num_classes={sp['nc']})")
    pairs = _pairs("regnet", "timm", n_stages)
    cls = "timm.models.regnet.RegNet"
    out = []
    zs = zoo_regnet_size(sp)
    if zs:
        name = f"regnet{zs[0]}_{TIMM_REGNET_NAME[zs[1]]}"
        out.append(Cand("timm", "timm.models.regnet.RegNet",
                        f"timm.create_model({name!r}, num_classes={sp['nc']})",
                        map_timm_regnet, pairs))
    if r["stride"] != 2:
        out.append(Cand("timm", cls, call, map_timm_regnet, pairs, expect="nearest",
                        why="the same numbers at timm's fixed stride 2"))
        return out, ("REGNET.STRIDE {}: timm RegNet strides every stage by 2 "
                     "(RegNet._get_stage_args default_stride=2; output_stride only turns "
                     "later strides into dilations)".format(r["stride"]))
    if n_stages != 4:
        out.append(Cand("timm", cls, call, map_timm_regnet, pairs, expect="nearest",
                        why="the same numbers"))
        return out, (f"{n_stages} stages: timm RegNet.__init__ asserts exactly 4 stages "
                     "(assert len(per_stage_args) == 4)")
    out.append(Cand("timm", cls, call, map_timm_regnet, pairs))
    return out, None


def timm_resnet_cands(sp, n_stages) -> tuple[list, str | None]:
    """A ResNet-shaped model (res_stem_in): timm's named ResNet where one has these numbers,
    and ResNet(block, layers, ...) with them."""
    rs = resnet_shape(sp)
    pairs = _pairs("resnet", "timm", n_stages)
    kw, reasons, bw = timm_resnet_args(sp, rs, n_stages)
    out = []
    key = (rs["block"], rs["layers"], rs.get("groups"), bw if rs["block"] == "bneck" else 64)
    named = RESNET_NAMES.get(key) if sp["stem_w"] == 64 and sp["eps"] == 1e-5 and \
        rs["planes"] == [64 * 2 ** i for i in range(n_stages)] else None
    if sp["stem_w"] != 64:
        reasons.append(f"stem width {sp['stem_w']}: timm ResNet's 7x7 stem is always 64 wide "
                       "(ResNet.__init__: inplanes = stem_width * 2 if deep_stem else 64)")
        kw.insert(-1, f"stem_width={sp['stem_w']}")
    call = f"timm.models.resnet.ResNet({', '.join(kw)})"
    if reasons:
        if not sp["stride_1x1"] or named:
            out.append(Cand("timm", "timm.models.resnet.ResNet", call, map_resnet, pairs,
                            expect="nearest", why="the nearest ResNet arguments"))
        if named:
            out.append(Cand("timm", "timm.models.resnet.ResNet",
                            f"timm.create_model({named!r}, num_classes={sp['nc']})", map_resnet,
                            pairs, expect="nearest", why=f"timm's {named}"))
        return out, "; ".join(reasons)
    if named:
        out.append(Cand("timm", "timm.models.resnet.ResNet",
                        f"timm.create_model({named!r}, num_classes={sp['nc']})", map_resnet,
                        pairs))
    out.append(Cand("timm", "timm.models.resnet.ResNet", call, map_resnet, pairs))
    return out, None


def timm_resnet_args(sp, rs, n_stages) -> tuple[list, list, int | None]:
    """timm ResNet's arguments for these numbers: (keyword texts, reasons they cannot be exact,
    base_width or None)."""
    block_cls = "timm.models.resnet.BasicBlock" if rs["block"] == "basic" else \
        "timm.models.resnet.Bottleneck"
    kw = [f"block={block_cls}", f"layers={list(rs['layers'])}"]
    reasons = []
    if sp["stride_1x1"]:
        reasons.append("RESNET.STRIDE_1X1 True puts the stride on the first 1x1 (a); timm's "
                       "Bottleneck always strides the 3x3 (conv2)")
    if sp["ss"] != [1] + [2] * (n_stages - 1):
        reasons.append(f"strides {sp['ss']}: timm ResNet (make_blocks) strides stage 1 by 1 and "
                       "every later stage by 2")
    if not rs["ok_planes"]:
        reasons.append("stage widths not divisible by the Bottleneck expansion 4")
    bw = None
    if rs["block"] == "bneck" and rs["ok_planes"]:
        if rs["groups"] is None:
            reasons.append(f"groups differ between stages {sp['groups']}; timm ResNet has one "
                           "cardinality")
        else:
            bws = {64 * pw / p for pw, p in zip(rs["pw"], rs["planes"])}
            if len(bws) != 1 or not float(next(iter(bws))).is_integer():
                reasons.append(f"per-group widths {rs['pw']} over planes {rs['planes']} need "
                               "one integer base_width = 64 * w_b / (groups * planes)")
            else:
                bw = int(next(iter(bws)))
                if rs["groups"] != 1:
                    kw.append(f"cardinality={rs['groups']}")
                if bw != 64:
                    kw.append(f"base_width={bw}")
    if rs["ok_planes"] and rs["planes"] != [64 * 2 ** i for i in range(n_stages)]:
        kw.append(f"channels={tuple(rs['planes'])}")
    if sp["eps"] != 1e-5:
        kw.append(f"norm_layer={_norm_arg(sp)}")
    kw.append(f"num_classes={sp['nc']}")
    return kw, reasons, bw


def _se_widths(sp):
    """pycls's SE width per block: int(w_in * se_r) (effnet.py MBConv)."""
    out, prev = [], sp["stem_w"]
    for d, w, er in zip(sp["ds"], sp["ws"], sp["ers"]):
        for j in range(d):
            w_in = prev if j == 0 else w
            out.append((w_in, int(w_in * er), int(w_in * sp["se_r"]), er))
        prev = w
    return out


def timm_effnet_cands(sp, n_stages):
    pairs = _pairs("effnet", "timm", n_stages)
    out = []
    zb = zoo_effnet_name(sp)
    if zb and sp["eps"] == 1e-5:
        out.append(Cand("timm", "timm.models.efficientnet.EfficientNet",
                        f"timm.create_model('efficientnet_{zb}', num_classes={sp['nc']})",
                        map_timm_effnet, pairs))
    reasons = []
    blocks = _se_widths(sp)
    bad_mid = [(w_in, er, w_exp) for w_in, w_exp, _, er in blocks
               if er != 1 and _timm_make_divisible(w_in * er) != w_exp]
    if bad_mid:
        w_in, er, w_exp = bad_mid[0]
        reasons.append(f"expanded width int({w_in} * {er}) = {w_exp}: timm's InvertedResidual "
                       f"rounds mid_chs = make_divisible({w_in} * {er}) = "
                       f"{_timm_make_divisible(w_in * er)} (multiples of 8), with no setting")
    if any(k % 2 == 0 for k in sp["ks"]):
        reasons.append("an even kernel: timm's symmetric padding differs from (k - 1) // 2")
    rows = []
    for d, w, s, er, k in zip(sp["ds"], sp["ws"], sp["ss"], sp["ers"], sp["ks"]):
        t = "ds" if er == 1 else "ir"
        rows.append(f"['{t}_r{d}_k{k}_s{s}_e{er}_c{w}_se{sp['se_r']!r}']")
    arch = "[" + ", ".join(rows) + "]"
    base = (f"timm.models.efficientnet.EfficientNet(block_args=timm.models.efficientnet."
            f"decode_arch_def({arch}), num_classes={sp['nc']}, stem_size={sp['stem_w']}, "
            f"fix_stem=True, num_features={sp['head_w']}, round_chs_fn=int, "
            f"act_layer=torch.nn.SiLU, norm_layer={_norm_arg(sp)}")
    calls = [base + ")"]
    timm_se = [round(w_exp * (sp["se_r"] / er)) for _, w_exp, _, er in blocks]
    pycls_se = [b[2] for b in blocks]
    if timm_se != pycls_se:
        calls.append(base + ", se_layer=functools.partial(timm.models.efficientnet."
                     "SqueezeExcite, rd_round_fn=int))")
    for i, call in enumerate(calls):
        out.append(Cand("timm", "timm.models.efficientnet.EfficientNet", call, map_timm_effnet,
                        pairs, expect="nearest" if reasons or (i == 0 and len(calls) > 1)
                        else "match",
                        why=("timm's default SE rounding: rd_channels = round(mid_chs * "
                             "se_ratio / exp_ratio)") if i == 0 and len(calls) > 1 else
                        "the same stages"))
    return out, ("; ".join(reasons) or None)


def _timm_make_divisible(v, divisor=8, round_limit=0.9):
    return timm.layers.make_divisible(v, divisor, None, round_limit)


def tv_cands(case, sp, n_stages) -> tuple[list, str | None]:
    """(candidates, reason no exact one exists or None)."""
    if sp["model_type"] == "effnet":
        return tv_effnet_cands(sp, n_stages)
    refusal = tv_refusal(sp)
    if refusal:
        return [], refusal
    if sp["stem_type"] == "simple_stem_in":
        return tv_regnet_cands(sp, n_stages)
    return tv_resnet_cands(sp, n_stages)  # res_stem_in


def tv_refusal(sp) -> str | None:
    """Why no torchvision class can hold this AnyNet / RegNet / resnet.py model at all, or None."""
    stem, block = sp["stem_type"], sp["block_type"]
    if block == "vanilla_block":
        return ("pycls's vanilla_block has no residual connection; torchvision's ResNet and "
                "RegNet blocks always add a shortcut (its VGG downsamples by max-pool)")
    if stem == "res_stem_cifar":
        return ("res_stem_cifar (3x3 stride-1 conv, no max-pool): torchvision ResNet's stem "
                "is a 64-wide 7x7/2 + max-pool, RegNet's default SimpleStemIN a 3x3/2 conv "
                "(torchvision has no other stem class to pass as stem_type)")
    if stem == "simple_stem_in" and block == "res_basic_block":
        return ("simple_stem_in with res_basic_block: torchvision's RegNet takes only its "
                "ResBottleneckBlock, its ResNet BasicBlock only the 7x7/2 + max-pool stem")
    if stem == "simple_stem_in":
        return None
    if sp["model_type"] == "regnet":
        return ("REGNET.STEM_TYPE res_stem_in: torchvision RegNet's stem_type takes a "
                "module class and torchvision's only one is SimpleStemIN (3x3/2); its "
                "ResNet has the 7x7 stem but fixed widths 64..2048 and its own blocks")
    return _blocks_rule(sp)


def tv_regnet_cands(sp, n_stages) -> tuple[list, str | None]:
    """simple_stem_in with bottlenecks: torchvision's named RegNet for a zoo model's numbers,
    RegNet(BlockParams.from_init_params(...)) for a RegNet, and RegNet(BlockParams(...)) with
    pycls's per-stage lists (AnyNet too)."""
    mt = sp["model_type"]
    pairs = _pairs("regnet", "torchvision", n_stages)
    norm = f", norm_layer={_norm_arg(sp)}" if sp["eps"] != 1e-5 else ""
    stem_arg = f", stem_width={sp['stem_w']}" if sp["stem_w"] != 32 else ""
    se = f", se_ratio={sp['se_r']!r}" if sp["se_r"] else ""
    bp = (f"torchvision.models.regnet.BlockParams(depths={sp['ds']}, widths={sp['ws']}, "
          f"group_widths={sp['gws']}, bottleneck_multipliers={sp['bms']}, "
          f"strides={sp['ss']}{se})")
    explicit = (f"torchvision.models.RegNet({bp}, num_classes={sp['nc']}{stem_arg}{norm})")
    out = []
    zs = zoo_regnet_size(sp)
    if zs:
        name = f"regnet_{zs[0]}_{TV_REGNET_NAME[zs[1]]}"
        if hasattr(torchvision.models, name):
            out.append(Cand("torchvision", "torchvision.models.RegNet",
                            f"torchvision.models.{name}(num_classes={sp['nc']})",
                            map_tv_regnet, pairs))
    if mt == "regnet":
        r = sp["regnet"]
        fip = (f"torchvision.models.regnet.BlockParams.from_init_params(depth={r['depth']}, "
               f"w_0={r['w0']}, w_a={r['wa']!r}, w_m={r['wm']!r}, group_width={r['group_w']}"
               f", bottleneck_multiplier={r['bot_mul']!r}{se})")
        out.append(Cand("torchvision", "torchvision.models.RegNet",
                        f"torchvision.models.RegNet({fip}, num_classes={sp['nc']}"
                        f"{stem_arg}{norm})", map_tv_regnet, pairs,
                        expect="match" if r["stride"] == 2 else "nearest",
                        why="from_init_params strides every stage by 2"
                        if r["stride"] != 2 else ""))
    out.append(Cand("torchvision", "torchvision.models.RegNet", explicit, map_tv_regnet,
                    pairs))
    return out, None


def tv_resnet_cands(sp, n_stages) -> tuple[list, str | None]:
    """A ResNet-shaped model (res_stem_in): torchvision's named ResNet where one has these
    numbers, and ResNet(block, layers, ...) with them."""
    rs = resnet_shape(sp)
    pairs = _pairs("resnet", "torchvision", n_stages)
    reasons = tv_resnet_reasons(sp, rs, n_stages)
    kw, wpg = tv_resnet_args(sp, rs, reasons)
    block_cls = "torchvision.models.resnet.BasicBlock" if rs["block"] == "basic" else \
        "torchvision.models.resnet.Bottleneck"
    call = f"torchvision.models.ResNet({block_cls}, {list(rs['layers'])}, {', '.join(kw)})"
    key = (rs["block"], rs["layers"], rs.get("groups"), wpg)
    named = RESNET_NAMES.get(key) if sp["eps"] == 1e-5 else None
    out = []
    if reasons:
        if n_stages == 4 and (sp["stride_1x1"] or named):
            out.append(Cand("torchvision", "torchvision.models.ResNet", call, map_resnet, pairs,
                            expect="nearest", why="the same block arguments"))
        return out, "; ".join(reasons)
    if named:
        out.append(Cand("torchvision", "torchvision.models.ResNet",
                        f"torchvision.models.{named}(num_classes={sp['nc']})", map_resnet, pairs))
    out.append(Cand("torchvision", "torchvision.models.ResNet", call, map_resnet, pairs))
    return out, None


def tv_resnet_reasons(sp, rs, n_stages) -> list:
    """What torchvision's ResNet fixes that these numbers do not have (stride, stages, widths,
    stem, strides)."""
    reasons = []
    if sp["stride_1x1"]:
        reasons.append("RESNET.STRIDE_1X1 True puts the stride on the first 1x1 (a); "
                       "torchvision's Bottleneck (ResNet v1.5) strides the 3x3 (conv2)")
    if n_stages != 4:
        reasons.append(f"{n_stages} stages: torchvision ResNet always builds layer1..layer4")
    elif rs["planes"] != [64, 128, 256, 512]:
        reasons.append(f"stage widths {sp['ws']}: torchvision ResNet's are fixed at 64, 128, 256, "
                       "512 times the block expansion")
    if sp["stem_w"] != 64:
        reasons.append(f"stem width {sp['stem_w']}: torchvision ResNet's stem is fixed at 64")
    if sp["ss"] != [1, 2, 2, 2][:n_stages]:
        reasons.append(f"strides {sp['ss']}: torchvision ResNet's are 1, 2, 2, 2 (only "
                       "replace_stride_with_dilation, which dilates instead)")
    return reasons


def tv_resnet_args(sp, rs, reasons: list) -> tuple[list, int]:
    """torchvision ResNet's keyword texts after (block, layers), and width_per_group; appends to
    ``reasons`` what the groups and per-group widths cannot give."""
    kw = []
    wpg = 64
    if rs["block"] == "bneck" and rs["ok_planes"]:
        if rs["groups"] is None:
            reasons.append(f"groups differ between stages {sp['groups']}")
        else:
            wpgs = {64 * pw / p for pw, p in zip(rs["pw"], rs["planes"])}
            if len(wpgs) != 1 or not float(next(iter(wpgs))).is_integer():
                reasons.append(f"per-group widths {rs['pw']} need one integer width_per_group")
            else:
                wpg = int(next(iter(wpgs)))
                if rs["groups"] != 1:
                    kw.append(f"groups={rs['groups']}")
                if wpg != 64:
                    kw.append(f"width_per_group={wpg}")
    if sp["eps"] != 1e-5:
        kw.append(f"norm_layer={_norm_arg(sp)}")
    kw.append(f"num_classes={sp['nc']}")
    return kw, wpg


def _tv_divisible(v):
    return torchvision.models.efficientnet._MBConvConfig.adjust_channels(v, 1.0)


def tv_effnet_cands(sp, n_stages):
    pairs = _pairs("effnet", "torchvision", n_stages)
    reasons = []
    widths = [sp["stem_w"]] + sp["ws"]
    bad = [w for w in widths if _tv_divisible(w) != w]
    if bad:
        reasons.append(f"widths {bad}: MBConvConfig rounds every channel count with "
                       f"_make_divisible(c, 8) ({bad[0]} -> {_tv_divisible(bad[0])})")
    blocks = _se_widths(sp)
    bad_mid = [(w_in, er, w_exp) for w_in, w_exp, _, er in blocks
               if _tv_divisible(w_in * er) != w_exp]
    if bad_mid and not bad:
        w_in, er, w_exp = bad_mid[0]
        reasons.append(f"expanded width {w_exp}: torchvision's MBConv uses "
                       f"_make_divisible({w_in} * {er}, 8) = {_tv_divisible(w_in * er)}")
    if sp["se_r"] != 0.25:
        reasons.append(f"EN.SE_R {sp['se_r']}: torchvision's MBConv fixes the SE width at "
                       "max(1, input_channels // 4) (ratio 0.25)")
    rows, prev = [], sp["stem_w"]
    for d, w, s, er, k in zip(sp["ds"], sp["ws"], sp["ss"], sp["ers"], sp["ks"]):
        rows.append(f"torchvision.models.efficientnet.MBConvConfig({er}, {k}, {s}, {prev}, {w}, {d})")
        prev = w
    norm = f", norm_layer={_norm_arg(sp)}" if sp["eps"] != 1e-5 else ""
    call = (f"torchvision.models.EfficientNet([{', '.join(rows)}], dropout={sp['dropout']!r}, "
            f"num_classes={sp['nc']}{norm}, last_channel={sp['head_w']})")
    out = []
    zb = zoo_effnet_name(sp)
    if zb and sp["eps"] == 1e-5 and not reasons:
        out.append(Cand("torchvision", "torchvision.models.EfficientNet",
                        f"torchvision.models.efficientnet_{zb}(num_classes={sp['nc']})",
                        map_tv_effnet, pairs))
    out.append(Cand("torchvision", "torchvision.models.EfficientNet", call, map_tv_effnet, pairs,
                    expect="nearest" if reasons else "match", why="the same stage table"))
    return out, ("; ".join(reasons) or None)


# ---------------------------------------------------------------------------------------------
# Evaluate candidates
# ---------------------------------------------------------------------------------------------

def evaluate(cand: Cand, pmodel, x, pyc_out, pyc_feats) -> dict:
    res = {"class": cand.cls, "call": cand.call, "expect": cand.expect}
    if cand.why:
        res["what"] = cand.why
    try:
        torch.manual_seed(0)
        lm = cand.build().eval()
    except Exception as exc:  # noqa: BLE001
        res["build_error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        return res
    psd, lsd = pmodel.state_dict(), lm.state_dict()
    res["n_keys"] = len(lsd)
    mp = cand.mapping(list(psd))
    probs = cases.check_keys(psd, lsd, mp)
    res["_lsd_rows"] = zoo.manifest_rows(lsd)
    if probs:
        res["key_problems"] = probs
        res["matches"] = False
        return res
    res["state_dict_order_same"] = list(mp.values()) == list(lsd)
    lm.load_state_dict({mp[k]: v for k, v in psd.items()}, strict=True)
    y, feats = cases.run_hooked(lm, x, [t for _, t in cand.pairs])
    num = {"logits": cases.compare(pyc_out, y)}
    for p, t in cand.pairs:
        num[f"{p}->{t}"] = cases.compare(pyc_feats[p], feats[t])
    res["numerics"] = num
    ok = all(v.get("max_rel") is not None and v["max_rel"] <= REL_TOL for v in num.values())
    res["matches"] = ok
    res["bit_identical"] = ok and all(v["max_abs"] == 0.0 for v in num.values())
    if ok:
        res["_arrays"] = {"logits": y.numpy()} | {p: feats[t].numpy() for p, t in cand.pairs}
    del lm
    return res


def decide(lib, cands, reason, pmodel, x, pyc_out, pyc_feats) -> dict:
    attempts = [evaluate(c, pmodel, x, pyc_out, pyc_feats) for c in cands]
    chosen = next((a for a in attempts if a["expect"] == "match" and a.get("matches")), None)
    surprising = [a for a in attempts if a["expect"] == "nearest" and a.get("matches")]
    for a in surprising:
        a["note"] = "UNEXPECTED: the nearest call matched"
    if chosen is None:
        failed = [a for a in attempts if a["expect"] == "match"]
        why = reason
        if not why:
            bits = []
            for a in failed:
                if "build_error" in a:
                    bits.append(f"{a['call'][:60]}...: {a['build_error']}")
                elif a.get("key_problems"):
                    bits.append(a["key_problems"][0])
                elif "numerics" in a:
                    worst = max(a["numerics"].items(), key=lambda kv: kv[1].get("max_rel") or 0)
                    bits.append(f"same keys and shapes, other features ({worst[0]} max_rel "
                                f"{worst[1].get('max_rel'):.3g})")
            why = "; ".join(bits) or "no candidate"
        entry = {"cannot": why}
        if attempts:
            entry["attempts"] = [_public(a) for a in attempts]
        return entry
    entry = {k: chosen[k] for k in ("class", "call", "n_keys", "state_dict_order_same",
                                    "numerics", "bit_identical")}
    entry["_lsd_rows"] = chosen["_lsd_rows"]
    entry["_arrays"] = chosen["_arrays"]
    others = [a for a in attempts if a is not chosen]
    if others:
        entry["other_attempts"] = [_public(a) for a in others]
    return entry


def _public(a):
    return {k: v for k, v in a.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------
# pycls facts (facts.json)
# ---------------------------------------------------------------------------------------------

F_ANY = "pycls/models/anynet.py"
F_REG = "pycls/models/regnet.py"
F_RES = "pycls/models/resnet.py"
F_EFF = "pycls/models/effnet.py"
F_CFG = "pycls/core/config.py"
F_NET = "pycls/core/net.py"
F_CKPT = "pycls/core/checkpoint.py"
F_BLD = "pycls/core/builders.py"
F_TRN = "pycls/core/trainer.py"


def _f(fact, src, **kw):
    return {"fact": fact, "source": src, **kw}


def pycls_facts() -> dict:
    """What pycls 0.1.1's builders read and compute, key by key, each fact with the file and
    function it was read from; then the checkpoint, OUT_DIR and sweep layouts."""
    return {
        **model_facts(),
        "ANYNET": anynet_facts(),
        "REGNET": regnet_facts(),
        "RESNET": resnet_facts(),
        "EN": effnet_facts(),
        "BN": bn_facts(),
        **run_facts(),
    }


def model_facts() -> dict:
    """The MODEL keys and the version note."""
    return {
        "version_note": _f(
            "PyPI pycls 0.1.1 is the pycls commit 4cf2524 (2020-09-08; models/, core/ identical "
            "file for file). pycls's setup.py still says version 0.1.1 at tag 0.2 (2021-05-20) "
            "and at master: a pip install from git reports 0.1.1 too, with other code (EMA, "
            "sweeps, new config keys).", "setup.py at 4cf2524, 0.2, master; PyPI sdist"),
        "MODEL.TYPE": _f(
            "anynet -> AnyNet, effnet -> EffNet, resnet -> ResNet, regnet -> RegNet (a dict "
            "_models; register_model adds more). build_model() calls the class with no "
            "arguments; each reads the global cfg.", f"{F_BLD}: _models, get_model, build_model"),
        "MODEL.DEPTH": _f("read only by resnet.py (ResNet): CIFAR (6n + 2, n blocks per stage) "
                          "or ImageNet 50/101/152; AnyNet/RegNet/EffNet ignore it.",
                          f"{F_RES}: ResNet._construct_cifar, _construct_imagenet"),
        "MODEL.NUM_CLASSES": _f("width of head.fc (nn.Linear(w_in, nc, bias=True)) in every "
                                "model; default 10.", f"{F_CFG}; {F_ANY}: AnyHead; {F_RES}: "
                                "ResHead; {F_EFF}: EffHead".replace("{F_EFF}", F_EFF)),
    }


def anynet_facts() -> dict:
    """cfg.ANYNET: what AnyNet builds of each key (pycls/models/anynet.py)."""
    return {
        "STEM_TYPE": _f("simple_stem_in: SimpleStemIN = conv 3x3 stride 2 pad 1 (no bias), "
                        "BN, ReLU. res_stem_in: ResStemIN = conv 7x7 stride 2 pad 3, BN, "
                        "ReLU, MaxPool 3 stride 2 pad 1. res_stem_cifar: ResStemCifar = conv "
                        "3x3 stride 1 pad 1, BN, ReLU. Keys stem.conv.weight, stem.bn.* in "
                        "all three (same keys; the 7x7 has other shapes). Default "
                        "simple_stem_in.", f"{F_ANY}: get_stem_fun, SimpleStemIN, ResStemIN, "
                        "ResStemCifar"),
        "STEM_W": _f("stem output width; default 32.", f"{F_ANY}: AnyNet._construct"),
        "BLOCK_TYPE": _f(
            "vanilla_block: VanillaBlock = a (3x3, stride s), a_bn, a_relu, b (3x3), b_bn, "
            "b_relu; NO skip connection; keys sI.bJ.a / a_bn / b / b_bn (no 'f.'). "
            "res_basic_block: ResBasicBlock = [proj (1x1, stride s) + bn when w_in != w_out "
            "or s != 1] + f: BasicTransform (a 3x3 stride s, a_bn, a_relu, b 3x3, b_bn), "
            "add, relu. res_bottleneck_block: ResBottleneckBlock = [proj + bn as above] + "
            "f: BottleneckTransform (a 1x1 -> w_b, a_bn, a_relu, b 3x3 stride s groups g, "
            "b_bn, b_relu, [se], c 1x1 -> w_out, c_bn), add, relu. AnyNet strides the 3x3 "
            "(b), never the 1x1. Default res_bottleneck_block.",
            f"{F_ANY}: VanillaBlock, ResBasicBlock, BasicTransform, ResBottleneckBlock, "
            "BottleneckTransform"),
        "DEPTHS, WIDTHS, STRIDES": _f(
            "per stage: blocks, output width, stride of the stage's first block (later "
            "blocks stride 1). Stage i is module sI, block j is bJ (1-based). The number of "
            "stages is len(DEPTHS) (zip with WIDTHS, STRIDES, BOT_MULS, GROUP_WS: the "
            "shortest list wins).", f"{F_ANY}: AnyNet._construct, AnyStage"),
        "BOT_MULS, GROUP_WS": _f(
            "bottleneck only: w_b = int(round(w_out * bm)), groups g = w_b // gw (the real "
            "group width is w_b / g, which is gw only when gw divides w_b; torch refuses "
            "w_b % g != 0). Empty lists (the default) pass None to the block; "
            "vanilla_block and res_basic_block ASSERT bm, gw and se_r are None, so they "
            "need BOT_MULS: [], GROUP_WS: [] and SE_ON False.",
            f"{F_ANY}: BottleneckTransform.__init__, VanillaBlock/ResBasicBlock asserts"),
        "SE_ON, SE_R": _f(
            "bottleneck only: se_r = SE_R if SE_ON else None (default False, 0.25). SE(w_b, "
            "w_se) sits after b_relu (the 3x3) and before c: avg_pool, f_ex = Conv1x1(w_b "
            "-> w_se, bias), ReLU, Conv1x1(w_se -> w_b, bias), Sigmoid; x * f_ex(pool(x)). "
            "w_se = int(round(w_in * se_r)) with w_in the BLOCK INPUT width (not w_b): the "
            "first block of a stage uses the previous stage's width. Keys "
            "f.se.f_ex.0.{weight,bias}, f.se.f_ex.2.{weight,bias}.",
            f"{F_ANY}: SE, BottleneckTransform.__init__"),
        "head": _f("AnyHead: AdaptiveAvgPool2d(1), flatten, fc (bias). Key head.fc.*.",
                   f"{F_ANY}: AnyHead"),
    }


def regnet_facts() -> dict:
    """cfg.REGNET: how RegNet turns its numbers into AnyNet's (pycls/models/regnet.py)."""
    return {
        "numbers": _f(
            "DEPTH, W0, WA, WM -> generate_regnet (numpy float64): ws_cont = arange(d) * wa "
            "+ w0; ks = round(log(ws_cont / w0) / log(wm)); ws = round(w0 * wm**ks / 8) * "
            "8 (asserts wa >= 0, w0 > 0, wm > 1, w0 % 8 == 0); stages = runs of equal "
            "width (get_stages_from_blocks); the number of stages is whatever comes out "
            "(not always 4). adjust_ws_gs_comp: w_bot = int(w * bm); g = min(GROUP_W, "
            "w_bot); w_bot = int(round(w_bot / g) * g); w = int(w_bot / bm). Then "
            "AnyNet with ds, ws, ss = [STRIDE] * n, bms = [BOT_MUL] * n, gws = the "
            "adjusted g.", f"{F_REG}: generate_regnet, get_stages_from_blocks, "
            "adjust_ws_gs_comp, quantize_float, RegNet.get_args"),
        "STEM_TYPE, STEM_W, BLOCK_TYPE": _f(
            "as ANYNET's (defaults simple_stem_in, 32, res_bottleneck_block). BLOCK_TYPE "
            "res_basic_block or vanilla_block cannot be built: RegNet always passes bms and "
            "gws, which those blocks assert are None (AssertionError).",
            f"{F_REG}: RegNet.get_args; {F_ANY}: block asserts"),
        "STRIDE": _f("one stride for every stage (default 2); 1 downsamples only in the "
                     "stem.", f"{F_REG}: RegNet.get_args"),
        "SE_ON, SE_R": _f("RegNetY: SE as ANYNET's (w_se = round(w_in * SE_R)).",
                          f"{F_REG}: RegNet.get_args"),
        "GROUP_W, BOT_MUL": _f("as above; defaults 16 and 1.0.", F_CFG),
    }


def resnet_facts() -> dict:
    """resnet.py's model: its dataset rule and cfg.RESNET (pycls/models/resnet.py)."""
    return {
        "dataset": _f(
            "resnet.py picks CIFAR when 'cifar' is in cfg.TRAIN.DATASET, else ImageNet; "
            "it asserts TRAIN.DATASET and TEST.DATASET are in ['cifar10', 'imagenet'] (the "
            "default '' fails). CIFAR: stem ResStemCifar(3, 16) and stages (16, 16, s1), "
            "(16, 32, s2), (32, 64, s2) of d = (DEPTH - 2) / 6 blocks (asserts DEPTH = 6n + 2),"
            " head 64 -> nc; ImageNet: ResStemIN(3, 64) and stages 64->256 s1, 256->512 s2, "
            "512->1024 s2, 1024->2048 s2 with depths {50: (3,4,6,3), 101: (3,4,23,3), 152: "
            "(3,8,36,3)} (other depths: KeyError).", f"{F_RES}: ResNet.__init__, "
            "_construct_cifar, _construct_imagenet, _IN_STAGE_DS"),
        "TRANS_FUN": _f(
            "basic_transform (default) or bottleneck_transform. CIFAR needs basic_transform "
            "(it passes w_b None: bottleneck fails with TypeError); ImageNet needs "
            "bottleneck_transform (basic asserts w_b is None).",
            f"{F_RES}: get_trans_fun, BasicTransform, BottleneckTransform, ResStage"),
        "NUM_GROUPS, WIDTH_PER_GROUP": _f(
            "ImageNet: w_b = NUM_GROUPS * WIDTH_PER_GROUP in stage 1, doubled each stage "
            "(x2, x4, x8); the 3x3 has groups NUM_GROUPS. Output widths stay 256..2048 "
            "whatever they are. Defaults 1 and 64.", f"{F_RES}: _construct_imagenet"),
        "STRIDE_1X1": _f(
            "default True (MSRA): the first block of a strided stage strides the 1x1 (a) "
            "and not the 3x3 (b); False (fb.torch, pycls's archive configs) strides the 3x3 "
            "like AnyNet. The keys and shapes are the same either way: a checkpoint does "
            "not say which (its cfg does).", f"{F_RES}: BottleneckTransform.__init__"),
        "keys": _f("the same key scheme as AnyNet (stem.conv, stem.bn, sI.bJ.proj, sI.bJ.bn, "
                   "sI.bJ.f.a ... f.c_bn, head.fc).", f"{F_RES}: ResBlock, ResStage"),
    }


def effnet_facts() -> dict:
    """cfg.EN: what EffNet builds (pycls/models/effnet.py)."""
    return {
        "stages": _f(
            "STEM_W, DEPTHS, WIDTHS, EXP_RATIOS, STRIDES, KERNELS per stage, HEAD_W; "
            "StemIN = conv 3x3 stride 2 pad 1, BN, Swish. MBConv(w_in, exp_r, k, s, se_r, "
            "w_out): w_exp = int(w_in * exp_r) (floor); exp (1x1) + exp_bn + Swish only if "
            "w_exp != w_in; dwise (k x k, stride s, pad (k - 1) // 2, groups w_exp), "
            "dwise_bn, Swish; SE(w_exp, int(w_in * se_r)) (floor of the BLOCK INPUT width; "
            "avg_pool, Conv1x1 bias, Swish, Conv1x1 bias, Sigmoid); lin_proj (1x1) + "
            "lin_proj_bn (no activation); identity skip when s == 1 and w_in == w_out. "
            "EffHead: conv 1x1 -> HEAD_W, conv_bn, Swish, avg pool, [dropout], fc. Swish is "
            "x * sigmoid(x) (a module of its own, not nn.SiLU).",
            f"{F_EFF}: StemIN, MBConv, SE, Swish, EffStage, EffHead"),
        "SE_R": _f("default 0.25; SE is always on in EffNet.", f"{F_CFG}; {F_EFF}: MBConv"),
        "DC_RATIO": _f("drop-connect on the skip branch in training only (net.drop_connect); "
                       "no parameters, no keys.", f"{F_EFF}: MBConv.forward"),
        "DROPOUT_RATIO": _f("nn.Dropout before fc when > 0 (module head.dropout, no "
                            "parameters, no keys).", f"{F_EFF}: EffHead"),
    }


def bn_facts() -> dict:
    """cfg.BN: what the BatchNorm keys change (no key ever does)."""
    return {
        "EPS": _f("eps of every BatchNorm2d (default 1e-5).", "all model files"),
        "MOM": _f("momentum of every BatchNorm2d (default 0.1); changes no key and nothing in "
                  "eval mode.", "all model files"),
        "ZERO_INIT_FINAL_GAMMA": _f("init only: the final BN of each residual branch "
                                    "(final_bn = True: b_bn of BasicTransform, c_bn of "
                                    "BottleneckTransform) starts at weight 0; no key changes.",
                                    f"{F_NET}: init_weights"),
        "USE_PRECISE_STATS": _f("trainer: after each epoch compute_precise_bn_stats averages "
                                "batch means and variances over NUM_SAMPLES_PRECISE images "
                                "(momentum 1.0 per batch) into running_mean/var.",
                                f"{F_NET}: compute_precise_bn_stats; {F_TRN}"),
    }


def run_facts() -> dict:
    """What a training run writes: the checkpoint, OUT_DIR, and (after 0.1.1) sweeps."""
    return {
        "MEM.RELU_INPLACE": _f("inplace flag of the ReLUs; no keys.", "all model files"),
        "checkpoint": _f(
            "save_checkpoint(model, optimizer, epoch) writes {'epoch': epoch, 'model_state': "
            "model.state_dict() (DDP unwrapped), 'optimizer_state': optimizer.state_dict(), "
            "'cfg': cfg.dump() (the whole config as a YAML string)} with torch.save to "
            "OUT_DIR/checkpoints/model_epoch_{epoch + 1:04d}.pyth (so 'epoch' inside is one less "
            "than the file's number). No EMA state in 0.1.1 (master adds 'ema_state', "
            "'test_err', 'ema_err' and a best copy OUT_DIR/model.pyth). load_checkpoint reads "
            "only model_state (and optimizer_state).", f"{F_CKPT}: save_checkpoint, "
            "get_checkpoint, load_checkpoint"),
        "OUT_DIR": _f(
            "a training run (tools/train_net.py -> trainer.train_model) writes OUT_DIR/"
            "config.yaml (cfg.dump(), CFG_DEST), OUT_DIR/checkpoints/model_epoch_NNNN.pyth every "
            "TRAIN.CHECKPOINT_PERIOD epochs, and OUT_DIR/stdout.log when LOG_DEST is 'file' (the "
            "log holds json_stats lines). Auto-resume takes the highest-numbered checkpoint.",
            f"{F_TRN}: setup_env, train_model; {F_CFG}: dump_cfg; pycls/core/logging.py"),
        "sweeps": _f(
            "pycls 0.1.1 has no sweep tooling. pycls tag 0.2 and master have pycls/sweep/ and "
            "tools/sweep_{setup,launch,launch_job,collect,analyze}.py: ROOT_DIR/NAME/"
            "sweep_cfg.yaml, cfgs/000000.yaml ... (one pycls cfg per job), cfgs_summary.yaml, "
            "logs/000000/ ... (each job's OUT_DIR: config.yaml, checkpoints/, stdout.log, "
            "stderr.log, SLURM.txt), logs/sbatch/, pycls/ (a code copy), sweep.json (collect; "
            "with COLLECT.CHECKPOINTS_KEEP 'last' by default the other checkpoints are "
            "deleted), analysis.html. Example: configs/sweeps/cifar/cifar_regnet.yaml samples "
            "REGNET.DEPTH/W0/WA/WM/GROUP_W with STEM_TYPE res_stem_cifar, SE_ON, 2 stages.",
            "pycls master: docs/SWEEP_INFO.md, tools/sweep_setup.py, tools/sweep_launch.py, "
            "tools/sweep_launch_job.py, tools/sweep_collect.py, pycls/sweep/config.py"),
    }


def measured_facts(tmp: Path) -> dict:
    """Facts checked on the real pycls 0.1.1 objects."""
    out = checkpoint_facts(tmp)
    out["keys_independent_of"] = keys_independent_of()
    out["unbuildable"] = unbuildable()
    out["smallest_resnet_py_imagenet"] = smallest_resnet_py_imagenet()
    # resnet.py and AnyNet: same keys, same or other features
    out["resnet_py_vs_anynet"] = resnet_vs_anynet()
    return out


def checkpoint_facts(tmp: Path) -> dict:
    """A checkpoint as save_checkpoint writes it (into ``tmp``/run), and the OUT_DIR it leaves."""
    case = cases.BY_NAME["regnety_small_nc10"]
    model, opt, cfg = cases.pycls_prepare(case)
    cfg.OUT_DIR = str(tmp / "run")
    path = pycls_checkpoint.save_checkpoint(model, opt, 9)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    import zipfile
    with zipfile.ZipFile(path) as zf:
        records = sorted({n.split("/", 1)[1] if "/" in n else n for n in zf.namelist()
                          if "/data/" not in n})
        prefix = sorted({n.split("/", 1)[0] for n in zf.namelist()})
    out = {}
    out["checkpoint_written"] = {
        "file": os.path.relpath(path, cfg.OUT_DIR), "top_level_keys": list(ck),
        "epoch": ck["epoch"], "types": {k: type(v).__name__ for k, v in ck.items()},
        "optimizer_state_keys": list(ck["optimizer_state"]),
        "optimizer_param_group_keys": sorted(ck["optimizer_state"]["param_groups"][0]),
        "optimizer_state_per_param": sorted({k for s in ck["optimizer_state"]["state"].values()
                                             for k in s}),
        "zip_archive_folder": prefix, "zip_records": records,
        "cfg_is_yaml_text_of": "cfg.dump() (yacs CfgNode.dump: yaml.safe_dump, sorted keys)",
        "source": f"{F_CKPT}: save_checkpoint (called for real)"}
    pycls_config.dump_cfg()
    out["out_dir_after_save_and_dump_cfg"] = sorted(
        os.path.relpath(os.path.join(r, f), cfg.OUT_DIR)
        for r, _, fs in os.walk(cfg.OUT_DIR) for f in fs)
    return out


def keys_independent_of() -> dict:
    """The keys do not depend on BN.MOM, BN.EPS, ZERO_INIT_FINAL_GAMMA, DC/DROPOUT, RELU_INPLACE."""
    base = cases.BY_NAME["anynet_y_4s"]
    variants = {"BN.MOM": 0.01, "BN.EPS": 1e-3, "BN.ZERO_INIT_FINAL_GAMMA": True,
                "MEM.RELU_INPLACE": False}
    ref = _manifest_of(base["values"])
    out = {}
    for k, v in variants.items():
        out[f"{k}={v}"] = _manifest_of({**base["values"], k: v}) == ref
    en = cases.BY_NAME["effnet_narrow_nc10"]["values"]
    ref = _manifest_of(en)
    for k, v in {"EN.DC_RATIO": 0.2, "EN.DROPOUT_RATIO": 0.3}.items():
        out[f"{k}={v} (effnet)"] = _manifest_of({**en, k: v}) == ref
    return out


def unbuildable() -> dict:
    """The configs of cases.UNBUILDABLE and the error pycls's builder raises on each."""
    out = {}
    for u in cases.UNBUILDABLE:
        pycls_config.reset_cfg()
        try:
            zoo.merge_values(pycls_cfg, u["values"])
            pycls_builders.build_model()
            out[u["name"]] = {"values": u["values"], "error": None}
        except Exception as exc:  # noqa: BLE001
            out[u["name"]] = {
                "values": u["values"], "error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    return out


def smallest_resnet_py_imagenet() -> dict:
    """The smallest ImageNet model resnet.py builds, and why no checkpoint of it is committed."""
    pycls_config.reset_cfg()
    zoo.merge_values(pycls_cfg, {"MODEL.TYPE": "resnet", "MODEL.DEPTH": 50,
                                 "MODEL.NUM_CLASSES": 10,
                                 "RESNET.TRANS_FUN": "bottleneck_transform",
                                 "RESNET.NUM_GROUPS": 1, "RESNET.WIDTH_PER_GROUP": 1,
                                 **cases.IMAGENET})
    m = pycls_builders.build_model()
    n = sum(p.numel() for p in m.parameters())
    return {
        "values": "DEPTH 50, NUM_GROUPS 1, WIDTH_PER_GROUP 1, NUM_CLASSES 10",
        "params": n, "model_state_MB": round(sum(t.numel() * t.element_size() for t in
                                                 m.state_dict().values()) / 2 ** 20, 2),
        "why": "the 1x1 projections 64->256, 256->512, 512->1024, 1024->2048 and the 1x1s to "
               "the fixed output widths do not shrink with WIDTH_PER_GROUP; with the optimizer's "
               "momentum buffers a checkpoint is about twice model_state: no checkpoint "
               "committed (over this folder's ~10 MB budget)"}


def _manifest_of(values) -> list:
    pycls_config.reset_cfg()
    zoo.merge_values(pycls_cfg, values)
    torch.manual_seed(0)
    return zoo.manifest_rows(pycls_builders.build_model().state_dict())


def resnet_vs_anynet() -> dict:
    """Load one model's weights into the other: resnet.py ImageNet-50 (STRIDE_1X1 True/False)
    vs the zoo's AnyNet ResNet-50, and resnet.py CIFAR-20 vs the AnyNet CIFAR-20 case."""
    res = {}
    pairs = [("resnet_in50_stride1x1", "zoo:resnet50"), ("resnet_in50_stride3x3", "zoo:resnet50"),
             ("resnet_cifar_r20", "anynet_cifar_basic_r20")]
    for a, b in pairs:
        ma, _, _ = cases.pycls_prepare(cases.BY_NAME[a])
        if b.startswith("zoo:"):
            vals = zoo.yaml_values(b[4:])
            case_b = {"name": b, "values": {**vals, "MODEL.NUM_CLASSES": 1000}}
        else:
            case_b = cases.BY_NAME[b]
        pycls_config.reset_cfg()
        zoo.merge_values(pycls_cfg, case_b["values"])
        mb = pycls_builders.build_model().eval()
        sa, sb = ma.state_dict(), mb.state_dict()
        same = zoo.manifest_rows(sa) == zoo.manifest_rows(sb)
        entry = {"same_keys_shapes_order": same}
        if same:
            mb.load_state_dict(sa, strict=True)
            x = cases.make_input(cases.BY_NAME[a])
            with torch.no_grad():
                entry.update(cases.compare(ma(x), mb(x)))
        res[f"{a} vs {b}"] = entry
    return res


# ---------------------------------------------------------------------------------------------
# Library facts (timm, torchvision)
# ---------------------------------------------------------------------------------------------

def library_facts() -> dict:
    """The timm and torchvision rules that decide expressibility, as read in their source."""
    return {"timm": timm_facts(), "torchvision": torchvision_facts()}


def timm_facts() -> dict:
    """timm's RegNet, ResNet and EfficientNet: their arguments and what they build."""
    return {
        "version": timm.__version__,
        "RegNet": ("RegNet(RegNetCfg(depth, w0, wa, wm, group_size, bottle_ratio, se_ratio, "
                   "group_min_ratio, stem_width, downsample, linear_out, preact, "
                   "num_features, act_layer, norm_layer), num_classes, output_stride, ...). "
                   "Widths from generate_regnet in torch float32 (pycls: numpy float64), "
                   "stages = torch.unique(widths); asserts exactly 4 stages; every stage "
                   "stride 2 (output_stride < 32 dilates instead); stem always a 3x3/2 "
                   "ConvNormAct; Bottleneck: w_b = int(round(out * bottle_ratio)), groups = "
                   "w_b // group_size, SE (SEModule fc1/fc2) after conv2 with rd_channels = "
                   "int(round(in_chs * se_ratio)), the same rule as pycls."),
        "ResNet": ("ResNet(block, layers, channels=(64, 128, 256, 512), cardinality, "
                   "base_width, stem_width, stem_type, ...): the non-deep 7x7 stem is ALWAYS "
                   "64 wide (inplanes = stem_width * 2 if deep_stem else 64: stem_width is "
                   "used only by the deep stems); any number of stages (zip of channels and "
                   "layers); stage strides 1, 2, 2, ...; Bottleneck width = floor(planes * "
                   "base_width / 64) * cardinality, output planes * 4, stride on conv2 (3x3); "
                   "attn_layer puts attention after conv3."),
        "EfficientNet": ("EfficientNet(block_args=decode_arch_def([...]), num_features, "
                         "stem_size, fix_stem, round_chs_fn, act_layer, norm_layer, "
                         "se_layer, ...). round_chs_fn (default round_channels -> "
                         "make_divisible(c, 8)) is applied to every stage width and, unless "
                         "fix_stem, to the stem; round_chs_fn=int keeps pycls's numbers. "
                         "InvertedResidual ALWAYS rounds mid_chs = make_divisible(in_chs * "
                         "exp_ratio) (no setting); SqueezeExcite rd_channels = "
                         "rd_round_fn(mid_chs * se_ratio / exp_ratio) with rd_round_fn "
                         "default round (pycls floors: int(w_in * se_r)); 'ds' blocks (exp 1) "
                         "have no expansion conv, like pycls's exp_r 1; activation nn.SiLU "
                         "(pycls's Swish x * sigmoid(x) rounds differently, ~1e-7)."),
    }


def torchvision_facts() -> dict:
    """torchvision's RegNet, ResNet and EfficientNet: their arguments and what they build."""
    return {
        "version": torchvision.__version__,
        "RegNet": ("RegNet(block_params, num_classes, stem_width=32, stem_type=None, "
                   "block_type=None, norm_layer=None, activation=None); BlockParams(depths, "
                   "widths, group_widths, bottleneck_multipliers, strides, se_ratio) takes "
                   "pycls's per-stage lists as they are (any number of stages, any stride); "
                   "ResBottleneckBlock = pycls's (w_b = int(round(w * bm)), g = w_b // gw, "
                   "proj when w_in != w_out or stride != 1, SE after the 3x3 with "
                   "int(round(se_ratio * width_in))); the only stem class is SimpleStemIN "
                   "and the only block class ResBottleneckBlock. BlockParams."
                   "from_init_params computes widths in torch float32 and always strides "
                   "2."),
        "ResNet": ("ResNet(block, layers, num_classes, zero_init_residual, groups, "
                   "width_per_group, replace_stride_with_dilation, norm_layer): exactly 4 "
                   "stages, stem 64 (7x7/2 + max-pool), widths 64, 128, 256, 512 times the "
                   "expansion, strides 1, 2, 2, 2; Bottleneck width = int(planes * "
                   "width_per_group / 64) * groups, stride on conv2 (3x3)."),
        "EfficientNet": ("EfficientNet(inverted_residual_setting, dropout, "
                         "stochastic_depth_prob, num_classes, norm_layer, last_channel) with "
                         "MBConvConfig(expand_ratio, kernel, stride, input_channels, "
                         "out_channels, num_layers): every channel count and the expanded "
                         "width go through _make_divisible(c, 8); SE width fixed at max(1, "
                         "input_channels // 4) (= pycls's int(w_in * 0.25), no other ratio); "
                         "stem width = the first config's input_channels; last_channel "
                         "taken as given."),
    }


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

def run_case(case: dict, out: Path, tmp: Path) -> tuple[dict, dict]:
    """One case: build it with pycls, decide each library, write its manifests (and checkpoint
    files); returns (its cases.json entry, its targets.json entries)."""
    t0 = time.time()
    name = case["name"]
    model, optimizer, cfg = cases.pycls_prepare(case)
    dump = cfg.dump()
    sp = cases.pycls_spec(case, model)
    n_stages = len([n for n, _ in model.named_children() if n.startswith("s") and n[1:].isdigit()])
    x = cases.make_input(case)
    points = cases.pycls_points(model)
    info = case_info(case, model, cfg, dump, sp)
    y, feats = cases.run_hooked(model, x, points)
    arrays = {"input": x.numpy(), "pycls_logits": y.numpy()}
    for p in points:
        arrays[f"pycls_{p}"] = feats[p].numpy()
    results = {}
    for lib in LIBS:
        cands, reason = (timm_cands if lib == "timm" else tv_cands)(case, sp, n_stages)
        entry = decide(lib, cands, reason, model, x, y, feats)
        if "call" in entry:
            rows = entry.pop("_lsd_rows")
            src = f"{lib} {VERSIONS[lib]} {entry['call']}"
            zoo.write_manifest(out / "manifests" / lib / f"{name}.json", src, rows)
            entry["manifest"] = f"manifests/{lib}/{name}.json"
            arr = entry.pop("_arrays")
            arrays[f"{lib}_logits"] = arr["logits"]
        results[lib] = entry
    if case["checkpoint"]:
        save_case_checkpoint(name, model, optimizer, cfg, dump, out, arrays)
    print(f"{name:36s} " + "  ".join(
        f"{lib}: " + ("ok " + ("exact" if e.get("bit_identical") else
                               f"{e['numerics']['logits']['max_rel']:.1e}") if "call" in e
                      else "cannot") for lib, e in results.items())
        + f"  ({time.time() - t0:.1f}s)", flush=True)
    del model
    gc.collect()
    return info, results


def case_info(case: dict, model, cfg, dump: str, sp: dict) -> dict:
    """cases.json's entry: the values, pycls's cfg dump, manifest, counts and complexity."""
    name = case["name"]
    psd = model.state_dict()
    return {
        "name": name, "family": case["family"], "note": case["note"],
        "values": case["values"], "run_values": {"OUT_DIR": cfg.OUT_DIR},
        "input": [2, 3, cases.input_size(case), cases.input_size(case)],
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_tensors": len(psd),
        "complexity": pycls_net.complexity(model),
        "spec": sp, "structure": cases.pycls_structure(model, sp),
        "checkpoint": f"checkpoints/{name}.pyth" if case["checkpoint"] else None,
        "cfg_dump": dump,
        "manifest": zoo.manifest_rows(psd),
    }


def save_case_checkpoint(name: str, model, optimizer, cfg, dump: str, out: Path,
                         arrays: dict) -> None:
    """pycls's own save_checkpoint into the case's OUT_DIR (the cfg text inside is ``dump``),
    copied to checkpoints/<name>.pyth, with <name>.features.npz beside it (its mmdet_* and
    mmpretrain_* arrays, written by design_space_mm.py, are kept)."""
    run_dir = Path(cfg.OUT_DIR)
    shutil.rmtree(run_dir, ignore_errors=True)
    path = pycls_checkpoint.save_checkpoint(model, optimizer, cases.CKPT_EPOCH)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    assert ck["cfg"] == dump and ck["epoch"] == cases.CKPT_EPOCH
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, out / "checkpoints" / f"{name}.pyth")
    shutil.rmtree(run_dir, ignore_errors=True)
    npz = out / "checkpoints" / f"{name}.features.npz"
    old = cases.read_npz(npz) if npz.exists() else {}
    keep = {k: v for k, v in old.items() if k.startswith(("mmdet_", "mmpretrain_"))}
    cases.write_npz(npz, {**arrays, **keep})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=zoo.REPO_ROOT)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args(argv)
    out = args.out / OUT_SUB
    names = args.only or cases.NAMES
    for n in names:
        if n not in cases.BY_NAME:
            ap.error(f"unknown case {n}")
    import json
    import tempfile
    cases_path = out / "cases.json"
    doc = json.loads(cases_path.read_text()) if cases_path.exists() and args.only else {}
    infos = doc.get("cases", {})
    results = {}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for n in names:
            info, res = run_case(cases.BY_NAME[n], out, tmp)
            infos[n] = info
            results[n] = res
        facts = {"versions": VERSIONS, "pycls": pycls_facts(),
                 "pycls_measured": measured_facts(tmp), "libraries": library_facts()}
    cases.write_json(cases_path, {
        "source": "tools/groundtruth/design_space.py; " + ", ".join(
            f"{k} {v}" for k, v in VERSIONS.items()),
        "procedure": cases.PROCEDURE,
        "cases": {n: infos[n] for n in cases.NAMES if n in infos}})
    fpath = out / "facts.json"
    old = json.loads(fpath.read_text()) if fpath.exists() else {}
    libs = old.get("libraries", {})
    libs.update(facts["libraries"])
    facts["libraries"] = {k: libs[k] for k in cases.LIBRARIES if k in libs}
    for key in ("openmmlab_versions", "cross_venv"):
        if key in old:
            facts[key] = old[key]
    cases.write_json(fpath, facts)
    cases.merge_targets(out / "targets.json", LIBS, results, {
        "timm_torchvision": (
            f"tools/groundtruth/design_space.py; {', '.join(f'{k} {v}' for k, v in VERSIONS.items())}. "
            "Per case and library: {class, call (evaluated as written), manifest, n_keys, "
            "state_dict_order_same, numerics {logits, '<pycls point>-><library module>': "
            "{max_abs, max_rel}}, bit_identical, other_attempts} or {cannot, attempts}. "
            f"Matches: max_rel <= {REL_TOL} everywhere (max_rel = max|diff| / max|pycls|)."),
        "procedure": cases.PROCEDURE})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
