from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from nbtrail.errors import InvalidInputError
from nbtrail.tracking._datasets import DatasetProfile, profile_dataset, to_arrow

from ..conftest import python_output

FRAME_CODE = """
import pandas as pd
frame = pd.DataFrame({
    "i": list(range(1000)),
    "f": [x / 7 for x in range(1000)],
    "s": [f"row {x % 13}" for x in range(1000)],
})
"""




def mixed() -> dict[str, list[Any]]:
    return {
        "i": [1, 2, 3, 4, 5],
        "f": [1.5, None, 3.25, -4.0, 0.0],
        "s": ["a", "bb", None, "a", "ccc"],
    }


def fingerprint(data: object) -> str:
    return profile_dataset(data).fingerprint


def dumps(profile: DatasetProfile) -> str:
    return json.dumps(profile.to_json(), allow_nan=False)


# --- fingerprint -------------------------------------------------------------------------


def test_fingerprint_is_stable_across_processes() -> None:
    code = (
        FRAME_CODE
        + "from nbtrail.tracking._datasets import profile_dataset\n"
        + "print(profile_dataset(frame).fingerprint)\n"
    )
    first, second = python_output(code).strip(), python_output(code).strip()
    namespace: dict[str, Any] = {}
    exec(FRAME_CODE, namespace)
    here = fingerprint(namespace["frame"])
    assert first == second == here
    assert here.startswith("sha256:")
    assert len(here) == len("sha256:") + 64


def test_fingerprint_changes_with_one_value() -> None:
    frame = pd.DataFrame(mixed())
    base = fingerprint(frame)
    assert fingerprint(frame.copy()) == base
    changed = frame.copy()
    changed.loc[4, "f"] = 0.5
    assert fingerprint(changed) != base
    renamed = frame.rename(columns={"s": "t"})
    assert fingerprint(renamed) != base
    retyped = frame.astype({"i": "int32"})
    assert fingerprint(retyped) != base
    assert fingerprint(frame.iloc[:4]) != base


def test_null_differs_from_a_value() -> None:
    with_null = pl.DataFrame({"a": [1, None, 3]})
    with_zero = pl.DataFrame({"a": [1, 0, 3]})
    with_one = pl.DataFrame({"a": [1, 1, 3]})
    assert len({fingerprint(with_null), fingerprint(with_zero), fingerprint(with_one)}) == 3


def test_pandas_polars_and_pyarrow_agree() -> None:
    # pandas stores NaN under a null float slot and polars 0, so this also checks that
    # the bytes under nulls do not reach the hash.
    values = mixed()
    from_pandas = fingerprint(pd.DataFrame(values))
    assert fingerprint(pl.DataFrame(values)) == from_pandas
    assert fingerprint(pa.table(values)) == from_pandas
    assert fingerprint(pl.DataFrame(values).lazy()) == from_pandas


def test_categorical_and_bool_agree_across_libraries() -> None:
    values = {"c": ["x", "y", "x"], "b": [True, None, False]}
    pandas_frame = pd.DataFrame({"c": pd.Categorical(values["c"]), "b": values["b"]})
    polars_frame = pl.DataFrame(
        {"c": pl.Series(values["c"], dtype=pl.Categorical), "b": values["b"]}
    )
    assert fingerprint(pandas_frame) == fingerprint(polars_frame) == fingerprint(pa.table(values))


def test_fingerprint_ignores_chunking_metadata_and_field_nullability() -> None:
    values = np.arange(200_000)  # more than one 64k-row batch
    chunked = pa.chunked_array([values[:70_001], values[70_001:150_000], values[150_000:]])
    assert fingerprint(chunked) == fingerprint(values)
    schema = pa.schema([pa.field("a", pa.int64(), nullable=False, metadata={"k": "v"})])
    strict = pa.table({"a": [1, 2]}, schema=schema).replace_schema_metadata({"x": "y"})
    assert fingerprint(strict) == fingerprint(pa.table({"a": [1, 2]}))


