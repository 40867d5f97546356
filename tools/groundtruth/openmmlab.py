#!/usr/bin/env python3
"""Ground truth for the OpenMMLab targets, made by the REAL mmdet 3.3.0 / mmpretrain 1.2.0 classes.

For every pycls zoo model it builds the matching MMDetection backbone and mmpretrain
``ImageClassifier``, writes their ``state_dict()`` key manifests, loads random pycls 0.1.1 weights
into them through a key mapping of its own (defined here, nowhere else: never ckptconv's tables)
and measures how far their outputs are from pycls's.

Writes, under the repository root (or ``--out``):

- ``tests/data/manifests/mmdet/<name>.json`` for regnetx_*, resnet{50,101,152},
  resnext{50,101,152}_32x4d: ``{"source": ..., "keys": [[key, shape, dtype], ...]}`` in
  ``state_dict()`` order of
    * ``mmdet.models.backbones.RegNet(arch=dict(w0=, wa=, wm=, group_w=, depth=, bot_mul=1.0),
      out_indices=(0, 1, 2, 3))`` with pycls's numbers,
    * ``mmdet.models.backbones.ResNet(depth=N, style='pytorch', out_indices=(0, 1, 2, 3))``,
    * ``mmdet.models.backbones.ResNeXt(depth=N, groups=32, base_width=4, style='pytorch',
      out_indices=(0, 1, 2, 3))``.
- ``tests/data/manifests/mmpretrain/<name>.json`` for the same names: mmpretrain
  ``ImageClassifier(backbone=RegNet|ResNet|ResNeXt, neck=GlobalAveragePooling,
  head=LinearClsHead(num_classes=1000, in_channels=<last width>))`` (mmpretrain's own classes;
  its ResNeXt takes ``width_per_group``, not ``base_width``).
- ``tests/data/openmmlab_targets.json``: per pycls name (RegNetX/Y, ResNet, ResNeXt, b0..b5) and
  per target (mmdet, mmpretrain): ``{"class", "kwargs", "structure_matches", "max_abs",
  "max_abs_per_output", "notes"}``; for RegNetY the refusal reason instead of numbers.
- with ``--facts-out FILE``: a JSON of everything else measured (constructor defaults, stem and
  block facts, arch_settings, resolved MMDetection/mmpretrain configs, EfficientNet
  ``out_indices`` probe, RegNetY probes).

The pycls models are built from the YAML numbers in ``zoo.py`` beside this script. Weights and
input: the recipe in ``zoo.py``, written out in ``pycls_zoo.py``'s docstring (numpy
``default_rng(0)`` over ``model.state_dict()`` keys; BN stats non-trivial), input
``default_rng(1).standard_normal((2, 3, 64, 64))``, eval mode, ``torch.no_grad()``.

mmdet needs mmcv's compiled ``mmcv._ext``, which mmcv-lite lacks; mmdet/mmpretrain also import
torchvision at import time, and PyPI has only a CUDA torchvision (its ``_C`` cannot load next to
the CPU torch). Both are replaced by stub modules (stubs.py) before the imports; nothing measured
here calls either.

Run in the torch213 environment (requirements/torch213.txt, where the committed files were made;
README.md beside this file says how to make it), from the repository root:
    .venv/torch213/bin/python tools/groundtruth/openmmlab.py [--out DIR] [--only NAME ...]
        [--no-numerics] [--facts-out FILE]
tests/data/mmdet_efficientnet_out_indices_345.json is the ``versions`` and
``efficientnet_out_indices_345`` parts of --facts-out's file, with a ``source`` line (README.md).
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import stubs  # tools/groundtruth/stubs.py (this folder is sys.path[0] when run as a script)

stubs.stub_mmcv_ext()
stubs.stub_torchvision()
stubs.hide_multimodal_from_mmpretrain()

import mmcv  # noqa: E402
import mmdet  # noqa: E402
import mmdet.models  # noqa: E402,F401
import mmengine  # noqa: E402
import mmpretrain  # noqa: E402
import mmpretrain.models  # noqa: E402,F401
import numpy as np  # noqa: E402
import pycls.core.builders as pycls_builders  # noqa: E402
import torch  # noqa: E402
import zoo  # noqa: E402  (tools/groundtruth/zoo.py: run as a script, this folder is sys.path[0])
from mmdet.models.backbones import EfficientNet as MMDetEfficientNet  # noqa: E402
from mmdet.models.backbones import RegNet as MMDetRegNet  # noqa: E402
from mmdet.models.backbones import ResNet as MMDetResNet  # noqa: E402
from mmdet.models.backbones import ResNeXt as MMDetResNeXt  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmpretrain.models.backbones import RegNet as MMPreRegNet  # noqa: E402
from mmpretrain.models.backbones import ResNet as MMPreResNet  # noqa: E402
from mmpretrain.models.backbones import ResNeXt as MMPreResNeXt  # noqa: E402
from mmpretrain.registry import MODELS as MMPRE_MODELS  # noqa: E402
from pycls.core.config import cfg as pycls_cfg  # noqa: E402
from pycls.core.config import reset_cfg as pycls_reset_cfg  # noqa: E402

VERSIONS = {
    "mmdet": mmdet.__version__, "mmpretrain": mmpretrain.__version__,
    "mmengine": mmengine.__version__, "mmcv-lite": mmcv.__version__,
    "torch": torch.__version__, "pycls": zoo.PYCLS_VERSION, "numpy": np.__version__,
}
VERSION_STR = ", ".join(f"{k} {v}" for k, v in VERSIONS.items())


# ---------------------------------------------------------------------------------------------
# pycls models (real pycls 0.1.1, cfg set programmatically from zoo.py; no download).
# ---------------------------------------------------------------------------------------------

def build_pycls(name: str) -> torch.nn.Module:
    pycls_reset_cfg()
    zoo.merge_values(pycls_cfg, zoo.yaml_values(name))
    torch.manual_seed(0)
    model = pycls_builders.build_model()
    return model.eval()


def recipe_weights(model: torch.nn.Module) -> None:
    """Overwrite every state_dict entry with the zoo.py recipe (numpy default_rng(0))."""
    state = zoo.recipe_state({k: tuple(v.shape) for k, v in model.state_dict().items()})
    model.load_state_dict({k: torch.from_numpy(a) for k, a in state.items()}, strict=True)


def make_input() -> torch.Tensor:
    return torch.from_numpy(zoo.recipe_input())


def pycls_features(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    feats: dict[str, torch.Tensor] = {}
    handles = []
    points = ["stem"] + [n for n, _ in model.named_children() if re.fullmatch(r"s\d", n)]
    for point in points:
        handles.append(getattr(model, point).register_forward_hook(
            lambda m, i, o, point=point: feats.__setitem__(point, o.detach().clone())))
    if hasattr(model.head, "conv_swish"):  # EffNet: head 1x1 conv + BN + Swish
        handles.append(model.head.conv_swish.register_forward_hook(
            lambda m, i, o: feats.__setitem__("head_conv", o.detach().clone())))
    with torch.no_grad():
        feats["logits"] = model(x).detach().clone()
    for h in handles:
        h.remove()
    return feats


def pycls_structure(model: torch.nn.Module) -> dict:
    """Per stage: depth, width, groups of the 3x3, stride (as pycls built them)."""
    stages = []
    for n, stage in model.named_children():
        if not re.fullmatch(r"s\d", n):
            continue
        blocks = list(stage.children())
        b1 = blocks[0]
        entry = {"depth": len(blocks)}
        if hasattr(b1, "f"):
            entry.update(width=b1.f.c.out_channels, bottleneck=b1.f.b.out_channels,
                         groups=b1.f.b.groups, stride=b1.f.b.stride[0],
                         se=hasattr(b1.f, "se"))
        stages.append(entry)
    stem = model.stem.conv
    return {"stem": {"kernel": stem.kernel_size[0], "stride": stem.stride[0],
                     "out": stem.out_channels, "maxpool": hasattr(model.stem, "pool")},
            "stages": stages}


def mm_structure(backbone: torch.nn.Module) -> dict:
    stages = []
    for i in range(1, 5):
        layer = getattr(backbone, f"layer{i}", None)
        if layer is None:
            break
        b1 = layer[0]
        stages.append({"depth": len(layer), "width": b1.conv3.out_channels,
                       "bottleneck": b1.conv2.out_channels, "groups": b1.conv2.groups,
                       "stride": b1.conv2.stride[0], "se": False})
    stem = backbone.conv1
    return {"stem": {"kernel": stem.kernel_size[0], "stride": stem.stride[0],
                     "out": stem.out_channels, "maxpool": hasattr(backbone, "maxpool")},
            "stages": stages}


# ---------------------------------------------------------------------------------------------
# Key mappings pycls -> OpenMMLab of this script's own (only for the numeric checks here).
# ---------------------------------------------------------------------------------------------

_BLOCK_MAP = {"a": "conv1", "a_bn": "bn1", "b": "conv2", "b_bn": "bn2", "c": "conv3",
              "c_bn": "bn3"}


def map_resnet_like(pycls_sd: dict, prefix: str = "", with_fc: bool = False) -> tuple[dict, list]:
    out, unmapped = {}, []
    for key, value in pycls_sd.items():
        parts = key.split(".")
        new = None
        if parts[0] == "stem" and parts[1] in ("conv", "bn"):
            new = ("conv1." if parts[1] == "conv" else "bn1.") + ".".join(parts[2:])
        elif re.fullmatch(r"s\d", parts[0]):
            layer, block = f"layer{parts[0][1:]}", int(parts[1][1:]) - 1
            if parts[2] == "proj":
                new = f"{layer}.{block}.downsample.0.{parts[-1]}"
            elif parts[2] == "bn":
                new = f"{layer}.{block}.downsample.1.{parts[-1]}"
            elif parts[2] == "f" and parts[3] in _BLOCK_MAP and len(parts) == 5:
                new = f"{layer}.{block}.{_BLOCK_MAP[parts[3]]}.{parts[-1]}"
        elif parts[0] == "head" and parts[1] == "fc" and with_fc:
            new = "head.fc." + parts[2]
            out[new] = value
            continue
        if new is None:
            unmapped.append(key)
        else:
            out[prefix + new] = value
    return out, unmapped


def map_positional(pycls_sd: dict, target_sd: dict, prefix: str = "",
                   with_fc: bool = False) -> tuple[dict, list]:
    """EfficientNet: pycls and mmdet/mmpretrain list the same tensors in the same order."""
    src = [(k, v) for k, v in pycls_sd.items() if not k.startswith("head.fc.")]
    dst = [k for k in target_sd if k.startswith(prefix) and not k.startswith("head.")]
    if len(src) != len(dst):
        raise ValueError(f"key count differs: pycls {len(src)} vs target {len(dst)}")
    out = {}
    for (k, v), t in zip(src, dst):
        if tuple(v.shape) != tuple(target_sd[t].shape):
            raise ValueError(f"{k} {tuple(v.shape)} -> {t} {tuple(target_sd[t].shape)}")
        out[t] = v
    if with_fc:
        out["head.fc.weight"] = pycls_sd["head.fc.weight"]
        out["head.fc.bias"] = pycls_sd["head.fc.bias"]
    return out, []


# ---------------------------------------------------------------------------------------------
# Targets.
# ---------------------------------------------------------------------------------------------

def regnet_arch(name: str) -> dict:
    """pycls's RegNet numbers as the ``arch`` dict of mmdet's and mmpretrain's RegNet."""
    depth, w0, wa, wm, gw = zoo.regnet_numbers(name)
    return dict(w0=w0, wa=wa, wm=wm, group_w=gw, depth=depth, bot_mul=1.0)


