#!/usr/bin/env python3
"""Ground truth for reading pycls YAML cfgs, made by the REAL pycls 0.1.1 loader (yacs 0.1.8 over
PyYAML 6.0.4, Python 3.11).

ckptconv reads pycls cfgs from three places: a run's ``OUT_DIR/config.yaml``, ``--cfg FILE``, and
the ``cfg`` string pycls stores in its checkpoints (``save_checkpoint`` puts ``cfg.dump()`` there).
pycls itself reads a YAML cfg in exactly one way: ``load_cfg(out_dir, cfg_dest)`` and
``load_cfg_fom_args()`` (``--cfg``) in ``pycls/core/config.py`` both call
``_C.merge_from_file(path)`` on the global cfg, i.e. yacs opens the file in text mode, runs
``yaml.safe_load`` on it, builds a ``CfgNode`` of the result and merges it over pycls's defaults with
``_decode_cfg_value`` (``ast.literal_eval`` of every string) and
``_check_and_coerce_cfg_value_type`` per key. This script records what that loader makes of each
test YAML, for the tests of ckptconv's cfg reader (tests/test_*.py that load
``tests/data/pycls_cfg/*.json``; the reader must agree with this data case by case).

Writes, under the repository root:

- ``tests/data/pycls_cfg/defaults.json``: pycls 0.1.1's whole default cfg tree
  (``pycls.core.config._C`` as imported), every section and key in pycls's order, each leaf as
  ``{"value": ..., "type": ...}``; the package versions; and ``rules``: the key rules pycls adds
  (deprecated keys, renamed keys, the ``assert_and_infer_cfg`` checks its tools run after loading,
  the builder's MODEL.TYPE check) and the yacs rules it relies on, each with ``file:line`` (package
  relative; the lines are found in the installed sources and tracebacks, not typed in).
- ``tests/data/pycls_cfg/cases.json``: the cases (``name``, ``why``, ``yaml``, optional
  ``encoding`` / ``filename``) and for each what the real loader did: ``{"ok": true, "values":
  ..., "types": ..., "changed": ..., "assert_and_infer_cfg": ..., "get_model": ...}`` or
  ``{"ok": false, "error_type": ..., "error": ...}``.
- ``tests/data/pycls_cfg/README.md`` is written by hand, not by this script.

Each case is loaded three ways, and the first two must agree (the script stops if they do not):
(1) a fresh ``clone()`` of ``_C`` taken at import (before anything touched it: it carries pycls's
deprecated keys) and ``clone.merge_from_file(tmp/<filename>)``; (2) pycls's own global path:
``reset_cfg()`` then ``pycls.core.config.load_cfg(tmp, <filename>)``, followed by
``assert_and_infer_cfg(cache_urls=False)`` (what pycls's train/test tools run next; no download)
and ``pycls.core.builders.get_model()``; (3) ``merge_from_other_cfg(CfgNode.load_cfg(text))``, the
yacs way to load a checkpoint's ``cfg`` string (no file, so no text-mode newline translation and no
extension check); ``same_as_string_load`` says whether it agreed with (1), and ``string_load`` holds
its result when not.

Environment: ``tools/groundtruth/requirements/gt.txt`` (a pinned freeze of the venv this ran in:
Python 3.11, pycls 0.1.1 installed --no-deps with yacs 0.1.8, PyYAML 6.0.4, iopath, simplejson,
torch 2.14.1 for pycls's builder imports). CPU only, no network. The script re-executes itself
once with PYTHONHASHSEED=0 (yacs's unsupported-extension message prints a set of strings) and
PYTHONUTF8=1 (yacs opens the file in the default text encoding; the data are UTF-8's).

Run from the repository root:
    .venv/gt/bin/python tools/groundtruth/pycls_cfg.py
Deterministic: a rerun in the same venv writes the same bytes. Temporary YAML files live in a
temporary directory that is deleted at the end; its path never reaches the outputs (messages that
name it have it replaced by ``$TMPDIR``).
"""

from __future__ import annotations

import os
import sys

# Error messages that print a set of strings (yacs's file-extension error) depend on str hashing,
# and yacs opens the cfg in the locale's encoding: pin both, once, before anything else runs.
if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("PYTHONUTF8") != "1":
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**os.environ, "PYTHONHASHSEED": "0", "PYTHONUTF8": "1"})

import ast
import importlib.metadata
import inspect
import json
import logging
import math
import platform
import tempfile
import traceback
from pathlib import Path

import pycls.core.builders as builders
import pycls.core.checkpoint as checkpoint
import pycls.core.config as config
import pycls.models.model_zoo as model_zoo
import yacs.config
import yaml
import zoo  # tools/groundtruth/zoo.py: run as a script, this folder is sys.path[0]

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "pycls_cfg"
PACKAGE_DATA = ROOT / "ckptconv" / "data" / "pycls_cfg.json"

# The pristine defaults, taken before anything below touches the global cfg.
BASE = config._C.clone()

# The keys every ok case reports, in this order (REGNET.* and EN.* whole, in pycls's order).
REPORT_KEYS = (
    ["MODEL.TYPE", "MODEL.DEPTH", "MODEL.NUM_CLASSES", "BN.EPS",
     "RESNET.STRIDE_1X1", "RESNET.TRANS_FUN", "RESNET.NUM_GROUPS", "RESNET.WIDTH_PER_GROUP",
     "ANYNET.STEM_TYPE", "ANYNET.STEM_W", "ANYNET.BLOCK_TYPE", "ANYNET.DEPTHS", "ANYNET.WIDTHS",
     "ANYNET.STRIDES", "ANYNET.BOT_MULS", "ANYNET.GROUP_WS", "ANYNET.SE_ON", "ANYNET.SE_R"]
    + [f"REGNET.{k}" for k in BASE.REGNET] + [f"EN.{k}" for k in BASE.EN]
    + ["TRAIN.DATASET", "TRAIN.IM_SIZE", "TEST.IM_SIZE"])


