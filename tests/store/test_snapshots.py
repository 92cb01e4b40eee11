"""Readers attach published copies of the database: they never wait for a fold, and they
never lose sight of a record, whatever folds, publications and removals do meanwhile."""

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings

import duckdb
import pytest

from nbtrail.errors import StoreLockedError
from nbtrail.store import _snapshot
from nbtrail.store._duckdb import FOLD_MIN_FREE, LOCKED_PATIENCE, DuckDBStore
from nbtrail.store._journal import JOURNAL_SUFFIX
from nbtrail.tracking._tracker import Tracker

from .test_concurrency import _no_orphans, _spawn  # noqa: F401 (the fixture)
from .test_durability import _fill, small_disk  # noqa: F401 (the fixture)

# Holds the database open for writing until its standard input closes: with the store's
# exclusive lock, as a fold pass in progress does ("lock"), or without it ("no-lock"), as
# an nbtrail process whose database outlived its fold on its way out did once.
DATABASE_HOLDER = """
import fcntl, sys, duckdb
if sys.argv[2] == "lock":
    lock = open(sys.argv[1] + "/lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
con = duckdb.connect(sys.argv[1] + "/nbtrail.duckdb",
                     config={"storage_compatibility_version": "v1.5.0"})
print("holding", flush=True)
sys.stdin.readline()
"""

# Logs three runs of 200 points and exits (its exit folds, publishes and removes its
# journal).
SHORT_LIVED_WRITER = """
import sys, nbtrail as nt
nt.config.set(home=sys.argv[1])
for r in range(3):
    with nt.run(name=f"{sys.argv[2]}-{r}") as run:
        for step in range(200):
            run.log_metric("m", float(step), step=step)
"""


# Logs a run that stays open, flushes, says so and waits to be killed.
KILLED_WRITER = """
import sys, time, nbtrail as nt
nt.config.set(home=sys.argv[1])
run = nt.run(name="killed")
run.log_metric("m", 1.0)
nt.sync()
print("flushed", flush=True)
time.sleep(600)
"""


def _names(store):
    return sorted(store.runs()["name"].to_list())


