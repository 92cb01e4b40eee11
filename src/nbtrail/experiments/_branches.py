"""One row a git branch: how many runs, the best value of a metric, whether it still exists."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from ..errors import GitError, InvalidInputError
from ..tracking._git import git_bytes

if TYPE_CHECKING:
    import polars as pl

    from ..store._duckdb import DuckDBStore

Mode = Literal["max", "min"]
Group = Literal["git_branch", "experiment"]


def check_mode(mode: str) -> Mode:
    """``mode`` as given, once checked."""
    if mode not in ("max", "min"):
        raise InvalidInputError(f"mode must be 'max' or 'min', got {mode!r}")
    return mode  # type: ignore[return-value]


def best_runs(store: DuckDBStore, group: Group, names: list[str] | None, metric: str | None,
              mode: Mode) -> pl.DataFrame:
    """Per group value (branch or experiment): run count, last run and the best run.

    The best run is the finished run with the best finite latest value of ``metric``;
    without a metric, the group's newest finished run. Columns: ``name``, ``runs``,
    ``last_run``, ``git_root``, ``best_run_id``, ``best``.
    """
    pick = "arg_max" if mode == "max" else "arg_min"
    # Finished runs only: a running or failed run's last value is not a model's score.
    value = ("CASE WHEN r.status = 'finished' AND isfinite(lm.value) THEN lm.value END"
             if metric is not None else "NULL")
    order = value if metric is not None else (
        "CASE WHEN r.status = 'finished' THEN epoch(r.start_time) END")
    only = f"AND list_contains(?::VARCHAR[], r.{group})" if names is not None else ""
    query = f"""
        SELECT r.{group} AS name, count(*) AS runs, max(r.start_time) AS last_run,
               arg_max(r.git_root, r.start_time) AS git_root,
               {pick}(r.run_id, {order}) FILTER (WHERE {order} IS NOT NULL) AS best_run_id,
               {"max" if mode == "max" else "min"}({value}) AS best
        FROM runs r
        LEFT JOIN latest_metrics lm ON lm.run_id = r.run_id AND lm.key = ?
        WHERE r.{group} IS NOT NULL {only}
        GROUP BY 1 ORDER BY last_run DESC, name
    """
    params: list[object] = [metric or ""]
    if names is not None:
        params.append(names)
    return store.sql(query, params)


def branches(store: DuckDBStore, metric: str | None = None, mode: str = "max") -> pl.DataFrame:
    """One row a branch that runs were made on (see ``nt.branches``)."""
    import polars as pl

    frame = best_runs(store, "git_branch", None, metric, check_mode(mode))
    heads = {root: _branch_heads(root) for root in frame["git_root"].unique().to_list()}
    head = [heads[root].get(name) for name, root in zip(frame["name"], frame["git_root"],
                                                          strict=True)]
    best = f"best_{metric}" if metric else "best"
    out = frame.rename({"name": "branch"}).with_columns(
        pl.Series("head_commit", head, dtype=pl.String),
        pl.Series("exists", [h is not None for h in head], dtype=pl.Boolean),
    ).rename({"best": best})
    columns = ["branch", "runs", best, "best_run_id", "last_run", "head_commit", "exists",
               "git_root"]
    return out.select(columns if metric else [c for c in columns if c != best])


def _branch_heads(root: str | None) -> dict[str, str]:
    """Branch name -> head commit of the repository at ``root``; empty if it is gone."""
    if root is None or not os.path.isdir(root):
        return {}
    args = ["for-each-ref", "--format=%(refname:short)%00%(objectname)", "refs/heads/"]
    try:
        out = git_bytes(args, root)
    except GitError:  # no longer a repository (or no git here): no branch can be found
        return {}
    pairs = (line.split("\0") for line in os.fsdecode(out).splitlines())
    return {name: sha for name, sha in pairs}
