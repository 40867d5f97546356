"""Converting a zoo: plan every output first, then convert in parallel worker processes.

The parent process plans (sources, output names, collisions) without importing torch; each worker
imports torch once and converts many files. One bad file never stops the batch: its failure is
recorded with its one-line reason. Re-running is incremental: an output whose meta records the same
source sha256 and options is reported up to date and left alone.
"""

from __future__ import annotations

import glob
import json
import os
import re
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import CkptError, Refused, UsageError

SOURCE_SUFFIXES = (".pyth", ".pth", ".pt", ".safetensors")
MANIFEST_SUFFIXES = (".toml", ".json")
FORMAT_EXT = {"pth": ".pth", "safetensors": ".safetensors"}
ENTRY_FIELDS = {"source", "arch", "layout", "weights", "output", "prefix", "dtype", "channel_order", "trust_pickle"}
_HINT = re.compile(r"EN-(B\d+)", re.IGNORECASE)


@dataclass
class Job:
    """One conversion of a batch, fully decided before anything is written."""

    source: str
    output: str  # final name; with --publish, the name before the hash is added
    layout: str
    arch: str | None = None
    weights: str = "best"
    prefix: str | None = None
    dtype: str = "keep"
    channel_order: str | None = None
    verify: str = "numeric"
    input_size: tuple[int, int] = (64, 96)
    trust_pickle: bool = False
    force: bool = False
    publish: bool = False
    tables: tuple[str, ...] = ()
    may_refuse: bool = False  # one cell of a run over several targets: a refusal is listed, not a failure

    @property
    def hint(self) -> str | None:
        """The arch a file name like ``EN-B3_dds_8gpu.pyth`` suggests: only a hint."""
        m = _HINT.search(Path(self.source).name)
        return m.group(1).lower() if m else None


@dataclass
class Outcome:
    """What happened to one job; the batch report holds one per input."""

    source: str
    output: str | None
    status: str  # converted | up to date | refused | failed
    arch: str | None = None
    layout: str | None = None
    params: int = 0
    bytes: int = 0
    seconds: float = 0.0
    verification: str = "-"
    error: str | None = None
    note: str | None = None
    source_sha256: str | None = None
    output_sha256: str | None = None
    source_bytes: int = 0
    may_refuse: bool = False

    @property
    def ok(self) -> bool:
        return self.status in ("converted", "up to date") or (self.status == "refused" and self.may_refuse)


@dataclass
class Batch:
    jobs: list[Job]
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return len(self.outcomes) == len(self.jobs) and all(o.ok for o in self.outcomes)

    def report(self) -> dict[str, Any]:
        counts = {s: sum(o.status == s for o in self.outcomes) for s in ("converted", "up to date", "refused", "failed")}
        return {
            "ok": self.ok,
            "files": [asdict(o) for o in self.outcomes],
            "summary": {**counts, "total": len(self.jobs), "seconds": round(self.seconds, 3)},
        }


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


@dataclass(frozen=True)
class Entry:
    """One input of a batch: its source, its output's path under --out-dir (without the format's
    extension unless a manifest named it), and the fields a manifest set for it."""

    source: Path
    name: Path
    fields: dict[str, Any] = field(default_factory=dict)
    named: bool = False  # the manifest gave the output name, extension included


def _search(directory: Path, exclude: Path | None) -> list[Path]:
    found = []
    for path in sorted(directory.rglob("*")):
        if path.suffix in SOURCE_SUFFIXES[:3] and path.is_file() and not path.name.startswith("."):
            if exclude is None or exclude not in path.resolve().parents:
                found.append(path)
    return found


def _relative_name(text: str, where: str, path: Path) -> Path:
    """A manifest's output name: a relative path inside --out-dir, never absolute or climbing out."""
    name = Path(text)
    if not text or name.is_absolute() or ".." in name.parts or "\0" in text:
        raise UsageError(f"{where}: output {text!r} must be a relative path inside --out-dir (no '..', not absolute)", path=str(path))
    return name


