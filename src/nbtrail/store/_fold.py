"""Folding journals into the database.

One process at a time (holding the store's exclusive lock) reads every journal from
the offset recorded in ``journal_offsets``, applies the complete records in one
transaction together with the new offsets, and so never applies a record twice. Dead
journals are folded to their end and their unfinished runs marked ``killed``; the caller
removes them (``remove_finished``) once nothing reads them from the journal any more.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._journal import (
    TIME_RANGE,
    JournalChunk,
    MetricColumns,
    decode_legacy_metrics,
    journal_files,
    open_journal,
    writer_id_of,
)
from ._schema import Connection
from ._writes import TABLE_RECORDS, RunEnd

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class _Table:
    columns: tuple[str, ...]
    key: tuple[str, ...]
    replace: bool = False  # last record wins (else the first one stays)
    times: tuple[str, ...] = ()
    jsons: tuple[str, ...] = ()


# Record kind -> table, from the record classes (``_writes``). Every record is
# {"t": kind, **row}, except "run_end" (an update of a run) and metric points (binary
# frames, ``MetricColumns``; "metrics" JSON records in format 2 journals).
TABLES: dict[str, _Table] = {
    record.KIND: _Table(record.columns(), record.KEY, replace=record.REPLACE,
                        times=record.TIMES, jsons=record.JSONS)
    for record in TABLE_RECORDS
}
_RUN_END = RunEnd.columns()


@dataclass
class FoldResult:
    """What one fold did."""

    records: int = 0
    metric_points: int = 0
    killed_runs: int = 0
    remaining: bool = False
    offsets: dict[str, int] = field(default_factory=dict)
    # Journals of ended processes, folded to their end: for the caller to remove.
    finished: list[Path] = field(default_factory=list)

    def add(self, later: FoldResult) -> None:
        """Count in what a later pass did."""
        self.records += later.records
        self.metric_points += later.metric_points
        self.killed_runs += later.killed_runs
        self.remaining = later.remaining
        self.offsets.update(later.offsets)
        self.finished += later.finished


def fold(con: duckdb.DuckDBPyConnection, journal_dir: Path,
         max_bytes: int | None = None) -> FoldResult:
    """Apply complete journal records to the database; the caller holds the lock.

    ``max_bytes`` bounds the work of one pass (shared among the journals) so the lock
    is never held long; ``FoldResult.remaining`` says whether more is waiting.
    """
    result = FoldResult()
    offsets = folded_offsets(con)
    paths = journal_files(journal_dir)
    present = {p.name for p in paths}
    stale = [name for name in offsets if name not in present]
    if stale:
        # Rows of journals removed after an earlier fold; names are never reused.
        con.execute("DELETE FROM journal_offsets WHERE journal IN (SELECT unnest(?))", [stale])

    with contextlib.ExitStack() as stack:
        batch, chunks = read_batch(stack, journal_dir, paths, offsets, column_types(con),
                                   max_bytes, result)
        con.execute("BEGIN TRANSACTION")
        try:
            batch.apply(con)
            for chunk in chunks:
                con.execute(
                    'INSERT OR REPLACE INTO journal_offsets (journal, "offset", seq) '
                    "VALUES (?, ?, ?)", [chunk.path.name, chunk.end_offset, chunk.seq],
                )
            dead = [c for c in chunks if not c.alive and c.at_end]
            for chunk in dead:
                result.killed_runs += mark_killed(con, "runs", writer_id_of(chunk.path),
                                                  chunk.last_write)
            con.execute("COMMIT")
        except BaseException:
            # A failed COMMIT has ended the transaction already; its error is the one to see.
            with contextlib.suppress(Exception):
                con.execute("ROLLBACK")
            raise
        result.finished += [chunk.path for chunk in dead]
    return result


def read_batch(stack: contextlib.ExitStack, journal_dir: Path, paths: list[Path],
               offsets: dict[str, tuple[int, int]],
               types: dict[str, dict[str, tuple[str, bool]]], max_bytes: int | None,
               result: FoldResult) -> tuple[Batch, list[JournalChunk]]:
    """The complete records of ``paths`` past ``offsets`` (about ``max_bytes``), checked.

    Bad records are quarantined; ``result`` learns what was read. The journals stay open
    (in ``stack``) until the caller has applied the batch.
    """
    batch = Batch(types)
    chunks: list[JournalChunk] = []
    share = None if max_bytes is None else max(max_bytes // max(len(paths), 1), 1 << 16)
    for path in paths:
        offset, seq = offsets.get(path.name, (0, 0))
        chunk = stack.enter_context(open_journal(path, offset, share, seq))
        if chunk is None:
            continue
        chunks.append(chunk)
        result.remaining = result.remaining or not chunk.at_end
        result.offsets[path.name] = chunk.end_offset
        batch.add_chunk(chunk)
    quarantine(journal_dir.parent / QUARANTINE, batch.rejected)
    result.records, result.metric_points = batch.count, batch.metric_points
    return batch, chunks


def remove_finished(result: FoldResult) -> None:
    """Delete the journals of ended writers folded to their end, once that is committed.

    Only after the commit: a crash before it leaves the file and its offset, so nothing
    is applied twice. A journal some process removed already is skipped.
    """
    for path in result.finished:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    result.finished = []


def mark_killed(con: Connection, table: str, writer_id: str,
                when: float) -> int:
    """Mark the runs still running of a writer that died as killed; return how many."""
    return len(con.execute(
        f"UPDATE {table} SET status = 'killed', end_time = to_timestamp(?), "
        "error = 'the process that ran it ended before the run did' "
        "WHERE writer_id = ? AND status = 'running' RETURNING run_id",
        [when, writer_id]).fetchall())


QUARANTINE = "quarantine"


def quarantine(folder: Path, rejected: list[Rejected]) -> None:
    """Move bad records aside, one file each, and warn about each with its place.

    A file is named after the journal and offset, so folding the same record again after
    a crash rewrites the same file.
    """
    if not rejected:
        return
    folder.mkdir(exist_ok=True)
    for path, offset, record, reason in rejected:
        target = folder / f"{path.name}@{offset}.json"
        entry = {"journal": path.name, "offset": offset, "reason": reason}
        if isinstance(record, bytes):
            try:
                entry["record"] = record.decode()
            except UnicodeDecodeError:  # a binary frame: kept whole, to be looked at
                entry["record_base64"] = base64.b64encode(record).decode()
        else:
            entry["record"] = record
        target.write_text(json.dumps(entry, default=str) + "\n")
        warnings.warn(f"nbtrail: moved a bad record at offset {offset} of journal {path} "
                      f"to {target} ({reason}); the rest of the store is unaffected",
                      stacklevel=4)


def warn_rejected(rejected: list[Rejected]) -> None:
    """Warn about records a read skips (the next fold quarantines them)."""
    for path, offset, _, reason in rejected:
        warnings.warn(f"nbtrail: skipped a bad record at offset {offset} of journal {path} "
                      f"({reason})", stacklevel=4)


def folded_offsets(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """Journal name -> (bytes folded, last frame folded)."""
    rows = con.execute('SELECT journal, "offset", coalesce(seq, 0) FROM journal_offsets')
    return {name: (offset, seq) for name, offset, seq in rows.fetchall()}


_INT_RANGES = {"INTEGER": 1 << 31, "BIGINT": 1 << 63}
_RUN_STATUSES = ("running", "finished", "failed", "killed")


def column_types(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, tuple[str, bool]]]:
    """Table -> column -> (type, nullable) of the store ``con`` reads, to check records by.

    Every store is migrated to this nbtrail's schema before it is read or folded, so the
    answer is asked once per schema version (it cost a fold pass or a read 10 ms).
    """
    from ._schema import SCHEMA_VERSION

    if SCHEMA_VERSION not in _COLUMN_TYPES:
        _COLUMN_TYPES[SCHEMA_VERSION] = _ask_column_types(con)
    return _COLUMN_TYPES[SCHEMA_VERSION]


_COLUMN_TYPES: dict[int, dict[str, dict[str, tuple[str, bool]]]] = {}


def _ask_column_types(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, tuple[str, bool]]]:
    rows = con.execute(
        "SELECT table_name, column_name, data_type, is_nullable = 'YES' "
        "FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = current_schema()").fetchall()
    types: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, kind, nullable in rows:
        types.setdefault(table, {})[column] = (kind, nullable)
    return types


def _value_problem(column: str, value: Any, kind: str, nullable: bool, time: bool) -> str | None:
    """Why ``value`` cannot go into ``column``, or ``None`` if it can."""
    if value is None:
        return None if nullable else f"{column} is missing"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if time:
        if not number or not TIME_RANGE[0] <= value <= TIME_RANGE[1]:
            return f"{column} is not a timestamp (seconds since the epoch): {value!r:.40}"
        return None
    if kind == "VARCHAR" and not isinstance(value, str):
        return f"{column} is not a string: {value!r:.40}"
    if kind in _INT_RANGES and not (isinstance(value, int) and not isinstance(value, bool)
                                    and -_INT_RANGES[kind] <= value < _INT_RANGES[kind]):
        return f"{column} is not an integer of type {kind}: {value!r:.40}"
    if kind == "BOOLEAN" and not isinstance(value, bool):
        return f"{column} is not true or false: {value!r:.40}"
    if kind == "DOUBLE" and not number:
        return f"{column} is not a number: {value!r:.40}"
    return None


# A record that cannot be folded: journal, offset, the record (or its bytes), why.
Rejected = tuple[Path, int, Any, str]


class Batch:
    """Records grouped per table, deduplicated on each table's key.

    A record that would not fit its table (a missing or mistyped field, an unknown kind)
    is not added but kept in ``rejected`` with the reason, for the caller to quarantine.
    """

    def __init__(self, types: dict[str, dict[str, tuple[str, bool]]]) -> None:
        self.types = types
        self.rows: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {t: {} for t in TABLES}
        self.ends: dict[str, dict[str, Any]] = {}
        self.metric_parts: list[MetricColumns] = []
        self.metric_where: list[tuple[str, int]] = []  # each part's journal name and offset
        self._points: MetricPoints | None = None  # once all are added
        self.metric_points = 0
        self.count = 0
        self.rejected: list[Rejected] = []
        # Record kind -> (column, type, nullable, is a time) to check its records by.
        self._checks: dict[str, list[tuple[str, str, bool, bool]]] = {}

    def add(self, record: Any, where: tuple[Path, int]) -> None:
        """Add one record found in journal ``where[0]`` at offset ``where[1]``."""
        if isinstance(record, MetricColumns):  # checked as it was decoded
            self.count += 1
            self._add_part(record, where)
            return
        problem = self._problem(record)
        if problem is not None:
            self.rejected.append((*where, record, problem))
            return
        kind = record["t"]
        self.count += 1
        if kind == "metrics":
            self._add_metrics(record, where)
        elif kind == "run_end":
            self.ends[record["run_id"]] = record
        else:
            spec = TABLES[kind]
            key = tuple(record[c] for c in spec.key)
            rows = self.rows[kind]
            if spec.replace or key not in rows:
                rows[key] = record

    def add_chunk(self, chunk: JournalChunk, start: int = 0) -> None:
        """Add the records of ``chunk`` from offset ``start``; unreadable ones are rejected."""
        for offset, record in chunk.records:
            if offset >= start:
                self.add(record, (chunk.path, offset))
        self.rejected.extend((chunk.path, offset, line, why) for offset, line, why in chunk.bad
                             if offset >= start)

    def _problem(self, record: Any) -> str | None:
        if not isinstance(record, dict):
            return "not a JSON object"
        kind = record.get("t")
        if kind == "metrics":
            if not isinstance(record.get("run_id"), str):
                return "run_id is not a string"
            keys = record.get("keys")
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                return "keys is not a list of strings"
            return None  # the columns are checked as they are decoded
        if kind == "run_end":
            checks = [("run_id", "VARCHAR", False, False), ("end_time", "", True, True),
                      ("error", "VARCHAR", True, False)]
            if record.get("status") not in _RUN_STATUSES:
                return f"status is not one of {', '.join(_RUN_STATUSES)}"
        elif isinstance(kind, str) and kind in TABLES:
            if kind not in self._checks:
                spec, types = TABLES[kind], self.types[kind]
                self._checks[kind] = [(c, *types[c], c in spec.times)
                                      for c in spec.columns if c in types]
            checks = self._checks[kind]
        else:
            return f"unknown record kind {kind!r:.40}"
        for column, column_kind, nullable, time in checks:
            problem = _value_problem(column, record.get(column), column_kind, nullable, time)
            if problem is not None:
                return problem
        return None

    def _add_metrics(self, record: dict[str, Any], where: tuple[Path, int]) -> None:
        try:
            part = decode_legacy_metrics(record)
        except (KeyError, TypeError, ValueError) as exc:
            self.count -= 1
            self.rejected.append((*where, record, f"malformed metric columns ({exc})"))
            return
        self._add_part(part, where)

    def _add_part(self, part: MetricColumns, where: tuple[Path, int]) -> None:
        self.metric_parts.append(part)
        self.metric_where.append((where[0].name, where[1]))
        self.metric_points += len(part)

    def apply(self, con: duckdb.DuckDBPyConnection, prefix: str = "", *,
              overlay: MetricPoints | None = None) -> None:
        """Write the batch into the tables, or into ``prefix``-named copies of them.

        For an overlay, given the points it holds, the batch's metric points are added to
        those (its view of ``metrics`` reads them) and only the latest value of each key
        is written; and the rows of tables whose first row stays are new to the copies,
        which have no key to check them by.
        """
        # Rows reach DuckDB as dicts of numpy arrays: as fast as Arrow here, and unlike
        # pyarrow it does not drag pandas in (whose import costs more than a fold). Each
        # registration costs milliseconds, whatever its size: all are registered at once.
        tables: dict[str, dict[str, Any]] = {}
        statements = []
        for name, rows in self.rows.items():
            if not rows:
                continue
            spec = TABLES[name]
            select = ", ".join(
                f"to_timestamp(CAST({c} AS DOUBLE)) AS {c}" if c in spec.times
                else f"CAST({c} AS JSON) AS {c}" if c in spec.jsons
                else c
                for c in spec.columns
            )
            verb = ("INSERT OR REPLACE" if spec.replace else "INSERT" if overlay is not None
                    else "INSERT OR IGNORE")
            source = f"_fold_rows_{name}"
            tables[source] = {c: _column(c, spec, rows.values()) for c in spec.columns}
            statements.append(f"{verb} INTO {prefix}{name} BY NAME SELECT {select} FROM {source}")
        if self.ends:
            ends = list(self.ends.values())
            tables["_fold_ends"] = {c: _objects([e.get(c) for e in ends]) for c in _RUN_END}
            statements.append(  # after the runs: a run may start and end in one batch
                f"UPDATE {prefix}runs SET status = e.status, "
                "end_time = to_timestamp(CAST(e.end_time AS DOUBLE)), error = e.error "
                f"FROM _fold_ends e WHERE {prefix}runs.run_id = e.run_id")
        points, since = None, 0
        if self.metric_points:
            # An overlay's points already hold the earlier reads': each is gathered once.
            points = self.points() if overlay is None else overlay
            if overlay is not None:
                since = len(overlay)
                overlay.add(self.metric_parts, self.metric_where)
            tables.update(points.tables())
        with _registered(con, tables):
            for statement in statements:
                con.execute(statement)
            if points is not None:
                self._apply_metrics(con, prefix, points, since, insert=overlay is None)

    def points(self) -> MetricPoints:
        """The batch's metric points, gathered (once all are added)."""
        if self._points is None:
            self._points = MetricPoints(self.metric_parts, self.metric_where)
        return self._points

    def metric_tables(self) -> dict[str, dict[str, Any]]:
        """The batch's metric points as ``MetricPoints.tables`` has them."""
        return self.points().tables()

    @staticmethod
    def _apply_metrics(con: duckdb.DuckDBPyConnection, prefix: str, points: MetricPoints,
                       since: int, *, insert: bool) -> None:
        """Insert the registered ``points`` if asked; update the latest values by them.

        Only points from row ``since`` on can change a latest value: the rows before it
        were applied by an earlier read of the same overlay.
        """
        if insert:
            con.execute(f"INSERT INTO {prefix}metrics {POINTS}")
        # The latest point of a key is the higher step, then the later time: found as row
        # numbers, grouped by the codes (cheaper than carrying the values, or the strings),
        # then only those rows are joined to their names.
        rows = f"(SELECT * FROM _fold_points WHERE row >= {since:d}) AS p" if since \
            else "_fold_points"
        [latest] = con.execute(f"""
            WITH top AS (SELECT r, k, max(step) AS step FROM {rows} GROUP BY r, k)
            SELECT arg_max(row, ts) FROM {rows} JOIN top USING (r, k, step)
            GROUP BY r, k""").fetchnumpy().values()
        every = points.tables()["_fold_points"]
        with _registered(con, {"_fold_latest": {c: v[latest] for c, v in every.items()}}):
            con.execute(f"""
                INSERT INTO {prefix}latest_metrics {points_of('_fold_latest')}
                ON CONFLICT (run_id, key) DO UPDATE
                SET value = EXCLUDED.value, step = EXCLUDED.step, timestamp = EXCLUDED.timestamp
                WHERE EXCLUDED.step > {prefix}latest_metrics.step
                   OR (EXCLUDED.step = {prefix}latest_metrics.step
                       AND EXCLUDED.timestamp >= {prefix}latest_metrics.timestamp)
                """)


