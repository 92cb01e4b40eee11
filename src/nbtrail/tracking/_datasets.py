"""Fingerprint, schema and summary statistics of a data set a run reads.

Every supported input is first normalised to one pyarrow Table, so a frame gets the same
fingerprint whether it arrives through pandas, polars, numpy or pyarrow, and the statistics
are computed by polars from that table.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbtrail.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

_ACCEPTED = (
    "pandas DataFrame/Series, polars DataFrame/Series/LazyFrame, numpy ndarray (1-D, 2-D or "
    "structured), pyarrow Table/RecordBatch/ChunkedArray/Array, a list or tuple of values"
)
_LIBRARIES = ("pandas", "polars", "numpy", "pyarrow")

# Bumped whenever the normalisation changes, so old and new ids can never collide.
_FINGERPRINT_VERSION = b"nbtrail-dataset-v1\0"
_BATCH_ROWS = 65_536
_QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
_HISTOGRAM_BINS = 10
# Cut points of the drift bins: the 1st to 99th percentiles (see ``percentile_bins``).
PERCENTILES = tuple(i / 100 for i in range(1, 100))
_TOP_VALUES = 20
# Up to this many distinct values, string stats list them all so a signature can use them.
MAX_CATEGORIES = 50


@dataclass(frozen=True)
class DatasetProfile:
    """What nbtrail records about a data set: its identity, shape, schema and statistics.

    ``fingerprint`` is ``"sha256:<hex>"`` of the normalised content, stable across processes.
    ``schema`` holds one ``{"name", "dtype", "nullable"}`` dict per column, ``dtype`` being
    the Arrow type string and ``nullable`` whether the column has nulls. ``stats`` maps each
    column name to its summary (see :func:`profile_dataset`).
    """

    fingerprint: str
    source_type: str
    n_rows: int
    n_columns: int
    schema: list[dict[str, Any]]
    stats: dict[str, dict[str, Any]]
    sample: bytes | None = field(default=None, repr=False)
    """Up to ``sample_rows`` random rows as Parquet, when asked for."""

    def to_json(self) -> dict[str, Any]:
        """Return the profile as a JSON-serialisable dict (valid even with ``allow_nan=False``)."""
        return {
            "fingerprint": self.fingerprint,
            "source_type": self.source_type,
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "schema": [dict(column) for column in self.schema],
            "stats": {name: dict(values) for name, values in self.stats.items()},
        }


def _library(data: object) -> str | None:
    # Walks the MRO by module name so subclasses are recognised without importing anything.
    for cls in type(data).__mro__:
        root = cls.__module__.partition(".")[0]
        if root in _LIBRARIES:
            return root
    return None


def _type_name(data: object) -> str:
    return f"{type(data).__module__}.{type(data).__qualname__}"


def _unsupported(data: object, detail: str = "") -> InvalidInputError:
    return InvalidInputError(
        f"cannot profile a data set of type {_type_name(data)}{detail}; accepted types: {_ACCEPTED}"
    )


def _unconvertible(data: object, exc: Exception) -> InvalidInputError:
    return InvalidInputError(
        f"cannot convert the {_type_name(data)} to an Arrow table ({type(exc).__name__}: "
        f"{exc}); make every column hold values of a single type Arrow supports"
    )


def _from_pandas(data: object) -> pa.Table:
    import pandas as pd
    import pyarrow as pa

    if isinstance(data, pd.Series):
        data = data.to_frame()
    if not isinstance(data, pd.DataFrame):
        raise _unsupported(data)
    index = data.index
    # A default RangeIndex is only row positions; any other index carries data, so keep it.
    default_index = (
        isinstance(index, pd.RangeIndex)
        and index.start == 0
        and index.step == 1
        and index.name is None
    )
    return pa.Table.from_pandas(data, preserve_index=not default_index)


def _from_polars(data: object) -> pa.Table:
    import polars as pl

    if isinstance(data, pl.LazyFrame):
        data = data.collect()
    if isinstance(data, pl.Series):
        # An unnamed Series gets the column name an unnamed pandas Series or numpy array gets.
        data = data.to_frame(data.name or "0")
    if not isinstance(data, pl.DataFrame):
        raise _unsupported(data)
    return data.to_arrow()


def _from_numpy(data: object) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    if not isinstance(data, np.ndarray):
        raise _unsupported(data)
    if data.dtype.names is not None:
        if data.ndim != 1:
            raise _unsupported(
                data, f" with {data.ndim} dimensions (structured arrays must be 1-D)"
            )
        columns = {name: data[name] for name in data.dtype.names}
    elif data.ndim == 1:
        columns = {"0": data}
    elif data.ndim == 2:
        # Fortran order makes every column a contiguous view instead of a strided one.
        data = np.asfortranarray(data)
        columns = {str(i): data[:, i] for i in range(data.shape[1])}
    else:
        raise _unsupported(data, f" with {data.ndim} dimensions (only 1-D and 2-D arrays)")
    arrays = []
    for values in columns.values():
        if values.dtype.kind == "T":
            values = values.astype(object)  # pyarrow cannot read numpy's StringDType directly
        arrays.append(pa.array(values))
    return pa.table(arrays, names=list(columns))


def _from_pyarrow(data: object) -> pa.Table:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.ChunkedArray | pa.Array):
        return pa.table({"0": data})
    raise _unsupported(data)


_CONVERTERS = {
    "pandas": _from_pandas,
    "polars": _from_polars,
    "numpy": _from_numpy,
    "pyarrow": _from_pyarrow,
}


def _normal_type(dtype: pa.DataType) -> pa.DataType:
    import pyarrow as pa

    types = pa.types
    if types.is_dictionary(dtype):
        return _normal_type(dtype.value_type)
    if types.is_string(dtype) or types.is_large_string(dtype) or types.is_string_view(dtype):
        return pa.large_string()
    if types.is_binary(dtype) or types.is_binary_view(dtype):
        return pa.large_binary()
    if (
        types.is_list(dtype)
        or types.is_large_list(dtype)
        or types.is_list_view(dtype)
        or types.is_large_list_view(dtype)
    ):
        return pa.large_list(_normal_field(dtype.value_field))
    if types.is_struct(dtype):
        return pa.struct([_normal_field(dtype.field(i)) for i in range(dtype.num_fields)])
    return dtype


def _normal_field(original: pa.Field) -> pa.Field:
    import pyarrow as pa

    # Rebuilt without metadata and always nullable: producers disagree on both.
    return pa.field(original.name, _normal_type(original.type))


def _from_sequence(data: object) -> pa.Table:
    import pyarrow as pa

    # A text corpus or a list of labels: one column, named as a 1-D array's, so the same
    # values give the same fingerprint as a list or as np.array(values).
    return pa.table({"0": pa.array(list(data))})  # type: ignore[call-overload]


def _split(data: object) -> tuple[str, pa.Table]:
    library = "python" if isinstance(data, list | tuple) else _library(data)
    if library is None:
        raise _unsupported(data)
    try:
        table = (_from_sequence if library == "python" else _CONVERTERS[library])(data)
    except InvalidInputError:
        raise
    except Exception as exc:  # each library raises its own error types for unconvertible data
        raise _unconvertible(data, exc) from exc

    import pyarrow as pa

    duplicates = sorted(name for name, n in Counter(table.column_names).items() if n > 1)
    if duplicates:
        raise InvalidInputError(
            f"the data set has duplicate column names {duplicates}; rename them so every "
            "column can be told apart"
        )
    schema = pa.schema([_normal_field(f) for f in table.schema])
    try:
        table = table.cast(schema)
    except pa.ArrowException as exc:
        raise _unconvertible(data, exc) from exc
    return library, table.combine_chunks()


def to_arrow(data: object) -> pa.Table:
    """Convert ``data`` into the normalised pyarrow Table that fingerprints and stats use.

    Schema metadata and a default pandas RangeIndex are dropped, strings become
    ``large_string``, dictionaries/categoricals their value type, and chunks are combined.
    Raises :class:`~nbtrail.errors.InvalidInputError` for unsupported types.
    """
    return _split(data)[1]


def _canonical_columns(table: pa.Table) -> list[pa.ChunkedArray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    # Arrow leaves the bytes under a null slot undefined (pandas writes NaN, polars 0) and
    # bitmaps may carry stray padding bits, so nulls become an explicit uint8 validity column
    # with the slots filled by a value taken from the data itself, and booleans become bytes.
    parts: list[pa.ChunkedArray] = []
    for column in table.columns:
        pieces = [column]
        if column.null_count:
            valid = pc.is_valid(column)
            pieces = [valid]
            if column.null_count < len(column):
                first = column[pc.index(valid, True).as_py()]
                try:
                    pieces.append(column.fill_null(first))
                except pa.ArrowNotImplementedError:
                    pieces.append(column)  # types fill_null lacks hash with their raw slots
        parts.extend(
            piece.cast(pa.uint8()) if pa.types.is_boolean(piece.type) else piece for piece in pieces
        )
    return parts


def _fingerprint(table: pa.Table) -> str:
    import pyarrow as pa

    digest = hashlib.sha256(_FINGERPRINT_VERSION)
    digest.update(table.num_rows.to_bytes(8, "little"))
    # The schema message carries the column names and types.
    digest.update(table.schema.serialize())
    parts = _canonical_columns(table)
    canonical = pa.table(parts, names=[str(i) for i in range(len(parts))]).combine_chunks()
    # Each batch is serialised as one IPC message straight into the hash, so at most one
    # batch of bytes exists at a time however big the table is.
    for batch in canonical.to_batches(max_chunksize=_BATCH_ROWS):
        if batch.num_rows:
            digest.update(batch.serialize())
    return f"sha256:{digest.hexdigest()}"


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso(value: Any) -> str | None:
    import datetime as dt

    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return f"PT{value.total_seconds()}S"  # ISO 8601 duration in seconds
    return value.isoformat()


def _to_polars(table: pa.Table) -> list[pl.Series | None]:
    import polars as pl

    # Per column, so one type polars cannot read costs only that column's stats.
    series: list[pl.Series | None] = []
    for i, column in enumerate(table.columns):
        try:
            converted = pl.from_arrow(column)
        except Exception:  # polars raises assorted errors for Arrow types it lacks
            converted = None
        # Positional names keep hostile column names out of polars expressions.
        series.append(converted.alias(f"c{i}") if isinstance(converted, pl.Series) else None)
    return series


def _floats(column: pa.ChunkedArray) -> Any:
    import pyarrow as pa

    # Straight from Arrow into numpy: per-column polars calls cost more than the binning.
    # Unsafe cast: ints above 2**53 only need to land in the right bin, not stay exact.
    return column.drop_null().cast(pa.float64(), safe=False).to_numpy()


def _histogram(column: pa.ChunkedArray) -> dict[str, list[Any]] | None:
    import numpy as np

    floats = _floats(column)
    finite = floats[np.isfinite(floats)]
    if not len(finite):
        return None
    low, high = float(finite.min()), float(finite.max())
    if not math.isfinite(high - low):
        return None  # a span beyond float range (e.g. -1e308..1e308) has no finite bins
    try:
        counts, edges = np.histogram(finite, bins=_HISTOGRAM_BINS)
    except ValueError:
        return None  # the span is too narrow for 10 distinct float edges
    return {"edges": [float(edge) for edge in edges], "counts": [int(c) for c in counts]}


def percentile_bins(values: Any) -> dict[str, list[Any]] | None:
    """Cut points at the 1st…99th percentiles and how many values fall in each bin.

    ``values`` is a float numpy array (nulls removed). Bin ``i`` holds the values in
    ``(edges[i-1], edges[i]]`` with ``edges = sorted(set(percentiles))`` and open ends, so
    ``counts`` has one more entry than ``edges``; ±inf fall in the end bins, NaN in none.
    Drift tests bin new data on the same edges: the counts give the exact reference
    distribution function at every edge (for Kolmogorov–Smirnov) and, grouped by decile,
    the bins of the population stability index.
    """
    import numpy as np

    values = values[~np.isnan(values)]
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    # "lower" picks data points, so a column of integers gets integer cut points.
    percentiles = np.quantile(finite, PERCENTILES, method="lower")
    edges = np.unique(percentiles)
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return {"percentiles": [float(p) for p in percentiles], "counts": [int(c) for c in counts]}


def _string_values(values: pl.Series, n_unique: int) -> dict[str, Any]:
    counts = values.drop_nulls().alias("value").value_counts(name="count")
    # Ties broken by value so the list is the same on every run; top_k avoids a full sort.
    top = counts.top_k(_TOP_VALUES, by=["count", "value"], reverse=[False, True])
    result: dict[str, Any] = {
        "top": [{"value": value, "count": int(count)} for value, count in top.iter_rows()]
    }
    if n_unique <= MAX_CATEGORIES:
        result["categories"] = sorted(counts.get_column("value").to_list())
        result["counts"] = dict(sorted(counts.iter_rows()))  # the reference of drift tests
    return result


def _column_stats(table: pa.Table) -> dict[str, dict[str, Any]]:
    import polars as pl

    series = _to_polars(table)
    frame = pl.DataFrame([s for s in series if s is not None])
    exprs: list[pl.Expr] = []
    for s in series:
        if s is None:
            continue
        key, col, dtype = s.name, pl.col(s.name), s.dtype
        exprs += [
            col.null_count().alias(f"{key}.nulls"),
            col.drop_nulls().n_unique().alias(f"{key}.n_unique"),
        ]
        if dtype == pl.Boolean:
            exprs.append(col.sum().alias(f"{key}.true"))
        elif dtype.is_numeric():
            values = col.cast(pl.Float64) if dtype.is_decimal() else col
            # NaN sorts above every number in polars, so summaries use finite values only.
            finite = values.filter(values.is_finite())
            exprs += [
                finite.min().alias(f"{key}.min"),
                finite.max().alias(f"{key}.max"),
                finite.mean().alias(f"{key}.mean"),
                finite.std().alias(f"{key}.std"),
                finite.quantile(list(_QUANTILES.values()), interpolation="linear").alias(
                    f"{key}.quantiles"
                ),
            ]
            if dtype.is_float():
                exprs += [
                    col.is_nan().sum().alias(f"{key}.nan"),
                    col.is_infinite().sum().alias(f"{key}.inf"),
                ]
        elif dtype == pl.String:
            lengths = col.str.len_chars()
            exprs += [
                lengths.min().alias(f"{key}.min_length"),
                lengths.max().alias(f"{key}.max_length"),
            ]
        elif dtype.is_temporal():
            exprs += [col.min().alias(f"{key}.min"), col.max().alias(f"{key}.max")]
    row = frame.select(exprs).row(0, named=True) if exprs else {}
    by_column: dict[str, dict[str, Any]] = {}
    for alias, value in row.items():
        key, _, stat = alias.partition(".")
        by_column.setdefault(key, {})[stat] = value

    stats: dict[str, dict[str, Any]] = {}
    for i, (name, s) in enumerate(zip(table.column_names, series, strict=True)):
        if s is None:
            stats[name] = {"nulls": table.column(i).null_count, "n_unique": None}
            continue
        found = by_column[s.name]
        column: dict[str, Any] = {"nulls": found["nulls"], "n_unique": found["n_unique"]}
        dtype = s.dtype
        if dtype == pl.Boolean:
            true = found["true"] or 0
            column |= {"true": true, "false": len(s) - column["nulls"] - true}
        elif dtype.is_numeric():
            quantiles = found["quantiles"] or [None] * len(_QUANTILES)
            column |= {
                "min": _finite(found["min"]),
                "max": _finite(found["max"]),
                "mean": _finite(found["mean"]),
                "std": _finite(found["std"]),
                "quantiles": {
                    label: _finite(q) for label, q in zip(_QUANTILES, quantiles, strict=True)
                },
                "histogram": _histogram(table.column(i)),
                "bins": percentile_bins(_floats(table.column(i))),
            }
            if dtype.is_float():
                column |= {"nan": found["nan"], "inf": found["inf"]}
        elif dtype == pl.String:
            column |= {"min_length": found["min_length"], "max_length": found["max_length"]}
            column |= _string_values(s, column["n_unique"])
        elif dtype.is_temporal():
            column |= {"min": _iso(found["min"]), "max": _iso(found["max"])}
        stats[name] = column
    return stats


def profile_dataset(data: object, *, sample_rows: int = 0) -> DatasetProfile:
    """Fingerprint and summarise a data set, and keep a sample of its rows if asked.

    Accepts pandas DataFrame/Series, polars DataFrame/Series/LazyFrame, numpy arrays,
    pyarrow Table/RecordBatch/ChunkedArray/Array, and lists or tuples of values (one column,
    ``"0"``, like a 1-D array; ``source_type`` ``"python"``). Every column's stats hold
    ``nulls`` and ``n_unique``; numeric columns add ``min``, ``max``, ``mean``, ``std``,
    ``quantiles`` and a 10-bin ``histogram`` over their finite values (floats also count
    ``nan`` and ``inf``) and percentile ``bins`` (see :func:`percentile_bins`); booleans add
    ``true``/``false`` counts; strings add the 20 most frequent values as ``top``,
    ``min_length``, ``max_length`` and, with at most 50 distinct values, all of them as
    ``categories`` and their ``counts``; temporal columns add ``min``/``max`` as ISO
    strings. Values that do not exist (an empty column's mean, a NaN) are ``None``.

    With ``sample_rows``, ``sample`` holds that many rows drawn at random (seeded by the
    fingerprint, so the same data gives the same sample) as Parquet bytes.
    """
    source_type, table = _split(data)
    fingerprint = _fingerprint(table)
    schema = [
        {"name": f.name, "dtype": str(f.type), "nullable": table.column(i).null_count > 0}
        for i, f in enumerate(table.schema)
    ]
    return DatasetProfile(
        fingerprint=fingerprint,
        source_type=source_type,
        n_rows=table.num_rows,
        n_columns=table.num_columns,
        schema=schema,
        stats=_column_stats(table),
        sample=_sample(table, sample_rows, fingerprint) if sample_rows else None,
    )


def _sample(table: pa.Table, n: int, fingerprint: str) -> bytes:
    import io

    import numpy as np
    import pyarrow.parquet as pq

    if table.num_rows > n:
        rng = np.random.default_rng(int(fingerprint.removeprefix("sha256:")[:16], 16))
        table = table.take(np.sort(rng.choice(table.num_rows, n, replace=False)))
    keep = [name for name in table.column_names if not name.startswith("__index_level_")]
    out = io.BytesIO()
    pq.write_table(table.select(keep), out)
    return out.getvalue()