# ---------------------------------------------------------------------------------------------
# JSON encoding of cfg values
# ---------------------------------------------------------------------------------------------

def enc(value):
    """cfg value -> JSON value: tuples as lists; a non-finite float as its repr ("inf", "nan");
    anything else that is not JSON is an error (so no case silently records a repr)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [enc(v) for v in value]
    raise TypeError(f"no JSON form for {type(value).__name__} {value!r}")


def type_name(value) -> str:
    """Python type name; for a list or tuple with items, the item types too: list[int, str]."""
    name = type(value).__name__
    if isinstance(value, (list, tuple)) and value:
        items = []
        for v in value:
            if type_name(v) not in items:
                items.append(type_name(v))
        name += "[" + ", ".join(items) + "]"
    return name


def leaves(node, prefix=""):
    """(full key, value) of every leaf of a CfgNode, in the node's order."""
    for key, value in node.items():
        full = f"{prefix}{key}"
        if isinstance(value, yacs.config.CfgNode):
            yield from leaves(value, full + ".")
        else:
            yield full, value


def cfg_get(node, full_key: str):
    for part in full_key.split("."):
        node = node[part]
    return node


def same(a, b) -> bool:
    """Equal value and type, down into lists (nan equals nan; 1 is not 1.0 or True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return repr(a) == repr(b)


def outcome(node) -> dict:
    """The ok outcome of a merged cfg: reported keys, their types, and every changed leaf."""
    values = {k: enc(cfg_get(node, k)) for k in REPORT_KEYS}
    types = {k: type_name(cfg_get(node, k)) for k in REPORT_KEYS}
    default = dict(leaves(BASE))
    got = dict(leaves(node))
    assert list(got) == list(default), "the merged cfg gained or lost keys"
    changed = {k: enc(v) for k, v in got.items() if not same(v, default[k])}
    return {"ok": True, "values": values, "types": types, "changed": changed}


def failure(exc: BaseException, tmpdir: str) -> dict:
    return {"ok": False, "error_type": type(exc).__name__,
            "error": str(exc).replace(tmpdir, "$TMPDIR")}


# ---------------------------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------------------------

# The training lines of pycls's configs/dds_baselines YAMLs for the two zoo models below (the model
# lines come from zoo.py), as written in those files. MODEL.ACTIVATION_FUN: silu is in master's
# EfficientNet YAMLs only (see zoo.py).
ZOO_TRAINING = {
    "regnety_800mf": {
        "OPTIM": [("LR_POLICY", "cos"), ("BASE_LR", "0.8"), ("MAX_EPOCH", "100"),
                  ("MOMENTUM", "0.9"), ("WEIGHT_DECAY", "5e-5"), ("WARMUP_EPOCHS", "5")],
        "TRAIN": [("DATASET", "imagenet"), ("IM_SIZE", None), ("BATCH_SIZE", "1024")],
        "TEST": [("DATASET", "imagenet"), ("IM_SIZE", None), ("BATCH_SIZE", "800")],
    },
    "b0": {
        "OPTIM": [("LR_POLICY", "cos"), ("BASE_LR", "0.4"), ("MAX_EPOCH", "100"),
                  ("MOMENTUM", "0.9"), ("WEIGHT_DECAY", "1e-5")],
        "TRAIN": [("DATASET", "imagenet"), ("IM_SIZE", None), ("BATCH_SIZE", "256")],
        "TEST": [("DATASET", "imagenet"), ("IM_SIZE", None), ("BATCH_SIZE", "200")],
    },
    "resnet50": {
        "OPTIM": [("LR_POLICY", "cos"), ("BASE_LR", "0.2"), ("MAX_EPOCH", "100"),
                  ("MOMENTUM", "0.9"), ("WEIGHT_DECAY", "5e-5")],
        "TRAIN": [("DATASET", "imagenet"), ("IM_SIZE", None), ("BATCH_SIZE", "256")],
        "TEST": [("DATASET", "imagenet"), ("IM_SIZE", None), ("BATCH_SIZE", "200")],
    },
}


def _yaml_scalar(value) -> str:
    """A zoo.py value written the way pycls's zoo YAMLs write it (True, [1, 2], 38.84)."""
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
    return str(value)


def zoo_yaml(name: str, extra_model_lines=()) -> str:
    """The zoo YAML of `name`, in the zoo files' layout: MODEL, the family section, OPTIM, TRAIN,
    TEST, NUM_GPUS: 8, OUT_DIR: ."""
    values = zoo.yaml_values(name)
    sections: dict = {}
    for full_key, value in values.items():
        section, key = full_key.split(".")
        sections.setdefault(section, []).append((key, _yaml_scalar(value)))
    sections["MODEL"] += list(extra_model_lines)
    for section, lines in ZOO_TRAINING[name].items():
        sections[section] = [(k, v if v is not None else _yaml_scalar(values[f"{section}.{k}"]))
                             for k, v in lines]
    order = ["MODEL", "REGNET", "ANYNET", "EN", "OPTIM", "TRAIN", "TEST"]
    text = ""
    for section in order:
        if section in sections:
            text += f"{section}:\n" + "".join(f"  {k}: {v}\n" for k, v in sections[section])
    return text + "NUM_GPUS: 8\nOUT_DIR: .\n"


