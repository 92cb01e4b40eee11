"""The one JSON encoder of nbtrail's outputs: the CLI's ``--json`` and the server extension.

Both turn the same stored values into strict JSON (no bare ``NaN``) the same way: times as
ISO text, durations as seconds, exact integers kept exact, bytes as hex, polars frames as
one object a row, anything else as its text. They differ in one documented point, the
spelling of NaN and the infinities, because their readers differ:

- ``nonfinite="text"`` (the CLI): ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, the strings
  ``float()`` reads back, so a script can tell a logged NaN from a missing value;
- ``nonfinite="null"`` (the server extension): ``null``, because the JupyterLab panel's
  wire types declare metrics as ``number | null`` and a string there would break it.

Example:
    >>> dumps({"acc": float("nan")}, nonfinite="text")
    '{"acc": "NaN"}'
    >>> dumps({"acc": float("nan")}, nonfinite="null")
    '{"acc": null}'
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

Nonfinite = Literal["text", "null"]


def jsonable(value: Any, *, nonfinite: Nonfinite) -> Any:
    """``value`` as plain JSON values (see the module docstring for ``nonfinite``)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _nonfinite(value, nonfinite)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        if not value.is_finite():
            return _nonfinite(float(value), nonfinite)
        # Integers stay exact (JSON numbers have no size limit); fractions become floats.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, nonfinite=nonfinite) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, nonfinite=nonfinite) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "to_dicts"):  # a polars DataFrame: one object a row
        return jsonable(value.to_dicts(), nonfinite=nonfinite)
    # Numbers of other types (numpy scalars register with these ABCs) stay numbers.
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return jsonable(float(value), nonfinite=nonfinite)
    return str(value)


def dumps(value: Any, *, nonfinite: Nonfinite, indent: int | None = None,
          ensure_ascii: bool = True) -> str:
    """``value`` as strict JSON text (``allow_nan=False``: never a bare ``NaN``)."""
    return json.dumps(jsonable(value, nonfinite=nonfinite), indent=indent,
                      ensure_ascii=ensure_ascii, allow_nan=False)


def _nonfinite(value: float, nonfinite: Nonfinite) -> str | None:
    if nonfinite == "null":
        return None
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"
