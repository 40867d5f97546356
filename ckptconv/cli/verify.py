"""``ckptconv verify``: prove converted files compute what pycls computed; built for CI."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import input_size_option
from .ui import UI, _escape

OUTPUT_SUFFIXES = (".pth", ".pt", ".safetensors")


def collect(targets: tuple[Path, ...]) -> list[tuple[Path, Path | None]]:
    """(file, source or None) for every file, directory (recursive) or batch report given."""
    from ..errors import UsageError

    found: list[tuple[Path, Path | None]] = []
    for target in targets:
        if target.is_dir():
            files = sorted(p for p in target.rglob("*") if p.suffix in OUTPUT_SUFFIXES and p.is_file() and not p.name.startswith("."))
            if not files:
                raise UsageError(f"no .pth or .safetensors files under {str(target)!r}", fix="pass files or a directory of converted checkpoints")
            found += [(p, None) for p in files]
        elif target.suffix == ".json":
            found += _from_report(target)
        else:
            found.append((target, None))
    return found


def _from_report(path: Path) -> list[tuple[Path, Path | None]]:
    from ..errors import UsageError

    try:
        data = json.loads(path.read_text())
        entries = data["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"not a ckptconv batch report ({e})", fix="pass the file written by ckptconv batch --report", path=str(path)) from None
    out = [(Path(e["output"]), Path(e["source"]) if e.get("source") else None) for e in entries if e.get("output") and e.get("status") in ("converted", "up to date")]
    if not out:
        raise UsageError("the batch report lists no converted files", path=str(path))
    return out


@click.command("verify")
@click.argument("targets", nargs=-1, required=True, metavar="FILE|DIR|REPORT.json...", type=click.Path(path_type=Path))
@click.option("--source", type=click.Path(path_type=Path), help="The pycls checkpoint FILE was converted from: adds bit identity, numerics against it, and its sha256.")
@click.option("--arch", metavar="bN", help="Expected variant; default: the file's meta, else its shapes.")
@click.option("--layout", help="Expected layout; default: the file's meta, else its keys.")
@click.option("--weights", type=click.Choice(["best", "model", "ema"]), default=None, help="Source weight set to compare with; default: the one the meta records.")
@click.option("--padding", type=click.Choice(["symmetric", "same"]), help="Padding your detector config uses (same = Conv2dAdaptivePadding, mmdet's default).")
@click.option("--eps", type=float, help="BN eps your detector config uses (mmdet's default is 1e-3).")
@input_size_option
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the results as JSON to FILE.")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but the failures.")
@click.option("--trust-pickle", is_flag=True, help="DANGEROUS: unpickle any object the files ask for.")
@click.pass_obj
def verify_cmd(obj, targets, source, arch, layout, weights, padding, eps, input_size, report_path, json_mode, quiet, trust_pickle) -> None:
    """Verify converted checkpoints: files, directories (searched recursively) or a batch report.

    Checks structure (keys, shapes, dtypes of the layout), numerics (the reference model in the
    given --padding/--eps against pycls, exactly) and the meta; with --source also bit identity and
    the source's sha256. Exit 0 when every file passes, 1 when any fails, 2 on a usage error.
    """
    ui = UI(json_mode=json_mode, quiet=quiet)
    with ui.guard():
        from ..errors import CkptError, UsageError
        from ..verify import verify_file

        files = collect(targets)
        if source is not None and len(files) != 1:
            raise UsageError("--source goes with exactly one file to verify", fix="verify a batch through its --report JSON, which names each source")
        results = []
        for path, src in files:
            try:
                report = verify_file(
                    path, source=source or src, arch=arch, layout=layout, weights=weights, padding=padding, eps=eps,
                    input_size=tuple(input_size), registry=obj.registry, trust_pickle=trust_pickle,
                )  # fmt: skip
                results.append(report.to_dict())
                if not ui.quiet:
                    _show(ui, report)
            except UsageError:
                raise
            except CkptError as e:
                results.append({"path": str(path), "ok": False, "first_failure": str(e), "checks": [], "levels": []})
        ok = all(r["ok"] for r in results)
        summary = {"ok": ok, "files": results, "passed": sum(r["ok"] for r in results), "failed": sum(not r["ok"] for r in results)}
        if report_path:
            from ..files import atomic_write

            atomic_write(report_path, lambda f: f.write(json.dumps(summary, indent=2, default=str).encode()))
        if json_mode:
            ui.json(summary)
        else:
            if len(results) > 1 and not quiet:
                ui.table("summary", ["file", "arch", "layout", "result"],
                         [(r["path"], r.get("arch", "?"), r.get("layout", "?"), "pass" if r["ok"] else "FAIL") for r in results])  # fmt: skip
            for r in results:
                if not r["ok"]:
                    ui.error(f"{r['path']}: {r['first_failure']}")
            if ok and not quiet:
                ui.success(f"{len(results)} file(s) verified")
        if not ok:
            raise SystemExit(1)


def _show(ui: UI, report) -> None:
    rows = [
        (lv.name, lv.point, f"{lv.max_abs:.3g}", f"{lv.max_rel:.3g}", "exact" if lv.tolerance == 0 else f"{lv.tolerance:.2g}", "ok" if lv.ok else "FAIL")
        for lv in report.levels
    ]
    title = f"{report.path}: {report.layout} {report.arch}, padding={report.padding}, eps={report.eps:g}, input {report.input_size[0]}x{report.input_size[1]}"
    if rows:
        ui.table(title, ["level", "pycls point", "max abs", "max rel", "tolerance", "result"], rows)
    else:
        ui.info(title)
    for check in report.checks:
        ui.info(f"  {'[green]ok[/green]' if check.ok else '[red]FAIL[/red]'} {check.name}: {_escape(check.detail)}", markup=True)


COMMANDS = (verify_cmd,)