def dumped(yaml_text: str, **dump_kwargs) -> str:
    """What pycls writes into a checkpoint's cfg and OUT_DIR/config.yaml after loading yaml_text:
    cfg.dump() of the loaded cfg (extra kwargs emulate other PyYAML versions' dump defaults)."""
    node = BASE.clone()
    node.merge_from_other_cfg(yacs.config.CfgNode.load_cfg(yaml_text))
    return node.dump(**dump_kwargs)


def cases() -> list:
    regnety = zoo_yaml("regnety_800mf")
    b0 = zoo_yaml("b0")
    r50 = zoo_yaml("resnet50")
    c = []

    def add(name, why, text, **extra):
        c.append({"name": name, "why": why, "yaml": text, **extra})

    # --- real pycls files -------------------------------------------------------------------
    add("zoo_regnety_800mf_yaml", "RegNetY-800MF_dds_8gpu.yaml as pycls's zoo writes it "
        "(WEIGHT_DECAY 5e-5 is a YAML string that literal_eval makes a float)", regnety)
    add("zoo_regnety_800mf_dump", "the real cfg.dump() of that cfg, as in its checkpoints and "
        "OUT_DIR/config.yaml (PyYAML >= 5.1: sorted keys, block-style lists, 1.0e-05)",
        dumped(regnety))
    add("zoo_effnet_b0_yaml", "EN-B0_dds_8gpu.yaml as of pycls 0.1.1 (model lines from zoo.py)", b0)
    add("zoo_effnet_b0_dump", "the real cfg.dump() of the EfficientNet-B0 cfg: every list "
        "in block style ('- 1' lines at the key's indentation)", dumped(b0))
    add("zoo_effnet_b0_dump_flow_lists", "cfg.dump() as PyYAML < 5.1 wrote it "
        "(default_flow_style=None: leaf lists in flow style [1, 2, 2]); older checkpoints hold this",
        dumped(b0, default_flow_style=None))
    add("zoo_effnet_b0_master_activation_fun", "pycls master's EN-B0 YAML adds "
        "MODEL.ACTIVATION_FUN: silu, a key 0.1.1 does not have",
        zoo_yaml("b0", [("ACTIVATION_FUN", "silu")]))
    add("zoo_resnet50_yaml", "R-50-1x64d_dds_8gpu.yaml: an AnyNet with res_stem_in, stride lists "
        "and float BOT_MULS", r50)
    add("resnet_type_stride_1x1_false", "MODEL.TYPE resnet with RESNET.* as pycls's older ResNet "
        "configs set them: STRIDE_1X1 False strides the 3x3",
        "MODEL:\n  TYPE: resnet\n  DEPTH: 50\n  NUM_CLASSES: 1000\nRESNET:\n"
        "  TRANS_FUN: bottleneck_transform\n  NUM_GROUPS: 32\n  WIDTH_PER_GROUP: 4\n"
        "  STRIDE_1X1: False\nTRAIN:\n  DATASET: imagenet\n")
    add("minimal", "the smallest useful cfg: only MODEL.TYPE; everything else stays default",
        "MODEL:\n  TYPE: regnet\n")

    # --- BN.EPS spellings ----------------------------------------------------------------------
    eps = "BN:\n  EPS: {}\n"
    add("eps_1e-3", "YAML 1.1 has no float without a dot: '1e-3' is a string, literal_eval makes it "
        "0.001", eps.format("1e-3"))
    add("eps_1.0e-03", "a YAML float (the form cfg.dump writes)", eps.format("1.0e-03"))
    add("eps_dot001", "a YAML float with no leading digit", eps.format(".001"))
    add("eps_0.001", "a plain decimal", eps.format("0.001"))
    add("eps_1e-3_quoted", "quoting does not keep a string: yacs literal_evals every string",
        eps.format('"1e-3"'))
    add("eps_1e-3_quoted_twice", "a string that literal_evals to a string '1e-3': type mismatch",
        eps.format("\"'1e-3'\""))
    add("eps_leading_space_quoted", "literal_eval of ' 1e-3' (Python >= 3.10 strips leading "
        "spaces and tabs) gives 0.001", eps.format('" 1e-3"'))
    add("eps_int_0", "an int where the default is a float is a type mismatch (no int->float cast)",
        eps.format("0"))
    add("eps_float_tag_0", "!!float makes the same 0 a float, which is accepted",
        eps.format("!!float 0"))
    add("eps_abc", "a string that is no literal stays a string: type mismatch",
        eps.format('"abc"'))
    add("eps_flow_mapping", "a flow mapping section, which a line reader sees as one line",
        "BN: {EPS: 1e-3, MOM: 0.01}\n")
    add("eps_null", "null replaces any default (yacs allows None for every type)",
        eps.format("null"))
    add("eps_None_word", "'None' is a YAML string that literal_eval makes None",
        eps.format("None"))
    add("eps_empty_value", "an empty value is YAML null: EPS becomes None", "BN:\n  EPS:\n")
    add("eps_overflow_1e400", "'1e400' is a string; literal_eval gives float inf",
        eps.format("1e400"))
    add("eps_list", "a list where a float is expected", eps.format("[1e-3]"))
    add("eps_python_expression", "literal_eval accepts no arithmetic ('1/1000' stays a string)",
        eps.format("1/1000"))

    # --- YAML syntax a line reader gets wrong ---------------------------------------------------
    add("anchors_aliases", "an anchored value reused by alias (&sz / *sz, &d / *d)",
        "TRAIN:\n  IM_SIZE: &sz 300\nTEST:\n  IM_SIZE: *sz\nANYNET:\n  DEPTHS: &d [1, 2, 7, 12]\n"
        "EN:\n  DEPTHS: *d\n")
    add("merge_key", "'<<: *stem' merges ANYNET's anchored mapping into REGNET; REGNET's own "
        "STEM_W wins over the merged one",
        "ANYNET: &stem\n  STEM_TYPE: res_stem_in\n  STEM_W: 64\n  BLOCK_TYPE: res_bottleneck_block\n"
        "REGNET:\n  <<: *stem\n  STEM_W: 48\n  DEPTH: 13\n")
    add("quoted_keys", "keys may be quoted, single or double",
        "\"BN\":\n  'EPS': 1e-3\n\"MODEL\": {\"TYPE\": 'regnet'}\n")
    add("indented_document", "the whole document indented by two spaces is still one mapping",
        "  MODEL:\n    TYPE: regnet\n  BN:\n    EPS: 1e-3\n")
    add("document_markers", "a '---' start and '...' end marker, with a %YAML directive",
        "%YAML 1.1\n---\nMODEL:\n  TYPE: regnet\nBN:\n  EPS: 1e-3\n...\n")
    add("yaml_1.2_directive", "PyYAML accepts %YAML 1.2 but still resolves YAML 1.1: 'yes' is "
        "True, '1e-3' a string", "%YAML 1.2\n---\nREGNET:\n  SE_ON: yes\nBN:\n  EPS: 1e-3\n")
    add("two_documents", "safe_load reads exactly one document",
        "MODEL:\n  TYPE: regnet\n---\nBN:\n  EPS: 1e-3\n")
    add("comments_everywhere", "full-line, trailing and indented comments, and '#' inside quotes",
        "# pycls cfg\nMODEL:   # the model\n  # TYPE: anynet\n  TYPE: regnet  # not anynet\n"
        "    # an indented comment\nBN:\n  EPS: 1e-3 # was 1e-5\nTRAIN:\n  DATASET: \"in#1\"\n"
        "# end\n")
    add("hash_without_space", "'#' not after a space is part of the scalar: 'regnet#x' stays a "
        "string, but literal_eval reads '1e-3#x' as 1e-3 and a Python comment",
        "MODEL:\n  TYPE: regnet#x\nBN:\n  EPS: 1e-3#x\n")
    add("tab_indentation", "a tab may not indent YAML", "BN:\n\tEPS: 1e-3\n")
    add("tab_after_colon", "a tab after 'KEY:' cannot start a token in PyYAML's block context",
        "BN:\n  EPS:\t1e-3\n")
    add("utf8_bom", "a UTF-8 byte order mark before the first key is skipped",
        "\ufeffBN:\n  EPS: 1e-3\n")
    add("crlf_line_ends", "Windows line ends", "MODEL:\r\n  TYPE: regnet\r\nBN:\r\n  EPS: 1e-3\r\n")
    add("utf16_file", "yacs opens the file as text in the locale encoding (UTF-8 here): UTF-16 fails",
        "\ufeffBN:\n  EPS: 1e-3\n", encoding="utf-16-le")
    add("txt_extension", "yacs loads only '', .yaml and .yml files (and runs .py ones)",
        "BN:\n  EPS: 1e-3\n", filename="config.txt")
    add("json_document", "JSON is YAML; the numbers are YAML-resolved, then literal_eval'ed",
        '{"MODEL": {"TYPE": "regnet", "NUM_CLASSES": 1000}, "BN": {"EPS": 1e-3}}\n')
    add("folded_scalar", "a folded block scalar keeps its final newline: TYPE is 'regnet\\n'",
        "MODEL:\n  TYPE: >\n    regnet\nBN:\n  EPS: >-\n    1e-3\n")
    add("multiline_plain_scalar", "a plain scalar continued on the next line joins with a space",
        "MODEL:\n  TYPE: reg\n    net\n")
    add("double_quoted_escapes", "double-quoted escapes are decoded: 'reg\\x6eet' is 'regnet'",
        'MODEL:\n  TYPE: "reg\\x6eet"\nTRAIN:\n  DATASET: "image\\tnet"\n')
    add("string_in_string_quotes", "a quoted Python string literal is unquoted by literal_eval",
        "MODEL:\n  TYPE: \"'regnet'\"\nTRAIN:\n  DATASET: '\"imagenet\"'\n")

    # --- keys ------------------------------------------------------------------------------------
    add("unknown_key", "a misspelt key is an error, not ignored", "BN:\n  EPSS: 1e-3\n")
    add("unknown_section", "an unknown section is an error", "DETECTOR:\n  EPS: 1e-3\n")
    add("key_at_wrong_level", "EPS at the top level is an unknown key", "EPS: 1e-3\n")
    add("dotted_key", "'BN.EPS' is one key, not a path", "BN.EPS: 1e-3\n")
    add("lowercase_section", "keys are case-sensitive", "bn:\n  eps: 1e-3\n")
    add("duplicate_key", "PyYAML keeps the last of duplicate keys, silently",
        "BN:\n  EPS: 1e-3\n  EPS: 1e-4\n")
    add("duplicate_section", "a repeated section replaces the first whole: EPS stays 1e-05, "
        "MOM is 0.2", "BN:\n  EPS: 1e-3\nMODEL:\n  TYPE: regnet\nBN:\n  MOM: 0.2\n")
    add("deprecated_keys", "pycls's deprecated keys (PREC_TIME.ENABLED, PORT) are dropped with a "
        "warning, whatever their value",
        "PREC_TIME:\n  ENABLED: whatever\n  BATCH_SIZE: [1, 2]\nPORT: 10001\nBN:\n  EPS: 1e-3\n")
    add("non_string_key", "an int key breaks yacs's key join (TypeError)", "1: 2\n")
    add("non_string_key_nested", "an int key inside a section", "BN:\n  1: 2\n")
    add("deep_nesting", "a mapping where a leaf is expected is a type mismatch (CfgNode vs float)",
        "BN:\n  EPS:\n    VALUE:\n      X: 1e-3\n")
    add("empty_section", "a section with all its keys commented out is null, and null may not "
        "replace a section", "MODEL:\n  # TYPE: regnet\nBN:\n  EPS: 1e-3\n")
    add("scalar_for_section", "a scalar where a section is expected", "BN: 1e-3\n")

    # --- whole documents -------------------------------------------------------------------------
    add("empty_file", "an empty file is null: nothing merged, all defaults", "")
    add("only_comments", "a file of comments is null too", "# nothing\n# MODEL:\n#   TYPE: regnet\n")
    add("top_level_list", "a top-level list is no mapping", "- MODEL\n- BN\n")
    add("top_level_scalar", "a top-level scalar is no mapping", "regnet\n")

    # --- tags --------------------------------------------------------------------------------------
    add("python_object_apply_tag", "safe_load refuses python/* tags (nothing is run)",
        'MODEL:\n  TYPE: !!python/object/apply:os.system ["echo hi"]\n')
    add("python_tuple_tag", "safe_load has no python/tuple either (pycls has no tuple default)",
        "ANYNET:\n  STRIDES: !!python/tuple [1, 2, 2, 2]\n")
    add("str_tag_still_evaluated", "!!str keeps '1e-3' a string for YAML, but yacs still "
        "literal_evals it", "BN:\n  EPS: !!str 1e-3\nMODEL:\n  NUM_CLASSES: !!str 1000\n")
    add("date_value", "YAML resolves 2020-01-01 to a date, which no CfgNode may hold",
        "TRAIN:\n  DATASET: 2020-01-01\n")
    add("equals_sign_value", "a bare '=' is YAML 1.1's value tag, which safe_load cannot build",
        "TRAIN:\n  DATASET: =\n")

    # --- ints ------------------------------------------------------------------------------------
    add("num_classes_huge_int", "ints are unbounded",
        "MODEL:\n  NUM_CLASSES: 123456789012345678901234567890\n")
    add("num_classes_quoted", "'\"1000\"' literal_evals to the int 1000",
        'MODEL:\n  NUM_CLASSES: "1000"\n')
    add("num_classes_10.0", "a float where an int is expected is a type mismatch",
        "MODEL:\n  NUM_CLASSES: 10.0\n")
    add("num_classes_1e3", "'1e3' literal_evals to a float: type mismatch", "MODEL:\n  NUM_CLASSES: 1e3\n")
    add("num_classes_leading_zero", "YAML 1.1 reads 01000 as octal: 512",
        "MODEL:\n  NUM_CLASSES: 01000\n")
    add("int_spellings", "YAML 1.1 ints: 0x hex, 0b binary, 1_000 underscores, 1:30 sexagesimal "
        "(90); '0o17' is a YAML string that literal_eval makes 15",
        "MODEL:\n  NUM_CLASSES: 0x3e8\n  DEPTH: 1_000\nREGNET:\n  DEPTH: 1:30\n  W0: 0b110000\n"
        "  GROUP_W: 0o17\n")
    add("num_classes_comma", "'1,000' literal_evals to the tuple (1, 0): type mismatch",
        "MODEL:\n  NUM_CLASSES: 1,000\n")
    add("regnet_wa_int", "REGNET.WA 36 (no decimal point) is an int: type mismatch with 5.0",
        "MODEL:\n  TYPE: regnet\nREGNET:\n  DEPTH: 13\n  W0: 24\n  WA: 36\n  WM: 2.49\n")

    # --- booleans ----------------------------------------------------------------------------------
    add("bools_yaml11", "YAML 1.1 booleans yes/no/on/off/True/false",
        "RESNET:\n  STRIDE_1X1: no\nANYNET:\n  SE_ON: yes\nREGNET:\n  SE_ON: on\n"
        "BN:\n  USE_PRECISE_STATS: off\nMEM:\n  RELU_INPLACE: false\nCUDNN:\n  BENCHMARK: True\n")
    add("bool_quoted_python", "a quoted 'False' literal_evals to the bool False",
        'RESNET:\n  STRIDE_1X1: "False"\n')
    add("bool_quoted_lowercase", "a quoted 'false' stays a string: type mismatch",
        'RESNET:\n  STRIDE_1X1: "false"\n')
    add("bool_y", "'y' is no YAML 1.1 boolean in PyYAML: a string, type mismatch",
        "REGNET:\n  SE_ON: y\n")
    add("stride_1x1_int_1", "an int where a bool is expected is a type mismatch",
        "RESNET:\n  STRIDE_1X1: 1\n")
    add("stride_1x1_int_0", "0 is no bool either", "RESNET:\n  STRIDE_1X1: 0\n")

    # --- lists -------------------------------------------------------------------------------------
    add("block_sequence", "block-style lists, as cfg.dump writes them",
        "ANYNET:\n  DEPTHS:\n  - 1\n  - 2\n  STRIDES:\n    - 1\n    - 2\n")
    add("tuple_syntax_for_list", "'(1, 2, 2, 2)' and '1, 2, 2, 2' are YAML strings that "
        "literal_eval makes tuples; yacs casts tuple -> list",
        "ANYNET:\n  STRIDES: (1, 2, 2, 2)\n  DEPTHS: 1, 2, 7, 12\n  WIDTHS: \"[24, 56, 152, 368]\"\n")
    add("list_items_not_evaluated", "items of a YAML list are not literal_eval'ed: '1e-1' and "
        "'\"8\"' stay strings, and item types are not checked",
        "ANYNET:\n  BOT_MULS: [0.25, 1e-1, 1.0e-1]\n  GROUP_WS: [\"8\", 16, 2.5, null, yes]\n")
    add("list_trailing_comma", "a trailing comma in a flow sequence is allowed",
        "ANYNET:\n  DEPTHS: [1, 2, 7, 12,]\n")
    add("scalar_for_list", "an int where a list is expected is a type mismatch",
        "ANYNET:\n  STRIDES: 2\n")
    add("list_null", "null replaces a list default too", "EN:\n  STRIDES: null\n")

    # --- strings -----------------------------------------------------------------------------------
    add("model_type_regnet_capitalised", "MODEL.TYPE is any string when loading; pycls's builder "
        "knows only lowercase anynet/effnet/resnet/regnet", "MODEL:\n  TYPE: RegNet\n")
    add("model_type_trailing_space_quoted", "quoted 'regnet ' keeps its space (literal_eval "
        "fails on it): it loads, and the builder refuses it", "MODEL:\n  TYPE: 'regnet '\n")
    add("regnet_stem_and_stride", "REGNET.STEM_TYPE quoted, STEM_W in hex, STRIDE '\"1\"' "
        "literal_eval'ed to the int 1", 'MODEL:\n  TYPE: regnet\nREGNET:\n  STEM_TYPE: "res_stem_in"\n'
        '  STEM_W: 0x40\n  STRIDE: "1"\n')
    add("regnet_stride_float", "REGNET.STRIDE 2.0 is a float: type mismatch with the int 2",
        "REGNET:\n  STRIDE: 2.0\n")
    add("model_type_int", "a number where a string is expected is a type mismatch",
        "MODEL:\n  TYPE: 1\n")
    add("dataset_numeric_string", "'\"2020\"' literal_evals to an int: type mismatch with a string",
        'TRAIN:\n  DATASET: "2020"\n')
    add("model_type_None_word", "'None' as MODEL.TYPE is None (literal_eval), not the string",
        "MODEL:\n  TYPE: None\n")

    # --- loaded, then refused by pycls's tools ----------------------------------------------------
    add("assert_and_infer_fails", "merge_from_file accepts it; assert_and_infer_cfg (train/test "
        "tools) refuses the split", "TRAIN:\n  SPLIT: training\nOPTIM:\n  STEPS: [0, 30, 60]\n")
    add("assert_first_step", "the first OPTIM.STEPS must be 0", "OPTIM:\n  STEPS: [30, 60]\n")
    return c


