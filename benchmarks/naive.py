"""The naive converter ckptconv is measured against: what a one-off script does.

Full ``torch.load`` (optimizer state and all), key renames by string substitution, ``torch.save``.
No checks. Usage: python benchmarks/naive.py IN OUT
"""

import re
import sys

import torch

RENAMES = [  # pycls -> mmdet 3.x for b0..b5, by regex on whole keys
    (r"^stem\.conv\.", "layers.0.conv."),
    (r"^stem\.bn\.", "layers.0.bn."),
    (r"\.exp\.", ".expand_conv.conv."),
    (r"\.exp_bn\.", ".expand_conv.bn."),
    (r"\.dwise\.", ".depthwise_conv.conv."),
    (r"\.dwise_bn\.", ".depthwise_conv.bn."),
    (r"\.se\.f_ex\.0\.", ".se.conv1.conv."),
    (r"\.se\.f_ex\.2\.", ".se.conv2.conv."),
    (r"\.lin_proj\.", ".linear_conv.conv."),
    (r"\.lin_proj_bn\.", ".linear_conv.bn."),
    (r"^head\.conv\.", "layers.6.conv."),
    (r"^head\.conv_bn\.", "layers.6.bn."),
]
LAYER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 4, 6: 5, 7: 5}


def main(src: str, dst: str) -> None:
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    state = ckpt["model_state"]
    depths: dict[int, int] = {}
    for key in state:
        m = re.match(r"s(\d+)\.b(\d+)\.", key)
        if m:
            depths[int(m[1])] = max(depths.get(int(m[1]), 0), int(m[2]))
    out = {}
    for key, value in state.items():
        if key.startswith("head.fc."):
            continue
        m = re.match(r"s(\d+)\.b(\d+)\.(.*)", key)
        if m:
            stage, block = int(m[1]), int(m[2])
            offset = sum(depths[s] for s in range(1, stage) if LAYER[s] == LAYER[stage])
            key = f"layers.{LAYER[stage]}.{offset + block - 1}.{m[3]}"
            key = "." + key  # so the renames' leading-dot patterns see the first op
        for pattern, repl in RENAMES:
            key = re.sub(pattern, repl, key)
        out[key.lstrip(".")] = value
    torch.save({"state_dict": out}, dst)


if __name__ == "__main__":
    main(*sys.argv[1:3])
