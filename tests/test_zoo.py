"""The whole pycls zoo: every model's keys in every library that has it, its numbers, and its outputs.

Ground truth is committed in tests/data, made by the real packages (tools/groundtruth/): key
manifests of pycls 0.1.1, mmdet 3.3.0, mmpretrain 1.2.0, timm 1.0.31 and torchvision 0.29.1, zoo.json
(the stage numbers pycls builds) and the features pycls computed for four models. The recorded
outputs come from another machine: compared under ``close``; bit for bit only within this process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ckptconv import convert
from ckptconv.tables import engine
from ckptconv.tables.resolve import resolve
from ckptconv.verification import checks, models

from .conftest import close

DATA = Path(__file__).parent / "data"
ZOO = json.loads((DATA / "zoo.json").read_text())["models"]


def _manifest(library: str, arch: str) -> list | None:
    """The real class's keys: the class-built model where the library's named builder is another model."""
    for suffix in (".class.json", ".json"):
        path = DATA / "manifests" / library / f"{arch}{suffix}"
        if path.exists():
            return [(k, tuple(s), d) for k, s, d in json.loads(path.read_text())["keys"]]
    return None


def _pairs() -> list[tuple[str, str]]:
    """(arch, layout) for every real class the ground truth built from a zoo model (a manifest in
    tests/data/manifests/<library>/): the RegNets and ResNets to every library, and torchvision's
    EfficientNet (the other EfficientNet targets are held to ../shared's manifests)."""
    out = set()
    for folder in sorted((DATA / "manifests").iterdir()):
        for path in folder.glob("*.json"):
            arch = path.name.removesuffix(".json").removesuffix(".class")
            if folder.name != "pycls" and (ZOO[arch]["model_type"] != "effnet" or folder.name == "torchvision"):
                out.add((arch, folder.name))
    return sorted(out)


MM_TARGETS = json.loads((DATA / "openmmlab_targets.json").read_text())["models"]
CANNOT = sorted((arch, library) for arch, libraries in MM_TARGETS.items() for library, entry in libraries.items()
                if isinstance(entry, dict) and entry.get("structure_matches") is False)


@pytest.mark.parametrize("arch, layout", CANNOT)
def test_a_pair_the_real_library_cannot_build_is_refused_before_writing(registry, tmp_path, arch, layout):
    """openmmlab_targets.json: the real mmdet / mmpretrain class cannot hold these weights
    (structure_matches false: RegNetY's SE)."""
    from ckptconv.errors import Refused
    from ckptconv.options import Request

    with pytest.raises(Refused):
        resolve(Request(source=tmp_path / "x.pyth", layout=layout), registry.variant(arch), registry)


@pytest.mark.parametrize("arch, layout", _pairs())
def test_reference_and_table_equal_the_real_class_key_for_key(registry, arch, layout):
    """The reference model's state_dict() and the table's output, in order, equal the real class's."""
    variant = registry.variant(arch)
    table = registry.layout(layout, variant.family)
    want = _manifest(layout, arch)
    assert want is not None, f"no manifest for {layout} {arch}"
    sd = models.build(table.reference, variant).state_dict()
    assert [(k, tuple(v.shape), str(v.dtype)[6:]) for k, v in sd.items()] == want
    plan = engine.plan(variant, table, registry.pycls_layout(variant.family))
    ordered = [(e.target, e.shape, e.spec.dtype) for e in convert._in_reference_order(plan)]
    assert ordered == want


@pytest.mark.parametrize("arch", [a for a in ZOO if not a.startswith("b")])
def test_anynet_stages_are_the_ones_pycls_builds(registry, arch):
    """Every stage's numbers and the stem, from the variant file's cfg numbers, equal what the real
    pycls 0.1.1 built (RegNet's quantization and RegNetY's SE widths included)."""
    variant, built = registry.variant(arch), ZOO[arch]["built"]
    first = [next(b for b in variant.blocks if b.stage == s) for s in range(1, 5)]
    later = [next((b for b in variant.blocks if b.stage == s and b.block == 2), None) for s in range(1, 5)]
    assert list(variant.depths) == built["depths"] and list(variant.widths) == built["widths"]
    assert list(variant.strides) == built["strides"]
    assert [b.w_b for b in first] == built["bottleneck_widths"] and [b.groups for b in first] == built["groups"]
    assert (variant.stem_w, 3 if variant.stem_type == "simple_stem_in" else 7) == (built["stem"]["w"], built["stem"]["kernel"])
    assert (variant.stem_type == "res_stem_in") == (built["stem"]["maxpool"] is not None)
    if "se_widths_first_block" in built:
        assert [b.w_se for b in first] == built["se_widths_first_block"]
        assert [b.w_se if b else None for b in later] == built["se_widths_other_blocks"]
    else:
        assert not any(b.w_se for b in variant.blocks)


def recipe_state(variant) -> dict[str, torch.Tensor]:
    """The weights tools/groundtruth/pycls_zoo.py gave the real pycls model (its docstring's recipe)."""
    rng, sd = np.random.default_rng(0), {}
    for spec in variant.pycls_keys:
        key, shape = spec.key, spec.shape
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(0)
            continue
        if key.endswith("running_mean"):
            a = 0.2 * rng.standard_normal(shape)
        elif key.endswith("running_var"):
            a = rng.uniform(0.5, 1.5, shape)
        elif key.endswith(".bias"):
            a = 0.05 * rng.standard_normal(shape)
        elif len(shape) == 1:
            a = 1 + 0.1 * rng.standard_normal(shape)
        else:
            a = rng.standard_normal(shape) * np.sqrt(1 / np.prod(shape[1:]))
        sd[key] = torch.from_numpy(np.asarray(a, dtype=np.float64).astype(np.float32))
    return sd


RECORDED = ["regnetx_200mf", "regnety_200mf", "resnet50", "resnext50_32x4d"]


@pytest.fixture(scope="module")
def recorded(registry):
    def get(arch):
        feats = np.load(DATA / "pycls" / f"{arch}.features.npz")
        return registry.variant(arch), recipe_state(registry.variant(arch)), {k: torch.from_numpy(feats[k]) for k in feats.files}

    return get


@torch.inference_mode()
@pytest.mark.parametrize("arch", RECORDED)
def test_pycls_anynet_reproduces_the_real_pycls_outputs(recorded, arch):
    variant, sd, feats = recorded(arch)
    out = models.pycls_model(variant, sd).forward_levels(feats["input"])
    for point in ("stem", "s1", "s2", "s3", "s4", "logits"):
        close(out[point], feats[point])


@torch.inference_mode()
@pytest.mark.parametrize("arch", RECORDED)
def test_every_library_reference_computes_pycls_outputs_bit_for_bit(registry, recorded, arch):
    """Converted through each table, every library's reference equals pycls's at every level it has."""
    variant, sd, feats = recorded(arch)
    want = models.pycls_model(variant, sd).forward_levels(feats["input"])
    for name, table in registry.layouts_by_family[variant.family].items():
        if name == "pycls" or table.refusal(variant):
            continue
        plan = engine.plan(variant, table, registry.pycls_layout(variant.family))
        got = models.load(table.reference, variant, {e.target: sd[e.source] for e in plan.mapped}).forward_levels(feats["input"])
        for level, point in table.levels_for(variant).items():
            assert torch.equal(got[level], want[point]), (name, level)


@torch.inference_mode()
def test_torchvision_efficientnet_is_pycls_computed_with_f_silu(registry, states):
    """nn.SiLU rounds differently from pycls's x * sigmoid(x): torchvision's EfficientNet equals
    pycls's network computed with F.silu bit for bit, and drifts from pycls's own arithmetic by about
    as much as the real torchvision 0.29.1 did (tests/data/targets.json), never more than 1e-5."""
    variant, sd = registry.variant("b0"), states("b0")
    table = registry.layout("torchvision", "effnet")
    plan = engine.plan(variant, table, registry.pycls_layout("effnet"))
    x = checks.make_input((64, 96))
    got = models.load("torchvision", variant, {e.target: sd[e.source] for e in plan.mapped}).forward_levels(x)
    same = models.pycls_model(variant, sd, models.Arith(silu="silu")).forward_levels(x)
    own = models.pycls_model(variant, sd).forward_levels(x)
    assert all(torch.equal(got[level], same[point]) for level, point in table.levels_for(variant).items())
    drift = max((got[level] - own[point]).abs().max().item() / own[point].abs().max().item() for level, point in table.levels_for(variant).items())
    recorded = json.loads((DATA / "targets.json").read_text())["b0"]["torchvision"]["logits_max_rel"]
    assert 0 < drift < 1e-5 and 0 < recorded < 1e-5


@pytest.mark.parametrize("arch", list(ZOO))
def test_the_zoo_yaml_and_the_tensors_each_tell_the_model(registry, arch):
    """The lines of the model's pycls YAML (zoo.json: cfg_from_yaml, as pycls's configs/ have them)
    name the zoo model; its recorded pycls manifest's shapes alone name it too."""
    from ckptconv.model import structure
    from ckptconv.tables import detect

    merged: dict = {}
    for k, v in ZOO[arch]["cfg_from_yaml"].items():
        merged.setdefault(k.split(".")[0], {})[k.split(".")[1]] = v
    assert structure.named(structure.from_cfg(merged), list(registry.variants.values())).name == arch
    manifest = json.loads((DATA / "manifests" / "pycls" / f"{arch}.json").read_text())["keys"]
    found, how, prefix = detect.resolve_arch(None, None, {k: (tuple(sh), d) for k, sh, d in manifest}, registry, "pycls")
    assert (found.name, how, prefix) == (arch, "shapes", "")
