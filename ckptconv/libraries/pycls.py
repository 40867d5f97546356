"""pycls 0.1.1 itself: the hub every table maps from, and the arithmetic every check is held to."""

from . import Library, Reference

M = "ckptconv.verification.models"
ANYNET = Reference(f"{M}.anynet:PyclsAnyNet", ("stem", "s{n}", "logits"))  # after the stem, each stage, the fc

LIBRARY = Library(
    name="pycls",
    title="pycls",
    loads=("best",),  # load_checkpoint: model_state, or ema_state when its recorded error is lower
    references={
        "effnet": {"pycls": Reference(f"{M}.pycls:EffNet", ("stem", "s{n}", "head", "logits"))},  # head: conv, BN, SiLU
        "regnet": {"pycls": ANYNET},
        "resnet": {"pycls": ANYNET},
        "anynet": {"pycls": ANYNET},
    },
)
