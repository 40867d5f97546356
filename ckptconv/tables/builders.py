"""How timm, torchvision, MMDetection and mmpretrain build a pycls model through their public API.

``build(kind, variant)`` gives the Python (timm, torchvision: a call) or the backbone dict body
(mmdet, mmpretrain) that builds exactly the variant's structure, or raises ``Refused`` saying what
the library's class cannot express and which target can. A zoo model keeps its variant file's
``[libraries.<library>]`` builder (and note); any other model is built from its numbers. Every
decision is the library's own rule applied to those numbers (tests/data/design_space/facts.json,
``libraries``), never a lookup of known models:

- timm RegNet derives its stages from (depth, w0, wa, wm) in torch float32 (pycls: float64) and
  asserts 4 stride-2 stages; torchvision's ``BlockParams.from_init_params`` computes in float32 too,
  rounds bottleneck widths with ``_make_divisible`` (half up; pycls rounds half to even) and always
  strides 2, while ``BlockParams(...)`` takes pycls's per-stage lists as they are; mm RegNet uses
  pycls's own float64 rule but builds mid = planes in a one-group stage (bot_mul ignored);
- the ResNet classes have fixed patterns: timm a 64-wide stem, strides 1, 2, 2, ..., at most 4
  stages, any stage widths; torchvision 4 stages of 64..512 x expansion; mm doubles
  base_channels x expansion per stage (mmpretrain's expansion free, mmdet's 4), depths from
  arch_settings only; the groups and width per group follow from pycls's bottleneck widths;
- EfficientNet: timm rounds mid_chs = make_divisible(in * e) with no setting, rounds SE widths
  (rd_round_fn, settable) and dilates past output stride 32; torchvision rounds every channel count
  to a multiple of 8 and fixes SE at in // 4; mm builds its named archs only (pycls's b0..b5).

Nothing here sets BN eps, padding (mm ``conv_cfg``) or out_indices: the caller does. torch-free.
"""

from __future__ import annotations

import ast
import math
import struct
from dataclasses import dataclass

from ..errors import Refused, UsageError
from .variants import AnyNet, EffNet, Variant

LIBRARIES = ("timm", "torchvision", "mmdet", "mmpretrain")
ARCHES = {"efficientnet": "effnet", "regnet": "regnet", "resnet": "resnet"}  # kind suffix -> Variant.family
KINDS = tuple(f"{library}-{arch}" for library in LIBRARIES for arch in ARCHES)
MM = ("mmdet", "mmpretrain")
DEFAULT_CLASSES = 1000  # every named builder's and create_model's default classifier


@dataclass(frozen=True)
class Built:
    """How a library builds a model: ``text`` is a Python call (``kind`` "call": timm, torchvision)
    or the body of an mm backbone dict (``kind`` "dict"); ``name`` is timm's registered model name
    when the text is ``timm.create_model(name, ...)``; ``note`` one line when the library's
    same-named builder is another model."""

    text: str
    kind: str
    name: str = ""
    note: str = ""


class _Cannot(Exception):
    """What the library's class cannot express, in one line; ``build`` adds the alternatives."""


def build(kind: str, variant: Variant) -> Built:
    """How the library of ``kind`` builds this model through its public API, from its numbers; raises
    Refused(what cannot be expressed and why, fix=the nearest alternative: another target, or a setting) when it cannot."""
    library, arch = _split(kind)
    try:
        return _build(library, arch, variant)
    except _Cannot as e:
        raise Refused(str(e), fix=_alternatives(kind, variant)) from None


def _split(kind: str) -> tuple[str, str]:
    if kind not in KINDS:
        raise UsageError(f"unknown builder kind {kind!r}", fix=f"use one of {', '.join(KINDS)}")
    library, _, arch = kind.partition("-")
    return library, arch


def _build(library: str, arch: str, v: Variant) -> Built:
    """Zoo builder if the variant file has one, else the library's class from the numbers."""
    if v.family == "anynet":
        raise _Cannot(_anynet_reason(library, v))
    if v.family != ARCHES[arch]:
        raise _Cannot(f"{v.title} is a {v.family} model; {library}-{arch} builds {ARCHES[arch]} models")
    return _from_zoo(library, v) or _FROM_NUMBERS[library, arch](library, v)


def _alternatives(kind: str, v: Variant) -> str:
    """The targets that do build the model (the fix a refusal names)."""
    found = []
    for other in KINDS:
        library, arch = other.partition("-")[::2]
        if other == kind or ARCHES[arch] != v.family:
            continue
        try:
            found.append(f"{library} ({_short(_build(library, arch, v))})")
        except _Cannot:
            pass
    if not found:
        return "keep the pycls layout (no other library's class builds this model)"
    return f"convert to {' or '.join(found)} instead, or keep the pycls layout"


