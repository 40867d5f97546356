"""``ckptconv inspect``: what a checkpoint holds, without reading its tensor data."""

from __future__ import annotations

from pathlib import Path

import click

from .options import LOCATION
from .ui import UI, human_bytes, human_params


@click.command("inspect")
@click.argument("path", metavar="FILE", type=LOCATION)
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.option("--trust-pickle", is_flag=True, help="DANGEROUS: unpickle any object the file asks for.")
@click.pass_obj
def inspect_cmd(obj, path: Path, json_mode: bool, trust_pickle: bool) -> None:
    """Describe FILE: format, top-level keys, weight sets and their recorded errors, detected layout and
    arch (and from what), tensor and parameter counts, dtypes, bytes, and any ckptconv meta.

    zip and safetensors files are described without reading their tensor data.
    """
    ui = UI(json_mode=json_mode)
    with ui.guard():
        from ..signals import import_torch

        import_torch()
        from ..inspection import inspect_file

        info = inspect_file(path, obj.registry, trust_pickle=trust_pickle)
        if json_mode:
            ui.json(info)
        elif info["format"] == "onnx":
            show_graph(ui, info)
        else:
            show_checkpoint(ui, info)


def show_graph(ui: UI, info: dict) -> None:
    """An ONNX graph: its inputs and outputs, and the provenance it carries."""
    p = info["provenance"]
    ui.info(f"{info['path']}: an ONNX graph (opset {info['opset']}), {human_bytes(info['file_bytes'])}")
    ui.info(f"  inputs: {', '.join(f'{n} {shape}' for n, shape in info['inputs'].items())}; outputs: {', '.join(info['outputs'])}")
    takes = (f"a photo's uint8 pixels ({p['channel_order'].upper()}), resized to {p['resize']} and cropped to {p['crop']} inside the graph"
             if p["input"] == "image" else f"pycls's normalized tensor ({p['channel_order'].upper()}; mean {list(p['mean'])}, std {list(p['std'])})")
    ui.info(f"  made by ckptconv {p['ckptconv_version']}: {p['arch']}, {p['weights']} weights, source sha256 {p['source_sha256'] or '(not recorded)'}")
    ui.info(f"  takes {takes}")


def show_checkpoint(ui: UI, info: dict) -> None:
    """A checkpoint: its weight sets, what each library loads, ckptconv's meta and config."""
    ui.info(f"{info['path']}: {info['format']} format, {human_bytes(info['file_bytes'])}, holds a {info['kind']} checkpoint")
    ui.info(f"  top level: {info['top_level']}")
    if info.get("epoch") is not None:
        ui.info(f"  epoch: {info['epoch']}")
    if info.get("kind") == "pycls":
        errors = ", ".join(f"{k}={v:g}" for k, v in info["errors"].items()) or "none recorded"
        ui.info(f"  recorded errors: {errors}; --weights best picks {info['best']}")
    rows = []
    for name, s in info["weight_sets"].items():
        fit = f"{s['fit']} (from {s['detected_from']})" if s.get("arch") else s["fit"]
        dtypes = ", ".join(f"{k} x{v}" for k, v in s["dtypes"].items())
        rows.append((name, fit, s["tensors"], human_params(s["params"]), dtypes, human_bytes(s["bytes"])))
    ui.table("weight sets", ["set", "layout and arch", "tensors", "params", "dtypes", "bytes"], rows)
    for name, s in info["weight_sets"].items():
        if s.get("note"):
            ui.info(f"  {name}: {s['note']}")
    for library, chosen in info.get("loaded_by", {}).items():
        ui.info(f"  {library} loads: {chosen}")
    if info.get("meta_words"):
        ui.info(f"  made by ckptconv: {info['meta_words']} (--json shows every field)")
    if info.get("config"):
        ui.info("  the config these weights need (as their conversion printed it):")
        ui.plain(info["config"])  # rendered from ckptconv's templates: the meta's model is re-named from its numbers


COMMANDS = (inspect_cmd,)
