#!/usr/bin/env python3
"""Ground truth: custom (non-zoo) pycls models load strictly in the REAL timm, torchvision, mmdet and
mmpretrain through the config / snippet ``ckptconv convert`` prints, and compute pycls's outputs.

Part of the ground truth the test suite holds ckptconv to (README.md beside this file; not part of
the ckptconv package). ckptconv is not installed in the environment: it is run from this checkout (``PYTHONPATH`` = the repository root for the ``convert``
subprocess, and the checkout first on ``sys.path`` here, for the ``ckptconv.transforms`` /
``ckptconv.mmengine`` imports the printed configs make).

Inputs:

- ``tests/data/design_space/checkpoints/<case>.pyth`` (the 8 checkpoints pycls 0.1.1's own
  ``save_checkpoint`` wrote, see that folder's README) and ``<case>.features.npz`` (``input``,
  ``pycls_logits``, ``pycls_stem``, ``pycls_s1`` ...), ``tests/data/design_space/targets.json``
  (per case and library: expressible, or ``cannot``);
- one zoo-structured case made here with pycls 0.1.1's own code, ``effnet_b3_nc10_zoo``:
  pycls's cfg defaults + the lines of ``configs/dds_baselines/effnet/EN-B3_dds_8gpu.yaml`` (pycls
  commit 4cf2524, the one 0.1.1 was released from; NUM_GPUS 8 and OUT_DIR left out: pycls's
  ``save_checkpoint`` needs torch.distributed when NUM_GPUS > 1) with MODEL.NUM_CLASSES 10;
  ``torch.manual_seed(0)``, ``pycls.core.builders.build_model()``, weights ``zoo.recipe_state``
  (numpy ``default_rng(0)``), ``pycls.core.optimizer.construct_optimizer`` (no step is taken: the
  optimizer holds no momentum buffers, which keeps the file at half the size), BatchNorm statistics
  MEASURED (``reset_running_stats``, momentum None, train mode, ``torch.manual_seed(0)``, 4 batches
  ``default_rng(20 + i).standard_normal((8, 3, 64, 64))`` under no_grad, momentum restored), eval,
  ``pycls.core.checkpoint.save_checkpoint(model, optimizer, 9)`` (OUT_DIR
  ``/tmp/ckptconv-design-space/effnet_b3_nc10_zoo``). Written to
  ``checkpoints/effnet_b3_nc10_zoo.pyth`` only if at most MAX_COMMIT_BYTES (it is 41 MB: only its
  results are recorded) with ``effnet_b3_nc10_zoo.features.npz``: ``input`` (``default_rng(1)``, 2x3x64x64),
  ``pycls_logits``, ``pycls_stem``, ``pycls_s1`` ... ``pycls_s7``, ``pycls_head.conv_swish``, computed
  by a fresh pycls model that ``pycls.core.checkpoint.load_checkpoint`` loaded from the written file.
  Its targets are those of targets.json's ``effnet_b3_nc10`` (the same model at other image sizes):
  all four libraries.

Per case and library (expressible ones; the ``cannot`` ones are only converted, to record that
ckptconv refuses them), in a fresh temporary directory holding ``<case>.pyth``:
``python -m ckptconv convert <case>.pyth <case>.<library>.pth --to <library> --channel-order bgr
--json`` (a subprocess of this venv's Python, cwd the temporary directory; bgr: the weights take what
pycls took, so the npz input goes in unchanged). It must exit 0; its JSON's ``config`` is the printed
text (sha256 recorded of ``text.replace(str(tmpdir), '/abs/path')``, and that text). Then, exactly
as the text says:

- timm / torchvision: the whole snippet ``exec``-ed as printed (its own ``load_checkpoint`` /
  ``load_state_dict`` are strict), then ``model(input)``;
- mmpretrain: mmengine ``Config.fromstring(text, '.py')`` (merged over nothing; if ``model`` does not
  build alone, over the stock mmpretrain config of the family from the installed package's
  ``.mim/configs``, recorded), ``mmpretrain.registry.MODELS.build(cfg.model)``, ``init_weights()`` (the
  printed ``init_cfg`` Pretrained loads the file), ``model(input, mode='tensor')``; a second build
  loaded by ``mmengine.runner.load_checkpoint(..., strict=True)``;
- mmdet: the fragment pasted over the mmdet config its comment names (``_base_`` = that file from
  ``mmdet/.mim/configs``), ``mmdet.registry.MODELS.build(cfg.model.backbone)``, ``init_weights()``,
  the backbone's outputs (its ``out_indices``) against pycls's stages (RegNet / ResNet layer i = pycls
  s(i+1); EfficientNet layers 0..6 = pycls stem, s1, s2, s3, s5, s7, head conv), a second build loaded
  by ``load_checkpoint(..., strict=True)``; also (recorded as they went, not judged) the whole
  pasted detector built and its ``extract_feat`` run (``detector_extract_feat``: does the printed neck
  ``in_channels`` take the backbone's outputs), and the fragment's backbone dict built alone, without
  the base (``fragment_backbone_alone``: the fragment is written to be pasted, so a ``_delete_`` key or
  a norm_cfg without its type is expected to fail there).

Strict loading: the file's state dict (``state_dict`` if the file nests it) against the built model's
``state_dict()``: missing / unexpected keys and shape mismatches (must be none), and whether every
tensor of the loaded model equals the file's. Numerics: ``max_abs`` and ``max_rel`` (= max|diff| /
max|pycls|) of the logits (mmdet: of each backbone level) against the npz's pycls arrays; a match is
``max_rel <= 1e-5`` (timm's and torchvision's EffNet differ by ~1e-6 .. 5e-6: their SiLU vs pycls's
x * sigmoid(x)). pycls's own outputs are also recomputed here from each ``.pyth`` (``pycls_recomputed_vs_npz``:
the npz was written by another process, ~1e-7 apart) and every library output is compared with those too
(``numerics_vs_pycls_recomputed_here``).

Writes ``tests/data/design_space/printed_models.json`` (sorted keys, a ``versions`` block, a
``procedure`` text; no timings, no temporary paths: a rerun on the same machine with the same
ckptconv writes the same bytes) and the two ``effnet_b3_nc10_zoo`` files above. A printed config that
fails to build or load is recorded verbatim (``error``), never worked around.

Run in the gt environment (requirements/gt.txt: torch 2.14.1, torchvision 0.29.1, timm 1.0.31,
pycls 0.1.1, mmengine 0.10.7, mmcv-lite 2.1.0, mmdet 3.3.0, mmpretrain 1.2.0; README.md beside this
file says how to make it), from the repository root:
    .venv/gt/bin/python tools/groundtruth/printed_models.py [--out-root DIR] [--only CASE ...]
--out-root defaults to the repository root (inputs are always read from this checkout; --only
writes a printed_models.json of those cases alone). mmcv-lite has no compiled ``mmcv._ext``: it is
stubbed (stubs.py) before mmdet is imported (nothing here calls it), and mmpretrain imports as it
does without transformers (stubs.py says why).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import stubs  # noqa: E402  (tools/groundtruth/stubs.py: this folder is sys.path[0] when run as a script)

stubs.stub_mmcv_ext()
stubs.hide_multimodal_from_mmpretrain()

import cases  # noqa: E402  (this folder is sys.path[0] when run as a script)
import mmdet  # noqa: E402
import mmdet.models  # noqa: E402,F401
import mmengine  # noqa: E402
import mmengine.runner  # noqa: E402
import mmpretrain  # noqa: E402
import mmpretrain.models  # noqa: E402,F401
import numpy as np  # noqa: E402
import pycls.core.builders as pycls_builders  # noqa: E402
import pycls.core.checkpoint as pycls_checkpoint  # noqa: E402
import pycls.core.optimizer as pycls_optimizer  # noqa: E402
import timm  # noqa: E402,F401
import torch  # noqa: E402
import torchvision  # noqa: E402,F401
import zoo  # noqa: E402
from mmdet.registry import MODELS as MMDET_MODELS  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmpretrain.registry import MODELS as MMPRE_MODELS  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = zoo.REPO_ROOT
sys.path.insert(0, str(REPO_ROOT))  # the printed configs import ckptconv.transforms / ckptconv.mmengine
DS = "tests/data/design_space"
LIBRARIES = ("timm", "torchvision", "mmdet", "mmpretrain")
REL_TOL = 1e-5
MAX_COMMIT_BYTES = 4 << 20  # the test data stays small: B3 (41 MB) is made, converted and measured here, never committed
ABS = "/abs/path"

EXPECTED_VERSIONS = {
    "pycls": "0.1.1", "torch": "2.14.1", "torchvision": "0.29.1", "timm": "1.0.31",
    "mmengine": "0.10.7", "mmcv-lite": "2.1.0", "mmpretrain": "1.2.0", "mmdet": "3.3.0",
}

# The zoo-structured case: pycls configs/dds_baselines/effnet/EN-B3_dds_8gpu.yaml at 4cf2524, in the
# YAML's order, with MODEL.NUM_CLASSES 10 (the YAML says 1000); NUM_GPUS 8 and OUT_DIR . left out.
ZOO_CASE = "effnet_b3_nc10_zoo"
ZOO_YAML = "pycls@4cf2524:configs/dds_baselines/effnet/EN-B3_dds_8gpu.yaml"
ZOO_VALUES = {
    "MODEL.TYPE": "effnet", "MODEL.NUM_CLASSES": 10,
    "EN.STEM_W": 40, "EN.STRIDES": [1, 2, 2, 2, 1, 2, 1], "EN.DEPTHS": [2, 3, 3, 5, 5, 6, 2],
    "EN.WIDTHS": [24, 32, 48, 96, 136, 232, 384], "EN.EXP_RATIOS": [1, 6, 6, 6, 6, 6, 6],
    "EN.KERNELS": [3, 3, 5, 3, 5, 5, 3], "EN.HEAD_W": 1536,
    "OPTIM.LR_POLICY": "cos", "OPTIM.BASE_LR": 0.4, "OPTIM.MAX_EPOCH": 100, "OPTIM.MOMENTUM": 0.9,
    "OPTIM.WEIGHT_DECAY": 1e-5,
    "TRAIN.DATASET": "imagenet", "TRAIN.IM_SIZE": 300, "TRAIN.BATCH_SIZE": 256,
    "TEST.DATASET": "imagenet", "TEST.IM_SIZE": 342, "TEST.BATCH_SIZE": 200,
}
ZOO_TARGETS_FROM = "effnet_b3_nc10"
assert all(ZOO_VALUES[k] == v for k, v in zoo.yaml_values("b3").items() if k != "MODEL.NUM_CLASSES")

# mmpretrain stock configs per backbone type, merged under a fragment only if it does not build alone.
MMPRE_STOCK = {"EfficientNet": "efficientnet/efficientnet-b3_8xb32_in1k.py", "RegNet": "regnet/regnetx-400mf_8xb128_in1k.py",
               "ResNet": "resnet/resnet18_8xb32_in1k.py", "ResNet_CIFAR": "resnet/resnet18_8xb16_cifar10.py"}
# mmdet EfficientNet's layers as pycls points (targets.json _about); RegNet / ResNet layer i = pycls s(i+1).
MMDET_EFFNET_LAYERS = ["stem", "s1", "s2", "s3", "s5", "s7", "head.conv_swish"]

PROCEDURE = (
    "Per case (the 8 checkpoints in checkpoints/, written by pycls 0.1.1's save_checkpoint, and effnet_b3_nc10_zoo "
    "made here, see zoo_case) and library: a fresh temporary directory holding <case>.pyth; `python -m ckptconv convert "
    "<case>.pyth <case>.<library>.pth --to <library> --channel-order bgr --json` run there (this venv's Python, "
    "PYTHONPATH = the checkout); it must exit 0; its JSON's `config` is the printed text (config_sha256 = sha256 of "
    "text.replace(str(tmpdir), '/abs/path'), UTF-8). The file is then loaded exactly as that text says: timm / "
    "torchvision: the whole snippet exec-ed as printed (its load_checkpoint / load_state_dict are strict), model(input); "
    "mmpretrain: mmengine Config.fromstring(text, '.py') merged over nothing (base_config says if a stock config was "
    "needed), mmpretrain MODELS.build(cfg.model), init_weights() (the printed init_cfg Pretrained), model(input, "
    "mode='tensor'); mmdet: the fragment pasted over the config its comment names (_base_ from mmdet/.mim/configs), mmdet "
    "MODELS.build(cfg.model.backbone), init_weights(), the backbone outputs at its out_indices against pycls's stages "
    "(RegNet/ResNet layer i = s(i+1); EfficientNet layers 0..6 = stem, s1, s2, s3, s5, s7, head.conv_swish). mm*: a "
    "second build loaded with mmengine.runner.load_checkpoint(model, file, strict=True); mmdet also (not judged): the "
    "whole pasted detector built, its backbone given the loaded weights, extract_feat(input) (detector_extract_feat), and "
    "the fragment's backbone dict built alone without a base (fragment_backbone_alone). strict: the file's state dict "
    "vs the built model's state_dict() (missing, unexpected, shape_mismatch: must be empty) and whether every tensor of "
    "the loaded model equals the file's. numerics: max_abs, max_rel = max|diff| / max|pycls| against the "
    "<case>.features.npz pycls arrays (input = the npz's `input`, eval mode, torch.no_grad, 1 thread); match: "
    f"max_rel <= {REL_TOL}; numerics_vs_pycls_recomputed_here: the same against pycls's outputs recomputed in this "
    "process from the .pyth (pycls's load_checkpoint). Targets 'cannot' in targets.json are converted only (ckptconv "
    "should refuse them: convert_refused, its JSON error). A printed config that fails to build or load: `error`, verbatim.")


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

def versions() -> dict:
    out = {name: importlib.metadata.version(name) for name in EXPECTED_VERSIONS}
    out["torch"] = out["torch"].split("+")[0]
    out["torchvision"] = out["torchvision"].split("+")[0]
    wrong = {k: v for k, v in out.items() if v != EXPECTED_VERSIONS[k]}
    if wrong:
        raise SystemExit(f"these versions differ from the pinned ones: {wrong} (expected {EXPECTED_VERSIONS})")
    out["numpy"] = np.__version__
    out["python"] = sys.version.split()[0]
    from ckptconv.version import __version__
    out["ckptconv"] = __version__
    import ckptconv
    here = Path(ckptconv.__file__).resolve().parent
    if here != REPO_ROOT / "ckptconv":
        raise SystemExit(f"ckptconv imported from {here}, not from this checkout")
    return out


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Refs:
    """pycls's arrays: the npz's (the reference) and pycls recomputed here from the .pyth (same venv, threads)."""

    def __init__(self, npz: dict, here: dict):
        self.npz, self.here = npz, here

    def __call__(self, key: str, got) -> tuple[dict, dict]:
        return compare(self.npz[key], got), compare(self.here[key], got)


def compare(ref: np.ndarray, got: torch.Tensor) -> dict:
    got = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    if tuple(ref.shape) != tuple(got.shape):
        return {"shape_mismatch": [list(ref.shape), list(got.shape)]}
    d = float(np.abs(ref.astype(np.float64) - got.astype(np.float64)).max())
    scale = float(np.abs(ref).max())
    return {"max_abs": d, "max_rel": d / scale if scale else None}


def file_state_dict(path: Path) -> dict:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    return {re.sub(r"^module\.", "", k): v for k, v in sd.items()}


def strict_check(model: torch.nn.Module, sd: dict) -> dict:
    """The file's keys vs the model's, and whether the loaded model holds the file's tensors."""
    msd = model.state_dict()
    missing = sorted(set(msd) - set(sd))
    unexpected = sorted(set(sd) - set(msd))
    shapes = sorted(k for k in set(msd) & set(sd) if tuple(msd[k].shape) != tuple(sd[k].shape))
    equal = not missing and not unexpected and not shapes and all(torch.equal(msd[k], sd[k].to(msd[k].dtype)) for k in msd)
    return {"missing": missing, "unexpected": unexpected, "shape_mismatch": shapes, "n_keys": len(msd),
            "weights_equal_file": bool(equal), "ok": not missing and not unexpected and not shapes}


