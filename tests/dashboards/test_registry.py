"""The Registry tab: models, versions, promotion requests with their checks, the audit verdict."""

import html
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import nbtrail as nt
from nbtrail.dashboards import read_only_store
from nbtrail.dashboards._app import build
from nbtrail.dashboards._views import NO_MODEL_REGISTERED, VIEWS, export
from nbtrail.registry import _api

from .conftest import ARTIFACTS, HOSTILE, dashboard_in_chromium, required

pn = required("panel")


def h(n: int) -> str:
    return HOSTILE.format(n)


# Where a registry string can come from a user: each shows as text, never as markup.
DESCRIPTION, NOTE, REQUESTER, DATA = h(41), h(42), h(43), h(44) + ".parquet"


@dataclass(frozen=True)
class Registry:
    home: Path
    entries: int  # audit entries the trail holds


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """churn: version 1 approved as @champion, 2 waiting for @champion and failed for @strict.

    fraud: one version, nothing requested.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from nbtrail.tracking._tracker import get_store

    home = tmp_path_factory.mktemp("registry") / "store"
    features = np.random.default_rng(0).normal(size=(200, 3))
    labels = features[:, 0] > 0
    with nt.config(home=str(home), capture_git=False):
        runs = []
        for c in (0.01, 1.0):
            with nt.run(name=f"C={c}") as run:
                model = LogisticRegression(C=c).fit(features, labels)
                run.log_metric("accuracy", model.score(features, labels))
                run.log_model(model, "churn")
            runs.append(run.run_id)
        nt.sync()
        store = get_store()
        _api.register(store, runs[0], name="churn", description=DESCRIPTION)
        _api.register(store, runs[1], name="churn")
        _api.register(store, runs[0], name="fraud")
        _api.set_policy(store, "churn", "champion", {"max_size_mb": 100})
        first = _api.request_promotion(store, "churn", version=1, alias="champion", note=NOTE,
                                       on_behalf_of=REQUESTER)
        _api.decide(store, first.request_id, approve=True, note="looks good",
                    on_behalf_of="reviewer")
        _api.request_promotion(store, "churn", version=2, alias="champion", note="retrained")
        _api.set_policy(store, "churn", "strict", {"validate": True, "data": DATA})
        failed = _api.request_promotion(store, "churn", version=2, alias="strict")
        assert failed.status == "failed"
        nt.sync()
        return Registry(home, _api.verify_audit(store).entries)


def assert_text_only(page: str) -> None:
    """Every user string of the registry is in ``page``, escaped, and none as markup."""
    for hostile in (DESCRIPTION, NOTE, REQUESTER, DATA):
        assert hostile not in page
        assert html.escape(hostile) in page
    assert "<img" not in page and "<svg" not in page and "<script" not in page


def test_the_registry_view_shows_models_versions_requests_and_the_audit(registry):
    page = export(read_only_store(registry.home), "registry", name="churn")
    assert page.startswith("<!DOCTYPE html>") and "<iframe" not in page
    assert "registered models: 2" in page and ">fraud<" in page
    assert "churn: versions" in page and "metric.accuracy" in page and ">@champion<" in page
    assert "churn/1 → @champion" in page and ">approved<" in page and ">looks good<" in page
    assert "churn/2 → @champion" in page and ">pending<" in page and ">retrained<" in page
    assert "churn/2 → @strict" in page and ">failed<" in page
    assert ">size<" in page and ">passed<" in page and "(limit 100 MB)" in page
    assert ">validate<" in page and ">FAILED<" in page and "does not exist" in page
    assert f"audit trail whole: {registry.entries} entries" in page and registry.entries >= 15
    assert "nbtrail models approve" in page and "<button" not in page and "<form" not in page
    assert_text_only(page)
    other = export(read_only_store(registry.home), "registry", name="fraud")
    assert "fraud: versions" in other and "No promotion request yet" in other
    assert "churn: versions" not in other


def test_the_registry_view_names_a_broken_audit_chain(registry, tmp_path):
    import duckdb

    copy = tmp_path / "store"
    shutil.copytree(registry.home, copy)
    store = read_only_store(copy)
    with duckdb.connect(str(store.db_path)) as con:  # nt.sync() folded the trail there
        (seq,) = con.execute("UPDATE audit SET actor = 'mallory' WHERE event = 'approved' "
                             "RETURNING seq").fetchone()
    page = export(read_only_store(copy), "registry")
    assert "audit trail whole" not in page
    assert (f"audit trail broken: entry {seq} (approved of churn/1 by mallory) was changed "
            "after it was written") in page


def test_the_registry_tab_of_the_app(registry):
    store = read_only_store(registry.home)
    for model, shown in (("churn", "churn: promotion requests"), ("fraud", "fraud: versions")):
        root = pn.panel(build(store, {"view": "registry", "model": model})).get_root()
        models = root.references()
        (tabs,) = [m for m in models if type(m).__name__ == "Tabs"]
        assert tabs.tabs[tabs.active].title == "Registry" and VIEWS[tabs.active] == "registry"
        (picker,) = [m for m in models if getattr(m, "title", None) == "Registered model"]
        assert picker.value == model and picker.options == [("churn", "churn"),
                                                            ("fraud", "fraud")]
        # Panel escapes a pane's HTML once more to send it: undone, it is the view's HTML.
        text = " ".join(html.unescape(str(getattr(m, "text", "") or "")) for m in models)
        assert shown in text and f"audit trail whole: {registry.entries} entries" in text
        if model == "churn":
            assert_text_only(text)


def test_a_store_with_no_registered_model_shows_how_to_register_one(tmp_path):
    home = tmp_path / "store"
    with nt.config(home=str(home), capture_git=False):
        with nt.run(name="unregistered") as run:
            run.log_metric("acc", 0.5)
        nt.sync()
    store = read_only_store(home)
    page = export(store, "registry")
    assert NO_MODEL_REGISTERED in page and "audit trail" not in page
    root = pn.panel(build(store, {"view": "registry"})).get_root()
    text = " ".join(html.unescape(str(getattr(m, "text", "") or "")) for m in root.references())
    assert NO_MODEL_REGISTERED in text


def test_the_registry_tab_in_chromium_shows_user_strings_as_text(registry):
    with dashboard_in_chromium(registry.home) as browsed:
        page = browsed.page
        page.goto(f"{browsed.url}&view=registry&model=churn")
        page.get_by_text(f"audit trail whole: {registry.entries} entries").wait_for(
            timeout=60_000)
        for text in (DESCRIPTION, NOTE, REQUESTER, "churn/2 → @strict"):
            page.get_by_text(text).filter(visible=True).first.wait_for(timeout=10_000)
        page.wait_for_timeout(1000)  # an image that fails to load has done so
        page.screenshot(path=ARTIFACTS / "dashboard-registry.png", full_page=True)
        # Bokeh draws in open shadow roots, which CSS locators pierce.
        assert page.locator("img[src='x'], [onerror], [onload]").count() == 0
        assert browsed.dialogs == [] and browsed.errors == []
