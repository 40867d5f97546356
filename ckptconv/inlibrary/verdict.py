"""An in-library run in words and numbers: the check that goes into the report, and its record
(``Report.in_library``): the library and version, how the file was loaded, the images, per-image
agreement, the largest differences, top-1/top-5 of each side, accuracy where labelled."""

from __future__ import annotations

from typing import Any

from ..verification.halves import INPUT_TOLERANCE, LOGITS_TOLERANCE, SLACK
from ..verification.report import Report
from .images import ImageSet
from .proof import WORST, Runner, Seen, Tally


def _share(count: int, total: int) -> str:
    return f"{count}/{total}"


def _accuracy(seen: list[Seen]) -> dict[str, Any] | None:
    """Top-1/top-5 accuracy of pycls and of the library, where every image has a label."""
    labelled = [s.correct for s in seen if s.correct is not None]
    if not labelled or len(labelled) != len(seen):
        return None
    n = len(labelled)
    return {side: {"top1": sum(c[i][0] for c in labelled) / n, "top5": sum(c[i][1] for c in labelled) / n} for i, side in enumerate(("pycls", "library"))}


def record(runner: Runner, tally: Tally, images: ImageSet, decoded_by: str, unmeasured: bool, recorded: dict | None = None) -> dict[str, Any]:
    seen = tally.images
    with_logits = [s for s in seen if s.top1 is not None]
    worst = sorted(seen, key=lambda s: -(s.logits_rel if s.logits_rel is not None else s.network_rel))[:WORST]
    return {
        "library": runner.library, "version": runner.version, "version_measured": not unmeasured, "loaded": runner.how, "outputs": list(tally.points),
        "images": len(seen), "from": images.where, "pycls_decoder": decoded_by,
        "tolerance": {"input": INPUT_TOLERANCE, "outputs": LOGITS_TOLERANCE},
        "passed": sum(s.ok for s in seen),
        "top1_agree": sum(bool(s.top1) for s in with_logits) if with_logits else None,
        "top5_agree": sum(bool(s.top5) for s in with_logits) if with_logits else None,
        "accuracy": _accuracy(seen),
        "recorded": recorded,  # the top-1 error pycls recorded for the weight set converted (its own validation set)
        "largest": [{"image": s.name, "input": s.input_off, "network": s.network_rel, "logits": s.logits_rel} for s in worst],
        "failures": [{"image": s.name, "step": s.step} for s in tally.failures[:20]],
        "per_image": [{"image": s.name, "ok": s.ok, "top1": s.top1, "top5": s.top5, "input": s.input_off, "network": s.network_rel, "logits": s.logits_rel}
                      for s in seen],
    }


def _passed(rec: dict[str, Any], tally: Tally) -> str:
    words = (f"{rec['library']} {rec['version']} ({rec['loaded']}): {rec['images']} images ({rec['from']}) give pycls's input within "
             f"{INPUT_TOLERANCE:g} normalized units, and on it {', '.join(tally.points)} within {LOGITS_TOLERANCE:g} of pycls's model")
    if tally.widened:
        words += f" (or {SLACK:g}x pycls's own float32 error, {tally.widened:.2g}, where larger)"
    if rec["top1_agree"] is not None:
        words += f"; top-1 agrees on {_share(rec['top1_agree'], rec['images'])}, top-5 on {_share(rec['top5_agree'], rec['images'])}"
    return words


def judge(report: Report, runner: Runner, tally: Tally, images: ImageSet, decoded_by: str, unmeasured: bool, recorded: dict | None = None) -> None:
    rec = record(runner, tally, images, decoded_by, unmeasured, recorded)
    report.in_library = rec
    failures = tally.failures
    if not failures:
        report.add("in-library", True, _passed(rec, tally))
        if unmeasured:
            report.notes.append(f"{runner.library} {runner.version} is not among the versions the ground truth measured (docs/versions.md); it computed pycls's outputs here")
        return
    first = failures[0]
    detail = (f"{rec['library']} {rec['version']} ({rec['loaded']}): {len(failures)} of {rec['images']} images differ from pycls; "
              f"first {first.name}: {first.step}")
    if unmeasured:
        detail += f" ({runner.library} {runner.version} is not among the versions the ground truth measured: docs/versions.md)"
    report.add("in-library", False, detail)


def recorded_error(meta: dict) -> dict | None:
    """The top-1 error pycls recorded in the source for the weight set converted (test_err: model, ema_err: ema), from the meta."""
    name = {"model": "test_err", "ema": "ema_err"}.get(meta.get("weights"))
    value = (meta.get("source_errors") or {}).get(name) if name else None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100
    return {"weights": meta["weights"], "field": name, "top1_err": float(value)} if ok else None
