"""``--to transformers``: folders the real transformers (5.25.0) loads strictly and that compute
pycls's logits, and refusals naming the field RegNetConfig/ResNetConfig lacks.

Every expectation comes from tests/data/transformers (tools/groundtruth/transformers_pycls.py ran
the real pycls 0.1.1 and transformers): the weights are rebuilt from a manifest alone (its README's
recipe plus the measured BN statistics), the keys, config.json and preprocessor_config.json are the
real classes', the logits pycls's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ckptconv.errors import NoLayout, Refused
from ckptconv.model import structure
from ckptconv.tables import engine
from ckptconv.verification import synthetic

from .conftest import groundtruth_recipe

GT = Path(__file__).parent / "data" / "transformers"
FACTS = json.loads((GT / "facts.json").read_text())
MODELS = sorted(p.stem for p in (GT / "manifests").glob("*.json"))
SIDE = {"regnetx_3.2gf": 160, "resnet50": 160, "resnet50_stride1x1": 160}  # the seeded inputs' side (README), else 224
RGB_TOLERANCE = 1e-4  # RGB weights on the reversed input: the summation order changes (8.9e-5 measured, README)
PHOTO_TOLERANCE = 2e-4  # the photos through PyclsResizeCrop (~1e-6 from cv2's input) and RGB weights (1.2e-4 measured with cv2's input)


def manifest(name: str) -> dict:
    return json.loads((GT / "manifests" / f"{name}.json").read_text())


def recipe(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The README's weights: zoo.recipe_state (numpy, seed 0) over pycls's keys in state_dict order."""
    return {k: torch.from_numpy(a) for k, a in groundtruth_recipe(shapes).items()}


def nested(dotted: dict) -> dict:
    """pycls's cfg as its YAML nests it (MODEL.TYPE -> MODEL: {TYPE: ...})."""
    cfg: dict = {}
    for key, value in dotted.items():
        section, field = key.split(".")
        cfg.setdefault(section, {})[field] = value
    return cfg


def pycls_checkpoint(name: str, path: Path) -> Path:
    """The ground truth's weights as pycls's trainer saves them, with the run's cfg."""
    m = manifest(name)
    shapes = {k: tuple(s) for k, s, _ in m["keys"]}
    state = recipe({p: shapes[t] for p, t in m["pycls_to_transformers"]})
    stats = np.load(GT / f"{name}.statistics.npz")
    state |= {k: torch.from_numpy(stats[k]) for k in stats.files}
    return synthetic.save({"epoch": 10, "model_state": state, "cfg": yaml.safe_dump(nested(m["pycls"]["cfg"]))}, path)


@pytest.fixture(scope="module")
def transformers():
    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is downloaded: every folder is local
    return pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def numerics():
    return np.load(GT / "numerics.npz")


@pytest.mark.parametrize("name", MODELS)
def test_the_table_maps_pycls_keys_as_the_real_classes_pair_them(registry, name):
    m = manifest(name)
    variant = structure.from_cfg(nested(m["pycls"]["cfg"]), name)
    table = registry.layout("transformers", variant.family)
    plan = engine.plan(variant, table, registry.pycls_layout(variant.family))
    assert [(e.source, e.target) for e in plan.mapped] == [tuple(pair) for pair in m["pycls_to_transformers"]]
    assert not plan.dropped and not plan.absent


@pytest.mark.parametrize("name", MODELS)
def test_a_folder_loads_strictly_and_gives_pycls_logits(cli, transformers, numerics, tmp_path, name):
    source, folder = pycls_checkpoint(name, tmp_path / f"{name}.pyth"), tmp_path / name
    result = cli("convert", source, folder, "--to", "transformers")
    assert result.exit_code == 0, result.output
    m = manifest(name)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors", "preprocessor_config.json"]
    config = json.loads((folder / "config.json").read_text())
    assert config == {k: v for k, v in m["config"].items() if k != "transformers_version"}
    assert json.loads((folder / "preprocessor_config.json").read_text()) == FACTS["image_processor"]["preprocessor_config.json"]
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", "pt") as f:
        written = [[k, list(f.get_slice(k).get_shape()), str(f.get_slice(k).get_dtype()).lower()] for k in f.keys()]
        assert f.metadata()["layout"] == "transformers" and f.metadata()["source_sha256"]  # ckptconv's meta
    assert sorted(written) == sorted([k, s, {"float32": "f32", "int64": "i64"}[d]] for k, s, d in m["keys"])
    model, info = transformers.AutoModelForImageClassification.from_pretrained(folder, output_loading_info=True)
    assert type(model).__name__ == m["config"]["architectures"][0]
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    side = SIDE.get(name, 224)
    for b in (1, 2):
        x = np.random.default_rng([11, b]).standard_normal((b, 3, side, side)).astype(np.float32)
        with torch.no_grad():
            logits = model.eval()(pixel_values=torch.from_numpy(x[:, ::-1].copy())).logits  # RGB weights, the reversed input
        assert np.abs(logits.numpy() - numerics[f"{name}__b{b}__pycls_logits"]).max() <= RGB_TOLERANCE


