"""The ``pycls-<layout>[-bgr]://`` checkpoint names of ``ckptconv.mmengine``, torch- and mmengine-free.

mmengine matches scheme prefixes as regular expressions anchored at the start of the name, longest
string first only where one is a prefix of another: so no name here holds ``+`` or ``.``, and
``pycls-mmdet://`` can never match ``pycls-mmdet-stages://...`` (``:`` is not ``-``).
"""

from __future__ import annotations

LAYOUTS = ("mmdet", "mmpretrain", "mmdet-stages")  # the layouts mmengine loads
from ..options import ORDERS  # the -bgr schemes keep pycls's BGR order; the others write RGB, as the CLI does


def scheme(layout: str, order: str = "rgb") -> str:
    return f"pycls-{layout}{'-bgr' if order == 'bgr' else ''}://"


def parse_scheme(checkpoint: str) -> tuple[str, str | None, str | None]:
    """(path, layout, channel order) of ``pycls-<layout>[-bgr]://path``; a plain path has neither."""
    for layout in LAYOUTS:
        for order in ORDERS:
            if checkpoint.startswith(scheme(layout, order)):
                return checkpoint[len(scheme(layout, order)) :], layout, order
    return checkpoint, None, None
