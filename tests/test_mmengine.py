"""Where users already are: the Python API, convert-on-load in the real mmengine, ``verify --config``.

The real mmengine 0.10.7 is installed by the test extra. The real MMDetection classes need compiled
mmcv ops that do not install here, so weights are loaded into ckptconv's reference models (the
tests in test_zoo.py hold them to the real classes' keys) through mmengine's own loaders.
"""

from __future__ import annotations

import gc
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

import ckptconv
from ckptconv.verification import models, synthetic
from ckptconv.verification.checks import bit_identical

mmengine = pytest.importorskip("mmengine", reason="the test extra installs mmengine: pip install '.[test]'")
from mmengine.model import BaseModule  # noqa: E402
from mmengine.model.base_model.data_preprocessor import ImgDataPreprocessor  # noqa: E402
from mmengine.model.weight_init import PretrainedInit  # noqa: E402
from mmengine.runner import CheckpointLoader, load_checkpoint  # noqa: E402

import ckptconv.mmengine as plugin  # noqa: E402  (registers the schemes and CkptconvPretrained)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, registry, states):
    """pycls training checkpoints of RegNetX-200MF and B0, and their ckptconv mmdet conversions."""
    d = tmp_path_factory.mktemp("mm")
    out = {}
    for arch, name in (("regnetx_200mf", "RegNetX-200MF_dds_8gpu"), ("b0", "EN-B0_dds_8gpu")):
        ckpt = {"epoch": 9, "model_state": states(arch), "cfg": synthetic.cfg_yaml(registry.variant(arch))}
        src = synthetic.save(ckpt, d / f"{name}.pyth")
        converted = ckptconv.convert_checkpoint(src, "mmdet", output=d / f"{name}_mmdet.pth", config_out=d / f"{name}_cfg.py")
        out[arch] = (src, converted.output, d / f"{name}_cfg.py")
    return out


def _model(registry, arch, **settings) -> torch.nn.Module:
    """ckptconv's reference of mmdet's backbone, in real memory, as a detector builds it."""
    variant = registry.variant(arch)
    detector = {"out_indices": (3, 4, 5)} if variant.family == "effnet" else {}
    return models.build("mmdet" if variant.family == "effnet" else "mmdet-resnet", variant, models.Build(device="cpu", **detector, **settings))


def _file_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


# --- the Python API ------------------------------------------------------------------------------


def test_the_public_api_converts_in_memory_writes_verifies_and_inspects(sources, tmp_path):
    src, written, _ = sources["regnetx_200mf"]
    thresholds = gc.get_threshold()
    converted = ckptconv.convert_checkpoint(src, "mmdet")
    assert gc.get_threshold() == thresholds  # the host's collector is its own (the CLI tunes its own)
    assert isinstance(converted, ckptconv.Converted) and converted.output is None
    assert (converted.arch, converted.layout) == ("regnetx_200mf", "mmdet") and converted.report.ok
    on_disk = _file_weights(written)
    assert list(converted.state_dict) == list(on_disk)
    assert all(torch.equal(converted.state_dict[k], on_disk[k]) for k in on_disk)
    assert "type='RegNet'" in converted.config and converted.meta["channel_order"] == "rgb"
    report = ckptconv.verify_checkpoint(written, eps=1e-3)
    assert not report.ok and "eps=0.001" in report.first_failure
    assert ckptconv.verify_checkpoint(written, source=src).ok
    info = ckptconv.inspect_checkpoint(src)
    assert info["format"] == "zip"
    assert ckptconv.supported()["regnety_200mf"]["mmdet"] == "refused: se"
    assert list(tmp_path.iterdir()) == []  # nothing written but what was named


def test_api_errors_are_the_typed_exceptions_the_cli_prints(sources, tmp_path, registry, states):
    y = synthetic.save({"epoch": 1, "model_state": states("regnety_200mf")}, tmp_path / "y.pyth")
    with pytest.raises(ckptconv.Refused) as refused:
        ckptconv.convert_checkpoint(y, "mmdet")
    assert isinstance(refused.value, ckptconv.UsageError) and "timm or torchvision" in refused.value.fix
    with pytest.raises(ckptconv.UsageError, match="unknown layout 'detectron2'"):
        ckptconv.convert_checkpoint(sources["b0"][0], "detectron2")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ckptconv.FormatError):
        ckptconv.convert_checkpoint(tmp_path / "junk.pth", "mmdet")


