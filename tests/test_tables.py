"""The tables and the engine against the upstream manifests, and the engine's rules about rules."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from ckptconv.errors import MappingError, TableError, UsageError
from ckptconv.tables import engine
from ckptconv.tables.registry import Registry, builtin_dir

from .conftest import ARCHS, LAYOUTS

HUB = Registry().pycls_layout("effnet")  # the built-in pycls table every other maps from


@pytest.mark.parametrize("arch", ARCHS)
def test_pycls_keys_equal_the_real_model(manifest, registry, arch):
    got = [(s.key, s.shape, s.dtype) for s in registry.variant(arch).pycls_keys]
    assert got == manifest("pycls", arch)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_table_output_equals_manifest_key_for_key_in_order(manifest, registry, arch, layout):
    plan = engine.plan(registry.variant(arch), registry.layout(layout, "effnet"), registry.layout("pycls", "effnet"))
    got = [(e.target, e.shape, e.spec.dtype) for e in plan.mapped]
    assert got == manifest(layout, arch)
    # every pycls key is either mapped or dropped by a named rule
    assert len(plan.mapped) + len(plan.dropped) == len(registry.variant(arch).pycls_keys)
    assert all(e.rule and e.reason for e in plan.dropped)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("arch", ["b0", "b5"])
def test_inverted_table_equals_manifest(manifest, registry, arch, layout):
    """The reverse direction reads exactly the manifest's keys and lands on pycls's keys."""
    plan = engine.plan(registry.variant(arch), registry.layout("pycls", "effnet"), registry.layout(layout, "effnet"))
    assert sorted(e.source for e in plan.mapped) == sorted(k for k, _, _ in manifest(layout, arch))
    pycls_keys = [k for k, _, _ in manifest("pycls", arch)]
    assert [e.target for e in plan.entries] == pycls_keys
    absent = {e.target for e in plan.absent}
    assert absent == set(pycls_keys) - {e.target for e in plan.mapped}


def test_dropped_keys_are_the_ones_the_layout_lacks(registry):
    v = registry.variant("b0")
    mmdet = engine.plan(v, registry.layout("mmdet", "effnet"), HUB).dropped  # a detector's backbone: no head conv, no classifier
    assert [e.source for e in mmdet] == [k.key for k in v.pycls_keys if k.key.startswith("head.")]
    assert {e.rule for e in mmdet} == {"head", "classifier"}
    stages = engine.plan(v, registry.layout("mmdet-stages", "effnet"), HUB).dropped
    assert {e.source for e in stages} == {k.key for k in v.pycls_keys if k.key.startswith("head.")}
    assert engine.plan(v, registry.layout("timm", "effnet"), HUB).dropped == ()


def test_merged_stages_continue_block_numbering(registry):
    """b3: s4 has 5 blocks, so s5.b1 is layers.4.5 and s7.b2 is layers.5.7 (s6 has 6)."""
    plan = engine.plan(registry.variant("b3"), registry.layout("mmdet", "effnet"), HUB)
    by_source = {e.source: e.target for e in plan.mapped}
    assert by_source["s5.b1.dwise.weight"] == "layers.4.5.depthwise_conv.conv.weight"
    assert by_source["s7.b2.lin_proj.weight"] == "layers.5.7.linear_conv.conv.weight"
    assert by_source["s4.b5.exp.weight"] == "layers.4.4.expand_conv.conv.weight"


def _tables_dir(tmp_path, *, variants=(), layouts=()):
    for sub, files in (("variants", variants), ("layouts", layouts)):
        (tmp_path / "effnet" / sub).mkdir(parents=True, exist_ok=True)
        for name, text in files:
            (tmp_path / "effnet" / sub / name).write_text(textwrap.dedent(text))
    return tmp_path


B6 = """
    [variant]
    name    = "b6"
    title   = "EfficientNet-B6"
    config  = "EN-B6"
    im_size = 528
    test_size = 600

    [en]
    stem_w      = 56
    depths      = [3, 6, 6, 8, 8, 11, 3]
    widths      = [32, 40, 72, 144, 200, 344, 576]
    exp_ratios  = [1, 6, 6, 6, 6, 6, 6]
    kernels     = [3, 3, 5, 3, 5, 5, 3]
    strides     = [1, 2, 2, 2, 1, 2, 1]
    se_r        = 0.25
    head_w      = 2304

    [libraries.mmdet]
    builder = "type='EfficientNet', arch='b6'"
