"""Processes of the store benchmark and of its test: a writer at full speed and a poller.

Each is run as ``python -c SOURCE ARGS`` with the nbtrail under test first on PYTHONPATH.
"""

# Logs metric points as fast as it can, in runs of 1,000 steps, until the flag file says
# "stop"; prints how many points it logged.
FAST_WRITER = """
import sys, nbtrail as nt
nt.config.set(home=sys.argv[1])
flag, points, r = sys.argv[2], 0, 0
while open(flag).read() != "stop":
    with nt.run(name=f"{sys.argv[3]}-{r}") as run:
        for step in range(1000):
            run.log_metric("loss", step * 0.001, step=step)
        points += 1000
    r += 1
print(points)
"""

# Reads nt.runs(limit=100) every 50 ms until the flag says "stop"; prints a JSON report
# with every read's seconds (and CPU seconds: on a busy machine the rest is the wait for
# a core or for the lock), the first read's, and the errors seen. Given a third argument,
# a small store, it reads that one first (its seconds are "warm_up"): the reads of the
# store under test then do not pay for the imports of nbtrail's read path.
POLLER = """
import json, sys, time, nbtrail as nt
import duckdb, numpy, polars  # warm: time the reads, not the first imports
warm_up = None
if len(sys.argv) > 3:
    nt.config.set(home=sys.argv[3])
    started = time.perf_counter()
    nt.runs(limit=100)
    warm_up = time.perf_counter() - started
nt.config.set(home=sys.argv[1])
times, cpu, errors = [], [], []
while True:
    stop = open(sys.argv[2]).read() == "stop"
    started, started_cpu = time.perf_counter(), time.process_time()
    try:
        nt.runs(limit=100)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    except nt.NbtrailError as exc:
        if "no nbtrail store" not in str(exc):  # the writers may not have started yet
            errors.append(repr(exc))
    except Exception as exc:
        errors.append(repr(exc))
    if stop:
        break
    time.sleep(0.05)
print(json.dumps({"times": times, "cpu": cpu, "errors": errors, "warm_up": warm_up}))
"""


# The machine's floor for a read: every 50 ms, busies itself for as much CPU as a read of
# a quiet, folded store costs (11 ms; no lock, no file, no DuckDB), until the flag says
# "stop"; prints the wall seconds each took. Beside the writers this is the least any read
# can take, whatever the store does.
CPU_PROBE = """
import json, sys, time
times = []
while open(sys.argv[1]).read() != "stop":
    started, until = time.perf_counter(), time.process_time() + float(sys.argv[2])
    while time.process_time() < until:
        pass
    times.append(time.perf_counter() - started)
    time.sleep(0.05)
print(json.dumps({"times": times}))
"""

def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# Logs runs of 1,000 points with no background fold (a backlog that stays unfolded),
# says "ready", then goes on logging a point every 5 ms, as a slow training loop does.
BACKLOG_WRITER = """
import sys, time
from nbtrail.store._duckdb import DuckDBStore
from nbtrail.tracking._tracker import Tracker
store = DuckDBStore(sys.argv[1], fold_interval=1e9)
tracker = Tracker(store)
for r in range(int(sys.argv[2])):
    with tracker.start_run(name=f"{sys.argv[3]}-{r}") as run:
        for step in range(1000):
            run.log_metric("loss", step * 0.001, step=step)
store.writer().flush()
print("ready", flush=True)
run = tracker.start_run(name=f"{sys.argv[3]}-slow")
for step in range(int(60 / 0.005)):
    run.log_metric("slow", step, step=step)
    time.sleep(0.005)
"""

# Reads nt.runs(limit=100) every 50 ms, 20 times; prints the CPU seconds of each read.
CPU_READER = """
import json, sys, time, nbtrail as nt
nt.config.set(home=sys.argv[1])
nt.runs(limit=100)
cpu = []
for _ in range(20):
    started = time.process_time()
    nt.runs(limit=100)
    cpu.append(time.process_time() - started)
    time.sleep(0.05)
print(json.dumps(cpu))
"""