def error_text(exc: BaseException, tmp: Path, filename: str | None = None, text: str | None = None) -> str:
    """The exception verbatim (and the printed line that raised, for an exec-ed snippet)."""
    msg = f"{type(exc).__name__}: {exc}"
    if filename is not None and text is not None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        if frames:
            msg = f"line {frames[-1].lineno}: {text.splitlines()[frames[-1].lineno - 1].strip()} -> {msg}"
    else:
        inner = [f for f in traceback.extract_tb(exc.__traceback__) if "site-packages" in f.filename]
        if inner:
            at = inner[-1]
            msg += f" (raised at {at.filename.split('site-packages/')[-1]}:{at.lineno}: {(at.line or '').strip()})"
    return msg.replace(str(tmp), ABS)


class LogCapture(logging.Handler):
    """mmengine's 'current' logger lines that speak of keys (PretrainedInit's non-strict load)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def capture_mm_logs():
    logger = MMLogger.get_current_instance()
    logger.setLevel(logging.WARNING)  # PretrainedInit's per-key INFO lines name the temporary directory
    handler = LogCapture()
    logger.addHandler(handler)
    return logger, handler


# ---------------------------------------------------------------------------------------------
# pycls side
# ---------------------------------------------------------------------------------------------

def pycls_outputs_from_file(case: dict, path: Path) -> torch.nn.Module:
    """pycls's model for the case (cfg reset and merged), loaded by pycls's own load_checkpoint from path, in eval mode."""
    cases.pycls_set_cfg(case)
    torch.manual_seed(0)
    model = pycls_builders.build_model()
    pycls_checkpoint.load_checkpoint(str(path), model)
    model.eval()
    return model


def make_zoo_case(tmp: Path) -> tuple[dict, Path, dict, dict]:
    """effnet_b3_nc10_zoo with pycls 0.1.1's own code (see the module docstring): (case, written file, arrays, info)."""
    case = {"name": ZOO_CASE, "family": "effnet", "values": ZOO_VALUES, "checkpoint": True}
    cfg = cases.pycls_set_cfg(case)
    torch.manual_seed(0)
    model = pycls_builders.build_model()
    state = zoo.recipe_state({k: tuple(v.shape) for k, v in model.state_dict().items()})
    model.load_state_dict({k: torch.from_numpy(a) for k, a in state.items()}, strict=True)
    optimizer = pycls_optimizer.construct_optimizer(model)
    cases.measure_statistics(model, cases.input_size(case), cfg.BN.MOM)
    model.eval()
    dump = cfg.dump()
    run_dir = Path(cfg.OUT_DIR)
    shutil.rmtree(run_dir, ignore_errors=True)
    written = Path(pycls_checkpoint.save_checkpoint(model, optimizer, cases.CKPT_EPOCH))
    path = tmp / f"{ZOO_CASE}.pyth"
    shutil.copyfile(written, path)
    shutil.rmtree(run_dir, ignore_errors=True)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    assert ck["cfg"] == dump and ck["epoch"] == cases.CKPT_EPOCH and not ck["optimizer_state"]["state"]
    x = cases.make_input(case)
    points = cases.pycls_points(model)
    y_mem, feats_mem = cases.run_hooked(model, x, points)
    loaded = pycls_outputs_from_file(case, path)
    y, feats = cases.run_hooked(loaded, x, points)
    assert torch.equal(y, y_mem) and all(torch.equal(feats[p], feats_mem[p]) for p in points)
    arrays = {"input": x.numpy(), "pycls_logits": y.numpy(), **{f"pycls_{p}": feats[p].numpy() for p in points}}
    info = {
        "values": ZOO_VALUES, "yaml": ZOO_YAML, "values_note": "the YAML's lines with MODEL.NUM_CLASSES 10; NUM_GPUS 8 and OUT_DIR "
        "left out (pycls's save_checkpoint calls torch.distributed.get_rank() when NUM_GPUS > 1); everything else pycls 0.1.1's "
        "cfg defaults", "run_values": {"OUT_DIR": cfg.OUT_DIR},
        "n_params": sum(p.numel() for p in model.parameters()), "n_tensors": len(model.state_dict()),
        "checkpoint_keys": sorted(ck), "optimizer_state": "SGD param_groups, no state (no step taken)",
        "cfg_dump": dump, "targets_from": f"targets.json {ZOO_TARGETS_FROM} (the same model: zoo B3 numbers, 10 classes)",
        "procedure": "reset pycls 0.1.1's cfg, merge values (zoo.merge_values), OUT_DIR /tmp/ckptconv-design-space/"
                     "effnet_b3_nc10_zoo; torch.manual_seed(0); build_model(); weights zoo.recipe_state (numpy default_rng(0) "
                     "over state_dict keys in order); construct_optimizer(model) (no step); every BatchNorm2d "
                     "reset_running_stats() with momentum None, model.train(), torch.manual_seed(0), 4 batches "
                     "default_rng(20 + i).standard_normal((8, 3, 64, 64)) float32 under no_grad, momentum restored; eval; "
                     "save_checkpoint(model, optimizer, 9). features: input default_rng(1).standard_normal((2, 3, 64, 64)) "
                     "float32; a fresh build_model() loaded by pycls's load_checkpoint from the written file, eval, "
                     "forward hooks on stem, s1..s7, head.conv_swish (equal to the in-memory model's).",
    }
    del model, loaded
    return case, path, arrays, info


