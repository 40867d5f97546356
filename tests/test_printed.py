"""What ckptconv prints is what the real libraries ran, and what they computed from it.

tools/groundtruth/photos.py --printed ran the preprocessing ckptconv prints for timm, torchvision,
mmpretrain and mmdet (every family, every test size of the zoo) in the real packages on the shipped
photos (tests/data/pipelines/printed.json); tools/groundtruth/printed_models.py converted the
design-space checkpoints pycls wrote and loaded each output through its printed config or snippet
in the real library (tests/data/design_space/printed_models.json). These tests hold the configs
ckptconv renders now to the very texts those runs judged: a changed template fails here until the
ground truth is made again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from ckptconv.tables.pipeline import needed
from ckptconv.tables.render import render_config

DATA = Path(__file__).parent / "data"
PRINTED = json.loads((DATA / "pipelines" / "printed.json").read_text())
MODELS = json.loads((DATA / "design_space" / "printed_models.json").read_text())


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("key", sorted(PRINTED["configs"]))
def test_the_printed_preprocessing_is_what_gave_pycls_input_in_the_real_library(registry, key):
    """Rendered as convert renders it (RGB weights, the path written 'OUT'), the config is the one
    the library ran, and that run gave pycls's input on every photo within the tolerance."""
    layout_name, name = key.split("/")
    variant = registry.variant(name)
    layout = registry.layout(layout_name, variant.family)
    pre = needed(layout.pipeline, "rgb", registry.pycls_layout(variant.family).pipeline)
    assert _sha(render_config(layout, variant, None, "", pre)) == PRINTED["configs"][key]["sha256"]
    results = [v for k, v in PRINTED["results"].items() if k.startswith(f"{key}/")]
    assert len(results) == len(PRINTED["photos"]) and max(results) <= PRINTED["tolerance"] == 1e-4


RUNS = [(case, library) for case, libraries in MODELS["cases"].items() for library, run in libraries.items() if "config_sha256" in run]
CASES = json.loads((DATA / "design_space" / "cases.json").read_text())["cases"]


def _zoo_case_checkpoint(path: Path) -> None:
    """printed_models.py's fine-tuned B3 (not committed: 41 MB) as keys and cfg: the config depends
    on the model and the paths only. Its keys are those of the same model in cases.json."""
    import torch

    cfg = MODELS["zoo_case"]["effnet_b3_nc10_zoo"]["cfg_dump"]
    state = {k: (torch.ones if k.endswith("running_var") else torch.zeros)(s, dtype=getattr(torch, d)) for k, s, d in CASES["effnet_b3_nc10"]["manifest"]}
    torch.save({"epoch": 9, "model_state": state, "cfg": cfg}, path)


@pytest.mark.parametrize("case, library", RUNS, ids=[f"{c}-{lib}" for c, lib in RUNS])
def test_a_custom_model_loads_strictly_through_its_printed_config_and_computes_pycls_outputs(cli, tmp_path, case, library):
    """The command the GT ran, here: the same config text; there, the real library built it, loaded
    the file strictly and computed pycls's outputs (max |diff| / max |pycls| within 1e-5)."""
    run = MODELS["cases"][case][library]
    source = tmp_path / f"{case}.pyth"
    if case in MODELS["zoo_case"]:
        _zoo_case_checkpoint(source)
    else:
        shutil.copy(DATA / "design_space" / "checkpoints" / f"{case}.pyth", source)
    out = tmp_path / f"{case}.{library}.pth"
    result = cli("convert", source, out, "--to", library, "--channel-order", "bgr", "--verify", "structure", "--json")
    assert result.exit_code == 0, result.output
    assert _sha(json.loads(result.stdout)["config"].replace(str(tmp_path), "/abs/path")) == run["config_sha256"]
    assert run["ok"] and run["strict_ok"] and run["max_rel"] <= MODELS["tolerance"]["max_rel"] == 1e-5


def test_every_run_of_the_printed_models_passed():
    assert MODELS["all_ok"] and not MODELS["failures"]
