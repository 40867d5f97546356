"""Verifying a converted file, alone or against its source, with the checks conversion runs.

Per file: **identity** (the tensors, the file's meta and the options name one variant and layout),
the **weight sets** (the set the layout's library loads is the one checked; other sets in the file
must agree with it), then ``checks.run``: structure, and with ``--source`` **provenance** and
bit identity, then the forward passes with the settings under test. Without the source, the pycls
side runs the file's own weights mapped back through the table: that cannot see a swapped block,
but it proves the settings under test reproduce pycls's arithmetic.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import torch

from .verification import checks
from .tables import detect, engine, pipeline as preprocess
from .io import dtypes
from .io.checkpoint import Checkpoint, load
from .tables.engine import PYCLS, Plan
from .errors import UsageError
from .io.files import check_regular
from .io.hashing import start_sha256
from .tables.registry import Registry, default_registry
from .verification.report import Check, Report


@dataclass(frozen=True)
class Options:
    """What ``verify`` is asked: expectations and the settings a user's config uses."""

    source: Path | None = None
    arch: str | None = None
    layout: str | None = None
    weights: str | None = None  # source weight set; default: the meta's
    padding: str | None = None
    eps: float | None = None
    input_size: tuple[int, int] = checks.DEFAULT_INPUT
    trust_pickle: bool = False
    channel_order: str | None = None  # what the file's weights take; default: its meta
    flip: bool | None = None  # the user's pipeline: reverses channels (bgr_to_rgb / to_rgb); default: as needed
    mean: tuple[float, float, float] | None = None  # the user's pipeline's mean and std, in its units
    std: tuple[float, float, float] | None = None

    def check(self, registry: Registry) -> None:
        if self.arch:
            registry.variant(self.arch)
        if self.layout:
            registry.named(self.layout)
        if self.padding is not None and self.padding not in ("symmetric", "same"):
            raise UsageError(f"unknown --padding {self.padding!r}", fix="use symmetric or same")
        if self.eps is not None and not 0 < self.eps < 1:
            raise UsageError(f"--eps {self.eps:g} is not a BatchNorm eps", fix="use a small positive number like 1e-5")
        from .convert import check_input_size

        check_input_size(self.input_size)
        for name, values in (("--mean", self.mean), ("--std", self.std)):
            if values is not None and (len(values) != 3 or not all(0 < abs(v) < 1e4 for v in values)):
                raise UsageError(f"{name} needs three numbers in the pipeline's units", fix="e.g. --mean 123.675 116.28 103.53")


def _shapes(sd: dict[str, torch.Tensor]) -> detect.Shapes:
    return {k: (tuple(v.shape), dtypes.name(v.dtype)) for k, v in sd.items()}


def identify(sd: dict, registry: Registry, layout: str | None, arch: str | None, prefer: str | None = None) -> detect.Match:
    """Best (layout, variant, prefix) match for a state dict, in the named layout or any.

    The tensors decide: an exact fit wins even when ``arch`` names another variant (the caller
    reports the disagreement); among equal fits (mmdet with prefix 'backbone' is also a layout
    whose own keys start with 'backbone.'), the ``prefer``-red layout; without an exact fit, the
    closest candidate of ``arch``.
    """
    layouts = registry.named(layout) if layout else registry.tables()
    ranked = list(detect.exact_matches(_shapes(sd), registry, layouts)) or detect.rank(_shapes(sd), registry, layouts)
    ranked.sort(key=lambda m: (m.misfits, m.layout_name != prefer))
    if ranked[0].exact or not arch:
        return ranked[0]
    return next(m for m in ranked if m.variant.name == arch)


def _check_meta(report: Report, ckpt: Checkpoint, match: detect.Match, opts: Options) -> None:
    """The tensors, the meta and the options must tell the same arch and layout."""
    meta, arch, layout = ckpt.meta, opts.arch, opts.layout
    problems = list(ckpt.meta_problems)
    if arch and arch != match.variant.name and match.exact:
        problems.append(f"--arch {arch} was asked but the tensors are {match.variant.name}")
    if meta.get("arch") and meta["arch"] != match.variant.name:
        problems.append(f"meta records arch {meta['arch']} but the tensors are {match.variant.name}")
    if meta.get("layout") and meta["layout"] != match.layout_name:
        problems.append(f"meta records layout {meta['layout']} but the keys are {match.layout_name}")
    if "prefix" in meta and meta["prefix"] != match.prefix:
        problems.append(f"meta records prefix {meta['prefix']!r} but the keys have {match.prefix!r}")
    if layout and meta.get("layout") and meta["layout"] != layout:
        problems.append(f"meta records layout {meta['layout']} but --layout {layout} was asked")
    if arch and meta.get("arch") and meta["arch"] != arch:
        problems.append(f"meta records arch {meta['arch']} but --arch {arch} was asked")
    if meta or problems:
        report.add("identity", not problems, problems[0] if problems else f"meta agrees with the tensors ({match.variant.name}, {match.layout_name})")