# ---------------------------------------------------------------------------------------------
# ckptconv convert, then the real libraries as the printed text says
# ---------------------------------------------------------------------------------------------

def convert(case_name: str, lib: str, src: Path, tmp: Path) -> dict:
    shutil.copyfile(src, tmp / f"{case_name}.pyth")
    args = ["-m", "ckptconv", "convert", f"{case_name}.pyth", f"{case_name}.{lib}.pth", "--to", lib,
            "--channel-order", "bgr", "--json"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp, env=env)
    out = {"command": "python " + " ".join(args), "exit_code": proc.returncode}
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        doc = None
    if doc is None:
        out["output"] = (proc.stderr or proc.stdout).strip()[-3000:].replace(str(tmp), ABS)
        return out
    out["json_ok"] = doc.get("ok")
    if isinstance(doc.get("verification"), dict):
        out["ckptconv_verification_ok"] = doc["verification"].get("ok")
    if doc.get("error") is not None:
        out["json_error"] = str(doc["error"]).replace(str(tmp), ABS)
    if isinstance(doc.get("config"), str):
        out["_config"] = doc["config"]
        out["_out"] = tmp / f"{case_name}.{lib}.pth"
    return out


def run_torch_snippet(text: str, path: Path, x: torch.Tensor, ref: Refs, tmp: Path, where: str) -> dict:
    filename = f"<ckptconv printed {where}>"
    ns: dict = {"__name__": "ckptconv_printed_snippet"}
    res: dict = {"loaded_as": "the whole printed snippet exec-ed as printed, then model(input)"}
    try:
        exec(compile(text, filename, "exec"), ns)
    except Exception as exc:  # noqa: BLE001  (whatever a printed line raises is the finding)
        res["error"] = error_text(exc, tmp, filename, text)
        return res
    model = ns.get("model")
    if not isinstance(model, torch.nn.Module):
        res["error"] = "the snippet defines no `model` (torch.nn.Module)"
        return res
    res["class"] = f"{type(model).__module__}.{type(model).__qualname__}"
    res["eval_mode"] = not model.training
    res["strict"] = strict_check(model, file_state_dict(path))
    with torch.no_grad():
        logits = model(x)
    res["numerics"], res["numerics_vs_pycls_recomputed_here"] = (dict(logits=v) for v in ref("pycls_logits", logits))
    return res


