"""timm: efficientnet_*, regnetx_*/regnety_* and resnet*/resnext* (and their classes for other numbers)."""

import math

from ..model.variants import AnyNet, EffNet
from . import Library, Reference
from .building import (
    TIMM_RESNETS,
    Built,
    Cannot,
    Code,
    call,
    classes,
    common_groups,
    created,
    first_blocks,
    fitting_base_width,
    float32_stages,
    make_divisible,
    num,
    per_stage,
    pycls_stages,
    resnet_common,
    stride_on_1x1,
)

M = "ckptconv.verification.models"


def _zoo(v) -> Built | None:
    """A zoo model timm registers by name: timm.create_model(name) (the variant file's [libraries.timm])."""
    entry = v.library("timm") if v.zoo else {}
    name, builder, note = entry.get("name", ""), entry.get("builder", ""), entry.get("note", "")
    if name and (not builder or created(builder) == name):
        return Built(call("timm.create_model", name, **classes(True, v.num_classes)), "call", name, note)
    from .building import from_zoo

    return from_zoo("timm", v)


def _builder(from_numbers):
    return lambda v: _zoo(v) or from_numbers("timm", v)


def _timm_regnet_stages(r: dict) -> tuple[list[int], list[int], list[int]]:
    """timm's RegNet (adjust_widths_groups_comp): the bottleneck rounded half to even to a multiple of the group."""
    return float32_stages(r, lambda w_bot, g: int(round(w_bot / g) * g))


def _timm_efficientnet(library: str, v: EffNet) -> Built:
    """EfficientNet(decode_arch_def(one 'ds'/'ir' string per stage)) with pycls's own widths
    (round_chs_fn=int), stem and head, SiLU; int-rounded SE only where round() would differ."""
    down = 2 * math.prod(v.strides)
    if down > 32:
        raise Cannot(f"strides {list(v.strides)} downsample {down}x: timm's EfficientNet turns every stride past 32x into a dilation (output_stride 32)")
    for k, s in zip(v.kernels, v.strides):
        if s != 1 and k % 2 == 0:
            raise Cannot(f"kernel {k} with stride {s}: timm pads ((stride - 1) + (k - 1)) // 2 = {(s - 1 + k - 1) // 2}, pycls (k - 1) // 2 = {(k - 1) // 2}")
    stages, se = [], []  # se: (SE input width, timm's rd_ratio, pycls's SE width)
    for s, depth in enumerate(v.depths):
        blocks = [b for b in v.blocks if b.stage == s + 1]
        expands = {b.has_expand for b in blocks}
        if len(expands) > 1:
            raise Cannot(f"stage {s + 1} expands some blocks and not others (int(w_in * {v.exp_ratios[s]:g}) == w_in for some); timm's stage has one block type")
        e = float(num(v.exp_ratios[s])) if expands == {True} else 1.0
        for b in blocks:
            mid = make_divisible(b.w_in * e) if e != 1.0 else b.w_in
            if mid != b.w_exp:
                raise Cannot(f"expanded width int({b.w_in} * {e:g}) = {b.w_exp}: timm's InvertedResidual rounds "
                              f"mid_chs = make_divisible({b.w_in} * {e:g}) = {mid} (multiples of 8), with no setting")
            se.append((mid, float(num(v.se_r)) / e, b.w_se))
        stages.append([f"{'ir' if e != 1.0 else 'ds'}_r{depth}_k{v.kernels[s]}_s{v.strides[s]}_e{num(e)}_c{v.widths[s]}_se{num(v.se_r)}"])
    kwargs: dict[str, object] = {}
    if any(round(mid * ratio) != w for mid, ratio, w in se):  # SqueezeExcite's rd_round_fn defaults to round
        if any(int(mid * ratio) != w for mid, ratio, w in se):
            raise Cannot(f"SE widths int(w_in * {v.se_r:g}): timm's SqueezeExcite gives neither round() nor int() of mid_chs * se / e for every block")
        kwargs["se_layer"] = call("functools.partial", Code("timm.models.efficientnet.SqueezeExcite"), rd_round_fn=Code("int"))
    text = call("timm.models.efficientnet.EfficientNet", block_args=call("timm.models.efficientnet.decode_arch_def", stages),
                 num_classes=v.num_classes, stem_size=v.stem_w, fix_stem=True, num_features=v.head_w, round_chs_fn=Code("int"),
                 act_layer=Code("torch.nn.SiLU"), **kwargs)
    return Built(text, "call")


