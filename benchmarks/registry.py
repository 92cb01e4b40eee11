"""Model registry: register, resolve an alias, verify the audit trail; against MLflow's registry.

Usage::

    python benchmarks/registry.py                 # 50 versions, 100,000 audit entries (~5 min)
    python benchmarks/registry.py --quick         # 10 versions, fewer repetitions (~1.5 min)
    python benchmarks/registry.py --entries 1000000 --tools nbtrail

Each tool runs in a fresh interpreter with a fresh store in a fresh temporary folder
outside any git repository (the conventions of ``run.py``). Scenarios:

* ``register``: VERSIONS small scikit-learn models are logged, one run each (untimed),
  then registered one call each as versions 1 … VERSIONS of ``churn``: nbtrail
  ``nt.register(model_id, name="churn")`` on the embedded store, MLflow
  ``mlflow.register_model(model_info.model_uri, "churn")`` on a sqlite tracking URI.
* ``resolve``: ``churn@champion`` set on the middle version, then resolved REPS times:
  nbtrail ``nbtrail.registry._refs.resolve(store, "churn@champion")``, MLflow
  ``MlflowClient().get_model_version_by_alias("churn", "champion")``. nbtrail is also
  timed on the big trail of the next scenario (one model's entries among ENTRIES).
* ``verify``: ENTRIES audit entries are appended in batches of 10,000 through
  ``store.audit_session()`` (a realistic cycle of 10 events a version over 1,000 models,
  payloads copied from a real registration), folded with ``store.sync()``; then a new
  process opens the store and times ``nbtrail.registry._api.verify_audit(store)``.
  MLflow has no audit chain: this row has no peer. Target: ≤ 2 s at 100,000 entries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TOOLS = ("nbtrail", "mlflow-sqlite")
BATCH = 10_000  # drafts appended per audit session while building the big trail
MODELS = 1_000  # models the big trail's entries are spread over
VERIFY_TARGET_S = 2.0  # at 100,000 entries

sys.path.insert(0, str(HERE))
from run import fmt, load, machine, markdown, ratio, spread, timed  # noqa: E402  (shared helpers)


def training_data() -> tuple[Any, Any]:
    """The same small, seeded classification data for every model of every tool."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=300) for i in range(6)})
    return frame, (frame["x0"] + rng.normal(0, 0.5, 300) > 0).astype(int)


# -- nbtrail -----------------------------------------------------------------------------


