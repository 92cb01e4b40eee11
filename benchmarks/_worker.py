"""One measurement of one tool, in a fresh interpreter.

Started by ``run.py`` as ``python _worker.py SPEC_JSON OUT_JSON``; writes its result to
OUT_JSON. Only the standard library is imported at module level, so the tracker under
test (nbtrail or MLflow) is imported cold inside the measurement process.

The tool and its store come from the environment that ``run.py`` sets:
``NBTRAIL_HOME`` for nbtrail, ``MLFLOW_TRACKING_URI`` for MLflow.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import os
import random
import statistics
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

METRIC_KEYS = [f"m{i}" for i in range(10)]
QUERY_WHERE = "metrics.m0 > 0.5 and params.p1 = 'b'"
clock = time.perf_counter


# -- the data every tool logs (identical across tools, deterministic) ----------------------


def run_params(index: int) -> dict[str, Any]:
    """Ten params of run ``index``: two strings, four ints, four floats."""
    rng = random.Random(index)
    values: dict[str, Any] = {"p0": f"group-{index % 7}", "p1": rng.choice("abc")}
    for i in range(2, 6):
        values[f"p{i}"] = rng.randrange(1000)
    for i in range(6, 10):
        values[f"p{i}"] = round(rng.random(), 6)
    return values


def run_metrics(index: int, step: int = 0) -> dict[str, float]:
    """Ten metric values of run ``index`` at ``step``, uniform in [0, 1)."""
    rng = random.Random(1_000_003 * index + step + 17)
    return {key: rng.random() for key in METRIC_KEYS}


# -- tool adapters -----------------------------------------------------------------------
#
# Each adapter hands out the library's own logging callables (bound methods for nbtrail,
# module functions for MLflow), so the timed loops call the library directly.


class Nbtrail:
    """nbtrail through its public API (``import nbtrail as nt``)."""

    name = "nbtrail"

    def __init__(self) -> None:
        import nbtrail as nt

        self.nt = nt

    def run(self, name: str) -> Any:
        return self.nt.run(name=name)

    def sync(self) -> None:
        self.nt.sync()

    def query(self) -> Any:
        return self.nt.runs(where=QUERY_WHERE, order_by="-metrics.m0", limit=100)

    def populate(self, start: int, stop: int, deadline: float) -> int:
        nt = self.nt
        done = start
        for index in range(start, stop):
            if time.monotonic() > deadline:
                break
            with nt.run(name=f"run-{index}") as run:
                run.log_params(run_params(index))
                run.log_metrics(run_metrics(index), step=0)
            done = index + 1
        nt.sync()
        return done

    def counts(self) -> dict[str, int]:
        def count(table: str) -> int:
            return int(self.nt.sql(f"SELECT count(*) AS n FROM {table}")["n"][0])

        return {"runs": count("runs"), "params": count("params"),
                "metric points": count("metrics")}

    def autolog(self, disable: bool = False) -> None:
        self.nt.autolog(disable=disable)


class Mlflow:
    """MLflow's fluent API, store chosen by ``MLFLOW_TRACKING_URI``."""

    def __init__(self, name: str) -> None:
        self.name = name
        warnings.filterwarnings("ignore")
        import mlflow

        for logger in ("mlflow", "alembic", "sqlalchemy"):
            logging.getLogger(logger).setLevel(logging.ERROR)
        self.mlflow = mlflow
        self._handle = types.SimpleNamespace(
            log_param=mlflow.log_param, log_params=mlflow.log_params,
            log_metric=mlflow.log_metric, log_metrics=mlflow.log_metrics,
        )

    @contextlib.contextmanager
    def run(self, name: str) -> Iterator[Any]:
        with self.mlflow.start_run(run_name=name):
            yield self._handle

    def sync(self) -> None:
        """Nothing to do: MLflow writes each call through before returning."""

    def query(self) -> Any:
        return self.mlflow.search_runs(filter_string=QUERY_WHERE,
                                       order_by=["metrics.m0 DESC"], max_results=100)

    def _client_and_experiment(self) -> tuple[Any, str]:
        client = self.mlflow.MlflowClient()
        experiment = client.get_experiment_by_name("Default")
        return client, experiment.experiment_id

    def populate(self, start: int, stop: int, deadline: float) -> int:
        from mlflow.entities import Metric, Param

        client, experiment_id = self._client_and_experiment()
        done = start
        for index in range(start, stop):
            if time.monotonic() > deadline:
                break
            run_id = client.create_run(experiment_id, run_name=f"run-{index}").info.run_id
            stamp = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, stamp, 0) for k, v in run_metrics(index).items()],
                params=[Param(k, str(v)) for k, v in run_params(index).items()],
            )
            client.set_terminated(run_id)
            done = index + 1
        return done

    def counts(self) -> dict[str, int]:
        client, experiment_id = self._client_and_experiment()
        found = {"runs": 0, "params": 0, "metric points": 0}
        token = None
        while True:
            page = client.search_runs([experiment_id], max_results=1000, page_token=token)
            for run in page:
                found["runs"] += 1
                found["params"] += len(run.data.params)
                for key in run.data.metrics:
                    found["metric points"] += len(
                        client.get_metric_history(run.info.run_id, key))
            token = page.token
            if not token:
                return found

    def autolog(self, disable: bool = False) -> None:
        import mlflow.sklearn

        mlflow.sklearn.autolog(disable=disable)


