"""A checkpoint's structure: the numbers its model was built from, out of its pycls cfg, a ckptconv
meta, or its tensors' shapes, and the name it goes by (a zoo model's, or a descriptive one).

- ``from_cfg``: pycls 0.1.1's own meaning of every field its model builders read (``MODEL.TYPE``
  anynet / regnet / resnet / effnet, ``MODEL.DEPTH``, ``MODEL.NUM_CLASSES``, ``ANYNET.*``, ``REGNET.*``,
  ``RESNET.*``, ``EN.*``, ``BN.EPS``, ``TRAIN.DATASET``, the image sizes) in a cfg read as pycls
  reads it (``io/pycls_cfg``: its defaults for what a partial cfg leaves out); an error names the
  cfg's own key;
- ``from_shapes``: what the tensors tell (stages, depths, widths, groups, kernels, SE widths,
  classes), and what they cannot (strides, where the stride sits, a 3x3 stem's stride, BN eps),
  which is taken as pycls's zoo takes it and listed in ``Variant.assumed``;
- ``named``: the zoo variant whose structure it is (its name, test sizes and library builders; a
  fine-tuned head or another BN eps kept), else a descriptive name.
torch-free.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import FormatError, MappingError
from ..fields import Fields, describe
from ..io.pycls_cfg import model_types, read_cfg
from .variants import Variant, parse_variant, replaced

RESNET_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}  # models/resnet.py's _IN_STAGE_DS
# a model's numbers by the name a pycls cfg gives each (``[variant].eps`` is the cfg's BN.EPS)
CFG_NAMES = {"[variant].num_classes": "MODEL.NUM_CLASSES", "[variant].eps": "BN.EPS", "[variant].im_size": "TRAIN.IM_SIZE",
             "[variant].test_size": "TEST.IM_SIZE", "[en]": "EN", "[regnet]": "REGNET", "[anynet]": "ANYNET"}


def cfg_name(internal: str) -> str:
    """The pycls cfg key a model's number comes from (``[anynet].bot_muls.1`` -> ``ANYNET.BOT_MULS[1]``)."""
    if internal in CFG_NAMES:
        return CFG_NAMES[internal]
    section, _, rest = internal.partition(".")
    key, _, index = rest.partition(".")
    name = f"{CFG_NAMES.get(section, section)}.{key.upper()}" if key else CFG_NAMES.get(section, section)
    return f"{name}[{index}]" if index else name


def read(cfg: Any, where: str) -> dict[str, Any] | None:
    """A pycls cfg (YAML text, or a mapping) over pycls's defaults, as pycls reads it; None for none."""
    return None if cfg is None else read_cfg(cfg, where)


def model_type(c: dict[str, Any], where: str) -> str:
    """The cfg's MODEL.TYPE ("" when blank or None: a model built in code, which says nothing)."""
    kind = c["MODEL"]["TYPE"]
    if kind is None or (isinstance(kind, str) and not kind):
        return ""
    if kind not in model_types():
        raise FormatError(f"{where} says MODEL.TYPE: {describe(kind)}; pycls 0.1.1 builds {', '.join(model_types())} (lower case)",
                          fix="convert a checkpoint of one of those models")
    return kind


def _head(c: dict[str, Any], name: str) -> dict[str, Any]:
    return {"name": name, "num_classes": c["MODEL"]["NUM_CLASSES"], "eps": c["BN"]["EPS"],
            "im_size": c["TRAIN"]["IM_SIZE"], "test_size": c["TEST"]["IM_SIZE"]}


def _lower(section: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k.lower(): section[k] for k in keys}


def _anynet_numbers(a: dict[str, Any]) -> dict[str, Any]:
    out = _lower(a, ("STEM_TYPE", "STEM_W", "BLOCK_TYPE", "DEPTHS", "WIDTHS", "STRIDES"))
    if a["BLOCK_TYPE"] == "res_bottleneck_block":
        out |= {"bot_muls": a["BOT_MULS"], "group_ws": a["GROUP_WS"], "se_r": a["SE_R"] if a["SE_ON"] else 0.0}
    return out


