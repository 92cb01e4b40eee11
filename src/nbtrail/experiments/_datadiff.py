"""How two profiles of a data set differ: rows, schema, and columns whose statistics moved.

Works on the profiles the store keeps (``datasets.schema`` and ``datasets.stats``), so
it never needs the data itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# A numeric column "moved" when its mean shifts by this many of its standard deviations,
MEAN_SHIFT = 0.1
# its spread changes by more than this factor,
SPREAD_RATIO = 1.1
# or its share of nulls changes by this much.
NULL_SHARE = 0.01


def profile_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """``(column, change, before, after)`` for what differs from profile ``a`` to ``b``.

    Profiles are dicts with ``n_rows``, ``schema`` and ``stats`` as in the ``datasets``
    table. The column is ``""`` for a change of the whole data set (its row count).
    """
    changes: list[tuple[str, str, Any, Any]] = []
    if a.get("n_rows") != b.get("n_rows"):
        changes.append(("", "rows", a.get("n_rows"), b.get("n_rows")))
    types_a = {c["name"]: c["dtype"] for c in a.get("schema") or []}
    types_b = {c["name"]: c["dtype"] for c in b.get("schema") or []}
    for name, dtype in types_a.items():
        if name not in types_b:
            changes.append((name, "removed", dtype, None))
        elif types_b[name] != dtype:
            changes.append((name, "type", dtype, types_b[name]))
    changes += [(name, "added", None, dtype) for name, dtype in types_b.items()
                if name not in types_a]
    stats_a, stats_b = a.get("stats") or {}, b.get("stats") or {}
    for name in types_a.keys() & types_b.keys():
        changes += [(name, *moved) for moved in _moved(stats_a.get(name) or {},
                                                       stats_b.get(name) or {},
                                                       a.get("n_rows"), b.get("n_rows"))]
    return sorted(changes, key=lambda change: (change[0] != "", change[0], change[1]))


def _moved(a: Mapping[str, Any], b: Mapping[str, Any], rows_a: int | None,
           rows_b: int | None) -> list[tuple[str, Any, Any]]:
    moved: list[tuple[str, Any, Any]] = []
    if rows_a and rows_b:
        share_a, share_b = a.get("nulls", 0) / rows_a, b.get("nulls", 0) / rows_b
        if abs(share_a - share_b) >= NULL_SHARE:
            moved.append(("null share", round(share_a, 4), round(share_b, 4)))
    mean_a, mean_b = _number(a.get("mean")), _number(b.get("mean"))
    std_a, std_b = _number(a.get("std")), _number(b.get("std"))
    if mean_a is not None and mean_b is not None:
        scale = std_a or abs(mean_a) or 1.0
        if abs(mean_b - mean_a) / scale >= MEAN_SHIFT:
            moved.append(("mean", mean_a, mean_b))
    if std_a and std_b and max(std_a, std_b) / min(std_a, std_b) > SPREAD_RATIO:
        moved.append(("std", std_a, std_b))
    cats_a, cats_b = a.get("categories"), b.get("categories")
    if cats_a is not None and cats_b is not None and set(cats_a) != set(cats_b):
        gone = sorted(set(cats_a) - set(cats_b), key=str)
        new = sorted(set(cats_b) - set(cats_a), key=str)
        moved.append(("categories", f"-{gone}" if gone else "", f"+{new}" if new else ""))
    return moved


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
