"""The design-space cases: models pycls 0.1.1 can build that are NOT in its zoo, as data.

Shared by ``design_space.py`` (the gt environment) and ``design_space_mm.py`` (the torch213
environment). Plain Python, no imports beyond the standard library.

Each case is a pycls config written the way a YAML file would hold it: ``values`` maps
"SECTION.KEY" to the value, in the order a YAML file lists them, and is merged into a reset
pycls 0.1.1 cfg with ``zoo.merge_values`` (yacs's ``merge_from_list``, type-checked). Everything
a case leaves out keeps pycls 0.1.1's default (``pycls/core/config.py``). The families:

- ``anynet``: MODEL.TYPE anynet, every stem type x every block type, SE on/off, group widths
  1 (depthwise), 8, 16 and w_b (one group), bottleneck multipliers 0.25 / 0.5 / 1.0, a stage of
  stride 1 whose width does not change, 2, 3, 4 and 5 stages;
- ``regnet``: MODEL.TYPE regnet with custom numbers (X and Y), REGNET.STRIDE 1, BOT_MUL 0.5,
  other stem types, stage counts other than 4, zoo numbers with other NUM_CLASSES;
- ``resnet``: MODEL.TYPE resnet (pycls/models/resnet.py): CIFAR (TRAIN.DATASET cifar10, depth
  6n+2) and ImageNet depth 50 with RESNET.STRIDE_1X1 True (pycls's default: stride on the 1x1)
  and False, ResNeXt through RESNET.NUM_GROUPS / WIDTH_PER_GROUP;
- ``effnet``: MODEL.TYPE effnet, zoo B0/B3 with 10 classes and custom stages.

``checkpoint: True`` marks the small cases whose pycls training checkpoint is committed
(tests/data/design_space/checkpoints/<name>.pyth) with a features npz beside it.
"""

from __future__ import annotations

import re

IMAGENET = {"TRAIN.DATASET": "imagenet", "TRAIN.IM_SIZE": 224,
            "TEST.DATASET": "imagenet", "TEST.IM_SIZE": 256}
CIFAR = {"TRAIN.DATASET": "cifar10", "TRAIN.IM_SIZE": 32,
         "TEST.DATASET": "cifar10", "TEST.IM_SIZE": 32}

# zoo numbers (pycls configs/dds_baselines, the same as zoo.py's tables)
_B0 = dict(stem_w=32, ds=[1, 2, 2, 3, 3, 4, 1], ws=[16, 24, 40, 80, 112, 192, 320], head_w=1280)
_B3 = dict(stem_w=40, ds=[2, 3, 3, 5, 5, 6, 2], ws=[24, 32, 48, 96, 136, 232, 384], head_w=1536)
_EN_SS = [1, 2, 2, 2, 1, 2, 1]
_EN_ER = [1, 6, 6, 6, 6, 6, 6]
_EN_KS = [3, 3, 5, 3, 5, 5, 3]


def _anynet(stem, stem_w, block, ds, ws, ss, bms=None, gws=None, se_r=None, nc=10, extra=None,
            data=None):
    v = {"MODEL.TYPE": "anynet", "MODEL.NUM_CLASSES": nc,
         "ANYNET.STEM_TYPE": stem, "ANYNET.STEM_W": stem_w, "ANYNET.BLOCK_TYPE": block,
         "ANYNET.DEPTHS": ds, "ANYNET.WIDTHS": ws, "ANYNET.STRIDES": ss}
    if bms is not None:
        v["ANYNET.BOT_MULS"] = bms
    if gws is not None:
        v["ANYNET.GROUP_WS"] = gws
    if se_r is not None:
        v["ANYNET.SE_ON"] = True
        if se_r != 0.25:
            v["ANYNET.SE_R"] = se_r
    v.update(extra or {})
    v.update(data or (CIFAR if stem == "res_stem_cifar" else IMAGENET))
    return v


def _regnet(depth, w0, wa, wm, gw, se=False, nc=10, extra=None, data=None):
    v = {"MODEL.TYPE": "regnet", "MODEL.NUM_CLASSES": nc}
    if se:
        v["REGNET.SE_ON"] = True
    v.update({"REGNET.DEPTH": depth, "REGNET.W0": w0, "REGNET.WA": wa, "REGNET.WM": wm,
              "REGNET.GROUP_W": gw})
    v.update(extra or {})
    v.update(data or IMAGENET)
    return v


def _resnet(depth, nc, extra=None, cifar=False):
    v = {"MODEL.TYPE": "resnet", "MODEL.DEPTH": depth, "MODEL.NUM_CLASSES": nc}
    v.update(extra or {})
    v.update(CIFAR if cifar else IMAGENET)
    return v


