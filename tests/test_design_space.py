"""Any model pycls 0.1.1 builds, not only its zoo: keys, refusals and numbers against the real packages.

Expectations come from tests/data/design_space (tools/groundtruth/design_space*.py ran pycls 0.1.1,
timm, torchvision, mmdet and mmpretrain; see its README), never from ckptconv's tables:
- cases.json: 47 models pycls built from their cfg (every stem and block type, SE, groups,
  bottleneck ratios, CIFAR, 10/100/1000 classes, BN eps), with the cfg pycls dumped and the keys;
- targets.json + manifests/: per library, the keys of the class that computed pycls's outputs
  from those weights, or ``cannot`` (no class of the library does);
- checkpoints/: 8 checkpoints pycls's own save_checkpoint wrote, and the outputs pycls and each
  library computed from them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ckptconv import convert
from ckptconv.errors import Refused
from ckptconv.options import Request
from ckptconv.tables import detect, engine
from ckptconv.tables.resolve import resolve
from ckptconv.verification import models

DATA = Path(__file__).parent / "data" / "design_space"
CASES = json.loads((DATA / "cases.json").read_text())["cases"]
TARGETS = json.loads((DATA / "targets.json").read_text())["cases"]
CHECKPOINTS = sorted(p.stem for p in (DATA / "checkpoints").glob("*.pyth"))
PAIRS = [(case, library) for case in CASES for library in TARGETS[case]]


def _variant(registry, case: str):
    """The model as ``convert`` finds it: the cfg pycls dumped into the checkpoint, and its tensors."""
    c = CASES[case]
    shapes = {key: (tuple(shape), dtype) for key, shape, dtype in c["manifest"]}
    return detect.resolve_arch(None, c["cfg_dump"], shapes, registry, "pycls", {})[0]


def _library_keys(case: str, library: str, variant) -> dict[str, tuple[int, ...]]:
    """The keys the library's class had, less what the printed config does not build: MMDetection's
    EfficientNet builds layers 0 ... max(out_indices), and the config ckptconv prints sets (3, 4, 5)
    where the GT built every layer (its manifest names the out_indices it used)."""
    manifest = json.loads((DATA / TARGETS[case][library]["manifest"]).read_text())
    keys = {key: tuple(shape) for key, shape, _ in manifest["keys"]}
    if library == "mmdet" and variant.family == "effnet":
        assert "out_indices=(0, 1, 2, 3, 4, 5, 6)" in manifest["source"]
        keys = {k: s for k, s in keys.items() if not k.startswith("layers.6.")}
    return keys


@pytest.mark.parametrize("case, library", PAIRS, ids=[f"{c}-{lib}" for c, lib in PAIRS])
def test_a_target_holds_exactly_what_its_library_built_or_refuses_before_writing(registry, case, library):
    variant = _variant(registry, case)
    request = Request(source=Path(f"{case}.pyth"), layout=library)
    expected = TARGETS[case][library]
    if "cannot" in expected:
        with pytest.raises(Refused) as refused:
            resolve(request, variant, registry)
        assert "\n" not in str(refused.value) and refused.value.fix, str(refused.value)
        return
    r = resolve(request, variant, registry)
    plan = engine.plan(variant, r.target, r.source, target_prefix=r.prefix)
    ours = {e.target: tuple(e.shape) for e in plan.entries if e.target is not None}
    assert ours == _library_keys(case, library, variant)


def test_a_model_of_the_zoo_with_its_own_classes_goes_by_the_zoo_name(registry):
    """EfficientNet-B3 fine-tuned to 10 classes is b3 (its test sizes, mmdet's arch='b3'); a RegNet
    of its own numbers is a custom model named by them."""
    assert _variant(registry, "effnet_b3_nc10").name == "b3"
    assert _variant(registry, "effnet_b3_nc10").num_classes == 10
    custom = _variant(registry, "regnetx_custom_d14")
    assert custom.name.startswith("regnetx_d14_w40") and not custom.zoo


def test_the_cfg_says_where_models_resnet_strides(registry):
    """pycls's models/resnet.py strides the first 1x1 (RESNET.STRIDE_1X1: True): the same keys as the
    zoo's ResNet-50, other features. Its cfg says so: never converted as the zoo model, and
    refused where the library's class strides the 3x3 (timm, torchvision; targets.json)."""
    variant = _variant(registry, "resnet_in50_stride1x1")
    assert variant.name != "resnet50" and "stride_1x1" in variant.features
    r = resolve(Request(source=Path("r.pyth"), layout="mmdet"), variant, registry)
    assert "style='caffe'" in r.target.built(variant).text


def _state(path: Path) -> dict[str, torch.Tensor]:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    return obj["state_dict"] if "state_dict" in obj else obj  # timm/mm: {'state_dict', 'meta'}; torchvision: the state dict


@pytest.mark.parametrize("case", CHECKPOINTS)
def test_checkpoints_pycls_wrote_convert_and_compute_what_the_libraries_computed(registry, tmp_path, case):
    """Every target that holds the model: converted with its default verification (which must
    pass), then the written weights run through ckptconv's reference model of that library on the
    GT input give the logits the real library gave (pycls's channel order, as the GT fed them; BN
    eps the cfg's BN.EPS, as the printed config sets it)."""
    source = DATA / "checkpoints" / f"{case}.pyth"
    features = np.load(DATA / "checkpoints" / f"{case}.features.npz")
    x = torch.from_numpy(features["input"])
    variant = _variant(registry, case)
    pycls_state = torch.load(source, map_location="cpu", weights_only=True)["model_state"]
    with torch.no_grad():
        ours = models.pycls_model(variant, pycls_state).forward_levels(x)["logits"]
    np.testing.assert_allclose(ours.numpy(), features["pycls_logits"], rtol=0, atol=1e-5 * np.abs(features["pycls_logits"]).max())
    for library, expected in TARGETS[case].items():
        if "cannot" in expected:
            continue
        out = tmp_path / f"{case}-{library}.pth"
        result = convert.convert(Request(source=source, output=out, layout=library, channel_order="bgr"))
        assert result.report is not None and result.report.ok, (library, result.report)
        if f"{library}_logits" not in features:
            continue  # mmdet: a backbone, no logits
        reference = registry.layout(library, variant.family).reference
        with torch.no_grad():
            logits = models.load(reference, variant, _state(out), models.Build(eps=variant.eps)).forward_levels(x)["logits"]
        want = features[f"{library}_logits"]
        np.testing.assert_allclose(logits.numpy(), want, rtol=0, atol=1e-5 * np.abs(want).max(), err_msg=library)


def test_a_fine_tuned_b3_goes_to_mmdetection_in_one_command(cli, tmp_path):
    """EfficientNet-B3 fine-tuned to 10 classes (as pycls 0.1.1 built it: the case's cfg dump and
    keys), to MMDetection, which drops the classifier: one command, the keys mmdet's EfficientNet
    had (manifests/mmdet), the config of a b3."""
    case = CASES["effnet_b3_nc10"]
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape, _ in case["manifest"]:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(9, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.1
    assert state["head.fc.weight"].shape == (10, 1536)
    source = tmp_path / "EN-B3_finetuned.pyth"
    torch.save({"epoch": 9, "model_state": state, "cfg": case["cfg_dump"]}, source)
    out = tmp_path / "b3_mmdet.pth"
    result = cli("pycls2mmdet", source, out)
    assert result.exit_code == 0, result.output
    assert "arch='b3'" in result.stdout and "fine-tuned to 10 classes" in result.stdout
    written = torch.load(out, weights_only=True)["state_dict"]
    want = json.loads((DATA / TARGETS["effnet_b3_nc10"]["mmdet"]["manifest"]).read_text())["keys"]
    assert {k: tuple(t.shape) for k, t in written.items()} == {k: tuple(s) for k, s, _ in want if not k.startswith("layers.6.")}


def test_verify_checks_a_custom_model_from_its_recorded_numbers(cli, tmp_path):
    """A custom RegNet (REGNET.STRIDE 1, which only the cfg says) in MMDetection: `verify` rebuilds
    it from the numbers the meta records, passes the file, and fails mmdet's default BN eps."""
    source = DATA / "checkpoints" / "regnetx_stride1.pyth"
    out = tmp_path / "regnet_mmdet.pth"
    assert cli("convert", source, out, "--to", "mmdet", "--verify", "structure").exit_code == 0
    meta = torch.load(out, weights_only=True)["meta"]
    assert meta["model"]["regnet"]["stride"] == 1
    good = cli("verify", out, "--source", source, "--json")
    assert good.exit_code == 0, good.stdout[-500:]
    wrong = cli("verify", out, "--source", source, "--eps", "1e-3", "--json")
    assert wrong.exit_code == 1 and "eps=0.001" in json.loads(wrong.stdout)["files"][0]["first_failure"]


def test_the_cfgs_bn_eps_is_what_the_meta_and_the_printed_config_say(cli, tmp_path):
    """BN.EPS: 1e-3 in the run's cfg (the case's values): the weights need 1e-3 everywhere."""
    assert CASES["regnetx_small_eps1e-3"]["values"]["BN.EPS"] == 0.001
    source = DATA / "checkpoints" / "regnetx_small_eps1e-3.pyth"
    for layout, words in (("mmdet", "eps=0.001"), ("torchvision", "m.eps = 0.001")):
        out = tmp_path / f"{layout}.pth"
        result = cli("convert", source, out, "--to", layout, "--verify", "structure", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert words in report["config"], report["config"]
        if layout == "mmdet":
            assert torch.load(out, weights_only=True)["meta"]["settings"]["eps"] == 0.001
