r"""Per-process append-only journals: the write path of the store.

A writer never touches the database. It appends framed records to its own journal file,
which it holds an exclusive ``flock`` on for as long as it lives: a journal whose lock
can be taken belongs to a dead process. The file is created under a temporary name and
renamed into place only once locked, so no reader ever sees an unlocked live journal.

Logging calls only append to an in-memory buffer (about a microsecond); a background
thread writes the buffer out every ``flush_interval`` seconds. Metrics are buffered
column-wise, so a flush of many points is one compact binary frame.

Journal format 3 (``*.nbj3``), one or two frames per flush::

    magic    4 bytes   b"\xffNJ\x03": 0xff never occurs in JSON text, so a reader finds
                       the next frame after garbage; the last byte is the format
    length   u32 LE    payload bytes
    seq      u32 LE    the frame's number in this journal, from 1
    crc      u32 LE    crc32 of the seq field and the payload
    payload            b"J" and JSON records, one a line; or b"M" and metric points:

    names    u32 LE + JSON   {"runs": [run ids], "keys": [metric keys]}, padded with
                             spaces so the columns start 8-byte aligned
    columns  n × 32 bytes    run u32[n] and key u32[n] (indexes into the names),
                             value f64[n], step i64[n], time f64[n] (seconds since the
                             epoch): a fold or a read takes them as arrays, no parsing

A torn, truncated or overwritten region fails its checksum or its magic and is skipped
with a warning naming the journal and offset; the frame after it is read as usual. The
sequence numbers reveal a journal truncated or rewritten below its folded offset, which
is then rescanned. Earlier formats are still read: format 2 (``*.nbj``, the same frames
with magic b"\xffNJ\x02" and JSON payloads only, metrics as base64 columns) and format 1
(``*.jsonl``, plain JSON lines). Each format has its own suffix so that an older nbtrail
still running beside this one never reads a journal it cannot parse.
"""

from __future__ import annotations

import array
import binascii
import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreFullError

JOURNAL_SUFFIX = ".nbj3"
MAGIC = b"\xffNJ\x03"
# Journal suffix -> the magic its frames start with (None: format 1, JSON lines).
FORMATS: dict[str, bytes | None] = {
    JOURNAL_SUFFIX: MAGIC, ".nbj": b"\xffNJ\x02", ".jsonl": None}
_HEADER = struct.Struct("<4sIII")  # magic, length, seq, crc
RECORDS, METRICS = b"J", b"M"  # the kinds of format 3 payloads
_NAMES = struct.Struct("<I")
_POINT_BYTES = 4 + 4 + 8 + 8 + 8  # run, key, value, step, time


def frame(payload: bytes, seq: int, magic: bytes = MAGIC) -> bytes:
    """One journal frame holding ``payload`` (see the module docstring)."""
    seq_bytes = struct.pack("<I", seq)
    return magic + struct.pack("<I", len(payload)) + seq_bytes + struct.pack(
        "<I", zlib.crc32(payload, zlib.crc32(seq_bytes))) + payload


def _suffix(path: Path) -> str | None:
    return next((s for s in FORMATS if path.name.endswith(s)), None)


def writer_id_of(path: Path) -> str:
    """The id of the writer a journal file belongs to."""
    suffix = _suffix(path)
    return path.name if suffix is None else path.name.removesuffix(suffix)