def _by_pycls_key(sd: dict, registry: Registry, match: detect.Match) -> dict[str, tuple[str, torch.Tensor]]:
    """pycls key -> (the key in this file, its tensor)."""
    plan = engine.plan(match.variant, match.layout, registry.hub(match.variant.family), target_prefix=match.prefix)
    return {e.pycls: (e.target, sd[e.target]) for e in plan.mapped if e.target in sd}


def _check_sets(report: Report, ckpt: Checkpoint, loaded: str, match: detect.Match, registry: Registry) -> None:
    """Every other weight set of the layout must hold what the loaded one holds (a pycls file's
    model and EMA sets are meant to differ: pycls itself picks one)."""
    if match.layout_name == PYCLS or len(ckpt.weight_sets) < 2:
        return
    want = _by_pycls_key(ckpt.weight_sets[loaded], registry, match)
    for name, sd in ckpt.weight_sets.items():
        if name == loaded:
            continue
        other = identify(sd, registry, None, None)
        got = _by_pycls_key(sd, registry, other) if other.exact and other.variant is match.variant else {}
        differ = sorted(key for p, (key, t) in want.items() if p not in got or not checks.bit_identical(got[p][1], t))
        if differ:
            more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
            report.add("weight sets", False, f"weight sets {loaded} and {name} disagree ({engine.group_keys(differ[:4])}{more}): "
                       f"{match.layout.library or match.layout_name} loads {loaded}; keep one set, or make them equal")  # fmt: skip
            return
    report.add("weight sets", True, f"{', '.join(ckpt.weight_sets)} hold the same weights; {match.layout_name} loads {loaded}")


def _partial_ok(sd: dict, match: detect.Match, registry: Registry) -> frozenset[str]:
    """Keys a file may lack: exactly what some layout lacks, as --allow-partial writes it back."""
    missing = set(detect.expected_keys(match.variant, match.layout, match.prefix)) - set(sd)
    for lay in registry.families[match.variant.family].values() if missing else ():
        if missing == {e.target for e in engine.plan(match.variant, match.layout, lay, target_prefix=match.prefix).absent}:
            return frozenset(missing)
    return frozenset()


def _settings(match: detect.Match, ckpt: Checkpoint, opts: Options) -> tuple[str, float]:
    """The padding and BN eps under test: the options, else the meta's (when well-formed), else the table's."""
    recorded = ckpt.meta.get("settings") or {}
    padding = recorded.get("padding") if recorded.get("padding") in ("symmetric", "same") else match.layout.settings["padding"]
    eps = recorded.get("eps")
    eps = float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 < eps < 1 else match.layout.settings["eps"]
    return opts.padding or padding, float(opts.eps) if opts.eps is not None else eps


def _colours(report, ckpt: Checkpoint, match: detect.Match, opts: Options, registry: Registry, source=None) -> checks.Colours:
    """The order the file takes (the options, its meta, or assumed: said in a note), and the
    pipeline of the side the checks run (the file's library; for a pycls file, the source's) as
    the user configures it (the options) or as the weights need it. ``source``: (order, layout)."""
    order, said = (opts.channel_order, "--channel-order") if opts.channel_order else preprocess.source_order(ckpt.meta, match.layout_name, match.layout.pipeline)
    if said.startswith("assumed"):
        report.notes.append(f"channel order {order.upper()} {said}; pass --channel-order to check another")
    if source is None:
        have, side, side_order = order, match.layout, order
    elif match.layout_name == PYCLS:  # written back to pycls: the checks run the source's library
        have, side, side_order = source[0], source[1], source[0]
    else:
        have, side, side_order = source[0], match.layout, order
    stats = registry.hub(match.variant.family).pipeline
    need = preprocess.needed(side.pipeline, side_order, stats)
    flip = need.flip if opts.flip is None else opts.flip
    configured = preprocess.as_configured(side.pipeline, flip, opts.mean or need.mean, opts.std or need.std)
    return checks.Colours(have, order, configured, stats)