def _manifest_entry(raw: Any, i: int, path: Path) -> Entry:
    from .fields import Fields

    f = Fields(raw, f"entry {i + 1}", UsageError, str(path))
    f.only(ENTRY_FIELDS)
    source = Path(f.text("source"))
    fields: dict[str, Any] = {}
    for key in ("arch", "layout", "prefix"):
        if f.has(key):
            fields[key] = f.text(key)
    if f.has("weights"):
        fields["weights"] = f.text("weights", choices=("best", "model", "ema"))
    if f.has("dtype"):
        fields["dtype"] = f.text("dtype", choices=("keep", "fp16", "bf16", "fp32"))
    if f.has("channel_order"):
        fields["channel_order"] = f.text("channel_order", choices=("rgb", "bgr"))
    if f.has("trust_pickle") and f.data["trust_pickle"] is not False:
        fields["trust_pickle"] = True
    source = source if source.is_absolute() else path.parent / source
    if f.has("output"):
        return Entry(source, _relative_name(f.text("output"), f"entry {i + 1}", path), fields, named=True)
    return Entry(source, Path(source.stem), fields)


def read_manifest(path: Path) -> list[Entry]:
    """Entries of a TOML (``[[checkpoint]]``) or JSON (``{"checkpoints": [...]}`` or a list) manifest."""
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
            entries = data.get("checkpoint", data.get("checkpoints"))
        else:
            data = json.loads(path.read_text())
            entries = data if isinstance(data, list) else data.get("checkpoints") if isinstance(data, dict) else None
    except (OSError, ValueError, RecursionError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read the manifest ({type(e).__name__}: {str(e)[:200]})", path=str(path)) from None
    if not isinstance(entries, list) or not entries:
        raise UsageError(
            "the manifest lists no checkpoints",
            fix='write [[checkpoint]] tables (TOML) or {"checkpoints": [...]} (JSON), each with a source',
            path=str(path),
        )
    return [_manifest_entry(raw, i, path) for i, raw in enumerate(entries)]


def collect(sources: Iterable[str], out_dir: Path) -> list[Entry]:
    """Entries from files, directories (their tree mirrored under --out-dir), globs and manifests."""
    entries: list[Entry] = []
    exclude = out_dir.resolve() if out_dir.exists() else None
    for text in sources:
        path = Path(text)
        if path.suffix in MANIFEST_SUFFIXES and path.is_file():
            entries += read_manifest(path)
        elif path.is_dir():
            found = _search(path, exclude)
            if not found:
                raise UsageError(f"no *.pyth or *.pth files under {text!r}", fix="pass checkpoint files, a directory of them, or a manifest")
            entries += [Entry(p, p.relative_to(path).with_suffix("")) for p in found]
        elif _is_glob(text):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matched:
                raise UsageError(f"the pattern {text!r} matches no file")
            entries += [Entry(p, Path(p.stem)) for p in matched]
        else:
            entries.append(Entry(path, Path(path.stem)))  # a missing file fails as that file's own error
    if not entries:
        raise UsageError("no checkpoints to convert", fix="pass files, directories, globs or a manifest")
    return entries


def target_layouts(values: Iterable[str], registry) -> tuple[str, ...]:
    """``--to`` values: names, comma-separated lists, or ``all`` (every layout but pycls); each
    checked, none twice, in the order given. None given: mmdet."""
    names: list[str] = []
    for value in values or ("mmdet",):
        for name in filter(None, (part.strip() for part in value.split(","))):
            found = [n for n in registry.layout_names if n != "pycls"] if name == "all" else [name]
            for layout in found:
                registry.named(layout)  # an unknown name is a usage error now, before anything runs
                if layout not in names:
                    names.append(layout)
    if not names:
        raise UsageError("--to names no layout", fix=f"use one or more of {', '.join(registry.layout_names)}, or all")
    return tuple(names)


def _inside(output: Path, out_dir: Path) -> bool:
    """``output`` stays under ``out_dir`` once symlinks are resolved."""
    root = out_dir.resolve()
    return root == output.resolve() or root in output.resolve().parents


def _check_paths(jobs: list["Job"], out_dir: Path, others: list[Path]) -> None:
    """Every output inside --out-dir, none an input (links resolved), no two the same: all named."""
    from .io.files import same_file

    inputs = [Path(j.source) for j in jobs] + others
    by_output: dict[str, list[str]] = {}
    for job in jobs:
        out = Path(job.output)
        if not _inside(out, out_dir):
            raise UsageError(f"{job.source} would write {out}, outside --out-dir (a symlink leads out)", fix="name another output")
        hit = next((src for src in inputs if same_file(out, src)), None)
        if hit is not None:
            raise UsageError(f"{job.source} would write over the input {hit}", fix="ckptconv never writes over an input; choose another --out-dir or output name")
        by_output.setdefault(os.path.normcase(str(out.resolve())), []).append(job.source)
    clashes = {out: srcs for out, srcs in by_output.items() if len(srcs) > 1}
    if clashes:
        listed = "; ".join(f"{out} <- {' and '.join(srcs)}" for out, srcs in list(clashes.items())[:5])
        more = f" (+{len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise UsageError(f"{len(clashes)} output(s) would be written by more than one input: {listed}{more}",
                         fix="give them other output names in a manifest (output = \"...\")")  # fmt: skip


