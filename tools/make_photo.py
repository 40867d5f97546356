"""Make ckptconv/data/photo.npy, the real photo the pipeline check feeds each library's preprocessing.

From ../shared/fixtures/images/chelsea.pycls_b0.npz (``image_bgr``: scikit-image's sample photo
``chelsea``, a cat, CC0, as cv2.imread reads it): the centre 288x432 pixels, averaged over 3x3 blocks,
stored as uint8 HWC in BGR order, 96x144. Small enough to ship; a real photo's channels differ in
mean and correlate, so a colour-order mistake moves the stem output by about half its magnitude.

    python tools/make_photo.py [path/to/chelsea.pycls_b0.npz]
"""

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "fixtures" / "images" / "chelsea.pycls_b0.npz"
    image = np.load(src)["image_bgr"]
    h, w, _ = image.shape
    top, left = (h - 288) // 2, (w - 432) // 2
    crop = image[top : top + 288, left : left + 432].astype(np.float64)
    small = crop.reshape(96, 3, 144, 3, 3).mean(axis=(1, 3))
    np.save(REPO / "ckptconv" / "data" / "photo.npy", np.round(small).astype(np.uint8))


if __name__ == "__main__":
    main()