def _mm_error(stage: str, exc: BaseException, tmp: Path) -> str:
    return f"{stage}: {error_text(exc, tmp)}"


def run_mmpretrain(text: str, path: Path, x: torch.Tensor, ref: Refs, tmp: Path) -> dict:
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        return _run_mmpretrain(text, path, x, ref, tmp)


def _run_mmpretrain(text: str, path: Path, x: torch.Tensor, ref: Refs, tmp: Path) -> dict:
    res: dict = {"loaded_as": "Config.fromstring(text, '.py'); mmpretrain MODELS.build(cfg.model); init_weights(); model(input, mode='tensor')"}
    try:
        cfg = Config.fromstring(text, ".py")
    except Exception as exc:  # noqa: BLE001
        res["error"] = _mm_error("Config.fromstring(<the printed config>, '.py')", exc, tmp)
        return res
    res["base_config"] = None

    def build(c):
        return MMPRE_MODELS.build(c.model)

    try:
        model = build(cfg)
    except Exception as exc:  # noqa: BLE001  (then over the stock config of the family)
        res["build_alone_error"] = _mm_error("MODELS.build(cfg.model)", exc, tmp)
        bb = cfg.model.get("backbone", {}).get("type") if isinstance(cfg.get("model"), dict) else None
        stock = MMPRE_STOCK.get(bb)
        if stock is None:
            res["error"] = res.pop("build_alone_error")
            return res
        base = Path(mmpretrain.__file__).parent / ".mim" / "configs" / stock
        res["base_config"] = f"mmpretrain: configs/{stock}"
        f = tmp / "pasted_mmpretrain.py"
        f.write_text(f"_base_ = [{str(base)!r}]\n" + text)
        try:
            cfg = Config.fromfile(str(f))
            model = build(cfg)
        except Exception as exc:  # noqa: BLE001
            res["error"] = res.pop("build_alone_error")
            res["error_over_base_config"] = _mm_error(f"MODELS.build(cfg.model) merged over {stock}", exc, tmp)
            return res
    res["class"] = f"{type(model).__module__}.{type(model).__qualname__}"
    res["backbone_class"] = f"{type(model.backbone).__module__}.{type(model.backbone).__qualname__}"
    sd = file_state_dict(path)
    logger, handler = capture_mm_logs()
    try:
        model.init_weights()
    except Exception as exc:  # noqa: BLE001
        res["error"] = _mm_error("model.init_weights()", exc, tmp)
        return res
    finally:
        logger.removeHandler(handler)
    res["init_weights_key_warnings"] = [ln.replace(str(tmp), ABS) for ln in handler.lines if "key" in ln.lower()]
    res["strict"] = strict_check(model, sd)
    res["strict_load_checkpoint"] = strict_load(lambda: build(cfg), path, tmp)
    model.eval()
    with torch.no_grad():
        logits = model(x, mode="tensor")
    res["numerics"], res["numerics_vs_pycls_recomputed_here"] = (dict(logits=v) for v in ref("pycls_logits", logits))
    return res