def mmdet_spec(name: str) -> tuple[type, dict]:
    fam = zoo.family(name)
    if fam in ("regnetx", "regnety"):
        return MMDetRegNet, dict(arch=regnet_arch(name), out_indices=(0, 1, 2, 3))
    if fam == "resnet":
        return MMDetResNet, dict(depth=zoo.resnet_depth(name), style="pytorch",
                                 out_indices=(0, 1, 2, 3))
    if fam == "resnext":
        return MMDetResNeXt, dict(depth=zoo.resnet_depth(name), groups=32, base_width=4,
                                  style="pytorch", out_indices=(0, 1, 2, 3))
    return MMDetEfficientNet, dict(arch=name, conv_cfg=dict(type="Conv2d"),
                                   norm_cfg=dict(type="BN", eps=1e-5, requires_grad=True),
                                   out_indices=(0, 1, 2, 3, 4, 5, 6))


def mmpretrain_backbone_cfg(name: str) -> dict:
    fam = zoo.family(name)
    if fam in ("regnetx", "regnety"):
        return dict(type="RegNet", arch=regnet_arch(name))
    if fam == "resnet":
        return dict(type="ResNet", depth=zoo.resnet_depth(name), style="pytorch")
    if fam == "resnext":
        return dict(type="ResNeXt", depth=zoo.resnet_depth(name), groups=32, width_per_group=4,
                    style="pytorch")
    return dict(type="EfficientNet", arch=name, conv_cfg=dict(type="Conv2d"),
                norm_cfg=dict(type="BN", eps=1e-5))