# --- convert on load -------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["regnetx_200mf", "b0"])
def test_the_scheme_loads_what_a_converted_file_holds(sources, registry, arch):
    """CheckpointLoader, load_checkpoint and PretrainedInit through pycls-mmdet:// give the very
    tensors of the converted file, and the model loads them strictly."""
    src, written, _ = sources[arch]
    want = _file_weights(written)
    raw = CheckpointLoader.load_checkpoint(f"pycls-mmdet://{src}")
    assert raw["meta"]["arch"] == arch and all(torch.equal(raw["state_dict"][k], want[k]) for k in want)
    model = _model(registry, arch)
    load_checkpoint(model, f"pycls-mmdet://{src}", strict=True)
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())
    again = _model(registry, arch)
    PretrainedInit(checkpoint=f"pycls-mmdet://{src}")(again)
    assert all(torch.equal(v, want[k]) for k, v in again.state_dict().items())


def test_scheme_names_match_only_their_own_layout(sources):
    src = sources["regnetx_200mf"][0]
    bgr = CheckpointLoader.load_checkpoint(f"pycls-mmdet-bgr://{src}")
    rgb = CheckpointLoader.load_checkpoint(f"pycls-mmdet://{src}")
    assert (bgr["meta"]["channel_order"], rgb["meta"]["channel_order"]) == ("bgr", "rgb")
    assert torch.equal(bgr["state_dict"]["conv1.weight"], rgb["state_dict"]["conv1.weight"].flip(1))
    pre = CheckpointLoader.load_checkpoint(f"pycls-mmpretrain://{src}")
    assert "head.fc.weight" in pre["state_dict"] and "backbone.conv1.weight" in pre["state_dict"]


class Backbone(BaseModule):
    """An mmengine module holding the reference backbone, with a child that initializes itself."""

    def __init__(self, inner: torch.nn.Module, init_cfg=None):
        super().__init__(init_cfg)
        self.inner = inner


class Detector(BaseModule):
    def __init__(self, backbone: torch.nn.Module, flip: bool, mean, std, init_cfg=None):
        super().__init__(init_cfg)
        self.data_preprocessor = ImgDataPreprocessor(mean=mean, std=std, bgr_to_rgb=flip)
        self.backbone = backbone


def _strict(checkpoint, **kw) -> dict:
    return dict(type="CkptconvPretrained", checkpoint=str(checkpoint), layout="mmdet", **kw)


@pytest.mark.parametrize("which", ["pycls", "converted"])
def test_the_strict_initializer_loads_every_tensor_and_children_keep_them(sources, registry, which):
    src, written, _ = sources["b0"]
    inner = _model(registry, "b0")
    inner.init_weights = lambda: [torch.nn.init.zeros_(p) for p in inner.parameters()]  # as mmcv's ConvModule re-inits
    module = Backbone(inner, init_cfg=_strict(src if which == "pycls" else written, prefix="inner"))
    module.init_weights()  # mmengine: custom initializers first, then each child's own init_weights
    want = _file_weights(written)
    assert all(torch.equal(v, want[k]) for k, v in inner.state_dict().items())


@pytest.mark.parametrize("setting, words", [({"eps": 1e-3}, "eps 0.001; these weights need 1e-05"), ({"padding": "same"}, "pads (0, 0) where pycls pads (1, 1)")])
def test_the_strict_initializer_refuses_a_model_built_with_other_settings(sources, registry, setting, words):
    src = sources["b0"][0]
    module = Backbone(_model(registry, "b0", **setting), init_cfg=_strict(src, prefix="inner"))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(ckptconv.VerificationError) as e:
        module.init_weights()
    assert words in str(e.value) and "set what the config ckptconv prints sets" in str(e.value)
    assert all(bit_identical(v, before[k]) for k, v in module.state_dict().items())  # nothing was loaded


def test_the_strict_initializers_advice_has_every_value_filled_in(sources, registry):
    module = Backbone(_model(registry, "b0", padding="same"), init_cfg=_strict(sources["b0"][0], prefix="inner"))
    with pytest.raises(ckptconv.VerificationError) as e:
        module.init_weights()
    assert "{eps}" not in str(e.value) and "norm_cfg=dict(eps=1e-05)" in str(e.value)


@pytest.mark.parametrize("arch, activation", [("b0", torch.nn.ReLU), ("b0", torch.nn.Hardswish), ("regnetx_200mf", torch.nn.SiLU)])
def test_the_strict_initializer_refuses_another_activation(sources, registry, arch, activation):
    """mmdet's EfficientNet(act_cfg=dict(type='ReLU')) loads the same keys and computes other features."""
    inner = _model(registry, arch)
    inner.add_module("act", activation())  # as mmcv's ConvModule holds its act_cfg's module
    module = Backbone(inner, init_cfg=_strict(sources[arch][0], prefix="inner"))
    with pytest.raises(ckptconv.VerificationError, match=f"the model computes {activation.__name__} where pycls's"):
        module.init_weights()


