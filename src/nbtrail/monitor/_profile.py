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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from ..tracking._datasets import MAX_CATEGORIES, percentile_bins

if TYPE_CHECKING:
    import polars as pl

Kind = Literal["numeric", "categorical", "temporal", "other"]
# Rows sampled (evenly spaced) to place the cut points of a data set streamed from disk.
EDGE_SAMPLE_ROWS = 200_000
# Rows a pass holds at a time.
_BATCH_ROWS = 500_000
# Distinct values a categorical pass keeps; the rest only add to the total.
_KEPT_VALUES = 1000


@dataclass(frozen=True)
class ColumnProfile:
    """What is known of one column: its kind, type, counts and distribution.

    ``percentiles`` and ``counts`` describe a numeric column (``counts`` has one entry
    per bin of ``edges``, see :attr:`edges`; they count all non-null values, or a sample
    of them); ``categories`` maps each value of a
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


class Binner:
    """Counts values into the bins of sorted cut points, ``(edges[i-1], edges[i]]``.

    A binary search costs ~30 ns a value. Integers whose cut points span at most a million
    values are looked up in a table of every integer in that span. Other values are looked
    up in a table of 16,384 equal-width cells between the first and last edge (~4 ns), and
    only values in a cell that holds an edge (or next to one, against rounding) go through
    the binary search. The counts equal ``bincount(searchsorted(edges, values, "left"))``.
    """

    CELLS = 16_384
    MAX_SPAN = 1 << 20

    def __init__(self, edges: Sequence[float], *, integers: bool = False) -> None:
        import numpy as np

        self.edges = np.asarray(sorted(set(edges)), dtype=float)
        self.size = len(self.edges) + 1
        self.table: Any = None
        if len(self.edges) < 3 or not np.isfinite(self.edges).all():
            return
        self.low, high = float(self.edges[0]), float(self.edges[-1])
        whole = integers and bool((self.edges == np.round(self.edges)).all())
        if whole and high - self.low <= self.MAX_SPAN:
            # Every integer from low - 1 to high + 1 has one bin: no search at all.
            self.low -= 1
            self.scale = 1.0
            points = self.low + np.arange(int(high - self.low) + 2)
            bins = np.searchsorted(self.edges, points, side="left") + 1
            self.table = np.concatenate([[1], bins, [self.size]])
            return
        if high <= self.low or not math.isfinite(high - self.low):
            return
        self.scale = self.CELLS / (high - self.low)
        starts = self.low + np.arange(self.CELLS + 1) / self.scale
        first = np.searchsorted(self.edges, starts[:-1], side="left")
        last = np.searchsorted(self.edges, starts[1:], side="left")
        ambiguous = first != last
        ambiguous[1:] |= ambiguous[:-1].copy()
        ambiguous[:-1] |= ambiguous[1:].copy()
        # Entries are bin + 1, 0 meaning "search". Index 0: below the first edge (bin 0);
        # 1..CELLS: the cells; CELLS + 1: at or above the last edge.
        self.table = np.concatenate([[1], np.where(ambiguous, 0, first + 1), [0]])

    def count(self, values: Any) -> Any:
        """Bin counts of a float numpy array (NaN not allowed: remove them first)."""
        import numpy as np

        if self.table is None:
            return np.bincount(np.searchsorted(self.edges, values, side="left"),
                               minlength=self.size)
        # One cell below the first keeps the index non-negative: truncation is then floor.
        position = values - (self.low - 1 / self.scale)
        position *= self.scale
        np.clip(position, 0.0, len(self.table) - 1, out=position)
        found = self.table[position.astype(np.intp)]
        counts = np.bincount(found, minlength=self.size + 1)
        if counts[0]:
            exact = values[found == 0]
            counts[1:] += np.bincount(np.searchsorted(self.edges, exact, side="left"),
                                      minlength=self.size)
        return counts[1:]


def _value(column: pl.Expr, kind: Kind) -> pl.Expr:
    import polars as pl

    return column.cast(pl.Float64) if kind == "numeric" else column.cast(pl.String)


@dataclass
class _Tally:
    """What one column adds up to over the batches of a pass."""

    nulls: int = 0
    low: float | None = None
    high: float | None = None
    counts: Any = None
    values: dict[str, int] | None = None
    outside: list[int] | None = None

    def extremes(self, low: float | None, high: float | None) -> None:
        if low is not None:
            self.low = low if self.low is None else min(self.low, low)
        if high is not None:
            self.high = high if self.high is None else max(self.high, high)


def scan(frame: pl.LazyFrame, kinds: Mapping[str, Kind], *,
         edges: Mapping[str, Sequence[float]] | None = None,
         bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
         sample_rows: int = 0) -> tuple[dict[str, ColumnProfile], pl.DataFrame | None]:
    """Profile every column of ``kinds`` in one pass over ``frame``, batch by batch.

    Numeric columns are counted on their ``edges`` (none: no bins); with ``bounds``,
    values below/above them are counted into ``outside``. With ``sample_rows``, about
    that many evenly spaced rows of the numeric columns are kept and returned too.
    Memory stays at a few batches however large the data is.
    """
    import numpy as np
    import polars as pl

    names = list(kinds)
    numeric = [n for n in names if kinds[n] == "numeric"]
    schema = frame.collect_schema()
    binners = {n: Binner(edges[n], integers=schema[n].is_integer())
               for n in numeric if edges and edges.get(n)}
    step = 0
    if sample_rows and numeric:
        rows = frame.select(pl.len()).collect(engine="streaming").item()
        step = max(1, rows // sample_rows)
    # Positional aliases: hostile column names never reach an expression's output name.
    exprs: list[pl.Expr] = [pl.len().alias("rows")]
    for i, name in enumerate(names):
        value = _value(pl.col(name), kinds[name])
        if kinds[name] == "numeric":
            finite = pl.when(value.is_finite()).then(value)
            exprs += [(value.is_null() | value.is_nan()).sum().alias(f"{i}.nulls"),
                      finite.min().alias(f"{i}.min"), finite.max().alias(f"{i}.max")]
            low, high = (bounds or {}).get(name, (None, None))
            exprs += [(value < (-math.inf if low is None else low)).sum().alias(f"{i}.below"),
                      (value > (math.inf if high is None else high)).sum().alias(f"{i}.above")]
        elif kinds[name] == "categorical":
            exprs += [value.is_null().sum().alias(f"{i}.nulls"),
                      value.drop_nulls().alias("value").value_counts(sort=True, name="n")
                      .head(_KEPT_VALUES).implode().alias(f"{i}.values")]
        else:
            exprs.append(pl.col(name).is_null().sum().alias(f"{i}.nulls"))
    tallies = {name: _Tally() for name in names}
    rows, samples, offset = 0, [], 0
    for batch in frame.select(names).collect_batches(chunk_size=_BATCH_ROWS):
        found = batch.select(exprs).row(0, named=True)
        rows += found["rows"]
        for i, name in enumerate(names):
            tally = tallies[name]
            tally.nulls += int(found[f"{i}.nulls"])
            if kinds[name] == "numeric":
                tally.extremes(found[f"{i}.min"], found[f"{i}.max"])
                below, above = int(found[f"{i}.below"]), int(found[f"{i}.above"])
                tally.outside = [a + b for a, b in zip(tally.outside or [0, 0], (below, above),
                                                       strict=True)]
                if name in binners:
                    values = batch.get_column(name).cast(pl.Float64).drop_nulls().to_numpy()
                    counts = binners[name].count(values[~np.isnan(values)])
                    tally.counts = counts if tally.counts is None else tally.counts + counts
            elif kinds[name] == "categorical":
                tally.values = tally.values or {}
                for entry in found[f"{i}.values"]:
                    key = str(entry["value"])
                    tally.values[key] = tally.values.get(key, 0) + int(entry["n"])
        if step:
            # Every step-th row of the whole data, whatever the batch boundaries.
            picked = batch.select(numeric).slice((-offset) % step).gather_every(step)
            samples.append(picked.with_columns(pl.all().cast(pl.Float64)))
            offset += batch.height
    profiles = {}
    for name in names:
        tally, kind = tallies[name], kinds[name]
        profile = ColumnProfile(name, kind, "", rows, tally.nulls)
        if kind == "numeric":
            profile = replace(
                profile, min=tally.low, max=tally.high,
                percentiles=tuple(edges[name]) if name in binners and edges else None,
                counts=tuple(int(c) for c in tally.counts) if tally.counts is not None else
                (0,) * binners[name].size if name in binners else None,
                outside=(int((tally.outside or [0, 0])[0]), int((tally.outside or [0, 0])[1])))
        elif kind == "categorical":
            categories = tally.values or {}
            complete = sum(categories.values()) == profile.non_null
            profile = replace(profile, categories=categories, complete=complete)
        profiles[name] = profile
    sample = pl.concat(samples) if samples else None
    return profiles, sample


def profile_frame(frame: pl.LazyFrame, columns: list[str] | None = None
                  ) -> dict[str, ColumnProfile]:
    """Profile data streamed from ``frame`` in one pass.

    Row, null and category counts and ranges come from every row; numeric distributions
    (percentile bins) from up to ``EDGE_SAMPLE_ROWS`` evenly spaced rows, which pin them
    down to a fraction of a percent. String columns with more than 50 distinct values are
    kept as ``other`` (free text or identifiers: no distribution to compare).
    """
    schema = frame.collect_schema()
    kinds = {name: kind_of_polars(dtype) for name, dtype in schema.items()
             if columns is None or name in columns}
    profiles, sample = scan(frame, kinds, sample_rows=EDGE_SAMPLE_ROWS)
    result = {}
    for name, profile in profiles.items():
        profile = replace(profile, dtype=str(schema[name]))
        if kinds[name] == "numeric" and sample is not None:
            bins = percentile_bins(sample.get_column(name).drop_nulls().to_numpy())
            if bins is not None:
                profile = replace(profile, percentiles=tuple(bins["percentiles"]),
                                  counts=tuple(bins["counts"]))
        if profile.kind == "categorical" and (
                not profile.complete or len(profile.categories or {}) > MAX_CATEGORIES):
            profile = replace(profile, kind="other", categories=None)
        result[name] = profile
    return result
