"""A batch's plan: one job per input and target, every output named and checked before anything is
written (inside --out-dir, never an input, never shared), and the report of what happened. torch-free."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.files import atomic_write, check_replaceable_report, check_writable_dir
from ..io.hashing import Hashed
from ..io.paths import Planned, check_plan, where
from ..options import HUB_LAYOUTS, ONNX, PYCLS, Request
from .inputs import Entry

FORMAT_EXT = {"pth": ".pth", "safetensors": ".safetensors"}
GRAPH_EXT = ".onnx"  # --to onnx writes graphs, whatever --format says
_HINT = re.compile(r"EN-(B\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Job:
    """One conversion of a batch, fully decided before anything is written: the request (its
    output the final name; with ``publish``, the name before the hash is added)."""

    request: Request
    publish: bool = False
    may_refuse: bool = False  # one cell of a run over several targets: a refusal is listed, not a failure
    source_hash: Hashed | None = None  # read when the batch judged the job before its workers: not up to date
    surprise: str | None = None  # an unexpected error while judging it there: its outcome's note says it

    @property
    def source(self) -> str:
        return str(self.request.source)

    @property
    def output(self) -> str:
        return str(self.request.output)

    @property
    def hint(self) -> str | None:
        """The arch a file name like ``EN-B3_dds_8gpu.pyth`` suggests: only a hint."""
        m = _HINT.search(self.request.source.name)
        return m.group(1).lower() if m else None


# converted | up to date | refused | failed, and skipped: a cell of a batch over several targets
# whose model's family has no such layout (mmdet-stages for a RegNet)
STATUSES = ("converted", "up to date", "refused", "skipped", "failed")


def fine(status: str, may_refuse: bool) -> bool:
    """A job's status that leaves the batch's exit code 0."""
    return status in ("converted", "up to date") or (status in ("refused", "skipped") and may_refuse)


@dataclass
class Outcome:
    """What happened to one job; the batch report holds one per input."""

    source: str
    output: str | None
    status: str  # one of STATUSES
    arch: str | None = None
    model: str | None = None  # what the model is: a zoo model's title, or a custom model's numbers
    weights: str | None = None  # the source's weight set converted (model or ema)
    numbers: dict[str, Any] | None = None  # a custom model's structure (its variant file's section), None for the zoo's
    family: str | None = None  # the model's family (effnet, regnet, resnet)
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
        return fine(self.status, self.may_refuse)


@dataclass
class Batch:
    jobs: list[Job]
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return len(self.outcomes) == len(self.jobs) and all(o.ok for o in self.outcomes)

    def report(self) -> dict[str, Any]:
        counts = {s: sum(o.status == s for o in self.outcomes) for s in STATUSES}
        return {
            "ok": self.ok,
            "files": [asdict(o) for o in self.outcomes],
            "summary": {**counts, "total": len(self.jobs), "seconds": round(self.seconds, 3)},
        }


def target_layouts(values: Iterable[str], registry) -> tuple[str, ...]:
    """``--to`` values: names, comma-separated lists, or ``all`` (every layout but pycls, and onnx
    when its extra is installed); each checked, none twice, in the order given. None given: mmdet."""
    from ..onnx import missing_packages
    from ..preflight import require_onnx

    names: list[str] = []
    every = [n for n in registry.layout_names if n != PYCLS] + ([] if missing_packages() else [ONNX])
    for value in values or ("mmdet",):
        for name in filter(None, (part.strip() for part in value.split(","))):
            for layout in every if name == "all" else [name]:
                if layout == ONNX:
                    require_onnx()
                else:
                    registry.layouts_named(layout)  # an unknown name is a usage error now, before anything runs
                if layout not in names:
                    names.append(layout)
    if not names:
        raise UsageError("--to names no layout", fix=f"use one or more of {', '.join(registry.layout_names)}, or all")
    return tuple(names)


def _inside(output: Path, out_dir: Path) -> bool:
    """``output`` stays under ``out_dir`` once symlinks are resolved."""
    root = where(out_dir)
    return root == where(output) or root in (str(p) for p in Path(where(output)).parents)


def _planned(jobs: list[Job]) -> list[Planned]:
    """Every path the jobs create: each output (a folder with --hub) and its --configs file."""
    out = []
    for j in jobs:
        out.append(Planned(Path(j.output), f"the output of {j.source} ({j.output})", folder=j.request.folder))
        if j.request.config_out:
            out.append(Planned(j.request.config_out, f"the config of {j.source} ({j.request.config_out})"))
    return out


def _check_paths(jobs: list[Job], out_dir: Path, others: list[Path], extra: list[Planned]) -> None:
    """Every output inside --out-dir, no two the same (all named), and the whole plan (outputs,
    configs, the report and the metafile) checked as one: no path meets another or an input."""
    by_output: dict[str, list[str]] = {}
    for planned in _planned(jobs):
        if not _inside(planned.path, out_dir):
            raise UsageError(f"{planned.what} would be outside --out-dir (a symlink leads out)", fix="name another output")
        by_output.setdefault(where(planned.path), []).append(planned.what.split(" (")[0].removeprefix("the output of ").removeprefix("the config of "))
    clashes = {out: srcs for out, srcs in by_output.items() if len(srcs) > 1}
    if clashes:
        listed = "; ".join(f"{out} <- {' and '.join(srcs)}" for out, srcs in list(clashes.items())[:5])
        more = f" (+{len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise UsageError(f"{len(clashes)} output(s) would be written by more than one input: {listed}{more}",
                         fix="give them other output names in a manifest (output = \"...\")")
    inputs = [p for j in jobs for p in j.request.inputs()] + others  # sources, cfgs, --labels: never an output
    check_plan(_planned(jobs) + extra, inputs)


def _entry_request(base: Request, entry: Entry, output: Path, layout: str) -> Request:
    """The batch's request for one entry and target: a manifest's fields replace the command line's
    (never switching --trust-pickle on)."""
    fields = {k: v for k, v in entry.fields.items() if k not in ("layout", "trust_pickle")}
    if entry.fields.get("trust_pickle") and not base.trust_pickle:
        raise UsageError(
            f"the manifest asks to trust the pickle of {entry.source}",
            fix="a manifest cannot switch on --trust-pickle; pass it on the command line if you trust every file",
        )
    if base.cfg is None and "cfg" not in fields and entry.run_cfg is not None:
        fields |= {"cfg": entry.run_cfg, "cfg_is_run": True}  # the run's own config.yaml; --cfg on the command line wins
    graph = {} if layout == ONNX else {"onnx_input": None, "levels": False}  # the graph's options shape only the onnx cells
    graph |= {} if layout == "transformers" else {"labels": None}  # and --labels only the transformers cells
    return replace(base, source=entry.source, output=output, layout=layout, **fields, **graph)


def plan(entries: list[Entry], out_dir: Path, base: Request, *, layouts: tuple[str, ...], fmt: str = "pth",
         publish: bool = False, configs: bool = False, others: Iterable[Path] = (), extra: Iterable[Planned] = ()) -> list[Job]:
    """One job per entry and target layout (a manifest's ``layout`` names its entry's only one),
    each ``base`` with the entry's fields. With several layouts each gets a folder under --out-dir
    and a refused pair is listed, not failed. Fails before anything is written when an output is
    unsafe or shared. ``configs``: each output's config beside it, as <output without extension>.py.
    ``others``: more inputs (manifests); ``extra``: more paths the run creates (the report, the metafile)."""
    if fmt not in FORMAT_EXT:
        raise UsageError(f"unknown --format {fmt!r}", fix="use pth or safetensors")
    _check_hub(base, layouts, publish)
    if (base.onnx_input is not None or base.levels) and ONNX not in layouts:
        raise UsageError(f"--onnx-input and --levels shape an ONNX graph, and --to names {', '.join(layouts)}", fix="add --to onnx, or leave them out")
    if base.labels is not None and "transformers" not in layouts:
        raise UsageError(f"--labels names the classes in a transformers config.json, and --to names {', '.join(layouts)}", fix="add --to transformers, or leave --labels out")
    if configs and publish:
        raise UsageError("--configs writes each config with its output's path, which --publish knows only once it is written", fix="leave out --configs or --publish")
    matrix = len(layouts) > 1
    jobs = []
    for entry in entries:
        for layout in (entry.fields["layout"],) if "layout" in entry.fields else layouts:
            ext = GRAPH_EXT if layout == ONNX else "" if replace(base, layout=layout).folder else FORMAT_EXT[fmt]  # a model folder has no extension
            name = entry.name if entry.named else entry.name.with_name(entry.name.name + ext)
            cell = matrix and "layout" not in entry.fields
            output = out_dir / layout / name if cell else out_dir / name
            request = _entry_request(base, entry, output, layout)
            if configs:
                request = replace(request, config_out=config_path(output))
            jobs.append(Job(request, publish=publish, may_refuse=cell))
    _check_paths(jobs, out_dir, list(others), list(extra))
    return jobs


def config_path(output: Path) -> Path:
    """Where --configs writes an output's config: beside it, named as it is, ending in .py."""
    known = (*FORMAT_EXT.values(), GRAPH_EXT)
    return output.with_name(output.name[: -len(output.suffix)] + ".py") if output.suffix in known else output.with_name(output.name + ".py")