def test_the_strict_initializer_refuses_keys_that_do_not_fit(sources, registry):
    src = sources["regnetx_200mf"][0]
    module = Backbone(_model(registry, "b0"), init_cfg=_strict(src, prefix="inner"))  # a RegNet's weights into an EfficientNet
    with pytest.raises(ckptconv.VerificationError, match="does not fit the model: .* missing and .* unexpected keys"):
        module.init_weights()


@pytest.mark.parametrize("flip, ok", [(True, True), (False, False)])
def test_on_a_detector_the_initializer_checks_the_data_preprocessor(sources, registry, flip, ok):
    """RGB weights (the default) need bgr_to_rgb=True and pycls's mean and std in RGB order."""
    src, written, _ = sources["regnetx_200mf"]
    det = Detector(_model(registry, "regnetx_200mf"), flip, [123.675, 116.28, 103.53], [58.395, 57.12, 57.375],
                   init_cfg=_strict(src, prefix="backbone"))
    if ok:
        det.init_weights()
        want = _file_weights(written)
        assert all(torch.equal(v, want[k]) for k, v in det.backbone.state_dict().items())
    else:
        with pytest.raises(ckptconv.VerificationError, match="keeps the channels it loads; these weights take RGB: set bgr_to_rgb=True"):
            det.init_weights()


def test_custom_imports_registers_the_plugin_when_a_config_is_read(tmp_path, monkeypatch):
    """Config.fromfile imports ckptconv.mmengine afresh (it is taken out of sys.modules first), and
    the import registers the initializer and the schemes."""
    import sys

    from mmengine.config import Config
    from mmengine.registry import WEIGHT_INITIALIZERS

    monkeypatch.delitem(sys.modules, "ckptconv.mmengine")
    (tmp_path / "c.py").write_text("custom_imports = dict(imports=['ckptconv.mmengine'], allow_failed_imports=False)\nmodel = dict(type='X')\n")
    Config.fromfile(str(tmp_path / "c.py"))
    fresh = sys.modules["ckptconv.mmengine"]
    assert fresh is not plugin and WEIGHT_INITIALIZERS.get("CkptconvPretrained") is fresh.CkptconvPretrained
    assert CheckpointLoader._get_checkpoint_loader("pycls-mmdet-stages://x").__module__ == "ckptconv.openmmlab.loading"


# --- verify --config -------------------------------------------------------------------------------

BASE = """model = dict(
    type='RetinaNet',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=True),
                  norm_eval=True, style='pytorch', init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5))
"""


def _configs(tmp_path: Path, printed: Path, base: str = BASE) -> Path:
    """The user's detector: a _base_ (a stock ResNet RetinaNet) and the fragment ckptconv printed."""
    (tmp_path / "base.py").write_text(base)
    child = tmp_path / "detector.py"
    child.write_text("_base_ = './base.py'\n" + printed.read_text())
    return child


