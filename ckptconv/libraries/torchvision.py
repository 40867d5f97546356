"""torchvision: efficientnet_bN, regnet_x_*/regnet_y_* (RegNet(BlockParams) for other numbers), resnet*/resnext*."""


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
    first_blocks,
    float32_stages,
    make_divisible,
    num,
    pycls_stages,
    resnet_common,
    stride_on_1x1,
    zoo_or,
)

M = "ckptconv.verification.models"


def _torchvision_regnet_stages(r: dict) -> tuple[list[int], list[int], list[int]]:
    """``BlockParams.from_init_params`` (_adjust_widths_groups_compatibilty): made divisible by the group, half up."""
    return float32_stages(r, make_divisible)


TORCHVISION_RESNETS = {key: name for key, name in TIMM_RESNETS.items() if name != "resnext101_32x4d"}


def _torchvision_efficientnet(library: str, v: EffNet) -> Built:
    """EfficientNet([MBConvConfig(e, k, s, in, out, n) per stage], last_channel=head): every channel
    count must survive make_divisible(c, 8) and every SE width be max(1, in // 4)."""
    off = [c for c in (v.stem_w, *v.widths) if make_divisible(c) != c]
    if off:
        raise Cannot(f"channels {off}: MBConvConfig rounds every channel count with make_divisible(c, 8) ({off[0]} -> {make_divisible(off[0])})")
    for b in v.blocks:
        e = v.exp_ratios[b.stage - 1]
        if make_divisible(b.w_in * e) != b.w_exp:
            raise Cannot(f"expanded width int({b.w_in} * {e:g}) = {b.w_exp}: torchvision's MBConv rounds it to "
                          f"make_divisible({b.w_in} * {e:g}, 8) = {make_divisible(b.w_in * e)}")
        if max(1, b.w_in // 4) != b.w_se:
            raise Cannot(f"EN.SE_R {v.se_r:g}: torchvision's MBConv fixes the SE width at max(1, input_channels // 4) "
                          f"(ratio 0.25; s{b.stage}.b{b.block} has {b.w_se}, not {max(1, b.w_in // 4)})")
    configs, w_in = [], v.stem_w
    for s, depth in enumerate(v.depths):
        configs.append(call("torchvision.models.efficientnet.MBConvConfig", num(v.exp_ratios[s]), v.kernels[s], v.strides[s], w_in, v.widths[s], depth))
        w_in = v.widths[s]
    # dropout: torchvision requires it; no weights, no effect in eval (0.2 is its own B0's)
    return Built(call("torchvision.models.EfficientNet", configs, dropout=0.2, num_classes=v.num_classes, last_channel=v.head_w), "call")


def _torchvision_regnet(library: str, v: AnyNet) -> Built:
    """RegNet(BlockParams.from_init_params(...)) where torchvision's rule gives pycls's stages, else
    RegNet(BlockParams(pycls's per-stage lists)), which takes any stages and strides."""
    r, note = v.regnet, ""
    se = {"se_ratio": v.se_r} if v.se_r else {}
    stem = {"stem_width": v.stem_w} if v.stem_w != 32 else {}
    if r is not None:
        params = dict(depth=r["depth"], w_0=r["w0"], w_a=r["wa"], w_m=r["wm"], group_width=r["group_w"], bottleneck_multiplier=r["bot_mul"], **se)
        derived = _torchvision_regnet_stages(r)
        if r["stride"] == 2 and derived == pycls_stages(v):
            block_params = call("torchvision.models.regnet.BlockParams.from_init_params", **params)
            return Built(call("torchvision.models.RegNet", block_params, num_classes=v.num_classes, **stem), "call")
        why = "always strides 2" if r["stride"] != 2 else f"makes other stages (depths, widths, group widths {derived})"
        note = f"torchvision.models.regnet.BlockParams.from_init_params() of these numbers {why}: built from pycls's per-stage numbers instead"
    block_params = call("torchvision.models.regnet.BlockParams", depths=list(v.depths), widths=list(v.widths), group_widths=list(v.group_ws),
                         bottleneck_multipliers=[float(m) for m in v.bot_muls], strides=list(v.strides), **se)
    return Built(call("torchvision.models.RegNet", block_params, num_classes=v.num_classes, **stem), "call", note=note)


def _torchvision_resnet(library: str, v: AnyNet) -> Built:
    """torchvision's ResNet(block, layers, groups, width_per_group): 4 stages of 64, 128, 256, 512 x
    expansion, stem 64, strides 1, 2, 2, 2; Bottleneck width int(planes * width_per_group / 64) * groups."""
    resnet_common(library, v)
    if stride_on_1x1(v):
        raise Cannot("RESNET.STRIDE_1X1 True puts the stride on the first 1x1 (a); torchvision's Bottleneck (ResNet v1.5) strides the 3x3 (conv2)")
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
    groups, width = common_groups(v), 64
    if groups is None:
        problems.append(f"groups {[b.groups for b in first_blocks(v)]}: torchvision's ResNet has one groups for every stage")
    elif bottleneck and not problems:
        w_bs = [b.w_b for b in first_blocks(v)]
        width = w_bs[0] // groups
        if any(int(64 * 2**i * (width / 64.0)) * groups != w for i, w in enumerate(w_bs)):
            problems.append(f"bottleneck widths {w_bs}: torchvision's Bottleneck makes int(planes * width_per_group / 64) * groups, doubling every stage")
    if problems:
        raise Cannot("; ".join(problems))
    name = TORCHVISION_RESNETS.get((v.block_type, tuple(v.depths), groups, width))
    if name:
        return Built(call(f"torchvision.models.{name}", **classes(True, v.num_classes)), "call")
    kwargs: dict[str, object] = {"groups": groups} if groups != 1 else {}
    kwargs |= {"width_per_group": width} if width != 64 else {}
    block = Code("torchvision.models.resnet." + ("Bottleneck" if bottleneck else "BasicBlock"))
    return Built(call("torchvision.models.ResNet", block, list(v.depths), **kwargs, num_classes=v.num_classes), "call")



LIBRARY = Library(
    name="torchvision",
    title="torchvision",
    loads=(),  # model.load_state_dict(torch.load(f)): the file is the state dict
    references={
        "effnet": {"torchvision": Reference(f"{M}.torchvision:TorchvisionEfficientNet", ("features.{i}", "logits"))},
        "regnet": {"torchvision-regnet": Reference(f"{M}.anynet:TorchvisionRegNet", ("stem", "trunk_output.block{n}", "logits"))},
        "resnet": {"resnet": Reference(f"{M}.anynet:ResNet", ("stem", "layer{n}", "logits"))},
    },
    builders={"effnet": zoo_or("torchvision", _torchvision_efficientnet), "regnet": zoo_or("torchvision", _torchvision_regnet),
              "resnet": zoo_or("torchvision", _torchvision_resnet)},
    runner="ckptconv.inlibrary.torchlike:torchvision",
)
