"""Folding journals into the database.

One process at a time (holding the store's exclusive lock) reads every journal from
the offset recorded in ``journal_offsets``, applies the complete records in one
transaction together with the new offsets, and so never applies a record twice. Dead
journals are folded to their end, their unfinished runs marked ``killed``, and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._journal import JournalChunk, journal_files, open_journal

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class _Table:
    columns: tuple[str, ...]
    key: tuple[str, ...]
    replace: bool = False  # last record wins (else the first one stays)
    times: tuple[str, ...] = ()
    jsons: tuple[str, ...] = ()


# Record kind -> table. Every record is {"t": kind, **row}, except "metrics" (column-wise)
# and "run_end" (an update of a run's status).
TABLES: dict[str, _Table] = {
    "runs": _Table(
        ("run_id", "name", "experiment", "parent_id", "status", "start_time", "git_root",
         "git_commit", "git_branch", "git_dirty", "git_snapshot", "notebook", "env_id", "code_id",
         "seeds", "hostname", "pid", "writer_id"),
        ("run_id",), times=("start_time",), jsons=("seeds",),
    ),
    "params": _Table(("run_id", "key", "value", "value_type"), ("run_id", "key"), replace=True),
    "tags": _Table(("run_id", "key", "value"), ("run_id", "key"), replace=True),
    "datasets": _Table(
        ("dataset_id", "fingerprint", "source_type", "n_rows", "n_columns", "schema", "stats",
         "first_seen"),
        ("dataset_id",), times=("first_seen",), jsons=("schema", "stats"),
    ),
    "run_datasets": _Table(
        ("run_id", "dataset_id", "name", "role", "logged_at"),
        ("run_id", "dataset_id", "name", "role"), times=("logged_at",),
    ),
    "models": _Table(
        ("model_id", "run_id", "name", "flavor", "class_name", "format", "sha256", "size_bytes",
         "signature", "training_dataset_id", "created_at"),
        ("model_id",), times=("created_at",), jsons=("signature",),
    ),
    "artifacts": _Table(
        ("run_id", "name", "artifact_id", "sha256", "size_bytes", "media_type", "logged_at"),
        ("run_id", "name"), replace=True, times=("logged_at",),
    ),
    "environments": _Table(
        ("env_id", "python", "platform", "packages", "details"), ("env_id",),
        jsons=("packages", "details"),
    ),
    "code_snapshots": _Table(
        ("code_id", "git_root", "base_commit", "snapshot_commit", "ref", "notebook", "cells"),
        ("code_id",), jsons=("cells",),
    ),
    "edges": _Table(
        ("src_id", "dst_id", "relation", "created_at"), ("src_id", "dst_id", "relation"),
        times=("created_at",),
    ),
}
_RUN_END = ("run_id", "status", "end_time", "error")
_METRIC_COLUMNS = ("run_id", "key", "value", "step", "ts")


@dataclass
class FoldResult:
    """What one fold did."""

    records: int = 0
    metric_points: int = 0
    killed_runs: int = 0
    removed_journals: list[str] = field(default_factory=list)


def fold(con: duckdb.DuckDBPyConnection, journal_dir: Path) -> FoldResult:
    """Apply all complete journal records to the database; the caller holds the lock."""
    result = FoldResult()
    offsets = dict(con.execute('SELECT journal, "offset" FROM journal_offsets').fetchall())
    paths = journal_files(journal_dir)
    present = {p.name for p in paths}
    stale = [name for name in offsets if name not in present]
    if stale:
        # Rows of journals removed after an earlier fold; names are never reused.
        con.execute("DELETE FROM journal_offsets WHERE journal IN (SELECT unnest(?))", [stale])

    batch = _Batch()
    chunks: list[JournalChunk] = []
    with contextlib.ExitStack() as stack:
        for path in paths:
            chunk = stack.enter_context(open_journal(path, offsets.get(path.name, 0)))
            if chunk is None:
                continue
            chunks.append(chunk)
            for record in chunk.records:
                batch.add(record)
        result.records = batch.count
        result.metric_points = len(batch.metrics["run_id"])
        con.execute("BEGIN TRANSACTION")
        try:
            batch.apply(con)
            for chunk in chunks:
                con.execute(
                    'INSERT OR REPLACE INTO journal_offsets (journal, "offset") VALUES (?, ?)',
                    [chunk.path.name, chunk.end_offset],
                )
            dead = [c for c in chunks if not c.alive]
            for chunk in dead:
                writer_id = chunk.path.name.removesuffix(".jsonl")
                killed = con.execute(
                    "UPDATE runs SET status = 'killed', end_time = to_timestamp(?), "
                    "error = 'the process that ran it ended before the run did' "
                    "WHERE writer_id = ? AND status = 'running' RETURNING run_id",
                    [chunk.last_write, writer_id],
                ).fetchall()
                result.killed_runs += len(killed)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        # Only after the commit: a crash before this line leaves the file and its offset,
        # so nothing is applied twice.
        for chunk in dead:
            os.unlink(chunk.path)
            result.removed_journals.append(chunk.path.name)
    return result


class _Batch:
    """Records grouped per table, deduplicated on each table's key."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {t: {} for t in TABLES}
        self.ends: dict[str, dict[str, Any]] = {}
        self.metrics: dict[str, list[Any]] = {c: [] for c in _METRIC_COLUMNS}
        self.count = 0

    def add(self, record: dict[str, Any]) -> None:
        kind = record.get("t")
        self.count += 1
        if kind == "metrics":
            lengths = {len(record.get(c) or ()) for c in _METRIC_COLUMNS}
            if len(lengths) == 1:
                for column in _METRIC_COLUMNS:
                    self.metrics[column].extend(record[column])
            return
        if kind == "run_end":
            self.ends[record["run_id"]] = record
            return
        spec = TABLES.get(str(kind))
        if spec is None:
            return  # a record kind from a newer nbtrail: ignored, never fatal
        key = tuple(record.get(c) for c in spec.key)
        rows = self.rows[str(kind)]
        if spec.replace or key not in rows:
            rows[key] = record

    def apply(self, con: duckdb.DuckDBPyConnection) -> None:
        import pyarrow as pa

        for name, rows in self.rows.items():
            if not rows:
                continue
            spec = TABLES[name]
            table = pa.table({c: _column(c, spec, rows.values()) for c in spec.columns})
            select = ", ".join(
                f"to_timestamp({c}) AS {c}" if c in spec.times
                else f"CAST({c} AS JSON) AS {c}" if c in spec.jsons
                else c
                for c in spec.columns
            )
            verb = "INSERT OR REPLACE" if spec.replace else "INSERT OR IGNORE"
            con.register("_fold_rows", table)
            try:
                con.execute(f"{verb} INTO {name} BY NAME SELECT {select} FROM _fold_rows")
            finally:
                con.unregister("_fold_rows")
        if self.metrics["run_id"]:
            self._apply_metrics(con)
        if self.ends:
            table = pa.table({c: [e.get(c) for e in self.ends.values()] for c in _RUN_END},
                             schema=pa.schema([("run_id", pa.string()), ("status", pa.string()),
                                               ("end_time", pa.float64()),
                                               ("error", pa.string())]))
            con.register("_fold_ends", table)
            try:
                con.execute(
                    "UPDATE runs SET status = e.status, end_time = to_timestamp(e.end_time), "
                    "error = e.error FROM _fold_ends e WHERE runs.run_id = e.run_id"
                )
            finally:
                con.unregister("_fold_ends")

    def _apply_metrics(self, con: duckdb.DuckDBPyConnection) -> None:
        import pyarrow as pa

        m = self.metrics
        table = pa.table(
            {
                "run_id": pa.array(m["run_id"], pa.string()),
                "key": pa.array(m["key"], pa.string()),
                "value": pa.array(m["value"], pa.float64()),
                "step": pa.array(m["step"], pa.int64()),
                "ts": pa.array(m["ts"], pa.float64()),
            }
        )
        con.register("_fold_metrics", table)
        try:
            con.execute(
                "INSERT INTO metrics SELECT run_id, key, value, step, to_timestamp(ts) "
                "FROM _fold_metrics"
            )
            con.execute(
                """
                INSERT INTO latest_metrics
                SELECT run_id, key, value, step, to_timestamp(ts) FROM _fold_metrics
                QUALIFY row_number() OVER (PARTITION BY run_id, key ORDER BY step DESC, ts DESC) = 1
                ON CONFLICT (run_id, key) DO UPDATE
                SET value = EXCLUDED.value, step = EXCLUDED.step, timestamp = EXCLUDED.timestamp
                WHERE EXCLUDED.step > latest_metrics.step
                   OR (EXCLUDED.step = latest_metrics.step
                       AND EXCLUDED.timestamp >= latest_metrics.timestamp)
                """
            )
        finally:
            con.unregister("_fold_metrics")


def _column(name: str, spec: _Table, rows: Any) -> Any:
    import pyarrow as pa

    values = [row.get(name) for row in rows]
    if name in spec.jsons:
        return pa.array([None if v is None else json.dumps(v) for v in values], pa.string())
    if name in spec.times:
        return pa.array(values, pa.float64())
    return pa.array(values)
