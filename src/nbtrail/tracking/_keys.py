"""Validation of keys and values, shared by params, metrics and tags."""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

from ..errors import InvalidInputError

MAX_KEY_LENGTH = 250
MAX_VALUE_LENGTH = 65_536


def check_key(kind: str, key: object) -> str:
    """Return ``key`` if it is a usable metric/param/tag key, else raise with the fix."""
    if not isinstance(key, str):
        raise InvalidInputError(
            f"{kind} key {key!r} is of type {type(key).__name__}; keys must be strings, "
            f"e.g. {str(key)!r}"
        )
    if not key or not key.strip():
        raise InvalidInputError(f"{kind} key is empty; give the {kind} a name")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(
            f"{kind} key {key[:40]!r}… is {len(key)} characters long; "
            f"keys may have at most {MAX_KEY_LENGTH}"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidInputError(
            f"{kind} key {key!r} contains control characters (newline, tab, …); remove them"
        )
    return key


def metric_value(key: str, value: object) -> float:
    """A metric value as float; NaN and ±inf are kept as they are."""
    # Anything with __float__ counts: numpy scalars and 0-d arrays, torch scalars.
    if isinstance(value, (str, bytes)) or not hasattr(type(value), "__float__"):
        raise InvalidInputError(
            f"metric {key!r} got {value!r} ({type(value).__name__}); metric values must be "
            f"numbers — log text with run.set_tag({key!r}, ...) or run.log_param"
        )
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"metric {key!r} got {value!r}, which does not convert to a number: {exc}"
        ) from None


def param_value(key: str, value: Any) -> tuple[str | None, str]:
    """Encode a param value as ``(text, type)``; the type lets reads restore it."""
    if value is None:
        return None, "null"
    if isinstance(value, bool):
        return str(value), "bool"
    if isinstance(value, numbers.Integral):
        return str(int(value)), "int"
    if isinstance(value, numbers.Real):
        number = float(value)
        return (repr(number) if math.isfinite(number) else json.dumps(number)), "float"
    if isinstance(value, str):
        text, kind = value, "str"
    else:
        try:
            text, kind = json.dumps(value, sort_keys=True, allow_nan=True), "json"
        except (TypeError, ValueError):
            text, kind = str(value), "str"
    if len(text) > MAX_VALUE_LENGTH:
        raise InvalidInputError(
            f"param {key!r} is {len(text)} characters long (at most {MAX_VALUE_LENGTH}); "
            "log large values as an artifact with run.log_artifact"
        )
    return text, kind


def tag_value(key: str, value: object) -> str:
    """Tags are text."""
    text = str(value)
    if len(text) > MAX_VALUE_LENGTH:
        raise InvalidInputError(
            f"tag {key!r} is {len(text)} characters long (at most {MAX_VALUE_LENGTH})"
        )
    return text
