"""``ckptconv batch``: convert a whole zoo in one command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .options import LocalPath, conversion_options, hub_options, onnx_options, request_from
from .ui import UI, human_bytes


@click.command("batch")
@click.argument("sources", nargs=-1, required=True, metavar="SRC...", type=LocalPath())
@click.option("--out-dir", required=True, type=LocalPath(file_okay=False, path_type=Path), help="Directory for the outputs (created if missing).")
@click.option("--to", "--layout", "targets", multiple=True, metavar="LAYOUT[,LAYOUT...]",
              help="Target layout(s) for every file a manifest does not say otherwise for: repeat it, separate with commas, "
                   "or say all (every layout but pycls, and onnx when ckptconv[onnx] is installed). Several targets write OUT_DIR/<layout>/... and list the pairs "
                   "that cannot exist (e.g. RegNetY to mmdet) as refused, with the reason.  [default: mmdet]")
@click.option("--shard", metavar="K/N", default=None,
              help="Convert only the K-th of N shares of the planned (input, target) pairs, as one job of an array "
                   "(default: SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX of CKPTCONV_SHARD_COUNT, "
                   "when set). Merge the shares' reports with `ckptconv report merge`.")
@click.option("--every-epoch", is_flag=True,
              help="In a pycls output or sweep tree, convert every checkpoints/model_epoch_NNNN.pyth, not only each run's last.")
@click.option("--format", "fmt", type=click.Choice(["pth", "safetensors"]), default="pth", show_default=True, help="Output format.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Parallel workers. Default: the machine's cores.")
@click.option("--report", "report_path", type=LocalPath(dir_okay=False, path_type=Path), help="Write the summary as JSON (with sha256 of every input and output) to FILE.")
@click.option("--publish", is_flag=True, help="Name outputs <stem>-<sha256[:8]>.<ext> after the final file's hash, as publish_model does.")
@click.option("--configs", "--config-out", "configs", is_flag=True, help="Write each output's config beside it, as <name>.py (the fragment or snippet convert prints).")
@click.option("--metafile", "metafile_path", type=LocalPath(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write OpenMMLab's metafile (Collections, Models) of the MMDetection and mmpretrain outputs to FILE.")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but the failures.")
@conversion_options
@hub_options
@onnx_options
@click.pass_obj
def batch_cmd(obj, sources, **kw) -> None:
    """Convert every checkpoint in SRC: files, directories (searched for *.pyth, *.pth and *.pt; a pycls
    output or sweep tree gives each run's last checkpoints/model_epoch_NNNN.pyth), globs, or
    manifests (.toml / .json) naming source, arch, layout, weights and output per file.

    \b
    Exit 0 only when every file converted (or was up to date) and verified, or (with several
    targets) was refused; 1 when any failed (the rest still convert); 2 on a usage error, including
    two inputs that would write one output.
    """
    ui = UI(json_mode=kw["json_mode"], quiet=kw["quiet"])
    with ui.guard():
        from ..batch.run import BatchRequest, prepare_batch
        from ..signals import done

        if kw["trust_pickle"]:
            ui.warning("--trust-pickle: unpickling whatever the files ask for; this can run code stored in them")
        request = BatchRequest(sources=tuple(sources), out_dir=kw["out_dir"], base=request_from(kw, obj.tables, source=Path()), targets=kw["targets"],
                               fmt=kw["fmt"], publish=kw["publish"], configs=kw["configs"], every_epoch=kw["every_epoch"],
                               report=kw["report_path"], metafile=kw["metafile_path"], shard=kw["shard"])
        prepared = prepare_batch(request)
        if prepared.share is not None:
            s = prepared.share
            ui.notice(f"converting share {s.index + 1} of {s.count} ({len(prepared.jobs)} of the batch's {prepared.planned} pairs), as {s.given_by} says")
        result, report = _run(ui, prepared, kw["jobs"] or os.cpu_count() or 1)
        done()  # every output and the report are published: a signal now changes nothing
        ui.json(report) if ui.json_mode else _summary(ui, result, request.out_dir)
        if not result.ok:
            raise SystemExit(1)


def _run(ui: UI, prepared, workers: int):
    """Run the batch with progress; a signal ends it with the count of what was finished."""
    finished: list = []
    try:
        return _run_with_progress(ui, prepared, workers, finished)
    except KeyboardInterrupt as e:
        raise Interrupted(e, [o for o in finished if o.ok], len(prepared.jobs)) from None


def _run_with_progress(ui: UI, prepared, workers: int, finished: list):
    """Run the batch (``run_batch``), showing progress; ``finished`` collects the outcomes as they come."""
    from functools import partial

    from ..batch.run import run_batch

    plan, run = prepared.jobs, partial(run_batch, prepared, workers=workers)
    total_bytes = sum(Path(j.source).stat().st_size for j in plan if Path(j.source).is_file())
    if ui.quiet:
        return run(on_done=lambda job, outcome: finished.append(outcome))
    if not sys.stdout.isatty():  # plain lines for logs and CI

        def line(job, outcome):  # why a file failed or was refused is said once, in the lines that end the run
            finished.append(outcome)
            ui.info(f"[{len(finished)}/{len(plan)}] {outcome.status} {job.source} -> {outcome.output or '(nothing written)'} ({outcome.seconds:.2f} s)")

        return run(on_done=line)
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    running: list[str] = []
    with Progress(
        TextColumn("{task.fields[done]}/{task.fields[n]} files"), BarColumn(), DownloadColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[now]}"),
        console=ui.out,
    ) as progress:
        task = progress.add_task("batch", total=total_bytes or 1, done=0, n=len(plan), now="")

        def started(job):
            running.append(Path(job.source).name)
            progress.update(task, now=", ".join(running))

        def ended(job, outcome):
            finished.append(outcome)
            if Path(job.source).name in running:
                running.remove(Path(job.source).name)
            progress.update(task, advance=outcome.source_bytes, done=len(finished), now=", ".join(running))

        return run(on_start=started, on_done=ended)


class Interrupted(KeyboardInterrupt):
    """A batch stopped by a signal: the outputs it finished are complete, the rest were not written."""

    def __init__(self, cause: KeyboardInterrupt, done: list, total: int):
        from ..signals import exit_code

        super().__init__()
        self.exit_code = exit_code(cause)
        how = "terminated (SIGTERM)" if self.exit_code == 143 else "interrupted"
        self.message = f"{how} after {len(done)} of {total} file(s) were converted (complete and listed in no report); nothing partial was written"


def _labels(result, out_dir: Path) -> list[tuple[str, str]]:
    """(source, output) of each outcome as the user sees them: the source relative to the inputs'
    common folder, the output relative to --out-dir."""
    sources = [os.path.abspath(o.source) for o in result.outcomes]
    root = os.path.commonpath([os.path.dirname(s) for s in sources]) if sources else ""
    return [
        (os.path.relpath(s, root), os.path.relpath(o.output, out_dir) if o.output else "-")
        for s, o in zip(sources, result.outcomes)
    ]


def _summary(ui: UI, result, out_dir: Path) -> None:
    rows = [
        (source, output, o.arch or "-", o.layout or "-", o.status, human_bytes(o.bytes) if o.bytes else "-", o.verification)
        for (source, output), o in zip(_labels(result, out_dir), result.outcomes)
        if o.status != "skipped"  # a layout the model's family does not have: no cell of the matrix
    ]
    ui.table("batch", ["source", "output", "arch", "layout", "status", "size", "verification"], rows)
    for o in result.outcomes:
        if o.note:
            ui.warning(f"{o.source}: {o.note}")
    for o in result.outcomes:
        if o.status == "skipped":
            continue
        if o.error and o.ok:  # a refused cell of a run over several targets
            ui.info(f"refused: {o.error}")
        elif o.error:
            ui.error(o.error)
    summary = result.report()["summary"]
    refused = f", {summary['refused']} refused" if summary["refused"] else ""
    refused += f", {summary['skipped']} skipped (no such layout for the model)" if summary["skipped"] else ""
    text = f"{summary['converted']} converted, {summary['up to date']} up to date{refused}, {summary['failed']} failed in {result.seconds:.1f} s"
    if result.ok:
        ui.success(text)
    elif not ui.json_mode:
        ui.err.print(text)


COMMANDS = (batch_cmd,)
