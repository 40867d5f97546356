"""pycls cfgs are read as pycls 0.1.1 reads them, and what they state is never dropped in silence.

tests/data/pycls_cfg/cases.json holds 97 YAML documents and what the real pycls loader (yacs over
PyYAML, tools/groundtruth/pycls_cfg.py) made of each: every one must read the same here, value for
value, or fail where pycls fails, naming the YAML's own key. Then the facts a cfg states that the
tensors cannot show (BN eps, where the stride sits) reach the converted file's meta and config,
two cfgs that disagree are said, and an option that does not apply is refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from ckptconv.errors import FormatError
from ckptconv.io.pycls_cfg import read_cfg

DATA = Path(__file__).parent / "data" / "pycls_cfg"
CASES = {c["name"]: c for c in json.loads((DATA / "cases.json").read_text())["cases"]}
DEFAULTS = json.loads((DATA / "defaults.json").read_text())


def _value(cfg: dict, key: str):
    section, _, name = key.partition(".")
    value = cfg[section][name] if name else cfg[section]
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


def _read_as_pycls(case: dict):
    """The case's bytes as the real loader got them (yacs opens the file in text mode: UTF-8)."""
    return case["yaml"].encode(case.get("encoding") or "utf-8").decode("utf-8")


READABLE = [n for n, c in CASES.items() if (c.get("encoding") or "utf-8") == "utf-8" and Path(c.get("filename") or "config.yaml").suffix in ("", ".yaml", ".yml")]


@pytest.mark.parametrize("name", READABLE)
def test_every_document_reads_as_pycls_reads_it(name):
    case, truth = CASES[name], CASES[name]["result"]
    if not truth["ok"]:
        with pytest.raises(FormatError) as e:
            read_cfg(_read_as_pycls(case), "config.yaml")
        if truth["error_type"] == "KeyError":  # pycls names the key it does not know: so does ckptconv
            key = truth["error"].split("Non-existent config key: ")[-1].strip("'\"")
            assert key in str(e.value)
        return
    cfg = read_cfg(_read_as_pycls(case), "config.yaml")
    for key, want in truth["values"].items():
        assert _value(cfg, key) == want, key
        assert type(cfg[key.split(".")[0]][key.split(".")[1]]).__name__ == truth["types"][key].split("[")[0], key


def test_the_defaults_are_pycls_s_own():
    from ckptconv.io.pycls_cfg import facts

    def plain(tree):
        return {k: plain(v) if "value" not in v else v["value"] for k, v in tree.items()}

    assert facts()["defaults"] == plain(DEFAULTS["defaults"])
    assert facts()["deprecated_keys"] == [d["key"] for d in DEFAULTS["rules"]["deprecated_keys"]]


# --- what a cfg states reaches the converted file ----------------------------------------------------

BUILDABLE = [n for n, c in CASES.items() if c["result"]["ok"] and c["result"].get("get_model") == "ok" and n in READABLE
             and c["result"]["values"]["MODEL.TYPE"] == "regnet"]  # (the others are zoo models every other test converts)


def _regnet_source(tmp_path: Path, truth: dict, cfg: str | None) -> Path:
    """A pycls checkpoint of the model pycls built from the case (its REGNET numbers)."""
    from ckptconv.model import structure
    from ckptconv.verification import synthetic

    numbers = {k.split(".")[1]: v for k, v in truth["values"].items() if k.startswith("REGNET.")}
    plain = yaml.safe_dump({"MODEL": {"TYPE": "regnet", "NUM_CLASSES": truth["values"]["MODEL.NUM_CLASSES"]}, "REGNET": numbers})
    variant = structure.from_cfg(plain)
    path = tmp_path / "run.pyth"
    torch.save({"epoch": 3, "model_state": synthetic.random_state(variant), **({"cfg": cfg} if cfg is not None else {})}, path)
    return path


