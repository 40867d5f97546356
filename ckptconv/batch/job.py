"""One job of a batch, in a worker process: up to date already, or converted (and published under
its hash). A bad input becomes a failed outcome with its one-line reason, never the end of the batch."""

from __future__ import annotations

import glob
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import CkptError, NoLayout, Refused
from ..io.hashing import Hashed
from ..io.written import Written, read_written
from .plan import Job, Outcome


def _published_candidates(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f"{glob.escape(output.stem)}-" + "[0-9a-f]" * 8 + output.suffix))


def _recorded(job: Job, meta: dict[str, Any]):
    """The model an output holds: --arch, else the one its meta records (a zoo name, or a custom
    model's numbers); None when it cannot be known."""
    from ..tables import detect
    from ..tables.registry import registry_for

    registry = registry_for(job.request.tables)
    try:
        return registry.variant(job.request.arch) if job.request.arch else detect.recorded_model(meta, registry)
    except CkptError:
        return None


def _expected_options(job: Job, meta: dict[str, Any]) -> dict[str, Any] | None:
    """What an output converted now would record as its options (None: it cannot be known)."""
    from ..onnx import as_pycls, graph_options
    from ..options import ONNX
    from ..tables.registry import registry_for
    from ..tables.resolve import output_options, resolve

    variant, graph = _recorded(job, meta), job.request.layout == ONNX
    request = as_pycls(job.request) if graph else job.request
    try:
        options = None if variant is None else output_options(request, resolve(request, variant, registry_for(job.request.tables)))
    except CkptError:
        return None
    return {**options, **graph_options(job.request)} if graph and options is not None else options


def up_to_date(job: Job, sha: str) -> tuple[Path, Written] | None:
    """An existing, intact output converted from this very source with these options (torch-free)."""

    output = Path(job.output)
    for path in _published_candidates(output) if job.publish else [output]:
        weights = _weights_file(job, path)
        written = read_written(weights) if weights.is_file() else None
        if written is None or not written.intact:
            continue
        meta = written.meta
        if meta.get("source_sha256") == sha and meta.get("options") == _expected_options(job, meta) and _whole(job, path):
            return path, written
    return None


def _weights_file(job: Job, output: Path) -> Path:
    """The file that holds the output's tensors: the output itself, or a hub folder's model.safetensors."""
    from ..io.folder import WEIGHTS

    return output / WEIGHTS if job.request.folder else output


def _whole(job: Job, output: Path) -> bool:
    """A model folder holds its own files and nothing else (and its --configs file: the folder's
    usage, which only a conversion writes)."""
    from ..io.folder import files_of

    if not job.request.folder:
        return True
    config = job.request.config_out
    return sorted(p.name for p in output.iterdir()) == sorted(files_of(job.request.layout)) and (config is None or config.is_file())


def _config_beside(job: Job, output: Path, meta: dict[str, Any]) -> None:
    """An up-to-date output's --configs file, when it is missing: the config its meta records (the
    text its conversion wrote), written as any output is."""
    from ..io.files import atomic_write
    from ..tables.registry import registry_for
    from ..tables.render import recorded_config

    config = job.request.config_out
    if config is None or config.is_file() or job.request.folder:
        return
    text = recorded_config(output, meta, registry_for(job.request.tables))
    if text is not None:
        atomic_write(config, lambda f: f.write(text.encode()), replace=False)


def has_output(job: Job) -> bool:
    """Something is at the job's output name (with --publish, a published name of it)."""
    output = Path(job.output)
    return bool(_published_candidates(output)) if job.publish else output.exists()


def source_hash(source: str) -> Hashed | None:
    """The source's sha256 and stamp, None when it is no readable regular file (its worker says why)."""
    from ..io.files import check_regular
    from ..io.hashing import hash_file

    try:
        check_regular(Path(source))
        return hash_file(source)
    except (CkptError, OSError):
        return None


def current(job: Job, hashed: Hashed | None) -> Outcome | None:
    """Before any worker starts, torch-free: the job's outcome when its output is up to date
    (``hashed``: its source's sha256, read only when an output exists), or when its source's index
    alone shows the pair is refused. None: a worker converts it."""
    start = time.perf_counter()
    if hashed is None:
        return _refusal(job, start)
    sha = hashed.sha256
    found = up_to_date(job, sha)
    if found is None:
        return None
    size = Path(job.source).stat().st_size
    outcome = Outcome(job.source, job.output, "up to date", layout=job.request.layout, may_refuse=job.may_refuse, source_bytes=size, source_sha256=sha)
    _already(outcome, job, found)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _refusal(job: Job, start: float) -> Outcome | None:
    """The job's refusal when its source's pickle says it all (a pycls file, zip or legacy: its cfg,
    meta and tensors' shapes, read inertly, without torch): the model cannot go to this target.
    None otherwise, and for anything else wrong (its worker says what)."""
    from ..io.formats import sniff
    from ..io.meta import cfg_of, read_meta
    from ..io.zipindex import TensorRef, legacy_tree, read_index
    from ..onnx import as_pycls
    from ..options import ONNX
    from ..tables.registry import registry_for
    from ..tables.resolve import model_of, resolve

    try:
        source = Path(job.source)
        tree = read_index(source).tree if sniff(source) == "zip" else legacy_tree(source) if sniff(source) == "legacy" else None
        sd = tree.get("model_state") if isinstance(tree, dict) else None
        if not isinstance(sd, dict) or not sd or not all(isinstance(k, str) and not k.startswith("module.") and isinstance(v, TensorRef) for k, v in sd.items()):
            return None
        shapes, registry = {k: (v.shape, v.dtype) for k, v in sd.items()}, registry_for(job.request.tables)
        request = as_pycls(job.request) if job.request.layout == ONNX else job.request  # a graph: pycls's own keys
        found = model_of(request, cfg_of(tree.get("cfg")), shapes, read_meta(tree.get("meta"))[0], registry)
        resolve(request, found.variant, registry)
    except Refused as e:
        outcome = Outcome(job.source, job.output, "refused", layout=job.request.layout, may_refuse=job.may_refuse, source_bytes=Path(job.source).stat().st_size)
        _refuse(outcome, job, e)
        outcome.seconds = time.perf_counter() - start
        return outcome
    except (CkptError, OSError):
        return None
    return None


