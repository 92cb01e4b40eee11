"""The store's durability promises under faults: kills, torn and bad journals, a full disk."""

import json
import os
import random
import signal
import time
import warnings

import pytest

from nbtrail.store._duckdb import DuckDBStore

from .test_concurrency import _no_orphans, _spawn  # noqa: F401 (the fixture)

# Logs one metric point every couple of milliseconds and, after each, appends what it
# logged and when to its own ground-truth file, fsync'd: the truth survives the kill.
TRUTHFUL_WRITER = """
import os, sys, time, nbtrail as nt
nt.config.set(home=sys.argv[1])
truth = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
run = nt.run(name=sys.argv[3])
os.write(truth, f"run {run.run_id} {time.time()}\\n".encode())
os.fsync(truth)
step = 0
while True:
    run.log_metric("m", float(step), step=step)
    os.write(truth, f"{step} {time.time()}\\n".encode())
    os.fsync(truth)
    step += 1
    time.sleep(0.002)
"""


def _truth(path):
    """The run id, when it was started, and (step, time) of each point logged."""
    lines = path.read_text().splitlines() if path.exists() else []
    if not lines:
        return None, None, []
    _, run_id, started = lines[0].split()
    points = [line.split() for line in lines[1:]]
    return run_id, float(started), [(int(p[0]), float(p[1])) for p in points if len(p) == 2]


@pytest.mark.slow
def test_sigkill_of_sixteen_writers_on_a_cold_store_loses_nothing_older_than_a_second(
        tmp_path):
    home = tmp_path / "store"  # cold: schema creation, first folds and writes all race
    truths = [tmp_path / f"truth-{i}" for i in range(16)]
    procs = [_spawn(TRUTHFUL_WRITER, home, truth, f"w{i}") for i, truth in enumerate(truths)]
    deadline = time.time() + 120
    while not all(_truth(t)[0] for t in truths):
        assert time.time() < deadline, "the writers did not start"
        assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs
                                                      if p.poll() is not None]
        time.sleep(0.05)
    time.sleep(random.uniform(1.0, 3.0))
    kill_time = time.time()
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
    for proc in procs:
        proc.communicate(timeout=30)

    store = DuckDBStore(home)
    folded = dict(store.sql("select run_id, count(*) from metrics group by 1").rows())
    names = dict(store.sql("select run_id, name from runs").rows())
    missing = {}
    for i, truth in enumerate(truths):
        run_id, started, points = _truth(truth)
        old = [step for step, stamp in points if stamp <= kill_time - 1.0]
        if started <= kill_time - 1.0:
            assert names.get(run_id) == f"w{i}", f"writer {i} lost its run"
        if old and folded.get(run_id, 0) <= max(old):
            missing[i] = max(old) + 1 - folded.get(run_id, 0)
    assert not missing, f"points logged >= 1 s before the kill are missing: {missing}"
    store.close()


def _run_row(run_id, **extra):
    return {"t": "runs", "run_id": run_id, "name": run_id, "experiment": "e",
            "status": "running", "start_time": time.time(), **extra}


def _log(store, *records):
    writer = store.writer()
    for record in records:
        writer.append(record)
    writer.flush()


def _messages(caught):
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("garbage", [b"\x00" * 7, b'{"t":"runs","run_id":"x"', b"\xffNJ\x02junk"])
def test_garbage_in_a_live_journal_does_not_swallow_the_next_record(tmp_path, garbage):
    store = DuckDBStore(tmp_path / "store")
    _log(store, _run_row("before"))
    journal = store.writer().path
    torn_at = journal.stat().st_size
    with open(journal, "ab") as f:
        f.write(garbage)
    _log(store, _run_row("after"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sorted(store.sql("select run_id from runs")["run_id"]) == ["after", "before"]
        store.sync()  # folded too, not only seen through the overlay
    assert f"unreadable bytes at offset {torn_at} in journal {journal}" in "".join(
        _messages(caught))
    assert sorted(store.sql("select run_id from runs")["run_id"]) == ["after", "before"]
    store.close()


@pytest.mark.parametrize("regrown", [False, True])
def test_a_journal_truncated_below_its_folded_offset_loses_nothing_written_later(
        tmp_path, regrown):
    store = DuckDBStore(tmp_path / "store")
    _log(store, *[_run_row(f"early{i}") for i in range(20)])
    store.sync()
    journal = store.writer().path
    os.truncate(journal, 10)
    late = [_run_row(f"late{i}", name="x" * (1000 if regrown else 1)) for i in range(5)]
    _log(store, *late)
    assert (journal.stat().st_size > 2000) == regrown  # past the folded offset, or not
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.sync()
    assert any("truncated" in m and str(journal) in m for m in _messages(caught))
    names = store.sql("select run_id from runs order by run_id")["run_id"].to_list()
    assert names == sorted([f"early{i}" for i in range(20)] + [f"late{i}" for i in range(5)])
    store.close()


def test_an_older_store_with_plain_json_line_journals_opens(tmp_path):
    import duckdb

    from nbtrail.store import _schema

    home = tmp_path / "store"
    (home / "journal").mkdir(parents=True)
    con = duckdb.connect(str(home / "nbtrail.duckdb"))
    for version, migration in enumerate(_schema.MIGRATIONS[:3], 1):  # schema 3, journal 1
        migration(con)
        con.execute("INSERT INTO schema_info (version) VALUES (?)", [version])
    con.close()
    old = home / "journal" / "host-1-abcd.jsonl"  # a process that has ended
    lines = [_run_row("old", status="finished"),
             {"t": "params", "run_id": "old", "key": "lr", "value": "0.1", "value_type": "float"}]
    old.write_text("".join(json.dumps(line) + "\n" for line in lines))

    store = DuckDBStore(home)
    assert store.get_run("old").params == {"lr": 0.1}
    assert not old.exists()  # folded and removed
    assert store.sql("select max(version) as v from schema_info")["v"][0] == 4
    store.close()
