"""The way back (X -> pycls through the same tables, inverted) and ``ckptconv inspect``."""

from __future__ import annotations

import json

import pytest
import torch

from ckptconv.verification import models


def bits_equal(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("arch, layout", [("b0", "mmpretrain"), ("b0", "timm"), ("b5", "timm")])
def test_round_trip_is_bit_identical_where_every_tensor_is_kept(cli, built, states, registry, tmp_path, arch, layout):
    mid, back = built.output(arch, layout), tmp_path / "back.pyth"
    result = cli("convert", mid, back, "--from", layout, "--to", "pycls", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verification"]["ok"]
    obj = torch.load(back, weights_only=True)
    assert set(obj) == {"epoch", "model_state"}
    assert obj["epoch"] == 99  # carried through the meta
    assert bits_equal(obj["model_state"], states(arch))
    model = models.build("pycls", registry.variant(arch))
    model.load_state_dict(obj["model_state"], strict=True, assign=True)


@pytest.mark.parametrize(
    "arch, layout, absent",
    [("b0", "mmdet", "head.conv.weight, head.conv_bn.{"), ("b0", "mmdet-stages", "head.conv.weight, head.conv_bn.{"), ("b5", "mmdet", "head.conv.weight, head.conv_bn.{")],
)
def test_partial_layouts_need_allow_partial_and_name_the_absent_keys(cli, built, states, tmp_path, arch, layout, absent):
    mid, back = built.output(arch, layout, "safetensors"), tmp_path / "back.pth"
    refused = cli("convert", mid, back, "--from", layout, "--to", "pycls")
    assert refused.exit_code == 1 and absent in refused.stderr and "--allow-partial" in refused.stderr
    assert not back.exists()
    result = cli("convert", mid, back, "--from", layout, "--to", "pycls", "--allow-partial", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    want = states(arch)
    missing = [k for k in want if k.startswith("head.")]
    assert sorted(report["absent"]) == sorted(missing)
    got = torch.load(back, weights_only=True)["model_state"]
    assert bits_equal(got, {k: v for k, v in want.items() if k not in missing})
    assert cli("verify", back, "--source", mid).exit_code == 0


def test_reverse_detects_a_prefixed_mmdet_file(cli, make_ckpt, states, tmp_path):
    mid, back = tmp_path / "mid.pth", tmp_path / "back.pth"
    assert cli("pycls2mmdet", make_ckpt("b2"), mid, "--prefix", "backbone").exit_code == 0
    assert cli("convert", mid, back, "--from", "mmdet", "--to", "pycls", "--allow-partial").exit_code == 0
    assert torch.equal(torch.load(back, weights_only=True)["model_state"]["s6.b5.exp.weight"], states("b2")["s6.b5.exp.weight"])


def test_layout_to_layout_goes_through_pycls(cli, make_ckpt, states, tmp_path):
    timm, mmpre = tmp_path / "t.pth", tmp_path / "m.pth"
    assert cli("convert", make_ckpt("b1"), timm, "--to", "timm").exit_code == 0
    assert cli("convert", timm, mmpre, "--from", "timm", "--to", "mmpretrain").exit_code == 0
    sd = torch.load(mmpre, weights_only=True)["state_dict"]
    assert torch.equal(sd["head.fc.weight"], states("b1")["head.fc.weight"])
    mmdet = tmp_path / "d.pth"
    assert cli("pycls2mmdet", make_ckpt("b1", name="b1.pyth"), mmdet).exit_code == 0
    result = cli("convert", mmdet, tmp_path / "x.pth", "--from", "mmdet", "--to", "timm")
    assert result.exit_code == 1 and "lacks 8 key(s) timm needs: bn2.{" in result.stderr and "classifier.{bias,weight}, conv_head.weight" in result.stderr


def test_wrong_from_layout_says_what_the_file_is(cli, built, tmp_path):
    mid = built.output("b0", "timm")
    result = cli("convert", mid, tmp_path / "back.pth", "--from", "mmdet", "--to", "pycls")
    assert result.exit_code == 1 and "this is already a timm b0 checkpoint" in result.stderr


# inspect -------------------------------------------------------------------------------------------


def test_inspect_a_pycls_training_checkpoint(cli, make_ckpt):
    src = make_ckpt("b3", ema=True, errors=(22.5, 22.0), optimizer=True)
    result = cli("inspect", src, "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["format"] == "zip" and info["kind"] == "pycls" and info["epoch"] == 99
    assert info["top_level_keys"] == ["epoch", "model_state", "ema_state", "test_err", "ema_err", "optimizer_state", "cfg"]
    assert info["errors"] == {"test_err": 22.5, "ema_err": 22.0} and info["best"] == "ema"
    model = info["weight_sets"]["model"]
    assert (model["layout"], model["arch"], model["detected_from"]) == ("pycls", "b3", "cfg and shapes")
    assert model["tensors"] == 574 and model["dtypes"] == {"float32": 496, "int64": 78}
    assert set(info["weight_sets"]) == {"model", "ema"}
    text = cli("inspect", src).stdout
    assert "pycls b3 (from cfg and shapes)" in text and "--weights best picks ema" in text


def test_inspect_converted_files_shows_layout_and_meta(cli, built, tmp_path):
    out = tmp_path / "o.safetensors"
    cli("pycls2mmdet", built.source(), out, "--prefix", "backbone")
    info = json.loads(cli("inspect", out, "--json").stdout)
    s = info["weight_sets"]["state_dict"]
    assert info["format"] == "safetensors" and (s["layout"], s["arch"], s["prefix"]) == ("mmdet", "b0", "backbone")
    assert info["meta"]["arch"] == "b0" and info["meta"]["settings"]["eps"] == 1e-5


def test_inspect_reads_no_tensor_data(cli, built, make_ckpt, tmp_path, monkeypatch):
    """safetensors: the header alone; zip: memory-mapped (tensor bytes never read, so never checked)."""
    import safetensors.torch

    out = tmp_path / "o.safetensors"
    cli("pycls2mmdet", built.source(), out)
    monkeypatch.setattr(safetensors.torch, "load_file", lambda *a, **k: pytest.fail("tensor data was read"))
    assert cli("inspect", out).exit_code == 0
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    assert cli("inspect", make_ckpt("b0", name="z.pyth")).exit_code == 0
    assert calls and all(k.get("mmap") is True and k.get("weights_only") is True for k in calls)


def test_inspect_legacy_and_partial_files(cli, make_ckpt, tmp_path):
    info = json.loads(cli("inspect", make_ckpt("b1", legacy=True), "--json").stdout)
    assert info["format"] == "legacy" and info["weight_sets"]["model"]["arch"] == "b1"
    mid, back = tmp_path / "m.pth", tmp_path / "back.pth"
    cli("pycls2mmdet", make_ckpt("b0", name="x.pyth"), mid)
    cli("convert", mid, back, "--from", "mmdet", "--to", "pycls", "--allow-partial")
    info = json.loads(cli("inspect", back, "--json").stdout)
    assert info["weight_sets"]["model"]["note"] == "a partial pycls b0 file (8 keys absent)"  # mmdet has no head


def test_inspect_errors(cli, tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_text("hello")
    assert cli("inspect", junk).exit_code == 1
    assert cli("inspect", tmp_path / "nope.pth").exit_code == 2