def strict_load(builder, path: Path, tmp: Path) -> str:
    """A second build loaded by mmengine.runner.load_checkpoint(..., strict=True): 'ok' or the exception."""
    try:
        fresh = builder()
        mmengine.runner.load_checkpoint(fresh, str(path), map_location="cpu", strict=True, logger="silent")
    except Exception as exc:  # noqa: BLE001
        return error_text(exc, tmp)
    return "ok"


def mmdet_base(text: str) -> Path | None:
    """The MMDetection config the printed fragment names as the base of its child config
    (``_base_ = ['./X.py']`` in its comment; earlier fragments said "e.g. X.py")."""
    m = re.search(r"_base_ = \['\./([\w.-]+\.py)'\]", text) or re.search(r"e\.g\. ([\w.-]+\.py)", text)
    if not m:
        return None
    hits = sorted((Path(mmdet.__file__).parent / ".mim" / "configs").rglob(m.group(1)))
    return hits[0] if hits else None


def backbone_levels(backbone, out_indices, outs, ref: Refs) -> tuple[dict, dict]:
    effnet = type(backbone).__name__ == "EfficientNet"
    assert len(out_indices) == len(outs), (out_indices, len(outs))
    levels, here = {}, {}
    for i, out in zip(out_indices, outs):
        point = MMDET_EFFNET_LAYERS[i] if effnet else f"s{i + 1}"
        levels[f"pycls {point}->out[{i}]"], here[f"pycls {point}->out[{i}]"] = ref(f"pycls_{point}", out)
    return levels, here


