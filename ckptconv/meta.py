"""The ``meta`` a converted file carries, and its str -> str form for safetensors metadata."""

from __future__ import annotations

import json
from typing import Any

# Fields whose values are not strings; safetensors stores them JSON-encoded.
JSON_FIELDS = ("settings", "table_version", "epoch", "options")


def encode_meta(meta: dict[str, Any]) -> dict[str, str]:
    """Stringify every value (safetensors metadata is str -> str): strings as they are, the rest as JSON."""
    return {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in meta.items() if v is not None}


def decode_meta(raw: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in JSON_FIELDS:
            try:
                out[key] = json.loads(value)
                continue
            except (TypeError, ValueError):
                pass
        out[key] = value
    return out