# ---------------------------------------------------------------------------------------------
# Running the real loader
# ---------------------------------------------------------------------------------------------

def check_text_encoding(tmpdir: str) -> str:
    """yacs opens the cfg with open(path, "r"): the default encoding. The data assume UTF-8."""
    probe = os.path.join(tmpdir, "probe.yaml")
    with open(probe, "w") as f:
        encoding = f.encoding
    os.remove(probe)
    if encoding.lower().replace("-", "") != "utf8":
        sys.exit(f"default text encoding is {encoding}, not UTF-8: rerun with PYTHONUTF8=1")
    return encoding


def run_case(case: dict, tmpdir: str) -> dict:
    filename = case.get("filename", "config.yaml")
    raw = case["yaml"].encode(case.get("encoding", "utf-8"))
    path = os.path.join(tmpdir, filename)
    with open(path, "wb") as f:
        f.write(raw)

    # (1) a fresh clone of the defaults, merge_from_file
    node = BASE.clone()
    try:
        node.merge_from_file(path)
        result = outcome(node)
    except Exception as e:  # noqa: BLE001 - the loader's own error is the datum
        result = failure(e, tmpdir)

    # (2) pycls's own path on the global cfg: reset_cfg(); load_cfg(out_dir, cfg_dest)
    config.reset_cfg()
    assert all(same(a, b) for (_, a), (_, b) in zip(leaves(config.cfg), leaves(BASE)))
    try:
        config.load_cfg(tmpdir, filename)
        glob = outcome(config.cfg)
    except Exception as e:  # noqa: BLE001
        glob = failure(e, tmpdir)
    if glob != result:
        raise SystemExit(f"{case['name']}: clone and global loads disagree:\n{result}\n{glob}")
    if result["ok"]:
        try:
            config.assert_and_infer_cfg(cache_urls=False)
            result["assert_and_infer_cfg"] = "ok"
        except Exception as e:  # noqa: BLE001
            result["assert_and_infer_cfg"] = failure(e, tmpdir)
        try:
            builders.get_model()
            result["get_model"] = "ok"
        except Exception as e:  # noqa: BLE001
            result["get_model"] = failure(e, tmpdir)
    config.reset_cfg()

    # (3) the checkpoint route: a str through CfgNode.load_cfg, no file
    if case.get("encoding", "utf-8") == "utf-8":
        node = BASE.clone()
        try:
            node.merge_from_other_cfg(yacs.config.CfgNode.load_cfg(raw.decode("utf-8")))
            string_result = outcome(node)
        except Exception as e:  # noqa: BLE001
            string_result = failure(e, tmpdir)
        comparable = {k: v for k, v in result.items()
                      if k not in ("assert_and_infer_cfg", "get_model")}
        result["same_as_string_load"] = string_result == comparable
        if string_result != comparable:
            result["string_load"] = string_result
    os.remove(path)
    return result


