"""Arch detection from pycls's dumped cfg, whatever YAML style it was dumped in."""

from __future__ import annotations

import pytest

from ckptconv.tables.detect import arch_from_cfg, parse_cfg
from ckptconv.errors import FormatError, MappingError

BLOCK = """EN:
  DC_RATIO: 0.2
  DEPTHS:
  - 2
  - 3
  - 3
  - 5
  - 5
  - 6
  - 2
  HEAD_W: 1536
  STEM_W: 40
  WIDTHS:
  - 24
  - 32
  - 48
  - 96
  - 136
  - 232
  - 384
MODEL:
  TYPE: effnet
TRAIN:
  IM_SIZE: 300
"""

FLOW = """MODEL:
  TYPE: effnet
EN:
  STEM_W: 48
  DEPTHS: [3, 5, 5, 7, 7, 9, 3]
  WIDTHS: [24, 40, 64, 128, 176, 304, 512]
  HEAD_W: 2048
"""


def test_block_and_flow_lists(registry):
    assert parse_cfg(BLOCK)["EN"]["DEPTHS"] == [2, 3, 3, 5, 5, 6, 2]
    assert arch_from_cfg(BLOCK, registry.variants) == "b3"
    assert arch_from_cfg(FLOW, registry.variants) == "b5"


def test_no_cfg_or_no_en_section_says_nothing(registry):
    assert arch_from_cfg(None, registry.variants) is None
    assert arch_from_cfg("MODEL:\n  TYPE: effnet\n", registry.variants) is None


def test_another_model_type_is_refused(registry):
    with pytest.raises(FormatError, match="MODEL.TYPE: vit; ckptconv converts anynet, efficientnet, effnet, regnet"):
        arch_from_cfg("MODEL:\n  TYPE: vit\n", registry.variants)


def test_unknown_en_numbers_are_refused(registry):
    odd = FLOW.replace("HEAD_W: 2048", "HEAD_W: 9999")
    with pytest.raises(MappingError, match="EN numbers no known variant has"):
        arch_from_cfg(odd, registry.variants)


def test_a_cfg_given_as_a_dict(registry):
    cfg = {"MODEL": {"TYPE": "effnet"}, "EN": {"STEM_W": 32, "DEPTHS": [1, 2, 2, 3, 3, 4, 1], "WIDTHS": [16, 24, 40, 80, 112, 192, 320], "HEAD_W": 1280}}
    assert arch_from_cfg(cfg, registry.variants) == "b0"
