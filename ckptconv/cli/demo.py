"""``ckptconv demo``: the whole path on this machine, no download."""

from __future__ import annotations

from pathlib import Path

import click

from .ui import UI


@click.command("demo")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"), show_default=True, help="Where to write the files.")
@click.option("--arch", default="b0", show_default=True, metavar="bN", help="Variant of the synthetic checkpoint.")
@click.option("--layout", default="mmdet", show_default=True, help="Target layout.")
@click.option("--force", is_flag=True, help="Replace files from an earlier demo.")
@click.pass_obj
def demo(obj, out_dir: Path, arch: str, layout: str, force: bool) -> None:
    """Write a pycls training checkpoint with random weights, convert it and verify the result.

    \b
    Writes OUT_DIR/EN-<ARCH>_demo.pyth (as pycls's trainer saves one, optimizer state included),
    OUT_DIR/EN-<ARCH>_demo_<layout>.pth and OUT_DIR/EN-<ARCH>_demo_<layout>_config.py.
    """
    ui = UI()
    with ui.guard():
        import torch

        from .. import synthetic
        from ..convert import Options, convert
        from ..errors import UsageError
        from ..files import atomic_write
        from .convert import summarize

        variant = obj.registry.variant(arch)
        obj.registry.layout(layout)  # an unknown layout fails before anything is written
        out_dir.mkdir(parents=True, exist_ok=True)
        src = out_dir / f"EN-{variant.name.upper()}_demo.pyth"
        if src.exists() and not force:
            raise UsageError("the demo checkpoint exists", fix="pass --force to write it again", path=str(src))
        ckpt = synthetic.pycls_checkpoint(variant)
        atomic_write(src, lambda f: torch.save(ckpt, f))
        ui.success(f"wrote {src}: a pycls training checkpoint ({variant.title}, random weights, SGD state)")
        out = out_dir / f"{src.stem}_{layout}.pth"
        config = out_dir / f"{src.stem}_{layout}_config.py"
        result = convert(src, out, Options(layout=layout, force=force, config_out=config), obj.registry)
        summarize(UI(), result)
        ui.success(f"wrote {config}; check a detector config with: ckptconv verify {out} --padding same --eps 1e-3  (fails: mmdet's defaults)")


COMMANDS = (demo,)
