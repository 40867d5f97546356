"""Hugging Face transformers: ``RegNetForImageClassification`` and ``ResNetForImageClassification``,
built from ``RegNetConfig`` / ``ResNetConfig`` numbers (read from transformers 5.25.0's source;
tests/data/transformers/facts.json cites each line).

RegNetConfig builds pycls's simple stem (3x3 stride 2, BN, ReLU) and its residual bottleneck with
``bot_mul = 1``, ``groups = max(1, out // groups_width)`` in every stage, SE (``layer_type "y"``) of
width ``int(round(in / 4))``; ResNetConfig a 7x7 stride-2 stem with a max pool and bottlenecks of
reduction 4 (one group) or basic blocks, the stride on the first 1x1 (``downsample_in_bottleneck``)
or on the 3x3. Neither has a field for BN eps (every BatchNorm2d is torch's 1e-5), per-stage
strides (stage 1 strides 2 or 1: ``downsample_in_first_stage``; every later stage 2), another stem
or a bottleneck ratio: a model that needs one is refused, naming the field. torch-free.
"""

from __future__ import annotations

from typing import Any

from ..model.variants import AnyNet, Bottleneck
from . import Library, Reference
from .building import Built, Cannot, call, num

M = "ckptconv.verification.models.transformers"
TORCH_EPS = 1e-5  # nn.BatchNorm2d's default, which every transformers RegNet/ResNet BatchNorm uses


def _common(v: AnyNet, config: str) -> bool:
    """What both configs share: BN eps 1e-5, stage 1 striding 2 or 1 and every later stage 2.
    Returns ``downsample_in_first_stage``."""
    if v.eps != TORCH_EPS:
        raise Cannot(f"BN.EPS {v.eps:g}: {config} has no eps field; every BatchNorm2d it builds uses torch's default 1e-5 "
                     f"(batch_norm_eps is stored but not used)")
    strides = list(v.strides)
    if strides[0] not in (1, 2) or any(s != 2 for s in strides[1:]):
        raise Cannot(f"strides {strides}: {config} has no per-stage stride field; downsample_in_first_stage sets stage 1's (2 or 1) "
                     f"and every later stage strides 2")
    return strides[0] == 2


def _groups_width(v: AnyNet) -> int:
    """The one ``groups_width`` whose ``max(1, out // groups_width)`` gives pycls's groups in every
    stage (a stage narrower than GROUP_W has one group either way: RegNetX-8.0GF's stage 1)."""
    stated = [v.regnet["group_w"]] if v.regnet is not None else []
    for g in [*stated, *sorted(set(v.group_ws), reverse=True)]:
        if all(b.groups == max(1, b.w_b // g) for b in v.blocks):
            return g
    raise Cannot(f"group widths {list(v.group_ws)}: RegNetConfig has one groups_width field, and groups = max(1, out // groups_width) "
                 f"in every stage gives other groups")


def regnet_fields(v: AnyNet) -> dict[str, Any]:
    """RegNetConfig's fields for ``v`` (not num_labels); ``Cannot`` naming the field it lacks."""
    first = _common(v, "RegNetConfig")
    if any(m != 1.0 for m in v.bot_muls):
        raise Cannot(f"BOT_MUL {num(next(m for m in v.bot_muls if m != 1.0))}: RegNetConfig has no bottleneck-ratio field; its X/Y layers "
                     f"make the bottleneck out_channels wide (BOT_MUL 1)")
    off = [b for b in v.blocks if v.se_r and b.w_se != int(round(b.w_in / 4))]
    if off:
        b = off[0]
        raise Cannot(f"SE_R {v.se_r:g}: RegNetConfig has no SE-ratio field; its Y layer makes the SE int(round(in_channels / 4)) wide "
                     f"(s{b.stage}.b{b.block}: {int(round(b.w_in / 4))}, pycls {b.w_se})")
    return {"embedding_size": v.stem_w, "hidden_sizes": list(v.widths), "depths": list(v.depths), "groups_width": _groups_width(v),
            "layer_type": "y" if v.se_r else "x", "hidden_act": "relu", "downsample_in_first_stage": first}


def _bottleneck_fits(b: Bottleneck) -> str:
    """Why ResNet's bottleneck layer cannot be this block ('' when it can)."""
    if b.groups != 1:
        return (f"groups {b.groups} (s{b.stage}): ResNetConfig has no groups or width-per-group field; its bottleneck's 3x3 is one group "
                f"(ResNeXt does not fit)")
    if b.w_b != b.w_out // 4:
        return f"bottleneck width {b.w_b} of {b.w_out} (s{b.stage}): ResNetConfig has no bottleneck-ratio field; its reduction is 4 (BOT_MUL 0.25)"
    return ""


def resnet_fields(v: AnyNet) -> dict[str, Any]:
    """ResNetConfig's fields for ``v`` (not num_labels); ``Cannot`` naming the field it lacks."""
    if v.stem_type != "res_stem_in":
        raise Cannot(f"{v.stem_type}: ResNetConfig has no stem field; its embedder is always the 7x7 stride-2 conv and 3x3 max pool (res_stem_in)")
    if v.se_r:
        raise Cannot("SE: ResNetConfig has no squeeze-and-excitation field (RegNetConfig's layer_type 'y' has it, with the 3x3 stride-2 stem)")
    bottleneck = v.block_type == "res_bottleneck_block"
    problem = next(filter(None, (_bottleneck_fits(b) for b in v.blocks)), "") if bottleneck else ""
    if problem:
        raise Cannot(problem)
    first = _common(v, "ResNetConfig")
    fields = {"embedding_size": v.stem_w, "hidden_sizes": list(v.widths), "depths": list(v.depths), "layer_type": "bottleneck" if bottleneck else "basic",
              "hidden_act": "relu", "downsample_in_first_stage": first}
    return fields | {"downsample_in_bottleneck": bottleneck and v.stride_1x1}  # a basic layer has no 1x1: False, the field's default


# family -> (model class, config class, model_type, fields)
CLASSES = {
    "regnet": ("RegNetForImageClassification", "RegNetConfig", "regnet", regnet_fields),
    "resnet": ("ResNetForImageClassification", "ResNetConfig", "resnet", resnet_fields),
}


def _builder(family: str):
    model, config, _, fields = CLASSES[family]

    def build(v: AnyNet) -> Built:
        return Built(call(f"transformers.{model}", call(f"transformers.{config}", **fields(v), num_labels=v.num_classes)), "call")

    return build


LIBRARY = Library(
    name="transformers",
    title="transformers",
    loads=(),  # from_pretrained reads model.safetensors whole: the file is the state dict
    references={
        "regnet": {"transformers-regnet": Reference(f"{M}:TransformersRegNet", ("hidden_states.0", "hidden_states.{n}", "logits"))},
        "resnet": {"transformers-resnet": Reference(f"{M}:TransformersResNet", ("hidden_states.0", "hidden_states.{n}", "logits"))},
    },
    builders={"regnet": _builder("regnet"), "resnet": _builder("resnet")},
    lacks={"effnet": "EfficientNetConfig has no stem-padding field; its stem always pads (0, 1, 0, 1) as TensorFlow's 'same' does, "
                     "where pycls pads 1 on every side, so pycls's EfficientNet computes other features in it",
           "anynet": "RegNetConfig's stem is always a 3x3 stride-2 conv and ResNetConfig's a 7x7 with a max pool, and neither has a block "
                     "without a residual (pycls's vanilla_block)"},
    runner="ckptconv.inlibrary.torchlike:transformers",
)
