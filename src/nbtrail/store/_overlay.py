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
    POINT_TABLES,
    POINTS,
    TABLES,
    Batch,
    MetricPoints,
    column_types,
    folded_offsets,
    mark_killed,
    warn_rejected,
)
from ._journal import JournalChunk, journal_files, open_journal, writer_id_of

if TYPE_CHECKING:
    import duckdb

PREFIX = "_pending_"


@dataclass
class Pending:
    """Journal records not folded yet."""

    types: dict[str, dict[str, tuple[str, bool]]]  # column_types, to check records by
    folded: dict[str, tuple[int, int]]  # folded_offsets
    chunks: list[JournalChunk] = field(default_factory=list)
    size: int = 0  # bytes
    # Writers whose process died, read to their journal's end -> when it last wrote: a
    # fold marks their unfinished runs killed, and a read shows them so until it has.
    dead: dict[str, float] = field(default_factory=dict)
    # Where each chunk's records start: at the folded offset, or before it (read_pending).
    starts: dict[str, int] = field(default_factory=dict)

    def base_end(self, chunk: JournalChunk) -> int:
        """The offset up to which the base holds ``chunk``'s journal (0: read anew)."""
        return 0 if chunk.reread else self.folded.get(chunk.path.name, (0, 0))[0]

    def batch(self, since: dict[str, int] | None = None) -> Batch:
        """The records the base does not hold, checked; or those at or after ``since``."""
        batch = Batch(self.types)
        for chunk in self.chunks:
            start = self.base_end(chunk) if since is None else since.get(chunk.path.name, 0)
            batch.add_chunk(chunk, start)
        warn_rejected(batch.rejected)
        return batch


@dataclass
class _Tail:
    start: int  # the folded offset reading started from
    chunk: JournalChunk  # every record from there on, read so far


class JournalTails:
    """The unfolded records of each journal, kept from one read to the next.

    A reader polling a store while processes log re-read the same unfolded frames on
    every read; with the tails kept, a read parses only what was written since the last
    one, and drops what a fold has taken since.
    """

    def __init__(self) -> None:
        self._tails: dict[str, _Tail] = {}

    def read(self, path: Path, offset: int, seq: int, since: int | None = None
             ) -> tuple[JournalChunk | None, int]:
        """Every complete record of ``path`` after its folded ``offset``, and where they start.

        They start at ``since`` instead if that is earlier and still kept. ``seq`` is the
        frame at ``offset``.
        """
        start = offset if since is None else min(offset, since)
        tail = self._tails.get(path.name)
        if tail is not None and tail.start <= start <= tail.chunk.end_offset:
            old = tail.chunk
            with open_journal(path, old.end_offset, seq=old.seq) as new:
                if new is None:
                    del self._tails[path.name]
                    return None, start
                if not new.reread and new.file_id == old.file_id:
                    new.records = [r for r in old.records if r[0] >= start] + new.records
                    new.bad = [b for b in old.bad if b[0] >= start] + new.bad
                    self._tails[path.name] = _Tail(start, new)
                    return new, start
        with open_journal(path, offset, seq=seq) as chunk:
            if chunk is None:
                self._tails.pop(path.name, None)
            else:
                self._tails[path.name] = _Tail(offset, chunk)
            return chunk, offset

    def forget_others(self, names: set[str]) -> None:
        """Drop the tails of journals not among ``names`` (removed since)."""
        for name in set(self._tails) - names:
            del self._tails[name]


def read_pending(con: duckdb.DuckDBPyConnection, journal_dir: Path, tails: JournalTails,
                 offsets: dict[str, tuple[int, int]] | None = None,
                 since: dict[str, int] | None = None) -> Pending:
    """Read the records of every journal after its folded offset (through ``tails``).

    ``offsets`` are the base's folded offsets, if known (a published copy never changes).
    ``since`` asks for records from an earlier offset too, where ``tails`` still has them:
    those an overlay had not read yet when a fold took them (``Overlay.ends``).
    """
    offsets = folded_offsets(con) if offsets is None else offsets
    pending = Pending(column_types(con), offsets)
    paths = journal_files(journal_dir)
    tails.forget_others({path.name for path in paths})
    for path in paths:
        # Journals with nothing new are read too: a dead writer must be noticed.
        offset, seq = offsets.get(path.name, (0, 0))
        chunk, pending.starts[path.name] = tails.read(path, offset, seq,
                                                      (since or {}).get(path.name))
        if chunk is None:
            continue
        if not chunk.alive and chunk.at_end:
            pending.dead[writer_id_of(path)] = chunk.last_write
        pending.size += max(chunk.end_offset - offset, 0)
        pending.chunks.append(chunk)
    return pending