def plan(entries: list[Entry], out_dir: Path, *, layouts: tuple[str, ...], fmt: str, trust_pickle: bool, others: list[Path] = (), **common: Any) -> list["Job"]:
    """One job per entry and target layout (a manifest's ``layout`` names its entry's only one).
    With several layouts each gets a folder under --out-dir and a refused pair is listed, not
    failed. Fails before anything is written when an output is unsafe or shared."""
    if fmt not in FORMAT_EXT:
        raise UsageError(f"unknown --format {fmt!r}", fix="use pth or safetensors")
    matrix = len(layouts) > 1
    jobs = []
    for entry in entries:
        f = entry.fields
        if f.get("trust_pickle") and not trust_pickle:
            raise UsageError(
                f"the manifest asks to trust the pickle of {entry.source}",
                fix="a manifest cannot switch on --trust-pickle; pass it on the command line if you trust every file",
            )
        name = entry.name if entry.named else entry.name.with_name(entry.name.name + FORMAT_EXT[fmt])
        for layout in (f["layout"],) if "layout" in f else layouts:
            cell = matrix and "layout" not in f
            output = out_dir / layout / name if cell else out_dir / name
            jobs.append(_job(entry, output, layout, trust_pickle, common, may_refuse=cell))
    _check_paths(jobs, out_dir, list(others))
    return jobs


def _job(entry: Entry, output: Path, layout: str, trust_pickle: bool, common: dict[str, Any], *, may_refuse: bool) -> "Job":
    f = entry.fields
    return Job(
        source=str(entry.source), output=str(output), layout=layout, arch=f.get("arch"),
        weights=f.get("weights", common.get("weights", "best")), prefix=f.get("prefix", common.get("prefix")),
        dtype=f.get("dtype", common.get("dtype", "keep")), channel_order=f.get("channel_order", common.get("channel_order")),
        verify=common.get("verify", "numeric"), input_size=tuple(common.get("input_size", (64, 96))), trust_pickle=trust_pickle,
        force=common.get("force", False), publish=common.get("publish", False), tables=tuple(str(t) for t in common.get("tables", ())),
        may_refuse=may_refuse,
    )  # fmt: skip


