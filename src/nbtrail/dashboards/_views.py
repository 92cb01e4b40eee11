"""What each dashboard view shows, as data and as static HTML, without Panel.

The Panel app lays these out with its widgets; the static export of a view is the same
HTML in a standalone page, so a snapshot attached to a review shows what the dashboard
showed, in any browser, with no script.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .. import _html
from ..errors import NbtrailError
from ..monitor._api import KIND_TAG, MONITORING
from ..monitor._challenge import CHALLENGE, REPORT_TAG
from ..registry import _api as registry
from ..registry import _state as registry_state

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store
    from ..store._audit import Verdict

View = Literal["runs", "run", "compare", "branches", "sweeps", "lineage", "monitoring",
               "registry", "serving"]
VIEWS: tuple[View, ...] = ("runs", "run", "compare", "branches", "sweeps", "lineage",
                           "monitoring", "registry", "serving")
RUNS_SHOWN = 500
_CURVES = 12  # metric charts shown for one run
_LINEAGE_KINDS = ("dataset", "run", "model", "package", "monitoring")
T = TypeVar("T")
RUN_COLUMNS = ("run_id", "name", "experiment", "status", "start_time", "duration", "branch")
NO_MODEL_REGISTERED = "no model registered yet: nt.register(run, name=...)"
_AUDIT_SHOWN = 20  # latest audit entries in the registry view
NO_PACKAGE = "no serving package yet: nt.package(ref, shadow=[...]) makes one"


# -- data ---------------------------------------------------------------------------------


def runs(store: Store, *, experiment: str | None = None, status: str | None = None,
         where: str | None = None, limit: int = RUNS_SHOWN) -> pl.DataFrame:
    """Runs, newest first, with the dashboard's filters (``where`` is nbtrail's filter)."""
    clauses = [f"({where})"] if where and where.strip() else []
    if status:
        clauses.append("status = '" + status.replace("'", "''") + "'")
    frame = store.runs(where=" and ".join(clauses) or None, order_by="-start_time",
                       experiment=experiment or None, limit=limit)
    # Monitoring runs have their own view; sweep trials stay (they are runs people compare).
    if f"tags.{KIND_TAG}" in frame.columns:
        import polars as pl

        frame = frame.filter(pl.col(f"tags.{KIND_TAG}").is_null())
    return frame


def choices(store: Store) -> dict[str, list[str]]:
    """Values the filters offer: experiments, statuses, metric keys."""
    return {"experiments": store.experiments(exclude=[MONITORING]),
            "statuses": ["running", "finished", "failed", "killed"],
            "metrics": store.metric_keys()}


def recent_run_ids(store: Store, limit: int = 200) -> list[tuple[str, str]]:
    """(label, run id) of the newest runs, for pickers."""
    frame = store.runs(where=f"experiment != '{MONITORING}'", order_by="-start_time",
                       limit=limit)
    return [(f"{name or run_id[:10]} · {experiment} · {run_id[:10]}", run_id)
            for run_id, name, experiment in frame.select("run_id", "name", "experiment").rows()]


def sweeps(store: Store) -> list[tuple[str, str]]:
    """(label, sweep id) of every sweep, newest first."""
    from ..sweeps import list_sweeps

    return [(f"{s.name} · {s.sweep_id[:8]}", s.sweep_id) for s in list_sweeps(store)]


def monitored_models(store: Store) -> list[tuple[str, str]]:
    """(label, model id) of every model with a drift report, most recently checked first."""
    import polars as pl

    reports = (store.run_tags(["model_id"], having={KIND_TAG: MONITORING})
               .filter(pl.col("model_id").is_not_null())
               .group_by("model_id")
               .agg(pl.col("start_time").max().alias("last"), pl.len().alias("reports"))
               .sort("last", "model_id", descending=[True, False]))
    names = {}
    if reports.height:
        models = store.models()
        names = dict(zip(models["model_id"], models["name"], strict=True))
    return [(f"{names.get(model_id) or '?'} · {model_id} ({count} reports)", model_id)
            for model_id, count in reports.select("model_id", "reports").rows()]


def drift_history(store: Store, model_id: str) -> pl.DataFrame:
    """The drift reports of one model over time: verdict, drifted share, PSI per feature."""
    import polars as pl

    quoted = model_id.replace("'", "''")
    frame = store.runs(where=f"tags.model_id = '{quoted}' and tags.`{KIND_TAG}` = "
                             f"'{MONITORING}'", order_by="start_time")
    report = f"tags.{REPORT_TAG}"
    if report in frame.columns:  # challenge reports are monitoring runs too: not drift
        frame = frame.filter(pl.col(report).is_null() | (pl.col(report) != CHALLENGE))
    if "tags.verdict" not in frame.columns:  # only runs tagged as monitoring by hand
        frame = frame.with_columns(pl.lit(None, pl.String).alias("tags.verdict"))
    keep = ["start_time", "tags.verdict", "metrics.drifted_features", "metrics.drift_share",
            *sorted(c for c in frame.columns if c.startswith("metrics.psi.")), "run_id"]
    return frame.select(c for c in keep if c in frame.columns).with_columns(
        pl.col("start_time").dt.replace_time_zone(None))


def registered_models(store: Store) -> list[str]:
    """Names of the registered models, in order, for pickers."""
    return registry.models(store)["name"].to_list()


def packages(store: Store) -> list[tuple[str, str]]:
    """(label, package id) of every serving package, newest first, for pickers."""
    return [(f"{name} ({package_id})", package_id)
            for package_id, name in store.packages().select("package_id", "name").rows()]


def _to_seconds(frame: pl.DataFrame) -> pl.DataFrame:
    """Times as text to the second: the registry keeps microseconds nobody reads."""
    import polars as pl

    return frame.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%d %H:%M:%S %Z"))


# -- HTML fragments -----------------------------------------------------------------------


def nothing_logged_html(store: Store) -> str:
    """What to do while no run is logged in the store: the first one, and where it goes."""
    return (
        f'<div style="border:1px solid #ccc;border-radius:4px;padding:8px 12px;margin:8px 0">'
        f"<strong>No run is logged in {_html.escape(store.location)} yet.</strong> Log a first "
        "run from a notebook or script whose store this is (<code>NBTRAIL_HOME</code>, or "
        "<code>.nbtrail</code> at the git root):"
        "<pre>import nbtrail as nt\nwith nt.run(name=\"first\") as run:\n"
        "    run.log_metric(\"accuracy\", 0.9)</pre>"
        "then reload this page. To look at another store: <code>nbtrail dashboard --store "
        "PATH</code>.</div>")


def runs_html(frame: pl.DataFrame) -> str:
    """The runs table."""
    columns = [c for c in RUN_COLUMNS if c in frame.columns]
    metrics = [c for c in frame.columns if c.startswith("metrics.")][:8]
    shown = frame.select(*columns, *metrics)
    return _html.table(shown.columns, shown.rows(), caption=f"{frame.height} runs",
                       max_rows=100)


def run_html(store: Store, run_id: str) -> str:
    """One run: summary, tags, a chart of each metric with steps, and its media.

    The summary and the media (figures, images, tables, texts) are as in a notebook.
    """
    from ..tracking._gallery import media_html

    run = store.get_run(run_id)
    curves = []
    points = store.metric_curves([run.run_id], min_points=2)
    for (key,), history in list(points.group_by("key", maintain_order=True))[:_CURVES]:
        curves.append(_html.line_chart(str(key), {str(key): list(zip(
            history["step"], history["value"], strict=True))}))
    charts = f'<div style="display:flex;flex-wrap:wrap;gap:12px">{"".join(curves)}</div>'
    tags = _html.mapping("tags", run.tags) if run.tags else ""
    return run._repr_html_() + tags + (charts if curves else
                                       "<p>No metric has several steps.</p>") + \
        media_html(store, run.run_id)


def compare_html(store: Store, run_ids: Sequence[str]) -> str:
    """Runs side by side, and each metric's curves overlaid.

    Params and latest metrics are rows, one column a run; values that differ are marked.
    """
    if not run_ids:
        return "<p>Pick runs to compare.</p>"
    found = [store.get_run(r) for r in run_ids]
    names = [r.name or r.run_id[:10] for r in found]
    keys = sorted({("params", k) for r in found for k in r.params} |
                  {("metrics", k) for r in found for k in r.metrics})
    rows = [(f"{kind}.{key}", *(getattr(r, kind).get(key) for r in found))
            for kind, key in keys]
    differs = [i for i, row in enumerate(rows) if len({repr(v) for v in row[1:]}) > 1]
    table = _html.table(["", *names], rows, max_rows=200, highlight=differs,
                        caption="highlighted: values that differ")
    curves = []
    for key in sorted({k for r in found for k in r.metrics}):
        series = {}
        for run, name in zip(found, names, strict=True):
            if key in run.metrics:
                history = store.metric_history(run.run_id, key)
                series[name] = list(zip(history["step"], history["value"], strict=True))
        if any(len(points) > 1 for points in series.values()):  # a curve, not a dot
            curves.append(_html.line_chart(key, series))
        if len(curves) == _CURVES:
            break
    return table + f'<div style="display:flex;flex-wrap:wrap;gap:12px">{"".join(curves)}</div>'


def branches_html(frame: pl.DataFrame) -> str:
    """One row a git branch: runs, best run, whether the branch still exists."""
    shown = frame.drop("git_root") if "git_root" in frame.columns else frame
    return _html.table(shown.columns, shown.rows(), caption=f"{frame.height} branches",
                       max_rows=100)


def sweep_html(store: Store, sweep_id: str) -> str:
    """A sweep's trials, parallel coordinates of params against the value, importances."""
    from ..errors import MissingExtraError
    from ..sweeps import read_sweep

    found = read_sweep(sweep_id, store)
    frame = found.frame
    if frame.is_empty():
        return "<p>This sweep has no trial recorded yet.</p>"
    value = found.value_columns[0] if found.value_columns else None
    params = [c for c in frame.columns if c.startswith("params.")]
    parts = [_html.table(frame.columns, frame.rows(), caption=f"{frame.height} trials",
                         max_rows=30)]
    if value is not None and params:
        axes = [*params, value]
        parts.append(_html.parallel_coordinates(
            "parallel coordinates (darker: higher value)",
            [a.removeprefix("params.") for a in axes], frame.select(axes).rows(),
            colour_by=frame[value].to_list()))
        try:
            scores = found.importances(value)
        except MissingExtraError as exc:  # the dashboard's host may lack Optuna
            parts.append(f"<p>No importances: {_html.escape(str(exc))}</p>")
        else:
            if scores:
                parts.append(_html.bar_chart(f"importance for {value}", list(scores),
                                             {"importance": list(scores.values())}))
    return "".join(parts)


