"""pycls cfgs (a run's ``config.yaml``, ``--cfg FILE``, the ``cfg`` a checkpoint stores) read as
pycls 0.1.1 reads them: the one reader of the format. torch-free.

pycls merges a YAML file into its default cfg with yacs (``CfgNode.merge_from_file``); this module
applies the same rules (tests/data/pycls_cfg holds what the real loader made of 97 documents):
- the YAML is read by PyYAML's safe loader: one document, a mapping at the top, anchors, aliases,
  merge keys, flow mappings, quoted keys and any indentation as YAML means them; no tag builds an
  object (no code runs); a repeated key or section: the last one wins, whole;
- every key must be a key of pycls's defaults (``data/pycls_cfg.json``, written by
  tools/groundtruth/pycls_cfg.py from the real package), except the three pycls skips; an unknown
  key is an error naming it, never skipped;
- every string value is read as a Python literal where it is one (``1e-3`` is 0.001, ``"10"`` is
  10), then must have the default's type: None replaces anything, a tuple may stand for a list,
  nothing else converts (``EPS: 0`` is an int where pycls wants a float: an error).
The result is the whole cfg, defaults filled in, keyed as in the YAML (``cfg["BN"]["EPS"]``).
"""

from __future__ import annotations

import ast
import difflib
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..fields import describe

DATA = Path(__file__).resolve().parents[1] / "data" / "pycls_cfg.json"
YAML_SUFFIXES = ("", ".yaml", ".yml")  # what yacs opens as YAML (a .py file it would run as Python)
Cfg = dict[str, Any]


@lru_cache(maxsize=1)
def facts() -> dict[str, Any]:
    """pycls 0.1.1's defaults, the keys it skips, and the model types its builder takes."""
    return json.loads(DATA.read_text())


def model_types() -> tuple[str, ...]:
    return tuple(facts()["model_types"])


def read_cfg(cfg: str | dict, where: str) -> Cfg:
    """The cfg a YAML text (or an already-parsed mapping) makes over pycls's defaults; a
    ``FormatError`` naming ``where`` and the YAML's key when pycls's own loader would refuse it."""
    loaded = _load_yaml(cfg, where) if isinstance(cfg, str) else cfg
    merged = json.loads(json.dumps(facts()["defaults"]))  # a fresh copy of the defaults
    if loaded is None:  # an empty file, or one of comments only: nothing to merge
        return merged
    if not isinstance(loaded, dict):
        raise FormatError(f"{where} holds a YAML {type(loaded).__name__}, not a mapping of sections (MODEL:, BN:, ...)", fix="pass the run's config.yaml")
    _merge(loaded, merged, "", where)
    return merged


def _load_yaml(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise FormatError(f"{where} is not YAML pycls can read ({type(e).__name__}{at}: {problem})", fix="pass the run's config.yaml as pycls wrote it") from None
    except (RecursionError, MemoryError):
        raise FormatError(f"{where} nests deeper than any pycls cfg", fix="pass the run's config.yaml as pycls wrote it") from None


def _merge(loaded: dict, node: dict, prefix: str, where: str) -> None:
    """Merge ``loaded`` into ``node`` (a section of the defaults) key by key, as yacs does."""
    for key, value in loaded.items():
        if not isinstance(key, str):
            raise FormatError(f"{where}: the key {describe(key)}{' in ' + prefix.rstrip('.') if prefix else ''} is not a name", fix="keys of a pycls cfg are names such as EPS")
        full = prefix + key
        if full in facts()["deprecated_keys"]:
            continue  # pycls skips it, whatever its value
        if key not in node:
            raise FormatError(f"{where}: {full} is not a key of pycls 0.1.1's cfg{_did_you_mean(key, node, prefix)}", fix="remove it, or pass the run's own config.yaml")
        if isinstance(node[key], dict):
            if not isinstance(value, dict):
                raise FormatError(f"{where}: {full} is a section of pycls's cfg, and the YAML gives it {describe(value)}", fix=f"write its keys under {full}:")
            _merge(value, node[key], full + ".", where)
        else:
            node[key] = _coerce(_decode(value, full, where), node[key], full, where)


def _did_you_mean(key: str, node: dict, prefix: str) -> str:
    close = difflib.get_close_matches(key, list(node), n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def _decode(value: Any, full: str, where: str) -> Any:
    """A string read as the Python literal it spells, where it spells one (yacs's _decode_cfg_value)."""
    if isinstance(value, dict):
        raise FormatError(f"{where}: {full} is a value of pycls's cfg, and the YAML gives it a mapping", fix=f"write {full}: VALUE")
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value
    except (RecursionError, MemoryError, TypeError):
        raise FormatError(f"{where}: {full} is {describe(value)}, which pycls cannot read", fix="write a plain value") from None


def _coerce(value: Any, default: Any, full: str, where: str) -> Any:
    """``value`` where pycls's default is ``default``: the same type, None, or a tuple for a list."""
    if type(value) is type(default) or value is None:
        return list(value) if isinstance(value, tuple) else value
    if isinstance(value, tuple) and isinstance(default, list):
        return list(value)
    want = {"float": "a float (with a dot: 1.0e-05)", "int": "an integer", "bool": "True or False", "str": "text", "list": "a list"}
    raise FormatError(f"{where}: {full} is {describe(value)} ({type(value).__name__}), and pycls's {full} is {want.get(type(default).__name__, type(default).__name__)}"
                      f" (its default: {describe(default)})", fix="write it as pycls's own config.yaml does")


def read_cfg_file(path: Path, what: str) -> Cfg:
    """A cfg file the user named (``--cfg``, a run's config.yaml), read as pycls reads it."""
    from .files import read_text

    if path.suffix.lower() not in YAML_SUFFIXES:
        raise FormatError(f"{what} {path} is not a YAML file: pycls opens .yaml and .yml cfgs (a .py one it would run as Python)",
                          fix="pass the run's config.yaml")
    return read_cfg(read_text(path, what), f"{what} {path}")


def finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)
