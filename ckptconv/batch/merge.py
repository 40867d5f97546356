"""``ckptconv report merge``: the reports of a sharded batch's shares as one report, in the format
``verify REPORT.json`` reads, naming missing shares, outputs reported twice and every file that did
not convert; optionally OpenMMLab's metafile of the whole batch. torch-free.

Every field read is typed (a report may come from anyone), the shares must be of one plan (their
``plan.id``: same version, --out-dir, targets, options and pairs), and the work is linear in the
number of files.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..fields import Fields
from ..io.files import MAX_REPORT_BYTES, atomic_write, check_regular, check_report_output
from ..io.meta import HEX64
from ..io.paths import Planned, check_plan
from ..tables.registry import registry_for
from .plan import STATUSES, Outcome, fine

MAX_FILES = 10_000_000
# the text fields of a report's file entry (``plan.Outcome``); the rest are numbers and a flag
TEXTS = ("source", "status", "output", "arch", "model", "weights", "family", "layout", "verification", "error", "note", "source_sha256", "output_sha256")


def _read(path: Path) -> dict[str, Any]:
    check_regular(path)
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise UsageError(f"is {path.stat().st_size} bytes, more than a batch report", path=str(path))
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as e:
        raise UsageError(f"cannot read the report ({type(e).__name__})", path=str(path)) from None
    f = Fields(data, "", UsageError, str(path))
    shard, plan = f.section("shard"), f.section("plan")
    files = [_entry(entry, i, path) for i, entry in enumerate(f.items("files", max_items=MAX_FILES))]
    return {"index": shard.integer("index", lo=1, hi=100_000), "count": shard.integer("count", lo=1, hi=100_000),
            "plan": plan.data, "plan_id": plan.text("id", pattern=HEX64), "files": files, "path": path}


def _entry(raw: Any, i: int, path: Path) -> Outcome:
    """One file of a report, every field typed as the batch writes it."""
    e = Fields(raw, f"files.{i + 1}", UsageError, str(path))
    e.only({*TEXTS, "numbers", "params", "bytes", "seconds", "source_bytes", "may_refuse"})
    texts = {k: e.text(k) if e.data.get(k) is not None else None for k in TEXTS if k not in ("source", "status")}
    may_refuse = e.data.get("may_refuse", False)
    if not isinstance(may_refuse, bool):
        e.fail(f"files.{i + 1}.may_refuse is {may_refuse!r}; expected true or false")
    numbers = e.section("numbers").data if e.data.get("numbers") is not None else None
    return Outcome(source=e.text("source"), status=e.text("status", choices=STATUSES), may_refuse=may_refuse, numbers=numbers,
                   params=e.integer("params", 0, lo=0, hi=1 << 50), bytes=e.integer("bytes", 0, lo=0, hi=1 << 60),
                   seconds=e.number("seconds", 0.0, lo=0.0, hi=1e9), source_bytes=e.integer("source_bytes", 0, lo=0, hi=1 << 60), **texts)


def _one_plan(read: list[dict[str, Any]]) -> dict[str, Any]:
    """The shares' plan, when they are all of one; else a usage error naming what differs."""
    first = read[0]
    for r in read[1:]:
        if r["plan_id"] != first["plan_id"]:
            differ = sorted(k for k in set(first["plan"]) | set(r["plan"]) if k != "id" and first["plan"].get(k) != r["plan"].get(k))
            raise UsageError(f"{first['path']} and {r['path']} are reports of different batches (they differ in {', '.join(differ) or 'their plan'})",
                             fix="merge the reports of one sharded run: the same sources, --out-dir, --to and options")
    if len({r["count"] for r in read}) != 1:
        raise UsageError(f"the reports split the batch into {sorted({r['count'] for r in read})} shares", fix="merge the reports of one sharded run")
    return first["plan"]


def _problems(read: list[dict[str, Any]], count: int, files: list[Outcome]) -> list[str]:
    problems, seen = [], {}
    for r in read:
        if r["index"] in seen:
            problems.append(f"share {r['index']}/{count} is in {seen[r['index']]} and {r['path']}")
        seen[r["index"]] = r["path"]
    missing = [i for i in range(1, count + 1) if i not in seen]
    if missing:
        problems.append(f"share(s) {', '.join(map(str, missing))} of {count} missing")
    twice = sorted(o for o, n in Counter(f.output for f in files if f.output).items() if n > 1)
    if twice:
        problems.append(f"{len(twice)} output(s) reported twice, e.g. {twice[0]}")
    bad = [f for f in files if not fine(f.status, f.may_refuse)]
    if bad:
        listed = "; ".join(f"{f.source} ({f.status}{': ' + f.error if f.error else ''})" for f in bad[:3])
        problems.append(f"{len(bad)} file(s) did not convert: {listed}" + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""))
    return problems


def merge(reports: list[Path]) -> dict[str, Any]:
    """One report of the shares: ``ok`` only when they are of one plan, every share is there once,
    no output is reported twice, and every file converted or was up to date (or, with several
    targets, refused or skipped); ``problems`` names each way it is not."""
    read = [_read(p) for p in reports]
    plan = _one_plan(read)
    count = read[0]["count"]
    files = [f for r in read for f in r["files"]]
    problems = _problems(read, count, files)
    counts = Counter(f.status for f in files)
    return {"ok": not problems, "problems": problems, "files": [vars(f) for f in files], "plan": plan,
            "summary": {**{s: counts.get(s, 0) for s in STATUSES}, "total": len(files)},
            "shards": {"count": count, "merged": sorted({r["index"] for r in read}), "reports": [str(p) for p in reports]}}


def check_outputs(out: Path, metafile: Path | None, reports: list[Path]) -> None:
    """--out and --metafile: neither a share's report nor each other; each replaces only its own kind."""
    from .metafile import check_output as check_metafile

    check_plan([Planned(out, "--out")] + ([Planned(metafile, "--metafile")] if metafile else []), reports)
    check_report_output(out, reports, "--out")
    if metafile is not None:
        check_metafile(metafile)


def write(out: Path, merged: dict[str, Any], metafile: Path | None = None) -> None:
    """The merged report, and (``metafile``) OpenMMLab's metafile of the whole batch's outputs."""
    from . import metafile as metafiles

    atomic_write(out, lambda f: f.write(json.dumps(merged, indent=2).encode()))
    if metafile is not None:
        outcomes = [Outcome(**f) for f in merged["files"]]
        layouts = metafiles.openmmlab_layouts(registry_for())  # (tables of --tables dirs are the batch's, and not in its plan)
        metafiles.write(metafile, metafiles.metafile(outcomes, Path(merged["plan"]["out_dir"]), metafile, layouts))