# Rows an overlay's copies may hold before a new base has it built anew: kept over newer
# bases, they keep rows the bases hold too, which every query of them reads again.
HELD_LIMIT = 20_000


@dataclass
class _Applied:
    """What a connection's overlay holds: records up to ``ends``, over ``database``."""

    database: object  # the identity of the database files it lies over
    folded: dict[str, tuple[int, int]]
    types: dict[str, dict[str, tuple[str, bool]]]  # the base's column types
    ends: dict[str, tuple[int, tuple[int, int]]] = field(default_factory=dict)  # offset, file
    points: MetricPoints = field(default_factory=MetricPoints)  # its metric frames
    shadowed: set[str] = field(default_factory=set)  # tables with a copy and a view
    # The keys of the rows each copy got from the journals, for tables whose first row
    # stays: a repeated one (a run's code snapshot, say) is left out before it costs a
    # statement.
    keys: dict[str, set[tuple[object, ...]]] = field(default_factory=dict)
    held: int = 0  # rows in the copies
    catalog: str = ""  # the base's database name

    def news(self, pending: Pending, database: object) -> Batch | None:
        """The records of ``pending`` not in the overlay yet; ``None`` if it must be rebuilt.

        A newer base (a fold changed the database, or published a newer copy of it) keeps
        the overlay if no row of it is older than the base's: the overlay then reads on
        from where it stopped, including what a fold took meanwhile, and drops the metric
        frames the base holds (``update``). A journal it read that vanished is in the
        newer base: one is removed only once a copy holding it is published, and the
        reader checks that its base is the newest after listing the journals.

        It must be rebuilt when a journal it read was rewritten, or vanished while the
        base stayed, a writer died, the schema changed, or its copies hold many rows.
        """
        if pending.dead or pending.types != self.types:
            return None
        names = {chunk.path.name for chunk in pending.chunks}
        if database == self.database:
            if pending.folded != self.folded or not self.ends.keys() <= names:
                return None
        elif self.held > HELD_LIMIT:
            return None
        for chunk in pending.chunks:
            name = chunk.path.name
            if name not in self.ends:
                continue
            end, file_id = self.ends[name]
            if chunk.reread or chunk.file_id != file_id or pending.starts[name] > end:
                return None
        return pending.batch(since=self.read_to())

    def read_to(self) -> dict[str, int]:
        """Where it stopped reading each journal."""
        return {name: end for name, (end, _) in self.ends.items()}


class Overlay:
    """The overlay of one reader connection, kept from one read to the next.

    A store polled while processes log is read many times between two folds: each read
    then adds only the records written since the one before, instead of copying every
    unfolded record again; and a newer base mostly keeps it (``_Applied.news``).
    """

    def __init__(self) -> None:
        self._applied: _Applied | None = None

    def forget(self) -> None:
        """The connection is gone (closed, or its state unknown after an error)."""
        self._applied = None

    def ends(self) -> dict[str, int]:
        """Where the overlay stopped reading each journal: pass to ``read_pending``."""
        return {} if self._applied is None else self._applied.read_to()

    def update(self, con: duckdb.DuckDBPyConnection, pending: Pending,
               database: object) -> None:
        """Make ``con`` see the ``pending`` records on top of the folded tables."""
        applied = self._applied
        batch = None if applied is None else applied.news(pending, database)
        if applied is None or batch is None:
            self._applied = None
            batch = pending.batch()
            if applied is not None and (batch.count or pending.dead):
                applied = _emptied(con, applied, database, pending,
                                   keep_points=bool(batch.metric_points))
            elif applied is not None:
                _drop(con, applied.shadowed)
            if not (batch.count or pending.dead):
                return
            applied = applied or _Applied(database, pending.folded, pending.types)
        self._applied = None  # until it is complete: an error leaves it unknown
        # Metric frames before the base's offsets are in it (read again, or kept from an
        # older base): their points go, or the metrics view would count them twice.
        folded = {chunk.path.name: pending.base_end(chunk) for chunk in pending.chunks}
        _apply(con, applied, batch, pending.dead, folded)
        applied.database, applied.folded = database, pending.folded
        applied.ends = {chunk.path.name: (chunk.end_offset, chunk.file_id)
                        for chunk in pending.chunks}
        self._applied = applied


