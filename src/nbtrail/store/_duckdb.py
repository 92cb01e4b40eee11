"""The embedded store: a folder with a DuckDB file, journals and content-addressed blobs.

Layout of a store folder::

    nbtrail.duckdb      the folded lineage database (plain tables, docs/store.md)
    snapshots/          published copies of it, which readers attach (``_snapshot``)
    journal/*.nbj3      one append-only journal per writing process
    artifacts/sha256/   content-addressed blobs (models, artifacts)
    lock                flock: exclusive for folds and migrations, shared for readers of
                        the database itself
    readers             flock: shared while such a reader waits or reads; background
                        folds step aside while it is held

DuckDB admits one read-write process per file, so only a process holding the exclusive
lock opens it read-write, briefly, to fold bounded passes, and then publishes a copy for
readers. Writers never wait: they only append to their journals. Background folds never
wait either: they try the lock and move on if it is busy. Readers attach the newest copy,
which nothing writes, and see what it lacks through an overlay of the journal tails
(``_overlay``): a read waits for no fold and is never stale. Without a copy they read the
database itself under the shared lock, which waits at most for one fold pass.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import os
import threading
import time
import warnings
import weakref
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    ConflictError,
    InvalidInputError,
    NbtrailError,
    StoreDatabaseError,
    StoreFullError,
    StoreLockedError,
    StoreNotFoundError,
)
from . import _schema, _snapshot
from ._audit import AuditSession, Draft, chain, local_identity, no_entries
from ._blobs import BlobStore
from ._fold import QUARANTINE, FoldResult, fold, folded_offsets, remove_finished
from ._fork import duckdb_section, on_fork, open_lock
from ._journal import JournalWriter, free_bytes, journal_files, unfolded
from ._overlay import JournalTails, Overlay, Pending, read_pending
from ._records import Backlog, Check
from ._sqlguard import check_read_only
from ._sqlreads import SQLReads

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    from ._writes import AuditEntry

DB_NAME = "nbtrail.duckdb"
# Journal bytes one fold pass takes at most: keeps the exclusive lock short (~0.1 s).
FOLD_BUDGET = 1 << 20
# Free bytes a fold needs on the store's disk: the database grows by about the journal
# bytes folded (WAL and checkpoint), with room to spare for the writers' buffers.
FOLD_MIN_FREE = 4 * FOLD_BUDGET
# Seconds background folds let readers go first before they take their turn regardless; a
# reader then waits for one bounded pass at most.
FOLD_PATIENCE = 1.0
# Seconds one fold keeps the database open for pass after pass while no reader waits.
# Later passes start at 4 budgets; one that takes under half of FOLD_PASS_SECONDS makes
# the next 4 times larger (up to FOLD_MAX_PASS bytes), one that takes longer halves it:
# each pass costs ~30 ms besides its records, so an idle machine folds in a few large
# passes, while on a busy one passes stay short for the readers waiting between them. A
# pass needs 4 times its bytes free on disk.
FOLD_HOLD = 1.0
FOLD_PASS_SECONDS = 0.2
FOLD_MAX_PASS = 64 * FOLD_BUDGET
# Seconds a closing store waits for the lock to fold its own journal.
EXIT_FOLD_PATIENCE = 5.0
# Seconds a read without a copy to turn to waits for a database that another process has
# open for writing without the store's lock, before it says so.
LOCKED_PATIENCE = 2.0
# Journal bytes a read shows through the overlay rather than folding a pass first: metric
# frames are read as arrays, other records are parsed and copied (docs/store.md).
OVERLAY_LIMIT = 64 * FOLD_BUDGET
# Files stay in the storage format of DuckDB 1.5, so the stock duckdb CLI that package
# managers ship today opens a store written by a newer duckdb Python package.
_RW_CONFIG: dict[str, Any] = {"storage_compatibility_version": "v1.5.0"}
# The base a reader lays the journals over while no database exists yet: the schema,
# created in the reader's memory.
_EMPTY = "empty"



def _next_budget(budget: int | None, seconds: float, first: int | None,
                 free: int) -> int | None:
    """The bytes of the next fold pass, after one of ``budget`` bytes took ``seconds``.

    ``first`` is the budget of a fold's first pass (``None``: unbounded passes).
    """
    if budget is None or first is None:
        return None
    if seconds < FOLD_PASS_SECONDS / 2:
        budget = min(4 * budget, FOLD_MAX_PASS)
    elif seconds > FOLD_PASS_SECONDS:
        budget //= 2
    return max(4 * first, min(budget, free // 4))


class DuckDBStore(SQLReads):
    """The default, embedded store (see the module docstring for the layout)."""

    def __init__(self, home: str | os.PathLike[str], *, flush_interval: float = 0.2,
                 fold_interval: float = 1.0, read_only: bool = False,
                 artifacts: str | None = None) -> None:
        self.home = Path(home)
        # A read-only store (the dashboard's) never writes: no journal, no blob, no fold
        # and no migration; journals not folded yet are read through the overlay.
        self.read_only = read_only
        self.db_path = self.home / DB_NAME
        self.journal_dir = self.home / "journal"
        self.snapshot_dir = self.home / _snapshot.SNAPSHOTS
        self._blobs = BlobStore(self.home / "artifacts", artifacts)
        self.flush_interval = flush_interval
        self.fold_interval = fold_interval
        self._writer: JournalWriter | None = None
        self._writer_lock = threading.Lock()
        self._folder: threading.Thread | None = None
        self._stepped_aside: float | None = None  # since when folds let readers go first
        self._stop_folding = threading.Event()
        self._schema_ok = False
        self._reader: duckdb.DuckDBPyConnection | None = None
        self._reader_lock = threading.Lock()
        # Used under _reader_lock: the reader's connection, kept with its overlay and with
        # the published copy it has attached (or _EMPTY).
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._base: Path | str | None = None
        self._base_offsets: tuple[Path | str | None, dict[str, tuple[int, int]]] = (None, {})
        self._overlay = Overlay()
        self._tails = JournalTails()

    @property
    def location(self) -> str:
        """The store folder."""
        return str(self.home)

    def environment(self) -> dict[str, str]:
        """The folder as the child's store (an inherited team store URL cleared)."""
        return {"NBTRAIL_HOME": str(self.home.resolve()), "NBTRAIL_STORE": ""}

    def exists(self) -> bool:
        """Whether anything was ever written here."""
        return self.db_path.exists() or bool(journal_files(self.journal_dir))

    # -- writing ----------------------------------------------------------------------

    def writer(self) -> JournalWriter:
        """Return the journal writer of this process (created on first use)."""
        self._refuse_write()
        with self._writer_lock:
            if self._writer is None:
                self._make_home()
                self._writer = JournalWriter(self.journal_dir,
                                             flush_interval=self.flush_interval)
                self._start_folding()
            return self._writer

    def close(self) -> None:
        """Flush, close and fold this process's journal, and release the reader instance.

        The fold waits a little for the lock; a later read opens another reader instance.
        """
        with self._writer_lock:
            writer, self._writer = self._writer, None
            folder, self._folder = self._folder, None
        self._stop_folding.set()
        if folder is not None and folder is not threading.current_thread():
            folder.join()  # a fold pass is bounded; its connection must close before exit
        if writer is not None:
            writer.close()
            # Only what this process wrote: a forked child inherits a writer for every
            # store its parent used and must not fold them all on its way out. It waits
            # a little for the lock: a process that folds now may have read this journal
            # while it was still open, and would leave it for the next one to remove.
            if writer.unfolded:
                self.fold_all(wait=False, patience=EXIT_FOLD_PATIENCE)
        # Each instance keeps worker threads: a process that opens many stores in turn
        # (a server, a test suite) must not keep them all.
        with duckdb_section(), self._reader_lock:
            self._close_reader()
        self._blobs.close()

    def forget_after_fork(self) -> None:
        """Give a forked child its own journal and fold thread; runs keep their writer."""
        self._writer_lock = threading.Lock()
        self._blobs.forget_after_fork()
        if self._writer is not None:
            self._writer.after_fork()
            self._start_folding()

    def _start_folding(self) -> None:
        """Start the thread that folds this process's journal in the background.

        It is not the journal's flush thread: schema checks, migrations and folds wait on
        locks and on other processes, and a record must reach the disk meanwhile.
        """
        self._stop_folding = threading.Event()
        self._folder = threading.Thread(target=self._fold_loop, args=(self._stop_folding,),
                                        name=f"nbtrail-fold-{os.getpid()}", daemon=True)
        self._folder.start()
        _folding_stores.add(self)

    def _fold_loop(self, stop: threading.Event) -> None:
        try:
            # Inside the fork gate: a fork while this thread imports leaves the child
            # waiting forever for the module's import lock (seen with numpy.random).
            with duckdb_section():
                _load_fold_libraries()
        except Exception as exc:  # a fold reports it properly when it runs
            warnings.warn(f"nbtrail: could not load the store libraries: {exc}", stacklevel=1)
        failure: str | None = None
        while not stop.wait(max(self.fold_interval, self.flush_interval)):
            writer = self._writer
            if writer is None or not writer.unfolded:
                continue  # an idle writer leaves the database to other programs
            written = writer.written
            try:
                result = self.try_fold()
            except Exception as exc:  # keep folding alive; readers still see the journals
                if "shutting down" in str(exc) or not threading.main_thread().is_alive():
                    # The interpreter is exiting and DuckDB refuses to run Python code (a
                    # fold's statements then fail one after another): the journals keep
                    # everything for the next fold.
                    return
                if str(exc) != failure:  # one warning per failure, not one a second
                    warnings.warn(f"nbtrail: background fold failed: {exc}", stacklevel=1)
                failure = str(exc)
                continue
            failure = None
            if result is not None and not result.remaining:
                writer.mark_folded(written)

    def init(self) -> int:
        """Create the folder and its database, or migrate it; the version found before."""
        self._refuse_write()
        self._make_home()
        found = self._read_version() if self.db_path.exists() else 0
        self._ensure_schema()
        return found

    def check(self) -> list[Check]:
        """The folder, its database, free space, bad records and the artifact store."""
        checks = [Check("folder", os.access(self.home, os.W_OK) or not self.home.exists(),
                        f"{self.home} " + ("is writable" if os.access(self.home, os.W_OK)
                                           else "is not writable by this user: fix its "
                                           "permissions" if self.home.exists()
                                           else "does not exist yet: the first run makes it"))]
        if self.db_path.exists():
            try:
                found = self._read_version()
            except NbtrailError as exc:
                checks.append(Check("database", False, str(exc)))
            else:
                checks.append(_schema.version_check(found))
            checks.append(self._readers_check())
        else:
            checks.append(Check("database", True, "not created yet: the first fold makes it"))
        where = self.home if self.home.exists() else self.home.parent
        free = free_bytes(where) if where.exists() else FOLD_MIN_FREE
        checks.append(Check("disk", free >= FOLD_MIN_FREE, f"{free:,} bytes free" + (
            "" if free >= FOLD_MIN_FREE else f"; folds need {FOLD_MIN_FREE:,}: free space")))
        bad = len(list((self.home / QUARANTINE).glob("*.json")))
        checks.append(Check("records", bad == 0, "no bad records" if bad == 0 else (
            f"{bad} bad record(s) moved aside in {self.home / QUARANTINE}: read the reason "
            "in each, fix what wrote them, then delete them")))
        return [*checks, self._blobs.check()]

    def _readers_check(self) -> Check:
        """What readers attach: a published copy, or the database itself (slower)."""
        newest = _snapshot.newest(self.snapshot_dir)
        if newest is None:
            return Check("readers", True, (
                f"no published copy: readers read {self.db_path} itself and wait for fold "
                "passes; the next fold publishes one if the disk has room for it "
                f"({_snapshot.space_needed(self.db_path) + FOLD_MIN_FREE:,} bytes)"))
        age = time.time() - newest.stat().st_mtime
        return Check("readers", True, f"readers attach {newest.name}, published {age:.0f} s "
                     "ago, and wait for no fold")

    def backlog(self) -> Backlog:
        """Journal bytes not folded yet, blobs not uploaded yet, and the last fold."""
        offsets: dict[str, int] = {}
        last_sync = None
        if self.db_path.exists():
            with self._lock(fcntl.LOCK_SH), self._attached(self.db_path) as con:
                assert con is not None
                offsets = {name: offset for name, (offset, _) in folded_offsets(con).items()}
            last_sync = datetime.fromtimestamp(self.db_path.stat().st_mtime, UTC)
        journals, size = unfolded(self.journal_dir, offsets)
        return Backlog(journals, size, len(self._blobs.pending()), last_sync)

    def sync(self) -> None:
        """Flush this process's journal, fold what can be folded now, upload blobs.

        An artifact store that does not answer is warned about: the blobs wait here.
        """
        writer = self._writer
        if writer is not None:
            writer.flush()
        written = writer.written if writer is not None else 0
        self.fold_all()
        if writer is not None:
            writer.mark_folded(written)
        self._blobs.sync()

    def _make_home(self) -> None:
        if self.home.is_dir():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        # The store usually sits at a git root: keep it out of git and of run snapshots.
        with contextlib.suppress(FileExistsError), open(self.home / ".gitignore", "x") as f:
            f.write("# nbtrail's store: not for git\n*\n")

    @contextlib.contextmanager
    def audit_session(self, on_behalf_of: str | None = None) -> Iterator[AuditSession]:
        """Hold the store's audit lock (a file lock): one session at a time."""
        self._refuse_write()
        writer = self.writer()
        with self._lock(fcntl.LOCK_EX, "audit.lock"):
            yield _JournalAudit(self, writer, on_behalf_of)

    def put_blob(self, source: Path | bytes) -> tuple[str, int]:
        """Store bytes content-addressed; return ``(sha256, size)``."""
        self._refuse_write()
        self._make_home()
        return self._blobs.put(source)

    def blob_path(self, sha256: str) -> Path:
        """Path of a stored blob (fetched from the artifact store if only it has it)."""
        return self._blobs.path(sha256, str(self.home))

    def _refuse_write(self) -> None:
        if self.read_only:
            raise ConflictError(f"the store at {self.home} was opened read-only; nothing can "
                                "be logged through it")

    # -- locking, schema and folding --------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, mode: int, name: str = "lock") -> Iterator[bool]:
        self._make_home()
        with open_lock(self.home / name) as fd:
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                yield False
            else:
                yield True

    @contextlib.contextmanager
    def _read_write(self, path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """The database (or ``path``) opened read-write; the caller holds the exclusive lock."""
        import duckdb

        with duckdb_section():
            try:
                con = duckdb.connect(str(path or self.db_path), config=_RW_CONFIG)
            except duckdb.ConnectionException as exc:  # open in this process, other config
                raise StoreLockedError(_held_open(self.db_path, exc)) from None
            except duckdb.IOException as exc:
                raise _database_error(self.db_path, exc) from None
            try:
                yield con
            finally:
                con.close()

    def _ensure_schema(self) -> None:
        """Create or migrate the database; race-free under the exclusive lock."""
        if self._schema_ok:
            if self.db_path.exists():
                return
            self._schema_ok = False
            warnings.warn(
                f"nbtrail: the store database {self.db_path} was deleted; starting a new one "
                "from the journals still present (records of processes that already ended "
                "were only in the deleted file)", stacklevel=4)
        if self.db_path.exists() and self._read_version() == _schema.SCHEMA_VERSION:
            self._schema_ok = True
            return
        self._refuse_migration()
        from .. import __version__

        with self._lock(fcntl.LOCK_EX):
            # A new database is made under another name and published before it takes
            # its own: readers never find a database without a copy to read instead.
            fresh = self.db_path.with_name(f".tmp-{self.db_path.name}")
            target = self.db_path if self.db_path.exists() else fresh
            for leftover in (fresh, *_snapshot.wal_files(fresh)):
                leftover.unlink(missing_ok=True)  # of a process killed while making one
            with self._read_write(target) as con:
                con.execute("BEGIN TRANSACTION")
                _schema.migrate(con, __version__)
                con.execute("COMMIT")
            self._publish(target)  # readers of an older copy wait for this one
            if target == fresh:
                os.replace(fresh, self.db_path)
        self._schema_ok = True

    def _refuse_migration(self) -> None:
        if self.read_only:
            raise ConflictError(
                f"the store at {self.home} has no database of schema version "
                f"{_schema.SCHEMA_VERSION} yet, and a read-only reader does not create or "
                "migrate one; log or read once with nbtrail (e.g. `nbtrail runs ls`) first")

    def _read_version(self) -> int:
        with self._lock(fcntl.LOCK_SH), self._attached(self.db_path) as con:
            assert con is not None
            return _schema.current_version(con)

    def try_fold(self, *, wait: bool = False, max_bytes: int | None = FOLD_BUDGET,
                 hold: float = FOLD_HOLD, publish: bool = False) -> FoldResult | None:
        """Fold bounded passes of journals if the lock is free (or once it is, with wait).

        After the first pass it goes on for up to ``hold`` seconds while no reader waits.
        Then it publishes a copy for readers when one is due (or with ``publish``).

        Returns ``None`` when another process holds the lock; it is folding or reading,
        and always for a read-only store.
        """
        import duckdb

        if self.read_only:
            return None
        free = free_bytes(self.home)
        if free < FOLD_MIN_FREE:
            # A fold grows the database before the journals shrink: on a full disk it
            # would fail, and eat the room that writers need to land their buffers.
            if wait:
                raise StoreFullError(
                    f"cannot fold the journals of the store at {self.home}: {free:,} bytes "
                    f"free, a fold needs {FOLD_MIN_FREE:,}; free space there (every record "
                    "stays in the journals, and reads still see it)")
            return None
        try:
            self._ensure_schema()
        except StoreLockedError:
            if wait:
                raise
            return None  # another program has the file open; the overlay serves reads
        # flock is not fair: a stream of folders could starve a waiting reader, so
        # background folds step aside while any reader is waiting or reading, but not
        # for longer than FOLD_PATIENCE, or polling readers would starve folds.
        if not wait and not self._patience_over() and self._readers_waiting():
            if self._stepped_aside is None:
                self._stepped_aside = time.monotonic()
            return None
        mode = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        with self._lock(mode) as got:
            if not got:
                return None
            try:
                with self._read_write() as con:
                    # Opening the database and checkpointing it on close cost more than
                    # a pass: keep folding in this connection, in larger passes, while
                    # no reader waits (one checks between passes).
                    held = time.monotonic() + hold
                    started = time.monotonic()
                    result = fold(con, self.journal_dir, max_bytes)
                    budget = max_bytes
                    while (result.remaining and time.monotonic() < held
                           and not self._readers_waiting()
                           and (free := free_bytes(self.home)) >= 4 * FOLD_MIN_FREE):
                        budget = _next_budget(budget, time.monotonic() - started, max_bytes,
                                              free)
                        started = time.monotonic()
                        result.add(fold(con, self.journal_dir, budget))
                self._settle(result, publish=publish)
            except StoreLockedError:
                if wait:
                    raise
                return None  # another program has the file open; the overlay serves reads
            except (duckdb.Error, OSError) as exc:  # OSError: quarantine/ on a full disk
                raise _database_error(self.db_path, exc, "folding the journals into") from None
        self._stepped_aside = None
        return result

    def _settle(self, result: FoldResult, *, publish: bool) -> None:
        """After a fold, the database closed: publish it if due, remove ended journals.

        A journal is removed only once no reader needs it: the newest copy holds all of
        it, or there are no copies (readers then read the database itself).
        """
        published = False
        if publish or result.finished or _snapshot.due(self.snapshot_dir, self.db_path):
            published = self._publish()
        elif _snapshot.newest(self.snapshot_dir) is not None:
            # The copy lags by records the journals still hold: readers may go on with it.
            _snapshot.record_source(self.db_path, self.snapshot_dir)
        if result.finished and (published or _snapshot.newest(self.snapshot_dir) is None):
            remove_finished(result)

    def _publish(self, db_path: Path | None = None) -> bool:
        """Publish the database for readers (under the exclusive lock); whether it did.

        ``db_path`` is a new database, before it takes the database's name. Without room
        for a copy the copies are removed instead, which frees their space: readers then
        read the database itself, waiting for fold passes, until a later fold finds room.
        """
        db_path = db_path or self.db_path
        needed = _snapshot.space_needed(db_path) + FOLD_MIN_FREE
        try:
            if free_bytes(self.home) >= needed:
                _snapshot.publish(db_path, self.snapshot_dir)
                return True
        except OSError as exc:
            warnings.warn(f"nbtrail: could not publish a copy of {self.db_path} for readers "
                          f"({exc}); they read the database itself until a later fold can",
                          stacklevel=2)
        _snapshot.remove_all(self.snapshot_dir)
        return False

    def _readers_waiting(self) -> bool:
        """Whether a reader is reading or waiting for the lock."""
        with self._lock(fcntl.LOCK_EX | fcntl.LOCK_NB, "readers") as no_readers:
            return not no_readers

    def _patience_over(self) -> bool:
        """Whether background folds have stepped aside for readers long enough."""
        since = self._stepped_aside
        return since is not None and time.monotonic() - since > FOLD_PATIENCE

    def fold_all(self, *, wait: bool = True, patience: float = 0.0) -> None:
        """Fold until no journal has unfolded records, letting readers in between passes.

        With ``wait=False`` it stops once another process has held the lock for
        ``patience`` seconds: that process is folding, or will be when its read is done.
        """
        # Fold what is there now; a writer still logging must not keep this loop alive.
        targets = {}
        for path in journal_files(self.journal_dir):
            with contextlib.suppress(FileNotFoundError):
                targets[path.name] = path.stat().st_size
        deadline = time.monotonic() + patience
        while True:
            # No time limit on one connection: passes stop when a reader waits, and each
            # reopening of the database (with a checkpoint on close) cost ~80 ms.
            # An explicit sync publishes what it folded: a read after it sees it all.
            result = self.try_fold(wait=wait, hold=float("inf"), publish=wait)
            if result is None and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            if result is None or not result.remaining:
                return
            if all(result.offsets.get(name, size) >= size for name, size in targets.items()):
                return

    # -- reading ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _read_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._writer is not None:
            try:
                self._writer.flush()  # read your own writes, including the last 0.2 s
            except StoreFullError as exc:  # the read still answers, without those
                warnings.warn(f"nbtrail: {exc}", stacklevel=4)
        if not self.exists():
            raise StoreNotFoundError(
                f"no nbtrail store at {self.home}; log a run first (with nt.run(): ...), "
                "or point NBTRAIL_HOME at an existing store"
            )
        for attempt in range(2):
            with self._view() as (con, pending, identity):
                # A dead journal needs a fold to mark its runs killed and go; a long tail
                # is cheaper folded and published once than overlaid on every read.
                if attempt > 0 or not (pending.dead or pending.size > OVERLAY_LIMIT):
                    self._overlay.update(con, pending, identity)
                    yield con
                    return
            try:
                self.try_fold(hold=0.0, publish=True)  # one pass: not for everyone
            except NbtrailError as exc:  # the journals still answer the read
                warnings.warn(f"nbtrail: {exc}", stacklevel=4)

    @contextlib.contextmanager
    def _view(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, Pending, object]]:
        """The reader's connection over a folded base, the records past it, its identity.

        The base is the newest published copy, kept attached from one read to the next,
        or the schema alone while no database exists: neither waits for anything. Without
        copies (no room for one, or a store not folded since it had none) it is the
        database itself, under the shared lock, which waits for a fold pass in progress;
        while another process has it open for writing regardless, the copy instead, or
        without one the database once it is free (LOCKED_PATIENCE). The identity tells the
        overlay when the base changed.
        """
        # A change another program made to the database is only in the database.
        direct = (_snapshot.changed_by_others(self.db_path, self.snapshot_dir)
                  and self.db_path.exists() and self._folds_idle())
        locked_out = False  # the database is open for writing elsewhere: read the copy
        deadline: float | None = None  # for the database to be free, once found taken
        for attempt in itertools.count():
            # Copies are replaced about once a second at most: a third try is rare.
            read_database = not locked_out and (direct or attempt >= 3)
            base = None if read_database else self._base_now()
            try:
                if base is None:
                    with contextlib.ExitStack() as held:
                        held.enter_context(self._lock(fcntl.LOCK_SH, "readers"))
                        held.enter_context(self._lock(fcntl.LOCK_SH))
                        try:
                            con = held.enter_context(
                                self._attached(self.db_path, check_version=True))
                        except StoreLockedError:
                            # Open for writing without the lock, which readers share: by
                            # a program of the user's, or by an nbtrail process whose
                            # database outlived its fold as its interpreter exited (seen
                            # once under 16 writers). The copy answers meanwhile.
                            if deadline is None:
                                deadline = time.monotonic() + LOCKED_PATIENCE
                            elif time.monotonic() > deadline:
                                raise
                            con = None
                        if con is not None:
                            yield con, read_pending(con, self.journal_dir, self._tails,
                                                    since=self._overlay.ends()), \
                                _snapshot.identity(self.db_path)
                            return
                    locked_out = True
                    if self._base_now() is None:  # no copy: wait for the database
                        time.sleep(0.1)
                    continue
                with self._attached(base, check_version=True) as con:
                    direct = con is None and isinstance(base, Path) and base.exists()
                    if direct and locked_out:  # a damaged copy: wait for the database
                        locked_out = False
                        time.sleep(0.1)
                    if con is not None:
                        if self._base_offsets[0] != base:  # a copy's never change
                            self._base_offsets = (base, folded_offsets(con))
                        pending = read_pending(con, self.journal_dir, self._tails,
                                               self._base_offsets[1], self._overlay.ends())
                        # A copy published meanwhile may hold journals removed since they
                        # were listed: read again, over it.
                        if self._base_now() == base:
                            yield con, pending, base
                            return
            except _Outdated:  # migrating publishes a copy of the new version
                self._schema_ok = False
                self._ensure_schema()

    def _folds_idle(self) -> bool:
        """Whether no fold (or migration) holds the exclusive lock now."""
        with self._lock(fcntl.LOCK_SH | fcntl.LOCK_NB) as got:
            return got

    def _base_now(self) -> Path | str | None:
        """The newest copy; _EMPTY while there is no database; None: the database."""
        newest = _snapshot.newest(self.snapshot_dir)
        if newest is None and not self.db_path.exists():
            return _EMPTY
        return newest

    def _close_reader(self) -> None:
        """Close the reader instance, if open (under ``_reader_lock``)."""
        reader, self._reader, self._cursor, self._base = self._reader, None, None, None
        self._overlay.forget()
        if reader is not None:
            reader.close()

    @contextlib.contextmanager
    def _attached(self, base: Path | str, *, check_version: bool = False
                  ) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """The connection of this process's reader instance, with ``base`` attached.

        ``base`` is a published copy, kept attached (with the overlay) until a read finds
        a newer one; the database file, attached for this read only (the caller holds the
        shared lock, and folds need the file back); or _EMPTY. Attaching to a long-lived
        in-memory instance costs a millisecond where opening a new database instance
        costs ~13. Yields ``None`` for a copy that is damaged or gone.
        """
        with duckdb_section(), self._reader_lock:
            con = self._connection()
            done = False
            try:
                if self._base != base:
                    self._base = None
                    # A read cut short before its DETACH leaves the name taken, and every
                    # later read and fold of the process failed (seen in an exiting
                    # writer); no other cursor uses it while this one holds the lock.
                    con.execute("USE memory")
                    con.execute("DETACH DATABASE IF EXISTS nbtrail")
                    if not self._attach(con, base, check_version):
                        done = True
                        yield None
                        return
                    self._base = base
                yield con
                done = True
            finally:
                if base == self.db_path or not done:
                    self._base = None
                    with contextlib.suppress(Exception):
                        con.execute("USE memory")
                        con.execute("DETACH DATABASE IF EXISTS nbtrail")  # DuckDB's file lock
                if not done:  # what the overlay holds is unknown: start the next read anew
                    self._cursor = None
                    self._overlay.forget()
                    con.close()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        """The reader's connection (under ``_reader_lock``), created on first use."""
        import duckdb

        if self._reader is None:
            reader = duckdb.connect()
            # Whoever wrote the query, a read opens no file but the database, its copies
            # and the write-ahead logs DuckDB looks for beside them (a writer killed during
            # a checkpoint leaves one to recover from), and cannot lift that limit.
            reader.execute("SET allowed_paths = ?", [[
                str(path) for path in (self.db_path, *_snapshot.wal_files(self.db_path))]])
            reader.execute("SET allowed_directories = ?", [[f"{self.snapshot_dir}{os.sep}"]])
            reader.execute("SET enable_external_access = false")
            reader.execute("SET lock_configuration = true")
            self._reader = reader
            _stores_with_readers.add(self)
        if self._cursor is None:
            self._cursor = self._reader.cursor()
        return self._cursor

    def _attach(self, con: duckdb.DuckDBPyConnection, base: Path | str,
                check_version: bool) -> bool:
        """Attach ``base`` as ``nbtrail`` and use it; False for a copy damaged or gone."""
        import duckdb

        if base == _EMPTY:
            from .. import __version__

            con.execute("ATTACH ':memory:' AS nbtrail")
            con.execute("USE nbtrail")
            _schema.migrate(con, __version__)
            return True
        assert isinstance(base, Path)
        path = str(base).replace("'", "''")
        try:
            con.execute(f"ATTACH '{path}' AS nbtrail (READ_ONLY)")
        except duckdb.Error as exc:
            if base == self.db_path:
                raise _database_error(self.db_path, exc) from None
            if base.exists():
                warnings.warn(f"nbtrail: skipped the damaged copy {base} of the store "
                              f"database ({_first_line(exc)}); reading the database itself "
                              "until the next fold publishes another", stacklevel=6)
            return False
        con.execute("USE nbtrail")
        if check_version:
            try:  # one statement: this runs whenever a read attaches a new copy
                found = int(con.execute("SELECT max(version) FROM schema_info")
                            .fetchall()[0][0] or 0)
            except duckdb.CatalogException:  # a database nbtrail never migrated
                found = 0
            if found > _schema.SCHEMA_VERSION:
                raise _schema.newer_error(found)
            if found < _schema.SCHEMA_VERSION:
                self._refuse_migration()
                raise _Outdated
        return True

    def sql(self, query: str, params: list[Any] | None = None) -> pl.DataFrame:
        """Run read-only SQL over the store's tables (see docs/store.md)."""
        import duckdb
        import polars as pl

        with self._read_connection() as con:
            try:
                check_read_only(con, query)
            except duckdb.ParserException as exc:
                raise InvalidInputError(f"invalid SQL: {_first_line(exc)}") from None
            try:
                return con.sql(query, params=params).pl()
            except (duckdb.ParserException, duckdb.BinderException,
                    duckdb.CatalogException) as exc:
                raise InvalidInputError(f"invalid SQL: {_first_line(exc)}") from None
            except (duckdb.InvalidInputException, duckdb.PermissionException) as exc:
                raise InvalidInputError(
                    f"SQL over the store is read-only and confined to it: {_first_line(exc)}"
                ) from None
            except duckdb.Error as exc:  # found while executing: a failed cast, an overflow
                raise InvalidInputError(f"the query failed: {_first_line(exc)}") from None
            except pl.exceptions.PolarsError as exc:
                raise InvalidInputError(
                    f"the result could not be converted ({_first_line(exc)}); "
                    "cast that column to VARCHAR in the query"
                ) from None

