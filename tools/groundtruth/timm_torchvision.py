#!/usr/bin/env python3
"""Ground truth: timm / torchvision counterparts of the 36 pycls zoo models.

Part of the ground truth the test suite holds ckptconv to (README.md beside this file: which
script makes which file for which test; not part of the ckptconv package).

For every pycls zoo model it

1. builds the real pycls 0.1.1 model from the numbers of its
   configs/dds_baselines/*.yaml (written out in zoo.py beside this script,
   set programmatically, no download),
2. builds the timm and torchvision counterparts (named builder where one
   exists, else the library's public model class built with pycls's numbers),
   writes their key manifests to tests/data/manifests/{timm,torchvision}/,
3. checks whether the structure corresponds one-to-one (an explicit key
   mapping pycls -> library, shapes, state_dict order per block),
4. fills the pycls model with random weights (BN stats non-trivial, eval
   mode), copies them through the mapping (load_state_dict strict=True) and
   compares logits and stage outputs,
5. collects facts (BN eps, activations, SE, stem, stride placement, timm
   pretrained_cfg, timm file loading, torchvision weight transforms),

and writes tests/data/targets.json plus a detailed results JSON.

Run in the gt environment (requirements/gt.txt; README.md beside this file says how to make it),
from the repository root:
    .venv/gt/bin/python tools/groundtruth/timm_torchvision.py [--out-root DIR] \
        [--details FILE] [--only NAME ...] [--no-facts] [--seed N]
--out-root defaults to the repository root; --details (every measurement, kept so that an --only
run adds to the earlier ones) to ckptconv-groundtruth-timm-torchvision.json in the temp directory.
"""

import argparse
import collections
import functools
import gc
import json
import math
import os
import re
import sys
import tempfile
import time
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pycls.core.builders as pycls_builders  # noqa: E402
import timm  # noqa: E402
import timm.models.regnet  # noqa: E402
import timm.models.resnet  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402
import zoo  # noqa: E402  (tools/groundtruth/zoo.py: run as a script, this folder is sys.path[0])
from pycls.core.config import cfg as pycls_cfg  # noqa: E402
from pycls.core.config import reset_cfg as pycls_reset_cfg  # noqa: E402

torch.set_num_threads(2)

TIMM_V = timm.__version__
TV_V = torchvision.__version__.split("+")[0]
PYCLS_V = zoo.PYCLS_VERSION

# --------------------------------------------------------------------------
# The pycls zoo (its numbers: zoo.py) and the library names of its RegNet sizes
# --------------------------------------------------------------------------

# The order of targets.json: the EfficientNets first, then as in zoo.NAMES.
NAMES = ([n for n in zoo.NAMES if zoo.family(n) == "effnet"]
         + [n for n in zoo.NAMES if zoo.family(n) != "effnet"])
# zoo.family -> the family whose key mapping below applies
_FAMILY = {"effnet": "effnet", "regnetx": "regnet", "regnety": "regnet", "resnet": "resnet",
           "resnext": "resnet"}

TIMM_REGNET_SUFFIX = {"200mf": "002", "400mf": "004", "600mf": "006", "800mf": "008", "1.6gf": "016",
                      "3.2gf": "032", "4.0gf": "040", "6.4gf": "064", "8.0gf": "080", "12gf": "120",
                      "16gf": "160", "32gf": "320"}
TV_REGNET_SUFFIX = {"200mf": "200mf", "400mf": "400mf", "600mf": "600mf", "800mf": "800mf", "1.6gf": "1_6gf",
                    "3.2gf": "3_2gf", "4.0gf": "4gf", "6.4gf": "6_4gf", "8.0gf": "8gf", "12gf": "12gf",
                    "16gf": "16gf", "32gf": "32gf"}


def family_of(name):
    return _FAMILY[zoo.family(name)]


def build_pycls(name):
    pycls_reset_cfg()
    zoo.merge_values(pycls_cfg, zoo.yaml_values(name))
    model = pycls_builders.build_model()
    return model.eval()


# --------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------

class Cand:
    def __init__(self, lib, kind, call, build, tag=""):
        self.lib, self.kind, self.call, self.build, self.tag = lib, kind, call, build, tag