@pytest.mark.parametrize("name", ["regnety_200mf_nc10", "resnet50_stride1x1"])
def test_the_printed_snippet_feeds_pycls_input_on_the_shipped_photos(cli, transformers, numerics, tmp_path, name):
    """The printed snippet's preprocessing (PyclsResizeCrop, then pycls's mean and std in RGB order)
    on ckptconv's photos gives pycls's logits, which no processor of transformers does."""
    from ckptconv.transforms import PyclsResizeCrop
    from ckptconv.verification.photo import photos

    source, folder = pycls_checkpoint(name, tmp_path / f"{name}.pyth"), tmp_path / name
    result = cli("convert", source, folder, "--to", "transformers")
    assert result.exit_code == 0 and "PyclsResizeCrop(resize=256, crop=224)" in result.stdout, result.output
    assert "mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]" in result.stdout
    assert f"from_pretrained({str(folder.resolve())!r})" in result.stdout
    model = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    for photo, image in photos():
        x = (PyclsResizeCrop(resize=256, crop=224)(image) - mean) / std
        with torch.no_grad():
            logits = model(pixel_values=x[None]).logits.numpy()
        assert np.abs(logits - numerics[f"{name}__{Path(photo).stem}__pycls_logits"]).max() <= PHOTO_TOLERANCE, photo


REFUSED = {  # facts.json experiments.refusals -> what ckptconv's refusal must name (its "lacking")
    "resnext50_32x4d": "groups",
    "regnet_bot_mul_0.5": "bottleneck-ratio field",
    "regnet_se_r_0.5": "SE-ratio field",
    "regnet_bn_eps_1e-3": "no eps field",
    "regnet_stride_1": "per-stage stride field",
    "anynet_per_stage_group_widths": "one groups_width field",
    "anynet_resnet_stem_with_regnet_blocks": "no groups or width-per-group field",
    "anynet_cifar_stem (res_stem_cifar: 3x3 stride 1)": "no stem field",
    "anynet_vanilla_block": "without a residual",
    "anynet_se_with_resnet_stem": "squeeze-and-excitation field",
}


def test_refusals_cover_the_ground_truth():
    refusals = FACTS["experiments"]["refusals"]
    kept = {"resnet50_stride1x1_as_default_config (downsample_in_bottleneck False)", "resnet50_anynet_with_downsample_in_bottleneck True",
            "head_w", "efficientnet_b0"}  # a config ckptconv does not write (the placement is config.json's), a key pycls 0.1.1 lacks, a family
    assert set(REFUSED) | kept == set(refusals) and not any(refusals[k]["fits"] for k in REFUSED)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_model_the_config_cannot_hold_is_refused_naming_the_field(registry, case):
    variant = structure.from_cfg(nested(FACTS["experiments"]["refusals"][case]["pycls_cfg"]), case)
    with pytest.raises(Refused) as refused:
        registry.layout("transformers", variant.family).check_holds(variant)
    assert REFUSED[case] in refused.value.message and refused.value.fix, refused.value.message


def test_efficientnet_is_refused_naming_the_stem_padding(registry):
    with pytest.raises(NoLayout) as refused:
        registry.layout("transformers", "effnet")
    assert "no stem-padding field" in refused.value.message and "timm" in refused.value.fix


@pytest.mark.parametrize("case", sorted(FACTS["experiments"]["fits"]))
def test_the_models_the_ground_truth_fits_are_taken(registry, case):
    fit = FACTS["experiments"]["fits"][case]
    variant = structure.from_cfg(nested(fit["pycls_cfg"]), case)
    built = registry.layout("transformers", variant.family).built(variant)
    config = {k: v for k, v in fit["closest_config"].items() if k not in ("class", "num_labels")}
    assert all(f"{k}={v!r}" in built.text for k, v in config.items()), (built.text, config)


