"""A request's defaults resolved once against the model's tables, and the options an output
records: what decides its bytes besides the source. torch-free, so a batch judges its existing
outputs before any worker imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..io.files import read_text
from ..options import PYCLS, Request
from ..version import __version__
from .detect import Shapes, resolve_arch
from .layout import Layout
from .pipeline import default_order
from .registry import Registry
from .variants import Variant


@dataclass(frozen=True)
class Resolved:
    """A request's defaults, resolved once against the model's tables: the two layouts, the key
    prefix and the channel order the output takes."""

    variant: Variant
    target: Layout
    source: Layout
    prefix: str
    channel_order: str


def model_of(request: Request, cfg: Any, shapes: Shapes, meta: dict[str, Any], registry: Registry) -> tuple[Variant, str, str]:
    """The model a source holds, how it was found and its key prefix: --arch, else its structure
    (--cfg or its own cfg, its meta, its tensors' shapes)."""
    cfg = read_text(request.cfg, "--cfg") if request.cfg is not None else cfg
    variant, how, prefix = resolve_arch(request.arch, cfg, shapes, registry, request.source_layout, meta)
    return variant, ("--cfg" if request.cfg is not None and how == "cfg" else how), prefix


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
    hub = {"hub": True, "license": request.license} if request.hub else {}  # a hub folder's card says the licence
    return {
        "from": r.source.name, "layout": r.target.name, "arch": r.variant.name, "weights": request.weights,
        "prefix": r.prefix, "dtype": request.dtype, "ckptconv_version": __version__, "channel_order": r.channel_order,
        "table_sha256": r.target.digest, "source_table_sha256": r.source.digest, "variant_sha256": r.variant.digest, **hub,
    }  # fmt: skip
