"""``ckptconv mappings``: list the tables; ``mappings show`` prints one expanded key by key."""

from __future__ import annotations

import re

import click

from ..options import PYCLS
from .ui import UI


@click.group("mappings", invoke_without_command=True)
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.pass_context
def mappings(ctx: click.Context, json_mode: bool) -> None:
    """List the families, their layouts and models, and which model goes to which target (never imports torch)."""
    if ctx.invoked_subcommand is not None:
        return
    ui = UI(json_mode=json_mode)
    with ui.guard():
        from ..model.families import FAMILIES

        registry = ctx.obj.registry
        layouts = [
            {"family": lay.family, "layout": lay.name, "version": lay.version, "reference": lay.reference, "container": lay.container,
             "rules": len(lay.rules), "summary": lay.summary, "refuses": [r.when for r in lay.refuse], "path": lay.path}
            for lay in registry.all_layouts()
        ]
        variants = [{"arch": v.name, "family": v.family, "title": v.title, "config": v.config, "im_size": v.im_size, "path": v.path,
                     "targets": registry.targets(v)} for v in _by_size(registry.variants.values())]
        if json_mode:
            ui.json({"families": {f.name: f.title for f in FAMILIES.values()}, "layouts": layouts, "variants": variants})
            return
        ui.table("layouts, by family (pycls is each family's own layout: every table maps from it)", ["family", "layout", "version", "summary"],
                 [(t["family"], t["layout"], t["version"], t["summary"]) for t in layouts], force=True)
        for family in FAMILIES.values():
            names = [n for n in registry.layouts_by_family[family.name] if n != PYCLS]
            rows = [(v["arch"], v["title"], *(v["targets"][n] for n in names)) for v in variants if v["family"] == family.name]
            ui.table(f"{family.title}: models and targets", ["arch", "model", *names], rows, force=True)


def _by_size(variants):
    """Family by family, series by series (RegNetX, then RegNetY), smallest first."""
    return sorted(variants, key=lambda v: (v.family, re.match(r"[a-z_]*", v.name).group(), sum(s.numel for s in v.pycls_keys)))


@mappings.command("show")
@click.argument("layout")
@click.option("--arch", default=None, metavar="ARCH", help="Variant to expand the table for. Default: the family's first, and it says so.")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.pass_obj
def show(obj, layout: str, arch: str, json_mode: bool) -> None:
    """Print LAYOUT's table expanded for one variant: every pycls key, its target key and rule."""
    ui = UI(json_mode=json_mode)
    with ui.guard():
        from ..tables.engine import plan

        registry = obj.registry
        variant = registry.variant(arch) if arch else registry.variants_of(registry.layouts_named(layout)[0].family)[0]
        table = registry.layout(layout, variant.family)
        table.check_holds(variant)  # RegNetY into mmdet: the refusal, not a missing rule
        p = plan(variant, table, registry.pycls_layout(variant.family))
        if json_mode:
            ui.json({
                "layout": table.name, "version": table.version, "arch": variant.name,
                "entries": [{"source": e.source, "target": e.target, "rule": e.rule, "reason": e.reason, "shape": list(e.shape)} for e in p.entries],
            })
            return
        rows = [(e.source, e.target or f"(dropped: {e.reason})", e.rule, "x".join(map(str, e.shape)) or "scalar") for e in p.entries]
        others = ", ".join(v.name for v in registry.variants_of(variant.family))
        chosen = "" if arch else f" (the first variant; pass --arch for another: {others})"
        ui.table(f"{table.table_id} for {variant.name}{chosen}: {len(p.mapped)} mapped, {len(p.dropped)} dropped", ["pycls key", "target key", "rule", "shape"], rows, force=True)


COMMANDS = (mappings,)
