"""A serving package's live view in the registry panel, in a real browser: Promote challenger.

The package is ``tests/_serving.py``'s (churn/1 answers, churn/2 shadows, ten logged rows,
seven agreeing), made by alice; JupyterLab runs as bob, who promotes the challenger.
"""

import re

import pytest

from nbtrail.registry import _api
from nbtrail.store import open_store

from .._demo import build_in_subprocess
from .._serving import serve_shadow
from .conftest import HOSTILE, shot


@pytest.fixture
def project(tmp_path, monkeypatch):
    project = tmp_path / "project"
    store = open_store(build_in_subprocess(project))
    try:
        serve_shadow(store, tmp_path, user="alice", log_name=HOSTILE)
    finally:
        store.close()
    monkeypatch.setenv("NBTRAIL_USER", "bob")  # who runs the JupyterLab server
    return project


def test_the_live_view_and_promote_challenger(lab, page, project):
    from playwright.sync_api import expect

    page.goto(f"{lab['url']}/lab?token={lab['token']}")
    page.get_by_role("tab", name="Model registry (nbtrail)").click()
    panel = page.locator("#nbtrail-registry")
    live = panel.get_by_role("group", name="Package churn")
    versions = live.get_by_role("table", name="Versions of package churn")
    expect(versions.get_by_role("row")).to_have_count(3)  # the header, champion and shadow
    shadow = versions.get_by_role("row").nth(2)
    expect(shadow).to_contain_text("shadow")
    expect(shadow).to_contain_text("churn/2")
    expect(shadow).to_contain_text("70.0%")  # agreement with the champion
    expect(versions.get_by_role("row").nth(1)).to_contain_text("100.0%")  # every answer
    expect(live).to_contain_text(f"10 logged rows from {lab['project'].parent / HOSTILE}")
    for chart in ("Shadow agreement with the champion", "Latency p99 (ms)", "Share of answers"):
        expect(live.get_by_role("figure", name=chart)).to_be_visible()
    expect(live).to_contain_text("No challenge report yet")
    shot(page, "serving-01-live")

    live.get_by_role("textbox", name="Promotion note").fill("shadowed for a week")
    live.get_by_role("button", name="Promote challenger").click()
    expect(live.get_by_role("status", name="Promotion result")).to_contain_text(
        re.compile(r"Request #\d+: churn/2 → @champion is pending"))
    # The registry reloads: the request waits for someone other than bob.
    expect(panel.get_by_role("article", name=re.compile(r"churn\/2 to @champion"))) \
        .to_contain_text("by bob")
    shot(page, "serving-02-promoted")

    assert page.evaluate("window.__nbtrail_pwned") is None
    store = open_store(project / ".nbtrail")
    try:
        (request,) = _api.promotion_requests(store, "churn").rows(named=True)
        assert (request["requested_by"], request["alias"], request["status"]) == \
            ("bob", "champion", "pending")
        assert request["note"].startswith("shadowed for a week; package churn traffic: version 2")
    finally:
        store.close()