def _tv_mbconv_settings(width_mult, depth_mult):
    from torchvision.models.efficientnet import MBConvConfig
    bneck = functools.partial(MBConvConfig, width_mult=width_mult, depth_mult=depth_mult)
    # EfficientNet-B0 base table (expand, kernel, stride, in, out, layers)
    base = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
            (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
    return [bneck(*b) for b in base]


def pycls_regnet_stage_params(name):
    """The per-stage numbers pycls 0.1.1 derives (via its own RegNet.get_args)."""
    pycls_reset_cfg()
    zoo.merge_values(pycls_cfg, zoo.yaml_values(name))
    from pycls.models.regnet import RegNet as PyclsRegNet
    a = PyclsRegNet.get_args()
    return a


def candidates(name):
    """{"timm": [Cand...], "torchvision": [Cand...]} for a pycls zoo name: the library's named
    builder where one exists, else its public class with pycls's numbers."""
    family = family_of(name)
    if family == "effnet":
        return effnet_candidates(name)
    if family == "regnet":
        return regnet_candidates(name)
    return resnet_candidates(name)


def effnet_candidates(name):
    """EfficientNet bN: both libraries' named builders; for b5 also torchvision's class with
    BN eps 1e-5."""
    tv = torchvision.models
    res = {"timm": [], "torchvision": []}
    tn = "efficientnet_" + name
    res["timm"].append(Cand("timm", "named", f"timm.create_model('{tn}', pretrained=False)",
                            lambda tn=tn: timm.create_model(tn, pretrained=False)))
    res["torchvision"].append(Cand("torchvision", "named", f"torchvision.models.{tn}(weights=None)",
                                   lambda tn=tn: getattr(tv, tn)(weights=None)))
    if name == "b5":
        call = ("torchvision.models.EfficientNet([torchvision.models.efficientnet.MBConvConfig(e, k, s, i, o, n, "
                "width_mult=1.6, depth_mult=2.2) for (e, k, s, i, o, n) in [(1, 3, 1, 32, 16, 1), "
                "(6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), "
                "(6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]], dropout=0.4, "
                "norm_layer=functools.partial(torch.nn.BatchNorm2d, eps=1e-05))")
        res["torchvision"].append(Cand(
            "torchvision", "class", call,
            lambda: tv.EfficientNet(_tv_mbconv_settings(1.6, 2.2), dropout=0.4,
                                    norm_layer=functools.partial(nn.BatchNorm2d, eps=1e-5))))
    return res


def regnet_candidates(name):
    """RegNetX/Y: the named builders where the library has the size, timm's RegNet(RegNetCfg),
    torchvision's RegNet from_init_params and with pycls's per-stage lists."""
    tv = torchvision.models
    res = {"timm": [], "torchvision": []}
    xy, k = name[len("regnet")], name.split("_")[1]
    d, w0, wa, wm, gw = zoo.regnet_numbers(name)
    se = 0.25 if xy == "y" else None
    tn = f"regnet{xy}_{TIMM_REGNET_SUFFIX[k]}"
    if timm.is_model(tn):
        res["timm"].append(Cand("timm", "named", f"timm.create_model('{tn}', pretrained=False)",
                                lambda tn=tn: timm.create_model(tn, pretrained=False)))
    se_arg = ", se_ratio=0.25" if se else ""
    rcall = (f"timm.models.regnet.RegNet(timm.models.regnet.RegNetCfg(depth={d}, w0={w0}, wa={wa}, wm={wm}, "
             f"group_size={gw}{se_arg}))")
    res["timm"].append(Cand("timm", "class", rcall,
                            lambda: timm.models.regnet.RegNet(timm.models.regnet.RegNetCfg(
                                depth=d, w0=w0, wa=wa, wm=wm, group_size=gw, se_ratio=se or 0.0))))
    tvn = f"regnet_{xy}_{TV_REGNET_SUFFIX[k]}"
    if hasattr(tv, tvn):
        res["torchvision"].append(Cand("torchvision", "named", f"torchvision.models.{tvn}(weights=None)",
                                       lambda tvn=tvn: getattr(tv, tvn)(weights=None)))
    from torchvision.models.regnet import BlockParams
    se_arg_tv = ", se_ratio=0.25" if se else ""
    call = (f"torchvision.models.RegNet(torchvision.models.regnet.BlockParams.from_init_params(depth={d}, "
            f"w_0={w0}, w_a={wa}, w_m={wm}, group_width={gw}, bottleneck_multiplier=1.0{se_arg_tv}))")
    res["torchvision"].append(Cand(
        "torchvision", "class", call,
        lambda: tv.RegNet(BlockParams.from_init_params(depth=d, w_0=w0, w_a=wa, w_m=wm, group_width=gw,
                                                       bottleneck_multiplier=1.0, se_ratio=se)),
        tag="from_init_params"))
    a = pycls_regnet_stage_params(name)
    n = len(a["ds"])
    call2 = (f"torchvision.models.RegNet(torchvision.models.regnet.BlockParams(depths={a['ds']}, "
             f"widths={a['ws']}, group_widths={a['gws']}, bottleneck_multipliers={[1.0] * n}, "
             f"strides={[2] * n}, se_ratio={se}))")
    res["torchvision"].append(Cand(
        "torchvision", "class", call2,
        lambda a=a, n=n: tv.RegNet(BlockParams(depths=list(a["ds"]), widths=list(a["ws"]),
                                               group_widths=list(a["gws"]), bottleneck_multipliers=[1.0] * n,
                                               strides=[2] * n, se_ratio=se)),
        tag="explicit_block_params"))
    return res


def resnet_candidates(name):
    """ResNet / ResNeXt 32x4d: the named builder, else the ResNet class with the numbers."""
    tv = torchvision.models
    res = {"timm": [], "torchvision": []}
    layers = zoo.RESNET_DEPTHS[zoo.resnet_depth(name)]
    is_x = name.startswith("resnext")
    if timm.is_model(name):
        res["timm"].append(Cand("timm", "named", f"timm.create_model('{name}', pretrained=False)",
                                lambda: timm.create_model(name, pretrained=False)))
    else:
        kw = ", cardinality=32, base_width=4" if is_x else ""
        res["timm"].append(Cand(
            "timm", "class",
            f"timm.models.resnet.ResNet(block=timm.models.resnet.Bottleneck, layers={layers}{kw})",
            lambda: timm.models.resnet.ResNet(block=timm.models.resnet.Bottleneck, layers=layers,
                                              **(dict(cardinality=32, base_width=4) if is_x else {}))))
    if hasattr(tv, name):
        res["torchvision"].append(Cand("torchvision", "named", f"torchvision.models.{name}(weights=None)",
                                       lambda: getattr(tv, name)(weights=None)))
    else:
        kw = ", groups=32, width_per_group=4" if is_x else ""
        res["torchvision"].append(Cand(
            "torchvision", "class",
            f"torchvision.models.ResNet(torchvision.models.resnet.Bottleneck, {layers}{kw})",
            lambda: tv.ResNet(tv.resnet.Bottleneck, layers,
                              **(dict(groups=32, width_per_group=4) if is_x else {}))))
    return res


# --------------------------------------------------------------------------
# Key mappings pycls -> library (ad hoc, explicit)
# --------------------------------------------------------------------------

BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _split(k):
    head, _, leaf = k.rpartition(".")
    return head, leaf


def _map_keys(pk, fixed, block):
    """pycls keys -> library keys: a stem/head module by the table fixed, a block's module
    s<i>.b<j>.<sub> by block(i, j, sub); the leaf (weight, bias, running_mean, ...) stays."""
    out = collections.OrderedDict()
    for k in pk:
        mod, leaf = _split(k)
        if mod in fixed:
            t = fixed[mod]
        else:
            m = re.match(r"s(\d+)\.b(\d+)\.(.+)$", mod)
            t = block(int(m.group(1)), int(m.group(2)), m.group(3))
        out[k] = t + "." + leaf
    return out


def mapping_effnet(pk, lib):
    """pycls EffNet keys -> timm efficientnet_bN / torchvision efficientnet_bN keys."""
    exp_blocks = {re.match(r"(s\d+\.b\d+)\.", k).group(1) for k in pk if re.match(r"s\d+\.b\d+\.exp\.", k)}
    n_stages = len({k.split(".")[0] for k in pk if re.match(r"s\d+\.", k)})
    fixed = {"timm": {"stem.conv": "conv_stem", "stem.bn": "bn1", "head.conv": "conv_head",
                      "head.conv_bn": "bn2", "head.fc": "classifier"},
             "torchvision": {"stem.conv": "features.0.0", "stem.bn": "features.0.1",
                             "head.conv": f"features.{n_stages + 1}.0",
                             "head.conv_bn": f"features.{n_stages + 1}.1", "head.fc": "classifier.1"}}[lib]

    def block(i, j, sub):
        has_exp = f"s{i}.b{j}" in exp_blocks
        if lib == "timm":
            pre = f"blocks.{i - 1}.{j - 1}."
            table = ({"exp": "conv_pw", "exp_bn": "bn1", "dwise": "conv_dw", "dwise_bn": "bn2",
                      "se.f_ex.0": "se.conv_reduce", "se.f_ex.2": "se.conv_expand", "lin_proj": "conv_pwl",
                      "lin_proj_bn": "bn3"} if has_exp else
                     {"dwise": "conv_dw", "dwise_bn": "bn1", "se.f_ex.0": "se.conv_reduce",
                      "se.f_ex.2": "se.conv_expand", "lin_proj": "conv_pw", "lin_proj_bn": "bn2"})
        else:
            pre = f"features.{i}.{j - 1}.block."
            table = ({"exp": "0.0", "exp_bn": "0.1", "dwise": "1.0", "dwise_bn": "1.1", "se.f_ex.0": "2.fc1",
                      "se.f_ex.2": "2.fc2", "lin_proj": "3.0", "lin_proj_bn": "3.1"} if has_exp else
                     {"dwise": "0.0", "dwise_bn": "0.1", "se.f_ex.0": "1.fc1", "se.f_ex.2": "1.fc2",
                      "lin_proj": "2.0", "lin_proj_bn": "2.1"})
        return pre + table[sub]
    return _map_keys(pk, fixed, block)


def mapping_regnet(pk, lib):
    """pycls RegNet (AnyNet res_bottleneck_block, simple stem) -> timm regnet / torchvision RegNet keys."""
    fixed = {"timm": {"stem.conv": "stem.conv", "stem.bn": "stem.bn", "head.fc": "head.fc"},
             "torchvision": {"stem.conv": "stem.0", "stem.bn": "stem.1", "head.fc": "fc"}}[lib]

    def block(i, j, sub):
        if lib == "timm":
            pre = f"s{i}.b{j}."
            table = {"proj": "downsample.conv", "bn": "downsample.bn", "f.a": "conv1.conv",
                     "f.a_bn": "conv1.bn", "f.b": "conv2.conv", "f.b_bn": "conv2.bn", "f.se.f_ex.0": "se.fc1",
                     "f.se.f_ex.2": "se.fc2", "f.c": "conv3.conv", "f.c_bn": "conv3.bn"}
        else:
            pre = f"trunk_output.block{i}.block{i}-{j - 1}."
            table = {"proj": "proj.0", "bn": "proj.1", "f.a": "f.a.0", "f.a_bn": "f.a.1", "f.b": "f.b.0",
                     "f.b_bn": "f.b.1", "f.se.f_ex.0": "f.se.fc1", "f.se.f_ex.2": "f.se.fc2", "f.c": "f.c.0",
                     "f.c_bn": "f.c.1"}
        return pre + table[sub]
    return _map_keys(pk, fixed, block)


def mapping_resnet(pk, lib):
    """pycls AnyNet ResNe(X)t (res_stem_in) -> timm / torchvision ResNet keys (same names in both)."""
    table = {"proj": "downsample.0", "bn": "downsample.1", "f.a": "conv1", "f.a_bn": "bn1", "f.b": "conv2",
             "f.b_bn": "bn2", "f.c": "conv3", "f.c_bn": "bn3"}
    return _map_keys(pk, {"stem.conv": "conv1", "stem.bn": "bn1", "head.fc": "fc"},
                     lambda i, j, sub: f"layer{i}.{j - 1}." + table[sub])


MAPPINGS = {"effnet": mapping_effnet, "regnet": mapping_regnet, "resnet": mapping_resnet}

# stage modules whose outputs are compared: pycls name -> lib name
def stage_pairs(family, lib, n_stages):
    pairs = [("stem", {"effnet": {"timm": "bn1", "torchvision": "features.0"},
                       "regnet": {"timm": "stem", "torchvision": "stem"},
                       "resnet": {"timm": "maxpool", "torchvision": "maxpool"}}[family][lib])]
    for i in range(1, n_stages + 1):
        if family == "effnet":
            t = {"timm": f"blocks.{i - 1}", "torchvision": f"features.{i}"}[lib]
        elif family == "regnet":
            t = {"timm": f"s{i}", "torchvision": f"trunk_output.block{i}"}[lib]
        else:
            t = f"layer{i}"
        pairs.append((f"s{i}", t))
    return pairs


def pblock(k):
    m = re.match(r"(s\d+\.b\d+)\.", k)
    return m.group(1) if m else k.split(".")[0]


def check_structure(psd, lsd, mp):
    info = collections.OrderedDict()
    pk, lk = list(psd), list(lsd)
    info["n_pycls"], info["n_lib"] = len(pk), len(lk)
    mapped = [mp[k] for k in pk]
    missing = [t for t in mapped if t not in lsd]   # mapped target absent in lib
    extra = [k for k in lk if k not in set(mapped)]   # lib keys nobody maps to
    dup = [t for t, c in collections.Counter(mapped).items() if c > 1]
    shape_mis = [(s, t, list(psd[s].shape), list(lsd[t].shape)) for s, t in mp.items()
                 if t in lsd and tuple(psd[s].shape) != tuple(lsd[t].shape)]
    dtype_mis = [(s, t) for s, t in mp.items() if t in lsd and psd[s].dtype != lsd[t].dtype]
    info["mapped_missing_in_lib"] = missing[:10]
    info["n_mapped_missing_in_lib"] = len(missing)
    info["lib_keys_unmapped"] = extra[:10]
    info["n_lib_keys_unmapped"] = len(extra)
    info["duplicates"] = dup[:10]
    info["shape_mismatches"] = shape_mis[:10]
    info["n_shape_mismatches"] = len(shape_mis)
    info["dtype_mismatches"] = dtype_mis[:10]
    bij = not missing and not extra and not dup and len(pk) == len(lk)
    info["bijection"] = bij
    info["shapes_match"] = bij and not shape_mis and not dtype_mis
    if bij:
        pos = {k: i for i, k in enumerate(lk)}
        info["global_order_identical"] = mapped == lk
        groups = collections.OrderedDict()
        for s in pk:
            groups.setdefault(pblock(s), []).append(pos[mp[s]])
        within = all(all(a < b for a, b in zip(v, v[1:])) for v in groups.values())
        contiguous = all(max(v) - min(v) + 1 == len(v) for v in groups.values())
        firsts = [min(v) for v in groups.values()]
        info["block_order_preserved"] = all(a < b for a, b in zip(firsts, firsts[1:]))
        info["within_block_order_preserved"] = within
        info["blocks_contiguous"] = contiguous
        if not within:
            bad = [b for b, v in groups.items() if not all(x < y for x, y in zip(v, v[1:]))]
            info["blocks_with_reordered_keys"] = bad[:5]
            info["n_blocks_with_reordered_keys"] = len(bad)
            b0 = bad[0]
            info["example_reordered_block"] = {
                "pycls_order": [s for s in pk if pblock(s) == b0 and not s.endswith(BN_SUFFIXES[2:])],
                "lib_order": [k for k in lk if k in {mp[s] for s in pk if pblock(s) == b0}
                              and not k.endswith(BN_SUFFIXES[2:])]}
    info["structure_matches"] = info["shapes_match"]
    return info


# --------------------------------------------------------------------------
# Structure summaries (to say how a mismatching builder differs)
# --------------------------------------------------------------------------

def regnet_summary(sd, lib):
    pats = {
        "pycls": (r"^s(\d+)\.b(\d+)\.f\.b\.weight$", r"^s(\d+)\.b(\d+)\.f\.c\.weight$",
                  r"^s(\d+)\.b(\d+)\.f\.se\.f_ex\.0\.weight$"),
        "timm": (r"^s(\d+)\.b(\d+)\.conv2\.conv\.weight$", r"^s(\d+)\.b(\d+)\.conv3\.conv\.weight$",
                 r"^s(\d+)\.b(\d+)\.se\.fc1\.weight$"),
        "torchvision": (r"^trunk_output\.block(\d+)\.block\d+-(\d+)\.f\.b\.0\.weight$",
                        r"^trunk_output\.block(\d+)\.block\d+-(\d+)\.f\.c\.0\.weight$",
                        r"^trunk_output\.block(\d+)\.block\d+-(\d+)\.f\.se\.fc1\.weight$"),
    }[lib]
    stages = collections.OrderedDict()
    for k, v in sd.items():
        m = re.match(pats[0], k)
        if m:
            st = stages.setdefault(int(m.group(1)), {"depth": 0, "w_b": None, "groups": None, "group_w": None,
                                                    "w_out": None, "w_se": []})
            st["depth"] += 1
            st["w_b"], st["group_w"] = v.shape[0], v.shape[1]
            st["groups"] = v.shape[0] // v.shape[1]
        m = re.match(pats[1], k)
        if m:
            stages[int(m.group(1))]["w_out"] = v.shape[0]
        m = re.match(pats[2], k)
        if m:
            stages[int(m.group(1))]["w_se"].append(v.shape[0])
    for st in stages.values():
        st["w_se"] = sorted(set(st["w_se"]))
    return [dict(stage=i, **v) for i, v in stages.items()]


def diff_regnet(ps, ls):
    lines = []
    if len(ps) != len(ls):
        lines.append(f"stage count {len(ps)} vs {len(ls)}")
    for a, b in zip(ps, ls):
        d = [f"{f} {a[f]}->{b[f]}" for f in ("depth", "w_out", "w_b", "groups", "group_w", "w_se") if a[f] != b[f]]
        if d:
            lines.append(f"stage {a['stage']}: " + ", ".join(d))
    return lines


# --------------------------------------------------------------------------
# Module facts
# --------------------------------------------------------------------------

def module_facts(model):
    f = collections.OrderedDict()
    eps = sorted({m.eps for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)})
    mom = sorted({m.momentum for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                  if m.momentum is not None})
    f["bn_eps"] = eps
    f["bn_momentum"] = mom
    acts = collections.Counter()
    for m in model.modules():
        n = type(m).__name__
        if isinstance(m, (nn.ReLU, nn.SiLU, nn.Sigmoid, nn.Hardsigmoid, nn.Hardswish, nn.GELU)) or \
                n in ("Swish", "SiLU", "Sigmoid", "HardSigmoid", "GELUTanh", "Swish"):
            inpl = getattr(m, "inplace", None)
            acts[f"{type(m).__module__}.{n}" + (f"(inplace={inpl})" if inpl is not None else "")] += 1
    f["activations"] = dict(acts)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    n0, c0 = convs[0]
    f["stem_conv"] = {"name": n0, "kernel": list(c0.kernel_size), "stride": list(c0.stride),
                      "padding": list(c0.padding) if not isinstance(c0.padding, str) else c0.padding,
                      "padding_mode": c0.padding_mode, "class": type(c0).__module__ + "." + type(c0).__name__}
    f["has_maxpool"] = any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    f["conv_classes"] = sorted({type(m).__module__ + "." + type(m).__name__ for _, m in convs})
    # where the stride-2 of the first block of the second stage sits (bottleneck families)
    strided = [n for n, m in convs[1:] if tuple(m.stride) == (2, 2)]
    f["first_strided_convs_after_stem"] = strided[:3]
    return f


