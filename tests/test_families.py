"""Every family end to end through the CLI: a mini-zoo (one model of each kind) to every target in
one batch, refusals before anything is written, the way back to pycls, torchvision's B5 eps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ckptconv import convert
from ckptconv.verification import synthetic

# one checkpoint of each kind: RegNetX, RegNetY (SE), ResNet (7x7 stem, max pool), EfficientNet
MINI_ZOO = {"regnetx_200mf": "RegNetX-200MF_dds_8gpu", "regnety_200mf": "RegNetY-200MF_dds_8gpu",
            "resnet50": "R-50-1x64d_dds_8gpu", "b0": "EN-B0_dds_8gpu"}


@pytest.fixture(scope="module")
def mini_zoo(tmp_path_factory, registry, states):
    """The mini-zoo as pycls's trainer writes it (model_state, cfg dump, epoch)."""
    d = tmp_path_factory.mktemp("mini_zoo")
    for arch, name in MINI_ZOO.items():
        ckpt = {"epoch": 99, "model_state": states(arch), "cfg": synthetic.cfg_yaml(registry.variant(arch))}
        synthetic.save(ckpt, d / f"{name}.pyth")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_one_batch_converts_every_model_to_every_target_and_lists_each_refusal(cli, mini_zoo, tmp_path):
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = cli("batch", mini_zoo, "--out-dir", out, "--to", "all", "--report", report, "--jobs", "2", "--verify", "structure")  # numerics: by verify below
    assert result.exit_code == 0, result.output
    files = json.loads(report.read_text())["files"]
    cells = {(f["source"].rsplit("/", 1)[-1].split(".")[0], f["layout"]): f for f in files}
    names = {v: k for k, v in MINI_ZOO.items()}
    status = lambda want: {(names[s], layout) for (s, layout), f in cells.items() if f["status"] == want}  # noqa: E731
    assert status("refused") == {("regnety_200mf", "mmdet"), ("regnety_200mf", "mmpretrain")}  # no SE in OpenMMLab's RegNet
    # mmdet-stages is a layout of EfficientNet only, transformers of RegNet and ResNet only: for the others no cell of the matrix
    assert status("skipped") == {("regnetx_200mf", "mmdet-stages"), ("regnety_200mf", "mmdet-stages"), ("resnet50", "mmdet-stages"), ("b0", "transformers")}
    for (source, layout), f in cells.items():
        output = out / layout / (source if layout == "transformers" else f"{source}.{'onnx' if layout == 'onnx' else 'pth'}")  # transformers: a model folder
        if f["status"] in ("refused", "skipped"):
            assert ("squeeze-and-excitation" if f["status"] == "refused" else f"has no {layout} layout") in f["error"]
            assert f["output"] is None and not output.exists()
        else:
            assert f["status"] == "converted" and f["verification"] == "structure ok", f
            assert (output / "model.safetensors" if layout == "transformers" else output).is_file()
    # all: the six tables' layouts, and onnx (the extra is installed here, as in CI): every model has an ONNX graph
    assert len(cells) == len(MINI_ZOO) * 7 and sum(f["status"] == "converted" for f in files) == 22
    assert {s for (s, layout), f in cells.items() if layout == "onnx" and f["status"] == "converted"} == set(MINI_ZOO.values())
    shown = result.stderr + result.output
    assert "2 refused, 4 skipped (no such layout for the model)" in shown and "mmdet-stages/RegNet" not in shown
    again = cli("verify", report)  # every output, as its library loads it, against its meta and source, numerically
    assert again.exit_code == 0, again.output
    rerun = _without_torch(["batch", str(mini_zoo), "--out-dir", str(out), "--to", "all", "--json"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr  # refusals too are judged from the sources' index alone
    statuses = {(f["source"], f["layout"]): f["status"] for f in json.loads(rerun.stdout)["files"]}
    assert statuses == {(f["source"], f["layout"]): "up to date" if f["status"] == "converted" else f["status"] for f in files}


def _without_torch(argv: list[str], tmp_path: Path):
    """ckptconv in a process where ``import torch`` fails."""
    import os
    import subprocess
    import sys

    poison = tmp_path / "poison" / "torch"
    poison.mkdir(parents=True, exist_ok=True)
    (poison / "__init__.py").write_text("raise ImportError('torch was imported')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(poison.parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "ckptconv", *argv], capture_output=True, text=True, env=env, timeout=120)


def test_one_target_refused_is_a_failure_with_the_reason(cli, mini_zoo, tmp_path):
    out = tmp_path / "out"
    result = cli("batch", mini_zoo / "RegNetY-200MF_dds_8gpu.pyth", "--out-dir", out, "--to", "mmdet", "--json")
    assert result.exit_code == 1
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["status"] == "refused" and "use timm or torchvision" in entry["error"]


@pytest.mark.parametrize("layout", ["mmdet", "mmpretrain"])
def test_regnety_to_openmmlab_is_refused_before_anything_is_written(cli, mini_zoo, tmp_path, layout):
    src = mini_zoo / "RegNetY-200MF_dds_8gpu.pyth"
    before = src.read_bytes()
    result = cli("convert", src, tmp_path / "out.pth", "--to", layout, "--config-out", tmp_path / "cfg.py")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "no squeeze-and-excitation" in result.stderr and "use timm or torchvision" in result.stderr
    assert list(tmp_path.iterdir()) == [] and src.read_bytes() == before


def test_a_layout_of_another_family_is_refused_naming_the_family_layouts(cli, mini_zoo, tmp_path):
    result = cli("convert", mini_zoo / "R-50-1x64d_dds_8gpu.pyth", tmp_path / "out.pth", "--to", "mmdet-stages")
    assert result.exit_code == 2
    assert "has no mmdet-stages layout" in result.stderr and "mmdet, mmpretrain, pycls, timm, torchvision" in result.stderr
    assert list(tmp_path.iterdir()) == []


# every table of the RegNet family, RegNetY's SE through both tables that hold it, the ResNet stem
# and max pool once (its tables share their key rules with RegNet's: test_zoo holds each to its
# manifest), and torchvision's EfficientNet
FAMILY_TARGETS = [("regnetx_200mf", "mmdet"), ("regnetx_200mf", "mmpretrain"), ("regnetx_200mf", "timm"), ("regnetx_200mf", "torchvision"),
                  ("regnety_200mf", "timm"), ("regnety_200mf", "torchvision"), ("resnet50", "mmpretrain"), ("b0", "torchvision")]


@pytest.mark.parametrize("arch, layout", FAMILY_TARGETS)
def test_every_target_converts_back_to_the_same_pycls_tensors(cli, mini_zoo, tmp_path, states, arch, layout):
    """pycls -> X -> pycls gives back every tensor bit for bit (mmdet has no head.fc: --allow-partial)."""
    mid, back = tmp_path / f"mid.{'safetensors' if layout == 'torchvision' else 'pth'}", tmp_path / "back.pyth"
    assert cli("convert", mini_zoo / f"{MINI_ZOO[arch]}.pyth", mid, "--to", layout, "--verify", "structure", "-q").exit_code == 0
    partial = ["--allow-partial"] if layout == "mmdet" else []
    result = cli("convert", mid, back, "--from", layout, "--to", "pycls", "--json", *partial)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["arch"] == arch
    got = torch.load(back, weights_only=True)["model_state"]
    want = states(arch)
    assert set(got) == set(want) - ({"head.fc.weight", "head.fc.bias"} if layout == "mmdet" else set())
    assert all(torch.equal(got[k], want[k]) for k in got)


def test_torchvision_b5_config_resets_eps_and_the_stock_builder_fails_verify(cli, registry, states, tmp_path):
    """torchvision's efficientnet_b5() builds BN with eps 1e-3; pycls's B5 needs 1e-5. The config
    sets it; verify with the stock builder's eps fails, naming eps; with the config's, passes."""
    src = synthetic.save({"epoch": 1, "model_state": states("b5")}, tmp_path / "EN-B5.pyth")
    out = tmp_path / "b5.pth"
    result = cli("convert", src, out, "--to", "torchvision", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "m.eps = 1e-05" in data["config"] and "efficientnet_b5()" in data["config"]
    assert any("BN eps=0.001" in w for w in data["warnings"])
    stock = cli("verify", out, "--eps", "1e-3", "--json")
    assert stock.exit_code == 1
    assert "eps=0.001" in json.loads(stock.stdout)["files"][0]["first_failure"]
    assert cli("verify", out, "-q").exit_code == 0


def test_torchvision_b0_config_needs_no_eps_reset(cli, mini_zoo, tmp_path):
    result = cli("convert", mini_zoo / "EN-B0_dds_8gpu.pyth", tmp_path / "b0.pth", "--to", "torchvision", "--json")
    data = json.loads(result.stdout)
    assert "m.eps" not in data["config"] and "torchvision.models.efficientnet_b0()" in data["config"]
    assert data["warnings"] == []


@pytest.mark.parametrize("arch, layout, expect", [
    ("regnetx_200mf", "mmdet", "type='RegNet', arch=dict(w0=24, wa=36.44, wm=2.49, group_w=8, depth=13, bot_mul=1.0)"),
    ("regnetx_200mf", "mmdet", "in_channels=[24, 56, 152, 368]"),
    ("resnet50", "mmpretrain", "backbone=dict(type='ResNet', depth=50, style='pytorch'"),
    ("regnety_200mf", "timm", "'regnety_002'"),
    ("regnety_200mf", "torchvision", "BlockParams.from_init_params(depth=13, w_0=24, w_a=36.44, w_m=2.49, group_width=8, bottleneck_multiplier=1.0, se_ratio=0.25)"),
    ("resnet50", "torchvision", "torchvision.models.resnet50()"),
])
def test_each_target_gets_the_builder_its_weights_need(cli, mini_zoo, tmp_path, arch, layout, expect):
    result = cli("convert", mini_zoo / f"{MINI_ZOO[arch]}.pyth", "--to", layout, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)["config"]
    assert expect in config
    compile(config, "config.py", "exec")  # valid Python, as pasted


def test_every_pair_renders_a_config_that_is_valid_python(registry):
    """All 36 models x each target they have: the config renders from the variant file's builder
    (none missing) and compiles as pasted."""
    from ckptconv.tables.pipeline import needed

    rendered = 0
    for variant in registry.variants.values():
        stats = registry.pycls_layout(variant.family).pipeline
        for name, table in registry.layouts_by_family[variant.family].items():
            if name == "pycls" or table.refusal(variant) or name == "transformers":  # a model folder: its snippet is tested in test_transformers.py
                continue
            config = convert.render_config(table, variant, None, "", needed(table.pipeline, "rgb", stats))
            compile(config, f"{variant.name}-{name}.py", "exec")
            rendered += 1
    assert rendered == 6 * 5 + 12 * 4 + 12 * 2 + 6 * 4


def test_torchvision_named_builders_that_are_other_models_are_not_used(registry):
    """torchvision's regnet_x_400mf, regnet_y_800mf and regnet_y_8gf differ from pycls's models of
    those names (tests/data/targets.json): their variant files build pycls's structure instead."""
    targets = json.loads((Path(__file__).parent / "data" / "targets.json").read_text())
    for arch in ("regnetx_400mf", "regnety_800mf", "regnety_8.0gf"):
        assert targets[arch]["torchvision"]["kind"] != "named"
        lib = registry.variant(arch).library("torchvision")
        assert lib["builder"].startswith("torchvision.models.RegNet(") and "another model" in lib["note"]


def test_mappings_lists_families_models_and_targets(cli):
    data = json.loads(cli("mappings", "--json").stdout)
    assert set(data["families"]) == {"effnet", "regnet", "resnet", "anynet"}  # anynet: the models only pycls holds
    targets = {v["arch"]: v["targets"] for v in data["variants"]}
    assert len(targets) == 36
    assert targets["regnety_200mf"] == {"mmdet": "refused: se", "mmpretrain": "refused: se", "timm": "yes", "torchvision": "yes", "transformers": "yes"}
    assert targets["resnext152_32x4d"] == {"mmdet": "yes", "mmpretrain": "yes", "timm": "yes", "torchvision": "yes", "transformers": "refused: groups 32 (s1)"}
    assert set(targets["b3"]) == {"mmdet", "mmdet-stages", "mmpretrain", "timm", "torchvision"}
    text = cli("mappings").output
    assert "RegNet and AnyNet with the 3x3 stem" in text and "refused: se" in text


def test_demo_runs_for_any_model_and_names_its_files_as_the_zoo_does(cli, tmp_path):
    result = cli("demo", "--out-dir", tmp_path / "demo", "--arch", "regnetx_200mf", "--layout", "torchvision")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        "RegNetX-200MF_demo.pyth", "RegNetX-200MF_demo_torchvision.pth", "RegNetX-200MF_demo_torchvision_config.py"]
    assert "--padding same" not in result.output  # torchvision's RegNet has no defaults to warn about


def test_a_legacy_zoo_rerun_judges_its_refusals_without_torch(cli, mini_zoo, tmp_path):
    """pycls's 2020 zoo files are in torch's legacy format: their pickle is read as inertly as a
    zip's data.pkl, so a rerun's refusals (RegNetY to mmdet) and skipped cells need no worker."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for name in ("RegNetY-200MF_dds_8gpu", "R-50-1x64d_dds_8gpu"):
        synthetic.save(torch.load(mini_zoo / f"{name}.pyth", weights_only=True), zoo / f"{name}.pyth", legacy=True)
    out = tmp_path / "out"
    first = cli("batch", zoo, "--to", "mmdet,mmdet-stages,timm", "--out-dir", out, "--verify", "structure", "-j", "1", "--json")
    statuses = {(Path(f["source"]).stem, f["layout"]): f["status"] for f in json.loads(first.stdout)["files"]}
    assert statuses == {("RegNetY-200MF_dds_8gpu", "mmdet"): "refused", ("RegNetY-200MF_dds_8gpu", "mmdet-stages"): "skipped",
                        ("RegNetY-200MF_dds_8gpu", "timm"): "converted", ("R-50-1x64d_dds_8gpu", "mmdet"): "converted",
                        ("R-50-1x64d_dds_8gpu", "mmdet-stages"): "skipped", ("R-50-1x64d_dds_8gpu", "timm"): "converted"}
    rerun = _without_torch(["batch", str(zoo), "--to", "mmdet,mmdet-stages,timm", "--out-dir", str(out), "--verify", "structure", "--json"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    again = {(Path(f["source"]).stem, f["layout"]): f["status"] for f in json.loads(rerun.stdout)["files"]}
    assert again == {k: "up to date" if v == "converted" else v for k, v in statuses.items()}
