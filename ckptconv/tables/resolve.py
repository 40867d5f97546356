"""A request's defaults resolved once against the model's tables, and the options an output
records: what decides its bytes besides the source. torch-free, so a batch judges its existing
outputs before any worker imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import FormatError, MappingError, UsageError
from ..io.pycls_cfg import read_cfg_file
from ..model import structure
from ..model.variants import Variant
from ..options import PYCLS, Request
from ..version import __version__
from .detect import Shapes, resolve_arch
from .layout import Layout
from .pipeline import default_order
from .registry import Registry


@dataclass(frozen=True)
class Resolved:
    """A request's defaults, resolved once against the model's tables: the two layouts, the key
    prefix and the channel order the output takes."""

    variant: Variant
    target: Layout
    source: Layout
    prefix: str
    channel_order: str


@dataclass(frozen=True)
class Identified:
    """The model a source holds, how it was found (--arch, cfg, --cfg, the run's config.yaml,
    meta, shapes), its keys' prefix, and what the run must say about how (which of two cfgs won)."""

    variant: Variant
    how: str
    prefix: str
    notes: tuple[str, ...] = ()


def model_of(request: Request, cfg: Any, shapes: Shapes, meta: dict[str, Any], registry: Registry) -> Identified:
    """The model a source holds: --arch, else its structure (--cfg, or the run's config.yaml, or its
    own cfg; its meta; its tensors' shapes). Two cfgs that state another model must agree, or the
    one the user named wins and the notes say so (a run's config.yaml found beside the checkpoint
    that disagrees with it is an error: one of them is not this checkpoint's)."""
    stated, where, notes = _cfg(request, cfg)
    variant, how, prefix = resolve_arch(request.arch, stated, shapes, registry, request.source_layout, meta, where)
    if how == "cfg" and request.cfg is not None:
        how = RUN_CFG if request.cfg_is_run else "--cfg"
    return Identified(variant, how, prefix, notes)


RUN_CFG = "the run's config.yaml"


def _cfg(request: Request, own: Any) -> tuple[Any, str, tuple[str, ...]]:
    """The cfg that states the model (read as pycls reads it), what to call it, and the notes."""
    if request.cfg is None:
        return own, "the checkpoint's cfg", ()
    what, error = (RUN_CFG, FormatError) if request.cfg_is_run else ("--cfg", UsageError)
    try:
        given = read_cfg_file(request.cfg, what)
        stated = structure.from_cfg(given, f"{what} {request.cfg}")
    except FormatError as e:
        raise error(e.message, fix=e.fix, path=e.path) from None
    if stated is None:
        raise error(f"{what} {request.cfg} states no model (its MODEL.TYPE is blank)", fix="pass the run's own config.yaml, which pycls writes with MODEL.TYPE")
    differ = _against_own(given, own, what)
    if differ and request.cfg_is_run:
        raise MappingError(f"{what} {request.cfg} and the checkpoint's own cfg state other models ({differ}): one of them is not this checkpoint's",
                           fix="pass --cfg FILE (or a manifest's cfg) to say which one states the model")
    notes = (f"{what} and the checkpoint's own cfg state other models ({differ}): {what} wins, as you named it",) if differ else ()
    return given, f"{what} {request.cfg}", notes


def _against_own(given: dict[str, Any], own: Any, what: str) -> str:
    """How the checkpoint's own cfg states another model than ``given`` ("" when it agrees or has none)."""
    try:
        theirs = structure.read(own, "the checkpoint's cfg")
        if theirs is None or not structure.model_type(theirs, "the checkpoint's cfg"):
            return ""
    except FormatError as e:
        return f"its own cannot be read as pycls reads it: {e.message}"
    return "; ".join(f"{k} is {v!r} in {what} and {w!r} in the checkpoint's" for k, v, w in structure.disagreements(given, theirs)[:4])


def resolve(request: Request, variant: Variant, registry: Registry) -> Resolved:
    """The target and source tables of the variant's family (refused when the target cannot hold
    it), the table's prefix unless asked otherwise, and the order its library's pipeline feeds."""
    target, source = registry.layout(request.layout, variant.family), registry.layout(request.source_layout, variant.family)
    target.check_holds(variant)
    order = request.channel_order or default_order(target.pipeline)
    if target.name == PYCLS and order != "bgr":
        raise UsageError("pycls takes BGR input: a pycls checkpoint holds BGR weights", fix="omit --channel-order (or pass bgr) with --to pycls")
    prefix = request.prefix if request.prefix is not None else target.prefix
    return Resolved(variant, target, source, prefix, order)


def output_options(request: Request, r: Resolved) -> dict[str, Any]:
    """Everything that decides an output's bytes besides the source itself: batch compares it with
    an existing output's meta to know whether it is up to date."""
    hub = {"hub": True, "license": request.license} if request.folder else {}  # a model folder's card says the licence
    if request.labels is not None:  # config.json's id2label: other names, another folder
        from ..io.labels import labels_sha256, read_labels

        hub["labels_sha256"] = labels_sha256(read_labels(request.labels))
    return {
        "from": r.source.name, "layout": r.target.name, "arch": r.variant.name, "weights": request.weights,
        "prefix": r.prefix, "dtype": request.dtype, "ckptconv_version": __version__, "channel_order": r.channel_order,
        "table_sha256": r.target.digest, "source_table_sha256": r.source.digest, "variant_sha256": r.variant.digest, **hub,
    }
