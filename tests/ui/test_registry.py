"""The Model registry sidebar in a real browser: decide a promotion, register a run's model.

The store has churn/1 @champion and churn/2, a pending request by alice to move @champion
to version 2 and one by bob for @prod. JupyterLab runs as bob (``NBTRAIL_USER``; its
token names nobody), so bob may approve alice's request and not his own.
"""

import re

import pytest

from nbtrail.registry import _api
from nbtrail.store import open_store

from .._demo import build_in_subprocess
from .conftest import HOSTILE, shot


@pytest.fixture
def project(tmp_path, monkeypatch):
    project = tmp_path / "project"
    store = open_store(build_in_subprocess(project))
    try:
        runs = dict(store.runs().select("name", "run_id").rows())
        for run in ("baseline", "strong-reg"):
            _api.register(store, runs[run], name="churn", description=f"churn risk {HOSTILE}",
                          on_behalf_of="alice")
        _api.set_alias(store, "churn", "champion", 1, on_behalf_of="alice")
        for alias in ("champion", "prod"):
            _api.set_policy(store, "churn", alias, {"max_size_mb": 50, "max_latency_ms": 5000},
                            on_behalf_of="alice")
        for alias, who in (("champion", "alice"), ("prod", "bob")):
            request = _api.request_promotion(store, "churn", version=2, alias=alias,
                                             note=f"{who}'s request {HOSTILE}", on_behalf_of=who)
            assert request.status == "pending", request
    finally:
        store.close()
    monkeypatch.setenv("NBTRAIL_USER", "bob")  # who runs the JupyterLab server
    return project


def test_decide_a_promotion_and_register_a_model(lab, page, project):
    from playwright.sync_api import expect

    page.goto(f"{lab['url']}/lab?token={lab['token']}")
    page.get_by_role("tab", name="Model registry (nbtrail)").click()
    panel = page.locator("#nbtrail-registry")
    model = panel.get_by_role("group", name="Model churn")
    expect(model).to_contain_text("@champion → 1")
    expect(model).to_contain_text(f"churn risk {HOSTILE}")  # text, not markup
    versions = model.get_by_role("table", name="Versions of churn")
    expect(versions.get_by_role("row")).to_have_count(3)  # the header and two versions
    expect(versions).to_contain_text("baseline")
    expect(versions).to_contain_text("by alice")

    alices = panel.get_by_role("article", name=re.compile(r"request #\d+: churn\/2 to @champion"))
    bobs = panel.get_by_role("article", name=re.compile(r"request #\d+: churn\/2 to @prod"))
    expect(alices).to_contain_text("by alice")
    expect(alices).to_contain_text("@champion is now churn/1")
    checks = alices.get_by_role("list", name=re.compile("Checks of request"))
    expect(checks.get_by_role("listitem")).to_have_count(2)
    expect(checks).to_contain_text(re.compile(r"latency passed: single-row p95 [\d.]+ ms"))
    expect(checks).to_contain_text("size passed: ")
    expect(checks).to_contain_text("size_bytes ")  # the evidence
    shot(page, "registry-01-pending")

    # Four eyes: the server's user made the @prod request, so it is refused, in the card.
    bobs.get_by_role("button", name="Approve").click()
    refusal = bobs.get_by_role("alert")
    expect(refusal).to_contain_text("bob may not approve request")
    expect(refusal).to_contain_text("four eyes")
    expect(refusal).not_to_contain_text("Traceback")
    shot(page, "registry-02-four-eyes")

    alices.get_by_role("textbox", name=re.compile("Note on request")).fill("latency is fine")
    alices.get_by_role("button", name="Approve").click()
    expect(alices).to_have_count(0)
    expect(model).to_contain_text("@champion → 2")
    expect(versions.get_by_role("row").nth(1)).to_contain_text("@champion")  # newest first
    expect(bobs).to_be_visible()
    shot(page, "registry-03-approved")

    store = open_store(project / ".nbtrail")
    try:
        assert _api.version(store, "churn@champion").version == 2
        (decision,) = _api.audit(store, "churn").filter(event="approved").rows(named=True)
        assert decision["actor"] == "bob" and "latency is fine" in decision["payload"]
        more_trees = store.runs(where="name = 'more-trees'")["run_id"][0]
    finally:
        store.close()

    # Register: the run view of a run with a model offers it, named after its model.
    page.evaluate("id => window.jupyterapp.commands.execute('nbtrail:open-run', "
                  "{runId: id, name: 'more-trees'}).then(() => null)", more_trees)
    view = page.get_by_label("Run more-trees", exact=True)
    expect(view.get_by_role("textbox", name="Registered model name")).to_have_value("churn")
    view.get_by_role("button", name="Register", exact=True).click()
    expect(view.get_by_role("status", name="Register result")).to_contain_text("churn/3")
    shot(page, "registry-04-registered")
    panel.get_by_role("button", name="Refresh registry").click()
    expect(versions.get_by_role("row")).to_have_count(4)
    expect(versions.get_by_role("row").nth(1)).to_contain_text("more-trees")
    assert page.evaluate("window.__nbtrail_pwned") is None
