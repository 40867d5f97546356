"""OpenMMLab's metafile for a batch's MMDetection and mmpretrain outputs (``batch --metafile FILE``):
``Collections`` (one per model family) and ``Models`` (one per output: ``Name``, ``In Collection``,
``Metadata`` with the parameters, the source model and the weight set, ``Weights`` as the path,
``Config`` where ``--configs`` wrote one), the form mmdet's and mmpretrain's ``metafile.yml`` files
and the ``model-index`` tool read. Written as YAML by the small emitter below (strings quoted as
JSON, which YAML reads as double-quoted scalars). torch-free."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.files import atomic_write
from ..io.files import check_output as check_replaceable
from .plan import Outcome

FAMILY_NAMES = {"effnet": "EfficientNet", "regnet": "RegNet", "resnet": "ResNet"}


def _relative(path: str, base: Path) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(base))


def model_name(output: str, out_dir: Path) -> str:
    """A model's ``Name``: its output's path inside --out-dir, without the extension, '/' as '_'
    (``run_01/epoch_0010.pth`` -> ``run_01_epoch_0010``)."""
    return str(Path(_relative(output, out_dir)).with_suffix("")).replace(os.sep, "_")


def check_names(outputs: list[str], out_dir: Path) -> None:
    """No two outputs of a metafile may share a Name (``a/b.pth`` and ``a_b.pth`` would)."""
    seen: dict[str, str] = {}
    for output in outputs:
        name = model_name(output, out_dir)
        if name in seen:
            raise UsageError(f"--metafile would name two models {name!r}: {seen[name]} and {output}",
                             fix="give one of them another output name in a manifest")
        seen[name] = output


def openmmlab_layouts(registry) -> tuple[str, ...]:
    """The layouts of OpenMMLab libraries (``Library.openmmlab``): a metafile lists their outputs."""
    return tuple(sorted({t.name for t in registry.all_layouts() if t.library.openmmlab}))


def metafile(outcomes: list[Outcome], out_dir: Path, at: Path, layouts: tuple[str, ...]) -> dict[str, Any]:
    """The metafile of the converted (or up-to-date) outputs of ``layouts`` (OpenMMLab's), paths
    relative to the folder of ``at`` (the metafile)."""
    models, collections = [], {}
    for o in outcomes:
        if o.status not in ("converted", "up to date") or o.layout not in layouts or not o.output:
            continue
        collection = collections.setdefault(o.layout, {"Name": f"pycls-{o.layout}", "Metadata": {"Architecture": []}})
        family = FAMILY_NAMES.get(o.family or "")
        if family and family not in collection["Metadata"]["Architecture"]:
            collection["Metadata"]["Architecture"].append(family)
        metadata = {"Architecture": [family] if family else None, "Parameters": o.params, "Source": o.source,
                    "Source sha256": o.source_sha256, "Source Model": o.model or o.arch, "Weight Set": o.weights}
        model = {"Name": model_name(o.output, out_dir), "In Collection": collection["Name"], "Metadata": {k: v for k, v in metadata.items() if v},
                 "Weights": _relative(o.output, at.parent)}
        config = Path(o.output).with_suffix(".py")
        if config.is_file():  # --configs wrote it
            model["Config"] = _relative(str(config), at.parent)
        models.append(model)
    return {"Collections": list(collections.values()), "Models": models}


_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9 _.-]*")


def to_yaml(value: Any, indent: int = 0) -> list[str]:
    """Block-style YAML lines of dicts, lists and scalars (strings as JSON: YAML's double-quoted form)."""
    pad, lines = " " * indent, []
    if isinstance(value, dict):
        for k, v in value.items():
            key = k if _PLAIN_KEY.fullmatch(k) else json.dumps(k)
            lines += [f"{pad}{key}:", *to_yaml(v, indent + 2)] if _nested(v) else [f"{pad}{key}: {_scalar(v)}"]
    else:
        for v in value:
            inner = to_yaml(v, indent + 2) if _nested(v) else [f"{pad}  {_scalar(v)}"]
            lines += [f"{pad}- {inner[0].lstrip()}", *inner[1:]] if not isinstance(v, list) or not v else [f"{pad}-", *inner]
    return lines


def _nested(value: Any) -> bool:
    return isinstance(value, (dict, list)) and bool(value)


def _scalar(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    return "null" if value is None else json.dumps(value)


MARK = "# OpenMMLab metafile written by ckptconv batch --metafile"


def check_targets(layouts: list[str], openmmlab: tuple[str, ...]) -> None:
    """A metafile lists OpenMMLab outputs: a batch with none of them would write an empty one."""
    if not any(layout in openmmlab for layout in layouts):
        raise UsageError(f"--metafile lists MMDetection and mmpretrain outputs, and this batch writes {', '.join(sorted(set(layouts)))} only",
                         fix=f"add one of {', '.join(openmmlab)} to --to, or leave out --metafile")


def check_output(path: Path) -> None:
    """The metafile may replace an earlier one of ckptconv's, never another file (the batch's plan
    has checked it against every input and output)."""
    check_replaceable(path)
    if path.is_file():
        with path.open("rb") as f:
            first = f.readline(200).decode("utf-8", "replace").rstrip("\n")
        if first != MARK:
            raise UsageError("the metafile exists and is not one ckptconv wrote", fix="remove it or name another --metafile", path=str(path))


def write(path: Path, data: dict[str, Any]) -> None:
    text = MARK + "\n" + "\n".join(to_yaml(data)) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))
