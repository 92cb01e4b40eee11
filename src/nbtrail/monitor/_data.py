"""Data that monitoring reads: frames, Parquet files and prediction logs, all lazily.

Everything becomes a polars LazyFrame, so data larger than memory streams.

A prediction log is the folder the serving runtime writes (``predictions-*.jsonl``, one
JSON object a predicted row: ``time``, ``request_id``, ``model``, ``model_id``,
``model_sha256``, ``inputs`` {column: value}, ``prediction``, ``probabilities``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

LOG_PATTERN = "predictions-*.jsonl"
# Column names the log's own fields get next to the model inputs (never a feature name).
PREDICTION = "__nbtrail_prediction__"
REQUEST_ID = "__nbtrail_request_id__"
TIME = "__nbtrail_time__"
# Lines read to infer the log's types (values of one column must share a JSON type).
_INFER_ROWS = 10_000


@dataclass(frozen=True)
class Data:
    """Data to monitor: features (and maybe predictions) as a LazyFrame, and its origin."""

    frame: pl.LazyFrame
    source: str
    """What the data is, for messages and the stored report (a path or a type name)."""
    prediction: bool = False
    """Whether ``frame`` has the prediction column ``PREDICTION``."""

    def features(self) -> list[str]:
        """The columns that are model inputs."""
        return [c for c in self.frame.collect_schema() if c not in (PREDICTION, REQUEST_ID, TIME)]


def is_path(value: object) -> bool:
    """A path to data, as opposed to a model or run id."""
    return isinstance(value, os.PathLike) or (
        isinstance(value, str) and not value.startswith("mdl_") and Path(value).exists())


def load(data: object, *, what: str, prediction_column: str | None = None) -> Data:
    """Read ``data`` lazily: a frame, a Parquet file or glob, or a prediction log folder.

    Frames may be pandas, polars, pyarrow or numpy.
    ``prediction_column`` names a column of a frame or Parquet file that holds the model's
    predictions (a prediction log always has them).
    """
    import polars as pl

    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if path.is_dir():
            return read_log(path)
        if not path.exists() and "*" not in path.name:
            raise InvalidInputError(f"{what}: {str(path)!r} does not exist; give a prediction "
                                    "log folder, a .parquet file or a frame")
        if path.suffix == ".parquet" or "*" in path.name:
            if not path.exists() and not list(path.parent.glob(path.name)):
                raise InvalidInputError(f"{what}: no Parquet file matches {str(path)!r}")
            frame = pl.scan_parquet(path)
        else:
            raise InvalidInputError(
                f"{what}: {str(path)!r} is neither a prediction log folder nor a Parquet "
                "file; pass a folder of predictions-*.jsonl files, a .parquet file or a frame")
        source = str(path)
    elif isinstance(data, pl.LazyFrame):
        frame, source = data, "polars LazyFrame"
    else:
        from ..tracking._datasets import to_arrow

        table = to_arrow(data)
        keep = [n for n in table.column_names if not n.startswith("__index_level_")]
        frame = pl.from_arrow(table.select(keep)).lazy()  # type: ignore[union-attr]
        source = f"{type(data).__module__.partition('.')[0]} {type(data).__name__}"
    columns = frame.collect_schema().names()
    if prediction_column is not None and prediction_column in columns:
        frame = frame.rename({prediction_column: PREDICTION})
        return Data(frame, source, prediction=True)
    return Data(frame, source)


def read_log(folder: Path) -> Data:
    """The rows of a prediction log folder: one column per model input, then the prediction.

    Streams with ``polars.scan_ndjson`` over every file of the folder, so a log larger
    than memory is fine; rotated files are read in name (= time) order.
    """
    import polars as pl

    files = sorted(folder.glob(LOG_PATTERN))
    if not files:
        raise InvalidInputError(
            f"no prediction log in {str(folder)!r}: expected files named {LOG_PATTERN} "
            "(written by `nbtrail serve`); check the folder the server logs to")
    try:
        raw = pl.scan_ndjson(files, infer_schema_length=_INFER_ROWS)
        schema = raw.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise InvalidInputError(f"cannot read the prediction log in {str(folder)!r}: "
                                f"{str(exc).splitlines()[0]}") from None
    missing = [field for field in ("inputs", "prediction") if field not in schema]
    if missing or not isinstance(schema["inputs"], pl.Struct):
        raise InvalidInputError(
            f"{str(folder)!r} does not hold prediction logs: its lines lack "
            f"{', '.join(missing) or 'an inputs object'}")
    frame = raw.select(
        pl.col("inputs").struct.unnest(),
        pl.col("prediction").alias(PREDICTION),
        pl.col("request_id").alias(REQUEST_ID) if "request_id" in schema else pl.lit(None)
        .cast(pl.String).alias(REQUEST_ID),
        pl.col("time").alias(TIME) if "time" in schema else pl.lit(None).alias(TIME),
    )
    return Data(frame, str(folder), prediction=True)
