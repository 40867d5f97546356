"""``ckptconv verify --config``: an MMDetection or mmpretrain config against the weights it loads.

The config is read through mmengine's ``Config.fromfile`` (``_base_`` inheritance and
``custom_imports`` included); its model is plain data, so no model is built. Each field the weights
depend on is checked and, when wrong, named with the value it needs:

- ``model.backbone.type`` and its arch (``arch``, ``depth``, ``groups``, ...): what the variant
  file's ``[libraries.<layout>] builder`` says the library builds the model with;
- ``conv_cfg`` and ``norm_cfg.eps``: the padding and BN eps the weights need (the library's
  defaults, from the table, where the config leaves them out);
- ``out_indices`` against the neck's ``in_channels``;
- ``init_cfg``: its ``prefix`` against the prefix the weights were written with;
- the data preprocessor's channel flag, mean and std.

The fields found then set the numeric verification (padding, eps, flip, mean, std), so the file
is also proven to compute pycls's features under exactly this config.
"""

from __future__ import annotations

import ast
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..model.variants import Variant
from ..options import PYCLS_GEOMETRY, Geometry
from ..tables.layout import Layout
from ..tables.pipeline import Preprocess, mismatches, needed
from . import eval_pipeline


@dataclass
class Found:
    """What a config says: the checkpoint it loads and the settings it builds with."""

    checkpoint: str | None
    padding: str
    eps: float
    flip: bool | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    geometry: Geometry | None = None  # the test pipeline's resize and crop (a classifier config's)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field, what it needs)
    passed: list[str] = field(default_factory=list)


def read_config(path: Path) -> dict[str, Any]:
    """The config as plain data, through mmengine's ``Config.fromfile``."""
    try:
        from mmengine.config import Config
    except ImportError:
        raise UsageError("verify --config reads configs with mmengine, which is not installed", fix="pip install 'ckptconv[mmengine]'") from None
    try:
        return Config.fromfile(str(path)).to_dict()
    except Exception as e:  # noqa: BLE001 - any config error is the user's file: one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""  # whole: mmengine's one line says the fix
        raise UsageError(f"cannot read the config ({type(e).__name__}: {first})", path=str(path)) from None


def config_files(path: Path) -> list[Path]:
    """The config and every file of its ``_base_`` chain (names relative to the file naming them;
    ``pkg::`` names are installed packages' configs): inputs of a run, which no output may be."""
    found: list[Path] = []
    todo = [Path(path)]
    while todo:
        p = todo.pop()
        if p not in found and p.is_file():
            found.append(p)
            todo += [p.parent / base for base in _bases(p) if "::" not in base]
    return found