def _short(built: Built) -> str:
    """``RegNet(BlockParams)``, ``regnety_008``, ``ResNet_CIFAR``: what a target builds, in a word."""
    if built.kind == "dict":
        return ast.literal_eval(ast.parse(f"dict({built.text})", mode="eval").body.keywords[0].value)
    call = ast.parse(built.text, mode="eval").body
    if built.name:
        return built.name
    outer = _dotted(call.func).split(".")[-1]
    inner = call.args[0] if call.args and isinstance(call.args[0], ast.Call) else None
    if inner is None:
        return outer
    parts = _dotted(inner.func).split(".")
    first_class = next((i for i, p in enumerate(parts) if p[:1].isupper()), len(parts) - 1)
    return f"{outer}({'.'.join(parts[first_class:])})"


def _anynet_reason(library: str, v: Variant) -> str:
    assert isinstance(v, AnyNet)
    if v.block_type == "vanilla_block":
        return f"pycls's vanilla_block has no residual connection; every {library} ResNet/RegNet block adds a shortcut"
    return (f"{v.stem_type} with {v.block_type}: {library}'s basic-block ResNet has the 7x7/2 + max-pool stem, "
            f"its RegNet bottleneck blocks only")  # fmt: skip


# --- Python text ---------------------------------------------------------------------------------


class _Code(str):
    """Python text placed as it is (a nested call, a name)."""


def _lit(x: object) -> str:
    if isinstance(x, _Code):
        return str(x)
    if isinstance(x, tuple):
        return "(" + ", ".join(map(_lit, x)) + ("," if len(x) == 1 else "") + ")"
    if isinstance(x, list):
        return "[" + ", ".join(map(_lit, x)) + "]"
    return repr(x)  # int, float (round-trips), str, bool, None


def _num(x: float) -> _Code:
    """A number as it reads: 6 for 6.0, 0.25 as 0.25 (float() of it gives x back)."""
    return _Code(str(int(x)) if float(x).is_integer() else repr(float(x)))


def _call(fn: str, *args: object, **kwargs: object) -> _Code:
    return _Code(f"{fn}({', '.join([*map(_lit, args), *(f'{k}={_lit(v)}' for k, v in kwargs.items())])})")


def _body(type_: str, **kwargs: object) -> str:
    """An mm backbone dict's body: ``type='RegNet', arch=dict(...)``."""
    return ", ".join([f"type={type_!r}", *(f"{k}={_lit(v)}" for k, v in kwargs.items())])


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _is_named(func: ast.AST) -> bool:
    """A named builder (``timm.create_model``, ``torchvision.models.resnet50``), not a class."""
    return _dotted(func).split(".")[-1][:1].islower()


def _classes(named: bool, n: int) -> dict[str, int]:
    """``num_classes`` for a call: always for a class, for a named builder when not its 1000."""
    return {"num_classes": n} if n != DEFAULT_CLASSES or not named else {}


def _with_classes(text: str, n: int) -> str:
    """A variant file's call with the model's classes (the file's builders build 1000)."""
    tree = ast.parse(text, mode="eval")
    call = tree.body
    if not isinstance(call, ast.Call):
        raise UsageError(f"the variant file's builder {text!r} is not a call")
    call.keywords = [k for k in call.keywords if k.arg != "num_classes"]
    call.keywords += [ast.keyword(arg=k, value=ast.Constant(v)) for k, v in _classes(_is_named(call.func), n).items()]
    return ast.unparse(tree)


def _created(text: str) -> str:
    """The model name of a ``timm.create_model('name', ...)`` text, else ""."""
    call = ast.parse(text, mode="eval").body
    if isinstance(call, ast.Call) and _dotted(call.func) == "timm.create_model" and call.args and isinstance(call.args[0], ast.Constant):
        return str(call.args[0].value)
    return ""


def _from_zoo(library: str, v: Variant) -> Built | None:
    """A zoo model: its variant file's builder or timm name (and note), with its classes."""
    entry = v.library(library) if v.zoo else {}
    builder, name, note = entry.get("builder", ""), entry.get("name", ""), entry.get("note", "")
    if library in MM:
        return Built(builder, "dict", "", note) if builder else None
    if library == "timm" and name and (not builder or _created(builder) == name):
        return Built(_call("timm.create_model", name, **_classes(True, v.num_classes)), "call", name, note)
    if builder:
        text = _with_classes(builder, v.num_classes)
        return Built(text, "call", _created(text), note)
    return None


# --- the libraries' rounding rules ---------------------------------------------------------------