"""


def test_whole_key_match_never_confuses_b1_with_b10(tmp_path):
    """The seed-era converter replaced 'b1' inside 'b10'; B6's s6 has 11 blocks."""
    registry = Registry((_tables_dir(tmp_path, variants=[("b6.toml", B6)]),))
    v = registry.variant("b6")
    for layout in ("mmdet", "mmdet-stages"):
        by_source = {e.source: e.target for e in engine.plan(v, registry.layout(layout, "effnet"), HUB).mapped}
        assert len(set(by_source.values())) == len(by_source)
    stages = {e.source: e.target for e in engine.plan(v, registry.layout("mmdet-stages", "effnet"), HUB).mapped}
    assert stages["s6.b1.dwise.weight"] == "layer6.0.depthwise_conv.conv.weight"
    assert stages["s6.b10.dwise.weight"] == "layer6.9.depthwise_conv.conv.weight"
    assert stages["s6.b11.dwise.weight"] == "layer6.10.depthwise_conv.conv.weight"
    mmdet = {e.source: e.target for e in engine.plan(v, registry.layout("mmdet", "effnet"), HUB).mapped}
    assert mmdet["s6.b10.dwise.weight"] == "layers.5.9.depthwise_conv.conv.weight"
    assert mmdet["s7.b1.dwise.weight"] == "layers.5.11.depthwise_conv.conv.weight"


def test_new_variant_needs_only_a_data_file(tmp_path, cli):
    """Drop b6.toml in a tables directory: convert and verify work with no code change."""
    from ckptconv.verification import synthetic

    tables = _tables_dir(tmp_path / "tables", variants=[("b6.toml", B6)])
    variant = Registry((tables,)).variant("b6")
    src = synthetic.save(synthetic.pycls_checkpoint(variant, optimizer=False), tmp_path / "EN-B6.pyth")
    out = tmp_path / "b6.pth"
    result = cli("--tables", tables, "pycls2mmdet", src, out)
    assert result.exit_code == 0, result.output
    assert "b6" in result.output and "bit for bit" in result.output
    result = cli("--tables", tables, "verify", out, "--source", src)
    assert result.exit_code == 0, result.output


def test_new_layout_needs_only_a_table(tmp_path, cli, make_ckpt):
    """A whole-detector layout (backbone. prefix, mmdet reference) written as data only."""
    text = (builtin_dir() / "effnet" / "layouts" / "mmdet.toml").read_text()
    text = text.replace('name      = "mmdet"', 'name      = "mmdet-detector"').replace('prefix    = ""', 'prefix    = "backbone"')
    tables = _tables_dir(tmp_path / "tables", layouts=[("mmdet-detector.toml", text)])
    src = make_ckpt("b1")
    out = tmp_path / "det.pth"
    result = cli("--tables", tables, "pycls2mmdet", src, out, "--layout", "mmdet-detector", "--json")
    assert result.exit_code == 0, result.output
    import torch

    sd = torch.load(out, weights_only=True)["state_dict"]
    assert all(k.startswith("backbone.layers.") for k in sd)
    assert cli("--tables", tables, "verify", out, "--source", src).exit_code == 0


def _layout_table(rules: str, extra: str = "") -> str:
    return f"""
    [layout]
    name = "t"
    version = 1
    library = "mmdet"
    reference = "mmdet"
    {extra}
    [index]
    stage_layer = [1, 2, 3, 4, 4, 5, 5]
    [mapping]
    rules = [
    {rules}
    ]
    """


