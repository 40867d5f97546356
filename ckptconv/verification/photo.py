"""The pipeline check: real photos through the target library's preprocessing must give pycls's input.

Users feed photo files, not tensors. ckptconv ships real photos (``data/photos``: CC0 and public
domain, of different aspect ratios, one whose crop offset pycls rounds up where the libraries round
half to even) and runs each, at the model's own sizes (TEST.IM_SIZE, TRAIN.IM_SIZE), through
- pycls's test pipeline: BGR as OpenCV reads it, float32, pycls's resize and centre crop
  (``ckptconv.transforms``), /255, its mean and std in BGR order;
- the library's pipeline as configured: the order its loader reads, its resize and crop (pycls's,
  as the printed pipeline does them, or the library's stock transforms: ``Geometry``), the channel
  flip, mean and std in its own units.
The two inputs are compared in the order the weights take (for RGB weights pycls's input reversed:
an exact permutation) within ``TOLERANCE`` normalized units: the printed pipelines sit at ~1e-6,
a wrong channel order, mean or std moves the input by O(1), and each stock transform by 0.01 (uint8
resizing) to 4 (a crop one pixel off). The failure names the steps to change.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..io.png import read_rgb
from ..options import Geometry
from ..tables.pipeline import Pipeline, Preprocess, in_order, needed, steps_off
from ..transforms import crop_offsets, pycls_size, resize_linear
from .report import Level, Report

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
TOLERANCE = 1e-4  # normalized units: the printed pipelines are within ~1e-6 of pycls's own cv2


@lru_cache(maxsize=1)
def photos() -> tuple[tuple[str, torch.Tensor], ...]:
    """(file name, 3 x H x W uint8 RGB) of every shipped photo."""
    return tuple((p.name, torch.from_numpy(read_rgb(p)).permute(2, 0, 1).contiguous()) for p in sorted(PHOTOS.glob("*.png")))


def _normalize(chw: torch.Tensor, mean, std) -> torch.Tensor:
    return (chw - torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)) / torch.tensor(std, dtype=torch.float32).view(3, 1, 1)


def _size(h: int, w: int, g: Geometry, resize: int) -> tuple[int, int]:
    if g.size == "pycls":
        return pycls_size(h, w, resize)
    if g.size == "squash":
        return resize, resize
    return (resize, int(resize * w / h)) if h <= w else (int(resize * h / w), resize)


def _offsets(h: int, w: int, g: Geometry, crop: int) -> tuple[int, int]:
    if g.crop == "ceil":
        return crop_offsets(h, w, crop)
    offset = (lambda d: int(d / 2.0)) if g.crop == "floor" else (lambda d: int(round(d / 2.0)))
    return offset(h - crop), offset(w - crop)


def geometric(image: torch.Tensor, g: Geometry, resize: int, crop: int) -> torch.Tensor:
    """A 3 x H x W uint8 image resized and centre-cropped as ``g`` says, as float32 in 0..255."""
    x = image.to(torch.float32)
    h, w = _size(x.shape[-2], x.shape[-1], g, resize)
    if (h, w) != tuple(x.shape[-2:]):
        if g.resampler == "cv2":
            x = resize_linear(x, (h, w))
        else:  # PIL's antialiased bilinear, as torch computes it
            x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
        if g.pixels == "uint8":
            x = x.round().clamp(0, 255)
    y0, x0 = _offsets(h, w, g, crop)
    return x[:, y0 : y0 + crop, x0 : x0 + crop].contiguous()


@lru_cache(maxsize=64)
def resized(name: str, g: Geometry, resize: int, crop: int) -> torch.Tensor:
    """A shipped photo resized and cropped as ``g`` says: 3 x crop x crop, RGB, float32 in 0..255.
    (Each channel is resized alone, so the channel order may be reversed before or after.)"""
    return geometric(dict(photos())[name], g, resize, crop)


def pycls_input(name: str, resize: int, crop: int, stats: Pipeline) -> torch.Tensor:
    """pycls's test input for a shipped photo: 3 x crop x crop, BGR, normalized."""
    return _normalize(resized(name, Geometry(), resize, crop).flip(0) / 255.0, in_order(stats.mean, stats.order, "bgr"), in_order(stats.std, stats.order, "bgr"))