def _effnet(stem_w, ds, ws, ss, ers, ks, head_w, nc=10, se_r=None, extra=None):
    v = {"MODEL.TYPE": "effnet", "MODEL.NUM_CLASSES": nc,
         "EN.STEM_W": stem_w, "EN.STRIDES": ss, "EN.DEPTHS": ds, "EN.WIDTHS": ws,
         "EN.EXP_RATIOS": ers, "EN.KERNELS": ks, "EN.HEAD_W": head_w}
    if se_r is not None:
        v["EN.SE_R"] = se_r
    v.update(extra or {})
    v.update(IMAGENET)
    return v


def _case(name, family, values, note, checkpoint=False):
    return {"name": name, "family": family, "values": values, "note": note,
            "checkpoint": checkpoint}


BNECK = "res_bottleneck_block"
BASIC = "res_basic_block"
VANILLA = "vanilla_block"
SIMPLE = "simple_stem_in"
RES_IN = "res_stem_in"
RES_CIFAR = "res_stem_cifar"

CASES = [
    # ---------------- AnyNet: simple_stem_in x res_bottleneck_block (RegNet-shaped) -----------
    _case("anynet_x_4s", "anynet",
          _anynet(SIMPLE, 24, BNECK, [1, 1, 2, 1], [24, 48, 96, 192], [2, 2, 2, 2],
                  [1.0] * 4, [8] * 4),
          "RegNetX-shaped AnyNet with per-stage numbers no RegNet rule gives"),
    _case("anynet_y_4s", "anynet",
          _anynet(SIMPLE, 24, BNECK, [1, 1, 2, 1], [24, 48, 96, 192], [2, 2, 2, 2],
                  [1.0] * 4, [8] * 4, se_r=0.25),
          "as anynet_x_4s with SE (SE_R 0.25: w_se = round(w_in * 0.25), w_in = block input)"),
    _case("anynet_y_se_r_0p3_gw16", "anynet",
          _anynet(SIMPLE, 20, BNECK, [1, 1, 1, 1], [32, 64, 128, 256], [2, 2, 2, 2],
                  [1.0] * 4, [16] * 4, se_r=0.3),
          "SE_R 0.3 (w_se = round(w_in * 0.3) is fractional before rounding), group width 16"),
    _case("anynet_depthwise_gw1", "anynet",
          _anynet(SIMPLE, 16, BNECK, [1, 1, 1, 1], [16, 32, 64, 128], [2, 2, 2, 2],
                  [1.0] * 4, [1] * 4, se_r=0.25),
          "group width 1: the 3x3 is depthwise (groups = w_b)"),
    _case("anynet_bm_0p25_g1", "anynet",
          _anynet(SIMPLE, 16, BNECK, [1, 1, 1, 1], [32, 64, 128, 256], [2, 2, 2, 2],
                  [0.25] * 4, [8, 16, 32, 64]),
          "bottleneck multiplier 0.25 and group width = w_b (one group)"),
    _case("anynet_bm_0p5", "anynet",
          _anynet(SIMPLE, 16, BNECK, [1, 1, 1, 1], [32, 64, 128, 256], [2, 2, 2, 2],
                  [0.5] * 4, [4] * 4),
          "bottleneck multiplier 0.5, group width 4"),
    _case("anynet_stride1_same_width", "anynet",
          _anynet(SIMPLE, 16, BNECK, [1, 2, 1, 1], [16, 16, 32, 64], [2, 1, 2, 2],
                  [1.0] * 4, [8] * 4),
          "stage 2 has stride 1 and keeps its width 16: its first block has no projection"),
    _case("anynet_2stages", "anynet",
          _anynet(SIMPLE, 16, BNECK, [2, 2], [32, 64], [2, 2], [1.0] * 2, [8] * 2),
          "two stages"),
    _case("anynet_3stages_gw_nondividing", "anynet",
          _anynet(SIMPLE, 16, BNECK, [1, 1, 1], [48, 72, 96], [2, 2, 2], [1.0] * 3, [20] * 3),
          "three stages; GROUP_WS 20 does not divide w_b: groups = w_b // 20 = 2, 3, 4, so the "
          "real group width is 24"),
    _case("anynet_5stages", "anynet",
          _anynet(SIMPLE, 16, BNECK, [1, 1, 1, 1, 1], [16, 32, 48, 96, 192], [2, 2, 2, 2, 2],
                  [1.0] * 5, [8] * 5),
          "five stages"),
    # ---------------- AnyNet: res_stem_in ------------------------------------------------------
    _case("anynet_resstem_bneck_r50_narrow", "anynet",
          _anynet(RES_IN, 16, BNECK, [3, 4, 6, 3], [64, 128, 256, 512], [1, 2, 2, 2],
                  [0.25] * 4, [16, 32, 64, 128]),
          "ResNet-50 depths at a quarter width (stem 16, w_b = w/4, one group)"),
    _case("anynet_resstem_bneck_x50_narrow", "anynet",
          _anynet(RES_IN, 16, BNECK, [3, 4, 6, 3], [64, 128, 256, 512], [1, 2, 2, 2],
                  [0.5] * 4, [2, 4, 8, 16]),
          "ResNeXt-50-like at a quarter width: 16 groups, w_b = w/2"),
    _case("anynet_resstem_bneck_wide2", "anynet",
          _anynet(RES_IN, 64, BNECK, [3, 4, 6, 3], [256, 512, 1024, 2048], [1, 2, 2, 2],
                  [0.5] * 4, [128, 256, 512, 1024]),
          "Wide-ResNet-50-2 structure: w_b = w/2 in one group", ),
    _case("anynet_resstem_basic_r18", "anynet",
          _anynet(RES_IN, 64, BASIC, [2, 2, 2, 2], [64, 128, 256, 512], [1, 2, 2, 2],
                  nc=1000),
          "ResNet-18 as an AnyNet (res_basic_block)"),
    _case("anynet_resstem_basic_r18_3stages", "anynet",
          _anynet(RES_IN, 8, BASIC, [2, 2, 2], [8, 16, 32], [1, 2, 2]),
          "the first three ResNet-18 stages at 1/8 width (stem 8)", checkpoint=True),
    _case("anynet_resstem_basic_strides_1122", "anynet",
          _anynet(RES_IN, 16, BASIC, [2, 2, 2, 2], [16, 32, 64, 128], [1, 1, 2, 2]),
          "res_basic_block with strides 1, 1, 2, 2 (stage 2 changes width at stride 1)"),
    _case("anynet_resstem_vanilla", "anynet",
          _anynet(RES_IN, 16, VANILLA, [1, 1, 1, 1], [16, 32, 64, 128], [1, 2, 2, 2]),
          "res_stem_in with vanilla blocks (no skip connections)"),
    # ---------------- AnyNet: simple_stem_in x basic / vanilla --------------------------------
    _case("anynet_simple_basic", "anynet",
          _anynet(SIMPLE, 16, BASIC, [1, 1, 1, 1], [16, 32, 64, 128], [2, 2, 2, 2]),
          "simple_stem_in with res_basic_block"),
    _case("anynet_simple_vanilla", "anynet",
          _anynet(SIMPLE, 8, VANILLA, [1, 1, 1, 1], [8, 16, 32, 64], [2, 2, 2, 2]),
          "simple_stem_in with vanilla blocks", checkpoint=True),
    # ---------------- AnyNet: res_stem_cifar ----------------------------------------------------
    _case("anynet_cifar_basic_r20", "anynet",
          _anynet(RES_CIFAR, 16, BASIC, [3, 3, 3], [16, 32, 64], [1, 2, 2]),
          "pycls's CIFAR ResNet-20 written as an AnyNet (configs/archive/cifar/anynet style)"),
    _case("anynet_cifar_basic_r18_3stages", "anynet",
          _anynet(RES_CIFAR, 8, BASIC, [2, 2, 2], [8, 16, 32], [1, 2, 2]),
          "CIFAR stem with the first three ResNet-18 stages at 1/8 width", checkpoint=True),
    _case("anynet_cifar_bneck", "anynet",
          _anynet(RES_CIFAR, 16, BNECK, [3, 4], [64, 128], [1, 2], [0.25] * 2, [16, 32]),
          "CIFAR stem with the first two ResNet-50 stages at a quarter width"),
    _case("anynet_cifar_vanilla_v20", "anynet",
          _anynet(RES_CIFAR, 16, VANILLA, [3, 3, 3], [16, 32, 64], [1, 2, 2]),
          "pycls's CIFAR V-56 shape at depth 20 (vanilla blocks)"),
    # ---------------- RegNet --------------------------------------------------------------------
    _case("regnetx_custom_d14", "regnet",
          _regnet(14, 40, 30.0, 2.3, 8, nc=1000),
          "custom RegNetX numbers"),
    _case("regnety_custom_d14", "regnet",
          _regnet(14, 40, 30.0, 2.3, 8, se=True),
          "custom RegNetY numbers, 10 classes"),
    _case("regnety_small_nc10", "regnet",
          _regnet(8, 8, 6.0, 2.0, 8, se=True, extra={"REGNET.STEM_W": 8}),
          "a small custom RegNetY (stem width 8), 10 classes", checkpoint=True),
    _case("regnetx_small_eps1e-3", "regnet",
          _regnet(8, 8, 6.0, 2.0, 8, nc=100, extra={"REGNET.STEM_W": 8, "BN.EPS": 1e-3}),
          "a small custom RegNetX with BN.EPS 1e-3, 100 classes", checkpoint=True),
    _case("regnetx_stride1", "regnet",
          _regnet(8, 8, 6.0, 2.0, 8, extra={"REGNET.STEM_W": 8, "REGNET.STRIDE": 1}),
          "REGNET.STRIDE 1: no stage downsamples (only the stem)", checkpoint=True),
    _case("regnetx_botmul_0p5", "regnet",
          _regnet(12, 24, 16.0, 2.2, 8, extra={"REGNET.BOT_MUL": 0.5}),
          "REGNET.BOT_MUL 0.5 (widths re-quantized by adjust_ws_gs_comp)"),
    _case("regnetx_botmul_0p5_g1", "regnet",
          _regnet(8, 16, 12.0, 2.0, 64, extra={"REGNET.BOT_MUL": 0.5}),
          "BOT_MUL 0.5 with GROUP_W 64 > w_b: every stage has one group"),
    _case("regnetx_6stages", "regnet",
          _regnet(10, 8, 8.0, 1.5, 8),
          "custom numbers that give six stages"),
    _case("regnetx_res_stem_in", "regnet",
          _regnet(8, 16, 12.0, 2.0, 8, extra={"REGNET.STEM_TYPE": "res_stem_in",
                                              "REGNET.STEM_W": 16}),
          "REGNET.STEM_TYPE res_stem_in (7x7 stem with max-pool)"),
    _case("regnety_cifar_2stages", "regnet",
          _regnet(6, 16, 8.0, 2.5, 8, se=True, extra={"REGNET.STEM_TYPE": "res_stem_cifar",
                                                      "REGNET.STEM_W": 16}, data=CIFAR),
          "the shape of pycls master's cifar_regnet sweep: CIFAR stem, SE, two stages"),
    _case("regnetx_200mf_nc100", "regnet",
          _regnet(13, 24, 36.44, 2.49, 8, nc=100),
          "zoo RegNetX-200MF numbers, 100 classes"),
    _case("regnety_800mf_nc10", "regnet",
          _regnet(14, 56, 38.84, 2.4, 16, se=True),
          "zoo RegNetY-800MF numbers, 10 classes"),
    # ---------------- resnet.py -------------------------------------------------------------
    _case("resnet_cifar_r20", "resnet",
          _resnet(20, 10, {"RESNET.TRANS_FUN": "basic_transform"}, cifar=True),
          "resnet.py CIFAR ResNet-20 (TRAIN.DATASET cifar10: stem 16, stages 16/32/64)",
          checkpoint=True),
    _case("resnet_cifar_r56", "resnet",
          _resnet(56, 10, {"RESNET.TRANS_FUN": "basic_transform"}, cifar=True),
          "resnet.py CIFAR ResNet-56 (configs/archive/cifar/resnet/R-56_nds_1gpu.yaml)"),
    _case("resnet_in50_stride1x1", "resnet",
          _resnet(50, 1000, {"RESNET.TRANS_FUN": "bottleneck_transform",
                             "RESNET.NUM_GROUPS": 1, "RESNET.WIDTH_PER_GROUP": 64}),
          "resnet.py ResNet-50 with pycls's default RESNET.STRIDE_1X1 True (stride on the 1x1)"),
    _case("resnet_in50_stride3x3", "resnet",
          _resnet(50, 1000, {"RESNET.TRANS_FUN": "bottleneck_transform",
                             "RESNET.NUM_GROUPS": 1, "RESNET.WIDTH_PER_GROUP": 64,
                             "RESNET.STRIDE_1X1": False, "BN.ZERO_INIT_FINAL_GAMMA": True}),
          "resnet.py ResNet-50 as configs/archive/imagenet/resnet/R-50-1x64d_step_8gpu.yaml "
          "(STRIDE_1X1 False: stride on the 3x3)"),
    _case("resnext_in50_32x4d", "resnet",
          _resnet(50, 1000, {"RESNET.TRANS_FUN": "bottleneck_transform",
                             "RESNET.NUM_GROUPS": 32, "RESNET.WIDTH_PER_GROUP": 4,
                             "RESNET.STRIDE_1X1": False, "BN.ZERO_INIT_FINAL_GAMMA": True}),
          "resnet.py ResNeXt-50 32x4d as configs/archive/imagenet/resnet/X-50-32x4d_step_8gpu.yaml"),
    _case("resnet_in50_w16_stride1x1", "resnet",
          _resnet(50, 10, {"RESNET.TRANS_FUN": "bottleneck_transform",
                           "RESNET.NUM_GROUPS": 1, "RESNET.WIDTH_PER_GROUP": 16}),
          "resnet.py ResNet-50 with WIDTH_PER_GROUP 16 (w_b 16..128, outputs still 256..2048), "
          "stride on the 1x1"),
    # ---------------- EfficientNet ----------------------------------------------------------
    _case("effnet_b0_nc10", "effnet",
          _effnet(_B0["stem_w"], _B0["ds"], _B0["ws"], _EN_SS, _EN_ER, _EN_KS, _B0["head_w"]),
          "zoo EfficientNet-B0 numbers, 10 classes"),
    _case("effnet_b3_nc10", "effnet",
          _effnet(_B3["stem_w"], _B3["ds"], _B3["ws"], _EN_SS, _EN_ER, _EN_KS, _B3["head_w"]),
          "zoo EfficientNet-B3 numbers, 10 classes"),
    _case("effnet_b0_extra_block", "effnet",
          _effnet(_B0["stem_w"], [1, 2, 2, 3, 3, 4, 2], _B0["ws"], _EN_SS, _EN_ER, _EN_KS,
                  _B0["head_w"], extra={"EN.DC_RATIO": 0.2, "EN.DROPOUT_RATIO": 0.2}),
          "B0 with one more block in its last stage; drop-connect and dropout 0.2 (no keys)"),
    _case("effnet_narrow_nc10", "effnet",
          _effnet(16, [1, 2, 2, 1], [8, 16, 24, 40], [1, 2, 2, 2], [1, 4, 6, 6], [3, 3, 5, 3],
                  128),
          "a narrow four-stage EffNet (all widths multiples of 8), 10 classes", checkpoint=True),
    _case("effnet_k7_se_r_0p125_eps1e-3", "effnet",
          _effnet(24, [1, 2, 2, 2], [16, 24, 48, 96], [1, 2, 2, 2], [1, 4, 4, 4], [3, 7, 5, 7],
                  640, se_r=0.125, extra={"BN.EPS": 1e-3}),
          "kernels 7, expansion 4, EN.SE_R 0.125, HEAD_W 640, BN.EPS 1e-3"),
    _case("effnet_se_rounding", "effnet",
          _effnet(16, [1, 1, 1], [14, 22, 40], [1, 2, 2], [1, 4, 4], [3, 3, 3], 64),
          "w_in * SE_R = 3.5 and 5.5: pycls floors (int), a rounding library gets 4 and 6"),
    _case("effnet_odd_widths", "effnet",
          _effnet(12, [1, 2, 1], [10, 18, 30], [1, 2, 2], [1, 3, 6], [3, 5, 3], 100),
          "widths that are not multiples of 8 (10 * 3 = 30 expanded channels)"),
]

