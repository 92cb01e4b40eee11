"""The reads every SQL backend shares: nbtrail's queries, run through ``_read_connection``.

The queries (``_query``) are in DuckDB's dialect; the embedded store runs them as they
are, the team store through ``_pgsql.PgConnection``, which translates them.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, NotFoundError
from . import _query
from ._base import Direction, Group, Mode, Store
from ._records import Lineage, Run, node_kind

if TYPE_CHECKING:
    import polars as pl


class SQLReads(Store):
    """``Store``'s reads, over any connection that runs nbtrail's DuckDB-dialect SQL."""

    @abc.abstractmethod
    def _read_connection(self) -> contextlib.AbstractContextManager[Any]:
        """A connection that sees every record flushed before it was asked for."""

    def runs(
        self,
        *,
        where: str | None = None,
        order_by: str | list[str] | None = None,
        experiment: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> pl.DataFrame:
        """One row a run, with params, tags and latest metrics as columns."""
        from ._query import runs_query

        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise InvalidInputError(f"limit must be a non-negative integer, got {limit!r}")
        with self._read_connection() as con:
            return runs_query(con, where=where, order_by=order_by, experiment=experiment,
                              limit=limit, offset=offset)

    def count_runs(self, *, where: str | None = None, experiment: str | None = None) -> int:
        """How many runs ``runs(where=..., experiment=...)`` returns without a limit."""
        from ._query import count_runs

        with self._read_connection() as con:
            return count_runs(con, where=where, experiment=experiment)

    def resolve_run_id(self, con: Any, run_id: str) -> str:
        """Full run id from an id or a unique prefix of at least 6 characters."""
        if not isinstance(run_id, str) or not run_id:
            raise InvalidInputError(f"a run id must be a non-empty string, got {run_id!r}")
        if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall():
            return run_id
        if len(run_id) >= 6:
            found = con.execute(
                "SELECT run_id FROM runs WHERE starts_with(run_id, ?) LIMIT 2", [run_id]
            ).fetchall()
            if len(found) == 1:
                return str(found[0][0])
            if len(found) > 1:
                raise InvalidInputError(f"run id prefix {run_id!r} is ambiguous; give more of it")
        raise NotFoundError(
            f"no run {run_id!r} in the store at {self.home}; list runs with `nbtrail runs ls`"
        )

    def get_run(self, run_id: str) -> Run:
        """A run with everything recorded about it."""
        from ._query import read_run

        with self._read_connection() as con:
            return read_run(con, self.resolve_run_id(con, run_id))

    def metric_history(self, run_id: str, key: str) -> pl.DataFrame:
        """All points of one metric of a run, ordered by step then time."""
        with self._read_connection() as con:
            full = self.resolve_run_id(con, run_id)
            frame = con.sql(
                "SELECT step, value, timestamp FROM metrics WHERE run_id = ? AND key = ? "
                "ORDER BY step, timestamp",
                params=[full, key],
            ).pl()
            if frame.is_empty():
                keys = [r[0] for r in con.execute(
                    "SELECT DISTINCT key FROM latest_metrics WHERE run_id = ? ORDER BY key",
                    [full]).fetchall()]
                raise NotFoundError(
                    f"run {full} has no metric {key!r}; its metrics: {', '.join(keys) or 'none'}"
                )
            return frame

    def artifact_path(self, run_id: str, name: str) -> Path:
        """The stored file of an artifact a run logged under ``name``."""
        with self._read_connection() as con:
            full = self.resolve_run_id(con, run_id)
            found = con.execute("SELECT sha256 FROM artifacts WHERE run_id = ? AND name = ?",
                                [full, name]).fetchall()
            if not found:
                names = [r[0] for r in con.execute(
                    "SELECT name FROM artifacts WHERE run_id = ? ORDER BY name", [full]
                ).fetchall()]
                raise NotFoundError(f"run {full} has no artifact {name!r}; its artifacts: "
                                    f"{', '.join(names) or 'none'}")
        return self.blob_path(found[0][0])

    def lineage(self, node_id: str, *, direction: Direction = "up", depth: int = 10) -> Lineage:
        """The nodes and edges reachable from ``node_id``."""
        from ._query import lineage_query

        if direction not in ("up", "down", "both"):
            raise InvalidInputError(
                f"direction must be 'up', 'down' or 'both', got {direction!r}"
            )
        with self._read_connection() as con:
            if node_kind(node_id) == "run":
                node_id = self.resolve_run_id(con, node_id)
            return lineage_query(con, node_id, direction=direction, depth=depth,
                                 store_location=self.location)

    # -- named queries (Store): the SQL is in _query, in DuckDB's dialect ----------------

    def _frame(self, query: str, params: list[Any] | None = None) -> pl.DataFrame:
        """The result of nbtrail's own SQL (not the user's: no read-only check needed)."""
        with self._read_connection() as con:
            return con.sql(query, params=params).pl()

    def audit_entries(self, model: str | None = None) -> pl.DataFrame:
        """The audit trail (``AuditEntry`` columns), oldest first; ``model`` keeps one's."""
        return self._frame(_query.audit_query(model is not None),
                           [model] if model is not None else None)

    def run_ids(self) -> list[str]:
        """Every run id in the store."""
        return self._frame(_query.RUN_IDS)["run_id"].to_list()

    def parent_ids(self) -> list[str]:
        """Ids of the runs that have children."""
        return self._frame(_query.PARENT_IDS)["parent_id"].to_list()

    def experiments(self, *, exclude: Sequence[str] = ()) -> list[str]:
        """Experiment names in order, leaving out those in ``exclude``."""
        return self._frame(_query.EXPERIMENTS, [list(exclude)])["experiment"].to_list()

    def metric_keys(self) -> list[str]:
        """Every metric key any run logged, in order."""
        return self._frame(_query.METRIC_KEYS)["key"].to_list()

    def experiment_summary(self) -> pl.DataFrame:
        """One row an experiment and git branch, newest activity first."""
        return self._frame(_query.EXPERIMENT_SUMMARY)

    def best_runs(self, group: Group, *, names: Sequence[str] | None = None,
                  metric: str | None = None, mode: Mode = "max") -> pl.DataFrame:
        """Per branch or experiment: run count, last run and the best run."""
        if group not in ("git_branch", "experiment"):
            raise InvalidInputError(f"group must be 'git_branch' or 'experiment', got {group!r}")
        if mode not in ("max", "min"):
            raise InvalidInputError(f"mode must be 'max' or 'min', got {mode!r}")
        query = _query.best_runs(group, names=names is not None, metric=metric is not None,
                                 mode=mode)
        params: list[Any] = [metric or ""]
        if names is not None:
            params.append(list(names))
        return self._frame(query, params)

    def metric_curves(self, run_ids: Sequence[str], *, min_points: int = 1,
                      max_points: int | None = None) -> pl.DataFrame:
        """The metric points of several runs, thinned to ``max_points`` a curve if given."""
        if max_points is not None and max_points < 1:
            raise InvalidInputError(f"max_points must be at least 1, got {max_points!r}")
        return self._frame(_query.metric_curves(max_points), [list(run_ids), min_points])

    def runs_with_curves(self, *, limit: int) -> list[str]:
        """The newest ``limit`` runs that logged a metric at several steps."""
        return self._frame(_query.RUNS_WITH_CURVES, [limit])["run_id"].to_list()

    def snapshot_roots(self, hostname: str) -> list[str]:
        """The git work trees in which runs made on ``hostname`` took code snapshots."""
        return self._frame(_query.SNAPSHOT_ROOTS, [hostname])["git_root"].to_list()

    def runs_with_models(self, run_ids: Sequence[str]) -> set[str]:
        """Those of ``run_ids`` that logged a model."""
        return set(self._frame(_query.RUNS_WITH_MODELS, [list(run_ids)])["run_id"].to_list())

    def models(self, *, model_id: str | None = None, run: str | None = None,
               limit: int | None = None) -> pl.DataFrame:
        """Models, newest first, with their run's git state, training data and environment."""
        params: list[Any] = [model_id] if model_id is not None else []
        if run is not None:
            params += [run, run]
        query = _query.models(model_id=model_id is not None, run=run is not None, limit=limit)
        return self._frame(query, params)

    def packages_of(self, model_id: str) -> list[str]:
        """Ids of the serving packages built from a model, oldest first."""
        return self._frame(_query.PACKAGES_OF, [model_id])["dst_id"].to_list()

    def packages(self, *, package_id: str | None = None) -> pl.DataFrame:
        """Serving packages (the ``packages`` table's columns), newest first."""
        return self._frame(_query.packages(one=package_id is not None),
                           [package_id] if package_id is not None else None)

    def notebook_runs(self, notebook: str, *, same_writer_as: str | None = None
                      ) -> pl.DataFrame:
        """``run_id`` and ``name`` of the runs made from ``notebook``, in start order."""
        params = [notebook, *([same_writer_as] if same_writer_as is not None else [])]
        return self._frame(_query.notebook_runs(same_writer=same_writer_as is not None), params)

    def run_tags(self, keys: Sequence[str], *,
                 having: Mapping[str, str] | None = None) -> pl.DataFrame:
        """One row a run that has a tag among ``keys``: its tags as columns."""
        keys = list(keys)
        if not keys or len(set(keys)) != len(keys):
            raise InvalidInputError(f"run_tags needs distinct tag keys, got {keys!r}")
        having = dict(having or {})
        params: list[Any] = [*keys, keys, *(v for pair in having.items() for v in pair)]
        frame = self._frame(_query.run_tags(len(keys), len(having)), params)
        return frame.rename({f"k{i}": key for i, key in enumerate(keys)})
