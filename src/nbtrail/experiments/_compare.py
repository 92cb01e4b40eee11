"""Runs side by side: metrics and curves, params, data, code, environment and production."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import _html
from ..errors import InvalidInputError, NotFoundError
from ._branches import check_mode
from ._codediff import CodeDiff, FileChange, diff_cells, diff_commits
from ._datadiff import profile_changes
from ._gitops import locate_snapshot
from ._production import production_figures

if TYPE_CHECKING:
    import polars as pl

    from ..store import Group, Mode, Store
    from ..store._records import Run

# Curves are drawn for metrics with at least this many points in some run.
_CURVE_MIN_POINTS = 2


@dataclass(frozen=True)
class Comparison:
    """Runs side by side. Each section is a polars DataFrame; ``code`` holds git diffs.

    Columns named after the runs' labels (``labels``: the branch, experiment or run
    name) hold each run's value; in ``metrics``, ``Δ <label>`` is the difference to the
    first run.
    """

    runs: tuple[Run, ...]
    labels: tuple[str, ...]
    metric: str | None
    metrics: pl.DataFrame
    curves: pl.DataFrame
    params: pl.DataFrame
    data: pl.DataFrame
    data_changes: pl.DataFrame
    code: tuple[CodeDiff, ...]
    environment: pl.DataFrame
    production: pl.DataFrame

    def to_polars(self) -> dict[str, pl.DataFrame]:
        """Every section as a DataFrame (``code``: one row a changed file, per pair)."""
        import polars as pl

        code = [diff.to_polars().with_columns(pl.lit(label).alias("compared_to"))
                for diff, label in zip(self.code, self.labels[1:], strict=True)]
        return {
            "runs": self.overview(),
            "metrics": self.metrics, "curves": self.curves, "params": self.params,
            "data": self.data, "data_changes": self.data_changes,
            "code": pl.concat(code, how="diagonal_relaxed") if code else pl.DataFrame(),
            "environment": self.environment, "production": self.production,
        }

    def overview(self) -> pl.DataFrame:
        """One row a compared run: label, id, name, branch, commit, status, start."""
        import polars as pl

        return pl.DataFrame({
            "label": list(self.labels),
            "run_id": [r.run_id for r in self.runs],
            "name": [r.name for r in self.runs],
            "experiment": [r.experiment for r in self.runs],
            "branch": [(r.git or {}).get("branch") for r in self.runs],
            "commit": [(r.git or {}).get("commit") for r in self.runs],
            "status": [r.status for r in self.runs],
            "start_time": [r.start_time for r in self.runs],
        }, schema_overrides={"branch": pl.String, "commit": pl.String})

    def _repr_html_(self) -> str:
        first = self.labels[0]
        parts = [_html.section(
            "Comparison" + (f" on {self.metric}" if self.metric else ""),
            _frame_html(self.overview(), max_rows=50))]
        parts.append(_html.section("Metrics", _frame_html(self.metrics, max_rows=100)))
        for key in self.curves["key"].unique(maintain_order=True).to_list():
            points = self.curves.filter(key=key)
            series = {label: list(zip(points.filter(label=label)["step"].to_list(),
                                      points.filter(label=label)["value"].to_list(),
                                      strict=True))
                      for label in self.labels}
            parts.append(_html.line_chart(f"{key} by step", series))
        differing = set(self.params.with_row_index().filter("differs")["index"].to_list())
        parts.append(_html.section("Params (differing ones highlighted)",
                                   _frame_html(self.params, highlight=differing,
                                               max_rows=200)))
        parts.append(_html.section("Data sets", _frame_html(self.data, max_rows=50)))
        if not self.data_changes.is_empty():
            parts.append(_html.section(f"How the data differs from {first}'s",
                                       _frame_html(self.data_changes, max_rows=100)))
        for diff, label in zip(self.code, self.labels[1:], strict=True):
            parts.append(_html.section(f"Code: {first} → {label}", diff._repr_html_()))
        parts.append(_html.section("Packages that differ",
                                   _frame_html(self.environment, max_rows=100)))
        parts.append(_html.section("Production", _frame_html(self.production)))
        return "".join(parts)


def _frame_html(frame: pl.DataFrame, *, highlight: set[int] | None = None,
                max_rows: int = 20) -> str:
    if frame.is_empty():
        return "<div>(none)</div>"
    return _html.table(frame.columns, frame.rows(), max_rows=max_rows,
                       highlight=highlight or ())


def compare(store: Store, *, branches: Sequence[str] | None = None,
            experiments: Sequence[str] | None = None, runs: Sequence[str] | None = None,
            metric: str | None = None, mode: str = "max", model: str | None = None,
            latency: bool = True, trusted: bool | Sequence[str] = False) -> Comparison:
    """Compare runs side by side (see ``nt.compare``)."""
    chosen = [arg for arg in (branches, experiments, runs) if arg is not None]
    if len(chosen) != 1:
        raise InvalidInputError(
            "pass exactly one of branches=[...], experiments=[...] or runs=[...]")
    names = [chosen[0]] if isinstance(chosen[0], str) else list(chosen[0])
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidInputError(f"expected a non-empty list of names or run ids, got {names!r}")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"each name may appear once, got {names!r}")
    if runs is not None:
        from ..registry._refs import is_reference, resolve

        # A registry reference (churn@champion) stands for its version's run.
        refs = {n: resolve(store, n) for n in names if is_reference(n)}
        picked = [store.get_run(_run_of(store, refs[n].model_id) if n in refs else n)
                  for n in names]
        labels = [n if n in refs else label
                  for n, label in zip(names, _run_labels(picked), strict=True)]
    else:
        group: Group = "git_branch" if branches is not None else "experiment"
        picked = _best(store, group, names, metric, check_mode(mode))
        labels = names
    import polars as pl

    production = [{"label": label, **production_figures(store, run, model=model,
                                                         measure=latency, trusted=trusted)}
                  for run, label in zip(picked, labels, strict=True)]
    data, changes = _data(picked, labels)
    return Comparison(
        runs=tuple(picked), labels=tuple(labels), metric=metric,
        metrics=_metrics(picked, labels), curves=_curves(store, picked, labels),
        params=_params(picked, labels), data=data, data_changes=changes,
        code=tuple(_code(picked[0], other) for other in picked[1:]),
        environment=_environment(picked, labels),
        production=pl.DataFrame(production, schema_overrides={
            "model": pl.String, "model_id": pl.String, "class_name": pl.String,
            "size_bytes": pl.Int64, "single_p50_ms": pl.Float64, "single_p95_ms": pl.Float64,
            "batch_rows": pl.Int64, "batch_p50_ms": pl.Float64, "batch_p95_ms": pl.Float64,
            "note": pl.String}),
    )


def _best(store: Store, group: Group, names: list[str], metric: str | None,
          mode: Mode) -> list[Run]:
    what = "branch" if group == "git_branch" else "experiment"
    best = store.best_runs(group, names=names, metric=metric, mode=mode)
    found = {row["name"]: row for row in best.iter_rows(named=True)}
    missing = [n for n in names if n not in found]
    if missing:
        known = store.best_runs(group)["name"].to_list()
        raise NotFoundError(
            f"no runs on {what} {', '.join(map(repr, missing))} in the store at "
            f"{store.location}; {what}es with runs: {', '.join(known[:20]) or 'none'}")
    unscored = [n for n in names if found[n]["best_run_id"] is None]
    if unscored:
        why = f"with a finite value of metric {metric!r}" if metric else ""
        raise NotFoundError(
            f"no finished run {why} on {what} {', '.join(map(repr, unscored))}; "
            "finish a run there, or compare runs=[...] directly")
    return [store.get_run(found[n]["best_run_id"]) for n in names]


def _run_labels(runs: list[Run]) -> list[str]:
    """Run names, made unique with a short id where names repeat or are missing."""
    names = [r.name or r.run_id[:10] for r in runs]
    return [f"{n} ({r.run_id[:10]})" if names.count(n) > 1 else n
            for n, r in zip(names, runs, strict=True)]


def _metrics(runs: list[Run], labels: list[str]) -> pl.DataFrame:
    import polars as pl

    keys = sorted({k for r in runs for k in r.metrics})
    columns: dict[str, list[Any]] = {"metric": keys}
    for run, label in zip(runs, labels, strict=True):
        columns[label] = [run.metrics.get(k) for k in keys]
    first = columns[labels[0]]
    for label in labels[1:]:
        columns[f"Δ {label}"] = [_difference(a, b) for a, b in zip(first, columns[label],
                                                                    strict=True)]
    return pl.DataFrame(columns, schema={c: pl.String if c == "metric" else pl.Float64
                                         for c in columns})


def _difference(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return b - a


def _curves(store: Store, runs: list[Run], labels: list[str]) -> pl.DataFrame:
    import polars as pl

    label_of = {r.run_id: label for r, label in zip(runs, labels, strict=True)}
    points = store.metric_curves(list(label_of), min_points=_CURVE_MIN_POINTS)
    return points.with_columns(
        pl.col("run_id").replace_strict(label_of, return_dtype=pl.String).alias("label")
    ).select("label", "run_id", "key", "step", "value")


def _params(runs: list[Run], labels: list[str]) -> pl.DataFrame:
    import polars as pl

    keys = sorted({k for r in runs for k in r.params})
    columns: dict[str, list[Any]] = {"param": keys}
    values = [[str(r.params[k]) if k in r.params else None for k in keys] for r in runs]
    for label, column in zip(labels, values, strict=True):
        columns[label] = column
    columns["differs"] = [len({v[i] for v in values}) > 1 for i in range(len(keys))]
    return pl.DataFrame(columns, schema={c: pl.Boolean if c == "differs" else pl.String
                                         for c in columns})


def _text(value: Any) -> str | None:
    if isinstance(value, float):
        return f"{value:.6g}"
    return None if value is None else str(value)


def _data(runs: list[Run], labels: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    import polars as pl

    first = {(d["name"], d["role"]): d for d in runs[0].datasets}
    rows, changes = [], []
    for run, label in zip(runs, labels, strict=True):
        for d in run.datasets:
            base = first.get((d["name"], d["role"]))
            rows.append({"dataset": d["name"], "role": d["role"], "label": label,
                         "dataset_id": d["dataset_id"], "n_rows": d["n_rows"],
                         "n_columns": d["n_columns"],
                         "same_as_first": None if base is None
                         else base["fingerprint"] == d["fingerprint"]})
            if run is runs[0] or base is None or base["fingerprint"] == d["fingerprint"]:
                continue
            changes += [{"dataset": d["name"], "role": d["role"], "label": label,
                         "column": column, "change": change, "before": _text(before),
                         "after": _text(after)}
                        for column, change, before, after in profile_changes(base, d)]
    data_schema = {"dataset": pl.String, "role": pl.String, "label": pl.String,
                   "dataset_id": pl.String, "n_rows": pl.Int64, "n_columns": pl.Int64,
                   "same_as_first": pl.Boolean}
    change_schema = dict.fromkeys(("dataset", "role", "label", "column", "change", "before",
                                   "after"), pl.String)
    return (pl.DataFrame(rows, schema=data_schema).sort("dataset", "role", maintain_order=True),
            pl.DataFrame(changes, schema=change_schema))


def _code(a: Run, b: Run) -> CodeDiff:
    """The code change from run ``a`` to run ``b``: git snapshots, else executed cells."""
    snap_a, snap_b = (a.git or {}).get("snapshot"), (b.git or {}).get("snapshot")
    if snap_a and snap_b:
        # Runs made on another machine: their snapshots fetched into a repository here.
        root = locate_snapshot(a.run_id, snap_a, a.git["root"])  # type: ignore[index]
        if root is not None:
            locate_snapshot(b.run_id, snap_b, root)
        return diff_commits(root or a.git["root"], snap_a, snap_b)  # type: ignore[index]
    cells_a, cells_b = (a.code or {}).get("cells"), (b.code or {}).get("cells")
    if cells_a is not None and cells_b is not None:
        cells = diff_cells(cells_a, cells_b)
        path = b.notebook or a.notebook or "(cells executed in the kernel)"
        files = (FileChange(path=path, old_path=None, status="modified", added=None,
                            deleted=None, binary=False, size_a=None, size_b=None,
                            cells=cells),) if cells else ()
        return CodeDiff(commit_a=None, commit_b=None, files=files,
                        note="no git snapshots: the cells executed in the kernel are compared")
    missing = a.run_id if not (snap_a or cells_a) else b.run_id
    return CodeDiff(commit_a=snap_a, commit_b=snap_b, files=(),
                    note=f"run {missing} has no code snapshot (it ran outside git and "
                         "outside a notebook, or with capture_git=False)")


def _environment(runs: list[Run], labels: list[str]) -> pl.DataFrame:
    import polars as pl

    envs = [r.env or {} for r in runs]
    versions = [{"python": e.get("python"), "platform": e.get("platform"),
                 **(e.get("packages") or {})} for e in envs]
    names = sorted({n for v in versions for n in v},
                   key=lambda n: (n not in ("python", "platform"), n))
    differing = [n for n in names if len({v.get(n) for v in versions}) > 1]
    columns: dict[str, list[Any]] = {"package": differing}
    for label, found in zip(labels, versions, strict=True):
        columns[label] = [found.get(n) for n in differing]
    return pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String))


def _run_of(store: Store, model_id: str) -> str:
    return str(store.models(model_id=model_id)["run_id"][0])
