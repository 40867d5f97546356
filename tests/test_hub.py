"""`convert IN DIR --to timm --hub` and `batch --hub`: the folder timm loads with `local-dir:` (and
the Hub serves as it is), held to what the real timm 1.0.31 did with the same folders
(tests/data/hub/timm.json, made by tools/groundtruth/hub_timm.py): loaded strictly, logits equal to
the .pth path's, timm's own data config pycls's preprocessing. And the folder is written whole or
not at all, and replaces only a folder of its own."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from ckptconv.verification import synthetic

DATA = Path(__file__).parent / "data"
TIMM = json.loads((DATA / "hub" / "timm.json").read_text())
CASES = TIMM["cases"]
# pycls's test sizes (TEST.IM_SIZE, TRAIN.IM_SIZE) of each case's model: facts of its zoo configs
SIZES = {"b0": (256, 224), "b3": (342, 300), "b0_nc10": (256, 224), "regnetx_200mf": (256, 224),
         "regnety_200mf": (256, 224), "resnet50": (256, 224), "regnety_small_nc10": (256, 224)}
PYCLS_FILES = {"regnety_small_nc10": DATA / "design_space" / "checkpoints" / "regnety_small_nc10.pyth"}
FILES = ["README.md", "config.json", "model.safetensors"]


def _source(name: str, tmp_path: Path, registry, states) -> Path:
    """The case's pycls checkpoint: the committed pycls file, or one of the zoo model's structure
    (config.json depends on the model only, not on its weights)."""
    if name in PYCLS_FILES:
        return PYCLS_FILES[name]
    arch, classes = ("b0", 10) if name == "b0_nc10" else (name, 1000)
    variant, state = registry.variant(arch), dict(states(arch))
    if classes != variant.num_classes:
        variant = replace(variant, num_classes=classes)
        state["head.fc.weight"], state["head.fc.bias"] = state["head.fc.weight"][:classes].clone(), state["head.fc.bias"][:classes].clone()
    return synthetic.save({"epoch": 9, "model_state": state, "cfg": synthetic.cfg_yaml(variant)}, tmp_path / f"{name}.pyth")


def _front_matter(card: str) -> dict:
    head, sep, _ = card.partition("\n---\n")
    assert head.startswith("---\n") and sep
    return yaml.safe_load(head[4:])


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_folder_is_the_one_real_timm_loaded_strictly_with_pycls_preprocessing(cli, tmp_path, registry, states, name):
    truth, (resize, crop) = CASES[name], SIZES[name]
    assert truth["loaded"] and truth["max_abs_logits_vs_pth"] == 0.0, truth.get("error")
    assert truth["files"] == FILES and truth["transform_resize"] == resize  # timm resizes the short side as pycls does
    for data in (truth["data_config"], truth["data_config_test_size"]):  # validate.py's use_test_size too
        assert data["input_size"] == [3, crop, crop] and data["interpolation"] == "bilinear" and data["crop_mode"] == "center"
        assert data["mean"] == [0.485, 0.456, 0.406] and data["std"] == [0.229, 0.224, 0.225]  # RGB: the weights take RGB
    folder = tmp_path / name
    result = cli("convert", _source(name, tmp_path, registry, states), folder, "--to", "timm", "--hub", "--license", "mit", "--verify", "structure")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == FILES
    config = (folder / "config.json").read_text()
    assert hashlib.sha256(config.encode()).hexdigest() == truth["config_json_sha256"], "config.json is not the one timm loaded: run tools/groundtruth/hub_timm.py"
    assert _front_matter((folder / "README.md").read_text()) == truth["card_front_matter"]


def test_the_card_says_where_the_weights_came_from_and_what_was_proved(cli, tmp_path, registry, states):
    src = _source("b3", tmp_path, registry, states)
    folder = tmp_path / "b3"
    assert cli("convert", src, folder, "--to", "timm", "--hub").exit_code == 0
    card = (folder / "README.md").read_text()
    assert _front_matter(card)["license"] == "unknown"  # no --license: the card claims none
    assert hashlib.sha256(src.read_bytes()).hexdigest() in card and "ckptconv convert b3.pyth b3 --to timm --hub" in card
    assert "ok numeric: all" in card and "ok tensors:" in card and "ok pipeline:" in card
    assert "the short side resized to 342" in card and "centre crop of 300" in card
    residual = float(card.split("give inputs up to ")[1].split(" ")[0])
    assert residual > 0.01  # timm's own transforms are measurably off pycls's input (antialiasing, the crop offset)
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert f.metadata()["arch"] == "b3" and f.metadata()["layout"] == "timm"


@pytest.mark.parametrize("args, words", [
    (("--to", "mmdet", "--hub"), "--hub writes the folder timm or transformers loads"),
    (("--to", "timm", "--license", "mit"), "--license goes into the model card of a hub folder"),
    (("--to", "timm", "--hub", "--license", "MIT License"), "is not a licence identifier"),
    (("--to", "timm", "--hub", "--channel-order", "bgr"), "a model folder holds RGB weights"),
    (("--to", "timm", "--hub", "--prefix", "backbone"), "--prefix would hide them"),
    (("--to", "timm", "--hub", "--config-out", "FOLDER/snippet.py"), "--config-out (FOLDER/snippet.py) would be written inside the folder"),
])
def test_a_hub_request_that_cannot_work_is_refused_before_anything_is_read(cli, built, tmp_path, args, words):
    result = cli("convert", built.source(), tmp_path / "folder", *(a.replace("FOLDER", str(tmp_path / "folder")) for a in args))
    assert result.exit_code == 2 and words.replace("FOLDER", str(tmp_path / "folder")) in result.stderr and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_model_timm_builds_from_its_block_list_is_refused_naming_the_way_that_works(cli, tmp_path):
    """A custom EfficientNet (pycls's own file): timm builds it from decode_arch_def(...), which
    config.json cannot hold; the .pth with the printed snippet can."""
    src = DATA / "design_space" / "checkpoints" / "effnet_narrow_nc10.pyth"
    result = cli("convert", src, tmp_path / "folder", "--to", "timm", "--hub")
    assert result.exit_code == 2 and "from its class" in result.stderr and "write a .pth or .safetensors file instead" in result.stderr
    assert list(tmp_path.iterdir()) == []


def front_matter(card: Path) -> dict:
    """The model card's YAML front matter, as the Hub reads it."""
    return yaml.safe_load(card.read_text().split("---\n")[1])


def test_an_existing_folder_is_replaced_only_with_force_and_only_when_it_is_one_of_ours(cli, built, tmp_path):
    folder = tmp_path / "folder"
    assert cli("convert", built.source(), folder, "--to", "timm", "--hub", "--verify", "structure").exit_code == 0
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    again = cli("convert", built.source(), folder, "--to", "timm", "--hub", "--verify", "structure")
    assert again.exit_code == 2 and "pass --force" in again.stderr
    forced = cli("convert", built.source(), folder, "--to", "timm", "--hub", "--license", "mit", "--verify", "structure", "--force")
    assert forced.exit_code == 0 and front_matter(folder / "README.md")["license"] == "mit"
    assert (folder / "model.safetensors").read_bytes() != before["model.safetensors"]  # its meta records the licence asked
    (folder / "notes.txt").write_text("mine\n")
    foreign = cli("convert", built.source(), folder, "--to", "timm", "--hub", "--verify", "structure", "--force")
    assert foreign.exit_code == 2 and "notes.txt" in foreign.stderr and (folder / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]  # no temp folder, no old folder left


def test_a_failure_while_writing_leaves_the_old_folder_and_no_temp_folder(built, tmp_path, monkeypatch):
    from ckptconv import hub
    from ckptconv.api import convert_checkpoint

    folder = tmp_path / "folder"
    convert_checkpoint(built.source(), "timm", output=folder, hub=True, verify="structure")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the card is written

    monkeypatch.setattr(hub, "model_card", broken)
    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(built.source(), "timm", output=folder, hub=True, verify="structure", force=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_batch_hub_makes_a_folder_per_model_reruns_as_up_to_date_and_verifies_from_its_report(cli, built, tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for arch in ("b0", "regnetx_200mf"):
        (zoo / f"{arch}.pyth").write_bytes(built.source(arch).read_bytes())
    out, report = tmp_path / "out", tmp_path / "report.json"
    first = cli("batch", zoo, "--to", "timm", "--hub", "--out-dir", out, "--report", report, "--verify", "structure", "-j", "1")
    assert first.exit_code == 0, first.output
    assert {p.name: sorted(q.name for q in p.iterdir()) for p in out.iterdir()} == {"b0": FILES, "regnetx_200mf": FILES}
    files = json.loads(report.read_text())["files"]
    assert all(f["output_sha256"] == hashlib.sha256((Path(f["output"]) / "model.safetensors").read_bytes()).hexdigest() for f in files)
    again = cli("batch", zoo, "--to", "timm", "--hub", "--out-dir", out, "--json", "--verify", "structure", "-j", "1")
    assert [f["status"] for f in json.loads(again.stdout)["files"]] == ["up to date", "up to date"]
    licensed = cli("batch", zoo, "--to", "timm", "--hub", "--license", "mit", "--out-dir", out, "--json", "--verify", "structure", "-j", "1")
    assert licensed.exit_code == 1  # another card: not up to date, and not replaced without --force
    assert cli("verify", report).exit_code == 0
    mixed = cli("batch", zoo, "--to", "timm,mmdet", "--hub", "--out-dir", tmp_path / "mixed")
    assert mixed.exit_code == 2 and "pass --to timm and/or transformers with --hub" in mixed.stderr


METAFILE = json.loads((DATA / "hub" / "metafile.json").read_text())  # what model-index 0.1.11 read (tools/groundtruth/metafile_modelindex.py)


def test_batch_metafile_is_the_shape_model_index_read_and_names_each_output_once(cli, tmp_path, registry, states):
    import torch

    assert METAFILE["check_errors"] == [] and all(METAFILE["configs_read_by_mmengine"].values())
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for arch in ("b0", "regnetx_200mf", "regnety_200mf", "resnet50"):  # RegNetY: refused by both OpenMMLab targets
        synthetic.save({"epoch": 9, "model_state": dict(states(arch)), "cfg": synthetic.cfg_yaml(registry.variant(arch))}, zoo / f"{arch}.pyth")
    out = tmp_path / "out"
    meta_path = out / "metafile.yml"
    args = ("batch", zoo, "--to", "mmdet,mmpretrain,timm", "--out-dir", out, "--configs", "--metafile", meta_path, "--verify", "structure", "-j", "1")
    assert cli(*args).exit_code == 0
    text = meta_path.read_text()
    data = yaml.safe_load(text)
    assert set(data) == {"Collections", "Models"} and sorted(c["Name"] for c in data["Collections"]) == METAFILE["collections"]
    models = {m["Name"]: m for m in data["Models"]}
    assert len(models) == len(data["Models"]) and sorted(models) == sorted(METAFILE["models"])  # unique names; timm and refused pairs not listed
    weights = [m["Weights"] for m in data["Models"]]
    assert len(set(weights)) == len(weights)  # each file named once
    for name, model in models.items():
        truth = METAFILE["models"][name]
        assert sorted(model) == truth["keys"] and sorted(model["Metadata"]) == truth["metadata_keys"] and model["In Collection"] == truth["in_collection"]
        sd = torch.load(meta_path.parent / model["Weights"], weights_only=True)["state_dict"]
        assert model["Metadata"]["Parameters"] == sum(t.numel() for t in sd.values() if t.is_floating_point())
        assert model["Metadata"]["Weight Set"] == "model" and (meta_path.parent / model["Config"]).read_text().startswith("#")
    assert cli(*args).exit_code == 0 and meta_path.read_text() == text  # a rerun (all up to date) writes the same metafile
    foreign = tmp_path / "mine.yml"
    foreign.write_text("Models: []\n")
    refused = cli("batch", zoo, "--to", "mmdet", "--out-dir", tmp_path / "other", "--metafile", foreign)
    assert refused.exit_code == 2 and "not one ckptconv wrote" in refused.stderr and foreign.read_text() == "Models: []\n"
    only_timm = cli("batch", zoo, "--to", "timm", "--out-dir", tmp_path / "timm", "--metafile", tmp_path / "timm" / "m.yml")
    assert only_timm.exit_code == 2 and "--metafile lists MMDetection and mmpretrain outputs" in only_timm.stderr
    assert not (tmp_path / "timm").exists()  # refused before anything is made


def test_a_sweeps_hub_folders_are_named_by_run_and_their_cards_say_how_they_were_made(cli, built, tmp_path):
    """pycls's OUT_DIR/checkpoints/model_epoch_NNNN.pyth beside OUT_DIR/config.yaml: one folder per
    run, and a card that says the model came from the run's config.yaml, made by batch."""
    from ckptconv.tables.registry import registry_for
    from ckptconv.verification import synthetic

    for run in ("run_01", "run_02"):
        (tmp_path / "sweep" / run / "checkpoints").mkdir(parents=True)
        (tmp_path / "sweep" / run / "checkpoints" / "model_epoch_0010.pyth").write_bytes(built.source("regnetx_200mf", cfg=False).read_bytes())
        (tmp_path / "sweep" / run / "config.yaml").write_text(synthetic.cfg_yaml(registry_for().variant("regnetx_200mf")))
    result = cli("batch", tmp_path / "sweep", "--to", "timm", "--hub", "--out-dir", tmp_path / "out", "--verify", "structure", "-j", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run_01", "run_02"]
    card = (tmp_path / "out" / "run_01" / "README.md").read_text()
    assert "(from the run's config\\.yaml)" in card and "ckptconv batch" in card and "ckptconv convert" not in card