NAMES = [c["name"] for c in CASES]
BY_NAME = {c["name"]: c for c in CASES}
assert len(NAMES) == len(set(NAMES))

# cfg values that pycls 0.1.1 rejects (each with what it raises), recorded in facts.json.
UNBUILDABLE = [
    {"name": "regnet_basic_block", "values": _regnet(8, 16, 12.0, 2.0, 8, extra={
        "REGNET.BLOCK_TYPE": "res_basic_block"})},
    {"name": "regnet_vanilla_block", "values": _regnet(8, 16, 12.0, 2.0, 8, extra={
        "REGNET.BLOCK_TYPE": "vanilla_block"})},
    {"name": "anynet_basic_with_bot_muls", "values": _anynet(
        RES_IN, 16, BASIC, [1, 1], [16, 32], [1, 2], [1.0, 1.0], [8, 8])},
    {"name": "anynet_vanilla_with_se", "values": _anynet(
        SIMPLE, 16, VANILLA, [1, 1], [16, 32], [2, 2], se_r=0.25)},
    {"name": "anynet_groups_not_dividing", "values": _anynet(
        SIMPLE, 16, BNECK, [1], [192], [2], [1.0], [20])},
    {"name": "resnet_cifar_bottleneck", "values": _resnet(
        20, 10, {"RESNET.TRANS_FUN": "bottleneck_transform"}, cifar=True)},
    {"name": "resnet_imagenet_basic", "values": _resnet(
        50, 10, {"RESNET.TRANS_FUN": "basic_transform"})},
    {"name": "resnet_imagenet_depth_18", "values": _resnet(
        18, 10, {"RESNET.TRANS_FUN": "bottleneck_transform"})},
    {"name": "resnet_cifar_depth_18", "values": _resnet(
        18, 10, {"RESNET.TRANS_FUN": "basic_transform"}, cifar=True)},
    {"name": "resnet_no_dataset", "values": {"MODEL.TYPE": "resnet", "MODEL.DEPTH": 50,
                                             "RESNET.TRANS_FUN": "bottleneck_transform"}},
]


