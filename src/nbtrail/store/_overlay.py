"""Unfolded journal records, seen by a read-only connection as if folded.

A reader never waits for the journals to be folded: it reads the complete records after
each journal's folded offset, writes them into temporary ``_pending_*`` copies of the
tables touched, and shadows those tables with temporary views of the same names
(DuckDB resolves temporary objects first). Metric points, by far the most records, are
not copied: the view of ``metrics`` reads the arrays decoded from the journals, which are
registered with the connection. The database file is not written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._fold import (
    POINTS,
    TABLES,
    Batch,
    column_types,
    folded_offsets,
    mark_killed,
    warn_rejected,
)
from ._journal import journal_files, open_journal, writer_id_of

if TYPE_CHECKING:
    import duckdb

PREFIX = "_pending_"


@dataclass
class Pending:
    """Journal records not folded yet."""

    batch: Batch
    size: int = 0  # bytes
    # Writers whose process died, read to their journal's end -> when it last wrote: a
    # fold marks their unfinished runs killed, and a read shows them so until it has.
    dead: dict[str, float] = field(default_factory=dict)


def read_pending(con: duckdb.DuckDBPyConnection, journal_dir: Path) -> Pending:
    """Read the records of every journal after its folded offset."""
    offsets = folded_offsets(con)
    pending = Pending(Batch(column_types(con)))
    for path in journal_files(journal_dir):
        # Journals with nothing new are read too: a dead writer must be noticed.
        offset, seq = offsets.get(path.name, (0, 0))
        with open_journal(path, offset, seq=seq) as chunk:
            if chunk is None:
                continue
            if not chunk.alive and chunk.at_end:
                pending.dead[writer_id_of(path)] = chunk.last_write
            pending.size += max(chunk.end_offset - offset, 0)
            pending.batch.add_chunk(chunk)
    warn_rejected(pending.batch.rejected)
    return pending


def apply_overlay(con: duckdb.DuckDBPyConnection, pending: Pending) -> None:
    """Make ``con`` see the ``pending`` records on top of the folded tables."""
    batch = pending.batch
    catalog = con.execute("SELECT current_database()").fetchall()[0][0]
    source = f'"{catalog.replace(chr(34), chr(34) * 2)}".main'
    touched = [name for name, rows in batch.rows.items() if rows]
    if (batch.ends or pending.dead) and "runs" not in touched:
        touched.append("runs")
    if batch.metric_points:
        touched.append("latest_metrics")
    for name in touched:
        [(ddl,)] = con.execute(
            "SELECT sql FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' "
            "AND table_name = ?", [catalog, name]).fetchall()
        con.execute(re.sub(r"^CREATE TABLE \"?\w+\"?", f"CREATE TEMP TABLE {PREFIX}{name}", ddl))
    if batch.ends:
        # A run that ends now started in an earlier fold: copy it, so the update applies.
        con.execute(f"INSERT OR IGNORE INTO {PREFIX}runs SELECT * FROM {source}.runs "
                    "WHERE run_id IN (SELECT unnest(?))", [list(batch.ends)])
    if pending.dead:
        con.execute(f"INSERT OR IGNORE INTO {PREFIX}runs SELECT * FROM {source}.runs "
                    "WHERE status = 'running' AND writer_id IN (SELECT unnest(?))",
                    [list(pending.dead)])
    batch.apply(con, PREFIX, points=False)
    if batch.metric_points:
        for name, columns in batch.metric_tables().items():
            con.register(name, columns)  # for as long as the connection lives
        touched.append("metrics")
    for writer_id, when in pending.dead.items():
        mark_killed(con, f"{PREFIX}runs", writer_id, when)
    for name in touched:
        shadow = f"{PREFIX}{name}"
        if name == "metrics":
            body = f"SELECT * FROM {source}.metrics UNION ALL BY NAME {POINTS}"
        elif name == "latest_metrics":
            # The latest point of a key is the higher step, then the later time, of both.
            body = f"""
                SELECT * FROM {source}.latest_metrics ANTI JOIN {shadow} USING (run_id, key)
                UNION ALL BY NAME
                SELECT * FROM (
                    SELECT * FROM {source}.latest_metrics SEMI JOIN {shadow} USING (run_id, key)
                    UNION ALL BY NAME SELECT * FROM {shadow}
                ) QUALIFY row_number() OVER (
                    PARTITION BY run_id, key ORDER BY step DESC, timestamp DESC) = 1"""
        else:
            keys = ", ".join(TABLES[name].key)
            body = (f"SELECT * FROM {source}.{name} ANTI JOIN {shadow} USING ({keys}) "
                    f"UNION ALL BY NAME SELECT * FROM {shadow}")
        con.execute(f"CREATE TEMP VIEW {name} AS {body}")
