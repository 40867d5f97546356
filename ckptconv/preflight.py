"""What a conversion request must satisfy before anything is read or torch is imported: usable
option values, known layouts, a regular input file, outputs that are neither inputs nor (without
--force) existing files. The CLI runs it first, so a usage error costs milliseconds; ``convert``
runs it again for API callers. torch-free."""

from __future__ import annotations

from .errors import UsageError
from .io import files
from .options import Request
from .tables.registry import registry_for


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
        fmt = "hub" if request.hub else files.output_format(request.output)
    files.check_regular(request.source)
    if writes:
        files.check_outputs(request.planned(), request.inputs() + registry.table_files(), request.force)
    if writes and request.hub:
        from .io.folder import check_folder

        check_folder(request.output, request.force)
    return fmt