WRONG = [  # (edit to the printed fragment, the field named)
    ("bgr_to_rgb=True", "bgr_to_rgb=False", "model.data_preprocessor.bgr_to_rgb is False; these weights need True"),
    ("mean=[123.675, 116.28, 103.53]", "mean=[103.53, 116.28, 123.675]", "model.data_preprocessor.mean"),
    ("std=[58.395, 57.12, 57.375]", "std=[1.0, 1.0, 1.0]", "model.data_preprocessor.std"),
    ("in_channels=[24, 56, 152, 368]", "in_channels=[32, 64, 160, 384]", "model.neck.in_channels is [32, 64, 160, 384]; these weights need [24, 56, 152, 368]"),
    ("wa=36.44", "wa=24.48", "model.backbone.arch"),
    ("norm_cfg=dict(type='BN', eps=1e-5, requires_grad=True)", "norm_cfg=dict(type='BN', eps=1e-3, requires_grad=True)", "model.backbone.norm_cfg.eps is 0.001; these weights need 1e-05"),
    ("        style='pytorch',\n", "        style='pytorch', conv_cfg=dict(type='Conv2dAdaptivePadding'),\n", "model.backbone.conv_cfg"),
    ("checkpoint=", "prefix='backbone', checkpoint=", "model.backbone.init_cfg.prefix"),
    ("        style='pytorch',\n", "        style='caffe',\n", "model.backbone.style is 'caffe'; these weights need 'pytorch'"),  # the stride on the 1x1
    ("        style='pytorch',\n", "        style='pytorch', deep_stem=True,\n", "model.backbone.deep_stem is True; these weights need False"),  # another stem
    ("        style='pytorch',\n", "        style='pytorch', avg_down=True,\n", "model.backbone.avg_down is True; these weights need False"),  # another shortcut
    ("norm_cfg=dict(type='BN', eps=1e-5, requires_grad=True)", "norm_cfg=dict(type='GN', num_groups=8, eps=1e-5, requires_grad=True)", "model.backbone.norm_cfg.type is 'GN'"),
    ("        style='pytorch',\n", "        style='pytorch', dcn=dict(type='DCN', deform_groups=1), stage_with_dcn=(False, True, True, True),\n", "model.backbone.dcn is"),
    # fields of the wrong type: named with their value, never a traceback
    ("eps=1e-5, requires_grad", "eps='abc', requires_grad", "model.backbone.norm_cfg.eps is 'abc'; these weights need 1e-05"),
    ("norm_cfg=dict(type='BN', eps=1e-5, requires_grad=True)", "norm_cfg='BN'", "model.backbone.norm_cfg is 'BN'"),
    ("mean=[123.675, 116.28, 103.53]", "mean=5", "model.data_preprocessor.mean is 5"),
    ("in_channels=[24, 56, 152, 368]", "in_channels=None", "model.neck.in_channels is None; these weights need [24, 56, 152, 368]"),
    ("out_indices=(0, 1, 2, 3)", "out_indices='abc'", "model.backbone.out_indices is 'abc'"),
    ("checkpoint=", "prefix=3, checkpoint=", "model.backbone.init_cfg.prefix is 3; these weights need no prefix"),
]


def test_verify_config_passes_the_printed_fragment_over_a_base(cli, sources, tmp_path):
    config = _configs(tmp_path, sources["regnetx_200mf"][2])
    result = cli("verify", "--config", config, "--json")
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["files"]
    assert report["checks"][0]["name"] == "config" and "fields fit these weights" in report["checks"][0]["detail"]
    assert {c["name"] for c in report["checks"]} >= {"structure", "numeric", "pipeline"}


@pytest.mark.parametrize("right, wrong, named", WRONG, ids=[w[2].split(" ")[0] for w in WRONG])
def test_verify_config_names_each_wrong_field_with_the_value_it_needs(cli, sources, tmp_path, right, wrong, named):
    printed = sources["regnetx_200mf"][2]
    text = printed.read_text()
    assert right in text
    edited = tmp_path / "fragment.py"
    edited.write_text(text.replace(right, wrong, 1))
    result = cli("verify", "--config", _configs(tmp_path, edited), "--json")
    assert result.exit_code == 1
    (report,) = json.loads(result.stdout)["files"]
    assert named in report["first_failure"]


UNSET_BASE = BASE.replace("out_indices=(0, 1, 2, 3), ", "")  # the stock ResNet's indices must not fill in
# mmdet's own retinanet_effb3_fpn_8xb4-crop896-1x_coco.py as mmengine resolved it (the real mmdet 3.3.0:
# tests/data/design_space/stock_configs.json): the base an EfficientNet fragment is pasted over
_STOCK = json.loads((Path(__file__).parent / "data" / "design_space" / "stock_configs.json").read_text())["configs"]
EFFNET_MODEL = _STOCK["mmdet:efficientnet/retinanet_effb3_fpn_8xb4-crop896-1x_coco.py"]["model"]
EFFNET_BASE = f"model = {EFFNET_MODEL!r}\n"
EFFNET_UNSET_BASE = f"model = {dict(EFFNET_MODEL, backbone={k: v for k, v in EFFNET_MODEL['backbone'].items() if k != 'out_indices'})!r}\n"


@pytest.mark.parametrize("line, named", [
    ("out_indices=(3, 4, 5, 6),", "model.backbone.out_indices is (3, 4, 5, 6)"),
    ("out_indices=(6,),", "model.backbone.out_indices is (6,)"),
    ("", "model.backbone.out_indices (not set: the library's default) is (6,)"),
], ids=["3456", "6", "unset"])
def test_verify_config_refuses_out_indices_beyond_the_layers_the_weights_hold(cli, sources, tmp_path, line, named):
    """MMDetection's EfficientNet builds layers 0 ... max(out_indices); its default (6,) builds
    layers.6, which a detector's weights do not hold: mmengine would leave it random, with a log line."""
    text = sources["b0"][2].read_text()
    assert "out_indices=(3, 4, 5)," in text
    (tmp_path / "frag.py").write_text(text.replace("out_indices=(3, 4, 5),", line))
    result = cli("verify", "--config", _configs(tmp_path, tmp_path / "frag.py", EFFNET_UNSET_BASE), "--json")
    assert result.exit_code == 1
    (report,) = json.loads(result.stdout)["files"]
    assert report["first_failure"].endswith(f"{named}; these weights need 'indices of layers they hold (0 ... 5), e.g. (3, 4, 5)'")


