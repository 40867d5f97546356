"""``ckptconv report merge``: the reports of a sharded batch's shares as one report, in the format
``verify REPORT.json`` reads, naming missing shares and outputs reported twice. torch-free."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..fields import Fields
from ..io.files import MAX_REPORT_BYTES, atomic_write, check_regular, check_report_output
from .plan import STATUSES, fine


def _read(path: Path) -> dict[str, Any]:
    check_regular(path)
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise UsageError(f"is {path.stat().st_size} bytes, more than a batch report", path=str(path))
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as e:
        raise UsageError(f"cannot read the report ({type(e).__name__})", path=str(path)) from None
    f = Fields(data, "", UsageError, str(path))
    shard = f.section("shard")
    files = f.items("files", max_items=10_000_000)
    for i, entry in enumerate(files):
        e = Fields(entry, f"files.{i + 1}", UsageError, str(path))
        e.text("source"), e.text("status", choices=STATUSES)
    return {"index": shard.integer("index", lo=1, hi=100_000), "count": shard.integer("count", lo=1, hi=100_000), "files": files, "path": path}


def merge(reports: list[Path]) -> dict[str, Any]:
    """One report of the shares: ``ok`` only when every share is there once, no output is reported
    twice, and every file converted or was up to date (or, with several targets, refused)."""
    read = [_read(p) for p in reports]
    counts = {r["count"] for r in read}
    if len(counts) != 1:
        raise UsageError(f"the reports split the batch into {sorted(counts)} shares", fix="merge the reports of one sharded run")
    count = counts.pop()
    seen: dict[int, Path] = {}
    problems = []
    for r in read:
        if r["index"] in seen:
            problems.append(f"share {r['index']}/{count} is in {seen[r['index']]} and {r['path']}")
        seen[r["index"]] = r["path"]
    missing = [i for i in range(1, count + 1) if i not in seen]
    if missing:
        problems.append(f"share(s) {', '.join(map(str, missing))} of {count} missing")
    files = [f for r in read for f in r["files"]]
    outputs = [f.get("output") for f in files if f.get("output")]
    twice = sorted({o for o in outputs if outputs.count(o) > 1})
    if twice:
        problems.append(f"{len(twice)} output(s) reported twice, e.g. {twice[0]}")
    ok = not problems and all(fine(f.get("status"), bool(f.get("may_refuse"))) for f in files)
    counts_by = {s: sum(f.get("status") == s for f in files) for s in STATUSES}
    return {"ok": ok, "problems": problems, "files": files, "summary": {**counts_by, "total": len(files)},
            "shards": {"count": count, "merged": sorted(seen), "reports": [str(p) for p in reports]}}


def write(out: Path, merged: dict[str, Any], reports: list[Path]) -> None:
    check_report_output(out, reports)
    atomic_write(out, lambda f: f.write(json.dumps(merged, indent=2).encode()))
