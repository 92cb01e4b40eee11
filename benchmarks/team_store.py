"""The team store on PostgreSQL, against MLflow's tracking server on the same PostgreSQL.

    python benchmarks/team_store.py --postgres postgresql://postgres@127.0.0.1:5432/postgres
    python benchmarks/team_store.py --postgres URL --runs 100000 --calls 20000

The server is yours (any PostgreSQL nbtrail may create databases on); each scenario gets
a new database on it. Scenarios, each in fresh processes:

* ``log_call``: the cost of one ``log_metric`` call in a training loop, nbtrail logging
  to the team store against MLflow's client logging to ``mlflow server
  --backend-store-uri postgresql+psycopg://…`` on the same server (every MLflow call is
  an HTTP request answered after its row is written). Target: nbtrail >= 100x cheaper.
* ``ship``: metric points shipped into PostgreSQL per second by one ``nt.sync()`` of a
  backlog of 1 M points. Target: >= 200,000 points/s.
* ``query``: the median of 5 filtered, ordered queries over ``--runs`` runs
  (``nt.runs(where="metrics.loss < 0.2 and params.lr = 0.5", order_by="metrics.loss",
  limit=100)``), after the first. Target: <= 200 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Logs CALLS metric points in one run, timing the calls only; prints seconds per call.
NBTRAIL_CALLS = """
import json, sys, time, nbtrail as nt
nt.config.set(store=sys.argv[1], home=sys.argv[2], capture_git=False, system_metrics=False)
calls = int(sys.argv[3])
with nt.run(name="calls") as run:
    run.log_metric("warm", 0.0, step=0)
    started = time.perf_counter()
    for step in range(calls):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
    spent = time.perf_counter() - started
nt.sync()
print(json.dumps({"per_call_s": spent / calls}))
"""

MLFLOW_CALLS = """
import json, sys, time, mlflow
mlflow.set_tracking_uri(sys.argv[1])
calls = int(sys.argv[2])
with mlflow.start_run():
    mlflow.log_metric("warm", 0.0, step=0)
    started = time.perf_counter()
    for step in range(calls):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    spent = time.perf_counter() - started
print(json.dumps({"per_call_s": spent / calls}))
"""

# Logs RUNS runs of STEPS points without shipping, then times one nt.sync().
SHIP = """
import json, sys, time, nbtrail as nt
nt.config.set(store=sys.argv[1], home=sys.argv[2], capture_git=False, system_metrics=False,
              fold_interval=1e9)
runs, steps = int(sys.argv[3]), int(sys.argv[4])
nt.sync()  # the schema, and a connection: not what is timed
for r in range(runs):
    with nt.run(name=f"r{r}") as run:
        for step in range(steps):
            run.log_metric("loss", step * 0.1, step=step)
started = time.perf_counter()
nt.sync()
print(json.dumps({"points": runs * steps, "ship_s": time.perf_counter() - started}))
"""

# Logs RUNS short runs, ships them, then times the filtered, ordered query.
QUERY = """
import json, statistics, sys, time, nbtrail as nt
nt.config.set(store=sys.argv[1], home=sys.argv[2], capture_git=False, system_metrics=False,
              capture_environment=False)
runs = int(sys.argv[3])
started = time.perf_counter()
for r in range(runs):
    with nt.run(name=f"r{r}") as run:
        run.log_param("lr", r % 10 / 10)
        run.log_metric("loss", 1.0 / (1 + r % 97))
logged = time.perf_counter()
nt.sync()
shipped = time.perf_counter()
times = []
for _ in range(6):
    t = time.perf_counter()
    frame = nt.runs(where="metrics.loss < 0.2 and params.lr = 0.5", order_by="metrics.loss",
                    limit=100)
    times.append(time.perf_counter() - t)
assert frame.height == 100, frame.height
print(json.dumps({"runs": runs, "log_s": logged - started, "ship_s": shipped - logged,
                  "query_ms": statistics.median(times[1:]) * 1000,
                  "first_query_ms": times[0] * 1000}))
"""


def _database(server: str, name: str) -> str:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server.rsplit('/', 1)[0]}/{name}"


def _python(code: str, *args: object, timeout: float = 3600) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_call(server: str, folder: Path, calls: int) -> dict:
    """Seconds per ``log_metric`` call: nbtrail's team store, MLflow's tracking server."""
    ours = _python(NBTRAIL_CALLS, _database(server, "bench_calls"), folder / "calls", calls)
    backend = _database(server, "bench_mlflow").replace("postgresql://", "postgresql+psycopg://")
    port = _free_port()
    mlflow = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
         "--default-artifact-root", str(folder / "mlflow-artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or mlflow.poll() is not None:
                    raise SystemExit("mlflow server did not start") from None
                time.sleep(0.5)
        # MLflow's calls are round trips: a tenth of the calls tells their cost as well.
        theirs = _python(MLFLOW_CALLS, f"http://127.0.0.1:{port}", max(calls // 10, 200))
    finally:
        mlflow.terminate()
        mlflow.wait(timeout=30)
    return {"nbtrail_us": ours["per_call_s"] * 1e6, "mlflow_server_us": theirs["per_call_s"] * 1e6,
            "ratio": theirs["per_call_s"] / ours["per_call_s"]}


def ship(server: str, folder: Path, runs: int, steps: int) -> dict:
    """Metric points per second shipped by one ``nt.sync()`` of a backlog."""
    report = _python(SHIP, _database(server, "bench_ship"), folder / "ship", runs, steps)
    return {**report, "points_per_s": report["points"] / report["ship_s"]}


def query(server: str, folder: Path, runs: int) -> dict:
    """A filtered, ordered query over ``runs`` runs of the team store."""
    return _python(QUERY, _database(server, "bench_query"), folder / "query", runs)


def main() -> None:
    """Run the scenarios; print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, metavar="URL",
                        help="a PostgreSQL server to create the benchmark's databases on")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--ship-runs", type=int, default=100)
    parser.add_argument("--ship-steps", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=100_000, help="runs the query goes over")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbtrail-bench-team-") as tmp:
        folder = Path(tmp)
        print(json.dumps({"log_call": log_call(args.postgres, folder, args.calls)}), flush=True)
        print(json.dumps({"ship": ship(args.postgres, folder, args.ship_runs,
                                       args.ship_steps)}), flush=True)
        print(json.dumps({"query": query(args.postgres, folder, args.runs)}), flush=True)


if __name__ == "__main__":
    main()
