"""Options shared by the conversion commands (pycls2mmdet, convert, batch)."""

from __future__ import annotations

from pathlib import Path

import click

DTYPES = ("keep", "fp16", "bf16", "fp32")


def input_size_option(f):
    return click.option(
        "--input-size",
        nargs=2,
        type=click.IntRange(min=8),
        default=(64, 96),
        show_default=True,
        metavar="H W",
        help="Input of the numeric check. The variant's own resolution (e.g. 300 300 for b3) is slower.",
    )(f)


def conversion_options(f):
    """--arch --weights --prefix --dtype --verify/--no-verify --input-size --force --trust-pickle."""
    for decorator in reversed(
        [
            click.option("--arch", metavar="ARCH", help="Model (b0 ... b5, regnetx_200mf ... regnety_32gf, resnet50 ...: ckptconv mappings lists them). Default: from the checkpoint's cfg, else its tensor shapes."),
            click.option(
                "--weights",
                type=click.Choice(["best", "model", "ema"]),
                default="best",
                show_default=True,
                help="pycls weight set: best picks as pycls's load_checkpoint does (model_state unless ema_err < test_err).",
            ),
            click.option("--prefix", metavar="TEXT", default=None, help="Prepend TEXT. to every output key (e.g. backbone). Default: the table's."),
            click.option(
                "--dtype",
                type=click.Choice(DTYPES),
                default="keep",
                show_default=True,
                help="Cast floating tensors (never num_batches_tracked); refuses values that would overflow.",
            ),
            click.option(
                "--channel-order",
                type=click.Choice(["rgb", "bgr"]),
                default=None,
                help="Colour order the written weights take. rgb (default; bgr for --to pycls): the stem's input channels reversed, "
                "so a library's stock RGB pipeline computes what pycls computed from BGR images. bgr: as pycls trained them.",
            ),
            click.option(
                "--verify",
                "verify_mode",
                type=click.Choice(["numeric", "structure"]),
                default="numeric",
                show_default=True,
                help="numeric: keys, shapes, bit identity and a forward pass against the pycls reference; structure: all but the forward pass.",
            ),
            click.option("--no-verify", is_flag=True, help="Skip verification (not recommended)."),
            input_size_option,
            click.option("--force", is_flag=True, help="Replace an existing output (atomically: the old file stays until the new one is complete)."),
            click.option("--trust-pickle", is_flag=True, help="DANGEROUS: unpickle any object the file asks for. Only for files from people you trust."),
        ]
    ):
        f = decorator(f)
    return f


def output_options(f):
    f = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")(f)
    f = click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout and nothing else.")(f)
    return f


def existing_path(**kwargs):
    return click.Path(exists=False, path_type=Path, **kwargs)
