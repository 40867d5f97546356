"""Verifying many converted files: files, directories searched recursively, and batch reports
(which name each file's source); one summary, and the ``--report`` JSON. ``planned`` is
torch-free: every usage error is found before a check imports torch."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import CkptError, UsageError
from ..fields import Fields
from ..io.files import atomic_write, check_input, check_regular, check_report_output
from ..io.folder import WEIGHTS
from ..io.store import is_url
from ..options import Expectations

OUTPUT_SUFFIXES = (".pth", ".pt", ".safetensors")
Target = tuple[Path, Path | None]  # a file to verify and the source it was converted from, if known


def _from_report(path: Path) -> list[Target]:
    """The converted files of a ``ckptconv batch --report`` file, with their sources (fields checked)."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise UsageError(f"not a ckptconv batch report ({type(e).__name__})", fix="pass the file written by ckptconv batch --report", path=str(path)) from None
    files = Fields(data, "report", UsageError, str(path)).items("files")
    out = []
    for i, entry in enumerate(files):
        f = Fields(entry, f"files[{i}]", UsageError, str(path))
        if f.text("status", "") in ("converted", "up to date") and f.data.get("output"):
            source, output = f.text("source", ""), Path(f.text("output"))
            weights = output / WEIGHTS  # a hub folder (batch --hub): its weights file
            out.append((weights if output.is_dir() and weights.is_file() else output, Path(source) if source else None))
    if not out:
        raise UsageError("the batch report lists no converted files", path=str(path))
    return out


def collect(targets: list[Path]) -> list[Target]:
    """(file, source or None) for every file, directory (searched recursively) or batch report given."""
    found: list[Target] = []
    for target in targets:
        if is_url(target):  # an object: one file (a prefix or a report on a store is not read yet)
            check_input(target)
            found.append((target, None))
        elif target.is_dir():
            files = sorted(p for p in target.rglob("*") if p.suffix in OUTPUT_SUFFIXES and p.is_file() and not p.name.startswith("."))
            if not files:
                raise UsageError(f"no .pth or .safetensors files under {str(target)!r}", fix="pass files or a directory of converted checkpoints")
            found += [(p, None) for p in files]
        elif target.suffix == ".json":
            found += _from_report(target)
        else:
            check_regular(target)  # a missing or odd file named on the command line is a usage error
            found.append((target, None))
    return found


@dataclass
class Summary:
    """The results of verifying many files; ``to_dict()`` is the ``--json`` and ``--report`` form."""

    results: list[dict]

    @property
    def ok(self) -> bool:
        return all(r["ok"] for r in self.results)

    @property
    def not_checked(self) -> int:
        """Files that failed nothing, but where a check asked for could not run."""
        return sum(1 for r in self.results if r["ok"] and r.get("not_checked"))

    def to_dict(self) -> dict:
        passed = sum(r["ok"] for r in self.results)
        return {"ok": self.ok, "files": self.results, "passed": passed, "failed": len(self.results) - passed, "not_checked": self.not_checked}


def planned(targets: list[Path], opts: Expectations, report_path: Path | None = None) -> list[Target]:
    """The files to verify, checked with the options and the report's path: every usage error,
    before anything is verified. torch-free."""
    from ..preflight import check_expectations

    check_expectations(opts)
    if opts.in_library and opts.images is not None:
        from ..inlibrary.images import image_set

        image_set(opts.images, opts.labels)  # a folder without images, a class not in --labels: before anything runs
    found = collect(targets)
    if opts.in_library and any(is_url(p) for p, _ in found):
        raise UsageError("--in-library loads a file by its local path in its library", fix="copy the object locally and verify that file")
    if opts.source is not None and len(found) != 1:
        raise UsageError("--source goes with exactly one file to verify", fix="verify a batch through its --report JSON, which names each source")
    if report_path is not None:
        inputs = [*targets, *(p for p, _ in found), *(s for _, s in found if s), *([opts.source] if opts.source else [])]
        check_report_output(report_path, inputs)
    return found


def verify_all(found: list[Target], opts: Expectations, *, report_path: Path | None = None, on_report=None) -> Summary:
    """Verify every ``planned`` file (a bad one is a failed result, never the end of the run) and
    write the report, which may be neither a verified file nor a source."""
    from .file import verify_checked

    results = []
    for path, src in found:
        try:
            report = verify_checked(path, replace_source(opts, src))
            results.append(report.to_dict())
            on_report and on_report(report)
        except UsageError:
            raise
        except CkptError as e:
            results.append({"path": str(path), "ok": False, "first_failure": str(e), "checks": [], "levels": []})
    summary = Summary(results)
    if report_path is not None:
        write_summary(report_path, summary, [])
    return summary


def write_summary(report_path: Path, summary: Summary, inputs: list[Path]) -> None:
    """The JSON report: never over one of ``inputs``."""
    import json

    if inputs:
        check_report_output(report_path, inputs)
    atomic_write(report_path, lambda f: f.write(json.dumps(summary.to_dict(), indent=2, default=str).encode()))


def replace_source(opts: Expectations, source: Path | None) -> Expectations:
    return opts if opts.source is not None or source is None else replace(opts, source=source)
