"""The ``pycls-<layout>[-bgr]://`` checkpoint names of ``ckptconv.mmengine``, torch- and mmengine-free.

Every layout of an OpenMMLab library (``ckptconv/libraries``: mmdet, mmpretrain; the layouts mmdet,
mmdet-stages, mmpretrain, and any such table added) has a scheme; the ``-bgr`` schemes keep
pycls's BGR order, the others write RGB, as the CLI does. mmengine matches scheme prefixes as
regular expressions anchored at the start of the name, longest string first only where one is a
prefix of another: so a layout name never holds ``+`` or ``.`` here, and ``pycls-mmdet://`` can
never match ``pycls-mmdet-stages://...`` (``:`` is not ``-``).
"""

from __future__ import annotations

import re

from ..options import ORDERS

NAME_IN_SCHEME = r"[a-z0-9][a-z0-9_-]+"  # a layout name a scheme can hold: no '.', which mmengine reads as a regex
_SCHEME = re.compile(rf"pycls-(?P<layout>{NAME_IN_SCHEME}?)(?P<bgr>-bgr)?://")


def scheme(layout: str, order: str = "rgb") -> str:
    return f"pycls-{layout}{'-bgr' if order == 'bgr' else ''}://"


def schemes(registry) -> list[tuple[str, str, str]]:
    """(scheme, layout, channel order) for every layout mmengine loads."""
    names = sorted({t.name for t in registry.all_layouts() if t.library.openmmlab})
    return [(scheme(name, order), name, order) for name in names if re.fullmatch(NAME_IN_SCHEME, name) for order in ORDERS]


def parse_scheme(checkpoint: str) -> tuple[str, str | None, str | None]:
    """(path, layout, channel order) of ``pycls-<layout>[-bgr]://path``; a plain path has neither."""
    m = _SCHEME.match(checkpoint)
    if m is None:
        return checkpoint, None, None
    return checkpoint[m.end() :], m.group("layout"), "bgr" if m.group("bgr") else "rgb"