@pytest.mark.parametrize("how", ["its own cfg", "--cfg"])
@pytest.mark.parametrize("name", BUILDABLE)
def test_the_eps_pycls_reads_is_the_eps_converted(cli, tmp_path, name, how):
    """A flow mapping, an anchor, a quoted key, an indented document: whatever BN.EPS pycls reads
    is the eps the weights are converted, verified and configured with."""
    case, truth = CASES[name], CASES[name]["result"]
    src = _regnet_source(tmp_path, truth, case["yaml"] if how == "its own cfg" else None)
    args = ["--cfg", tmp_path / "config.yaml"] if how == "--cfg" else []
    if args:
        (tmp_path / "config.yaml").write_bytes(case["yaml"].encode())
    result = cli("convert", src, "--to", "pycls", "--dry-run", "--json", *args)
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)["meta"]
    assert meta["settings"]["eps"] == meta["model"]["variant"]["eps"] == truth["values"]["BN.EPS"]
    assert {k: meta["model"]["regnet"][k.split(".")[1].lower()] for k in ("REGNET.W0", "REGNET.WA", "REGNET.STRIDE", "REGNET.STEM_TYPE")} == \
        {k: truth["values"][k] for k in ("REGNET.W0", "REGNET.WA", "REGNET.STRIDE", "REGNET.STEM_TYPE")}


def test_the_printed_config_sets_the_eps_the_cfg_states(cli, built, tmp_path):
    from ckptconv.tables.registry import registry_for
    from ckptconv.verification import synthetic

    cfg = tmp_path / "config.yaml"
    cfg.write_text(_eps_yaml(synthetic.cfg_yaml(registry_for().variant("regnetx_200mf")), "1.0e-03").replace("BN:\n  EPS: 1.0e-03", "BN: {EPS: 1e-3}"))
    result = cli("convert", built.source("regnetx_200mf"), tmp_path / "o.pth", "--to", "mmdet", "--cfg", cfg, "--verify", "structure", "--json")
    assert result.exit_code == 0, result.output
    assert _eps_in(json.loads(result.stdout)["config"]) == {0.001}


def _eps_in(config: str) -> set[float]:
    """Every ``eps=`` a printed config sets."""
    import ast

    return {ast.literal_eval(k.value) for node in ast.walk(ast.parse(config)) for k in getattr(node, "keywords", []) if k.arg == "eps"}


UNREADABLE = [n for n in READABLE if not CASES[n]["result"]["ok"]]


@pytest.mark.parametrize("name", UNREADABLE)
def test_a_cfg_pycls_cannot_read_is_one_line_never_dropped(cli, built, tmp_path, name):
    cfg = tmp_path / "config.yaml"
    cfg.write_bytes(CASES[name]["yaml"].encode())
    result = cli("convert", built.source("regnetx_200mf"), tmp_path / "o.pth", "--to", "mmdet", "--cfg", cfg)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--cfg" in lines[0] and not (tmp_path / "o.pth").exists()


@pytest.mark.parametrize("text, words", [
    ("model = dict(type='RetinaNet')\n", "is not a YAML file"),  # an mmdet config given as --cfg: pycls would run it
    ("MODEL:\n  TYPE: regnet\nBN: {EPS: 1e-3\n", "is not YAML pycls can read"),  # truncated
    ("MODEL:\n  TYPE: ''\n", "states no model"),
])
def test_a_cfg_that_cannot_state_the_model_is_an_error(cli, built, tmp_path, text, words):
    cfg = tmp_path / ("config.py" if text.startswith("model =") else "config.yaml")
    cfg.write_text(text)
    result = cli("convert", built.source("regnetx_200mf"), tmp_path / "o.pth", "--to", "mmdet", "--cfg", cfg)
    assert result.exit_code == 2 and words in result.stderr, result.output


