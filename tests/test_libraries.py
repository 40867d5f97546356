"""A new target library is one module plus its tables (docs/tables.md, "Adding a library").

The toy library here is defined the way ``ckptconv/libraries/<name>.py`` defines one: a
``Library`` naming its loader's weight set and its reference model, registered from this test
module; its one table is a file in a ``--tables`` directory. Nothing in ckptconv names it, and a
conversion to it is written, read back and verified like any built-in target's. Its model is
pycls's EfficientNet under one more module (``body.``), so what it must compute is pycls's own.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ckptconv.libraries import Library, Reference, libraries, register, unregister
from ckptconv.verification.models.pycls import EffNet


class ToyNet(nn.Module):
    """The toy library's EfficientNet: pycls's, held as ``body``."""

    def __init__(self, variant, b):
        super().__init__()
        self.body = EffNet(variant, b)

    def forward_levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.body.forward_levels(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


TOY = Library(name="toy", title="Toy", loads=("state_dict",),
              references={"effnet": {"toy": Reference(f"{__name__}:ToyNet", ("stem", "s{n}", "head", "logits"))}})

TABLE = """
[layout]
name      = "toy"
version   = 1
summary   = "the toy library's EfficientNet: pycls's under body."
library   = "toy"
class     = "Toy (ToyNet)"
reference = "toy"
container = "state_dict"

[settings]
padding = "symmetric"
config  = "build ToyNet with BN eps {eps}"

[pipeline]
reads = "bgr"
scale = 1

[names.op]
"exp" = "exp"
"exp_bn" = "exp_bn"
"dwise" = "dwise"
"dwise_bn" = "dwise_bn"
"se.f_ex.0" = "se.f_ex.0"
"se.f_ex.2" = "se.f_ex.2"
"lin_proj" = "lin_proj"
"lin_proj_bn" = "lin_proj_bn"

[mapping]
rules = [
  { name = "stem",  from = "stem.{part}.{param}",            to = "body.stem.{part}.{param}" },
  { name = "block", from = "s{stage}.b{block}.{op}.{param}", to = "body.s{stage}.b{block}.{op}.{param}" },
  { name = "head",  from = "head.{part}.{param}",            to = "body.head.{part}.{param}" },
]

[levels]
"stem"   = "stem"
"s{n}"   = "s{n}"
"head"   = "head"
"logits" = "logits"
"""


@pytest.fixture
def toy(tmp_path):
    register(TOY)
    tables = tmp_path / "tables"
    (tables / "effnet" / "layouts").mkdir(parents=True)
    (tables / "effnet" / "layouts" / "toy.toml").write_text(TABLE)
    yield tables
    unregister("toy")


def test_a_library_is_its_module_and_its_table(cli, make_ckpt, tmp_path, toy):
    src, out = make_ckpt(arch="b0"), tmp_path / "b0_toy.pth"
    converted = cli("--tables", toy, "convert", src, out, "--to", "toy", "--json")
    assert converted.exit_code == 0, converted.output
    result = json.loads(converted.stdout)
    assert result["verification"]["ok"] and {"stem", "s7", "logits"} <= {lv["name"] for lv in result["verification"]["levels"]}
    saved = torch.load(out, weights_only=True)
    pycls = torch.load(src, weights_only=True)["model_state"]
    assert set(saved) == {"state_dict", "meta"} and saved["meta"]["layout"] == "toy"
    assert {k: v.shape for k, v in saved["state_dict"].items()} == {f"body.{k}": v.shape for k, v in pycls.items()}
    verified = cli("--tables", toy, "verify", out, "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["files"][0]["layout"] == "toy"


def test_without_its_module_the_table_names_the_known_libraries(cli, make_ckpt, tmp_path, toy):
    unregister("toy")
    result = cli("--tables", toy, "convert", make_ckpt(arch="b0"), tmp_path / "o.pth", "--to", "toy")
    assert result.exit_code == 2 and "no library 'toy'" in result.stderr and "timm" in result.stderr
    assert "toy" not in libraries() and not (tmp_path / "o.pth").exists()