def mmpretrain_cfg(name: str, head_in: int) -> dict:
    return dict(type="ImageClassifier", backbone=mmpretrain_backbone_cfg(name),
                neck=dict(type="GlobalAveragePooling"),
                head=dict(type="LinearClsHead", num_classes=1000, in_channels=head_in))


def fmt_kwargs(kwargs: dict) -> str:
    def fmt(v):
        if isinstance(v, dict):
            return "dict(" + ", ".join(f"{k}={fmt(x)}" for k, x in v.items()) + ")"
        return repr(v)
    return ", ".join(f"{k}={fmt(v)}" for k, v in kwargs.items())


def jsonable(v):
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def compare_shapes(mapped: dict, target_sd: dict) -> list[str]:
    problems = []
    missing = [k for k in target_sd if k not in mapped]
    extra = [k for k in mapped if k not in target_sd]
    if missing:
        problems.append(f"{len(missing)} target keys without a pycls source, e.g. {missing[:3]}")
    if extra:
        problems.append(f"{len(extra)} mapped pycls keys the target lacks, e.g. {extra[:3]}")
    for k in mapped:
        if k in target_sd and tuple(mapped[k].shape) != tuple(target_sd[k].shape):
            problems.append(f"shape {k}: pycls {tuple(mapped[k].shape)} vs "
                            f"target {tuple(target_sd[k].shape)}")
    return problems


def maxabs(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max())


# ---------------------------------------------------------------------------------------------
# Per-model work.
# ---------------------------------------------------------------------------------------------

def _strip_se(struct: dict) -> dict:
    return {"stem": struct["stem"],
            "stages": [{k: v for k, v in st.items() if k != "se"} for st in struct["stages"]]}


def se_widths(pyc) -> list[list[int]]:
    """pycls RegNetY: the SE squeeze width of every block, per stage."""
    return [[b.f.se.f_ex[0].out_channels for b in st.children()]
            for n, st in pyc.named_children() if re.fullmatch(r"s\d", n)]


