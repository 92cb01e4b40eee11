"""Model serving: ``nbtrail serve`` against ``mlflow models serve``, and packaging time.

One scikit-learn pipeline (one-hot encoding + scaling + logistic regression on a pandas
frame of 3 columns) is served by both tools on loopback, each with one uvicorn worker
(both tools' default), and loaded by the same generator, ``wrk`` (Debian package
``wrk``), with one thread and 4 connections (``--connections``) for DURATION seconds
after a warm-up. Bodies carry the same rows: ``{"records": [...]}`` for nbtrail's
``/predict``, ``{"dataframe_records": [...]}`` for MLflow's ``/invocations``, plus
nbtrail's KServe V2 endpoint with one tensor per column. Both validate input against a
signature (MLflow's from its input example). nbtrail runs as it does in an image: with
its prediction log on.

Also timed: ``nt.package(..., build=False)``, from model id to a finished build context,
median of 5.

Usage::

    python benchmarks/serving.py              # 10 s per case (~2 minutes)
    python benchmarks/serving.py --duration 3 # a quick look
    python benchmarks/serving.py --connections 1   # one request at a time: no batching
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}"):read("*a")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout} s")


def post(url: str, body: bytes) -> object:
    request = urllib.request.Request(url, data=body,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def data(n: int = 2_000):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "tenure_months": rng.integers(1, 72, n),
        "monthly_charges": rng.normal(70, 20, n).round(2),
        "contract": rng.choice(["month-to-month", "one-year", "two-year"], n),
    })
    target = ((frame.contract == "month-to-month") * 1.5 - frame.tenure_months / 24
              + rng.normal(0, 1, n) > 0).astype(int)
    return frame, target


def model():
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return make_pipeline(
        make_column_transformer((OneHotEncoder(), ["contract"]),
                                (StandardScaler(), ["tenure_months", "monthly_charges"])),
        LogisticRegression(),
    )


def load(url: str, body_file: Path, duration: int, connections: int,
         workdir: Path) -> dict[str, float]:
    script = workdir / f"{body_file.stem}.lua"
    script.write_text(LUA.format(body=body_file))
    subprocess.run(["wrk", "-t1", f"-c{connections}", "-d2s", "-s", str(script), url],
                   capture_output=True, check=True)  # warm-up
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s",
                          str(script), url], capture_output=True, text=True,
                         check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise SystemExit(f"{url} answered {non_2xx.group(1)} errors:\n{out}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": ms("50%"), "p99_ms": ms("99%")}


def setup(name: str) -> Path:
    """Check for wrk, then work in a new temporary folder with a store of its own there."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    sys.path.insert(0, str(ROOT / "src"))
    import nbtrail as nt

    workdir = Path(tempfile.mkdtemp(prefix=f"nbtrail-bench-{name}-"))
    # Registered before nbtrail's own exit hook, so it runs after the store is closed.
    atexit.register(shutil.rmtree, workdir, True)
    os.chdir(workdir)
    nt.config.set(home=str(workdir / "store"), capture_git=False)
    return workdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per case")
    parser.add_argument("--connections", type=int, default=4,
                        help="concurrent connections of the load generator (1: no batching)")
    args = parser.parse_args()
    workdir = setup("serving")
    import mlflow.sklearn

    import nbtrail as nt

    frame, target = data()
    fitted = model().fit(frame, target)
    with nt.run(name="bench") as run:
        run.log_dataset(frame, name="train", role="train")
        model_id = run.log_model(fitted, name="churn")
    timings = []
    for i in range(5):
        start = time.perf_counter()
        pkg = nt.package(model_id, name="churn", output=workdir / f"pkg{i}", build=False)
        timings.append(time.perf_counter() - start)
    mlflow.sklearn.save_model(fitted, str(workdir / "mlflow-model"),
                              input_example=frame.head(5))

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "true"}
    nb_port, ml_port = free_port(), free_port()
    servers = {
        "nbtrail": subprocess.Popen(
            [sys.executable, "-m", "nbtrail.cli", "serve", str(pkg.context), "--port",
             str(nb_port), "--log-dir", str(workdir / "predictions")],
            # A file, not a pipe: a server logging every request blocks on a full pipe.
            env=env, stdout=(workdir / "nbtrail.log").open("w"), stderr=subprocess.STDOUT),
        "mlflow": subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m",
             str(workdir / "mlflow-model"), "-p", str(ml_port), "--env-manager", "local",
             "-w", "1"],
            env=env, stdout=(workdir / "mlflow.log").open("w"), stderr=subprocess.STDOUT),
    }
    rows: list[tuple[str, str, dict[str, float]]] = []
    try:
        wait_ready(f"http://127.0.0.1:{nb_port}/v2/health/ready", servers["nbtrail"])
        wait_ready(f"http://127.0.0.1:{ml_port}/ping", servers["mlflow"])
        for n in (1, 100):
            records = frame.head(n).to_dict(orient="records")
            bodies = {
                "nbtrail /predict": (f"http://127.0.0.1:{nb_port}/predict",
                                     {"records": records}),
                "nbtrail V2 infer": (f"http://127.0.0.1:{nb_port}/v2/models/churn/infer",
                                     {"inputs": [{"name": c, "shape": [n],
                                                  "datatype": "BYTES",
                                                  "data": frame[c].head(n).tolist()}
                                                 for c in frame.columns]}),
                "mlflow /invocations": (f"http://127.0.0.1:{ml_port}/invocations",
                                        {"dataframe_records": records}),
            }
            expected = fitted.predict(frame.head(n)).tolist()
            for label, (url, body) in bodies.items():
                body_file = workdir / f"{label.split()[0]}-{label.split()[1][1:]}-{n}.json"
                body_file.write_bytes(json.dumps(body).encode())
                answer = post(url, body_file.read_bytes())
                got = (answer.get("predictions") if isinstance(answer, dict) else None)
                if label.endswith("infer"):
                    got = answer["outputs"][0]["data"]
                assert got == expected, (label, got, expected)
                rows.append((f"{n} row{'s' if n > 1 else ''}", label,
                             load(url, body_file, args.duration, args.connections,
                                  workdir)))
                print(f"measured {label}, {n} rows", file=sys.stderr)
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(timeout=30)

    print(f"\nnt.package(build=False): median {statistics.median(timings):.2f} s "
          f"(min {min(timings):.2f}, max {max(timings):.2f}) over 5\n")
    print("| request | server | requests/s | p50 ms | p99 ms | throughput vs MLflow |")
    print("|---|---|---|---|---|---|")
    for size in dict.fromkeys(r[0] for r in rows):
        group = [r for r in rows if r[0] == size]
        base = next(r[2] for r in group if r[1].startswith("mlflow"))
        for _, label, result in group:
            ratio = result["rps"] / base["rps"]
            print(f"| {size} | {label} | {result['rps']:,.0f} | {result['p50_ms']:.2f} | "
                  f"{result['p99_ms']:.2f} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