def _against_itself(report, sd, match, ckpt, opts, registry, dtype) -> None:
    """Without the source: the file's weights mapped back to pycls are the pycls side."""
    plan = engine.plan(match.variant, match.layout, registry.hub(match.variant.family), target_prefix=match.prefix)
    source = {e.source: sd[e.target] for e in plan.mapped if e.target in sd}
    colours = _colours(report, ckpt, match, opts, registry)
    checks.run(report, plan, source, sd, dtype, "numeric", colours=colours, partial_ok=_partial_ok(sd, match, registry), with_tensors=False)


def _against_source(report, sd, match, ckpt: Checkpoint, opts: Options, sha: Future | None, registry, dtype) -> None:
    src = load(opts.source, trust_pickle=opts.trust_pickle)
    recorded = ckpt.meta.get("source_sha256")
    if sha is not None and recorded:
        actual = sha.result()
        report.add("provenance", actual == recorded, f"source sha256 matches the meta ({recorded[:12]})" if actual == recorded else
                   f"source sha256 {actual[:12]} differs from the {recorded[:12]} recorded in the meta: not the file this was converted from")  # fmt: skip
    chosen = opts.weights or (ckpt.meta["weights"] if ckpt.meta.get("weights") in ("model", "ema") else "best")
    if src.kind == "pycls" and chosen in ("model", "ema") and chosen not in src.weight_sets:
        report.add("provenance", False, f"the file was converted from the {chosen} weights, but {opts.source} has no {chosen}_state")
        return
    _, source_sd = src.select(chosen if src.kind == "pycls" else "best")
    src_match = identify(source_sd, registry, None, match.variant.name)
    if not src_match.exact or src_match.variant is not match.variant:
        report.add("source", False, f"the source is not a {match.variant.name} checkpoint in any known layout (closest: {src_match.layout_name} {src_match.variant.name})")
        return
    plan = engine.plan(match.variant, match.layout, src_match.layout, target_prefix=match.prefix, source_prefix=src_match.prefix)
    have = preprocess.source_order(src.meta, src_match.layout_name, src_match.layout.pipeline)[0]
    colours = _colours(report, ckpt, match, opts, registry, (have, src_match.layout))
    checks.run(report, plan, source_sd, sd, dtype, "numeric", colours=colours, partial_ok=frozenset(e.target for e in plan.absent))


def verify_file(path: str | Path, opts: Options | None = None, registry: Registry | None = None) -> Report:
    """Verify a converted file. A failed check is in the report; ``CkptError`` is raised only when
    a file cannot be read or an option is unusable."""
    start = time.perf_counter()
    opts, registry = opts or Options(), registry or default_registry()
    opts.check(registry)
    sha = start_sha256(opts.source) if opts.source is not None and Path(opts.source).is_file() else None  # overlaps the loads
    ckpt = load(path, trust_pickle=opts.trust_pickle)
    first, first_sd = ckpt.select("best")
    match = identify(first_sd, registry, opts.layout, opts.arch, ckpt.meta.get("layout"))
    loaded, sd = ckpt.loaded_by(match.layout.loader)
    if loaded != first:
        match = identify(sd, registry, opts.layout, opts.arch, ckpt.meta.get("layout"))
    report = Report(str(path), match.variant.name, match.layout_name, *_settings(match, ckpt, opts), tuple(opts.input_size))
    _check_meta(report, ckpt, match, opts)
    _check_sets(report, ckpt, loaded, match, registry)
    floats = dtypes.floats_of(sd)
    dtype = floats.pop() if len(floats) == 1 else "float32"
    if opts.source is None:
        _against_itself(report, sd, match, ckpt, opts, registry, dtype)
    else:
        _against_source(report, sd, match, ckpt, opts, sha, registry, dtype)
    report.seconds = time.perf_counter() - start
    return report




OUTPUT_SUFFIXES = (".pth", ".pt", ".safetensors")
Target = tuple[Path, Path | None]  # a file to verify and the source it was converted from, if known


def _from_report(path: Path) -> list[Target]:
    """The converted files of a ``ckptconv batch --report`` file, with their sources (fields checked)."""
    import json

    from .fields import Fields

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise UsageError(f"not a ckptconv batch report ({type(e).__name__})", fix="pass the file written by ckptconv batch --report", path=str(path)) from None
    files = Fields(data, "report", UsageError, str(path)).items("files")
    out = []
    for i, entry in enumerate(files):
        f = Fields(entry, f"files[{i}]", UsageError, str(path))
        if f.text("status", "") in ("converted", "up to date") and f.data.get("output"):
            source = f.text("source", "")
            out.append((Path(f.text("output")), Path(source) if source else None))
    if not out:
        raise UsageError("the batch report lists no converted files", path=str(path))
    return out