def _regnety_refusal_mmdet(name: str, pyc, mapped_unmapped: list, plugin_error: str) -> str:
    n_se = len([k for k in mapped_unmapped if ".se." in k])
    widths = se_widths(pyc)
    return (f"REFUSE: pycls {name} has SE in every block (f.se.f_ex.0/2 conv weight+bias, "
            f"{n_se} tensors); mmdet 3.3.0 RegNet has no SE option (arch dict keys: w0, wa, wm, "
            "group_w, depth, bot_mul only). The same arch builds fine without SE, so a "
            f"conversion would load with {n_se} unexpected keys (strict=True raises; "
            "mmengine's init_cfg Pretrained loads non-strictly and only logs them) and compute "
            "another function. Its generic plugins hook cannot stand in: " + plugin_error +
            "; and pycls sizes the squeeze as round(0.25 * block input width), so a stage's "
            "first block (input = previous stage width) and its other blocks differ, which no "
            f"per-stage plugin ratio reproduces (here, SE widths per stage: {widths}).")


def run_one(name: str, out_root: Path, numerics: bool, x: torch.Tensor,
            facts: dict) -> dict:
    """One zoo model: the pycls model with the recipe weights, then its mmdet backbone, then its
    mmpretrain ImageClassifier (in this order: each build draws from torch's global RNG)."""
    t0 = time.time()
    pyc = build_pycls(name)
    recipe_weights(pyc)
    feats = pycls_features(pyc, x) if numerics else {}
    result = {"mmdet": mmdet_entry(name, pyc, out_root, numerics, x, feats, facts),
              "mmpretrain": mmpretrain_entry(name, pyc, out_root, numerics, x, feats)}
    result["_seconds"] = round(time.time() - t0, 1)
    del pyc
    return result


def manifest_families(fam: str) -> bool:
    """The families whose OpenMMLab key manifests are committed (RegNetY is refused, EfficientNet
    is covered by ../shared/fixtures)."""
    return fam in ("regnetx", "resnet", "resnext")


# ----- mmdet -----

def mmdet_entry(name: str, pyc, out_root: Path, numerics: bool, x: torch.Tensor, feats: dict,
                facts: dict) -> dict:
    """openmmlab_targets.json's mmdet entry of one model (and its manifest)."""
    fam = zoo.family(name)
    cls, kwargs = mmdet_spec(name)
    entry = {"class": f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}",
             "kwargs": jsonable(kwargs)}
    det = cls(**kwargs)
    det.eval()  # mmdet's ResNet.train() returns None, so no chaining
    det_sd = det.state_dict()
    mapped, unmapped, problems, det_struct = mmdet_mapping(fam, pyc, det)
    entry["structure_matches"] = not problems
    notes = []
    if manifest_families(fam):
        src = (f"mmdet {mmdet.__version__} {entry['class']}({fmt_kwargs(kwargs)}); "
               f"{VERSION_STR}")
        n = zoo.write_manifest(out_root / f"tests/data/manifests/mmdet/{name}.json", src,
                               zoo.manifest_rows(det_sd))
        notes.append(f"manifest: {n} keys")
    if fam == "regnety":
        return mmdet_regnety_refusal(name, pyc, det, mapped, unmapped, entry, facts)
    if numerics and entry["structure_matches"]:
        per, numeric_notes = mmdet_numerics(name, fam, det, mapped, x, feats)
        entry["max_abs"] = max(per.values())
        entry["max_abs_per_output"] = per
        notes += numeric_notes
    else:
        entry["max_abs"] = None
        entry["max_abs_per_output"] = None
    notes += mmdet_family_notes(name, fam, det_struct)
    if problems:
        notes.append("; ".join(problems))
    entry["notes"] = "; ".join(notes)
    return entry


def mmdet_mapping(fam: str, pyc, det) -> tuple[dict, list, list, dict | None]:
    """pycls's state dict mapped onto the mmdet backbone: (mapped, pycls keys without a place,
    problems, mmdet's per-stage structure or None for EfficientNet)."""
    pyc_sd, det_sd = pyc.state_dict(), det.state_dict()
    if fam == "effnet":
        mapped, unmapped = map_positional(pyc_sd, det_sd)
    else:
        mapped, unmapped = map_resnet_like(pyc_sd)
        unmapped = [k for k in unmapped if not k.startswith("head.")]
    problems = compare_shapes(mapped, det_sd)
    det_struct = None
    if fam != "effnet":
        ps, det_struct = pycls_structure(pyc), mm_structure(det)
        if ps != det_struct:
            problems.append(f"per-stage structure differs: pycls {ps} vs mmdet {det_struct}")
    if unmapped:
        problems.append(f"{len(unmapped)} pycls tensors have no place in the target, "
                        f"e.g. {unmapped[:2]}")
    return mapped, unmapped, problems, det_struct


