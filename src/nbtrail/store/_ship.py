"""Shipping journals into PostgreSQL: the team store's fold.

The same records, checked and deduplicated the same way as by ``_fold`` (``Batch``), go
into the team store's tables in one transaction with the journal offsets they reach, so a
record is applied once and only once, whatever crashes or reconnects. Metric points go in
as one binary ``COPY`` of numeric columns (built by numpy, not row by row in Python), and
their latest values per key follow from them in SQL.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._fold import TABLES, Batch, FoldResult, mark_killed, read_batch, remove_finished
from ._journal import journal_files, writer_id_of
from ._pgsql import PgConnection

if TYPE_CHECKING:
    import psycopg

# information_schema's names of PostgreSQL types -> DuckDB's, which ``Batch`` checks by.
_TYPE_NAMES = {"character varying": "VARCHAR", "text": "VARCHAR", "bigint": "BIGINT",
               "integer": "INTEGER", "boolean": "BOOLEAN", "double precision": "DOUBLE",
               "json": "JSON", "jsonb": "JSON", "timestamp with time zone": "TIMESTAMPTZ"}


def column_types(conn: psycopg.Connection[Any]) -> dict[str, dict[str, tuple[str, bool]]]:
    """Table -> column -> (DuckDB type name, nullable) of the team store's tables."""
    rows = conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable = 'YES' "
        "FROM information_schema.columns WHERE table_schema = current_schema()").fetchall()
    types: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, kind, nullable in rows:
        types.setdefault(table, {})[column] = (_TYPE_NAMES.get(kind, kind.upper()), nullable)
    return types


def ship(conn: psycopg.Connection[Any], journal_dir: Path,
         types: dict[str, dict[str, tuple[str, bool]]],
         max_bytes: int | None = None) -> FoldResult:
    """Apply the complete records of every journal in ``journal_dir`` past their offsets.

    The caller holds the journal folder's exclusive lock (one shipper per machine folder).
    """
    result = FoldResult()
    paths = journal_files(journal_dir)
    with conn.transaction(), contextlib.ExitStack() as stack:
        offsets = {name: (offset, seq) for name, offset, seq in conn.execute(
            'SELECT journal, "offset", coalesce(seq, 0) FROM journal_offsets '
            "WHERE journal = ANY(%s)", [[p.name for p in paths]]).fetchall()}
        batch, chunks = read_batch(stack, journal_dir, paths, offsets, types, max_bytes, result)
        with conn.cursor() as cur:
            _apply(cur, batch)
            cur.executemany(
                'INSERT INTO journal_offsets (journal, "offset", seq) VALUES (%s, %s, %s) '
                'ON CONFLICT (journal) DO UPDATE SET "offset" = EXCLUDED."offset", '
                "seq = EXCLUDED.seq",
                [(c.path.name, c.end_offset, c.seq) for c in chunks])
        dead = [c for c in chunks if not c.alive and c.at_end]
        for chunk in dead:
            result.killed_runs += mark_killed(PgConnection(conn), "runs",
                                              writer_id_of(chunk.path), chunk.last_write)
        result.finished = [chunk.path for chunk in dead]
    remove_finished(result)
    return result


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _apply(cur: psycopg.Cursor[Any], batch: Batch) -> None:
    for name, rows in batch.rows.items():
        if not rows:
            continue
        spec = TABLES[name]
        # Who ran a run is the role the server authenticated, not what the client says.
        server_side = {"user_name": "current_user"} if name == "runs" else {}
        columns = ", ".join(_quote(c) for c in spec.columns)
        values = ", ".join(server_side.get(c, "to_timestamp(%s)" if c in spec.times
                                           else "CAST(%s AS JSON)" if c in spec.jsons
                                           else "%s") for c in spec.columns)
        if spec.replace:
            updates = ", ".join(f"{_quote(c)} = EXCLUDED.{_quote(c)}"
                                for c in spec.columns if c not in spec.key)
            conflict = f"DO UPDATE SET {updates}"
        else:
            conflict = "DO NOTHING"
        keys = ", ".join(_quote(c) for c in spec.key)
        cur.executemany(
            f"INSERT INTO {name} ({columns}) VALUES ({values}) ON CONFLICT ({keys}) {conflict}",
            [tuple(json.dumps(row.get(c)) if c in spec.jsons and row.get(c) is not None
                   else row.get(c) for c in spec.columns if c not in server_side)
             for row in rows.values()])
    if batch.ends:  # after the runs: a run may start and end in one batch
        cur.executemany(
            "UPDATE runs SET status = %s, end_time = to_timestamp(%s), error = %s "
            "WHERE run_id = %s",
            [(e["status"], e["end_time"], e.get("error"), e["run_id"])
             for e in batch.ends.values()])
    if batch.metric_points:
        _apply_metrics(cur, batch)


# Binary COPY: a header, then per row the field count and each field's length and bytes.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"


def _apply_metrics(cur: psycopg.Cursor[Any], batch: Batch) -> None:
    import numpy as np

    tables = batch.metric_tables()
    points, runs, keys = tables["_fold_points"], tables["_fold_runs"], tables["_fold_keys"]
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS _ship_points "
                "(r integer, k integer, value double precision, step bigint, ts double precision)"
                " ON COMMIT DELETE ROWS")
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS _ship_names (kind char, i integer, name text)"
                " ON COMMIT DELETE ROWS")
    rows = np.empty(len(points["value"]), dtype=[
        ("n", ">i2"), ("l1", ">i4"), ("r", ">i4"), ("l2", ">i4"), ("k", ">i4"),
        ("l3", ">i4"), ("value", ">f8"), ("l4", ">i4"), ("step", ">i8"), ("l5", ">i4"),
        ("ts", ">f8")])
    rows["n"] = 5
    for length, fields in ((4, ("l1", "l2")), (8, ("l3", "l4", "l5"))):
        for name in fields:
            rows[name] = length
    for name in ("r", "k", "value", "step", "ts"):
        rows[name] = points[name]
    with cur.copy("COPY _ship_points FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(_COPY_HEADER + rows.tobytes() + _COPY_TRAILER)
    cur.executemany("INSERT INTO _ship_names VALUES (%s, %s, %s)",
                    [("r", int(i), str(n)) for i, n in zip(runs["r"], runs["run_id"],
                                                         strict=True)]
                    + [("k", int(i), str(n)) for i, n in zip(keys["k"], keys["key"],
                                                           strict=True)])
    named = ("FROM _ship_points p JOIN _ship_names ru ON ru.kind = 'r' AND ru.i = p.r "
             "JOIN _ship_names ke ON ke.kind = 'k' AND ke.i = p.k")
    cur.execute("INSERT INTO metrics (run_id, key, value, step, timestamp) "
                f"SELECT ru.name, ke.name, p.value, p.step, to_timestamp(p.ts) {named}")
    # The latest point of a key: the highest step, then the latest time.
    cur.execute(f"""
        INSERT INTO latest_metrics (run_id, key, value, step, timestamp)
        SELECT DISTINCT ON (p.r, p.k) ru.name, ke.name, p.value, p.step, to_timestamp(p.ts)
        {named} ORDER BY p.r, p.k, p.step DESC, p.ts DESC
        ON CONFLICT (run_id, key) DO UPDATE
        SET value = EXCLUDED.value, step = EXCLUDED.step, timestamp = EXCLUDED.timestamp
        WHERE EXCLUDED.step > latest_metrics.step
           OR (EXCLUDED.step = latest_metrics.step
               AND EXCLUDED.timestamp >= latest_metrics.timestamp)""")
