"""Column profiles that drift tests and validation compare.

Built from a stored data set profile, or streamed from data with polars.

A numeric profile holds the reference's percentile cut points and how many values fall in
each bin (``tracking._datasets.percentile_bins``); new data is counted on the same cut
points in one streaming pass, which gives both data sets' distribution functions at every
cut point: enough for the Kolmogorov–Smirnov distance and the population stability index,
however many rows there are. A categorical profile holds every category with its count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from ..tracking._datasets import MAX_CATEGORIES, percentile_bins

if TYPE_CHECKING:
    import polars as pl

Kind = Literal["numeric", "categorical", "temporal", "other"]
# Rows sampled (evenly spaced) to place the cut points of a data set streamed from disk.
EDGE_SAMPLE_ROWS = 200_000
# Distinct values a categorical pass keeps; the rest only add to the total.
_KEPT_VALUES = 1000


@dataclass(frozen=True)
class ColumnProfile:
    """What is known of one column: its kind, type, counts and distribution.

    ``percentiles`` and ``counts`` describe a numeric column (``counts`` has one entry
    per bin of ``edges``, see :attr:`edges`); ``categories`` maps each value of a
    categorical column to its count, ``complete`` telling whether it lists every value.
    """

    name: str
    kind: Kind
    dtype: str
    rows: int
    nulls: int
    min: float | None = None
    max: float | None = None
    percentiles: tuple[float, ...] | None = None
    counts: tuple[int, ...] | None = None
    categories: Mapping[str, int] | None = None
    complete: bool = True
    outside: tuple[int, int] = (0, 0)
    """Values below and above the bounds a count was asked to check (validation)."""

    @property
    def edges(self) -> list[float]:
        """The distinct cut points; bin ``i`` is ``(edges[i-1], edges[i]]``, ends open."""
        return sorted(set(self.percentiles or ()))

    @property
    def psi_edges(self) -> list[float]:
        """The deciles: the cut points of the stability index's ten bins."""
        return sorted(set((self.percentiles or ())[9::10]))

    @property
    def non_null(self) -> int:
        """Rows with a value (neither null nor NaN)."""
        return self.rows - self.nulls


def kind_of_arrow(dtype: str) -> Kind:
    """The kind of a column from the Arrow type string a stored profile records."""
    if dtype in ("bool", "large_string", "string", "string_view"):
        return "categorical"
    if dtype.startswith(("int", "uint", "float", "double", "halffloat", "decimal")):
        return "numeric"
    if dtype.startswith(("timestamp", "date", "time", "duration")):
        return "temporal"
    return "other"


def kind_of_polars(dtype: pl.DataType) -> Kind:
    """The kind of a polars column."""
    import polars as pl

    if dtype == pl.Boolean or dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "categorical"
    if dtype.is_numeric():
        return "numeric"
    if dtype.is_temporal():
        return "temporal"
    return "other"


def from_stats(column: Mapping[str, Any], stats: Mapping[str, Any], rows: int,
               sample: pl.DataFrame | None = None) -> ColumnProfile:
    """A column profile from a stored data set profile (``datasets.schema`` and ``stats``).

    Stores written before percentile bins existed fall back to the data set's stored
    sample of rows for the cut points and counts.
    """
    name, dtype = column["name"], column["dtype"]
    kind = kind_of_arrow(dtype)
    nulls = int(stats.get("nulls") or 0) + int(stats.get("nan") or 0)
    base = ColumnProfile(name, kind, dtype, rows, nulls)
    if kind == "numeric":
        bins = stats.get("bins")
        if bins is None and sample is not None and name in sample.columns:
            values = sample.get_column(name).cast(float).drop_nulls().to_numpy()
            bins = percentile_bins(values)
        return replace(
            base, min=stats.get("min"), max=stats.get("max"),
            percentiles=tuple(bins["percentiles"]) if bins else None,
            counts=tuple(bins["counts"]) if bins else None,
        )
    if kind == "categorical":
        if "true" in stats:
            return replace(base, categories={"false": stats["false"], "true": stats["true"]})
        counts = stats.get("counts")
        top = stats.get("top") or []
        if counts is None and len(top) == stats.get("n_unique"):
            counts = {entry["value"]: entry["count"] for entry in top}
        if counts is not None:
            return replace(base, categories=dict(counts))
        if stats.get("categories") is not None:  # values known, not their counts
            return replace(base, categories=dict.fromkeys(stats["categories"], 0))
        return replace(base, categories={e["value"]: e["count"] for e in top}, complete=False)
    return base


# -- streaming over data ----------------------------------------------------------------


