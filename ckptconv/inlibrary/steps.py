"""Which step of a library's preprocessing makes another input than pycls's, from what the library
decoded and the input it fed its network (no library exposes its steps alike, so each is tested
from outside):

- decode: the library's pixels against pycls's ``cv2.imread`` (another size: EXIF orientation,
  which OpenCV applies and PIL does not; other values: another JPEG decoder);
- resize and crop: the input is no channel-wise affine function of pycls's crop; each other way a
  library resizes and crops (``options.GEOMETRY``: antialiasing, uint8 pixels, the long side's
  rounding, the crop offset's) is tried, and the one that explains the input is named;
- channel order, mean and std: the input is ``a * crop + b`` per channel of pycls's crop (or of it
  reversed): the order and the mean and std it was normalized with are read off ``a`` and ``b``.
"""

from __future__ import annotations

import itertools

import torch

from ..options import GEOMETRY, PYCLS_GEOMETRY, Geometry
from ..tables.pipeline import steps_off
from ..transforms import resize_crop
from ..verification.halves import INPUT_TOLERANCE
from ..verification.photo import geometric


def _affine(got: torch.Tensor, crop: torch.Tensor) -> tuple[list[tuple[float, float]], float] | None:
    """Per channel (a, b) with got[c] = a * crop[c] + b, and the largest residual; None if shapes differ."""
    if got.shape != crop.shape:
        return None
    fits, worst = [], 0.0
    for g, x in zip(got.double(), crop.double()):
        design = torch.stack([x.flatten(), torch.ones(x.numel(), dtype=torch.float64)], 1)
        a, b = torch.linalg.lstsq(design, g.flatten()[:, None]).solution.flatten().tolist()
        fits.append((a, b))
        worst = max(worst, (g - (a * x + b)).abs().max().item())
    return fits, worst


def _stats(fits: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """The mean and std (in 0..1 pixel units, the channels as fed) that ``(x / 255 - mean) / std`` has for each fit."""
    std = [1.0 / (255.0 * a) if a else float("inf") for a, _ in fits]
    return [round(-b * s, 4) for (_, b), s in zip(fits, std)], [round(s, 4) for s in std]


def _colours(fits, reversed_: bool, takes: str, mean_std: tuple[tuple, tuple]) -> str:
    """The colour steps that differ, in words, from a fit that explains the input."""
    words = []
    if reversed_:
        other = "RGB" if takes == "bgr" else "BGR"
        words.append(f"channel order: the pipeline feeds {other}; these weights take {takes.upper()}")
    mean, std = _stats(fits)
    want_mean, want_std = mean_std
    if any(abs(m - w) > 1e-3 for m, w in zip(mean, want_mean)) or any(abs(s - w) > 1e-3 for s, w in zip(std, want_std)):
        words.append(f"mean and std: the pipeline normalizes with mean {mean}, std {std} (0..1 units, channels as fed); "
                     f"pycls's, in the order these weights take: mean {[round(m, 4) for m in want_mean]}, std {[round(s, 4) for s in want_std]}")
    return "; ".join(words)


def _explained(got: torch.Tensor, crop: torch.Tensor) -> tuple[list[tuple[float, float]], bool] | None:
    """The fit of ``got`` to ``crop`` (in the weights' order) or to it reversed, within the input tolerance."""
    for reversed_ in (False, True):
        fit = _affine(got, crop.flip(0) if reversed_ else crop)
        if fit is not None and fit[1] <= INPUT_TOLERANCE:
            return fit[0], reversed_
    return None


def _in_order(rgb: torch.Tensor, takes: str) -> torch.Tensor:
    return rgb if takes == "rgb" else rgb.flip(0)


def _geometries() -> list[Geometry]:
    return [g for g in (Geometry(*combo) for combo in itertools.product(*GEOMETRY.values())) if g != PYCLS_GEOMETRY]


def step(got: torch.Tensor, decoded: torch.Tensor, pycls_rgb: torch.Tensor, sizes: tuple[int, int], takes: str, mean_std) -> str:
    """The first step that makes ``got`` (3 x H x W, the network's input) other than pycls's input.
    ``decoded``: the library's pixels, ``pycls_rgb``: pycls's (both 3 x H x W uint8 RGB); ``takes``:
    the order the weights take; ``mean_std``: pycls's, in that order (0..1 units)."""
    if decoded.shape != pycls_rgb.shape:
        return (f"decode: the library decodes a {decoded.shape[1]}x{decoded.shape[2]} image, cv2.imread (pycls) {pycls_rgb.shape[1]}x{pycls_rgb.shape[2]} "
                "(cv2.imread applies a JPEG's EXIF orientation, PIL does not): rotate the file itself")
    off = (decoded.int() - pycls_rgb.int()).abs().max().item()
    if off:
        return f"decode: the library's pixels differ from cv2.imread's (pycls's) by up to {off} levels: another JPEG decoder; decode with OpenCV as pycls does"
    resize, crop = sizes
    fit = _explained(got, _in_order(resize_crop(pycls_rgb, resize, crop), takes))
    if fit is not None:
        return _colours(*fit, takes, mean_std) or "normalization: the input is pycls's up to its scale and offset, within rounding"
    for g in _geometries():
        fit = _explained(got, _in_order(geometric(pycls_rgb, g, resize, crop), takes))
        if fit is not None:
            colours = _colours(*fit, takes, mean_std)
            return "resize and crop: " + "; ".join(steps_off(g)) + (f"; and {colours}" if colours else "")
    h, w = got.shape[-2:]
    return (f"resize and crop: the network's {h}x{w} input is not pycls's (the short side resized to {resize} with cv2's bilinear, no antialiasing, "
            f"a centre crop of {crop} at ceil((L - C) / 2)) under any channel order, mean and std; resize and crop with ckptconv.transforms.PyclsResizeCrop")
