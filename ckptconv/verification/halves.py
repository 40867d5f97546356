"""The proof in two halves, for any runtime that takes a photo: the input it makes against pycls's
pipeline (within ``INPUT_TOLERANCE`` normalized units), and the network it runs, on that same input,
against pycls's model (within ``LOGITS_TOLERANCE`` relative to the largest value, or ``SLACK`` times
pycls's own float32 error where that is larger). onnxruntime's graphs (``ckptconv.onnx.run``) and the
installed libraries (``ckptconv.inlibrary``) are judged by these numbers, measured once.
"""

from __future__ import annotations

import numpy as np
import torch

from ..model.variants import Variant
from ..tables.pipeline import Preprocess
from ..transforms import resize_crop
from .models import pycls_model
from .report import Level

# tests/data/onnx/README.md, "Recommended tolerance" (drift.json summary.recommended), measured with
# pycls 0.1.1 and onnxruntime 1.32 on 7 models x 7 images: a correct graph stays within 4.7e-5 of
# pycls's logits relative to the largest |logit| (ORT's Resize on a x3.4 downscale; the tensor graph
# alone 2.6e-5), while the nearest wrong preprocessing, a uint8 resize, is 7.7e-4 off (every other
# wrong setting at least 0.0096). Its input, in normalized units: 2.0e-4 correct, 0.013 wrong.
LOGITS_TOLERANCE = 2e-4  # relative to max |pycls's output|, per image or per batch (also each stage output)
INPUT_TOLERANCE = 1e-3  # normalized units
# Where float32 itself carries these weights' outputs far (random BN statistics), a correct graph may
# stray this many times as far as one rounding of the weights moves pycls's own outputs: measured on
# the B1-B5 of benchmarks/ (onnxruntime up to 27x); trained weights move by about 1e-7, so they are
# judged at LOGITS_TOLERANCE all the same.
SLACK = 100.0


def level(case: str, point: str, got: np.ndarray, want: torch.Tensor, tolerance: float, relative: bool = True) -> Level:
    want = want.detach().numpy()
    if got.shape != want.shape or not np.isfinite(got).all():
        return Level(case, point, float("inf"), float("inf"), tolerance, False)
    d = float(np.abs(got.astype(np.float64) - want).max())
    rel = d / max(float(np.abs(want).max()), 1e-12)
    return Level(case, point, d, rel, tolerance, (rel if relative else d) <= tolerance)


class Reference:
    """pycls's model on the checked weights, as pycls computes it (float32), and, asked only where a
    graph differs, in float64: how far float32 arithmetic itself strays on these weights. Trained
    weights (and weights with measured BN statistics) stray by about 1e-6; random BN statistics
    can make activations grow to 1e7, where any float32 implementation, pycls's own included, is
    far from the exact values."""

    def __init__(self, variant: Variant, state_dict: dict[str, torch.Tensor]):
        self.variant, self.state, self.model = variant, state_dict, pycls_model(variant, state_dict)
        self._exact = self._rounded = None

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.forward_levels(x)

    def exact(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self._exact is None:
            wide = {k: v.double() if v.is_floating_point() else v for k, v in self.state.items()}
            self._exact = pycls_model(self.variant, wide).double()
        return self._exact.forward_levels(x.double())

    def rounded_otherwise(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """pycls's float32 model with every weight moved by one rounding (a relative 2^-24, signs
        seeded), as another float32 implementation rounds (onnxruntime folds each BatchNorm into
        its convolution): how far float32 itself may carry a correct graph on these weights."""
        if self._rounded is None:
            g = torch.Generator().manual_seed(0)
            moved = {k: v * (1 + 2.0**-24 * (torch.randint(0, 2, v.shape, generator=g) * 2 - 1)) if v.is_floating_point() else v for k, v in self.state.items()}
            self._rounded = pycls_model(self.variant, moved)
        return self._rounded.forward_levels(x)


def rejudged(levels: list[Level], got: dict, want: dict, reference: Reference, x: torch.Tensor) -> tuple[list[Level], float]:
    """Levels outside the tolerance, judged again against the exact (float64) values: within ``SLACK``
    times float32's own error there (pycls's model as it rounds, or rounded otherwise), or the
    tolerance if that is larger. Returns the levels and that error where it widened the tolerance
    (0 where it did not)."""
    exact, rounded = reference.exact(x), reference.rounded_otherwise(x)
    own = {lv.point: max(level(lv.name, lv.point, w[lv.point].numpy(), exact[lv.point], 0.0).max_rel for w in (want, rounded)) for lv in levels}
    again = [level(lv.name, lv.point, got[lv.point], exact[lv.point], max(LOGITS_TOLERANCE, SLACK * own[lv.point])) for lv in levels]
    for lv in again:
        lv.drift_rel = own[lv.point]
    worst = max(own.values())
    return again, worst if SLACK * worst > LOGITS_TOLERANCE else 0.0


def within(worst: float, worst_own: float) -> str:
    """What a pass proved: within the tolerance of pycls's float32 values, or, where pycls's own
    float32 arithmetic strays (``worst_own``: its error), within ``SLACK`` times that of the exact ones."""
    if not worst_own:
        return f"within {LOGITS_TOLERANCE:g} of pycls's, relative to the largest value ({worst:.2g} at most)"
    return (f"within {worst:.2g} of the exact (float64) values, relative to the largest, where float32 itself moves pycls's own outputs by up to "
            f"{worst_own:.2g} on these weights (its activations grow large: random BN statistics?): judged within {SLACK:g}x that, which proves nothing finer")


def normalized(x: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    """(x - mean) / std per channel, in float32 as pycls's ``color_norm``."""
    return (x - torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)) / torch.tensor(std, dtype=torch.float32).view(3, 1, 1)


def pycls_input(bgr: torch.Tensor, resize: int, crop: int, pre: Preprocess) -> torch.Tensor:
    """pycls's test input for a 3 x H x W uint8 BGR image: ``ckptconv.transforms``' resize and crop
    (cv2's float32 bilinear, the ceil crop), /255, then ``pre``'s mean and std: 1 x 3 x crop x crop."""
    return normalized(resize_crop(bgr, resize, crop) / 255.0, pre.mean, pre.std)[None]