def lineage_html(store: Store, node_id: str) -> str:
    """The graph around a node: data → run → model → package, and monitoring."""
    found = store.lineage(node_id, direction="both", depth=6)
    monitoring = set(found.edges.filter(relation="monitored")["dst"].to_list())
    nodes = [(i, "monitoring" if i in monitoring else kind, label or "")
             for i, kind, label in found.nodes.rows()
             if kind in _LINEAGE_KINDS or i in monitoring]
    kept = {n[0] for n in nodes}
    edges = [e for e in found.edges.rows() if e[0] in kept and e[1] in kept]
    return _html.graph(f"lineage of {node_id}", nodes, edges, order=_LINEAGE_KINDS) + \
        _html.table(["src", "relation", "dst"], [(s, r, d) for s, d, r in edges],
                    caption="edges", max_rows=60)


def monitoring_html(store: Store, model_id: str) -> str:
    """A model's drift over time and its latest report."""
    history = drift_history(store, model_id)
    if history.is_empty():
        return "<p>No drift report for this model yet (nbtrail drift MODEL LOG).</p>"
    packages = store.packages_of(model_id)
    head = _html.mapping(f"model {model_id}", {
        "packages": ", ".join(packages) or "(none)", "reports": history.height,
        "latest verdict": history["tags.verdict"][-1]})
    series = {c.removeprefix("metrics.psi."): list(enumerate(history[c].fill_null(float("nan"))
                                                              .to_list()))
              for c in history.columns if c.startswith("metrics.psi.")}
    chart = _html.line_chart("PSI per feature, report after report", series, width=480)
    table = _html.table(history.columns, history.rows(), caption="drift reports",
                        max_rows=30, highlight=[i for i, v in enumerate(history["tags.verdict"])
                                                if v == "drift"])
    return head + chart + table + "<h3>Latest report</h3>" + report_html(
        store, history["run_id"][-1])


