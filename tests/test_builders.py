"""``ckptconv.libraries``: how each library builds a pycls model, or why it cannot.

Expectations come from what the real libraries did, never from the code under test:
- tests/data/design_space/targets.json: for 47 non-zoo models pycls 0.1.1 builds, per library the
  call that built the library's class and loaded pycls's weights with equal outputs, or ``cannot``;
- tests/data/targets.json (timm, torchvision) and tests/data/openmmlab_targets.json (mmdet,
  mmpretrain): the same for the 36 zoo models, with the other calls tried (``alternatives``);
- tests/data/signatures.json: the mm classes' defaults, as ``inspect.signature`` printed them.
A text matches a call when both build the same class with the same structural arguments, each
argument one side leaves out taking the library's default. No model is built (torch-free, fast).
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

from ckptconv.errors import Refused, TableError
from ckptconv.libraries import library as library_named
from ckptconv.libraries.building import Built, build
from ckptconv.model import structure
from ckptconv.model.variants import parse_variant, replaced
from ckptconv.tables.registry import registry_for

DATA = Path(__file__).parent / "data"
CASES = json.loads((DATA / "design_space" / "cases.json").read_text())["cases"]
CASE_TARGETS = json.loads((DATA / "design_space" / "targets.json").read_text())["cases"]
ZOO_TARGETS = json.loads((DATA / "targets.json").read_text())
MM_TARGETS = json.loads((DATA / "openmmlab_targets.json").read_text())["models"]
SIGNATURES = json.loads((DATA / "signatures.json").read_text())
LIBRARIES = ("timm", "torchvision", "mmdet", "mmpretrain")

# Arguments that change no key and nothing the structure computes: BN eps and padding are the
# caller's (norm_layer / norm_cfg, conv_cfg, from the layout's [settings]); out_indices the caller's;
# dropout is training-only (torchvision's EfficientNet requires one; the GT passed the cfg's
# EN.DROPOUT_RATIO, which a Variant does not carry); pretrained / weights load nothing here.
NOT_STRUCTURE = {"norm_layer", "norm_cfg", "conv_cfg", "out_indices", "dropout", "pretrained", "weights"}

# Positional parameters of the calls the texts use (each library's signature, in order).
POSITIONAL = {
    "timm.create_model": ("model_name",),  # create_model(model_name, pretrained=False, ...)
    "timm.models.regnet.RegNet": ("cfg",),  # RegNet(cfg, in_chans=3, num_classes=1000, ...)
    "timm.models.efficientnet.decode_arch_def": ("arch_def",),  # decode_arch_def(arch_def, depth_multiplier=1.0, ...)
    "functools.partial": ("func",),
    "torchvision.models.RegNet": ("block_params",),  # RegNet(block_params, num_classes=1000, stem_width=32, ...)
    "torchvision.models.ResNet": ("block", "layers"),  # ResNet(block, layers, num_classes=1000, zero_init_residual, groups=1, width_per_group=64, ...)
    "torchvision.models.EfficientNet": ("inverted_residual_setting", "dropout"),  # EfficientNet(inverted_residual_setting, dropout, stochastic_depth_prob, num_classes=1000, norm_layer, last_channel=None)
    # MBConvConfig(expand_ratio, kernel, stride, input_channels, out_channels, num_layers, width_mult=1.0, depth_mult=1.0, ...)
    "torchvision.models.efficientnet.MBConvConfig": ("expand_ratio", "kernel", "stride", "input_channels", "out_channels", "num_layers"),
}
# Defaults of timm 1.0.31 and torchvision 0.29.1 (the GT's versions) for what the texts may leave out.
CALL_DEFAULTS = {
    "timm.create_model": {"num_classes": 1000},  # every registered model's default cfg
    "timm.models.regnet.RegNet": {"num_classes": 1000},
    "timm.models.regnet.RegNetCfg": {"bottle_ratio": 1.0, "se_ratio": 0.0, "stem_width": 32},  # @dataclass RegNetCfg
    # ResNet(block, layers, num_classes=1000, ..., cardinality=1, base_width=64, stem_width=64, ..., channels=(64, 128, 256, 512))
    "timm.models.resnet.ResNet": {"num_classes": 1000, "cardinality": 1, "base_width": 64, "stem_width": 64, "channels": [64, 128, 256, 512]},
    # EfficientNet(block_args, num_classes=1000, num_features=1280, ..., stem_size=32, fix_stem=False, ..., round_chs_fn=round_channels, act_layer=None, ..., se_layer=None)
    "timm.models.efficientnet.EfficientNet": {"num_classes": 1000, "num_features": 1280, "stem_size": 32, "fix_stem": False,
                                              "round_chs_fn": "round_channels", "act_layer": None, "se_layer": None},
    "torchvision.models.RegNet": {"num_classes": 1000, "stem_width": 32},
    "torchvision.models.regnet.BlockParams": {"se_ratio": None},  # BlockParams(depths, widths, group_widths, bottleneck_multipliers, strides, se_ratio=None)
    "torchvision.models.regnet.BlockParams.from_init_params": {"bottleneck_multiplier": 1.0, "se_ratio": None},
    "torchvision.models.ResNet": {"num_classes": 1000, "groups": 1, "width_per_group": 64},
    "torchvision.models.EfficientNet": {"num_classes": 1000, "last_channel": None},
}
NAMED_DEFAULTS = {"num_classes": 1000}  # torchvision.models.<builder>(*, weights=None, progress=True, **kwargs): the class's 1000


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    assert isinstance(node, ast.Name), ast.dump(node)
    return node.id


def _value(node: ast.AST):
    """A parsed argument as plain data: a call as {"()": callee, argument: value} with its
    positional arguments named and its defaults filled in, tuples as lists, names as dotted text."""
    if isinstance(node, ast.Call):
        callee = _dotted(node.func)
        names = POSITIONAL.get(callee, ())
        assert len(node.args) <= len(names), f"{callee}: positional arguments the test does not know"
        args = {name: _value(a) for name, a in zip(names, node.args)} | {k.arg: _value(k.value) for k in node.keywords}
        defaults = CALL_DEFAULTS.get(callee) or (NAMED_DEFAULTS if callee.startswith("torchvision.models.") and callee.split(".")[-1][0].islower() else {})
        return {"()": callee, **defaults, **{k: v for k, v in args.items() if k not in NOT_STRUCTURE}}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_value(e) for e in node.elts]
    if isinstance(node, (ast.Name, ast.Attribute)):
        return _dotted(node)
    return ast.literal_eval(node)


def call_meaning(text: str) -> dict:
    """A timm / torchvision call as data."""
    return _value(ast.parse(text, mode="eval").body)


def _mm_defaults(library: str, type_: str) -> dict:
    """The backbone's defaults from signatures.json (a class taking **kwargs passes them to ResNet)."""
    sig = SIGNATURES[library][f"backbones.{type_}"]
    out = {}
    if sig["accepts_kwargs"]:
        out |= _mm_defaults(library, "ResNet")
    for p in sig["params"]:
        if not p["required"] and p["kind"] != "VAR_KEYWORD":
            out[p["name"]] = _value(ast.parse(p["default"], mode="eval").body)
    return out


