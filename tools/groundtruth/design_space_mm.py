#!/usr/bin/env python3
"""Ground truth for pycls's design spaces, OpenMMLab half: which of the ``cases.py`` models the
REAL MMDetection 3.3.0 and mmpretrain 1.2.0 public classes can express, proven numerically; plus
their constructor signatures and resolved stock configs.

For every case (built with pycls 0.1.1 exactly as ``design_space.py`` does, ``cases.PROCEDURE``;
for the cases with a committed checkpoint the weights are read from
``tests/data/design_space/checkpoints/<case>.pyth`` instead) it decides, per target,

- mmdet: the backbone ``mmdet.models.backbones.RegNet(arch=dict(...))`` / ``ResNet(depth, ...,
  style='pytorch'|'caffe')`` / ``ResNeXt(groups, base_width)`` / ``EfficientNet(arch='bN')``
  (a backbone: pycls's head.fc has no place and is left out);
- mmpretrain: ``ImageClassifier(backbone=RegNet|ResNet|ResNeXt|ResNet_CIFAR|EfficientNet,
  neck=GlobalAveragePooling, head=LinearClsHead(num_classes, in_channels))``,

builds each candidate by ``eval`` of the call text it records, maps pycls's keys onto it with
the mappings written below, loads strictly, and compares per-stage outputs (mmdet) and logits
(mmpretrain) on the seeded input. Writes under ``tests/data/design_space/`` (or ``--out``):
``manifests/{mmdet,mmpretrain}/<case>.json``, the mmdet/mmpretrain entries of ``targets.json``
(the timm/torchvision ones are kept), ``mmpretrain_logits`` into the checkpoint
cases' ``.features.npz`` (the others are kept), the OpenMMLab part of ``facts.json``,
``stock_configs.json`` (mmengine ``Config.fromfile`` of the stock configs inside the installed
packages: the resolved ``model`` and test pipeline) and ``tests/data/signatures.json``
(``inspect.signature`` of the constructors, arch_settings keys).

mmdet needs mmcv's compiled ``mmcv._ext`` (mmcv-lite has none) and mmdet/mmpretrain import
torchvision at import time (PyPI's torchvision would pull a CUDA torch): both are replaced by
stub modules before the imports (stubs.py); nothing measured here calls them.

Run in the torch213 environment (requirements/torch213.txt, where the committed files were made;
README.md beside this file says how to make it), from the repository root, after design_space.py:
    .venv/torch213/bin/python tools/groundtruth/design_space_mm.py [--out DIR] [--only CASE ...]
--out is a repository root to write under; the files of design_space.py there are read and merged
into, and its checkpoints are read from there (copy tests/data/design_space into a fresh --out
first).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import re
import sys
import time
from pathlib import Path

import stubs  # tools/groundtruth/stubs.py (this folder is sys.path[0] when run as a script)

stubs.stub_mmcv_ext()
stubs.stub_torchvision()
stubs.hide_multimodal_from_mmpretrain()

import cases  # noqa: E402  (this folder is sys.path[0] when run as a script)
import mmcv  # noqa: E402
import mmdet  # noqa: E402
import mmdet.models  # noqa: E402,F401
import mmengine  # noqa: E402
import mmpretrain  # noqa: E402
import mmpretrain.models  # noqa: E402,F401
import numpy as np  # noqa: E402
import torch  # noqa: E402
import zoo  # noqa: E402
from mmdet.registry import MODELS as MMDET_MODELS  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmpretrain.registry import MODELS as MMPRE_MODELS  # noqa: E402

torch.set_num_threads(2)
logging.getLogger("mmengine").setLevel(logging.ERROR)

VERSIONS = {"pycls": zoo.PYCLS_VERSION, "torch": torch.__version__, "mmdet": mmdet.__version__,
            "mmpretrain": mmpretrain.__version__, "mmengine": mmengine.__version__,
            "mmcv-lite": mmcv.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}
LIBS = ["mmdet", "mmpretrain"]
REL_TOL = 1e-5
OUT_SUB = Path("tests/data/design_space")

import mmdet.models.backbones as mmdet_backbones  # noqa: E402
import mmpretrain.models.backbones as mmpre_backbones  # noqa: E402

NAMESPACE = {"mmdet": mmdet, "mmpretrain": mmpretrain, "MMDET_MODELS": MMDET_MODELS,
             "MMPRE_MODELS": MMPRE_MODELS}


# ---------------------------------------------------------------------------------------------
# Key mappings pycls -> OpenMMLab (written here; {pycls key: library key})
# ---------------------------------------------------------------------------------------------

_BLOCK = {"proj": "downsample.0", "bn": "downsample.1", "f.a": "conv1", "f.a_bn": "bn1",
          "f.b": "conv2", "f.b_bn": "bn2", "f.c": "conv3", "f.c_bn": "bn3"}
_EFF = {"exp": "expand_conv.conv", "exp_bn": "expand_conv.bn", "dwise": "depthwise_conv.conv",
        "dwise_bn": "depthwise_conv.bn", "se.f_ex.0": "se.conv1.conv",
        "se.f_ex.2": "se.conv2.conv", "lin_proj": "linear_conv.conv",
        "lin_proj_bn": "linear_conv.bn"}


def map_resnet_like(pkeys, lsd, prefix=""):
    """mmdet/mmpretrain ResNet, ResNeXt, RegNet, ResNet_CIFAR: conv1, bn1, layerI.(J-1).*."""
    out = {}
    for k in pkeys:
        i, j, mod, leaf = cases.split_key(k)
        if mod == "head.fc":
            if prefix:
                out[k] = f"head.fc.{leaf}"
            continue
        t = {"stem.conv": "conv1", "stem.bn": "bn1"}[mod] if i is None else \
            f"layer{i}.{j - 1}.{_BLOCK[mod]}"
        out[k] = prefix + t + "." + leaf
    return out


def mm_effnet_layout(lsd, prefix=""):
    """[(layer, n_blocks)] of an mmdet/mmpretrain EfficientNet state_dict (layers.1 .. n-2)."""
    counts = {}
    for k in lsd:
        m = re.match(re.escape(prefix) + r"layers\.(\d+)\.(\d+)\.", k)
        if m:
            counts.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return [(layer, len(v)) for layer, v in sorted(counts.items())]


def map_effnet(pkeys, lsd, prefix=""):
    """pycls blocks, flattened in order, onto the library's layers.L.K blocks in order (mmdet
    merges pycls stages 4+5 and 6+7 into one layer each); stem -> layers.0, head conv ->
    the last layer."""
    layout = mm_effnet_layout(lsd, prefix)
    lib_blocks = [(layer, k) for layer, n in layout for k in range(n)]
    p_blocks = []
    for k in pkeys:
        i, j, _, _ = cases.split_key(k)
        if i is not None and (i, j) not in p_blocks:
            p_blocks.append((i, j))
    last = max([layer for layer, _ in layout] or [0]) + 1
    out = {}
    for k in pkeys:
        i, j, mod, leaf = cases.split_key(k)
        if mod == "head.fc":
            if prefix:
                out[k] = f"head.fc.{leaf}"
            continue
        if i is None:
            t = {"stem.conv": "layers.0.conv", "stem.bn": "layers.0.bn",
                 "head.conv": f"layers.{last}.conv", "head.conv_bn": f"layers.{last}.bn"}[mod]
        else:
            idx = p_blocks.index((i, j))
            if idx >= len(lib_blocks):
                t = f"<no block for s{i}.b{j}>"
            else:
                layer, kk = lib_blocks[idx]
                t = f"layers.{layer}.{kk}.{_EFF[mod]}"
        out[k] = prefix + t + "." + leaf
    return out


# ---------------------------------------------------------------------------------------------
# Candidates
# ---------------------------------------------------------------------------------------------

class Cand:
    def __init__(self, lib, cls, call, mapping, points, expect="match", why=""):
        self.lib, self.cls, self.call, self.mapping = lib, cls, call, mapping
        self.points, self.expect, self.why = points, expect, why

    def build(self):
        return eval(self.call, dict(NAMESPACE))  # noqa: S307 (our own call text)


def _fmt(v) -> str:
    if isinstance(v, dict):
        return "dict(" + ", ".join(f"{k}={_fmt(x)}" for k, x in v.items()) + ")"
    return repr(v)


def _kw(d: dict) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in d.items())


def _norm(sp, always=False):
    if sp["eps"] != 1e-5 or always:
        return {"norm_cfg": dict(type="BN", eps=sp["eps"], requires_grad=True)}
    return {}


MMDET_RES_ARCH = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                  50: ("bneck", (3, 4, 6, 3)), 101: ("bneck", (3, 4, 23, 3)),
                  152: ("bneck", (3, 8, 36, 3))}


def _depth_for(block, ds):
    n = len(ds)
    for depth, (b, blocks) in MMDET_RES_ARCH.items():
        if b == block and list(blocks[:n]) == list(ds):
            return depth
    return None


def _common_refusal(sp, lib):
    mt = sp["model_type"]
    if mt == "effnet":
        return None
    stem, block = sp["stem_type"], sp["block_type"]
    if block == "vanilla_block":
        return ("pycls's vanilla_block has no residual connection; every ResNet/RegNet block "
                f"of {lib} adds a shortcut (mmpretrain's VGG downsamples by max-pool)")
    if sp.get("se_r"):
        return (f"SE: {lib}'s RegNet and ResNet have no squeeze-and-excitation after the 3x3 "
                "(mmdet's plugins are ContextBlock/GeneralizedAttention/NonLocal2d/DropBlock; "
                "mmpretrain's SEResNet puts SE after conv3 on the block output)")
    if stem == "simple_stem_in" and block == "res_basic_block":
        return (f"simple_stem_in with res_basic_block: {lib}'s basic-block ResNet has the "
                "7x7/2 + max-pool (or 3-conv deep) stem, its RegNet bottleneck blocks only")
    if stem == "res_stem_cifar" and (lib == "mmdet" or mt == "regnet"):
        return ("res_stem_cifar (3x3 stride-1 conv, no max-pool): " + (
            "mmdet has no CIFAR ResNet; its ResNet stem is 7x7/2 + max-pool or the 3-conv deep "
            "stem, its RegNet stem a 3x3/2 conv" if lib == "mmdet" else
            "mmpretrain's RegNet stem is a 3x3/2 conv; its ResNet_CIFAR has the CIFAR stem but "
            "ResNet blocks and widths, not RegNet's"))
    if mt == "regnet" and stem == "res_stem_in":
        return (f"REGNET.STEM_TYPE res_stem_in: {lib}'s RegNet stem is always a 3x3/2 conv "
                "(_make_stem_layer); its ResNet has the 7x7 stem but not RegNet's widths")
    if mt == "anynet" and stem == "simple_stem_in":
        return (f"AnyNet per-stage numbers: {lib}'s RegNet takes arch=dict(w0, wa, wm, group_w, "
                "depth, bot_mul) and derives widths and depths from them; no per-stage lists")
    return None


def mm_cands(lib, case, sp, n_stages):
    """(candidates, reason) for lib in mmdet / mmpretrain."""
    reason = _common_refusal(sp, lib)
    if reason:
        return [], reason
    mt = sp["model_type"]
    if mt == "effnet":
        return mm_effnet_cands(lib, sp)
    if mt == "regnet":
        cls, kw, last_w, reasons = mm_regnet_args(lib, sp, n_stages)
    else:  # res_stem_in / res_stem_cifar with basic or bottleneck blocks (anynet, resnet.py)
        cls, kw, last_w, reasons = mm_resnet_args(lib, sp, n_stages)
    points = [f"s{i}" for i in range(1, n_stages + 1)]
    call = _call(lib, cls, kw, sp["nc"], last_w)
    cands = [Cand(lib, _cls_name(lib, cls), call, map_resnet_like, points,
                  expect="nearest" if reasons else "match", why="the nearest arguments"
                  if reasons else "")]
    return cands, ("; ".join(reasons) or None)


def mm_regnet_args(lib, sp, n_stages):
    """RegNet(arch=dict(...)) for a pycls RegNet: (class, kwargs, last width, reasons it cannot
    be exact)."""
    r = sp["regnet"]
    arch = dict(w0=r["w0"], wa=r["wa"], wm=r["wm"], group_w=r["group_w"], depth=r["depth"],
                bot_mul=r["bot_mul"])
    kw = {"arch": arch}
    if sp["stem_w"] != 32:
        kw["stem_channels"] = sp["stem_w"]
    if sp["ss"] != [2] * 4 or n_stages != 4:
        kw["strides"] = tuple(sp["ss"])
        kw["dilations"] = (1,) * n_stages
    kw["out_indices"] = tuple(range(n_stages))
    kw.update(_norm(sp))
    reasons = []
    if n_stages > 4:
        reasons.append(f"{n_stages} stages: {lib}'s RegNet asserts num_stages <= 4")
    return "RegNet", kw, sp["ws"][-1], reasons


def mm_resnet_args(lib, sp, n_stages):
    """ResNet / ResNet_CIFAR / ResNeXt arguments for a res_stem_in or res_stem_cifar model
    (AnyNet or resnet.py): (class, kwargs, last width, reasons they cannot be exact)."""
    block = "basic" if sp["block_type"] == "res_basic_block" else "bneck"
    depth = _depth_for(block, sp["ds"])
    reasons = []
    kw = {}
    if depth is None:
        reasons.append(f"depths {sp['ds']}: {lib}'s ResNet takes depth in (18, 34, 50, "
                       "101, 152) and builds arch_settings[depth] blocks per stage "
                       "(num_stages keeps the first stages): none gives these")
        depth = 18 if block == "basic" else 50
    kw["depth"] = depth
    n = n_stages
    cifar = sp["stem_type"] == "res_stem_cifar"
    cls = "ResNet_CIFAR" if cifar else "ResNet"
    if block == "basic":
        base = sp["ws"][0]
        widths = [base * 2 ** i for i in range(n)]
    else:
        cls, base, widths = mm_bottleneck_args(lib, sp, n, cifar, cls, kw, reasons)
    if widths != sp["ws"]:
        reasons.append(f"widths {sp['ws']}: {lib}'s ResNet doubles base_channels * "
                       "expansion every stage")
    if sp["stem_w"] != 64:
        kw["stem_channels"] = sp["stem_w"]
    if base != 64:
        kw["base_channels"] = base
    if n != 4:
        kw["num_stages"] = n
    if sp["ss"] != [1, 2, 2, 2][:n] or n != 4:
        kw["strides"] = tuple(sp["ss"])
        kw["dilations"] = (1,) * n
    kw["out_indices"] = tuple(range(n))
    kw["style"] = "caffe" if sp["stride_1x1"] else "pytorch"
    kw.update(_norm(sp))
    return cls, kw, sp["ws"][-1], reasons


def mm_bottleneck_args(lib, sp, n, cifar, cls, kw, reasons):
    """The bottleneck part of mm_resnet_args: groups and widths into ``kw``, what they cannot
    give into ``reasons``; returns (class, base_channels, the widths that class builds)."""
    pre = lib == "mmpretrain"
    g = sp["groups"][0] if len(set(sp["groups"])) == 1 else None
    bm = sp["w_bs"][0] / sp["ws"][0]
    exp = 4
    if g == 1 and not pre and any(wb * 4 != w for wb, w in zip(sp["w_bs"], sp["ws"])):
        reasons.append(f"w_b {sp['w_bs']} of widths {sp['ws']} in one group: mmdet's "
                       "Bottleneck has expansion 4 (w_b = w/4) and its ResNeXt takes "
                       "mid = planes when groups == 1")
    if pre and g == 1:
        inv = sp["ws"][0] / sp["w_bs"][0]
        if float(inv).is_integer() and all(w == wb * int(inv) for w, wb in
                                           zip(sp["ws"], sp["w_bs"])):
            exp = int(inv)
        else:
            reasons.append(f"w_b/w = {bm}: mmpretrain's ResNet needs an integer "
                           "expansion = w / w_b")
    base = sp["ws"][0] // exp
    widths = [base * exp * 2 ** i for i in range(n)]
    if g is None:
        reasons.append(f"groups differ between stages {sp['groups']}")
    elif g > 1:
        cls = "ResNeXt" if not cifar else cls
        if cifar:
            reasons.append("mmpretrain has no grouped CIFAR ResNet")
        planes = [w // 4 for w in sp["ws"]]
        if pre:
            wpg = sp["w_bs"][0] * base // (g * planes[0])
            kw["groups"], kw["width_per_group"] = g, wpg
        else:
            bw = sp["w_bs"][0] * base // (g * planes[0])
            kw["groups"], kw["base_width"] = g, bw
    if pre and exp != 4:
        kw["expansion"] = exp
    return cls, base, widths


def _cls_name(lib, cls):
    if lib == "mmdet":
        return f"mmdet.models.backbones.{cls}"
    return f"mmpretrain.models.classifiers.ImageClassifier + mmpretrain.models.backbones.{cls}"


def _call(lib, cls, kw, nc, head_in):
    if lib == "mmdet":
        return f"mmdet.models.backbones.{cls}({_kw(kw)})"
    backbone = {"type": cls, **kw}
    return (f"MMPRE_MODELS.build(dict(type='ImageClassifier', backbone={_fmt(backbone)}, "
            f"neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', "
            f"num_classes={nc}, in_channels={head_in})))")


def mm_effnet_cands(lib, sp):
    zb = None
    for b, (stem_w, ds, ws, head_w, _, _) in zoo.EFFNET.items():
        if (sp["stem_w"], sp["ws"], sp["head_w"]) == (stem_w, ws, head_w):
            zb = b
            exact = (ds == sp["ds"] and sp["ss"] == zoo.EN_STRIDES and sp["ers"] == zoo.EN_EXP_RATIOS
                     and sp["ks"] == zoo.EN_KERNELS and sp["se_r"] == 0.25)
            break
    kw = {"arch": zb or "b0", "conv_cfg": dict(type="Conv2d"),
          **_norm(sp, always=True), "out_indices": (0, 1, 2, 3, 4, 5, 6)}
    call = _call(lib, "EfficientNet", kw, sp["nc"], sp["head_w"])
    points = ["stem", "s1", "s2", "s3", "s5", "s7", "head.conv_swish"]
    reason = None
    if zb is None or not exact:
        reason = (f"{lib}'s EfficientNet builds only its arch_settings (b0..b8, es/em/el"
                  + (", l2" if lib == "mmpretrain" else "") + ") scaled from one fixed layer "
                  "table; arch must be one of those names, no per-stage lists")
    return [Cand(lib, _cls_name(lib, "EfficientNet"), call, map_effnet, points,
                 expect="nearest" if reason else "match",
                 why=f"arch {kw['arch']!r}" if reason else "")], reason


# ---------------------------------------------------------------------------------------------
# Evaluate
# ---------------------------------------------------------------------------------------------

def evaluate(cand, pmodel, x, pyc_out, pyc_feats):
    res = {"class": cand.cls, "call": cand.call, "expect": cand.expect}
    if cand.why:
        res["what"] = cand.why
    try:
        torch.manual_seed(0)
        lm = cand.build()
        lm.eval()
    except Exception as exc:  # noqa: BLE001
        res["build_error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        return res
    psd, lsd = pmodel.state_dict(), lm.state_dict()
    res["n_keys"] = len(lsd)
    prefix = "backbone." if cand.lib == "mmpretrain" else ""
    mp = cand.mapping(list(psd), lsd, prefix)
    sub = {k: psd[k] for k in mp}
    probs = cases.check_keys(sub, lsd, mp)
    res["_lsd_rows"] = zoo.manifest_rows(lsd)
    dropped = [k for k in psd if k not in mp]
    if dropped:
        res["pycls_keys_left_out"] = dropped
    if probs:
        res["key_problems"] = probs
        res["matches"] = False
        return res
    res["state_dict_order_same"] = list(mp.values()) == list(lsd)
    lm.load_state_dict({mp[k]: v for k, v in sub.items()}, strict=True)
    with torch.no_grad():
        backbone = lm.backbone if cand.lib == "mmpretrain" else lm
        feats = backbone(x)
        num = {}
        if cand.lib == "mmpretrain":
            logits = lm(x, mode="tensor")
            num["logits"] = cases.compare(pyc_out, logits)
    for idx, p in enumerate(cand.points):
        num[f"{p}->out[{idx}]"] = cases.compare(pyc_feats[p], feats[idx])
    res["numerics"] = num
    ok = all(v.get("max_rel") is not None and v["max_rel"] <= REL_TOL for v in num.values())
    res["matches"] = ok
    res["bit_identical"] = ok and all(v["max_abs"] == 0.0 for v in num.values())
    if ok:
        # mmpretrain: its logits; mmdet is a backbone without logits: its outputs are compared
        # with pycls's stage arrays (in the npz) and recorded in targets.json, not stored
        res["_arrays"] = {"logits": logits.numpy()} if cand.lib == "mmpretrain" else {}
    del lm
    return res


def _public(a):
    return {k: v for k, v in a.items() if not k.startswith("_")}


def decide(cands, reason, pmodel, x, y, feats):
    attempts = [evaluate(c, pmodel, x, y, feats) for c in cands]
    chosen = next((a for a in attempts if a["expect"] == "match" and a.get("matches")), None)
    for a in attempts:
        if a["expect"] == "nearest" and a.get("matches"):
            a["note"] = "UNEXPECTED: the nearest call matched"
    if chosen is None:
        why = reason
        if not why:
            bits = []
            for a in attempts:
                if "build_error" in a:
                    bits.append(f"the call fails: {a['build_error']}")
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
                                    "numerics", "bit_identical") if k in chosen}
    if "pycls_keys_left_out" in chosen:
        entry["pycls_keys_left_out"] = chosen["pycls_keys_left_out"]
    entry["_lsd_rows"] = chosen["_lsd_rows"]
    entry["_arrays"] = chosen["_arrays"]
    others = [a for a in attempts if a is not chosen]
    if others:
        entry["other_attempts"] = [_public(a) for a in others]
    return entry


def pycls_model_for(case, out):
    """The case's pycls model: the committed checkpoint's model_state where there is one."""
    model, _, _ = cases.pycls_prepare(case)
    src = "cases.PROCEDURE (regenerated in this venv)"
    if case["checkpoint"]:
        path = out / "checkpoints" / f"{case['name']}.pyth"
        ck = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model_state"], strict=True)
        src = f"checkpoints/{case['name']}.pyth model_state"
    return model.eval(), src


def run_case(case, out):
    t0 = time.time()
    name = case["name"]
    model, src = pycls_model_for(case, out)
    sp = cases.pycls_spec(case, model)
    n_stages = len([n for n, _ in model.named_children() if n.startswith("s") and n[1:].isdigit()])
    x = cases.make_input(case)
    y, feats = cases.run_hooked(model, x, cases.pycls_points(model))
    results, arrays = {}, {}
    for lib in LIBS:
        cands, reason = mm_cands(lib, case, sp, n_stages)
        entry = decide(cands, reason, model, x, y, feats)
        if "call" in entry:
            rows = entry.pop("_lsd_rows")
            zoo.write_manifest(out / "manifests" / lib / f"{name}.json",
                               f"{lib} {VERSIONS[lib]} {entry['call']}", rows)
            entry["manifest"] = f"manifests/{lib}/{name}.json"
            entry["weights"] = src
            for k, v in entry.pop("_arrays").items():
                arrays[f"{lib}_{k}"] = v
        results[lib] = entry
    if case["checkpoint"]:
        npz = out / "checkpoints" / f"{name}.features.npz"
        old = cases.read_npz(npz)
        assert np.array_equal(old["input"], x.numpy())
        d = float(np.abs(old["pycls_logits"] - y.numpy()).max())
        results["_pycls_logits_vs_npz_max_abs"] = d
        keep = {k: v for k, v in old.items() if not k.startswith(("mmdet_", "mmpretrain_"))}
        cases.write_npz(npz, {**keep, **arrays})
    print(f"{name:36s} " + "  ".join(
        f"{lib}: " + ("ok " + ("exact" if e.get("bit_identical") else
                               f"{max(v.get('max_rel') or 0 for v in e['numerics'].values()):.1e}")
                      if "call" in e else "cannot")
        for lib, e in results.items() if not lib.startswith("_")) + f"  ({time.time() - t0:.1f}s)",
        flush=True)
    return results


# ---------------------------------------------------------------------------------------------
# Signatures and stock configs
# ---------------------------------------------------------------------------------------------

def signature_of(cls) -> dict:
    sig = inspect.signature(cls.__init__)
    params = []
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        params.append({"name": p.name, "kind": p.kind.name,
                       "default": None if p.default is inspect.Parameter.empty
                       else repr(p.default),
                       "required": p.default is inspect.Parameter.empty
                       and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)})
    return {"class": f"{cls.__module__}.{cls.__qualname__}",
            "accepts_kwargs": any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()),
            "params": params}


def signatures() -> dict:
    import mmdet.models.detectors as det
    import mmdet.models.necks as dnecks
    import mmpretrain.models.classifiers as pcls
    import mmpretrain.models.heads as pheads
    import mmpretrain.models.necks as pnecks
    out = {"versions": {k: VERSIONS[k] for k in ("mmdet", "mmpretrain", "mmengine", "mmcv-lite",
                                                  "torch")},
           "source": "tools/groundtruth/design_space_mm.py: inspect.signature(cls.__init__)",
           "mmdet": {}, "mmpretrain": {}}
    for name in ("EfficientNet", "RegNet", "ResNet", "ResNeXt"):
        out["mmdet"][f"backbones.{name}"] = signature_of(getattr(mmdet_backbones, name))
    for name in ("FPN", "PAFPN", "ChannelMapper"):
        out["mmdet"][f"necks.{name}"] = signature_of(getattr(dnecks, name))
    for name in ("RetinaNet", "FasterRCNN"):
        out["mmdet"][f"detectors.{name}"] = signature_of(getattr(det, name))
    out["mmpretrain"]["classifiers.ImageClassifier"] = signature_of(pcls.ImageClassifier)
    for name in ("EfficientNet", "RegNet", "ResNet", "ResNeXt", "ResNet_CIFAR", "ResNetV1c",
                 "ResNetV1d"):
        out["mmpretrain"][f"backbones.{name}"] = signature_of(getattr(mmpre_backbones, name))
    out["mmpretrain"]["necks.GlobalAveragePooling"] = signature_of(pnecks.GlobalAveragePooling)
    out["mmpretrain"]["heads.LinearClsHead"] = signature_of(pheads.LinearClsHead)
    arch = {}
    for lib, mod in (("mmdet", mmdet_backbones), ("mmpretrain", mmpre_backbones)):
        arch[lib] = {
            "EfficientNet": {k: list(v) for k, v in mod.EfficientNet.arch_settings.items()},
            "RegNet": {k: dict(v) for k, v in mod.RegNet.arch_settings.items()},
            "ResNet_depths": {str(k): [v[0].__name__, list(v[1])]
                              for k, v in mod.ResNet.arch_settings.items()},
        }
    out["arch_settings"] = arch
    return out


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)


def stock_configs() -> dict:
    droot = Path(mmdet.__file__).parent / ".mim" / "configs"
    proot = Path(mmpretrain.__file__).parent / ".mim" / "configs"
    files = [("mmdet", droot, "efficientnet/retinanet_effb3_fpn_8xb4-crop896-1x_coco.py"),
             ("mmdet", droot, "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"),
             ("mmpretrain", proot, "efficientnet/efficientnet-b3_8xb32_in1k.py"),
             ("mmpretrain", proot, "resnet/resnet50_8xb32_in1k.py")]
    out = {"versions": {k: VERSIONS[k] for k in ("mmdet", "mmpretrain", "mmengine")},
           "source": ("tools/groundtruth/design_space_mm.py: mmengine.config.Config.fromfile of "
                      "the config inside the installed package (<package>/.mim/configs/...), "
                      "then .to_dict(); 'model' and the test pipeline as resolved"),
           "configs": {}}
    for lib, root, rel in files:
        c = Config.fromfile(str(root / rel)).to_dict()
        entry = {"package_path": f"{lib}/.mim/configs/{rel}", "model": _jsonable(c.get("model"))}
        tdl = c.get("test_dataloader") or {}
        ds = tdl.get("dataset", {}) if isinstance(tdl, dict) else {}
        entry["test_dataloader.dataset.pipeline"] = _jsonable(ds.get("pipeline"))
        if "test_pipeline" in c:
            entry["test_pipeline"] = _jsonable(c["test_pipeline"])
        if "data_preprocessor" in c:
            entry["data_preprocessor"] = _jsonable(c["data_preprocessor"])
        out["configs"][f"{lib}:{rel}"] = entry
    return out


def mm_library_facts() -> dict:
    return {
        "mmdet": {
            "version": mmdet.__version__,
            "RegNet": ("RegNet(arch=str|dict(w0, wa, wm, group_w, depth, bot_mul), stem_channels=32, "
                       "strides=(2, 2, 2, 2), dilations, out_indices, style='pytorch', ...): widths "
                       "by numpy float64 like pycls; asserts 1 <= num_stages <= 4 and len(strides) "
                       "== num_stages (strides may be 1); stem 3x3/2; blocks are ResNeXt "
                       "Bottlenecks with expansion 1, groups = round(w * bot_mul) // group_w, "
                       "base_width = group_w, base_channels = w: mid = floor(w * group_w / w) * "
                       "groups when groups > 1 but mid = planes = w when groups == 1 (bot_mul "
                       "ignored); no SE."),
            "ResNet": ("ResNet(depth in {18, 34, 50, 101, 152}, stem_channels, base_channels, "
                       "num_stages, strides, dilations, out_indices, style, deep_stem, avg_down, "
                       "...): stage widths base_channels * 2**i * expansion (4 for Bottleneck, "
                       "fixed), mid = planes = w/4; style 'pytorch' strides the 3x3, 'caffe' the "
                       "first 1x1 (= pycls RESNET.STRIDE_1X1 True); stem 7x7/2 + max-pool."),
            "ResNeXt": ("ResNeXt(groups, base_width, **ResNet args): mid = floor(planes * "
                        "base_width / base_channels) * groups when groups > 1, else planes."),
            "EfficientNet": ("EfficientNet(arch name only); defaults conv_cfg "
                             "Conv2dAdaptivePadding and BN eps 1e-3."),
        },
        "mmpretrain": {
            "version": mmpretrain.__version__,
            "ResNet": ("like mmdet's plus expansion (an int: mid = out // expansion, out = "
                       "base_channels * expansion * 2**i), so w_b/w = 1/expansion for any "
                       "integer; no dcn/plugins."),
            "ResNeXt": ("ResNeXt(depth, groups=32, width_per_group=4, **ResNet args) (not "
                        "base_width): mid = groups * width_per_group * (out // expansion) // "
                        "base_channels when groups != 1."),
            "ResNet_CIFAR": ("ResNet with conv1 3x3 stride 1 and no max-pool: pycls's "
                             "res_stem_cifar, but depths only from arch_settings (18/34/50/101/"
                             "152), so CIFAR ResNet-20/56 (3 or 9 blocks in each of 3 stages) "
                             "have no depth."),
            "RegNet": "as mmdet's (no SE); deep_stem raises NotImplementedError.",
            "ImageClassifier": ("forward(inputs, mode='tensor') returns the head's logits "
                                "without the data_preprocessor; LinearClsHead = fc only."),
        },
    }


# ---------------------------------------------------------------------------------------------

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
    results, checks = {}, {}
    for n in names:
        r = run_case(cases.BY_NAME[n], out)
        if "_pycls_logits_vs_npz_max_abs" in r:
            checks[n] = r.pop("_pycls_logits_vs_npz_max_abs")
        results[n] = r
    cases.merge_targets(out / "targets.json", LIBS, results, {
        "openmmlab": (
            f"tools/groundtruth/design_space_mm.py; {', '.join(f'{k} {v}' for k, v in VERSIONS.items())}. "
            "mmdet entries are backbones: numerics compare its outputs (out_indices = every stage; "
            "EfficientNet layers 0..6 = pycls stem, s1, s2, s3, s5, s7, head conv) with pycls's "
            "stage outputs ('<pycls point>->out[i]'), head.fc is left out; mmpretrain entries "
            "are ImageClassifiers and also compare logits. 'weights' says where the pycls "
            f"weights came from. Matches: max_rel <= {REL_TOL} everywhere.")})
    fpath = out / "facts.json"
    facts = json.loads(fpath.read_text()) if fpath.exists() else {}
    libs = facts.get("libraries", {})
    libs.update(mm_library_facts())
    facts["libraries"] = {k: libs[k] for k in cases.LIBRARIES if k in libs}
    facts["openmmlab_versions"] = VERSIONS
    if checks:
        facts.setdefault("cross_venv", {})["pycls_logits_from_checkpoint_vs_npz_max_abs"] = {
            k: checks[k] for k in sorted(checks)}
    cases.write_json(fpath, facts)
    cases.write_json(args.out / "tests/data/signatures.json", signatures())
    cases.write_json(out / "stock_configs.json", stock_configs())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
