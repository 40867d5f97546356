"""A classifier config's test pipeline, read as the resize and crop it does (``Geometry``).

``verify --config`` judges the pipeline mmpretrain would run (``test_dataloader.dataset.pipeline``,
else ``test_pipeline``): each step it knows is read with its type, the geometry it does and the
sizes it uses; a step that changes pixels in a way ckptconv cannot judge is named. torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..fields import describe
from ..model.variants import Variant
from ..options import Geometry
from ..tables.pipeline import steps_off

PASSIVE = frozenset({"PackInputs", "PackClsInputs", "Collect", "ToTensor", "ImageToTensor"})  # no pixel changes


@dataclass
class Steps:
    """What a test pipeline does: its geometry, and the fields that are wrong or cannot be judged."""

    geometry: Geometry = field(default_factory=Geometry)
    float32: bool = False
    resized: bool = False
    cropped: bool = False
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field, what it needs)


def pipeline_of(cfg: dict[str, Any]) -> tuple[str, list | None]:
    loader = cfg.get("test_dataloader")
    dataset = loader.get("dataset") if isinstance(loader, dict) else None
    if isinstance(dataset, dict) and "pipeline" in dataset:
        return "test_dataloader.dataset.pipeline", dataset["pipeline"]
    return "test_pipeline", cfg.get("test_pipeline")


def _int(step: dict, key: str) -> int | None:
    value = step.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _size(steps: Steps, where: str, have: Any, want: int) -> None:
    if have != want:
        steps.problems.append((where, f"is {describe(have)}; pycls tests this model at {want}"))


def _off(steps: Steps, where: str, kind: str, g: Geometry, variant: Variant) -> None:
    """A library step that resizes or crops otherwise than pycls: named with what it does."""
    steps.problems.append((where, f"is {kind}: {'; '.join(steps_off(g))}; pycls's resize and crop are "
                                  f"dict(type='PyclsResizeCrop', resize={variant.test_size}, crop={variant.im_size})"))


def _step(steps: Steps, step: dict, where: str, variant: Variant) -> None:
    kind, g = step.get("type"), steps.geometry
    if kind == "LoadImageFromFile":
        steps.float32 = step.get("to_float32") is True
    elif kind == "PyclsResizeCrop":
        steps.resized = steps.cropped = True
        _size(steps, f"{where}.resize", _int(step, "resize"), variant.test_size)
        _size(steps, f"{where}.crop", _int(step, "crop"), variant.im_size)
    elif kind == "ResizeEdge":
        steps.resized = True
        pillow = step.get("backend") == "pillow"
        steps.geometry = Geometry("library", "antialias" if pillow else "cv2", "float32" if steps.float32 and not pillow else "uint8", g.crop)
        _off(steps, where, "ResizeEdge", Geometry(steps.geometry.size, steps.geometry.resampler, steps.geometry.pixels), variant)
        _size(steps, f"{where}.scale", _int(step, "scale"), variant.test_size)
        if step.get("edge", "short") != "short":
            steps.problems.append((f"{where}.edge", f"is {describe(step.get('edge'))}; pycls resizes the short side"))
    elif kind == "CenterCrop":
        steps.cropped = True
        steps.geometry = Geometry(g.size, g.resampler, g.pixels, "round")
        _off(steps, where, "CenterCrop", Geometry(crop="round"), variant)
        _size(steps, f"{where}.crop_size", _int(step, "crop_size"), variant.im_size)
    elif kind not in PASSIVE:
        steps.problems.append((where, f"is {describe(kind)}, a step ckptconv cannot judge; pycls's test pipeline is LoadImageFromFile, "
                                      f"PyclsResizeCrop(resize={variant.test_size}, crop={variant.im_size}), PackInputs"))


def read(cfg: dict[str, Any], variant: Variant) -> Steps | None:
    """The test pipeline's geometry and problems; None when the config has none."""
    where, pipeline = pipeline_of(cfg)
    if pipeline is None:
        return None
    steps = Steps()
    if not isinstance(pipeline, list) or not all(isinstance(s, dict) for s in pipeline):
        steps.problems.append((where, f"is {describe(pipeline)}; expected a list of dict(type=...) steps"))
        return steps
    for i, step in enumerate(pipeline):
        _step(steps, step, f"{where}[{i}]", variant)
    if not (steps.resized and steps.cropped):
        steps.problems.append((where, f"neither resizes nor crops as pycls does; add dict(type='PyclsResizeCrop', resize={variant.test_size}, crop={variant.im_size})"))
    return steps