@dataclass(frozen=True)
class MetricColumns:
    """The metric points of one binary frame: names, and per point indexes into them."""

    runs: list[str]
    keys: list[str]
    run: Any  # numpy arrays of one length: index into runs, per point
    key: Any  # index into keys
    value: Any
    step: Any
    ts: Any

    def __len__(self) -> int:
        return len(self.value)


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
        # Frames built but not written yet: they stay here until a write succeeds (a
        # full disk loses nothing), and keep their sequence number across retries.
        self._unwritten: list[bytes] = []
        self._seq = 0
        self._failure: str | None = None  # the error warned about, until a write succeeds
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
        """Write everything buffered so far to the journal file; False if there was none.

        Raises ``StoreFullError`` when the disk is full; what was buffered stays buffered
        and the next flush retries it.
        """
        with self._io_lock:  # frames are numbered and written in the order logged
            with self._lock:
                records, self._records = self._records, []
                metrics, self._metrics = self._metrics, ([], [], [], [], [])
            # Each payload is made before its frame takes a number: frame numbers have no
            # gaps, or a reader would take the journal for one truncated.
            if records:
                self._seq += 1
                self._unwritten.append(frame(_records_payload(records), self._seq))
            if metrics[0]:
                payload = _metrics_payload(*metrics)
                self._seq += 1
                self._unwritten.append(frame(payload, self._seq))
            if not self._unwritten:
                return False
            try:
                fd = self._open()
                while self._unwritten:
                    _write_frame(fd, self._unwritten[0])
                    del self._unwritten[0]
                    self.written += 1
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                needed = sum(len(f) for f in self._unwritten)
                raise StoreFullError(_full_message(self.journal_dir.parent, needed)) from None
            if self._failure is not None:
                self._failure = None
                warnings.warn(f"nbtrail: the journal {self.path} is written again; nothing "
                              "logged was lost", stacklevel=2)
            return True

    def write_now(self, records: list[dict[str, Any]]) -> None:
        """Write ``records`` as one frame now, or raise having written none of them.

        For records that must land before the caller goes on, or not at all (audit
        entries, chained under a lock): nothing of them stays buffered after a failure.
        """
        payload = _records_payload(records)
        with self._io_lock:
            if self._unwritten:  # earlier frames wait for space, and go first
                needed = sum(len(f) for f in self._unwritten) + len(payload)
                raise StoreFullError(_full_message(self.journal_dir.parent, needed))
            data = frame(payload, self._seq + 1)
            try:
                _write_frame(self._open(), data)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise StoreFullError(_full_message(self.journal_dir.parent, len(data))
                                     ) from None
            self._seq += 1
            self.written += 1

    def mark_folded(self, written: int) -> None:
        """Record that what the first ``written`` flushes wrote is folded."""
        self._folded = max(self._folded, written)

    @property
    def unfolded(self) -> bool:
        """Whether some flush wrote records not known to be folded yet."""
        return self.written > self._folded

    def close(self) -> None:
        """Flush, stop the background thread and release the journal's lock.

        Raises ``StoreFullError`` if the disk is still full: what could not be written
        is lost with this process.
        """
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            self.flush()
        except StoreFullError:
            lost = sum(len(f) for f in self._unwritten)
            raise StoreFullError(
                f"the disk holding the store at {self.journal_dir.parent} is full: {lost:,} "
                "bytes of records this process logged could not be written and are lost "
                "as it ends; free space there") from None
        finally:
            with self._io_lock:
                if self._fd is not None:
                    os.close(self._fd)  # releases the flock: the journal reads as finished
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
                if self._failure is None:  # one warning until a write succeeds again
                    warnings.warn(f"nbtrail: background flush failed: {exc}", stacklevel=1)
                self._failure = str(exc)


def _write_frame(fd: int, data: bytes) -> None:
    """Append one whole frame, or nothing: a partial write is cut off again."""
    start = os.fstat(fd).st_size  # only this process appends to its journal
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise


def _records_payload(records: list[dict[str, Any]]) -> bytes:
    return RECORDS + "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n"
                             for r in records).encode()