def input_size(case: dict) -> int:
    """Spatial size of the seeded input: 32 for CIFAR stems, else 64."""
    v = case["values"]
    stem = v.get("ANYNET.STEM_TYPE") or v.get("REGNET.STEM_TYPE")
    if stem == "res_stem_cifar" or (v["MODEL.TYPE"] == "resnet"
                                    and v.get("TRAIN.DATASET") == "cifar10"):
        return 32
    return 64


# ---------------------------------------------------------------------------------------------
# The pycls side, shared by both scripts: build, weights with measured BN statistics, input,
# forward hooks, deterministic writers. torch / numpy / pycls are imported inside.
# ---------------------------------------------------------------------------------------------

OUT_DIR_ROOT = "/tmp/ckptconv-design-space"  # cfg.OUT_DIR of every case: <root>/<name>
CKPT_EPOCH = 9  # save_checkpoint(model, optimizer, 9) writes checkpoints/model_epoch_0010.pyth
BN_BATCHES = 4
BN_BATCH_SIZE = 8

PROCEDURE = (
    "Per case, in one process: reset pycls 0.1.1's cfg, merge the case's values (zoo.merge_values, "
    "i.e. yacs merge_from_list as a YAML would), set OUT_DIR to /tmp/ckptconv-design-space/<case>; "
    "torch.manual_seed(0); model = pycls.core.builders.build_model(). Weights: zoo.recipe_state "
    "(numpy default_rng(0) over model.state_dict() keys in order). One training step as pycls's "
    "trainer takes it: optimizer = pycls.core.optimizer.construct_optimizer(model) (SGD, lr 0.1, "
    "momentum 0.9, nesterov, weight decay 5e-4), model.train(), input default_rng(10)."
    "standard_normal((8, 3, S, S)), labels default_rng(11).integers(0, NUM_CLASSES, 8), pycls's "
    "cross-entropy loss, backward, optimizer.step() (so the optimizer holds momentum buffers). "
    "Then BatchNorm statistics are MEASURED as precise-BN does: every BatchNorm2d "
    "reset_running_stats() with momentum None (cumulative average), model.train(), "
    "torch.manual_seed(0), 4 batches default_rng(20 + i).standard_normal((8, 3, S, S)) under "
    "no_grad, momentum restored to BN.MOM; model.eval(). Test input: "
    "default_rng(1).standard_normal((2, 3, S, S)) float32, S = 32 for CIFAR stems and resnet.py "
    "CIFAR models, else 64. Every comparison runs in eval mode under torch.no_grad().")


