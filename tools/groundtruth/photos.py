#!/usr/bin/env python3
"""Ground truth for issue 18: what pycls 0.1.1's ImageNet test pipeline feeds a network, on real photos,
and how far each library's preprocessing is from it.

Part of the ground truth the test suite holds ckptconv to (README.md beside this file; not part of the
ckptconv package). It runs in the gt environment with the real packages (see Run below) and writes

- ``ckptconv/data/photos/``: the photos ckptconv ships, made here from scikit-image's bundled sample
  photos (public domain / CC0 only; ``photos.json`` and ``LICENSE.md`` say where each comes from and
  what was done to it). PNG, 8-bit RGB, non-interlaced, one IDAT, every row filtered with PNG filter
  type 2 ("Up"), written by the small encoder below (zlib level 9) and read back by cv2, PIL and a
  decoder of its own.
- ``tests/data/pipelines/pycls_reference.json`` and ``pycls_reference.npz``: what pycls 0.1.1's own
  code (``pycls.datasets.imagenet.ImageNet.__getitem__`` on a one-image dataset, split ``val``) makes
  of every photo at every (TEST.IM_SIZE, TRAIN.IM_SIZE) of the zoo.
- ``tests/data/pipelines/facts.json``: the rules each package applies (resize size, crop offset,
  antialias, dtype, normalization), each with the file, function and source line it was read from
  (looked up in the installed source at run time: a rule that is no longer there stops the script),
  and the preprocessing ckptconv prints, rendered from the ``[config] template`` of
  ``mappings/*/layouts/*.toml`` with ckptconv's own mean/std and crop_pct rules.
- ``tests/data/pipelines/measurements.json``: max abs differences to pycls's input, per photo and
  size: each library's stock pipeline as ckptconv prints it, the step that causes each difference,
  candidate pipelines built from the libraries' public transforms (plus the small transforms
  written below where no library has one: a ceil-offset centre crop, pycls's resize-size rule, a
  pure-torch cv2 INTER_LINEAR; as torch modules and as mmcv transforms), and bilinear resamplers
  (that emulation, torch's interpolate) against cv2.resize.

With ``--printed`` it does none of the above and writes only

- ``tests/data/pipelines/printed.json``: the preprocessing ckptconv prints now, rendered by ckptconv
  itself (``ckptconv.tables.render.render_config`` as ``convert`` calls it, RGB weights; cross-checked
  against ``python -m ckptconv convert SRC OUT --to LAYOUT --json`` on synthetic pycls checkpoints)
  for torchvision, timm, mmpretrain and mmdet at b0 ... b5, regnetx_200mf, regnety_800mf and
  resnet50 (every (TEST.IM_SIZE, TRAIN.IM_SIZE) of the zoo in each family), each config's sha256
  and preprocessing lines, and each run as printed in the real libraries on every shipped photo
  (``ckptconv/data/photos/*.png``): max abs difference to pycls 0.1.1's own input. torchvision/timm:
  the snippet's imports and ``preprocess = ...`` executed (timm EfficientNet also its
  ``model = timm.create_model(...)`` and ``model.pretrained_cfg = dict(...)`` as printed, and what
  ``timm.data.resolve_data_config(model=model)``, with and without use_test_size=True, makes of that
  pretrained_cfg); the whole snippet is also run once with the file ``convert`` wrote. mmpretrain: mmengine's
  ``Config.fromstring`` (custom_imports imports ckptconv.mmengine), the test pipeline built with
  mmpretrain's TRANSFORMS, then the real ClsDataPreprocessor from the printed dict. mmdet:
  LoadImageFromFile, pycls's own resize and crop, the real DetDataPreprocessor from the printed dict
  (and the fragment pasted over the mmdet config its comment names). A printed line that raises is
  recorded verbatim under ``errors``. ckptconv is imported from this checkout (put first on sys.path).

Everything is deterministic: rerunning in the same environment on the same machine writes the same bytes
(the npz is written with fixed zip timestamps). Floats are per machine: another OpenCV build moves
pycls's own input (one without IPP by up to 6.6e-5 normalized: measurements.json, resamplers
cv2_no_ipp). tests/data/pipelines/README.md summarizes the results.

Run in the gt environment (requirements/gt.txt; README.md beside this file says how to make it; its
OpenCV must be opencv-python-headless 5.0.0.93 alone: opencv-python installed beside it replaces the
cv2 module, and versions() below would not notice), from the repository root:
    .venv/gt/bin/python tools/groundtruth/photos.py [--out-root DIR] [--printed]
--out-root defaults to the repository root (--printed reads the shipped photos and
pycls_reference.npz from this checkout and writes printed.json under DIR). mmcv-lite needs no
compiled ops here: ``mmcv._ext`` is stubbed (stubs.py); with the real torchvision installed, no
torchvision stub is needed; mmpretrain imports as it does without transformers (stubs.py says why).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import importlib.util
import inspect
import io
import json
import math
import os
import re
import sys
import tomllib
import types
import warnings
import zipfile
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import stubs  # noqa: E402  (tools/groundtruth/stubs.py: this folder is sys.path[0] when run as a script)

stubs.stub_mmcv_ext()
stubs.hide_multimodal_from_mmpretrain()

import cv2  # noqa: E402
import mmcv  # noqa: E402
import mmcv.image.geometric as mmcv_geometric  # noqa: E402
import mmcv.transforms  # noqa: E402
import mmcv.transforms.loading as mmcv_loading  # noqa: E402
import mmcv.transforms.processing as mmcv_processing  # noqa: E402
import mmdet  # noqa: E402
import mmdet.datasets.transforms  # noqa: E402,F401
import mmdet.models  # noqa: E402,F401
import mmengine.model.base_model.data_preprocessor as mmengine_preprocessor  # noqa: E402
import mmpretrain  # noqa: E402
import mmpretrain.datasets  # noqa: E402,F401  (registers mmpretrain's and mmcv's transforms)
import mmpretrain.datasets.transforms.processing as mmpretrain_processing  # noqa: E402
import mmpretrain.models  # noqa: E402,F401
import mmpretrain.models.utils.data_preprocessor as mmpretrain_preprocessor  # noqa: E402
import numpy as np  # noqa: E402
import PIL  # noqa: E402
import PIL.features  # noqa: E402
import pycls.datasets.imagenet as pycls_imagenet  # noqa: E402
import pycls.datasets.transforms as pycls_transforms  # noqa: E402
import skimage  # noqa: E402
import skimage.data  # noqa: E402
import timm  # noqa: E402
import timm.data  # noqa: E402
import timm.data.config as timm_config  # noqa: E402
import timm.data.transforms as timm_transforms  # noqa: E402
import timm.data.transforms_factory as timm_factory  # noqa: E402
import timm.models.efficientnet as timm_efficientnet  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
import torchvision.transforms as T1  # noqa: E402
import torchvision.transforms.functional as TF1  # noqa: E402
import torchvision.transforms.v2 as T2  # noqa: E402
import torchvision.transforms.v2.functional as TF2  # noqa: E402
import zoo  # noqa: E402  (tools/groundtruth/zoo.py: run as a script, this folder is sys.path[0])
from mmcv.transforms import BaseTransform  # noqa: E402
from mmdet.registry import MODELS as MMDET_MODELS  # noqa: E402
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmpretrain.registry import MODELS as MMPRE_MODELS  # noqa: E402
from mmpretrain.registry import TRANSFORMS as MMPRE_TRANSFORMS  # noqa: E402
from PIL import Image  # noqa: E402
from pycls.core.config import cfg as pycls_cfg  # noqa: E402

torch.set_num_threads(1)
warnings.filterwarnings("ignore", message="Anti-alias option is always applied for PIL Image input")

REPO_ROOT = zoo.REPO_ROOT

# Exact versions: the numbers below are about these packages.
EXPECTED_VERSIONS = {
    "pycls": "0.1.1", "torch": "2.14.1", "torchvision": "0.29.1", "timm": "1.0.31",
    "mmengine": "0.10.7", "mmcv-lite": "2.1.0", "mmpretrain": "1.2.0", "mmdet": "3.3.0",
    "opencv-python-headless": "5.0.0.93", "pillow": "13.0.0", "numpy": "2.4.6", "scikit-image": "0.26.0",
}


def versions() -> dict[str, str]:
    out = {name: importlib.metadata.version(name) for name in EXPECTED_VERSIONS}
    out["torch"] = out["torch"].split("+")[0]
    out["torchvision"] = out["torchvision"].split("+")[0]
    wrong = {k: v for k, v in out.items() if v != EXPECTED_VERSIONS[k]}
    if wrong:
        raise SystemExit(f"these versions differ from the pinned ones: {wrong} (expected {EXPECTED_VERSIONS})")
    out["python"] = sys.version.split()[0]
    out["cv2.__version__"] = cv2.__version__
    out["cv2 IPP"] = f"{cv2.ipp.useIPP()} ({cv2.ipp.getIppVersion()})"
    out["libjpeg_turbo (Pillow)"] = str(PIL.features.version("libjpeg_turbo"))
    out["zlib (Python)"] = zlib.ZLIB_RUNTIME_VERSION
    return out


# The zoo's (TEST.IM_SIZE, TRAIN.IM_SIZE) pairs, from zoo.py (pycls's configs/dds_baselines YAMLs).
def size_pairs() -> list[dict]:
    pairs = {(zoo.IM_SIZES[1], zoo.IM_SIZES[0]): ["regnetx_*", "regnety_*", "resnet*", "resnext*"]}
    for b, row in zoo.EFFNET.items():
        pairs.setdefault((row[5], row[4]), []).insert(0, b)
    return [{"resize": r, "crop": c, "models": m} for (r, c), m in sorted(pairs.items())]


SIZES = size_pairs()
assert [(s["resize"], s["crop"]) for s in SIZES] == [(256, 224), (274, 240), (298, 260), (342, 300), (434, 380), (522, 456)]


def key(r: int, c: int) -> str:
    return f"{r}_{c}"


TOL = 1e-4  # "reproduces pycls's input": max abs difference in normalized units
N_SAMPLES = 4096  # sampled values stored for the sizes whose full tensors are not stored
FULL_SIZE = (256, 224)  # full tensors stored for this pair

# ---------------------------------------------------------------------------------------------
# The photos: scikit-image's bundled sample photos whose docstring says public domain / CC0.
# ---------------------------------------------------------------------------------------------

PHOTOS = [
    {"name": "chelsea", "skimage": "chelsea", "file": "chelsea.png", "rot90_clockwise": 0, "rows": None, "cols": None,
     "licence": "CC0", "licence_phrase": "CC0 by the photographer (Stefan van der Walt)",
     "why": "landscape 451x300, scikit-image's chelsea unchanged (the photo of the existing fixture)",
     "expect": {"256_224": {"pycls_hw": [256, 384], "pycls_yx": [16, 80], "floor_hw": [256, 384], "round_yx": [16, 80]}}},
    {"name": "coffee_portrait", "skimage": "coffee", "file": "coffee.png", "rot90_clockwise": 1, "rows": (71, 529), "cols": None,
     "licence": "CC0", "licence_phrase": "CC0 by the photographer (Rachel Michetti)",
     "why": "portrait 400x458: at 256 pycls resizes it to 256x293 (w x h) and crops at y=35 where round-half-even crops at 34",
     "expect": {"256_224": {"pycls_hw": [293, 256], "pycls_yx": [35, 16], "floor_hw": [293, 256], "round_yx": [34, 16]}}},
    {"name": "astronaut_crop", "skimage": "astronaut", "file": "astronaut.png", "rot90_clockwise": 0, "rows": (0, 508), "cols": (28, 484),
     "licence": "public domain", "licence_phrase": "released into the public domain",
     "why": "portrait 456x508: at 342 pycls's float size rule gives 380 where floor(342*508/456) = 381 "
            "(the libraries' rule); at 256 h 285, crop y=31 vs 30",
     "expect": {"256_224": {"pycls_hw": [285, 256], "pycls_yx": [31, 16], "floor_hw": [285, 256], "round_yx": [30, 16]},
                "342_300": {"pycls_hw": [380, 342], "pycls_yx": [40, 21], "floor_hw": [381, 342], "round_yx": [40, 21]}}},
    {"name": "rocket_strip", "skimage": "rocket", "file": "rocket.jpg", "rot90_clockwise": 0, "rows": (210, 427), "cols": (100, 539),
     "licence": "public domain", "licence_phrase": "released in the public domain",
     "why": "wide 439x217 (bright lights on a dark sky): upscaled at every size; at 434 pycls's float rule gives "
            "877 where floor(434*439/217) = 878; at 256 w 517, crop x=147 vs 146",
     "expect": {"256_224": {"pycls_hw": [256, 517], "pycls_yx": [16, 147], "floor_hw": [256, 517], "round_yx": [16, 146]},
                "434_380": {"pycls_hw": [434, 877], "pycls_yx": [27, 249], "floor_hw": [434, 878], "round_yx": [27, 249]}}},
]


def photo_pixels(spec: dict) -> np.ndarray:
    """HWC uint8 RGB: scikit-image's sample, rotated and cropped as the spec says."""
    rgb = getattr(skimage.data, spec["skimage"])()
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, (spec["skimage"], rgb.shape)
    if spec["rot90_clockwise"]:
        rgb = np.rot90(rgb, k=-spec["rot90_clockwise"])
    if spec["rows"]:
        rgb = rgb[spec["rows"][0]:spec["rows"][1]]
    if spec["cols"]:
        rgb = rgb[:, spec["cols"][0]:spec["cols"][1]]
    return np.ascontiguousarray(rgb)


def photo_source(spec: dict) -> dict:
    """Where scikit-image says the sample comes from and under which terms (its docstring)."""
    fn = getattr(skimage.data, spec["skimage"])
    lines = inspect.getdoc(fn).splitlines()
    # drop numpydoc section headers ("Notes" over "-----")
    keep = [line for i, line in enumerate(lines)
            if not re.fullmatch(r"-{3,}", line.strip()) and not (i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip()))]
    doc = "\n".join(keep)
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
    terms = [p for p in paragraphs if spec["licence_phrase"] in p]
    if not terms:
        raise SystemExit(f"skimage.data.{spec['skimage']}'s docstring no longer says {spec['licence_phrase']!r}")
    urls = re.findall(r"<(https?://[^>]+)>", doc)
    bundled = Path(skimage.data.__file__).parent / spec["file"]
    return {
        "skimage_function": f"skimage.data.{spec['skimage']}",
        "bundled_file": f"skimage/data/{spec['file']}",
        "bundled_file_sha256": hashlib.sha256(bundled.read_bytes()).hexdigest(),
        "title": paragraphs[0],
        "terms_as_stated": terms[0],
        "urls_in_docstring": urls,
    }


