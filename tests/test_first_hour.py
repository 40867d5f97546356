"""The first hour of a new user: a zoo laid out as a tree, the config they paste, a second run, the
README's own words. The OpenMMLab side runs the real mmengine (installed with the test extra)."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def test_a_zoo_tree_is_mirrored_under_the_out_dir(cli, built, tmp_path):
    zoo = tmp_path / "zoo"
    for arch in ("b0", "b2"):
        (zoo / arch).mkdir(parents=True)
        shutil.copy(built.source(arch), zoo / arch / "model.pyth")
    out = tmp_path / "out"
    result = cli("batch", zoo, "--out-dir", out, "--verify", "structure", "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.pth")) == ["b0/model.pth", "b2/model.pth"]
    table = result.stdout
    assert "b0/model.pyth" in table and "b2/model.pth" in table  # the source and output as the user knows them


def test_every_collision_is_named_and_nothing_is_created(cli, built, tmp_path):
    runs = [tmp_path / f"run{i}" / "ckpt" for i in range(3)]
    for run in runs:
        run.mkdir(parents=True)
        for name in ("a.pyth", "b.pyth"):
            shutil.copy(built.source(), run / name)
    out = tmp_path / "out"
    result = cli("batch", *runs, "--out-dir", out)
    assert result.exit_code == 2
    line = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")][0]
    assert "2 output(s) would be written by more than one input" in line
    assert line.count("a.pth <-") == 1 and line.count("b.pth <-") == 1 and line.count("run2/ckpt/") == 2
    assert not out.exists()


def _mmdet_effb3_config(tmp_path: Path) -> Path:
    """A base config with the settings MMDetection's retinanet_effb3_fpn_8xb4-crop896-1x_coco.py
    gives its backbone and preprocessor (facts from mmdetection v3.3.0, written here as data)."""
    base = tmp_path / "effb3_base.py"
    base.write_text(
        """
model = dict(
    type='RetinaNet',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_size_divisor=128),
    backbone=dict(
        _delete_=True, type='EfficientNet', arch='b3', drop_path_rate=0.2, out_indices=(3, 4, 5), frozen_stages=0,
        norm_cfg=dict(type='SyncBN', requires_grad=True, eps=1e-3, momentum=0.01), norm_eval=False,
        init_cfg=dict(type='Pretrained', prefix='backbone', checkpoint='https://example/effnet-b3.pth')),
    neck=dict(in_channels=[48, 136, 384], start_level=0, out_channels=256, relu_before_extra_convs=True))