def test_a_cfg_error_names_the_yaml_key_not_an_internal_field(cli, built, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("MODEL:\n  TYPE: anynet\nANYNET:\n  DEPTHS: [1, 2]\n  WIDTHS: [8, 16]\n  STRIDES: [2, 2]\n  BOT_MULS: [1.0, 1e-1]\n  GROUP_WS: [8, 8]\n")
    result = cli("convert", built.source("regnetx_200mf"), tmp_path / "o.pth", "--to", "mmdet", "--cfg", cfg)
    assert result.exit_code == 2 and "ANYNET.BOT_MULS[1] is '1e-1'" in result.stderr and "[anynet]" not in result.stderr


# --- two sources of one fact ------------------------------------------------------------------------


def _eps_yaml(base: str, eps: str) -> str:
    return base.replace("EPS: 1.0e-05", f"EPS: {eps}")


def test_a_named_cfg_that_disagrees_with_the_checkpoints_wins_and_says_so(cli, built, tmp_path):
    from ckptconv.tables.registry import registry_for
    from ckptconv.verification import synthetic

    own = synthetic.cfg_yaml(registry_for().variant("regnetx_200mf"))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(_eps_yaml(own, "1.0e-03"))
    result = cli("convert", built.source("regnetx_200mf"), tmp_path / "o.pth", "--to", "mmdet", "--cfg", cfg, "--verify", "structure")
    assert result.exit_code == 0, result.output
    assert "BN.EPS is 0.001 in --cfg and 1e-05 in the checkpoint's" in result.stderr and "--cfg wins" in result.stderr
    assert torch.load(tmp_path / "o.pth", weights_only=True)["meta"]["settings"]["eps"] == 0.001


def test_a_runs_config_yaml_that_disagrees_with_the_checkpoint_fails_its_job(cli, built, tmp_path):
    from ckptconv.tables.registry import registry_for
    from ckptconv.verification import synthetic

    run = tmp_path / "sweep" / "run_01"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "model_epoch_0010.pyth").write_bytes(built.source("regnetx_200mf").read_bytes())
    (run / "config.yaml").write_text(_eps_yaml(synthetic.cfg_yaml(registry_for().variant("regnetx_200mf")), "1.0e-03"))
    result = cli("batch", tmp_path / "sweep", "--out-dir", tmp_path / "out", "--verify", "structure", "--json")
    assert result.exit_code == 1
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["status"] == "failed" and "BN.EPS is 0.001 in the run's config.yaml and 1e-05 in the checkpoint's" in entry["error"]
    assert not [p for p in (tmp_path / "out").rglob("*") if not p.is_dir()]  # nothing written


def test_arch_and_a_cfg_that_states_another_eps_convert_at_the_cfgs_eps(cli, states, tmp_path):
    from ckptconv.tables.registry import registry_for
    from ckptconv.verification import synthetic

    src = tmp_path / "b0.pyth"
    torch.save({"model_state": states("b0"), "cfg": _eps_yaml(synthetic.cfg_yaml(registry_for().variant("b0")), "1.0e-03")}, src)
    result = cli("convert", src, tmp_path / "o.pth", "--to", "mmdet", "--arch", "b0", "--verify", "structure", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["meta"]["settings"]["eps"] == 0.001


def test_verify_source_fails_a_meta_whose_eps_was_rewritten_and_advises_the_truth(cli, built, tmp_path):
    out = tmp_path / "o.pth"
    assert cli("convert", built.source("b0"), out, "--to", "mmdet", "--verify", "structure").exit_code == 0
    obj = torch.load(out, weights_only=True)
    obj["meta"]["settings"]["eps"] = 0.001
    obj["meta"]["model"]["variant"]["eps"] = 0.001
    torch.save(obj, out)
    result = cli("verify", out, "--source", built.source("b0"), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)["files"][0]
    failed = [c["detail"] for c in report["checks"] if not c["ok"]]
    assert any("the meta records BN eps 0.001 but the source's cfg says BN.EPS 1e-05" in d for d in failed)
    assert not any("need" in d and "BN eps=0.001" in d for d in failed)  # no advice repeats the lie


@pytest.mark.parametrize("arch", ["regnetx_200mf", "resnet50"])
@pytest.mark.parametrize("padding", ["same", "symmetric"])
def test_padding_on_a_family_that_has_no_choice_of_padding_is_a_usage_error(cli, built, arch, padding):
    result = cli("verify", built.output(arch, "mmdet"), "--padding", padding)
    assert result.exit_code == 2 and "--padding applies to EfficientNets" in result.stderr