# ---------------------------------------------------------------------------------------------
# pycls's key rules, located in the installed sources
# ---------------------------------------------------------------------------------------------

def rel(module_or_path) -> str:
    """Package-relative path of an installed module (pycls/core/config.py)."""
    path = Path(inspect.getsourcefile(module_or_path) if not isinstance(module_or_path, str)
                else module_or_path)
    site = Path(inspect.getsourcefile(yacs.config)).parents[1]
    return path.resolve().relative_to(site.resolve()).as_posix()


def _tree(module):
    return ast.parse(Path(inspect.getsourcefile(module)).read_text())


def _calls(tree, attr: str):
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == attr:
            yield n


def _def_line(module, name: str) -> int:
    for n in ast.walk(_tree(module)):
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name:
            return n.lineno
    raise LookupError(name)


def _assign_line(module, name: str) -> int:
    """Line of the module-level assignment to name."""
    for n in _tree(module).body:
        if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == name for t in n.targets):
            return n.lineno
    raise LookupError(name)


def _line_of_call_in(module, func: str, attr: str) -> int:
    """Line of the first call .attr(...) inside def func."""
    for n in ast.walk(_tree(module)):
        if isinstance(n, ast.FunctionDef) and n.name == func:
            for call in _calls(n, attr):
                return call.lineno
    raise LookupError((func, attr))