def _apply(con: duckdb.DuckDBPyConnection, applied: _Applied, batch: Batch,
           dead: dict[str, float], folded: dict[str, int]) -> None:
    if not applied.catalog:
        applied.catalog = con.execute("SELECT current_database()").fetchall()[0][0]
    catalog = applied.catalog
    source = f'"{catalog.replace(chr(34), chr(34) * 2)}".main'
    touched = [name for name, rows in batch.rows.items() if rows]
    if (batch.ends or dead) and "runs" not in touched:
        touched.append("runs")
    if batch.metric_points:
        touched.append("latest_metrics")
    fresh = [name for name in touched if name not in applied.shadowed]
    for name in fresh:
        if name in TABLES and not TABLES[name].replace:
            # First rows stay: rows are left out here when the copy has their key, so it
            # needs no index, whose upkeep cost more than the rows.
            con.execute(f"CREATE TEMP TABLE {PREFIX}{name} AS "
                        f"SELECT * FROM {source}.{name} LIMIT 0")
            continue
        [(ddl,)] = con.execute(
            "SELECT sql FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' "
            "AND table_name = ?", [catalog, name]).fetchall()
        con.execute(re.sub(r"^CREATE TABLE \"?\w+\"?", f"CREATE TEMP TABLE {PREFIX}{name}", ddl))
    for name, rows in batch.rows.items():
        if rows and not TABLES[name].replace:
            seen = applied.keys.setdefault(name, set())
            for key in seen.intersection(rows):
                del rows[key]
            seen.update(rows)
        applied.held += len(rows)
    # A run that ends now and is not in the copy yet started before the base, and the
    # running runs of a dead writer: copy them, so the update applies.
    copied = applied.keys.setdefault("runs", set())
    earlier = [run_id for run_id in batch.ends if (run_id,) not in copied]
    for condition, value in (("run_id IN (SELECT unnest(?))", earlier),
                             ("status = 'running' AND writer_id IN (SELECT unnest(?))",
                              list(dead))):
        if value:
            copied.update(con.execute(
                f"INSERT INTO {PREFIX}runs SELECT * FROM {source}.runs WHERE {condition} "
                f"AND run_id NOT IN (SELECT run_id FROM {PREFIX}runs) RETURNING run_id",
                [value]).fetchall())
    batch.apply(con, PREFIX, overlay=applied.points)  # adds the batch's points to them
    if applied.points.drop_folded(folded) or batch.metric_points:
        for name, columns in applied.points.tables().items():
            con.register(name, columns)  # replaces the last read's, for the view
        if "metrics" not in applied.shadowed:
            fresh.append("metrics")
    for writer_id, when in dead.items():
        mark_killed(con, f"{PREFIX}runs", writer_id, when)
    for name in fresh:
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
    applied.shadowed.update(fresh)


def _emptied(con: duckdb.DuckDBPyConnection, applied: _Applied, database: object,
             pending: Pending, *, keep_points: bool) -> _Applied:
    """The overlay of ``applied`` emptied, to be built anew over ``database``.

    Its copies are emptied and its views kept, which costs one statement where dropping
    and creating them again cost a few for each table; the point arrays go unless
    ``keep_points`` (the new records have points, registered in their place).
    """
    copies = [name for name in applied.shadowed if name != "metrics"]
    if copies:
        con.execute("; ".join(f"DELETE FROM temp.main.{PREFIX}{name}" for name in copies))
    shadowed = set(copies)
    if "metrics" in applied.shadowed:
        if keep_points:
            shadowed.add("metrics")
        else:
            _drop(con, {"metrics"})
    return _Applied(database, pending.folded, pending.types, shadowed=shadowed,
                    catalog=applied.catalog)


def _drop(con: duckdb.DuckDBPyConnection, shadowed: set[str]) -> None:
    """Remove an overlay's views, copies and point arrays from ``con``."""
    for name in shadowed:
        con.execute(f"DROP VIEW IF EXISTS temp.main.{name}")
        if name != "metrics":
            con.execute(f"DROP TABLE IF EXISTS temp.main.{PREFIX}{name}")
    if "metrics" in shadowed:
        for name in POINT_TABLES:
            con.unregister(name)