# ---------------------------------------------------------------------------------------------
# PNG: a minimal encoder (8-bit RGB, every row filter type 2 "Up") and a decoder to check it.
# ---------------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def png_encode(rgb: np.ndarray) -> bytes:
    h, w, _ = rgb.shape
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])  # 8 bit, RGB, deflate, filter 0, no interlace
    rows = rgb.reshape(h, w * 3).astype(np.int16)
    up = ((rows - np.vstack([np.zeros((1, w * 3), np.int16), rows[:-1]])) % 256).astype(np.uint8)  # Up: x - x(row above)
    raw = np.hstack([np.full((h, 1), 2, np.uint8), up]).tobytes()
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def png_decode_up(data: bytes) -> np.ndarray:
    """Decodes exactly what png_encode writes (and checks that it is that): CRCs, IHDR, Up rows."""
    assert data[:8] == PNG_SIGNATURE
    pos, chunks = 8, []
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        assert int.from_bytes(data[pos + 8 + n:pos + 12 + n], "big") == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + n
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"], [k for k, _ in chunks]
    ihdr = chunks[0][1]
    w, h = int.from_bytes(ihdr[:4], "big"), int.from_bytes(ihdr[4:8], "big")
    assert ihdr[8:] == bytes([8, 2, 0, 0, 0])
    raw = np.frombuffer(zlib.decompress(chunks[1][1]), np.uint8).reshape(h, 1 + w * 3)
    assert (raw[:, 0] == 2).all(), "a row not filtered with Up"
    return np.cumsum(raw[:, 1:], axis=0, dtype=np.uint8).reshape(h, w, 3)  # uint8 cumsum wraps mod 256


# ---------------------------------------------------------------------------------------------
# Small helpers: hashes, deterministic npz and JSON, evidence from installed source.
# ---------------------------------------------------------------------------------------------

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed stamps the current time into the zip; this writes fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            body = io.BytesIO()
            np.lib.format.write_array(body, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, body.getvalue(), compresslevel=9)
    path.write_bytes(buf.getvalue())


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def maxabs(a, b) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _relpath(path: str) -> str:
    path = str(path)
    return path.split("site-packages/", 1)[1] if "site-packages/" in path else path


def evidence(obj, *needles: str) -> dict:
    """Where ``obj``'s installed source says each needle: file (relative to site-packages),
    function, line number and the line. A needle that is not there stops the script."""
    lines, start = inspect.getsourcelines(obj)
    start = max(start, 1)  # 0 for a module
    where = {"file": _relpath(inspect.getsourcefile(obj)), "function": getattr(obj, "__qualname__", getattr(obj, "__name__", "")), "lines": []}
    for needle in needles:
        hits = [i for i, line in enumerate(lines) if needle in line]
        if not hits:
            raise SystemExit(f"{where['file']}:{where['function']} no longer contains {needle!r}")
        where["lines"].append({"line": start + hits[0], "text": lines[hits[0]].strip()})
    return where


# ---------------------------------------------------------------------------------------------
# pycls 0.1.1's own test pipeline.
# ---------------------------------------------------------------------------------------------

def pycls_item(path: Path, resize: int, crop: int) -> np.ndarray:
    """``ImageNet.__getitem__`` of pycls 0.1.1 on a one-image dataset, split 'val': cv2.imread,
    astype(float32), _prepare_im (scale, center_crop, HWC->CHW, /255, color_norm)."""
    pycls_cfg.TEST.IM_SIZE, pycls_cfg.TRAIN.IM_SIZE = resize, crop
    dataset = pycls_imagenet.ImageNet.__new__(pycls_imagenet.ImageNet)  # no __init__: it lists a data folder
    dataset._data_path, dataset._split = str(path.parent), "val"
    dataset._imdb = [{"im_path": str(path), "class": 0}]
    im, label = dataset[0]
    assert label == 0 and im.dtype == np.float32 and im.shape == (3, crop, crop), (im.dtype, im.shape)
    return im


def pycls_scale(bgr: np.ndarray, resize: int) -> np.ndarray:
    return pycls_transforms.scale(resize, bgr.astype(np.float32))


def pycls_offsets(hw: tuple[int, int], crop: int) -> tuple[int, int]:
    """The (y, x) pycls's own center_crop picks: run it on an image whose pixels are their own indices."""
    h, w = hw
    index = np.stack([*np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), np.zeros((h, w), np.int64)], axis=2)
    corner = pycls_transforms.center_crop(crop, index)[0, 0]
    return int(corner[0]), int(corner[1])


MEAN_BGR = [float(v) for v in pycls_imagenet._MEAN]
STD_BGR = [float(v) for v in pycls_imagenet._SD]
MEAN_RGB, STD_RGB = MEAN_BGR[::-1], STD_BGR[::-1]


def pycls_norm(crop_hwc: np.ndarray) -> np.ndarray:
    """pycls's maths after the crop, on a float32 HWC BGR crop (checked bit-equal to pycls's own)."""
    im = crop_hwc.astype(np.float32, copy=False).transpose([2, 0, 1]) / 255.0
    for i in range(3):
        im[i] = (im[i] - MEAN_BGR[i]) / STD_BGR[i]
    return im


def pycls_size_rule(h: int, w: int, resize: int) -> tuple[int, int]:
    """pycls 0.1.1's transforms.scale size, written out: the short side to ``resize``, the long side
    int(floor((float(long) / short) * resize)) (a double division, then a multiplication), no
    resize when the short side already is ``resize``."""
    if (w <= h and w == resize) or (h <= w and h == resize):
        return h, w
    if w < h:
        return int(math.floor((float(h) / w) * resize)), resize
    return resize, int(math.floor((float(w) / h) * resize))


def ceil_offsets(hw: tuple[int, int], crop: int) -> tuple[int, int]:
    return math.ceil((hw[0] - crop) / 2), math.ceil((hw[1] - crop) / 2)


def round_offsets(hw: tuple[int, int], crop: int) -> tuple[int, int]:
    return int(round((hw[0] - crop) / 2.0)), int(round((hw[1] - crop) / 2.0))


def crop_at(img: np.ndarray, yx: tuple[int, int], crop: int) -> np.ndarray:
    y, x = yx
    out = img[y:y + crop, x:x + crop]
    assert out.shape[:2] == (crop, crop)
    return out


def locate(big: np.ndarray, small: np.ndarray) -> tuple[int, int]:
    """The (y, x) at which ``small`` (HWC) sits in ``big``: how a library cropped, read off its output."""
    ch, cw = small.shape[:2]
    hits = [(y, x) for y in range(big.shape[0] - ch + 1) for x in range(big.shape[1] - cw + 1)
            if np.array_equal(big[y, x], small[0, 0]) and np.array_equal(big[y:y + ch, x:x + cw], small)]
    assert len(hits) >= 1, "crop not found"
    return hits[0]


# ---------------------------------------------------------------------------------------------
# What ckptconv prints: rendered from its tables' [config] templates and [pipeline] sections.
# ---------------------------------------------------------------------------------------------

