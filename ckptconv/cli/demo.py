"""``ckptconv demo``: the whole path on this machine, no download."""

from __future__ import annotations

from pathlib import Path

import click

from .ui import UI


@click.command("demo")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"), show_default=True, help="Where to write the files.")
@click.option("--arch", default="b0", show_default=True, metavar="bN", help="Variant of the synthetic checkpoint.")
@click.option("--layout", default="mmdet", show_default=True, help="Target layout.")
@click.option("--force", is_flag=True, help="Replace files under the demo's names that the demo did not write.")
@click.pass_obj
def demo(obj, out_dir: Path, arch: str, layout: str, force: bool) -> None:
    """Write a pycls training checkpoint with random weights, convert it and verify the result.

    \b
    Writes OUT_DIR/EN-<ARCH>_demo.pyth (as pycls's trainer saves one, optimizer state included),
    OUT_DIR/EN-<ARCH>_demo_<layout>.pth and OUT_DIR/EN-<ARCH>_demo_<layout>_config.py.
    """
    ui = UI()
    with ui.guard():
        from ..signals import done, import_torch

        import_torch()
        from .. import demo as library
        from .convert import summarize

        made = library.run(out_dir, arch, layout, force, obj.registry)
        done()  # everything is published: a signal now changes nothing
        verb = "kept" if made.again else "wrote"
        ui.success(f"{verb} {made.checkpoint}: a pycls training checkpoint (random weights, SGD state)")
        summarize(UI(), made.result)
        ui.success(f"wrote {made.config}; check a detector config with: ckptconv verify {made.result.output} --padding same --eps 1e-3  (fails: mmdet's defaults)")


COMMANDS = (demo,)
