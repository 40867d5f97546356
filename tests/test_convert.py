"""Converting through the CLI: every variant and layout, the real B0 checkpoint, every option."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors import safe_open

from ckptconv.io.meta import decode_meta
from ckptconv.verification import models

from .conftest import ARCHS, LAYOUTS, close


def load_output(path):
    """(state dict, meta) of a converted file in any container."""
    if str(path).endswith(".safetensors"):
        with open(path, "rb") as raw:  # file order: by data offset (safe_open.keys() sorts by name)
            header = json.loads(raw.read(int.from_bytes(raw.read(8), "little")))
        order = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
        with safe_open(str(path), "pt") as f:
            return {k: f.get_tensor(k) for k in order}, decode_meta(f.metadata() or {})
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in obj:
        return obj["state_dict"], obj["meta"]
    if "model_state" in obj:
        return obj["model_state"], {}
    return obj, {}


@pytest.mark.parametrize(
    "arch, layout, ext",
    [("b0", "mmdet", "pth"), ("b0", "mmdet-stages", "safetensors"), ("b0", "mmpretrain", "pth"), ("b0", "timm", "safetensors"), ("b5", "mmdet", "safetensors")],
)
def test_end_to_end_numeric_per_layout(cli, built, manifest, tmp_path, arch, layout, ext):
    """One numeric end-to-end test per layout at B0, and one at B5: convert through the CLI, check
    keys against the real class's manifest, verify against the source."""
    src = built.source(arch)
    out = tmp_path / f"{arch}-{layout}.{ext}"
    result = cli("convert", src, out, "--to", layout, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["arch"] == arch and report["arch_from"] == "cfg"
    assert [c["name"] for c in report["verification"]["checks"]][-3:] == ["numeric", "pipeline", "tensors"]  # the file read back last
    sd, meta = load_output(out)
    assert [(k, tuple(v.shape), str(v.dtype)[6:]) for k, v in sd.items()] == manifest(layout, arch)
    assert meta.get("arch", arch) == arch
    result = cli("verify", out, "--source", src, "--json")
    assert result.exit_code == 0, result.output
    levels = json.loads(result.stdout)["files"][0]["levels"]
    assert levels and all(lv["ok"] for lv in levels)
    if layout != "timm":
        assert all(lv["max_abs"] == 0.0 for lv in levels)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_variant_prepares_for_every_layout(registry, built, manifest, arch):
    """Every variant and layout, without a write or a forward pass: the prepared output is the
    real class's state dict, key for key, and each tensor is its source tensor."""
    from ckptconv.convert import Request, prepare

    src = built.source(arch)
    for layout in LAYOUTS:
        c = prepare(Request(source=src, layout=layout))
        assert [(k, tuple(v.shape), str(v.dtype)[6:]) for k, v in c.tensors.items()] == manifest(layout, arch)
        stem = next(e for e in c.plan.mapped if e.pycls == "stem.conv.weight")  # RGB: its input channels reversed
        assert torch.equal(c.tensors[stem.target], c.source[stem.source].flip(1))
        assert all(c.tensors[e.target] is c.source[e.source] for e in c.plan.mapped if e is not stem)


@pytest.mark.parametrize("ext", ["pth", "safetensors"])
def test_real_b0_through_the_cli_loads_strictly_and_reproduces_mmdet(cli, b0_fixture, registry, tmp_path, ext):
    pyth, feats = b0_fixture
    out = tmp_path / f"b0.{ext}"
    result = cli("pycls2mmdet", pyth, out)
    assert result.exit_code == 0, result.output
    assert "conv_cfg=dict(type='Conv2d')" in result.output and "eps=1e-5" in result.output
    assert "defaults (padding=same, BN eps=0.001) compute different features from these weights" in result.stderr
    sd, meta = load_output(out)
    model = models.build("mmdet", registry.variant("b0"), models.Build(out_indices=(3, 4, 5)))
    model.load_state_dict(sd, strict=True, assign=True)
    with torch.inference_mode():  # the weights take RGB: the fixture's BGR input, channels reversed
        out_levels = model.forward_levels(feats["input"].flip(1))
    for i in range(6):
        close(out_levels[f"layers.{i}"], feats[f"mmdet3_matched_layer{i}"])
    assert meta["source_sha256"] == hashlib.sha256(pyth.read_bytes()).hexdigest()
    assert meta["settings"]["padding"] == "symmetric" and meta["settings"]["eps"] == 1e-5
    assert meta["channel_order"] == "rgb" and "bgr_to_rgb=True" in result.output
    assert meta["weights"] == "model" and meta["table"] == "mmdet" and meta["table_version"] == 2


def test_real_b0_to_mmpretrain_and_timm_keeps_the_classifier(cli, b0_fixture, registry, tmp_path):
    pyth, feats = b0_fixture
    for layout, reference, expected in (("mmpretrain", "mmpretrain", "pycls_logits"), ("timm", "timm", "timm_logits")):
        out = tmp_path / f"{layout}.pth"
        assert cli("convert", pyth, out, "--to", layout).exit_code == 0
        sd, _ = load_output(out)
        model = models.build(reference, registry.variant("b0"))
        model.load_state_dict(sd, strict=True, assign=True)
        with torch.inference_mode():  # RGB weights, RGB input
            close(model.forward_levels(feats["input"].flip(1))["logits"], feats[expected])


def test_real_b0_stages_layout_tensors_equal_the_source(cli, b0_fixture, manifest, tmp_path):
    pyth, _ = b0_fixture
    out = tmp_path / "stages.pth"
    assert cli("pycls2mmdet", pyth, out, "--layout", "mmdet-stages").exit_code == 0
    obj = torch.load(out, weights_only=True)
    assert set(obj) == {"state_dict", "meta"}
    src = torch.load(pyth, weights_only=True)["model_state"]
    sd = obj["state_dict"]
    assert [k for k, _, _ in manifest("mmdet-stages", "b0")] == list(sd)
    assert torch.equal(sd["layer6.3.depthwise_conv.conv.weight"], src["s6.b4.dwise.weight"])
    assert torch.equal(sd["conv1.bn.running_var"], src["stem.bn.running_var"])


def test_arch_option_must_agree_with_the_tensors(cli, make_ckpt, tmp_path):
    src = make_ckpt("b1", cfg=False)
    ok = cli("pycls2mmdet", src, tmp_path / "a.pth", "--arch", "b1", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["arch_from"] == "--arch"
    bad = cli("pycls2mmdet", src, tmp_path / "b.pth", "--arch", "b3")
    assert bad.exit_code == 2
    assert "--arch b3 disagrees with the tensors, which are b1" in bad.stderr
    assert not (tmp_path / "b.pth").exists()


def test_arch_is_detected_from_shapes_without_cfg(cli, make_ckpt, tmp_path):
    result = cli("pycls2mmdet", make_ckpt("b2", cfg=False), tmp_path / "o.pth", "--json")
    report = json.loads(result.stdout)
    assert (report["arch"], report["arch_from"]) == ("b2", "shapes")


def test_cfg_that_disagrees_with_the_tensors_is_refused(cli, make_ckpt, registry, tmp_path):
    from ckptconv.verification import synthetic

    src = make_ckpt("b0", cfg=False, name="x.pyth")
    obj = torch.load(src, weights_only=True)
    obj["cfg"] = synthetic.cfg_yaml(registry.variant("b3"))
    torch.save(obj, src)
    result = cli("pycls2mmdet", src, tmp_path / "o.pth")
    assert result.exit_code == 1
    assert "the checkpoint's cfg says b3 but its tensors are b0" in result.stderr


@pytest.mark.parametrize(
    "errors, option, expected",
    [
        (None, "best", "model"),  # missing errors count as 100: tie, model wins
        ((20.0, 21.0), "best", "model"),
        ((21.0, 20.0), "best", "ema"),
        ((20.0, 20.0), "best", "model"),
        ((21.0, 20.0), "model", "model"),
        ((20.0, 21.0), "ema", "ema"),
    ],
)
def test_weights_choice_follows_pycls_and_is_recorded(cli, make_ckpt, states, tmp_path, errors, option, expected):
    src = make_ckpt("b0", ema=True, errors=errors)
    out = tmp_path / "o.pth"
    result = cli("pycls2mmdet", src, out, "--weights", option)
    assert result.exit_code == 0, result.output
    sd, meta = load_output(out)
    assert meta["weights"] == expected
    source = states("b0", 1000 if expected == "ema" else 0)
    assert torch.equal(sd["layers.1.0.depthwise_conv.conv.weight"], source["s1.b1.dwise.weight"])


def test_forcing_a_missing_weight_set_is_a_usage_error(cli, built, tmp_path):
    result = cli("pycls2mmdet", built.source(), tmp_path / "o.pth", "--weights", "ema")
    assert result.exit_code == 2
    assert "the checkpoint has no ema_state" in result.stderr
    assert not (tmp_path / "o.pth").exists()


def test_prefix_goes_on_every_key_and_into_the_config(cli, make_ckpt, tmp_path):
    out = tmp_path / "o.pth"
    cfg = tmp_path / "cfg.py"
    result = cli("pycls2mmdet", make_ckpt("b3"), out, "--prefix", "backbone", "--config-out", cfg)
    assert result.exit_code == 0, result.output
    sd, meta = load_output(out)
    assert all(k.startswith("backbone.layers.") for k in sd) and meta["prefix"] == "backbone"
    text = cfg.read_text()
    assert f"checkpoint='{out}', prefix='backbone'" in text
    assert "in_channels=[48, 136, 384]" in text  # b3 widths of layers 3, 4, 5
    assert "conv_cfg=dict(type='Conv2d')" in text and "eps=1e-5" in text
    compile(text, "cfg.py", "exec")  # a valid Python config fragment
    assert cli("verify", out).exit_code == 0


@pytest.mark.parametrize("dtype, torch_dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_dtype_casts_floats_only_and_verifies_exactly(cli, built, states, tmp_path, dtype, torch_dtype):
    out = tmp_path / f"o-{dtype}.safetensors"
    src = built.source()
    result = cli("pycls2mmdet", src, out, "--dtype", dtype, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert all(lv["max_abs"] == 0.0 for lv in report["verification"]["levels"])
    assert all(lv["drift_abs"] is not None for lv in report["verification"]["levels"])
    sd, meta = load_output(out)
    assert sd["layers.0.bn.num_batches_tracked"].dtype == torch.int64
    assert all(v.dtype == torch_dtype for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    assert torch.equal(sd["layers.0.conv.weight"], states("b0")["stem.conv.weight"].to(torch_dtype).flip(1))  # RGB
    assert meta["dtype"] == str(torch_dtype)[6:]
    assert cli("verify", out, "--source", src).exit_code == 0


def test_fp16_overflow_is_refused_naming_the_key(cli, make_ckpt, states, tmp_path):
    sd = dict(states("b0"))
    sd["s2.b1.exp.weight"] = sd["s2.b1.exp.weight"].clone()
    sd["s2.b1.exp.weight"][0, 0, 0, 0] = 1e5
    src = make_ckpt("b0", model_state=sd)
    out = tmp_path / "o.pth"
    result = cli("pycls2mmdet", src, out, "--dtype", "fp16")
    assert result.exit_code == 1
    assert "s2.b1.exp.weight: values up to 100000 overflow float16" in result.stderr
    assert not out.exists()
    assert cli("pycls2mmdet", src, out, "--dtype", "bf16").exit_code == 0


def test_nan_in_source_is_refused_for_a_cast(cli, make_ckpt, states, tmp_path):
    sd = dict(states("b0"))
    sd["s7.b1.lin_proj.weight"] = sd["s7.b1.lin_proj.weight"].clone()
    sd["s7.b1.lin_proj.weight"][3, 3] = float("nan")
    result = cli("pycls2mmdet", make_ckpt("b0", model_state=sd), tmp_path / "o.pth", "--dtype", "bf16")
    assert result.exit_code == 1 and "s7.b1.lin_proj.weight: the source holds NaN or Inf" in result.stderr


def test_dry_run_prints_the_plan_and_writes_nothing(cli, built, tmp_path):
    out = tmp_path / "o.pth"
    result = cli("pycls2mmdet", built.source(), out, "--dry-run")
    assert result.exit_code == 0
    assert not out.exists() and list(tmp_path.iterdir()) == []
    lines = result.stdout.splitlines()
    assert any("s5.b2.dwise.weight" in ln and "layers.4.4.depthwise_conv.conv.weight" in ln and "block" in ln for ln in lines)
    assert any("head.fc.weight" in ln and "dropped" in ln and "classifier" in ln for ln in lines)


def test_dry_run_json_lists_drops_with_their_rule(cli, built):
    result = cli("pycls2mmdet", built.source(), "--dry-run", "--json", "--layout", "mmdet-stages")
    report = json.loads(result.stdout)
    assert report["action"] == "dry-run" and report["keys_dropped"] == 8
    assert {d["rule"] for d in report["dropped"]} == {"head"}


def test_existing_output_needs_force(cli, built, tmp_path):
    src, out = built.source(), tmp_path / "o.pth"
    out.write_bytes(b"precious")
    result = cli("pycls2mmdet", src, out)
    assert result.exit_code == 2 and "the output exists; pass --force" in result.stderr
    assert out.read_bytes() == b"precious"
    assert cli("pycls2mmdet", src, out, "--force").exit_code == 0
    assert load_output(out)[1]["arch"] == "b0"


def test_json_prints_exactly_one_object(cli, built, tmp_path):
    result = cli("pycls2mmdet", built.source(), tmp_path / "o.pth", "--json")
    report = json.loads(result.stdout)  # raises if anything else is on stdout
    for key in ("keys_mapped", "keys_dropped", "params", "bytes", "seconds", "arch", "layout", "verification"):
        assert key in report
    assert report["keys_mapped"] == 352 and report["bytes"] == (tmp_path / "o.pth").stat().st_size
    assert report["channel_order"] == "rgb" and "bgr_to_rgb=True" in report["config"]
    assert report["warnings"] and "compute different features" in report["warnings"][0]


def test_json_error_is_one_object_too(cli, tmp_path):
    result = cli("pycls2mmdet", tmp_path / "missing.pyth", tmp_path / "o.pth", "--json")
    assert result.exit_code == 2
    error = f"{tmp_path / 'missing.pyth'}: no such file; check the path (a relative one is taken from the current directory)"
    assert json.loads(result.stdout) == {"ok": False, "error": error, "exit_code": 2}


def test_quiet_prints_nothing_on_success(cli, built, tmp_path):
    result = cli("pycls2mmdet", built.source(), tmp_path / "o.pth", "--quiet")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""  # not even the defaults warning


def test_unknown_extension_is_a_usage_error(cli, built, tmp_path):
    result = cli("pycls2mmdet", built.source(), tmp_path / "o.ckpt")
    assert result.exit_code == 2 and "cannot tell the output format from the extension '.ckpt'" in result.stderr


@pytest.mark.parametrize("flags, checks", [(["--no-verify"], []), (["--verify", "structure"], ["structure", "tensors"])])
def test_verification_can_be_reduced(cli, built, tmp_path, flags, checks):
    result = cli("pycls2mmdet", built.source(), tmp_path / "o.pth", "--json", *flags)
    report = json.loads(result.stdout)["verification"]
    if checks:
        assert [c["name"] for c in report["checks"]] == checks
    else:
        assert report is None  # --no-verify: nothing was checked, and the report says so


def test_input_size_is_used_by_the_numeric_check(cli, built, tmp_path):
    result = cli("pycls2mmdet", built.source(), tmp_path / "o.pth", "--json", "--input-size", "33", "47")
    report = json.loads(result.stdout)["verification"]
    assert report["input_size"] == [34, 48]  # odd sizes hide a padding mistake: made even, and said so
    assert report["notes"] == ["input 33x47 checked as 34x48: padding settings differ only at even sizes"]


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "module", "legacy"])
def test_other_input_containers(cli, states, tmp_path, wrap):
    sd = dict(states("b0"))
    if wrap == "module":
        obj = {"state_dict": {f"module.{k}": v for k, v in sd.items()}}
    elif wrap == "state_dict":
        obj = {"state_dict": sd}
    else:
        obj = sd
    src = tmp_path / "in.pth"
    torch.save(obj, src, _use_new_zipfile_serialization=wrap != "legacy")
    out = tmp_path / "o.pth"
    result = cli("pycls2mmdet", src, out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["weights"] == "state_dict" and report["meta"]["source_format"] == ("legacy" if wrap == "legacy" else "zip")
    assert torch.equal(load_output(out)[0]["layers.1.0.se.conv1.conv.weight"], sd["s1.b1.se.f_ex.0.weight"])


def test_safetensors_input_with_pycls_keys(cli, states, tmp_path):
    from safetensors.torch import save_file

    src = tmp_path / "in.safetensors"
    save_file(states("b0"), str(src))
    out = tmp_path / "o.pth"
    assert cli("pycls2mmdet", src, out).exit_code == 0
    assert load_output(out)[1]["source_format"] == "safetensors"


def test_safetensors_metadata_is_all_strings_and_decodes_to_the_meta(cli, built, tmp_path):
    out_st, out_pth = tmp_path / "o.safetensors", tmp_path / "o.pth"
    src = built.source()
    cli("pycls2mmdet", src, out_st)
    cli("pycls2mmdet", src, out_pth)
    with safe_open(str(out_st), "pt") as f:
        raw = f.metadata()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items())
    assert raw.pop("format") == "pt"  # as torch's own safetensors writers say it (transformers 4.x requires it)
    assert decode_meta(raw) == {k: v for k, v in load_output(out_pth)[1].items() if v is not None}


def test_a_timm_pth_holds_the_state_dict_timm_loads_and_a_meta(cli, built, tmp_path):
    """timm's loader takes 'state_dict' from a dict that has one (checked on the real timm 1.0.31),
    so the file can say what it is: arch, channel order, source."""
    out = tmp_path / "timm.pth"
    result = cli("convert", built.source(), out, "--to", "timm")
    assert result.exit_code == 0 and "compute different features" not in result.stderr  # timm's efficientnet_bN needs nothing set
    assert f"load_checkpoint(model, {str(out)!r})" in result.stdout and "mean=[0.485, 0.456, 0.406]" in result.stdout
    assert "crop_pct=0.875" in result.stdout and "input_size=(3, 224, 224)" in result.stdout
    obj = torch.load(out, weights_only=True)
    assert set(obj) == {"state_dict", "meta"} and "conv_stem.weight" in obj["state_dict"]
    assert obj["meta"]["channel_order"] == "rgb"


def test_help_documents_every_command(cli):
    result = cli("--help")
    for command in ("pycls2mmdet", "convert", "verify", "mappings", "demo", "batch", "inspect"):
        assert command in result.stdout
    words = " ".join(result.stdout.split())
    assert "Exit codes: 0 success, 1 conversion or verification failed, 2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)" in words
    assert "RegNetX/Y, ResNet, ResNeXt" in words and "torchvision" in words


def test_a_pycls_backbone_without_its_classifier_converts_to_mmdet(cli, states, tmp_path):
    """head.fc is dropped by the mmdet table anyway: a checkpoint stripped of it loses nothing (its
    tensors are the zoo's b0 but for the classifier); a target that keeps the classifier refuses."""
    sd = {k: v for k, v in states("b0").items() if not k.startswith("head.fc")}
    src = tmp_path / "backbone.pth"
    torch.save({"model_state": sd}, src)
    found = cli("pycls2mmdet", src, tmp_path / "a.pth", "--json")
    assert found.exit_code == 0 and json.loads(found.stdout)["arch"] == "b0"
    assert cli("pycls2mmdet", src, tmp_path / "b.pth", "--arch", "b0").exit_code == 0
    timm = cli("convert", src, tmp_path / "c.pth", "--to", "timm", "--arch", "b0")
    assert timm.exit_code == 1 and "head.fc.weight: missing from the checkpoint (target classifier.weight" in timm.stderr


def test_json_says_which_write_path_ran(cli, built, states, tmp_path):
    """Unchanged tensors of a zip input go file to file; a cast or a legacy input goes from memory."""
    kept = [v for k, v in states("b0").items() if not k.startswith("head.")]
    n, ints = len(kept), sum(not v.is_floating_point() for v in kept)
    copied = json.loads(cli("pycls2mmdet", built.source(), tmp_path / "a.pth", "--json", "--verify", "structure").stdout)
    assert copied["write"] == {"method": "zip-surgery", "copied_from_input": n - 1, "from_memory": 1}  # the stem, reversed
    cast = json.loads(cli("pycls2mmdet", built.source(), tmp_path / "b.safetensors", "--json", "--dtype", "fp16", "--verify", "structure").stdout)
    assert cast["write"] == {"method": "safetensors-stream", "copied_from_input": ints, "from_memory": n - ints}  # counters stay int64
    legacy = json.loads(cli("pycls2mmdet", built.source("b0", legacy=True), tmp_path / "c.pth", "--json", "--verify", "structure").stdout)
    assert legacy["write"]["copied_from_input"] == 0 and legacy["write"]["from_memory"] == n


def test_a_float64_checkpoint_keeps_its_dtype(cli, states, tmp_path):
    """One floating dtype is no mix: float64 stays float64 unless --dtype says otherwise."""
    sd = {k: v.double() if v.is_floating_point() else v for k, v in states("b0").items()}
    src = tmp_path / "f64.pth"
    torch.save({"model_state": sd}, src)
    result = cli("pycls2mmdet", src, tmp_path / "o.pth", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dtype"] == "float64"
    assert load_output(tmp_path / "o.pth")[0]["layers.0.conv.weight"].dtype == torch.float64


def test_inspect_prints_the_config_a_converted_file_needs(cli, built, tmp_path):
    """A batch writes no config beside its outputs: `inspect FILE` gives what the conversion printed."""
    src = built.source("b0")
    out = tmp_path / "b0_timm.pth"
    printed = json.loads(cli("convert", src, out, "--to", "timm", "--verify", "structure", "--json").stdout)["config"]
    inspected = cli("inspect", out, "--json")
    assert inspected.exit_code == 0 and json.loads(inspected.stdout)["config"] == printed
    assert printed in cli("inspect", out).stdout