# --------------------------------------------------------------------------
# Randomization and numerics
# --------------------------------------------------------------------------

@torch.no_grad()
def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        elif isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.copy_(torch.rand(c, generator=g) * 0.6 + 0.2)
            m.bias.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.num_batches_tracked.fill_(1234)
        elif isinstance(m, nn.Linear):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) / math.sqrt(m.in_features))
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def run_with_hooks(model, x, names):
    outs = {}
    mods = dict(model.named_modules())
    hs = []
    for n in names:
        if n in mods:
            hs.append(mods[n].register_forward_hook(lambda _m, _i, o, n=n: outs.__setitem__(n, o.detach().clone())))
    with torch.no_grad():
        y = model(x)
    for h in hs:
        h.remove()
    return y, outs


def cmp(a, b):
    if a.shape != b.shape:
        return {"shape_mismatch": [list(a.shape), list(b.shape)]}
    d = (a - b).abs()
    ref = a.abs().max().item()
    return {"max_abs": d.max().item(), "max_rel": d.max().item() / ref if ref else None, "ref_max_abs": ref}


def numeric(pm, lm, mp, family, lib, sizes, seed=0):
    psd = pm.state_dict()
    lsd = collections.OrderedDict((mp[k], v) for k, v in psd.items())
    res = lm.load_state_dict(lsd, strict=True)
    out = {"load_state_dict": f"strict=True ok (missing={len(res.missing_keys)}, "
                              f"unexpected={len(res.unexpected_keys)})"}
    lm.eval()
    n_st = len([k for k in dict(pm.named_children()) if re.match(r"s\d+$", k)])
    pairs = stage_pairs(family, lib, n_st)
    for hw in sizes:
        g = torch.Generator().manual_seed(seed + 1)
        x = torch.randn(2, 3, hw, hw, generator=g)
        yp, op = run_with_hooks(pm, x, [p for p, _ in pairs])
        yl, ol = run_with_hooks(lm, x, [lib for _, lib in pairs])
        r = {"input": [2, 3, hw, hw], "logits": cmp(yp, yl), "stages": {}}
        for p, lib in pairs:
            if p in op and lib in ol:
                c = cmp(op[p], ol[lib])
                r["stages"][f"{p}->{lib}"] = {k: c.get(k) for k in ("max_abs", "max_rel", "shape_mismatch") if k in c}
        out[f"{hw}x{hw}"] = r
    return out


