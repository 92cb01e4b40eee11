"""Benchmark nbtrail against MLflow (file store and sqlite store) in one run.

Usage::

    python benchmarks/run.py [--quick] [--only NAME ...] [--tools TOOL ...] [--json OUT]

Every measurement runs in a fresh interpreter (``_worker.py``) with a fresh store in a
fresh temporary folder outside any git repository, so imports and caches start cold and
no tool benefits from another's work. See benchmarks/README.md for what is measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKER = HERE / "_worker.py"
TOOLS = ("nbtrail", "mlflow-file", "mlflow-sqlite")
PEERS = ("mlflow-file", "mlflow-sqlite")
SCENARIOS = ("import", "log-single", "log-batch", "steps", "query", "concurrent", "autolog")


@dataclass(frozen=True)
class Plan:
    """How big each scenario is; ``--quick`` shrinks it for a smoke test."""

    import_reps: int = 5
    log_runs: int = 200
    steps: int = 20_000
    steps_budget_s: float = 180.0
    query_sizes: tuple[int, ...] = (1_000, 10_000)
    query_reps: int = 30
    query_min_reps: int = 5
    query_budget_s: float = 60.0
    populate_budget_s: float = 360.0
    conc_procs: int = 4
    conc_runs: int = 50
    conc_steps: int = 10
    autolog_reps: int = 5
    timeout_s: float = 600.0


FULL = Plan()
QUICK = Plan(import_reps=3, log_runs=30, steps=1_000, steps_budget_s=10.0,
             query_sizes=(1_000,), query_reps=20, query_min_reps=5, query_budget_s=5.0,
             populate_budget_s=45.0, conc_runs=10, autolog_reps=2, timeout_s=180.0)


# -- results -----------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: one measure of one scenario for every tool."""

    scenario: str
    measure: str
    unit: str  # "s", "ms", "µs", "count" or "text"
    values: dict[str, Any] = field(default_factory=dict)  # tool -> number, text or None
    fold: float | None = None  # nbtrail including nt.sync(), where that differs
    target: str = ""
    met: str = ""
    ratios: bool = True  # whether peer / nbtrail means something for this measure


@dataclass
class Outcome:
    """What one worker process gave back: its result, or why there is none."""

    result: dict[str, Any] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


