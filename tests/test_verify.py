"""``ckptconv verify``: it passes what is right and catches every kind of wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ckptconv.io.zipindex import read_index

from .conftest import only_error_line, rewrite_zip


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




def big_endian_copy(src: Path, dst: Path) -> Path:
    """The checkpoint as torch.save writes it on a big-endian machine: every value byte-swapped and
    byteorder "big" (torch swaps it back on load)."""
    index = read_index(src)
    dtypes = {}
    for ref in index.tree["model_state"].values():
        dtypes[ref.record] = ref.dtype

    def swap(name: str, data: bytes):
        if name.endswith("/byteorder"):
            return b"big"
        if name in dtypes:
            return np.frombuffer(data, dtype=np.dtype(dtypes[name]).newbyteorder("<")).byteswap().tobytes()
        return None

    return rewrite_zip(src, dst, swap)


def _two_sets(path: Path, first: dict, second: dict, names=("state_dict", "state_dict_ema")) -> Path:
    torch.save({names[0]: first, names[1]: second}, path)
    return path


def test_a_big_endian_checkpoint_converts_to_the_right_values(cli, built, states, tmp_path):
    """Copying its records raw would write byte-swapped garbage and still pass an in-memory check."""
    src = big_endian_copy(built.source(), tmp_path / "big.pyth")
    assert torch.equal(torch.load(src, weights_only=True)["model_state"]["stem.conv.weight"], states("b0")["stem.conv.weight"])
    out = tmp_path / "o.pth"
    result = cli("pycls2mmdet", src, out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["write"]["copied_from_input"] == 0  # nothing raw from a swapped file
    sd = torch.load(out, weights_only=True)["state_dict"]
    assert torch.equal(sd["layers.0.conv.weight"], states("b0")["stem.conv.weight"].flip(1))  # RGB
    assert torch.equal(sd["layers.5.4.linear_conv.conv.weight"], states("b0")["s7.b1.lin_proj.weight"])
    assert cli("verify", out, "--source", src).exit_code == 0


def test_verify_checks_the_set_the_library_loads_and_refuses_sets_that_disagree(cli, built, tmp_path):
    timm = torch.load(built.output("b0", "timm"), weights_only=True)["state_dict"]
    other = {k: v.clone() for k, v in timm.items()}
    other["blocks.2.1.conv_dw.weight"] += 1.0
    agree = _two_sets(tmp_path / "agree.pth", timm, dict(timm))
    assert cli("verify", agree).exit_code == 0
    differ = _two_sets(tmp_path / "differ.pth", timm, other)
    line = only_error_line(cli("verify", differ))
    assert "weight sets state_dict_ema and state_dict disagree (blocks.2.1.conv_dw.weight)" in line  # timm loads the EMA set
    info = json.loads(cli("inspect", differ, "--json").stdout)
    assert info["loaded_by"]["timm"] == "state_dict_ema" and info["loaded_by"]["MMDetection"] == info["loaded_by"]["mmpretrain"] == "state_dict"


def test_a_pycls_set_beside_a_converted_set_must_agree_with_it(cli, built, states, tmp_path):
    mmdet = torch.load(built.output("b0", "mmdet"), weights_only=True)["state_dict"]
    mixed = tmp_path / "mixed.pth"
    torch.save({"state_dict": mmdet, "model_state": states("b0", 1000)}, mixed)  # another model's weights
    line = only_error_line(cli("verify", mixed, "--layout", "mmdet"))
    assert "weight sets state_dict and model disagree" in line and "mmengine" not in line.split(":")[0]


def test_odd_input_sizes_cannot_hide_a_padding_mistake(cli, built):
    """TF "same" padding equals symmetric padding where every strided conv meets an odd size."""
    result = cli("verify", built.output("b0", "mmdet"), "--padding", "same", "--input-size", "33", "47", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)["files"][0]
    assert report["input_size"] == [34, 48] and "padding settings differ only at even sizes" in report["notes"][0]


def test_verify_against_a_source_without_the_recorded_set_is_a_failed_provenance(cli, built, make_ckpt, tmp_path):
    out = tmp_path / "ema.pth"
    assert cli("pycls2mmdet", built.source("b0", ema=True), out, "--weights", "ema", "--verify", "structure").exit_code == 0
    result = cli("verify", out, "--source", make_ckpt(), "--json")
    assert result.exit_code == 1  # a failed check, not a usage error
    failed = [c["detail"] for c in json.loads(result.stdout)["files"][0]["checks"] if not c["ok"]]
    assert any("was converted from the ema weights" in d and "has no ema_state" in d for d in failed)


@pytest.mark.parametrize("field, value, words", [
    ("eps", "abc", "meta settings.eps is 'abc'"), ("eps", -1.0, "meta settings.eps is -1.0"),
    ("padding", "reflect", "meta settings.padding is 'reflect'"),
])
def test_a_meta_setting_without_meaning_is_named_by_verify(cli, built, tmp_path, field, value, words):
    obj = torch.load(built.output("b0", "mmdet"), weights_only=True)
    obj["meta"]["settings"][field] = value
    torch.save(obj, tmp_path / "odd_meta.pth")
    result = cli("verify", tmp_path / "odd_meta.pth", "--json")
    assert result.exit_code == 1 and words in json.loads(result.stdout)["files"][0]["first_failure"], result.stdout[-400:]


def test_a_channel_order_that_contradicts_the_meta_fails_verify(cli, built):
    """The file says what its weights take: asking verify for the other order is an error, not a
    quiet check of a pipeline built for weights the file does not hold."""
    out = built.output("b0", "timm")
    result = cli("verify", out, "--channel-order", "bgr", "--json")
    assert result.exit_code == 1
    assert "meta records channel order rgb but --channel-order bgr was asked" in json.loads(result.stdout)["files"][0]["first_failure"]


def test_verify_with_a_directory_as_source_is_a_usage_error_not_a_hang(cli, built, tmp_path):
    result = cli("verify", built.output("b0", "mmdet"), "--source", tmp_path)
    assert result.exit_code == 2 and "is a directory" in result.output