def _timm_regnet(library: str, v: AnyNet) -> Built:
    """RegNet(RegNetCfg(depth, w0, wa, wm, group_size, ...)) where timm's float32 stages are pycls's."""
    r = v.regnet
    if r is None:
        raise per_stage(library, "(RegNetCfg)")
    if r["stride"] != 2:
        raise Cannot(f"REGNET.STRIDE {r['stride']}: timm RegNet strides every stage by 2 (output_stride only turns later strides into dilations)")
    timm = _timm_regnet_stages(r)
    if len(timm[0]) != 4:
        raise Cannot(f"{len(timm[0])} stages: timm RegNet.__init__ asserts exactly 4 stages")
    if timm != pycls_stages(v):
        raise Cannot(f"timm computes the widths in float32: stages (depths, widths, group sizes) {timm}, where pycls's float64 gives {pycls_stages(v)}")
    cfg: dict[str, object] = dict(depth=r["depth"], w0=r["w0"], wa=r["wa"], wm=r["wm"], group_size=r["group_w"])
    cfg |= {"bottle_ratio": r["bot_mul"]} if r["bot_mul"] != 1.0 else {}
    cfg |= {"se_ratio": v.se_r} if v.se_r else {}
    cfg |= {"stem_width": v.stem_w} if v.stem_w != 32 else {}
    return Built(call("timm.models.regnet.RegNet", call("timm.models.regnet.RegNetCfg", **cfg), num_classes=v.num_classes), "call")


def _timm_resnet(library: str, v: AnyNet) -> Built:
    """timm's ResNet(block, layers, cardinality, base_width, channels): a 64-wide 7x7 stem, strides
    1, 2, 2, 2, at most 4 stages; Bottleneck width floor(planes * base_width / 64) * cardinality, out 4 x planes."""
    resnet_common(library, v)
    n, bottleneck, problems = v.stages, v.block_type == "res_bottleneck_block", []
    if stride_on_1x1(v):
        problems.append("RESNET.STRIDE_1X1 True puts the stride on the first 1x1 (a); timm's Bottleneck always strides the 3x3 (conv2)")
    if n > 4:
        problems.append(f"{n} stages: timm's ResNet builds at most 4 (make_blocks zips the stages with its 4 drop-block settings)")
    if list(v.strides) != [1, 2, 2, 2][:n]:
        problems.append(f"strides {list(v.strides)}: timm ResNet (make_blocks) strides stage 1 by 1 and every later stage by 2")
    if v.stem_w != 64:
        problems.append(f"stem width {v.stem_w}: timm ResNet's 7x7 stem is always 64 wide (ResNet.__init__: inplanes = stem_width * 2 if deep_stem else 64)")
    groups, base_width = common_groups(v), 64
    channels = tuple(w // 4 if bottleneck else w for w in v.widths)
    if bottleneck and any(w % 4 for w in v.widths):
        problems.append(f"stage widths {list(v.widths)}: timm's Bottleneck outputs 4 x planes")
    elif groups is None:
        problems.append(f"groups {[b.groups for b in first_blocks(v)]}: timm's ResNet has one cardinality for every stage")
    elif bottleneck:
        base_width = fitting_base_width([b.w_b for b in first_blocks(v)], channels, groups)
        if base_width is None:
            problems.append(f"bottleneck widths {[b.w_b for b in first_blocks(v)]}: timm's Bottleneck makes floor(planes * base_width / 64) * cardinality "
                            f"with one base_width for every stage")
    if problems:
        raise Cannot("; ".join(problems))
    name = TIMM_RESNETS.get((v.block_type, tuple(v.depths), groups, base_width)) if channels == (64, 128, 256, 512) else None
    if name:
        return Built(call("timm.create_model", name, **classes(True, v.num_classes)), "call", name)
    kwargs: dict[str, object] = {"cardinality": groups} if groups != 1 else {}
    kwargs |= {"base_width": base_width} if base_width != 64 else {}
    kwargs |= {"channels": channels} if channels != (64, 128, 256, 512) else {}
    block = "timm.models.resnet." + ("Bottleneck" if bottleneck else "BasicBlock")
    return Built(call("timm.models.resnet.ResNet", block=Code(block), layers=list(v.depths), **kwargs, num_classes=v.num_classes), "call")



LIBRARY = Library(
    name="timm",
    title="timm",
    loads=("state_dict_ema", "state_dict"),  # timm's load_state_dict prefers the EMA weights; none there: the whole file
    references={
        "effnet": {"timm": Reference(f"{M}.timm:TimmEfficientNet", ("bn1", "blocks.{i}", "bn2", "logits"))},
        "regnet": {"timm-regnet": Reference(f"{M}.anynet:TimmRegNet", ("stem", "s{n}", "logits"))},
        "resnet": {"resnet": Reference(f"{M}.anynet:ResNet", ("stem", "layer{n}", "logits"))},
    },
    builders={"effnet": _builder(_timm_efficientnet), "regnet": _builder(_timm_regnet), "resnet": _builder(_timm_resnet)},
    runner="ckptconv.inlibrary.torchlike:timm",
)