def _f32(x: float) -> float:
    """x rounded to float32, as torch's default dtype holds every intermediate."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _make_divisible(v: float, divisor: int = 8) -> int:
    """timm's make_divisible and torchvision's _make_divisible: nearest multiple (half up), at least
    ``divisor``, never more than 10% below v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _block_widths_f32(r: dict) -> list[int]:
    """Per-block widths from (depth, w0, wa, wm) as timm's generate_regnet and torchvision's
    from_init_params compute them: torch float32 (arange * wa + w0, log ratio, round half to even,
    w0 * wm ** k, round to a multiple of 8); the Python scalars enter as float32."""
    w0, wa, wm, log_wm = _f32(r["w0"]), _f32(r["wa"]), _f32(r["wm"]), _f32(math.log(r["wm"]))
    out = []
    for j in range(r["depth"]):
        cont = _f32(_f32(_f32(j) * wa) + w0)
        k = round(_f32(_f32(math.log(_f32(cont / w0))) / log_wm))
        out.append(int(round(_f32(_f32(w0 * _f32(wm**k)) / 8)) * 8))
    return out


def _runs(widths: list[int]) -> tuple[list[int], list[int]]:
    """(depths, widths) of the runs of equal widths: the stages (the widths never decrease)."""
    depths, stage_widths = [], []
    for w in widths:
        if stage_widths and stage_widths[-1] == w:
            depths[-1] += 1
        else:
            stage_widths.append(w)
            depths.append(1)
    return depths, stage_widths


def _float32_stages(r: dict, round_bottleneck) -> tuple[list[int], list[int], list[int]]:
    """(depths, widths, group widths) from float32 block widths, each stage's bottleneck width made
    compatible with its group (capped at the bottleneck width) by ``round_bottleneck(w_bot, g)``."""
    depths, widths = _runs(_block_widths_f32(r))
    bm, groups, final = r["bot_mul"], [], []
    for w in widths:
        w_bot = int(w * bm)
        g = min(r["group_w"], w_bot)
        groups.append(g)
        final.append(int(round_bottleneck(w_bot, g) / bm))
    return depths, final, groups


def _timm_regnet_stages(r: dict) -> tuple[list[int], list[int], list[int]]:
    """timm's RegNet (adjust_widths_groups_comp): the bottleneck rounded half to even to a multiple of the group."""
    return _float32_stages(r, lambda w_bot, g: int(round(w_bot / g) * g))


def _torchvision_regnet_stages(r: dict) -> tuple[list[int], list[int], list[int]]:
    """``BlockParams.from_init_params`` (_adjust_widths_groups_compatibilty): made divisible by the group, half up."""
    return _float32_stages(r, _make_divisible)


def _pycls_stages(v: AnyNet) -> tuple[list[int], list[int], list[int]]:
    return list(v.depths), list(v.widths), list(v.group_ws)


def _first_blocks(v: AnyNet) -> list:
    return [b for b in v.blocks if b.block == 1]


def _stride_on_1x1(v: AnyNet) -> bool:
    return "stride_1x1" in v.features


# --- EfficientNet --------------------------------------------------------------------------------

MM_EFFNETS = ("b0", "b1", "b2", "b3", "b4", "b5")  # pycls's zoo EfficientNets = mm's arch_settings of these names


