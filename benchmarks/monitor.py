"""Profile + drift over Parquet data: nbtrail against a plain pandas + scipy implementation.

Usage::

    python benchmarks/monitor.py [--rows N] [--reps R] [--keep DIR] [--json OUT]

Two Parquet files of ``--rows`` rows × 20 columns (16 numbers, 4 categories) are written
once: a reference and a current one where 3 numbers and 1 category have moved. Each tool
then runs in a fresh interpreter and is timed from reading to a per-feature verdict;
peak memory is the process's maximum resident set size. See benchmarks/README.md.

The peer is what a team writes without a monitoring library: pandas reads both files,
scipy's ``ks_2samp`` and ``chi2_contingency`` test each column, and the population
stability index is computed over the reference's deciles. (Evidently, the usual library,
is not installed here; it computes the same tests on pandas frames.)
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NUMBERS, CATEGORIES = 16, 4
CHUNK = 1_000_000

NBTRAIL = """
import nbtrail as nt
report = nt.drift(reference=REF, current=CUR, log=False)
drifted = report.drifted
"""

PEER = """
import numpy as np, pandas as pd
from scipy import stats

ref, cur = pd.read_parquet(REF), pd.read_parquet(CUR)
drifted = []
for name in ref.columns:
    a, b = ref[name].dropna(), cur[name].dropna()
    if a.dtype.kind in "if":
        ks = stats.ks_2samp(a.to_numpy(), b.to_numpy())
        edges = np.unique(np.quantile(a, np.linspace(0.1, 0.9, 9)))
        p = np.bincount(np.searchsorted(edges, a), minlength=len(edges) + 1) / len(a)
        q = np.bincount(np.searchsorted(edges, b), minlength=len(edges) + 1) / len(b)
        statistic, p_value = ks.statistic, ks.pvalue
    else:
        counts = pd.concat([a.value_counts(), b.value_counts()], axis=1).fillna(0)
        chi2, p_value, _, _ = stats.chi2_contingency(counts.T.to_numpy(), correction=False)
        statistic = (chi2 / counts.to_numpy().sum()) ** 0.5
        p, q = (counts.iloc[:, 0] / len(a)).to_numpy(), (counts.iloc[:, 1] / len(b)).to_numpy()
    p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    psi = float(((q - p) * np.log(q / p)).sum())
    if psi >= 0.2 or (p_value < 0.05 and statistic >= 0.1):
        drifted.append(name)
"""

RUNNER = """
import json, resource, sys, time
REF, CUR = sys.argv[1], sys.argv[2]
start = time.perf_counter()
{body}
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"seconds": elapsed, "peak_bytes": peak, "drifted": sorted(drifted)}}))
"""


def write_data(folder: Path, rows: int) -> tuple[Path, Path]:
    """The reference and the current Parquet files, written a million rows at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = folder / "reference.parquet", folder / "current.parquet"
    if all(p.exists() for p in paths):
        return paths
    levels = np.array(["basic", "plus", "pro", "team", "enterprise"])
    for path, shifted in zip(paths, (False, True), strict=True):
        rng = np.random.default_rng(1 if shifted else 0)
        writer = None
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            columns = {}
            for i in range(NUMBERS):
                shift = 0.5 if shifted and i < 3 else 0.0
                columns[f"x{i:02d}"] = rng.normal(shift, 1.0, n) if i % 4 else \
                    rng.poisson(4 + 2 * shift, n).astype("int64")
            for i in range(CATEGORIES):
                shares = [0.4, 0.25, 0.15, 0.12, 0.08]
                if shifted and i == 0:
                    shares = [0.2, 0.25, 0.15, 0.12, 0.28]
                columns[f"c{i}"] = levels[rng.choice(5, n, p=shares)]
            table = pa.table(columns)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        assert writer is not None
        writer.close()
    return paths


def measure(body: str, ref: Path, cur: Path) -> dict:
    """Run one tool in a fresh interpreter; its time, peak memory and verdict."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NBTRAIL_HOME": str(ref.parent)}
    script = RUNNER.format(body=textwrap.dedent(body))
    done = subprocess.run([sys.executable, "-c", script, str(ref), str(cur)], env=env,
                          capture_output=True, text=True, cwd=ref.parent, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="write (or reuse) the data here")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nbtrail-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    ref, cur = write_data(folder, args.rows)
    results = {}
    for name, body in (("nbtrail", NBTRAIL), ("pandas+scipy", PEER)):
        runs = [measure(body, ref, cur) for _ in range(args.reps)]
        results[name] = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "peak_gib": max(r["peak_bytes"] for r in runs) / 2**30,
            "drifted": runs[0]["drifted"],
        }
        print(f"{name:>13}: {results[name]['seconds']:6.2f} s (median of {args.reps}), "
              f"peak {results[name]['peak_gib']:.2f} GiB, drifted {results[name]['drifted']}",
              flush=True)
    ratio = results["pandas+scipy"]["seconds"] / results["nbtrail"]["seconds"]
    memory = results["pandas+scipy"]["peak_gib"] / results["nbtrail"]["peak_gib"]
    print(f"nbtrail: {ratio:.1f}x faster, {memory:.1f}x less memory than pandas+scipy "
          f"({args.rows:,} rows x {NUMBERS + CATEGORIES} columns, {os.cpu_count()} cores, "
          f"{platform.python_version()})")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": args.rows, "results": results},
                                              indent=2))


if __name__ == "__main__":
    main()
