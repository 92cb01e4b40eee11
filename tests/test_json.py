"""nbtrail's one JSON encoder, used by the CLI's --json and the server extension."""

import json
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nbtrail._json import dumps, jsonable


def strict(text: str):
    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


VALUES = {"when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "day": date(2024, 1, 2),
          "took": timedelta(seconds=1.5), "exact": Decimal(10**30), "part": Decimal("2.50"),
          "raw": b"\x00\xff", "path": Path("a/b"), "np_int": np.int64(3),
          "np_float": np.float32(0.5), "tuple": (1, {2}), 7: None, "flag": True}
ENCODED = {"when": "2024-01-02T03:04:05+00:00", "day": "2024-01-02", "took": 1.5,
           "exact": 10**30, "part": 2.5, "raw": "00ff", "path": "a/b", "np_int": 3,
           "np_float": 0.5, "tuple": [1, [2]], "7": None, "flag": True}


@pytest.mark.parametrize("nonfinite", ["text", "null"])
def test_both_readers_get_the_same_values(nonfinite):
    assert strict(dumps(VALUES, nonfinite=nonfinite)) == ENCODED


@pytest.mark.parametrize(("nonfinite", "expected"), [
    ("text", ["NaN", "Infinity", "-Infinity", "NaN", "Infinity"]),
    ("null", [None, None, None, None, None]),
])
def test_nan_and_infinities_are_spelled_for_the_reader(nonfinite, expected):
    values = [math.nan, math.inf, -math.inf, Decimal("NaN"), np.float64("inf")]
    assert strict(dumps(values, nonfinite=nonfinite)) == expected


def test_a_polars_frame_is_one_object_a_row():
    frame = pl.DataFrame({"a": [1, 2], "b": [math.nan, 0.5]})
    assert jsonable(frame, nonfinite="null") == [{"a": 1, "b": None}, {"a": 2, "b": 0.5}]