def _full_message(home: Path, needed: int) -> str:
    free = free_bytes(home)
    return (f"the disk holding the store at {home} is full ({free:,} bytes free): "
            f"{needed:,} bytes of logged records wait in memory and are retried every "
            f"flush; free at least {needed:,} bytes there, nothing is lost until this "
            "process ends")


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process can still write on the file system of ``path``."""
    while not path.exists() and path != path.parent:  # a store not created yet
        path = path.parent
    try:
        info = os.statvfs(path)
    except OSError:
        return 0
    return info.f_bavail * info.f_frsize


def _metrics_payload(runs: list[str], keys: list[str], values: list[float], steps: list[int],
                     stamps: list[float]) -> bytes:
    """The payload of a binary metrics frame (see the module docstring)."""
    run_index = {run: i for i, run in enumerate(dict.fromkeys(runs))}
    key_index = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    names = json.dumps({"runs": list(run_index), "keys": list(key_index)}).encode()
    # Pad so that the columns start 8-byte aligned in the payload, for numpy to read.
    names += b" " * (-(len(METRICS) + _NAMES.size + len(names)) % 8)
    columns: list[array.array[Any]] = [
        array.array("I", [run_index[r] for r in runs]),
        array.array("I", [key_index[k] for k in keys]),
        array.array("d", values), array.array("q", steps), array.array("d", stamps)]
    if sys.byteorder != "little":
        for column in columns:
            column.byteswap()
    return b"".join([METRICS, _NAMES.pack(len(names)), names,
                     *(column.tobytes() for column in columns)])


def decode_metrics(payload: bytes) -> MetricColumns:
    """The points of a binary metrics frame; ``ValueError`` says what is wrong with it."""
    import numpy as np

    start = len(METRICS) + _NAMES.size
    if len(payload) < start:
        raise ValueError("metric frame shorter than its header")
    (size,) = _NAMES.unpack_from(payload, len(METRICS))
    try:
        names = json.loads(payload[start:start + size])
        runs, keys = names["runs"], names["keys"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"metric frame names unreadable ({exc})") from None
    if not (isinstance(runs, list) and isinstance(keys, list)
            and all(isinstance(n, str) for n in runs + keys)):
        raise ValueError("metric frame names are not lists of strings")
    start += size
    n, rest = divmod(len(payload) - start, _POINT_BYTES)
    if rest:
        raise ValueError("metric frame columns of different lengths")
    columns = []
    for dtype in ("<u4", "<u4", "<f8", "<i8", "<f8"):
        column = np.frombuffer(payload, dtype=dtype, count=n, offset=start)
        columns.append(column)
        start += column.nbytes
    run, key = columns[0], columns[1]
    if n and (int(run.max()) >= len(runs) or int(key.max()) >= len(keys)):
        raise ValueError("a metric point names a run or key past the frame's names")
    return _checked(MetricColumns(runs, keys, *columns))


# Seconds since the epoch a timestamp may take: years 1 to 9999, as DuckDB and Python agree.
TIME_RANGE = (-62135596800.0, 253402300799.0)


def _checked(points: MetricColumns) -> MetricColumns:
    if not ((points.ts >= TIME_RANGE[0]) & (points.ts <= TIME_RANGE[1])).all():
        raise ValueError("a timestamp out of range")
    return points


def decode_legacy_metrics(record: dict[str, Any]) -> MetricColumns:
    """The points of a format 2 ``metrics`` JSON record (base64 columns of one run)."""
    import numpy as np

    def column(name: str, dtype: str) -> Any:
        # strict_mode checks the alphabet as it decodes; b64decode(validate=True) runs a
        # regular expression over the text first, which took longer than the decoding.
        return np.frombuffer(binascii.a2b_base64(record[name], strict_mode=True), dtype=dtype)

    key = column("key", "<u4")
    keys = record["keys"]
    if len(key) and int(key.max()) >= len(keys):
        raise ValueError("a key index past the list of keys")
    points = MetricColumns([record["run_id"]], keys, np.zeros(len(key), dtype=np.uint32), key,
                           column("value", "<f8"), column("step", "<i8"), column("ts", "<f8"))
    if len({len(points.key), len(points.value), len(points.step), len(points.ts)}) != 1:
        raise ValueError("columns of different lengths")
    return _checked(points)


@dataclass
class JournalChunk:
    """Complete records read from one journal, and where reading stopped.

    ``records`` pairs each record with the offset of its frame (its line in format 1),
    for messages and quarantine.
    """

    path: Path
    records: list[tuple[int, Any]]
    end_offset: int
    alive: bool
    last_write: float
    seq: int = 0
    at_end: bool = True
    bad: list[tuple[int, bytes, str]] = field(default_factory=list)
    file_id: tuple[int, int] = (0, 0)  # device and inode
    reread: bool = False  # found truncated or rewritten, and read again from the start


@contextlib.contextmanager
def open_journal(path: Path, offset: int, max_bytes: int | None = None, seq: int = 0
                 ) -> Iterator[JournalChunk | None]:
    """Read the complete records of ``path`` after ``offset`` (about ``max_bytes`` of them).

    ``seq`` is the last frame known folded. Yields ``None`` when the file vanished or is
    not a regular file (with a warning). While the block runs, a dead journal's lock is
    held, so its file can be removed safely inside the block.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer that never comes.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        yield None
        return
    except OSError as exc:
        _warn_not_a_journal(path, exc.strerror or str(exc))
        yield None
        return
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            _warn_not_a_journal(path, "not a regular file")
            yield None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alive = False
        except BlockingIOError:
            alive = True
        magic = FORMATS.get(_suffix(path) or "")
        if magic is None:
            chunk = _read_lines(fd, path, offset, max_bytes, info.st_size, alive)
        else:
            chunk = _read_frames(fd, path, magic, offset, seq, max_bytes, info.st_size, alive)
        chunk.last_write = info.st_mtime
        chunk.file_id = (info.st_dev, info.st_ino)
        yield chunk
    finally:
        os.close(fd)


