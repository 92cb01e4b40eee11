"""The sidebar's runs endpoint over 10,000 runs, against MLflow's REST ``runs/search``.

Both stores get the same 10,000 runs of 10 params and 10 metrics (``_worker.py populate``,
in parallel, untimed). Then each tool's own server answers over HTTP on this machine:

* nbtrail: ``jupyter server`` with the nbtrail server extension, ``GET
  /nbtrail/api/runs`` (token in the Authorization header, as the sidebar sends it);
* MLflow: ``mlflow server`` on its SQLite store, ``POST /api/2.0/mlflow/runs/search``.

Two queries, each timed as one HTTP request over a kept-alive connection (the way a
browser talks to a server): 1 cold request, then REPS timed ones, median and p95.

* ``page``: what the sidebar opens with: the newest 200 runs, with one metric column;
  MLflow: ``max_results=200`` ordered by start time.
* ``filter``: ``metrics.m0 > 0.5 and params.p1 = 'b'`` ordered by ``-metrics.m0``,
  100 runs, with ``metrics.m0`` and ``params.p1`` columns; MLflow: the same filter and
  order, ``max_results=100``. MLflow returns every param and metric of each run; nbtrail
  returns the columns asked for, as the sidebar does.

Usage::

    python benchmarks/lab.py                 # 10,000 runs, 50 repetitions (~3 minutes)
    python benchmarks/lab.py --runs 1000 --reps 20
    python benchmarks/lab.py --json out.json --no-mlflow
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKER = HERE / "_worker.py"
WHERE = "metrics.m0 > 0.5 and params.p1 = 'b'"
TARGET_P95_MS = 100.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NBTRAIL_HOME", "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p)
    env.update({"PYTHONWARNINGS": "ignore", "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "true", "MLFLOW_LOGGING_LEVEL": "ERROR"})
    return env


def populate(work: Path, runs: int, tools: list[str]) -> None:
    """Fill each tool's store in its own process, all at once (not timed)."""
    procs = []
    for tool in tools:
        env = base_env()
        if tool == "nbtrail":
            env["NBTRAIL_HOME"] = str(work / "nbtrail-store")
        else:
            env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        spec = {"scenario": "populate", "tool": tool, "start": 0, "stop": runs,
                "budget_s": 3600}
        out = work / f"populate-{tool}.json"
        procs.append((tool, out, subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(spec), str(out)], env=env, cwd=work)))
    for tool, out, proc in procs:
        if proc.wait() != 0:
            sys.exit(f"populating {tool} failed")
        done = json.loads(out.read_text())["runs"]
        print(f"  populated {tool}: {done:,} runs", file=sys.stderr)


def start_server(command: list[str], env: dict[str, str], work: Path, port: int,
                 probe: str, headers: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(work / f"server-{port}.log", "wb")  # noqa: SIM115 - the server owns it
    proc = subprocess.Popen(command, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            con = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            con.request("GET", probe, headers=headers)
            if con.getresponse().status < 500:
                return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"{command[0]} exited: {(work / f'server-{port}.log').read_text()}")
            time.sleep(0.2)
    sys.exit(f"{command[0]} did not answer in 120 s")


def timed(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str],
          reps: int) -> dict[str, Any]:
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def once() -> tuple[float, int]:
        start = time.perf_counter()
        con.request(method, path, body=body, headers=headers)
        response = con.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            sys.exit(f"{method} {path} answered {response.status}: {data[:300]!r}")
        return elapsed, len(data)

    cold, size = once()
    times = [once()[0] for _ in range(reps)]
    con.close()
    ordered = sorted(times)
    return {"cold_ms": cold * 1000, "median_ms": statistics.median(times) * 1000,
            "p95_ms": ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000,
            "bytes": size, "reps": reps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--no-mlflow", action="store_true", help="measure nbtrail only")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    tools = ["nbtrail"] if args.no_mlflow else ["nbtrail", "mlflow-sqlite"]
    work = Path(tempfile.mkdtemp(prefix="nbtrail-bench-lab-"))
    servers: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, Any]] = {}
    try:
        print(f"populating {args.runs:,} runs in {work}", file=sys.stderr)
        populate(work, args.runs, tools)

        port, token = free_port(), secrets.token_hex(16)
        auth = {"Authorization": f"token {token}"}
        jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
        servers.append(start_server(
            [jupyter, "server", "--no-browser", "--allow-root", f"--port={port}",
             "--ip=127.0.0.1", f"--IdentityProvider.token={token}",
             f"--NbtrailServer.store_path={work / 'nbtrail-store'}", str(work)],
            base_env(), work, port, "/nbtrail/api/store", auth))
        page = urllib.parse.urlencode({"limit": 200, "columns": "metrics.m0"})
        filtered = urllib.parse.urlencode({"where": WHERE, "order_by": "-metrics.m0",
                                           "limit": 100, "columns": "metrics.m0,params.p1"})
        results["nbtrail page"] = timed(port, "GET", f"/nbtrail/api/runs?{page}", None, auth,
                                        args.reps)
        results["nbtrail filter"] = timed(port, "GET", f"/nbtrail/api/runs?{filtered}", None,
                                          auth, args.reps)

        if "mlflow-sqlite" in tools:
            mport = free_port()
            mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
            servers.append(start_server(
                [mlflow, "server", "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
                 "--host", "127.0.0.1", "--port", str(mport), "--workers", "1"],
                base_env(), work, mport, "/health", {}))
            json_headers = {"Content-Type": "application/json"}
            search = "/api/2.0/mlflow/runs/search"
            results["mlflow page"] = timed(mport, "POST", search, json.dumps({
                "experiment_ids": ["0"], "max_results": 200,
                "order_by": ["attributes.start_time DESC"]}).encode(), json_headers, args.reps)
            results["mlflow filter"] = timed(mport, "POST", search, json.dumps({
                "experiment_ids": ["0"], "filter": WHERE, "max_results": 100,
                "order_by": ["metrics.m0 DESC"]}).encode(), json_headers, args.reps)
    finally:
        for server in servers:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nruns endpoint over {args.runs:,} runs, {args.reps} requests each "
          f"(target: nbtrail p95 <= {TARGET_P95_MS:.0f} ms)\n")
    print(f"{'query':<8} {'tool':<8} {'cold ms':>8} {'median ms':>10} {'p95 ms':>8} "
          f"{'bytes':>9} {'mlflow/nbtrail (median)':>24}  met")
    for query in ("page", "filter"):
        ours = results[f"nbtrail {query}"]
        for tool in ("nbtrail", "mlflow"):
            row = results.get(f"{tool} {query}")
            if row is None:
                continue
            ratio = (f"{row['median_ms'] / ours['median_ms']:.1f}×" if tool == "mlflow"
                     else "")
            met = ("yes" if row["p95_ms"] <= TARGET_P95_MS else "NO") if tool == "nbtrail" \
                else ""
            print(f"{query:<8} {tool:<8} {row['cold_ms']:8.1f} {row['median_ms']:10.1f} "
                  f"{row['p95_ms']:8.1f} {row['bytes']:9,} {ratio:>24}  {met}")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
