"""``ckptconv mappings``: list the tables; ``mappings show`` prints one expanded key by key."""

from __future__ import annotations

import click

from .ui import UI


@click.group("mappings", invoke_without_command=True)
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.pass_context
def mappings(ctx: click.Context, json_mode: bool) -> None:
    """List the mapping tables and variants (never imports torch)."""
    if ctx.invoked_subcommand is not None:
        return
    ui = UI(json_mode=json_mode)
    with ui.guard():
        registry = ctx.obj.registry
        layouts = [
            {"layout": lay.name, "version": lay.version, "reference": lay.reference, "container": lay.container,
             "rules": len(lay.rules), "summary": lay.summary, "path": lay.path}
            for lay in registry.layouts.values()
        ]  # fmt: skip
        variants = [{"arch": v.name, "title": v.title, "config": v.config, "im_size": v.im_size, "path": v.path} for v in registry.variants.values()]
        if json_mode:
            ui.json({"layouts": layouts, "variants": variants})
            return
        ui.table("layouts (pycls is the source layout of every table)", ["layout", "version", "rules", "summary"],
                 [(t["layout"], t["version"], t["rules"], t["summary"]) for t in layouts], force=True)  # fmt: skip
        ui.table("variants", ["arch", "title", "pycls config", "trained at"],
                 [(v["arch"], v["title"], v["config"], f"{v['im_size']}px") for v in variants], force=True)  # fmt: skip


@mappings.command("show")
@click.argument("layout")
@click.option("--arch", default=None, metavar="bN", help="Variant to expand the table for. Default: the first (b0), and it says so.")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.pass_obj
def show(obj, layout: str, arch: str, json_mode: bool) -> None:
    """Print LAYOUT's table expanded for one variant: every pycls key, its target key and rule."""
    ui = UI(json_mode=json_mode)
    with ui.guard():
        from ..engine import PYCLS, plan

        registry = obj.registry
        table = registry.layout(layout)
        variant = registry.variant(arch) if arch else next(iter(registry.variants.values()))
        p = plan(variant, table, registry.layout(PYCLS))
        if json_mode:
            ui.json({
                "layout": table.name, "version": table.version, "arch": variant.name,
                "entries": [{"source": e.source, "target": e.target, "rule": e.rule, "reason": e.reason, "shape": list(e.shape)} for e in p.entries],
            })  # fmt: skip
            return
        rows = [(e.source, e.target or f"(dropped: {e.reason})", e.rule, "x".join(map(str, e.shape)) or "scalar") for e in p.entries]
        chosen = "" if arch else f" (the first variant; pass --arch for another: {', '.join(registry.variants)})"
        ui.table(f"{table.table_id} for {variant.name}{chosen}: {len(p.mapped)} mapped, {len(p.dropped)} dropped", ["pycls key", "target key", "rule", "shape"], rows, force=True)


COMMANDS = (mappings,)
