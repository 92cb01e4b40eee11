"""Store benchmark: reads while 16 writers log, read CPU over a backlog, folds, many runs.

    python benchmarks/store.py                       # the nbtrail of this checkout
    python benchmarks/store.py --src /path/to/src    # another one (e.g. today's main)
    python benchmarks/store.py --seconds 10 --writers 16 --readers 2
    python benchmarks/store.py --bulk-runs 100000 --bulk-steps 100   # the bulk scenario

Targets (issue 12): read p99 <= 100 ms, slowest read <= 500 ms, backlog folded within
2 s of the writers stopping, >= 2 M metric points/s folded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _store_procs import BACKLOG_WRITER, CPU_PROBE, CPU_READER, FAST_WRITER, POLLER, percentile

ROOT = Path(__file__).resolve().parents[1]

FOLD = """
import sys, time
from nbtrail.store._duckdb import DuckDBStore
from nbtrail.tracking._tracker import Tracker
store = DuckDBStore(sys.argv[1], fold_interval=1e9)  # no background fold: time one fold_all
tracker = Tracker(store)
for r in range(int(sys.argv[2])):
    with tracker.start_run(name=f"r{r}") as run:
        for step in range(int(sys.argv[3])):
            run.log_metric("loss", step * 0.1, step=step)
store.writer().flush()
started = time.perf_counter()
store.fold_all()
print(time.perf_counter() - started)
"""


# A store with one run, folded: what the pollers read before the store under test.
WARM_STORE = """
import sys, nbtrail as nt
nt.config.set(home=sys.argv[1])
with nt.run(name="warm") as run:
    run.log_metric("loss", 0.5)
"""


def _spawn(src: Path, code: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, text=True)


def _under_writers(src: Path, home: Path, flag: Path, seconds: float, n_writers: int) -> int:
    """Run ``n_writers`` full-speed writers for ``seconds``, then stop all; points logged."""
    writers = [_spawn(src, FAST_WRITER, home, flag, f"w{i}") for i in range(n_writers)]
    while len(list((home / "journal").glob("*.*"))) < n_writers:
        time.sleep(0.05)
    time.sleep(seconds)
    flag.write_text("stop")
    return sum(int(w.communicate()[0]) for w in writers)


def read_latency(src: Path, folder: Path, seconds: float, n_writers: int,
                 n_readers: int) -> dict[str, float]:
    """Read latency of pollers while writers log; how long the backlog takes to fold."""
    home, flag, warm = folder / "store", folder / "flag", folder / "warm"
    flag.write_text("go")
    # A small, quiet store the pollers read first: the first read of the store under
    # test is then that of a cold store, not of a cold process.
    subprocess.run([sys.executable, "-c", WARM_STORE, warm], check=True,
                   env={**os.environ, "PYTHONPATH": str(src)})
    readers = [_spawn(src, POLLER, home, flag, warm) for _ in range(n_readers)]
    points = _under_writers(src, home, flag, seconds, n_writers)
    stopped = time.monotonic()
    while [p for p in (home / "journal").iterdir() if not p.name.startswith(".")]:
        if time.monotonic() - stopped > 120:
            break
        time.sleep(0.05)
    backlog = time.monotonic() - stopped
    reports = [json.loads(r.communicate()[0]) for r in readers]
    times = [t for r in reports for t in r["times"]]
    cpu = [t for r in reports for t in r.get("cpu", [])]
    return {"reads": len(times), "p50_ms": percentile(times, .5) * 1000,
            "cpu_p50_ms": percentile(cpu, .5) * 1000,
            "p99_ms": percentile(times, .99) * 1000, "max_ms": max(times, default=0) * 1000,
            "first_ms": max((r["times"][0] for r in reports if r["times"]), default=0) * 1000,
            "process_first_ms": max(r["warm_up"] for r in reports) * 1000,
            "errors": sum(len(r["errors"]) for r in reports),
            "error_messages": sorted({e for r in reports for e in r["errors"]})[:3],
            "points": points,
            "backlog_s": backlog}



def cpu_floor(src: Path, folder: Path, seconds: float, n_writers: int, n_probes: int,
              read_cpu_s: float = 0.011) -> dict[str, float]:
    """Wall time of ``read_cpu_s`` of pure CPU work, in the readers' place beside the writers.

    No read can be faster than this on the machine: it is the share of a core that a
    process gets among the writers, without any lock, file or database.
    """
    home, flag = folder / "floor", folder / "floor-flag"
    flag.write_text("go")
    probes = [_spawn(src, CPU_PROBE, flag, read_cpu_s) for _ in range(n_probes)]
    _under_writers(src, home, flag, seconds, n_writers)
    times = [t for p in probes for t in json.loads(p.communicate()[0])["times"]]
    return {"work_ms": read_cpu_s * 1000, "samples": len(times),
            "p50_ms": percentile(times, .5) * 1000, "p99_ms": percentile(times, .99) * 1000,
            "max_ms": max(times, default=0) * 1000}

def read_cpu(src: Path, folder: Path, n_writers: int, runs: int) -> dict[str, float]:
    """CPU of a read over an unfolded backlog while every writer still logs slowly."""
    home = folder / "backlog"
    writers = [subprocess.Popen([sys.executable, "-c", BACKLOG_WRITER, str(home), str(runs),
                                 f"w{i}"], env={**os.environ, "PYTHONPATH": str(src)},
                                stdout=subprocess.PIPE, text=True) for i in range(n_writers)]
    try:
        for writer in writers:
            writer.stdout.readline()  # "ready": its backlog is in its journal
        cpu = json.loads(_spawn(src, CPU_READER, home).communicate()[0])
    finally:
        for writer in writers:
            writer.kill()
            writer.wait()
    return {"backlog_points": n_writers * runs * 1000, "cpu_p50_ms": percentile(cpu, .5) * 1000,
            "cpu_max_ms": max(cpu) * 1000}


def fold_throughput(src: Path, folder: Path, runs: int, steps: int) -> dict[str, float]:
    """Metric points folded per second by one ``fold_all`` of a backlog."""
    seconds = float(_spawn(src, FOLD, folder / "fold", runs, steps).communicate()[0])
    return {"points": runs * steps, "fold_s": seconds, "points_per_s": runs * steps / seconds}


# Logs many short runs through the public API, folds, and times three typical queries.
BULK = """
import json, sys, time, nbtrail as nt
nt.config.set(home=sys.argv[1], capture_git=False, capture_environment=False)
runs, steps = int(sys.argv[2]), int(sys.argv[3])
started = time.perf_counter()
for r in range(runs):
    with nt.run(name=f"r{r}") as run:
        run.log_param("lr", r % 10 / 10)
        for step in range(steps):
            run.log_metric("loss", 1.0 / (step + 1 + r % 7), step=step)