def report_html(store: Store, run_id: str) -> str:
    """A stored drift report, drawn again from its data (``drift.json``).

    Never the stored ``drift.html``: whoever can log can store any page under that name,
    and a page is markup, where every string of the store must show as text.
    """
    from ..monitor._drift import DriftReport, FeatureDrift, MetricChange, Thresholds

    try:
        data = json.loads(store.artifact_path(run_id, "drift.json").read_text("utf-8"))
        features = tuple(_record(FeatureDrift, f) for f in data["features"])
        report = _record(DriftReport, {
            **data, "features": features,
            "prediction": data.get("prediction") and _record(FeatureDrift, data["prediction"]),
            "metric": data.get("metric") and _record(MetricChange, data["metric"]),
            "thresholds": _record(Thresholds, data.get("thresholds") or {})})
        return report._repr_html_()
    except NbtrailError as exc:  # no drift.json: a run tagged as monitoring by hand
        return f"<p>{_html.escape(exc)}</p>"
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        return (f"<p>The drift report of run {_html.escape(run_id)} cannot be read "
                f"({_html.escape(type(exc).__name__)}: {_html.escape(exc)}).</p>")


def registry_html(store: Store, name: str | None = None) -> str:
    """The registered models; ``name``'s (default: the first) versions and requests; the audit.

    Only reads: a request is approved in JupyterLab or with ``nbtrail models approve``.
    """
    found = registry.models(store)
    parts = ["<p>This view only reads the registry: approve or reject a promotion request in "
             "JupyterLab or with <code>nbtrail models approve</code>.</p>"]
    if found.is_empty():
        parts.append(f"<p><strong>{_html.escape(NO_MODEL_REGISTERED)}</strong>; then reload "
                     "this page.</p>")
    else:
        names = found["name"].to_list()
        chosen = name or names[0]
        parts.append(_html.table(found.columns, _to_seconds(found).rows(),
                                 caption=f"registered models: {found.height}", max_rows=100,
                                 highlight=[names.index(chosen)] if chosen in names else []))
        parts.append(model_html(store, chosen))
    verdict = registry.verify_audit(store)
    if verdict.entries or not verdict.ok:  # an empty registry has no trail to speak of
        parts.append(audit_html(store, verdict))
    return "".join(parts)