"""
    )
    return base


def test_the_printed_config_merges_into_mmdetections_own(cli, built, tmp_path):
    from mmengine.config import Config

    out, fragment = tmp_path / "effnet-b3_mmdet.pth", tmp_path / "fragment.py"
    assert cli("pycls2mmdet", built.source("b3"), out, "--config-out", fragment, "--verify", "structure").exit_code == 0
    child = tmp_path / "detector.py"
    child.write_text(f"_base_ = ['{_mmdet_effb3_config(tmp_path).name}']\n" + fragment.read_text())
    model = Config.fromfile(str(child)).model
    backbone = model.backbone
    assert backbone.drop_path_rate == 0.2 and backbone.frozen_stages == 0 and backbone.norm_eval is False  # kept
    assert backbone.norm_cfg == dict(type="SyncBN", requires_grad=True, eps=1e-5, momentum=0.01)  # only eps changed
    assert backbone.conv_cfg == dict(type="Conv2d")
    assert backbone.init_cfg == dict(type="Pretrained", checkpoint=str(out))  # no old prefix lingers
    assert Path(backbone.init_cfg.checkpoint).is_absolute()
    assert model.data_preprocessor.pad_size_divisor == 128 and model.data_preprocessor.bgr_to_rgb is True
    assert model.neck.in_channels == [48, 136, 384] and model.neck.out_channels == 256


def _reference(registry, arch="b0"):
    from ckptconv.verification import models

    model = models.build("mmdet", registry.variant(arch), models.Build(device="cpu", out_indices=(3, 4, 5)))
    for p in model.parameters():
        p.data.zero_()
    return model


@pytest.mark.parametrize("ext", ["pth", "safetensors"])
def test_mmengine_loads_the_output_through_init_cfg_with_no_warning(cli, built, registry, tmp_path, ext):
    """With the printed out_indices there is no layers.6 to be 'unexpected', and from torch 2.13 on
    torch.load (so mmengine's Pretrained init) reads .safetensors itself."""
    from mmengine.logging import MMLogger
    from mmengine.model.weight_init import PretrainedInit

    out = tmp_path / f"o.{ext}"
    assert cli("pycls2mmdet", built.source(), out, "--verify", "structure").exit_code == 0
    model = _reference(registry)
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    MMLogger.get_instance(f"ckptconv-{ext}").addHandler(handler)  # the 'current' logger mmengine's init logs to
    PretrainedInit(checkpoint=str(out))(model)
    assert logged and not any("do not match exactly" in m for m in logged)
    from .test_convert import load_output

    sd, _ = load_output(out)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    # the guard: a file with a layers.6 (what version 1 of the table wrote) is logged as unexpected
    old = tmp_path / "v1.pth"
    torch.save({"state_dict": {**sd, "layers.6.conv.weight": torch.zeros(1)}}, old)
    PretrainedInit(checkpoint=str(old))(_reference(registry))
    assert any("do not match exactly" in m and "layers.6.conv.weight" in m for m in logged)


def test_inspect_says_it_in_words(cli, states, tmp_path):
    bare = tmp_path / "bare.pth"
    torch.save(states("b0"), bare)
    text = cli("inspect", bare).stdout
    assert "top level: the state dict itself: 360 tensors under stem (6), s1 (16)" in text
    partial = tmp_path / "partial.pth"
    torch.save({"model_state": {k: v for k, v in states("b0").items() if not k.startswith("head.fc")}}, partial)
    text = cli("inspect", partial).stdout
    assert "no exact fit: closest is pycls b0 (2 keys missing, 0 unexpected, 0 of the wrong shape)" in text
    assert "a partial pycls b0 file (2 keys absent)" in text and "{" not in text.split("weight sets")[1].split("\n")[3]


def test_mappings_show_says_which_variant_it_chose(cli):
    assert "timm@2 for b0 (the first variant; pass --arch for another: b0, b1" in cli("mappings", "show", "timm").stdout
    assert "for b3:" in cli("mappings", "show", "timm", "--arch", "b3").stdout


def test_a_file_of_another_model_is_named_as_such(cli, tmp_path):
    resnet = {"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.zeros(64), "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1), "fc.weight": torch.zeros(10, 64)}
    src = tmp_path / "resnet.pth"
    torch.save(resnet, src)
    result = cli("pycls2mmdet", src, tmp_path / "o.pth")
    assert result.exit_code == 1
    assert "this is not a model ckptconv converts: only 0 of its 4 keys" in result.stderr
    assert "its keys are conv1 (1), bn1 (1), layer1 (1), fc (1)" in result.stderr and "pass --arch" not in result.stderr


def _readme_block(after: str, lang: str = "python", doc: str = "README.md") -> str:
    """The first ``lang`` code block after the words ``after`` in README.md (or a page of docs/)."""
    text = (REPO / doc).read_text()
    start = text.index(f"```{lang}\n", text.index(after)) + len(f"```{lang}\n")
    return text[start : text.index("```", start)]


