"""Checking request columns against the input signature learned at training time."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInputError

RangePolicy = Literal["warn", "reject"]
Kind = Literal["float", "int", "bool", "string", "datetime", "any"]

# Problems quoted per column: enough to find the rows, short enough to read.
_MAX_EXAMPLES = 5


def _kind(dtype: str) -> Kind:
    # dtype names are Arrow's, as the training profile records them.
    if dtype in ("double", "float", "halffloat") or dtype.startswith("decimal"):
        return "float"
    if dtype.startswith(("int", "uint")):
        return "int"
    if dtype == "bool":
        return "bool"
    if dtype in ("string", "large_string", "utf8", "large_utf8"):
        return "string"
    if dtype.startswith(("timestamp", "date")):
        return "datetime"
    return "any"


_NAMES: dict[Kind, str] = {
    "float": "a number", "int": "an integer", "bool": "true or false", "string": "a string",
    "datetime": "an ISO 8601 date/time string", "any": "a number, string, true/false or null",
}
# What the arrays of numeric columns hold: a number of the right type beyond these is
# refused as well, rather than overflowing inside numpy or the model.
_LIMITS: dict[Kind, tuple[float, float, str]] = {
    "float": (-sys.float_info.max, sys.float_info.max, "a finite 64-bit float"),
    "int": (-(2**63), 2**63 - 1, "a 64-bit integer"),
}
# Values quoted in problems are cut here: a request may hold a 4,000-digit number.
_MAX_SHOWN = 40


class HugeInteger:
    """A JSON integer longer than Python converts (``sys.get_int_max_str_digits``).

    The request decoder puts it where the number was; no field accepts it.
    """

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"an integer of {self.digits} digits"


def is_text(value: str) -> bool:
    r"""Whether ``value`` is valid Unicode (JSON's ``"\ud800"`` escapes are not)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def show(value: Any) -> str:
    """``value`` quoted for a problem message: ASCII-safe and short."""
    shown = repr(value)
    return shown if len(shown) <= _MAX_SHOWN else f"{shown[:_MAX_SHOWN]}…"


def _is_null(value: Any) -> bool:
    # NaN is how pandas and numpy spell a missing number: it counts as null.
    return value is None or (type(value) is float and value != value)


@dataclass(frozen=True)
class Column:
    """One input column of the signature."""

    name: str
    dtype: str
    kind: Kind
    nullable: bool
    min: float | None = None
    max: float | None = None
    categories: frozenset[Any] | None = None


@dataclass
class Problem:
    """What is wrong with one field of a request."""

    field: str
    problem: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


@dataclass
class Checked:
    """Request columns converted to arrays, with the warnings found on the way."""

    arrays: dict[str, np.ndarray]
    n_rows: int
    warnings: list[Problem] = field(default_factory=list)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


# A row (record) that lacks a column: told apart from an explicit null.
MISSING: Any = _Missing()


class SignatureError(InvalidInputError):
    """The request does not match the signature; ``problems`` names each field."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.problem}" for p in problems))
        self.problems = problems


def _rows(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_MAX_EXAMPLES])
    more = f" and {len(rows) - _MAX_EXAMPLES} more" if len(rows) > _MAX_EXAMPLES else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


class Signature:
    """The input (and output) description a model was packaged with (``signature.json``)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        inputs = spec.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise InvalidInputError(
                "signature.json has no 'inputs' list; re-create the package from a run that "
                "logged its training data or an input_example"
            )
        self.columns = [
            Column(
                name=str(c["name"]), dtype=str(c["dtype"]), kind=_kind(str(c["dtype"])),
                nullable=bool(c.get("nullable", True)), min=c.get("min"), max=c.get("max"),
                categories=frozenset(c["categories"]) if c.get("categories") else None,
            )
            for c in inputs
        ]
        self.by_name = {c.name: c for c in self.columns}
        self.outputs: list[dict[str, Any]] = list(spec.get("outputs") or [])
        self.frame: str = str(spec.get("frame") or "pandas")
        self.spec = dict(spec)

    @property
    def names(self) -> list[str]:
        """Column names in training order."""
        return [c.name for c in self.columns]

    def check(self, columns: Mapping[str, Sequence[Any]], *,
              range_policy: RangePolicy = "warn") -> Checked:
        """Convert ``columns`` (name -> values) to arrays, or raise :class:`SignatureError`.

        Missing and unknown columns, wrong types, nulls where training had none and
        categories never seen are errors; values outside the training range are warnings,
        or errors with ``range_policy="reject"``.
        """
        lengths = {len(values) for values in columns.values()}
        if lengths <= {0}:
            raise SignatureError([Problem("*", "no rows to predict")])
        problems = [Problem(name, "missing column") for name in self.names
                    if name not in columns]
        problems += [
            Problem(name, f"unknown column; the model takes {', '.join(self.names)}")
            for name in columns if name not in self.by_name
        ]
        if len(lengths) > 1:
            problems.append(Problem("*", "columns have different lengths "
                                         f"({', '.join(map(str, sorted(lengths)))})"))
        if problems:
            raise SignatureError(problems)
        n_rows = lengths.pop()
        arrays: dict[str, np.ndarray] = {}
        warnings: list[Problem] = []
        for column in self.columns:
            array, found, out_of_range = _convert(column, columns[column.name])
            if out_of_range:
                message = (f"{len(out_of_range)} value(s) outside the training range "
                           f"[{column.min}, {column.max}] ({_rows(out_of_range)})")
                (found if range_policy == "reject" else warnings).append(
                    Problem(column.name, message))
            problems += found
            arrays[column.name] = array
        if problems:
            raise SignatureError(problems)
        return Checked(arrays, n_rows, warnings)


def _convert(column: Column, values: Sequence[Any]
             ) -> tuple[np.ndarray, list[Problem], list[int]]:
    """One column as an array, its problems, and the rows outside the training range."""
    kind = column.kind
    absent = [i for i, v in enumerate(values) if v is MISSING]
    if absent:
        return (np.asarray([], dtype=object),
                [Problem(column.name, f"missing from {_rows(absent)}")], [])
    nulls = [i for i, v in enumerate(values) if _is_null(v)]
    if nulls:
        values = [None if _is_null(v) else v for v in values]
    problems = []
    if nulls and not column.nullable:
        problems.append(Problem(column.name, f"null where training data had none "
                                             f"({_rows(nulls)})"))
    wrong = [i for i, v in enumerate(values) if v is not None and not _fits(kind, v)]
    expected = _NAMES[kind]
    if not wrong and kind in _LIMITS:
        low, high, expected = _LIMITS[kind]
        wrong = [i for i, v in enumerate(values) if v is not None and not low <= v <= high]
    if wrong:
        example = values[wrong[0]]
        problems.append(Problem(column.name, f"expected {expected}, got {show(example)} "
                                             f"({_rows(wrong)})"))
        return np.asarray([], dtype=object), problems, []
    if kind == "float" or (kind == "int" and nulls):
        array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    elif kind == "int":
        array = np.array(values, dtype=np.int64)
    elif kind == "bool" and not nulls:
        array = np.array(values, dtype=bool)
    elif kind == "datetime":
        array = np.array(["NaT" if v is None else v for v in values], dtype="datetime64[us]")
    else:
        array = np.array(values, dtype=object)
    if column.categories is not None:
        unseen = [i for i, v in enumerate(values) if v is not None and v not in column.categories]
        if unseen:
            shown = sorted({show(values[i]) for i in unseen})[:_MAX_EXAMPLES]
            problems.append(Problem(column.name, f"categories never seen in training: "
                                                 f"{', '.join(shown)} ({_rows(unseen)})"))
    out_of_range: list[int] = []
    if kind in ("float", "int") and (column.min is not None or column.max is not None):
        low = -math.inf if column.min is None else column.min
        high = math.inf if column.max is None else column.max
        with np.errstate(invalid="ignore"):
            outside = (array < low) | (array > high)
        out_of_range = np.flatnonzero(outside).tolist()
    return array, problems, out_of_range


def _fits(kind: Kind, value: Any) -> bool:
    if kind == "float":
        return type(value) in (int, float)
    if kind == "int":
        return type(value) is int or (type(value) is float and value.is_integer())
    if kind == "bool":
        return type(value) is bool
    if kind == "string":
        return type(value) is str and is_text(value)
    if kind == "datetime":
        if type(value) is not str or not is_text(value):
            return False
        try:
            np.datetime64(value, "us")
        except (ValueError, OverflowError):
            return False
        return True
    # "any": a JSON scalar; lists and objects have no place in a column.
    if type(value) is str:
        return is_text(value)
    return type(value) in (bool, int) or (type(value) is float and math.isfinite(value))
