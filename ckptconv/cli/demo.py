"""``ckptconv demo``: the whole path on this machine, no download."""

from __future__ import annotations

from pathlib import Path

import click

from .ui import UI


@click.command("demo")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"), show_default=True, help="Where to write the files.")
@click.option("--arch", default="b0", show_default=True, metavar="ARCH", help="Model of the synthetic checkpoint (any of ckptconv mappings).")
@click.option("--layout", default="mmdet", show_default=True, help="Target layout.")
@click.option("--force", is_flag=True, help="Replace files under the demo's names that the demo did not write.")
@click.pass_obj
def demo(obj, out_dir: Path, arch: str, layout: str, force: bool) -> None:
    """Write a pycls training checkpoint with random weights, convert it and verify the result.

    \b
    Writes OUT_DIR/<NAME>_demo.pyth (EN-B0, RegNetX-200MF, ResNet-50, ...: as pycls's trainer saves
    one, optimizer state included), OUT_DIR/<NAME>_demo_<layout>.pth and its _config.py.
    """
    ui = UI()
    with ui.guard():
        from ..signals import done, import_torch

        import_torch()
        from .. import demo as library
        from .convert import summarize

        made = library.run(out_dir, arch, layout, force, obj.tables)
        done()  # everything is published: a signal now changes nothing
        verb = "kept" if made.again else "wrote"
        ui.success(f"{verb} {made.checkpoint}: a pycls training checkpoint (random weights, SGD state)")
        summarize(UI(), made.result)
        defaults = made.result.conversion.library_defaults
        if defaults:  # show the check that catches the library's own settings
            flags = " ".join(f"--{k} {v:g}" if k == "eps" else f"--{k} {v}" for k, v in defaults.items())
            ui.success(f"wrote {made.config}; check a config with: ckptconv verify {made.result.output} {flags}  (fails: the library's defaults)")
        else:
            ui.success(f"wrote {made.config}; check the file any time with: ckptconv verify {made.result.output}")


COMMANDS = (demo,)