def mmdet_numerics(name: str, fam: str, det, mapped: dict, x: torch.Tensor,
                   feats: dict) -> tuple[dict, list]:
    """Load strictly, compare every output with pycls's stage; EfficientNet also with mmdet's
    defaults. Returns (max abs per output, notes)."""
    det.load_state_dict(mapped, strict=True)
    with torch.no_grad():
        outs = det(x)
    if fam == "effnet":
        points = ["stem", "s1", "s2", "s3", "s5", "s7", "head_conv"]
    else:
        points = ["s1", "s2", "s3", "s4"]
    per = {f"out{i}_vs_pycls_{p}": maxabs(o, feats[p])
           for i, (o, p) in enumerate(zip(outs, points))}
    worst = max(per.values())
    notes = ["loaded strictly; " + ("bit-identical to pycls" if worst == 0 else
                                    f"max abs diff {worst:.3g}")]
    if fam == "effnet":
        # Same weights, mmdet's defaults (Conv2dAdaptivePadding, BN eps 1e-3).
        dflt = MMDetEfficientNet(arch=name, out_indices=(0, 1, 2, 3, 4, 5, 6))
        dflt.eval()
        dflt.load_state_dict(mapped, strict=True)
        with torch.no_grad():
            douts = dflt(x)
        dmax = max(maxabs(o, feats[p]) for o, p in zip(douts, points))
        notes.append(f"with mmdet's defaults (Conv2dAdaptivePadding, BN eps 1e-3) the "
                     f"same weights differ by up to {dmax:.3g}")
    return per, notes


def mmdet_family_notes(name: str, fam: str, det_struct: dict | None) -> list:
    """What the notes say of RegNetX (stages, arch_settings name) and EfficientNet (layers)."""
    notes = []
    if fam == "regnetx":
        notes.append(f"per-stage (depth, width, groups): "
                     f"{[(s['depth'], s['width'], s['groups']) for s in det_struct['stages']]}"
                     f"; stem 3x3 s2 {det_struct['stem']['out']} ch = pycls's")
        arch_named = [k for k, v in MMDetRegNet.arch_settings.items()
                      if v == regnet_arch(name)]
        notes.append(f"mmdet arch_settings name: {arch_named[0]!r}" if arch_named else
                     "not in mmdet's RegNet.arch_settings (pass the arch dict)")
    if fam == "effnet":
        notes.append("pycls stem,s1,s2,s3,s5,s7,head conv+BN+Swish = mmdet layers 0..6 "
                     "(pycls s4+s5 -> layers.4, s6+s7 -> layers.5); head.fc dropped")
    return notes


def mmdet_regnety_refusal(name: str, pyc, det, mapped: dict, unmapped: list, entry: dict,
                          facts: dict) -> dict:
    """RegNetY in mmdet: refused, with the probes that say why recorded in ``facts``."""
    pyc_sd, det_sd = pyc.state_dict(), det.state_dict()
    plugin_error = mmdet_se_plugin_probe(name, facts)
    full = dict(mapped, **{k: pyc_sd[k] for k in unmapped})
    strict_msg = strict_load_message(det, full)
    entry["structure_matches"] = False
    entry["max_abs"] = None
    entry["max_abs_per_output"] = None
    entry["notes"] = _regnety_refusal_mmdet(name, pyc, unmapped, plugin_error)
    facts.setdefault("regnety_probes", {})[name] = {
        "se_tensors": len([k for k in unmapped if ".se." in k]),
        "non_se_structure_matches": (
            _strip_se(pycls_structure(pyc)) == _strip_se(mm_structure(det))
            and not compare_shapes(mapped, det_sd)),
        "strict_load_error": strict_msg, "plugin_probe": plugin_error,
        "se_widths_per_stage": se_widths(pyc)}
    return entry


def mmdet_se_plugin_probe(name: str, facts: dict) -> str:
    """Can mmdet's plugin mechanism add an SE after conv2 (mmdet's own SELayer)? The answer's text.

    mmdet's RegNet sets resnext.Bottleneck.expansion = 1 (a class attribute) while it builds and
    restores it only on success: a failed build leaves every later mmdet ResNeXt in this process
    with expansion 1. Saved and restored around the probe (the leak is recorded in ``facts``)."""
    from mmdet.models.backbones import resnext as _mmdet_resnext
    expansion_before = _mmdet_resnext.Bottleneck.expansion
    try:
        c2, k2 = mmdet_spec(name)
        k2 = dict(k2, plugins=[dict(cfg=dict(type="SELayer", ratio=4),
                                    stages=(True, True, True, True),
                                    position="after_conv2")])
        c2(**k2)
        plugin_error = "an SELayer plugin builds (unexpectedly)"
    except Exception as exc:  # noqa: BLE001 - recorded as a fact
        plugin_error = (f"plugins=[dict(cfg=dict(type='SELayer', ratio=4), "
                        f"position='after_conv2')] raises {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160]} (mmdet's SELayer is not "
                        "registered in any MODELS registry, so mmcv's build_plugin_layer "
                        "cannot find it)")
    finally:
        leaked = _mmdet_resnext.Bottleneck.expansion
        _mmdet_resnext.Bottleneck.expansion = expansion_before
    facts["mmdet_regnet_failed_build_leaves_expansion"] = (
        f"resnext.Bottleneck.expansion was {expansion_before}, {leaked} after the failed "
        "RegNet build (restored here)")
    return plugin_error


def strict_load_message(det, full: dict) -> str:
    """What a strict load of every pycls tensor says (then loaded non-strictly, as mmengine would)."""
    try:
        det.load_state_dict(full, strict=True)
        return "strict load passed (unexpected)"
    except RuntimeError as exc:
        res = det.load_state_dict(full, strict=False)
        return (f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]} "
                f"{len(res.unexpected_keys)} unexpected (e.g. "
                f"{res.unexpected_keys[:1]}), {len(res.missing_keys)} missing")