def pycls_set_cfg(case: dict):
    """Reset pycls's global cfg and merge the case (plus its OUT_DIR); return the cfg."""
    import zoo
    from pycls.core.config import cfg, reset_cfg

    reset_cfg()
    zoo.merge_values(cfg, case["values"])
    cfg.OUT_DIR = f"{OUT_DIR_ROOT}/{case['name']}"
    return cfg


def _batch(seed: int, n: int, size: int):
    import numpy as np
    import torch

    return torch.from_numpy(np.random.default_rng(seed).standard_normal(
        (n, 3, size, size)).astype(np.float32))


def make_input(case: dict):
    return _batch(1, 2, input_size(case))


def pycls_prepare(case: dict):
    """Build the case's pycls model and give it weights as PROCEDURE says.
    Returns (model in eval mode, optimizer, cfg)."""
    import numpy as np
    import pycls.core.builders as builders
    import pycls.core.optimizer as optim
    import torch
    import zoo

    cfg = pycls_set_cfg(case)
    torch.manual_seed(0)
    model = builders.build_model()
    state = zoo.recipe_state({k: tuple(v.shape) for k, v in model.state_dict().items()})
    model.load_state_dict({k: torch.from_numpy(a) for k, a in state.items()}, strict=True)
    size = input_size(case)
    optimizer = optim.construct_optimizer(model)
    model.train()
    x = _batch(10, BN_BATCH_SIZE, size)
    y = torch.from_numpy(np.random.default_rng(11).integers(
        0, cfg.MODEL.NUM_CLASSES, BN_BATCH_SIZE).astype(np.int64))
    torch.manual_seed(0)
    loss = builders.build_loss_fun()(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    measure_statistics(model, size, cfg.BN.MOM)
    model.eval()
    return model, optimizer, cfg


def measure_statistics(model, size: int, momentum: float) -> None:
    """BatchNorm statistics MEASURED (pycls's precise-BN, cumulative): reset, momentum None, train
    mode, ``torch.manual_seed(0)``, BN_BATCHES batches ``_batch(20 + i, ...)`` under no_grad, then
    ``momentum`` (cfg.BN.MOM) restored. The model is left in train mode."""
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        for i in range(BN_BATCHES):
            model(_batch(20 + i, BN_BATCH_SIZE, size))
    for bn in bns:
        bn.momentum = momentum


def pycls_points(model) -> list:
    """Module names whose outputs are recorded: stem, s1..sN (and EffNet's head conv+BN+Swish)."""
    names = [n for n, _ in model.named_children() if n == "stem" or
             (n.startswith("s") and n[1:].isdigit())]
    if hasattr(model.head, "conv_swish"):
        names.append("head.conv_swish")
    return names


def run_hooked(model, x, names):
    """(output, {name: output of that submodule}) under no_grad; outputs cloned."""
    import torch

    mods = dict(model.named_modules())
    outs, handles = {}, []
    for n in names:
        handles.append(mods[n].register_forward_hook(
            lambda _m, _i, o, n=n: outs.__setitem__(n, o.detach().clone())))
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        for h in handles:
            h.remove()
    return y, outs


def compare(ref, got) -> dict:
    """max |ref - got|, and that over max |ref| (None where shapes differ)."""
    if tuple(ref.shape) != tuple(got.shape):
        return {"shape_mismatch": [list(ref.shape), list(got.shape)]}
    d = float((ref - got).abs().max())
    scale = float(ref.abs().max())
    return {"max_abs": d, "max_rel": (d / scale) if scale else None}


def write_text(path, text: str) -> None:
    """Write through a temporary file beside it."""
    import os
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def dumps(obj, indent: int = 0) -> str:
    """JSON with one level of indentation per nesting, but every list of scalars (and every
    list of such lists' rows, e.g. manifest rows [key, shape, dtype]) on one line."""
    import json

    def flat(v):
        return not isinstance(v, (dict, list)) or (
            isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v))

    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(str(k))}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if flat(obj):
            return json.dumps(obj)
        if all(isinstance(x, list) and all(flat(y) for y in x) for x in obj):
            return "[\n" + ",\n".join(inner + json.dumps(x) for x in obj) + "\n" + pad + "]"
        return "[\n" + ",\n".join(inner + dumps(x, indent + 1) for x in obj) + "\n" + pad + "]"
    return json.dumps(obj)