def test_verify_config_takes_the_librarys_default_out_indices_where_they_fit(cli, sources, tmp_path):
    """RegNet's default (0, 1, 2, 3) selects layer1 ... layer4, which the weights hold."""
    text = sources["regnetx_200mf"][2].read_text()
    assert "out_indices=(0, 1, 2, 3)," in text
    (tmp_path / "frag.py").write_text(text.replace("out_indices=(0, 1, 2, 3),", ""))
    result = cli("verify", "--config", _configs(tmp_path, tmp_path / "frag.py", UNSET_BASE), "--json")
    assert result.exit_code == 0, result.output


def test_verify_config_for_effnet_catches_mmdets_defaults(cli, sources, tmp_path):
    """The EfficientNet fragment without conv_cfg and norm_cfg: mmdet's defaults, named."""
    text = sources["b0"][2].read_text()
    text = text.replace("        conv_cfg=dict(type='Conv2d'),  # not Conv2dAdaptivePadding: pycls pads symmetrically\n", "")
    assert "        norm_cfg=dict(eps=1e-5)," in text
    text = re.sub(r"        norm_cfg=dict\(eps=1e-5\),.*\n", "", text)
    (tmp_path / "frag.py").write_text(text)
    result = cli("verify", "--config", _configs(tmp_path, tmp_path / "frag.py", EFFNET_BASE), "--json")
    report = json.loads(result.stdout)["files"][0]
    failed = [c["detail"] for c in report["checks"] if not c["ok"]]
    assert any("model.backbone.conv_cfg" in f for f in failed) and any("norm_cfg.eps is 0.001" in f for f in failed)
    assert any(c["name"] == "numeric" and not c["ok"] for c in report["checks"])  # and the weights prove it


def test_verify_config_reads_a_pycls_scheme_and_needs_a_readable_checkpoint(cli, sources, tmp_path):
    src = sources["regnetx_200mf"][0]
    text = sources["regnetx_200mf"][2].read_text()
    scheme = text.replace(f"checkpoint='{sources['regnetx_200mf'][1]}'", f"checkpoint='pycls-mmdet://{src}'")
    (tmp_path / "frag.py").write_text("custom_imports = dict(imports=['ckptconv.mmengine'], allow_failed_imports=False)\n" + scheme)
    assert cli("verify", "--config", _configs(tmp_path, tmp_path / "frag.py"), "-q").exit_code == 0
    (tmp_path / "base.py").write_text(BASE)
    stock = tmp_path / "stock.py"
    stock.write_text("_base_ = './base.py'\n")
    result = cli("verify", "--config", stock)
    assert result.exit_code == 2 and "torchvision://resnet50, which ckptconv cannot read here" in result.stderr


# --- a classifier's test pipeline ------------------------------------------------------------------

STOCK_TEST_PIPELINE = """test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
"""


@pytest.fixture(scope="module")
def classifier(built, tmp_path_factory):
    """B0 converted to mmpretrain with the config ckptconv printed."""
    d = tmp_path_factory.mktemp("classifier")
    out, config = d / "b0_mmpretrain.pth", d / "b0_cls.py"
    ckptconv.convert_checkpoint(built.source("b0"), "mmpretrain", output=out, config_out=config)
    return out, config


def test_verify_config_passes_the_printed_classifier_and_its_test_pipeline(cli, classifier):
    """The printed mmpretrain config loads the weights from the classifier's own init_cfg, and
    its test pipeline (PyclsResizeCrop) resizes and crops as pycls does."""
    out, config = classifier
    result = cli("verify", "--config", config, "--json")
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["files"]
    assert report["path"] == str(out)
    assert "test_dataloader.dataset.pipeline" not in report["checks"][0]["detail"]  # nothing wrong with it
    assert next(c for c in report["checks"] if c["name"] == "pipeline")["ok"]