# --------------------------------------------------------------------------
# Manifests: their source line (zoo.write_manifest writes them)
# --------------------------------------------------------------------------

def lib_source(c):
    v = TIMM_V if c.lib == "timm" else TV_V
    return f"{c.lib} {v} {c.call}"


# --------------------------------------------------------------------------
# Per-model driver
# --------------------------------------------------------------------------

OWN_SIZE = {"b3": 300, "regnetx_200mf": 224}


def process(name, out_root, seed):
    """Every candidate of one zoo model against the pycls model with seeded random weights; writes
    the candidates' manifests under out_root. Returns the model's details record."""
    family = family_of(name)
    t0 = time.time()
    pm = build_pycls(name)
    randomize(pm, seed)
    psd = pm.state_dict()
    rec = {"pycls": {"family": family, "n_tensors": len(psd),
                     "n_params": sum(p.numel() for p in pm.parameters()), "facts": module_facts(pm)}}
    if family == "regnet":
        rec["pycls"]["stages"] = regnet_summary(psd, "pycls")
    sizes = [64] + ([OWN_SIZE[name]] if name in OWN_SIZE else [])
    for lib, cands in candidates(name).items():
        rec[lib] = []
        for c in cands:
            rec[lib].append(measure_candidate(name, lib, c, pm, rec["pycls"], sizes, seed, out_root))
        write_class_manifest(name, lib, rec[lib], out_root)
        for e in rec[lib]:
            e.pop("_sd_shapes", None)
    rec["seconds"] = round(time.time() - t0, 1)
    del pm
    gc.collect()
    return rec