def _raise_line(fn, *args) -> tuple:
    """Call fn(*args); return (exception, file:line of the frame that raised it)."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001
        frame = traceback.extract_tb(e.__traceback__)[-1]
        return e, f"{rel(frame.filename)}:{frame.lineno}"
    raise AssertionError(f"{fn} did not raise")


def _assert_check(overrides: list, desc: str) -> dict:
    config.reset_cfg()
    config.cfg.merge_from_list(overrides)
    e, where = _raise_line(config.assert_and_infer_cfg, False)
    config.reset_cfg()
    return {"check": desc, "where": where, "error_type": type(e).__name__, "error": str(e),
            "triggered_by": dict(zip(overrides[0::2], overrides[1::2]))}


def rules() -> dict:
    cfg_file = rel(config)
    tree = _tree(config)
    deprecated = sorted(config._C.__dict__[yacs.config.CfgNode.DEPRECATED_KEYS])
    dep_lines = {call.args[0].value: call.lineno for call in _calls(tree, "register_deprecated_key")}
    assert sorted(dep_lines) == deprecated
    default_line = _assign_line(config, "_CFG_DEFAULT")

    asserts = [
        _assert_check(["OPTIM.STEPS", "[30, 60]"], "OPTIM.STEPS is empty or starts at 0"),
        _assert_check(["TRAIN.SPLIT", "training"], "TRAIN.SPLIT is one of train, val, test"),
        _assert_check(["TEST.SPLIT", "validation"], "TEST.SPLIT is one of train, val, test"),
        _assert_check(["NUM_GPUS", "3"], "TRAIN.BATCH_SIZE is a multiple of NUM_GPUS"),
        _assert_check(["NUM_GPUS", "3", "TRAIN.BATCH_SIZE", "129"],
                      "TEST.BATCH_SIZE is a multiple of NUM_GPUS"),
        _assert_check(["LOG_DEST", "syslog"], "LOG_DEST is stdout or file"),
    ]
    fn = next(n for n in ast.walk(tree)
              if isinstance(n, ast.FunctionDef) and n.name == "assert_and_infer_cfg")
    n_asserts = sum(isinstance(n, ast.Assert) for n in ast.walk(fn))
    assert n_asserts == len(asserts) == len({a["where"] for a in asserts}), "unmatched asserts"

    config.reset_cfg()
    config.cfg.merge_from_list(["MODEL.TYPE", "RegNet"])
    e, get_model_where = _raise_line(builders.get_model)
    config.reset_cfg()

    zoo_merge = _line_of_call_in(model_zoo, "build_model", "merge_from_file")
    return {
        "load_paths": {
            "load_cfg": {"where": f"{cfg_file}:{_line_of_call_in(config, 'load_cfg', 'merge_from_file')}",
                         "does": "_C.merge_from_file(os.path.join(out_dir, cfg_dest)) on the global "
                                 "cfg (cfg_dest defaults to config.yaml)"},
            "load_cfg_fom_args": {
                "where": f"{cfg_file}:{_line_of_call_in(config, 'load_cfg_fom_args', 'merge_from_file')}",
                "does": "--cfg FILE: _C.merge_from_file(FILE), then _C.merge_from_list(opts) for "
                        "the KEY VALUE pairs after it"},
            "model_zoo.build_model": {
                "where": f"{rel(model_zoo)}:{zoo_merge}",
                "does": "reset_cfg(), cfg.merge_from_file(zoo config), cfg.merge_from_list(cfg_list)"},
            "save_checkpoint": {
                "where": f"{rel(checkpoint)}:{_line_of_call_in(checkpoint, 'save_checkpoint', 'dump')}",
                "does": "the checkpoint's 'cfg' is cfg.dump() (yaml.safe_dump of the cfg as "
                        "nested dicts: keys sorted); pycls never reads it back"},
            "dump_cfg": {"where": f"{cfg_file}:{_line_of_call_in(config, 'dump_cfg', 'dump')}",
                         "does": "OUT_DIR/CFG_DEST is written with _C.dump(stream=f)"},
        },
        "deprecated_keys": [{"key": k, "where": f"{cfg_file}:{dep_lines[k]}",
                             "effect": "not a key of the defaults, but registered deprecated: "
                                       "skipped with a logged warning, whatever its value"}
                            for k in sorted(deprecated, key=dep_lines.get)],
        "renamed_keys": {k: v for k, v in
                         config._C.__dict__[yacs.config.CfgNode.RENAMED_KEYS].items()},
        "new_allowed": config._C.is_new_allowed(),
        "defaults_snapshot": {
            "where": f"{cfg_file}:{default_line}",
            "note": "_CFG_DEFAULT (what reset_cfg merges back) is cloned before the deprecated "
                    "keys are registered; they live on the global _C, which is what every load "
                    "path merges into"},
        "assert_and_infer_cfg": {
            "where": f"{cfg_file}:{_def_line(config, 'assert_and_infer_cfg')}",
            "note": "run by pycls's train/test tools after loading, not by merge_from_file; with "
                    "cache_urls=True it then downloads TRAIN.WEIGHTS / TEST.WEIGHTS when they "
                    "are URLs",
            "checks": asserts},
        "model_type": {
            "where": get_model_where,
            "supported": list(builders._models),
            "registry": f"{rel(builders)}:{_assign_line(builders, '_models')}",
            "error_type": type(e).__name__, "error": str(e), "triggered_by": {"MODEL.TYPE": "RegNet"},
            "note": "checked by build_model(), not when loading: any string loads"},
    }


def yacs_rules() -> dict:
    y = rel(yacs.config)
    return {
        "merge_from_file": f"{y}:{_def_line(yacs.config.CfgNode, 'merge_from_file')}",
        "file_extensions": {"yaml": sorted(yacs.config._YAML_EXTS),
                            "python": sorted(yacs.config._PY_EXTS),
                            "where": f"{y}:{_def_line(yacs.config.CfgNode, '_load_cfg_from_file')}"},
        "yaml_loader": {
            "call": "yaml.safe_load",
            "where": f"{y}:{_line_of_call_in(yacs.config, '_load_cfg_from_yaml_str', 'safe_load')}"},
        "valid_leaf_types": sorted(t.__name__ for t in yacs.config._VALID_TYPES),
        "decode_value": {"where": f"{y}:{_def_line(yacs.config.CfgNode, '_decode_cfg_value')}",
                         "rule": "dict -> CfgNode; str -> ast.literal_eval(str), kept as the "
                                 "string on ValueError/SyntaxError; anything else as is (items "
                                 "of a list are not decoded)"},
        "merge": {"where": f"{y}:{_def_line(yacs.config, '_merge_a_into_b')}",
                  "rule": "per key in the file's order: decode, then if the key exists check "
                          "and coerce the type (recursing into sections); else deprecated -> "
                          "skip, renamed -> KeyError, otherwise KeyError 'Non-existent config key'"},
        "type_check": {"where": f"{y}:{_def_line(yacs.config, '_check_and_coerce_cfg_value_type')}",
                       "rule": "same type passes; None replaces anything valid and anything "
                               "valid replaces None; tuple <-> list are cast; everything else "
                               "(int -> float, int -> bool, str -> anything) is ValueError "
                               "'Type mismatch'"},
    }


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

def versions() -> dict:
    return {"pycls_version": importlib.metadata.version("pycls"),
            "yacs_version": importlib.metadata.version("yacs"),
            "pyyaml_version": yaml.__version__,
            "python_version": platform.python_version()}


def defaults_tree(node) -> dict:
    out = {}
    for key, value in node.items():
        if isinstance(value, yacs.config.CfgNode):
            out[key] = defaults_tree(value)
        else:
            out[key] = {"value": enc(value), "type": type(value).__name__}
    return out


def plain_tree(node) -> dict:
    """The default tree as plain values: what ckptconv's cfg reader merges a YAML over."""
    return {k: plain_tree(v) if isinstance(v, yacs.config.CfgNode) else enc(v) for k, v in node.items()}


