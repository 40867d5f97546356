"""The whole pycls model zoo through one ``ckptconv batch``: every model to every target, verified.

    python benchmarks/zoo.py [--dir DIR] [--keep] [--jobs N] [--optimizer]

Writes one checkpoint of each of the 36 zoo models as pycls's trainer does (``epoch``,
``model_state`` with random weights, the ``cfg`` dump; ``--optimizer`` adds SGD momentum buffers,
tripling the bytes), named as pycls's model zoo names them, then runs

    ckptconv batch ZOO --to all --out-dir OUT --report OUT/report.json

and prints the matrix: each model against each target, converted (with its verification) or
refused (with the reason). Too big for the test suite (about 4.4 GB of sources and 17 GB of
outputs); the tests run the same command on one model of each kind. Removes everything it wrote
unless ``--keep``. Exits with the batch's code.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_zoo(directory: Path, optimizer: bool) -> int:
    """One pycls training checkpoint per zoo model; returns their total bytes."""
    from ckptconv.tables.registry import Registry
    from ckptconv.verification import synthetic

    total = 0
    for variant in Registry().variants.values():
        path = directory / f"{variant.config or variant.name}.pyth"
        synthetic.save(synthetic.pycls_checkpoint(variant, optimizer=optimizer), path)
        total += path.stat().st_size
    return total


def matrix(report: dict) -> tuple[list[str], dict[str, dict[str, str]]]:
    """(targets, {source stem: {target: cell}}) from a batch report."""
    rows: dict[str, dict[str, str]] = {}
    for f in report["files"]:
        cell = f["verification"] if f["status"] == "converted" else f["status"]
        rows.setdefault(Path(f["source"]).stem, {})[f["layout"]] = cell
    targets = sorted({layout for row in rows.values() for layout in row})
    return targets, rows


def show(report: dict, seconds: float, source_bytes: int) -> None:
    targets, rows = matrix(report)
    width = max(len(name) for name in rows)
    print(f"{'model':<{width}}  " + "  ".join(f"{t:<13}" for t in targets))
    for name, row in rows.items():
        print(f"{name:<{width}}  " + "  ".join(f"{row.get(t, '-'):<13}" for t in targets))
    for f in report["files"]:
        if f["status"] != "converted":
            print(f"{f['status']}: {f['error']}")
    written = sum(f["bytes"] for f in report["files"])
    print(json.dumps(report["summary"]))
    print(f"{source_bytes / 1e9:.1f} GB in, {written / 1e9:.1f} GB out in {seconds:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="work directory (default: a fresh temp directory)")
    parser.add_argument("--keep", action="store_true", help="keep the zoo and the outputs")
    parser.add_argument("--jobs", type=int, default=None, help="batch workers (default: the machine's cores)")
    parser.add_argument("--optimizer", action="store_true", help="add SGD momentum buffers, as pycls's trainer saves them")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="ckptconv-zoo-"))
    zoo, out = work / "zoo", work / "out"
    zoo.mkdir(parents=True, exist_ok=True)
    try:
        source_bytes = write_zoo(zoo, args.optimizer)
        command = [sys.executable, "-m", "ckptconv", "batch", str(zoo), "--to", "all", "--out-dir", str(out),
                   "--report", str(work / "report.json"), "--quiet"] + (["--jobs", str(args.jobs)] if args.jobs else [])
        start = time.perf_counter()
        code = subprocess.run(command).returncode
        show(json.loads((work / "report.json").read_text()), time.perf_counter() - start, source_bytes)
        return code
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