def library_input(name: str, pipeline: Pipeline, pre: Preprocess, resize: int, crop: int) -> torch.Tensor:
    """The library's pipeline as configured, on a shipped photo: its loader's order, its resize and
    crop, reversed if set, normalized in its units."""
    x = resized(name, pre.geometry, resize, crop)
    x = x if pipeline.reads == "rgb" else x.flip(0)
    x = x.flip(0) if pre.flip else x
    return _normalize(x if pipeline.scale == 255 else x / 255.0, pre.mean, pre.std)


def _wrong_colours(pipeline: Pipeline, pre: Preprocess, need: Preprocess) -> list[str]:
    flag = pipeline.flip_flag or "a channel flip in the transforms"
    wrong = [f"{flag}={pre.flip}"] if pre.flip != need.flip else []
    wrong += [f"mean={[round(m, 4) for m in pre.mean]}"] if not np.allclose(pre.mean, need.mean) else []
    wrong += [f"std={[round(s, 4) for s in pre.std]}"] if not np.allclose(pre.std, need.std) else []
    return wrong


def _judge(report: Report, pipeline: Pipeline, pre: Preprocess, need: Preprocess, sizes: tuple[int, int]) -> None:
    worst = max(report.pipeline, key=lambda lv: lv.max_abs)
    order = need.feeds.upper()
    if worst.ok:
        through = (f"resized and cropped as pycls tests them (a detector resizes to its own scale), through the {order} data preprocessor as "
                   "configured (its channel order, mean and std)" if pipeline.sizes == "own" else
                   f"through the {order} pipeline as configured (resize {sizes[0]}, crop {sizes[1]})")
        report.add("pipeline", True, f"{len(report.pipeline)} real photos {through} give pycls's input within {TOLERANCE:g} ({worst.max_abs:.2g} at most)")
        return
    detail = f"{worst.name} through the pipeline as configured differs from pycls's input by up to {worst.max_abs:.3g} (normalized units)"
    steps = steps_off(pre.geometry)
    wrong = _wrong_colours(pipeline, pre, need)
    if steps:
        detail += ": " + "; ".join(steps) + f"; resize and crop with ckptconv.transforms.PyclsResizeCrop(resize={sizes[0]}, crop={sizes[1]}) as the printed pipeline does"
    if wrong:
        flag = f"{pipeline.flip_flag}={need.flip}" if pipeline.flip_flag else ("reverse the channels" if need.flip else "no channel flip")
        detail += (", and" if steps else "") + f" with {', '.join(wrong)}: these weights take {order} input; set {flag}, mean={need.config()['mean']}, std={need.config()['std']}"
    report.add("pipeline", False, detail)


@torch.inference_mode()
def differences(pipeline: Pipeline, pre: Preprocess, order: str, stats: Pipeline, sizes: tuple[int, int]) -> list[tuple[str, float, float]]:
    """(photo, max abs difference, pycls's input's max abs) of every shipped photo through pycls's
    pipeline and the library's as configured (``pre``), at ``sizes`` (TEST.IM_SIZE, TRAIN.IM_SIZE),
    compared in the order the weights take (``order``)."""
    resize, crop, out = *sizes, []
    for name, _ in photos():
        want = pycls_input(name, resize, crop, stats)
        want = want if order == "bgr" else want.flip(0)
        got = library_input(name, pipeline, pre, resize, crop)
        diff = (got - want).abs().max().item() if got.shape == want.shape and torch.isfinite(got).all() else math.inf
        out.append((name, diff, want.abs().max().item()))
    return out


def check(report: Report, pipeline: Pipeline, pre: Preprocess, order: str, stats: Pipeline, sizes: tuple[int, int]) -> None:
    """The pipeline check: every photo's ``differences`` within ``TOLERANCE``."""
    for name, diff, scale in differences(pipeline, pre, order, stats, sizes):
        report.pipeline.append(Level(name, "pycls's input", diff, diff / max(1.0, scale), TOLERANCE, diff <= TOLERANCE))
    _judge(report, pipeline, pre, needed(pipeline, order, stats), sizes)


def stock_residual(pipeline: Pipeline, order: str, stats: Pipeline, sizes: tuple[int, int]) -> float:
    """How far the library's own transforms (its stock resize and crop, the right colours, mean and
    std) leave its input from pycls's on the shipped photos: the largest difference, normalized units."""
    pre = replace(needed(pipeline, order, stats), geometry=pipeline.stock)
    return max(diff for _, diff, _ in differences(pipeline, pre, order, stats, sizes))
