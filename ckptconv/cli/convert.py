"""``ckptconv pycls2mmdet`` and ``ckptconv convert``."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from ..options import PYCLS
from .options import LOCATION, conversion_options, hub_options, onnx_options, output_options, request_from
from .ui import UI, human_bytes, human_params


def run_convert(ctx_obj, src: Path, out: Path | None, kw: dict, **fields) -> None:
    ui = UI(json_mode=kw["json_mode"], quiet=kw["quiet"])
    with ui.guard():
        from ..io.hashing import start_hash
        from ..io.store import is_url
        from ..preflight import ready

        if fields.get("layout") is None:
            from ..tables.registry import registry_for

            names = ", ".join(registry_for(ctx_obj.tables).layout_names)
            raise UsageError("convert needs --to LAYOUT: the layout to write", fix=f"add --to with one of {names} (ckptconv mappings lists them)")
        dry_run = kw["dry_run"]
        request = request_from(kw, ctx_obj.tables, source=src, output=None if dry_run else out, config_out=kw["config_out"], **fields)
        request = ready(request, writes=not dry_run)  # checked once, before torch: a usage error costs milliseconds
        # hash the input on the other core while this one imports torch
        hashed = start_hash(src) if not dry_run and not is_url(src) else None  # an object is read by range, never whole
        from ..signals import done, import_torch

        import_torch()
        from ..convert import Result, convert, prepare

        if kw["trust_pickle"]:
            ui.warning("--trust-pickle: unpickling whatever the file asks for; this can run code stored in it")
        result = Result(prepare(request)) if dry_run else convert(request, source_hash=hashed)
        done()  # the output is published: a signal now changes nothing
        if ui.json_mode:
            ui.json(result.to_dict())
        elif dry_run:
            show_plan(ui, result.conversion.plan, force=True)
        else:
            summarize(ui, result)


def show_plan(ui: UI, plan, *, force: bool = False) -> None:
    rows = [(e.source, e.target, e.rule) for e in plan.mapped]
    rows += [(e.source, f"(dropped: {e.reason})", e.rule) for e in plan.dropped]
    rows += [("(absent)", e.target, f"{e.rule}: {e.reason}") for e in plan.absent]
    title = f"{plan.source_layout} -> {plan.target_layout}, {plan.variant.name}: {len(plan.mapped)} mapped, {len(plan.dropped)} dropped"
    ui.table(title, ["source key", "target key", "rule"], rows, force=force)


def summarize(ui: UI, result) -> None:
    from ..convert import warnings
    from ..model.families import FAMILIES
    from ..tables.engine import group_keys

    c, plan = result.conversion, result.conversion.plan
    ui.success(
        f"{c.request.source} -> {result.output}  [{plan.source_layout} -> {c.layout}, "
        f"{c.variant.name} (from {c.arch_from}), {c.weight_set} weights, {c.dtype}]"
    )
    dropped = plan.dropped
    if dropped:
        rules = sorted({e.rule for e in dropped})
        ui.info(f"  {len(plan.mapped)} keys mapped; {len(dropped)} dropped by {', '.join(rules)}: {group_keys(e.source for e in dropped)}")
    else:
        ui.info(f"  {len(plan.mapped)} keys mapped, none dropped")
    ui.info(f"  {human_params(c.params)} parameters, {human_bytes(result.bytes)} written in {result.seconds:.2f} s")
    if result.report is not None:
        for check in result.report.checks:
            ui.info(f"  verified {check.name}: {check.detail}")
        for note in result.report.notes:
            ui.info(f"  note: {note}")
    if c.config and c.layout == "onnx":
        what = "a photo's pixels" if c.meta["options"]["input"] == "image" else "pycls's normalized tensor"
        ui.info("")
        ui.info(f"[bold]How to run the graph[/bold] (it takes {what}, {c.colours.target.upper()}):", markup=True)
        ui.plain(c.config)
    elif c.config:
        needs = c.meta.get("settings", {})
        ui.info("")
        padding = f"padding={needs.get('padding')}, " if FAMILIES[c.variant.family].paddable else ""
        ui.info(f"[bold]The config these weights need[/bold] ({padding}BN eps={needs.get('eps'):g}, "
                f"{c.colours.target.upper()} input):", markup=True)
        ui.plain(c.config)
    for line in warnings(c):
        ui.warning(line)


def _common(f):
    f = click.option("--config-out", type=LOCATION, metavar="FILE", help="Also write the config fragment to FILE.")(f)
    f = click.option("--dry-run", is_flag=True, help="Print the mapping plan (every key, every drop and its rule) and write nothing.")(f)
    return output_options(conversion_options(f))


@click.command("pycls2mmdet")
@click.argument("src", metavar="IN", type=LOCATION)
@click.argument("out", metavar="OUT", type=LOCATION, required=False)  # omitted only with --dry-run
@click.option("--layout", default="mmdet", show_default=True, help="Target layout: mmdet (MMDetection 3.x's EfficientNet, RegNet, ResNet, ResNeXt) or mmdet-stages (EfficientNet only, as efficientnet2mmdet.py names it).")
@_common
@click.pass_obj
def pycls2mmdet(obj, src: Path, out: Path | None, layout: str, **kw) -> None:
    """Convert a pycls checkpoint IN (EfficientNet, RegNetX, ResNet, ResNeXt) to an MMDetection checkpoint OUT.

    OUT ending in .pth writes torch.save({'state_dict': ..., 'meta': ...}); .safetensors writes a
    safetensors file with the meta in its metadata (OUT may be left out only with --dry-run). Prints
    the backbone config the weights need.
    """
    run_convert(obj, src, out, kw, layout=layout)


@click.command("convert")
@click.argument("src", metavar="IN", type=LOCATION)
@click.argument("out", metavar="OUT", type=LOCATION, required=False)  # omitted only with --dry-run
@click.option("--from", "source_layout", default=PYCLS, show_default=True, help="Layout of IN: pycls or a table (mmdet, mmdet-stages, mmpretrain, timm, torchvision; ckptconv mappings lists them).")
@click.option("--to", "layout", default=None, help="Layout of OUT: a table name, or pycls (required).")
@click.option("--allow-partial", is_flag=True, help="Converting to pycls: write the file even when IN lacks keys pycls has (e.g. head.fc from mmdet).")
@_common
@hub_options
@onnx_options
@click.pass_obj
def convert_cmd(obj, src: Path, out: Path | None, source_layout: str, layout: str, allow_partial: bool, **kw) -> None:
    """Convert IN from one layout to another; pycls is the hub (pycls -> X, X -> pycls).

    OUT ends in .pth or .safetensors (it may be left out only with --dry-run); with --to onnx, in
    .onnx: one ONNX graph of pycls's model, checked in onnxruntime (needs ckptconv[onnx]).
    """
    run_convert(obj, src, out, kw, layout=layout, source_layout=source_layout, allow_partial=allow_partial)


COMMANDS = (pycls2mmdet, convert_cmd)