# ----- mmpretrain -----

def mmpretrain_entry(name: str, pyc, out_root: Path, numerics: bool, x: torch.Tensor,
                     feats: dict) -> dict:
    """openmmlab_targets.json's mmpretrain entry of one model (and its manifest)."""
    fam = zoo.family(name)
    head_in = pyc.head.fc.in_features
    pcfg = mmpretrain_cfg(name, head_in)
    pentry = {"class": "mmpretrain.models.classifiers.ImageClassifier",
              "kwargs": jsonable({k: v for k, v in pcfg.items() if k != "type"})}
    pre = MMPRE_MODELS.build(pcfg)
    pre.eval()
    pre_sd = pre.state_dict()
    pmapped, punmapped, pproblems = mmpretrain_mapping(fam, pyc, pre)
    pentry["structure_matches"] = not pproblems
    pnotes = []
    if manifest_families(fam):
        bcfg = pcfg["backbone"]
        src = (f"mmpretrain {mmpretrain.__version__} ImageClassifier(backbone="
               f"{bcfg['type']}({fmt_kwargs({k: v for k, v in bcfg.items() if k != 'type'})}), "
               f"neck=GlobalAveragePooling, head=LinearClsHead(num_classes=1000, "
               f"in_channels={head_in})); {VERSION_STR}")
        n = zoo.write_manifest(out_root / f"tests/data/manifests/mmpretrain/{name}.json", src,
                               zoo.manifest_rows(pre_sd))
        pnotes.append(f"manifest: {n} keys")
    if fam == "regnety":
        return mmpretrain_regnety_refusal(pentry, punmapped)
    if numerics and pentry["structure_matches"]:
        pre.load_state_dict(pmapped, strict=True)
        with torch.no_grad():
            logits = pre(x, mode="tensor")
        pentry["max_abs"] = maxabs(logits, feats["logits"])
        pentry["max_abs_per_output"] = {"logits": pentry["max_abs"]}
        pnotes.append("loaded strictly; logits " + (
            "bit-identical to pycls" if pentry["max_abs"] == 0 else
            f"differ by up to {pentry['max_abs']:.3g}"))
    else:
        pentry["max_abs"] = None
        pentry["max_abs_per_output"] = None
    if pproblems:
        pnotes.append("; ".join(pproblems))
    pentry["notes"] = "; ".join(pnotes)
    return pentry


def mmpretrain_mapping(fam: str, pyc, pre) -> tuple[dict, list, list]:
    """pycls's state dict mapped onto the ImageClassifier: (mapped, pycls keys without a place,
    problems)."""
    pyc_sd, pre_sd = pyc.state_dict(), pre.state_dict()
    if fam == "effnet":
        pmapped, punmapped = map_positional(pyc_sd, pre_sd, prefix="backbone.", with_fc=True)
    else:
        bb, punmapped = map_resnet_like(pyc_sd)
        pmapped = {"backbone." + k: v for k, v in bb.items()}
        pmapped["head.fc.weight"] = pyc_sd["head.fc.weight"]
        pmapped["head.fc.bias"] = pyc_sd["head.fc.bias"]
        punmapped = [k for k in punmapped if not k.startswith("head.")]
    pproblems = compare_shapes(pmapped, pre_sd)
    if fam != "effnet":
        ps, ms = pycls_structure(pyc), mm_structure(pre.backbone)
        if ps != ms:
            pproblems.append(f"per-stage structure differs: pycls {ps} vs mmpretrain {ms}")
    if punmapped:
        pproblems.append(f"{len(punmapped)} pycls tensors have no place in the target, "
                         f"e.g. {punmapped[:2]}")
    return pmapped, punmapped, pproblems


def mmpretrain_regnety_refusal(pentry: dict, punmapped: list) -> dict:
    """RegNetY in mmpretrain: refused (its RegNet has no SE at all)."""
    pentry["structure_matches"] = False
    pentry["max_abs"] = None
    pentry["max_abs_per_output"] = None
    n_se = len([k for k in punmapped if ".se." in k])
    pentry["notes"] = (
        f"REFUSE: mmpretrain {mmpretrain.__version__} RegNet has no SE at all (no se/plugins "
        "argument; arch_settings are regnetx_* only), so pycls RegNetY's "
        f"{n_se} SE tensors have no place and the model would compute another function. "
        "mmpretrain's other SE backbones (SEResNet/SEResNeXt) are ResNet-shaped, not "
        "RegNet-shaped; RegNetY in mmpretrain only via TIMMBackbone (timm's regnety_*).")
    return pentry


# ---------------------------------------------------------------------------------------------
# Facts that are not per model.
# ---------------------------------------------------------------------------------------------

def _signature_defaults(cls) -> dict:
    """Constructor defaults, following **kwargs into the parent's __init__."""
    out = {}
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        for p in params.values():
            if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in out:
                continue
            out[p.name] = (repr(p.default) if p.default is not inspect.Parameter.empty
                           else "<required>")
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return out


