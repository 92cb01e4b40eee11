"""Signature checks on their own: each column kind, nulls, ranges."""

from __future__ import annotations

import numpy as np
import pytest

from nbtrail.errors import InvalidInputError
from nbtrail.serving._signature import Signature, SignatureError

SPEC = {"inputs": [
    {"name": "n", "dtype": "int64", "nullable": True, "min": 0, "max": 10},
    {"name": "x", "dtype": "double", "nullable": True, "min": -1.0, "max": 1.0},
    {"name": "flag", "dtype": "bool", "nullable": False, "categories": [False, True]},
    {"name": "when", "dtype": "timestamp[us]", "nullable": False},
    {"name": "note", "dtype": "large_string", "nullable": True},
]}


def _problems(columns, **kwargs):
    with pytest.raises(SignatureError) as caught:
        Signature(SPEC).check(columns, **kwargs)
    return {p.field: p.problem for p in caught.value.problems}


def _columns(**changes):
    return {"n": [1, 2], "x": [0.5, -0.5], "flag": [True, False],
            "when": ["2026-01-02T03:04:05", "2026-01-03"], "note": ["a", None]} | changes


def test_each_kind_converts_to_the_array_the_model_expects():
    checked = Signature(SPEC).check(_columns(n=[1, None], x=[0.5, None]))
    arrays = checked.arrays
    assert arrays["n"].dtype == np.float64 and np.isnan(arrays["n"][1])  # nullable int
    assert arrays["x"].dtype == np.float64
    assert arrays["flag"].dtype == bool
    assert arrays["when"].dtype == np.dtype("datetime64[us]")
    assert arrays["note"].tolist() == ["a", None]
    assert checked.n_rows == 2 and checked.warnings == []
    assert Signature(SPEC).check(_columns(n=[1, 2.0])).arrays["n"].dtype == np.int64


@pytest.mark.parametrize(("column", "values", "problem"), [
    ("n", [1, True], "expected an integer, got True (row 1)"),
    ("x", ["0.5", 1], "expected a number, got '0.5' (row 0)"),
    ("flag", [1, 0], "expected true or false, got 1 (rows 0, 1)"),
    ("flag", [True, None], "null where training data had none (row 1)"),
    ("when", ["yesterday", "2026-01-01"], "expected an ISO 8601 date/time string"),
    ("note", ["a", 3], "expected a string, got 3 (row 1)"),
])
def test_wrong_values_are_named_with_their_rows(column, values, problem):
    assert problem in _problems(_columns(**{column: values}))[column]


def test_many_bad_rows_are_summarised():
    found = _problems(_columns(n=["a"] * 8, x=[0.0] * 8, flag=[True] * 8,
                               when=["2026-01-01"] * 8, note=["a"] * 8))
    assert found["n"].endswith("(rows 0, 1, 2, 3, 4 and 3 more)")


def test_ranges_warn_or_refuse():
    columns = _columns(n=[11, 5], x=[-3.0, None])
    warnings = {w.field: w.problem for w in Signature(SPEC).check(columns).warnings}
    assert warnings == {"n": "1 value(s) outside the training range [0, 10] (row 0)",
                        "x": "1 value(s) outside the training range [-1.0, 1.0] (row 0)"}
    assert set(_problems(columns, range_policy="reject")) == {"n", "x"}


def test_shape_problems():
    assert _problems(_columns(n=[1]))["*"].startswith("columns have different lengths")
    assert _problems({k: [] for k in _columns()})["*"] == "no rows to predict"


def test_a_signature_without_inputs_is_refused():
    with pytest.raises(InvalidInputError, match="no 'inputs' list"):
        Signature({"inputs": []})
