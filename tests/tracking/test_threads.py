"""Runs across threads and processes: parents only where they belong, runs that travel."""

import os
import pickle
import subprocess
import sys
import threading

import nbtrail as nt

from ..conftest import SRC


def test_runs_started_in_threads_are_independent():
    # No `home` fixture: its scoped settings live in this thread's context only, and
    # threads start with an empty one; NBTRAIL_HOME (set per test) reaches them all.
    barrier = threading.Barrier(16)
    started = [threading.Event() for _ in range(16)]
    ids = {}

    def work(i):
        with nt.run(name=f"t{i}") as run:
            started[i].set()
            barrier.wait(timeout=30)  # all sixteen are running at once
            run.log_metric("m", float(i))
            with nt.run(name=f"t{i}-child") as child:  # nested in its own thread
                ids[i] = (run.run_id, child.parent_id)
            barrier.wait(timeout=30)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread, event in zip(threads, started, strict=True):
        thread.start()
        event.wait(timeout=30)  # each starts while the runs of the others are open
    for thread in threads:
        thread.join()
    nt.sync()
    top = nt.sql("select name, parent_id from runs where name not like '%-child'")
    assert top.height == 16 and top["parent_id"].null_count() == 16
    assert all(parent == run_id for run_id, parent in ids.values())


def test_a_run_in_a_thread_has_the_parent_it_is_given():
    with nt.run(name="outer") as outer:
        found = {}

        def work():
            with nt.run(name="alone") as alone, nt.run(name="explicit", parent=outer) as child:
                found.update(alone=alone.parent_id, explicit=child.parent_id)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert found == {"alone": None, "explicit": outer.run_id}


def test_an_active_run_pickles_by_id(home):
    with nt.run(name="travels") as run:
        run.log_metric("m", 1.0)
        copy = pickle.loads(pickle.dumps(run))
        assert (copy.run_id, copy.name, copy.status) == (run.run_id, "travels", "running")
        copy.log_metric("m", 2.0)  # continues the step count: step 1
    assert nt.metric_history(run.run_id, "m")["step"].to_list() == [0, 1]


WORKERS = """
import multiprocessing, sys, nbtrail as nt

def work(run, key):
    for step in range(10):
        run.log_metric(key, float(step), step=step)

if __name__ == "__main__":
    nt.config.set(home=sys.argv[1])
    with nt.run(name="parent") as run:
        for method in ("spawn", "fork", "forkserver"):
            worker = multiprocessing.get_context(method).Process(target=work, args=(run, method))
            worker.start()
            worker.join(120)
            assert worker.exitcode == 0, f"the {method} worker failed"
        assert run.status == "running"  # a worker's exit does not end the run
    print(run.run_id)
"""


def test_an_active_run_can_be_handed_to_worker_processes(home, tmp_path):
    script = tmp_path / "workers.py"
    script.write_text(WORKERS)
    done = subprocess.run([sys.executable, str(script), str(home)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(SRC)},
                          check=False)
    assert done.returncode == 0, done.stderr
    run = nt.get_run(done.stdout.strip())
    assert run.status == "finished"
    for method in ("spawn", "fork", "forkserver"):
        assert nt.metric_history(run.run_id, method)["value"].to_list() == [
            float(step) for step in range(10)]