def backbone_facts() -> dict:
    """The six ResNet-shaped backbone classes as built (defaults, stem, strides, BN, keys), and
    which arguments they take."""
    specs = {
        "mmdet.RegNet": (MMDetRegNet, dict(arch="regnetx_400mf")),
        "mmdet.ResNet": (MMDetResNet, dict(depth=50)),
        "mmdet.ResNeXt": (MMDetResNeXt, dict(depth=50, groups=32, base_width=4)),
        "mmpretrain.RegNet": (MMPreRegNet, dict(arch="regnetx_400mf")),
        "mmpretrain.ResNet": (MMPreResNet, dict(depth=50)),
        "mmpretrain.ResNeXt": (MMPreResNeXt, dict(depth=50)),
    }
    facts = {label: built_backbone_facts(cls, kw) for label, (cls, kw) in specs.items()}
    # mmpretrain ResNeXt with mmdet's kwarg name
    try:
        MMPreResNeXt(depth=50, groups=32, base_width=4)
        facts["mmpretrain.ResNeXt"]["base_width_kwarg"] = "accepted"
    except Exception as exc:  # noqa: BLE001
        facts["mmpretrain.ResNeXt"]["base_width_kwarg"] = f"{type(exc).__name__}: {exc}"
    # mmdet ResNeXt without groups
    m = MMDetResNeXt(depth=50)
    facts["mmdet.ResNeXt"]["default_groups_build"] = {
        "layer1.0.conv2": repr(m.layer1[0].conv2)}
    facts["arch_settings_vs_pycls"] = arch_settings_vs_pycls()
    # does either RegNet accept SE-ish args?
    for label, cls in (("mmdet.RegNet", MMDetRegNet), ("mmpretrain.RegNet", MMPreRegNet)):
        params = inspect.signature(cls.__init__).parameters
        facts[label]["has_plugins_arg"] = "plugins" in params
        facts[label]["has_se_arg"] = any("se" == p or p.startswith("se_") for p in params)
    facts["mmpretrain_backbones_with_se"] = sorted(
        n for n in dir(mmpretrain.models.backbones) if "SE" in n or "RegNet" in n or "TIMM" in n)
    return facts


def built_backbone_facts(cls, kw: dict) -> dict:
    """One backbone class built with ``kw``: its signature defaults and what it built."""
    m = cls(**kw)
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    acts = sorted({type(mod).__name__ for mod in m.modules()
                   if isinstance(mod, (torch.nn.ReLU, torch.nn.SiLU, torch.nn.Sigmoid))})
    l2 = m.layer2[0]
    sd = list(m.state_dict())
    facts = {
        "signature_defaults": _signature_defaults(cls),
        "built_with": kw,
        "instance": {a: jsonable(getattr(m, a, None)) for a in (
            "stem_channels", "base_channels", "deep_stem", "avg_down", "style",
            "frozen_stages", "norm_eval", "norm_cfg", "out_indices", "strides",
            "zero_init_residual")},
        "stem": {"conv1": repr(m.conv1), "maxpool": repr(getattr(m, "maxpool", None))},
        "layer2.0 strides (conv1, conv2, downsample.0)": [
            list(l2.conv1.stride), list(l2.conv2.stride),
            list(l2.downsample[0].stride) if l2.downsample is not None else None],
        "bn_eps": sorted({b.eps for b in bns}), "bn_momentum": sorted({b.momentum for b in bns}),
        "activations": acts,
        "first_keys": sd[:8],
        "layer1.0 keys": [k for k in sd if k.startswith("layer1.0.")],
    }
    if hasattr(cls, "arch_settings"):
        facts["arch_settings_keys"] = [str(k) for k in cls.arch_settings]
    return facts


def arch_settings_vs_pycls() -> dict:
    """Each RegNet arch_settings entry of mmdet and mmpretrain against pycls's RegNetX numbers."""
    cmp = {}
    for label, cls in (("mmdet", MMDetRegNet), ("mmpretrain", MMPreRegNet)):
        for k, v in cls.arch_settings.items():
            ours = regnet_arch(k) if k.split("_")[1] in zoo.REGNETX else None
            cmp[f"{label}:{k}"] = "same as pycls RegNetX yaml" if ours == v else f"DIFFERS {v} vs {ours}"
    return cmp


def effnet_probe() -> dict:
    """mmdet EfficientNet with out_indices=(3,4,5): which layers exist, what a full ckpt logs."""
    out = {}
    for arch in ("b0", "b3"):
        m = MMDetEfficientNet(arch=arch, out_indices=(3, 4, 5))
        top = sorted({int(k.split(".")[1]) for k in m.state_dict() if k.startswith("layers.")})
        full = MMDetEfficientNet(arch=arch, out_indices=(0, 1, 2, 3, 4, 5, 6))
        full_sd = full.state_dict()
        extra = [k for k in full_sd if k not in m.state_dict()]
        # real loading path: init_cfg Pretrained with prefix='backbone' from a file
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ckpt.pth")
            torch.save({"state_dict": {"backbone." + k: v for k, v in full_sd.items()}}, path)
            probe = MMDetEfficientNet(arch=arch, out_indices=(3, 4, 5), init_cfg=dict(
                type="Pretrained", prefix="backbone", checkpoint=path))
            logger = MMLogger.get_current_instance()
            buf = io.StringIO()
            handler = logging.StreamHandler(buf)
            saved_handlers, saved_level = logger.handlers[:], logger.level
            logger.handlers[:] = [handler]
            logger.setLevel(logging.WARNING)
            try:
                probe.init_weights()
            finally:
                logger.handlers[:] = saved_handlers
                logger.setLevel(saved_level)
            log = buf.getvalue()
        out[arch] = {
            "layers_built": top, "n_keys": len(m.state_dict()),
            "keys_of_full_model_absent": len(extra),
            "absent_prefixes": sorted({".".join(k.split(".")[:2]) for k in extra}),
            "init_cfg_load_log_unexpected_line": next(
                (ln.strip()[:200] for ln in log.splitlines() if "unexpected key" in ln), None),
            "init_cfg_load_raised": False,
        }
        out[arch]["strict_load_error"] = None
        try:
            m.load_state_dict(full_sd, strict=True)
        except RuntimeError as exc:
            out[arch]["strict_load_error"] = str(exc).splitlines()[0][:160] + " ..."
    return out