def _resnet_numbers(c: dict[str, Any]) -> dict[str, Any]:
    """models/resnet.py as an AnyNet: CIFAR (TRAIN.DATASET names cifar) or ImageNet, pycls's rules."""
    depth, r = c["MODEL"]["DEPTH"], Fields(c["RESNET"], "RESNET", FormatError)
    cifar = "cifar" in str(c["TRAIN"]["DATASET"])
    trans = r.text("TRANS_FUN")
    if trans != ("basic_transform" if cifar else "bottleneck_transform"):
        raise FormatError(f"RESNET.TRANS_FUN is {trans} on {'CIFAR' if cifar else 'ImageNet'}; pycls's models/resnet.py builds "
                          f"{'basic_transform' if cifar else 'bottleneck_transform'} there only")
    if cifar:
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
            raise FormatError(f"MODEL.DEPTH {depth!r} is no CIFAR ResNet depth (6n + 2); pycls cannot build it")
        d = (depth - 2) // 6
        return {"stem_type": "res_stem_cifar", "stem_w": 16, "block_type": "res_basic_block", "depths": [d] * 3, "widths": [16, 32, 64], "strides": [1, 2, 2]}
    if depth not in RESNET_DEPTHS or isinstance(depth, bool):
        raise FormatError(f"MODEL.DEPTH {depth!r} is no ImageNet ResNet depth of models/resnet.py (50, 101, 152)")
    groups, per_group = r.integer("NUM_GROUPS", lo=1, hi=4096), r.integer("WIDTH_PER_GROUP", lo=1, hi=4096)
    stride_1x1 = r.data["STRIDE_1X1"]
    if not isinstance(stride_1x1, bool):
        r.fail(f"RESNET.STRIDE_1X1 is {describe(stride_1x1)}; pycls's models/resnet.py needs True or False")
    return {"stem_type": "res_stem_in", "stem_w": 64, "block_type": "res_bottleneck_block", "depths": list(RESNET_DEPTHS[depth]),
            "widths": [256, 512, 1024, 2048], "strides": [1, 2, 2, 2], "bot_muls": [groups * per_group * 2**i / (256 * 2**i) for i in range(4)],
            "group_ws": [per_group * 2**i for i in range(4)], "se_r": 0.0, "stride_1x1": stride_1x1}


