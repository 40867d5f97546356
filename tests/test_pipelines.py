"""The same photo, the same numbers: every printed pipeline gives pycls's input from the shipped
photos, the libraries' stock transforms do not, and the checks tell which step.

Expectations come from tests/data/pipelines (tools/groundtruth/photos.py: pycls 0.1.1's own test
pipeline on each photo at every zoo size, the libraries' rules read in their source, and what the
real torchvision 0.29.1, timm 1.0.31 and mmcv/mmpretrain pipelines gave), never from the code under
test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ckptconv.options import Geometry
from ckptconv.tables.pipeline import needed
from ckptconv.transforms import PyclsResizeCrop, crop_offsets, pycls_size
from ckptconv.verification import models, photo
from ckptconv.verification.report import Report

DATA = Path(__file__).parent / "data" / "pipelines"
REFERENCE = json.loads((DATA / "pycls_reference.json").read_text())
MEASURED = json.loads((DATA / "measurements.json").read_text())["per_photo"]
PHOTO_SPECS = json.loads((Path(__file__).parents[1] / "ckptconv" / "data" / "photos" / "photos.json").read_text())["photos"]
CASES = [(name, size) for name, info in REFERENCE["photos"].items() for size in info["sizes"]]
MEAN_BGR, STD_BGR = REFERENCE["mean_bgr"], REFERENCE["std_bgr"]
MEAN_RGB = [123.675, 116.28, 103.53]  # pycls's mean and std in RGB order, in 0..255 units
STD_RGB = [58.395, 57.12, 57.375]


@pytest.fixture(scope="module")
def reference():
    return np.load(DATA / "pycls_reference.npz")


def _sizes(size: str) -> tuple[int, int]:
    resize, crop = size.split("_")
    return int(resize), int(crop)


def _assert_is_pycls(x: torch.Tensor, name: str, size: str, reference, tol: float = 1e-5) -> None:
    """``x`` (3 x C x C, BGR, normalized) equals pycls's own input: in full, or at the stored positions."""
    full = f"{name}__{size}"
    if full in reference.files:
        want = torch.from_numpy(reference[full])
        assert x.shape == want.shape and (x - want).abs().max().item() <= tol
        return
    pos = reference[f"positions__{size}"]
    got = x[pos[:, 0], pos[:, 1], pos[:, 2]].numpy()
    assert np.abs(got - reference[f"{full}__values"]).max() <= tol


def _normalize_bgr(chw01: torch.Tensor) -> torch.Tensor:
    return (chw01 - torch.tensor(MEAN_BGR).view(3, 1, 1)) / torch.tensor(STD_BGR).view(3, 1, 1)


def test_the_shipped_photos_decode_to_the_pixels_written(registry):
    shipped = dict(photo.photos())
    assert sorted(shipped) == sorted(p["file"] for p in PHOTO_SPECS)
    for spec in PHOTO_SPECS:
        rgb = shipped[spec["file"]].permute(1, 2, 0).contiguous().numpy()
        assert rgb.shape == (spec["height"], spec["width"], 3)
        assert hashlib.sha256(rgb.tobytes()).hexdigest() == spec["rgb_pixels_sha256"]
        assert spec["licence"] in ("CC0", "public domain")


@pytest.mark.parametrize("name, size", CASES)
def test_pycls_size_and_crop_offset_are_pycls_own(name, size):
    """pycls's long side floor((long / short) * R) is one pixel short of int(R * long / short) on
    some photos, and its crop rounds up: the recorded sizes and offsets of pycls 0.1.1 itself."""
    recorded = REFERENCE["photos"][name]["sizes"][size]
    h, w = REFERENCE["photos"][name]["image_bgr_shape"][:2]
    resize, crop = _sizes(size)
    assert list(pycls_size(h, w, resize)) == recorded["resized_hw"]
    assert list(crop_offsets(*recorded["resized_hw"], crop)) == recorded["crop_yx"]


