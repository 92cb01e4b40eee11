"""System metrics: sampled while a run is active, gone with it, off when configured."""

import multiprocessing
import threading
import time

import pytest

import nbtrail as nt
from nbtrail.errors import InvalidInputError
from nbtrail.tracking import _system

INTERVAL = 0.3
EXPECTED = {"system/cpu_percent", "system/process_cpu_percent", "system/memory_used_mb",
            "system/memory_percent", "system/process_memory_rss_mb"}


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nbtrail-system")]


def no_thread_soon() -> bool:
    """Whether the sampler thread is gone (it lingers ``LINGER`` s after the last run)."""
    deadline = time.monotonic() + _system.LINGER + 10
    while sampler_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not sampler_threads()


@pytest.fixture(autouse=True)
def _no_thread_of_an_earlier_test():
    assert no_thread_soon()


def system_keys(run_id: str) -> set[str]:
    return {k for k in nt.get_run(run_id).metrics if k.startswith("system/")}


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(1000))


def test_a_run_records_the_series_and_leaves_no_thread(home):
    with nt.config(system_metrics_interval=INTERVAL), nt.run(name="sampled") as run:
        assert len(sampler_threads()) == 1
        busy(2.0)
    assert no_thread_soon()
    keys = system_keys(run.run_id)
    assert keys >= EXPECTED
    cpu = nt.metric_history(run.run_id, "system/process_cpu_percent")
    assert cpu.height >= 3
    # Steps are the sample index, timestamps when each was measured.
    assert cpu["step"].to_list() == list(range(cpu.height))
    assert cpu["timestamp"].is_sorted()
    # The loop keeps one core busy: the process's CPU share is well above zero.
    assert max(cpu["value"]) > 20
    rss = nt.metric_history(run.run_id, "system/process_memory_rss_mb")["value"]
    assert all(value > 1 for value in rss)
    for key in keys & {"system/disk_read_mb", "system/network_receive_mb"}:
        # Counted from the run's start, so the first points are small, never negative.
        assert min(nt.metric_history(run.run_id, key)["value"]) >= 0


def test_one_thread_serves_several_runs_and_children_are_not_sampled_twice(home):
    with nt.config(system_metrics_interval=INTERVAL), nt.run(name="outer") as outer, \
            nt.run(name="child") as child:
        other = nt.run(name="independent", nested=False)
        assert len(sampler_threads()) == 1
        busy(1.5)
        other.end()
        assert len(sampler_threads()) == 1  # outer still runs
    assert no_thread_soon()
    assert system_keys(outer.run_id) >= EXPECTED
    assert system_keys(other.run_id) >= EXPECTED
    assert system_keys(child.run_id) == set()


def test_off_when_configured(home):
    with nt.config(system_metrics=False, system_metrics_interval=INTERVAL), \
            nt.run(name="quiet") as run:
        assert sampler_threads() == []
        busy(1.0)
        run.log_metric("loss", 0.5)
    assert system_keys(run.run_id) == set()
    assert set(nt.get_run(run.run_id).metrics) == {"loss"}


def test_a_run_shorter_than_the_interval_records_nothing(home):
    with nt.run(name="short") as run:  # the default interval, 10 s
        assert len(sampler_threads()) == 1
    assert no_thread_soon()
    assert system_keys(run.run_id) == set()


def test_short_runs_one_after_another_share_one_thread_and_do_not_wait_for_it(home):
    threads = set()
    for i in range(20):
        with nt.run(name=f"fold-{i}"):
            threads.update(sampler_threads())
    assert len(threads) == 1  # ending a run neither joins nor ends the thread
    assert no_thread_soon()


def test_a_bad_interval_names_the_setting():
    for bad in (0, -1, 0.01, "10", True, float("nan")):
        with pytest.raises(InvalidInputError, match="system_metrics_interval"):
            nt.config.set(system_metrics_interval=bad)
    assert nt.config.system_metrics_interval == 10.0


def child_state(queue) -> None:
    # What a forked child inherits: no sampler thread and no sampled runs; a run the child
    # starts gets a sampler of its own.
    state = {"threads": len(sampler_threads()), "runs": len(_system._sampler.runs)}
    with nt.config(system_metrics_interval=INTERVAL), nt.run(name="in-child") as run:
        state["own_thread"] = len(sampler_threads())
        busy(1.0)
    state["after"] = 0 if no_thread_soon() else len(sampler_threads())
    state["run_id"] = run.run_id
    nt.sync()
    queue.put(state)


def test_a_forked_child_does_not_inherit_a_running_sampler(home):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    with nt.config(system_metrics_interval=INTERVAL), nt.run(name="parent") as parent:
        assert len(sampler_threads()) == 1
        child = context.Process(target=child_state, args=(queue,))
        child.start()
        state = queue.get(timeout=120)
        child.join(timeout=120)
        assert child.exitcode == 0
        busy(1.0)
    assert {k: state[k] for k in ("threads", "runs", "own_thread", "after")} == {
        "threads": 0, "runs": 0, "own_thread": 1, "after": 0}
    assert system_keys(state["run_id"]) >= EXPECTED
    # The parent's sampler went on undisturbed by the fork.
    assert nt.metric_history(parent.run_id, "system/cpu_percent").height >= 3
    assert no_thread_soon()


def test_gpu_metrics_where_an_nvidia_gpu_is_present(home):
    reader = _system._gpu_reader()
    if reader is None:
        # Not `require`: CI machines have no GPU either, so this runs only on one that has.
        pytest.skip("no NVIDIA GPU with nvidia-ml-py here")
    with nt.config(system_metrics_interval=INTERVAL), nt.run(name="gpu") as run:
        busy(1.0)
    assert {"system/gpu0_utilization_percent", "system/gpu0_memory_used_mb"} <= \
        system_keys(run.run_id)
