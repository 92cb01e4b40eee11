"""Readers see records still in journals, without folding them."""

import shutil

import duckdb
import pytest

from nbtrail import Tracker
from nbtrail.store._duckdb import DuckDBStore


def _folded_runs(home):
    con = duckdb.connect(str(home / "nbtrail.duckdb"), read_only=True)
    try:
        return con.sql("select run_id, status from runs").fetchall()
    finally:
        con.close()


def test_reader_sees_unfolded_records_and_leaves_the_database_alone(tmp_path):
    home = tmp_path / "store"
    writer_store = DuckDBStore(home, fold_interval=3600)
    tracker = Tracker(writer_store)
    first = tracker.start_run(name="folded")
    first.log_metric("loss", 0.5, step=5)
    first.log_metric("acc", 0.9, step=7)
    writer_store.sync()  # everything so far is in the database

    first.log_metric("loss", 0.4, step=6)  # newer step: wins
    first.log_metric("acc", 0.1, step=2)  # older step: the folded point stays latest
    first.log_params({"C": 1.0})
    first.end()
    second = tracker.start_run(name="journal only")
    second.log_metric("loss", float("nan"))
    writer_store.writer().flush()

    reader = DuckDBStore(home)
    assert _folded_runs(home) == [(first.run_id, "running")]
    got = reader.get_run(first.run_id)
    assert got.status == "finished"
    assert got.metrics == {"loss": 0.4, "acc": 0.9}
    assert got.params == {"C": 1.0}
    assert reader.metric_history(first.run_id, "loss")["step"].to_list() == [5, 6]
    frame = reader.runs(order_by="name")
    assert frame["name"].to_list() == ["folded", "journal only"]
    assert frame["status"].to_list() == ["finished", "running"]
    assert reader.sql("select count(*) as n from metrics")["n"][0] == 5
    # The reads did not fold: the database still holds the old state.
    assert _folded_runs(home) == [(first.run_id, "running")]

    second.end()
    writer_store.close()
    assert sorted(_folded_runs(home)) == sorted(
        [(first.run_id, "finished"), (second.run_id, "finished")])


def test_a_process_reads_its_own_latest_writes(home):
    import nbtrail as nt

    with nt.run() as run:
        run.log_metric("loss", 0.5)
        assert nt.get_run(run.run_id).metrics == {"loss": 0.5}  # no flush, no sync


def test_nan_metrics_do_not_match_filters_or_sort_first(home):
    import nbtrail as nt

    for name, value in [("nan", float("nan")), ("high", 0.9), ("low", 0.1)]:
        with nt.run(name=name) as run:
            run.log_metric("acc", value)
    assert nt.runs(where="metrics.acc > 0.5")["name"].to_list() == ["high"]
    assert nt.runs(order_by="-metrics.acc")["name"].to_list() == ["high", "low", "nan"]


def test_a_read_only_duckdb_session_elsewhere_does_not_break_reads(home):
    import nbtrail as nt

    with nt.run(name="before"):
        pass
    nt.sync()
    session = duckdb.connect(str(home / "nbtrail.duckdb"), read_only=True)
    try:
        with nt.run(name="during") as run:
            run.log_metric("m", 1.0)
        assert sorted(nt.runs()["name"].to_list()) == ["before", "during"]
    finally:
        session.close()


