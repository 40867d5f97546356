"""The Python API: the CLI's pipeline, for code. ``import ckptconv`` exposes these names.

    import ckptconv

    converted = ckptconv.convert_checkpoint("EN-B3_dds_8gpu.pyth", "mmdet")  # in memory, verified
    model.load_state_dict(converted.state_dict)
    print(converted.config)                                               # what the library needs

    ckptconv.convert_checkpoint("RegNetY-800MF_dds_8gpu.pyth", "timm", output="regnety.pth")
    report = ckptconv.verify_checkpoint("regnety.pth")                    # report.ok, report.first_failure
    ckptconv.inspect_checkpoint("RegNetY-800MF_dds_8gpu.pyth")           # what the file holds

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

    from .tables.registry import Registry
    from .verification.report import Report


@dataclass(frozen=True)
class Converted:
    """A conversion's result: the state dict as the target library loads it (in memory, or as
    written to ``output``), the config it needs, and what was checked."""

    state_dict: dict[str, "torch.Tensor"]
    layout: str
    arch: str
    config: str | None  # the config fragment or snippet the target needs (None: the layout has none)
    meta: dict[str, Any]  # what a written file records: source sha256, table, channel order, settings
    report: "Report | None"  # the verification (None when verify="none")
    warnings: list[str] = field(default_factory=list)
    output: Path | None = None


def _registry(tables: tuple[str | Path, ...]) -> "Registry":
    from .tables.registry import Registry, default_registry

    return Registry.from_env(tables) if tables else default_registry()


def convert_checkpoint(
    source: str | Path,
    layout: str = "mmdet",
    *,
    output: str | Path | None = None,
    source_layout: str = "pycls",
    arch: str | None = None,
    weights: str = "best",
    prefix: str | None = None,
    dtype: str = "keep",
    channel_order: str | None = None,
    verify: str = "numeric",
    config_out: str | Path | None = None,
    force: bool = False,
    allow_partial: bool = False,
    trust_pickle: bool = False,
    tables: tuple[str | Path, ...] = (),
) -> Converted:
    """Convert ``source`` (a pycls checkpoint, or a file in ``source_layout``) to ``layout``.

    Without ``output`` nothing is written: the state dict is returned (its tensors may share memory
    with the memory-mapped source). With it, the file (and ``config_out``) is written atomically,
    as ``ckptconv convert`` does. Verification runs first either way and raises
    ``VerificationError`` when it fails; ``verify`` is ``numeric``, ``structure`` or ``none``.
    """
    from .convert import Request, convert, prepare, warnings
    from .convert import verify as run_checks

    request = Request(
        source=Path(source), output=Path(output) if output is not None else None, layout=layout, source_layout=source_layout,
        arch=arch, weights=weights, prefix=prefix, dtype=dtype, channel_order=channel_order, verify=verify,
        allow_partial=allow_partial, trust_pickle=trust_pickle, force=force, config_out=Path(config_out) if config_out else None,
    )  # fmt: skip
    registry = _registry(tables)
    if request.output is not None:
        result = convert(request, registry)
        c, report = result.conversion, result.report
    else:
        c = prepare(request, registry)
        report = run_checks(c) if verify != "none" else None
        if report is not None:
            report.raise_if_failed()
    return Converted(c.tensors, c.target.name, c.variant.name, c.config, c.meta, report, warnings(c), request.output)


def verify_checkpoint(
    path: str | Path,
    *,
    source: str | Path | None = None,
    arch: str | None = None,
    layout: str | None = None,
    padding: str | None = None,
    eps: float | None = None,
    channel_order: str | None = None,
    flip: bool | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    trust_pickle: bool = False,
    tables: tuple[str | Path, ...] = (),
) -> "Report":
    """Verify a converted file as ``ckptconv verify`` does. Failed checks are in the report
    (``report.ok``, ``report.first_failure``, ``report.to_dict()``); a ``CkptError`` is raised
    only when the file cannot be read or an argument is unusable."""
    from .verify import Options, verify_file

    opts = Options(Path(source) if source else None, arch, layout, None, padding, eps, trust_pickle=trust_pickle,
                   channel_order=channel_order, flip=flip, mean=mean, std=std)  # fmt: skip
    return verify_file(path, opts, _registry(tables))


def inspect_checkpoint(path: str | Path, *, trust_pickle: bool = False, tables: tuple[str | Path, ...] = ()) -> dict[str, Any]:
    """What ``ckptconv inspect --json`` prints: format, weight sets, the layout and model each fits."""
    from .inspection import inspect_file

    return inspect_file(path, _registry(tables), trust_pickle=trust_pickle)


def supported(tables: tuple[str | Path, ...] = ()) -> dict[str, dict[str, str]]:
    """Every model and, per target layout of its family, ``"yes"`` or why not (``refused: se``)."""
    registry = _registry(tables)
    return {variant.name: registry.targets(variant) for variant in registry.variants.values()}
