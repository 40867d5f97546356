"""``ckptconv verify``: it passes what is right and catches every kind of wrong."""

from __future__ import annotations

import json
import shutil

import pytest
import torch


@pytest.fixture
def converted(built, tmp_path):
    """A pycls b0 checkpoint (with an EMA set) and a copy of its mmdet conversion, to tamper with."""
    out = tmp_path / "b0.pth"
    shutil.copy(built.output("b0", "mmdet", "pth", ema=True), out)
    return built.source("b0", ema=True), out


def tamper(path, change, out=None):
    obj = torch.load(path, weights_only=True)
    change(obj)
    torch.save(obj, out or path)
    return out or path


def test_a_correct_conversion_passes_alone_and_against_its_source(cli, converted):
    src, out = converted
    alone = cli("verify", out, "--json")
    assert alone.exit_code == 0, alone.output
    checks = [c["name"] for c in json.loads(alone.stdout)["files"][0]["checks"]]
    assert checks == ["identity", "structure", "finite", "numeric", "pipeline"]
    full = cli("verify", out, "--source", src, "--json")
    assert full.exit_code == 0
    checks = [c["name"] for c in json.loads(full.stdout)["files"][0]["checks"]]
    assert checks == ["identity", "provenance", "structure", "tensors", "finite", "numeric", "pipeline"]


def test_mmdet_defaults_fail_and_name_the_settings_to_change(cli, converted):
    _, out = converted
    result = cli("verify", out, "--padding", "same", "--eps", "1e-3")
    assert result.exit_code == 1
    assert "with padding=same, eps=0.001: these weights need padding=symmetric and BN eps=1e-05" in result.stderr
    assert "conv_cfg=dict(type='Conv2d')" in result.stderr
    # each setting alone is wrong too
    assert cli("verify", out, "--padding", "same").exit_code == 1
    assert "eps=0.001" in cli("verify", out, "--eps", "1e-3").stderr


def test_real_b0_with_mmdet_defaults_fails_by_the_fixtures_margin(cli, b0_fixture, tmp_path):
    pyth, _ = b0_fixture
    out = tmp_path / "b0.pth"
    cli("pycls2mmdet", pyth, out)
    result = cli("verify", out, "--source", pyth, "--padding", "same", "--eps", "1e-3", "--json")
    assert result.exit_code == 1
    levels = json.loads(result.stdout)["files"][0]["levels"]
    assert levels[0]["max_abs"] > 1.0 and all(not lv["ok"] for lv in levels)


def test_one_value_perturbed_is_caught_naming_the_key(cli, converted):
    src, out = converted

    def nudge(obj):
        obj["state_dict"]["layers.3.1.depthwise_conv.conv.weight"][0, 0, 0, 0] += 1e-3

    tamper(out, nudge)
    result = cli("verify", out, "--source", src)
    assert result.exit_code == 1
    assert "layers.3.1.depthwise_conv.conv.weight is not bit-identical to source s3.b2.dwise.weight" in result.stderr


def test_two_same_shaped_blocks_swapped_are_caught(cli, converted):
    src, out = converted

    def swap(obj):
        sd = obj["state_dict"]
        for key in [k for k in sd if k.startswith("layers.5.1.")]:
            other = key.replace("layers.5.1.", "layers.5.2.", 1)
            sd[key], sd[other] = sd[other], sd[key]

    tamper(out, swap)
    result = cli("verify", out, "--source", src)
    assert result.exit_code == 1 and "layers.5.1." in result.stderr and "not bit-identical" in result.stderr


def test_a_removed_key_is_caught_without_the_source(cli, converted):
    _, out = converted
    tamper(out, lambda obj: obj["state_dict"].pop("layers.2.1.se.conv2.conv.bias"))
    result = cli("verify", out)
    assert result.exit_code == 1 and "missing key layers.2.1.se.conv2.conv.bias" in result.stderr


def test_a_renamed_key_is_caught(cli, converted):
    _, out = converted

    def rename(obj):
        sd = obj["state_dict"]
        sd["layers.5.0.linear_conv.bn.weights"] = sd.pop("layers.5.0.linear_conv.bn.weight")

    tamper(out, rename)
    result = cli("verify", out)
    assert result.exit_code == 1 and "layers.5.0.linear_conv.bn.weight" in result.stderr


def test_the_wrong_arch_is_caught(cli, converted):
    _, out = converted
    result = cli("verify", out, "--arch", "b1")
    assert result.exit_code == 1 and "--arch b1 was asked but the tensors are b0" in result.stderr
    no_meta = tamper(out, lambda obj: obj.pop("meta"), out.with_name("nometa.pth"))
    result = cli("verify", no_meta, "--arch", "b1")
    assert result.exit_code == 1 and "--arch b1 was asked but the tensors are b0" in result.stderr