@pytest.mark.parametrize("name, size", CASES)
def test_the_torchvision_transform_gives_pycls_input(name, size, reference):
    """What the printed torchvision and timm snippets run: PILToTensor, PyclsResizeCrop, then
    Normalize with pycls's statistics: pycls's own input (BGR weights' order reversed) within 1e-5."""
    rgb = dict(photo.photos())[f"{name}.png"]
    resize, crop = _sizes(size)
    x = PyclsResizeCrop(resize, crop)(rgb)
    normalized = (x - torch.tensor(MEAN_RGB).view(3, 1, 1) / 255) / (torch.tensor(STD_RGB).view(3, 1, 1) / 255)
    _assert_is_pycls(normalized.flip(0), name, size, reference)


@pytest.fixture(scope="module")
def child_transforms():
    """A registry like mmpretrain's: a child of mmengine's TRANSFORMS, where configs' steps are built."""
    from mmengine.registry import TRANSFORMS, Registry

    import ckptconv.mmengine  # noqa: F401  (registers the transform)

    return Registry("transform", parent=TRANSFORMS, scope="ckptconv_test_classifier")


@pytest.mark.parametrize("name, size", CASES)
def test_the_mm_transform_gives_pycls_input(name, size, reference, child_transforms):
    """dict(type='PyclsResizeCrop') after LoadImageFromFile (cv2.imread, uint8 BGR), built from an
    mmpretrain-like child registry of mmengine's TRANSFORMS, then the data preprocessor's maths."""
    import cv2

    resize, crop = _sizes(size)
    step = child_transforms.build(dict(type="PyclsResizeCrop", resize=resize, crop=crop))
    img = cv2.imread(str(photo.PHOTOS / f"{name}.png"))
    out = step({"img": img})
    assert out["img_shape"] == (crop, crop)
    chw = torch.from_numpy(out["img"]).permute(2, 0, 1).flip(0)  # to_rgb=True
    normalized = (chw - torch.tensor(MEAN_RGB).view(3, 1, 1)) / torch.tensor(STD_RGB).view(3, 1, 1)
    _assert_is_pycls(normalized.flip(0), name, size, reference)


def _check(registry, layout: str, family: str, pre, sizes, order: str = "rgb") -> Report:
    table = registry.layout(layout, family)
    report = Report("x", "m", layout, "symmetric", 1e-5, (64, 96))
    photo.check(report, table.pipeline, pre, order, registry.pycls_layout(family).pipeline, sizes)
    return report


@pytest.mark.parametrize("family", ["effnet", "regnet", "resnet"])
@pytest.mark.parametrize("layout", ["mmdet", "mmpretrain", "timm", "torchvision"])
def test_every_printed_pipeline_passes_the_check_at_every_size(registry, family, layout):
    table, stats = registry.layout(layout, family), registry.pycls_layout(family).pipeline
    for size in sorted({size for _, size in CASES}):
        for order in ("rgb", "bgr"):
            report = _check(registry, layout, family, needed(table.pipeline, order, stats), _sizes(size), order)
            assert report.ok, report.first_failure
            assert max(lv.max_abs for lv in report.pipeline) < 1e-5


STOCK = {  # today's stock transforms, as the ground truth's facts say each library does them
    "torchvision": Geometry("library", "antialias", "uint8", "round"),
    "mmpretrain": Geometry("library", "cv2", "uint8", "round"),
}


@pytest.mark.parametrize("lib", list(STOCK))
def test_the_stock_transforms_fail_by_what_the_real_library_gave(registry, lib):
    """The check's model of each library's stock transforms: off pycls's input by what the real
    library was measured to be off (uint8 rounding at about half its measured size), on every photo."""
    table, stats = registry.layout(lib, "effnet"), registry.pycls_layout("effnet").pipeline
    assert table.pipeline.stock == STOCK[lib]
    pre = dataclasses.replace(needed(table.pipeline, "rgb", stats), geometry=table.pipeline.stock)
    for name, size in CASES:
        want = photo.pycls_input(f"{name}.png", *_sizes(size), stats).flip(0)
        ours = (photo.library_input(f"{name}.png", table.pipeline, pre, *_sizes(size)) - want).abs().max().item()
        real = MEASURED[name][size]["stock"][lib]
        assert real > 1e-4 and 0.5 * real <= ours <= 1.05 * real, (name, size, ours, real)


