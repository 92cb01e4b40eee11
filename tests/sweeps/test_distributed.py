"""Many machines: workers join a sweep on a real PostgreSQL; the notebook syncs."""

import os
import subprocess
import sys
import textwrap
import time

import optuna
import pytest

import nbtrail as nt
from nbtrail.store._duckdb import DuckDBStore

from ..conftest import SRC
from .helpers import assert_store_matches_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

OBJECTIVE = """
import time
import nbtrail as nt


def objective(trial):
    x = trial.suggest_float("x", -2, 2)
    y = trial.suggest_int("y", 0, 3)
    for step in range(3):
        trial.report(x * step, step)
    nt.log_metric("where", 1.0)
    time.sleep(0.05)
    if y == 3 and x > 1.5:
        raise ValueError("corner case")
    return -(x ** 2) - y
"""


def _worker(folder, url, name, n_trials):
    """`nbtrail sweep worker` in a folder and store of its own, as on another machine."""
    folder.mkdir()
    (folder / "train.py").write_text(textwrap.dedent(OBJECTIVE))
    env = {**os.environ, "PYTHONPATH": str(SRC), "NBTRAIL_HOME": str(folder / "store")}
    code = "import sys; from nbtrail.cli import main; sys.exit(main())"
    return subprocess.Popen(
        [sys.executable, "-c", code, "sweep", "worker", name, "--storage", url,
         "--objective", "train:objective", "--n-trials", str(n_trials)],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trial_numbers(store_home):
    store = DuckDBStore(store_home)
    frame = store.sql("select value from tags where key = 'trial'")
    return sorted(int(v) for v in frame["value"])


@pytest.mark.slow
def test_two_workers_and_the_notebook_share_a_postgres_study(store, tmp_path, postgres_url):
    namespace: dict = {}
    exec(textwrap.dedent(OBJECTIVE), namespace)  # the notebook's copy of the same code
    name = f"dist-{time.time_ns()}"
    sweep = nt.sweep(namespace["objective"], n_trials=6, name=name, storage=postgres_url,
                     catch=(ValueError,), background=True, progress=False)
    deadline = time.time() + 60
    while not sweep.study.trials and time.time() < deadline:  # the study exists now
        time.sleep(0.05)
    workers = [_worker(tmp_path / f"machine-{i}", postgres_url, name, 7) for i in range(2)]
    for w in workers:
        _out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        assert f"{name}: 7/7 trials" in err
    sweep.wait(300)

    sweep.sync()
    assert sweep.sync() == 0  # a second sync finds nothing new
    frame = assert_store_matches_study(sweep)
    assert len(frame) == 20 and frame["trial"].to_list() == list(range(20))

    # Each worker recorded its own 7 trials in its own store; the notebook has them once.
    mine = _trial_numbers(store)
    theirs = [_trial_numbers(tmp_path / f"machine-{i}" / "store") for i in range(2)]
    assert mine == list(range(20))
    assert len(theirs[0]) == len(theirs[1]) == 7 and not set(theirs[0]) & set(theirs[1])
    synced = frame.filter(frame["trial"].is_in(theirs[0] + theirs[1]))
    for run_id in synced["run_id"]:
        run = nt.get_run(run_id)
        assert run.tags["worker_host"] and run.tags["worker_run_id"]
        assert run.parent_id == sweep.run.run_id
    # What a worker's objective logged stays in that worker's store; reports travel.
    local = frame.filter(~frame["trial"].is_in(theirs[0] + theirs[1]))
    assert len(local) == 6
    assert all(nt.get_run(r).metrics.get("where") == 1.0 for r in local["run_id"])


@pytest.mark.parametrize(("args", "message"), [
    (["--objective", "train-objective", "--n-trials", "1"], "must be 'module:function'"),
    (["--objective", "missing:objective", "--n-trials", "1"], "cannot import module 'missing'"),
    (["--objective", "train:nope", "--n-trials", "1"], "module 'train' has no 'nope'"),
    (["--objective", "train:objective"], "give --n-trials N or --timeout SECONDS"),
    (["--objective", "train:objective", "--n-trials", "1", "--storage", "redis://x"],
     "unknown URL scheme 'redis'"),
    (["--objective", "train:objective", "--n-trials", "1", "--storage", "POSTGRES"],
     "no sweep 'absent' in postgresql"),
])
def test_worker_errors_are_one_line_with_the_fix(tmp_path, postgres_url, capsys, args,
                                                 message):
    from nbtrail.cli import main

    (tmp_path / "train.py").write_text(textwrap.dedent(OBJECTIVE))
    args = [postgres_url if a == "POSTGRES" else a for a in args]
    assert main(["sweep", "worker", "absent", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nbtrail: error: ") and message in err, err
    assert "Traceback" not in err
