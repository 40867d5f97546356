#!/usr/bin/env python3
"""Ground truth for the pycls model zoo, made by the real pycls 0.1.1 (PyPI) models.

Builds every one of the 36 pycls zoo models (RegNetX/RegNetY 200MF..32GF, ResNet-50/101/152,
ResNeXt-50/101/152 32x4d, EfficientNet B0..B5) through pycls 0.1.1's own global config and
builder (``reset_cfg``, values set on ``pycls.core.config.cfg``, ``pycls.core.builders.build_model``).
The cfg values are the model-defining lines of pycls's ``configs/dds_baselines/**/*.yaml``
(written out as data in ``zoo.py`` beside this script; no download, no YAML needed), merged the
way a YAML file is (yacs's ``merge_from_list``). What a YAML leaves out comes from
pycls 0.1.1's ``pycls/core/config.py`` defaults, and zoo.json says which values those were.

Writes, under the repository root (or ``--out``):

- ``tests/data/manifests/pycls/<name>.json``: ``{"source": ..., "keys": [[key, shape, dtype], ...]}``
  in ``model.state_dict()`` order (the layout of ``model_state`` in a pycls checkpoint).
- ``tests/data/zoo.json``: per model the zoo name, config file, cfg numbers (YAML + defaults),
  the per-stage numbers pycls actually builds (read off the built modules, after RegNet's
  quantization), parameter/flop counts from pycls's own ``complexity``, and for the numeric
  models the weight checksum and feature statistics.
- ``tests/data/pycls/<name>.features.npz`` for regnetx_200mf, regnety_200mf, resnet50,
  resnext50_32x4d and b0: float32 arrays ``input``, ``stem``, ``s1``..``s4`` (``s1``..``s7`` for
  EfficientNet), ``head_conv`` (EfficientNet only: head 1x1 conv, BN, Swish), ``pool`` (the head's
  global average pool, flattened to (N, C): what the fc sees) and ``logits``.

Weight recipe for the numeric models (reproducible without torch's RNG). One generator per
model, ``rng = np.random.default_rng(0)``; walk the keys of ``model.state_dict()`` in order and
draw, in float64, then cast to float32:

- ``*.num_batches_tracked``  -> 0 (int64 scalar, shape []; draws nothing)
- ``*.running_mean``          -> 0.2 * rng.standard_normal(shape)
- ``*.running_var``           -> rng.uniform(0.5, 1.5, shape)
- BN weight (the 1-D ``.weight`` of a BatchNorm2d) -> 1 + 0.1 * rng.standard_normal(shape)
- any ``.bias`` (BN, SE convs, fc)                 -> 0.05 * rng.standard_normal(shape)
- conv / fc ``.weight``       -> rng.standard_normal(shape) * sqrt(1 / fan_in),
                                 fan_in = prod(shape[1:]) (so a depthwise kxk conv has k*k)

Input: ``x = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)``;
model in eval mode, ``torch.no_grad()``. Features are recorded by forward hooks (cloned, so no
later in-place ReLU can change them). ``weights_sha256`` in zoo.json is the SHA-256 of the
C-order bytes of every state_dict array in order (float32 / int64, native little-endian).

Run (in the torch213 environment, requirements/torch213.txt, where the committed files were made;
README.md beside this file says how to make it), from the repository root:
    .venv/torch213/bin/python tools/groundtruth/pycls_zoo.py [--out DIR] [--only NAME ...]
        [--yaml-dir DIR]   # optional: pycls's configs/ folder; checks zoo.py's tables against it
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pycls.core.builders as builders
import pycls.core.net as net
import pycls.models.regnet as pycls_regnet
import torch
import zoo  # tools/groundtruth/zoo.py: run as a script, this folder is sys.path[0]
from pycls.core.config import cfg, reset_cfg

PYCLS_VERSION = zoo.PYCLS_VERSION

# ---------------------------------------------------------------------------------------------
# The zoo's names, config files and weight files (its numbers are in zoo.py).
# ---------------------------------------------------------------------------------------------

# Zoo weight files, relative to https://dl.fbaipublicfiles.com/pycls/ (pycls/models/model_zoo.py).
_WEIGHTS = {
    "RegNetX-200MF": "160905981", "RegNetX-400MF": "160905967", "RegNetX-600MF": "160906442",
    "RegNetX-800MF": "160906036", "RegNetX-1.6GF": "160990626", "RegNetX-3.2GF": "160906139",
    "RegNetX-4.0GF": "160906383", "RegNetX-6.4GF": "161116590", "RegNetX-8.0GF": "161107726",
    "RegNetX-12GF": "160906020", "RegNetX-16GF": "158460855", "RegNetX-32GF": "158188473",
    "RegNetY-200MF": "176245422", "RegNetY-400MF": "160906449", "RegNetY-600MF": "160981443",
    "RegNetY-800MF": "160906567", "RegNetY-1.6GF": "160906681", "RegNetY-3.2GF": "160906834",
    "RegNetY-4.0GF": "160906838", "RegNetY-6.4GF": "160907112", "RegNetY-8.0GF": "161160905",
    "RegNetY-12GF": "160907100", "RegNetY-16GF": "161303400", "RegNetY-32GF": "161277763",
    "ResNet-50": "161235311", "ResNet-101": "161167170", "ResNet-152": "161167467",
    "ResNeXt-50": "161167411", "ResNeXt-101": "161167590", "ResNeXt-152": "162471172",
    "EfficientNet-B0": "161305613", "EfficientNet-B1": "161304979",
    "EfficientNet-B2": "161305015", "EfficientNet-B3": "161305060",
    "EfficientNet-B4": "161305098", "EfficientNet-B5": "161305138",
}
WEIGHTS_URL = "https://dl.fbaipublicfiles.com/pycls/"

RECIPE_END = "\nRun ("  # zoo.json quotes this docstring from "Weight recipe" up to here

NUMERIC_MODELS = ["regnetx_200mf", "regnety_200mf", "resnet50", "resnext50_32x4d", "b0"]

# cfg keys that define a model (besides the family namespace), recorded with their values.
_COMMON_DEFAULT_KEYS = ["BN.EPS", "BN.MOM", "MEM.RELU_INPLACE"]


def _zoo_entry(name: str) -> dict:
    """zoo_name, config, yaml (the model-defining YAML lines), master_only_keys, weights_file."""
    fam = zoo.family(name)
    if fam in ("regnetx", "regnety"):
        zoo_name = f"RegNet{fam[-1].upper()}-{name.split('_')[1].upper()}"
        config = f"configs/dds_baselines/{fam}/{zoo_name}_dds_8gpu.yaml"
    elif fam in ("resnet", "resnext"):
        depth = zoo.resnet_depth(name)
        zoo_name = f"{'ResNet' if fam == 'resnet' else 'ResNeXt'}-{depth}"
        stem = f"R-{depth}-1x64d" if fam == "resnet" else f"X-{depth}-32x4d"
        config = f"configs/dds_baselines/{fam}/{stem}_dds_8gpu.yaml"
    else:
        zoo_name = f"EfficientNet-{name.upper()}"
        config = f"configs/dds_baselines/effnet/EN-{name.upper()}_dds_8gpu.yaml"
    return {"zoo_name": zoo_name, "config": config, "yaml": zoo.yaml_values(name),
            "master_only_keys": {"MODEL.ACTIVATION_FUN": "silu"} if fam == "effnet" else {},
            "weights_file": f"dds_baselines/{_WEIGHTS[zoo_name]}/{Path(config).stem}.pyth"}


# ---------------------------------------------------------------------------------------------
# pycls cfg handling
# ---------------------------------------------------------------------------------------------

def _family_ns(model_type: str) -> str:
    return {"regnet": "REGNET", "anynet": "ANYNET", "effnet": "EN"}[model_type]


def set_cfg(entry: dict) -> dict:
    """Reset pycls's global cfg to its 0.1.1 defaults and apply the YAML values; return the
    family's namespace values and which keys came from config.py's defaults."""
    reset_cfg()
    cfg.defrost()
    zoo.merge_values(cfg, entry["yaml"])  # through yacs's type checks, like merge_from_file
    ns = _family_ns(entry["yaml"]["MODEL.TYPE"])
    values = {k: zoo.plain(v) for k, v in cfg[ns].items()}
    defaults = {f"{ns}.{k}": zoo.plain(v) for k, v in cfg[ns].items()
                if f"{ns}.{k}" not in entry["yaml"]}
    for key in _COMMON_DEFAULT_KEYS:
        defaults[key] = zoo.plain(zoo.cfg_get(cfg, key))
    return {"ns": ns, "values": values, "defaults": defaults}


def check_against_yaml(entries: dict, yaml_dir: Path) -> list[str]:
    """Merge each real YAML into a reset 0.1.1 cfg (dropping keys 0.1.1 does not know) and
    compare the model-defining namespaces with the programmatic cfg. Returns report lines."""
    from yacs.config import CfgNode

    lines = []
    sections = ["MODEL", "REGNET", "ANYNET", "EN", "RESNET", "BN", "MEM"]
    for name, entry in entries.items():
        path = yaml_dir / Path(entry["config"]).relative_to("configs")
        with open(path) as f:
            loaded = CfgNode.load_cfg(f)
        unknown = []
        for sec in list(loaded.keys()):
            if sec not in cfg:
                unknown.append(sec)
                del loaded[sec]
                continue
            if isinstance(loaded[sec], CfgNode):
                for k in list(loaded[sec].keys()):
                    if k not in cfg[sec]:
                        unknown.append(f"{sec}.{k}={loaded[sec][k]}")
                        del loaded[sec][k]
        reset_cfg()
        cfg.merge_from_other_cfg(loaded)
        from_yaml = {s: cfg[s].clone() for s in sections}
        from_yaml["IM"] = (cfg.TRAIN.IM_SIZE, cfg.TEST.IM_SIZE)
        set_cfg(entry)
        for s in sections:
            assert cfg[s] == from_yaml[s], (name, s, cfg[s], from_yaml[s])
        assert (cfg.TRAIN.IM_SIZE, cfg.TEST.IM_SIZE) == from_yaml["IM"], name
        expected_unknown = [f"{k}={v}" for k, v in entry["master_only_keys"].items()]
        lines.append(f"{name}: {path.name} matches; keys unknown to pycls 0.1.1: "
                     f"{unknown or 'none'}"
                     + ("" if not unknown or unknown == expected_unknown else "  <-- UNEXPECTED"))
    return lines


# ---------------------------------------------------------------------------------------------
# Reading the built model
# ---------------------------------------------------------------------------------------------

def _stages(model) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in model.named_children() if n.startswith("s") and n[1:].isdigit()]


def anynet_built(model) -> dict:
    """Per-stage numbers of a built pycls 0.1.1 AnyNet/RegNet, read off its modules."""
    stem = model.stem
    stem_layers = [n for n, _ in stem.named_children()]
    out = {
        "stem": {"type": type(stem).__name__, "layers": stem_layers,
                 "w": stem.conv.out_channels, "kernel": stem.conv.kernel_size[0],
                 "stride": stem.conv.stride[0], "padding": stem.conv.padding[0],
                 "maxpool": ({"kernel": stem.pool.kernel_size, "stride": stem.pool.stride,
                              "padding": stem.pool.padding} if hasattr(stem, "pool") else None)},
        "block_type": None,
        "stages": [],
    }
    names = ["depths", "widths", "strides", "bot_muls", "bottleneck_widths", "group_ws",
             "groups", "se_widths_first_block", "se_widths_other_blocks"]
    lists = {k: [] for k in names}
    for sname, stage in _stages(model):
        blocks = list(stage.children())
        b1 = blocks[0]
        out["block_type"] = type(b1).__name__
        f = b1.f
        w_out = f.c.out_channels
        w_b = f.a.out_channels
        groups = f.b.groups
        se_first = f.se.f_ex[0].out_channels if hasattr(f, "se") else 0
        se_rest = sorted({blk.f.se.f_ex[0].out_channels for blk in blocks[1:]
                          if hasattr(blk.f, "se")})
        strides = [blk.f.b.stride[0] for blk in blocks]
        assert strides[1:] == [1] * (len(blocks) - 1)
        assert all(blk.f.a.stride[0] == 1 and blk.f.c.stride[0] == 1 for blk in blocks)
        proj = [i + 1 for i, blk in enumerate(blocks) if getattr(blk, "proj_block", False)]
        assert proj in ([], [1])
        stage_info = {
            "name": sname, "depth": len(blocks), "width": w_out, "stride": strides[0],
            "bot_mul": w_b / w_out, "bottleneck_width": w_b, "group_w": w_b // groups,
            "groups": groups, "se_width_first_block": se_first,
            "se_width_other_blocks": se_rest[0] if se_rest else (0 if len(blocks) > 1 else None),
            "first_block_has_proj": proj == [1],
            "first_block_w_in": f.a.in_channels,
        }
        out["stages"].append(stage_info)
        for k, v in (("depths", len(blocks)), ("widths", w_out), ("strides", strides[0]),
                     ("bot_muls", w_b / w_out), ("bottleneck_widths", w_b),
                     ("group_ws", w_b // groups), ("groups", groups),
                     ("se_widths_first_block", se_first),
                     ("se_widths_other_blocks", stage_info["se_width_other_blocks"])):
            lists[k].append(v)
    out.update(lists)
    head = model.head
    out["head"] = {"type": type(head).__name__,
                   "layers": [n for n, _ in head.named_children()],
                   "fc": [head.fc.in_features, head.fc.out_features]}
    return out


def effnet_built(model) -> dict:
    stem = model.stem
    out = {"stem": {"type": type(stem).__name__,
                    "layers": [n for n, _ in stem.named_children()],
                    "w": stem.conv.out_channels, "kernel": stem.conv.kernel_size[0],
                    "stride": stem.conv.stride[0], "padding": stem.conv.padding[0]},
           "stages": []}
    for sname, stage in _stages(model):
        blocks = list(stage.children())
        b1 = blocks[0]
        w_in = b1.dwise.in_channels if b1.exp is None else b1.exp.in_channels
        w_exp = b1.dwise.out_channels
        out["stages"].append({
            "name": sname, "depth": len(blocks), "width": b1.lin_proj.out_channels,
            "first_block_w_in": w_in, "exp_width_first_block": w_exp,
            "exp_ratio": w_exp / w_in, "kernel": b1.dwise.kernel_size[0],
            "padding": b1.dwise.padding[0], "stride": b1.dwise.stride[0],
            "se_width_first_block": b1.se.f_ex[0].out_channels,
            "se_width_other_blocks": (blocks[1].se.f_ex[0].out_channels
                                      if len(blocks) > 1 else None),
            "blocks_with_exp": [i + 1 for i, blk in enumerate(blocks) if blk.exp is not None],
            "blocks_with_skip": [i + 1 for i, blk in enumerate(blocks) if blk.has_skip],
        })
    head = model.head
    out["head"] = {"type": type(head).__name__,
                   "layers": [n for n, _ in head.named_children()],
                   "conv": [head.conv.in_channels, head.conv.out_channels],
                   "fc": [head.fc.in_features, head.fc.out_features]}
    return out


def regnet_quantization() -> dict:
    """The intermediate numbers of pycls 0.1.1's RegNet generator for the current cfg."""
    r = cfg.REGNET
    ws, num_stages, max_stage, ws_cont = pycls_regnet.generate_regnet(r.WA, r.W0, r.WM, r.DEPTH)
    s_ws, s_ds = pycls_regnet.get_stages_from_blocks(ws, ws)
    args = pycls_regnet.RegNet.get_args()
    return {
        "per_block_widths_continuous": [round(float(w), 6) for w in ws_cont],
        "per_block_widths_quantized": [int(w) for w in ws],
        "num_stages": int(num_stages), "max_stage": float(max_stage),
        "stage_widths_before_group_adjust": [int(w) for w in s_ws],
        "stage_depths": [int(d) for d in s_ds],
        "get_args": {k: zoo.plain(v) for k, v in args.items()},
    }