def test_verify_config_names_the_stock_resize_and_crop(cli, classifier, tmp_path):
    """Today's mmpretrain pipeline (ResizeEdge on uint8, CenterCrop at round-half-even): each
    step named in the config check, and the photos measure it."""
    out, config = classifier
    stock = tmp_path / "stock.py"
    stock.write_text(config.read_text() + STOCK_TEST_PIPELINE)
    result = cli("verify", "--config", stock, "--json")
    assert result.exit_code == 1
    (report,) = json.loads(result.stdout)["files"]
    failed = [c["detail"] for c in report["checks"] if not c["ok"]]
    assert any("test_dataloader.dataset.pipeline[1] is ResizeEdge: its resize computes the long side as int(R * long / short)" in d
               and "it resizes uint8 pixels" in d for d in failed)
    assert any("test_dataloader.dataset.pipeline[2] is CenterCrop: its centre crop rounds the offset half to even" in d for d in failed)
    assert any(d.startswith("astronaut_crop.png through the pipeline as configured differs") for d in failed)
    floats = tmp_path / "floats.py"
    floats.write_text(config.read_text() + STOCK_TEST_PIPELINE.replace("dict(type='LoadImageFromFile')", "dict(type='LoadImageFromFile', to_float32=True)")
                      .replace("scale=256", "scale=288"))
    failed = [c["detail"] for c in json.loads(cli("verify", "--config", floats, "--json").stdout)["files"][0]["checks"] if not c["ok"]]
    assert any("test_dataloader.dataset.pipeline[1].scale is 288; pycls tests this model at 256" in d for d in failed)
    assert not any("uint8" in d for d in failed)  # loaded as float32, ResizeEdge resizes float32


def test_verify_config_never_writes_its_report_over_a_file_the_run_reads(cli, sources, tmp_path):
    """The config's _base_, the checkpoint it loads and any existing file that is not a ckptconv
    report are inputs or the user's files: --report over them is refused, and they stay as they were."""
    src, converted, printed = sources["regnetx_200mf"]
    config = _configs(tmp_path, printed)
    weights = tmp_path / "weights.pth"
    shutil.copy(converted, weights)
    (tmp_path / "frag.py").write_text(printed.read_text().replace(repr(str(converted)), repr(str(weights))))
    config = _configs(tmp_path, tmp_path / "frag.py")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    for report in (tmp_path / "base.py", weights, notes):
        before = report.read_bytes()
        result = cli("verify", "--config", config, "--report", report)
        assert result.exit_code == 2 and report.read_bytes() == before, (report, result.output)
    src = sources["regnetx_200mf"][0]
    pycls_copy = tmp_path / "RegNetX-200MF.pyth"
    shutil.copy(src, pycls_copy)
    (tmp_path / "scheme.py").write_text(printed.read_text().replace(repr(str(converted)), repr(f"pycls-mmdet://{pycls_copy}")))
    scheme_config = _configs(tmp_path, tmp_path / "scheme.py")
    before = pycls_copy.read_bytes()
    result = cli("verify", "--config", scheme_config, "--report", pycls_copy)  # the pycls file the config converts on load
    assert result.exit_code == 2 and pycls_copy.read_bytes() == before, result.output
    config = _configs(tmp_path, tmp_path / "frag.py")
    ok = cli("verify", "--config", config, "--report", tmp_path / "report.json")
    again = cli("verify", "--config", config, "--report", tmp_path / "report.json")  # a CI rerun replaces its own report
    assert ok.exit_code == 0 and again.exit_code == 0, again.output


def test_the_strict_initializer_refuses_a_model_that_strides_another_conv(sources, registry):
    """mm's ResNet/RegNet with style='caffe' strides the first 1x1: the same keys and shapes as the
    weights (whose pycls model strides the 3x3), other features. Refused, naming the conv and style."""
    from ckptconv.model.variants import replaced

    src = sources["regnetx_200mf"][0]
    caffe = replaced(registry.variant("regnetx_200mf"), stride_1x1=True)
    module = Backbone(models.build("mmdet-resnet", caffe, models.Build(device="cpu")), init_cfg=_strict(src, prefix="inner"))
    with pytest.raises(ckptconv.VerificationError, match=r"layer1\.0\.conv1 strides 2 where pycls's s1\.b1\.f\.a strides 1"):
        module.init_weights()


def test_verify_config_passes_the_effnet_fragment_over_mmdets_own_effnet_config(cli, sources, tmp_path):
    result = cli("verify", "--config", _configs(tmp_path, sources["b0"][2], EFFNET_BASE), "--json")
    assert result.exit_code == 0, result.stdout[-600:]


