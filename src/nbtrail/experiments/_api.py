"""The public functions of git-branch experiments, on the configured store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..tracking._tracker import get_store
from . import _branches, _compare

if TYPE_CHECKING:
    import polars as pl

    from ._compare import Comparison


def branches(metric: str | None = None, mode: str = "max") -> pl.DataFrame:
    """One row a git branch runs were made on, newest first.

    Columns: ``branch``, ``runs`` (how many), ``best_<metric>`` and ``best_run_id`` (the
    finished run with the best latest value, by ``mode`` ``"max"`` or ``"min"``; without
    a metric, the newest finished run), ``last_run``, ``head_commit`` (the branch's
    commit now) and ``exists`` (False once the branch was deleted or renamed: its runs
    keep their branch name and snapshots), ``git_root``.

    Example:
        >>> nt.branches(metric="val_f1")                               # doctest: +SKIP
    """
    return _branches.branches(get_store(), metric, mode)


def compare(branches: Sequence[str] | None = None, *, runs: Sequence[str] | None = None,
            experiments: Sequence[str] | None = None, metric: str | None = None,
            mode: str = "max", model: str | None = None, latency: bool = True,
            trusted: bool | Sequence[str] = False) -> Comparison:
    """Set runs side by side: the best run of each branch (or experiment), or given runs.

    Shows metrics (with the difference to the first), metric curves, params (the
    differing ones flagged), data sets that differ and how, the code diff between the
    runs' git snapshots (cell by cell for notebooks), packages whose versions differ,
    and the model's size and median/p95 predict latency on the logged data's sample
    (``latency=False`` skips timing; ``model`` picks a model by name, else the last one
    logged; pickled models are only loaded with ``trusted=True``). Renders as HTML in a
    notebook; ``.to_polars()`` gives every section as a DataFrame.

    Example:
        >>> nt.compare(["main", "feat/more-trees"], metric="val_f1")   # doctest: +SKIP
        >>> nt.compare(runs=[run_a, run_b], latency=False)             # doctest: +SKIP
    """
    return _compare.compare(get_store(), branches=branches, runs=runs, experiments=experiments,
                            metric=metric, mode=mode, model=model, latency=latency,
                            trusted=trusted)
