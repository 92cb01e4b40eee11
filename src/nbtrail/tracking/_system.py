"""System metrics: a background sampler records CPU, memory, disk, network and GPU use.

One sampler thread per process serves every sampled run. What it measures (this
process's CPU and memory, the machine's) is the same for all runs of the process, so
one set of readings a tick is logged to each run that is due, instead of one thread and
one set of readings per run. The thread starts with the first sampled run and ends
``LINGER`` seconds after the last one: ending a run never waits for it (joining it cost
a run a millisecond, four times a short run's own cost), and a loop of short runs (folds
of a cross-validation, a bulk import) keeps one thread. A forked child starts without one.

Only the outermost runs of a process are sampled: a child whose parent is sampled here
would record the same series again (a sweep's trials, say). A child whose parent lives
in another process (a distributed sweep worker's trial) is sampled, as its process is a
different one.

Each run keeps the readings of its own previous sample, so its rates (CPU %) cover its
own interval, and its I/O counts start at zero when it starts (from a reading at most
``FRESH`` seconds before its start). The step of a point is
the run's sample index (0, 1, 2…); its timestamp is when it was measured.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import NbtrailError

if TYPE_CHECKING:
    from ._run import ActiveRun

THREAD_NAME = "nbtrail-system-metrics"
LINGER = 1.0  # seconds the thread waits for a next run before it ends
# Seconds a reading serves as the baseline of runs that start after it: a reading costs
# the process about a millisecond, more than a short run.
FRESH = 0.5
PREFIX = "system/"
_MB = 1024 * 1024


@dataclass(frozen=True)
class _Reading:
    """The raw counters of one moment; a sample is the difference of two readings."""

    wall: float
    process_cpu: float  # seconds of CPU this process has used
    busy: float  # seconds the machine's CPUs were busy, all cores together
    total: float  # seconds the machine's CPUs existed, all cores together
    io: dict[str, float]  # cumulative byte counters (disk read/write, network in/out)
    levels: dict[str, float]  # values logged as they are (memory, GPU)


@dataclass
class _Sampled:
    run: ActiveRun
    interval: float
    due: float
    # Taken by the sampler thread as soon as it sees the run, not by the run's own thread:
    # starting a run stays as cheap as it was.
    baseline: _Reading | None = None
    previous: _Reading | None = None
    step: int = 0


@dataclass
class _Sampler:
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Condition = field(init=False)
    runs: dict[str, _Sampled] = field(default_factory=dict)
    thread: threading.Thread | None = None
    gpu: Callable[[], dict[str, float]] | None = None
    gpu_probed: bool = False
    process: Any = None  # psutil.Process of this process, made once (it reads /proc)
    last: _Reading | None = None

    def __post_init__(self) -> None:
        self.wake = threading.Condition(self.lock)


_sampler = _Sampler()


def start_sampling(run: ActiveRun, interval: float) -> None:
    """Sample ``run`` every ``interval`` seconds until :func:`stop_sampling`.

    Does nothing when the run's parent is already sampled in this process. A machine
    psutil cannot read costs a warning, never the run.
    """
    sampler = _sampler
    with sampler.lock:
        if run.parent_id is not None and run.parent_id in sampler.runs:
            return
        sampler.runs[run.run_id] = _Sampled(run, interval, due=time.time() + interval)
        if sampler.thread is None:
            sampler.thread = threading.Thread(target=_loop, args=(sampler,),
                                              name=THREAD_NAME, daemon=True)
            sampler.thread.start()
        sampler.wake.notify()


def stop_sampling(run: ActiveRun) -> None:
    """Stop sampling ``run``; the thread ends ``LINGER`` seconds after the last run."""
    sampler = _sampler
    with sampler.lock:
        if sampler.runs.pop(run.run_id, None) is not None and not sampler.runs:
            sampler.wake.notify()


def _loop(sampler: _Sampler) -> None:
    me = threading.current_thread()
    while True:
        with sampler.lock:
            if sampler.thread is not me:
                return
            if not sampler.runs:
                # Woken by a run that came and went meanwhile: wait on; timed out with no
                # run: end (a next run starts a thread).
                if not sampler.wake.wait(timeout=LINGER) and not sampler.runs:
                    sampler.thread = None
                    return
                continue
            now = time.time()
            new = [s for s in sampler.runs.values() if s.previous is None]
            due = [s for s in sampler.runs.values() if s.due <= now and s.previous is not None]
            if not new and not due:
                wait = min(s.due for s in sampler.runs.values()) - now
                sampler.wake.wait(timeout=wait)
                continue
        last = sampler.last
        if not due and last is not None and time.time() - last.wall < FRESH:
            reading = last  # a loop of short runs: one reading a FRESH period, not a run
        else:
            try:
                reading = sampler.last = _read(sampler)
            except Exception as exc:  # psutil missing, or /proc unreadable in a sandbox
                warnings.warn(f"nbtrail: system metrics not recorded: {exc}", stacklevel=1)
                with sampler.lock:
                    sampler.runs.clear()
                    sampler.thread = None
                return
        for sampled in new:
            sampled.baseline = sampled.previous = reading
        for sampled in due:
            _log(sampled, reading)


def _log(sampled: _Sampled, reading: _Reading) -> None:
    previous, base = sampled.previous, sampled.baseline
    assert previous is not None and base is not None  # only sampled runs are due
    seconds = reading.wall - previous.wall
    total = reading.total - previous.total
    values = {
        "cpu_percent": 100 * (reading.busy - previous.busy) / total if total > 0 else 0.0,
        # Above 100 when the process keeps more than one core busy.
        "process_cpu_percent": (100 * (reading.process_cpu - previous.process_cpu) / seconds
                                if seconds > 0 else 0.0),
        **{key: (value - base.io.get(key, value)) / _MB for key, value in reading.io.items()},
        **reading.levels,
    }
    try:
        sampled.run.log_metrics({PREFIX + key: value for key, value in values.items()},
                                step=sampled.step, timestamp=reading.wall)
    except NbtrailError:
        return  # the run ended between the reading and the logging: nothing to record
    sampled.previous = reading
    sampled.step += 1
    # From the previous due time, so the series keeps its rhythm however long a tick took;
    # after a stall (a suspended laptop) it picks up from now instead of catching up.
    sampled.due = max(sampled.due + sampled.interval, reading.wall)


def _read(sampler: _Sampler) -> _Reading:
    import psutil

    if sampler.process is None:
        sampler.process = psutil.Process()
    process = sampler.process
    times = process.cpu_times()
    machine = psutil.cpu_times()
    idle = machine.idle + getattr(machine, "iowait", 0.0)
    total = sum(machine)
    memory = psutil.virtual_memory()
    io: dict[str, float] = {}
    disk = psutil.disk_io_counters()
    if disk is not None:  # None where the kernel exposes no disks (some containers)
        io |= {"disk_read_mb": disk.read_bytes, "disk_write_mb": disk.write_bytes}
    net = psutil.net_io_counters()
    if net is not None:
        io |= {"network_receive_mb": net.bytes_recv, "network_transmit_mb": net.bytes_sent}
    levels = {
        "memory_used_mb": (memory.total - memory.available) / _MB,
        "memory_percent": memory.percent,
        "process_memory_rss_mb": process.memory_info().rss / _MB,
    }
    if not sampler.gpu_probed:
        sampler.gpu_probed = True
        sampler.gpu = _gpu_reader()
    if sampler.gpu is not None:
        levels |= sampler.gpu()
    return _Reading(wall=time.time(), process_cpu=times.user + times.system,
                    busy=total - idle, total=total, io=io, levels=levels)


def _gpu_reader() -> Callable[[], dict[str, float]] | None:
    """A function reading every NVIDIA GPU, or None without nvidia-ml-py or a GPU."""
    try:
        import pynvml  # from the nvidia-ml-py distribution
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i)
                   for i in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError:  # no driver, or no device
        return None
    if not handles:
        return None

    def read() -> dict[str, float]:
        values: dict[str, float] = {}
        for i, handle in enumerate(handles):
            memory: Any = pynvml.nvmlDeviceGetMemoryInfo(handle)
            values |= {
                f"gpu{i}_utilization_percent":
                    float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                f"gpu{i}_memory_used_mb": memory.used / _MB,
                f"gpu{i}_memory_percent": 100 * memory.used / memory.total,
            }
        return values

    return read


def _after_fork_in_child() -> None:
    # The thread does not exist in the child, and the parent's runs are the parent's to
    # sample: start afresh (a lock held by the parent's thread at the fork stays held).
    global _sampler
    _sampler = _Sampler()


os.register_at_fork(after_in_child=_after_fork_in_child)
