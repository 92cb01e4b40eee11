"""Sweeps across processes: n_jobs workers, Ctrl+C, a killed process; then resume."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

import nbtrail as nt

from ..conftest import SRC
from .helpers import assert_store_matches_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def cpu_bound(trial):
    x = trial.suggest_float("x", -3, 3)
    # ~10 ms that hold the GIL: threads would not help, and both workers get to start
    total = sum(i * i for i in range(200_000))
    nt.log_metric("pid", os.getpid())
    trial.report(x, 0)
    if trial.number % 5 == 4:
        raise RuntimeError(f"trial {trial.number} fails")
    return -(x ** 2) + total * 0


def test_n_jobs_two_runs_trials_in_two_processes(store):
    sweep = nt.sweep(cpu_bound, n_trials=16, n_jobs=2, name="par", direction="maximize",
                     catch=(RuntimeError,), progress=False)
    frame = assert_store_matches_study(sweep)
    assert len(frame) == 16  # exactly the budget, shared between the workers
    pids = {nt.get_run(r).metrics["pid"] for r in frame["run_id"]}
    assert len(pids) == 2 and os.getpid() not in pids
    assert frame.filter(frame["state"] == "fail").height == 3
    parent = nt.get_run(sweep.run.run_id)
    assert parent.status == "finished" and len(parent.children) == 16
    assert not list((store / "journal").glob("*.jsonl.lock"))  # no stray lock files
    # Resuming in parallel again adds to the same study.
    nt.sweep(cpu_bound, n_trials=4, n_jobs=2, name="par", catch=(RuntimeError,),
             progress=False)
    assert len(assert_store_matches_study(sweep)) == 20


SCRIPT = """
import os, sys, time, optuna, nbtrail as nt
optuna.logging.set_verbosity(optuna.logging.WARNING)
nt.config.set(home=sys.argv[1], capture_git=False)
progress = open(sys.argv[2], "w", buffering=1)

def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    progress.write(f"{trial.number}\\n")
    time.sleep(0.3 if trial.number < 3 else 60)   # trial 3 hangs until stopped
    return x

nt.sweep(objective, n_trials=10, name="stoppable", n_jobs=int(sys.argv[3]), progress=False)
"""


def _start(store, progress, n_jobs):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(store), str(progress),
                             str(n_jobs)], env=env, cwd=store.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(progress, count, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if progress.exists() and len(progress.read_text().split()) >= count:
            time.sleep(0.3)  # into the hanging trial's sleep
            return
        time.sleep(0.05)
    raise AssertionError(f"the sweep did not reach {count} trials")


def _resume(store):
    return nt.sweep(lambda t: t.suggest_float("x", 0, 1), n_trials=2, name="stoppable",
                    progress=False)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_ctrl_c_leaves_store_and_study_consistent_and_resumable(store, tmp_path, n_jobs):
    progress = tmp_path / "progress"
    proc = _start(store, progress, n_jobs)
    _wait_for(progress, 4 if n_jobs == 1 else 5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err

    sweep = _resume(store)
    interrupted = [t.number for t in sweep.study.trials[:-2] if t.state.name == "FAIL"]
    assert interrupted and all(t.state.name == "COMPLETE" for t in sweep.study.trials[-2:])
    # The interrupted trials are failed in Optuna and killed in nbtrail, each recorded once.
    assert_store_matches_study(sweep, statuses=dict.fromkeys(interrupted, "killed"))
    sessions = nt.runs(where="tags.sweep_role = 'sweep'", order_by="start_time")
    assert sessions["status"].to_list() == ["killed", "finished"]


def test_a_killed_process_is_failed_in_study_and_store_on_resume(store, tmp_path):
    progress = tmp_path / "progress"
    proc = _start(store, progress, 1)
    _wait_for(progress, 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)

    sweep = _resume(store)
    states = [t.state.name for t in sweep.study.trials]
    assert states == ["COMPLETE"] * 3 + ["FAIL"] + ["COMPLETE"] * 2
    # The killed trial's run was marked killed by the store (its process died).
    assert_store_matches_study(sweep, statuses={3: "killed"})
