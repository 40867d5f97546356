"""The ``meta`` a converted file carries: its fields, its str -> str form for safetensors, and reading
it back from a file that may come from anyone.

A meta read from a file is never walked as a whole: each known field is taken only with its type,
and a string only when it passes the check of the option it mirrors (``prefix`` is a dotted module
path as ``--prefix`` must be, ``arch`` and ``layout`` names, ``weights`` and ``channel_order``
choices), so no value of a stranger's meta reaches a printed config, a card or a terminal unchecked.
Everything else is left behind, and each field that fails is named as a problem (``verify``
reports it; a conversion ignores it).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from typing import Any

from ..fields import describe
from ..options import NAME, ORDERS, PADDINGS, PREFIX
from .dtypes import FLOATS

MAX_TEXT = 1024
MAX_CFG = 1 << 20  # characters of a pycls cfg dump
META_KEY = "ckptconv"  # a plain state dict's meta: its _metadata[META_KEY]
HEX64 = r"([0-9a-f]{64})?"  # a sha256 (empty: not known when the file was written)
VERSION = r"[0-9][0-9a-z.+-]{0,31}"
SETS = ("model", "ema", "state_dict", "state_dict_ema")  # the weight sets a file may hold (io/checkpoint.SET_KEYS)
# field -> (type, the validation of the option or value it mirrors: a pattern or the choices).
# "scalars" is a flat table of str/int/float/bool/None values; "record" a model's numbers.
FIELDS: dict[str, tuple[str, str | tuple[str, ...] | None]] = {
    "ckptconv_version": ("str", VERSION), "source": ("str", None), "source_sha256": ("str", HEX64),
    "source_format": ("str", ("zip", "legacy", "safetensors")), "arch": ("str", NAME), "layout": ("str", NAME),
    "table": ("str", NAME), "table_version": ("int", None), "table_sha256": ("str", HEX64), "weights": ("str", SETS),
    "dtype": ("str", FLOATS), "prefix": ("str", f"({PREFIX})?"), "channel_order": ("str", ORDERS), "epoch": ("int", None),
    "settings": ("scalars", None), "options": ("scalars", None), "model": ("record", None), "assumed": ("texts", None),
    "tensors_crc": ("str", HEX64), "source_errors": ("scalars", None),
}
WANT = {"str": "a string (at most 1024 characters)", "int": "an integer", "scalars": "a flat table of values",
        "record": "a model's numbers ([variant] and one section of numbers)", "texts": "a list of strings"}
RULE_WORDS = {NAME: "a name (a-z, 0-9, _ . -)", f"({PREFIX})?": "a dotted module path such as backbone, or nothing",
              HEX64: "a sha256 in hex", VERSION: "a version number"}
JSON_FIELDS = tuple(k for k, (kind, _) in FIELDS.items() if kind != "str")  # JSON-encoded in safetensors


def encode_meta(meta: dict[str, Any]) -> dict[str, str]:
    """Stringify every value (safetensors metadata is str -> str): strings as they are, the rest as JSON."""
    return {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in meta.items() if v is not None}


def decode_meta(raw: dict[str, str]) -> dict[str, Any]:
    """The safetensors metadata back into values (still unchecked: pass it to ``read_meta``)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in JSON_FIELDS and isinstance(value, str) and len(value) <= 64 * MAX_TEXT:
            try:
                out[key] = json.loads(value)
                continue
            except (TypeError, ValueError, RecursionError):
                pass
        out[key] = value
    return out


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= MAX_TEXT)


def _numbers(value: Any) -> bool:
    """A scalar, or a short list of numbers (a model's per-stage numbers)."""
    if isinstance(value, list):
        return len(value) <= 64 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    return _scalar(value)


def _check(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str) and len(value) <= MAX_TEXT
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1 << 31
    if kind == "texts":
        return isinstance(value, list) and len(value) <= 16 and all(isinstance(v, str) and len(v) <= MAX_TEXT for v in value)
    if kind == "record":  # {section: {field: number or list of numbers}}, two levels and small
        return isinstance(value, dict) and len(value) <= 4 and all(
            isinstance(k, str) and isinstance(v, dict) and len(v) <= 32 and all(isinstance(f, str) and _numbers(x) for f, x in v.items())
            for k, v in value.items())
    return isinstance(value, dict) and len(value) <= 64 and all(isinstance(k, str) and _scalar(v) for k, v in value.items())


def _values(meta: dict[str, Any]) -> list[str]:
    """Problems with values that have the right type but no meaning: a settings eps that is not a
    BN eps, a padding or channel order ckptconv does not know (each such field is dropped)."""
    problems = []
    settings = meta.get("settings", {})
    eps = settings.get("eps")
    if "eps" in settings and (isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 0.1):
        problems.append(f"meta settings.eps is {eps!r}; expected a BN eps (a number in (0, 0.1])")
        settings.pop("eps")
    if "padding" in settings and settings["padding"] not in PADDINGS:
        problems.append(f"meta settings.padding is {settings.pop('padding')!r}; expected one of {', '.join(PADDINGS)}")
    if "channel_order" in meta and meta["channel_order"] not in ORDERS:
        problems.append(f"meta channel_order is {meta.pop('channel_order')!r}; expected one of {', '.join(ORDERS)}")
    return problems


def cfg_of(value: Any) -> Any:
    """A pycls cfg dump as a file holds it (a YAML text, or a small table); None when it is neither."""
    if isinstance(value, str) and len(value) <= MAX_CFG:
        return value
    return value if isinstance(value, dict) and len(value) <= 256 else None


def plain_state_dict(tensors: dict, meta: dict[str, Any]) -> OrderedDict:
    """A plain state dict (``model.load_state_dict(torch.load(f))``) that carries the meta where torch
    keeps the modules' versions: ``_metadata``, under a key no module has. load_state_dict looks up
    only module prefixes there, so the meta changes nothing that is loaded."""
    sd = OrderedDict(tensors)
    sd._metadata = OrderedDict({META_KEY: meta})  # type: ignore[attr-defined]
    return sd


def plain_meta(obj: Any) -> Any:
    """The meta of a plain state dict ``plain_state_dict`` wrote (None for anyone else's)."""
    held = getattr(obj, "_metadata", None)
    return held.get(META_KEY) if isinstance(held, dict) else None


def read_meta(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """The known, well-typed fields of an untrusted meta, and a problem line for each ill-typed one."""
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [f"meta is a {type(raw).__name__}, not a table"]
    meta, problems = {}, []
    for key, (kind, rule) in FIELDS.items():
        if key not in raw or raw[key] is None:
            continue
        value = raw[key]
        if not _check(kind, value):
            problems.append(f"meta field {key} is a {type(value).__name__}; expected {WANT[kind]}")
        elif not _valid(value, rule):
            problems.append(f"meta field {key} is {describe(value)}; expected {_wanted(rule)}")
        else:
            meta[key] = {k: dict(v) for k, v in value.items()} if kind == "record" else dict(value) if kind == "scalars" else value
    return meta, problems + _values(meta)


def _valid(value: Any, rule: str | tuple[str, ...] | None) -> bool:
    """A string field passes the check of the option it mirrors (a name, a dotted prefix, a choice)."""
    if rule is None or not isinstance(value, str):
        return True
    return value in rule if isinstance(rule, tuple) else re.fullmatch(rule, value) is not None


def _wanted(rule: str | tuple[str, ...]) -> str:
    return f"one of {', '.join(rule)}" if isinstance(rule, tuple) else RULE_WORDS[rule]
