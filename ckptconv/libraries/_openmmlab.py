"""How MMDetection's and mmpretrain's classes build a pycls model (their backbone dicts): shared by
``mmdet.py`` and ``mmpretrain.py``, each rule saying where the two differ. torch-free."""

from __future__ import annotations

import math

from ..model.variants import AnyNet, EffNet
from .building import Built, Cannot, body, call, common_groups, first_blocks, no_se, per_stage, resnet_common, stride_on_1x1, zoo_or

MM_EFFNETS = ("b0", "b1", "b2", "b3", "b4", "b5")  # pycls's zoo EfficientNets = mm's arch_settings of these names


def _mm_efficientnet(library: str, v: EffNet) -> Built:
    if v.zoo in MM_EFFNETS:
        return Built(body("EfficientNet", arch=v.zoo), "dict")
    raise Cannot(f"{library}'s EfficientNet builds only its arch_settings (b0..b8, es/em/el) scaled from one fixed layer table; "
                  f"this model is none of pycls's {MM_EFFNETS[0]}..{MM_EFFNETS[-1]} (arch takes those names only, no per-stage lists; "
                  f"a variant file that is one of its archs says so in [libraries.{library}] builder)")


def _mm_regnet(library: str, v: AnyNet) -> Built:
    """type='RegNet', arch=dict(...): mm's widths rule is pycls's own (numpy float64, quantize_float),
    so its stages are the variant's; its blocks are ResNeXt bottlenecks of expansion 1 with
    groups = round(w * bot_mul) // group_w and mid = floor(w * group_w / w) * groups, but mid = w in one group."""
    if v.se_r:
        raise no_se(library)
    r = v.regnet
    if r is None:
        raise per_stage(library, "takes arch=dict(w0, wa, wm, group_w, depth, bot_mul) and")
    n = v.stages
    if n > 4:
        raise Cannot(f"{n} stages: {library}'s RegNet asserts num_stages <= 4")
    for b, w, gw in zip(first_blocks(v), v.widths, v.group_ws):
        groups = int(round(w * r["bot_mul"])) // gw
        mid = w if groups == 1 else math.floor(w * (gw / w)) * groups
        if (mid, groups) != (b.w_b, b.groups):
            raise Cannot(f"stage {b.stage}: pycls's bottleneck is {b.w_b} wide in {b.groups} group(s); {library}'s RegNet builds {mid} in {groups}"
                          + (" (one group: mid = planes = w, bot_mul ignored)" if groups == 1 else ""))
    arch = call("dict", w0=r["w0"], wa=r["wa"], wm=r["wm"], group_w=r["group_w"], depth=r["depth"], bot_mul=r["bot_mul"])
    kwargs: dict[str, object] = {"stem_channels": v.stem_w} if v.stem_w != 32 else {}
    if n != 4 or r["stride"] != 2:  # both must have num_stages entries
        kwargs |= {"strides": tuple(v.strides), "dilations": (1,) * n}
    return Built(body("RegNet", arch=arch, **kwargs), "dict")


MM_DEPTHS = {"res_basic_block": ((18, (2, 2, 2, 2)), (34, (3, 4, 6, 3))),
             "res_bottleneck_block": ((50, (3, 4, 6, 3)), (101, (3, 4, 23, 3)), (152, (3, 8, 36, 3)))}  # arch_settings


def _mm_resnet(library: str, v: AnyNet) -> Built:
    """type='ResNet' / 'ResNeXt' / 'ResNet_CIFAR' (mmpretrain: the 3x3 stride-1 stem): depth from
    arch_settings (its first num_stages stages), stage widths base_channels * expansion * 2**i (mmdet's
    expansion 4), mid = w / expansion, or in groups: mmdet floor(planes * base_width / base_channels) * groups,
    mmpretrain groups * width_per_group * (w / expansion) // base_channels; style 'caffe' strides the 1x1."""
    resnet_common(library, v, str(no_se(library)))
    n, bottleneck = v.stages, v.block_type == "res_bottleneck_block"
    if n > 4:
        raise Cannot(f"{n} stages: {library}'s ResNet builds 1 to 4 (num_stages)")
    depth = next((d for d, ds in MM_DEPTHS[v.block_type] if list(ds[:n]) == list(v.depths)), None)
    if depth is None:
        raise Cannot(f"depths {list(v.depths)}: {library}'s ResNet takes depth in (18, 34, 50, 101, 152) and builds arch_settings[depth] blocks "
                      f"per stage (num_stages keeps the first stages): none gives these")
    groups, w_bs, ws = common_groups(v), [b.w_b for b in first_blocks(v)], list(v.widths)
    if groups is None:
        raise Cannot(f"groups {[b.groups for b in first_blocks(v)]}: {library}'s ResNeXt has one groups for every stage")
    expansion = 4 if bottleneck else 1
    if bottleneck and groups == 1:
        if library == "mmdet" and w_bs != [w // 4 for w in ws]:
            raise Cannot(f"w_b {w_bs} of widths {ws} in one group: mmdet's Bottleneck has expansion 4 (w_b = w/4) and its ResNeXt takes mid = planes when groups == 1")
        expansion = ws[0] // w_bs[0]
        if ws[0] % w_bs[0] or w_bs != [w // expansion for w in ws] or any(w % expansion for w in ws):
            raise Cannot(f"w_b {w_bs} of widths {ws}: {library}'s Bottleneck makes mid = out // expansion with one expansion for every stage")
    base = ws[0] // expansion
    if ws[0] % expansion or ws != [base * expansion * 2**i for i in range(n)]:
        raise Cannot(f"stage widths {ws}: {library}'s ResNet doubles base_channels x expansion ({expansion}) every stage")
    cls, kwargs = "ResNet_CIFAR" if v.stem_type == "res_stem_cifar" else "ResNet", {}
    if groups != 1:
        per_group = w_bs[0] // groups
        planes = [base * 2**i for i in range(n)]
        mid = [math.floor(p * (per_group / base)) * groups for p in planes] if library == "mmdet" else [groups * per_group * p // base for p in planes]
        if mid != w_bs or cls != "ResNet":
            raise Cannot(f"w_b {w_bs} in {groups} groups: {library}'s ResNeXt builds {mid}" if cls == "ResNet" else
                          f"{groups} groups: {library}'s ResNet_CIFAR has no grouped bottleneck")
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
    return Built(body(cls, depth=depth, **kwargs, style="caffe" if stride_on_1x1(v) else "pytorch"), "dict")



def builders(library: str) -> dict:
    """The library's builder of each family: the variant file's backbone dict for a zoo model, else its numbers'."""
    return {"effnet": zoo_or(library, _mm_efficientnet, "dict"), "regnet": zoo_or(library, _mm_regnet, "dict"), "resnet": zoo_or(library, _mm_resnet, "dict")}
