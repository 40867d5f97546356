"""``ckptconv verify``: prove converted files compute what pycls computed; built for CI."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import click

from ..errors import EXIT_UNCHECKED
from ..verify.many import planned
from .options import LOCATION, expectations_from, verify_options
from .ui import UI, _escape


@click.command("verify")
@click.argument("targets", nargs=-1, metavar="FILE|DIR|REPORT.json...", type=LOCATION)
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
              help="An MMDetection or mmpretrain config (read with mmengine, _base_ included; it is Python and runs when read, "
                   "as in mmengine): check its fields against the weights it loads (or FILE), then verify them with the settings it builds.")
@verify_options
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the results as JSON to FILE.")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but the failures.")
@click.pass_obj
def verify_cmd(obj, targets, config, report_path, **kw) -> None:
    """Verify converted checkpoints: files, directories (searched recursively) or a batch report.

    Checks structure (keys, shapes, dtypes of the layout), numerics (the reference model in the
    given --padding/--eps against pycls, exactly), a real photo through the library's preprocessing
    as --bgr-to-rgb/--mean/--std set it, and the meta; with --source also bit identity and the
    source's sha256. With --in-library, each file is also loaded in its library as installed here
    and run on photos (--images DIR: yours). Exit 0 when every file passes, 1 when any fails, 2 on
    a usage error, 3 when none fails but an --in-library check could not run (its library is not installed).
    """
    ui = UI(json_mode=kw["json_mode"], quiet=kw["quiet"])
    with ui.guard():
        opts = expectations_from(kw, obj.tables)  # every usage error before torch loads, in --json's object too
        _check_usage(config, list(targets), opts.in_library)
        if opts.in_library and config is not None:  # the user's own loading code or config, run in the library
            opts, config = replace(opts, config=config), None
        found = planned(list(targets), opts, report_path) if config is None else []
        from ..signals import done, import_torch

        import_torch()
        from ..verify.many import verify_all

        show = None if ui.quiet else (lambda report: _show(ui, report))
        if config is not None:
            summary = _with_config(config, list(targets), opts, report_path, show)
        else:
            with _progress(ui):
                summary = verify_all(found, opts, report_path=report_path, on_report=show)
        done()  # the report is written: a signal now changes nothing
        _render(ui, summary)
        if not summary.ok:
            raise SystemExit(1)
        if summary.not_checked:
            raise SystemExit(EXIT_UNCHECKED)


def _check_usage(config: Path | None, targets: list[Path], in_library: bool) -> None:
    from ..errors import UsageError
    from ..io.store import is_url

    if config is None and not targets:
        raise UsageError("verify needs something to verify", fix="give FILE, DIR or REPORT.json (or --config CFG)")
    if config is not None and any(is_url(t) for t in targets):
        raise UsageError("--config checks the weights of a local FILE", fix="copy the object locally and verify that file with --config")
    if config is not None and (len(targets) > 1 or (targets and targets[0].is_dir())):
        raise UsageError("--config goes with at most one FILE: the weights that config loads", fix="verify the other files in a run of their own")
    if config is not None and in_library and not targets:
        raise UsageError("--in-library --config CFG needs the FILE that config loads", fix="give the converted file too")


@contextlib.contextmanager
def _progress(ui: UI) -> Iterator[None]:
    """A progress bar over each file's images while --in-library runs them (a terminal only)."""
    if ui.quiet or not sys.stdout.isatty():
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..inlibrary import PROGRESS

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=ui.out, transient=True) as bar:
        tasks: dict[str, int] = {}

        def tick(path: str, done: int, total: int) -> None:
            if path not in tasks:
                tasks[path] = bar.add_task(_escape(Path(path).name), total=total)
            bar.update(tasks[path], completed=done)

        token = PROGRESS.set(tick)
        try:
            yield
        finally:
            PROGRESS.reset(token)


def _render(ui: UI, summary) -> None:
    results = summary.results
    if ui.json_mode:
        ui.json(summary.to_dict())
        return
    if len(results) > 1 and not ui.quiet:
        ui.table("summary", ["file", "arch", "layout", "result"],
                 [(r["path"], r.get("arch", "?"), r.get("layout", "?"), _status(r)) for r in results])
    for r in results:
        if not r["ok"]:
            ui.error(f"{r['path']}: {r['first_failure']}")
        for line in r.get("not_checked", ()) if r["ok"] else ():
            ui.notice(f"{r['path']}: {line}")
    if summary.ok and not summary.not_checked and not ui.quiet:
        ui.success(f"{len(results)} file(s) verified")


def _status(r: dict) -> str:
    return "FAIL" if not r["ok"] else "not checked" if r.get("not_checked") else "pass"


def _with_config(config: Path, targets: list[Path], opts, report_path, show):
    """``--config CFG [FILE]``: one config, the weights it loads (or FILE)."""
    from ..io.files import check_report_output
    from ..openmmlab.config import config_files
    from ..verify.config import verify_config
    from ..verify.many import Summary, write_summary

    inputs = [*config_files(config), *targets]
    if report_path is not None:
        check_report_output(report_path, inputs)
    report = verify_config(config, targets[0] if targets else None, opts)
    show and show(report)
    summary = Summary([report.to_dict()])
    if report_path is not None:  # the checkpoint the config loads (or converts on load) is an input too
        write_summary(report_path, summary, [*inputs, Path(report.path)])
    return summary


def _show(ui: UI, report) -> None:
    rows = [
        (lv.name, lv.point, f"{lv.max_abs:.3g}", "-" if lv.drift_rel is None else f"{lv.drift_rel:.2g}", "ok" if lv.ok else "FAIL")
        for lv in report.levels
    ]
    title = f"{report.path}: {report.layout} {report.arch}, {report.settings}, input {report.input_size[0]}x{report.input_size[1]}"
    if rows:
        ui.table(title, ["level", "pycls point", "max abs", "drift (rel)", "result"], rows)
    else:
        ui.info(title)
    for check in report.checks:
        ui.info(f"  {'[green]ok[/green]' if check.ok else '[red]FAIL[/red]'} {check.name}: {_escape(check.detail)}", markup=True)
    for note in report.notes:
        ui.info(f"  note: {note}")
    if report.in_library:
        _show_in_library(ui, report.in_library)


def _show_in_library(ui: UI, rec: dict) -> None:
    """The images with the largest differences, and each side's accuracy where the images are labelled."""
    rows = [(w["image"], f"{w['input']:.2g}", f"{w['network']:.2g}", "-" if w["logits"] is None else f"{w['logits']:.2g}") for w in rec["largest"]]
    ui.table(f"  {rec['library']} {rec['version']}: largest differences of {rec['images']} images ({rec['from']})",
             ["image", "input (abs)", "network (rel)", "logits vs pycls (rel)"], rows)
    acc, recorded = rec.get("accuracy"), rec.get("recorded")
    if acc:
        ui.info(f"  accuracy: pycls top-1 {acc['pycls']['top1']:.2%}, top-5 {acc['pycls']['top5']:.2%}; "
                f"{rec['library']} top-1 {acc['library']['top1']:.2%}, top-5 {acc['library']['top5']:.2%}")
    if recorded:
        ui.info(f"  pycls recorded a top-1 error of {recorded['top1_err']:g}% for the {recorded['weights']} weights ({recorded['field']}, on its own validation set)")


COMMANDS = (verify_cmd,)