def _refuse(outcome: Outcome, job: Job, e: Refused) -> None:
    """A refused pair; in a batch over several targets, a layout its family lacks is skipped."""
    skipped = isinstance(e, NoLayout) and job.may_refuse
    outcome.status, outcome.output, outcome.error = "skipped" if skipped else "refused", None, f"{job.source}: {e}"


def run_job(job: Job) -> Outcome:
    """Convert one job in this process; never raises for a bad input (it becomes a failed outcome)."""
    from ..signals import job as busy

    start = time.perf_counter()
    source = Path(job.source)
    outcome = Outcome(str(source), job.output, "failed", layout=job.request.layout, may_refuse=job.may_refuse)
    try:
        outcome.source_bytes = source.stat().st_size if source.is_file() else 0
        with busy():
            _run(job, outcome)
    except Refused as e:
        _refuse(outcome, job, e)
    except CkptError as e:
        outcome.status, outcome.error = "failed", str(e) if e.path else f"{source}: {e}"
    except Exception as e:  # noqa: BLE001 - one file's bug must not stop the zoo; it is reported
        outcome.status, outcome.error = "failed", f"{source}: unexpected error ({type(e).__name__}: {e})"
    outcome.seconds = time.perf_counter() - start
    return outcome


def _already(outcome: Outcome, job: Job, found: tuple[Path, Written]) -> None:
    path, written = found
    _config_beside(job, path, written.meta)
    outcome.status, outcome.output, outcome.arch = "up to date", str(path), written.meta.get("arch")
    outcome.weights, outcome.params = written.meta.get("weights"), written.params
    variant = _recorded(job, written.meta)
    if variant is not None:
        outcome.model, outcome.family, outcome.numbers = variant.title, variant.family, None if variant.zoo else variant.numbers()
    outcome.bytes = _weights_file(job, path).stat().st_size
    outcome.output_sha256 = written.sha256
    outcome.verification = "as converted"


def _check_other_target(output: Path, layout: str) -> None:
    """An existing output that holds another target's weights (its meta says which) is never
    replaced, --force or not: a batch's names carry no layout with a single --to."""
    from ..errors import UsageError
    from ..io.checkpoint import load

    if not output.is_file():
        return
    try:
        held = load(output).meta.get("layout")
    except CkptError:
        return
    if held and held != layout:
        raise UsageError(f"the output holds {held} weights (its meta), not {layout}; it is never replaced by another target's",
                         fix=f"write the {layout} outputs to another --out-dir, or pass every target at once (--to {held},{layout}: a folder each)",
                         path=str(output))


def _make_parents(directory: Path) -> None:
    """The output's folder under --out-dir (the source tree mirrored), made when its job runs."""
    from ..errors import UsageError

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {str(directory)!r} ({e.strerror})", path=str(directory)) from None


def _run(job: Job, outcome: Outcome) -> None:
    from ..convert import convert
    from ..io.files import TMP_PREFIX, check_regular
    from ..io.hashing import hash_file, sha256_file

    source = Path(job.source)
    check_regular(source)
    hashed = job.source_hash or hash_file(source)
    sha = outcome.source_sha256 = hashed.sha256
    if not job.request.force and not job.source_hash and (found := up_to_date(job, sha)) is not None:
        return _already(outcome, job, found)  # (a job judged before the pool carries its hash: not up to date)
    target = Path(job.output)
    _check_other_target(target, job.request.layout)
    _make_parents(target.parent)
    if job.publish:  # write under a temp name, then rename with the final file's hash
        target = target.parent / f"{TMP_PREFIX}{os.getpid()}-publish-{target.name}"
    result = convert(replace(job.request, output=target), source_hash=hashed)
    final, out_sha = target, sha256_file(_weights_file(job, target))
    if job.publish:
        final = Path(job.output).with_name(f"{Path(job.output).stem}-{out_sha[:8]}{Path(job.output).suffix}")
        os.replace(target, final)
    outcome.status, outcome.output, outcome.output_sha256 = "converted", str(final), out_sha
    variant = result.conversion.variant
    arch = outcome.arch = variant.name
    outcome.model, outcome.numbers, outcome.family = variant.title, None if variant.zoo else variant.numbers(), variant.family
    outcome.weights = result.conversion.weight_set
    outcome.params, outcome.bytes = result.conversion.params, result.bytes
    report = result.report
    outcome.verification = "skipped" if report is None else f"{job.request.verify} ok" if report.ok else "failed"
    if job.hint and job.hint != arch:
        outcome.note = f"file name suggests {job.hint} but the tensors are {arch} (converted as {arch})"
    if job.surprise:
        outcome.note = "; ".join(filter(None, [outcome.note, job.surprise]))