@pytest.mark.parametrize("arch", sorted(FACTS["zoo_survey"]))
def test_every_zoo_model_is_taken_or_refused_as_the_survey_found(registry, arch):
    survey, variant = FACTS["zoo_survey"][arch], registry.variant(arch)
    table = registry.layout("transformers", variant.family)
    if not survey["structure_equal"]:
        with pytest.raises(Refused, match="groups"):
            table.check_holds(variant)
        return
    built = table.built(variant).text
    assert all(f"{k}={v!r}" in built for k, v in survey["config"].items() if k != "class"), (built, survey["config"])


def test_a_batch_converts_what_fits_and_lists_what_does_not(cli, registry, states, transformers, tmp_path):
    """One batch to transformers and timm: RegNetY-200MF converts to both, ResNeXt-50 is refused by
    transformers only (the field named) and EfficientNet has no transformers cell; nothing fails."""
    src = tmp_path / "zoo"
    src.mkdir()
    for arch, name in (("regnety_200mf", "RegNetY-200MF_dds_8gpu"), ("resnext50_32x4d", "X-50-32x4d_dds_8gpu"), ("b0", "EN-B0_dds_8gpu")):
        synthetic.save({"epoch": 1, "model_state": states(arch), "cfg": synthetic.cfg_yaml(registry.variant(arch))}, src / f"{name}.pyth")
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = cli("batch", src, "--out-dir", out, "--to", "transformers,timm", "--report", report, "--verify", "structure")
    assert result.exit_code == 0, result.output
    cells = {(Path(f["source"]).stem, f["layout"]): f for f in json.loads(report.read_text())["files"]}
    assert {k: f["status"] for k, f in cells.items()} == {
        ("RegNetY-200MF_dds_8gpu", "transformers"): "converted", ("RegNetY-200MF_dds_8gpu", "timm"): "converted",
        ("X-50-32x4d_dds_8gpu", "transformers"): "refused", ("X-50-32x4d_dds_8gpu", "timm"): "converted",
        ("EN-B0_dds_8gpu", "transformers"): "skipped", ("EN-B0_dds_8gpu", "timm"): "converted"}
    assert "ResNetConfig has no groups" in cells["X-50-32x4d_dds_8gpu", "transformers"]["error"]
    assert "stem-padding" in cells["EN-B0_dds_8gpu", "transformers"]["error"]
    folder = out / "transformers" / "RegNetY-200MF_dds_8gpu"
    _, info = transformers.AutoModelForImageClassification.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not (out / "transformers" / "X-50-32x4d_dds_8gpu").exists() and (out / "timm" / "X-50-32x4d_dds_8gpu.pth").is_file()
    again = cli("batch", src, "--out-dir", out, "--to", "transformers,timm", "--json")
    assert {f["status"] for f in json.loads(again.stdout)["files"] if f["layout"] == "transformers" and f["status"] != "refused"} <= {"up to date", "skipped"}


def test_a_folder_request_that_cannot_work_is_refused_before_anything_is_written(cli, tmp_path):
    source = pycls_checkpoint("regnety_200mf_nc10", tmp_path / "y.pyth")
    for args, words in ((("--channel-order", "bgr"), "a model folder holds RGB weights"), (("--prefix", "backbone"), "--prefix would hide them")):
        result = cli("convert", source, tmp_path / "folder", "--to", "transformers", *args)
        assert result.exit_code == 2 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr
    refused = cli("convert", source, tmp_path / "folder", "--to", "transformers", "--cfg", _eps_cfg(tmp_path))
    assert refused.exit_code == 2 and "no eps field" in refused.stderr and "torchvision" in refused.stderr, refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eps.yaml", "y.pyth"]


def _eps_cfg(tmp_path: Path) -> Path:
    cfg = nested(manifest("regnety_200mf_nc10")["pycls"]["cfg"]) | {"BN": {"EPS": 1e-3}}
    path = tmp_path / "eps.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_labels_name_the_classes_transformers_loads(cli, transformers, tmp_path):
    """--labels FILE: config.json's id2label and label2id, as transformers reads them back; a batch
    rerun with other names is not up to date."""
    source = pycls_checkpoint("regnety_200mf_nc10", tmp_path / "y.pyth")
    names = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead", "electric ray", "stingray", "cock", "hen", "ostrich ü"]
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(names) + "\n", encoding="utf-8")
    result = cli("convert", source, tmp_path / "folder", "--to", "transformers", "--labels", labels, "--verify", "structure")
    assert result.exit_code == 0, result.output
    config = transformers.AutoConfig.from_pretrained(tmp_path / "folder")
    assert [config.id2label[i] for i in range(10)] == names and config.label2id["ostrich ü"] == 9
    out = tmp_path / "out"
    assert cli("batch", source, "--out-dir", out, "--to", "transformers", "--labels", labels, "--verify", "structure").exit_code == 0
    labels.write_text("\n".join(reversed(names)) + "\n", encoding="utf-8")
    again = cli("batch", source, "--out-dir", out, "--to", "transformers", "--labels", labels, "--json")
    assert [f["status"] for f in json.loads(again.stdout)["files"]] == ["failed"] and "pass --force" in again.stdout


