"""Many processes, one store: no lock errors, no lost records, killed runs detected."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

from nbtrail.store._duckdb import DuckDBStore
from nbtrail.store._journal import JOURNAL_SUFFIX, RECORDS, frame

from ..conftest import SRC

WRITER = """
import sys, nbtrail as nt
nt.config.set(home=sys.argv[1])
n_runs, n_params, n_metrics, n_steps = map(int, sys.argv[2:6])
for r in range(n_runs):
    with nt.run(name=f"w{sys.argv[6]}-{r}") as run:
        run.log_params({f"p{i}": i * r for i in range(n_params)})
        for step in range(n_steps):
            for m in range(n_metrics):
                run.log_metric(f"m{m}", step * 0.01 + m, step=step)
"""

READER = """
import json, sys, time, nbtrail as nt
import duckdb, numpy, polars  # warm: time the reads, not the first imports
nt.config.set(home=sys.argv[1])
slowest, answers, errors, seen = 0.0, 0, [], 0
while True:
    stop = open(sys.argv[2]).read() == "stop"
    started = time.perf_counter()
    try:
        seen = nt.runs(limit=100).height
        answers += 1
    except nt.NbtrailError as exc:
        if "no nbtrail store" not in str(exc):  # the writers may not have started yet
            errors.append(repr(exc))
    except Exception as exc:
        errors.append(repr(exc))
    slowest = max(slowest, time.perf_counter() - started)
    if stop:
        break
    time.sleep(0.05)
print(json.dumps({"slowest": slowest, "answers": answers, "errors": errors}))
"""


_spawned: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_orphans():
    """A test that fails or times out must not leave its processes (and their children)."""
    yield
    while _spawned:
        proc = _spawned.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _spawn(code, *args):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group: killpg reaches workers
    _spawned.append(proc)
    return proc


@pytest.mark.slow
def test_eight_writers_and_a_reader_on_a_cold_store(tmp_path):
    home = tmp_path / "store"  # does not exist yet: schema creation races too
    n_procs, n_runs, n_params, n_metrics, n_steps = 8, 200, 10, 20, 50
    flag = tmp_path / "flag"
    flag.write_text("go")
    reader = _spawn(READER, home, flag)
    writers = [_spawn(WRITER, home, n_runs, n_params, n_metrics, n_steps, i)
               for i in range(n_procs)]
    outcomes = [w.communicate(timeout=900) for w in writers]
    flag.write_text("stop")
    reader_out, reader_err = reader.communicate(timeout=120)
    for w, (_, err) in zip(writers, outcomes, strict=True):
        assert w.returncode == 0, err
        assert "Traceback" not in err and "Error" not in err, err
    assert reader.returncode == 0, reader_err
    report = json.loads(reader_out)
    print(f"\nreader: {report['answers']} answers, slowest {report['slowest'] * 1000:.0f} ms")
    assert report["errors"] == []
    assert report["answers"] > 0

    store = DuckDBStore(home)
    counts = store.sql("""
        select (select count(*) from runs) as runs,
               (select count(*) from runs where status = 'finished') as finished,
               (select count(*) from params) as params,
               (select count(*) from metrics) as metrics,
               (select count(*) from latest_metrics) as latest
    """).to_dicts()[0]
    total = n_procs * n_runs
    assert counts == {
        "runs": total, "finished": total, "params": total * n_params,
        "metrics": total * n_metrics * n_steps, "latest": total * n_metrics,
    }
    # Exactly the values logged: the last step of each metric, no duplicates.
    wrong = store.sql(f"""
        select count(*) as n from latest_metrics
        where step != {n_steps - 1} or value != {n_steps - 1} * 0.01 + cast(substr(key, 2) as int)
    """)["n"][0]
    assert wrong == 0
    # Journals of finished processes are folded and removed.
    store.fold_all()
    assert list((home / "journal").glob(f"*{JOURNAL_SUFFIX}")) == []


CRASHER = """
import sys, time, nbtrail as nt
nt.config.set(home=sys.argv[1], flush_interval=0.2)
progress = open(sys.argv[2], "w", buffering=1)
with nt.run(name="doomed") as run:
    progress.write(f"run {run.run_id}\\n")
    step = 0
    while True:
        run.log_metric("loss", 1.0 / (step + 1), step=step)
        if step % 50 == 0:
            progress.write(f"{step} {time.time()}\\n")
        step += 1
        time.sleep(0.001)
