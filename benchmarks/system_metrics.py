"""The system-metrics sampler's own CPU cost.

Usage::

    python benchmarks/system_metrics.py [--seconds S] [--intervals 10 1] [--json OUT]

Each case runs in a fresh interpreter: one run stays open for ``--seconds`` while the
main thread sleeps, with system metrics off, then on at each interval. Two figures per
case: the process's CPU time over the window (journal and fold threads included, so
"off" is the baseline to subtract), and the sampler thread's own CPU time, read from the
kernel's per-thread counters. Both are given as a share of one core over the window.
Last, the CPU time of one sample (reading every counter and logging the points), timed
as the main thread's CPU time over 300 samples in a loop.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CASE = """
import json, sys, threading, time
import psutil
import nbtrail as nt

REPS = 300
seconds, interval = float(sys.argv[1]), sys.argv[2]
settings = ({"system_metrics": False} if interval == "off"
            else {"system_metrics_interval": float(interval)})
nt.config.set(capture_git=False, capture_environment=False, **settings)
with nt.run(name="warm-up"):  # imports and store creation stay out of the window
    pass
process = psutil.Process()
with nt.run(name="measured") as run:
    start_cpu, start = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start
    sampler = next((t for t in threading.enumerate() if t.name == "nbtrail-system-metrics"),
                   None)
    own = next((t.user_time + t.system_time for t in process.threads()
                if sampler is not None and t.id == sampler.native_id), 0.0)
nt.sync()
points = nt.sql("select count(*) as n from metrics where run_id = ? and key like 'system/%'",
                [run.run_id])["n"][0]
# One sample (read every counter, log the points) timed in a loop: the kernel counts
# thread CPU time in 10 ms ticks, too coarse for a few samples.
from nbtrail.tracking import _system
with nt.run(name="per-sample", nested=False, tags={"bench": "1"}) as other:
    first = _system._read(_system._sampler)
    sampled = _system._Sampled(other, 1.0, due=0.0, baseline=first, previous=first)
    start_cpu = time.thread_time()
    for _ in range(REPS):
        _system._log(sampled, _system._read(_system._sampler))
    per_sample = (time.thread_time() - start_cpu) / REPS
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "sampler_cpu_s": own, "points": int(points),
                  "per_sample_s": per_sample}))
"""


def measure(seconds: float, interval: str) -> dict[str, float]:
    """One case in a fresh interpreter with a fresh store."""
    with tempfile.TemporaryDirectory(prefix="nbtrail-bench-sys-") as folder:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NBTRAIL_HOME": folder}
        done = subprocess.run([sys.executable, "-c", CASE, str(seconds), interval], env=env,
                              cwd=folder, capture_output=True, text=True, check=False,
                              timeout=seconds + 300)
    if done.returncode != 0:
        raise SystemExit(f"the case {interval!r} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run every case and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--intervals", nargs="+", default=["10", "1"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {case: measure(args.seconds, case) for case in ["off", *args.intervals]}
    base = results["off"]["cpu_s"] / results["off"]["wall_s"]
    print(f"{platform.node()}: {os.cpu_count()} cores, {args.seconds:g} s a case, "
          f"Python {platform.python_version()}")
    print(f"{'interval':>10} {'points':>7} {'process CPU':>12} {'minus off':>10} "
          f"{'sampler thread':>15} {'1 sample':>10} {'= share':>8}")
    for case, result in results.items():
        share = result["cpu_s"] / result["wall_s"]
        cells = [case if case == "off" else f"{case} s", f"{result['points']:>7}",
                 f"{100 * share:11.3f}%"]
        if case != "off":
            per_sample = result["per_sample_s"]
            cells += [f"{100 * (share - base):9.3f}%",
                      f"{100 * result['sampler_cpu_s'] / result['wall_s']:14.3f}%",
                      f"{1e6 * per_sample:7.0f} µs", f"{100 * per_sample / float(case):7.3f}%"]
        print(" ".join(f"{cell:>{width}}" for cell, width in
                       zip(cells, (10, 7, 12, 10, 15, 10, 8), strict=False)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
