"""Per-process append-only journals: the write path of the store.

A writer never touches the database. It appends JSON lines to its own journal file,
which it holds an exclusive ``flock`` on for as long as it lives: a journal whose lock
can be taken belongs to a dead process. The file is created under a temporary name and
renamed into place only once locked, so no reader ever sees an unlocked live journal.

Logging calls only append to an in-memory buffer (about a microsecond); a background
thread writes the buffer out every ``flush_interval`` seconds with one ``write`` call.
Metrics are buffered column-wise so a flush of many points is one compact line.
"""

from __future__ import annotations

import array
import base64
import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_SUFFIX = ".jsonl"


class JournalWriter:
    """Appends records for one process to one journal file."""

    def __init__(self, journal_dir: Path, *, flush_interval: float) -> None:
        self.journal_dir = journal_dir
        self.flush_interval = flush_interval
        self._start()

    def _start(self) -> None:
        self.writer_id = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
        self.path = self.journal_dir / f"{self.writer_id}{JOURNAL_SUFFIX}"
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._metrics: tuple[list[str], list[str], list[float], list[int], list[float]] = (
            [], [], [], [], []
        )
        self._wake = threading.Event()
        self._closed = False
        # Flushes that wrote something, and how many of them are known to be folded. An
        # idle writer does not touch the database, so other programs (the duckdb CLI, say)
        # can open it while a notebook sits idle.
        self.written = 0
        self._folded = 0
        self._thread = threading.Thread(
            target=self._run, name=f"nbtrail-journal-{self.writer_id}", daemon=True
        )
        self._thread.start()

    def append(self, record: dict[str, Any]) -> None:
        """Buffer one record; ``record["t"]`` names its kind (see ``_fold``)."""
        with self._lock:
            self._records.append(record)

    def add_metric(self, run_id: str, key: str, value: float, step: int, ts: float) -> None:
        """Buffer one metric point (the hot path: no allocation beyond the list slots)."""
        runs, keys, values, steps, stamps = self._metrics
        with self._lock:
            runs.append(run_id)
            keys.append(key)
            values.append(value)
            steps.append(step)
            stamps.append(ts)

    def flush(self) -> bool:
        """Write everything buffered so far to the journal file; False if there was none."""
        with self._lock:
            records, self._records = self._records, []
            metrics, self._metrics = self._metrics, ([], [], [], [], [])
        records.extend(_metric_records(*metrics))
        if not records:
            return False
        payload = "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n" for r in records)
        data = payload.encode()
        with self._io_lock:
            fd = self._open()
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            self.written += 1
        return True

    def mark_folded(self, written: int) -> None:
        """Record that what the first ``written`` flushes wrote is folded."""
        self._folded = max(self._folded, written)

    def close(self) -> None:
        """Flush, stop the background thread and release the journal's lock."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()
        with self._io_lock:
            if self._fd is not None:
                os.close(self._fd)  # releases the flock: the journal now reads as finished
                self._fd = None

    def after_fork(self) -> None:
        """Start afresh in a forked child: its own journal, lock and thread.

        The parent's buffer is dropped (the parent writes it) and the inherited file
        descriptor is closed without unlocking, which would unlock the parent's journal.
        """
        if self._fd is not None:
            os.close(self._fd)  # flock belongs to the open file: closing one copy keeps it
        self._start()

    def _open(self) -> int:
        if self._fd is None:
            self.journal_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.journal_dir / f".{self.writer_id}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(tmp, self.path)
            self._fd = fd
        return self._fd

    @property
    def unfolded(self) -> bool:
        """Whether some flush wrote records not known to be folded yet."""
        return self.written > self._folded

    def _run(self) -> None:
        # This thread only writes: nothing else (schema checks, folds, imports) may sit
        # between a logged record and the disk. Folds run on the store's own thread.
        while not self._closed:
            self._wake.wait(self.flush_interval)
            if self._closed:
                return
            try:
                self.flush()
            except Exception as exc:  # keep logging alive; the next flush retries
                warnings.warn(f"nbtrail: background flush failed: {exc}", stacklevel=1)


def _metric_records(runs: list[str], keys: list[str], values: list[float], steps: list[int],
                    stamps: list[float]) -> list[dict[str, Any]]:
    """Column-wise metric records, one per run.

    The columns are little-endian numpy arrays in base64: a fold decodes a million
    points in milliseconds, where parsing them as JSON numbers takes seconds. NaN and
    ±inf survive as they are.
    """
    if not runs:
        return []
    if runs.count(runs[0]) == len(runs):  # the common case: one run logging
        groups = {runs[0]: range(len(runs))}
    else:
        groups = {}
        for i, run in enumerate(runs):
            groups.setdefault(run, []).append(i)  # type: ignore[union-attr]
    records = []
    for run, rows in groups.items():
        names: dict[str, int] = {}
        index = [names.setdefault(keys[i], len(names)) for i in rows]
        records.append({
            "t": "metrics", "run_id": run, "keys": list(names),
            "key": _pack(index, "<u4"), "value": _pack([values[i] for i in rows], "<f8"),
            "step": _pack([steps[i] for i in rows], "<i8"),
            "ts": _pack([stamps[i] for i in rows], "<f8"),
        })
    return records


# Column types of ``_pack``: numpy dtype -> the stdlib array code of the same width. The
# writer packs with the stdlib so that the flush thread never waits for numpy's import.
_ARRAY_CODES = {"<u4": "I", "<f8": "d", "<i8": "q"}


def _pack(values: list[Any], dtype: str) -> str:
    column = array.array(_ARRAY_CODES[dtype], values)
    if sys.byteorder != "little":
        column.byteswap()
    return base64.b64encode(column.tobytes()).decode("ascii")


def unpack(text: str, dtype: str) -> Any:
    """Decode a column written by ``_pack``."""
    import numpy as np

    return np.frombuffer(base64.b64decode(text), dtype=dtype)


@dataclass
class JournalChunk:
    """Complete records read from one journal, and where reading stopped."""

    path: Path
    records: list[dict[str, Any]]
    end_offset: int
    alive: bool
    last_write: float
    at_end: bool = True


@contextlib.contextmanager
def open_journal(path: Path, offset: int, max_bytes: int | None = None
                 ) -> Iterator[JournalChunk | None]:
    """Read the complete lines of ``path`` after ``offset`` (about ``max_bytes`` of them).

    Yields ``None`` when the file vanished. While the block runs, a dead journal's lock
    is held, so its file can be removed safely inside the block.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alive = False
        except BlockingIOError:
            alive = True
        stat = os.fstat(fd)
        os.lseek(fd, offset, os.SEEK_SET)
        remaining = stat.st_size - offset
        data = _read_all(fd, remaining if max_bytes is None else min(remaining, max_bytes))
        complete = data.rfind(b"\n") + 1
        if complete == 0 and len(data) < remaining:
            # One record larger than the budget: read on to its end.
            data += _read_all(fd, remaining - len(data))
            complete = data.rfind(b"\n") + 1
        at_eof = len(data) == remaining
        if not alive and at_eof and complete < len(data):
            # The writer died mid-line: skip the torn tail rather than wait for it forever.
            warnings.warn(
                f"nbtrail: skipped a torn last record ({len(data) - complete} bytes) "
                f"in journal {path.name}",
                stacklevel=3,
            )
            end = offset + len(data)
        else:
            end = offset + complete
        records = list(_parse_lines(data[:complete], path))
        yield JournalChunk(path, records, end, alive, stat.st_mtime,
                           at_end=end == stat.st_size)
    finally:
        os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    parts = []
    while size > 0:
        part = os.read(fd, min(size, 1 << 24))
        if not part:
            break
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _parse_lines(data: bytes, path: Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            warnings.warn(
                f"nbtrail: skipped an unreadable record (line {number} of this read) "
                f"in journal {path.name}",
                stacklevel=4,
            )
            continue
        if isinstance(record, dict) and "t" in record:
            yield record


def journal_files(journal_dir: Path) -> list[Path]:
    """The journals present now, oldest writer first."""
    if not journal_dir.is_dir():
        return []
    return sorted(journal_dir.glob(f"*{JOURNAL_SUFFIX}"))
