"""Copying one store into another (``nbtrail store copy``): idempotent and resumable.

Everything goes through the destination's writer, as if it were logged there: blobs
first (a record never names a blob the destination lacks), then the records of every
table (which the destination keeps once by their keys, however often they come), then
the metric points run by run. A run whose points the destination has already is
skipped, and of a run it has only some points of (a copy cut short) only the missing
ones are copied: a copy run again picks up where it stopped, and nothing lands twice.

The audit trail is not copied: its entries name who made them in the source store, and
a destination's trail is made only by its own sessions (on the team store, each entry
names the role that inserted it). ``nbtrail audit export`` keeps the source's trail.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._base import Store
from ._writes import TABLE_RECORDS, AuditEntry, RunEnd

_POINTS = ("SELECT key, value, step, epoch(timestamp) AS ts FROM metrics WHERE run_id = ? "
           "ORDER BY step, timestamp")


def _point(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A metric point as a key: times to the microsecond both stores keep, NaN as text."""
    key, value, step, ts = row
    return key, repr(value), step, round(ts, 6)


@dataclass(frozen=True)
class CopyResult:
    """What a copy did: how many records, runs of metric points, and blobs it wrote."""

    records: int
    runs_with_points: int
    runs_skipped: int
    blobs: int


def copy_store(source: Store, target: Store, *,
               progress: Callable[[str], None] | None = None) -> CopyResult:
    """Copy every record, metric point and blob of ``source`` into ``target``."""
    say = progress or (lambda _: None)
    writer = target.writer()
    shas = sorted({sha for (sha,) in source.sql(
        "SELECT sha256 FROM models UNION SELECT sha256 FROM artifacts "
        "UNION SELECT sample_sha256 FROM datasets WHERE sample_sha256 IS NOT NULL").rows()})
    for i, sha in enumerate(shas, 1):
        target.put_blob(source.blob_path(sha))
        if i % 100 == 0:
            say(f"{i:,} of {len(shas):,} blobs")
    records = 0
    for record in (r for r in TABLE_RECORDS if r is not AuditEntry):
        columns = ", ".join(
            f'epoch("{c}") AS "{c}"' if c in record.TIMES
            else f'CAST("{c}" AS VARCHAR) AS "{c}"' if c in record.JSONS else f'"{c}"'
            for c in record.columns())
        for row in source.sql(f"SELECT {columns} FROM {record.KIND}").iter_rows(named=True):
            for c in record.JSONS:
                row[c] = json.loads(row[c]) if row[c] is not None else None
            writer.append({"t": record.KIND, **row})
            records += 1
    ended = source.sql("SELECT run_id, status, epoch(end_time) AS end_time, error FROM runs "
                       "WHERE end_time IS NOT NULL")
    for run_id, status, end_time, error in ended.rows():
        writer.append(RunEnd(run_id, status, end_time, error).to_journal())
        records += 1
    writer.flush()
    say(f"{records:,} records")
    target.sync()  # the records land before the points that belong to them

    have = dict(target.sql("SELECT run_id, count(*) AS n FROM metrics GROUP BY run_id").rows())
    wanted = source.sql("SELECT run_id, count(*) AS n FROM metrics GROUP BY run_id "
                        "ORDER BY run_id").rows()
    copied = skipped = 0
    for run_id, count in wanted:
        there = have.get(run_id, 0)
        if there == count:
            skipped += 1
            continue
        points = source.sql(_POINTS, [run_id]).rows()
        if there:  # a copy cut short in the middle of this run: only what is missing
            landed = Counter(_point(p) for p in target.sql(_POINTS, [run_id]).rows())
            missing = []
            for point in points:
                if landed[_point(point)]:
                    landed[_point(point)] -= 1
                else:
                    missing.append(point)
            points = missing
        for key, value, step, ts in points:
            writer.add_metric(run_id, key, value, step, ts)
        writer.flush()
        copied += 1
        if copied % 100 == 0:
            say(f"{copied:,} of {len(wanted) - skipped:,} runs of points")
    target.sync()
    return CopyResult(records, copied, skipped, len(shas))
