"""One job of a batch, in a worker process: up to date already, or converted (and published under
its hash). A bad input becomes a failed outcome with its one-line reason, never the end of the batch."""

from __future__ import annotations

import glob
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import CkptError, Refused
from .plan import Job, Outcome


def _published_candidates(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f"{glob.escape(output.stem)}-" + "[0-9a-f]" * 8 + output.suffix))


def _expected_options(job: Job, meta: dict[str, Any]) -> dict[str, Any] | None:
    """What an output converted now would record as its options (None: it cannot be known)."""
    from ..tables.resolve import output_options, resolve
    from ..tables import detect
    from ..tables.registry import registry_for

    request, registry = job.request, registry_for(job.request.tables)
    try:  # --arch, else the model the output's meta records (a zoo name, or a custom model's numbers)
        variant = registry.variant(request.arch) if request.arch else detect.recorded_model(meta, registry)
        return None if variant is None else output_options(request, resolve(request, variant, registry))
    except CkptError:
        return None


def _intact(ckpt) -> bool:
    """Every tensor record of an existing zip output still matches its CRC-32."""
    try:
        for name, sd in ckpt.weight_sets.items():
            ckpt.verify_tensors(name, list(sd))
    except CkptError:
        return False
    return True


def _as_written(ckpt) -> bool:
    """The file holds the tensors its meta says were written (not others under a copied meta)."""
    sets = list(ckpt.weight_sets)
    return len(sets) == 1 and ckpt.meta.get("tensors_crc") == ckpt.tensors_digest(sets[0])


def up_to_date(job: Job, sha: str) -> tuple[Path, dict[str, Any]] | None:
    """An existing, intact output (and its meta) converted from this very source with these options."""
    from ..io.checkpoint import load

    output = Path(job.output)
    for path in _published_candidates(output) if job.publish else [output]:
        if not path.exists():
            continue
        try:
            ckpt = load(path)
        except CkptError:
            continue
        meta = ckpt.meta
        if meta.get("source_sha256") == sha and meta.get("options") == _expected_options(job, meta) and _intact(ckpt) and _as_written(ckpt):
            return path, meta
    return None


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
        outcome.status, outcome.output, outcome.error = "refused", None, f"{source}: {e}"
    except CkptError as e:
        outcome.status, outcome.error = "failed", str(e) if e.path else f"{source}: {e}"
    except Exception as e:  # noqa: BLE001 - one file's bug must not stop the zoo; it is reported
        outcome.status, outcome.error = "failed", f"{source}: unexpected error ({type(e).__name__}: {e})"
    outcome.seconds = time.perf_counter() - start
    return outcome


def _already(outcome: Outcome, found: tuple[Path, dict[str, Any]]) -> None:
    from ..io.hashing import sha256_file

    current, meta = found
    outcome.status, outcome.output, outcome.arch = "up to date", str(current), meta.get("arch")
    outcome.bytes = current.stat().st_size
    outcome.output_sha256 = sha256_file(current)
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
                         path=str(output))  # fmt: skip


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
    from ..io.hashing import sha256_file

    source = Path(job.source)
    check_regular(source)
    sha = outcome.source_sha256 = sha256_file(source)
    if not job.request.force and (found := up_to_date(job, sha)) is not None:
        return _already(outcome, found)
    target = Path(job.output)
    _check_other_target(target, job.request.layout)
    _make_parents(target.parent)
    if job.publish:  # write under a temp name, then rename with the final file's hash
        target = target.parent / f"{TMP_PREFIX}{os.getpid()}-publish-{target.name}"
    result = convert(replace(job.request, output=target), source_sha256=sha)
    final, out_sha = target, sha256_file(target)
    if job.publish:
        final = Path(job.output).with_name(f"{Path(job.output).stem}-{out_sha[:8]}{Path(job.output).suffix}")
        os.replace(target, final)
    outcome.status, outcome.output, outcome.output_sha256 = "converted", str(final), out_sha
    variant = result.conversion.variant
    arch = outcome.arch = variant.name
    outcome.model, outcome.numbers = variant.title, None if variant.zoo else variant.numbers()
    outcome.weights = result.conversion.weight_set
    outcome.params, outcome.bytes = result.conversion.params, result.bytes
    report = result.report
    outcome.verification = "skipped" if report is None else f"{job.request.verify} ok" if report.ok else "failed"
    if job.hint and job.hint != arch:
        outcome.note = f"file name suggests {job.hint} but the tensors are {arch} (converted as {arch})"