def mm_meaning(library: str, backbone: dict) -> dict:
    """An mm backbone config (type and arguments) with the class's defaults, structural arguments only."""
    backbone = json.loads(json.dumps(backbone))  # tuples -> lists
    args = _mm_defaults(library, backbone["type"]) | backbone
    if args.get("stem_channels", 0) is None:  # mmdet ResNet.__init__: stem_channels None means base_channels
        args["stem_channels"] = args["base_channels"]
    return {k: v for k, v in args.items() if k not in NOT_STRUCTURE}


def _dict_value(node: ast.Call) -> dict:
    assert _dotted(node.func) == "dict"
    return {k.arg: (_dict_value(k.value) if isinstance(k.value, ast.Call) else ast.literal_eval(k.value)) for k in node.keywords}


def mm_text_meaning(library: str, built: Built) -> dict:
    return mm_meaning(library, _dict_value(ast.parse(f"dict({built.text})", mode="eval").body))


def mm_gt_meaning(library: str, call: str) -> dict:
    """The backbone of a design-space GT call: mmdet.models.backbones.X(...) or
    MMPRE_MODELS.build(dict(type='ImageClassifier', backbone=dict(...), ...))."""
    node = ast.parse(call, mode="eval").body
    if library == "mmdet":
        return mm_meaning(library, {"type": _dotted(node.func).split(".")[-1], **_dict_value(ast.Call(ast.Name("dict"), [], node.keywords))})
    return mm_meaning(library, _dict_value(node.args[0])["backbone"])


def check_text(library: str, built: Built, variant) -> None:
    """What every text must be: the right kind, no eps, no out_indices, classes only in calls."""
    assert "out_indices" not in built.text and "eps" not in built.text
    if library in ("mmdet", "mmpretrain"):
        assert built.kind == "dict" and built.name == "" and "num_classes" not in built.text
        return
    assert built.kind == "call"
    meaning = call_meaning(built.text)
    assert meaning["num_classes"] == variant.num_classes
    assert built.name == (meaning["model_name"] if meaning["()"] == "timm.create_model" else "")


def build_or_refusal(library: str, variant):
    try:
        return build(library_named(library), variant)
    except Refused as e:
        assert e.fix and "\n" not in str(e), "a refusal is one line and names what to do instead"
        return e