def _load_ckptconv_pipeline_module():
    """ckptconv's colour/normalization module (Pipeline, needed(), crop_pct()), imported from this
    checkout (its path has moved: both are tried)."""
    sys.path.insert(0, str(REPO_ROOT))
    for name in ("ckptconv.tables.pipeline", "ckptconv.preprocess"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        return module, name.replace(".", "/") + ".py"
    raise SystemExit("ckptconv's pipeline module (needed, crop_pct) not found")


CK, CK_PIPELINE_FILE = _load_ckptconv_pipeline_module()


def _toml(rel: str) -> dict:
    return tomllib.loads((REPO_ROOT / rel).read_text())


def _pipeline(table: dict):
    p = table["pipeline"]
    return CK.Pipeline(p["reads"], float(p["scale"]), p.get("flip_flag", ""), tuple(p["mean"]) if "mean" in p else None,
                       tuple(p["std"]) if "std" in p else None, p.get("order", "rgb"))


class _Blank(dict):
    def __missing__(self, k):
        return "" if k.endswith("_note") or k in ("init_prefix", "prefix") else "None"


def render(family: str, layout: str, variant: dict) -> str:
    """The config ckptconv prints for RGB weights (its default), placeholders it does not need for
    the preprocessing left as None."""
    table = _toml(f"mappings/{family}/layouts/{layout}.toml")
    stats = _pipeline(_toml(f"mappings/{family}/layouts/pycls.toml"))
    pre = CK.needed(_pipeline(table), "rgb", stats)
    v = variant["variant"]
    entry = variant.get("libraries", {}).get(layout, {})
    values = _Blank({
        "builder": entry.get("builder", "None"), "library_name": entry.get("name", "None"),
        "builder_note": f"# {entry['note']}\n" if entry.get("note") else "",
        "mean": pre.config()["mean"], "std": pre.config()["std"], "flip": pre.flip, "channel_order": pre.feeds.upper(),
        "crop_size": v["im_size"], "resize_size": v["test_size"], "crop_pct": CK.crop_pct(v["im_size"], v["test_size"]),
        "num_classes": v.get("num_classes", 1000), "arch": v["name"], "title": v.get("title", v["name"]),
        "checkpoint": "'/abs/path/weights.pth'",
    })
    return table["config"]["template"].format_map(values).strip() + "\n"


def _find_call(tree: ast.AST, dotted: str) -> ast.Call:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == dotted:
            return node
    raise SystemExit(f"no call to {dotted} in the rendered config")


def _assignment(tree: ast.Module, name: str) -> ast.Assign:
    for node in tree.body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [name]:
            return node
    raise SystemExit(f"no assignment to {name} in the rendered config")


def printed_torchvision(text: str) -> tuple[str, T1.Compose]:
    tree = ast.parse(text)
    node = _assignment(tree, "preprocess")
    src = ast.get_source_segment(text, node)
    ns = {"transforms": T1, "torch": torch, "torchvision": torchvision}
    exec(compile(ast.Module([node], []), "<ckptconv torchvision config>", "exec"), ns)
    return src, ns["preprocess"]


def _call_kwargs(call: ast.Call) -> dict:
    out = {}
    for kw in call.keywords:
        if isinstance(kw.value, ast.Call) and ast.unparse(kw.value.func) == "dict":
            out[kw.arg] = {k.arg: ast.literal_eval(k.value) for k in kw.value.keywords if k.arg != "file"}
        elif kw.arg not in ("file",):
            try:
                out[kw.arg] = ast.literal_eval(kw.value)
            except ValueError:
                out[kw.arg] = ast.unparse(kw.value)
    return out


def printed_timm(text: str) -> tuple[str, dict]:
    """('create_transform', kwargs) where the config calls create_transform (RegNet, ResNet), else
    ('pretrained_cfg', model statement, the keywords of ``model.pretrained_cfg = dict(...)``) (EfficientNet
    now), else ('create_model', model name, overlay) (EfficientNet as ckptconv printed it before:
    pretrained_cfg_overlay)."""
    tree = ast.parse(text)
    calls = {ast.unparse(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
    if "create_transform" in calls:
        call = calls["create_transform"]
        return ast.get_source_segment(text, call), {"form": "create_transform", "kwargs": _call_kwargs(call)}
    model, cfg = _timm_model_statement(tree), _timm_pretrained_cfg_statement(tree)
    if model is not None and cfg is not None:
        return ast.get_source_segment(text, cfg), {"form": "pretrained_cfg", "model": ast.unparse(model),
                                                   "pretrained_cfg": {kw.arg: ast.literal_eval(kw.value) for kw in cfg.value.keywords}}
    call = calls["timm.create_model"]
    kwargs = _call_kwargs(call)
    return ast.get_source_segment(text, call), {"form": "create_model", "model": ast.literal_eval(call.args[0]),
                                                 "pretrained_cfg_overlay": kwargs["pretrained_cfg_overlay"]}


def printed_mm(text: str, names: list[str]) -> tuple[str, Config]:
    tree = ast.parse(text)
    src = "\n".join(ast.get_source_segment(text, _assignment(tree, n)) for n in names)
    return src, Config.fromstring(text, ".py")


# ---------------------------------------------------------------------------------------------
# Transforms written here (where no library has one): a ceil-offset centre crop, pycls's size.
# ---------------------------------------------------------------------------------------------

class CeilCenterCrop(torch.nn.Module):
    """Centre crop at pycls's offset, ceil((L - C) / 2), on a (..., H, W) tensor."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        y, x = ceil_offsets((h, w), self.size)
        return TF2.crop(img, y, x, self.size, self.size)


class PyclsSizeResize(torch.nn.Module):
    """Bilinear resize of a (..., H, W) tensor to the size pycls's transforms.scale picks."""

    def __init__(self, size: int, antialias: bool = False):
        super().__init__()
        self.size, self.antialias = size, antialias

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        return TF2.resize(img, list(pycls_size_rule(h, w, self.size)), interpolation=T2.InterpolationMode.BILINEAR, antialias=self.antialias)


class Cv2LinearResize(torch.nn.Module):
    """pycls's size, resampled by the pure-torch cv2 INTER_LINEAR emulation below (double coordinates:
    what OpenCV's IPP path is closest to), on a (C, H, W) float tensor."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        hwc = img.permute(1, 2, 0).contiguous()
        return torch_cv2_linear(hwc, pycls_size_rule(h, w, self.size), "double").permute(2, 0, 1)


class MMCeilCenterCrop(BaseTransform):
    """mmcv-style transform: centre crop of results['img'] (HWC) at ceil((L - C) / 2)."""

    def __init__(self, crop_size: int):
        self.crop_size = crop_size

    def transform(self, results: dict) -> dict:
        img = results["img"]
        results["img"] = crop_at(img, ceil_offsets(img.shape[:2], self.crop_size), self.crop_size)
        results["img_shape"] = results["img"].shape[:2]
        return results


class MMPyclsResize(BaseTransform):
    """mmcv-style transform: mmcv.imresize (cv2, bilinear) to the size pycls's transforms.scale picks."""

    def __init__(self, scale: int):
        self.scale = scale

    def transform(self, results: dict) -> dict:
        h, w = results["img"].shape[:2]
        nh, nw = pycls_size_rule(h, w, self.scale)
        if (nh, nw) != (h, w):
            results["img"] = mmcv.imresize(results["img"], (nw, nh), interpolation="bilinear", backend="cv2")
        results["img_shape"] = results["img"].shape[:2]
        return results


class MMPyclsResizeCrop(BaseTransform):
    """pycls's own transforms.scale and center_crop on results['img'] (as float32, as pycls does)."""

    def __init__(self, resize: int, crop: int):
        self.resize, self.crop = resize, crop

    def transform(self, results: dict) -> dict:
        img = pycls_transforms.center_crop(self.crop, pycls_scale(results["img"], self.resize))
        results["img"], results["img_shape"] = np.ascontiguousarray(img), img.shape[:2]
        return results


def run_mm(steps: list, path: Path) -> dict:
    results = {"img_path": str(path)}
    for step in steps:
        results = step(results)
    return results


# ---------------------------------------------------------------------------------------------
# Bilinear resamplers in pure torch (HWC float32 in, HWC float32 out).
# ---------------------------------------------------------------------------------------------

def _axis(n_in: int, n_out: int, coords: str, clamp: bool):
    """Source index and float32 weight of the second tap for each output index.
    coords='cv2': scale = 1 / (out / in) in double, fx = float32((d + 0.5) * scale - 0.5),
    sx = floor(fx), fx -= sx in float32 (OpenCV's resize.cpp, generic path);
    coords='double': the same in double, the fraction rounded to float32 once."""
    scale = 1.0 / (n_out / n_in)
    d = torch.arange(n_out, dtype=torch.float64)
    f64 = (d + 0.5) * scale - 0.5
    if coords == "cv2":
        f32 = f64.to(torch.float32)
        s = torch.floor(f32)
        frac = f32 - s
    else:
        s = torch.floor(f64)
        frac = (f64 - s).to(torch.float32)
    s = s.to(torch.int64)
    if clamp:
        low, high = s < 0, s >= n_in - 1
        frac = torch.where(low | high, torch.zeros_like(frac), frac)
        s = torch.where(low, torch.zeros_like(s), torch.where(high, torch.full_like(s, n_in - 1), s))
    return s.clamp(0, n_in - 1), (s + 1).clamp(0, n_in - 1), frac


def torch_cv2_linear(img: torch.Tensor, out_hw: tuple[int, int], coords: str = "cv2") -> torch.Tensor:
    """cv2 INTER_LINEAR on float32, separable: horizontal pass, then vertical, float32 weights
    (1 - f, f), products summed without fusion. x: the index and weight clamped at both borders;
    y: with coords='cv2' the weight is not clamped (OpenCV clamps only the row index there), with
    coords='double' both axes are clamped (what IPP's result is closest to)."""
    h_in, w_in = img.shape[:2]
    x0, x1, fx = _axis(w_in, out_hw[1], coords, clamp=True)
    y0, y1, fy = _axis(h_in, out_hw[0], coords, clamp=(coords != "cv2"))
    one = torch.ones((), dtype=torch.float32)
    rows = img[:, x0] * (one - fx)[None, :, None] + img[:, x1] * fx[None, :, None]
    return rows[y0] * (one - fy)[:, None, None] + rows[y1] * fy[:, None, None]


def torch_interpolate(img: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    chw = img.permute(2, 0, 1)[None]
    out = F.interpolate(chw, size=list(out_hw), mode="bilinear", align_corners=False, antialias=False)
    return out[0].permute(1, 2, 0)


def cv2_resize(img: np.ndarray, out_hw: tuple[int, int], ipp: bool = True) -> np.ndarray:
    before = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(ipp)
    try:
        return cv2.resize(img, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)
    finally:
        cv2.ipp.setUseIPP(before)


def pil_float_resize(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """PIL's BILINEAR (antialiased: the filter support scales with the downscale factor) on float
    data, one 'F' image per channel: PIL's resampling without the uint8 rounding."""
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[:, :, c])).resize((out_hw[1], out_hw[0]), Image.Resampling.BILINEAR))
             for c in range(img.shape[2])]
    return np.stack(chans, axis=2).astype(np.float32)


def pil_u8_resize(rgb: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((out_hw[1], out_hw[0]), Image.Resampling.BILINEAR))


def tv_norm_of_crop(crop_bgr: np.ndarray) -> np.ndarray:
    """torchvision's ToTensor (/255) + Normalize on pycls's float crop (RGB), back in BGR."""
    t = torch.from_numpy(np.ascontiguousarray(crop_bgr[:, :, ::-1].transpose(2, 0, 1))).div(255)
    return T1.Normalize(MEAN_RGB, STD_RGB)(t).flip(0).numpy()


# ---------------------------------------------------------------------------------------------
# Facts: the rules, read in the installed sources.
# ---------------------------------------------------------------------------------------------

def facts_from_sources() -> dict:
    """The rules each package applies, each with the source it was read from (evidence() stops
    the script when a quoted line is no longer there)."""
    return {
        "pycls": pycls_source_facts(),
        "torchvision": torchvision_source_facts(),
        "timm": timm_source_facts(),
        "mmpretrain": mmpretrain_source_facts(),
        "mmcv_resize_keep_ratio": {
            "rule": "mmcv.transforms.Resize(scale, keep_ratio=True): factor = min(max(scale) / long, min(scale) / short), new size "
                    "int(x * factor + 0.5): rounds half up where pycls floors",
            "where": [evidence(mmcv_geometric.rescale_size, "scale_factor = min(max_long_edge / max(h, w),"),
                      evidence(mmcv_geometric._scale_size, "return int(w * float(scale[0]) + 0.5), int(h * float(scale[1]) + 0.5)")]},
        "mmdet": {
            "data_preprocessor": {"rule": "DetDataPreprocessor -> mmengine ImgDataPreprocessor.forward: bgr_to_rgb picks channels "
                                          "[2, 1, 0], .float(), (x - mean) / std in 0..255 units",
                                  "where": evidence(mmengine_preprocessor.ImgDataPreprocessor.forward, "_batch_input = _batch_input[[2, 1, 0], ...]",
                                                    "_batch_input = _batch_input.float()", "_batch_input = (_batch_input - self.mean) / self.std")},
        },
    }


def pycls_source_facts() -> dict:
    """pycls 0.1.1's ImageNet test pipeline (datasets/imagenet.py, datasets/transforms.py)."""
    return {
        "read": {"rule": "cv2.imread(path) (BGR uint8, HWC), then im.astype(np.float32, copy=False); never converted to RGB",
                 "where": evidence(pycls_imagenet.ImageNet.__getitem__, "cv2.imread(", "im.astype(np.float32, copy=False)")},
        "test_split": {"rule": "scale(TEST.IM_SIZE), center_crop(TRAIN.IM_SIZE), HWC->CHW, / 255.0, color_norm(_MEAN, _SD) (no PCA jitter, no flip)",
                       "where": evidence(pycls_imagenet.ImageNet._prepare_im, "transforms.scale(cfg.TEST.IM_SIZE, im)",
                                         "transforms.center_crop(train_size, im)", "im.transpose([2, 0, 1])", "im = im / 255.0",
                                         "transforms.color_norm(im, _MEAN, _SD)")},
        "resize_size": {"rule": "short side -> TEST.IM_SIZE; long side int(math.floor((float(long) / short) * size)): a double "
                                "division then a multiplication, so when long*size/short is a whole number the product can "
                                "land one ulp below it and floor gives one pixel less than the exact floor (see size_rule_scan)",
                        "where": evidence(pycls_transforms.scale, "int(math.floor((float(h) / w) * size))", "int(math.floor((float(w) / h) * size))")},
        "resize_skip": {"rule": "no resize (and no copy) when the short side already equals TEST.IM_SIZE",
                        "where": evidence(pycls_transforms.scale, "if (w <= h and w == size) or (h <= w and h == size):")},
        "resize_interpolation": {"rule": "cv2.resize(im, (w_new, h_new), interpolation=cv2.INTER_LINEAR) on the float32 image "
                                         "(no antialiasing; OpenCV's float path, no uint8 rounding), result astype(np.float32)",
                                 "where": evidence(pycls_transforms.scale, "cv2.resize(im, (w_new, h_new), interpolation=cv2.INTER_LINEAR)",
                                                   "return im.astype(np.float32)")},
        "crop_offset": {"rule": "y = int(math.ceil((h - size) / 2)), x = int(math.ceil((w - size) / 2)): an odd margin puts the "
                                "extra pixel before the crop",
                        "where": evidence(pycls_transforms.center_crop, "int(math.ceil((h - size) / 2))", "int(math.ceil((w - size) / 2))")},
        "color_norm": {"rule": "per channel, in place: im[i] = im[i] - mean[i]; im[i] = im[i] / std[i] (float32 array, Python "
                               "float scalars: float32 results)",
                       "where": evidence(pycls_transforms.color_norm, "im[i] = im[i] - mean[i]", "im[i] = im[i] / std[i]")},
        "mean_std": {"rule": "_MEAN / _SD in BGR order", "mean_bgr": MEAN_BGR, "std_bgr": STD_BGR,
                     "where": evidence(pycls_imagenet, "_MEAN = [", "_SD = [")},
    }


def torchvision_source_facts() -> dict:
    """torchvision's Resize, CenterCrop and ToTensor (v1 and v2)."""
    return {
        "resize_size": {"rule": "Resize(int): new_short = size, new_long = int(size * long / short) (exact floor: one division "
                                "of the exact product)",
                        "where": evidence(TF1._compute_resized_output_size, "new_short, new_long = requested_new_short, int(requested_new_short * long / short)")},
        "resize_skip": {"rule": "returns the input unchanged when the computed size equals its size (v1 and v2)",
                        "where": [evidence(TF1.resize, "if [image_height, image_width] == output_size:"),
                                  evidence(TF2.resize_image, "if (new_height, new_width) == (old_height, old_width):")]},
        "resize_pil": {"rule": "a PIL image is resized by PIL's Image.resize(BILINEAR), always antialiased (the antialias "
                               "argument is ignored for PIL, with a warning); uint8 in, uint8 out",
                       "where": [evidence(TF1.resize, "return F_pil.resize(img, size=output_size, interpolation=pil_interpolation)",
                                          "if antialias is False:"),
                                 evidence(torchvision.transforms._functional_pil.resize, "return img.resize(tuple(size[::-1]), interpolation)")]},
        "resize_tensor": {"rule": "a tensor is resized by torch.nn.functional.interpolate(mode='bilinear', align_corners=False, "
                                  "antialias=antialias); antialias defaults to True; float32 stays float32, uint8 is resized "
                                  "natively (rounded)",
                          "where": evidence(TF2.resize_image, "align_corners = False", "antialias=antialias,")},
        "crop_offset": {"rule": "crop_top = int(round((H - C) / 2.0)), crop_left likewise: Python round, half to even",
                        "where": [evidence(TF1.center_crop, "crop_top = int(round((image_height - crop_height) / 2.0))"),
                                  evidence(TF2._geometry._center_crop_compute_crop_anchor, "crop_top = int(round((image_height - crop_height) / 2.0))")]},
        "to_tensor": {"rule": "ToTensor: uint8 HWC -> float32 CHW, .div(255)",
                      "where": evidence(TF1.to_tensor, "return img.to(dtype=default_float_dtype).div(255)")},
    }


def timm_source_facts() -> dict:
    """timm's eval transform and how resolve_data_config picks its numbers."""
    return {
        "eval_transform": {"rule": "transforms_imagenet_eval, crop_mode 'center', square input: scale_size = "
                                   "math.floor(img_size / crop_pct); torchvision transforms.Resize(scale_size, interpolation), "
                                   "transforms.CenterCrop(img_size), MaybeToTensor(), Normalize(mean, std): torchvision's own "
                                   "v1 transforms on a PIL image (so torchvision's size, antialias and crop rules)",
                           "where": evidence(timm_factory.transforms_imagenet_eval, "scale_size = math.floor(img_size / crop_pct)",
                                             "transforms.Resize(scale_size[0], interpolation=str_to_interp_mode(interpolation))",
                                             "tfl += [transforms.CenterCrop(img_size)]", "MaybeToTensor(),")},
        "crop_mode": {"rule": "resolve_data_config takes crop_mode from the model's pretrained_cfg unless given; "
                              "efficientnet_b5's default tag (sw_in12k_ft_in1k) says crop_mode='squash', and "
                              "transforms_imagenet_eval then resizes both sides to scale_size (the aspect ratio is lost) "
                              "before the centre crop: a pretrained_cfg_overlay without crop_mode='center' inherits it",
                      "where": [evidence(timm_config.resolve_data_config, "elif pretrained_cfg.get('crop_mode', None):"),
                                evidence(timm_efficientnet, "input_size=(3, 448, 448), pool_size=(14, 14), crop_pct=1.0, crop_mode='squash'),"),
                                evidence(timm_factory.transforms_imagenet_eval, "if crop_mode == 'squash':")]},
        "test_size": {"rule": "resolve_data_config(use_test_size=True) prefers the pretrained_cfg's test_input_size and "
                              "test_crop_pct (efficientnet_b1..b4's default tags have them: 288/1.0, 288/1.0, 320/1.0, "
                              "384/1.0) over input_size / crop_pct; the overlay leaves them in place. timm's validate.py "
                              "(a repository script, not in the wheel) passes use_test_size=not args.use_train_size",
                      "where": [evidence(timm_config.resolve_data_config, "if use_test_size and pretrained_cfg.get('test_input_size', None) is not None:",
                                         "if use_test_size and pretrained_cfg.get('test_crop_pct', None):")]},
        "no_pycls_transform": {"rule": "timm.data has no resize without antialiasing and no ceil-offset crop: its transforms "
                                       "call torchvision's resize with its default antialias (no 'antialias' argument anywhere "
                                       "in transforms.py or transforms_factory.py), and its own centre crop rounds",
                               "antialias_mentions": {
                                   "timm/data/transforms.py": inspect.getsource(timm_transforms).count("antialias"),
                                   "timm/data/transforms_factory.py": inspect.getsource(timm_factory).count("antialias")},
                               "where": [evidence(timm_transforms.center_crop_or_pad, "crop_top = int(round((image_height - crop_height) / 2.0))"),
                                         evidence(timm_transforms.ResizeKeepRatio.__call__, "img = F.resize(img, size, interpolation)")]},
    }


def mmpretrain_source_facts() -> dict:
    """mmpretrain's test pipeline: mmcv's loading, ResizeEdge, CenterCrop, ClsDataPreprocessor."""
    return {
        "load": {"rule": "mmcv LoadImageFromFile: cv2 decode, BGR uint8 unless to_float32=True (default False)",
                 "where": evidence(mmcv_loading.LoadImageFromFile.__init__, "to_float32: bool = False,"),
                 "where_float": evidence(mmcv_loading.LoadImageFromFile.transform, "img = img.astype(np.float32)")},
        "resize_size": {"rule": "ResizeEdge(edge='short'): short side = scale, long side int(scale * long / short) (exact floor)",
                        "where": evidence(mmpretrain_processing.ResizeEdge.transform, "height = int(self.scale * h / w)", "width = int(self.scale * w / h)")},
        "resize_interpolation": {"rule": "mmcv.imresize(img, (w, h), interpolation, backend='cv2' by default) = cv2.resize(INTER_LINEAR) "
                                         "on the image's own dtype (uint8 from a stock LoadImageFromFile: fixed-point weights, rounded "
                                         "to uint8); no antialiasing; always called, even to the same size",
                                 "where": [evidence(mmpretrain_processing.ResizeEdge.__init__, "backend: str = 'cv2',"),
                                           evidence(mmpretrain_processing.ResizeEdge._resize_img, "img, w_scale, h_scale = mmcv.imresize("),
                                           evidence(mmcv_geometric.imresize, "resized_img = cv2.resize(")]},
        "crop": {"rule": "'CenterCrop' in mmpretrain's registry is mmcv.transforms.CenterCrop: y1 = max(0, int(round((H - C) / 2.))) (half to even)",
                 "class": f"{MMPRE_TRANSFORMS.get('CenterCrop').__module__}.{MMPRE_TRANSFORMS.get('CenterCrop').__qualname__}",
                 "where": evidence(mmcv_processing.CenterCrop.transform, "y1 = max(0, int(round((img_height - crop_height) / 2.)))")},
        "data_preprocessor": {"rule": "ClsDataPreprocessor: to_rgb flips channels, .float(), (x - mean) / std with mean/std in 0..255 units",
                              "where": evidence(mmpretrain_preprocessor.ClsDataPreprocessor.forward, "input_ = input_.flip(0)", "input_ = input_.float()",
                                                "input_ = (input_ - self.mean) / self.std")},
    }


def size_rule_scan() -> dict:
    """Every (short, long) in 16..2048 and every TEST.IM_SIZE of the zoo: where pycls's float rule
    differs from the exact floor the libraries use, and from mmcv keep_ratio's rounding."""
    out = {"range": [16, 2048], "by_resize": {}}
    s = np.arange(16, 2049, dtype=np.int64)[:, None]
    lng = np.arange(16, 2049, dtype=np.int64)[None, :]
    valid = lng >= s
    for resize in sorted({p["resize"] for p in SIZES}):
        pyc = np.floor((lng.astype(np.float64) / s) * resize)  # numpy float64 = Python float, same IEEE operations
        exact = (resize * lng) // s
        lib = np.floor((resize * lng).astype(np.float64) / s)  # torchvision / ResizeEdge: int(size * long / short)
        mask = valid & (s != resize)
        differ = mask & (pyc != exact)
        assert not (mask & (lib != exact)).any()
        examples = [[int(a), int(b), int(c), int(d)] for a, b, c, d in zip(np.broadcast_to(s, differ.shape)[differ][:8], np.broadcast_to(lng, differ.shape)[differ][:8],
                                                                         pyc[differ][:8], exact[differ][:8])]
        out["by_resize"][str(resize)] = {"pairs": int(mask.sum()), "pycls_one_less": int(differ.sum()),
                                         "pycls_more": int((mask & (pyc > exact)).sum()),
                                         "examples_short_long_pycls_exact": examples}
    return out


def size_rule_empirical(photo_sizes: list[tuple[int, int]]) -> dict:
    """The real transforms on blank images of the photos' sizes and of sizes where pycls's float
    rule is one pixel short (both orientations): what size each library really makes."""
    rules = {"pycls transforms.scale": "pycls", "torchvision v1 Resize(R) on PIL": "floor", "torchvision v2 Resize(R) on a tensor": "floor",
             "timm create_transform (crop_mode center) Resize": "floor", "mmpretrain ResizeEdge(R, 'short')": "floor",
             "mmcv Resize(scale=(R, 100000), keep_ratio=True)": "round"}
    out = {"rules": {"pycls": "pycls's float rule", "floor": "int(R * long / short)", "round": "int(long * (R / short) + 0.5)"},
           "by_transform": {name: {"rule": rule, "cases": 0, "agree": 0, "disagree": []} for name, rule in rules.items()}}
    for pair in SIZES:
        R = pair["resize"]
        short = np.arange(16, 700)[:, None]
        lng = np.arange(16, 700)[None, :]
        differ = (lng >= short) & (short != R) & (np.floor((lng.astype(np.float64) / short) * R) != (R * lng) // short)
        examples = [(int(a), int(b)) for a, b in zip(*np.nonzero(differ))][:4]
        cases = [(int(a) + 16, int(b) + 16) for a, b in examples]
        cases = photo_sizes + cases + [(b, a) for a, b in cases]
        timm_resize = timm.data.create_transform(input_size=(3, pair["crop"], pair["crop"]), interpolation="bilinear",
                                                 crop_pct=CK.crop_pct(pair["crop"], R)).transforms[0]
        resize_edge = MMPRE_TRANSFORMS.build(dict(type="ResizeEdge", scale=R, edge="short", interpolation="bilinear"))
        keep = MMPRE_TRANSFORMS.build(dict(type="Resize", scale=(R, 100000), keep_ratio=True, interpolation="bilinear"))
        for h, w in cases:
            zeros = np.zeros((h, w, 3), np.uint8)
            got = {
                "pycls transforms.scale": pycls_transforms.scale(R, zeros.astype(np.float32)).shape[:2],
                "torchvision v1 Resize(R) on PIL": T1.Resize(R)(Image.fromarray(zeros)).size[::-1],
                "torchvision v2 Resize(R) on a tensor": tuple(T2.Resize(R, antialias=False)(torch.zeros(3, h, w)).shape[-2:]),
                "timm create_transform (crop_mode center) Resize": timm_resize(Image.fromarray(zeros)).size[::-1],
                "mmpretrain ResizeEdge(R, 'short')": resize_edge({"img": zeros})["img"].shape[:2],
                "mmcv Resize(scale=(R, 100000), keep_ratio=True)": keep({"img": zeros})["img"].shape[:2],
            }
            short_, long_ = min(h, w), max(h, w)
            fl, rd = (R * long_) // short_, int(long_ * (R / short_) + 0.5)
            expected = {"pycls": pycls_size_rule(h, w, R),
                        "floor": (h, w) if short_ == R else (fl, R) if h > w else (R, fl),
                        "round": (rd, R) if h > w else (R, rd)}
            for name, rule in rules.items():
                rec = out["by_transform"][name]
                rec["cases"] += 1
                if tuple(got[name]) == tuple(expected[rule]):
                    rec["agree"] += 1
                else:
                    rec["disagree"].append({"R": R, "hw": [h, w], "got": list(got[name]), "rule_says": list(expected[rule])})
    return out


# ---------------------------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------------------------

def make_photos(photo_dir: Path) -> list[dict]:
    photo_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for spec in PHOTOS:
        rgb = photo_pixels(spec)
        data = png_encode(rgb)
        path = photo_dir / f"{spec['name']}.png"
        path.write_bytes(data)
        assert np.array_equal(png_decode_up(data), rgb)
        assert np.array_equal(cv2.imread(str(path)), rgb[:, :, ::-1]), "cv2.imread"
        with Image.open(path) as im:
            assert im.mode == "RGB" and im.info.get("interlace", 0) == 0
            assert np.array_equal(np.asarray(im.convert("RGB")), rgb), "PIL"
        ops = []
        if spec["rot90_clockwise"]:
            ops.append(f"rotated 90 degrees clockwise (np.rot90(k=-{spec['rot90_clockwise']}))")
        if spec["rows"]:
            ops.append(f"rows {spec['rows'][0]}:{spec['rows'][1]}")
        if spec["cols"]:
            ops.append(f"columns {spec['cols'][0]}:{spec['cols'][1]}")
        records.append({
            "file": path.name, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "bytes": len(data),
            "sha256": sha256(data), "rgb_pixels_sha256": sha256(rgb.tobytes()),
            "licence": spec["licence"], "source": photo_source(spec),
            "derived_by": ", then ".join(ops) if ops else "unchanged",
            "why": spec["why"],
        })
    return records


def photo_licence_md(records: list[dict], vers: dict) -> str:
    lines = ["# Photos", "",
             "Real photos for ckptconv's pipeline check, made by `tools/groundtruth/photos.py` from the sample photos",
             f"bundled with scikit-image {vers['scikit-image']} (`skimage/data/`). Only samples whose scikit-image docstring",
             "states public domain or CC0 are used; the terms below are quoted from those docstrings",
             "(`skimage/data/_fetchers.py`; scikit-image's `skimage/data/README.txt` lists no terms). `photos.json` holds",
             "the same with sizes and hashes.", "",
             "PNG, 8-bit RGB, non-interlaced, one IDAT, every row filtered with PNG filter type 2 (\"Up\"): a decoder",
             "that inflates the IDAT and adds each row to the row above (mod 256) reads them. cv2 and PIL decode them",
             "to exactly these pixels (checked when they are written).", "",
             "| file | size | from | terms | derived by |", "|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| `{r['file']}` | {r['width']}x{r['height']} | `{r['source']['skimage_function']}` ({r['source']['title']}) | "
                     f"{r['licence']}: \"{r['source']['terms_as_stated']}\" {' '.join('<' + u + '>' for u in r['source']['urls_in_docstring'])} | {r['derived_by']} |")
    lines += ["", "The rocket is scikit-image's `rocket.jpg` decoded by Pillow "
              f"{vers['pillow']} (libjpeg-turbo {vers['libjpeg_turbo (Pillow)']}); the others are PNGs in scikit-image.", ""]
    return "\n".join(lines)


def variant_tables() -> dict[str, tuple[str, dict]]:
    """{label: (family, variant table)} for the preprocessing ckptconv prints, per size."""
    out = {}
    for b in zoo.EFFNET:
        out[b] = ("effnet", _toml(f"mappings/effnet/variants/{b}.toml"))
    out["regnetx_200mf"] = ("regnet", _toml("mappings/regnet/variants/regnetx_200mf.toml"))
    out["resnet50"] = ("resnet", _toml("mappings/resnet/variants/resnet50.toml"))
    for label, (fam, table) in out.items():
        v = table["variant"]
        want = (zoo.EFFNET[label][4], zoo.EFFNET[label][5]) if fam == "effnet" else zoo.IM_SIZES
        assert (v["im_size"], v["test_size"]) == tuple(want), (label, v)
    return out


def printed_configs(variants: dict) -> dict:
    """For each size pair: the variant whose printed config is measured and each library's snippet."""
    by_size = {}
    for label, (fam, table) in variants.items():
        v = table["variant"]
        entry = by_size.setdefault(key(v["test_size"], v["im_size"]), {})
        snippets = {}
        snippets["torchvision"] = printed_torchvision(render(fam, "torchvision", table))[0]
        snippets["timm"] = printed_timm(render(fam, "timm", table))[0]
        snippets["mmpretrain"] = printed_mm(render(fam, "mmpretrain", table), ["data_preprocessor", "test_pipeline"])[0]
        snippets["mmdet"] = printed_mm(render(fam, "mmdet", table), ["model"])[1].model.data_preprocessor.to_dict()
        snippets["crop_pct"] = CK.crop_pct(v["im_size"], v["test_size"])
        entry[label] = snippets
    return by_size


# What the EfficientNet timm overlay must also set: efficientnet_b5's default tag (sw_in12k_ft_in1k) has
# crop_mode='squash', and the B1-B4 tags have test_input_size / test_crop_pct, which
# resolve_data_config(use_test_size=True) (timm's validate.py) prefers over input_size / crop_pct.
TIMM_OVERLAY_FIX = {"crop_mode": "center", "test_input_size": None, "test_crop_pct": None}


class Libraries:
    """Each library's stock preprocessing, built from what ckptconv prints for one variant."""

    def __init__(self, fam: str, table: dict):
        v = table["variant"]
        self.resize, self.crop = v["test_size"], v["im_size"]
        self.tv_src, self.tv = printed_torchvision(render(fam, "torchvision", table))
        self.timm_src, self.timm_printed = printed_timm(render(fam, "timm", table))
        if self.timm_printed["form"] == "pretrained_cfg":
            ns = {"timm": timm}
            exec(self.timm_printed["model"], ns)
            model = ns["model"]
            model.pretrained_cfg = dict(model.pretrained_cfg or {}, **self.timm_printed["pretrained_cfg"])
            self.timm_cfg = timm.data.resolve_data_config(model=model)
            self.timm_cfg_test = timm.data.resolve_data_config(model=model, use_test_size=True)
            self.timm_default_cfg = {k: model.pretrained_cfg.get(k) for k in TIMM_PRETRAINED_CFG_KEYS}
            self.timm_cfg_fixed = dict(self.timm_cfg)
            del model
        elif self.timm_printed["form"] == "create_model":
            model = timm.create_model(self.timm_printed["model"], pretrained=False,
                                      pretrained_cfg_overlay=self.timm_printed["pretrained_cfg_overlay"])
            self.timm_cfg = timm.data.resolve_data_config({}, model=model)
            assert self.timm_cfg == timm.data.resolve_model_data_config(model)
            self.timm_cfg_test = timm.data.resolve_data_config({}, model=model, use_test_size=True)
            self.timm_default_cfg = {k: model.pretrained_cfg.get(k) for k in ("tag", "mean", "std", "input_size", "crop_pct", "crop_mode",
                                                                              "interpolation", "test_input_size", "test_crop_pct")}
            # The overlay with what it leaves to the model's default tag pinned as well.
            fixed = timm.create_model(self.timm_printed["model"], pretrained=False,
                                      pretrained_cfg_overlay={**self.timm_printed["pretrained_cfg_overlay"], **TIMM_OVERLAY_FIX})
            self.timm_cfg_fixed = timm.data.resolve_data_config({}, model=fixed)
            assert self.timm_cfg_fixed == timm.data.resolve_data_config({}, model=fixed, use_test_size=True)
            del model, fixed
        else:
            kw = self.timm_printed["kwargs"]
            self.timm_cfg = {k: kw[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct")}
            self.timm_cfg_test = self.timm_default_cfg = None
            self.timm_cfg_fixed = dict(self.timm_cfg, crop_mode="center")
        self.timm = timm.data.create_transform(**self.timm_cfg)
        self.timm_fixed = timm.data.create_transform(**self.timm_cfg_fixed)
        self.mmpre_src, mmpre = printed_mm(render(fam, "mmpretrain", table), ["data_preprocessor", "test_pipeline"])
        self.mmpre_pipeline_cfg = [dict(t) for t in mmpre.test_pipeline]
        self.mmpre_pre = MMPRE_MODELS.build(dict(type="ClsDataPreprocessor", **mmpre.data_preprocessor.to_dict()))
        mmdet_cfg = printed_mm(render(fam, "mmdet", table), ["model"])[1]
        self.mmdet_pre_cfg = mmdet_cfg.model.data_preprocessor.to_dict()
        self.mmdet_pre = MMDET_MODELS.build(dict(type="DetDataPreprocessor", **self.mmdet_pre_cfg))

    def mmpre_steps(self, *, to_float32: bool = False, crop: str = "stock", resize: str = "stock") -> list:
        steps = []
        for t in self.mmpre_pipeline_cfg:
            t = dict(t)
            if t["type"] == "LoadImageFromFile" and to_float32:
                t["to_float32"] = True
            if t["type"] == "ResizeEdge" and resize != "stock":
                steps.append({"pycls": MMPyclsResize(self.resize),
                              "keep_ratio": MMPRE_TRANSFORMS.build(dict(type="Resize", scale=(self.resize, 100000), keep_ratio=True,
                                                                        interpolation="bilinear"))}[resize])
                continue
            if t["type"] == "CenterCrop" and crop == "ceil":
                steps.append(MMCeilCenterCrop(self.crop))
                continue
            steps.append(MMPRE_TRANSFORMS.build(t))
        return steps

    def mmpre_run(self, path: Path, steps: list) -> torch.Tensor:
        packed = run_mm(steps, path)
        return self.mmpre_pre({"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, False)["inputs"][0]

    def mmdet_run(self, path: Path, to_float32: bool) -> torch.Tensor:
        steps = [MMDET_TRANSFORMS.build(dict(type="LoadImageFromFile", to_float32=to_float32)),
                 MMPyclsResizeCrop(self.resize, self.crop), MMDET_TRANSFORMS.build(dict(type="PackDetInputs"))]
        packed = run_mm(steps, path)
        return self.mmdet_pre({"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, False)["inputs"][0]


def tv_candidates(R: int, C: int, timm_cfg: dict) -> dict:
    """Candidate pipelines (PIL image in, normalized RGB CHW out), public transforms plus CeilCenterCrop
    and PyclsSizeResize from above."""
    m255, s255 = [m * 255 for m in MEAN_RGB], [s * 255 for s in STD_RGB]
    BIL = T2.InterpolationMode.BILINEAR
    scale_size = math.floor(timm_cfg["input_size"][-1] / timm_cfg["crop_pct"])
    tm255, ts255 = [m * 255 for m in timm_cfg["mean"]], [s * 255 for s in timm_cfg["std"]]
    interp = timm_transforms.str_to_interp_mode(timm_cfg["interpolation"])
    tc = timm_cfg["input_size"][-1]
    return {
        "torchvision.v1_pil_antialias_false": T1.Compose([T1.Resize(R, interpolation=T1.InterpolationMode.BILINEAR, antialias=False),
                                                          T1.CenterCrop(C), T1.ToTensor(), T1.Normalize(MEAN_RGB, STD_RGB)]),
        "torchvision.v2_float255_noaa_stockcrop": T2.Compose([T2.PILToTensor(), T2.ToDtype(torch.float32, scale=False),
                                                              T2.Resize(R, interpolation=BIL, antialias=False), T2.CenterCrop(C),
                                                              T2.Normalize(m255, s255)]),
        "torchvision.v2_float255_noaa_ceilcrop": T2.Compose([T2.PILToTensor(), T2.ToDtype(torch.float32, scale=False),
                                                             T2.Resize(R, interpolation=BIL, antialias=False), CeilCenterCrop(C),
                                                             T2.Normalize(m255, s255)]),
        "torchvision.v2_float01_noaa_ceilcrop": T2.Compose([T2.PILToTensor(), T2.ToDtype(torch.float32, scale=True),
                                                            T2.Resize(R, interpolation=BIL, antialias=False), CeilCenterCrop(C),
                                                            T2.Normalize(MEAN_RGB, STD_RGB)]),
        "torchvision.v1_tensor_float255_noaa_ceilcrop": T1.Compose([T1.PILToTensor(), T1.Lambda(lambda t: t.to(torch.float32)),
                                                                    T1.Resize(R, interpolation=T1.InterpolationMode.BILINEAR, antialias=False),
                                                                    CeilCenterCrop(C), T1.Normalize(m255, s255)]),
        "torchvision.v1_tensor_float01_noaa_ceilcrop": T1.Compose([T1.PILToTensor(), T1.ConvertImageDtype(torch.float32),
                                                                   T1.Resize(R, interpolation=T1.InterpolationMode.BILINEAR, antialias=False),
                                                                   CeilCenterCrop(C), T1.Normalize(MEAN_RGB, STD_RGB)]),
        "torchvision.v2_float255_antialias_ceilcrop": T2.Compose([T2.PILToTensor(), T2.ToDtype(torch.float32, scale=False),
                                                                  T2.Resize(R, interpolation=BIL, antialias=True), CeilCenterCrop(C),
                                                                  T2.Normalize(m255, s255)]),
        "torchvision.v2_uint8_noaa_ceilcrop": T2.Compose([T2.PILToTensor(), T2.Resize(R, interpolation=BIL, antialias=False),
                                                          CeilCenterCrop(C), T2.ToDtype(torch.float32, scale=False), T2.Normalize(m255, s255)]),
        "torchvision.v2_float255_noaa_pyclssize_ceilcrop": T2.Compose([T2.PILToTensor(), T2.ToDtype(torch.float32, scale=False),
                                                                       PyclsSizeResize(R), CeilCenterCrop(C), T2.Normalize(m255, s255)]),
        "torchvision.v2_float255_cv2emulation_pyclssize_ceilcrop": T2.Compose([T2.PILToTensor(), T2.ToDtype(torch.float32, scale=False),
                                                                               Cv2LinearResize(R), CeilCenterCrop(C), T2.Normalize(m255, s255)]),
        "timm.cfg_v2_float255_noaa_ceilcrop": T2.Compose([timm_transforms.MaybePILToTensor(), T2.ToDtype(torch.float32, scale=False),
                                                          T2.Resize(scale_size, interpolation=interp, antialias=False), CeilCenterCrop(tc),
                                                          T2.Normalize(tm255, ts255)]),
        "timm.cfg_v2_float255_noaa_pyclssize_ceilcrop": T2.Compose([timm_transforms.MaybePILToTensor(), T2.ToDtype(torch.float32, scale=False),
                                                                    PyclsSizeResize(scale_size), CeilCenterCrop(tc), T2.Normalize(tm255, ts255)]),
    }


CANDIDATE_NOTES = {
    "torchvision.v1_pil_antialias_false": "v1 Resize(R, BILINEAR, antialias=False) on the PIL image: PIL ignores it (still antialiased, uint8)",
    "torchvision.v2_float255_noaa_stockcrop": "v2 PILToTensor, ToDtype(float32, scale=False), Resize(R, BILINEAR, antialias=False), CenterCrop(C), Normalize(255*mean, 255*std)",
    "torchvision.v2_float255_noaa_ceilcrop": "as above with CeilCenterCrop(C) (written here)",
    "torchvision.v2_float01_noaa_ceilcrop": "v2 ToDtype(float32, scale=True) (/255 first), Resize(antialias=False), CeilCenterCrop, Normalize(mean, std)",
    "torchvision.v1_tensor_float255_noaa_ceilcrop": "v1 PILToTensor, Lambda(float32), Resize(antialias=False), CeilCenterCrop, Normalize(255*mean, 255*std)",
    "torchvision.v1_tensor_float01_noaa_ceilcrop": "v1 PILToTensor, ConvertImageDtype(float32) (/255), Resize(antialias=False), CeilCenterCrop, Normalize(mean, std)",
    "torchvision.v2_float255_antialias_ceilcrop": "v2 on float32 with antialias=True (the default), CeilCenterCrop",
    "torchvision.v2_uint8_noaa_ceilcrop": "v2 Resize(antialias=False) on the uint8 tensor (torch rounds to uint8), then float, CeilCenterCrop",
    "torchvision.v2_float255_noaa_pyclssize_ceilcrop": "v2 on float32, PyclsSizeResize(R) (pycls's size rule, antialias=False; written here), CeilCenterCrop",
    "torchvision.v2_float255_cv2emulation_pyclssize_ceilcrop": "v2 PILToTensor, ToDtype(float32, scale=False), Cv2LinearResize(R) (pycls's size, "
                                                               "the pure-torch cv2 emulation with double coordinates; written here), CeilCenterCrop, Normalize(255*mean, 255*std)",
    "timm.printed_plus_crop_mode_center": "the printed timm config with crop_mode='center', test_input_size=None, test_crop_pct=None added to the "
                                          "overlay, then create_transform(**resolve_data_config({}, model=model)) (timm's stock transforms)",
    "timm.cfg_v2_float255_noaa_ceilcrop": "timm's resolved data config (with the crop_mode fix above) (scale_size = floor(C / crop_pct), mean, std, interpolation), timm's MaybePILToTensor, "
                                          "then torchvision v2 ToDtype(float32), Resize(scale_size, antialias=False), CeilCenterCrop, Normalize(255*mean, 255*std)",
    "timm.cfg_v2_float255_noaa_pyclssize_ceilcrop": "as above with PyclsSizeResize(scale_size)",
    "mmpretrain.f32_resizeedge_stockcrop": "LoadImageFromFile(to_float32=True), ResizeEdge(R, 'short', bilinear, backend cv2), CenterCrop(C), PackInputs, ClsDataPreprocessor",
    "mmpretrain.f32_resizeedge_ceilcrop": "LoadImageFromFile(to_float32=True), ResizeEdge, MMCeilCenterCrop(C) (written here), PackInputs, ClsDataPreprocessor",
    "mmpretrain.u8_resizeedge_ceilcrop": "stock LoadImageFromFile (uint8), ResizeEdge, MMCeilCenterCrop, PackInputs, ClsDataPreprocessor",
    "mmpretrain.f32_keepratio_ceilcrop": "LoadImageFromFile(to_float32=True), mmcv Resize(scale=(R, 100000), keep_ratio=True), MMCeilCenterCrop, PackInputs, ClsDataPreprocessor",
    "mmpretrain.f32_pyclssize_ceilcrop": "LoadImageFromFile(to_float32=True), MMPyclsResize(R) (mmcv.imresize to pycls's size; written here), MMCeilCenterCrop, PackInputs, ClsDataPreprocessor",
    "mmdet.stock_u8load": "stock LoadImageFromFile (uint8), pycls's own scale + center_crop (on float32), PackDetInputs, DetDataPreprocessor as printed",
    "mmdet.f32load": "LoadImageFromFile(to_float32=True), pycls's own scale + center_crop, PackDetInputs, DetDataPreprocessor as printed",
}


def library_sizes(lib: Libraries, path: Path, bgr: np.ndarray, rgb: np.ndarray) -> dict:
    """Each library's resized size and crop offset, read off its real output."""
    out = {}
    pil = Image.open(path).convert("RGB")
    tv_resize, tv_crop = lib.tv.transforms[0], lib.tv.transforms[1]
    resized = tv_resize(pil)
    out["torchvision"] = {"resized_hw": [resized.height, resized.width],
                          "crop_yx": list(locate(np.asarray(resized), np.asarray(tv_crop(resized))))}
    timm_resize, timm_crop = lib.timm.transforms[0], lib.timm.transforms[1]
    resized = timm_resize(pil)
    out["timm"] = {"resized_hw": [resized.height, resized.width],
                   "crop_yx": list(locate(np.asarray(resized), np.asarray(timm_crop(resized)))),
                   "scale_size": math.floor(lib.timm_cfg["input_size"][-1] / lib.timm_cfg["crop_pct"]),
                   "crop_mode": lib.timm_cfg.get("crop_mode", "center"), "first_transform": repr(timm_resize)}
    steps = lib.mmpre_steps()
    results = {"img_path": str(path)}
    for step in steps:
        before = results.get("img")
        results = step(results)
        if type(step).__name__ == "CenterCrop":
            out["mmpretrain"] = {"resized_hw": list(before.shape[:2]), "crop_yx": list(locate(before, results["img"]))}
    keep = lib.mmpre_steps(to_float32=True, resize="keep_ratio")[:2]
    out["mmcv_resize_keep_ratio"] = {"resized_hw": list(run_mm(keep, path)["img"].shape[:2])}
    return out


def measure_photo(path: Path, name: str, lib: Libraries, store: dict) -> dict:
    """measurements.json's entry of one photo at one size: pycls's own input (also kept in
    store["P"]), each library's stock pipeline, each effect alone, the candidates, the resamplers."""
    R, C = lib.resize, lib.crop
    bgr = cv2.imread(str(path))
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    h, w = bgr.shape[:2]
    P = pycls_item(path, R, C)  # pycls's own input, CHW BGR float32
    resized = pycls_scale(bgr, R)
    hw = tuple(resized.shape[:2])
    ref = pycls_reference_record(bgr, resized, P, R, C)
    store["P"] = P

    sizes = library_sizes(lib, path, bgr, rgb)
    res = {"pycls": ref, "library_sizes": sizes, "floor_rule_agrees": sizes["torchvision"]["resized_hw"] == list(hw), "stock": {}, "effects": {}, "candidates": {}, "resamplers": {}}
    pil = Image.open(path).convert("RGB")
    res["stock"] = stock_results(path, pil, lib, P)
    res["effects"] = effect_results(bgr, rgb, resized, sizes, lib, P)
    res["candidates"] = candidate_results(path, pil, lib, P, res["stock"]["mmdet"])
    res["resamplers"] = resampler_results(bgr, resized, C, P)
    return res


def pycls_reference_record(bgr, resized, P, R: int, C: int) -> dict:
    """pycls's resize and crop, checked against the rules written here, and its input's stats."""
    h, w = bgr.shape[:2]
    hw = tuple(resized.shape[:2])
    yx = pycls_offsets(hw, C)
    assert hw == pycls_size_rule(h, w, R) and yx == ceil_offsets(hw, C)
    assert np.array_equal(pycls_norm(crop_at(resized, yx, C)), P), "pycls maths not reproduced"
    return {"resized_hw": list(hw), "crop_yx": list(yx),
            "resized_channel_sums_bgr": [float(v) for v in resized.astype(np.float64).sum(axis=(0, 1))],
            "input_channel_stats_bgr": {stat: [float(getattr(np, stat)(P[c].astype(np.float64))) for c in range(3)]
                                        for stat in ("mean", "std", "min", "max")}}


def stock_results(path: Path, pil, lib: Libraries, P) -> dict:
    """Each library's stock pipeline, as printed: max abs difference to pycls's input."""
    return {"torchvision": maxabs(lib.tv(pil).flip(0), P),
            "timm": maxabs(lib.timm(pil).flip(0), P),
            "mmpretrain": maxabs(lib.mmpre_run(path, lib.mmpre_steps()).flip(0), P),
            "mmdet": maxabs(lib.mmdet_run(path, to_float32=False).flip(0), P)}


def _at_ceil(img_hwc, C: int):
    """pycls's ceil-offset centre crop and normalization of a resized HWC BGR image."""
    return pycls_norm(crop_at(img_hwc, ceil_offsets(img_hwc.shape[:2], C), C))


def effect_results(bgr, rgb, resized, sizes: dict, lib: Libraries, P) -> dict:
    """Which step: each effect alone (size rule, crop offset, antialias, uint8, normalization
    maths), everything else as pycls does it."""
    C = lib.crop
    hw = tuple(resized.shape[:2])
    yx = pycls_offsets(hw, C)
    crop_round = pycls_norm(crop_at(resized, round_offsets(hw, C), C))
    pil_f = _at_ceil(pil_float_resize(bgr.astype(np.float32), hw), C)
    pil_u8 = _at_ceil(pil_u8_resize(rgb, hw)[:, :, ::-1].astype(np.float32), C)
    cv_u8 = _at_ceil(cv2_resize(bgr, hw).astype(np.float32), C)
    effects = {}
    for libname in ("torchvision", "timm", "mmpretrain"):
        lhw = tuple(sizes[libname]["resized_hw"])
        eff = {"size_rule": 0.0 if lhw == hw else maxabs(_at_ceil(cv2_resize(bgr.astype(np.float32), lhw), C), P),
               "crop_offset": maxabs(crop_round, P) if round_offsets(hw, C) != yx else 0.0}
        if libname == "mmpretrain":
            eff["antialias"] = 0.0  # cv2 INTER_LINEAR: none
            eff["uint8"] = maxabs(cv_u8, P)
            crop_t = torch.from_numpy(np.ascontiguousarray(crop_at(resized, yx, C).transpose(2, 0, 1)))
            eff["normalization_maths"] = maxabs(lib.mmpre_pre({"inputs": [crop_t], "data_samples": [None]}, False)["inputs"][0].flip(0), P)
        else:
            eff["antialias"] = maxabs(pil_f, P)
            eff["uint8"] = maxabs(pil_u8, pil_f)
            eff["normalization_maths"] = maxabs(tv_norm_of_crop(crop_at(resized, yx, C)), P)
        effects[libname] = eff
    return effects


def candidate_results(path: Path, pil, lib: Libraries, P, mmdet_stock: float) -> dict:
    """Candidate pipelines built from the libraries' public transforms (and the small ones
    written here): max abs difference to pycls's input."""
    out = {"timm.printed_plus_crop_mode_center": maxabs(lib.timm_fixed(pil).flip(0), P)}
    for cname, tf in tv_candidates(lib.resize, lib.crop, lib.timm_cfg_fixed).items():
        out[cname] = maxabs(tf(pil).flip(0), P)
    mm = {"mmpretrain.f32_resizeedge_stockcrop": dict(to_float32=True),
          "mmpretrain.f32_resizeedge_ceilcrop": dict(to_float32=True, crop="ceil"),
          "mmpretrain.u8_resizeedge_ceilcrop": dict(crop="ceil"),
          "mmpretrain.f32_keepratio_ceilcrop": dict(to_float32=True, crop="ceil", resize="keep_ratio"),
          "mmpretrain.f32_pyclssize_ceilcrop": dict(to_float32=True, crop="ceil", resize="pycls")}
    for cname, kw in mm.items():
        out[cname] = maxabs(lib.mmpre_run(path, lib.mmpre_steps(**kw)).flip(0), P)
    out["mmdet.stock_u8load"] = mmdet_stock
    out["mmdet.f32load"] = maxabs(lib.mmdet_run(path, to_float32=True).flip(0), P)
    return out


def resampler_results(bgr, resized, C: int, P) -> dict:
    """Bilinear resamplers against cv2.resize (pycls's resize), on the whole resized image."""
    hw = tuple(resized.shape[:2])
    src = bgr.astype(np.float32)
    cv_noipp = cv2_resize(src, hw, ipp=False)
    src_t = torch.from_numpy(src)
    outs = {"torch_cv2_emulation": torch_cv2_linear(src_t, hw, "cv2").numpy(),
            "torch_cv2_emulation_double_coords": torch_cv2_linear(src_t, hw, "double").numpy(),
            "torch_interpolate_bilinear": torch_interpolate(src_t, hw).numpy()}
    out = {}
    for rname, o in outs.items():
        out[rname] = {"px_vs_cv2_default": maxabs(o, resized), "px_vs_cv2_no_ipp": maxabs(o, cv_noipp),
                      "normalized_vs_pycls": maxabs(_at_ceil(o, C), P)}
    out["cv2_no_ipp"] = {"px_vs_cv2_default": maxabs(cv_noipp, resized), "normalized_vs_pycls": maxabs(_at_ceil(cv_noipp, C), P)}
    return out


def summarize(per_photo: dict) -> dict:
    rows: dict[str, dict] = {}

    def add(group: str, name: str, value: float, where: str):
        r = rows.setdefault(group, {}).setdefault(name, {"max": -1.0, "worst": None})
        if value > r["max"]:
            r["max"], r["worst"] = value, where
    for photo, by_size in per_photo.items():
        for size, m in by_size.items():
            where = f"{photo} {size}"
            if m["floor_rule_agrees"]:
                for name, v in m["candidates"].items():
                    add("candidates_where_floor_rule_agrees", name, v, where)
            for lib, v in m["stock"].items():
                add("stock", lib, v, where)
            for lib, eff in m["effects"].items():
                for step, v in eff.items():
                    add("effects", f"{lib}.{step}", v, where)
            for name, v in m["candidates"].items():
                add("candidates", name, v, where)
            for name, d in m["resamplers"].items():
                for unit, v in d.items():
                    add("resamplers", f"{name}.{unit}", v, where)
    for group in rows.values():
        for r in group.values():
            if r["max"] == 0.0:
                r["worst"] = None
    for group in ("candidates", "candidates_where_floor_rule_agrees"):
        for r in rows[group].values():
            r["within_1e-4"] = r["max"] <= TOL
    return rows


# ---------------------------------------------------------------------------------------------
# --printed: the preprocessing ckptconv prints now, rendered by ckptconv itself and run as printed.
# ---------------------------------------------------------------------------------------------

PRINTED_VARIANTS = ("b0", "b1", "b2", "b3", "b4", "b5", "regnetx_200mf", "regnety_800mf", "resnet50")
PRINTED_LAYOUTS = ("torchvision", "timm", "mmpretrain", "mmdet")
TIMM_DATA_KEYS = ("crop_mode", "crop_pct", "input_size", "interpolation", "mean", "std")
MM_PREPROCESSING_NAMES = ("data_preprocessor", "custom_imports", "test_pipeline", "val_dataloader", "test_dataloader")


class PrintedLineFailed(Exception):
    """A statement of ckptconv's printed config raised (or is missing): its lines and the exception, verbatim."""

    def __init__(self, lines: list[str], error: str):
        super().__init__(error)
        self.lines, self.error = lines, error

    def record(self) -> dict:
        return {"lines": self.lines, "exception": self.error}


def _ckptconv():
    """ckptconv from this checkout (already first on sys.path: see _load_ckptconv_pipeline_module)."""
    import ckptconv
    from ckptconv.tables.pipeline import needed
    from ckptconv.tables.registry import registry_for
    from ckptconv.tables.render import render_config
    from ckptconv.verification import synthetic
    from ckptconv.version import __version__
    here = Path(ckptconv.__file__).resolve().parent
    if here != REPO_ROOT / "ckptconv":
        raise SystemExit(f"ckptconv imported from {here}, not from this checkout ({REPO_ROOT / 'ckptconv'})")
    return types.SimpleNamespace(registry=registry_for(), render_config=render_config, needed=needed, synthetic=synthetic, version=__version__)


def printed_render(ck, layout_name: str, variant_name: str, checkpoint: Path | None = None) -> str:
    """The config ckptconv prints for RGB weights (its default channel order), as ``convert`` renders
    it (convert.py: render_config(target, variant, output, prefix, needed(target.pipeline, order, stats)));
    checkpoint None writes 'OUT' for the path."""
    variant = ck.registry.variant(variant_name)
    layout = ck.registry.layout(layout_name, variant.family)
    stats = ck.registry.pycls_layout(variant.family).pipeline
    return ck.render_config(layout, variant, checkpoint, "", ck.needed(layout.pipeline, "rgb", stats))


def _lines(text: str, node: ast.AST) -> list[str]:
    return text.splitlines()[node.lineno - 1:node.end_lineno]


def _top_assign(tree: ast.Module, name: str) -> ast.Assign | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [name]:
            return node
    return None


def _timm_model_statement(tree: ast.Module) -> ast.Assign | None:
    """``model = timm.create_model('efficientnet_b3')`` (or a timm class call, ``model = timm.models...(...)``,
    for a custom model): the printed statement that builds the timm model, when a ``model.pretrained_cfg = ...``
    statement follows it (the EfficientNet snippets)."""
    node = _top_assign(tree, "model")
    if node is None or not isinstance(node.value, ast.Call) or not ast.unparse(node.value.func).startswith("timm."):
        return None
    return node if _timm_pretrained_cfg_statement(tree) is not None else None


def _timm_pretrained_cfg_statement(tree: ast.Module) -> ast.Assign | None:
    """``model.pretrained_cfg = dict(getattr(model, 'pretrained_cfg', None) or {}, mean=..., ...)``: the
    preprocessing the EfficientNet snippets set for timm's own tools (resolve_data_config, validate.py)."""
    return _top_assign(tree, "model.pretrained_cfg")


def _keyword(call: ast.Call, name: str) -> ast.keyword | None:
    return next((kw for kw in call.keywords if kw.arg == name), None)


def printed_excerpt(layout: str, text: str) -> list[str]:
    """The printed config's preprocessing lines, verbatim, in the order printed."""
    tree = ast.parse(text)
    nodes: list[ast.AST] = []
    if layout in ("torchvision", "timm"):
        nodes.append(_timm_pretrained_cfg_statement(tree))
        nodes += [n for n in tree.body if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("ckptconv")]
        nodes.append(_top_assign(tree, "preprocess"))
    elif layout == "mmpretrain":
        nodes += [_top_assign(tree, n) for n in MM_PREPROCESSING_NAMES]
    else:
        model = _top_assign(tree, "model")
        nodes.append(_keyword(model.value, "data_preprocessor") if model is not None and isinstance(model.value, ast.Call) else None)
    nodes = sorted((n for n in nodes if n is not None), key=lambda n: n.lineno)
    return [line for n in nodes for line in _lines(text, n)]


def _exec_statement(ns: dict, text: str, node: ast.stmt, where: str, shown: ast.stmt | None = None) -> None:
    """Runs one statement of a printed config; an exception becomes PrintedLineFailed with the printed lines."""
    try:
        exec(compile(ast.Module([node], []), f"<ckptconv {where}>", "exec"), ns)
    except Exception as exc:  # noqa: BLE001  (whatever a printed line raises is the finding)
        raise PrintedLineFailed(_lines(text, shown or node), f"{type(exc).__name__}: {exc}") from exc


def run_printed_torch(layout: str, variant: str, text: str) -> dict:
    """Executes the snippet's imports and its ``preprocess = ...`` statement as printed (and, for a timm
    snippet that sets ``model.pretrained_cfg``, its ``model = timm.create_model(...)`` and
    ``model.pretrained_cfg = dict(...)`` statements as printed: create_model without pretrained=True
    downloads nothing); the lines that load the weights file (and model.eval()) are left out.
    Returns the namespace."""
    tree = ast.parse(text)
    pre = _top_assign(tree, "preprocess")
    if pre is None:
        raise PrintedLineFailed([], "the printed config has no `preprocess = ...` statement")
    model = _timm_model_statement(tree) if layout == "timm" else None
    cfg = _timm_pretrained_cfg_statement(tree) if model is not None else None
    if layout == "timm" and ck_family(variant) == "effnet" and model is None:
        raise PrintedLineFailed([], "the printed EfficientNet timm config has no `model = timm.create_model(...)` "
                                    "followed by `model.pretrained_cfg = dict(...)`")
    ns: dict = {"__name__": "ckptconv_printed_snippet"}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or node is pre or node is model or node is cfg:
            _exec_statement(ns, text, node, f"{layout}/{variant}")
    return ns


def ck_family(variant: str) -> str:
    return "effnet" if re.fullmatch(r"b\d", variant) else "regnet" if variant.startswith("regnet") else "resnet"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


TIMM_PRETRAINED_CFG_KEYS = TIMM_DATA_KEYS + ("tag", "test_crop_pct", "test_input_size")


def timm_data_configs(model) -> dict:
    """What timm resolves from the model as printed (built, then ``model.pretrained_cfg = dict(...)``):
    timm.data.resolve_data_config(model=model), with and without use_test_size=True (timm's validate.py),
    and the pretrained_cfg keys it reads."""
    out = {}
    for label, kw in (("resolve_data_config", {}), ("resolve_data_config_use_test_size", {"use_test_size": True})):
        cfg = timm.data.resolve_data_config(model=model, **kw)
        out[label] = {k: _jsonable(cfg.get(k)) for k in TIMM_DATA_KEYS}
    out["resolve_model_data_config_is_the_same"] = timm.data.resolve_model_data_config(model) == timm.data.resolve_data_config(model=model)
    out["default_tag"] = model.pretrained_cfg.get("tag")
    out["pretrained_cfg_as_set"] = {k: _jsonable(model.pretrained_cfg.get(k)) for k in TIMM_PRETRAINED_CFG_KEYS}
    return out


def timm_config_agrees(cfg: dict, R: int, C: int, mean: list, std: list) -> dict:
    """Whether a resolved data config describes pycls's geometry (timm's create_transform would resize
    to floor(C / crop_pct)) and the printed mean/std."""
    return {"crop_mode_center": cfg["crop_mode"] == "center", "input_size": cfg["input_size"] == [3, C, C],
            "scale_size_is_resize": math.floor(C / cfg["crop_pct"]) == R, "interpolation_bilinear": cfg["interpolation"] == "bilinear",
            "mean": cfg["mean"] == mean, "std": cfg["std"] == std}


def mmpretrain_printed(text: str):
    """The printed config loaded by mmengine (custom_imports imports ckptconv.mmengine), its test
    pipeline built as mmpretrain's BaseDataset builds it (mmpretrain's TRANSFORMS, mmengine's Compose),
    and the real ClsDataPreprocessor built from the printed ``data_preprocessor`` dict."""
    import mmengine.dataset
    try:
        cfg = Config.fromstring(text, ".py")
    except Exception as exc:  # noqa: BLE001
        raise PrintedLineFailed(["Config.fromstring(<the printed config>, '.py')"], f"{type(exc).__name__}: {exc}") from exc
    tree = ast.parse(text)
    try:
        steps = [MMPRE_TRANSFORMS.build(t) for t in cfg.test_dataloader.dataset.pipeline]
    except Exception as exc:  # noqa: BLE001
        raise PrintedLineFailed(_lines(text, _top_assign(tree, "test_pipeline")), f"{type(exc).__name__}: {exc}") from exc
    try:
        pre = MMPRE_MODELS.build(dict(type="ClsDataPreprocessor", **cfg.data_preprocessor.to_dict()))
    except Exception as exc:  # noqa: BLE001
        raise PrintedLineFailed(_lines(text, _top_assign(tree, "data_preprocessor")), f"{type(exc).__name__}: {exc}") from exc
    return cfg, mmengine.dataset.Compose(steps), pre


def mmpretrain_get_model(cfg) -> tuple[str, object | None]:
    """mmpretrain.apis.get_model(cfg, pretrained=False) (what ImageClassificationInferencer calls): it
    copies the top-level data_preprocessor into the model. ('ok', its data preprocessor) or (the
    exception, verbatim, with mmpretrain's line that raised, None)."""
    import traceback

    import mmpretrain.apis
    try:
        model = mmpretrain.apis.get_model(copy_config(cfg), pretrained=False)
    except Exception as exc:  # noqa: BLE001
        last = traceback.extract_tb(exc.__traceback__)[-1]
        inner = [f for f in traceback.extract_tb(exc.__traceback__) if "mmpretrain" in f.filename]
        at = inner[-1] if inner else last
        return f"{type(exc).__name__}: {exc} (raised at {_relpath(at.filename)}:{at.lineno}: {at.line})", None
    return "ok", model.data_preprocessor


def copy_config(cfg):
    import copy
    return copy.deepcopy(cfg)


def mmdet_pasted_base(text: str) -> Path | None:
    """The MMDetection config the printed fragment names as the base of its child config
    (``_base_ = ['./X.py']``; earlier fragments said "e.g. X.py"), from the configs mmdet's wheel
    ships (mmdet/.mim/configs)."""
    m = re.search(r"_base_ = \['\./([\w.-]+\.py)'\]", text) or re.search(r"e\.g\. ([\w.-]+\.py)", text)
    if not m:
        return None
    hits = sorted((Path(mmdet.__file__).parent / ".mim" / "configs").rglob(m.group(1)))
    return hits[0] if hits else None


def run_pack(steps: list, path: Path) -> dict:
    results = {"img_path": str(path)}
    for step in steps:
        results = step(results)
    return results


def cli_configs(ck, pairs: list[tuple[str, str]], tmp: Path) -> dict:
    """``python -m ckptconv convert SRC OUT --to LAYOUT --json`` on a synthetic pycls checkpoint of each
    variant: {(layout, variant): (the JSON's "config", OUT)}, or an error string."""
    import subprocess
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    sources, out = {}, {}
    for layout, name in pairs:
        if name not in sources:
            sources[name] = ck.synthetic.save(ck.synthetic.pycls_checkpoint(ck.registry.variant(name)), tmp / f"{name}.pyth")
        dest = tmp / f"{name}.{layout}.pth"
        proc = subprocess.run([sys.executable, "-m", "ckptconv", "convert", str(sources[name]), str(dest), "--to", layout, "--json",
                               "--verify", "structure"], capture_output=True, text=True, cwd=tmp, env=env)
        try:
            doc = json.loads(proc.stdout)
        except json.JSONDecodeError:
            doc = {}
        if proc.returncode != 0 or not doc.get("ok") or not isinstance(doc.get("config"), str):
            out[layout, name] = f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-2000:]}".replace(str(tmp), "<tmp>")
        else:
            out[layout, name] = (doc["config"], dest)
    return out


def whole_snippet(text: str, where: str, tmp: Path) -> str:
    """Runs a whole torchvision/timm snippet as ``convert`` printed it, loading the file it converted."""
    filename = f"<ckptconv convert {where}>"
    try:
        exec(compile(text, filename, "exec"), {"__name__": "ckptconv_printed_snippet"})
    except Exception as exc:  # noqa: BLE001
        import traceback
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        line = text.splitlines()[frames[-1].lineno - 1] if frames else "?"
        return f"line {frames[-1].lineno if frames else '?'}: {line.strip()} -> {type(exc).__name__}: {exc}".replace(str(tmp), "<tmp>")
    return "ran"


def printed_main(out_root: Path) -> None:
    """``photos.py --printed``: tests/data/pipelines/printed.json (see the module docstring)."""
    vers = versions()
    ck = _ckptconv()
    vers["ckptconv"] = ck.version
    photo_dir = REPO_ROOT / "ckptconv" / "data" / "photos"
    photos = sorted(photo_dir.glob("*.png"))
    assert photos, photo_dir
    pycls_input = PyclsInputs(np.load(REPO_ROOT / "tests" / "data" / "pipelines" / "pycls_reference.npz"))
    texts, refused = render_printed(ck)
    configs, cli = convert_printed(ck, texts)
    runs = {"results": {}, "timm_data_config": {}, "mmdet_pasted_over_example": {}, "mmpretrain_api": {},
            "custom_imports": {"ckptconv.mmengine imported before the first printed mmpretrain config": "ckptconv.mmengine" in sys.modules}}
    errors = {}
    for (layout, name), text in sorted(texts.items()):
        k = f"{layout}/{name}"
        variant = ck.registry.variant(name)
        R, C = variant.test_size, variant.im_size
        measure = {"torchvision": measure_printed_torch, "timm": measure_printed_torch,
                   "mmpretrain": measure_printed_mmpretrain}.get(layout, measure_printed_mmdet)
        try:
            measure(layout, name, text, R, C, photos, pycls_input, runs)
        except PrintedLineFailed as failure:
            errors[k] = failure.record()
    summary = printed_summary(runs["results"])
    doc = {
        "versions": vers, "made_by": "tools/groundtruth/photos.py --printed", **PRINTED_ABOUT,
        "photos": {p.stem: sha256(p.read_bytes()) for p in photos},
        "configs": configs, "not_rendered": refused, "errors": errors, "results": runs["results"], "summary": summary,
        "timm_data_config": runs["timm_data_config"],
        "cli": cli,
        "mmdet_pasted_over_example": runs["mmdet_pasted_over_example"],
        "mmpretrain_api": runs["mmpretrain_api"],
        "custom_imports": runs["custom_imports"],
        "pycls_input_vs_pycls_reference_npz": pycls_input.reference_check,
        "tolerance": TOL,
    }
    data_dir = out_root / "tests" / "data" / "pipelines"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "printed.json").write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print_printed_report(summary, errors, cli, refused)
    print(f"wrote {data_dir / 'printed.json'}")


PRINTED_ABOUT = {
    "units": "max abs difference to pycls 0.1.1's own input (ImageNet.__getitem__, split val), normalized units "
             "((x/255 - mean) / std); the printed pipelines' RGB output compared after reversing its channels to pycls's BGR",
    "rendered_by": "ckptconv.tables.render.render_config(layout, variant, None, '', needed(layout.pipeline, 'rgb', "
                   "registry.pycls_layout(family).pipeline)): the text `ckptconv convert --json` prints as \"config\", "
                   "with 'OUT' for the output path; sha256 of that text (UTF-8)",
    "run_as": {"torchvision": "the snippet's imports and `preprocess = ...` executed as printed; preprocess(PIL.Image.open(photo).convert('RGB'))",
               "timm": "as torchvision; for EfficientNet also the printed `model = timm.create_model(...)` and "
                       "`model.pretrained_cfg = dict(...)` as printed (the weights-file lines left out; timm_data_config: what "
                       "timm.data.resolve_data_config(model=model), and with use_test_size=True, resolves from it)",
               "mmpretrain": "mmengine Config.fromstring (custom_imports imports ckptconv.mmengine); test_dataloader.dataset.pipeline "
                             "built with mmpretrain's TRANSFORMS and mmengine's Compose, run on dict(img_path=photo); the "
                             "ClsDataPreprocessor built from the printed data_preprocessor dict (mmpretrain_api: what "
                             "mmpretrain.apis.get_model makes of the config, and whether its data_preprocessor gives the same)",
               "mmdet": "mmdet LoadImageFromFile, pycls's own transforms.scale + center_crop, PackDetInputs, "
                        "DetDataPreprocessor built from the printed model.data_preprocessor"},
}


def render_printed(ck) -> tuple[dict, dict]:
    """The config text ckptconv renders for every (layout, variant) it targets; the refused ones
    with the registry's word for them."""
    texts, refused = {}, {}
    for name in PRINTED_VARIANTS:
        targets = ck.registry.targets(ck.registry.variant(name))
        for layout in PRINTED_LAYOUTS:
            if targets.get(layout) == "yes":
                texts[layout, name] = printed_render(ck, layout, name)
            else:
                refused[f"{layout}/{name}"] = targets.get(layout, "no such layout")
    return texts, refused


def convert_printed(ck, texts: dict) -> tuple[dict, dict]:
    """Each rendered text's sha256 and excerpt, and what ``ckptconv convert --json`` prints for the
    same (layout, variant) on a synthetic checkpoint: the same text? (torchvision/timm: the whole
    snippet run with the converted file.)"""
    import tempfile
    configs, cli = {}, {}
    with tempfile.TemporaryDirectory(prefix="gt-printed-") as tmpdir:
        tmp = Path(tmpdir)
        converted = cli_configs(ck, sorted(texts), tmp)
        for (layout, name), text in sorted(texts.items()):
            k = f"{layout}/{name}"
            configs[k] = {"sha256": sha256(text.encode()), "text_excerpt_lines": printed_excerpt(layout, text)}
            got = converted[layout, name]
            if isinstance(got, str):
                cli[k] = {"convert": got}
                continue
            cli_text, dest = got
            entry = {"convert": "ok", "config_is_the_rendered_text": cli_text == printed_render(ck, layout, name, dest)}
            if layout in ("torchvision", "timm"):
                entry["whole_snippet_with_converted_file"] = whole_snippet(cli_text, k, tmp)
            cli[k] = entry
    return configs, cli


class PyclsInputs:
    """pycls's own input per (photo, TEST.IM_SIZE, TRAIN.IM_SIZE), computed once, each checked
    against the stored pycls_reference.npz (reference_check: max abs difference)."""

    def __init__(self, stored):
        self.stored = stored
        self.cache: dict = {}
        self.reference_check: dict = {}

    def __call__(self, path: Path, R: int, C: int) -> np.ndarray:
        if (path, R, C) not in self.cache:
            P = pycls_item(path, R, C)
            name = f"{path.stem}__{key(R, C)}"
            if (R, C) == FULL_SIZE:
                ref = self.stored[name]
                diff = maxabs(P, ref)
            else:
                pos = self.stored[f"positions__{key(R, C)}"]
                diff = maxabs(P[pos[:, 0], pos[:, 1], pos[:, 2]], self.stored[f"{name}__values"])
            self.reference_check[f"{path.stem}/{key(R, C)}"] = diff
            self.cache[path, R, C] = P
        return self.cache[path, R, C]


def measure_printed_torch(layout: str, name: str, text: str, R: int, C: int, photos: list, pycls_input, runs: dict) -> None:
    """torchvision / timm: the printed snippet's preprocess on every photo (timm EfficientNet: also
    the data config timm resolves from the printed model)."""
    k = f"{layout}/{name}"
    ns = run_printed_torch(layout, name, text)
    preprocess = ns["preprocess"]
    if "model" in ns:  # timm EfficientNet: the model as printed, with the printed pretrained_cfg
        norm = next(t for t in preprocess.transforms if type(t).__name__ == "Normalize")
        cfgs = timm_data_configs(ns["model"])
        cfgs["agrees_with_pycls_and_printed_normalize"] = {
            label: timm_config_agrees(cfgs[label], R, C, list(norm.mean), list(norm.std))
            for label in ("resolve_data_config", "resolve_data_config_use_test_size")}
        runs["timm_data_config"][name] = cfgs
    for path in photos:
        out = preprocess(Image.open(path).convert("RGB"))
        assert tuple(out.shape) == (3, C, C) and out.dtype == torch.float32, (k, out.shape, out.dtype)
        runs["results"][f"{k}/{path.stem}"] = maxabs(out.flip(0), pycls_input(path, R, C))


def measure_printed_mmpretrain(layout: str, name: str, text: str, R: int, C: int, photos: list, pycls_input, runs: dict) -> None:
    """mmpretrain: the printed config's test pipeline and ClsDataPreprocessor on every photo, and
    what mmpretrain.apis.get_model makes of the config."""
    k = f"{layout}/{name}"
    cfg, pipeline, pre = mmpretrain_printed(text)
    runs["custom_imports"][f"ckptconv.mmengine imported after Config.fromstring ({k})"] = "ckptconv.mmengine" in sys.modules
    api = {"pipeline_steps": [type(t).__module__ + "." + type(t).__qualname__ for t in pipeline.transforms]}
    api["get_model(printed config)"], _ = mmpretrain_get_model(cfg)
    typed = copy_config(cfg)
    typed.test_dataloader.dataset.type = "ImageNet"  # what a full config's dataset sets
    api["get_model(printed config + test_dataloader.dataset.type='ImageNet')"], model_pre = mmpretrain_get_model(typed)
    for path in photos:
        packed = pipeline(dict(img_path=str(path)))
        batch = {"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}
        out = pre(batch, False)["inputs"][0]
        assert tuple(out.shape) == (3, C, C), (k, out.shape)
        runs["results"][f"{k}/{path.stem}"] = maxabs(out.flip(0), pycls_input(path, R, C))
        if model_pre is not None:
            same = torch.equal(model_pre(batch, False)["inputs"][0], out)
            api["get_model's data_preprocessor gives the same input"] = api.get("get_model's data_preprocessor gives the same input", True) and same
    runs["mmpretrain_api"][k] = api


def measure_printed_mmdet(layout: str, name: str, text: str, R: int, C: int, photos: list, pycls_input, runs: dict) -> None:
    """mmdet: LoadImageFromFile, pycls's resize and crop, the printed DetDataPreprocessor on every
    photo; and the fragment pasted over the detector config its comment names."""
    import tempfile
    k = f"{layout}/{name}"
    try:
        cfg = Config.fromstring(text, ".py")
        dp = cfg.model.data_preprocessor.to_dict()
        pre = MMDET_MODELS.build(dict(type="DetDataPreprocessor", **dp))
    except Exception as exc:  # noqa: BLE001
        raise PrintedLineFailed(printed_excerpt(layout, text), f"{type(exc).__name__}: {exc}") from exc
    steps = [MMDET_TRANSFORMS.build(dict(type="LoadImageFromFile")), MMPyclsResizeCrop(R, C),
             MMDET_TRANSFORMS.build(dict(type="PackDetInputs"))]
    pasted = runs["mmdet_pasted_over_example"]
    base = mmdet_pasted_base(text)
    merged_pre = None
    if base is not None:  # the fragment pasted over the detector config it names
        with tempfile.TemporaryDirectory(prefix="gt-printed-mmdet-") as tmpdir:
            f = Path(tmpdir) / "pasted.py"
            f.write_text(f"_base_ = [{str(base)!r}]\n" + text)
            merged = Config.fromfile(str(f)).model.data_preprocessor.to_dict()
        merged_pre = MMDET_MODELS.build(dict(merged))
        pasted[name] = {"base_config": _relpath(str(base)).replace("mmdet/.mim/", "mmdet: "), "merged_data_preprocessor": _jsonable(merged),
                        "max_abs_on_the_crop": 0.0}
    for path in photos:
        packed = run_pack(steps, path)
        batch = {"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}
        out = pre(batch, False)["inputs"][0]
        assert tuple(out.shape) == (3, C, C), (k, out.shape)
        P = pycls_input(path, R, C)
        runs["results"][f"{k}/{path.stem}"] = maxabs(out.flip(0), P)
        if merged_pre is not None:  # it may pad (pad_size_divisor): compare the crop, top-left
            padded = merged_pre(batch, False)["inputs"][0]
            pasted[name]["max_abs_on_the_crop"] = max(pasted[name]["max_abs_on_the_crop"], maxabs(padded[:, :C, :C].flip(0), P))
            pasted[name]["padded_shape"] = list(padded.shape)


def printed_summary(results: dict) -> dict:
    """Per layout: the worst difference to pycls's input, where, over how many cases."""
    summary = {}
    for layout in PRINTED_LAYOUTS:
        rows = {r: v for r, v in results.items() if r.startswith(layout + "/")}
        if rows:
            worst = max(rows, key=lambda r: (rows[r], r))
            summary[layout] = {"max": rows[worst], "worst": worst, "cases": len(rows), "within_1e-4": rows[worst] <= TOL}
    return summary


def print_printed_report(summary: dict, errors: dict, cli: dict, refused: dict) -> None:
    print(f"{'layout':12s} {'max abs vs pycls':>16s}  worst")
    for layout, s in summary.items():
        print(f"{layout:12s} {s['max']:16.3g}  {s['worst']}  ({s['cases']} cases)")
    for k, e in errors.items():
        print(f"ERROR {k}: {e['exception']}\n  " + "\n  ".join(e["lines"]))
    for k, e in cli.items():
        bad = {f: v for f, v in e.items() if v not in ("ok", "ran", True)}
        if bad:
            print(f"CLI {k}: {bad}")
    print(f"not rendered (refused): {refused}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-root", type=Path, default=REPO_ROOT)
    ap.add_argument("--printed", action="store_true",
                    help="instead: run the preprocessing ckptconv prints now, as printed, and write tests/data/pipelines/printed.json only")
    args = ap.parse_args()
    if args.printed:
        printed_main(args.out_root)
        return
    vers = versions()
    photo_dir = args.out_root / "ckptconv" / "data" / "photos"
    data_dir = args.out_root / "tests" / "data" / "pipelines"
    data_dir.mkdir(parents=True, exist_ok=True)

    sources = facts_from_sources()  # first: a rule no longer in the installed sources stops the run here
    records = write_photos(photo_dir, vers)  # 1. photos
    variants = variant_tables()  # 2. what ckptconv prints, per size pair
    printed = printed_configs(variants)
    reference, arrays, per_photo, extra_timm = measure_all(photo_dir, records, variants, vers)  # 3.
    write_npz(data_dir / "pycls_reference.npz", arrays)
    write_json(data_dir / "pycls_reference.json", reference)
    write_json(data_dir / "facts.json", {
        "versions": vers, "made_by": "tools/groundtruth/photos.py", "sources_read": sources,
        "size_rule_scan": size_rule_scan(),
        "size_rule_empirical": size_rule_empirical([(r["height"], r["width"]) for r in records]),
        "timm_data_configs": extra_timm,
        "ckptconv_printed_preprocessing": {"rendered_from": "mappings/<family>/layouts/<layout>.toml [config] template, "
                                                            f"mean/std by {CK_PIPELINE_FILE} needed() for RGB weights, crop_pct by its crop_pct()",
                                           "by_size": printed}})
    summary = summarize(per_photo)
    write_json(data_dir / "measurements.json", {
        "versions": vers, "made_by": "tools/groundtruth/photos.py",
        "units": "max abs difference to pycls 0.1.1's own input, in its normalized units ((x/255 - mean) / std), both in BGR order; "
                 "resamplers' px_* entries in pixel units (0..255) on the whole resized image",
        "tolerance": TOL, "candidates": CANDIDATE_NOTES,
        "effects_meaning": {"size_rule": "cv2 float resize to the library's size instead of pycls's, ceil crop",
                            "crop_offset": "pycls's resized image cropped at round-half-even instead of ceil",
                            "antialias": "torchvision/timm: PIL's BILINEAR (antialiased) on float data at pycls's size and offset; mmpretrain: none (cv2)",
                            "uint8": "torchvision/timm: PIL uint8 resize vs PIL float resize; mmpretrain: cv2 resize of the uint8 image (fixed-point, rounded) vs pycls",
                            "normalization_maths": "the library's /255 + Normalize (torchvision/timm) or ClsDataPreprocessor on pycls's own float crop"},
        "summary": summary, "per_photo": per_photo})
    print_table(summary, data_dir, photo_dir)  # 4.


def write_photos(photo_dir: Path, vers: dict) -> list:
    """The shipped photos, their photos.json and LICENSE.md; returns the photos' records."""
    records = make_photos(photo_dir)
    write_json(photo_dir / "photos.json", {"made_by": "tools/groundtruth/photos.py", "versions": {k: vers[k] for k in ("scikit-image", "pillow", "libjpeg_turbo (Pillow)", "zlib (Python)")},
                                           "format": "PNG, 8-bit RGB (colour type 2), non-interlaced, one IDAT (zlib level 9), every row filter type 2 (Up)",
                                           "photos": records})
    (photo_dir / "LICENSE.md").write_text(photo_licence_md(records, vers))
    return records


def measure_all(photo_dir: Path, records: list, variants: dict, vers: dict) -> tuple[dict, dict, dict, dict]:
    """Every photo at every size pair: (pycls_reference.json, its npz arrays, measurements per
    photo, timm's resolved data configs per size)."""
    measured_variant = {key(256, 224): "b0"} | {key(zoo.EFFNET[b][5], zoo.EFFNET[b][4]): b for b in zoo.EFFNET if b != "b0"}
    reference = {"versions": vers, "mean_bgr": MEAN_BGR, "std_bgr": STD_BGR, "photos": {}}
    arrays: dict[str, np.ndarray] = {}
    per_photo: dict[str, dict] = {}
    extra_timm = {}
    for spec, rec in zip(PHOTOS, records):
        path = photo_dir / rec["file"]
        bgr = cv2.imread(str(path))
        reference["photos"][spec["name"]] = {"file": f"ckptconv/data/photos/{rec['file']}", "image_bgr_shape": list(bgr.shape),
                                             "image_bgr_sha256": sha256(np.ascontiguousarray(bgr).tobytes()), "sizes": {}}
        per_photo[spec["name"]] = {}
    for pair in SIZES:
        R, C = pair["resize"], pair["crop"]
        label = measured_variant[key(R, C)]
        lib = Libraries(*variants[label])
        assert (lib.resize, lib.crop) == (R, C)
        libs_256 = [Libraries(*variants[n]) for n in ("regnetx_200mf", "resnet50")] if (R, C) == FULL_SIZE else []
        positions = sample_positions(R, C)
        if (R, C) != FULL_SIZE:
            arrays[f"positions__{key(R, C)}"] = positions
        extra_timm[key(R, C)] = {"measured_variant": label, "resolved_data_config": lib.timm_cfg,
                                 "resolved_data_config_use_test_size": lib.timm_cfg_test, "model_default_pretrained_cfg": lib.timm_default_cfg}
        for spec, rec in zip(PHOTOS, records):
            m, P = measure_at_size(photo_dir / rec["file"], spec, lib, libs_256)
            per_photo[spec["name"]][key(R, C)] = m
            entry = dict(m["pycls"])
            if (R, C) == FULL_SIZE:
                arrays[f"{spec['name']}__{key(R, C)}"] = P
                entry["stored"] = f"full: {spec['name']}__{key(R, C)}"
            else:
                arrays[f"{spec['name']}__{key(R, C)}__values"] = P[positions[:, 0], positions[:, 1], positions[:, 2]]
                entry["stored"] = f"sampled: {spec['name']}__{key(R, C)}__values at positions__{key(R, C)}"
            reference["photos"][spec["name"]]["sizes"][key(R, C)] = entry
        print(f"measured {key(R, C)} ({label})", flush=True)
    return reference, arrays, per_photo, extra_timm


def sample_positions(R: int, C: int) -> np.ndarray:
    """The N_SAMPLES (channel, y, x) positions of pycls's input stored at a size pair other than
    FULL_SIZE (seeded by the pair)."""
    rng = np.random.default_rng([18, R, C])
    flat = np.sort(rng.choice(3 * C * C, size=N_SAMPLES, replace=False))
    return np.stack(np.unravel_index(flat, (3, C, C)), axis=1).astype(np.int16)


def measure_at_size(path: Path, spec: dict, lib: Libraries, libs_256: list) -> tuple[dict, np.ndarray]:
    """measure_photo, plus (at 256/224, libs_256) the RegNet/ResNet snippets checked to be b0's,
    plus the check that the photo shows what it was chosen for; returns (measurements, pycls's
    input)."""
    R, C = lib.resize, lib.crop
    store: dict = {}
    m = measure_photo(path, spec["name"], lib, store)
    for other in libs_256:  # the RegNet/ResNet configs print their own snippets for 256/224
        pil = Image.open(path).convert("RGB")
        m["stock"].setdefault("timm_create_transform_form", maxabs(other.timm(pil).flip(0), store["P"]))
        assert maxabs(other.tv(pil), lib.tv(pil)) == 0.0 and maxabs(other.timm(pil), lib.timm(pil)) == 0.0
        assert maxabs(other.mmpre_run(path, other.mmpre_steps()), lib.mmpre_run(path, lib.mmpre_steps())) == 0.0
    want = spec["expect"].get(key(R, C))
    if want:  # what the photo was chosen for
        got = {"pycls_hw": m["pycls"]["resized_hw"], "pycls_yx": m["pycls"]["crop_yx"],
               "floor_hw": m["library_sizes"]["torchvision"]["resized_hw"], "round_yx": m["library_sizes"]["torchvision"]["crop_yx"]}
        assert got == want, (spec["name"], key(R, C), got, want)
    return m, store["P"]


def print_table(summary: dict, data_dir: Path, photo_dir: Path) -> None:
    print(f"\n{'max abs vs pycls (normalized)':58s} {'max':>10s}  worst")
    for group in ("stock", "effects", "candidates", "candidates_where_floor_rule_agrees", "resamplers"):
        print(f"-- {group}")
        for name, r in summary[group].items():
            flag = ("  OK" if r["within_1e-4"] else "  --") if group.startswith("candidates") else ""
            print(f"{name:58s} {r['max']:10.3g}  {r['worst'] or '-'}{flag}")
    total = sum(p.stat().st_size for p in data_dir.iterdir()) / 1e6
    photos = sum(p.stat().st_size for p in photo_dir.iterdir()) / 1e6
    print(f"\nwrote {data_dir} ({total:.2f} MB) and {photo_dir} ({photos:.2f} MB)")


if __name__ == "__main__":
    main()
