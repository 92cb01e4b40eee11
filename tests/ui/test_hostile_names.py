"""Stored strings are text in every sidebar view: hostile run names, experiments, branches,
metric and param keys, tags, model and sweep names fire no script in Chromium."""

import os
import subprocess
import sys
import textwrap

import pytest

from ..conftest import ROOT
from .conftest import open_sidebar, shot

H = '"><img src=x onerror=alert(1)>'
# A git branch name cannot hold spaces: the same attack without them.
BRANCH = 'feat/"><svg/onload=alert(2)>'

SEED = textwrap.dedent("""
    import subprocess, sys
    import numpy as np, optuna, polars as pl
    from sklearn.linear_model import LogisticRegression
    import nbtrail as nt

    H, BRANCH = sys.argv[1], sys.argv[2]
    git = lambda *a: subprocess.run(["git", *a], check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    git("config", "user.email", "x@example.com")
    git("config", "user.name", "x")
    open("train.py", "w").write("C = 1\\n")
    git("add", "-A")
    git("commit", "-qm", "one")
    X = pl.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    y = np.arange(20) % 2
    key = "k<img src=x onerror=alert(7)>"

    def train(name):
        with nt.run(name=name, experiment=H + "exp", tags={H + "tag": H + "value"}) as run:
            run.log_params({H + "param": H + "pv", "C": 1.0})
            for step in range(3):
                run.log_metric(key, 0.5 + step / 10, step=step)
            run.log_model(LogisticRegression().fit(X.to_pandas(), y), name=H + "model",
                          input_example=X.head(5))

    train(H + "run")
    git("switch", "-qc", BRANCH)
    train(H + "second")
    git("switch", "-q", "main")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    nt.sweep(lambda t: t.suggest_float(H + "x", 0, 1), n_trials=2, name=H + "sweep",
             direction="maximize", progress=False)
    nt.sync()
""")


@pytest.fixture
def project(tmp_path):
    """A project whose every stored string is an attack."""
    project = tmp_path / "project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "NBTRAIL_HOME"}
    env["PYTHONPATH"] = str(ROOT / "src")
    result = subprocess.run([sys.executable, "-P", "-c", SEED, H, BRANCH], cwd=project,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return project


def test_no_stored_string_runs_as_script(lab, page):
    from playwright.sync_api import expect

    fired: list[str] = []
    page.on("dialog", lambda dialog: (fired.append(dialog.message), dialog.dismiss()))
    sidebar = open_sidebar(page, lab)
    runs = sidebar.get_by_role("treegrid", name="Runs")

    # The runs table, the tree, the sweeps, the columns (the hostile metric is a key metric).
    expect(runs.get_by_role("row", name=f"run {H}run")).to_be_visible()
    expect(sidebar.get_by_role("tree")).to_contain_text(H + "exp")
    expect(sidebar.get_by_role("tree")).to_contain_text(BRANCH)
    expect(sidebar.get_by_role("list", name="Sweeps")).to_contain_text(H + "sweep")
    expect(runs.get_by_role("columnheader", name="k<img")).to_be_visible()
    sidebar.get_by_role("combobox", name="Add column").select_option(f"params.{H}param")
    runs.get_by_role("button", name=f"Expand {H}sweep").click()
    expect(runs.get_by_role("row", name="run trial-0")).to_be_visible()

    # One run: params, metrics and their chart, tags, the model, lineage.
    runs.get_by_role("row", name=f"run {H}run").click()
    view = page.get_by_label(f"Run {H}run", exact=True)
    expect(view.get_by_role("table", name="Params")).to_contain_text(H + "pv")
    expect(view.get_by_role("table", name="Tags")).to_contain_text(H + "value")
    expect(view.get_by_role("figure", name="k<img src=x onerror=alert(7)>")).to_be_visible()
    expect(view.get_by_role("table", name="Lineage")).to_contain_text(H + "model")
    shot(page, "xss-1-run")

    # The package dialog of the sidebar, and its result.
    runs.get_by_role("checkbox", name=f"Select {H}run").check()
    sidebar.get_by_role("button", name="Package…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Package {H}run")
    dialog.get_by_role("checkbox", name="build image").uncheck()
    dialog.get_by_role("button", name="Package", exact=True).click()
    expect(dialog.get_by_role("status", name="Package result")).to_contain_text(
        "build context", timeout=120_000)
    shot(page, "xss-2-package")
    dialog.get_by_role("button", name="Close").click()

    # Two runs compared, the two branches compared, the sweep.
    runs.get_by_role("checkbox", name=f"Select {H}second").check()
    sidebar.get_by_role("button", name="Compare selected (2)").click()
    compare = page.get_by_label("Compare 2 runs")
    expect(compare.get_by_role("table", name="Compared runs")).to_contain_text(H + "second")
    expect(compare.get_by_role("table", name="Params diff")).to_contain_text(H + "param")
    shot(page, "xss-3-compare")
    sidebar.get_by_role("combobox", name="First branch").select_option("main")
    sidebar.get_by_role("combobox", name="Second branch").select_option(BRANCH)
    sidebar.get_by_role("button", name="Compare branches").click()
    branches = page.get_by_label(f"Branches main vs {BRANCH}")
    expect(branches.get_by_role("table", name="Compared runs")).to_contain_text(
        H + "second", timeout=60_000)
    shot(page, "xss-4-branches")
    sidebar.get_by_role("list", name="Sweeps").get_by_role("button").first.click()
    sweep = page.get_by_label(f"Sweep {H}sweep")
    expect(sweep.get_by_role("table", name="Trials")).to_contain_text(H + "x")
    shot(page, "xss-5-sweep")

    assert fired == [], f"stored strings ran as script: {fired}"
    injected = page.evaluate("document.querySelectorAll('img[src=\"x\"], svg[onload]').length")
    assert injected == 0