class MetricPoints:
    """Metric frames gathered as numeric columns, with their run ids and keys (``tables``).

    Points are numbers only (run ids and keys as codes into two small tables, joined
    back in SQL): converting a million Python strings cost more than the rest of a
    fold. Frames can be added after ``tables`` was asked: a reader's overlay keeps one
    from read to read, and only translates the frames written since, into columns that
    grow by doubling (``tables`` hands out their filled part, without a copy); and frames
    can be dropped, once a newer copy of the database holds them.
    """

    _DTYPES = (("r", "uint32"), ("k", "uint32"), ("value", "float64"), ("step", "int64"),
               ("ts", "float64"), ("is_nan", "bool"), ("row", "uint32"))

    def __init__(self, parts: Sequence[MetricColumns] = (),
                 where: Sequence[tuple[str, int]] = ()) -> None:
        import numpy as np

        self._runs: dict[str, int] = {}
        self._keys: dict[str, int] = {}
        self._columns = {name: np.empty(0, dtype) for name, dtype in self._DTYPES}
        self._size = 0
        self._frames: list[tuple[str, int, int]] = []  # journal name, offset, points
        self._tables: dict[str, dict[str, Any]] | None = None
        self.add(parts, where)

    def add(self, parts: Sequence[MetricColumns], where: Sequence[tuple[str, int]]) -> None:
        """Add the points of ``parts``, found in journals at ``where`` (name, offset)."""
        import numpy as np

        end = self._size + sum(len(part) for part in parts)
        if end > len(self._columns["r"]):
            capacity = max(end, 2 * len(self._columns["r"]))
            for name, column in self._columns.items():
                grown = np.empty(capacity, column.dtype)
                grown[:self._size] = column[:self._size]
                self._columns[name] = grown
        at, c = self._size, self._columns
        for part in parts:
            # A frame's codes index its own names: translate them to the gathered ones.
            runs = np.array([self._runs.setdefault(r, len(self._runs)) for r in part.runs],
                            dtype=np.uint32)
            keys = np.array([self._keys.setdefault(k, len(self._keys)) for k in part.keys],
                            dtype=np.uint32)
            n = len(part)
            c["r"][at:at + n] = runs[part.run]
            c["k"][at:at + n] = keys[part.key]
            c["value"][at:at + n] = part.value
            c["step"][at:at + n] = part.step
            c["ts"][at:at + n] = part.ts
            at += n
        # DuckDB reads NaN in numpy arrays as NULL; NaN is a legal metric value.
        c["is_nan"][self._size:end] = np.isnan(c["value"][self._size:end])
        c["row"][self._size:end] = np.arange(self._size, end, dtype=np.uint32)
        self._frames.extend((name, offset, len(part))
                            for (name, offset), part in zip(where, parts, strict=True))
        if parts:
            self._size = end
            self._tables = None

    def __len__(self) -> int:
        return self._size

    def drop_folded(self, offsets: dict[str, int]) -> bool:
        """Drop the frames a newer copy of the database holds; False if there were none.

        Those are the frames before their journal's offset in ``offsets``, and those of
        journals not in it.
        """
        import numpy as np

        keep = [name in offsets and offset >= offsets[name] for name, offset, _ in self._frames]
        if all(keep):
            return False
        rows = np.repeat(np.array(keep, dtype=bool), [n for _, _, n in self._frames])
        for name, column in self._columns.items():
            self._columns[name] = column[:self._size][rows]
        self._size = len(self._columns["row"])
        self._columns["row"][:] = np.arange(self._size, dtype=np.uint32)
        self._frames = [frame for frame, kept in zip(self._frames, keep, strict=True) if kept]
        self._tables = None
        return True

    def tables(self) -> dict[str, dict[str, Any]]:
        """The points, run ids and keys: register each under its name, select ``POINTS``."""
        import numpy as np

        if self._tables is None:
            points, run_names, key_names = POINT_TABLES
            self._tables = {
                points: {name: column[:self._size] for name, column in self._columns.items()},
                run_names: {"r": np.arange(len(self._runs), dtype=np.uint32),
                            "run_id": _objects(list(self._runs))},
                key_names: {"k": np.arange(len(self._keys), dtype=np.uint32),
                            "key": _objects(list(self._keys))},
            }
        return self._tables