# --- the design space: 47 models pycls builds that are not its zoo --------------------------------

ZOO = list(registry_for().variants.values())


def case_variant(case: str):
    return structure.named(structure.from_cfg(CASES[case]["cfg_dump"]), ZOO)


def test_every_case_parses_to_pycls_keys():
    for case, data in CASES.items():
        keys = [[k.key, list(k.shape), k.dtype] for k in case_variant(case).pycls_keys]
        assert keys == [list(row) for row in data["manifest"]], case


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_design_space_case(case, library):
    """build succeeds exactly where the real library built the model, with the same meaning, and
    refuses exactly where it could not."""
    variant, want = case_variant(case), CASE_TARGETS[case][library]
    got = build_or_refusal(library, variant)
    if "cannot" in want:
        assert isinstance(got, Refused), f"{library} built {got} where it cannot: {want['cannot']}"
        return
    assert isinstance(got, Built), f"{library} refused ({got}) where it built {want['call']}"
    check_text(library, got, variant)
    if library in ("mmdet", "mmpretrain"):
        assert mm_text_meaning(library, got) == mm_gt_meaning(library, want["call"])
    else:
        assert call_meaning(got.text) == call_meaning(want["call"])


# --- the zoo: 36 models, and the same structures under no zoo name --------------------------------


def _zoo_expectation(name: str, library: str):
    """(expressible, the GT meaning) for a zoo model from the GT files."""
    if library in ("mmdet", "mmpretrain"):
        entry = MM_TARGETS[name][library]
        if not entry["structure_matches"]:
            return False, None
        kwargs = entry["kwargs"]
        backbone = kwargs["backbone"] if library == "mmpretrain" else {"type": entry["class"].split(".")[-1], **kwargs}
        return True, mm_meaning(library, backbone)
    entry = ZOO_TARGETS[name][library]
    return entry["structure_matches"], call_meaning(entry["builder"])


def _meaning(library: str, built: Built) -> dict:
    return mm_text_meaning(library, built) if library in ("mmdet", "mmpretrain") else call_meaning(built.text)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", sorted(registry_for().variants))
def test_zoo(name, library):
    """Each zoo model builds as the GT's chosen builder (the variant file's note kept), or is refused
    where the library has no such model (RegNetY in mm: no SE)."""
    variant = registry_for().variants[name]
    expressible, meaning = _zoo_expectation(name, library)
    got = build_or_refusal(library, variant)
    if not expressible:
        assert isinstance(got, Refused)
        return
    assert isinstance(got, Built), got
    check_text(library, got, variant)
    assert _meaning(library, got) == meaning
    assert got.note == variant.library(library).get("note", "")


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", sorted(registry_for().variants))
def test_zoo_fine_tuned_to_10_classes(name, library):
    variant = replaced(registry_for().variants[name], num_classes=10)
    got = build_or_refusal(library, variant)
    if isinstance(got, Refused):
        assert not _zoo_expectation(name, library)[0]
        return
    check_text(library, got, variant)  # calls: num_classes=10 at the top; mm dicts: no classes
    if library in ("mmdet", "mmpretrain"):
        assert got == build(library_named(library), registry_for().variants[name])


def _gt_calls(name: str, library: str) -> list[tuple[str, bool]]:
    entry = ZOO_TARGETS[name][library]
    return [(entry["builder"], entry["structure_matches"])] + [(a["builder"], a["structure_matches"]) for a in entry["alternatives"]]


REGNETS = sorted(n for n, v in registry_for().variants.items() if v.family == "regnet")


@pytest.mark.parametrize("name", REGNETS)
def test_regnet_numbers_as_timm_and_torchvision_compute_them(name):
    """The zoo's RegNet numbers under no zoo name, so the library's rule decides: timm's float32
    widths give pycls's stages for all 24 (its RegNetCfg call matched), and torchvision's
    from_init_params (float32, _make_divisible) is used exactly where the GT measured it matching;
    elsewhere pycls's per-stage lists, as the GT's matching BlockParams call."""
    anonymous = replaced(registry_for().variants[name], zoo="", libraries={})
    timm_cfg = [c for c, ok in _gt_calls(name, "timm") if "RegNetCfg" in c and ok]
    assert call_meaning(build(library_named("timm"), anonymous).text) == call_meaning(timm_cfg[0])

    calls = _gt_calls(name, "torchvision")
    from_init = [ok for c, ok in calls if "from_init_params" in c]
    want = next(c for c, ok in calls if ok and ("from_init_params" in c) == from_init[0] and "BlockParams" in c)
    got = build(library_named("torchvision"), anonymous)
    assert call_meaning(got.text) == call_meaning(want)
    assert bool(got.note) == (not from_init[0])  # the note says from_init_params was not used