def write_json(path, obj) -> None:
    write_text(path, dumps(obj) + "\n")


def write_npz(path, arrays: dict) -> None:
    """An .npz numpy.load reads, with fixed zip timestamps (numpy.savez stamps the time)."""
    import io
    import os
    import zipfile
    from pathlib import Path

    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)


def read_npz(path) -> dict:
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


LIBRARIES = ["timm", "torchvision", "mmdet", "mmpretrain"]


def merge_targets(path, libs: list, results: dict, about: dict) -> None:
    """Replace libs' entries of the cases in results in targets.json; keep everything else."""
    import json
    from pathlib import Path

    path = Path(path)
    doc = json.loads(path.read_text()) if path.exists() else {}
    old = doc.get("cases", {})
    abouts = doc.get("_about", {})
    abouts.update(about)
    cases_out = {}
    for name in NAMES:
        entry = dict(old.get(name, {}))
        for lib in libs:
            if name in results and lib in results[name]:
                entry[lib] = results[name][lib]
        if entry:
            cases_out[name] = {lib: entry[lib] for lib in LIBRARIES if lib in entry}
    write_json(path, {"_about": {k: abouts[k] for k in sorted(abouts)}, "cases": cases_out})


# ---------------------------------------------------------------------------------------------
# What pycls built, and key-mapping checks (both scripts)
# ---------------------------------------------------------------------------------------------