@pytest.mark.parametrize("text, words", [
    ("a\nb\n", "--labels names 2 classes and"),
    ("a\n\nc\n" + "x\n" * 7, "--labels line 2 is blank"),
    ("a\nb\na\n" + "".join(f"n{i}\n" for i in range(7)), "--labels line 3 names 'a' again (line 1)"),
    ("a\x1b[31m\n" + "".join(f"n{i}\n" for i in range(9)), "--labels line 1 holds a control character"),
    ("y" * 300 + "\n" + "".join(f"n{i}\n" for i in range(9)), "--labels line 1 is 300 characters long"),
    (b"\xff\xfe\n", "--labels is not UTF-8 text"),
])
def test_labels_that_are_not_one_name_per_class_are_refused_before_anything_is_written(cli, tmp_path, text, words):
    source = pycls_checkpoint("regnety_200mf_nc10", tmp_path / "y.pyth")
    labels = tmp_path / "labels.txt"
    labels.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = cli("convert", source, tmp_path / "folder", "--to", "transformers", "--labels", labels)
    assert result.exit_code == 2 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "y.pyth"]


def test_labels_go_with_transformers_only(cli, tmp_path):
    source = pycls_checkpoint("regnety_200mf_nc10", tmp_path / "y.pyth")
    (tmp_path / "labels.txt").write_text("a\n")
    result = cli("convert", source, tmp_path / "o.pth", "--to", "timm", "--labels", tmp_path / "labels.txt")
    assert result.exit_code == 2 and "--labels names the classes in a transformers config.json" in result.stderr


def test_a_batch_gives_labels_to_its_transformers_cells_only(cli, tmp_path):
    source = pycls_checkpoint("regnety_200mf_nc10", tmp_path / "y.pyth")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(10)))
    out = tmp_path / "out"
    result = cli("batch", source, "--out-dir", out, "--to", "transformers,timm", "--labels", labels, "--verify", "structure", "--json")
    assert result.exit_code == 0 and {f["status"] for f in json.loads(result.stdout)["files"]} == {"converted"}, result.output
    assert json.loads((out / "transformers" / "y" / "config.json").read_text())["id2label"]["3"] == "class 3"
    alone = cli("batch", source, "--out-dir", tmp_path / "o2", "--to", "timm", "--labels", labels)
    assert alone.exit_code == 2 and "add --to transformers" in alone.stderr and not (tmp_path / "o2").exists()


def test_a_resnet_folder_loads_as_a_backbone_with_the_classifiers_features(cli, transformers, tmp_path):
    """ResNetBackbone (what AutoBackbone builds for ResNetConfig) takes the folder: every weight but
    the classifier's, and stage for stage the features the classifier (held to pycls's logits above)
    computes. transformers has no RegNet backbone class."""
    name = next(n for n in MODELS if n.startswith("resnet50"))
    source, folder = pycls_checkpoint(name, tmp_path / f"{name}.pyth"), tmp_path / name
    assert cli("convert", source, folder, "--to", "transformers").exit_code == 0
    stages = ["stage1", "stage2", "stage3", "stage4"]
    backbone, info = transformers.ResNetBackbone.from_pretrained(folder, out_features=stages, output_loading_info=True)
    assert not info["missing_keys"] and sorted(info["unexpected_keys"]) == ["classifier.1.bias", "classifier.1.weight"]
    classifier = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((1, 3, 96, 96)).astype(np.float32))
    with torch.no_grad():
        features = backbone.eval()(pixel_values=x).feature_maps
        hidden = classifier(pixel_values=x, output_hidden_states=True).hidden_states
    assert len(features) == 4 and all(torch.equal(f, h) for f, h in zip(features, hidden[1:]))
    assert not hasattr(transformers, "RegNetBackbone")
