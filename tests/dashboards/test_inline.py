"""nt.dashboard() in a notebook: the static snapshot stays wherever the live view is not drawn."""

import os
from pathlib import Path

import pytest

import nbtrail as nt
from nbtrail.dashboards import Dashboard, read_only_store

from ..conftest import CHROMIUM, CHROMIUM_ARGS, require

pn = pytest.importorskip("panel")
bokeh = pytest.importorskip("bokeh")


@pytest.fixture
def bundle_html(tmp_path, monkeypatch):
    """The text/html a kernel sends for nt.dashboard(), with a small real Panel app."""
    with nt.config(home=str(tmp_path / "store"), capture_git=False):
        with nt.run(name="snapshot-run") as run:
            run.log_metric("acc", 0.5)
        nt.sync()
        dashboard = Dashboard(read_only_store(), {})
        monkeypatch.setattr(pn.extension, "_loaded", True)  # as pn.extension() in a kernel
        monkeypatch.setattr(Dashboard, "app", lambda self: pn.Column("the live view"))
        data, _ = dashboard._repr_mimebundle_()
        return data["text/html"]


def _page(playwright):
    require(os.path.exists(CHROMIUM),
            "Debian's chromium is not installed (apt-get install chromium)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    return browser, browser.new_page()


def test_without_panel_s_javascript_the_snapshot_shows(bundle_html):
    """nbconvert's HTML offline or a viewer that blocks the CDN: Bokeh never loads."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser, page = _page(playwright)
        try:
            page.set_content(bundle_html)
            assert page.get_by_text("snapshot-run").is_visible()
        finally:
            browser.close()


def test_once_panel_draws_the_live_view_the_snapshot_goes(bundle_html):
    sync_api = pytest.importorskip("playwright.sync_api")
    static = Path(bokeh.__file__).parent / "server" / "static" / "js"
    scripts = [static / "bokeh.min.js", static / "bokeh-widgets.min.js",
               static / "bokeh-tables.min.js", Path(pn.__file__).parent / "dist" / "panel.min.js"]
    with sync_api.sync_playwright() as playwright:
        browser, page = _page(playwright)
        try:
            page.set_content("<html><body></body></html>")
            for script in scripts:  # what pn.extension() loads into a notebook page
                page.add_script_tag(path=str(script))
            page.evaluate("html => { const range = document.createRange();"
                          " document.body.append(range.createContextualFragment(html)); }",
                          bundle_html)
            page.get_by_text("the live view").wait_for(state="visible", timeout=60_000)
            page.get_by_text("snapshot-run").wait_for(state="hidden", timeout=60_000)
        finally:
            browser.close()