def pycls_spec(case: dict, model) -> dict:
    """The case as the numbers pycls's builder used (cfg must hold the case)."""
    from pycls.core.config import cfg as c
    from pycls.models.anynet import AnyNet as PyclsAnyNet
    from pycls.models.effnet import EffNet as PyclsEffNet
    from pycls.models.regnet import RegNet as PyclsRegNet

    mt = c.MODEL.TYPE
    sp = {"model_type": mt, "nc": c.MODEL.NUM_CLASSES, "eps": c.BN.EPS}
    if mt in ("anynet", "regnet"):
        a = PyclsRegNet.get_args() if mt == "regnet" else PyclsAnyNet.get_args()
        sp.update(stem_type=a["stem_type"], stem_w=a["stem_w"], block_type=a["block_type"],
                  ds=list(a["ds"]), ws=list(a["ws"]), ss=list(a["ss"]),
                  bms=list(a["bms"]) if a["bms"] else None,
                  gws=list(a["gws"]) if a["gws"] else None, se_r=a["se_r"], stride_1x1=False)
        if mt == "regnet":
            sp["regnet"] = {"depth": c.REGNET.DEPTH, "w0": c.REGNET.W0, "wa": c.REGNET.WA,
                            "wm": c.REGNET.WM, "group_w": c.REGNET.GROUP_W,
                            "bot_mul": c.REGNET.BOT_MUL, "stride": c.REGNET.STRIDE}
        if sp["block_type"] == "res_bottleneck_block":
            sp["w_bs"] = [int(round(w * b)) for w, b in zip(sp["ws"], sp["bms"])]
            sp["groups"] = [wb // g for wb, g in zip(sp["w_bs"], sp["gws"])]
    elif mt == "resnet":
        if "cifar" in c.TRAIN.DATASET:
            d = (c.MODEL.DEPTH - 2) // 6
            sp.update(stem_type="res_stem_cifar", stem_w=16, block_type="res_basic_block",
                      ds=[d] * 3, ws=[16, 32, 64], ss=[1, 2, 2], bms=None, gws=None,
                      se_r=None, stride_1x1=False)
        else:
            g, gw = c.RESNET.NUM_GROUPS, c.RESNET.WIDTH_PER_GROUP
            ds = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}[c.MODEL.DEPTH]
            w_bs = [g * gw * 2 ** i for i in range(4)]
            sp.update(stem_type="res_stem_in", stem_w=64, block_type="res_bottleneck_block",
                      ds=ds, ws=[256, 512, 1024, 2048], ss=[1, 2, 2, 2], se_r=None,
                      bms=[wb / w for wb, w in zip(w_bs, [256, 512, 1024, 2048])],
                      gws=[wb // g for wb in w_bs], w_bs=w_bs, groups=[g] * 4,
                      stride_1x1=bool(c.RESNET.STRIDE_1X1))
    else:
        a = PyclsEffNet.get_args()
        sp.update(stem_w=a["stem_w"], ds=list(a["ds"]), ws=list(a["ws"]),
                  ers=list(a["exp_rs"]), se_r=a["se_r"], ss=list(a["ss"]), ks=list(a["ks"]),
                  head_w=a["head_w"], dropout=c.EN.DROPOUT_RATIO)
    return sp


def pycls_structure(model, sp: dict) -> dict:
    """Read off the built modules: stem and, per stage, every block's convs (the numbers a
    library has to reproduce)."""
    import torch.nn as nn

    stem = model.stem
    out = {"stem": {"children": [n for n, _ in stem.named_children()],
                    "conv": _conv_desc(stem.conv)}, "stages": []}
    for n, st in model.named_children():
        if not (n.startswith("s") and n[1:].isdigit()):
            continue
        blocks = []
        for bn, blk in st.named_children():
            convs = {k: _conv_desc(m) for k, m in blk.named_modules()
                     if isinstance(m, nn.Conv2d)}
            blocks.append({"block": bn, "convs": convs,
                           "skip": _has_skip(blk)})
        out["stages"].append({"stage": n, "blocks": blocks})
    head = {k: _conv_desc(m) for k, m in model.head.named_modules()
            if isinstance(m, nn.Conv2d)}
    out["head"] = {"children": [n for n, _ in model.head.named_children()],
                   "fc": list(model.head.fc.weight.shape), **({"convs": head} if head else {})}
    return out


def _conv_desc(m) -> list:
    """[in, out, kernel, stride, padding, groups]."""
    return [m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], m.groups]


