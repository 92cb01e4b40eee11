"""The Serving tab: a package's versions, traffic, charts over time and latest challenge."""

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import nbtrail as nt
from nbtrail.dashboards import read_only_store
from nbtrail.dashboards._app import build
from nbtrail.dashboards._views import (
    NO_PACKAGE,
    VIEWS,
    challenge_html,
    drift_history,
    export,
    packages,
    serving_html,
)
from nbtrail.errors import InvalidInputError
from nbtrail.registry import _api
from nbtrail.registry._state import DEPLOYED

from ..packaging._models import churn_frame
from .conftest import ARTIFACTS, HOSTILE, HOSTILE_SCRIPT, dashboard_in_chromium, required

pn = required("panel")

REQUESTS = 120  # one row each, a second apart: two one-minute buckets
READ_ONLY = "This view only reads: promote a challenger from JupyterLab's sidebar"


def h(n: int) -> str:
    return HOSTILE.format(n)


def _entry(role: str, version: str, model_id: str, prediction: int, latency: float
           ) -> dict[str, Any]:
    return {"role": role, "version": version, "model_id": model_id, "latency_ms": latency,
            "prediction": prediction, "probabilities": None}


def _write_log(folder: Path, versions: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """A prediction log as a server of ``versions`` (role, label, model id) writes it.

    Every fourth request goes to the canary; the others the champion answers and the
    shadow predicts too, agreeing on four rows in five.
    """
    (_, champion, champion_id), (_, shadow, shadow_id), (_, canary, canary_id) = versions
    lines = []
    for i in range(REQUESTS):
        if i % 4 == 0:
            models = [_entry("canary", canary, canary_id, i % 2, 30.0)]
        else:
            models = [_entry("champion", champion, champion_id, i % 2, 10.0 + i % 3),
                      _entry("shadow", shadow, shadow_id, i % 2 if i % 5 else 1 - i % 2, 20.0)]
        lines.append({"time": f"2026-12-03T12:{i // 60:02d}:{i % 60:02d}.000000Z",
                      "request_id": f"req-{i}", "model": "churn", "model_id": champion_id,
                      "model_sha256": "ab" * 32, "inputs": {"age": i},
                      "prediction": models[0]["prediction"], "probabilities": None,
                      "version": models[0]["version"], "models": models})
    folder.mkdir(parents=True)
    (folder / "predictions-20261203T120000000000Z-4242.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines))
    return lines


@dataclass(frozen=True)
class Served:
    home: Path
    package_id: str  # churn: churn/1 champion, churn/2 shadow, churn/3 canary at 25 %
    solo_id: str  # the newest package: one model, never served
    log: Path
    report_run: str  # the latest challenge report of churn/1


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from nbtrail.tracking._tracker import get_store

    root = tmp_path_factory.mktemp("serving")
    frame, target = churn_frame()
    with nt.config(home=str(root / "store"), capture_git=False):
        for c in (1.0, 0.1, 0.01):
            model = make_pipeline(make_column_transformer(
                (OneHotEncoder(), ["plan"]), (StandardScaler(), ["age", "income"])),
                LogisticRegression(C=c)).fit(frame, target)
            with nt.run(name=f"C={c}") as run:
                run.log_dataset(frame, name="train", role="train")
                nt.register(run.log_model(model, name="churn"), name="churn")
        pkg = nt.package("churn/1", shadow=["churn/2"], canary={"churn/3": 0.25}, name="churn",
                         output=root / "ctx", build=False)
        ids = {v: nt.model_version(f"churn/{v}").model_id for v in (1, 2, 3)}
        log = root / "log"
        lines = _write_log(log, [("champion", "1", ids[1]), ("shadow", "2", ids[2]),
                                 ("canary", "3", ids[3])])
        store = get_store()
        assert _api.record_deployment(store, pkg.package_id, {"log_dir": str(log)}) == 3
        labels = pd.DataFrame([(line["request_id"], 0, 1) for line in lines[::2]],
                              columns=["request_id", "row", "label"])
        nt.challenge(log, labels=labels, bootstrap=50)
        report = nt.challenge(log, labels=labels, bootstrap=100, seed=1)
        solo = nt.package(ids[3], name="solo", output=root / "solo", build=False)
        nt.sync()
    return Served(root / "store", pkg.package_id, solo.package_id, log, report.run_id)


def test_the_serving_view_shows_versions_traffic_charts_and_the_latest_challenge(served):
    store = read_only_store(served.home)
    assert packages(store) == [(f"solo ({served.solo_id})", served.solo_id),
                               (f"churn ({served.package_id})", served.package_id)]
    page = export(store, "serving", package_id=served.package_id)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "<iframe" not in page and "<button" not in page and "<form" not in page
    assert READ_ONLY in page and "nt.traffic(name).promote()" in page
    # The versions, their role and the canary's share.
    assert f"package churn ({served.package_id})" in page
    for role, version, share in (("champion", "1", ""), ("shadow", "2", ""),
                                 ("canary", "3", "25%")):
        assert f"<td {_CELL}>{role}</td><td {_CELL}>{version}</td>" in page
        assert f"<td {_CELL}>churn/{version}</td><td {_CELL}>{share}</td>" in page
    # Totals per version, read from the log: rows, answers, share of answers, agreement.
    assert f"{REQUESTS} logged rows read" in page
    assert _row("1", "champion", 90, 90, 0.75, 0, 0) in page
    assert _row("3", "canary", 30, 30, 0.25, 0, 0) in page
    assert _row("2", "shadow", 90, 0, 0, 0, 0, 0.8) in page
    assert "traffic split: share of answers" in page and "champion 1" in page
    # Charts over time, one line a version.
    for title in ("agreement with the champion", "latency p99 (ms)", "share of answers"):
        assert f"<strong>{title}</strong>" in page
    assert page.count("<polyline") == 1 + 3 + 3  # agreement: the shadow only
    assert f"Read from {served.log}; charts in buckets of 60 s" in page
    assert "x in seconds since 2026-12-03 12:00:00 UTC" in page
    # The latest report in full: verdict, log, time, monitoring run, a row a version.
    assert "Latest challenge report" in page and "against champion 1: version 2: accuracy" in page
    assert f"log: {served.log}<br>" in page and f"monitoring run {served.report_run}" in page
    assert "traffic and answers" in page and "percentile bootstrap of 100 resamples" in page
    assert page.count("latest challenge report") == 0  # the short form is not shown too


_CELL = 'style="border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top;"'


def _row(*values: object) -> str:
    return "".join(f"<td {_CELL}>{html.escape(_shown(v))}</td>" for v in values)


def _shown(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def test_a_package_never_served_and_a_store_without_packages_say_what_to_do(served, tmp_path):
    store = read_only_store(served.home)
    page = export(store, "serving")  # the newest package
    assert f"package solo ({served.solo_id})" in page
    assert "No predictions logged yet (no log folder recorded)" in page
    assert "nbtrail serve PACKAGE --log-dir DIR" in page and "No challenge report yet" in page
    assert "traffic split" not in page and "<polyline" not in page
    # The log can be named when the store does not know it.
    named = serving_html(store, served.solo_id, log_dir=str(served.log))
    assert f"{REQUESTS} logged rows read" in named and "No predictions logged yet" not in named

    home = tmp_path / "store"
    with nt.config(home=str(home), capture_git=False):
        with nt.run(name="unpackaged") as run:
            run.log_metric("acc", 0.5)
        nt.sync()
    empty = export(read_only_store(home), "serving")
    assert NO_PACKAGE in empty and READ_ONLY in empty and "logged rows read" not in empty
    root = pn.panel(build(read_only_store(home), {"view": "serving"})).get_root()
    text = " ".join(html.unescape(str(getattr(m, "text", "") or "")) for m in root.references())
    assert NO_PACKAGE in text


def test_the_serving_tab_of_the_app(served):
    store = read_only_store(served.home)
    root = pn.panel(build(store, {"view": "serving", "package": served.package_id})).get_root()
    models = root.references()
    (tabs,) = [m for m in models if type(m).__name__ == "Tabs"]
    assert tabs.tabs[tabs.active].title == "Serving" and VIEWS[tabs.active] == "serving"
    (picker,) = [m for m in models if getattr(m, "title", None) == "Package"]
    assert picker.value == served.package_id
    assert picker.options == [(served.solo_id, f"solo ({served.solo_id})"),
                              (served.package_id, f"churn ({served.package_id})")]
    # Panel escapes a pane's HTML once more to send it: undone, it is the view's HTML.
    text = " ".join(html.unescape(str(getattr(m, "text", "") or "")) for m in models)
    assert f"package churn ({served.package_id})" in text and "traffic split" in text
    assert f"monitoring run {served.report_run}" in text
    # By default the newest package; an unknown one is a message, not a traceback.
    for args, shown in (({}, f"package solo ({served.solo_id})"),
                        ({"package": "pkg_nope"}, f"package solo ({served.solo_id})")):
        root = pn.panel(build(store, {"view": "serving", **args})).get_root()
        assert shown in " ".join(html.unescape(str(getattr(m, "text", "") or ""))
                                 for m in root.references())
    assert "no package 'pkg_nope'" in build_text(store, "pkg_nope")


def build_text(store, package_id: str) -> str:
    """What the view says of a package id nobody can pick, through the app's error guard."""
    from nbtrail.dashboards._app import _safe

    return html.unescape(_safe(serving_html)(store, package_id))


# -- hostile text: a package, its routing, its log and a report anyone could have written --


@dataclass(frozen=True)
class Hostile:
    home: Path
    package_id: str
    strings: tuple[str, ...]  # each must show as text


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    """A package recorded by hand with a hostile name, versions, model ids, log and report."""
    import time

    from nbtrail.store import PackageMade
    from nbtrail.tracking._tracker import get_store

    root = tmp_path_factory.mktemp("hostile-serving")
    name, labels, ids = HOSTILE_SCRIPT, (h(51), h(52), h(53)), (h(54), h(55), h(56))
    context = root / "ctx"
    (context / "model").mkdir(parents=True)
    (context / "model" / "routing.json").write_text(json.dumps({
        "champion": {"version": labels[0], "model_id": ids[0]},
        "shadows": [{"version": labels[1], "model_id": ids[1]}],
        "canary": [{"version": labels[2], "model_id": ids[2], "share": 0.25}]}))
    log = root / h(57).replace("/", "_")
    _write_log(log, list(zip(("champion", "shadow", "canary"), labels, ids, strict=True)))
    with nt.config(home=str(root / "store"), capture_git=False):
        frame, target = churn_frame()
        from sklearn.linear_model import LogisticRegression

        with nt.run(name="m") as run:
            model_id = run.log_model(LogisticRegression().fit(frame[["age"]], target), "m")
        nt.register(model_id, name="churn")
        store = get_store()
        package_id = "pkg_01HOSTILE0000000000000000"
        writer = store.writer()
        writer.append(PackageMade(
            package_id=package_id, model_id=ids[0], run_id=run.run_id, name=name,
            context_path=str(context), base_image=h(58), image_tag=None, image_digest=None,
            image_size_bytes=None, created_at=time.time()).to_journal())
        writer.flush()
        _api.record_use(store, "churn/1", DEPLOYED, {"package_id": package_id,
                                                       "log_dir": str(log)})
        # A monitoring run tagged as a challenge report of the champion, with a page (and
        # without the verdict tag nt.challenge sets, which the Monitoring tab must bear).
        # Its source names the package's log (so it is this package's report) and more.
        report = nt.challenge(log, log=False).to_dict() | {"source": f"{log}, {h(59)}"}
        folder = root / "report"
        folder.mkdir()
        (folder / "challenge.json").write_text(json.dumps(report))
        (folder / "challenge.html").write_text(f"<html><body>{h(60)}</body></html>")
        with nt.run(name=h(61), experiment="monitoring", nested=False,
                    tags={"nbtrail.kind": "monitoring", "nbtrail.report": "challenge",
                          "model_id": ids[0]}) as forged:
            forged.log_artifact(folder / "challenge.json")
            forged.log_artifact(folder / "challenge.html")
        nt.sync()
    return Hostile(root / "store", package_id, (name, *labels, *ids, str(log), h(59)))


def assert_text_only(page: str, strings: tuple[str, ...]) -> None:
    for hostile in strings:
        assert hostile not in page, hostile
        assert html.escape(hostile) in page, hostile
    assert "<img" not in page and "<svg/" not in page and "<script" not in page
    assert h(60) not in page and html.escape(h(60)) not in page  # the stored page: never


def test_hostile_package_strings_show_as_text(hostile):
    store = read_only_store(hostile.home)
    page = export(store, "serving", package_id=hostile.package_id)
    assert f"{REQUESTS} logged rows read" in page and "Latest challenge report" in page
    assert "traffic and answers" in page and "<svg" in page  # charts, drawn by _html
    # The stored report is a monitoring run of the champion's model, but no drift report.
    assert drift_history(store, h(54)).is_empty()
    assert_text_only(page, hostile.strings)
    root = pn.panel(build(store, {"view": "serving"})).get_root()
    models = root.references()
    (picker,) = [m for m in models if getattr(m, "title", None) == "Package"]
    # Bokeh's Select shows its labels as text: the name goes in as it is.
    assert picker.options == [(hostile.package_id, f"{HOSTILE_SCRIPT} ({hostile.package_id})")]
    assert_text_only(" ".join(html.unescape(str(getattr(m, "text", "") or ""))
                              for m in models), hostile.strings)


def test_a_routing_file_not_written_by_nbtrail_is_a_message(hostile, tmp_path):
    import shutil

    store = read_only_store(hostile.home)
    context = Path(store.packages()["context_path"][0])
    saved = tmp_path / "routing.json"
    shutil.copy(context / "model" / "routing.json", saved)
    try:
        (context / "model" / "routing.json").write_text(json.dumps(
            {"champion": h(62), "shadows": [], "canary": []}))
        with pytest.raises(InvalidInputError, match=r"is not a routing\.json nbtrail wrote") \
                as caught:
            export(store, "serving")
        assert "\n" not in str(caught.value)
    finally:
        shutil.copy(saved, context / "model" / "routing.json")
    # Log lines whose versions are not objects are not nbtrail's: they are left out.
    log = Path(hostile.strings[-2])
    odd = log / "predictions-20261203T130000000000Z-1.jsonl"
    odd.write_text(json.dumps({"time": "2026-12-03T13:00:00Z", "models": [h(63)]}) + "\n"
                   + json.dumps({"time": "2026-12-03T13:00:01Z", "models": h(63)}) + "\n")
    try:
        before = export(store, "serving")
    finally:
        odd.unlink()
    assert READ_ONLY in before and "<img" not in before
    # A stored report that is no report: a message too.
    for report in ([h(64)], {"versions": h(64), "run_id": h(65)}):
        shown = challenge_html(report)  # type: ignore[arg-type]
        assert "The latest challenge report (run " in shown and "cannot be read" in shown
        assert "<img" not in shown


def test_the_serving_tab_in_chromium_shows_hostile_strings_as_text(hostile):
    with dashboard_in_chromium(hostile.home) as browsed:
        page = browsed.page
        page.goto(f"{browsed.url}&view=serving&package={hostile.package_id}")
        page.get_by_text("traffic split: share of answers").wait_for(timeout=60_000)
        for text in (f"package {HOSTILE_SCRIPT} ({hostile.package_id})", h(59)):
            page.get_by_text(text).filter(visible=True).first.wait_for(timeout=10_000)
        page.get_by_role("button", name="Refresh").click()
        page.get_by_text("traffic split: share of answers").wait_for(timeout=30_000)
        page.wait_for_timeout(1000)  # an image that fails to load has done so
        page.screenshot(path=ARTIFACTS / "dashboard-serving.png", full_page=True)
        # Bokeh draws in open shadow roots, which CSS locators pierce.
        assert page.locator("img[src='x'], [onerror], [onload]").count() == 0
        assert browsed.dialogs == [] and browsed.errors == []