def model_html(store: Store, name: str) -> str:
    """One registered model: its versions with aliases and metrics, its promotion requests."""
    versions = registry.model_versions(store, name)
    shown = versions.drop("ref")
    parts = [f"<h3>{_html.escape(name)}: versions</h3>", _html.table(
        shown.columns, _to_seconds(shown).rows(), max_rows=50,
        caption="metrics as logged by the run when the version was registered",
        highlight=[i for i, a in enumerate(versions["aliases"]) if a])]
    requests = registry.promotion_requests(store, name)
    parts.append(f"<h3>{_html.escape(name)}: promotion requests</h3>")
    if requests.is_empty():
        parts.append("<p>No promotion request yet: <code>nt.request_promotion(name, "
                     "version=..., alias=...)</code>.</p>")
        return "".join(parts)
    decisions = _decisions(registry.audit(store, name))
    rows, checks = [], []
    for r in _to_seconds(requests).iter_rows(named=True):
        decided_at, decision_note = decisions.get(r["request_id"], (None, None))
        rows.append((f"#{r['request_id']}", f"{r['ref']} → @{r['alias']}", r["status"],
                     r["requested_by"], r["requested_at"], r["note"], r["decided_by"],
                     decided_at, decision_note))
        checks += [(f"#{r['request_id']}", c["check"], "passed" if c["passed"] else "FAILED",
                    c["detail"]) for c in json.loads(r["checks"])]
    parts.append(_html.table(
        ["request", "promotion", "status", "requested by", "requested at", "note",
         "decided by", "decided at", "decision note"], rows, max_rows=30,
        caption="newest first; highlighted: waiting for checks or a decision",
        highlight=[i for i, s in enumerate(requests["status"]) if s in registry_state.OPEN]))
    if checks:
        parts.append(_html.table(["request", "check", "result", "detail"], checks,
                                 max_rows=60, caption="checks of each request",
                                 highlight=[i for i, c in enumerate(checks)
                                            if c[2] == "FAILED"]))
    return "".join(parts)