def _value(column: pl.Expr, kind: Kind) -> pl.Expr:
    import polars as pl

    return column.cast(pl.Float64) if kind == "numeric" else column.cast(pl.String)


def sample_edges(frame: pl.LazyFrame, kinds: Mapping[str, Kind]) -> dict[str, tuple[float, ...]]:
    """Percentile cut points of each numeric column, from evenly spaced rows of ``frame``."""
    import polars as pl

    numeric = [name for name, kind in kinds.items() if kind == "numeric"]
    if not numeric:
        return {}
    rows = frame.select(pl.len()).collect(engine="streaming").item()
    step = max(1, rows // EDGE_SAMPLE_ROWS)
    picked = frame.select(
        [_value(pl.col(name), "numeric").alias(f"c{i}") for i, name in enumerate(numeric)]
    ).gather_every(step).collect(engine="streaming")
    edges = {}
    for i, name in enumerate(numeric):
        bins = percentile_bins(picked.get_column(f"c{i}").drop_nulls().to_numpy())
        if bins is not None:
            edges[name] = tuple(bins["percentiles"])
    return edges


def count(frame: pl.LazyFrame, kinds: Mapping[str, Kind], *,
          edges: Mapping[str, tuple[float, ...]],
          bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
          ) -> dict[str, ColumnProfile]:
    """Profile every column of ``kinds`` in one streaming pass over ``frame``.

    Numeric columns are counted on ``edges`` (a column without edges gets no bins);
    with ``bounds``, values below/above them are counted into ``outside``.
    """
    import polars as pl

    exprs: list[pl.Expr] = [pl.len().alias("rows")]
    for i, (name, kind) in enumerate(kinds.items()):
        value = _value(pl.col(name), kind)
        key = f"c{i}"
        if kind == "numeric":
            finite = value.filter(value.is_finite())
            exprs += [
                (value.is_null() | value.is_nan()).sum().alias(f"{key}.nulls"),
                finite.min().alias(f"{key}.min"),
                finite.max().alias(f"{key}.max"),
            ]
            if edges.get(name):
                cuts = [-math.inf, *sorted(set(edges[name])), math.inf]
                exprs.append(value.hist(bins=cuts).implode().alias(f"{key}.counts"))
            low, high = (bounds or {}).get(name, (None, None))
            if low is not None:
                exprs.append((value < low).sum().alias(f"{key}.below"))
            if high is not None:
                exprs.append((value > high).sum().alias(f"{key}.above"))
        elif kind == "categorical":
            exprs += [
                value.is_null().sum().alias(f"{key}.nulls"),
                value.drop_nulls().alias("value").value_counts(sort=True, name="n")
                .head(_KEPT_VALUES).implode().alias(f"{key}.values"),
            ]
        else:
            exprs.append(pl.col(name).is_null().sum().alias(f"{key}.nulls"))
    row = frame.select(exprs).collect(engine="streaming").row(0, named=True)
    rows = int(row["rows"])
    profiles = {}
    for i, (name, kind) in enumerate(kinds.items()):
        key = f"c{i}"
        profile = ColumnProfile(name, kind, "", rows, int(row[f"{key}.nulls"]))
        if kind == "numeric":
            counts = row.get(f"{key}.counts")
            profile = replace(
                profile, min=row[f"{key}.min"], max=row[f"{key}.max"],
                percentiles=edges.get(name) or None,
                counts=tuple(int(c) for c in counts) if counts is not None else None,
                outside=(int(row.get(f"{key}.below") or 0), int(row.get(f"{key}.above") or 0)),
            )
        elif kind == "categorical":
            values = {str(v["value"]): int(v["n"]) for v in row[f"{key}.values"]}
            complete = sum(values.values()) == profile.non_null
            profile = replace(profile, categories=values, complete=complete)
        profiles[name] = profile
    return profiles


def profile_frame(frame: pl.LazyFrame, columns: list[str] | None = None
                  ) -> dict[str, ColumnProfile]:
    """Profile data streamed from ``frame``: one pass to place cut points, one to count.

    String columns with more than 50 distinct values are kept as ``other`` (free text or
    identifiers: no distribution to compare).
    """
    schema = frame.collect_schema()
    kinds = {name: kind_of_polars(dtype) for name, dtype in schema.items()
             if columns is None or name in columns}
    profiles = count(frame, kinds, edges=sample_edges(frame, kinds))
    result = {}
    for name, profile in profiles.items():
        profile = replace(profile, dtype=str(schema[name]))
        if profile.kind == "categorical" and (
                not profile.complete or len(profile.categories or {}) > MAX_CATEGORIES):
            profile = replace(profile, kind="other", categories=None)
        result[name] = profile
    return result

