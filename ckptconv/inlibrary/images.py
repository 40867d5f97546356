"""The images of an in-library check: the shipped photos, or ``--images DIR`` (a flat folder, or one
sub-folder per class as ImageNet's validation set is laid out), with labels from the folder names
(class i: the i-th folder name in sorted order, as pycls's ``ImageNet`` numbers them) or from
``--labels FILE`` (one class name per line: line i names class i). Read, never written.

pycls's side decodes as pycls does, ``cv2.imread`` (BGR; it applies a JPEG's EXIF orientation);
where OpenCV is not installed, PIL (which does not), else ckptconv's own PNG reader: the report
names the decoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import UsageError
from ..fields import describe
from ..io.labels import read_labels

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Image:
    """One image: its name as reports show it (the path under the folder), its file, its class (or None)."""

    name: str
    path: Path
    label: int | None = None


@dataclass(frozen=True)
class ImageSet:
    images: tuple[Image, ...]
    classes: tuple[str, ...] = ()  # class names by index, where the images are labelled
    where: str = "the shipped photos"

    def __iter__(self) -> Iterator[Image]:
        return iter(self.images)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labelled(self) -> bool:
        return bool(self.classes)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def shipped() -> ImageSet:
    from ..verification.photo import PHOTOS

    return ImageSet(tuple(Image(p.name, p) for p in sorted(PHOTOS.glob("*.png"))))


def image_set(folder: Path | None, labels: Path | None = None) -> ImageSet:
    """The images of ``folder`` (the shipped photos when None); a ``UsageError`` for a folder with none."""
    if folder is None:
        return shipped()
    if not folder.is_dir():
        raise UsageError(f"--images {folder}: not a folder", fix="give a folder of images, or one sub-folder of images per class")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and _files(p))
    names = read_labels(labels) if labels is not None else tuple(classes)
    index = {name: i for i, name in enumerate(names)}
    unknown = [c for c in classes if c not in index]
    if unknown:
        raise UsageError(f"--images {folder}: class folder {describe(unknown[0])} is not in --labels {labels}", fix="name every class folder in the labels file, one name per line")
    images = [Image(p.name, p, None) for p in _files(folder)]
    images += [Image(f"{c}/{p.name}", p, index[c]) for c in classes for p in _files(folder / c)]
    if not images:
        raise UsageError(f"--images {folder}: no images ({', '.join(SUFFIXES)}) in it or in its sub-folders", fix="give a folder of images")
    if classes and len(images) != sum(len(_files(folder / c)) for c in classes):
        raise UsageError(f"--images {folder}: images both at its top and in class folders", fix="put every image in its class folder, or none")
    return ImageSet(tuple(images), tuple(names) if classes else (), str(folder))


@lru_cache(maxsize=1)
def decoder() -> str:
    """How pycls's side decodes: OpenCV as pycls does, else PIL, else ckptconv's PNG reader."""
    for name in ("cv2", "PIL"):
        try:
            __import__(name)
            return name
        except ImportError:
            continue
    return "png"


def pycls_decode(path: Path):
    """The image as pycls reads it: 3 x H x W uint8 tensor, BGR."""
    import torch

    from ..io.png import read_rgb

    how = decoder()
    if how == "cv2":
        import cv2

        array = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if array is None:
            raise UsageError(f"{path}: OpenCV cannot decode it", fix="remove it from the folder, or convert it to PNG or JPEG")
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()
    return pil_decode(path).flip(0) if how == "PIL" else torch.from_numpy(read_rgb(path)).permute(2, 0, 1).flip(0).contiguous()


def pycls_crop(bgr, resize: int, crop: int):
    """pycls's resize and centre crop of a 3 x H x W uint8 BGR image, float32 0..255: with OpenCV
    itself where it is installed (``cv2.resize`` of float32 pixels, as pycls's ``transforms.scale``),
    else ``ckptconv.transforms`` (its arithmetic, within ~1e-6 of OpenCV's)."""
    import torch

    from ..transforms import crop_offsets, pycls_size, resize_crop

    if decoder() != "cv2":
        return resize_crop(bgr, resize, crop)
    import cv2

    image = bgr.permute(1, 2, 0).numpy().astype("float32")
    h, w = pycls_size(image.shape[0], image.shape[1], resize)
    if (h, w) != image.shape[:2]:
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    y, x = crop_offsets(h, w, crop)
    return torch.from_numpy(image[y : y + crop, x : x + crop].copy()).permute(2, 0, 1).contiguous()


def pil_decode(path: Path):
    """The image as PIL reads it (``Image.open(path).convert('RGB')``): 3 x H x W uint8 tensor, RGB."""
    import numpy as np
    import torch
    from PIL import Image as PIL

    try:
        with PIL.open(path) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1).contiguous()
    except OSError as e:
        raise UsageError(f"{path}: PIL cannot decode it ({e})", fix="remove it from the folder, or convert it to PNG or JPEG") from e
