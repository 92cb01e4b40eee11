"""The storage interface every backend implements, and the guarantees it gives.

Every caller outside ``nbtrail.store`` holds a ``Store`` (from :func:`nbtrail.store.open_store`)
and nothing else: a second backend fits by implementing this class.

Guarantees (each checked for every backend by ``tests/store/test_store_contract.py``):

* Writes never wait on other processes and never fail because another process writes or
  reads: each writer appends to its own journal (see ``writer``).
* A record is durable against a killed process once ``flush`` returned, and at most
  ``flush_interval`` seconds after it was logged otherwise.
* Reads see every record flushed before the read began: folded records from the
  database, the rest straight from the journals. A read does not wait for writers: the
  embedded store's readers attach a published copy that no fold writes (one that must
  read the database file itself waits at most for one bounded fold pass), and a server's
  readers are isolated from its writers.
* Nothing read is live: every method returns plain values or frozen records.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pathlib import Path

    import polars as pl

    from ._audit import AuditSession
    from ._journal import JournalWriter
    from ._records import Backlog, Check, Lineage, Run

Direction = Literal["up", "down", "both"]
# What runs are grouped by when their best run is picked, and which way is best.
Group = Literal["git_branch", "experiment"]
Mode = Literal["max", "min"]


class Store(abc.ABC):
    """A lineage store: runs, params, metrics, data sets, models, artifacts and edges."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the store lives, for messages."""

    # The local folder of this store: journals, blobs and sweep state live under it (a
    # remote backend keeps its local journals there too, so logging stays local-first).
    home: Path

    @property
    def database_url(self) -> str | None:
        """A URL other tools may open the store's database with, if it is a server's.

        Optuna's RDB storage of a sweep on the team store, say; ``None`` for the embedded
        store, whose database only nbtrail's folds write.
        """
        return None

    @abc.abstractmethod
    def environment(self) -> dict[str, str]:
        """The environment variables that point a child nbtrail process at this store."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether anything was ever written here (reading a missing store raises)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and close this process's journal; the store stays usable afterwards."""

    @abc.abstractmethod
    def forget_after_fork(self) -> None:
        """Called in a forked child: drop what the parent's threads and connections held."""

    @abc.abstractmethod
    def writer(self) -> JournalWriter:
        """Return the journal writer of this process (created on first use)."""

    @abc.abstractmethod
    def put_blob(self, source: Path | bytes) -> tuple[str, int]:
        """Store bytes content-addressed; return ``(sha256, size)``. Same bytes, one copy."""

    @abc.abstractmethod
    def blob_path(self, sha256: str) -> Path:
        """Path of a stored blob; raises ``NotFoundError`` for an unknown digest."""

    @abc.abstractmethod
    def sql(self, query: str, params: list[Any] | None = None) -> pl.DataFrame:
        """Run read-only SQL over the store's tables."""

    @abc.abstractmethod
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

    @abc.abstractmethod
    def count_runs(self, *, where: str | None = None, experiment: str | None = None) -> int:
        """How many runs ``runs(where=..., experiment=...)`` returns without a limit."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run:
        """A run with everything recorded about it (a unique id prefix is accepted)."""

    @abc.abstractmethod
    def metric_history(self, run_id: str, key: str) -> pl.DataFrame:
        """All points of one metric of a run: ``step``, ``value``, ``timestamp``."""

    @abc.abstractmethod
    def artifact_path(self, run_id: str, name: str) -> Path:
        """The stored file of an artifact a run logged under ``name``."""

    @abc.abstractmethod
    def lineage(self, node_id: str, *, direction: Direction = "up", depth: int = 10) -> Lineage:
        """The nodes and edges reachable from ``node_id`` in ``direction``."""

    @abc.abstractmethod
    def init(self) -> int:
        """Create or migrate the schema now; return the schema version found before."""

    @abc.abstractmethod
    def check(self) -> list[Check]:
        """Check what the store needs: reachable, writable, its schema, the artifact store."""

    @abc.abstractmethod
    def backlog(self) -> Backlog:
        """What this machine holds that the database does not have yet (works offline)."""

    @abc.abstractmethod
    def sync(self) -> None:
        """Flush this process's journal, fold what can be folded now, upload waiting blobs."""

    @abc.abstractmethod
    def audit_session(self, on_behalf_of: str | None = None
                      ) -> contextlib.AbstractContextManager[AuditSession]:
        """Hold the audit trail to read it, decide and append (see ``_audit``).

        Sessions run one at a time across every process and machine of the store, so a
        decision made from what a session read cannot be overtaken. The session knows
        who acts: on a database server, the role it authenticated; on the embedded store,
        ``NBTRAIL_USER`` if set, else the OS user. ``on_behalf_of`` is a user a service
        authenticated (the Jupyter server's logged-in user): the embedded store records
        them as the actor ("jupyter user"); a database server keeps its role as the actor
        and records them in each entry's payload. Inside a session, read only through the
        session: on a server its entries commit when it ends.
        """

    # -- named queries: what callers need, in no backend's SQL dialect --------------------

    @abc.abstractmethod
    def audit_entries(self, model: str | None = None) -> pl.DataFrame:
        """The audit trail (``AuditEntry`` columns), oldest first; ``model`` keeps one's."""

    @abc.abstractmethod
    def run_ids(self) -> list[str]:
        """Every run id in the store (to shorten ids unambiguously)."""

    @abc.abstractmethod
    def parent_ids(self) -> list[str]:
        """Ids of the runs that have children."""

    @abc.abstractmethod
    def experiments(self, *, exclude: Sequence[str] = ()) -> list[str]:
        """Experiment names in order, leaving out those in ``exclude``."""

    @abc.abstractmethod
    def metric_keys(self) -> list[str]:
        """Every metric key any run logged, in order."""

    @abc.abstractmethod
    def experiment_summary(self) -> pl.DataFrame:
        """One row an experiment and git branch, newest activity first.

        Columns: ``experiment``, ``branch``, ``runs``, ``running``, ``last_run``.
        """

    @abc.abstractmethod
    def best_runs(self, group: Group, *, names: Sequence[str] | None = None,
                  metric: str | None = None, mode: Mode = "max") -> pl.DataFrame:
        """Per branch or experiment (``group``): run count, last run and the best run.

        The best run is the finished run with the best finite latest value of ``metric``;
        without a metric, the newest finished run. Columns: ``name``, ``runs``,
        ``last_run``, ``git_root`` (of the newest run), ``best_run_id``, ``best``; newest
        activity first. ``names`` keeps only those groups.
        """

    @abc.abstractmethod
    def metric_curves(self, run_ids: Sequence[str], *, min_points: int = 1,
                      max_points: int | None = None) -> pl.DataFrame:
        """The metric points of several runs: ``run_id``, ``key``, ``step``, ``value``, ``n``.

        Only keys some run logged at least ``min_points`` times; ``n`` is how many points
        the run has of that key; with ``max_points``, each curve is thinned to about that
        many points (its last one kept). Ordered by key, run, step, time.
        """

    @abc.abstractmethod
    def runs_with_curves(self, *, limit: int) -> list[str]:
        """The newest ``limit`` runs that logged a metric at several steps."""

    @abc.abstractmethod
    def snapshot_roots(self, hostname: str) -> list[str]:
        """The git work trees in which runs made on ``hostname`` took code snapshots."""

    @abc.abstractmethod
    def runs_with_models(self, run_ids: Sequence[str]) -> set[str]:
        """Those of ``run_ids`` that logged a model."""

    @abc.abstractmethod
    def models(self, *, model_id: str | None = None, run: str | None = None,
               limit: int | None = None) -> pl.DataFrame:
        """Models, newest first, with their run's git state, training data and environment.

        ``model_id`` keeps one model; ``run`` (a run id or id prefix) that run's models.
        Columns: the ``models`` table's, then ``run_name``, ``experiment``, ``git_commit``,
        ``git_branch``, ``git_dirty``, ``git_snapshot``, ``git_root``, ``dataset_id``,
        ``fingerprint``, ``source_type``, ``sample_sha256``, ``python``, ``packages``.
        """

    @abc.abstractmethod
    def packages_of(self, model_id: str) -> list[str]:
        """Ids of the serving packages built from a model, oldest first."""

    @abc.abstractmethod
    def packages(self, *, package_id: str | None = None) -> pl.DataFrame:
        """Serving packages (the ``packages`` table's columns), newest first.

        ``package_id`` keeps one package.
        """

    @abc.abstractmethod
    def notebook_runs(self, notebook: str, *, same_writer_as: str | None = None
                      ) -> pl.DataFrame:
        """``run_id`` and ``name`` of the runs made from ``notebook``, in start order.

        ``same_writer_as`` (a run id) keeps only the runs of the process that made that run.
        """

    @abc.abstractmethod
    def run_tags(self, keys: Sequence[str], *,
                 having: Mapping[str, str] | None = None) -> pl.DataFrame:
        """One row a run that has a tag among ``keys``: its tags as columns.

        Columns: ``run_id``, ``status``, ``start_time``, then one string column per key
        (null where the run lacks it). ``having`` keeps only runs with all of those tag
        values.
        """