def measure_candidate(name, lib, c, pm, pycls_rec, sizes, seed, out_root):
    """Build one candidate, check its structure against pycls's, compare numerics where it
    matches; a named builder's manifest is written here (a class's by write_class_manifest)."""
    family = family_of(name)
    psd = pm.state_dict()
    e = collections.OrderedDict(builder=c.call, kind=c.kind, tag=c.tag)
    try:
        lm = c.build().eval()
    except Exception as ex:  # noqa: BLE001
        e["build_error"] = f"{type(ex).__name__}: {ex}"
        return e
    lsd = lm.state_dict()
    e["n_tensors"] = len(lsd)
    e["facts"] = module_facts(lm)
    mp = MAPPINGS[family](list(psd), lib)
    e["structure"] = check_structure(psd, lsd, mp)
    if family == "regnet":
        e["stages"] = regnet_summary(lsd, lib)
        e["stage_diff_vs_pycls"] = diff_regnet(pycls_rec["stages"], e["stages"])
    if e["structure"]["structure_matches"]:
        try:
            e["numeric"] = numeric(pm, lm, mp, family, lib, sizes, seed)
        except Exception as ex:  # noqa: BLE001
            e["numeric_error"] = f"{type(ex).__name__}: {ex}"
            traceback.print_exc()
        # extra: torchvision b5 with eps patched post hoc
        if lib == "torchvision" and name == "b5" and c.kind == "named":
            for m in lm.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eps = 1e-5
            e["numeric_eps_patched_1e-5"] = numeric(pm, lm, mp, family, lib, [64], seed)
    # manifests
    mdir = os.path.join(out_root, "tests", "data", "manifests", lib)
    if c.kind == "named":
        fn = f"{name}.json"
    else:
        fn = None  # decided by write_class_manifest (one class manifest per model/lib)
    e["manifest"] = fn
    e["_sd_shapes"] = zoo.manifest_rows(lsd)
    if fn:
        zoo.write_manifest(os.path.join(mdir, fn), lib_source(c), e["_sd_shapes"])
    del lm, lsd
    gc.collect()
    return e


def write_class_manifest(name, lib, entries, out_root):
    """One class manifest (<name>.class.json) when no named builder matches (and for torchvision's
    b5): the first class candidate whose structure matches, else the first class candidate."""
    cls = [e for e in entries if e["kind"] == "class" and "build_error" not in e]
    pick = next((e for e in cls if e["structure"]["structure_matches"]), cls[0] if cls else None)
    named = [e for e in entries if e["kind"] == "named" and "build_error" not in e]
    need_class = not named or not named[0]["structure"]["structure_matches"] or \
        (name == "b5" and lib == "torchvision")
    if pick is not None and need_class:
        pick["manifest"] = f"{name}.class.json"
        mdir = os.path.join(out_root, "tests", "data", "manifests", lib)
        src = f"{lib} {TIMM_V if lib == 'timm' else TV_V} {pick['builder']}"
        zoo.write_manifest(os.path.join(mdir, pick["manifest"]), src, pick["_sd_shapes"])


# --------------------------------------------------------------------------
# targets.json
# --------------------------------------------------------------------------

def summarize_target(name, lib, entries):
    """targets.json's entry for one model and library: the best candidate (a matching named
    builder, else a matching class), why the others are not it, and the alternatives."""
    family = family_of(name)
    ok = [e for e in entries if "build_error" not in e]
    named = [e for e in ok if e["kind"] == "named"]
    best = best_candidate(ok)
    t, notes = best_summary(best, lib, family)
    for e in ok:
        if not _match(e):
            sd = e.get("stage_diff_vs_pycls") or []
            notes.append(f"{e['kind']} {e['builder']} differs from pycls: " + ("; ".join(sd) if sd else
                         json.dumps({k: e['structure'][k] for k in ('n_pycls', 'n_lib', 'n_shape_mismatches')})))
        elif e is not best and e.get("numeric") and _lmax(e) and _lmax(e) > 1e-5:
            notes.append(f"{e['kind']} {e['builder']} has matching tensors but logits differ by {_lmax(e):.3g} "
                         f"(BN eps {e['facts']['bn_eps']}).")
    if family == "effnet" and lib == "torchvision" and name == "b5":
        patched = next((e.get("numeric_eps_patched_1e-5") for e in named if e.get("numeric_eps_patched_1e-5")), None)
        if patched:
            notes.append("torchvision.models.efficientnet_b5(norm_layer=...) raises TypeError (multiple values for "
                         "'norm_layer'); setting every BatchNorm2d.eps = 1e-5 on efficientnet_b5(weights=None) after "
                         f"construction gives logits max abs {patched['64x64']['logits']['max_abs']:.3g}.")
    t["alternatives"] = alternatives(entries, ok, best, lib)
    t["notes"] = " ".join(notes)
    return t