def test_verify_config_fails_a_detector_mmdetection_cannot_build(cli, sources, tmp_path):
    """The EfficientNet fragment merged into a ResNet detector's backbone keeps depth, num_stages,
    style ...: mmdet's EfficientNet takes none of them (tests/data/signatures.json), and real mmdet
    raises TypeError. verify --config names the keys instead of passing."""
    result = cli("verify", "--config", _configs(tmp_path, sources["b0"][2], BASE), "--json")
    assert result.exit_code == 1
    first = json.loads(result.stdout)["files"][0]["first_failure"]
    assert "model.backbone has depth" in first and "mmdet's EfficientNet does not take" in first, first


def test_the_class_parameters_ckptconv_ships_are_the_recorded_signatures():
    """ckptconv/data/mm_parameters.json is what tools/groundtruth/mm_parameters.py makes of the real
    classes' signatures; a rerun of the GT must regenerate it."""
    import importlib.util

    tool = Path(__file__).parents[1] / "tools" / "groundtruth" / "mm_parameters.py"
    spec = importlib.util.spec_from_file_location("mm_parameters", tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sig = json.loads((Path(__file__).parent / "data" / "signatures.json").read_text())
    shipped = json.loads((Path(__file__).parents[1] / "ckptconv" / "data" / "mm_parameters.json").read_text())
    for library in ("mmdet", "mmpretrain"):
        assert shipped[library] == module.parameters({k: v for k, v in sig[library].items() if k.startswith(("backbones.", "necks."))})
    assert "depth" not in shipped["mmdet"]["EfficientNet"] and "style" in shipped["mmdet"]["ResNeXt"]


def test_the_docs_convert_on_load_lines_replace_the_stock_init_cfg(cli, sources, tmp_path):
    """docs/configs.md's two lines, as a child of mmdet's own EfficientNet detector (which loads an
    ImageNet checkpoint with prefix='backbone'): the pycls file is converted on load, and no stock
    prefix lingers; as a child of that detector plus the printed fragment, the whole config passes."""
    src = sources["b0"][0]
    text = (Path(__file__).parents[1] / "docs" / "configs.md").read_text()
    start = text.index("```python\n", text.index("## Convert on load")) + len("```python\n")
    lines = text[start : text.index("```", start)].replace("EN-B3_dds_8gpu.pyth", str(src))
    (tmp_path / "base.py").write_text(EFFNET_BASE)
    (tmp_path / "on_stock.py").write_text("_base_ = './base.py'\n" + lines)
    report = json.loads(cli("verify", "--config", tmp_path / "on_stock.py", "--json").stdout)["files"][0]
    failed = " ".join(c["detail"] for c in report["checks"] if not c["ok"])
    assert "init_cfg.prefix" not in failed and "model.backbone.conv_cfg" in failed  # the stock padding: the fragment is still needed
    (tmp_path / "frag.py").write_text("_base_ = './base.py'\n" + sources["b0"][2].read_text())
    (tmp_path / "on_fragment.py").write_text("_base_ = './frag.py'\n" + lines)
    result = cli("verify", "--config", tmp_path / "on_fragment.py", "--json")
    assert result.exit_code == 0, result.stdout[-600:]


def test_verify_config_with_file_holds_the_config_to_that_file(cli, sources, tmp_path):
    """verify --config CFG FILE checks FILE: the config must load FILE itself, not another file or
    one that does not exist (mmengine would train from other weights than the ones checked)."""
    _, converted, printed = sources["regnetx_200mf"]
    config = _configs(tmp_path, printed)  # it loads `converted`
    other = tmp_path / "other.pth"
    shutil.copy(converted, other)
    assert cli("verify", "--config", config, converted).exit_code == 0
    result = cli("verify", "--config", config, other, "--json")
    assert result.exit_code == 1 and "another file than" in json.loads(result.stdout)["files"][0]["first_failure"]
    (tmp_path / "frag.py").write_text(printed.read_text().replace(repr(str(converted)), repr(str(tmp_path / "gone.pth"))))
    missing = cli("verify", "--config", _configs(tmp_path, tmp_path / "frag.py"), other, "--json")
    assert missing.exit_code == 1 and "which does not exist" in json.loads(missing.stdout)["files"][0]["first_failure"]


@pytest.mark.parametrize("scheme", [False, True], ids=["pth", "pycls-mmdet"])
def test_verify_config_computes_with_the_settings_the_config_builds_for_either_checkpoint(cli, sources, tmp_path, scheme):
    """The numeric check runs the network the config builds (its norm_cfg eps here), whether the
    config loads the converted .pth or converts the pycls file on load (pycls-mmdet://): one
    setting, one verdict, never a passing numeric check beside a failing config check."""
    src, converted, printed = sources["regnetx_200mf"]
    text = printed.read_text().replace("eps=1e-5, requires_grad", "eps=1e-3, requires_grad")
    if scheme:
        text = text.replace(repr(str(converted)), repr(f"pycls-mmdet://{src}"))
    (tmp_path / "frag.py").write_text(text)
    result = cli("verify", "--config", _configs(tmp_path, tmp_path / "frag.py"), "--json")
    assert result.exit_code == 1, result.stdout[-400:]
    (report,) = json.loads(result.stdout)["files"]
    checks = {c["name"]: c for c in report["checks"]}
    assert report["eps"] == 0.001 and not checks["config"]["ok"] and not checks["numeric"]["ok"], report
    assert "eps is 0.001; these weights need 1e-05" in checks["config"]["detail"]


# --- every printed fragment, as a child of every stock config of its family the library ships -------

STOCK = json.loads((Path(__file__).parent / "data" / "openmmlab" / "stock_configs.json").read_text())["configs"]
# the model of each family a stock config is tried with (what its backbone type says it holds)
STOCK_MODELS = {"EfficientNet": "b3", "RegNet": "regnetx_800mf", "ResNet": "resnet50", "mmpretrain.ResNet": "resnet50",
                "ResNeXt": "resnext50_32x4d", "ResNet_CIFAR": "anynet_cifar_basic_r18_3stages"}
STOCK_CASES = sorted(k for k, v in STOCK.items() if v["family"] and v["backbone_type"] in STOCK_MODELS)


@pytest.fixture(scope="module")
def printed(tmp_path_factory, registry, states):
    """The config ckptconv prints for a model and layout, with the file it goes with (cached)."""
    d, cache = tmp_path_factory.mktemp("printed"), {}

    def get(arch: str, layout: str):
        if (arch, layout) not in cache:
            if arch in registry.variants:
                src = synthetic.save({"epoch": 1, "model_state": states(arch), "cfg": synthetic.cfg_yaml(registry.variant(arch))}, d / f"{arch}.pyth")
            else:  # a design-space model pycls built (its own checkpoint)
                src = Path(__file__).parent / "data" / "design_space" / "checkpoints" / f"{arch}.pyth"
            converted = ckptconv.convert_checkpoint(src, layout, output=d / f"{arch}-{layout}.pth", verify="structure")
            cache[arch, layout] = (converted, d / f"{arch}-{layout}.pth")
        return cache[arch, layout]

    return get


def _stock_base(entry: dict) -> str:
    """The stock config as mmengine resolved it, as a Python config file."""
    lines = [f"model = {entry['model_repr']}"]
    if entry.get("data_preprocessor"):
        lines.append(f"data_preprocessor = {entry['data_preprocessor']!r}")
    for loader in ("test_dataloader", "val_dataloader"):
        if entry.get(f"{loader}.dataset.pipeline"):
            lines.append(f"{loader} = dict(dataset=dict(type='ImageNet', pipeline={entry[f'{loader}.dataset.pipeline']!r}))")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", STOCK_CASES)
def test_every_printed_fragment_merges_as_a_child_of_each_stock_config_of_its_family(printed, registry, tmp_path, name):
    """mmengine merges the fragment over the library's own config (a dict arch over a string one
    needs _delete_), and what comes out holds every field the weights need: verify --config's check."""
    from mmengine.config import Config

    from ckptconv.openmmlab import config as mmconfig

    entry = STOCK[name]
    layout = "mmdet" if name.startswith("mmdet:") else "mmpretrain"
    converted, weights = printed(STOCK_MODELS[entry["backbone_type"]], layout)
    (tmp_path / "base.py").write_text(_stock_base(entry))
    (tmp_path / "child.py").write_text("_base_ = ['./base.py']\n" + converted.config)
    if isinstance(entry["model"].get("neck"), list):  # [FPN, DyHead]: a dict cannot merge over it, as the fragment says
        assert "a config whose neck is a list" in converted.config
        with pytest.raises(TypeError, match="neck=.* is a dict in the child config but is of type <class 'list'>"):
            Config.fromfile(str(tmp_path / "child.py"))
        return
    cfg = Config.fromfile(str(tmp_path / "child.py")).to_dict()
    from ckptconv.tables.detect import recorded_model

    variant = recorded_model(converted.meta, registry)
    table = registry.layout(layout, variant.family)
    found = mmconfig.check(cfg, variant, table, converted.meta, registry.pycls_layout(variant.family).pipeline)
    assert found.problems == [], found.problems