# ---------------------------------------------------------------------------------------------
# Weights, features, files
# ---------------------------------------------------------------------------------------------

def recipe_state(model) -> dict[str, np.ndarray]:
    """The documented numpy weight recipe (see the module docstring; zoo.recipe_state draws it),
    once every weight is known to be a BatchNorm2d's (1-D) or a conv's / fc's (not 1-D)."""
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


def weights_sha256(state: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for arr in state.values():
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def features(model, family: str) -> dict[str, np.ndarray]:
    x = zoo.recipe_input()
    recorded: dict[str, torch.Tensor] = {}
    hooks = []

    def keep(name, flatten=False):
        def hook(_module, _inp, out):
            out = out.detach().clone()
            recorded[name] = out.reshape(out.shape[0], -1) if flatten else out
        return hook

    hooks.append(model.stem.register_forward_hook(keep("stem")))
    for sname, stage in _stages(model):
        hooks.append(stage.register_forward_hook(keep(sname)))
    if family == "effnet":
        hooks.append(model.head.conv_swish.register_forward_hook(keep("head_conv")))
    hooks.append(model.head.avg_pool.register_forward_hook(keep("pool", flatten=True)))
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x.copy()))
    for h in hooks:
        h.remove()
    out = {"input": x}
    order = ["stem"] + [n for n, _ in _stages(model)] + (["head_conv"] if family == "effnet"
                                                         else []) + ["pool"]
    for name in order:
        out[name] = recorded[name].numpy().astype(np.float32)
    out["logits"] = logits.numpy().astype(np.float32)
    for name, arr in out.items():
        assert np.isfinite(arr).all(), f"{name}: not finite"
        assert np.abs(arr).max() > 0, f"{name}: all zero"
    return out


