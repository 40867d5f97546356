"""pycls's test-time preprocessing, for the pipelines of libraries that have no transform for it.

pycls 0.1.1 evaluates an image as ``ImageNet.__getitem__`` does: ``cv2.imread`` (BGR), float32, the
short side resized to TEST.IM_SIZE by ``cv2.resize`` (bilinear, **no antialiasing**, the long side
``floor((long / short) * size)`` computed in double precision), a centre crop of TRAIN.IM_SIZE at
``ceil((L - crop) / 2)``, then ``/ 255`` and its mean and std. torchvision and timm antialias (PIL)
or resize in another arithmetic, compute the long side as ``int(size * long / short)`` and crop at
round-half-even; mmcv resizes uint8 and crops at round-half-even too: on real photos each of those
moves the input by up to 4 normalized units at a pixel.

``PyclsResizeCrop`` does pycls's resize and crop on a CHW tensor (what ``PILToTensor`` gives):
write it between ``PILToTensor()`` and ``Normalize(mean, std)`` in a torchvision (or timm) pipeline.
Its bilinear resize follows OpenCV's INTER_LINEAR on float32 (separable: each row, then each column;
source coordinate ``(d + 0.5) * (in / out) - 0.5`` clamped to the image; float32 weights), which
agrees with pycls's own ``cv2.resize`` to about 1e-6 in normalized units. (``F.interpolate`` without
antialiasing is ~1e-4 away: another rounding of the coordinates.) MMDetection and mmpretrain
pipelines use ``dict(type='PyclsResizeCrop', resize=..., crop=...)``, registered by
``custom_imports=dict(imports=['ckptconv.mmengine'])``, which calls cv2 itself.
"""

from __future__ import annotations

import math

import torch


def pycls_size(h: int, w: int, resize: int) -> tuple[int, int]:
    """(height, width) after pycls's ``transforms.scale(resize, im)``: the short side to ``resize``,
    the long side ``floor((float(long) / short) * resize)``; unchanged when the short side is ``resize``."""
    if (w <= h and w == resize) or (h <= w and h == resize):
        return h, w
    if w < h:
        return int(math.floor((float(h) / w) * resize)), resize
    return resize, int(math.floor((float(w) / h) * resize))


def crop_offsets(h: int, w: int, crop: int) -> tuple[int, int]:
    """(y, x) of pycls's ``transforms.center_crop(crop, im)``: ``ceil((L - crop) / 2)`` on each axis."""
    if h < crop or w < crop:
        raise ValueError(f"a {h}x{w} image is smaller than the {crop}x{crop} crop")
    return math.ceil((h - crop) / 2), math.ceil((w - crop) / 2)


def _taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each output index along one axis: the two source indices and the float32 weight of the
    second, as OpenCV's bilinear resize computes them (coordinates in double, clamped to the image)."""
    pos = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (1.0 / (n_out / n_in)) - 0.5
    left = torch.floor(pos)
    frac = (pos - left).to(torch.float32)
    left = left.to(torch.int64)
    outside = (left < 0) | (left >= n_in - 1)
    frac = torch.where(outside, torch.zeros_like(frac), frac)
    left = left.clamp(0, n_in - 1)
    return left, (left + 1).clamp(max=n_in - 1), frac


def resize_linear(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a float32 C x H x W tensor to ``size`` (H, W), without antialiasing, in
    OpenCV's arithmetic: rows first, then columns; products summed without fusion."""
    x0, x1, fx = _taps(image.shape[-1], size[1])
    y0, y1, fy = _taps(image.shape[-2], size[0])
    rows = image[:, :, x0] * (1 - fx) + image[:, :, x1] * fx
    return rows[:, y0] * (1 - fy)[:, None] + rows[:, y1] * fy[:, None]


def resize_crop(image: torch.Tensor, resize: int, crop: int) -> torch.Tensor:
    """pycls's scale then centre crop of a C x H x W image, as float32 in the image's own units."""
    image = image.to(torch.float32)
    h, w = pycls_size(image.shape[-2], image.shape[-1], resize)
    if (h, w) != tuple(image.shape[-2:]):
        image = resize_linear(image, (h, w))
    y, x = crop_offsets(h, w, crop)
    return image[:, y : y + crop, x : x + crop].contiguous()


class PyclsResizeCrop(torch.nn.Module):
    """pycls's test resize and centre crop, then ``/ 255``: a uint8 (or 0..255 float) C x H x W image
    in, a float32 ``crop`` x ``crop`` image in 0..1 out, ready for ``Normalize(mean, std)``."""

    def __init__(self, resize: int, crop: int):
        super().__init__()
        if not 0 < crop <= resize:
            raise ValueError(f"crop {crop} must be positive and at most resize {resize}")
        self.resize, self.crop = resize, crop

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return resize_crop(image, self.resize, self.crop) / 255.0

    def extra_repr(self) -> str:
        return f"resize={self.resize}, crop={self.crop}"