def test_the_store_folder_is_ignored_by_git(home):
    import nbtrail as nt

    with nt.run():
        pass
    assert (home / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_polling_reader_sees_each_record_once_as_journals_grow_fold_and_shrink(tmp_path):
    import os

    home = tmp_path / "store"
    writer_store = DuckDBStore(home, fold_interval=3600)
    run = Tracker(writer_store).start_run(name="r")
    writer_store.sync()  # creates the database, which a read-only reader does not
    reader = DuckDBStore(home, read_only=True)
    expected = []

    def check():
        history = reader.metric_history(run.run_id, "m")
        assert history["step"].to_list() == expected
        assert reader.get_run(run.run_id).metrics == {"m": float(expected[-1])}

    for step in range(6):
        run.log_metric("m", float(step), step=step)
        expected.append(step)
        writer_store.writer().flush()
        check()  # the tail grew: only its new frame is read
        if step == 3:
            writer_store.sync()  # folded: the kept tail must not show it a second time
            check()
    journal = writer_store.writer().path
    writer_store.sync()
    os.truncate(journal, 10)  # below the folded offset: the kept tail is stale
    run.log_metric("m", 6.0, step=6)
    expected.append(6)
    writer_store.writer().flush()
    with pytest.warns(UserWarning, match="truncated|unreadable bytes"):
        check()
    run.end()
    with pytest.warns(UserWarning, match="truncated|unreadable bytes"):
        writer_store.close()
    check()


def test_a_read_cut_short_before_it_detached_the_database_does_not_break_later_reads(tmp_path):
    store = DuckDBStore(tmp_path / "store")
    with Tracker(store).start_run(name="r"):
        pass
    store.sync()
    shutil.rmtree(store.snapshot_dir)  # no copy: reads attach the database itself
    assert store.runs()["name"].to_list() == ["r"]
    path = store.db_path
    store._reader.execute(f"ATTACH '{path}' AS nbtrail (READ_ONLY)")  # left attached
    assert store.runs()["name"].to_list() == ["r"]
    store.sync()  # folding needs the file: no read holds it
    assert store.runs()["name"].to_list() == ["r"]  # over the copy the sync published
    store.close()


def _answers_like_a_new_reader(kept, *writer_stores):
    """Flush the writers; ``kept`` must answer as a reader opened now does."""
    for store in writer_stores:
        store.writer().flush()
    fresh = DuckDBStore(kept.home, read_only=True)
    for read in (lambda s: s.runs(order_by="name").drop("duration"),  # a clock's
                 lambda s: s.sql("select * from metrics order by run_id, key, step, value"),
                 lambda s: s.sql("select * from latest_metrics order by run_id, key"),
                 lambda s: s.sql("select * from params order by run_id, key"),
                 lambda s: s.sql("select run_id, status from runs order by run_id")):
        assert read(kept).equals(read(fresh))
    fresh.close()


def test_a_reader_kept_between_reads_sees_what_a_new_reader_sees(tmp_path):
    """The overlay is kept and only brought up to date between folds: at every step it
    must answer like a reader that builds it from nothing."""
    home = tmp_path / "store"
    first_store, second_store = (DuckDBStore(home, fold_interval=3600) for _ in range(2))
    first, second = Tracker(first_store), Tracker(second_store)
    kept = DuckDBStore(home, read_only=True)
    a = first.start_run(name="a")
    first_store.sync()  # the database exists; from here on the journals hold the rest

    def same():
        _answers_like_a_new_reader(kept, first_store, second_store)

    same()
    a.log_metric("loss", 0.5, step=5)
    same()
    a.log_metric("loss", 0.9, step=2)  # an older step: 0.5 stays latest
    a.log_params({"C": 1.0})
    same()
    b = second.start_run(name="b")  # a second journal appears between two reads
    b.log_metric("loss", 0.3, step=1)
    same()
    a.log_metric("loss", 0.4, step=6)
    a.end()  # the run row was in an earlier read's overlay
    same()
    second_store.sync()  # a fold: the overlay is built anew
    b.log_metric("loss", 0.2, step=2)
    same()
    assert kept.metric_history(b.run_id, "loss")["value"].to_list() == [0.3, 0.2]
    b.end()
    same()
    first_store.close()
    second_store.close()
    kept.close()


@pytest.mark.parametrize("kept_over_copies", [True, False], ids=["kept", "rebuilt"])
def test_an_overlay_kept_over_newer_copies_sees_each_record_once(tmp_path, monkeypatch,
                                                                 kept_over_copies):
    """A fold publishes a copy between two reads, having read the journal past where the
    reader stopped, or not as far: the overlay lies over the new copy without a point
    twice or a stale row. Built anew (its rows over the limit), it answers the same."""
    from nbtrail.store import _overlay

    if not kept_over_copies:
        monkeypatch.setattr(_overlay, "HELD_LIMIT", -1)
    home = tmp_path / "store"
    writer_store = DuckDBStore(home, fold_interval=3600)
    tracker = Tracker(writer_store)
    kept = DuckDBStore(home, read_only=True)
    a = tracker.start_run(name="a")
    writer_store.sync()
    a.log_metric("loss", 0.9, step=0)
    a.log_params({"C": 1.0})
    _answers_like_a_new_reader(kept, writer_store)
    overlay = kept._overlay._applied
    assert overlay is not None

    a.log_metric("loss", 0.8, step=1)
    b = tracker.start_run(name="b")
    b.log_metric("loss", 0.7, step=0)
    writer_store.sync()  # the copy holds more than the reader has read
    _answers_like_a_new_reader(kept, writer_store)
    a.log_metric("loss", 0.6, step=2)
    _answers_like_a_new_reader(kept, writer_store)
    writer_store.sync()
    a.log_metric("loss", 0.5, step=3)  # the reader is ahead of the copy
    b.end()  # b's row is in the overlay as running, and in the copy
    _answers_like_a_new_reader(kept, writer_store)
    writer_store.sync()
    a.end()
    _answers_like_a_new_reader(kept, writer_store)
    assert (kept._overlay._applied is overlay) == kept_over_copies
    assert kept.metric_history(a.run_id, "loss")["value"].to_list() == [0.9, 0.8, 0.6, 0.5]
    assert kept.sql("select status from runs order by name")["status"].to_list() == [
        "finished", "finished"]
    writer_store.close()
    kept.close()