def _check_hub(base: Request, layouts: tuple[str, ...], publish: bool) -> None:
    """--hub makes one timm or transformers folder per model and target, named by the model, not by a
    hash; a transformers target is always a folder."""
    others = [layout for layout in layouts if layout not in HUB_LAYOUTS]
    if base.hub and others:
        raise UsageError(f"--hub writes timm and transformers model folders, and --to names {', '.join(others)}", fix="pass --to timm and/or transformers with --hub")
    folders = [layout for layout in layouts if replace(base, layout=layout).folder]
    if publish and folders:
        raise UsageError(f"--publish names files by their hash; a model folder ({', '.join(folders)}) is named by its model",
                         fix="leave --publish out, or convert the folder targets in another run")
    for layout in folders:
        replace(base, layout=layout).check()


def check_report(report_path: Path, out_dir: Path, check=check_replaceable_report) -> None:
    """The report (or metafile: ``check``) may replace only a file of its own kind (the plan has
    checked it against every input and output); inside an --out-dir the run will create, it is a
    new file there (the directory's parent must take it)."""
    if not out_dir.exists() and where(report_path.parent) == where(out_dir):
        check_writable_dir(out_dir.parent if str(out_dir.parent) else Path("."), "the parent of --out-dir")
        return
    check(report_path)


def write_report(report_path: Path, report: dict[str, Any]) -> None:
    atomic_write(report_path, lambda f: f.write(json.dumps(report, indent=2).encode()))