class Bench:
    """Runs the scenarios and collects rows and notes."""

    def __init__(self, plan: Plan, tools: tuple[str, ...], keep: bool, verbose: bool) -> None:
        self.plan = plan
        self.tools = tools
        self.keep = keep
        self.verbose = verbose
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.raw: dict[str, dict[str, Any]] = {}

    # -- processes -------------------------------------------------------------------------

    def workdir(self, label: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"nbtrail-bench-{label}-"))
        for folder in (path, *path.parents):
            if (folder / ".git").exists():
                sys.exit(f"temporary folder {path} is inside a git repository ({folder}); "
                         "set TMPDIR to a folder outside any repository")
        return path

    def env(self, tool: str, workdir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("NBTRAIL_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p)
        env.update({
            "PYTHONWARNINGS": "ignore",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "MLFLOW_LOGGING_LEVEL": "ERROR",
            "GIT_PYTHON_REFRESH": "quiet",
        })
        if tool == "nbtrail":
            env["NBTRAIL_HOME"] = str(workdir / "nbtrail-store")
        elif tool == "mlflow-file":
            env["MLFLOW_TRACKING_URI"] = (workdir / "mlruns").as_uri()
            # MLflow 3 refuses the file store unless asked for explicitly.
            env["MLFLOW_ALLOW_FILE_STORE"] = "true"
        else:
            env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
        return env

    def launch(self, tool: str, spec: dict[str, Any], workdir: Path,
               timeout: float | None = None, label: str | None = None) -> Outcome:
        """Run one worker process and wait for it; never raises."""
        self.log(f"  {label or spec['scenario']:<12} {tool:<14}", end="")
        started = time.monotonic()
        outcome = self.finish(self.start(tool, spec, workdir), started,
                              timeout or self.plan.timeout_s)
        self.log(f" {time.monotonic() - started:6.1f} s"
                 + ("" if outcome.ok else f"  ({outcome.error})"))
        return outcome

    def launch_parallel(self, jobs: dict[str, tuple[dict[str, Any], Path]],
                        timeout: float, label: str) -> dict[str, Outcome]:
        """Run one worker per tool at the same time (for untimed setup work)."""
        self.log(f"  {label:<12} {', '.join(jobs)} (in parallel)", end="")
        started = time.monotonic()
        running = {tool: self.start(tool, spec, workdir)
                   for tool, (spec, workdir) in jobs.items()}
        outcomes = {tool: self.finish(job, started, timeout) for tool, job in running.items()}
        self.log(f" {time.monotonic() - started:6.1f} s")
        return outcomes

    def start(self, tool: str, spec: dict[str, Any],
              workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
        spec = {**spec, "tool": tool, "workdir": str(workdir)}
        out = workdir / f"result-{spec['scenario']}-{time.monotonic_ns()}.json"
        with open(out.with_suffix(".stderr"), "wb") as err:
            proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec), str(out)],
                                    cwd=workdir, env=self.env(tool, workdir),
                                    stdout=subprocess.DEVNULL, stderr=err)
        return proc, out

    def finish(self, job: tuple[subprocess.Popen[bytes], Path], started: float,
               timeout: float) -> Outcome:
        proc, out = job
        try:
            proc.wait(timeout=max(1.0, started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return Outcome(None, f"timeout after {timeout:.0f} s")
        if proc.returncode != 0 or not out.exists():
            err = out.with_suffix(".stderr").read_text(errors="replace")
            lines = [ln for ln in err.strip().splitlines() if ln.strip()]
            return Outcome(None, lines[-1][:200] if lines else f"exit code {proc.returncode}")
        return Outcome(json.loads(out.read_text()))

    def done_with(self, workdir: Path) -> None:
        if not self.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    def log(self, text: str, end: str = "\n") -> None:
        if self.verbose:
            print(text, end=end, file=sys.stderr, flush=True)

    def failed(self, scenario: str, outcomes: dict[str, Outcome]) -> dict[str, Any]:
        """Cell texts for failed tools, and a note for each failure."""
        cells: dict[str, Any] = {}
        for tool, outcome in outcomes.items():
            if not outcome.ok:
                cells[tool] = "timeout" if (outcome.error or "").startswith("timeout") else "FAIL"
                self.notes.append(f"{scenario}, {tool}: {outcome.error}")
        return cells

    def record(self, scenario: str, outcomes: dict[str, Outcome]) -> None:
        self.raw[scenario] = {t: (o.result if o.ok else {"error": o.error})
                              for t, o in outcomes.items()}

    def values(self, outcomes: dict[str, Outcome], pick: Callable[[dict[str, Any]], Any],
               failed: dict[str, Any]) -> dict[str, Any]:
        return {tool: failed.get(tool) if not outcome.ok else pick(outcome.result or {})
                for tool, outcome in outcomes.items()}

    # -- scenarios ---------------------------------------------------------------------------

    def bench_import(self) -> None:
        modules = {"nbtrail": "nbtrail", "mlflow-file": "mlflow", "mlflow-sqlite": "mlflow"}
        times: dict[str, list[float]] = {t: [] for t in self.tools}
        errors: dict[str, str] = {}
        for _ in range(self.plan.import_reps):
            for tool in self.tools:  # interleaved, so drift affects every tool alike
                workdir = self.workdir("import")
                code = (f"import time; t = time.perf_counter(); import {modules[tool]}; "
                        "print(time.perf_counter() - t)")
                proc = subprocess.run([sys.executable, "-c", code], cwd=workdir,
                                      env=self.env(tool, workdir), capture_output=True,
                                      text=True, timeout=120, check=False)
                self.done_with(workdir)
                if proc.returncode == 0:
                    times[tool].append(float(proc.stdout.strip().splitlines()[-1]))
                else:
                    errors[tool] = (proc.stderr.strip().splitlines() or ["?"])[-1]
        self.log(f"  import       done ({self.plan.import_reps} interpreters per tool)")
        outcomes = {t: Outcome({"median_s": statistics.median(times[t]), "all_s": times[t]})
                    if times[t] and t not in errors else Outcome(None, errors.get(t))
                    for t in self.tools}
        self.record("import", outcomes)
        failed = self.failed("import", outcomes)
        nt = outcomes.get("nbtrail")
        met = ""
        if nt is not None and nt.ok:
            met = yes(nt.result["median_s"] <= 0.3)
        self.rows.append(Row("import", f"import time, median of {self.plan.import_reps}", "s",
                             self.values(outcomes, lambda r: r["median_s"], failed),
                             target="nbtrail ≤ 0.3 s", met=met))

    def bench_log(self, scenario: str) -> None:
        single = scenario == "log-single"
        spec = {"scenario": "log", "mode": "single" if single else "batch",
                "runs": self.plan.log_runs}
        outcomes = self.each_tool(scenario, spec)
        self.record(scenario, outcomes)
        failed = self.failed(scenario, outcomes)
        n = self.plan.log_runs
        kind = "log_param/log_metric" if single else "log_params/log_metrics"
        nt = outcomes.get("nbtrail")
        fold_call = fold_wall = None
        if nt is not None and nt.ok:
            r = nt.result
            fold_call = (r["in_calls_s"] + r["sync_s"]) / r["calls"]
            fold_wall = r["wall_s"] + r["sync_s"]
        per_call = Row(scenario, f"per {kind} call", "µs",
                       self.values(outcomes, lambda r: r["in_calls_s"] / r["calls"], failed),
                       fold=fold_call)
        if single:
            per_call.target = "≥ 20× faster than mlflow-sqlite"
            per_call.met = self.speedup_met(per_call, "mlflow-sqlite", 20)
        self.rows.append(per_call)
        self.rows.append(Row(scenario, f"{n} runs, wall incl. run start/end", "s",
                             self.values(outcomes, lambda r: r["wall_s"], failed),
                             fold=fold_wall))
        self.rows.append(Row(scenario, "first run (cold: lazy imports, new store)", "s",
                             self.values(outcomes, lambda r: r["first_run_s"], failed)))

    def bench_steps(self) -> None:
        total = self.plan.steps
        spec = {"scenario": "steps", "steps": total, "budget_s": self.plan.steps_budget_s}
        outcomes = self.each_tool("steps", spec)
        self.record("steps", outcomes)
        failed = self.failed("steps", outcomes)
        for tool, outcome in outcomes.items():
            r = outcome.result
            if r and r["calls"] < total:
                self.notes.append(
                    f"steps, {tool}: stopped after {r['calls']:,} of {total:,} steps at the "
                    f"{self.plan.steps_budget_s:.0f} s budget; its per-call time is over those "
                    f"steps and its wall time is extrapolated linearly to {total:,} steps")
        nt = outcomes.get("nbtrail")
        ok = nt is not None and nt.ok
        r = nt.result if ok and nt else {}
        self.rows.append(Row(
            "steps", f"per log_metric(step=i), {self.plan.steps:,} steps", "µs",
            self.values(outcomes, lambda r: r["in_calls_s"] / r["calls"], failed),
            fold=(r["in_calls_s"] + r["sync_s"]) / r["calls"] if ok else None))
        self.rows.append(Row(
            "steps", f"{self.plan.steps:,} steps, wall incl. run start/end", "s",
            self.values(outcomes, lambda r: r["wall_s"] * total / r["calls"], failed),
            fold=r["wall_s"] + r["sync_s"] if ok else None))

    def bench_query(self) -> None:
        workdirs = {tool: self.workdir("query") for tool in self.tools}
        populated = dict.fromkeys(self.tools, 0)
        broken: dict[str, str] = {}
        for size in self.plan.query_sizes:
            # Populate every store at once: untimed setup, and MLflow's is slow.
            jobs = {tool: ({"scenario": "populate", "start": populated[tool], "stop": size,
                            "budget_s": self.plan.populate_budget_s}, workdirs[tool])
                    for tool in self.tools if tool not in broken and populated[tool] < size}
            fills = self.launch_parallel(jobs, self.plan.populate_budget_s + 300,
                                         f"populate {size:,}") if jobs else {}
            for tool, fill in fills.items():
                if not fill.ok or not fill.result:
                    broken[tool] = f"populating failed: {fill.error}"
                    continue
                self.raw.setdefault("query-populate", {}).setdefault(tool, []).append(
                    fill.result)
                populated[tool] = fill.result["runs"]
                if populated[tool] < size:
                    self.notes.append(
                        f"query {size:,}, {tool}: populating stopped at the "
                        f"{self.plan.populate_budget_s:.0f} s budget with "
                        f"{populated[tool]:,} runs, so its query ran over "
                        f"{populated[tool]:,} runs, not {size:,}")
            outcomes: dict[str, Outcome] = {}
            counts: dict[str, int] = {}
            for tool in self.tools:
                if tool in broken:
                    outcomes[tool] = Outcome(None, broken[tool])
                    continue
                counts[tool] = populated[tool]
                outcomes[tool] = self.launch(tool, {
                    "scenario": "query", "reps": self.plan.query_reps,
                    "min_reps": self.plan.query_min_reps,
                    "budget_s": self.plan.query_budget_s}, workdirs[tool])
            label = f"query-{size}"
            self.record(label, outcomes)
            failed = self.failed(label, outcomes)
            reps = {t: o.result["reps"] for t, o in outcomes.items() if o.ok and o.result}
            rows_back = {t: o.result["rows"] for t, o in outcomes.items() if o.ok and o.result}
            if len(set(rows_back.values())) > 1:
                self.notes.append(f"query {size:,}: tools returned different row counts "
                                  f"{rows_back}")
            short = {t: n for t, n in reps.items() if n < self.plan.query_reps}
            if short:
                self.notes.append(
                    f"query {size:,}: {', '.join(f'{t} ran {n}' for t, n in short.items())} "
                    f"repetitions (of {self.plan.query_reps}) within the "
                    f"{self.plan.query_budget_s:.0f} s budget")
            median = Row(label, f"{size:,} runs: median of {self.plan.query_reps}", "ms",
                         self.values(outcomes, lambda r: r["median_s"], failed))
            if size >= 10_000:
                median.target = "nbtrail ≤ 50 ms and ≥ 10× faster than MLflow"
                nt = outcomes.get("nbtrail")
                if nt is not None and nt.ok and nt.result:
                    fast = nt.result["median_s"] <= 0.050
                    median.met = f"{yes(fast)} (≤ 50 ms); " + self.speedup_met(median, PEERS, 10)
            self.rows.append(median)
            self.rows.append(Row(label, f"{size:,} runs: p95", "ms",
                                 self.values(outcomes, lambda r: r["p95_s"], failed)))
            self.rows.append(Row(label, f"{size:,} runs: first query (cold process)", "ms",
                                 self.values(outcomes, lambda r: r["first_s"], failed)))
            self.raw[label]["runs_in_store"] = counts
        for workdir in workdirs.values():
            self.done_with(workdir)

    def bench_concurrent(self) -> None:
        p = self.plan
        spec = {"scenario": "concurrent", "procs": p.conc_procs, "runs": p.conc_runs,
                "steps": p.conc_steps, "child_timeout_s": p.timeout_s - 30}
        for variant in ("cold", "existing"):
            label = f"concurrent ({variant} store)"
            outcomes = {}
            for tool in self.tools:
                workdir = self.workdir("concurrent")
                run_spec = spec
                if variant == "existing":
                    # One earlier process created the store with one small run.
                    made = self.launch(tool, {"scenario": "log", "mode": "batch", "runs": 0},
                                       workdir, label="create store")
                    if not made.ok:
                        outcomes[tool] = Outcome(None, f"creating the store: {made.error}")
                        self.done_with(workdir)
                        continue
                    run_spec = {**spec, "already": {"runs": 1, "params": 1,
                                                    "metric points": 1}}
                outcomes[tool] = self.launch(tool, run_spec, workdir)
                self.done_with(workdir)
            self.concurrent_rows(label, outcomes)

    def concurrent_rows(self, label: str, outcomes: dict[str, Outcome]) -> None:
        p = self.plan
        self.record(label, outcomes)
        failed = self.failed(label, outcomes)
        what = f"{p.conc_procs} procs × {p.conc_runs} runs × {p.conc_steps} steps: errors"
        errors = Row(label, what, "count", self.values(outcomes, lambda r: r["errors"], failed),
                     target="0 errors, exact counts", ratios=False)

        def found(r: dict[str, Any]) -> str:
            return f"{sum(r['found'].values()):,}/{sum(r['expected'].values()):,}"

        records = Row(label, "records found/expected (runs+params+points)", "text",
                      self.values(outcomes, found, failed), ratios=False)
        nt = outcomes.get("nbtrail")
        if nt is not None and nt.ok and nt.result:
            r = nt.result
            errors.met = yes(r["errors"] == 0 and r["found"] == r["expected"])
        self.rows.append(errors)
        self.rows.append(records)
        self.rows.append(Row(label, "wall, start to last writer's exit", "s",
                             self.values(outcomes, lambda r: r["wall_s"], failed)))
        for tool, outcome in outcomes.items():
            r = outcome.result
            if not r:
                continue
            if r["found"] != r["expected"]:
                detail = ", ".join(f"{k} {r['found'][k]:,}/{v:,}" for k, v in r["expected"].items())
                self.notes.append(f"{label}, {tool}: records found/expected: {detail}")
            for kind, count in r["error_kinds"].items():
                self.notes.append(f"{label}, {tool}: {count} × {kind}")

    def bench_autolog(self) -> None:
        outcomes = self.each_tool("autolog", {"scenario": "autolog",
                                              "reps": self.plan.autolog_reps})
        self.record("autolog", outcomes)
        failed = self.failed("autolog", outcomes)
        nt = outcomes.get("nbtrail")
        ok = nt is not None and nt.ok and nt.result
        r = nt.result if ok and nt else {}
        overhead = Row("autolog", f"fit overhead, median of {self.plan.autolog_reps}", "ms",
                       self.values(outcomes, lambda r: r["overhead_s"], failed),
                       fold=r.get("overhead_incl_sync_s"),
                       target="nbtrail overhead ≥ 10× below MLflow's")
        overhead.met = self.speedup_met(overhead, PEERS, 10)
        self.rows.append(overhead)
        self.rows.append(Row("autolog", "first fit overhead (cold)", "ms",
                             self.values(outcomes, lambda r: r["first_overhead_s"], failed),
                             fold=r.get("first_overhead_incl_sync_s")))
        self.rows.append(Row("autolog", "plain fit (no autolog), median", "ms",
                             self.values(outcomes, lambda r: r["plain_s"], failed),
                             ratios=False))
        self.notes.append("autolog: LogisticRegression(max_iter=1000) on make_classification "
                          "(1000×20); overhead = median fit with autolog − median plain fit "
                          "(noise can make a tiny overhead negative)")

    def each_tool(self, scenario: str, spec: dict[str, Any]) -> dict[str, Outcome]:
        outcomes = {}
        for tool in self.tools:
            workdir = self.workdir(scenario)
            outcomes[tool] = self.launch(tool, spec, workdir)
            self.done_with(workdir)
        return outcomes

    def speedup_met(self, row: Row, peers: str | tuple[str, ...], factor: float) -> str:
        """'yes'/'NO' for nbtrail being ``factor``× faster than each peer (and incl. fold)."""
        peers = (peers,) if isinstance(peers, str) else peers
        nt = row.values.get("nbtrail")
        if not isinstance(nt, float):
            return ""
        verdicts = []
        for value in (nt, row.fold):
            if value is None:
                continue
            checks = [peer_time >= factor * value if value > 0 else peer_time > 0
                      for peer in peers
                      if isinstance(peer_time := row.values.get(peer), float)]
            verdicts.append(yes(bool(checks) and all(checks)))
        if len(verdicts) == 2 and verdicts[0] != verdicts[1]:
            return f"{verdicts[0]} (incl. fold: {verdicts[1]})"
        return verdicts[0]


# -- output ------------------------------------------------------------------------------


def timed(call: Any, reps: int) -> dict[str, float]:
    """First call, then median and p95 of ``reps`` more, in seconds."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return {"first_s": first, **spread(seconds)}


def spread(seconds: list[float]) -> dict[str, float]:
    """Median and p95 of ``seconds``."""
    ordered = sorted(seconds)
    return {"median_s": statistics.median(ordered),
            "p95_s": ordered[max(0, round(0.95 * len(ordered)) - 1)]}


def yes(flag: bool) -> str:
    return "yes" if flag else "NO"


SCALE = {"s": 1.0, "ms": 1e3, "µs": 1e6}


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if unit == "count":
        return f"{value:,}"
    number = value * SCALE[unit]
    if abs(number) >= 100:
        text = f"{number:,.0f}"
    elif abs(number) >= 10:
        text = f"{number:.1f}"
    else:
        text = f"{number:.2f}"
    return f"{text} {unit}"


def ratio(peer: Any, nt: Any) -> str:
    if not isinstance(peer, float) or not isinstance(nt, float):
        return "–"
    if nt <= 0:
        return "∞" if peer > 0 else "–"
    value = peer / nt
    return f"{value:,.0f}×" if value >= 100 else f"{value:.1f}×"


def table(rows: list[Row]) -> str:
    head = ["scenario", "measure", "nbtrail", "nbtrail incl. fold", "mlflow-file",
            "mlflow-sqlite", "file/nt", "sqlite/nt", "target", "met"]
    lines = [head]
    for row in rows:
        nt = row.values.get("nbtrail")
        cells = [row.scenario, row.measure, fmt(nt, row.unit), fmt(row.fold, row.unit),
                 fmt(row.values.get("mlflow-file"), row.unit),
                 fmt(row.values.get("mlflow-sqlite"), row.unit)]
        for peer in PEERS:
            if not row.ratios:
                cells.append("–")
                continue
            text = ratio(row.values.get(peer), nt)
            if row.fold is not None and text != "–":
                text += f" ({ratio(row.values.get(peer), row.fold)})"
            cells.append(text)
        cells += [row.target or "–", row.met or "–"]
        lines.append(cells)
    return markdown(lines)


def markdown(lines: list[list[str]]) -> str:
    """A Markdown table of ``lines`` (the first is the header), columns padded to align."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
                   + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def nbtrail_version() -> str:
    found = re.search(r'__version__ = "([^"]+)"',
                      (REPO / "src" / "nbtrail" / "__init__.py").read_text())
    return found.group(1) if found else "?"


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, nbtrail {nbtrail_version()} (src/), "
            f"mlflow {version('mlflow')}, duckdb {version('duckdb')}, "
            f"scikit-learn {version('scikit-learn')}")


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and fewer repetitions (a smoke test, ~3 min)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, metavar="NAME",
                        help=f"run only these scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS),
                        metavar="TOOL", help=f"measure only these: {', '.join(TOOLS)}")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores")
    parser.add_argument("-q", "--silent", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    tools = tuple(t for t in TOOLS if t in args.tools)
    bench = Bench(plan, tools, keep=args.keep, verbose=not args.silent)
    chosen = [s for s in SCENARIOS if not args.only or s in args.only]
    started = time.monotonic()
    load_before = load()
    bench.log(f"nbtrail benchmark ({'quick' if args.quick else 'full'}): {', '.join(chosen)}")
    for scenario in chosen:
        if scenario == "import":
            bench.bench_import()
        elif scenario in ("log-single", "log-batch"):
            bench.bench_log(scenario)
        elif scenario == "steps":
            bench.bench_steps()
        elif scenario == "query":
            bench.bench_query()
        elif scenario == "concurrent":
            bench.bench_concurrent()
        elif scenario == "autolog":
            bench.bench_autolog()
    elapsed = time.monotonic() - started

    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print(f"nbtrail benchmark, {'quick' if args.quick else 'full'} mode, {when}, "
          f"{elapsed / 60:.1f} min")
    print(machine())
    print(f"load average (1/5/15 min) before: {load_before}, after: {load()}")
    print()
    print(table(bench.rows))
    print()
    print("Ratios are peer time / nbtrail time: > 1 means nbtrail is faster; in brackets, "
          "against nbtrail incl. fold (nt.sync() until the data is in the database).")
    if bench.notes:
        print("Notes:")
        for note in bench.notes:
            print(f"- {note}")
    if args.json:
        args.json.write_text(json.dumps({
            "mode": "quick" if args.quick else "full", "date": when, "machine": machine(),
            "elapsed_s": elapsed,
            "load_before": load_before, "load_after": load(), "plan": plan.__dict__,
            "rows": [row.__dict__ for row in bench.rows], "notes": bench.notes,
            "raw": bench.raw,
        }, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