def config_facts() -> dict:
    out = {"mmdet": {}, "mmpretrain": {}}
    droot = Path(mmdet.__file__).parent / ".mim" / "configs"
    files = (["_base_/models/retinanet_r50_fpn.py"]
             + sorted(str(p.relative_to(droot)) for p in (droot / "regnet").glob("*.py"))
             + ["efficientnet/retinanet_effb3_fpn_8xb4-crop896-1x_coco.py"])
    for f in files:
        c = Config.fromfile(str(droot / f))
        m = c.model
        dp = dict(m.get("data_preprocessor", {}))
        out["mmdet"][f] = {
            "data_preprocessor": {k: dp.get(k) for k in ("type", "mean", "std", "bgr_to_rgb")},
            "backbone": jsonable(c.to_dict()["model"]["backbone"]),
            "neck_in_channels": m.neck.get("in_channels") if "neck" in m else None,
        }
    proot = Path(mmpretrain.__file__).parent / ".mim" / "configs"
    pfiles = (sorted(str(p.relative_to(proot)) for p in (proot / "regnet").glob("*.py"))
              + [f"resnet/resnet{d}_8xb32_in1k.py" for d in (50, 101, 152)]
              + [f"resnext/resnext{d}-32x4d_8xb32_in1k.py" for d in (50, 101, 152)]
              + [f"efficientnet/efficientnet-b{b}_8xb32{s}_in1k.py" for b in range(6)
                 for s in ("", "-01norm")])
    for f in pfiles:
        if not (proot / f).exists():
            out["mmpretrain"][f] = "missing"
            continue
        c = Config.fromfile(str(proot / f))
        dp = dict(c.get("data_preprocessor", {}))
        out["mmpretrain"][f] = {
            "data_preprocessor": {k: dp.get(k) for k in ("type", "mean", "std", "to_rgb")},
            "backbone": jsonable(c.to_dict()["model"]["backbone"]),
            "head_in_channels": c.model.head.get("in_channels"),
        }
    hub = json.loads((Path(mmengine.__file__).parent / "hub" / "openmmlab.json").read_text())
    out["open-mmlab://"] = {k: v for k, v in hub.items() if "regnet" in k.lower()}
    return out


# ---------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=zoo.REPO_ROOT)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--no-numerics", action="store_true")
    ap.add_argument("--facts-out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    logging.getLogger("mmengine").setLevel(logging.ERROR)

    names = args.only or zoo.NAMES
    for n in names:
        if n not in zoo.NAMES:
            ap.error(f"unknown name {n}")
    x = make_input()
    facts: dict = {"versions": VERSIONS}
    targets_path = args.out / "tests/data/openmmlab_targets.json"
    targets = {}
    if args.only and targets_path.exists():
        targets = json.loads(targets_path.read_text()).get("models", {})
    for n in names:
        res = run_one(n, args.out, not args.no_numerics, x, facts)
        secs = res.pop("_seconds")
        targets[n] = res
        d, p = res["mmdet"], res["mmpretrain"]
        print(f"{n:18s} mmdet: struct={d['structure_matches']!s:5} max_abs={d['max_abs']}  "
              f"mmpretrain: struct={p['structure_matches']!s:5} max_abs={p['max_abs']}  "
              f"({secs}s)", flush=True)
    doc = {
        "source": f"tools/groundtruth/openmmlab.py; {VERSION_STR}",
        "input": "np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(float32)",
        "weights": "pycls_zoo.py recipe (np.random.default_rng(0) over model.state_dict())",
        "max_abs": ("mmdet: max over out_indices 0..3 vs pycls s1..s4 (EfficientNet: layers "
                    "0..6 vs stem,s1,s2,s3,s5,s7,head conv); mmpretrain: logits vs pycls "
                    "logits; null = not computed (refused or structure mismatch)"),
        "models": {n: targets[n] for n in zoo.NAMES if n in targets},
    }
    targets_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = targets_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, targets_path)
    if args.facts_out:
        facts["backbones"] = backbone_facts()
        facts["efficientnet_out_indices_345"] = effnet_probe()
        facts["configs"] = config_facts()
        args.facts_out.parent.mkdir(parents=True, exist_ok=True)
        args.facts_out.write_text(json.dumps(jsonable(facts), indent=1, default=repr) + "\n")
        print(f"facts -> {args.facts_out}")
    print(f"targets -> {targets_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