def _warn_not_a_journal(path: Path, why: str) -> None:
    warnings.warn(f"nbtrail: skipped {path}: it is named like a journal but is {why}; "
                  "remove or rename it", stacklevel=4)


def _read_frames(fd: int, path: Path, magic: bytes, offset: int, seq: int,
                 max_bytes: int | None, size: int, alive: bool) -> JournalChunk:
    if offset > size:
        warnings.warn(f"nbtrail: journal {path} is shorter ({size} bytes) than the "
                      f"{offset} bytes already folded from it: it was truncated; reading "
                      "it again from the start for records not folded yet", stacklevel=5)
        return _reread(fd, path, magic, seq, size, alive)
    return _scan_frames(fd, path, magic, offset, seq, max_bytes, size, alive,
                        rescan=offset == 0)


def _scan_frames(fd: int, path: Path, magic: bytes, offset: int, seq: int,
                 max_bytes: int | None, size: int, alive: bool, *, rescan: bool
                 ) -> JournalChunk:
    chunk = JournalChunk(path, [], offset, alive, 0.0, seq)
    pos = offset
    while pos < size and (max_bytes is None or pos - offset < max_bytes):
        head = os.pread(fd, _HEADER.size, pos)
        # Past the end of the file: a frame still being written, or a torn one.
        beyond = len(head) < _HEADER.size
        if not beyond and head[:4] == magic:
            _, length, number, crc = _HEADER.unpack(head)
            end = pos + _HEADER.size + length
            beyond = end > size
            payload = b"" if beyond else os.pread(fd, length, pos + _HEADER.size)
            if not beyond and zlib.crc32(payload, zlib.crc32(head[8:12])) == crc:
                if number > chunk.seq + 1 and not rescan:
                    # Frames are missing before this one: the journal was truncated or
                    # rewritten below its folded offset and has grown back since.
                    warnings.warn(
                        f"nbtrail: journal {path} was truncated or rewritten below its "
                        f"folded offset {offset}; reading it again from the start for "
                        "records not folded yet", stacklevel=6)
                    return _reread(fd, path, magic, seq, size, alive)
                if number > chunk.seq:
                    _add_payload(chunk, magic, payload, pos + _HEADER.size)
                    chunk.seq = number
                pos = chunk.end_offset = end
                continue
        if pos == offset > 0 and not rescan and head[:4] != magic[:len(head[:4])]:
            # A folded offset always falls between frames: the file was truncated or
            # rewritten below it, and whatever starts there may be a later frame's tail.
            warnings.warn(
                f"nbtrail: journal {path} holds no record at its folded offset {offset}: "
                "it was truncated, rewritten or written over; reading it again from the "
                "start for records not folded yet", stacklevel=5)
            return _reread(fd, path, magic, seq, size, alive)
        following = _find_magic(fd, magic, pos + 1, size)
        # A frame is written whole before the next one starts: with a frame after it,
        # this region is garbage, not a frame in progress.
        incomplete = beyond and head[:4] == magic[:len(head[:4])] and following is None
        if incomplete and alive:
            break  # the writer is still writing it
        if incomplete:
            warnings.warn(f"nbtrail: skipped a torn last record ({size - pos} bytes) at "
                          f"offset {pos} in journal {path}", stacklevel=5)
            pos = chunk.end_offset = size
            break
        skip_to = size if following is None else following
        warnings.warn(f"nbtrail: skipped {skip_to - pos} unreadable bytes at offset {pos} "
                      f"in journal {path}", stacklevel=5)
        pos = chunk.end_offset = skip_to
    chunk.at_end = chunk.end_offset >= size
    return chunk


