"""The Python API: the CLI's pipeline, for code. ``import ckptconv`` exposes these names.

    import ckptconv

    converted = ckptconv.convert_checkpoint("EN-B3_dds_8gpu.pyth", "mmdet")  # in memory, verified
    model.load_state_dict(converted.state_dict)
    print(converted.config)                                               # what the library needs

    ckptconv.convert_checkpoint("RegNetY-800MF_dds_8gpu.pyth", "timm", output="regnety.pth")
    report = ckptconv.verify_checkpoint("regnety.pth")                    # report.ok, report.first_failure
    ckptconv.inspect_checkpoint("RegNetY-800MF_dds_8gpu.pyth")           # what the file holds
    batch = ckptconv.convert_batch(["zoo/"], "out", layouts=["mmdet", "timm"])  # batch.ok, batch.report

Every failure is a ``ckptconv.CkptError`` (``UsageError``, ``Refused``, ``FormatError``,
``MappingError``, ``VerificationError``, ...): the one-line message the CLI prints, with ``.fix``.
Importing ckptconv does not import torch; these functions do, when called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .verification.report import Report


@dataclass(frozen=True)
class Converted:
    """A conversion's result: the state dict as the target library loads it (in memory, or as
    written to ``output``), the config it needs, and what was checked."""

    state_dict: dict[str, torch.Tensor]
    layout: str
    arch: str
    config: str | None  # the config fragment or snippet the target needs (None: the layout has none)
    meta: dict[str, Any]  # what a written file records: source sha256, table, channel order, settings
    report: Report | None  # the verification (None when verify="none")
    warnings: list[str] = field(default_factory=list)
    output: Path | None = None


# the command line's flags, and the keyword arguments that are the same option here
_FLAGS = {"--to": "layout", "--from": "source_layout", "--no-verify": 'verify="none"', "--bgr-to-rgb": "flip", "--to-rgb": "flip",
          "--transforms": "geometry", "--json": None, "--hub": "hub=True", "--force": "force=True", "--trust-pickle": "trust_pickle=True"}


def _keyword(flag: str) -> str:
    if flag in _FLAGS:
        return _FLAGS[flag] or flag
    name = flag[2:].replace("-", "_")
    return name if name in _OPTION_NAMES else flag


_OPTION_NAMES = frozenset(
    "source_layout arch weights prefix dtype channel_order verify input_size config_out allow_partial tables cfg license "
    "source layout padding eps flip mean std".split()
)


def _in_api_words(func):
    """A ``CkptError`` raised through the API names its keyword arguments, not the command line's flags."""
    import functools
    import re

    from .errors import CkptError

    @functools.wraps(func)
    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CkptError as e:
            e.message, e.fix = (re.sub(r"--[a-z][a-z0-9-]*", lambda m: _keyword(m.group()), t) if t else t for t in (e.message, e.fix))
            e.args = (str(e),)
            raise

    return call


@_in_api_words
def convert_checkpoint(source: str | Path, layout: str = "mmdet", *, output: str | Path | None = None, copy: bool = False, **options: Any) -> Converted:
    """Convert ``source`` (a pycls checkpoint, or a file in ``source_layout``) to ``layout``.

    ``options`` are the fields of ``ckptconv.options.Request`` (the command line's options):
    ``source_layout``, ``arch``, ``weights``, ``prefix``, ``dtype``, ``channel_order``, ``verify``
    (numeric, structure or none), ``input_size``, ``config_out``, ``force``, ``allow_partial``,
    ``trust_pickle``, ``tables``, ``cfg``, ``hub`` and ``license`` (``output`` is then the timm
    folder: ckptconv.hub). ``layout="transformers"`` always writes a folder (ckptconv.hub_transformers). Without ``output`` nothing is written: the state dict is returned
    (its tensors may share memory with the memory-mapped source, so a source truncated while they
    are in use kills the process with SIGBUS; ``copy=True`` returns tensors of their own). With it, the file (and
    ``config_out``) is written atomically, as ``ckptconv convert`` does. Verification runs first
    either way and raises ``VerificationError`` when it fails.
    """
    from .convert import checked, convert, warnings
    from .options import Request, build

    request = build(Request, "convert_checkpoint", **options, source=source, layout=layout, output=output)
    if request.output is not None:
        result = convert(request)
        c, report = result.conversion, result.report
    else:
        c, report = checked(request)
    tensors = {k: v.clone() for k, v in c.tensors.items()} if copy else c.tensors
    return Converted(tensors, c.target.name, c.variant.name, c.config, c.meta, report, warnings(c), request.output)


