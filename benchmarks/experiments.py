"""Branch experiments at scale: ``nt.branches()`` and ``nt.compare()`` against MLflow.

The store holds BRANCHES git branches with RUNS runs each (50 × 200 by default), in a real
git repository: on each branch a parent run (which takes the branch's git snapshot) and
its child runs, each with params, a 10-step loss curve and a ``val_f1``; every tenth run
also logs its data set and a scikit-learn model. MLflow gets the same runs, tagged with
the branch the way its git integration tags them (``mlflow.source.git.branch``).

Timed, in a fresh process per tool, median of REPS calls after one cold call:

* ``branches``: nbtrail ``nt.branches(metric="val_f1")``; MLflow ``search_runs`` over the
  experiment, grouped by branch tag with pandas (MLflow has no branch view).
* ``compare``: nbtrail ``nt.compare([b1, b2], metric="val_f1")`` with and without predict
  timing; MLflow: the best run of each branch by ``search_runs`` (filter on the branch
  tag, order by the metric, ``max_results=1``), then ``get_run`` and the loss history of
  each: what it takes to set two branches' best runs side by side there, without the
  data, code and latency sections nbtrail adds.

Usage::

    python benchmarks/experiments.py            # 50 branches × 200 runs (~6 minutes)
    python benchmarks/experiments.py --quick    # 10 branches × 50 runs
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from run import timed  # noqa: E402  (the shared helpers)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def model_and_data() -> tuple[Any, Any]:
    import numpy as np
    import polars as pl
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pl.DataFrame({f"x{i}": rng.normal(size=500) for i in range(8)})
    y = frame["x0"].to_numpy() > 0
    return LogisticRegression().fit(frame.to_numpy(), y), frame


def val_f1(branch: int, run: int) -> float:
    # Every tenth run (the ones with a model) scores best on its branch.
    return 0.5 + branch / 1000 + (0.3 if run % 10 == 0 else 0.0) + (run % 7) / 1000


def populate_nbtrail(work: Path, branches: int, runs: int) -> None:
    import nbtrail as nt

    repo = work / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print('train')\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "start")
    os.chdir(repo)
    model, frame = model_and_data()
    for b in range(branches):
        git(repo, "switch", "-q", "-c", f"exp/{b:02d}")
        (repo / "train.py").write_text(f"print('train {b}')\n")
        with nt.run(name=f"branch {b}") as parent:
            parent.log_metric("val_f1", 0.0)
            for r in range(runs - 1):
                with nt.run(name=f"run {r}") as run:
                    run.log_params({"C": r % 10, "depth": r % 5, "branch": b})
                    for step in range(10):
                        run.log_metric("loss", 1 / (step + 1 + r % 3), step=step)
                    run.log_metric("val_f1", val_f1(b, r))
                    if r % 10 == 0:
                        run.log_dataset(frame, name="valid", role="validation")
                        run.log_model(model, name="clf")
    nt.sync()


def populate_mlflow(work: Path, branches: int, runs: int) -> None:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("branches")
    now = int(time.time() * 1000)
    for b in range(branches):
        for r in range(runs):
            run = client.create_run(experiment, tags={"mlflow.source.git.branch": f"exp/{b:02d}"},
                                    run_name=f"run {r}")
            metrics = [Metric("loss", 1 / (s + 1 + r % 3), now, s) for s in range(10)]
            metrics.append(Metric("val_f1", val_f1(b, r), now, 0))
            params = [Param("C", str(r % 10)), Param("depth", str(r % 5)), Param("branch", str(b))]
            client.log_batch(run.info.run_id, metrics=metrics, params=params,
                             tags=[RunTag("mlflow.runName", f"run {r}")])
            client.set_terminated(run.info.run_id)


def timed_ms(call: Any, reps: int) -> dict[str, float]:
    """:func:`run.timed` in milliseconds: ``first_ms``, ``median_ms``, ``p95_ms``."""
    return {key.replace("_s", "_ms"): value * 1000 for key, value in timed(call, reps).items()}


def measure_nbtrail(work: Path, reps: int) -> dict[str, Any]:
    import nbtrail as nt

    os.chdir(work / "repo")
    frame = nt.branches(metric="val_f1")
    pair = frame["branch"].to_list()[:2]
    return {
        "branches": timed_ms(lambda: nt.branches(metric="val_f1"), reps),
        "compare": timed_ms(lambda: nt.compare(pair, metric="val_f1"), max(3, reps // 5)),
        "compare_no_latency": timed_ms(lambda: nt.compare(pair, metric="val_f1", latency=False),
                                    reps),
        "branch_count": frame.height,
    }


def measure_mlflow(work: Path, reps: int) -> dict[str, Any]:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("branches").experiment_id
    tag = "tags.mlflow.source.git.branch"

    def branches() -> Any:
        runs = mlflow.search_runs([experiment], max_results=100_000)
        return runs.groupby(tag).agg(runs=("run_id", "count"), best=("metrics.val_f1", "max"),
                                     last_run=("start_time", "max"))

    pair = sorted(branches().index)[-2:]

    def compare() -> Any:
        best = []
        for branch in pair:
            found = client.search_runs([experiment], f"{tag} = '{branch}'",
                                       order_by=["metrics.val_f1 DESC"], max_results=1)
            run = client.get_run(found[0].info.run_id)
            best.append((run, client.get_metric_history(run.info.run_id, "loss")))
        return best

    return {"branches": timed_ms(branches, reps), "compare": timed_ms(compare, reps),
            "branch_count": len(branches())}


def worker(tool: str, work: Path, branches: int, runs: int, reps: int) -> dict[str, Any]:
    start = time.perf_counter()
    (populate_nbtrail if tool == "nbtrail" else populate_mlflow)(work, branches, runs)
    populate_s = time.perf_counter() - start
    # Measure in a fresh process: cold imports and caches, as a user opening a notebook.
    out = subprocess.run([sys.executable, __file__, "--measure", tool, "--work", str(work),
                          "--reps", str(reps)], check=True, capture_output=True, text=True,
                         env=os.environ | {"PYTHONPATH": str(ROOT / "src")})
    return {"populate_s": populate_s, **json.loads(out.stdout)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 branches × 50 runs")
    parser.add_argument("--reps", type=int, default=50, help="timed calls per figure")
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    parser.add_argument("--populate", metavar="TOOL", help=argparse.SUPPRESS)
    parser.add_argument("--measure", metavar="TOOL", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    branches, runs = (10, 50) if args.quick else (50, 200)
    if args.measure:
        measure = measure_nbtrail if args.measure == "nbtrail" else measure_mlflow
        print(json.dumps(measure(Path(args.work), args.reps)))
        return 0
    if args.populate:
        print(json.dumps(worker(args.populate, Path(args.work), branches, runs, args.reps)))
        return 0
    os.environ.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                       "NBTRAIL_HOME": ""})
    results = {}
    for tool in ("nbtrail", "mlflow-sqlite"):
        with tempfile.TemporaryDirectory(prefix="nbtrail-bench-exp-") as work:
            print(f"{tool}: populating {branches} × {runs} runs…", file=sys.stderr)
            command = [sys.executable, __file__, "--populate", tool, "--work", work,
                       "--reps", str(args.reps), *(["--quick"] if args.quick else [])]
            out = subprocess.run(command, check=True, capture_output=True, text=True,
                                 env=os.environ | {"PYTHONPATH": str(ROOT / "src")})
            results[tool] = json.loads(out.stdout)
    print(report(results, branches, runs))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def report(results: dict[str, Any], branches: int, runs: int) -> str:
    nt, ml = results["nbtrail"], results["mlflow-sqlite"]
    lines = [f"{branches} branches × {runs} runs; median (p95) of repeated calls, ms",
             "", f"{'':28}{'nbtrail':>18}{'mlflow-sqlite':>18}{'ratio':>8}"]
    for label, key, peer in (("branches()", "branches", "branches"),
                             ("compare(), with latency", "compare", "compare"),
                             ("compare(), latency=False", "compare_no_latency", "compare")):
        a, b = nt[key], ml[peer]
        lines.append(f"{label:28}{a['median_ms']:>10.1f} ({a['p95_ms']:.1f})"
                     f"{b['median_ms']:>10.1f} ({b['p95_ms']:.1f})"
                     f"{b['median_ms'] / a['median_ms']:>7.1f}×")
    lines.append(f"{'first call (cold process)':28}{nt['branches']['first_ms']:>18.1f}"
                 f"{ml['branches']['first_ms']:>18.1f}")
    lines.append(f"{'populate, s (untimed setup)':28}{nt['populate_s']:>18.1f}"
                 f"{ml['populate_s']:>18.1f}")
    target = "met" if nt["branches"]["median_ms"] <= 200 else "NOT met"
    lines.append(f"\ntarget branches() median ≤ 200 ms: {target}; branches found: "
                 f"nbtrail {nt['branch_count']}, mlflow {ml['branch_count']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