def test_pandas_index() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    assert to_arrow(frame).column_names == ["a"]
    assert to_arrow(frame).schema.metadata is None
    indexed = frame.set_axis(["x", "y", "z"])
    assert to_arrow(indexed).column_names == ["a", "__index_level_0__"]
    assert fingerprint(indexed) != fingerprint(frame)
    named = frame.rename_axis("row")
    assert "row" in to_arrow(named).column_names


# --- inputs ------------------------------------------------------------------------------


def test_numpy_inputs() -> None:
    one = profile_dataset(np.array([1.0, 2.0, 3.0]))
    assert one.source_type == "numpy"
    assert (one.n_rows, one.n_columns) == (3, 1)
    assert one.schema == [{"name": "0", "dtype": "double", "nullable": False}]

    two = profile_dataset(np.arange(6).reshape(3, 2))
    assert [c["name"] for c in two.schema] == ["0", "1"]
    assert two.stats["0"]["max"] == 4
    assert two.stats["1"]["max"] == 5

    structured = np.array([(1, "a"), (2, "b")], dtype=[("x", "i4"), ("y", "U3")])
    profile = profile_dataset(structured)
    assert [(c["name"], c["dtype"]) for c in profile.schema] == [
        ("x", "int32"),
        ("y", "large_string"),
    ]

    # Unnamed 1-D data gets column "0" whichever library holds it.
    same = fingerprint(np.array([1, 2, 3]))
    assert fingerprint(pd.Series([1, 2, 3])) == same
    assert fingerprint(pl.Series([1, 2, 3])) == same
    assert fingerprint(pa.array([1, 2, 3])) == same


def test_numpy_with_too_many_dimensions() -> None:
    with pytest.raises(InvalidInputError, match="3 dimensions"):
        profile_dataset(np.zeros((2, 2, 2)))


def test_pyarrow_inputs() -> None:
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    profile = profile_dataset(table)
    assert profile.source_type == "pyarrow"
    assert profile.schema[1] == {"name": "b", "dtype": "large_string", "nullable": False}
    assert fingerprint(table.to_batches()[0]) == profile.fingerprint
    assert profile_dataset(pa.chunked_array([[1], [2, None]])).schema == [
        {"name": "0", "dtype": "int64", "nullable": True}
    ]


def test_lazyframe_is_collected() -> None:
    lazy = pl.DataFrame({"a": [3, 1, 2]}).lazy().sort("a")
    profile = profile_dataset(lazy)
    assert profile.source_type == "polars"
    assert profile.n_rows == 3
    assert profile.fingerprint == fingerprint(pl.DataFrame({"a": [1, 2, 3]}))


def test_lists_and_tuples_are_one_column_tables() -> None:
    corpus = ["a fine film", "dull", None]
    profile = profile_dataset(corpus)
    assert (profile.source_type, profile.n_rows, profile.n_columns) == ("python", 3, 1)
    assert profile.schema == [{"name": "0", "dtype": "large_string", "nullable": True}]
    assert profile.stats["0"]["nulls"] == 1
    # The same values as a list, a tuple or a 1-D array are the same data set.
    assert profile_dataset((1, 2, 3)).fingerprint == fingerprint([1, 2, 3]) == \
        fingerprint(np.array([1, 2, 3]))
    with pytest.raises(InvalidInputError, match=r"cannot convert the builtins\.list"):
        profile_dataset([1, "a"])