def _lmax(e):
    n = e.get("numeric", {}).get("64x64")
    return n["logits"]["max_abs"] if n else None


def _lrel(e):
    n = e.get("numeric", {}).get("64x64")
    return n["logits"]["max_rel"] if n else None


def _match(e):
    return e["structure"]["structure_matches"]


def best_candidate(ok):
    """The first named builder if it matches, else the first matching class, else None."""
    named = [e for e in ok if e["kind"] == "named"]
    cls = [e for e in ok if e["kind"] == "class"]
    if named and _match(named[0]):
        return named[0]
    if any(_match(e) for e in cls):
        return next(e for e in cls if _match(e))
    return None


def best_summary(best, lib, family):
    """The target's fields from the best candidate (or none), and the notes they call for."""
    t = collections.OrderedDict()
    notes = []
    if best is None:
        t["builder"], t["kind"], t["structure_matches"], t["logits_max_abs"] = None, "none", False, None
        t["logits_max_rel"] = None
        t["eps"] = None
        return t, notes
    t["builder"], t["kind"] = best["builder"], best["kind"]
    t["structure_matches"] = True
    t["logits_max_abs"], t["logits_max_rel"] = _lmax(best), _lrel(best)
    eps = best["facts"]["bn_eps"]
    t["eps"] = eps[0] if len(eps) == 1 else eps
    t["manifest"] = f"manifests/{lib}/{best['manifest']}" if best.get("manifest") else None
    n = best.get("numeric", {})
    stg = [v["max_abs"] for r in n.values() if isinstance(r, dict) and "stages" in r
           for v in r["stages"].values() if v.get("max_abs") is not None]
    t["stages_max_abs"] = max(stg) if stg else None
    t["other_sizes"] = {k: v["logits"]["max_abs"] for k, v in n.items()
                        if isinstance(v, dict) and "logits" in v and k != "64x64"}
    if t["eps"] != 1e-5:
        notes.append(f"BN eps {t['eps']} (momentum {best['facts']['bn_momentum']}) where pycls uses 1e-5: "
                     "same tensors, different numbers.")
    acts = best["facts"]["activations"]
    if family == "effnet" and any("SiLU" in a for a in acts):
        notes.append("nn.SiLU where pycls computes x*sigmoid(x) (stem, blocks, SE, head): not bit-exact, "
                     "~1e-7 abs.")
    st = best["structure"]
    if not st.get("global_order_identical"):
        notes.append("same tensors/shapes but state_dict order differs"
                     + ("" if st.get("within_block_order_preserved") else
                        " within blocks (e.g. shortcut proj/downsample listed first in pycls, last in "
                        f"{lib})"))
    return t, notes


def alternatives(entries, ok, best, lib):
    """Every candidate but the best: the built ones with their results, then the failed builds."""
    out = []
    for e in ok:
        if e is best:
            continue
        out.append({"builder": e["builder"], "kind": e["kind"],
                    "structure_matches": _match(e), "logits_max_abs": _lmax(e),
                    "eps": e["facts"]["bn_eps"],
                    "manifest": f"manifests/{lib}/{e['manifest']}" if e.get("manifest") else None,
                    **({"stage_diff_vs_pycls": e["stage_diff_vs_pycls"]}
                       if e.get("stage_diff_vs_pycls") else {})})
    for e in entries:
        if "build_error" in e:
            out.append({"builder": e["builder"], "kind": e["kind"], "build_error": e["build_error"]})
    return out


# --------------------------------------------------------------------------
# Facts: timm pretrained cfgs, timm file loading, torchvision transforms
# --------------------------------------------------------------------------

def timm_pretrained_facts():
    out = collections.OrderedDict()
    names = [f"efficientnet_b{i}" for i in range(6)] + ["regnetx_002"] + \
        [f"regnet{xy}_{s}" for xy in "xy" for s in TIMM_REGNET_SUFFIX.values() if f"regnet{xy}_{s}" != "regnetx_002"] + \
        ["resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x4d"]
    for n in names:
        m = timm.create_model(n, pretrained=False)
        pc = dict(m.pretrained_cfg)
        keep = ("architecture", "tag", "hf_hub_id", "url", "file", "source", "mean", "std", "input_size",
                "crop_pct", "crop_mode", "interpolation", "test_input_size", "test_crop_pct", "pool_size",
                "first_conv", "classifier", "num_classes", "license")
        out[n] = {k: pc.get(k) for k in keep if k in pc}
        out[n]["all_pretrained_tags"] = timm.list_pretrained(n + ".*")
        del m
    return out


class NoDownload(Exception):
    pass


def timm_file_loading_facts(tmpdir):
    """What timm.create_model('efficientnet_b0', pretrained=True, pretrained_cfg_overlay=dict(
    file=...)) loads from each checkpoint layout written into tmpdir, and what timm's
    load_checkpoint picks; every download function is replaced by one that raises meanwhile."""
    calls = []
    saved = _block_downloads(calls)
    results = collections.OrderedDict()
    try:
        torch.manual_seed(0)
        ref = timm.create_model("efficientnet_b0", pretrained=False)
        randomize(ref, 11)
        sd = ref.state_dict()
        ema = collections.OrderedDict((k, v + 1 if v.is_floating_point() else v) for k, v in sd.items())
        other = collections.OrderedDict((k, v + 2 if v.is_floating_point() else v) for k, v in sd.items())
        files = _write_checkpoint_layouts(tmpdir, sd, ema, other)
        variants = {"sd": sd, "ema(+1)": ema, "other(+2)": other}
        for fn in files:
            results[fn] = _load_through_overlay(os.path.join(tmpdir, fn), variants, sd, calls)
        results.update(_load_checkpoint_facts(tmpdir, variants, calls))
    finally:
        for (mod, a), f in saved.items():
            setattr(mod, a, f)
    return results