# The names MetricPoints.tables registers its columns under.
POINT_TABLES = ("_fold_points", "_fold_runs", "_fold_keys")


def points_of(source: str) -> str:
    """The rows of the metrics table from points ``source``, as in ``Batch.metric_tables``."""
    # DuckDB reads NaN in numpy arrays as NULL, hence is_nan.
    return ("SELECT run_id, key, CASE WHEN is_nan THEN CAST('NaN' AS DOUBLE) ELSE value END "
            f"AS value, step, to_timestamp(ts) AS timestamp FROM {source} "
            "JOIN _fold_runs USING (r) JOIN _fold_keys USING (k)")


POINTS = points_of("_fold_points")


@contextlib.contextmanager
def _registered(con: duckdb.DuckDBPyConnection, tables: dict[str, dict[str, Any]]
                ) -> Iterator[None]:
    """Each of ``tables`` (name -> columns) registered with ``con`` by name, meanwhile."""
    for name, columns in tables.items():
        con.register(name, columns)
    try:
        yield
    finally:
        for name in tables:
            # In a failed transaction this fails too, and would hide the first error; the
            # connection ends with the fold or read anyway.
            with contextlib.suppress(Exception):
                con.unregister(name)


def _objects(values: list[Any]) -> Any:
    import numpy as np

    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _column(name: str, spec: _Table, rows: Any) -> Any:
    values = [row.get(name) for row in rows]
    if name in spec.jsons:
        values = [None if v is None else json.dumps(v) for v in values]
    return _objects(values)
