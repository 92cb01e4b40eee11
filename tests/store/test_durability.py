"""The store's durability promises under faults: kills, torn and bad journals, a full disk."""

import os
import random
import signal
import time

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
