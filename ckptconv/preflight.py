"""What a conversion request must satisfy before anything is read or torch is imported: usable
option values, known layouts, a regular input file, outputs that are neither inputs nor (without
--force) existing files. Checking gives a ``Ready`` value, which ``prepare``, ``checked`` and
``convert`` take as it is (a plain ``Request`` they check first): a request is checked once, and
before torch is imported, so a usage error costs milliseconds. torch-free."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .io import files
from .options import Expectations, Request
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
    registry = registry_for(request.tables)
    for name in (request.layout, request.source_layout):
        registry.layouts_named(name)
    if request.arch:
        registry.variant(request.arch)
    fmt = None
    if writes:  # the command line first, then the file system
        if request.output is None:
            raise UsageError("no output file given", fix="pass OUT, or --dry-run to only print the plan")
        fmt = "hub" if request.folder else files.output_format(request.output)
    files.check_regular(request.source)
    if writes:
        files.check_outputs(request.planned(), request.inputs() + registry.table_files(), request.force)
    if writes and request.folder:
        from .io.folder import check_folder

        check_folder(request.output, request.force)
    return fmt


def check_expectations(opts: Expectations) -> None:
    """The model and layout ``verify`` is asked to expect exist in the tables (the option values
    checked themselves when ``opts`` was made)."""
    registry = registry_for(opts.tables)
    if opts.arch:
        registry.variant(opts.arch)
    if opts.layout:
        registry.layouts_named(opts.layout)
