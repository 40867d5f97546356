"""What a conversion request must satisfy before anything is read or torch is imported: usable
option values, known layouts, a regular input file, outputs that are neither inputs nor (without
--force) existing files. Checking gives a ``Ready`` value, which ``prepare``, ``checked`` and
``convert`` take as it is (a plain ``Request`` they check first): a request is checked once, and
before torch is imported, so a usage error costs milliseconds. torch-free."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .io import files
from .options import ONNX, Expectations, Request
from .tables.registry import registry_for


@dataclass(frozen=True)
class Ready:
    """A request checked whole: option values, tables, the input file and (``format`` set) the outputs."""

    request: Request
    format: str | None = None  # what it writes (pth, safetensors, hub); None: checked for a run in memory or a dry run


def ready(request: Request | Ready, *, writes: bool) -> Ready:
    """``request`` checked (once: a ``Ready`` checked for as much is returned as it is)."""
    if isinstance(request, Ready) and (request.format is not None or not writes):
        return request
    request = request.request if isinstance(request, Ready) else request
    return Ready(request, check_request(request, writes=writes))


def check_request(request: Request, *, writes: bool) -> str | None:
    """Refuse a request that cannot run; the output format when it ``writes``."""
    request.check()
    if request.layout == ONNX:
        require_onnx()
    registry = registry_for(request.tables)
    for name in (request.layout, request.source_layout) if request.layout != ONNX else (request.source_layout,):
        registry.layouts_named(name)
    if request.arch:
        registry.variant(request.arch)
    fmt = None
    if writes:  # the command line first, then the file system
        if request.output is None:
            raise UsageError("no output file given", fix="pass OUT, or --dry-run to only print the plan")
        fmt = "hub" if request.folder else files.output_format(request.output)
        _check_graph_output(fmt, request)
    files.check_input(request.source)
    if writes:
        files.check_outputs(request.planned(), request.inputs() + registry.table_files(), request.force)
    if writes and request.folder:
        from .io.folder import check_folder

        check_folder(request.output, request.force)
    return fmt


def require_onnx(what: str = "--to onnx") -> None:
    """The ``onnx`` extra is installed (nothing imported): else a usage error naming it."""
    from .onnx import EXTRA, missing_packages

    if missing := missing_packages():
        raise UsageError(f"{what} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed",
                         fix=f"pip install 'ckptconv[{EXTRA}]'")


def _check_graph_output(fmt: str, request: Request) -> None:
    """An .onnx output is written by --to onnx, and --to onnx writes an .onnx output."""
    if fmt == "onnx" and request.layout != ONNX:
        raise UsageError(f"OUT ends in .onnx and --to is {request.layout}", fix="pass --to onnx for an ONNX graph, or name OUT .pth or .safetensors")
    if request.layout == ONNX and fmt != "onnx":
        raise UsageError(f"--to onnx writes an ONNX graph, and OUT ends in {request.output.suffix!r}", fix="name OUT with .onnx")


def check_expectations(opts: Expectations) -> None:
    """The model and layout ``verify`` is asked to expect exist in the tables (the option values
    checked themselves when ``opts`` was made)."""
    registry = registry_for(opts.tables)
    if opts.arch:
        registry.variant(opts.arch)
    if opts.layout and opts.layout != ONNX:
        registry.layouts_named(opts.layout)
