"""ckptconv against a naive converter, side by side in the same run: medians and ratios.

    python benchmarks/bench.py [--reps 5] [--dir DIR] [--only help,single,legacy,batch,verify,tricks,onnx]

Builds pycls training checkpoints (with SGD momentum buffers, as pycls's trainer saves them) for
B0, B3, B5 and the whole B0-B5 zoo (about 680 MB), then times whole processes, alternating the
order of the contenders on every repetition. Peak memory is each process's own max RSS (wait4).
The naive converter is benchmarks/naive.py: full torch.load, key renames, torch.save, no checks; to
ONNX, benchmarks/naive_onnx.py: full torch.load, the model, torch.onnx.export, no checks.
Goals (from the issues) are printed beside each ratio; nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAIVE = [sys.executable, str(HERE / "naive.py")]
NAIVE_ONNX = [sys.executable, str(HERE / "naive_onnx.py")]
CKPTCONV = [sys.executable, "-m", "ckptconv"]
# Each process trick switched off, one at a time, by patching it in a child process (the code has
# no switch for them): a trick stays only where these rows show it pays on the B5 case.
WITHOUT = {
    "zip surgery (plain torch.save)": "import torch, ckptconv.io.writer as w; "
    "w.write_pth = lambda f, obj, sd, copies=None: (torch.save(obj, f), w.Written('torch.save', 0, len(sd)))[1]",
    "hashing while torch imports": "import ckptconv.io.hashing as h, concurrent.futures as cf; "
    "h.start_hash = lambda p: (lambda fut: (fut.set_result(h.hash_file(p)), fut)[1])(cf.Future())",
    "exit without teardown": "import ckptconv.cli as c, sys; c.run = lambda: sys.exit(c.main(prog_name='ckptconv', standalone_mode=True))",
    "rare garbage collection": "import ckptconv.cli as c; c.collect_rarely = lambda: None",
}


def without(trick: str) -> list[str]:
    """ckptconv's command line with one trick patched out."""
    code = f"{WITHOUT[trick]}; import sys, ckptconv.cli as c; sys.argv[0] = 'ckptconv'; c.run()"
    return [sys.executable, "-c", code]


def measure(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err}")
    return wall, usage.ru_maxrss


def measure_many(cmds: list[list[str]]) -> tuple[float, int]:
    """Several processes one after another (the naive way through a zoo): total wall, max peak."""
    walls, peaks = zip(*(measure(c) for c in cmds))
    return sum(walls), max(peaks)


def build(directory: Path) -> dict[str, Path]:
    """Write the checkpoints in a child process: this process must stay small, or every process
    it forks would start with (and report) its memory."""
    subprocess.run([sys.executable, __file__, "--build-only", "--dir", str(directory)], check=True)
    files = {a: directory / "zoo" / f"EN-{a.upper()}_dds_8gpu.pyth" for a in ("b0", "b1", "b2", "b3", "b4", "b5")}
    files["b5-legacy"] = directory / "EN-B5_legacy.pyth"
    return files


def _build(directory: Path) -> None:
    from ckptconv.tables.registry import registry_for
    from ckptconv.verification import synthetic

    registry = registry_for()
    zoo = directory / "zoo"
    zoo.mkdir(parents=True, exist_ok=True)
    files = {}
    for arch in ("b0", "b1", "b2", "b3", "b4", "b5"):
        path = zoo / f"EN-{arch.upper()}_dds_8gpu.pyth"
        if not path.exists():
            print(f"building {path.name} ...", flush=True)
            synthetic.save(synthetic.pycls_checkpoint(registry.variant(arch)), path)
        files[arch] = path
    legacy = directory / "EN-B5_legacy.pyth"
    if not legacy.exists():
        print(f"building {legacy.name} (legacy format) ...", flush=True)
        import torch

        torch.save(torch.load(files["b5"], weights_only=True), legacy, _use_new_zipfile_serialization=False)


READ_SHARES = "import json, sys; files = [f for p in sys.argv[1:] for f in json.load(open(p))['files']]"


def merge_reports(directory: Path, count: int, files: int) -> list[Path]:
    """``count`` share reports of one batch of ``files`` converted files, as batch --shard writes them."""
    import hashlib
    import json

    directory.mkdir(parents=True, exist_ok=True)
    plan = {"ckptconv_version": "0", "out_dir": str(directory), "targets": ["timm"], "options": {}, "jobs": files, "pairs_sha256": "0" * 64}
    plan["id"] = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()
    paths = []
    for k in range(count):
        entries = [{"source": f"zoo/m{i}.pyth", "output": f"{directory}/m{i}.pth", "status": "converted", "arch": "b0", "layout": "timm",
                    "params": 5_000_000, "bytes": 20_000_000, "seconds": 0.5, "verification": "numeric ok", "source_sha256": "a" * 64,
                    "output_sha256": "b" * 64, "source_bytes": 60_000_000, "may_refuse": False} for i in range(k, files, count)]
        path = directory / f"share-{k + 1}.json"
        path.write_text(json.dumps({"ok": True, "files": entries, "plan": plan, "shard": {"index": k + 1, "count": count, "given_by": "--shard"}}))
        paths.append(path)
    return paths