@pytest.mark.parametrize(
    "rules, message",
    [
        ('{ name = "a", from = "stem.{x}.{x}", to = "a" },', "appears twice"),
        ('{ name = "a", from = "stem.{layer}", to = "a" },', "computed for 'to'"),
        ('{ name = "a", from = "stem.{x}", to = "a.{y}" },', "does not capture"),
        ('{ name = "a", from = "stem.{x}" },', "exactly one of 'to'"),
        ('{ name = "a", from = "stem.{x}", to = "a", drop = "b" },', "exactly one of 'to'"),
        ('{ name = "a", from = "stem.{x", to = "a" },', "unbalanced brace"),
        ('{ name = "a", from = "s{stage}.{x}", to = "l.{index}" },', "needs {stage} and {block}"),
        ('{ name = "a", from = "x", to = "a", colour = "red" },', "unknown field"),
        ('{ name = "a", from = "x", to = "a" }, { name = "a", from = "y", to = "b" },', "unique"),
        ('{ name = "a", from = "s{stage}.b{block}", to = "a", where = { kernel = [1] } },', "can restrict only"),
        # where one ends and the next begins is ambiguous, and matching a long key that way takes quadratic time
        ('{ name = "a", from = "stem.{x}{y}", to = "a.{x}.{y}" },', "two placeholders touch"),
        ('{ name = "a", from = "s{stage}{block}", to = "a" },', "two placeholders touch"),
    ],
)
def test_malformed_tables_are_refused_with_the_reason(tmp_path, rules, message):
    tables = _tables_dir(tmp_path, layouts=[("t.toml", _layout_table(rules))])
    with pytest.raises(TableError, match=message.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        _ = Registry((tables,)).layouts_by_family


def test_an_out_level_that_names_no_level_is_refused(tmp_path):
    """verify --config reads the backbone's out_indices through out_level: it must name [levels]."""
    text = (builtin_dir() / "effnet" / "layouts" / "mmdet.toml").read_text()
    assert 'out_level   = "layers.{i}"' in text
    tables = _tables_dir(tmp_path, layouts=[("mmdet2.toml", text.replace('name      = "mmdet"', 'name      = "mmdet2"').replace('"layers.{i}"', '"stage{i}"'))])
    with pytest.raises(TableError, match=r"\[config\]\.out_level 'stage\{i\}' names no level of \[levels\]"):
        _ = Registry((tables,)).layouts_by_family


def test_table_leaving_a_key_unmatched_names_it(tmp_path, registry):
    rules = '{ name = "stem", from = "stem.{part}.{param}", to = "layers.0.{part}.{param}" },'
    tables = _tables_dir(tmp_path, layouts=[("t.toml", _layout_table(rules))])
    layout = Registry((tables,)).layout("t", "effnet")
    with pytest.raises(TableError, match=r"no rule for pycls key s1\.b1\.dwise\.weight"):
        engine.plan(registry.variant("b0"), layout, HUB)


def test_two_sources_on_one_target_is_an_error(tmp_path, registry):
    rules = """
      { name = "stem",  from = "stem.{part}.{param}", to = "x.{param}" },
      { name = "rest",  from = "{a}.{b}.{c}.{d}", drop = "test" },
      { name = "rest5", from = "{a}.{b}.{c}.{d}.{e}", drop = "test" },
      { name = "rest3", from = "{a}.{b}.{c}", drop = "test" },
    """
    tables = _tables_dir(tmp_path, layouts=[("t.toml", _layout_table(rules))])
    with pytest.raises(TableError, match=r"maps both stem\.conv\.weight and stem\.bn\.weight to x\.weight"):
        engine.plan(registry.variant("b0"), Registry((tables,)).layout("t", "effnet"), HUB)


def test_first_matching_rule_wins(registry):
    timm = engine.plan(registry.variant("b0"), registry.layout("timm", "effnet"), HUB)
    by_source = {e.source: (e.target, e.rule) for e in timm.mapped}
    assert by_source["s1.b1.lin_proj.weight"] == ("blocks.0.0.conv_pw.weight", "no-expansion")
    assert by_source["s2.b1.lin_proj.weight"] == ("blocks.1.0.conv_pwl.weight", "block")
    assert by_source["s2.b1.exp.weight"] == ("blocks.1.0.conv_pw.weight", "block")


def test_check_source_names_every_kind_of_misfit(registry):
    v = registry.variant("b0")
    plan = engine.plan(v, registry.layout("mmdet", "effnet"), HUB)
    good = {s.key: (s.shape, s.dtype) for s in v.pycls_keys}

    bad = dict(good)
    bad["s9.b1.dwise.weight"] = ((1,), "float32")
    with pytest.raises(MappingError, match=r"s9\.b1\.dwise\.weight: stage 9 does not exist"):
        engine.check_source(plan, bad)
    bad = dict(good)
    bad["stem.extra"] = ((1,), "float32")
    with pytest.raises(MappingError, match=r"stem\.extra: no rule of table mmdet@2 matches"):
        engine.check_source(plan, bad)
    bad = dict(good)
    bad["s1.b2.dwise.weight"] = ((32, 1, 3, 3), "float32")  # rule maps it, but b0's s1 has one block
    with pytest.raises(MappingError, match=r"rule 'block' maps it to layers\.1\.1\.depthwise_conv\.conv\.weight, but b0 has no such key"):
        engine.check_source(plan, bad)
    bad = dict(good)
    del bad["s3.b2.se.f_ex.0.bias"]
    with pytest.raises(MappingError, match=r"s3\.b2\.se\.f_ex\.0\.bias: missing .*layers\.3\.1\.se\.conv1\.conv\.bias would be left unfilled"):
        engine.check_source(plan, bad)
    bad = dict(good)
    bad["stem.bn.num_batches_tracked"] = ((), "float32")
    with pytest.raises(MappingError, match=r"stem\.bn\.num_batches_tracked: dtype float32 but b0 expects int64"):
        engine.check_source(plan, bad)


def test_wrong_shape_names_the_variant_that_fits(registry):
    v0 = registry.variant("b0")
    plan = engine.plan(v0, registry.layout("mmdet", "effnet"), HUB)
    shapes = {s.key: (s.shape, s.dtype) for s in v0.pycls_keys}
    b3_stem = next(s.shape for s in registry.variant("b3").pycls_keys if s.key == "stem.conv.weight")
    shapes["stem.conv.weight"] = (b3_stem, "float32")
    with pytest.raises(MappingError) as err:
        engine.check_source(plan, shapes, variants=registry.variants_of("effnet"))
    assert "stem.conv.weight: shape (40, 3, 3, 3) but b0 expects (32, 3, 3, 3); is this a b3 checkpoint? pass --arch b3" in str(err.value)


def test_group_keys_is_short_and_sorted():
    assert engine.group_keys(["head.fc.weight", "head.fc.bias", "stem.bn.weight"]) == "head.fc.{bias,weight}, stem.bn.weight"


def test_unknown_names_are_usage_errors(registry):
    with pytest.raises(UsageError, match="unknown arch 'b9'; use one of b0, b1"):
        registry.variant("b9")
    with pytest.raises(UsageError, match="unknown layout 'detectron2'"):
        registry.layout("detectron2", "effnet")


def test_tables_dir_must_exist(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        Registry.from_env((tmp_path / "nope",))


def test_builtin_tables_are_found_from_a_copy_of_the_package(tmp_path):
    """The lookup prefers ckptconv/mappings (as in the wheel) over the source tree's mappings/."""
    import ckptconv

    pkg = tmp_path / "ckptconv"
    shutil.copytree(ckptconv.__path__[0], pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(builtin_dir(), pkg / "mappings")
    import subprocess
    import sys

    code = "import ckptconv.tables.registry as r; print(r.builtin_dir())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(pkg / "mappings")


def test_the_mmdet_layout_is_what_a_detector_builds():
    """With out_indices (3, 4, 5) the real mmdet builds layers 0..5 and logs every layers.6 key of a
    fuller checkpoint as unexpected: the layout holds exactly the layers it builds."""
    import json
    from pathlib import Path

    probe = json.loads((Path(__file__).parent / "data" / "mmdet_efficientnet_out_indices_345.json").read_text())["probe"]
    registry = Registry()
    for arch, seen in probe.items():
        plan = engine.plan(registry.variant(arch), registry.layout("mmdet", "effnet"), HUB)
        layers = sorted({int(e.target.split(".")[1]) for e in plan.mapped})
        assert layers == seen["layers_built"] and len(plan.mapped) == seen["n_keys"]
        assert "layers.6" in seen["init_cfg_load_log_unexpected_line"]


def test_a_user_table_that_drops_every_key_writes_nothing(cli, tmp_path):
    """Even with --no-verify: an output holding no weights is never written."""
    import re

    from ckptconv.tables.registry import builtin_dir
    from ckptconv.verification import synthetic

    text = (builtin_dir() / "effnet" / "layouts" / "mmdet.toml").read_text().replace('name      = "mmdet"', 'name      = "nothing"')
    text = re.sub(r'to = "[^"]*"', 'drop = "dropped"', text)
    tables = _tables_dir(tmp_path / "tables", layouts=[("nothing.toml", text)])
    src = synthetic.save(synthetic.pycls_checkpoint(Registry().variant("b0"), optimizer=False), tmp_path / "b0.pyth")
    result = cli("--tables", tables, "convert", src, tmp_path / "out.pth", "--to", "nothing", "--no-verify")
    assert result.exit_code == 1 and "maps none of the b0 keys" in result.output and not (tmp_path / "out.pth").exists()


def test_a_user_table_that_replaces_a_built_in_one_is_named(cli, tmp_path):
    from ckptconv.tables.registry import builtin_dir
    from ckptconv.verification import synthetic

    tables = _tables_dir(tmp_path / "tables", layouts=[("mmdet.toml", (builtin_dir() / "effnet" / "layouts" / "mmdet.toml").read_text())])
    src = synthetic.save(synthetic.pycls_checkpoint(Registry().variant("b0"), optimizer=False), tmp_path / "b0.pyth")
    result = cli("--tables", tables, "convert", src, tmp_path / "out.pth", "--to", "mmdet", "--verify", "structure")
    assert result.exit_code == 0 and "replaces the built-in mmdet layout" in result.output, result.output


def test_mappings_show_of_a_pair_that_cannot_exist_names_the_refusal(cli):
    result = cli("mappings", "show", "mmdet", "--arch", "regnety_800mf")
    assert result.exit_code == 2 and "no squeeze-and-excitation" in result.output and "add a rule" not in result.output