def measure_nbtrail(work: Path, versions: int, reps: int, entries: int) -> dict[str, Any]:
    """Register ``versions`` models, resolve an alias, build a trail of ``entries``."""
    from sklearn.linear_model import LogisticRegression

    import nbtrail as nt
    from nbtrail.registry._refs import resolve
    from nbtrail.tracking._tracker import store_or_configured

    frame, label = training_data()
    model_ids = []
    for i in range(versions):  # untimed: what a user has logged before registering
        with nt.run(name=f"train {i}") as run:
            run.log_dataset(frame, name="train", role="train")
            model = LogisticRegression(C=1.0 + i).fit(frame, label)
            run.log_metric("accuracy", float(model.score(frame, label)))
            model_ids.append(run.log_model(model, name="churn"))
    nt.sync()
    calls = []
    for model_id in model_ids:
        start = time.perf_counter()
        nt.register(model_id, name="churn")
        calls.append(time.perf_counter() - start)
    nt.set_alias("churn", "champion", versions // 2 + 1)
    store = store_or_configured(None)
    resolved = timed(lambda: resolve(store, "churn@champion"), reps)
    facts = json.loads(nt.audit("churn")["payload"][0])
    built = build_trail(work / "audit-store", entries, facts)
    return {"register": {"first_s": calls[0], **spread(calls[1:] or calls),
                         "last_s": calls[-1]},
            "resolve": resolved, "trail": built}


def trail_cycle(model: str, version: int, facts: dict[str, Any], first_seq: int
                ) -> list[Any]:
    """The ten entries one version of ``model`` typically leaves: register to package.

    ``first_seq`` is the number the first of them gets: a request's id is the number of
    its ``promotion_requested`` entry, and verify checks the registry's rules too.
    """
    from nbtrail.store._audit import Draft

    request = first_seq + 2
    evidence = {"data": "holdout.parquet", "fingerprint": "f" * 64, "rows": 500}
    checks = [
        {"check": "metric", "passed": True, "detail": "accuracy 0.91 vs 0.89 of version 1",
         "evidence": {**evidence, "metric": "accuracy", "candidate": 0.91, "holder": 0.89,
                      "holder_version": version - 1}},
        {"check": "validate", "passed": True, "detail": "the evaluation data is clean",
         "evidence": {**evidence, "problems": 0}},
        {"check": "size", "passed": True, "detail": "0.004 MB (limit 5 MB)",
         "evidence": {"size_bytes": 4000}}]
    return [
        Draft("registered", model, version, {**facts, "model_id": f"mdl_{model}_{version}"}),
        Draft("policy_set", model, None, {"alias": "champion", "policy": {
            "require_approval": True, "metric": "accuracy", "data": "holdout.parquet",
            "target": "churned", "min_delta": 0.0, "validate": True, "reproduce": False,
            "reproduce_rtol": 1e-6, "max_latency_ms": None, "max_size_mb": 5.0}}),
        Draft("promotion_requested", model, version,
              {"alias": "champion", "note": "retrained on November", "holder": version - 1}),
        *(Draft("check", model, version, {"request": request, **c}) for c in checks),
        Draft("checks_done", model, version, {"request": request, "passed": True}),
        # A second person approves (as the Jupyter server records one it acts for).
        Draft("approved", model, version, {"request": request, "note": "ok",
                                           "automatic": False, "on_behalf_of": "reviewer"}),
        Draft("alias_set", model, version, {"alias": "champion", "previous": version - 1,
                                            "request": request, "note": None}),
        Draft("package_built", model, version, {
            "ref": f"{model}@champion", "alias": "champion", "package_id": "pkg_" + "0" * 26,
            "name": model, "model_id": f"mdl_{model}_{version}", "image": None,
            "digest": None}),
    ]


def build_trail(home: Path, entries: int, facts: dict[str, Any]) -> dict[str, Any]:
    """Append ``entries`` entries in batches of ``BATCH`` to a new store, and fold them."""
    from nbtrail.store._duckdb import DuckDBStore

    store = DuckDBStore(home)
    store.sync()  # creates the database: an audit session needs an existing store
    started = time.perf_counter()
    made, cycle, payload_bytes = 0, 0, 0
    while made < entries:
        drafts: list[Any] = []
        while len(drafts) < min(BATCH, entries - made):
            drafts += trail_cycle(f"m{cycle % MODELS:04d}", cycle // MODELS + 1, facts,
                                  made + len(drafts) + 1)
            cycle += 1
        drafts = drafts[:entries - made]
        with store.audit_session() as session:
            written = session.append(drafts)
        payload_bytes += sum(len(e.payload) for e in written)
        made += len(drafts)
    appended = time.perf_counter()
    store.sync()
    folded = time.perf_counter()
    store.close()
    return {"entries": made, "append_s": appended - started, "fold_s": folded - appended,
            "mean_payload_bytes": payload_bytes / max(made, 1)}


def verify_nbtrail(home: Path, reps: int) -> dict[str, Any]:
    """In a new process: open the big trail's store, verify it, resolve in it."""
    from nbtrail.store._duckdb import DuckDBStore

    started = time.perf_counter()
    from nbtrail.registry._api import verify_audit, version

    store = DuckDBStore(home)
    verdict = verify_audit(store)
    first = time.perf_counter() - started
    if not verdict.ok:
        raise SystemExit(f"the benchmark's trail does not verify: {verdict.problem}")
    again = timed(lambda: verify_audit(store), max(3, reps // 10))
    read = timed(lambda: store.audit_entries(), max(3, reps // 10))
    model = store.audit_entries()["model"][verdict.entries // 2]  # one in the middle
    resolved = timed(lambda: version(store, f"{model}@champion"), reps)
    return {"entries": verdict.entries, "head": verdict.head, "cold_s": first,
            "verify": again, "read": read, "resolve_big": resolved}


# -- MLflow ------------------------------------------------------------------------------


def measure_mlflow(work: Path, versions: int, reps: int) -> dict[str, Any]:
    """The same in MLflow's model registry on ``sqlite:///…/mlflow.db``."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    import mlflow
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    frame, label = training_data()
    uris = []
    for i in range(versions):  # untimed, as for nbtrail
        with mlflow.start_run(run_name=f"train {i}"):
            model = LogisticRegression(C=1.0 + i).fit(frame, label)
            mlflow.log_metric("accuracy", float(model.score(frame, label)))
            info = mlflow.sklearn.log_model(model, name="churn",
                                            input_example=frame.head(3))
            uris.append(info.model_uri)
    calls = []
    for uri in uris:
        start = time.perf_counter()
        mlflow.register_model(uri, "churn")
        calls.append(time.perf_counter() - start)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("churn", "champion", str(versions // 2 + 1))
    resolved = timed(lambda: client.get_model_version_by_alias("churn", "champion"), reps)
    return {"register": {"first_s": calls[0], **spread(calls[1:] or calls),
                         "last_s": calls[-1]},
            "resolve": resolved}


# -- driver ------------------------------------------------------------------------------


def workdir() -> Path:
    """A new temporary folder, refused when inside a git repository (as ``run.py``)."""
    path = Path(tempfile.mkdtemp(prefix="nbtrail-bench-registry-"))
    for folder in (path, *path.parents):
        if (folder / ".git").exists():
            sys.exit(f"temporary folder {path} is inside a git repository ({folder}); "
                     "set TMPDIR to a folder outside any repository")
    return path


def environment(tool: str, work: Path) -> dict[str, str]:
    """The worker's environment: this checkout's src/, telemetry off, the tool's store."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NBTRAIL_HOME", "NBTRAIL_STORE", "NBTRAIL_USER",
                        "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p)
    env.update({"PYTHONWARNINGS": "ignore", "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "true", "MLFLOW_LOGGING_LEVEL": "ERROR",
                "GIT_PYTHON_REFRESH": "quiet"})
    if tool == "nbtrail":
        env["NBTRAIL_HOME"] = str(work / "nbtrail-store")
    return env


def worker(tool: str, step: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one step of one tool in a fresh interpreter; its JSON result."""
    command = [sys.executable, __file__, "--step", step, "--tool", tool, "--work", str(work),
               "--versions", str(args.versions), "--reps", str(args.reps),
               "--entries", str(args.entries)]
    done = subprocess.run(command, cwd=work, env=environment(tool, work), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{tool} {step} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def step(args: argparse.Namespace) -> dict[str, Any]:
    """What ``--step`` asks of this (fresh) process."""
    work = Path(args.work)
    if args.step == "verify":
        return verify_nbtrail(work / "audit-store", args.reps)
    if args.tool == "nbtrail":
        return measure_nbtrail(work, args.versions, args.reps, args.entries)
    return measure_mlflow(work, args.versions, args.reps)


Row = tuple[str, str, float | None, float | None, str, str]


def rows(results: dict[str, Any], versions: int, entries: int) -> list[Row]:
    """The table's rows: scenario, measure, nbtrail, MLflow (seconds), target, met."""
    nt, ml = results.get("nbtrail", {}), results.get("mlflow-sqlite", {})

    def pick(found: dict[str, Any], *keys: str) -> float | None:
        for key in keys:
            found = found.get(key) if isinstance(found, dict) else None
        return found if isinstance(found, float) else None

    out: list[Row] = [
        ("register", f"per call, median of versions 2-{versions}",
         pick(nt, "register", "median_s"), pick(ml, "register", "median_s"), "", ""),
        ("register", "per call, p95", pick(nt, "register", "p95_s"),
         pick(ml, "register", "p95_s"), "", ""),
        ("register", "first call (creates the model)", pick(nt, "register", "first_s"),
         pick(ml, "register", "first_s"), "", ""),
        ("register", f"last call (version {versions})", pick(nt, "register", "last_s"),
         pick(ml, "register", "last_s"), "", ""),
        ("resolve", "churn@champion, median", pick(nt, "resolve", "median_s"),
         pick(ml, "resolve", "median_s"), "", ""),
        ("resolve", "churn@champion, p95", pick(nt, "resolve", "p95_s"),
         pick(ml, "resolve", "p95_s"), "", ""),
        ("resolve", f"in a trail of {entries:,} entries, median",
         pick(nt, "verify", "resolve_big", "median_s"), None, "", ""),
    ]
    cold = pick(nt, "verify", "cold_s")
    met = "–"
    if cold is not None and entries == 100_000:
        met = "yes" if cold <= VERIFY_TARGET_S else "NO"
    elif cold is not None:
        met = f"target is for 100,000 entries (here {entries:,})"
    out += [
        ("verify", f"{entries:,} entries, new process (open + read + check)", cold, None,
         f"≤ {VERIFY_TARGET_S:g} s at 100,000", met),
        ("verify", "again in that process, median", pick(nt, "verify", "verify", "median_s"),
         None, "", ""),
        ("verify", "of which reading the trail, median", pick(nt, "verify", "read", "median_s"),
         None, "", ""),
    ]
    return out


def table(found: list[Row]) -> str:
    """A Markdown table; ratios are MLflow time / nbtrail time."""
    lines = [["scenario", "measure", "nbtrail", "mlflow-sqlite", "sqlite/nt", "target", "met"]]
    for scenario, measure, nt, ml, target, met in found:
        unit = "ms" if max(v or 0 for v in (nt, ml)) < 1 else "s"
        lines.append([scenario, measure, fmt(nt, unit), fmt(ml, unit), ratio(ml, nt),
                      target or "–", met or "–"])
    return markdown(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure each tool in fresh processes and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="10 versions and 20 repetitions (the trail keeps --entries)")
    parser.add_argument("--versions", type=int, default=50, help="versions registered")
    parser.add_argument("--reps", type=int, default=200, help="timed alias resolutions")
    parser.add_argument("--entries", type=int, default=100_000,
                        help="audit entries the verify scenario checks")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS),
                        metavar="TOOL", help=f"measure only these: {', '.join(TOOLS)}")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write results as JSON")
    parser.add_argument("--step", choices=("measure", "verify"), help=argparse.SUPPRESS)
    parser.add_argument("--tool", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        print(json.dumps(step(args)))
        return 0
    if args.quick:
        args.versions, args.reps = 10, 20
    if args.versions < 2 or args.reps < 1 or args.entries < 1:
        parser.error("--versions must be at least 2, --reps and --entries at least 1")
    started, load_before = time.monotonic(), load()
    results: dict[str, Any] = {}
    for tool in (t for t in TOOLS if t in args.tools):
        work = workdir()
        print(f"{tool}: {args.versions} versions" + (
            f", a trail of {args.entries:,} entries…" if tool == "nbtrail" else "…"),
            file=sys.stderr)
        results[tool] = worker(tool, "measure", work, args)
        if tool == "nbtrail":
            results[tool]["verify"] = worker(tool, "verify", work, args)
        shutil.rmtree(work, ignore_errors=True)
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print(f"nbtrail registry benchmark, {'quick' if args.quick else 'full'} mode, {when}, "
          f"{(time.monotonic() - started) / 60:.1f} min")
    print(machine())
    print(f"load average (1/5/15 min) before: {load_before}, after: {load()}")
    print()
    print(table(rows(results, args.versions, args.entries)))
    trail = results.get("nbtrail", {}).get("trail")
    if trail:
        print(f"\nThe trail: {trail['entries']:,} entries (mean payload "
              f"{trail['mean_payload_bytes']:,.0f} bytes) appended in "
              f"{trail['append_s']:.1f} s, folded in {trail['fold_s']:.1f} s (untimed setup).")
    print("Ratios are MLflow time / nbtrail time: > 1 means nbtrail is faster. MLflow has no "
          "audit chain, so verify has no peer.")
    if args.json:
        args.json.write_text(json.dumps({"date": when, "machine": machine(),
                                         "load_before": load_before, "load_after": load(),
                                         "versions": args.versions, "reps": args.reps,
                                         "entries": args.entries, "raw": results},
                                        indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