def _timm_efficientnet(library: str, v: EffNet) -> Built:
    """EfficientNet(decode_arch_def(one 'ds'/'ir' string per stage)) with pycls's own widths
    (round_chs_fn=int), stem and head, SiLU; int-rounded SE only where round() would differ."""
    down = 2 * math.prod(v.strides)
    if down > 32:
        raise _Cannot(f"strides {list(v.strides)} downsample {down}x: timm's EfficientNet turns every stride past 32x into a dilation (output_stride 32)")
    for k, s in zip(v.kernels, v.strides):
        if s != 1 and k % 2 == 0:
            raise _Cannot(f"kernel {k} with stride {s}: timm pads ((stride - 1) + (k - 1)) // 2 = {(s - 1 + k - 1) // 2}, pycls (k - 1) // 2 = {(k - 1) // 2}")
    stages, se = [], []  # se: (SE input width, timm's rd_ratio, pycls's SE width)
    for s, depth in enumerate(v.depths):
        blocks = [b for b in v.blocks if b.stage == s + 1]
        expands = {b.has_expand for b in blocks}
        if len(expands) > 1:
            raise _Cannot(f"stage {s + 1} expands some blocks and not others (int(w_in * {v.exp_ratios[s]:g}) == w_in for some); timm's stage has one block type")
        e = float(_num(v.exp_ratios[s])) if expands == {True} else 1.0
        for b in blocks:
            mid = _make_divisible(b.w_in * e) if e != 1.0 else b.w_in
            if mid != b.w_exp:
                raise _Cannot(f"expanded width int({b.w_in} * {e:g}) = {b.w_exp}: timm's InvertedResidual rounds "
                              f"mid_chs = make_divisible({b.w_in} * {e:g}) = {mid} (multiples of 8), with no setting")
            se.append((mid, float(_num(v.se_r)) / e, b.w_se))
        stages.append([f"{'ir' if e != 1.0 else 'ds'}_r{depth}_k{v.kernels[s]}_s{v.strides[s]}_e{_num(e)}_c{v.widths[s]}_se{_num(v.se_r)}"])
    kwargs: dict[str, object] = {}
    if any(round(mid * ratio) != w for mid, ratio, w in se):  # SqueezeExcite's rd_round_fn defaults to round
        if any(int(mid * ratio) != w for mid, ratio, w in se):
            raise _Cannot(f"SE widths int(w_in * {v.se_r:g}): timm's SqueezeExcite gives neither round() nor int() of mid_chs * se / e for every block")
        kwargs["se_layer"] = _call("functools.partial", _Code("timm.models.efficientnet.SqueezeExcite"), rd_round_fn=_Code("int"))
    text = _call("timm.models.efficientnet.EfficientNet", block_args=_call("timm.models.efficientnet.decode_arch_def", stages),
                 num_classes=v.num_classes, stem_size=v.stem_w, fix_stem=True, num_features=v.head_w, round_chs_fn=_Code("int"),
                 act_layer=_Code("torch.nn.SiLU"), **kwargs)  # fmt: skip
    return Built(text, "call")


