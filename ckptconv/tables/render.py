"""The config a converted file needs, from its table's ``[config] template``: the fragment an
MMDetection or mmpretrain config pastes, or the timm / torchvision snippet. torch-free."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

from ..errors import CkptError, TableError
from ..io.store import shown
from ..model.variants import Variant
from ..serialize import comment, python
from ..version import __version__
from .layout import Layout
from .pipeline import Preprocess, crop_pct


def _input_note(layout: Layout, pre: Preprocess) -> str:
    if not pre.flip or layout.pipeline.flip_flag:
        return ""
    return (f"# These weights take {pre.feeds.upper()} input and {layout.loads_into} feeds "
            f"{layout.pipeline.reads.upper()}: the transform above reverses the channels before Normalize,\n"
            "# or convert again with --channel-order rgb (the default).\n")


def _load_note(layout: Layout, checkpoint: Path | None) -> str:
    if checkpoint is None or checkpoint.suffix != ".safetensors" or not layout.library.openmmlab:
        return ""
    return ("# mmengine reads a .safetensors checkpoint through torch.load from torch 2.13 on (with the\n"
            "# safetensors package installed); with an older torch, convert to .pth instead.\n")


def _built_eps(layout: Layout, variant: Variant) -> float | None:
    return variant.library(layout.name).get("eps", 1e-5 if variant.eps != 1e-5 else None)


def eps_reset(layout: Layout, variant: Variant) -> bool:
    """The library's builder makes its BatchNorms with another eps than the weights need."""
    built = _built_eps(layout, variant)
    return built is not None and built != variant.eps


def _eps_note(layout: Layout, variant: Variant) -> str:
    """Code that resets BN eps where the library's builder uses another than the weights need."""
    built, need = _built_eps(layout, variant), variant.eps
    if not eps_reset(layout, variant):
        return ""
    return (f"# {variant.library(layout.name).get('builder') or layout.name} builds its BatchNorms with eps {built:g} and "
            f"these weights need {need:g}:\n# without this loop the features differ (ckptconv verify --eps {built:g} shows by how much).\n"
            f"for m in model.modules():\n    if isinstance(m, torch.nn.BatchNorm2d):\n        m.eps = {need!r}\n")


def _number(x: float) -> str:
    """A float as Python reads it and people write it: 1e-5, not 1e-05; 0.001."""
    return re.sub(r"e([-+])0+(\d)", r"e\1\2", repr(x))


def _load_weights(checkpoint: str, path: Path | None) -> str:
    """Python that reads a plain state dict file into ``state_dict``."""
    if path is not None and path.suffix == ".safetensors":
        return f"from safetensors.torch import load_file\nstate_dict = load_file({checkpoint})"
    return f"state_dict = torch.load({checkpoint}, map_location='cpu', weights_only=True)"


def _library_values(layout: Layout, variant: Variant, used: set[str]) -> dict[str, str]:
    """``builder``, ``library_name`` and ``builder_note``: how the layout's library builds the model
    (``ckptconv/libraries/<library>.py``, from the model's numbers), else the variant's ``[libraries.<layout>]``."""
    built = layout.built(variant)
    if built is not None:
        text = built.text
        entry = {"builder": text, "name": built.name, "note": built.note}
    else:
        entry = variant.library(layout.name)
    out = {}
    for key, placeholder in (("builder", "builder"), ("name", "library_name")):
        if placeholder in used and not entry.get(key):
            raise TableError(f"the {layout.name} table's config needs the model's {key}, which {variant.name} has none of",
                             fix=f"give the table's library a builder of {variant.family} models (ckptconv/libraries/), or add [libraries.{layout.name}] {key} to {variant.path or variant.name + '.toml'}")
        out[placeholder] = entry.get(key, "")
    out["builder_note"] = f"# {entry['note']}\n" if entry.get("note") else ""
    return out