def run_mmdet(text: str, path: Path, x: torch.Tensor, ref: Refs, tmp: Path) -> dict:
    with DefaultScope.overwrite_default_scope("mmdet"):
        return _run_mmdet(text, path, x, ref, tmp)


def _run_mmdet(text: str, path: Path, x: torch.Tensor, ref: Refs, tmp: Path) -> dict:
    res: dict = {"loaded_as": "the fragment pasted over the config its comment names (_base_), mmdet MODELS.build(cfg.model.backbone), "
                              "init_weights(), backbone(input) at its out_indices"}
    base = mmdet_base(text)
    if base is None:
        res["error"] = "the fragment names no mmdet config to paste over (no 'e.g. X.py' found), or mmdet ships none by that name"
        return res
    res["base_config"] = "mmdet: " + str(base).split("/.mim/")[-1]
    f = tmp / "pasted_mmdet.py"
    f.write_text(f"_base_ = [{str(base)!r}]\n" + text)
    try:
        cfg = Config.fromfile(str(f))
        bcfg = cfg.model.backbone
        backbone = MMDET_MODELS.build(bcfg)
    except Exception as exc:  # noqa: BLE001
        res["error"] = _mm_error("Config.fromfile(<pasted>) / MODELS.build(cfg.model.backbone)", exc, tmp)
        return res
    res["backbone"] = {k: v for k, v in bcfg.to_dict().items() if k != "init_cfg"}
    res["backbone_init_cfg"] = json.loads(json.dumps(bcfg.to_dict().get("init_cfg")).replace(str(tmp), ABS))
    res["class"] = f"{type(backbone).__module__}.{type(backbone).__qualname__}"
    sd = file_state_dict(path)
    logger, handler = capture_mm_logs()
    try:
        backbone.init_weights()
    except Exception as exc:  # noqa: BLE001
        res["error"] = _mm_error("backbone.init_weights()", exc, tmp)
        return res
    finally:
        logger.removeHandler(handler)
    res["init_weights_key_warnings"] = [ln.replace(str(tmp), ABS) for ln in handler.lines if "key" in ln.lower()]
    res["strict"] = strict_check(backbone, sd)
    res["strict_load_checkpoint"] = strict_load(lambda: MMDET_MODELS.build(cfg.model.backbone), path, tmp)
    backbone.eval()
    with torch.no_grad():
        outs = backbone(x)
    res["numerics"], res["numerics_vs_pycls_recomputed_here"] = backbone_levels(backbone, list(bcfg.get("out_indices")), outs, ref)
    res["detector_extract_feat"] = _detector_extract_feat(cfg, backbone, x, tmp)
    res["fragment_backbone_alone"] = _fragment_backbone_alone(text, path, x, ref, tmp)
    return res


def _detector_extract_feat(cfg, backbone, x: torch.Tensor, tmp: Path) -> dict:
    """The whole pasted detector, its backbone given the loaded weights: does its neck take the
    backbone's outputs (extract_feat)? Recorded as it went."""
    try:
        det = MMDET_MODELS.build(cfg.model)
        det.backbone.load_state_dict(backbone.state_dict(), strict=True)
        det.eval()
        with torch.no_grad():
            feats = det.extract_feat(x)
        return {"ok": True, "detector": type(det).__name__, "neck": type(det.neck).__name__,
                "neck_in_channels": list(cfg.model.neck.in_channels),
                "shapes": [list(t.shape) for t in feats]}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": error_text(exc, tmp)}


