"""timm, torchvision and transformers, run as their users run them: the loading code ckptconv printed
for the file (or ``--config FILE``: the user's own, which defines ``model`` and ``preprocess``), then
``preprocess(PIL.Image.open(path).convert('RGB'))`` and ``model(x)``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UsageError
from ..serialize import python
from .images import pil_decode
from .proof import LOGITS, Ran
from .target import Target


def _namespace(text: str, where: str) -> dict[str, Any]:
    """Run loading code; it must define ``model`` and ``preprocess``."""
    space: dict[str, Any] = {"__name__": "__ckptconv_in_library__"}
    exec(compile(text, where, "exec"), space)  # the printed code, or the file the user named to be run
    missing = [name for name in ("model", "preprocess") if name not in space]
    if missing:
        raise UsageError(f"{where} defines no {' and no '.join(missing)}", fix="define model (eval mode, weights loaded) and preprocess (a PIL image -> a C x H x W tensor)")
    return space


@dataclass
class Snippet:
    """A model and a preprocess built by loading code; ``call``: how the library's model gives logits."""

    library: str
    version: str
    how: str
    model: Any
    preprocess: Any

    def run(self, path: Path) -> Ran:
        from PIL import Image

        with Image.open(path) as im:
            x = self.preprocess(im.convert("RGB"))
        out = self.model(x[None].to(torch.float32))
        logits = getattr(out, "logits", out)  # transformers' ImageClassifierOutput
        return Ran(pil_decode(path), x.to(torch.float32), {LOGITS: logits.float()})


def _built(target: Target, library: str, text: str, where: str) -> Snippet:
    from importlib.metadata import version

    space = _namespace(text, where)
    model = space["model"].eval()
    how = where if target.config is None else f"your loading code {where}"
    return Snippet(library, version(library), how, model, space["preprocess"])


def _hub_folder(target: Target) -> Path | None:
    """The timm model folder the file is the weights of (config.json with an architecture beside it)."""
    config = target.path.parent / "config.json"
    try:
        return target.path.parent if "architecture" in json.loads(config.read_text("utf-8")) else None
    except (OSError, ValueError, TypeError):
        return None


LOCAL_DIR = (1, 0, 16)  # the first timm whose create_model takes 'local-dir:' (docs/versions.md, measured)


def _release(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def timm(target: Target) -> Snippet:
    from importlib.metadata import version

    folder = _hub_folder(target) if target.config is None else None
    if folder is not None and _release(version("timm")) < LOCAL_DIR:
        raise UsageError(f"timm {version('timm')} cannot load a model folder: create_model('local-dir:...') came in timm 1.0.16",
                         fix="upgrade timm, or load the folder's model.safetensors with the code convert prints without --hub")
    if folder is not None:
        text = (f"import timm\nfrom torchvision import transforms\nmodel = timm.create_model({python('local-dir:' + str(folder.resolve()))}, pretrained=True)\n"
                + target.transform)
        return _built(target, "timm", text, f"timm.create_model('local-dir:{folder}')")
    return _from_text(target, "timm")


def torchvision(target: Target) -> Snippet:
    return _from_text(target, "torchvision")


def transformers(target: Target) -> Snippet:
    if target.config is not None:
        return _from_text(target, "transformers")
    folder = str(target.path.parent.resolve())
    text = ("from torchvision import transforms\nfrom transformers import AutoModelForImageClassification\n"
            f"model = AutoModelForImageClassification.from_pretrained({python(folder)})\n" + target.transform)
    return _built(target, "transformers", text, f"AutoModelForImageClassification.from_pretrained('{target.path.parent}')")


def _from_text(target: Target, library: str) -> Snippet:
    if target.config is not None:
        return _built(target, library, target.config.read_text("utf-8"), str(target.config))
    return _built(target, library, target.printed, "the code ckptconv prints for it")