def test_the_readme_config_is_what_a_user_sees(cli, built, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(built.source("b3"), tmp_path / "EN-B3_dds_8gpu.pyth")
    mmdet = cli("pycls2mmdet", "EN-B3_dds_8gpu.pyth", "effnet-b3_mmdet.pth")
    assert mmdet.exit_code == 0, mmdet.output
    printed = json.loads(cli("pycls2mmdet", "EN-B3_dds_8gpu.pyth", "effnet-b3_mmdet.pth", "--json", "--force").stdout)["config"]
    assert printed.replace(str(tmp_path), "/abs/path") == _readme_block("## The config your weights need")
    assert printed in mmdet.stdout
    timm = json.loads(cli("convert", "EN-B3_dds_8gpu.pyth", "effnet-b3_timm.pth", "--to", "timm", "--json").stdout)["config"]
    assert timm.replace(str(tmp_path), "/abs/path") == _readme_block("timm gets its `pretrained_cfg`", doc="docs/configs.md")
    shutil.copy(built.source("regnety_800mf"), tmp_path / "RegNetY-800MF_dds_8gpu.pyth")
    args = ("RegNetY-800MF_dds_8gpu.pyth", "regnety-800mf_torchvision.pth", "--to", "torchvision", "--json")
    torchvision = json.loads(cli("convert", *args).stdout)["config"]
    assert torchvision.replace(str(tmp_path), "/abs/path") == _readme_block("torchvision's `regnet_y_800mf()` widens", doc="docs/configs.md")


def test_the_readme_quickstart_runs_as_written_twice(cli, tmp_path, monkeypatch):
    """The README's main command ends in `ckptconv demo`: it must succeed every time it is run."""
    quickstart = _readme_block("## Quickstart", "bash")
    assert re.search(r"&& ckptconv demo\s*$", quickstart)
    monkeypatch.chdir(tmp_path)
    assert cli("demo").exit_code == 0 and cli("demo").exit_code == 0


def test_the_ci_recipe_passes_a_directory_of_mixed_targets(built, tmp_path, monkeypatch):
    """docs/ci.md's `ckptconv verify` steps, run as written on mmdet, timm and torchvision files side
    by side (the flags of the mmdet step apply to the mmdet folder only)."""
    import shlex

    from ckptconv.cli import main

    monkeypatch.chdir(tmp_path)
    for layout in ("mmdet", "timm", "torchvision"):
        (tmp_path / "checkpoints" / layout).mkdir(parents=True)
        shutil.copy(built.output("b0", layout), tmp_path / "checkpoints" / layout / "b0.pth")
    recipe = _readme_block("A job that verifies every converted", "yaml", doc="docs/ci.md")
    steps = [line.split("run: ", 1)[1] for line in recipe.splitlines() if "run: ckptconv verify" in line]
    assert len(steps) == 3
    (tmp_path / "tests" / "images").mkdir(parents=True)
    shutil.copy(Path(__file__).parents[1] / "ckptconv" / "data" / "photos" / "chelsea.png", tmp_path / "tests" / "images")
    monkeypatch.setattr("ckptconv.inlibrary.installed", lambda package: None)  # here, no library is installed: as the recipe says, exit 3
    for step in steps:
        with pytest.raises(SystemExit) as done:
            main(shlex.split(step)[1:])
        assert done.value.code == (3 if "--in-library" in step else 0), step
    report = json.loads((tmp_path / "in-library.json").read_text())
    assert sorted(line for f in report["files"] for line in f["not_checked"]) == sorted(
        f"in-library: not checked: {lib} is not installed (pip install {lib}, then verify again)" for lib in ("mmdet", "timm", "torchvision"))


def test_the_docs_batch_manifest_runs_as_written(cli, built, tmp_path):
    """docs/commands.md's manifest, saved as zoo.toml beside the checkpoint it names (an EN-B3 run
    with an EMA set): one output, under the name it gives, in the layout and weight set it asks for."""
    manifest = _readme_block("Convert a zoo, or a pycls output or sweep tree", "toml", doc="docs/commands.md")
    source = tmp_path / "runs" / "a" / "checkpoints" / "model_epoch_0100.pyth"
    source.parent.mkdir(parents=True)
    shutil.copy(built.source("b3", ema=True), source)
    (tmp_path / "zoo.toml").write_text(manifest)
    result = cli("batch", tmp_path / "zoo.toml", "--out-dir", tmp_path / "out", "--verify", "structure", "-j", "1", "--json")
    assert result.exit_code == 0, result.output
    (done,) = json.loads(result.stdout)["files"]
    assert Path(done["output"]).name == "effnet-b3-run-a.pth" and done["layout"] == "mmdet-stages" and done["weights"] == "ema"


@pytest.mark.parametrize("command", ["convert", "pycls2mmdet"])
def test_the_usage_shows_out_as_required_and_says_when_it_may_be_left_out(cli, command):
    """OUT is needed unless --dry-run: the usage line must not show it as optional."""
    usage = cli(command, "--help").output
    assert f" {command} [OPTIONS] IN OUT\n" in usage and "[OUT]" not in usage
    assert "left out only with --dry-run" in " ".join(usage.split())