def make_tool(name: str) -> Nbtrail | Mlflow:
    return Nbtrail() if name == "nbtrail" else Mlflow(name)


# -- scenarios -----------------------------------------------------------------------------


def _warm_up(tool: Nbtrail | Mlflow) -> float:
    """Create the store and load lazily imported code with one small run; return seconds."""
    start = clock()
    with tool.run("warm-up") as run:
        run.log_param("warm", 1)
        run.log_metric("warm", 1.0, step=0)
    tool.sync()
    return clock() - start


def log_runs(tool: Nbtrail | Mlflow, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec['runs']`` runs × 10 params × 10 metrics, single or batch calls."""
    single = spec["mode"] == "single"
    data = [(run_params(i), run_metrics(i)) for i in range(spec["runs"])]
    first_run = _warm_up(tool)
    in_calls = 0.0
    start = clock()
    for index, (params, metrics) in enumerate(data):
        with tool.run(f"run-{index}") as run:
            if single:
                log_param, log_metric = run.log_param, run.log_metric
                t = clock()
                for key, value in params.items():
                    log_param(key, value)
                for key, value in metrics.items():
                    log_metric(key, value, step=0)
                in_calls += clock() - t
            else:
                t = clock()
                run.log_params(params)
                run.log_metrics(metrics, step=0)
                in_calls += clock() - t
    wall = clock() - start
    t = clock()
    tool.sync()
    sync = clock() - t
    calls = len(data) * (20 if single else 2)
    return {"calls": calls, "in_calls_s": in_calls, "wall_s": wall, "sync_s": sync,
            "first_run_s": first_run}


def steps(tool: Nbtrail | Mlflow, spec: dict[str, Any]) -> dict[str, Any]:
    """One run with ``spec['steps']`` points of one metric, one call per step.

    Stops early (at a multiple of 500 steps) once ``spec['budget_s']`` is spent, so a slow
    store does not hold the whole benchmark up; ``calls`` says how many were made.
    """
    rng = random.Random(7)
    values = [rng.random() for _ in range(spec["steps"])]
    first_run = _warm_up(tool)
    deadline = clock() + spec["budget_s"]
    calls = 0
    start = clock()
    with tool.run("steps") as run:
        log_metric = run.log_metric
        t = clock()
        for first in range(0, len(values), 500):
            for step in range(first, min(first + 500, len(values))):
                log_metric("loss", values[step], step=step)
            calls = min(first + 500, len(values))
            if clock() > deadline:
                break
        in_calls = clock() - t
    wall = clock() - start
    t = clock()
    tool.sync()
    sync = clock() - t
    return {"calls": calls, "in_calls_s": in_calls, "wall_s": wall, "sync_s": sync,
            "first_run_s": first_run}


def populate(tool: Nbtrail | Mlflow, spec: dict[str, Any]) -> dict[str, Any]:
    """Log runs ``start..stop`` (untimed setup of the query scenario), within a budget."""
    start = clock()
    done = tool.populate(spec["start"], spec["stop"], time.monotonic() + spec["budget_s"])
    return {"runs": done, "elapsed_s": clock() - start}


def query(tool: Nbtrail | Mlflow, spec: dict[str, Any]) -> dict[str, Any]:
    """The filtered, ordered query: first (cold) call, then repetitions within a budget."""
    t = clock()
    frame = tool.query()
    first = clock() - t
    times: list[float] = []
    deadline = time.monotonic() + spec["budget_s"]
    while len(times) < spec["reps"]:
        t = clock()
        frame = tool.query()
        times.append(clock() - t)
        if len(times) >= spec["min_reps"] and time.monotonic() > deadline:
            break
    ordered = sorted(times)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {"first_s": first, "median_s": statistics.median(times), "p95_s": p95,
            "reps": len(times), "rows": len(frame), "frame_type": type(frame).__module__}


def concurrent(tool_name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Start writer processes together, by default on a store that does not exist yet.

    Afterwards this process (a fresh reader) counts what the store holds.
    """
    workdir = Path(spec["workdir"])
    go = workdir / "go"
    children = []
    for worker in range(spec["procs"]):
        child = {**spec, "scenario": "concurrent-child", "worker": worker}
        out = workdir / f"child-{worker}.json"
        with open(workdir / f"child-{worker}.stderr", "w") as err:
            children.append((out, subprocess.Popen(
                [sys.executable, __file__, json.dumps(child), str(out)],
                stdout=subprocess.DEVNULL, stderr=err,
            )))
    deadline = time.monotonic() + 120
    while not all((workdir / f"ready-{w}").exists() for w in range(spec["procs"])):
        if time.monotonic() > deadline or any(p.poll() is not None for _, p in children):
            break
        time.sleep(0.005)
    start = clock()
    go.touch()
    errors, kinds, stderr_tails = 0, collections.Counter(), []
    for out, proc in children:
        try:
            proc.wait(timeout=max(1.0, start + spec["child_timeout_s"] - clock()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            errors += 1
            kinds["writer process timed out"] += 1
        if proc.returncode != 0:
            errors += 1
            kinds[f"writer process exited with code {proc.returncode}"] += 1
            err = out.with_suffix(".stderr").read_text(errors="replace").strip()
            stderr_tails.append(err.splitlines()[-1:])
        if out.exists():
            result = json.loads(out.read_text())
            errors += result["errors"]
            kinds.update(result["kinds"])
    wall = clock() - start
    already = spec.get("already", {})  # records of the run that created an existing store
    expected = {"runs": spec["procs"] * spec["runs"],
                "params": spec["procs"] * spec["runs"] * 10,
                "metric points": spec["procs"] * spec["runs"] * 10 * spec["steps"]}
    expected = {key: n + already.get(key, 0) for key, n in expected.items()}
    try:
        found = make_tool(tool_name).counts()
    except Exception as exc:
        found = {key: 0 for key in expected}
        kinds[f"counting afterwards failed: {_describe(exc)}"] += 1
    return {"errors": errors, "error_kinds": dict(kinds.most_common(5)), "wall_s": wall,
            "expected": expected, "found": found, "stderr": stderr_tails}


def concurrent_child(tool_name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One writer of the concurrent scenario; exceptions are counted, not raised."""
    workdir = Path(spec["workdir"])
    worker = spec["worker"]
    tool = make_tool(tool_name)
    (workdir / f"ready-{worker}").touch()
    while not (workdir / "go").exists():
        time.sleep(0.001)
    errors, kinds = 0, collections.Counter()
    for k in range(spec["runs"]):
        index = worker * 100_000 + k
        try:
            with tool.run(f"w{worker}-run-{k}") as run:
                run.log_params(run_params(index))
                for step in range(spec["steps"]):
                    run.log_metrics(run_metrics(index, step), step=step)
        except Exception as exc:
            errors += 1
            kinds[_describe(exc)] += 1
    try:
        tool.sync()
    except Exception as exc:
        errors += 1
        kinds[_describe(exc)] += 1
    return {"errors": errors, "kinds": dict(kinds)}


def autolog(tool: Nbtrail | Mlflow, spec: dict[str, Any]) -> dict[str, Any]:
    """Fit time of LogisticRegression on 1000×20 data with and without autolog."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=1000, n_features=20, random_state=0)

    def fit() -> float:
        t = clock()
        LogisticRegression(max_iter=1000).fit(x, y)
        return clock() - t

    fit()  # warm scikit-learn up
    plain = [fit() for _ in range(5)]
    t = clock()
    tool.autolog()
    enable = clock() - t
    t = clock()
    first = fit()
    tool.sync()
    first_with_sync = clock() - t
    # Plain and autologged fits alternate, so a burst of load on the machine hits both.
    fits, with_sync = [], []
    for _ in range(spec["reps"]):
        tool.autolog(disable=True)
        plain += [fit(), fit()]
        tool.autolog()
        seconds = fit()
        t = clock()
        tool.sync()
        fits.append(seconds)
        with_sync.append(seconds + clock() - t)
    base = statistics.median(plain)
    return {"plain_s": base, "plain_fits": len(plain), "autolog_s": statistics.median(fits),
            "overhead_s": statistics.median(fits) - base,
            "overhead_incl_sync_s": statistics.median(with_sync) - base,
            "first_overhead_s": first - base, "first_overhead_incl_sync_s": first_with_sync - base,
            "enable_s": enable, "reps": spec["reps"]}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:140] if text else ''}".rstrip(": ")


SCENARIOS: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "log": log_runs, "steps": steps, "populate": populate, "query": query, "autolog": autolog,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    out = Path(sys.argv[2])
    warnings.filterwarnings("ignore")
    scenario, tool_name = spec["scenario"], spec["tool"]
    if scenario == "concurrent":
        result = concurrent(tool_name, spec)
    elif scenario == "concurrent-child":
        result = concurrent_child(tool_name, spec)
    else:
        result = SCENARIOS[scenario](make_tool(tool_name), spec)
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