logged = time.perf_counter()
nt.sync()
folded = time.perf_counter()
some = nt.runs(where="metrics.loss < 0.2 and params.lr = 0.5", order_by="metrics.loss",
               limit=100)
queried = time.perf_counter()
nt.metric_history(some["run_id"][0], "loss")
history = time.perf_counter()
print(json.dumps({"log_s": logged - started, "fold_s": folded - logged,
                  "query_ms": (queried - folded) * 1000, "history_ms": (history - queried) * 1000}))
"""


def bulk(src: Path, folder: Path, runs: int, steps: int) -> dict[str, float]:
    """Log ``runs`` × ``steps`` points, fold them, query: seconds and milliseconds."""
    report = json.loads(_spawn(src, BULK, folder / "bulk", runs, steps).communicate()[0])
    return {"runs": runs, "points": runs * steps, **report,
            "points_per_s_folded": runs * steps / report["fold_s"]}


def main() -> None:
    """Run the scenarios and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT / "src")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--backlog-runs", type=int, default=5,
                        help="runs of 1,000 points each writer leaves unfolded for read_cpu")
    parser.add_argument("--fold-runs", type=int, default=100)
    parser.add_argument("--fold-steps", type=int, default=10_000)
    parser.add_argument("--bulk-runs", type=int, default=0,
                        help="run the bulk scenario with this many runs (0: skip it)")
    parser.add_argument("--bulk-steps", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbtrail-bench-store-") as tmp:
        print(json.dumps({"read_latency": read_latency(
            args.src, Path(tmp), args.seconds, args.writers, args.readers)}), flush=True)
        print(json.dumps({"cpu_floor": cpu_floor(
            args.src, Path(tmp), args.seconds, args.writers, args.readers)}), flush=True)
        print(json.dumps({"read_cpu": read_cpu(
            args.src, Path(tmp), args.writers, args.backlog_runs)}), flush=True)
        print(json.dumps({"fold": fold_throughput(
            args.src, Path(tmp), args.fold_runs, args.fold_steps)}), flush=True)
        if args.bulk_runs:
            print(json.dumps({"bulk": bulk(args.src, Path(tmp), args.bulk_runs,
                                           args.bulk_steps)}), flush=True)


if __name__ == "__main__":
    main()