def _block_downloads(calls):
    """Replace timm's download functions by ones that record their name in ``calls`` and raise
    NoDownload; returns the originals, {(module, name): function}, to put back."""
    import timm.models._builder as tb
    import timm.models._hub as th

    def guard(fname):
        def f(*a, **k):
            calls.append(fname)
            raise NoDownload(f"{fname} called: timm tried to download")
        return f

    saved = {}
    for mod, attrs in ((tb, ("load_state_dict_from_hf", "load_state_dict_from_url", "download_cached_file",
                             "load_custom_from_hf")),
                       (th, ("download_cached_file", "load_state_dict_from_hf", "hf_hub_download"))):
        for a in attrs:
            if hasattr(mod, a):
                saved[(mod, a)] = getattr(mod, a)
                setattr(mod, a, guard(f"{mod.__name__}.{a}"))
    return saved


def _write_checkpoint_layouts(tmpdir, sd, ema, other):
    """The checkpoint layouts, written into tmpdir: {file name: the state dict its weights are}."""
    from safetensors.torch import save_file
    files = collections.OrderedDict()
    files["plain_state_dict.pth"] = sd
    files["state_dict_key.pth"] = {"state_dict": sd}
    files["state_dict_and_state_dict_ema.pth"] = {"state_dict": other, "state_dict_ema": ema}
    files["model_ema_and_state_dict.pth"] = {"state_dict": other, "model_ema": ema}
    files["model_key.pth"] = {"model": sd}
    files["module_prefixed_plain.pth"] = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
    files["module_prefixed_in_state_dict.pth"] = {
        "state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items())}
    files["pycls_style_model_state.pth"] = {"epoch": 1, "model_state": sd}
    files["state_dict_with_meta.pth"] = {"state_dict": sd, "meta": {"arch": "b0", "layout": "timm"}}
    files["plain_missing_num_batches_tracked.pth"] = collections.OrderedDict(
        (k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    for fn, obj in files.items():
        torch.save(obj, os.path.join(tmpdir, fn))
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(tmpdir, "plain.safetensors"))
    files["plain.safetensors"] = sd
    save_file({"module." + k: v.contiguous() for k, v in sd.items()},
              os.path.join(tmpdir, "module_prefixed.safetensors"))
    files["module_prefixed.safetensors"] = sd
    return files


def _load_through_overlay(path, variants, sd, calls):
    """Load one file through pretrained_cfg_overlay: did it load, and which variant's weights."""
    r = collections.OrderedDict()
    calls.clear()
    try:
        m = timm.create_model("efficientnet_b0", pretrained=True, pretrained_cfg_overlay=dict(file=path))
        msd = m.state_dict()
        which = [vn for vn, v in variants.items()
                 if all(torch.equal(msd[k], v[k]) for k in v if not k.endswith("num_batches_tracked"))]
        r["num_batches_tracked_equal"] = all(torch.equal(msd[k], sd[k]) for k in sd
                                             if k.endswith("num_batches_tracked"))
        r["loaded"] = True
        r["weights_equal_to"] = which
        r["pretrained_cfg_file"] = m.pretrained_cfg.get("file")
    except Exception as ex:  # noqa: BLE001
        r["loaded"] = False
        r["error"] = f"{type(ex).__name__}: {str(ex)[:300]}"
    r["download_functions_called"] = list(calls)
    return r


def _load_checkpoint_facts(tmpdir, variants, calls):
    """timm.models.load_checkpoint with and without use_ema, pretrained=True without a file (it
    must try to download), and the pretrained_cfg after an overlay."""
    results = collections.OrderedDict()
    from timm.models import load_checkpoint
    m = timm.create_model("efficientnet_b0", pretrained=False)
    load_checkpoint(m, os.path.join(tmpdir, "state_dict_and_state_dict_ema.pth"))
    results["load_checkpoint(default use_ema=True) on state_dict+state_dict_ema"] = \
        [vn for vn, v in variants.items() if all(torch.equal(m.state_dict()[k], v[k]) for k in v)]
    load_checkpoint(m, os.path.join(tmpdir, "state_dict_and_state_dict_ema.pth"), use_ema=False)
    results["load_checkpoint(use_ema=False) on state_dict+state_dict_ema"] = \
        [vn for vn, v in variants.items() if all(torch.equal(m.state_dict()[k], v[k]) for k in v)]
    # does pretrained=True without file try to download? (it must, and our guard stops it)
    calls.clear()
    try:
        timm.create_model("efficientnet_b0", pretrained=True)
        results["pretrained=True without file"] = {"loaded": True, "calls": list(calls)}
    except Exception as ex:  # noqa: BLE001
        results["pretrained=True without file"] = {"loaded": False, "error": f"{type(ex).__name__}: "
                                                   f"{str(ex)[:200]}", "download_functions_called": list(calls)}
    # the pretrained_cfg after overlay
    m = timm.create_model("efficientnet_b0", pretrained=True,
                          pretrained_cfg_overlay=dict(file=os.path.join(tmpdir, "plain_state_dict.pth")))
    results["pretrained_cfg_after_overlay"] = {k: m.pretrained_cfg.get(k) for k in
                                               ("file", "hf_hub_id", "source", "tag", "mean", "std")}
    return results


def tv_transform_facts():
    tv = torchvision.models
    out = collections.OrderedDict()
    builders = [f"efficientnet_b{i}" for i in range(8)] + \
        [n for n in tv.list_models(module=tv) if n.startswith("regnet_")] + \
        ["resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"]
    for b in builders:
        try:
            W = tv.get_model_weights(b)
        except Exception as ex:  # noqa: BLE001
            out[b] = {"error": str(ex)}
            continue
        out[b] = collections.OrderedDict()
        for w in W:
            tr = w.transforms()
            out[b][w.name] = {
                "is_default": w is W.DEFAULT,
                "transforms": repr(tr).replace("\n", " "),
                "resize_size": list(tr.resize_size) if hasattr(tr, "resize_size") else None,
                "crop_size": list(tr.crop_size) if hasattr(tr, "crop_size") else None,
                "interpolation": str(tr.interpolation) if hasattr(tr, "interpolation") else None,
                "mean": list(tr.mean) if hasattr(tr, "mean") else None,
                "std": list(tr.std) if hasattr(tr, "std") else None,
                "antialias": getattr(tr, "antialias", None),
                "acc@1": w.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1"),
                "recipe": w.meta.get("recipe"),
            }
    return out


def tv_effnet_eps_facts():
    tv = torchvision.models
    out = collections.OrderedDict()
    for i in range(8):
        n = f"efficientnet_b{i}"
        m = getattr(tv, n)(weights=None)
        bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
        out[n] = {"bn_eps": sorted({x.eps for x in bns}), "bn_momentum": sorted({x.momentum for x in bns})}
        try:
            m2 = getattr(tv, n)(weights=None, norm_layer=functools.partial(nn.BatchNorm2d, eps=1e-5))
            out[n]["norm_layer_kwarg"] = {"accepted": True, "bn_eps_after": sorted(
                {x.eps for x in m2.modules() if isinstance(x, nn.BatchNorm2d)})}
        except Exception as ex:  # noqa: BLE001
            out[n]["norm_layer_kwarg"] = {"accepted": False, "error": f"{type(ex).__name__}: {ex}"}
    return out


def channel_order_check(seed):
    """pycls is fed BGR; flipping the stem conv's input channels makes an RGB-fed copy compute the same."""
    pm = build_pycls("regnetx_200mf")
    randomize(pm, seed)
    lm = timm.create_model("regnetx_002", pretrained=False).eval()
    mp = mapping_regnet(list(pm.state_dict()), "timm")
    lsd = collections.OrderedDict((mp[k], v.clone()) for k, v in pm.state_dict().items())
    lsd["stem.conv.weight"] = lsd["stem.conv.weight"].flip(1)
    lm.load_state_dict(lsd, strict=True)
    x_bgr = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a = pm(x_bgr)
        b = lm(x_bgr.flip(1))
        c = lm(x_bgr)
    return {"pycls(bgr) vs timm_flipped_stem(rgb) max_abs": (a - b).abs().max().item(),
            "pycls(bgr) vs timm_flipped_stem(bgr, i.e. wrong order) max_abs": (a - c).abs().max().item(),
            "logit scale": a.abs().max().item()}


def timm_tv_variant_facts():
    """timm's *_tv RegNet archs vs torchvision's named builders (stage structure)."""
    out = collections.OrderedDict()
    for tn, tvn in (("regnetx_004_tv", "regnet_x_400mf"), ("regnety_008_tv", "regnet_y_800mf"),
                    ("regnety_080_tv", "regnet_y_8gf")):
        a = regnet_summary(timm.create_model(tn, pretrained=False).state_dict(), "timm")
        b = regnet_summary(getattr(torchvision.models, tvn)(weights=None).state_dict(), "torchvision")
        out[f"{tn} vs torchvision {tvn}"] = {"same_stage_structure": a == b,
                                             "timm_stages": [(s["depth"], s["w_out"], s["groups"]) for s in a],
                                             "tv_stages": [(s["depth"], s["w_out"], s["groups"]) for s in b]}
    return out


def activation_numerics():
    x = torch.linspace(-20, 20, 200001)
    silu = nn.SiLU()(x)
    swish = x * torch.sigmoid(x)
    return {"max_abs(nn.SiLU(x) - x*sigmoid(x)) on [-20,20]": (silu - swish).abs().max().item(),
            "bit_identical": bool(torch.equal(silu, swish))}


# --------------------------------------------------------------------------

def main():
    args = parse_args()
    names = args.only or list(NAMES)
    details = {}
    if os.path.exists(args.details) and args.only:
        with open(args.details) as f:
            details = json.load(f)
    details.setdefault("versions", {"torch": torch.__version__, "torchvision": torchvision.__version__,
                                    "timm": TIMM_V, "pycls": PYCLS_V, "python": sys.version.split()[0]})
    details.setdefault("models", {})
    for n in names:
        details["models"][n] = process_and_print(n, args.out_root, args.seed)
        write_details(args.details, details)
    if not args.no_facts:
        print("== facts", flush=True)
        details["facts"] = library_facts(args.seed)
        write_details(args.details, details)
    write_targets(details, args.out_root)


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-root", default=str(zoo.REPO_ROOT))
    ap.add_argument("--details", default=os.path.join(tempfile.gettempdir(), "ckptconv-groundtruth-timm-torchvision.json"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--no-facts", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def process_and_print(n, out_root, seed):
    """process() one model and print one line per candidate."""
    print(f"== {n}", flush=True)
    rec = process(n, out_root, seed)
    for lib in ("timm", "torchvision"):
        for e in rec[lib]:
            lg = e.get("numeric", {}).get("64x64", {}).get("logits", {})
            print(f"   {lib:11s} {e['kind']:5s} match={e.get('structure', {}).get('structure_matches')} "
                  f"abs={lg.get('max_abs')} rel={lg.get('max_rel')} {e['builder'][:90]}", flush=True)
    return rec


def write_details(path, details):
    with open(path, "w") as f:
        json.dump(details, f, indent=1, default=str)


def library_facts(seed):
    """The facts that are not per model (kept in the details file only)."""
    facts = collections.OrderedDict()
    facts["activation_numerics"] = activation_numerics()
    facts["channel_order_check"] = channel_order_check(seed)
    facts["timm_tv_regnet_variants"] = timm_tv_variant_facts()
    facts["timm_pretrained_cfg"] = timm_pretrained_facts()
    with tempfile.TemporaryDirectory() as td:
        facts["timm_file_loading"] = timm_file_loading_facts(td)
    facts["torchvision_effnet_eps"] = tv_effnet_eps_facts()
    facts["torchvision_transforms"] = tv_transform_facts()
    return facts


def write_targets(details, out_root):
    """tests/data/targets.json, from every model recorded in details so far."""
    targets = collections.OrderedDict()
    targets["_about"] = {
        "generated_by": "tools/groundtruth/timm_torchvision.py",
        "versions": details["versions"],
        "logits": "random pycls weights (seeded), copied through an explicit key mapping, load_state_dict "
                  "strict=True, eval mode, input 2x3x64x64 randn; logits_max_abs = max|pycls - lib|, "
                  "logits_max_rel = logits_max_abs / max|pycls logits|",
        "eps": "BatchNorm eps of the chosen builder (pycls 0.1.1 uses 1e-5 everywhere)",
    }
    for n in NAMES:
        if n not in details["models"]:
            continue
        targets[n] = {lib: summarize_target(n, lib, details["models"][n][lib]) for lib in ("timm", "torchvision")}
    tp = os.path.join(out_root, "tests", "data", "targets.json")
    with open(tp, "w") as f:
        json.dump(targets, f, indent=1)
        f.write("\n")
    print("wrote", tp)


if __name__ == "__main__":
    main()
