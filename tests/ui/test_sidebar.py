"""The sidebar in a real browser: JupyterLab on a demo project, driven with Playwright.

Chromium is Debian's (/usr/bin/chromium; Playwright cannot download its own here). Each
step leaves a screenshot in test-artifacts/ui/. Locally the test skips without Chromium;
under CI=true it fails instead.
"""

import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .._demo import build_in_subprocess
from ..conftest import CHROMIUM, CHROMIUM_ARGS, ROOT, free_port, require, stop

SHOTS = ROOT / "test-artifacts" / "ui"


@pytest.fixture
def lab(tmp_path):
    """``jupyter lab`` serving a demo project (runs on two branches and a sweep)."""
    require(os.path.exists(CHROMIUM), f"Chromium is not installed at {CHROMIUM} "
             "(apt-get install chromium)")
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent))
    require(jupyter is not None, "jupyter is not installed (pip install -e '.[test]')")
    project = tmp_path / "project"
    build_in_subprocess(project)
    (project / "train.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "NBTRAIL_HOME"}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "jupyter-config")  # no user settings
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp_path / "lab-settings")
    news = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)  # no "get notified about Jupyter news?" prompt over the views
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "lab-workspaces")
    log = open(tmp_path / "lab.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [jupyter, "lab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate", str(project)],
        cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "lab.log").read_text()
                time.sleep(0.2)
        yield {"url": url, "token": token, "project": project}
    finally:
        stop(server)
        log.close()


@pytest.fixture
def page(lab):
    sync_api = pytest.importorskip("playwright.sync_api") if os.environ.get("CI") != "true" \
        else __import__("playwright.sync_api", fromlist=["sync_playwright"])
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_the_sidebar_end_to_end(lab, page):
    from playwright.sync_api import expect

    page.goto(f"{lab['url']}/lab?token={lab['token']}")
    page.get_by_role("tab", name="Experiments (nbtrail)").click()
    sidebar = page.locator("#nbtrail-experiments")
    runs = sidebar.get_by_role("grid", name="Runs")
    expect(runs.get_by_role("row", name="run baseline")).to_be_visible()
    expect(runs.get_by_role("row", name="run more-trees")).to_be_visible()
    expect(sidebar.get_by_role("tree")).to_contain_text("feat/more-trees")
    expect(sidebar.get_by_role("list", name="Sweeps")).to_contain_text("c-search")
    expect(sidebar).to_contain_text("10 runs")
    shot(page, "01-sidebar")

    # Filter with nt.runs' language; a malformed filter says why, in the panel.
    box = sidebar.get_by_role("searchbox", name="Filter runs")
    box.fill("metrics.val_f1 >")
    box.press("Enter")
    expect(sidebar.get_by_role("alert")).to_contain_text("filter")
    shot(page, "02-filter-error")
    box.fill("params.solver = 'lbfgs'")
    box.press("Enter")
    expect(sidebar).to_contain_text("3 runs")
    sidebar.get_by_role("combobox", name="Add column").select_option("metrics.val_f1")
    expect(runs.get_by_role("columnheader", name="val_f1")).to_be_visible()
    runs.get_by_role("button", name="val_f1").click()  # sort: best first
    expect(runs.get_by_role("row").nth(1)).to_have_accessible_name("run more-trees")
    shot(page, "03-filtered-sorted")

    # One run.
    runs.get_by_role("row", name="run baseline").click()
    view = page.get_by_label("Run baseline", exact=True)
    expect(view.get_by_role("heading", name="Metric charts")).to_be_visible()
    expect(view.get_by_role("figure", name="loss")).to_be_visible()
    expect(view.get_by_role("table", name="Statistics of customers")).to_contain_text("income")
    expect(view.get_by_role("table", name="Git")).to_contain_text("main")
    expect(view.get_by_role("link", name="notes.txt")).to_be_visible()
    expect(view.get_by_role("table", name="Lineage")).to_contain_text("customers")
    shot(page, "04-run")

    # Package it (the context only: no image build in a test).
    view.get_by_role("checkbox", name="build image").uncheck()
    view.get_by_role("button", name="Package", exact=True).click()
    result = view.get_by_role("status", name="Package result")
    expect(result).to_contain_text("build context", timeout=120_000)
    expect(result).to_contain_text("pkg_")
    shot(page, "05-package")

    # Compare two runs.
    runs.get_by_role("checkbox", name="Select baseline").check()
    runs.get_by_role("checkbox", name="Select more-trees").check()
    sidebar.get_by_role("button", name="Compare selected (2)").click()
    compare = page.get_by_label("Compare 2 runs")
    expect(compare.get_by_role("figure", name="loss")).to_be_visible()
    expect(compare.get_by_role("table", name="Params diff")).to_contain_text("3.0")
    shot(page, "06-compare-runs")

    # The branch comparison.
    sidebar.get_by_role("combobox", name="First branch").select_option("main")
    sidebar.get_by_role("combobox", name="Second branch").select_option("feat/more-trees")
    sidebar.get_by_role("combobox", name="Best run by").select_option("val_f1")
    sidebar.get_by_role("button", name="Compare branches").click()
    branches = page.get_by_label("Branches main vs feat/more-trees")
    expect(branches.get_by_role("table", name="Production")).to_contain_text("churn",
                                                                            timeout=60_000)
    expect(branches.get_by_role("table", name="Changed files")).to_contain_text("train.py")
    expect(branches.get_by_role("table", name="Compared runs")).to_contain_text("baseline")
    shot(page, "07-compare-branches")

    # The sweep, and its best trial.
    sidebar.get_by_role("list", name="Sweeps").get_by_role("button").first.click()
    sweep = page.get_by_label("Sweep c-search")
    expect(sweep.get_by_role("table", name="Best trial")).to_contain_text("params.C")
    expect(sweep.get_by_role("table", name="Trials")).to_be_visible()
    shot(page, "08-sweep")

    # The notebook toolbar button: the sidebar on this notebook's runs.
    page.evaluate("window.jupyterapp.commands.execute('docmanager:open', {path: 'train.ipynb'})"
                  ".then(() => null)")
    page.get_by_role("dialog").get_by_role("button", name="No Kernel").click()  # no kernelspec
    page.get_by_role("button", name="Runs", exact=True).click()
    expect(box).to_have_value(f"notebook = '{lab['project'].resolve()}/train.ipynb'")
    expect(sidebar).to_contain_text("0 runs")
    shot(page, "09-notebook-runs")

    # The dark theme: the same views, readable.
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme: 'JupyterLab Dark'}).then(() => null)")
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'")
    page.get_by_role("tab", name="Run baseline").click()
    shot(page, "10-dark-run")