def median_pair(samples):
    walls, peaks = zip(*samples)
    return statistics.median(walls), statistics.median(peaks)


def run(args) -> None:
    work = Path(args.dir or tempfile.mkdtemp(prefix="ckptconv-bench-"))
    files = build(work)
    out = work / "out"
    out.mkdir(exist_ok=True)
    only = set(args.only.split(","))
    cases: dict[str, dict[str, list]] = {}

    def add(case, name, cmd_or_cmds):
        cases.setdefault(case, {})[name] = cmd_or_cmds

    if "help" in only:
        add("startup", "python -c 'import torch'", [sys.executable, "-c", "import torch"])
        add("startup", "ckptconv --help", CKPTCONV + ["--help"])
    singles = [("b0", files["b0"]), ("b3", files["b3"]), ("b5", files["b5"])] if "single" in only else []
    if "legacy" in only:
        singles.append(("b5 legacy", files["b5-legacy"]))
    if "tricks" in only:
        dst = str(out / "b5-tricks.pth")
        for mode in ("structure", "numeric"):
            argv = ["pycls2mmdet", str(files["b5"]), dst, "--force", "-q", "--verify", mode]
            add(f"b5 tricks, --verify {mode}", "ckptconv as it is", CKPTCONV + argv)
            for trick in WITHOUT:
                add(f"b5 tricks, --verify {mode}", f"without {trick}", without(trick) + argv)
    for label, path in singles:
        dst = out / f"{label.replace(' ', '-')}.pth"
        add(label, "naive", NAIVE + [str(path), str(dst)])
        add(label, "ckptconv --verify structure", CKPTCONV + ["pycls2mmdet", str(path), str(dst), "--force", "-q", "--verify", "structure"])
        add(label, "ckptconv (numeric verify)", CKPTCONV + ["pycls2mmdet", str(path), str(dst), "--force", "-q"])
    if "merge" in only:
        shares = merge_reports(out / "merge", 4, 50_000)
        add("report merge, 4 shares of 50,000 files", "naive: json.load of each share", [sys.executable, "-c", READ_SHARES, *map(str, shares)])
        add("report merge, 4 shares of 50,000 files", "ckptconv report merge", CKPTCONV + ["report", "merge", *map(str, shares), "--out", str(out / "merged.json")])
    if "batch" in only:
        zoo = [files[a] for a in ("b0", "b1", "b2", "b3", "b4", "b5")]
        add("zoo b0-b5", "naive, one process per file", [NAIVE + [str(p), str(out / f"naive-{p.stem}.pth")] for p in zoo])
        add("zoo b0-b5", "ckptconv batch --verify structure", CKPTCONV + ["batch", str(files["b0"].parent), "--out-dir", str(out / "batch"), "--force", "-q", "--verify", "structure"])
        add("zoo b0-b5", "ckptconv batch (numeric verify)", CKPTCONV + ["batch", str(files["b0"].parent), "--out-dir", str(out / "batch"), "--force", "-q"])
        rerun = ["batch", str(files["b0"].parent), "--out-dir", str(out / "rerun"), "-q"]  # repetition 0 writes the outputs
        add("zoo b0-b5 rerun", "ckptconv batch --force (converts again)", CKPTCONV + rerun + ["--force"])
        add("zoo b0-b5 rerun", "ckptconv batch (every output up to date)", CKPTCONV + rerun)

    if "onnx" in only:
        add_onnx(add, files, out)

    samples: dict[tuple[str, str], list] = {}
    for rep in range(args.reps + 1):  # repetition 0 warms the page cache and is not counted
        for case, contenders in cases.items():
            order = list(contenders.items())
            if rep % 2:
                order.reverse()
            for name, cmd in order:
                result = measure_many(cmd) if isinstance(cmd[0], list) else measure(cmd)
                if rep:
                    samples.setdefault((case, name), []).append(result)
        print(f"repetition {rep}/{args.reps} done", flush=True)

    print(f"\nmedians of {args.reps} runs; machine: {os.cpu_count()} cores; ratios against the first row of each case\n")
    print("| case | contender | wall s | peak MiB | wall ratio | peak ratio | goal |")
    print("|---|---|---|---|---|---|---|")
    goals = {
        ("startup", "ckptconv --help"): "wall <= 0.25",
        ("b5", "ckptconv --verify structure"): "wall <= 1.0, peak <= 0.75",
        ("b5", "ckptconv (numeric verify)"): "wall <= 1.25",
        ("b5 legacy", "ckptconv --verify structure"): "wall <= 1.0",
        ("b5 legacy", "ckptconv (numeric verify)"): "wall <= 1.25",
        ("zoo b0-b5", "ckptconv batch --verify structure"): "wall <= 0.40",
        ("zoo b0-b5 rerun", "ckptconv batch (every output up to date)"): "wall <= 0.25 (every byte is still read once)",
        ("report merge, 4 shares of 50,000 files", "ckptconv report merge"): "wall <= 15 (linear: typing every field of every file; 61 s when it was quadratic)",
        ("b0 to onnx", "ckptconv --to onnx --verify structure"): "wall about 1.0 (the export is the same work; measured 1.05)",
        ("zoo b0-b5 to onnx", "ckptconv batch --to onnx --verify structure"): "wall <= 0.75 (two workers; torch imported once each)",
    }
    for case, contenders in cases.items():
        base = median_pair(samples[case, next(iter(contenders))])
        for name in contenders:
            wall, peak = median_pair(samples[case, name])
            print(f"| {case} | {name} | {wall:.2f} | {peak / 1024:.0f} | {wall / base[0]:.2f} | {peak / base[1]:.2f} | {goals.get((case, name), '')} |")
    if "verify" in only:
        verify_timing(files["b5"], out, args.reps)
    if not args.keep:  # the checkpoints too when the folder is the temp one made here
        shutil.rmtree(out if args.dir else work, ignore_errors=True)


