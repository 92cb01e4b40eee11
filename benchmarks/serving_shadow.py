"""Champion/challenger serving: what a shadow and a canary cost the champion's answers.

The same scikit-learn pipeline as ``benchmarks/serving.py`` (a challenger refitted with
another regularisation) is registered twice, as ``churn@champion`` and
``churn@challenger``, and packaged three ways: the champion alone, the champion with the
challenger as a shadow, and the champion with the challenger as a 10 % canary. Each
package is served in turn by ``nbtrail serve`` (one uvicorn worker, prediction log on, as
in an image) and loaded by ``wrk`` (one thread, ``--connections``, DURATION seconds after
a 2 s warm-up) with the same bodies; the single-model server of the same run is the
baseline. After each run the server's ``/metrics`` say how many requests the shadow
predicted and how many it dropped because its queue was full.

Targets: with one shadow, champion p99 ≤ 1.1× and throughput ≥ 80 % of the single model.

Usage::

    python benchmarks/serving_shadow.py                # 10 s per case (~2 minutes)
    python benchmarks/serving_shadow.py --duration 3   # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import urllib.request

from serving import ROOT, data, free_port, load, model, post, setup, wait_ready


def shadow_counts(url: str) -> tuple[float, float]:
    """Requests the shadow (version 2) predicted and dropped, from the server's metrics."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()

    def value(pattern: str) -> float:
        found = re.search(pattern + r" (\S+)", text)
        return float(found.group(1)) if found else 0.0

    rows = value(r'nbtrail_model_duration_seconds_count\{role="shadow",version="2"\}')
    return rows, value(r'nbtrail_shadow_dropped_total\{version="2"\}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per case")
    parser.add_argument("--connections", type=int, default=4,
                        help="concurrent connections of the load generator")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over the three servers; each figure is the median")
    args = parser.parse_args()
    workdir = setup("shadow")
    import nbtrail as nt

    frame, target = data()
    for c in (1.0, 0.1):
        fitted = model().set_params(logisticregression__C=c).fit(frame, target)
        with nt.run(name=f"bench C={c}") as run:
            run.log_dataset(frame, name="train", role="train")
            nt.register(run.log_model(fitted, name="churn"), name="churn")
    nt.set_alias("churn", "champion", 1)
    nt.set_alias("churn", "challenger", 2)
    packages = {
        "champion alone": nt.package("churn@champion", name="churn",
                                     output=workdir / "single", build=False),
        "+ 1 shadow": nt.package("churn@champion", shadow=["churn@challenger"], name="churn",
                                 output=workdir / "shadow", build=False),
        "+ 10 % canary": nt.package("churn@champion", canary={"churn@challenger": 0.1},
                                    name="churn", output=workdir / "canary", build=False),
    }
    body_file = workdir / "body.json"
    body_file.write_text(json.dumps({"records": frame.head(args.rows).to_dict("records")}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in packages}
    # Rounds interleave the servers, so a busy moment of the machine hits all of them.
    for _, (label, pkg) in itertools.product(range(args.rounds), packages.items()):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "nbtrail.cli", "serve", str(pkg.context), "--port",
             str(port), "--log-dir", str(workdir / f"log-{pkg.context.name}")],
            env=env, stdout=(workdir / f"{pkg.context.name}.log").open("w"),
            stderr=subprocess.STDOUT)
        try:
            wait_ready(f"{url}/v2/health/ready", server)
            assert len(post(f"{url}/predict", body_file.read_bytes())["predictions"]) == \
                args.rows
            result = load(f"{url}/predict", body_file, args.duration, args.connections,
                          workdir)
            result["shadow"], result["dropped"] = shadow_counts(url)
            runs[label].append(result)
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(f"measured {label}", file=sys.stderr)
    results = {label: {key: statistics.median(r[key] for r in found) for key in found[0]}
               for label, found in runs.items()}

    base = results["champion alone"]
    print(f"\n{args.rows} row(s) a request, {args.connections} connections, "
          f"{args.duration} s a case, median of {args.rounds} rounds\n")
    print("| server | requests/s | p50 ms | p99 ms | throughput vs alone | p99 vs alone | "
          "shadow predicted / dropped |")
    print("|---|---|---|---|---|---|---|")
    for label, r in results.items():
        shadow = (f"{r['shadow']:,.0f} / {r['dropped']:,.0f}" if label == "+ 1 shadow"
                  else "–")
        print(f"| {label} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
              f"{r['rps'] / base['rps']:.2f}× | {r['p99_ms'] / base['p99_ms']:.2f}× | "
              f"{shadow} |")
    shadow = results["+ 1 shadow"]
    ok = shadow["p99_ms"] <= 1.1 * base["p99_ms"] and shadow["rps"] >= 0.8 * base["rps"]
    print(f"\ntargets (shadow p99 ≤ 1.1×, throughput ≥ 0.8×): {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