class _Outdated(Exception):
    """The base a read attached has an older schema: migrate, then read again."""


class _JournalAudit(AuditSession):
    """An audit session of the embedded store: entries go to this process's journal.

    Reads see every journal, folded or not, so the head read under the lock is the
    trail's last entry; appends are written before the lock is released.
    """

    def __init__(self, store: DuckDBStore, writer: JournalWriter,
                 on_behalf_of: str | None) -> None:
        self.store, self.writer = store, writer
        self.actor, self.actor_source = local_identity(on_behalf_of)

    def entries(self, model: str | None = None) -> pl.DataFrame:
        # A store nothing was written to yet has an empty trail, not no trail.
        return self.store.audit_entries(model) if self.store.exists() else no_entries()

    def append(self, drafts: Sequence[Draft]) -> list[AuditEntry]:
        if not drafts:
            return []
        last = (self.store._frame("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                if self.store.exists() else None)
        entries = chain(last.row(0) if last is not None and len(last) else None, drafts,
                        actor=self.actor, actor_source=self.actor_source)
        self.writer.write_now([e.to_journal() for e in entries])
        return entries


# A DuckDB instance's worker threads do not survive fork, and a child that touches DuckDB
# while an inherited instance lingers can crash: readers are closed before any fork and
# reopened on the next read.
_stores_with_readers: weakref.WeakSet[DuckDBStore] = weakref.WeakSet()


# Stores whose fold thread may run: stopped at exit, since DuckDB refuses to run a fold
# while the interpreter shuts down (the journals keep everything for the next fold).
_folding_stores: weakref.WeakSet[DuckDBStore] = weakref.WeakSet()


@atexit.register
def _stop_background_folds() -> None:
    for store in list(_folding_stores):
        store._stop_folding.set()
        folder = store._folder
        if folder is not None and folder is not threading.current_thread():
            folder.join(timeout=5)  # a pass in progress is bounded


@on_fork
def _close_readers() -> None:
    for store in list(_stores_with_readers):  # no thread is using them: see _fork
        store._close_reader()


def _load_fold_libraries() -> None:
    """Import what folding needs, off the user's thread.

    Nothing can be imported once the interpreter is shutting down, which is when the
    last fold of a process runs.
    """
    import duckdb  # noqa: F401
    import numpy  # noqa: F401


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _held_open(path: Path, exc: BaseException) -> str:
    return (f"the store database {path} is held open by another program "
            f"({_first_line(exc)}); close it, or open it read-only (duckdb -readonly {path})")


def _database_error(path: Path, exc: BaseException, doing: str = "opening") -> NbtrailError:
    """One clear error for a failure of DuckDB on the store's file, with the fix."""
    detail = _first_line(exc)
    lowered = detail.lower()
    if "no space left" in lowered or "disk is full" in lowered:
        return StoreFullError(
            f"{doing} the store database {path} failed: the disk is full ({detail}); free "
            "space there (every record stays in the journals, and reads still see it)")
    if "not a valid duckdb database" in lowered or "corrupt" in lowered \
            or "checksum" in lowered:
        return StoreDatabaseError(
            f"the store database {path} is damaged ({detail}); move it aside "
            f"(mv {path} {path}.damaged): nbtrail then starts a new one and folds into it "
            "the journals still present")
    if "lock" in lowered:
        return StoreLockedError(_held_open(path, exc))
    return StoreDatabaseError(
        f"{doing} the store database {path} failed ({detail}); every record stays in the "
        "journals and reads still see it; if this persists, move the file aside "
        f"(mv {path} {path}.damaged) and nbtrail starts a new one from the journals")