def _bases(path: Path) -> list[str]:
    """The literal ``_base_`` of a Python config (a name or a list of names), read without running it."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_base_" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, SyntaxError):
                return []
            values = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
            return [v for v in values if isinstance(v, str)]
    return []


def _init_cfgs(part: dict[str, Any]) -> list[dict[str, Any]]:
    init = part.get("init_cfg") or []
    return [c for c in (init if isinstance(init, list) else [init]) if isinstance(c, dict)]


def parts(cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """(model, backbone, neck, data preprocessor) of a detector, a classifier or a bare backbone."""
    model = cfg.get("model")
    if not isinstance(model, dict):
        raise UsageError("the config has no model = dict(...)", fix="pass the detector or classifier config the weights are for")
    backbone = model.get("backbone") if isinstance(model.get("backbone"), dict) else model
    neck = model.get("neck")
    neck = neck[0] if isinstance(neck, list) and neck else neck
    preprocessor = model.get("data_preprocessor") or cfg.get("data_preprocessor")
    return model, backbone, neck if isinstance(neck, dict) else None, preprocessor if isinstance(preprocessor, dict) else None


def checkpoint_of(cfg: dict[str, Any]) -> tuple[str | None, Any, str]:
    """The checkpoint the config loads, the prefix the weights must carry in the file, and the
    field that says so: the backbone's ``init_cfg`` (its ``prefix``), else the model's own
    ``init_cfg`` (mmpretrain's ImageClassifier: the whole classifier's keys), else ``load_from`` (a
    whole model's checkpoint: the backbone's weights under ``backbone.``)."""
    model, backbone, _, _ = parts(cfg)
    for part, where in ((backbone, "model.backbone.init_cfg.prefix"), (model, "model.init_cfg.prefix")):
        for init in _init_cfgs(part) if part is not model or backbone is not model else ():
            if init.get("checkpoint"):
                prefix = init.get("prefix") or ""
                return str(init["checkpoint"]), prefix.rstrip(".") if isinstance(prefix, str) else prefix, where
    if cfg.get("load_from"):
        return str(cfg["load_from"]), "backbone" if backbone is not model else "", "load_from"
    return None, None, ""


def builder_dict(builder: str) -> dict[str, Any]:
    """``"type='RegNet', arch=dict(w0=24, ...)"`` as a dict (the variant file's words, as data)."""
    call = ast.parse(f"dict({builder})", mode="eval").body
    return {kw.arg: _value(kw.value) for kw in call.keywords}


def _value(node: ast.AST) -> Any:
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dict":
        return {kw.arg: _value(kw.value) for kw in node.keywords}
    return ast.literal_eval(node)


def _same(have: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(have, dict) and set(have) == set(want) and all(_same(have[k], want[k]) for k in want)
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        return isinstance(have, (int, float)) and abs(have - want) <= 1e-9 * max(1.0, abs(want))
    return have == want


NORMS = ("BN", "SyncBN", "BN2d")  # BatchNorm in eval: the arithmetic of pycls's nn.BatchNorm2d
RESNET_TYPES = ("ResNet", "ResNeXt", "ResNet_CIFAR", "RegNet")  # mm classes whose style puts the stride on the 1x1 ('caffe') or the 3x3
MM_DEFAULTS = {"style": "pytorch", "deep_stem": False, "avg_down": False, "dcn": None, "plugins": None, "act_cfg": {"type": "Swish"}}  # what mm's ResNet, ResNeXt and RegNet build when a config leaves it out


def check_backbone(backbone: dict[str, Any], variant: Variant, table: Layout, found: Found) -> None:
    """Every argument the library's builder of these weights sets (type, arch or depth, groups,
    strides, style: where the stride sits) must be the config's."""
    built = table.built(variant)
    builder = built.text if built is not None and built.kind == "dict" else variant.library(table.name).get("builder")
    if not builder:
        return
    wants = builder_dict(builder)
    if wants.get("type") in RESNET_TYPES:  # where the stride sits: the same keys either way; pycls's stem and shortcut
        wants.setdefault("style", "caffe" if "stride_1x1" in variant.features else "pytorch")
        wants.setdefault("deep_stem", False)
        wants.setdefault("avg_down", False)
        wants.setdefault("dcn", None)  # deformable convs and plugins: modules the weights do not hold
        wants.setdefault("plugins", None)
    if wants.get("type") == "EfficientNet":
        wants.setdefault("act_cfg", {"type": "Swish"})  # pycls's SiLU
    for key, want in wants.items():
        have = backbone.get(key, MM_DEFAULTS.get(key))
        arch_by_name = key == "arch" and have == variant.name  # mmdet's and mmpretrain's RegNet know pycls's names
        _judge(found, f"model.backbone.{key}", _same(have, want) or arch_by_name, have, want)


def _judge(found: Found, where: str, ok: bool, have: Any, want: Any) -> None:
    if ok:
        found.passed.append(where)
    else:
        found.problems.append((where, f"is {have!r}; these weights need {want!r}"))


def settings(backbone: dict[str, Any], variant: Variant, table: Layout, found: Found) -> None:
    """The padding and BN eps the config builds with (where it leaves them out, the library's
    defaults: nn.Conv2d's padding and BatchNorm's 1e-5 unless the table says otherwise), judged
    against what the weights need."""
    need, defaults = table.needs(variant), table.library_defaults
    conv = backbone.get("conv_cfg") or {}
    conv_type = conv.get("type") if isinstance(conv, dict) else None
    found.padding = {"Conv2dAdaptivePadding": "same", "Conv2d": "symmetric"}.get(conv_type or "", defaults.get("padding", "symmetric"))
    _judge(found, "model.backbone.conv_cfg", found.padding == need["padding"], conv or None, "dict(type='Conv2d')")
    norm = backbone.get("norm_cfg") or {}
    if not isinstance(norm, dict):
        found.eps = need["eps"]
        return _judge(found, "model.backbone.norm_cfg", False, norm, f"dict(type='BN', eps={need['eps']:g})")
    if norm.get("type", "BN") not in NORMS:
        _judge(found, "model.backbone.norm_cfg.type", False, norm.get("type"), "BN or SyncBN (pycls's BatchNorm; another norm computes other features)")
    eps = norm.get("eps", defaults.get("eps", 1e-5))
    found.eps = float(eps) if _is_number(eps) else need["eps"]
    _judge(found, "model.backbone.norm_cfg.eps", _is_number(eps) and float(eps) == need["eps"], eps, need["eps"])


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _numbers(x: Any, n: int | None = None) -> bool:
    """A list or tuple of (``n``) numbers."""
    return isinstance(x, (list, tuple)) and (n is None or len(x) == n) and all(_is_number(v) for v in x)


def check_neck(backbone: dict[str, Any], neck: dict[str, Any] | None, variant: Variant, table: Layout, found: Found) -> None:
    """The backbone outputs ``out_indices`` selects are layers the weights hold (MMDetection's
    EfficientNet builds layers up to max(out_indices) and would leave the rest randomly
    initialized), and the neck reads their widths."""
    held, where = table.out_levels(variant), "model.backbone.out_indices"
    indices = backbone.get("out_indices")
    if indices is None and "default_out_indices" in table.config:
        indices, where = table.config["default_out_indices"], f"{where} (not set: the library's default)"
    if not held:
        return
    if not isinstance(indices, (list, tuple)):
        return _judge(found, where, False, indices, tuple(table.config.get("out_indices") or held))
    if not all(isinstance(i, int) and i in held for i in indices):
        example = tuple(table.config.get("out_indices") or held)
        _judge(found, where, False, tuple(indices), f"indices of layers they hold ({min(held)} ... {max(held)}), e.g. {example}")
        return
    found.passed.append(where)
    if neck is None or "in_channels" not in neck:
        return
    want = [variant.point_width(table.levels_for(variant)[held[i]]) for i in indices]
    have = neck["in_channels"]
    _judge(found, "model.neck.in_channels", _numbers(have) and list(have) == want, have, want)


def check_preprocessor(preprocessor: dict[str, Any] | None, pre: Preprocess, table: Layout, found: Found) -> None:
    flag = table.pipeline.flip_flag
    if preprocessor is None or not flag:
        return
    found.flip = bool(preprocessor.get(flag, False) or preprocessor.get("rgb_to_bgr", False))
    mean, std = preprocessor.get("mean"), preprocessor.get("std")
    found.mean = tuple(float(v) for v in mean) if _numbers(mean, 3) else None
    found.std = tuple(float(v) for v in std) if _numbers(std, 3) else None
    wrong = {what: (have, want) for what, have, want in mismatches(pre, found.flip, found.mean, found.std)}
    for what, value in (("mean", mean), ("std", std)):  # name what the config says, not what could be read of it
        if what in wrong and value is not None and not _numbers(value, 3):
            wrong[what] = (value, wrong[what][1])
    for what in ("flip", "mean", "std"):
        where = f"model.data_preprocessor.{flag if what == 'flip' else what}"
        if what in wrong:
            _judge(found, where, False, *wrong[what])
        else:
            found.passed.append(where)


PARAMETERS = Path(__file__).resolve().parents[1] / "data" / "mm_parameters.json"  # tools/groundtruth/mm_parameters.py


@functools.cache
def class_parameters() -> dict[str, dict[str, list[str]]]:
    """library -> class -> the parameters its __init__ takes (the real mmdet 3.3.0 and mmpretrain 1.2.0)."""
    return json.loads(PARAMETERS.read_text())


def check_keys(part: Any, where: str, table: Layout, found: Found) -> None:
    """Every key of a backbone or neck dict must be a parameter its class takes, or mmengine cannot
    build the model (an EfficientNet fragment merged into a ResNet backbone keeps its depth)."""
    library = table.library.name
    params = class_parameters().get(library, {}).get(str(part.get("type"))) if isinstance(part, dict) else None
    if params is None:
        return
    unknown = sorted(str(k) for k in part if k != "type" and k not in params)
    if unknown:
        found.problems.append((where, f"has {', '.join(unknown)}, which {library}'s {part['type']} does not take: {library} cannot build it "
                                      f"(merged into another model's dict? save the fragment as a child config, _base_ first, as its comment says)"))
    else:
        found.passed.append(f"{where} keys")


def check(cfg: dict[str, Any], variant: Variant, table: Layout, meta: dict[str, Any], stats) -> Found:
    """Every field the weights depend on, with the value it needs."""
    _, backbone, neck, preprocessor = parts(cfg)
    checkpoint, prefix, where = checkpoint_of(cfg)
    found = Found(checkpoint, table.settings["padding"], variant.eps)
    check_keys(backbone, "model.backbone", table, found)
    check_keys(neck, "model.neck", table, found)
    check_backbone(backbone, variant, table, found)
    settings(backbone, variant, table, found)
    check_neck(backbone, neck, variant, table, found)
    if where:
        written = meta.get("prefix") or ""
        if prefix == written:
            found.passed.append(where)
        else:
            need = f"prefix={written!r}" if written else "no prefix"
            found.problems.append((where, f"is {prefix or None!r}; these weights need {need} (they were written {'with --prefix ' + written if written else 'without a prefix'})"))
    check_preprocessor(preprocessor, needed(table.pipeline, meta.get("channel_order", "bgr"), stats), table, found)
    check_test_pipeline(cfg, variant, table, found)
    return found


def check_test_pipeline(cfg: dict[str, Any], variant: Variant, table: Layout, found: Found) -> None:
    """A classifier's test pipeline (a layout whose library's stock transforms are not pycls's):
    each step that resizes or crops otherwise, or at other sizes, is named; its geometry sets the
    pipeline check. A detector's pipeline is the detector's own: not judged."""
    if table.pipeline.stock == PYCLS_GEOMETRY:
        return
    steps = eval_pipeline.read(cfg, variant)
    if steps is None:
        return
    found.geometry = steps.geometry
    found.problems += steps.problems
    if not steps.problems:
        found.passed.append(eval_pipeline.pipeline_of(cfg)[0])
