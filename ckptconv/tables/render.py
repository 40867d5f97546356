"""The config a converted file needs, from its table's ``[config] template``: the fragment an
MMDetection or mmpretrain config pastes, or the timm / torchvision snippet. torch-free."""

from __future__ import annotations

import os
import string
from pathlib import Path

from ..errors import TableError
from ..version import __version__
from .layout import Layout
from .pipeline import Preprocess, crop_pct
from .variants import Variant


def _input_note(layout: Layout, pre: Preprocess) -> str:
    if not pre.flip or layout.pipeline.flip_flag:
        return ""
    return (f"# These weights take {pre.feeds.upper()} input and {layout.library or layout.name} feeds "
            f"{layout.pipeline.reads.upper()}: reverse the channels after the transforms (x = x.flip(0)),\n"
            "# or convert again with --channel-order rgb (the default).\n")  # fmt: skip


def _load_note(layout: Layout, checkpoint: Path | None) -> str:
    if checkpoint is None or checkpoint.suffix != ".safetensors" or layout.loader != "mmengine":
        return ""
    return ("# mmengine reads a .safetensors checkpoint through torch.load from torch 2.13 on (with the\n"
            "# safetensors package installed); with an older torch, convert to .pth instead.\n")  # fmt: skip


def _eps_note(layout: Layout, variant: Variant) -> str:
    """Code that resets BN eps where the library's builder uses another than the weights need."""
    built, need = variant.library(layout.name).get("eps"), layout.settings["eps"]
    if built is None or built == need:
        return ""
    return (f"# {variant.library(layout.name).get('builder') or layout.name} builds its BatchNorms with eps {built:g} and "
            f"these weights need {need:g}:\n# without this loop the features differ (ckptconv verify --eps {built:g} shows by how much).\n"
            f"for m in model.modules():\n    if isinstance(m, torch.nn.BatchNorm2d):\n        m.eps = {need!r}\n")  # fmt: skip


def _load_weights(checkpoint: str, path: Path | None) -> str:
    """Python that reads a plain state dict file into ``state_dict``."""
    if path is not None and path.suffix == ".safetensors":
        return f"from safetensors.torch import load_file\nstate_dict = load_file({checkpoint})"
    return f"state_dict = torch.load({checkpoint}, map_location='cpu', weights_only=True)"


def _library_values(layout: Layout, variant: Variant, used: set[str]) -> dict[str, str]:
    """``builder``, ``library_name`` and ``builder_note`` from the variant's ``[libraries.<layout>]``
    (the first two required when the template uses them)."""
    entry, out = variant.library(layout.name), {}
    for key, placeholder in (("builder", "builder"), ("name", "library_name")):
        if placeholder in used and not entry.get(key):
            raise TableError(f"variant {variant.name} has no [libraries.{layout.name}] {key}, which the {layout.name} table's config needs",
                             fix=f"add it to {variant.path or variant.name + '.toml'}")  # fmt: skip
        out[placeholder] = entry.get(key, "")
    out["builder_note"] = f"# {entry['note']}\n" if entry.get("note") else ""
    return out


def render_config(layout: Layout, variant: Variant, checkpoint: Path | None, prefix: str, pre: Preprocess) -> str | None:
    """The target library config the weights need, from the table's template. The checkpoint is
    written as an absolute path: a training run may start from any directory."""
    template = layout.config.get("template")
    if not template:
        return None
    widths = [variant.point_width(p) for p in layout.levels.values()]
    out_indices = tuple(layout.config.get("out_indices", ()))
    quoted = repr(os.path.abspath(checkpoint)) if checkpoint is not None else "'OUT'"
    values = {
        **variant.config_values(),
        **_library_values(layout, variant, {f for _, f, _, _ in string.Formatter().parse(template) if f}),
        "arch": variant.name, "title": variant.title, "version": __version__, "checkpoint": quoted,
        "init_prefix": f", prefix='{prefix}'" if prefix else "", "prefix": prefix,
        "out_indices": out_indices, "in_channels": [widths[i] for i in out_indices], "level_widths": widths,
        "num_classes": variant.num_classes, "channel_order": pre.feeds.upper(), "flip": pre.flip,
        "mean": pre.config()["mean"], "std": pre.config()["std"],
        "crop_size": variant.im_size, "resize_size": variant.test_size, "crop_pct": crop_pct(variant.im_size, variant.test_size),
        "input_note": _input_note(layout, pre), "load_note": _load_note(layout, checkpoint),
        "eps_note": _eps_note(layout, variant), "load_weights": _load_weights(quoted, checkpoint),
    }  # fmt: skip
    return template.format(**values).strip() + "\n"
