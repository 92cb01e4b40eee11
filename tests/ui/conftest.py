"""The browser tests' JupyterLab and Chromium, and what they measure in the page.

Chromium is Debian's (/usr/bin/chromium; Playwright cannot download its own here). Each
step leaves a screenshot in test-artifacts/ui/. Locally the tests skip without Chromium;
under CI=true they fail instead.
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
# Markup where text belongs: it must show as text, and never set this flag.
HOSTILE = '<img src=x onerror="window.__nbtrail_pwned = 1">'


@pytest.fixture
def project(tmp_path):
    """The demo project (runs on two branches and a sweep); a test module may override it."""
    project = tmp_path / "project"
    build_in_subprocess(project)
    return project


@pytest.fixture
def lab(tmp_path, project):
    """``jupyter lab`` serving ``project``."""
    require(os.path.exists(CHROMIUM), f"Chromium is not installed at {CHROMIUM} "
             "(apt-get install chromium)")
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent))
    require(jupyter is not None, "jupyter is not installed (pip install -e '.[test]')")
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


def open_sidebar(page, lab):
    page.goto(f"{lab['url']}/lab?token={lab['token']}")
    page.get_by_role("tab", name="Experiments (nbtrail)").click()
    return page.locator("#nbtrail-experiments")


# The panes above the runs table, as (top, bottom, clientHeight, scrollHeight).
PANES = """() => Object.fromEntries(['.nbt-tree', '.nbt-sweeps-pane', '.nbt-filter'].map(s => {
  const e = document.querySelector('#nbtrail-experiments ' + s), r = e.getBoundingClientRect();
  return [s, [r.top, r.bottom, e.clientHeight, e.scrollHeight]];
}))"""

# Text and background colours of shown elements, resolved through transparent ancestors,
# and what the theme's variables resolve to.
COLOURS = """(selectors) => {
  const solid = e => {
    for (; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      // A translucent tint (a selected row) is left out: what shows through decides.
      if (!c.startsWith('rgba(') && !c.includes('/') && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const probe = document.createElement('div');
  document.body.appendChild(probe);
  const resolve = v => { probe.style.color = `var(${v})`; return getComputedStyle(probe).color; };
  const theme = {layout1: resolve('--jp-layout-color1'), font1: resolve('--jp-ui-font-color1')};
  probe.remove();
  const found = {};
  for (const s of selectors) {
    const e = document.querySelector(s);
    found[s] = e && [getComputedStyle(e).color, solid(e)];
  }
  return {theme, found};
}"""


def rgba(css: str) -> tuple[float, float, float, float]:
    """A computed colour (``rgb()``, ``rgba()`` or ``color(srgb …)``) as 0-255 channels and
    an alpha from 0 to 1."""
    inside = css[css.index("(") + 1:css.index(")")].removeprefix("srgb")
    values = [float(v) for v in inside.replace(",", " ").replace("/", " ").split()]
    scale = 255 if css.startswith("color(") else 1
    r, g, b = (v * scale for v in values[:3])
    return r, g, b, values[3] if len(values) > 3 else 1.0


def contrast(text: str, background: str) -> float:
    """WCAG contrast ratio of a text colour (blended over the background) and the background."""
    *fg, alpha = rgba(text)
    bg = rgba(background)[:3]
    seen = [alpha * f + (1 - alpha) * b for f, b in zip(fg, bg, strict=True)]

    def luminance(channels: list[float] | tuple[float, ...]) -> float:
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
               for c in (v / 255 for v in channels)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(seen), luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)