@pytest.mark.parametrize("library", ["mmdet", "mmpretrain"])
@pytest.mark.parametrize("name", sorted(n for n, v in registry_for().variants.items() if v.family in ("regnet", "resnet")))
def test_mm_from_numbers_alone(name, library):
    """mm's RegNet and ResNet decisions hold without the variant file's builder."""
    anonymous = replaced(registry_for().variants[name], zoo="", libraries={})
    expressible, meaning = _zoo_expectation(name, library)
    got = build_or_refusal(library, anonymous)
    assert isinstance(got, Built) == expressible
    if expressible:
        assert mm_text_meaning(library, got) == meaning


@pytest.mark.parametrize("name", sorted(n for n, v in registry_for().variants.items() if v.family in ("resnet", "effnet")))
@pytest.mark.parametrize("library", ["timm", "torchvision"])
def test_resnets_and_effnets_from_numbers_alone(name, library):
    """timm's and torchvision's ResNet and EfficientNet rules reproduce the GT's builder from the
    numbers (a named builder where the library has one of this structure)."""
    anonymous = replaced(registry_for().variants[name], zoo="", libraries={})
    got = build(library_named(library), anonymous)
    expressible, meaning = _zoo_expectation(name, library)
    assert expressible
    if anonymous.family == "resnet":
        assert call_meaning(got.text) == meaning
    else:  # the GT's named efficientnet_bN; from the numbers: the class with pycls's per-stage numbers
        assert call_meaning(got.text)["()"] in ("timm.models.efficientnet.EfficientNet", "torchvision.models.EfficientNet")


# numbers where torch's float32 and pycls's float64 differ (w0 * wm = 120 * 2.1: 252.00000000000003 in
# float64, 251.99998 in float32; 252 / 8 = 31.5 rounds either way), and two where they agree
FLOAT32_NUMBERS = [(29, 120, 37.4, 2.1), (16, 120, 53.0, 2.1), (30, 120, 46.4, 2.1), (26, 120, 46.3, 2.1), (14, 40, 30.0, 2.3), (13, 24, 36.44, 2.49)]


@pytest.mark.parametrize("numbers", FLOAT32_NUMBERS)
def test_regnet_widths_in_torch_float32(numbers):
    """No GT case separates float32 from float64, so torch itself computes the per-block widths the
    way facts.json says timm's generate_regnet and torchvision's from_init_params do (torch's default
    float32). With group_w 8 and bot_mul 1 both libraries' group adjustment leaves multiples of 8 as
    they are, so these widths alone decide: timm (4 stages) and from_init_params reproduce pycls
    exactly where torch's stages are pycls's. Arithmetic only: no model is built."""
    torch = pytest.importorskip("torch")
    depth, w0, wa, wm = numbers
    cont = torch.arange(depth) * wa + w0
    k = torch.round(torch.log(cont / w0) / math.log(wm))
    widths = (torch.round(torch.divide(w0 * torch.pow(wm, k), 8)) * 8).int().tolist()
    stages = sorted(set(widths))
    variant = parse_variant({"variant": {"name": "custom", "num_classes": 10}, "regnet": dict(depth=depth, w0=w0, wa=wa, wm=wm, group_w=8)})
    assert len(stages) == len(variant.depths) == 4
    same = (stages, [widths.count(w) for w in stages]) == (list(variant.widths), list(variant.depths))
    assert isinstance(build_or_refusal("timm", variant), Built) == same
    assert ("from_init_params" in build(library_named("torchvision"), variant).text) == same
    assert same == ((w0, wm) != (120, 2.1))  # the data exercise both branches: the four 120 x 2.1 models differ


# --- the interface ------------------------------------------------------------------------------


def test_an_unknown_library_names_the_known_ones():
    with pytest.raises(TableError) as e:
        library_named("keras")
    assert all(name in e.value.fix for name in LIBRARIES)


def test_a_library_without_the_family_is_refused_naming_the_ones_with_it():
    """pycls's own layout builds nothing through a library: asked to, it names the libraries that
    build the model (the GT built resnet50 in all four)."""
    with pytest.raises(Refused) as e:
        build(library_named("pycls"), registry_for().variants["resnet50"])
    assert all(f"{lib} (" in e.value.fix for lib in LIBRARIES)


def test_refusals_name_the_targets_that_can():
    """regnetx_stride1: the design-space GT built it in torchvision, mmdet and mmpretrain, not timm."""
    with pytest.raises(Refused) as e:
        build(library_named("timm"), case_variant("regnetx_stride1"))
    built = [lib for lib in LIBRARIES if "call" in CASE_TARGETS["regnetx_stride1"][lib]]
    assert built == ["torchvision", "mmdet", "mmpretrain"]
    assert all(f"{lib} (" in e.value.fix for lib in built)