def package_data(vers: dict, rule_data: dict) -> dict:
    """ckptconv/data/pycls_cfg.json: the facts ckptconv's reader needs at run time (the defaults,
    the keys pycls skips, the model types its builder takes), from the same run as defaults.json."""
    return {
        "made_by": "tools/groundtruth/pycls_cfg.py", **vers,
        "deprecated_keys": [d["key"] for d in rule_data["deprecated_keys"]],
        "model_types": rule_data["model_type"]["supported"],
        "defaults": plain_tree(BASE),
    }


def write_json(path: Path, obj) -> None:
    text = json.dumps(obj, indent=2, ensure_ascii=True, allow_nan=False) + "\n"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    logging.getLogger("yacs.config").setLevel(logging.ERROR)  # the deprecated-key warnings
    assert importlib.metadata.version("pycls") == zoo.PYCLS_VERSION
    assert all(same(a, b) for (_, a), (_, b) in zip(leaves(BASE), leaves(config._CFG_DEFAULT)))
    OUT.mkdir(parents=True, exist_ok=True)
    vers = versions()
    all_cases = cases()
    names = [c["name"] for c in all_cases]
    assert len(names) == len(set(names)), "duplicate case names"
    with tempfile.TemporaryDirectory(prefix="pycls_cfg_") as tmpdir:
        check_text_encoding(tmpdir)
        rule_data = rules()
        results = []
        for case in all_cases:
            results.append({**case, "result": run_case(case, tmpdir)})
        config.reset_cfg()

    write_json(OUT / "defaults.json", {
        **vers,
        "source": "pycls.core.config._C as imported (same values as _CFG_DEFAULT)",
        "rules": {**rule_data, "yacs": yacs_rules()},
        "defaults": defaults_tree(BASE),
    })
    write_json(OUT / "cases.json", {
        **vers,
        "loader": "CfgNode.merge_from_file over a fresh clone of pycls.core.config._C, checked "
                  "equal to reset_cfg() + pycls.core.config.load_cfg(dir, file); then "
                  "assert_and_infer_cfg(cache_urls=False) and builders.get_model() on ok cases",
        "file_bytes": "yaml.encode(encoding or 'utf-8'), written in binary mode to "
                      "<tmpdir>/<filename or config.yaml>",
        "report_keys": REPORT_KEYS,
        "cases": results,
    })
    write_json(PACKAGE_DATA, package_data(vers, rule_data))
    for r in results:
        res = r["result"]
        print(f"{r['name']:40s} {'ok' if res['ok'] else 'error ' + res['error_type']}")


if __name__ == "__main__":
    main()
