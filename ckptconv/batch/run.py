"""A batch, top to bottom, as a library call: ``prepare_batch`` (find the inputs, plan every output,
check the whole plan, pick this job's share: nothing written), then ``run_batch`` (make --out-dir,
convert in worker processes, write the report and the metafile). The CLI and ``ckptconv.batch``
both call these two; the CLI adds progress and the summary. torch-free here (the workers import it).

A report carries the identity of its plan (``plan``: the version, --out-dir, the targets, the
options and a digest of every planned (source, output) pair), so ``report merge`` never calls two
different batches one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.files import make_out_dir
from ..io.paths import Planned
from ..options import Request
from ..tables.registry import registry_for
from ..version import __version__
from . import inputs, metafile, plan, shard
from .plan import Batch, Job, Outcome


@dataclass(frozen=True, kw_only=True)
class BatchRequest:
    """What a batch is asked: its sources, --out-dir, targets and options (``base``: the options
    every job starts from, a manifest's fields replacing them per file)."""

    sources: tuple[str, ...]
    out_dir: Path
    base: Request = field(default_factory=lambda: Request(source=Path()))
    targets: tuple[str, ...] = ()  # --to values; () is mmdet
    fmt: str = "pth"
    publish: bool = False
    configs: bool = False
    every_epoch: bool = False
    report: Path | None = None
    metafile: Path | None = None
    shard: str | None = None  # --shard K/N; None: the array's variables, if any
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class Prepared:
    """A checked batch: the jobs of this share, what said which share, and the plan's identity."""

    request: BatchRequest
    jobs: list[Job]
    share: shard.Shard | None
    planned: int  # jobs in the whole plan
    identity: dict[str, Any]


def prepare_batch(request: BatchRequest) -> Prepared:
    """Everything before the first write: inputs, the plan (checked whole, report and metafile
    included), this job's share. Raises ``UsageError`` for a batch that cannot run."""
    registry = registry_for(request.base.tables)
    layouts = plan.target_layouts(request.targets, registry)
    entries, manifests = inputs.collect(request.sources, request.out_dir, every_epoch=request.every_epoch), inputs.manifests(request.sources)
    extra = [Planned(path, what) for path, what in ((request.report, "--report"), (request.metafile, "--metafile")) if path]
    base = _replace(request.base, layout=layouts[0], made_by="batch")
    jobs = plan.plan(entries, request.out_dir, base, layouts=layouts, fmt=request.fmt, publish=request.publish, configs=request.configs,
                     others=manifests + registry.table_files(), extra=extra)
    share = shard.resolve(request.shard, request.environ)
    _check_outputs_of_share(request, jobs, share)
    identity = plan_identity(request, jobs, layouts)
    if request.report:
        plan.check_report(request.report, request.out_dir)
        _check_report_share(request.report, identity, share)
    return Prepared(request, shard.share(jobs, share, request.out_dir), share, len(jobs), identity)


def _replace(base: Request, **changes: Any) -> Request:
    from dataclasses import replace

    return replace(base, **changes)


def _check_outputs_of_share(request: BatchRequest, jobs: list[Job], share: shard.Shard | None) -> None:
    if request.metafile is None:
        return
    openmmlab = metafile.openmmlab_layouts(registry_for(request.base.tables))
    metafile.check_targets([j.request.layout for j in jobs], openmmlab)  # the whole plan's: a share may hold none
    metafile.check_names([j.output for j in jobs if j.request.layout in openmmlab and not j.publish], request.out_dir)
    if share is not None:
        raise UsageError(f"--metafile lists every output of the batch, and this job converts share {share.index + 1} of {share.count} ({share.given_by})",
                         fix="leave --metafile out of the shares, and write it with the merged report: ckptconv report merge REPORT... --out FILE --metafile META")
    plan.check_report(request.metafile, request.out_dir, check=metafile.check_output)


def plan_identity(request: BatchRequest, jobs: list[Job], layouts: tuple[str, ...]) -> dict[str, Any]:
    """What makes a batch this batch: ckptconv's version, --out-dir, the targets, the options, and
    every planned (source, output) pair; ``id`` is the digest of all of it."""
    options = {f.name: getattr(request.base, f.name) for f in fields(Request) if f.name not in ("source", "output", "layout", "config_out", "force")}
    options |= {"format": request.fmt, "publish": request.publish, "configs": request.configs, "every_epoch": request.every_epoch}
    pairs = hashlib.sha256("".join(f"{os.path.abspath(j.source)}\t{os.path.abspath(j.output)}\n" for j in jobs).encode("utf-8", "surrogateescape"))
    record = {"ckptconv_version": __version__, "out_dir": os.path.abspath(request.out_dir), "targets": list(layouts),
              "options": json.loads(json.dumps(options, default=str)), "jobs": len(jobs), "pairs_sha256": pairs.hexdigest()}
    return {**record, "id": hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()}


def _check_report_share(path: Path, identity: dict[str, Any], share: shard.Shard | None) -> None:
    """With a share, the --report file is this share's own: an existing report of another share of
    this batch (or of another batch) is never replaced by this one."""
    if share is None or not path.is_file():
        return
    try:
        there = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return  # check_report refused anything but a ckptconv report already
    theirs = there.get("shard") if isinstance(there, dict) else None
    same_plan = isinstance(there, dict) and isinstance(there.get("plan"), dict) and there["plan"].get("id") == identity["id"]
    if not (same_plan and isinstance(theirs, dict) and theirs.get("index") == share.index + 1):
        raise UsageError(f"the report file holds {'share ' + str(theirs.get('index')) if isinstance(theirs, dict) else 'the report'} of "
                         f"{'this' if same_plan else 'another'} batch, and this job converts share {share.index + 1} of {share.count}",
                         fix="give each share its own --report file, e.g. report-$SLURM_ARRAY_TASK_ID.json", path=str(path))


def run_batch(prepared: Prepared, *, workers: int, on_start: Callable[[Job], None] | None = None,
              on_done: Callable[[Job, Outcome], None] | None = None) -> tuple[Batch, dict[str, Any]]:
    """Make --out-dir, convert the share's jobs, write the report and the metafile; the batch and
    its report (as written)."""
    from . import pool

    request = prepared.request
    make_out_dir(request.out_dir)  # only now: nothing is created before the plan is valid
    batch = pool.run(prepared.jobs, workers=workers, on_start=on_start, on_done=on_done)
    report = batch.report() | {"plan": prepared.identity}
    if prepared.share is not None:
        report["shard"] = {**prepared.share.record(), "planned": prepared.planned}
    if request.report:
        _check_report_share(request.report, prepared.identity, prepared.share)  # another share may have written it meanwhile
        plan.write_report(request.report, report)
    if request.metafile:
        layouts = metafile.openmmlab_layouts(registry_for(request.base.tables))
        metafile.write(request.metafile, metafile.metafile(batch.outcomes, request.out_dir, request.metafile, layouts))
    return batch, report
