"""A checkpoint's structure from its pycls cfg or its tensors, for every model pycls trains.

Expectations come from tests/data/design_space (tools/groundtruth/design_space.py: 47 models built by
pycls 0.1.1's own code across its design spaces, each with its cfg dump and model_state manifest)
and the zoo manifests of tests/data/manifests/pycls, never from the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ckptconv.errors import FormatError, MappingError
from ckptconv.model import structure
from ckptconv.tables import detect

DATA = Path(__file__).parent / "data"
CASES = json.loads((DATA / "design_space" / "cases.json").read_text())["cases"]
ZOO_MANIFESTS = {p.stem: json.loads(p.read_text())["keys"] for p in (DATA / "manifests" / "pycls").glob("*.json")}


def _rows(variant) -> list:
    return [[s.key, list(s.shape), s.dtype] for s in variant.pycls_keys]


def _shapes(manifest) -> dict:
    return {k: (tuple(s), d) for k, s, d in manifest}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_cfg_dump_gives_pycls_own_keys(case):
    """pycls's cfg.dump() of the run, read with pycls 0.1.1's meaning of each field: every key and
    shape of the model_state pycls built, in order."""
    variant = structure.from_cfg(CASES[case]["cfg_dump"])
    assert _rows(variant) == [list(r) for r in CASES[case]["manifest"]]
    assert variant.num_classes == CASES[case]["values"]["MODEL.NUM_CLASSES"]
    assert variant.eps == CASES[case]["values"].get("BN.EPS", 1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_tensors_alone_give_the_same_keys_and_say_what_they_assume(case, registry):
    manifest = CASES[case]["manifest"]
    variant, how = detect.pycls_structure(None, _shapes(manifest), registry)
    assert how == "shapes" and _rows(variant) == [list(r) for r in manifest]
    stated = structure.named(structure.from_cfg(CASES[case]["cfg_dump"]), list(registry.variants.values()))
    if stated.zoo and stated.eps == 1e-5:  # a zoo structure is known by its name
        assert variant.name == stated.name
    else:  # the tensors show no BN eps, no stride of a stage that changes width, no stride placement...
        assert variant.assumed


def _zoo_of(manifest) -> str | None:
    """The zoo model whose pycls keys these are, the classifier aside (from the zoo's manifests)."""
    body = [(k, tuple(s)) for k, s, _ in manifest if not k.startswith("head.fc")]
    return next((name for name, rows in ZOO_MANIFESTS.items() if [(k, tuple(s)) for k, s, _ in rows if not k.startswith("head.fc")] == body), None)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_zoo_structure_keeps_the_zoo_name(case, registry):
    """A zoo model fine-tuned to other classes, or trained with another BN eps, is that zoo model
    (its name, sizes and builders); anything else gets a descriptive name; models/resnet.py's
    stride on the 1x1 is not the zoo's AnyNet ResNet-50, whatever its keys."""
    variant = structure.named(structure.from_cfg(CASES[case]["cfg_dump"]), list(registry.variants.values()))
    zoo = _zoo_of(CASES[case]["manifest"])
    stride_1x1 = CASES[case]["values"].get("RESNET.STRIDE_1X1", CASES[case]["values"].get("MODEL.TYPE") == "resnet")
    if zoo and not (stride_1x1 and CASES[case]["values"].get("MODEL.DEPTH", 0) >= 50):
        assert variant.name == zoo and variant.zoo == zoo
    else:
        assert not variant.zoo and variant.name not in registry.variants


def test_models_resnet_strides_the_1x1_by_default_and_says_so_without_its_cfg(registry):
    cfg = CASES["resnet_in50_stride1x1"]["cfg_dump"]
    assert structure.from_cfg(cfg).stride_1x1
    assert not structure.from_cfg(CASES["resnet_in50_stride3x3"]["cfg_dump"]).stride_1x1
    variant, how = detect.pycls_structure(None, _shapes(CASES["resnet_in50_stride1x1"]["manifest"]), registry)
    assert variant.name == "resnet50" and how == "shapes"
    assert any("RESNET.STRIDE_1X1" in a for a in variant.assumed)


def test_flow_lists_and_dicts_read_like_block_lists():
    from ckptconv.io.pycls_cfg import read_cfg

    flow = "MODEL:\n  TYPE: effnet\n  NUM_CLASSES: 10\nEN:\n  STEM_W: 8\n  DEPTHS: [1, 2]\n  WIDTHS: [8, 16]\n  EXP_RATIOS: [1.0, 4.0]\n  KERNELS: [3, 5]\n  STRIDES: [1, 2]\n  HEAD_W: 64\n"
    as_dict = read_cfg(flow, "flow")
    assert as_dict["EN"]["DEPTHS"] == [1, 2]
    assert _rows(structure.from_cfg(flow)) == _rows(structure.from_cfg(as_dict))


@pytest.mark.parametrize("cfg, words", [
    ("MODEL:\n  TYPE: vit\n", "MODEL.TYPE: 'vit'; pycls 0.1.1 builds anynet, effnet, resnet, regnet (lower case)"),
    ("MODEL:\n  TYPE: resnet\n  DEPTH: 34\nTRAIN:\n  DATASET: imagenet\nRESNET:\n  TRANS_FUN: bottleneck_transform\n", "MODEL.DEPTH 34 is no ImageNet ResNet depth"),
    ("MODEL:\n  TYPE: resnet\n  DEPTH: 21\nTRAIN:\n  DATASET: cifar10\n", "MODEL.DEPTH 21 is no CIFAR ResNet depth (6n + 2)"),
    ("MODEL:\n  TYPE: regnet\nREGNET:\n  BLOCK_TYPE: vanilla_block\n", "RegNet builds only res_bottleneck_block"),
    ("MODEL:\n  TYPE: effnet\n", "EN.DEPTHS is empty; a model has at least one stage"),
    ("MODEL:\n  TYPE: anynet\nANYNET:\n  DEPTHS: [1]\n  WIDTHS: [8]\n  STRIDES: [2]\n  BOT_MULS: [1e-1]\n  GROUP_WS: [8]\n",
     "ANYNET.BOT_MULS[0] is '1e-1'; expected a number"),  # pycls reads items of a YAML list as they are: a string
    ("MODEL:\n  TYPE: resnet\n  DEPTH: 50\nRESNET:\n  TRANS_FUN: bottleneck_transform\n  NUM_GROUPS: null\n", "RESNET.NUM_GROUPS is None"),
])
def test_a_cfg_pycls_could_not_build_is_one_line(cfg, words):
    with pytest.raises(FormatError) as e:
        structure.from_cfg(cfg)
    assert words in str(e.value)


def test_a_blank_model_type_says_nothing():
    assert structure.from_cfg(None) is None and structure.from_cfg("MODEL:\n  TYPE: ''\n") is None


def test_a_cfg_of_another_run_is_refused(registry):
    shapes = _shapes(CASES["regnetx_custom_d14"]["manifest"])
    with pytest.raises(MappingError, match="the cfg is not this checkpoint's"):
        detect.pycls_structure(CASES["regnety_custom_d14"]["cfg_dump"], shapes, registry)
