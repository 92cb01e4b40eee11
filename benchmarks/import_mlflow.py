"""Import throughput: ``nt.import_mlflow`` from an MLflow sqlite store of RUNS runs.

The MLflow store is populated first (untimed) through ``MlflowClient.log_batch``: RUNS runs
(1,000 by default) in two experiments, every fifth a parent and the four after it its
nested children, each with 10 params, 3 tags and 10 metrics of STEPS points (10 by
default); every tenth run also logs a 10 kB artifact. Then, each in a fresh process:

* ``read``: what any importer has to read through MLflow's client, and nothing else:
  ``search_runs`` page by page, ``get_metric_history`` of every metric of every run, and
  each artifact listed and downloaded. The floor MLflow's client sets.
* ``import``: ``nt.import_mlflow`` into a new nbtrail store, including its final fold.
* ``again``: the same import a second time, when nothing is new (every run unchanged).

Printed for each: the startup (importing MLflow and opening its store, seconds whatever the
store holds), then the time of the work itself with its runs and metric points per
second, and how the import compares with the bare read.

Usage::

    python benchmarks/import_mlflow.py               # 1,000 runs × 10 metrics × 10 steps
    python benchmarks/import_mlflow.py --runs 50     # a smoke test
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
METRICS, PARAMS, FAMILY = 10, 10, 5  # a parent and its four children


def populate(uri: str, work: Path, runs: int, steps: int) -> dict[str, int]:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiments = [client.create_experiment(f"exp-{i}",
                                            artifact_location=(work / f"art-{i}").as_uri())
                   for i in range(2)]
    artifact = work / "weights.bin"
    artifact.write_bytes(os.urandom(10_000))
    parent = None
    points = 0
    for r in range(runs):
        start = 1_700_000_000_000 + 60_000 * r
        tags = {} if r % FAMILY == 0 else {"mlflow.parentRunId": parent}
        run = client.create_run(experiments[(r // FAMILY) % 2], run_name=f"run-{r}",
                                start_time=start, tags=tags)
        run_id = run.info.run_id
        if r % FAMILY == 0:
            parent = run_id
        metrics = [Metric(f"m{k}", (r * k + s) / 1000, start + 100 * s + k, s)
                   for k in range(METRICS) for s in range(steps)]
        client.log_batch(run_id, metrics=metrics,
                         params=[Param(f"p{k}", str(r % (k + 2))) for k in range(PARAMS)],
                         tags=[RunTag("team", "risk"), RunTag("seed", str(r)),
                               RunTag("stage", "bench")])
        points += len(metrics)
        if r % 10 == 0:
            client.log_artifact(run_id, str(artifact))
        client.set_terminated(run_id, "FINISHED", end_time=start + 30_000)
    return {"runs": runs, "points": points}


def measure(phase: str, uri: str, store: str) -> dict[str, Any]:
    # Importing MLflow and opening its store cost seconds whatever the store holds: timed
    # apart, so the rates below are those of the work that grows with the store.
    start = time.perf_counter()
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    startup_s = time.perf_counter() - start
    start = time.perf_counter()
    if phase == "read":
        runs = points = artifacts = 0
        tmp = tempfile.mkdtemp(prefix="nbtrail-bench-read-")
        token = None
        while True:
            page = client.search_runs(ids, max_results=1000, page_token=token)
            for run in page:
                runs += 1
                for key in run.data.metrics:
                    points += len(client.get_metric_history(run.info.run_id, key))
                artifacts += read_artifacts(run.info.artifact_uri, uri, tmp)
            token = page.token
            if not token:
                break
        return {"startup_s": startup_s, "wall_s": time.perf_counter() - start, "runs": runs,
                "points": points, "artifacts": artifacts}
    import nbtrail as nt

    result = nt.import_mlflow(uri, store=nt.open_store(store))
    return {"startup_s": startup_s, "wall_s": time.perf_counter() - start,
            "runs": result.runs + result.runs_updated + result.runs_unchanged,
            "points": result.metric_points, "new_runs": result.runs}


def read_artifacts(artifact_uri: str, uri: str, tmp: str, path: str | None = None) -> int:
    """List a run's artifacts and download each, as the import does; how many."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(artifact_uri=artifact_uri, tracking_uri=uri)
    found = 0
    for info in repository.list_artifacts(path):
        if info.is_dir:
            found += read_artifacts(artifact_uri, uri, tmp, info.path)
        else:
            os.remove(repository.download_artifacts(info.path, dst_path=tmp))
            found += 1
    return found


def in_fresh_process(phase: str, uri: str, store: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--measure", phase, "--uri", uri,
                          "--store", store], check=True, capture_output=True, text=True,
                         env=os.environ | {"PYTHONPATH": str(ROOT / "src")})
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs in the MLflow store")
    parser.add_argument("--steps", type=int, default=10, help="points of each metric")
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                       "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                       "MLFLOW_LOGGING_LEVEL": "ERROR", "PYTHONWARNINGS": "ignore"})
    if args.measure:
        print(json.dumps(measure(args.measure, args.uri, args.store)))
        return 0
    with tempfile.TemporaryDirectory(prefix="nbtrail-bench-import-") as tmp:
        work = Path(tmp)
        uri = f"sqlite:///{work / 'mlflow.db'}"
        print(f"populating MLflow with {args.runs:,} runs…", file=sys.stderr)
        start = time.perf_counter()
        made = populate(uri, work, args.runs, args.steps)
        populate_s = time.perf_counter() - start
        store = str(work / "nbtrail")
        results = {phase: in_fresh_process(phase, uri, store)
                   for phase in ("read", "import", "again")}
    for phase in ("read", "import"):
        got = results[phase]
        if (got["runs"], got["points"]) != (made["runs"], made["points"]):
            raise SystemExit(f"{phase} saw {got['runs']} runs / {got['points']} points, "
                             f"expected {made['runs']} / {made['points']}")
    print(report(results, made, populate_s, args.steps))
    if args.json:
        Path(args.json).write_text(json.dumps({"made": made, **results}, indent=2))
    return 0


def report(results: dict[str, Any], made: dict[str, int], populate_s: float,
           steps: int) -> str:
    lines = [f"MLflow sqlite store: {made['runs']:,} runs × {METRICS} metrics × {steps} "
             f"steps = {made['points']:,} points (populated in {populate_s:.1f} s, untimed)",
             "", f"{'':36}{'startup s':>10}{'work s':>9}{'runs/s':>9}{'points/s':>10}"]
    labels = {"read": "read only, MLflow client", "import": "nt.import_mlflow, new store",
              "again": "nt.import_mlflow again, no change"}
    for phase, label in labels.items():
        got = results[phase]
        wall = got["wall_s"]
        points = made["points"] if phase != "again" else 0
        lines.append(f"{label:36}{got['startup_s']:>10.2f}{wall:>9.2f}"
                     f"{made['runs'] / wall:>9,.0f}{points / wall:>10,.0f}")
    ratio = results["import"]["wall_s"] / results["read"]["wall_s"]
    lines.append(f"\nstartup: importing MLflow and opening its store, in each fresh process. "
                 f"import / read work: {ratio:.2f}× (what writing into nbtrail adds to "
                 f"reading MLflow); the second import found {results['again']['new_runs']} "
                 "new runs")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