def _make_parents(directory: Path) -> None:
    """The output's folder under --out-dir (the source tree mirrored), made when its job runs."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {str(directory)!r} ({e.strerror})", path=str(directory)) from None


def check_report(report_path: Path, jobs: list["Job"], others: list[Path]) -> None:
    """The report may be neither an input nor an output of the batch."""
    from .io.files import check_outputs

    check_outputs([report_path], [Path(j.source) for j in jobs] + [Path(j.output) for j in jobs] + others, force=True)


def write_report(report_path: Path, report: dict[str, Any]) -> None:
    from .io.files import atomic_write

    atomic_write(report_path, lambda f: f.write(json.dumps(report, indent=2).encode()))


# --- workers ------------------------------------------------------------------------------------


def _init_worker(threads: int, worker: bool = True) -> None:
    from .signals import import_torch, install_worker

    if worker:
        install_worker()
    import_torch()
    import torch

    torch.set_num_threads(threads)
    _WORKER_REGISTRY.clear()  # a new run: read the tables afresh


def _published_candidates(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f"{glob.escape(output.stem)}-" + "[0-9a-f]" * 8 + output.suffix))


def _expected_options(request, meta: dict[str, Any], registry) -> dict[str, Any] | None:
    """What an output converted now would record as its options (None: it cannot be known)."""
    from .convert import options

    arch = request.arch or meta.get("arch")
    if not isinstance(arch, str) or arch not in registry.variants:
        return None
    variant = registry.variant(arch)
    try:
        target, source = registry.layout(request.layout, variant.family), registry.layout(request.source_layout, variant.family)
    except CkptError:
        return None
    prefix = request.prefix if request.prefix is not None else target.prefix
    return options(request, target, source, variant, prefix)


def _intact(ckpt) -> bool:
    """Every tensor record of an existing zip output still matches its CRC-32."""
    try:
        for name, sd in ckpt.weight_sets.items():
            ckpt.verify_tensors(name, list(sd))
    except CkptError:
        return False
    return True


def _up_to_date(job: Job, request, sha: str, registry) -> tuple[Path, dict[str, Any]] | None:
    """An existing, intact output (and its meta) converted from this very source with these options."""
    from .io.checkpoint import load

    output = Path(job.output)
    for path in _published_candidates(output) if job.publish else [output]:
        if not path.exists():
            continue
        try:
            ckpt = load(path)
        except CkptError:
            continue
        meta = ckpt.meta
        if meta.get("source_sha256") == sha and meta.get("options") == _expected_options(request, meta, registry) and _intact(ckpt):
            return path, meta
    return None


def run_job(job: Job) -> Outcome:
    """Convert one job in this process; never raises for a bad input (it becomes a failed outcome)."""
    from .signals import job as busy

    start = time.perf_counter()
    source = Path(job.source)
    outcome = Outcome(str(source), job.output, "failed", layout=job.layout, may_refuse=job.may_refuse)
    try:
        outcome.source_bytes = source.stat().st_size if source.is_file() else 0
        with busy():
            _run(job, outcome)
    except Refused as e:
        outcome.status, outcome.output, outcome.error = "refused", None, f"{source}: {e}"
    except CkptError as e:
        outcome.status, outcome.error = "failed", str(e) if e.path else f"{source}: {e}"
    except Exception as e:  # noqa: BLE001 - one file's bug must not stop the zoo; it is reported
        outcome.status, outcome.error = "failed", f"{source}: unexpected error ({type(e).__name__}: {e})"
    outcome.seconds = time.perf_counter() - start
    return outcome


_WORKER_REGISTRY: list = []  # the registry of this batch's run in this process, read once per run


def _registry(tables: tuple[str, ...]):
    """The tables of this run: parsed once per run and process, not per file, and never kept from
    an earlier run (a table may have changed in between)."""
    from .tables.registry import Registry

    if not _WORKER_REGISTRY or _WORKER_REGISTRY[0][0] != tables:
        _WORKER_REGISTRY[:] = [(tables, Registry.from_env(tables))]
    return _WORKER_REGISTRY[0][1]


def _request(job: Job, output: Path):
    from .convert import Request

    return Request(
        source=Path(job.source), output=output, layout=job.layout, arch=job.arch, weights=job.weights, prefix=job.prefix,
        dtype=job.dtype, channel_order=job.channel_order, verify=job.verify, input_size=job.input_size,
        trust_pickle=job.trust_pickle, force=job.force,
    )  # fmt: skip


def _run(job: Job, outcome: Outcome) -> None:
    from .convert import convert
    from .io.files import check_regular
    from .io.hashing import sha256_file

    registry = _registry(job.tables)
    source = Path(job.source)
    check_regular(source)
    sha = sha256_file(source)
    outcome.source_sha256 = sha
    if not job.force:
        found = _up_to_date(job, _request(job, Path(job.output)), sha, registry)
        if found is not None:
            current, meta = found
            outcome.status, outcome.output, outcome.arch = "up to date", str(current), meta.get("arch")
            outcome.bytes = current.stat().st_size
            outcome.output_sha256 = sha256_file(current)
            outcome.verification = "as converted"
            return
    target = Path(job.output)
    _make_parents(target.parent)
    if job.publish:  # write under a temp name, then rename with the final file's hash
        from .io.files import TMP_PREFIX

        target = target.parent / f"{TMP_PREFIX}{os.getpid()}-publish-{target.name}"
    result = convert(_request(job, target), registry, source_sha256=sha)
    final = target
    out_sha = sha256_file(target)
    if job.publish:
        final = Path(job.output).with_name(f"{Path(job.output).stem}-{out_sha[:8]}{Path(job.output).suffix}")
        os.replace(target, final)
    outcome.status, outcome.output, outcome.output_sha256 = "converted", str(final), out_sha
    arch = result.conversion.variant.name
    outcome.arch, outcome.params, outcome.bytes = arch, result.conversion.params, result.bytes
    report = result.report
    outcome.verification = "skipped" if report is None else f"{job.verify} ok" if report.ok else "failed"
    if job.hint and job.hint != arch:
        outcome.note = f"file name suggests {job.hint} but the tensors are {arch} (converted as {arch})"


def run(
    jobs: list[Job],
    *,
    workers: int,
    on_start: Callable[[Job], None] | None = None,
    on_done: Callable[[Job, Outcome], None] | None = None,
    job_fn: Callable[[Job], Outcome] = run_job,
) -> Batch:
    """Convert every job, ``workers`` at a time; outcomes in job order.

    A worker that dies (a crash in native code, the OOM killer) takes down the pool and whatever
    was in flight: those jobs are run again one at a time, so a file that kills its worker is the
    only one to fail for it.
    """
    start = time.perf_counter()
    batch = Batch(jobs)
    results: dict[int, Outcome] = {}
    workers = max(1, min(workers, len(jobs)))

    def finish(i: int, outcome: Outcome) -> None:
        results[i] = outcome
        on_done and on_done(jobs[i], outcome)

    if workers == 1 and job_fn is run_job:
        _init_worker(os.cpu_count() or 1, worker=False)
        for i, job in enumerate(jobs):
            on_start and on_start(job)
            finish(i, job_fn(job))
    else:
        queue, suspects = list(enumerate(jobs)), []
        while queue:
            crashed, queue = _pool_pass(queue, workers, job_fn, on_start, finish)
            suspects += crashed
        for i, job in suspects:  # alone now: if it dies again, it is this file
            crashed, _ = _pool_pass([(i, job)], 1, job_fn, on_start, finish)
            if crashed:
                finish(i, Outcome(job.source, job.output, "failed", layout=job.layout,
                                  error=f"{job.source}: the worker process died while converting this file (a crash or the OOM killer)"))  # fmt: skip
    batch.outcomes = [results[i] for i in range(len(jobs))]
    batch.seconds = time.perf_counter() - start
    return batch


def _pool_pass(items, workers, job_fn, on_start, finish) -> tuple[list, list]:
    """Run ``items`` ((index, job) pairs) in a process pool until done or until a worker dies.

    Returns the jobs in flight when a worker died, and those not yet started.
    """
    import multiprocessing
    import sys
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, (os.cpu_count() or 1) // workers)
    # fork is fast and safe while this process has not started torch's thread pools (the CLI never
    # imports torch here); a library caller that has must spawn fresh workers
    method = "fork" if "torch" not in sys.modules and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    queue = list(items)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method), initializer=_init_worker, initargs=(threads,)) as pool:
        pending: dict[Any, tuple[int, Job]] = {}
        try:
            while queue or pending:
                while queue and len(pending) < workers:
                    i, job = queue.pop(0)
                    on_start and on_start(job)
                    pending[pool.submit(job_fn, job)] = (i, job)
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i, job = pending.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        return [(i, job), *pending.values()], queue
                    finish(i, outcome)
        except BaseException:
            for future in pending:
                future.cancel()
            for process in list(getattr(pool, "_processes", {}).values()):  # stop the jobs in hand:
                process.terminate()  # SIGTERM; each worker removes its temp file and exits quietly
            raise
    return [], []