@pytest.mark.parametrize("data", [{1, 2, 3}, {"a": [1]}, "text", None, pd.Index([1, 2])])
def test_unsupported_type(data: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        profile_dataset(data)
    message = str(info.value)
    assert type(data).__qualname__ in message
    for accepted in ("pandas DataFrame", "polars", "LazyFrame", "numpy ndarray", "pyarrow Table"):
        assert accepted in message


def test_unconvertible_frame_is_an_input_error() -> None:
    with pytest.raises(InvalidInputError, match="Arrow"):
        profile_dataset(pd.DataFrame({"a": [1, "x"]}))


def test_no_heavy_imports() -> None:
    out = python_output(
        """
        import sys
        import nbtrail.tracking._datasets, nbtrail.tracking._models
        heavy = ("polars", "pyarrow", "numpy", "pandas", "sklearn", "skops")
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    assert out.strip() == "[]"


# --- statistics --------------------------------------------------------------------------


def test_numeric_stats() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(10, 3, size=1001)
    stats = profile_dataset(pd.DataFrame({"x": values})).stats["x"]
    assert stats["nulls"] == 0
    assert stats["n_unique"] == 1001
    assert stats["min"] == pytest.approx(values.min())
    assert stats["max"] == pytest.approx(values.max())
    assert stats["mean"] == pytest.approx(values.mean())
    assert stats["std"] == pytest.approx(values.std(ddof=1))
    expected = np.percentile(values, [5, 25, 50, 75, 95])
    assert list(stats["quantiles"]) == ["p05", "p25", "p50", "p75", "p95"]
    assert list(stats["quantiles"].values()) == pytest.approx(list(expected))
    histogram = stats["histogram"]
    assert len(histogram["edges"]) == 11
    assert len(histogram["counts"]) == 10
    assert sum(histogram["counts"]) == 1001
    assert histogram["edges"][0] == pytest.approx(values.min())
    assert histogram["edges"][-1] == pytest.approx(values.max())
    assert histogram["counts"] == np.histogram(values, bins=10)[0].tolist()


def test_integer_stats_are_ints() -> None:
    stats = profile_dataset(pl.DataFrame({"n": [3, 1, 2, 2, None]})).stats["n"]
    assert stats["min"] == 1 and isinstance(stats["min"], int)
    assert stats["max"] == 3 and isinstance(stats["max"], int)
    assert stats["nulls"] == 1
    assert stats["n_unique"] == 3
    assert stats["quantiles"]["p50"] == 2.0
    assert sum(stats["histogram"]["counts"]) == 4
    assert "nan" not in stats


def test_nan_and_inf() -> None:
    frame = pl.DataFrame({"f": [1.0, float("nan"), float("inf"), float("-inf"), None, 3.0]})
    profile = profile_dataset(frame)
    stats = profile.stats["f"]
    assert stats["nulls"] == 1
    assert stats["nan"] == 1
    assert stats["inf"] == 2
    assert (stats["min"], stats["max"], stats["mean"]) == (1.0, 3.0, 2.0)
    assert sum(stats["histogram"]["counts"]) == 2  # only the finite, non-null values
    dumps(profile)


def test_only_nan_and_inf() -> None:
    frame = pl.DataFrame({"f": [float("nan"), float("inf")]})
    profile = profile_dataset(frame)
    stats = profile.stats["f"]
    assert stats["min"] is None and stats["max"] is None and stats["mean"] is None
    assert stats["histogram"] is None
    assert set(stats["quantiles"].values()) == {None}
    dumps(profile)


def test_all_null_columns() -> None:
    frame = pd.DataFrame(
        {
            "f": pd.Series([None, None], dtype="float64"),
            "s": pd.Series([None, None], dtype="str"),
            "o": [None, None],
        }
    )
    profile = profile_dataset(frame)
    assert all(column["nullable"] for column in profile.schema)
    assert profile.stats["f"]["nulls"] == 2
    assert profile.stats["f"]["n_unique"] == 0
    assert profile.stats["f"]["min"] is None
    assert profile.stats["f"]["std"] is None
    assert profile.stats["s"]["top"] == []
    assert profile.stats["o"] == {"nulls": 2, "n_unique": 0}
    dumps(profile)


def test_empty_frame() -> None:
    frame = pd.DataFrame({"a": pd.Series([], dtype="int64"), "s": pd.Series([], dtype="str")})
    profile = profile_dataset(frame)
    assert (profile.n_rows, profile.n_columns) == (0, 2)
    assert profile.stats["a"]["nulls"] == 0
    assert profile.stats["a"]["min"] is None
    assert profile.stats["a"]["histogram"] is None
    assert profile.stats["s"]["top"] == []
    assert profile.stats["s"]["max_length"] is None
    assert profile.fingerprint != fingerprint(pd.DataFrame({"a": pd.Series([], dtype="int64")}))
    dumps(profile)


def test_string_stats() -> None:
    values = ["b"] * 5 + ["a"] * 5 + ["ccc"] * 3 + [None, ""] + [f"u{i}" for i in range(30)]
    stats = profile_dataset(pd.DataFrame({"s": values})).stats["s"]
    assert stats["nulls"] == 1
    assert stats["n_unique"] == 34
    assert (stats["min_length"], stats["max_length"]) == (0, 3)
    top = stats["top"]
    assert len(top) == 20
    # Ties are broken by value, so the order is reproducible.
    assert top[:3] == [
        {"value": "a", "count": 5},
        {"value": "b", "count": 5},
        {"value": "ccc", "count": 3},
    ]
    assert top[3] == {"value": "", "count": 1}
    assert stats["categories"] == sorted(v for v in set(values) if v is not None)


def test_many_distinct_strings_have_no_categories() -> None:
    stats = profile_dataset(pl.DataFrame({"s": [f"v{i}" for i in range(51)]})).stats["s"]
    assert "categories" not in stats
    assert len(stats["top"]) == 20


def test_bool_and_temporal_stats() -> None:
    frame = pd.DataFrame(
        {
            "b": [True, None, False, True],
            "t": pd.to_datetime(
                ["2024-01-02 00:00:00", None, "2023-05-06 07:08:09", "2024-01-01 00:00:00"]
            ),
            "d": [dt.date(2020, 1, 1), dt.date(2019, 1, 1), None, None],
        }
    )
    profile = profile_dataset(frame)
    assert profile.stats["b"] == {"nulls": 1, "n_unique": 2, "true": 2, "false": 1}
    assert profile.schema[1]["dtype"].startswith("timestamp[")
    assert profile.stats["t"]["min"] == "2023-05-06T07:08:09"
    assert profile.stats["t"]["max"] == "2024-01-02T00:00:00"
    assert profile.stats["d"]["min"] == "2019-01-01"
    assert profile.stats["d"]["max"] == "2020-01-01"
    dumps(profile)


def test_hostile_column_names() -> None:
    names = ['a"b', "it's", "ü ñ 名前", " ", "^a.*$", "c0.nulls", "", "with space"]
    frame = pl.DataFrame({name: [i, i + 1] for i, name in enumerate(names)})
    profile = profile_dataset(frame)
    assert [c["name"] for c in profile.schema] == names
    assert list(profile.stats) == names
    for i, name in enumerate(names):
        assert profile.stats[name]["min"] == i
    decoded = json.loads(dumps(profile))
    assert list(decoded["stats"]) == names
    assert fingerprint(frame.rename({"with space": "with  space"})) != profile.fingerprint


def test_duplicate_column_names_are_refused() -> None:
    table = pa.table([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(InvalidInputError, match="duplicate"):
        profile_dataset(table)


def test_other_arrow_types_do_not_break_profiling() -> None:
    table = pa.table(
        {
            "l": pa.array([[1], [2, 3], None]),
            "st": pa.array([{"x": 1}, None, {"x": 2}]),
            "bin": pa.array([b"a", b"", None]),
            "dur": pa.array([1_000_000, None, 5], pa.duration("us")),
        }
    )
    profile = profile_dataset(table)
    assert profile.stats["l"] == {"nulls": 1, "n_unique": 2}
    assert profile.stats["dur"]["max"] == "PT1.0S"
    assert profile.schema[0]["dtype"] == "large_list<item: int64>"
    dumps(profile)


def test_to_json_round_trips() -> None:
    profile = profile_dataset(pd.DataFrame(mixed()))
    data = json.loads(dumps(profile))
    assert data == profile.to_json()
    assert set(data) == {"fingerprint", "source_type", "n_rows", "n_columns", "schema", "stats"}
    assert data["schema"] == [
        {"name": "i", "dtype": "int64", "nullable": False},
        {"name": "f", "dtype": "double", "nullable": True},
        {"name": "s", "dtype": "large_string", "nullable": True},
    ]


def test_extreme_floats_stay_valid_json() -> None:
    for values in ([-1e308, 1e308, 5.0], [1.7e308, 1.7e308], [3.0, 3.0]):
        profile = profile_dataset(np.array(values))
        dumps(profile)
    assert sum(profile.stats["0"]["histogram"]["counts"]) == 2