@dataclass(frozen=True)
class Batched:
    """A batch's result: ``report`` is what ``ckptconv batch --report`` writes (every file's status,
    output and sha256s, the summary and the plan's identity); ``ok`` is its verdict."""

    ok: bool
    report: dict[str, Any]


@_in_api_words
def convert_batch(sources: list[str | Path] | tuple[str | Path, ...], out_dir: str | Path, *, layouts: tuple[str, ...] | list[str] = (),
                  fmt: str = "pth", publish: bool = False, configs: bool = False, every_epoch: bool = False, report: str | Path | None = None,
                  metafile: str | Path | None = None, shard: str | None = None, jobs: int | None = None, **options: Any) -> Batched:
    """Convert every checkpoint in ``sources`` (files, directories, globs, manifests) under
    ``out_dir``, as ``ckptconv batch`` does: the whole plan is checked before anything is written,
    ``jobs`` workers convert (default: the machine's cores), each output is published whole.
    ``layouts`` are the ``--to`` values (default mmdet; ``"all"``); ``options`` the conversion's
    (see ``convert_checkpoint``). A file that fails is in the report; a ``CkptError`` is raised
    only when the batch cannot run (``UsageError``: two inputs writing one output, ...)."""
    import os

    from .batch.run import BatchRequest, prepare_batch, run_batch
    from .options import Request, build

    base = build(Request, "convert_batch", **options, source=".")
    request = BatchRequest(sources=tuple(str(s) for s in sources), out_dir=Path(out_dir), base=base, targets=tuple(layouts), fmt=fmt,
                           publish=publish, configs=configs, every_epoch=every_epoch, report=_path(report), metafile=_path(metafile),
                           shard=shard)
    batch, written = run_batch(prepare_batch(request), workers=jobs or os.cpu_count() or 1)
    return Batched(batch.ok, written)


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


@_in_api_words
def verify_checkpoint(path: str | Path, **expectations: Any) -> Report:
    """Verify a converted file as ``ckptconv verify`` does. ``expectations`` are the fields of
    ``ckptconv.options.Expectations``: ``source``, ``arch``, ``layout``, ``weights``, ``padding``,
    ``eps``, ``channel_order``, ``flip``, ``mean``, ``std``, ``input_size``, ``trust_pickle``,
    ``tables``, and ``in_library`` (with ``images``, ``labels``, ``config``: the file run in its
    library as installed here). Failed checks are in the report (``report.ok``,
    ``report.first_failure``, ``report.to_dict()``; ``report.status`` is "not checked" where an
    in-library check could not run); a ``CkptError`` is raised only when the file cannot be read or
    an argument is unusable."""
    from .options import Expectations, build
    from .verify.file import verify_file

    return verify_file(path, build(Expectations, "verify_checkpoint", **expectations))


@_in_api_words
def inspect_checkpoint(path: str | Path, *, trust_pickle: bool = False, tables: tuple[str | Path, ...] = ()) -> dict[str, Any]:
    """What ``ckptconv inspect --json`` prints: format, weight sets, the layout and model each fits."""
    from .inspection import inspect_file
    from .tables.registry import registry_for

    return inspect_file(path, registry_for(tuple(tables)), trust_pickle=trust_pickle)


def supported(tables: tuple[str | Path, ...] = ()) -> dict[str, dict[str, str]]:
    """Every model and, per target layout of its family, ``"yes"`` or why not (``refused: se``)."""
    from .tables.registry import registry_for

    registry = registry_for(tuple(tables))
    return {variant.name: registry.targets(variant) for variant in registry.variants.values()}
