"""``ckptconv report merge``: one report from the shares of a sharded batch."""

from __future__ import annotations

from pathlib import Path

import click

from .options import LocalPath
from .ui import UI


@click.group("report")
def report_group() -> None:
    """Batch reports: merge the reports of a sharded batch's shares."""


@report_group.command("merge")
@click.argument("reports", nargs=-1, required=True, type=LocalPath(dir_okay=False, path_type=Path), metavar="REPORT...")
@click.option("--out", required=True, type=LocalPath(dir_okay=False, path_type=Path), help="The merged report (replaces only an earlier ckptconv report).")
@click.option("--metafile", "metafile", type=LocalPath(dir_okay=False, path_type=Path), metavar="FILE",
              help="Also write OpenMMLab's metafile of the whole batch's MMDetection and mmpretrain outputs to FILE (a share cannot: it knows only its own).")
@click.option("--json", "json_mode", is_flag=True, help="Print the merged report on stdout and nothing else.")
def merge_cmd(reports: tuple[Path, ...], out: Path, metafile: Path | None, json_mode: bool) -> None:
    """Merge the --report files of a batch run as `--shard K/N` (or array) jobs into one report, in
    the format `ckptconv verify REPORT.json` reads.

    \b
    Exit 0 only when the shares are of one batch, every share is there once, no output is reported
    twice and every file converted (or was up to date); 1 otherwise, naming each problem; 2 on a
    usage error (reports of different batches, a malformed report).
    """
    ui = UI(json_mode=json_mode)
    with ui.guard():
        from ..batch import merge

        merge.check_outputs(out, metafile, list(reports))
        merged = merge.merge(list(reports))
        merge.write(out, merged, metafile)
        if ui.json_mode:
            ui.json(merged)
        else:
            shards = merged["shards"]
            ui.info(f"{len(merged['files'])} files from {len(shards['merged'])} of {shards['count']} shares -> {out}")
        for problem in merged["problems"]:
            ui.error(problem)
        if not merged["ok"]:
            raise SystemExit(1)


COMMANDS = (report_group,)