def _fragment_backbone_alone(text: str, path: Path, x: torch.Tensor, ref: Refs, tmp: Path) -> dict:
    """The fragment's backbone dict built alone, without the base config it is written to be
    pasted over (so a failure here is expected, and recorded)."""
    try:
        alone = Config.fromstring(text, ".py").model.backbone
        m = MMDET_MODELS.build(alone)
        mmengine.runner.load_checkpoint(m, str(path), map_location="cpu", strict=True, logger="silent")
        m.eval()
        with torch.no_grad():
            o = m(x)
        lv = backbone_levels(m, list(alone.get("out_indices", ())), o, ref)[0]
        return {"ok": True, "max_rel": max(v.get("max_rel") or 0.0 for v in lv.values()) if lv else None}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": error_text(exc, tmp)}


def judge(entry: dict) -> None:
    """entry['ok']: built and loaded, strict keys clean, every max_rel <= REL_TOL; entry['max_rel']: the largest."""
    nums = entry.get("numerics") or {}
    rels = [v.get("max_rel") for v in nums.values()]
    shape_bad = any("shape_mismatch" in v for v in nums.values())
    entry["max_rel"] = max((r for r in rels if r is not None), default=None) if rels and not shape_bad else None
    here = [v.get("max_rel") for v in (entry.get("numerics_vs_pycls_recomputed_here") or {}).values()]
    entry["max_rel_vs_pycls_recomputed_here"] = max((r for r in here if r is not None), default=None)
    strict = entry.get("strict") or {}
    entry["strict_ok"] = bool(strict.get("ok")) and strict.get("weights_equal_file", False) and \
        entry.get("strict_load_checkpoint", "ok") == "ok"
    entry["ok"] = ("error" not in entry and entry["strict_ok"] and entry["max_rel"] is not None
                   and entry["max_rel"] <= REL_TOL and not shape_bad)


def run_case(name: str, case: dict, src: Path, ref: Refs, targets: dict, only_libs) -> dict:
    x = torch.from_numpy(ref.npz["input"])
    out: dict = {}
    for lib in LIBRARIES:
        if only_libs and lib not in only_libs:
            continue
        target = targets.get(lib, {})
        expressible = "cannot" not in target
        with tempfile.TemporaryDirectory(prefix=f"gt-printed-models-{name}-{lib}-") as td:
            tmp = Path(td).resolve()
            conv = convert(name, lib, src, tmp)
            text, path = conv.pop("_config", None), conv.pop("_out", None)
            entry: dict = {"targets_json": "expressible" if expressible else "cannot", "convert": conv}
            if not expressible:
                entry["convert_refused"] = conv["exit_code"] != 0
                if conv["exit_code"] == 0 and text is not None:
                    entry["config"] = text.replace(str(tmp), ABS)  # ckptconv printed something targets.json says cannot be
                    entry["config_sha256"] = sha256_bytes(entry["config"].encode())
                out[lib] = entry
                continue
            if conv["exit_code"] != 0 or text is None:
                entry["error"] = f"convert exited {conv['exit_code']}: " + str(conv.get("json_error") or conv.get("output"))
                entry["ok"] = False
                out[lib] = entry
                continue
            assert str(tmp) in text, (name, lib, "the printed config does not name the temporary directory")
            shown = text.replace(str(tmp), ABS)
            entry["config"] = shown
            entry["config_sha256"] = sha256_bytes(shown.encode())
            try:
                ast.parse(text)
            except SyntaxError as exc:
                entry["error"] = f"the printed config is not Python: {exc}".replace(str(tmp), ABS)
                entry["ok"] = False
                out[lib] = entry
                continue
            if lib in ("timm", "torchvision"):
                entry.update(run_torch_snippet(text, path, x, ref, tmp, f"{name}/{lib}"))
            elif lib == "mmpretrain":
                entry.update(run_mmpretrain(text, path, x, ref, tmp))
            else:
                entry.update(run_mmdet(text, path, x, ref, tmp))
            judge(entry)
        out[lib] = entry
        flag = "ok" if entry.get("ok") else "FAIL"
        print(f"  {name:34s} {lib:12s} {flag:4s} max_rel={entry.get('max_rel')} strict_ok={entry.get('strict_ok')}"
              + (f"  ERROR {entry['error']}" if "error" in entry else ""), flush=True)
    return out