def _torchvision_efficientnet(library: str, v: EffNet) -> Built:
    """EfficientNet([MBConvConfig(e, k, s, in, out, n) per stage], last_channel=head): every channel
    count must survive _make_divisible(c, 8) and every SE width be max(1, in // 4)."""
    off = [c for c in (v.stem_w, *v.widths) if _make_divisible(c) != c]
    if off:
        raise _Cannot(f"channels {off}: MBConvConfig rounds every channel count with _make_divisible(c, 8) ({off[0]} -> {_make_divisible(off[0])})")
    for b in v.blocks:
        e = v.exp_ratios[b.stage - 1]
        if _make_divisible(b.w_in * e) != b.w_exp:
            raise _Cannot(f"expanded width int({b.w_in} * {e:g}) = {b.w_exp}: torchvision's MBConv rounds it to "
                          f"_make_divisible({b.w_in} * {e:g}, 8) = {_make_divisible(b.w_in * e)}")
        if max(1, b.w_in // 4) != b.w_se:
            raise _Cannot(f"EN.SE_R {v.se_r:g}: torchvision's MBConv fixes the SE width at max(1, input_channels // 4) "
                          f"(ratio 0.25; s{b.stage}.b{b.block} has {b.w_se}, not {max(1, b.w_in // 4)})")
    configs, w_in = [], v.stem_w
    for s, depth in enumerate(v.depths):
        configs.append(_call("torchvision.models.efficientnet.MBConvConfig", _num(v.exp_ratios[s]), v.kernels[s], v.strides[s], w_in, v.widths[s], depth))
        w_in = v.widths[s]
    # dropout: torchvision requires it; no weights, no effect in eval (0.2 is its own B0's)
    return Built(_call("torchvision.models.EfficientNet", configs, dropout=0.2, num_classes=v.num_classes, last_channel=v.head_w), "call")


def _mm_efficientnet(library: str, v: EffNet) -> Built:
    if v.zoo in MM_EFFNETS:
        return Built(_body("EfficientNet", arch=v.zoo), "dict")
    raise _Cannot(f"{library}'s EfficientNet builds only its arch_settings (b0..b8, es/em/el) scaled from one fixed layer table; "
                  f"this model is none of pycls's {MM_EFFNETS[0]}..{MM_EFFNETS[-1]} (arch takes those names only, no per-stage lists; "
                  f"a variant file that is one of its archs says so in [libraries.{library}] builder)")  # fmt: skip


# --- RegNet (simple_stem_in + bottleneck blocks) ---------------------------------------------------


def _per_stage(library: str, how: str) -> _Cannot:
    return _Cannot(f"AnyNet per-stage numbers: {library}'s RegNet {how} derives stage depths and widths from (depth, w0, wa, wm) only; "
                   f"it has no per-stage depth/width/stride/group lists")  # fmt: skip


def _timm_regnet(library: str, v: AnyNet) -> Built:
    """RegNet(RegNetCfg(depth, w0, wa, wm, group_size, ...)) where timm's float32 stages are pycls's."""
    r = v.regnet
    if r is None:
        raise _per_stage(library, "(RegNetCfg)")
    if r["stride"] != 2:
        raise _Cannot(f"REGNET.STRIDE {r['stride']}: timm RegNet strides every stage by 2 (output_stride only turns later strides into dilations)")
    timm = _timm_regnet_stages(r)
    if len(timm[0]) != 4:
        raise _Cannot(f"{len(timm[0])} stages: timm RegNet.__init__ asserts exactly 4 stages")
    if timm != _pycls_stages(v):
        raise _Cannot(f"timm computes the widths in float32: stages (depths, widths, group sizes) {timm}, where pycls's float64 gives {_pycls_stages(v)}")
    cfg: dict[str, object] = dict(depth=r["depth"], w0=r["w0"], wa=r["wa"], wm=r["wm"], group_size=r["group_w"])
    cfg |= {"bottle_ratio": r["bot_mul"]} if r["bot_mul"] != 1.0 else {}
    cfg |= {"se_ratio": v.se_r} if v.se_r else {}
    cfg |= {"stem_width": v.stem_w} if v.stem_w != 32 else {}
    return Built(_call("timm.models.regnet.RegNet", _call("timm.models.regnet.RegNetCfg", **cfg), num_classes=v.num_classes), "call")


def _torchvision_regnet(library: str, v: AnyNet) -> Built:
    """RegNet(BlockParams.from_init_params(...)) where torchvision's rule gives pycls's stages, else
    RegNet(BlockParams(pycls's per-stage lists)), which takes any stages and strides."""
    r, note = v.regnet, ""
    se = {"se_ratio": v.se_r} if v.se_r else {}
    stem = {"stem_width": v.stem_w} if v.stem_w != 32 else {}
    if r is not None:
        params = dict(depth=r["depth"], w_0=r["w0"], w_a=r["wa"], w_m=r["wm"], group_width=r["group_w"], bottleneck_multiplier=r["bot_mul"], **se)
        derived = _torchvision_regnet_stages(r)
        if r["stride"] == 2 and derived == _pycls_stages(v):
            block_params = _call("torchvision.models.regnet.BlockParams.from_init_params", **params)
            return Built(_call("torchvision.models.RegNet", block_params, num_classes=v.num_classes, **stem), "call")
        why = "always strides 2" if r["stride"] != 2 else f"makes other stages (depths, widths, group widths {derived})"
        note = f"torchvision.models.regnet.BlockParams.from_init_params() of these numbers {why}: built from pycls's per-stage numbers instead"
    block_params = _call("torchvision.models.regnet.BlockParams", depths=list(v.depths), widths=list(v.widths), group_widths=list(v.group_ws),
                         bottleneck_multipliers=[float(m) for m in v.bot_muls], strides=list(v.strides), **se)  # fmt: skip
    return Built(_call("torchvision.models.RegNet", block_params, num_classes=v.num_classes, **stem), "call", note=note)


def _mm_regnet(library: str, v: AnyNet) -> Built:
    """type='RegNet', arch=dict(...): mm's widths rule is pycls's own (numpy float64, quantize_float),
    so its stages are the variant's; its blocks are ResNeXt bottlenecks of expansion 1 with
    groups = round(w * bot_mul) // group_w and mid = floor(w * group_w / w) * groups, but mid = w in one group."""
    if v.se_r:
        raise _no_se(library)
    r = v.regnet
    if r is None:
        raise _per_stage(library, "takes arch=dict(w0, wa, wm, group_w, depth, bot_mul) and")
    n = v.stages
    if n > 4:
        raise _Cannot(f"{n} stages: {library}'s RegNet asserts num_stages <= 4")
    for b, w, gw in zip(_first_blocks(v), v.widths, v.group_ws):
        groups = int(round(w * r["bot_mul"])) // gw
        mid = w if groups == 1 else math.floor(w * (gw / w)) * groups
        if (mid, groups) != (b.w_b, b.groups):
            raise _Cannot(f"stage {b.stage}: pycls's bottleneck is {b.w_b} wide in {b.groups} group(s); {library}'s RegNet builds {mid} in {groups}"
                          + (" (one group: mid = planes = w, bot_mul ignored)" if groups == 1 else ""))  # fmt: skip
    arch = _call("dict", w0=r["w0"], wa=r["wa"], wm=r["wm"], group_w=r["group_w"], depth=r["depth"], bot_mul=r["bot_mul"])
    kwargs: dict[str, object] = {"stem_channels": v.stem_w} if v.stem_w != 32 else {}
    if n != 4 or r["stride"] != 2:  # both must have num_stages entries
        kwargs |= {"strides": tuple(v.strides), "dilations": (1,) * n}
    return Built(_body("RegNet", arch=arch, **kwargs), "dict")


def _no_se(library: str) -> _Cannot:
    return _Cannot(f"SE: {library}'s RegNet and ResNet have no squeeze-and-excitation after the 3x3 (its ResNet plugins and SEResNet put "
                   f"attention elsewhere)")  # fmt: skip


# --- ResNet (7x7 or CIFAR stem, basic or bottleneck blocks) ---------------------------------------

MM_DEPTHS = {"res_basic_block": ((18, (2, 2, 2, 2)), (34, (3, 4, 6, 3))),
             "res_bottleneck_block": ((50, (3, 4, 6, 3)), (101, (3, 4, 23, 3)), (152, (3, 8, 36, 3)))}  # arch_settings  # fmt: skip
# (block, depths, groups, width per group) -> the named builder: the library's ResNet class with them
TIMM_RESNETS = {
    ("res_basic_block", (2, 2, 2, 2), 1, 64): "resnet18", ("res_basic_block", (3, 4, 6, 3), 1, 64): "resnet34",
    ("res_bottleneck_block", (3, 4, 6, 3), 1, 64): "resnet50", ("res_bottleneck_block", (3, 4, 23, 3), 1, 64): "resnet101",
    ("res_bottleneck_block", (3, 8, 36, 3), 1, 64): "resnet152", ("res_bottleneck_block", (3, 4, 6, 3), 32, 4): "resnext50_32x4d",
    ("res_bottleneck_block", (3, 4, 23, 3), 32, 4): "resnext101_32x4d", ("res_bottleneck_block", (3, 4, 23, 3), 32, 8): "resnext101_32x8d",
    ("res_bottleneck_block", (3, 4, 23, 3), 64, 4): "resnext101_64x4d", ("res_bottleneck_block", (3, 4, 6, 3), 1, 128): "wide_resnet50_2",
    ("res_bottleneck_block", (3, 4, 23, 3), 1, 128): "wide_resnet101_2",
}  # fmt: skip
TORCHVISION_RESNETS = {key: name for key, name in TIMM_RESNETS.items() if name != "resnext101_32x4d"}
CIFAR_STEM = ("res_stem_cifar (3x3 stride-1 conv, no max-pool) has no {library} counterpart: its ResNet stem is a 7x7/2 conv + max-pool "
              "(or a deep stem), its RegNet stem a 3x3/2 conv")  # fmt: skip


def _groups(v: AnyNet) -> int | None:
    """The bottleneck's groups if every stage has the same, else None (basic blocks: 1)."""
    found = {b.groups for b in _first_blocks(v)} if v.block_type == "res_bottleneck_block" else {1}
    return found.pop() if len(found) == 1 else None


def _resnet_common(library: str, v: AnyNet) -> None:
    if v.se_r:
        raise _no_se(library) if library in MM else _Cannot(f"SE after the 3x3: {library}'s ResNet has no squeeze-and-excitation there")
    if v.stem_type == "res_stem_cifar" and library != "mmpretrain":
        raise _Cannot(CIFAR_STEM.format(library=library))


def _timm_resnet(library: str, v: AnyNet) -> Built:
    """timm's ResNet(block, layers, cardinality, base_width, channels): a 64-wide 7x7 stem, strides
    1, 2, 2, 2, at most 4 stages; Bottleneck width floor(planes * base_width / 64) * cardinality, out 4 x planes."""
    _resnet_common(library, v)
    n, bottleneck, problems = v.stages, v.block_type == "res_bottleneck_block", []
    if _stride_on_1x1(v):
        problems.append("RESNET.STRIDE_1X1 True puts the stride on the first 1x1 (a); timm's Bottleneck always strides the 3x3 (conv2)")
    if n > 4:
        problems.append(f"{n} stages: timm's ResNet builds at most 4 (make_blocks zips the stages with its 4 drop-block settings)")
    if list(v.strides) != [1, 2, 2, 2][:n]:
        problems.append(f"strides {list(v.strides)}: timm ResNet (make_blocks) strides stage 1 by 1 and every later stage by 2")
    if v.stem_w != 64:
        problems.append(f"stem width {v.stem_w}: timm ResNet's 7x7 stem is always 64 wide (ResNet.__init__: inplanes = stem_width * 2 if deep_stem else 64)")
    groups, base_width = _groups(v), 64
    channels = tuple(w // 4 if bottleneck else w for w in v.widths)
    if bottleneck and any(w % 4 for w in v.widths):
        problems.append(f"stage widths {list(v.widths)}: timm's Bottleneck outputs 4 x planes")
    elif groups is None:
        problems.append(f"groups {[b.groups for b in _first_blocks(v)]}: timm's ResNet has one cardinality for every stage")
    elif bottleneck:
        base_width = _base_width([b.w_b for b in _first_blocks(v)], channels, groups)
        if base_width is None:
            problems.append(f"bottleneck widths {[b.w_b for b in _first_blocks(v)]}: timm's Bottleneck makes floor(planes * base_width / 64) * cardinality "
                            f"with one base_width for every stage")  # fmt: skip
    if problems:
        raise _Cannot("; ".join(problems))
    name = TIMM_RESNETS.get((v.block_type, tuple(v.depths), groups, base_width)) if channels == (64, 128, 256, 512) else None
    if name:
        return Built(_call("timm.create_model", name, **_classes(True, v.num_classes)), "call", name)
    kwargs: dict[str, object] = {"cardinality": groups} if groups != 1 else {}
    kwargs |= {"base_width": base_width} if base_width != 64 else {}
    kwargs |= {"channels": channels} if channels != (64, 128, 256, 512) else {}
    block = "timm.models.resnet." + ("Bottleneck" if bottleneck else "BasicBlock")
    return Built(_call("timm.models.resnet.ResNet", block=_Code(block), layers=list(v.depths), **kwargs, num_classes=v.num_classes), "call")


def _base_width(w_bs: list[int], planes: tuple[int, ...], groups: int) -> int | None:
    """The integer base_width with floor(planes * (base_width / 64)) * groups == w_b in every stage."""
    q = w_bs[0] // groups
    for bw in range(max(1, math.ceil(64 * q / planes[0])), math.ceil(64 * (q + 1) / planes[0]) + 1):
        if all(int(math.floor(p * (bw / 64)) * groups) == w for p, w in zip(planes, w_bs)):
            return bw
    return None


def _torchvision_resnet(library: str, v: AnyNet) -> Built:
    """torchvision's ResNet(block, layers, groups, width_per_group): 4 stages of 64, 128, 256, 512 x
    expansion, stem 64, strides 1, 2, 2, 2; Bottleneck width int(planes * width_per_group / 64) * groups."""
    _resnet_common(library, v)
    if _stride_on_1x1(v):
        raise _Cannot("RESNET.STRIDE_1X1 True puts the stride on the first 1x1 (a); torchvision's Bottleneck (ResNet v1.5) strides the 3x3 (conv2)")
    n, bottleneck, problems = v.stages, v.block_type == "res_bottleneck_block", []
    if n != 4:
        problems.append(f"{n} stages: torchvision ResNet always builds layer1..layer4")
    fixed = [(256 if bottleneck else 64) * 2**i for i in range(n)]
    if list(v.widths) != fixed:
        problems.append(f"stage widths {list(v.widths)}: torchvision ResNet's are fixed at 64, 128, 256, 512 times the block expansion")
    if v.stem_w != 64:
        problems.append(f"stem width {v.stem_w}: torchvision ResNet's stem is fixed at 64")
    if list(v.strides) != [1, 2, 2, 2][:n]:
        problems.append(f"strides {list(v.strides)}: torchvision ResNet's are 1, 2, 2, 2 (replace_stride_with_dilation dilates instead)")
    groups, width = _groups(v), 64
    if groups is None:
        problems.append(f"groups {[b.groups for b in _first_blocks(v)]}: torchvision's ResNet has one groups for every stage")
    elif bottleneck and not problems:
        w_bs = [b.w_b for b in _first_blocks(v)]
        width = w_bs[0] // groups
        if any(int(64 * 2**i * (width / 64.0)) * groups != w for i, w in enumerate(w_bs)):
            problems.append(f"bottleneck widths {w_bs}: torchvision's Bottleneck makes int(planes * width_per_group / 64) * groups, doubling every stage")
    if problems:
        raise _Cannot("; ".join(problems))
    name = TORCHVISION_RESNETS.get((v.block_type, tuple(v.depths), groups, width))
    if name:
        return Built(_call(f"torchvision.models.{name}", **_classes(True, v.num_classes)), "call")
    kwargs: dict[str, object] = {"groups": groups} if groups != 1 else {}
    kwargs |= {"width_per_group": width} if width != 64 else {}
    block = _Code("torchvision.models.resnet." + ("Bottleneck" if bottleneck else "BasicBlock"))
    return Built(_call("torchvision.models.ResNet", block, list(v.depths), **kwargs, num_classes=v.num_classes), "call")


def _mm_resnet(library: str, v: AnyNet) -> Built:
    """type='ResNet' / 'ResNeXt' / 'ResNet_CIFAR' (mmpretrain: the 3x3 stride-1 stem): depth from
    arch_settings (its first num_stages stages), stage widths base_channels * expansion * 2**i (mmdet's
    expansion 4), mid = w / expansion, or in groups: mmdet floor(planes * base_width / base_channels) * groups,
    mmpretrain groups * width_per_group * (w / expansion) // base_channels; style 'caffe' strides the 1x1."""
    _resnet_common(library, v)
    n, bottleneck = v.stages, v.block_type == "res_bottleneck_block"
    if n > 4:
        raise _Cannot(f"{n} stages: {library}'s ResNet builds 1 to 4 (num_stages)")
    depth = next((d for d, ds in MM_DEPTHS[v.block_type] if list(ds[:n]) == list(v.depths)), None)
    if depth is None:
        raise _Cannot(f"depths {list(v.depths)}: {library}'s ResNet takes depth in (18, 34, 50, 101, 152) and builds arch_settings[depth] blocks "
                      f"per stage (num_stages keeps the first stages): none gives these")  # fmt: skip
    groups, w_bs, ws = _groups(v), [b.w_b for b in _first_blocks(v)], list(v.widths)
    if groups is None:
        raise _Cannot(f"groups {[b.groups for b in _first_blocks(v)]}: {library}'s ResNeXt has one groups for every stage")
    expansion = 4 if bottleneck else 1
    if bottleneck and groups == 1:
        if library == "mmdet" and w_bs != [w // 4 for w in ws]:
            raise _Cannot(f"w_b {w_bs} of widths {ws} in one group: mmdet's Bottleneck has expansion 4 (w_b = w/4) and its ResNeXt takes mid = planes when groups == 1")
        expansion = ws[0] // w_bs[0]
        if ws[0] % w_bs[0] or w_bs != [w // expansion for w in ws] or any(w % expansion for w in ws):
            raise _Cannot(f"w_b {w_bs} of widths {ws}: {library}'s Bottleneck makes mid = out // expansion with one expansion for every stage")
    base = ws[0] // expansion
    if ws[0] % expansion or ws != [base * expansion * 2**i for i in range(n)]:
        raise _Cannot(f"stage widths {ws}: {library}'s ResNet doubles base_channels x expansion ({expansion}) every stage")
    cls, kwargs = "ResNet_CIFAR" if v.stem_type == "res_stem_cifar" else "ResNet", {}
    if groups != 1:
        per_group = w_bs[0] // groups
        planes = [base * 2**i for i in range(n)]
        mid = [math.floor(p * (per_group / base)) * groups for p in planes] if library == "mmdet" else [groups * per_group * p // base for p in planes]
        if mid != w_bs or cls != "ResNet":
            raise _Cannot(f"w_b {w_bs} in {groups} groups: {library}'s ResNeXt builds {mid}" if cls == "ResNet" else
                          f"{groups} groups: {library}'s ResNet_CIFAR has no grouped bottleneck")  # fmt: skip
        cls = "ResNeXt"
        kwargs = {"groups": groups, ("base_width" if library == "mmdet" else "width_per_group"): per_group}
    if library == "mmdet" and (v.stem_w != 64 or base != 64):  # mmdet's stem_channels defaults to base_channels
        kwargs |= {"stem_channels": v.stem_w, "base_channels": base}
    elif library == "mmpretrain":
        kwargs |= ({"stem_channels": v.stem_w} if v.stem_w != 64 else {}) | ({"base_channels": base} if base != 64 else {})
        kwargs |= {"expansion": expansion} if bottleneck and expansion != 4 else {}
    kwargs |= {"num_stages": n} if n != 4 else {}
    if n != 4 or list(v.strides) != [1, 2, 2, 2]:  # both must have num_stages entries
        kwargs |= {"strides": tuple(v.strides), "dilations": (1,) * n}
    return Built(_body(cls, depth=depth, **kwargs, style="caffe" if _stride_on_1x1(v) else "pytorch"), "dict")


_FROM_NUMBERS = {
    ("timm", "efficientnet"): _timm_efficientnet, ("torchvision", "efficientnet"): _torchvision_efficientnet,
    ("mmdet", "efficientnet"): _mm_efficientnet, ("mmpretrain", "efficientnet"): _mm_efficientnet,
    ("timm", "regnet"): _timm_regnet, ("torchvision", "regnet"): _torchvision_regnet,
    ("mmdet", "regnet"): _mm_regnet, ("mmpretrain", "regnet"): _mm_regnet,
    ("timm", "resnet"): _timm_resnet, ("torchvision", "resnet"): _torchvision_resnet,
    ("mmdet", "resnet"): _mm_resnet, ("mmpretrain", "resnet"): _mm_resnet,
}  # fmt: skip