def test_a_stock_pipeline_fails_naming_each_step(registry):
    report = _check(registry, "torchvision", "effnet", dataclasses.replace(needed(registry.layout("torchvision", "effnet").pipeline, "rgb",
                    registry.pycls_layout("effnet").pipeline), geometry=STOCK["torchvision"]), (256, 224))
    assert not report.ok
    failure = report.first_failure
    assert failure.startswith("astronaut_crop.png through the pipeline as configured differs from pycls's input by up to 4")
    for step in ("int(R * long / short)", "antialiases", "uint8", "rounds the offset half to even", "PyclsResizeCrop(resize=256, crop=224)"):
        assert step in failure
    crop_only = _check(registry, "timm", "effnet", dataclasses.replace(needed(registry.layout("timm", "effnet").pipeline, "rgb",
                       registry.pycls_layout("effnet").pipeline), geometry=Geometry(crop="round")), (256, 224))
    shifted = {lv.name for lv in crop_only.pipeline if not lv.ok}
    assert shifted == {"coffee_portrait.png", "astronaut_crop.png", "rocket_strip.png"}  # chelsea's offset is even: no shift
    squash = _check(registry, "timm", "effnet", dataclasses.replace(needed(registry.layout("timm", "effnet").pipeline, "rgb",
                    registry.pycls_layout("effnet").pipeline), geometry=Geometry(size="squash")), (522, 456))
    assert "squashes the image to R x R" in squash.first_failure


def test_wrong_colours_fail_at_the_input(registry):
    table, stats = registry.layout("mmpretrain", "effnet"), registry.pycls_layout("effnet").pipeline
    need = needed(table.pipeline, "rgb", stats)
    no_flip = _check(registry, "mmpretrain", "effnet", dataclasses.replace(need, flip=False), (256, 224))
    assert "with to_rgb=False: these weights take RGB input; set to_rgb=True" in no_flip.first_failure
    swapped = _check(registry, "mmpretrain", "effnet", dataclasses.replace(need, mean=need.mean[::-1], std=need.std[::-1]), (256, 224))
    assert "mean=[103.53, 116.28, 123.675]" in swapped.first_failure
    assert max(lv.max_abs for lv in swapped.pipeline) > 0.1


def test_verify_names_the_stock_transforms(cli, built):
    out = built.output("b0", "timm")
    assert cli("verify", out).exit_code == 0
    stock = cli("verify", out, "--transforms", "stock", "--json")
    assert stock.exit_code == 1
    assert "its resize antialiases (pycls: cv2's bilinear, none)" in json.loads(stock.stdout)["files"][0]["first_failure"]


@pytest.mark.parametrize("arch, layout", [("b0", "timm"), ("b0", "torchvision"), ("regnety_800mf", "timm"), ("resnet50", "torchvision")])
def test_photos_through_the_printed_pipeline_give_pycls_logits(registry, states, reference, arch, layout):
    """pycls's network on pycls's own input (the ground truth's) and the library's reference model
    on the printed pipeline's input, RGB weights: the same logits, the same top-1, on every photo."""
    variant, sd = registry.variant(arch), states(arch)
    table, stats = registry.layout(layout, variant.family), registry.pycls_layout(variant.family).pipeline
    plan = __import__("ckptconv.tables.engine", fromlist=["plan"]).plan(variant, table, registry.pycls_layout(variant.family))
    weights = {e.target: sd[e.source] for e in plan.mapped}
    conv = next(e.target for e in plan.mapped if e.pycls == "stem.conv.weight")
    weights[conv] = weights[conv].flip(1)  # RGB weights, as converted by default
    target = models.load(table.reference, variant, weights, models.Build(arith=models.arith_of(table.reference, variant)))
    pycls = models.pycls_model(variant, sd)
    pre = needed(table.pipeline, "rgb", stats)
    with torch.inference_mode():
        for name in REFERENCE["photos"]:
            want = pycls.forward_levels(torch.from_numpy(reference[f"{name}__256_224"])[None])["logits"]
            got = target.forward_levels(photo.library_input(f"{name}.png", table.pipeline, pre, 256, 224)[None])["logits"]
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
            assert got.argmax() == want.argmax()


