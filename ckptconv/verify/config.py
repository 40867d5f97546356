"""``verify --config``: an MMDetection or mmpretrain config against the weights it loads (or FILE):
its fields first, then the weights verified with the settings the config builds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..convert import prepare
from ..convert import verify as check_conversion
from ..errors import UsageError
from ..io.checkpoint import load
from ..io.files import same_file
from ..model.families import FAMILIES
from ..openmmlab import config as mmconfig
from ..openmmlab.scheme import parse_scheme
from ..options import Expectations, Request
from ..tables import detect
from ..tables.registry import registry_for
from ..verification.report import Check, Report
from .file import verify_file


def _config_target(config: Path, cfg: dict, path: Path | None) -> tuple[Path, str | None, str | None]:
    """The weights to check: FILE, else the checkpoint the config loads; with the layout and channel
    order of a ``pycls-*://`` name (a pycls file the config converts on load)."""
    checkpoint = str(path) if path is not None else mmconfig.checkpoint_of(cfg)[0]
    if checkpoint is None:
        raise UsageError("the config loads no checkpoint (no init_cfg checkpoint in its backbone, no load_from)", fix="pass the weights: ckptconv verify --config CFG FILE", path=str(config))
    file, layout, order = parse_scheme(checkpoint)
    if "://" in file:
        raise UsageError(f"the config loads {checkpoint}, which ckptconv cannot read here", fix="download it and pass it: ckptconv verify --config CFG FILE", path=str(config))
    return Path(file), layout, order


def _loads_file(cfg: dict, path: Path | None) -> list[tuple[str, str]]:
    """With FILE given, the config must load that very file: one it names that does not exist, or
    another one, would train from other weights than the ones checked."""
    named, _, where = mmconfig.checkpoint_of(cfg)
    if path is None or named is None:
        return []
    field = where.removesuffix(".prefix") + (".checkpoint" if where.endswith(".prefix") else "")
    file = Path(parse_scheme(named)[0])
    if "://" in str(file) or not file.exists():
        return [(field, f"is {named!r}, which {'ckptconv cannot read here' if '://' in str(file) else 'does not exist'}: the weights checked are {path}, not what the config loads")]
    if not same_file(file, path):
        return [(field, f"is {named!r}, another file than {path}: the config loads other weights than the ones checked")]
    return []


def _as_configured(opts: Expectations, found: mmconfig.Found, variant) -> Expectations:
    """The expectations with the settings the config builds (its padding where the family has a
    choice of padding: the config's conv_cfg is checked as a field either way)."""
    padding = found.padding if FAMILIES[variant.family].paddable else None
    return replace(opts, padding=padding, eps=found.eps, flip=found.flip, mean=found.mean, std=found.std, geometry=found.geometry)


def verify_config(config: Path, path: Path | None, opts: Expectations) -> Report:
    """Check ``config``'s fields against the weights it loads, then verify those weights with the
    settings the config builds (padding, eps, colour flip, mean, std, test resize and crop), also
    when the config converts a pycls file on load. Failed fields lead the report."""
    registry = registry_for(opts.tables)
    cfg = mmconfig.read_config(config)
    target, scheme_layout, order = _config_target(config, cfg, path)
    conversion = None
    if scheme_layout is not None:  # a pycls file the config converts on load: as ckptconv.mmengine does
        conversion = prepare(Request(source=target, layout=scheme_layout, channel_order=order, trust_pickle=opts.trust_pickle, tables=opts.tables))
        meta = conversion.meta
    else:
        meta = load(target, trust_pickle=opts.trust_pickle).meta
    variant = detect.recorded_model(meta, registry)
    if variant is None:
        raise UsageError(f"{target} records no model ckptconv knows (it was not written by ckptconv)", fix="convert it with ckptconv first, or check it without --config", path=str(target))
    table = registry.layout(meta.get("layout", "mmdet"), variant.family)
    found = mmconfig.check(cfg, variant, table, meta, registry.pycls_layout(variant.family).pipeline)
    found.problems[:0] = _loads_file(cfg, path)
    if conversion is not None:
        report = check_conversion(conversion, expect=_as_configured(opts, found, variant))
        report.path = str(target)
    else:
        report = verify_file(target, _as_configured(opts, found, variant))
    fields = [Check("config", False, f"{config}: {where} {need}") for where, need in found.problems]
    report.checks[:0] = fields or [Check("config", True, f"{config}: {len(found.passed)} fields fit these weights")]
    return report