def torch_transform(variant: Variant, pre: Preprocess) -> str:
    """The torchvision transform that gives pycls's input (timm's snippets use it too: no timm
    transform resizes without antialiasing or crops at pycls's offset)."""
    r, c = variant.test_size, variant.im_size
    flip = (f"    transforms.Lambda(lambda x: x.flip(0)),  # RGB to {pre.feeds.upper()}, the order these weights take (before Normalize: its mean and std are in that order)\n"
            if pre.flip else "")
    return (f"# pycls tests {variant.name} at: the short side resized to {r}, then a centre crop of {c}, on float32 pixels.\n"
            "# torchvision's Resize antialiases and its CenterCrop rounds the offset half to even (and timm's transforms\n"
            "# do the same): PyclsResizeCrop (pip install ckptconv) resizes and crops as pycls does, so the input is pycls's.\n"
            "from ckptconv.transforms import PyclsResizeCrop\n\n"
            "preprocess = transforms.Compose([\n"
            "    transforms.PILToTensor(),  # uint8, RGB as PIL decodes the file\n"
            f"    PyclsResizeCrop(resize={r}, crop={c}),  # pycls's resize (cv2's bilinear, no antialiasing) and centre crop, then /255\n"
            + flip +
            f"    transforms.Normalize(mean={pre.config()['mean']}, std={pre.config()['std']}),  # pycls's mean and std, in the order the weights take\n"
            "])\n")


def _mm_test_pipeline(variant: Variant) -> str:
    """An mmpretrain test pipeline that gives pycls's input (ResizeEdge and CenterCrop do not)."""
    r, c = variant.test_size, variant.im_size
    return (f"# pycls tests {variant.name} at: the short side resized to {r}, then a centre crop of {c}. mmpretrain's ResizeEdge\n"
            "# resizes uint8 pixels and computes the long side otherwise, and CenterCrop rounds the offset half to even:\n"
            "# PyclsResizeCrop (registered by ckptconv.mmengine) resizes float32 pixels with cv2 and crops as pycls does.\n"
            "custom_imports = dict(imports=['ckptconv.mmengine'], allow_failed_imports=False)\n"
            "test_pipeline = [\n"
            "    dict(type='LoadImageFromFile'),\n"
            f"    dict(type='PyclsResizeCrop', resize={r}, crop={c}),\n"
            "    dict(type='PackInputs'),\n"
            "]\n"
            "# These merge over your full config: its dataset type, data_root and ann_file stay yours.\n"
            "val_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n"
            "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n")


def render_config(layout: Layout, variant: Variant, checkpoint: Path | None, prefix: str, pre: Preprocess) -> str | None:
    """The target library config the weights need, from the table's template. The checkpoint is
    written as an absolute path: a training run may start from any directory."""
    template = layout.config.get("template")
    if not template:
        return None
    widths = [variant.point_width(p) for p in layout.levels_for(variant).values()]
    out_indices = tuple(layout.config.get("out_indices", ()))
    quoted = python(shown(checkpoint)) if checkpoint is not None else "'OUT'"
    values = {
        **variant.config_values(),
        **_library_values(layout, variant, {f for _, f, _, _ in string.Formatter().parse(template) if f}),
        "arch": variant.name, "title": comment(variant.title), "version": __version__, "checkpoint": quoted,
        "init_prefix": f", prefix={python(prefix)}" if prefix else "", "prefix": python(prefix),
        "out_indices": out_indices, "in_channels": [widths[i] for i in out_indices], "level_widths": widths,
        "num_classes": variant.num_classes, "channel_order": pre.feeds.upper(), "flip": pre.flip,
        "eps": _number(variant.eps), "stage_indices": tuple(range(variant.stages)), "last_stage": (variant.stages - 1,),
        "mean": pre.config()["mean"], "std": pre.config()["std"],
        "crop_size": variant.im_size, "resize_size": variant.test_size, "crop_pct": crop_pct(variant.im_size, variant.test_size),
        "input_note": _input_note(layout, pre), "load_note": _load_note(layout, checkpoint),
        "eps_note": _eps_note(layout, variant), "load_weights": _load_weights(quoted, checkpoint),
        "torch_transform": torch_transform(variant, pre), "mm_test_pipeline": _mm_test_pipeline(variant),
    }
    return template.format(**values).strip() + "\n"


def recorded_config(path: Path, meta: dict[str, Any], registry) -> str | None:
    """The config a file ckptconv wrote needs (what its conversion printed), from its meta: the
    model, layout, prefix and channel order it records. None for a file without such a meta."""
    from .detect import recorded_model
    from .pipeline import default_order, needed

    try:
        variant = recorded_model(meta, registry)
        if variant is None or not meta.get("layout"):
            return None
        table = registry.layout(meta["layout"], variant.family)
    except CkptError:
        return None
    order = meta.get("channel_order") or default_order(table.pipeline)
    pre = needed(table.pipeline, order, registry.pycls_layout(variant.family).pipeline)
    return render_config(table, variant, path, meta.get("prefix") or "", pre)