def _numbers(kind: str, c: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    if kind == "effnet":
        return "en", _lower(c["EN"], ("STEM_W", "DEPTHS", "WIDTHS", "EXP_RATIOS", "KERNELS", "STRIDES", "SE_R", "HEAD_W"))
    if kind == "regnet":
        r = c["REGNET"]
        numbers = _lower(r, ("DEPTH", "W0", "WA", "WM", "GROUP_W", "BOT_MUL", "SE_ON", "SE_R", "STEM_W", "STRIDE", "STEM_TYPE"))
        if r["BLOCK_TYPE"] != "res_bottleneck_block":
            raise FormatError(f"REGNET.BLOCK_TYPE is {describe(r['BLOCK_TYPE'])}; pycls 0.1.1's RegNet builds only res_bottleneck_block")
        return "regnet", numbers
    if kind == "resnet":
        return "anynet", _resnet_numbers(c)
    return "anynet", _anynet_numbers(c["ANYNET"])


def from_cfg(cfg: Any, where: str = "the checkpoint's cfg") -> Variant | None:
    """The model a pycls cfg describes (YAML text or a mapping, read as pycls reads it; None for a
    blank MODEL.TYPE: pycls's default when a model is built in code, which says nothing). Raises
    ``FormatError`` naming the cfg's key for a cfg pycls itself could not read or build a model from."""
    c = read(cfg, where)
    kind = model_type(c, where) if c is not None else ""
    if not kind:
        return None
    try:
        section, numbers = _numbers(kind, c)
        return parse_variant({"variant": _head(c, "custom"), section: numbers}, error=FormatError, names=cfg_name)
    except FormatError as e:
        raise FormatError(f"{where}: {e.message}", fix=e.fix or "pass the run's own config.yaml") from None


# the keys that make a model of each MODEL.TYPE (a section, or one key), besides the common ones
COMMON_KEYS = ("MODEL.TYPE", "MODEL.NUM_CLASSES", "BN.EPS", "TRAIN.IM_SIZE", "TEST.IM_SIZE")
MODEL_KEYS = {"effnet": ("EN",), "regnet": ("REGNET",), "anynet": ("ANYNET",), "resnet": ("RESNET", "MODEL.DEPTH", "TRAIN.DATASET")}


def _leaves(c: dict[str, Any], name: str) -> dict[str, Any]:
    section, _, key = name.partition(".")
    return {name: c[section][key]} if key else {f"{section}.{k}": v for k, v in c[section].items()}


def disagreements(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Where two cfgs (read as pycls reads them) state another model: ``(key, a's value, b's)``
    for each model-defining key that differs (MODEL.TYPE alone when the types differ)."""
    if a["MODEL"]["TYPE"] != b["MODEL"]["TYPE"]:
        return [("MODEL.TYPE", a["MODEL"]["TYPE"], b["MODEL"]["TYPE"])]
    names = (*COMMON_KEYS, *MODEL_KEYS.get(a["MODEL"]["TYPE"], ()))
    left = {k: v for name in names for k, v in _leaves(a, name).items()}
    right = {k: v for name in names for k, v in _leaves(b, name).items()}
    return [(k, left[k], right[k]) for k in left if left[k] != right[k]]


STEM_WORDS = {"simple_stem_in": "", "res_stem_in": "resstem", "res_stem_cifar": "cifar"}
BLOCK_WORDS = {"vanilla_block": "vanilla", "res_basic_block": "basic", "res_bottleneck_block": "bneck"}


def _regnet_name(r: dict[str, Any]) -> str:
    parts = [f"regnet{'y' if r.get('se_on') else 'x'}", f"d{r['depth']}", f"w{r['w0']}", f"wa{r['wa']:g}", f"wm{r['wm']:g}", f"g{r['group_w']}"]
    parts += [f"bm{r['bot_mul']:g}"] * (r["bot_mul"] != 1.0) + [f"s{r['stride']}"] * (r["stride"] != 2) + [STEM_WORDS[r["stem_type"]]] * (r["stem_type"] != "simple_stem_in")
    return "_".join(parts)


def _dashed(values) -> str:
    return "-".join(f"{v:g}" for v in values)


def descriptive_name(variant: Variant) -> str:
    """A name that says what the model is (at most 64 characters: the digest of its numbers ends
    one that would be longer): its RegNet numbers, or its kind, depths and widths."""
    numbers = variant.numbers()
    if variant.section == "regnet":
        name = _regnet_name(numbers)
    elif variant.section == "en":
        name = f"effnet_d{_dashed(numbers['depths'])}_w{_dashed(numbers['widths'])}"
    else:
        words = [variant.family, STEM_WORDS[numbers["stem_type"]], BLOCK_WORDS[numbers["block_type"]]]
        words += [f"se{numbers['se_r']:g}" if numbers.get("se_r") else "", "stride1x1" if "stride_1x1" in variant.features else ""]
        name = "_".join([w for w in words if w] + [f"d{_dashed(numbers['depths'])}", f"w{_dashed(numbers['widths'])}"])
    return name if len(name) <= 64 else f"{name[:55]}_{variant.digest[:8]}"


def named(variant: Variant, zoo: list[Variant]) -> Variant:
    """The zoo model the structure is (keeping classes and eps as given), else the model under its
    descriptive name and title."""
    match = next((z for z in zoo if z.structure() == variant.structure()), None)
    if match is not None:
        title = match.title + (f", fine-tuned to {variant.num_classes} classes" if variant.num_classes != match.num_classes else "")
        title += f", BN eps {variant.eps:g}" if variant.eps != match.eps else ""
        return replaced(match, title=title, num_classes=variant.num_classes, eps=variant.eps, assumed=variant.assumed)
    name = descriptive_name(variant)
    return replaced(variant, name=name, title=f"{variant.family} model {name} ({_summary(variant)})")


def _summary(v: Variant) -> str:
    n = v.numbers()
    if v.section == "en":
        return f"depths {n['depths']}, widths {n['widths']}, {v.num_classes} classes"
    if v.section == "regnet":
        return f"REGNET numbers, stages {list(v.depths)} x {list(v.widths)}, {v.num_classes} classes"
    return f"{n['stem_type']}, {n['block_type']}, depths {n['depths']}, widths {n['widths']}, {v.num_classes} classes"


def fit_classes(variant: Variant, classes: int | None) -> Variant:
    """The variant with the classifier the tensors hold (a fine-tuned head), if they hold one."""
    if classes is None or classes == variant.num_classes:
        return variant
    return replaced(variant, num_classes=classes, title=f"{variant.title}, fine-tuned to {classes} classes")


def check_cfg_fits(variant: Variant, shapes: dict) -> None:
    """The model the cfg describes must have the tensors' keys (a cfg of another run is an error)."""
    want = {s.key: s.shape for s in variant.pycls_keys}
    differ = [k for k, (shape, _) in shapes.items() if k in want and tuple(shape) != want[k]]
    if differ:
        k = differ[0]
        raise MappingError(f"{k}: shape {tuple(shapes[k][0])} but the model the cfg describes has {want[k]}",
                           fix="the cfg is not this checkpoint's; pass --cfg with the run's config.yaml, or --arch")


# --- from the tensors -----------------------------------------------------------------------------

Shapes = dict[str, tuple[tuple[int, ...], str]]


def _stage_blocks(shapes: Shapes) -> dict[int, list[int]]:
    """stage -> sorted block numbers, from ``sN.bM.`` keys."""
    found: dict[int, set[int]] = {}
    for key in shapes:
        m = re.match(r"s(\d+)\.b(\d+)\.", key)
        if m:
            found.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    stages = sorted(found)
    if not stages or stages != list(range(1, len(stages) + 1)) or any(sorted(b) != list(range(1, len(b) + 1)) for b in found.values()):
        raise MappingError("the tensors' sN.bM keys do not number stages and blocks from 1 without gaps", fix="pass --cfg with the run's config.yaml")
    return {s: sorted(found[s]) for s in stages}


def _shape(shapes: Shapes, key: str) -> tuple[int, ...]:
    if key not in shapes:
        raise MappingError(f"{key}: missing, so the model's structure cannot be read from the tensors", fix="pass --cfg with the run's config.yaml, or --arch")
    return tuple(shapes[key][0])


def _ratio(values: list[tuple[int, int]], fn) -> float:
    """The ratio r with fn(w, r) == got for every (w, got), rounded as a cfg would write it."""
    w, got = values[0]
    for digits in (2, 3, 4, 6):
        r = round(got / w, digits)
        if all(fn(wi, r) == gi for wi, gi in values):
            return r
    raise MappingError(f"the tensors' widths follow no single ratio ({values[:3]})", fix="pass --cfg with the run's config.yaml")


def _effnet_from_shapes(shapes: Shapes, stages: dict[int, list[int]]) -> tuple[dict, list[str]]:
    stem_w = _shape(shapes, "stem.conv.weight")[0]
    widths, exp, se, kernels, w_in = [], [], [], [], stem_w
    for s, blocks in stages.items():
        w_out = _shape(shapes, f"s{s}.b1.lin_proj.weight")[0]
        ins = [w_in] + [w_out] * (len(blocks) - 1)
        exp.append(_ratio([(i, _shape(shapes, f"s{s}.b{b}.dwise.weight")[0]) for i, b in zip(ins, blocks)], lambda w, r: int(w * r)))
        se += [(i, _shape(shapes, f"s{s}.b{b}.se.f_ex.0.weight")[0]) for i, b in zip(ins, blocks)]
        kernels.append(_shape(shapes, f"s{s}.b1.dwise.weight")[-1])
        widths.append(w_out)
        w_in = w_out
    strides = [1, 2, 2, 2, 1, 2, 1] if len(stages) == 7 else [1] + [2] * (len(stages) - 1)
    numbers = {"stem_w": stem_w, "depths": [len(b) for b in stages.values()], "widths": widths, "exp_ratios": exp, "kernels": kernels,
               "strides": strides, "se_r": _ratio(se, lambda w, r: int(w * r)), "head_w": _shape(shapes, "head.conv.weight")[0]}
    return numbers, [f"strides {strides} (the tensors do not show them; pycls's zoo EfficientNets stride so)"]


def _block_type(shapes: Shapes) -> str:
    if "s1.b1.f.c.weight" in shapes:
        return "res_bottleneck_block"
    return "res_basic_block" if "s1.b1.f.a.weight" in shapes else "vanilla_block"


def _anynet_strides(shapes: Shapes, stages: dict[int, list[int]], widths: list[int], stem: str) -> tuple[list[int], list[str]]:
    """A stage's stride shows where its width does not change (a projection means stride 2);
    elsewhere it is assumed as pycls's zoo has it."""
    strides, unknown, w_in = [], [], _shape(shapes, "stem.conv.weight")[0]
    for s, w_out in zip(stages, widths):
        proj = f"s{s}.b1.proj.weight" in shapes
        if w_in == w_out:
            strides.append(2 if proj else 1)
        else:
            strides.append(1 if s == 1 and stem != "simple_stem_in" else 2)
            unknown.append(s)
        w_in = w_out
    words = [f"stage strides {strides} (stages {unknown} change width, so the tensors do not show their stride)"] if unknown else []
    return strides, words


def _anynet_from_shapes(shapes: Shapes, stages: dict[int, list[int]]) -> tuple[dict, list[str]]:
    conv = _shape(shapes, "stem.conv.weight")
    stem = "res_stem_in" if conv[-1] == 7 else "simple_stem_in"
    block = _block_type(shapes)
    out_key = {"res_bottleneck_block": "f.c", "res_basic_block": "f.b", "vanilla_block": "b"}[block]
    widths = [_shape(shapes, f"s{s}.b1.{out_key}.weight")[0] for s in stages]
    strides, assumed = _anynet_strides(shapes, stages, widths, stem)
    if stem == "simple_stem_in":
        assumed.append("the 3x3 stem strides 2 (simple_stem_in; res_stem_cifar has the same tensors and strides 1)")
    numbers = {"stem_type": stem, "stem_w": conv[0], "block_type": block, "depths": [len(b) for b in stages.values()], "widths": widths, "strides": strides}
    if block == "res_bottleneck_block":
        w_b = [_shape(shapes, f"s{s}.b1.f.a.weight")[0] for s in stages]
        se = [(i, _shape(shapes, f"s{s}.b{b}.f.se.f_ex.0.weight")[0]) for s, blocks in stages.items() for i, b in ((widths[s - 2] if s > 1 else conv[0], 1),)
              if f"s{s}.b1.f.se.f_ex.0.weight" in shapes]
        numbers |= {"bot_muls": [b / w for b, w in zip(w_b, widths)], "group_ws": [_shape(shapes, f"s{s}.b1.f.b.weight")[1] for s in stages],
                    "se_r": _ratio(se, lambda w, r: int(round(w * r))) if se else 0.0, "stride_1x1": False}
        if stem == "res_stem_in" and any(strides):
            assumed.append("the stride on the 3x3, as pycls's AnyNet (models/resnet.py strides the first 1x1 by default, RESNET.STRIDE_1X1)")
    return numbers, assumed


def from_shapes(shapes: Shapes) -> Variant:
    """The model a pycls state dict's tensors describe; what they cannot tell is taken as pycls's
    zoo takes it and listed in ``assumed`` (BN eps 1e-5, strides, where the stride sits)."""
    stages = _stage_blocks(shapes)
    classes = _shape(shapes, "head.fc.weight")[0] if "head.fc.weight" in shapes else None
    if "s1.b1.dwise.weight" in shapes:
        section, (numbers, assumed) = "en", _effnet_from_shapes(shapes, stages)
    else:
        section, (numbers, assumed) = "anynet", _anynet_from_shapes(shapes, stages)
    head = {"name": "custom", "num_classes": classes or 1000, "eps": 1e-5}
    variant = parse_variant({"variant": head, section: numbers}, error=MappingError)
    assumed.append("BN eps 1e-5 (pycls's default; the tensors do not show it)")
    assumed += [] if classes else ["1000 classes (the file holds no classifier)"]
    return replaced(variant, assumed=tuple(assumed))