def collect(targets: list[Path]) -> list[Target]:
    """(file, source or None) for every file, directory (searched recursively) or batch report given."""
    found: list[Target] = []
    for target in targets:
        if target.is_dir():
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

    def to_dict(self) -> dict:
        passed = sum(r["ok"] for r in self.results)
        return {"ok": self.ok, "files": self.results, "passed": passed, "failed": len(self.results) - passed}


def verify_all(targets: list[Path], opts: Options, registry: Registry, *, report_path: Path | None = None, on_report=None) -> Summary:
    """Verify every file (a bad one is a failed result, never the end of the run) and write the
    report, which may be neither a verified file nor a source."""
    from .errors import CkptError
    from .io.files import check_outputs

    found = collect(targets)
    if opts.source is not None and len(found) != 1:
        raise UsageError("--source goes with exactly one file to verify", fix="verify a batch through its --report JSON, which names each source")
    if report_path is not None:
        inputs = [*targets, *(p for p, _ in found), *(s for _, s in found if s), *([opts.source] if opts.source else [])]
        check_outputs([report_path], inputs, force=True)
    results = []
    for path, src in found:
        try:
            report = verify_file(path, replace_source(opts, src), registry)
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


def write_summary(report_path: Path, summary: "Summary", inputs: list[Path]) -> None:
    """The JSON report: never over one of ``inputs``."""
    import json

    from .io.files import atomic_write, check_outputs

    if inputs:
        check_outputs([report_path], inputs, force=True)
    atomic_write(report_path, lambda f: f.write(json.dumps(summary.to_dict(), indent=2, default=str).encode()))


def replace_source(opts: Options, source: Path | None) -> Options:
    from dataclasses import replace

    return opts if opts.source is not None or source is None else replace(opts, source=source)


# --- verify --config --------------------------------------------------------------------------------


def _config_target(config: Path, cfg: dict, path: Path | None) -> tuple[Path, str | None, str | None]:
    """The weights to check: FILE, else the checkpoint the config loads; with the layout and channel
    order of a ``pycls-*://`` name (a pycls file the config converts on load)."""
    from .openmmlab import config as mmconfig
    from .openmmlab.scheme import parse_scheme

    checkpoint = str(path) if path is not None else mmconfig.checkpoint_of(cfg)[0]
    if checkpoint is None:
        raise UsageError("the config loads no checkpoint (no init_cfg checkpoint in its backbone, no load_from)", fix="pass the weights: ckptconv verify --config CFG FILE", path=str(config))
    file, layout, order = parse_scheme(checkpoint)
    if "://" in file:
        raise UsageError(f"the config loads {checkpoint}, which ckptconv cannot read here", fix="download it and pass it: ckptconv verify --config CFG FILE", path=str(config))
    return Path(file), layout, order


def verify_config(config: Path, path: Path | None, opts: Options, registry: Registry | None = None) -> Report:
    """Check ``config``'s fields against the weights it loads, then verify those weights with the
    settings the config builds (padding, eps, colour flip, mean, std). Failed fields lead the report."""
    from dataclasses import replace

    from .openmmlab import config as mmconfig
    from .convert import Request, prepare
    from .convert import verify as check_conversion

    registry = registry or default_registry()
    cfg = mmconfig.read_config(config)
    target, scheme_layout, order = _config_target(config, cfg, path)
    if scheme_layout is not None:  # a pycls file the config converts on load: as ckptconv.mmengine does
        conversion = prepare(Request(target, layout=scheme_layout, channel_order=order, trust_pickle=opts.trust_pickle), registry)
        meta, report = conversion.meta, check_conversion(conversion)
        report.path = str(target)
    else:
        meta = load(target, trust_pickle=opts.trust_pickle).meta
        report = None
    if not meta.get("arch") or meta.get("arch") not in registry.variants:
        raise UsageError(f"{target} records no model ckptconv knows (it was not written by ckptconv)", fix="convert it with ckptconv first, or check it without --config", path=str(target))
    variant = registry.variant(meta["arch"])
    table = registry.layout(meta.get("layout", "mmdet"), variant.family)
    found = mmconfig.check(cfg, variant, table, meta, registry.hub(variant.family).pipeline)
    if report is None:
        report = verify_file(target, replace(opts, padding=found.padding, eps=found.eps, flip=found.flip, mean=found.mean, std=found.std), registry)
    fields = [Check("config", False, f"{config}: {where} {need}") for where, need in found.problems]
    report.checks[:0] = fields or [Check("config", True, f"{config}: {len(found.passed)} fields fit these weights")]
    return report