"""


def test_sigkill_loses_nothing_older_than_a_second(tmp_path):
    home = tmp_path / "store"
    progress = tmp_path / "progress"
    proc = _spawn(CRASHER, home, progress)
    deadline = time.time() + 60
    while time.time() < deadline:
        lines = progress.read_text().splitlines() if progress.exists() else []
        if len(lines) > 40:
            break
        time.sleep(0.1)
    time.sleep(1.5)
    kill_time = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    lines = progress.read_text().splitlines()
    run_id = lines[0].split()[1]
    logged = [line.split() for line in lines[1:] if len(line.split()) == 2]
    must_have = max(int(step) for step, stamp in logged if float(stamp) <= kill_time - 1.0)

    # A torn last record, as if the kill had landed in the middle of a write.
    [journal] = (home / "journal").glob(f"*{JOURNAL_SUFFIX}")
    with open(journal, "ab") as f:
        f.write(frame(RECORDS + b'{"t":"tags","run_id":"' + run_id.encode() + b'"}\n', 10**6)[:30])

    store = DuckDBStore(home)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = store.get_run(run_id)
    assert any("torn" in str(w.message) for w in caught)
    assert run.status == "killed"
    assert run.end_time is not None
    history = store.metric_history(run_id, "loss")
    assert history["step"].max() >= must_have
    assert history["step"].to_list() == list(range(history.height))  # no gaps, no duplicates
    # The store stays healthy: the journal is gone and new runs work.
    assert list((home / "journal").glob(f"*{JOURNAL_SUFFIX}")) == []
    store.writer().append({"t": "tags", "run_id": run_id, "key": "checked", "value": "yes"})
    store.sync()
    assert store.get_run(run_id).tags == {"checked": "yes"}
    store.close()


KILLED_AFTER_FOLD = """
import sys, time, nbtrail as nt
nt.config.set(home=sys.argv[1])
run = nt.run(name="folded then killed")
run.log_metric("m", 1.0)
nt.sync()
print(run.run_id, flush=True)
time.sleep(600)
"""


def test_a_run_folded_before_its_process_died_is_marked_killed(tmp_path):
    home = tmp_path / "store"
    proc = _spawn(KILLED_AFTER_FOLD, home)
    run_id = proc.stdout.readline().strip()
    assert DuckDBStore(home).get_run(run_id).status == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert DuckDBStore(home).get_run(run_id).status == "killed"


FORK_WORKERS = """
import multiprocessing, os, signal, sys, nbtrail as nt
# Fold as often as possible, so forks land while the parent's fold thread is in DuckDB.
nt.config.set(home=sys.argv[1], flush_interval=0.01, fold_interval=0)

def work(name):
    with nt.run(name=name) as run:
        for step in range(100):
            run.log_metric("m", step, step=step)  # no nt.sync(): the exit hook flushes

if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    run = nt.run(name="parent")
    for round in range(20):
        for step in range(1000):
            run.log_metric("x", step, step=1000 * round + step)
        workers = [ctx.Process(target=work, args=(f"worker {round}.{i}",)) for i in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert [w.exitcode for w in workers] == [0, 0, 0], "a forked worker hung or failed"
    nt.sync()
    print(run.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the workers' exits must not have ended this run
"""


def test_forked_workers_lose_nothing_and_never_deadlock(tmp_path):
    home = tmp_path / "store"
    proc = _spawn(FORK_WORKERS, home)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err
    store = DuckDBStore(home)
    # The parent outlives a system-metrics interval: its system/* points are not counted
    # (their sampler thread stays on, so the forks also land while it samples).
    counts = store.sql(
        "select name, count(*) as n from runs join metrics using (run_id) "
        "where key not like 'system/%' group by 1 order by 1")
    workers = [(f"worker {r}.{i}", 100) for r in range(20) for i in range(3)]
    assert counts.rows() == [("parent", 20_000), *sorted(workers)]
    assert store.get_run(out.strip()).status == "killed"
