"""The pipeline level: a real photo through the target library's preprocessing must give pycls's
features through pycls's own.

Users feed photos, not tensors. The photo (``data/photo.npy``: a real one, BGR as OpenCV reads
it) is resized once to the check's input size, the step both pipelines share; then
- pycls's pipeline: BGR, /255, (x - mean) / std with its statistics in BGR order, into the pycls
  reference with the weights in BGR form;
- the library's, as its config sets it: the order its loader reads, reversed if the config says so,
  (x - mean) / std in its own units, into the layout's reference with the weights as written.
The two are compared at the layout's first level, the stem's output, where colour order and
normalization act: reversing the stem's input channels reorders a sum and the two normalize in
different float steps, so it passes within ``TOLERANCE`` of its magnitude (measured at most 5e-7
on B0-B5); a wrong channel order moves it by about 80 %, a mean/std in the wrong order by about
20 %. Everything after the stem is the same arithmetic on both sides, which the numeric level
proves exact; here it would only amplify the stem's last-bit differences (in a network with
extreme weights, by orders of magnitude), so it is not judged.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..tables.pipeline import Pipeline, Preprocess, needed
from .report import Level, Report

PHOTO = Path(__file__).resolve().parents[1] / "data" / "photo.npy"
TOLERANCE = 1e-4  # relative to max(1, max |level|)


@lru_cache(maxsize=4)
def image(size: tuple[int, int]) -> torch.Tensor:
    """The photo as OpenCV reads it (HWC, BGR, 0..255), resized once (bilinear) to ``size``."""
    bgr = torch.from_numpy(np.load(PHOTO)).float().permute(2, 0, 1)[None]
    return F.interpolate(bgr, size=size, mode="bilinear", align_corners=False, antialias=True)[0].permute(1, 2, 0).contiguous()


def _normalize(hwc: torch.Tensor, mean, std) -> torch.Tensor:
    mean, std = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    return ((hwc - mean) / std).permute(2, 0, 1)[None].contiguous()


def pycls_input(bgr: torch.Tensor, stats: Pipeline) -> torch.Tensor:
    """pycls's test pipeline: BGR, /255, then its statistics in BGR order."""
    mean = stats.mean if stats.order == "bgr" else stats.mean[::-1]
    std = stats.std if stats.order == "bgr" else stats.std[::-1]
    return _normalize(bgr / 255.0, mean, std)


def library_input(bgr: torch.Tensor, pipeline: Pipeline, pre: Preprocess) -> torch.Tensor:
    """The library's pipeline as configured: its loader's order, reversed if set, normalized in its units."""
    x = bgr if pipeline.reads == "bgr" else bgr.flip(-1)
    x = x.flip(-1) if pre.flip else x
    return _normalize(x if pipeline.scale == 255 else x / 255.0, pre.mean, pre.std)


def _wrong_settings(pipeline: Pipeline, pre: Preprocess, need: Preprocess) -> list[str]:
    flag = pipeline.flip_flag or "a channel flip in the transforms"
    wrong = [f"{flag}={pre.flip}"] if pre.flip != need.flip else []
    wrong += [f"mean={[round(m, 4) for m in pre.mean]}"] if not np.allclose(pre.mean, need.mean) else []
    wrong += [f"std={[round(s, 4) for s in pre.std]}"] if not np.allclose(pre.std, need.std) else []
    return wrong


def _judge(report: Report, pipeline: Pipeline, pre: Preprocess, need: Preprocess, order: str) -> None:
    bad = next((lv for lv in report.pipeline if not lv.ok), None)
    if bad is None:
        lv = report.pipeline[0]
        report.add("pipeline", True, f"a photo through the {order.upper()} pipeline as configured gives pycls's {lv.point} output "
                   f"within {TOLERANCE:g} (relative; {lv.max_rel:.2g} here)")  # fmt: skip
        return
    detail = f"a photo through the pipeline as configured differs from pycls's at {bad.name} by {bad.max_rel:.3g} (relative)"
    wrong = _wrong_settings(pipeline, pre, need)
    if wrong:
        flag = f"{pipeline.flip_flag}={need.flip}" if pipeline.flip_flag else ("reverse the channels" if need.flip else "no channel flip")
        detail += f" with {', '.join(wrong)}: these weights take {order.upper()} input; set {flag}, mean={need.config()['mean']}, std={need.config()['std']}"
    report.add("pipeline", False, detail)


def _as_written(model: torch.nn.Module, sides) -> torch.nn.Module:
    """The layout's model from the numeric check (BGR-form weights) with the first conv's weights
    as the file holds them (the only tensor that differs)."""
    for key, t in sides.written.items():
        if t is not sides.weights.get(key):
            model.get_parameter(key).data = t.float() if t.is_floating_point() else t
    return model


@torch.inference_mode()
def check(report: Report, sides, pre: Preprocess, stats: Pipeline, target: torch.nn.Module, pycls: torch.nn.Module) -> None:
    """The photo through both pipelines and the numeric check's two models, compared at the first
    level within TOLERANCE."""
    bgr = image(tuple(report.input_size))
    want = pycls.forward_levels(pycls_input(bgr, stats))
    pipeline = sides.layout.pipeline
    got = _as_written(target, sides).forward_levels(library_input(bgr, pipeline, pre))
    name, point = next(iter(sides.layout.levels.items()))
    a, b = got[name], want[point]
    scale = max(1.0, b.abs().max().item())
    diff = (a - b).abs().max().item() if torch.isfinite(a).all() else float("inf")
    report.pipeline.append(Level(name, point, diff, diff / scale, TOLERANCE * scale, diff <= TOLERANCE * scale))
    _judge(report, pipeline, pre, needed(pipeline, sides.order, stats), sides.order)