def pycls_recheck(case: dict, src: Path, ref: dict) -> tuple[dict, dict]:
    """pycls's outputs recomputed here from the .pyth (pycls's load_checkpoint, this venv's torch, 1 thread):
    (their difference to the npz, the arrays)."""
    model = pycls_outputs_from_file(case, src)
    points = cases.pycls_points(model)
    y, feats = cases.run_hooked(model, torch.from_numpy(ref["input"]), points)
    here = {"input": ref["input"], "pycls_logits": y.numpy(), **{f"pycls_{p}": feats[p].numpy() for p in points}}
    res = {k.removeprefix("pycls_"): compare(ref[k], torch.from_numpy(v)) for k, v in here.items() if k != "input" and k in ref}
    return res, here


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-root", type=Path, default=REPO_ROOT)
    ap.add_argument("--only", nargs="*", help="case names (default: the 8 checkpoints and effnet_b3_nc10_zoo)")
    ap.add_argument("--libs", nargs="*", choices=LIBRARIES)
    args = ap.parse_args(argv)
    vers = versions()
    ds_in = REPO_ROOT / DS
    ds_out = args.out_root / DS
    targets = json.loads((ds_in / "targets.json").read_text())["cases"]
    names = sorted(c["name"] for c in cases.CASES if c["checkpoint"]) + [ZOO_CASE]
    if args.only:
        names = [n for n in names if n in args.only]
    results, rechecks, sources = {}, {}, {}
    zoo_info = None
    with tempfile.TemporaryDirectory(prefix="gt-printed-models-zoo-") as ztd:
        for name in names:
            if name == ZOO_CASE:
                case, src, ref, zoo_info = zoo_case_files(Path(ztd), ds_out)
                tgt = targets[ZOO_TARGETS_FROM]
                here = ref
            else:
                case = cases.BY_NAME[name]
                src = ds_in / "checkpoints" / f"{name}.pyth"
                ref = cases.read_npz(ds_in / "checkpoints" / f"{name}.features.npz")
                tgt = targets[name]
                rechecks[name], here = pycls_recheck(case, src, ref)
            sources[name] = {"checkpoint_sha256": sha256_bytes(src.read_bytes()),
                             "expressible": sorted(lib for lib in LIBRARIES if "cannot" not in tgt.get(lib, {"cannot": "?"}))}
            print(f"{name}: expressible in {sources[name]['expressible']}", flush=True)
            results[name] = run_case(name, case, src, Refs(ref, here), tgt, args.libs)
    doc = printed_models_doc(names, vers, zoo_info, sources, rechecks, results)
    path = ds_out / "printed_models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print_report(doc)
    print(f"wrote {path}")
    return 0 if doc["all_ok"] else 1


def zoo_case_files(tmp: Path, ds_out: Path) -> tuple:
    """make_zoo_case into tmp; its checkpoint and features npz are written under ds_out only when
    the checkpoint is at most MAX_COMMIT_BYTES. Returns (case, checkpoint, features, zoo_case info)."""
    case, src, ref, zoo_info = make_zoo_case(tmp)
    size = src.stat().st_size
    zoo_info["checkpoint_bytes"] = size
    zoo_info["checkpoint_sha256"] = sha256_bytes(src.read_bytes())
    ck_dir = ds_out / "checkpoints"
    ck_dir.mkdir(parents=True, exist_ok=True)
    if size <= MAX_COMMIT_BYTES:
        cases.write_npz(ck_dir / f"{ZOO_CASE}.features.npz", ref)
        zoo_info["features"] = f"checkpoints/{ZOO_CASE}.features.npz"
        shutil.copyfile(src, ck_dir / f"{ZOO_CASE}.pyth")
        zoo_info["checkpoint"] = f"checkpoints/{ZOO_CASE}.pyth"
    else:
        zoo_info["checkpoint"] = None
        zoo_info["checkpoint_not_written"] = f"{size} bytes > {MAX_COMMIT_BYTES}: only the results are recorded"
    return case, src, ref, zoo_info


def printed_models_doc(names: list, vers: dict, zoo_info, sources: dict, rechecks: dict, results: dict) -> dict:
    """printed_models.json: the per-case results, a summary row per expressible (case, library),
    the failures, and the cases converted although targets.json says cannot."""
    summary = []
    for name in names:
        for lib, e in results[name].items():
            if e["targets_json"] == "expressible":
                summary.append([name, lib, e.get("max_rel"), e.get("strict_ok"), e.get("ok"), e.get("max_rel_vs_pycls_recomputed_here")])
    failures = {f"{n}/{lib}": e["error"] for n in names for lib, e in results[n].items() if "error" in e}
    not_refused = [f"{n}/{lib}" for n in names for lib, e in results[n].items()
                   if e["targets_json"] == "cannot" and not e.get("convert_refused")]
    return {
        "made_by": "tools/groundtruth/printed_models.py",
        "versions": vers,
        "procedure": PROCEDURE,
        "tolerance": {"max_rel": REL_TOL},
        "zoo_case": {ZOO_CASE: zoo_info} if zoo_info else {},
        "sources": sources,
        "pycls_recomputed_vs_npz": rechecks,
        "cases": results,
        "summary_columns": ["case", "library", "max_rel", "strict_ok", "ok", "max_rel_vs_pycls_recomputed_here"],
        "summary": summary,
        "failures": failures,
        "cannot_but_converted": not_refused,
        "all_ok": all(row[4] for row in summary) and not failures,
    }


def print_report(doc: dict) -> None:
    print(f"\n{'case':34s} {'library':12s} {'max_rel':>10s}  strict  ok     vs pycls here")
    for row in doc["summary"]:
        rel = "None" if row[2] is None else format(row[2], ".3g")
        here = "None" if row[5] is None else format(row[5], ".3g")
        print(f"{row[0]:34s} {row[1]:12s} {rel:>10s}  {row[3]!s:6s}  {row[4]!s:5s}  {here}")
    for k, v in doc["failures"].items():
        print(f"FAILURE {k}: {v}")
    if doc["cannot_but_converted"]:
        print(f"converted although targets.json says cannot: {doc['cannot_but_converted']}")


if __name__ == "__main__":
    sys.exit(main())