def dumps(obj, indent: int = 0) -> str:
    """JSON with dicts one key a line and lists of scalars on one line (short, diff-friendly)."""
    pad = "  " * (indent + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{pad}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        items = [f"{pad}{dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(obj)


def build(name: str, entry: dict) -> tuple[torch.nn.Module, dict]:
    info = set_cfg(entry)
    torch.manual_seed(0)  # pycls's own init draws from torch; the recipe replaces it anyway
    model = builders.build_model()
    model.eval()
    return model, info


def main(argv=None) -> int:
    args = parse_args(argv)
    from importlib.metadata import version

    assert version("pycls") == PYCLS_VERSION, version("pycls")
    entries = {name: _zoo_entry(name) for name in zoo.NAMES}
    assert len(entries) == 36
    if args.yaml_dir:
        for line in check_against_yaml(entries, args.yaml_dir):
            print("yaml:", line)
    names = args.only or list(entries)
    zoo_json_path = args.out / "tests/data/zoo.json"
    result = json.loads(zoo_json_path.read_text())["models"] if (
        args.only and zoo_json_path.exists()) else {}
    for name in names:
        result[name] = model_record(name, entries[name], args.out)
    write_zoo_json(zoo_json_path, {n: result[n] for n in entries if n in result})
    return 0


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=zoo.REPO_ROOT,
                    help="repository root to write under")
    ap.add_argument("--only", nargs="*", help="model names (default: all 36)")
    ap.add_argument("--yaml-dir", type=Path,
                    help="pycls's configs/ folder: check zoo.py's tables against the real YAMLs")
    return ap.parse_args(argv)


def model_record(name: str, entry: dict, out_root: Path) -> dict:
    """Build one zoo model, write its manifest (and, for the numeric models, its features) under
    ``out_root``; return its zoo.json record."""
    model, info = build(name, entry)
    mtype = entry["yaml"]["MODEL.TYPE"]
    cls = type(model)
    source = (f"pycls {PYCLS_VERSION} {cls.__module__}.{cls.__name__} "
              f"(pycls.core.builders.build_model), {entry['config']} "
              f"(cfg set programmatically; torch {torch.__version__}; "
              f"tools/groundtruth/pycls_zoo.py)")
    n_keys = zoo.write_manifest(out_root / f"tests/data/manifests/pycls/{name}.json", source,
                                zoo.manifest_rows(model.state_dict()))
    cx = net.complexity(cls)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == cx["params"], (name, n_params, cx)
    rec = {
        "zoo_name": entry["zoo_name"],
        "config": entry["config"],
        "weights_file": entry["weights_file"],
        "model_type": mtype,
        "pycls_class": f"{cls.__module__}.{cls.__name__}",
        "num_classes": cfg.MODEL.NUM_CLASSES,
        info["ns"].lower(): info["values"],
        "cfg_from_yaml": entry["yaml"],
        "cfg_from_config_py_defaults": info["defaults"],
        "master_only_keys": entry["master_only_keys"],
        "train_im_size": cfg.TRAIN.IM_SIZE,
        "test_im_size": cfg.TEST.IM_SIZE,
        "num_state_keys": n_keys,
        "complexity_at_train_im_size": {k: int(v) for k, v in cx.items()},
        "built": built_numbers(name, model, mtype),
    }
    if mtype == "regnet":
        rec["regnet_quantization"] = regnet_quantization()
    if name in NUMERIC_MODELS:
        rec["numeric"] = numeric_record(name, model, mtype, out_root)
    print(f"{name:18s} {cls.__name__:7s} keys={n_keys:4d} params={n_params:>10,d} "
          f"flops={cx['flops'] / 1e9:6.3f}G"
          + (f" depths={rec['built']['depths']} widths={rec['built']['widths']}"
             f" gws={rec['built']['group_ws']}" if mtype != "effnet" else ""),
          flush=True)
    del model
    return rec


def built_numbers(name: str, model, mtype: str) -> dict:
    """The per-stage numbers read off the built modules; for AnyNet/RegNet/ResNet checked against
    the arguments pycls's own get_args() computed, with its se_r."""
    if mtype == "effnet":
        return effnet_built(model)
    b = anynet_built(model)
    args_used = (pycls_regnet.RegNet.get_args() if mtype == "regnet"
                 else type(model).get_args())
    assert b["depths"] == list(args_used["ds"]), name
    assert b["widths"] == list(args_used["ws"]), name
    assert b["strides"] == list(args_used["ss"]), name
    assert b["group_ws"] == list(args_used["gws"]), name
    assert b["bot_muls"] == list(args_used["bms"]), name
    b["se_r"] = args_used["se_r"]
    return b


def numeric_record(name: str, model, mtype: str, out_root: Path) -> dict:
    """Give the model the recipe weights, write its features npz, return zoo.json's ``numeric``."""
    state = recipe_state(model)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    feats = features(model, mtype)
    npz = out_root / f"tests/data/pycls/{name}.features.npz"
    npz.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz, **feats)
    return {
        "features_file": f"tests/data/pycls/{name}.features.npz",
        "weights_sha256": weights_sha256(state),
        "feature_stats": {k: {"shape": list(v.shape), "mean": float(v.mean()),
                              "std": float(v.std()), "absmax": float(np.abs(v).max()),
                              "frac_zero": float((v == 0).mean())}
                          for k, v in feats.items()},
    }


def write_zoo_json(path: Path, models: dict) -> None:
    """zoo.json: the records, with the weight recipe quoted from this file's docstring."""
    doc = {
        "source": (f"pycls {PYCLS_VERSION} (PyPI), torch {torch.__version__}, "
                   f"tools/groundtruth/pycls_zoo.py; cfg = pycls dds_baselines YAML values "
                   f"(commit 4cf2524 = the 0.1.1 release) + pycls 0.1.1 config.py defaults"),
        "weights_url_prefix": WEIGHTS_URL,
        "weight_recipe": "Weight recipe for the numeric models "
                         + __doc__.split("Weight recipe for the numeric models ")[1]
                                  .split(RECIPE_END)[0].strip(),
        "models": models,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(doc) + "\n")


if __name__ == "__main__":
    sys.exit(main())