def _trained_looking_state(registry, arch: str):
    """Random weights whose BatchNorm statistics are measured on crops of the real photos (a
    train-mode pass, as precise-BN does; nothing clamped). One convolution output channel in ten is
    nearly dead, as in trained networks, so its running_var ends far below 1e-4 and its BN amplifies
    whatever rounding reaches it a hundredfold."""
    from ckptconv.verification import synthetic

    variant = registry.variant(arch)
    sd = synthetic._random_weights(variant, seed=3)
    gen = torch.Generator().manual_seed(5)
    for key, t in sd.items():
        if t.dim() == 4 and not key.startswith("stem"):
            dead = torch.rand(t.shape[0], generator=gen) < 0.1
            t[dead] *= 1e-3
    model = models.build("pycls", variant, models.Build(device="cpu"))
    model.load_state_dict(sd, assign=True)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    crops = [photo.pycls_input(name, 128, 96, registry.pycls_layout(variant.family).pipeline) for name, _ in photo.photos()]
    model.train()
    with torch.no_grad():
        model.forward_levels(torch.stack(crops))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_trained_looking_statistics_raise_no_false_alarm_and_wrong_settings_still_fail(cli, registry, tmp_path):
    """EfficientNet-B3 to timm and torchvision, which compute SiLU with F.silu: with BN statistics
    measured on real crops the library's rounding is amplified far beyond float32 rounding, yet the
    default verification passes (it compares with pycls computed the library's way, exactly) and
    reports the drift; every wrong setting still fails."""
    from ckptconv.verification import synthetic

    state = _trained_looking_state(registry, "b3")
    variances = torch.cat([v for k, v in state.items() if k.endswith("running_var")])
    assert (variances < 1e-4).sum() > 100  # the premise: near-dead channels, as in trained nets
    src = synthetic.save({"epoch": 99, "model_state": state, "cfg": synthetic.cfg_yaml(registry.variant("b3"))}, tmp_path / "EN-B3.pyth")
    for layout in ("timm", "torchvision"):
        out = tmp_path / f"{layout}.pth"
        result = cli("convert", src, out, "--to", layout, "--json")
        assert result.exit_code == 0, result.output
        numeric = next(c for c in json.loads(result.stdout)["verification"]["checks"] if c["name"] == "numeric")
        assert "bit for bit" in numeric["detail"] and "drift from pycls's own arithmetic" in numeric["detail"]
        drift = max(lv["drift_rel"] for lv in json.loads(result.stdout)["verification"]["levels"])
        # far beyond float32 rounding (~1e-7), and machine-dependent (8e-5 here, 8e-4 in the issue): a fixed
        # tolerance has to guess it; the exact comparison with pycls computed the library's way needs none
        assert drift > 1e-5, drift
        for wrong, words in ((("--padding", "same"), "padding=same"), (("--eps", "1e-3"), "eps=0.001"),
                             (("--mean", "0.406", "0.456", "0.485"), "mean=[0.406, 0.456, 0.485]"),
                             (("--transforms", "stock"), "rounds the offset half to even"),
                             (("--channel-order", "bgr"), "meta records channel order rgb but --channel-order bgr was asked")):
            failed = cli("verify", out, "--source", src, *wrong, "--json")
            assert failed.exit_code == 1 and words in json.loads(failed.stdout)["files"][0]["first_failure"], (layout, wrong, failed.stdout[-300:])


def test_a_detectors_pipeline_check_claims_no_resize_the_config_does_not_do(cli, built, tmp_path):
    """A detector resizes to its own scale (896, say): the check covers channel order, mean and std,
    and says so; a classifier's printed pipeline resizes and crops as pycls tests, and says that."""
    details = {}
    for layout in ("mmdet", "mmpretrain"):
        result = cli("convert", built.source("b0"), tmp_path / f"{layout}.pth", "--to", layout, "--json")
        checks = json.loads(result.stdout)["verification"]["checks"]
        details[layout] = next(c["detail"] for c in checks if c["name"] == "pipeline")
    assert "a detector resizes to its own scale" in details["mmdet"] and "crop 224" not in details["mmdet"]
    assert "(resize 256, crop 224)" in details["mmpretrain"]