def test_ema_conversion_checked_against_the_model_weights_fails(cli, make_ckpt, tmp_path):
    src = make_ckpt("b0", ema=True)
    out = tmp_path / "ema.pth"
    assert cli("pycls2mmdet", src, out, "--weights", "ema").exit_code == 0
    assert cli("verify", out, "--source", src).exit_code == 0  # the meta says ema: checked against ema
    result = cli("verify", out, "--source", src, "--weights", "model")
    assert result.exit_code == 1 and "not bit-identical" in result.stderr
    tamper(out, lambda obj: obj["meta"].update(weights="model"))  # a meta that lies about the weight set
    assert cli("verify", out, "--source", src).exit_code == 1


def test_meta_that_disagrees_with_the_file_says_which(cli, converted, make_ckpt):
    src, out = converted
    tamper(out, lambda obj: obj["meta"].update(arch="b2"))
    result = cli("verify", out)
    assert result.exit_code == 1 and "meta records arch b2 but the tensors are b0" in result.stderr
    tamper(out, lambda obj: obj["meta"].update(arch="b0", layout="mmdet-stages"))
    result = cli("verify", out)
    assert result.exit_code == 1 and "meta records layout mmdet-stages" in result.stderr


def test_a_different_source_fails_provenance(cli, converted, make_ckpt, tmp_path):
    _, out = converted
    other = make_ckpt("b0", name="other.pyth", optimizer=False)
    result = cli("verify", out, "--source", other)
    assert result.exit_code == 1 and "differs from the" in result.stderr and "recorded in the meta" in result.stderr


def test_many_files_one_summary_and_a_report(cli, make_ckpt, tmp_path):
    outs = tmp_path / "outs"
    outs.mkdir()
    for arch in ("b0", "b2"):
        assert cli("pycls2mmdet", make_ckpt(arch), outs / f"{arch}.pth").exit_code == 0
    assert cli("convert", make_ckpt("b1"), outs / "sub" / "b1.safetensors", "--to", "timm").exit_code == 2  # no such directory
    (outs / "sub").mkdir()
    assert cli("convert", make_ckpt("b1"), outs / "sub" / "b1.safetensors", "--to", "timm").exit_code == 0
    report = tmp_path / "report.json"
    result = cli("verify", outs, "--report", report)
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["ok"] and data["passed"] == 3 and {r["layout"] for r in data["files"]} == {"mmdet", "timm"}
    tamper(outs / "b2.pth", lambda obj: obj["state_dict"].pop("layers.0.bn.bias"))
    result = cli("verify", outs, "--report", report, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["failed"] == 1 and data == json.loads(report.read_text())
    assert [r["ok"] for r in data["files"]] == [True, False, True]


def test_an_unreadable_file_fails_the_run_but_the_rest_are_checked(cli, converted, tmp_path):
    _, out = converted
    bad = tmp_path / "junk.pth"
    bad.write_text("not a checkpoint")
    result = cli("verify", out, bad, "--json")
    assert result.exit_code == 1
    files = json.loads(result.stdout)["files"]
    assert files[0]["ok"] and not files[1]["ok"] and "not a checkpoint" in files[1]["first_failure"]


def test_usage_errors_exit_2(cli, converted, tmp_path):
    src, out = converted
    assert cli("verify", out, out, "--source", src).exit_code == 2
    assert cli("verify", tmp_path / "empty-dir-that-is-missing").exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("verify", empty).exit_code == 2
    assert cli("verify", out, "--arch", "b9").exit_code == 2
    assert cli("verify", out, "--padding", "reflect").exit_code == 2


def test_verify_a_pycls_file_written_back(cli, converted, tmp_path):
    _, out = converted
    back = tmp_path / "back.pyth"
    result = cli("convert", out, back, "--from", "mmdet", "--to", "pycls", "--allow-partial")
    assert result.exit_code == 0, result.output
    assert cli("verify", back, "--source", out).exit_code == 0


@pytest.mark.parametrize("args, words", [
    ((), "verify needs something to verify"),
    (("--arch", "b9", "X.pth"), "unknown arch 'b9'"),
    (("--layout", "keras", "X.pth"), "unknown layout 'keras'"),
    (("--eps", "2", "X.pth"), "--eps 2.0 is not a BatchNorm eps"),
    (("missing.pth",), "no such file"),
    (("--source", "X.pth", "X.pth", "X.pth"), "--source goes with exactly one file"),
    (("--config", "c.py", "X.pth", "X.pth"), "--config goes with at most one FILE"),
])
def test_a_verify_usage_error_is_one_json_object_before_torch_loads(tmp_path, args, words):
    """Exit 2, one JSON object on stdout naming the error (as README promises for --json), and no
    torch import: a typo in CI costs milliseconds."""
    import subprocess
    import sys

    (tmp_path / "X.pth").write_bytes(b"not read")
    code = ("import sys, json\nfrom ckptconv.cli import main\n"
            f"try:\n    main(['verify', '--json', *{list(args)!r}])\nexcept SystemExit as e:\n    print(json.dumps([e.code, 'torch' in sys.modules]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    *printed, last = run.stdout.strip().splitlines()
    assert json.loads(last) == [2, False], run.stderr
    shown = json.loads("\n".join(printed))
    assert shown["ok"] is False and shown["exit_code"] == 2 and words in shown["error"], shown