def _reread(fd: int, path: Path, magic: bytes, seq: int, size: int, alive: bool
            ) -> JournalChunk:
    """Read a journal found truncated or rewritten again from its start."""
    chunk = _scan_frames(fd, path, magic, 0, seq, None, size, alive, rescan=True)
    chunk.reread = True
    return chunk


def _find_magic(fd: int, magic: bytes, start: int, size: int) -> int | None:
    """Offset of the next frame start at or after ``start``, if any."""
    block = 1 << 20
    while start < size:
        data = os.pread(fd, block + len(magic) - 1, start)
        found = data.find(magic)
        if found >= 0:
            return start + found
        start += block
    return None


def _add_payload(chunk: JournalChunk, magic: bytes, payload: bytes, base: int) -> None:
    """Add the records of one frame's ``payload`` (at ``base`` in the journal)."""
    if magic != MAGIC:  # format 2: JSON lines only
        _add_lines(chunk, payload, base)
    elif payload[:1] == RECORDS:
        _add_lines(chunk, payload[1:], base + 1)
    elif payload[:1] == METRICS:
        try:
            chunk.records.append((base, decode_metrics(payload)))
        except ValueError as exc:
            chunk.bad.append((base, payload, f"malformed metric frame ({exc})"))
    else:
        chunk.bad.append((base, payload, f"unknown frame kind {payload[:1]!r}"))


def _add_lines(chunk: JournalChunk, data: bytes, base: int) -> None:
    """Parse the JSON lines of ``data`` (at ``base`` in the journal) into ``chunk``."""
    start = 0
    while start < len(data):
        stop = data.find(b"\n", start)
        stop = len(data) if stop < 0 else stop
        line = data[start:stop]
        if line.strip():
            try:
                chunk.records.append((base + start, _parse(line)))
            except ValueError:
                chunk.bad.append((base + start, line, "not valid JSON"))
        start = stop + 1


def _parse(line: bytes) -> Any:
    """One JSON record: orjson parses it 7 times faster than the stdlib.

    The writer's ``json.dumps`` may write what orjson refuses (NaN, integers past 64
    bits); the stdlib reads those.
    """
    import orjson

    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def _read_lines(fd: int, path: Path, offset: int, max_bytes: int | None, size: int,
                alive: bool) -> JournalChunk:
    """Read a format 1 journal: complete JSON lines."""
    chunk = JournalChunk(path, [], offset, alive, 0.0)
    if offset > size:
        warnings.warn(f"nbtrail: journal {path} is shorter ({size} bytes) than the "
                      f"{offset} bytes already folded from it; nothing more to read",
                      stacklevel=5)
        chunk.end_offset = size
        return chunk
    remaining = size - offset
    data = os.pread(fd, remaining if max_bytes is None else min(remaining, max_bytes), offset)
    complete = data.rfind(b"\n") + 1
    if complete == 0 and len(data) < remaining:
        data = os.pread(fd, remaining, offset)  # one record larger than the budget
        complete = data.rfind(b"\n") + 1
    end = offset + complete
    if not alive and len(data) == remaining and complete < len(data):
        # The writer died mid-line: skip the torn tail rather than wait for it forever.
        warnings.warn(f"nbtrail: skipped a torn last record ({len(data) - complete} bytes) "
                      f"at offset {end} in journal {path}", stacklevel=5)
        end = size
    _add_lines(chunk, data[:complete], offset)
    chunk.end_offset = end
    chunk.at_end = end == size
    return chunk


def journal_files(journal_dir: Path) -> list[Path]:
    """The journals present now (every format), oldest writer first."""
    if not journal_dir.is_dir():
        return []
    return sorted(path for suffix in FORMATS for path in journal_dir.glob(f"*{suffix}"))


def unfolded(journal_dir: Path, offsets: dict[str, int]) -> tuple[int, int]:
    """How many journals have bytes past their ``offsets`` (folded or shipped), and how many."""
    count = total = 0
    for path in journal_files(journal_dir):
        try:
            past = path.stat().st_size - offsets.get(path.name, 0)
        except FileNotFoundError:  # folded to its end and removed meanwhile
            continue
        if past > 0:
            count, total = count + 1, total + past
    return count, total
