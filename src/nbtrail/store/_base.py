"""The storage interface every backend implements, and the guarantees it gives.

Guarantees (checked by the contract tests in ``tests/store/test_store_contract.py``):

* Writes never wait on other processes and never fail because another process writes or
  reads: each writer appends to its own journal (see ``writer``).
* A record is durable against a killed process once ``flush`` returned, and at most
  ``flush_interval`` seconds after it was logged otherwise.
* Reads see every record flushed before the read began: folded records from the
  database, the rest straight from the journals. A read waits at most for one bounded
  fold in progress.
* Nothing read is live: every method returns plain values or frozen records.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pathlib import Path

    import polars as pl

    from ._journal import JournalWriter
    from ._records import Lineage, Run

Direction = Literal["up", "down", "both"]


class Store(abc.ABC):
    """A lineage store: runs, params, metrics, data sets, models, artifacts and edges."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the store lives, for messages."""

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
    def sync(self) -> None:
        """Flush this process's journal and fold what can be folded now."""
