"""Per-trial cost of tracking an Optuna sweep: nbtrail vs bare Optuna vs MLflow's callback.

Usage::

    python benchmarks/sweeps.py [--trials N] [--reps R] [--json OUT]

Every measurement runs in a fresh interpreter, in a fresh temporary folder outside any git
repository, with the study in Optuna's journal file storage (what ``nt.sweep`` uses by
default) and a trivial objective, so what is left is the cost of the study and of the
tracking. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("optuna", "nbtrail", "mlflow-sqlite")
WARMUP_TRIALS = 10

# Shared by every tool: the same storage, the same objective, the same sampler.
COMMON = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
optuna.logging.set_verbosity(optuna.logging.ERROR)
N = int(sys.argv[1])

def storage(path):
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))

def objective(trial):
    return trial.suggest_float("x", 0, 1) + trial.suggest_float("y", 0, 1)

def study(name):
    return optuna.create_study(study_name=name, storage=storage(f"{name}.journal"),
                               direction="maximize",
                               sampler=optuna.samplers.RandomSampler(seed=0))
"""

BODIES = {
    "optuna": """
def sweep(name, n):
    study(name).optimize(objective, n_trials=n)
""",
    "nbtrail": """
import nbtrail as nt
nt.config.set(home="store")

def sweep(name, n):
    # Its default storage is the same journal file backend, in the store's sweeps/ folder.
    nt.sweep(objective, n, name=name, sampler=optuna.samplers.RandomSampler(seed=0))
""",
    "mlflow-sqlite": """
import logging, mlflow
from optuna_integration.mlflow import MLflowCallback
logging.getLogger("mlflow").setLevel(logging.ERROR)
mlflow.set_tracking_uri("sqlite:///mlflow.db")

def sweep(name, n):
    callback = MLflowCallback(tracking_uri="sqlite:///mlflow.db", metric_name="value")
    study(name).optimize(objective, n_trials=n, callbacks=[callback])
""",
}

TIMED = """
started = time.perf_counter()
sweep("cold", {warmup})
cold = time.perf_counter() - started
started = time.perf_counter()
sweep("measured", N)
wall = time.perf_counter() - started
synced = wall
if "nt" in globals():
    nt.sync()  # until the trials are in the DuckDB file, as MLflow's are when it returns
    synced = time.perf_counter() - started
print(json.dumps({{"cold": cold, "wall": wall, "synced": synced}}))
"""


def measure(tool: str, n_trials: int) -> dict[str, float]:
    """One fresh process, one fresh folder: a cold sweep, then N trials timed."""
    code = COMMON + BODIES[tool] + TIMED.format(warmup=WARMUP_TRIALS)
    path = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "true"}
    with tempfile.TemporaryDirectory(prefix="nbtrail-bench-sweep-") as folder:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(n_trials)],
                              cwd=folder, env=env, capture_output=True, text=True,
                              timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300, help="trials per timed sweep")
    parser.add_argument("--reps", type=int, default=3, help="processes per tool (median)")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--json", metavar="OUT", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    if "optuna" not in args.tools:
        parser.error("the optuna baseline is needed to compute overheads")

    started = time.time()
    raw: dict[str, list[dict[str, float]]] = {tool: [] for tool in args.tools}
    for rep in range(args.reps):
        for tool in args.tools:  # interleaved: a burst of load hits every tool
            print(f"[{rep + 1}/{args.reps}] {tool}…", file=sys.stderr)
            raw[tool].append(measure(tool, args.trials))

    def per_trial_ms(tool: str, key: str) -> float:
        return statistics.median(r[key] for r in raw[tool]) / args.trials * 1000

    base = per_trial_ms("optuna", "wall")
    print(f"Optuna sweep tracking, {args.trials} trials × {args.reps} processes per tool, "
          f"{time.time() - started:.0f} s")
    print(f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, optuna {metadata.version('optuna')}, mlflow "
          f"{_version('mlflow')}, optuna-integration {_version('optuna-integration')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print()
    print("| tool | per trial | overhead over bare Optuna | overhead / Optuna's own cost | "
          "overhead vs nbtrail's |")
    print("|---|---|---|---|---|")
    rows: dict[str, dict[str, float]] = {}
    for tool, key, label in (("optuna", "wall", "bare Optuna (journal file)"),
                             ("nbtrail", "wall", "nbtrail"),
                             ("nbtrail", "synced", "nbtrail incl. nt.sync()"),
                             ("mlflow-sqlite", "wall", "MLflowCallback, sqlite")):
        if tool not in raw:
            continue
        value = per_trial_ms(tool, key)
        rows[label] = {"per_trial_ms": value, "overhead_ms": value - base}
    nt_overhead = rows.get("nbtrail", {}).get("overhead_ms")
    for label, row in rows.items():
        overhead = row["overhead_ms"]
        versus = "–" if label.startswith("bare") or not nt_overhead else \
            f"{overhead / nt_overhead:.1f}×"
        print(f"| {label} | {row['per_trial_ms']:.2f} ms | "
              f"{'–' if label.startswith('bare') else f'{overhead:+.2f} ms'} | "
              f"{'–' if label.startswith('bare') else f'{overhead / base * 100:+.0f} %'} | "
              f"{versus} |")
    if nt_overhead is not None:
        limit = max(2.0, 0.1 * base)
        print(f"\ntarget: nbtrail's overhead ≤ max(2 ms, 10 % of bare Optuna) = {limit:.2f} ms "
              f"per trial: {'met' if nt_overhead <= limit else 'NOT met'} "
              f"({nt_overhead:.2f} ms)")
    cold = {tool: statistics.median(r["cold"] for r in runs) for tool, runs in raw.items()}
    print("first sweep of a process, "
          f"{WARMUP_TRIALS} trials (imports, store creation): " +
          ", ".join(f"{tool} {seconds:.2f} s" for tool, seconds in cold.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"trials": args.trials, "raw": raw,
                                               "rows": rows, "cold": cold}, indent=2))
    return 0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    raise SystemExit(main())
