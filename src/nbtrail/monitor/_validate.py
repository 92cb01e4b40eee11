"""Validation: does new data look like the data a model was trained on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .. import _html
from ._data import Data
from ._profile import ColumnProfile, kind_of_polars, scan

if TYPE_CHECKING:
    import polars as pl

    from ._reference import Reference

ProblemKind = Literal["missing_column", "unexpected_column", "type", "nulls",
                      "unseen_category", "out_of_range"]
EXAMPLES = 5


@dataclass(frozen=True)
class Problem:
    """One problem of one column: what, how many rows, a few offending values."""

    column: str
    problem: ProblemKind
    count: int | None
    """Rows concerned (``None`` for a column-level problem such as a missing column)."""
    detail: str
    examples: tuple[Any, ...] = ()


@dataclass(frozen=True)
class ValidationReport:
    """The problems found in new data, by column. ``ok`` when there are none.

    Shows as an HTML table in a notebook; ``to_polars()`` gives one row a problem.
    """

    reference: str
    source: str
    rows: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def columns(self) -> list[str]:
        """The columns that have at least one problem."""
        return list(dict.fromkeys(p.column for p in self.problems))

    def to_polars(self) -> pl.DataFrame:
        """One row a problem.

        Columns: ``column``, ``problem``, ``count``, ``share``, ``detail``, ``examples``.
        """
        import polars as pl

        return pl.DataFrame(
            [{"column": p.column, "problem": p.problem, "count": p.count,
              "share": p.count / self.rows if p.count is not None and self.rows else None,
              "detail": p.detail, "examples": ", ".join(map(repr, p.examples))}
             for p in self.problems],
            schema={"column": pl.String, "problem": pl.String, "count": pl.Int64,
                    "share": pl.Float64, "detail": pl.String, "examples": pl.String})

    def __repr__(self) -> str:
        head = f"<ValidationReport {self.rows} rows against {self.reference}: "
        if self.ok:
            return head + "no problem>"
        return head + "; ".join(f"{p.column}: {p.problem} ({p.detail})"
                                for p in self.problems) + ">"

    def _repr_html_(self) -> str:
        if self.ok:
            title = f"✓ {self.rows} rows valid against {self.reference}"
            return f'<div style="color:#067647;font-weight:bold">{_html.escape(title)}</div>'
        title = (f"{len(self.problems)} problems in {len(self.columns())} columns of "
                 f"{self.rows} rows ({self.source}) against {self.reference}")
        return (f'<div style="color:#b42318;font-weight:bold">{_html.escape(title)}</div>'
                + _html.table(["column", "problem", "rows", "detail", "examples"],
                              [(p.column, p.problem, p.count, p.detail,
                                ", ".join(map(repr, p.examples))) for p in self.problems],
                              max_rows=100))


def _examples(frame: pl.LazyFrame, name: str, condition: pl.Expr, *,
              most_frequent: bool = False) -> tuple[Any, ...]:
    import polars as pl

    picked = frame.select(pl.col(name)).filter(condition)
    if most_frequent:
        picked = picked.group_by(name).len().sort("len", descending=True).select(name)
    return tuple(picked.head(EXAMPLES).collect(engine="streaming").get_column(name).to_list())


def _row_numbers(frame: pl.LazyFrame, condition: pl.Expr) -> tuple[Any, ...]:
    found = frame.with_row_index("row").filter(condition).select("row").head(EXAMPLES)
    return tuple(f"row {i}" for i in found.collect(engine="streaming").get_column("row"))


def validate_data(data: Data, reference: Reference) -> ValidationReport:
    """Check ``data`` column by column against the reference profile."""
    import polars as pl

    frame = data.frame
    schema = frame.collect_schema()
    features = data.features()
    problems: list[Problem] = [
        Problem(name, "missing_column", None, "expected by the model, not in the data")
        for name in reference.columns if name not in features
    ]
    problems += [Problem(name, "unexpected_column", None, "not among the model's inputs")
                 for name in features if name not in reference.columns]
    checked: dict[str, ColumnProfile] = {}
    for name, ref in reference.columns.items():
        if name not in schema:
            continue
        got = kind_of_polars(schema[name])
        if got != ref.kind:
            value = pl.col(name).cast(pl.Float64, strict=False)
            bad = value.is_null() & pl.col(name).is_not_null() if ref.kind == "numeric" \
                else pl.col(name).is_not_null()
            rows = frame.select(bad.sum()).collect(engine="streaming").item()
            problems.append(Problem(name, "type", rows, f"expected {ref.kind} ({ref.dtype}), "
                                    f"got {got} ({schema[name]})",
                                    _examples(frame, name, bad)))
            continue
        if ref.dtype.startswith(("int", "uint")) and schema[name].is_float():
            fractional = pl.col(name) != pl.col(name).round()
            rows = frame.select(fractional.sum()).collect(engine="streaming").item()
            if rows:
                problems.append(Problem(name, "type", rows, f"fractional values in an integer "
                                        f"column ({ref.dtype})",
                                        _examples(frame, name, fractional)))
        checked[name] = ref
    bounds = {name: (ref.min, ref.max) for name, ref in checked.items() if ref.kind == "numeric"}
    counted, _ = scan(frame, {name: ref.kind for name, ref in checked.items()}, bounds=bounds)
    rows = frame.select(pl.len()).collect(engine="streaming").item() if not counted else \
        next(iter(counted.values())).rows
    for name, ref in checked.items():
        cur = counted[name]
        if cur.nulls and not ref.nulls:
            missing = pl.col(name).is_null()
            if ref.kind == "numeric":
                missing = missing | pl.col(name).cast(pl.Float64).is_nan()
            problems.append(Problem(name, "nulls", cur.nulls, "missing values; the training "
                                    "data had none", _row_numbers(frame, missing)))
        if ref.kind == "numeric" and any(cur.outside):
            below, above = cur.outside
            value = pl.col(name).cast(pl.Float64)
            problems.append(Problem(
                name, "out_of_range", below + above,
                f"{below} below the training minimum {ref.min}, {above} above the maximum "
                f"{ref.max}", _examples(frame, name, (value < ref.min) | (value > ref.max))))
        if ref.kind == "categorical" and ref.complete and ref.categories is not None:
            unseen = {v: n for v, n in (cur.categories or {}).items() if v not in ref.categories}
            if unseen or not cur.complete:
                known = list(ref.categories)
                condition = pl.col(name).is_not_null() & \
                    ~pl.col(name).cast(pl.String).is_in(known)
                total = sum(unseen.values()) if cur.complete else \
                    frame.select(condition.sum()).collect(engine="streaming").item()
                problems.append(Problem(
                    name, "unseen_category", total,
                    f"{len(unseen)}{'+' if not cur.complete else ''} values never seen in "
                    f"training (known: {', '.join(map(str, known[:10]))}"
                    f"{' …' if len(known) > 10 else ''})",
                    _examples(frame, name, condition, most_frequent=True)))
    return ValidationReport(reference.label, data.source, int(rows), tuple(problems))
