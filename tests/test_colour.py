"""Colour order and preprocessing: a real photo through each library's own pipeline, as the printed
config sets it, gives what pycls's own pipeline gave (../shared/fixtures/images, made by pycls 0.1.1)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ckptconv.tables.pipeline import needed
from ckptconv.transforms import resize_crop
from ckptconv.verification import models, photo

from .conftest import LAYOUTS, close

# the fixture's pycls feature points (pycls_point0 ... 6) and where the logits are
FIXTURE_POINTS = {"stem": "pycls_point0", "s1": "pycls_point1", "s2": "pycls_point2", "s3": "pycls_point3",
                  "s5": "pycls_point4", "s7": "pycls_point5", "head": "pycls_point6", "logits": "pycls_logits"}


@pytest.fixture(scope="module")
def chelsea(shared):
    data = np.load(shared / "images" / "chelsea.pycls_b0.npz")
    return {k: torch.from_numpy(data[k]) for k in data.files}


@pytest.fixture(scope="module")
def b0_pyth(shared):
    return shared / "pycls" / "EN-B0_dds_8gpu.pyth"


def test_pycls_pipeline_is_reproduced(chelsea, registry):
    """Our model of pycls's test pipeline makes pycls's input from the photo pycls read (the shipped
    chelsea.png is that photo), and from the image it resized and cropped."""
    stats = registry.layout("pycls", "effnet").pipeline
    assert torch.equal(photo.photos()[[n for n, _ in photo.photos()].index("chelsea.png")][1], chelsea["image_bgr"].permute(2, 0, 1).flip(0))
    close(photo.pycls_input("chelsea.png", 256, 224, stats)[None], chelsea["input"])
    close(resize_crop(chelsea["image_bgr"].permute(2, 0, 1), 256, 224), chelsea["resized_bgr"].permute(2, 0, 1))


# ImageNet's mean and std (pycls's: RGB 0.485, 0.456, 0.406 / 0.229, 0.224, 0.225), in the library's
# units (mm: 0..255) and in the order its pipeline hands the weights: mm reads BGR and flips for RGB
# weights; timm reads RGB and cannot flip (its snippet says to reverse the channels for BGR weights).
EXPECTED = {
    ("mm", "rgb"): {"flip": True, "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
    ("mm", "bgr"): {"flip": False, "mean": [103.53, 116.28, 123.675], "std": [57.375, 57.12, 58.395]},
    ("timm", "rgb"): {"flip": False, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    ("timm", "bgr"): {"flip": True, "mean": [0.406, 0.456, 0.485], "std": [0.225, 0.224, 0.229]},
}


@pytest.mark.parametrize("order", ["rgb", "bgr"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_photo_through_each_library_gives_pycls_features(cli, registry, chelsea, b0_pyth, tmp_path, layout, order):
    """The real B0 checkpoint, converted for each channel order, fed the real photo the way the
    printed config sets the library's pipeline up: pycls's recorded features, every level."""
    out = tmp_path / "o.pth"
    result = cli("convert", b0_pyth, out, "--to", layout, "--channel-order", order, "--verify", "structure", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    table = registry.layout(layout, "effnet")
    pre = needed(table.pipeline, order, registry.layout("pycls", "effnet").pipeline)
    assert report["channel_order"] == order and report["preprocessing"] == EXPECTED["timm" if layout == "timm" else "mm", order]
    flag = {"mmdet": "bgr_to_rgb", "mmdet-stages": "bgr_to_rgb", "mmpretrain": "to_rgb"}.get(layout)
    if flag:  # the config the user pastes says it
        assert f"{flag}={pre.flip}" in report["config"] and f"mean={pre.config()['mean']}" in report["config"]
    sd = torch.load(out, weights_only=True)["state_dict"]
    model = models.load(table.reference, registry.variant("b0"), sd, models.Build(out_indices=tuple(table.config.get("out_indices", ())) or None))
    with torch.inference_mode():
        got = model.forward_levels(photo.library_input("chelsea.png", table.pipeline, pre, 256, 224)[None])
    compared = [(name, FIXTURE_POINTS[point]) for name, point in table.levels_for(registry.variant("b0")).items() if point in FIXTURE_POINTS]
    assert len(compared) >= 6
    for name, key in compared:
        close(got[name], chelsea[key])


def test_the_stock_rgb_pipeline_on_bgr_weights_is_far_off(registry, chelsea, b0_pyth):
    """Guard on the premise: pycls's own weights, fed the photo the RGB way, change the stem by
    half its magnitude; no error anywhere."""
    sd = torch.load(b0_pyth, weights_only=True)["model_state"]
    table = registry.layout("timm", "effnet")
    pre = needed(table.pipeline, "rgb", registry.layout("pycls", "effnet").pipeline)  # what timm does by default
    with torch.inference_mode():
        got = models.pycls_model(registry.variant("b0"), sd).forward_levels(photo.library_input("chelsea.png", table.pipeline, pre, 256, 224)[None])
    stem = chelsea["pycls_point0"]
    assert (got["stem"] - stem).abs().max() > 0.3 * stem.abs().max()


def test_a_wrong_colour_setting_fails_verify_naming_it(cli, built):
    out = built.output("b0", "mmdet")  # RGB weights: bgr_to_rgb=True
    wrong = cli("verify", out, "--no-bgr-to-rgb", "--json")
    assert wrong.exit_code == 1
    failure = json.loads(wrong.stdout)["files"][0]["first_failure"]
    assert "with bgr_to_rgb=False: these weights take RGB input; set bgr_to_rgb=True" in failure
    swapped = cli("verify", out, "--mean", "103.53", "116.28", "123.675", "--std", "57.375", "57.12", "58.395", "--json")
    assert swapped.exit_code == 1 and "mean=[103.53, 116.28, 123.675]" in json.loads(swapped.stdout)["files"][0]["first_failure"]
    right = cli("verify", out, "--bgr-to-rgb", "--mean", "123.675", "116.28", "103.53", "--std", "58.395", "57.12", "57.375")
    assert right.exit_code == 0, right.output


def test_bgr_weights_need_the_bgr_pipeline(cli, built, tmp_path):
    out = tmp_path / "bgr.pth"
    result = cli("pycls2mmdet", built.source(), out, "--channel-order", "bgr", "--json")
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)["config"]
    assert "bgr_to_rgb=False" in config and "mean=[103.53, 116.28, 123.675]" in config
    assert cli("verify", out).exit_code == 0  # the meta says BGR: checked with the BGR pipeline
    assert "these weights take BGR input" in cli("verify", out, "--bgr-to-rgb").stderr


def test_timm_with_bgr_weights_reverses_the_channels_before_normalize(cli, built, tmp_path):
    """timm has no setting that reverses channels: the printed transform reverses PIL's RGB itself,
    then normalizes with pycls's mean and std in BGR order (pycls's own: 0.406 first). Normalizing
    first and flipping after would feed another input (the version ground truth measured 0.38 off)."""
    result = cli("convert", built.source(), tmp_path / "t.pth", "--to", "timm", "--channel-order", "bgr", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)["config"].split("preprocess = transforms.Compose([\n", 1)[1].split("\n])\n", 1)[0]
    steps = [line.strip() for line in body.splitlines()]
    assert [s.split("(")[0] for s in steps] == ["transforms.PILToTensor", "PyclsResizeCrop", "transforms.Lambda", "transforms.Normalize"]
    assert "x.flip(0)" in steps[2] and "mean=[0.406, 0.456, 0.485], std=[0.225, 0.224, 0.229]" in steps[3]


def test_the_way_back_undoes_the_reversal_bit_for_bit(cli, built, states, tmp_path):
    mid, back = tmp_path / "mid.safetensors", tmp_path / "back.pth"
    assert cli("convert", built.source(), mid, "--to", "timm", "--verify", "structure").exit_code == 0
    assert cli("convert", mid, back, "--from", "timm", "--to", "pycls", "--verify", "structure").exit_code == 0
    got = torch.load(back, weights_only=True)["model_state"]
    assert torch.equal(got["stem.conv.weight"], states("b0")["stem.conv.weight"])
    refused = cli("convert", mid, tmp_path / "x.pth", "--from", "timm", "--to", "pycls", "--channel-order", "rgb")
    assert refused.exit_code == 2 and "pycls takes BGR input" in refused.stderr


def test_a_file_without_a_recorded_order_is_checked_as_assumed_and_says_so(cli, built, tmp_path):
    bare = tmp_path / "bare.pth"
    torch.save(torch.load(built.output("b0", "timm"), weights_only=True)["state_dict"], bare)
    result = cli("verify", bare, "--json")
    assert result.exit_code == 0
    assert "taken as the timm layout's default" in json.loads(result.stdout)["files"][0]["notes"][0]
