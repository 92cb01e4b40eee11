"""The Panel app: one tab a view, each a few widgets over the HTML of ``_views``."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import panel as pn

from .. import _html
from ..errors import NbtrailError
from ..experiments._branches import branches
from . import _views

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store

TITLE = "nbtrail"
_ACCENT = "#4e79a7"
_CSS = """
.nbtrail-view table { font-size: 13px; }
.nbtrail-view caption { color: #555; padding: 2px 0; }
.nbtrail-view h3 { margin: 12px 0 4px 0; }
"""


# Every string from the store is text. HTML panes only get fragments of ``_views``, built
# by ``_html``, which escapes everything; Bokeh's Select and TextInput show text as it is.
# The two widgets below would render a store string as HTML, so they are only built here.


def _error(exc: NbtrailError) -> str:
    return f'<p style="color:#b42318">{_html.escape(exc)}</p>'


def _safe(render: Callable[..., str]) -> Callable[..., str]:
    """Show an expected error as a message in the view, never as a traceback."""
    def wrapped(*args: Any, **kwargs: Any) -> str:
        try:
            return render(*args, **kwargs)
        except NbtrailError as exc:
            return _error(exc)
    return wrapped


def _table(frame: pl.DataFrame) -> pn.widgets.Tabulator:
    """A read-only, paged table whose column titles are text.

    Tabulator sets a title as HTML unless a title formatter says otherwise; cells are
    text already (Bokeh's cell formatters write text nodes, Tabulator's plaintext escapes).
    """
    return pn.widgets.Tabulator(frame.to_pandas(), disabled=True, show_index=False,
                                pagination="local", page_size=25, layout="fit_data_table",
                                sizing_mode="stretch_width", header_filters=False,
                                configuration={"columnDefaults": {"titleFormatter":
                                                                  "plaintext"}})


def _chips(label: str, options: dict[str, str], value: list[str],
           width: int) -> pn.widgets.MultiChoice:
    """A multiple choice of ``options`` (label: value), shown as chips.

    Bokeh's MultiChoice is Choices.js with its ``allowHTML`` left on, and no way to turn it
    off: labels go in escaped, so that they show as the text they are.
    """
    return pn.widgets.MultiChoice(label=label, value=value, width=width,
                                  options={_html.escape(k): v for k, v in options.items()})


def _html_pane(function: Callable[..., str], *args: Any) -> pn.pane.HTML:
    return pn.pane.HTML(pn.bind(_safe(function), *args), sizing_mode="stretch_width",
                        css_classes=["nbtrail-view"])


def _download(store: Store, view: _views.View, **widgets: Any) -> pn.widgets.FileDownload:
    """A button exporting the view as it is now to a standalone HTML file."""
    def snapshot() -> io.StringIO:
        values = {name: w.value for name, w in widgets.items()}
        return io.StringIO(_safe(_views.export)(store, view, **values))

    return pn.widgets.FileDownload(callback=snapshot, filename=f"nbtrail-{view}.html",
                                   label="Export HTML", width=130)


def _first(options: list[tuple[str, str]] | dict[str, str], wanted: str | None) -> str | None:
    values = list(options.values()) if isinstance(options, dict) else [v for _, v in options]
    if wanted and wanted in values:
        return wanted
    return values[0] if values else None


def build(store: Store, args: dict[str, str] | None = None) -> pn.viewable.Viewable:
    """The dashboard over ``store``.

    ``args`` pick the tab and items (``view``, ``run``, ``model``, ``sweep``, ``node``,
    ``package``), as the page's query arguments do; ``model`` is a model id for monitoring,
    a registered model's name for the registry; ``package`` a package id (``pkg_…``).
    """
    args = args or {}
    pn.config.raw_css = [*pn.config.raw_css, _CSS] if _CSS not in pn.config.raw_css else \
        pn.config.raw_css
    header = pn.pane.HTML(
        f'<div style="display:flex;align-items:baseline;gap:12px">'
        f'<span style="font-size:20px;font-weight:bold;color:{_ACCENT}">{TITLE}</span>'
        f'<span style="color:#666">read-only view of {_html.escape(store.location)}</span></div>',
        sizing_mode="stretch_width")
    if not store.exists():  # nothing to read yet (and reading would create the folder)
        return pn.Column(header, pn.pane.HTML(_views.nothing_logged_html(store),
                                              sizing_mode="stretch_width"),
                         sizing_mode="stretch_width", margin=(8, 16))
    choices = _views.choices(store)

    # runs
    experiment = pn.widgets.Select(label="Experiment", options=["", *choices["experiments"]],
                                   width=180)
    status = pn.widgets.Select(label="Status", options=["", *choices["statuses"]], width=120)
    where = pn.widgets.TextInput(label="Filter", placeholder="metrics.acc > 0.9 and "
                                 "params.penalty = 'l2'", width=360)

    def runs_table(experiment: str, status: str, where: str) -> pn.viewable.Viewable:
        try:
            frame = _views.runs(store, experiment=experiment, status=status, where=where)
        except NbtrailError as exc:
            return pn.pane.HTML(_error(exc))
        # The columns people scan first, then metrics and params; nothing all empty.
        first = [c for c in _views.RUN_COLUMNS if c in frame.columns]
        rest = sorted((c for c in frame.columns if c.startswith(("metrics.", "params."))),
                      key=lambda c: (not c.startswith("metrics."), c))
        return _table(frame.select(c for c in [*first, *rest]
                                   if frame[c].null_count() < frame.height))

    runs_tab = pn.Column(
        pn.Row(experiment, status, where,
               _download(store, "runs", experiment=experiment, status=status, where=where)),
        pn.panel(pn.bind(runs_table, experiment, status, where)),
        name="Runs", sizing_mode="stretch_width")

    # one run, and a comparison
    recent = dict(_views.recent_run_ids(store))
    run = pn.widgets.Select(label="Run", options=recent, value=_first(recent, args.get("run")),
                            width=420)
    run_tab = pn.Column(pn.Row(run, _download(store, "run", run_id=run)),
                        _html_pane(_views.run_html, store, run), name="Run",
                        sizing_mode="stretch_width")
    picked = _chips("Runs to compare", recent,
                    [r for r in store.runs_with_curves(limit=2) if r in recent.values()] or
                    list(recent.values())[:2], width=640)
    compare_tab = pn.Column(pn.Row(picked, _download(store, "compare", run_ids=picked)),
                            _html_pane(_views.compare_html, store, picked), name="Compare",
                            sizing_mode="stretch_width")

    # branches
    metric = pn.widgets.Select(label="Best by metric", options=["", *choices["metrics"]],
                               width=200)

    def branches_html(metric: str) -> str:
        return _views.branches_html(branches(store, metric or None))

    branches_tab = pn.Column(pn.Row(metric, _download(store, "branches", metric=metric)),
                             _html_pane(branches_html, metric), name="Branches",
                             sizing_mode="stretch_width")

    # sweeps
    sweep_options = dict(_views.sweeps(store))
    sweep = pn.widgets.Select(label="Sweep", options=sweep_options,
                              value=_first(sweep_options, args.get("sweep")), width=320)
    sweeps_tab = pn.Column(
        pn.Row(sweep, _download(store, "sweeps", sweep_id=sweep)),
        _html_pane(lambda s: _views.sweep_html(store, s) if s else "<p>No sweep yet.</p>",
                   sweep),
        name="Sweeps", sizing_mode="stretch_width")

    # lineage
    models = store.models(limit=200)
    default_node = args.get("node") or (models["model_id"][0] if models.height else
                                        next(iter(recent.values()), ""))
    node = pn.widgets.TextInput(label="Node id (model, run, data set, package)",
                                value=default_node, width=420)
    lineage_tab = pn.Column(
        pn.Row(node, _download(store, "lineage", node_id=node)),
        _html_pane(lambda n: _views.lineage_html(store, n.strip()) if n.strip() else
                   "<p>Give a node id.</p>", node),
        name="Lineage", sizing_mode="stretch_width")

    # monitoring
    monitored = dict(_views.monitored_models(store))
    model = pn.widgets.Select(label="Model", options=monitored,
                              value=_first(monitored, args.get("model")), width=480)
    monitoring_tab = pn.Column(
        pn.Row(model, _download(store, "monitoring", model_id=model)),
        _html_pane(lambda m: _views.monitoring_html(store, m) if m else
                   "<p>No drift report yet: run <code>nbtrail drift MODEL LOG</code>.</p>",
                   model),
        name="Monitoring", sizing_mode="stretch_width")

    # registry (``model=`` names a registered model here, a model id in monitoring)
    registered = {name: name for name in _views.registered_models(store)}
    registered_model = pn.widgets.Select(label="Registered model", options=registered,
                                         value=_first(registered, args.get("model")), width=320)
    registry_tab = pn.Column(
        pn.Row(registered_model, _download(store, "registry", name=registered_model)),
        _html_pane(_views.registry_html, store, registered_model),
        name="Registry", sizing_mode="stretch_width")

    # serving (``package=`` a package id): read again on a new pick and on Refresh
    listed = dict(_views.packages(store))
    package = pn.widgets.Select(label="Package", options=listed,
                                value=_first(listed, args.get("package")), width=420)
    refresh = pn.widgets.Button(label="Refresh", width=90, align="end")
    serving_tab = pn.Column(
        pn.Row(package, refresh, _download(store, "serving", package_id=package)),
        _html_pane(lambda p, _clicks: _views.serving_html(store, p), package,
                   refresh.param.clicks),
        name="Serving", sizing_mode="stretch_width")

    tabs = pn.Tabs(runs_tab, run_tab, compare_tab, branches_tab, sweeps_tab, lineage_tab,
                   monitoring_tab, registry_tab, serving_tab, dynamic=True,
                   sizing_mode="stretch_width")
    view = args.get("view")
    if view in _views.VIEWS:
        tabs.active = _views.VIEWS.index(view)
    hint = [] if recent else [pn.pane.HTML(_views.nothing_logged_html(store),
                                           sizing_mode="stretch_width")]
    return pn.Column(header, *hint, tabs, sizing_mode="stretch_width", margin=(8, 16))


def session_args() -> dict[str, str]:
    """The query arguments of the page being served (``?view=…&run=…``)."""
    return {key: values[0].decode() for key, values in pn.state.session_args.items()
            if values}