def _decisions(trail: pl.DataFrame) -> dict[int, tuple[str, str | None]]:
    """When each decided request was decided, and its note, from the model's audit trail."""
    decided = _to_seconds(trail.filter(trail["event"].is_in([registry_state.APPROVED,
                                                              registry_state.REJECTED])))
    found = {}
    for at, payload in decided.select("at", "payload").rows():
        data = json.loads(payload)
        found[int(data["request"])] = (at, data.get("note"))
    return found


def audit_html(store: Store, verdict: Verdict) -> str:
    """Whether the audit chain verifies, and its latest entries, newest first."""
    line = (f'<p style="color:#067647">audit trail whole: {verdict.entries} entries</p>'
            if verdict.ok else
            f'<p style="color:#b42318">audit trail broken: {_html.escape(verdict.problem)}</p>')
    trail = registry.audit(store)
    latest = _to_seconds(trail.tail(_AUDIT_SHOWN).reverse()).select(
        "seq", "at", "actor", "actor_source", "event", "model", "version", "payload")
    return "<h3>Audit trail</h3>" + line + _html.table(
        latest.columns, latest.rows(), max_rows=_AUDIT_SHOWN,
        caption=f"the latest {latest.height} of {trail.height} entries",
        highlight=[i for i, seq in enumerate(latest["seq"]) if seq == verdict.broken_seq])


