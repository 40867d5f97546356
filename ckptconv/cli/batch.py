"""``ckptconv batch``: convert a whole zoo in one command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .options import conversion_options
from .ui import UI, human_bytes, human_params


@click.command("batch")
@click.argument("sources", nargs=-1, required=True, metavar="SRC...")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory for the outputs (created if missing).")
@click.option("--layout", default="mmdet", show_default=True, help="Target layout for every file a manifest does not say otherwise for.")
@click.option("--format", "fmt", type=click.Choice(["pth", "safetensors"]), default="pth", show_default=True, help="Output format.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Parallel workers. Default: the machine's cores.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the summary as JSON (with sha256 of every input and output) to FILE.")
@click.option("--publish", is_flag=True, help="Name outputs <stem>-<sha256[:8]>.<ext> after the final file's hash, as publish_model does.")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but the failures.")
@conversion_options
@click.pass_obj
def batch_cmd(obj, sources, out_dir, layout, fmt, jobs, report_path, publish, json_mode, quiet, **kw) -> None:
    """Convert every checkpoint in SRC: files, directories (searched for *.pyth and *.pth), globs,
    or manifests (.toml / .json) naming source, arch, layout, weights and output per file.

    \b
    Exit 0 only when every file converted (or was up to date) and verified; 1 when any failed
    (the rest still convert); 2 on a usage error, including two inputs that would write one output.
    """
    ui = UI(json_mode=json_mode, quiet=quiet)
    with ui.guard():
        from .. import batch
        from ..errors import UsageError
        from ..files import atomic_write, clean_stale_temps

        if not out_dir.exists():
            if not out_dir.parent.exists():
                raise UsageError(f"the parent of --out-dir {str(out_dir)!r} does not exist", fix="create it first")
            out_dir.mkdir()
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise UsageError(f"--out-dir {str(out_dir)!r} is not writable", fix="choose another directory")
        if kw["trust_pickle"]:
            ui.warning("--trust-pickle: unpickling whatever the files ask for; this can run code stored in them")
        entries = batch.collect(sources, out_dir)
        plan = batch.plan(
            entries, out_dir, layout=layout, fmt=fmt, trust_pickle=kw["trust_pickle"], weights=kw["weights"],
            prefix=kw["prefix"], dtype=kw["dtype"], verify="none" if kw["no_verify"] else kw["verify_mode"],
            input_size=kw["input_size"], force=kw["force"], publish=publish, tables=obj.tables,
        )  # fmt: skip
        clean_stale_temps(out_dir)
        workers = jobs or os.cpu_count() or 1
        result = _run_with_progress(ui, batch, plan, workers)
        report = result.report()
        if report_path:
            import json

            atomic_write(report_path, lambda f: f.write(json.dumps(report, indent=2).encode()))
        if json_mode:
            ui.json(report)
        else:
            _summary(ui, result)
        if not result.ok:
            raise SystemExit(1)


def _run_with_progress(ui: UI, batch, plan, workers: int):
    total_bytes = sum(Path(j.source).stat().st_size for j in plan if Path(j.source).is_file())
    if ui.quiet:
        return batch.run(plan, workers=workers)
    if not sys.stdout.isatty():  # plain lines for logs and CI
        done = [0]

        def line(job, outcome):
            done[0] += 1
            reason = f": {outcome.error}" if outcome.error else ""
            ui.info(f"[{done[0]}/{len(plan)}] {outcome.status} {job.source} -> {outcome.output} ({outcome.seconds:.2f} s){reason}")

        return batch.run(plan, workers=workers, on_done=line)
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    running: list[str] = []
    done = [0]
    with Progress(
        TextColumn("{task.fields[done]}/{task.fields[n]} files"), BarColumn(), DownloadColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[now]}"),
        console=ui.out,
    ) as progress:  # fmt: skip
        task = progress.add_task("batch", total=total_bytes or 1, done=0, n=len(plan), now="")

        def started(job):
            running.append(Path(job.source).name)
            progress.update(task, now=", ".join(running))

        def finished(job, outcome):
            name = Path(job.source).name
            if name in running:
                running.remove(name)
            done[0] += 1
            progress.update(task, advance=outcome.source_bytes, done=done[0], now=", ".join(running))

        return batch.run(plan, workers=workers, on_start=started, on_done=finished)


def _summary(ui: UI, result) -> None:
    rows = [
        (Path(o.source).name, o.arch or "?", o.layout or "?", o.status, human_params(o.params) if o.params else "-",
         human_bytes(o.bytes) if o.bytes else "-", f"{o.seconds:.2f}", o.verification)
        for o in result.outcomes
    ]  # fmt: skip
    ui.table("batch", ["file", "arch", "layout", "status", "params", "output", "seconds", "verification"], rows)
    for o in result.outcomes:
        if o.note:
            ui.warning(f"{o.source}: {o.note}")
    for o in result.outcomes:
        if o.error:
            ui.error(o.error)
    summary = result.report()["summary"]
    text = f"{summary['converted']} converted, {summary['up to date']} up to date, {summary['failed']} failed in {result.seconds:.1f} s"
    if result.ok:
        ui.success(text)
    elif not ui.json_mode:
        ui.err.print(text)


COMMANDS = (batch_cmd,)
