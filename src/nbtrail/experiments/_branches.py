"""One row a git branch: how many runs, the best value of a metric, whether it still exists."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import GitError, InvalidInputError
from ..tracking._git import git_bytes

if TYPE_CHECKING:
    import polars as pl

    from ..store import Mode, Store


def check_mode(mode: str) -> Mode:
    """``mode`` as given, once checked."""
    if mode not in ("max", "min"):
        raise InvalidInputError(f"mode must be 'max' or 'min', got {mode!r}")
    return mode  # type: ignore[return-value]


def branches(store: Store, metric: str | None = None, mode: str = "max") -> pl.DataFrame:
    """One row a branch that runs were made on (see ``nt.branches``)."""
    import polars as pl

    frame = store.best_runs("git_branch", metric=metric, mode=check_mode(mode))
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