def serving_html(store: Store, package_id: str | None = None, *,
                 log_dir: str | None = None, every: int = 60) -> str:
    """A serving package's live view (``nt.traffic``), default the newest package.

    Its versions with their role and canary share, the traffic split and totals per
    version, agreement with the champion, latency p99 and share over time in buckets of
    ``every`` seconds, and the latest challenge report in full. ``log_dir`` adds a
    prediction log folder to those its deployments record. Only reads: a challenger is
    promoted from JupyterLab's sidebar or with ``nt.traffic(name).promote()``.
    """
    from ..monitor._traffic import traffic

    parts = ["<p>This view only reads: promote a challenger from JupyterLab's sidebar or "
             "with <code>nt.traffic(name).promote()</code>.</p>"]
    listed = packages(store)
    if not listed:
        parts.append(f"<p><strong>{_html.escape(NO_PACKAGE)}</strong>; then reload this "
                     "page.</p>")
        return "".join(parts)
    view = traffic(package_id or listed[0][1], log_dir=log_dir, every=every, store=store)
    # The table and charts are the notebook's; the report is drawn in full below.
    parts.append(dataclasses.replace(view, challenge=None)._repr_html_())
    if view.timeline.is_empty():
        parts.append("<p>Serve it with a log to see its traffic here: <code>nbtrail serve "
                     "PACKAGE --log-dir DIR</code> or <code>nt.serve(package, log_dir=DIR)"
                     "</code>; a package of registry versions records where its server logs."
                     "</p>")
    else:
        start = view.timeline["time"].dt.strftime("%Y-%m-%d %H:%M:%S").min()
        totals = view.totals()
        parts.append(_html.bar_chart(
            "traffic split: share of answers",
            [f"{role} {version}" for version, role in totals.select("version", "role").rows()],
            {"share": totals["share"].to_list()}))
        parts.append(f"<p>Read from {_html.escape(', '.join(view.log_dirs))}; charts in "
                     f"buckets of {view.every_s} s, x in seconds since "
                     f"{_html.escape(start)} UTC.</p>")
    parts.append("<h3>Latest challenge report</h3>")
    if view.challenge is None:
        parts.append("<p>No challenge report yet: <code>nt.challenge(LOG_DIR, labels=...)"
                     "</code> compares the champion with its challengers and stores one.</p>")
    else:
        parts.append(challenge_html(view.challenge))
    return "".join(parts)


def challenge_html(report: dict[str, Any]) -> str:
    """A stored challenge report (``ChallengeReport.to_dict()``), drawn again from its data.

    Never the stored ``challenge.html``, for the reason :func:`report_html` gives.
    """
    from ..monitor._challenge import ChallengeReport, VersionChallenge

    try:
        versions = tuple(_record(VersionChallenge, v) for v in report["versions"])
        return _record(ChallengeReport, {**report, "versions": versions})._repr_html_()
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        run = report.get("run_id") if isinstance(report, dict) else None
        return (f"<p>The latest challenge report (run {_html.escape(run or '?')}) "
                f"cannot be read ({_html.escape(type(exc).__name__)}: "
                f"{_html.escape(exc)}).</p>")


def _record(cls: type[T], data: dict[str, Any]) -> T:
    """A frozen record from its ``asdict`` form: lists become tuples, derived keys go."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
                  if k in known})


def export(store: Store, view: View, **args: Any) -> str:
    """A standalone, script-free HTML page of one view (see ``nbtrail dashboard --export``).

    ``args``: ``run_id`` (run), ``run_ids`` (compare), ``sweep_id`` (sweeps),
    ``node_id`` (lineage), ``model_id`` (monitoring), ``name`` (registry: a registered
    model, default the first), ``package_id`` and ``log_dir`` (serving: default the newest
    package, the log folders its deployments record), ``metric`` (branches), and the runs
    filters ``experiment``, ``status``, ``where``.
    """
    from ..experiments._branches import branches

    if not store.exists():
        body = nothing_logged_html(store)
    elif view == "runs":
        body = runs_html(runs(store, experiment=args.get("experiment"),
                              status=args.get("status"), where=args.get("where")))
    elif view == "run":
        body = run_html(store, args["run_id"])
    elif view == "compare":
        body = compare_html(store, args.get("run_ids") or [])
    elif view == "branches":
        body = branches_html(branches(store, args.get("metric")))
    elif view == "sweeps":
        body = sweep_html(store, args["sweep_id"])
    elif view == "lineage":
        body = lineage_html(store, args["node_id"])
    elif view == "registry":
        body = registry_html(store, args.get("name"))
    elif view == "serving":
        body = serving_html(store, args.get("package_id"), log_dir=args.get("log_dir"))
    else:
        body = monitoring_html(store, args["model_id"])
    return _html.document(f"nbtrail · {view}", f"<h2>nbtrail · {_html.escape(view)}</h2>{body}")
