"""``dict(type='PyclsResizeCrop', resize=..., crop=...)``: pycls's test resize and centre crop as a
step of an MMDetection or mmpretrain pipeline (registered by ``ckptconv.mmengine``).

After ``LoadImageFromFile`` (BGR uint8, or float32 with ``to_float32=True``): the pixels as float32,
the short side resized to ``resize`` by ``cv2.resize`` (INTER_LINEAR, no antialiasing; the long side
as pycls computes it), a ``crop`` x ``crop`` centre crop at ``ceil((L - crop) / 2)``: exactly what
pycls 0.1.1's test pipeline does with the same cv2. mmpretrain's ResizeEdge (uint8, another rule for
the long side) and mmcv's CenterCrop (round-half-even) do neither.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..transforms import crop_offsets, pycls_size


class PyclsResizeCrop:
    """An mmcv-style transform: ``results['img']`` (H x W x C) resized and cropped as pycls does."""

    def __init__(self, resize: int, crop: int):
        if not (isinstance(resize, int) and isinstance(crop, int) and 0 < crop <= resize):
            raise ValueError(f"PyclsResizeCrop needs integers 0 < crop <= resize, not resize={resize!r}, crop={crop!r}")
        self.resize, self.crop = resize, crop

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        import cv2

        img = np.asarray(results["img"]).astype(np.float32, copy=False)
        h, w = pycls_size(img.shape[0], img.shape[1], self.resize)
        if (h, w) != img.shape[:2]:
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        y, x = crop_offsets(h, w, self.crop)
        results["img"] = img = np.ascontiguousarray(img[y : y + self.crop, x : x + self.crop])
        results["img_shape"] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f"PyclsResizeCrop(resize={self.resize}, crop={self.crop})"