def add_onnx(add, files: dict[str, Path], out: Path) -> None:
    """B0 alone and the B0-B5 zoo to ONNX graphs: the naive route (one process per file) against
    ckptconv, checked by onnxruntime (numeric) or not (structure)."""
    one, graph = files["b0"], str(out / "b0.onnx")
    add("b0 to onnx", "naive: torch.load, the model, torch.onnx.export", NAIVE_ONNX + ["b0", str(one), str(out / "naive-b0.onnx")])
    add("b0 to onnx", "ckptconv --to onnx --verify structure", CKPTCONV + ["convert", str(one), graph, "--to", "onnx", "--force", "-q", "--verify", "structure"])
    add("b0 to onnx", "ckptconv --to onnx (checked in onnxruntime)", CKPTCONV + ["convert", str(one), graph, "--to", "onnx", "--force", "-q"])
    zoo = {a: files[a] for a in ("b0", "b1", "b2", "b3", "b4", "b5")}
    add("zoo b0-b5 to onnx", "naive, one process per file", [NAIVE_ONNX + [a, str(p), str(out / f"naive-{a}.onnx")] for a, p in zoo.items()])
    for label, extra in (("--verify structure", ["--verify", "structure"]), ("(checked in onnxruntime)", [])):
        add("zoo b0-b5 to onnx", f"ckptconv batch --to onnx {label}".strip(),
            CKPTCONV + ["batch", str(files["b0"].parent), "--to", "onnx", "--out-dir", str(out / "onnx"), "--force", "-q", *extra])


def verify_timing(src: Path, out: Path, reps: int) -> None:
    """In-process seconds of verifying a B5 conversion at the default 64x96 input (from --json)."""
    import json

    dst = out / "b5-verify.pth"
    subprocess.run(CKPTCONV + ["pycls2mmdet", str(src), str(dst), "--force", "-q", "--no-verify"], check=True)
    print("\n| verification of b5 (mmdet layout), 64x96 input | median seconds in process | wall s (whole process) |")
    print("|---|---|---|")
    for label, extra in (("alone (structure, finite, numeric via the table)", []), ("with --source (adds bit identity, provenance)", ["--source", str(src)])):
        inside, walls = [], []
        for _ in range(reps):
            start = time.perf_counter()
            run = subprocess.run(CKPTCONV + ["verify", str(dst), "--json", *extra], capture_output=True, text=True, check=True)
            walls.append(time.perf_counter() - start)
            inside.append(json.loads(run.stdout)["files"][0]["seconds"])
        print(f"| {label} | {statistics.median(inside):.3f} | {statistics.median(walls):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dir", help="where to build the checkpoints (reused when present)")
    parser.add_argument("--only", default="help,single,legacy,batch,merge,verify,tricks")
    parser.add_argument("--keep", action="store_true", help="keep the outputs")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        _build(Path(args.dir))
    else:
        run(args)


if __name__ == "__main__":
    main()
