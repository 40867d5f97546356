"""The reference models against the real upstream classes: keys, shapes, and every recorded output.

The recorded outputs were computed on another machine: they are compared under ``close`` (floats
are per machine). "Bit for bit" is asserted only between two computations in this process.
"""

from __future__ import annotations

import pytest
import torch

from ckptconv.tables import engine
from ckptconv.verification import models
from ckptconv.verification.models.ops import same_padding

from .conftest import ARCHS, close

REFERENCE_MANIFEST = ["pycls", "mmdet", "mmdet-stages", "mmpretrain", "timm"]
POINTS = ["stem", "s1", "s2", "s3", "s5", "s7", "head"]  # where mmdet 3.x's layers 0..6 end


@pytest.mark.parametrize("reference", REFERENCE_MANIFEST)
@pytest.mark.parametrize("arch", ARCHS)
def test_reference_state_dict_equals_the_real_class(manifest, registry, arch, reference):
    detector = {"out_indices": (3, 4, 5)} if reference == "mmdet" else {}  # as the mmdet layout builds it
    sd = models.build(reference, registry.variant(arch), models.Build(**detector)).state_dict()
    got = [(k, tuple(v.shape), str(v.dtype)[6:]) for k, v in sd.items()]
    assert got == manifest(reference, arch)


@pytest.fixture(scope="module")
def b0(b0_fixture, registry):
    pyth, feats = b0_fixture
    sd = torch.load(pyth, map_location="cpu", weights_only=True)["model_state"]
    return registry.variant("b0"), sd, feats


def _convert(registry, variant, sd, layout):
    plan = engine.plan(variant, registry.layout(layout, "effnet"), registry.layout("pycls", "effnet"))
    return {e.target: sd[e.source] for e in plan.mapped}


@torch.inference_mode()
def test_pycls_reference_reproduces_pycls_outputs(b0):
    variant, sd, feats = b0
    out = models.pycls_model(variant, sd).forward_levels(feats["input"])
    for i, point in enumerate(POINTS):
        close(out[point], feats[f"pycls_point{i}"])
    close(out["logits"], feats["pycls_logits"])


@torch.inference_mode()
@pytest.mark.parametrize("padding, eps, recorded", [("symmetric", 1e-5, "matched"), ("same", 1e-3, "defaults")])
def test_mmdet_reference_reproduces_real_mmdet_in_both_configs(b0, registry, padding, eps, recorded):
    """The real mmdet 3.3.0 backbone's outputs, with matched settings and with its defaults."""
    variant, sd, feats = b0
    whole = {k[len("backbone.") :]: v for k, v in _convert(registry, variant, sd, "mmpretrain").items() if k.startswith("backbone.")}
    model = models.load("mmdet", variant, whole, models.Build(padding, eps))  # all 7 layers, as the fixture ran it
    out = model.forward_levels(feats["input"])
    for i in range(7):
        close(out[f"layers.{i}"], feats[f"mmdet3_{recorded}_layer{i}"])
    if recorded == "matched":  # and bit for bit against the pycls reference, in this process
        ref = models.pycls_model(variant, sd).forward_levels(feats["input"])
        assert all(torch.equal(out[f"layers.{i}"], ref[p]) for i, p in enumerate(POINTS))


def test_mmdet_defaults_really_differ_from_pycls(b0_fixture):
    """Guard on the fixture itself: the default config is not a near miss."""
    _, feats = b0_fixture
    assert (feats["mmdet3_defaults_layer0"] - feats["pycls_point0"]).abs().max() > 1.0
    assert all((feats[f"mmdet3_defaults_layer{i}"] - feats[f"pycls_point{i}"]).abs().max() > 0.1 for i in range(7))


@torch.inference_mode()
def test_mmdet_stages_reference_matches_pycls_stage_by_stage(b0, registry):
    variant, sd, feats = b0
    model = models.load("mmdet-stages", variant, _convert(registry, variant, sd, "mmdet-stages"))
    out = model.forward_levels(feats["input"])
    ref = models.pycls_model(variant, sd).forward_levels(feats["input"])
    close(out["conv1"], feats["pycls_point0"])
    assert torch.equal(out["conv1"], ref["stem"])
    for s in range(1, 8):
        assert torch.equal(out[f"layer{s}"], ref[f"s{s}"]), s


@torch.inference_mode()
def test_mmpretrain_reference_logits_equal_pycls_bit_for_bit(b0, registry):
    variant, sd, feats = b0
    model = models.load("mmpretrain", variant, _convert(registry, variant, sd, "mmpretrain"))
    logits = model.forward_levels(feats["input"])["logits"]
    close(logits, feats["pycls_logits"])
    assert torch.equal(logits, models.pycls_model(variant, sd).forward_levels(feats["input"])["logits"])


@torch.inference_mode()
def test_timm_reference_reproduces_real_timm_logits(b0, registry):
    variant, sd, feats = b0
    model = models.load("timm", variant, _convert(registry, variant, sd, "timm"))
    logits = model.forward_levels(feats["input"])["logits"]
    close(logits, feats["timm_logits"])
    # and, like the real timm, it is close to pycls but not bit-identical (both computed here)
    diff = (logits - models.pycls_model(variant, sd).forward_levels(feats["input"])["logits"]).abs().max().item()
    assert 0 < diff < 1e-5


@pytest.mark.parametrize(
    "size, k, s, expected",
    [(64, 3, 2, (0, 1)), (65, 3, 2, (1, 1)), (32, 5, 1, (2, 2)), (8, 5, 2, (1, 2)), (7, 1, 1, (0, 0)), (3, 5, 2, (2, 2))],
)
def test_same_padding_puts_the_smaller_half_top_left(size, k, s, expected):
    assert same_padding(size, k, s) == expected


def test_models_are_built_without_memory_on_meta(registry):
    model = models.build("mmdet", registry.variant("b5"))
    assert all(p.is_meta for p in model.parameters())
    assert not model.training


def test_unknown_reference_is_a_table_error(registry):
    from ckptconv.errors import TableError

    with pytest.raises(TableError, match="no reference model 'detectron2'"):
        models.build("detectron2", registry.variant("b0"))