@contextlib.contextmanager
def _database_held(home, lock):
    """The database held open for writing by another process (DATABASE_HOLDER)."""
    holder = subprocess.Popen([sys.executable, "-c", DATABASE_HOLDER, str(home),
                               "lock" if lock else "no-lock"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def _synced(home, *names, **options):
    """A store at ``home`` with a finished run of each name, folded and published."""
    store = DuckDBStore(home, **options)
    for name in names:
        with Tracker(store).start_run(name=name):
            pass
    store.sync()
    return store


def test_a_read_does_not_wait_for_a_fold_in_progress(tmp_path):
    home = tmp_path / "store"
    store = _synced(home, "folded", fold_interval=1e9)
    tracker = Tracker(store)
    reader = DuckDBStore(home, read_only=True)
    with _database_held(home, lock=True) as holder:
        with tracker.start_run(name="journal") as run:
            run.log_metric("m", 1.0)
        store.writer().flush()
        answers = []
        thread = threading.Thread(target=lambda: answers.append(_names(reader)), daemon=True)
        thread.start()
        thread.join(timeout=60)
        # Answered while the fold still holds the lock and the file, with both runs.
        assert answers == [["folded", "journal"]], "the read waited for the fold"
        assert holder.poll() is None
    reader.close()
    store.close()


def test_a_database_open_for_writing_without_the_lock_fails_no_read(tmp_path):
    """Reads turn to the copy, a read's fold steps aside; without a copy a read waits a
    little for the database, then names the program holding it."""
    home = tmp_path / "store"
    _synced(home, "folded").close()
    killed = _spawn(KILLED_WRITER, home)  # its journal makes the next read fold first
    assert killed.stdout.readline().strip() == "flushed"
    killed.kill()
    killed.wait()
    with _database_held(home, lock=False) as holder:
        (home / "snapshots" / "source").unlink()  # reads go to the database, if they can
        reader = DuckDBStore(home)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            runs = reader.runs(order_by="name")
        assert runs["name"].to_list() == ["folded", "killed"]
        assert runs["status"].to_list() == ["finished", "killed"]
        reader.close()
        shutil.rmtree(home / "snapshots")  # no copy to turn to
        started = time.monotonic()
        with pytest.raises(StoreLockedError, match=f"{home / 'nbtrail.duckdb'} is held open "
                           rf"by another program .*PID {holder.pid}\)"):
            _names(DuckDBStore(home, read_only=True))
        assert time.monotonic() - started >= LOCKED_PATIENCE
        threading.Timer(0.5, holder.stdin.close).start()
        assert _names(DuckDBStore(home, read_only=True)) == ["folded", "killed"]  # it waited


@pytest.mark.slow
def test_a_reader_never_loses_sight_of_what_writers_that_ended_logged(tmp_path):
    """Writers come and go, and each exit folds, publishes a copy and removes journals
    while a reader polls: no run, and no point, it has seen may vanish from a later read,
    and none is seen twice."""
    home = tmp_path / "store"
    n_writers = 12
    reader = DuckDBStore(home, read_only=True)
    seen: dict[str, int] = {}
    bases = set()

    def start_writers():
        running = []
        for i in range(n_writers):
            running.append(_spawn(SHORT_LIVED_WRITER, home, f"w{i}"))
            if len(running) == 3:
                assert running.pop(0).wait(timeout=120) == 0
        for proc in running:
            assert proc.wait(timeout=120) == 0

    starter = threading.Thread(target=start_writers)
    starter.start()
    while starter.is_alive() or not seen:
        if not reader.exists():
            time.sleep(0.01)
            continue
        counts = dict(reader.sql(
            "SELECT r.name, count(m.step) AS n FROM runs r LEFT JOIN metrics m USING (run_id) "
            "WHERE r.status = 'finished' GROUP BY r.name").iter_rows())
        bases.add(reader._base)
        for name, n in seen.items():
            assert counts.get(name, -1) >= n, f"{name} had {n} points, now {counts.get(name)}"
        # An overlay kept over a newer copy must not count the points the copy took twice.
        assert max(counts.values(), default=0) <= 200, counts
        seen.update(counts)
    starter.join()
    assert len(bases) > 2  # the reader went from copy to copy
    DuckDBStore(home).fold_all()
    assert not list((home / "journal").glob(f"*{JOURNAL_SUFFIX}"))
    # The newest copy holds everything, so the journals could go.
    with duckdb.connect(str(_snapshot.newest(home / "snapshots")), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs WHERE status = 'finished'").fetchone() \
            == (3 * n_writers,)
        assert con.execute("SELECT count(*) FROM metrics").fetchone() == (600 * n_writers,)
    assert reader.sql("SELECT count(*) AS n FROM metrics")["n"][0] == 600 * n_writers
    reader.close()


def test_a_journal_of_a_killed_writer_is_removed_once_a_copy_holds_it(tmp_path):
    home = tmp_path / "store"
    first = _synced(home, "first", fold_interval=1e9)
    killed = _spawn(KILLED_WRITER, home)
    assert killed.stdout.readline().strip() == "flushed"
    killed.kill()
    killed.wait()
    (journal,) = [p for p in (home / "journal").glob(f"*{JOURNAL_SUFFIX}")
                  if p != first.writer().path]
    result = first.try_fold(wait=True)
    assert result is not None and result.killed_runs == 1
    assert not journal.exists()
    # Removed after the copy that holds its records was published.
    with duckdb.connect(str(_snapshot.newest(first.snapshot_dir)), read_only=True) as con:
        assert sorted(con.execute("SELECT name, status FROM runs").fetchall()) == [
            ("first", "finished"), ("killed", "killed")]
    first.close()


def test_a_damaged_copy_is_skipped_with_a_warning_until_the_next_one(tmp_path):
    home = tmp_path / "store"
    store = _synced(home, "a")
    damaged = _snapshot.newest(store.snapshot_dir)
    damaged.write_bytes(os.urandom(1 << 16))
    reader = DuckDBStore(home, read_only=True)
    with pytest.warns(UserWarning, match=f"skipped the damaged copy {damaged}"):
        assert _names(reader) == ["a"]  # from the database itself
    _synced(home, "b").close()
    assert _snapshot.newest(store.snapshot_dir) != damaged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _names(reader) == ["a", "b"]
    assert reader._base == _snapshot.newest(store.snapshot_dir)
    reader.close()
    store.close()


def test_a_change_another_program_made_to_the_database_is_read_at_once(tmp_path):
    home = tmp_path / "store"
    _synced(home, "before").close()
    reader = DuckDBStore(home, read_only=True)
    assert _names(reader) == ["before"]
    with duckdb.connect(str(home / "nbtrail.duckdb")) as con:
        con.execute("UPDATE runs SET name = 'edited'")
    assert _names(reader) == ["edited"]
    reader.close()


def test_a_store_without_copies_is_read_through_its_database_until_a_fold(tmp_path):
    home = tmp_path / "store"
    _synced(home, "a").close()
    shutil.rmtree(home / "snapshots")  # as an older nbtrail left it
    reader = DuckDBStore(home, read_only=True)
    assert _names(reader) == ["a"]
    assert not (home / "snapshots").exists()  # a read-only reader writes nothing
    readers = {check.name: check for check in reader.check()}["readers"]
    assert readers.ok and "no published copy: readers read" in readers.detail
    writer = _synced(home, "b")
    assert _snapshot.newest(home / "snapshots") is not None
    assert _names(reader) == ["a", "b"]
    newest = _snapshot.newest(home / "snapshots")
    assert reader._base == newest
    readers = {check.name: check for check in reader.check()}["readers"]
    assert f"readers attach {newest.name}, published" in readers.detail
    reader.close()
    writer.close()


def test_without_room_for_a_copy_reads_go_through_the_database(small_disk):  # noqa: F811
    home = small_disk / "store"
    store = _synced(home, "roomy", fold_interval=1e9)
    tracker = Tracker(store)
    assert _snapshot.newest(store.snapshot_dir) is not None
    # Room for a fold, not for a copy of the database besides it.
    ballast = _fill(small_disk, leave=FOLD_MIN_FREE + (64 << 10))
    with tracker.start_run(name="cramped"):
        pass
    store.sync()
    assert not store.snapshot_dir.exists()  # removed: their room is the writers'
    reader = DuckDBStore(home, read_only=True)
    assert _names(reader) == ["cramped", "roomy"]
    assert reader._base is None  # the database itself, attached for one read at a time
    os.unlink(ballast)
    with tracker.start_run(name="again"):
        pass
    store.sync()
    assert _snapshot.newest(store.snapshot_dir) is not None
    assert _names(reader) == ["again", "cramped", "roomy"]
    reader.close()
    store.close()


def test_a_new_database_is_published_before_it_takes_its_name(tmp_path):
    home = tmp_path / "store"
    home.mkdir()
    (home / ".tmp-nbtrail.duckdb").write_bytes(os.urandom(4096))  # a creator killed midway
    store = DuckDBStore(home)
    assert store.init() == 0
    assert _snapshot.newest(store.snapshot_dir) is not None
    assert not _snapshot.changed_by_others(store.db_path, store.snapshot_dir)
    assert not list(home.glob(".tmp-*"))
    store.close()