def _has_skip(blk) -> str:
    if hasattr(blk, "proj_block"):
        return "projection" if blk.proj_block else "identity"
    if hasattr(blk, "has_skip"):
        return "identity" if blk.has_skip else "none"
    return "none"


def split_key(key: str):
    """'s2.b3.f.a_bn.weight' -> (2, 3, 'f.a_bn', 'weight'); others -> (None, None, module, leaf)."""
    mod, _, leaf = key.rpartition(".")
    m = re.fullmatch(r"s(\d+)\.b(\d+)\.(.+)", mod)
    if m:
        return int(m.group(1)), int(m.group(2)), m.group(3), leaf
    return None, None, mod, leaf


def check_keys(psd: dict, lsd: dict, mp: dict) -> list:
    """Problems of the mapping against the library's state_dict (empty list: a bijection with
    equal shapes and dtypes)."""
    probs = []
    mapped = list(mp.values())
    missing = [t for t in mapped if t not in lsd]
    extra = [k for k in lsd if k not in set(mapped)]
    if missing:
        probs.append(f"{len(missing)} pycls tensors have no such key, e.g. "
                     f"{[k for k, t in mp.items() if t not in lsd][:2]} -> {missing[:2]}")
    if extra:
        probs.append(f"{len(extra)} library tensors have no pycls source, e.g. {extra[:3]}")
    shp = [(k, t, list(psd[k].shape), list(lsd[t].shape)) for k, t in mp.items()
           if t in lsd and tuple(psd[k].shape) != tuple(lsd[t].shape)]
    if shp:
        probs.append(f"{len(shp)} shapes differ, e.g. " + "; ".join(
            f"{k} {a} vs {t} {b}" for k, t, a, b in shp[:3]))
    dt = [k for k, t in mp.items() if t in lsd and psd[k].dtype != lsd[t].dtype]
    if dt:
        probs.append(f"{len(dt)} dtypes differ, e.g. {dt[:2]}")
    return probs
