import contextlib
import importlib
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    SRC,
    free_port,
    git,
    isolate_git,
    require,
    stop,
)

ARTIFACTS = ROOT / "test-artifacts"


def required(module: str) -> Any:
    """Import a module the dashboard tests need: a skip locally, a failure under CI=true."""
    try:
        return importlib.import_module(module)
    except ImportError:
        require(False, f"{module} is not installed (pip install -e '.[test]')")

# Runs on two git branches with metric curves, a sweep, a model checked twice for drift.
_BUILD = """
import numpy as np, pandas as pd, optuna, nbtrail as nt, subprocess
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

rng = np.random.default_rng(0)
def data(n, shift=0.0):
    return pd.DataFrame({"amount": rng.normal(100 + shift, 15, n),
                         "plan": rng.choice(["basic", "plus", "pro"], n, p=[.5, .3, .2])})

for branch, lr in (("main", 0.1), ("feat/wider", 0.3)):
    subprocess.run(["git", "switch", "-q", "-C", branch], check=True)
    for seed in range(2):
        with nt.run(name=f"{branch.split('/')[-1]}-{seed}") as run:
            run.log_params({"lr": lr, "seed": seed})
            for epoch in range(20):
                run.log_metric("loss", 1 / (1 + lr * epoch) + 0.01 * seed, step=epoch)
            run.log_metric("val_accuracy", 0.8 + lr / 2 + 0.01 * seed)

def objective(trial):
    x = trial.suggest_float("x", -4, 4)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    return -(x - 1) ** 2 + (0.5 if kind == "a" else 0.0)

nt.sweep(objective, n_trials=12, name="quadratic", sampler=optuna.samplers.TPESampler(seed=0),
         direction="maximize", progress=False)

train = data(2000)
with nt.run(name="train-model") as run:
    run.log_dataset(train, name="train", role="train")
    model = make_pipeline(make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["plan"]), remainder="passthrough"),
        LogisticRegression()).fit(train, train.amount > 100)
    model_id = run.log_model(model, "churn")
nt.package(model_id, name="churn", output="dist/churn", build=False)
for shift in (0, 5, 20):
    current = data(1000, shift=shift)
    nt.drift(model_id, current.assign(prediction=model.predict(current)))
nt.sync()
print(model_id)
"""


# Hostile strings wherever a store string can show: each alert says which one ran.
HOSTILE = '"><img src=x onerror=alert({})>'
HOSTILE_BRANCH = 'x"><svg/onload=alert(20)>'  # git allows these characters in a branch
HOSTILE_SCRIPT = "<script>alert(10)</script>"

_HOSTILE_BUILD = f"""
import pathlib, subprocess
import numpy as np, pandas as pd, optuna, nbtrail as nt
from sklearn.linear_model import LogisticRegression

def h(n):
    return {HOSTILE!r}.format(n)

subprocess.run(["git", "switch", "-q", "-c", {HOSTILE_BRANCH!r}], check=True)
rng = np.random.default_rng(0)
frame = pd.DataFrame({{h(1): rng.normal(0, 1, 300), "plan": rng.choice([h(2), "b"], 300)}})
for i in range(2):
    with nt.run(name=h(3) + str(i), experiment=h(4), tags={{h(5): h(6)}}) as run:
        run.log_params({{h(7): h(8), "lr": 0.1 * i}})
        for step in range(5):
            run.log_metric(h(9), step * (i + 1), step=step)
        run.log_metric({HOSTILE_SCRIPT!r}, 1.0)
        run.log_dataset(frame, name=h(11))
        if i == 1:
            model = LogisticRegression().fit(frame[[h(1)]], frame["plan"] == "b")
            model_id = run.log_model(model, h(12))

def objective(trial):
    x = trial.suggest_float(h(13), -4, 4)
    trial.suggest_categorical(h(14), [h(15), "b"])
    return -(x - 1) ** 2

nt.sweep(objective, n_trials=6, name=h(16), sampler=optuna.samplers.TPESampler(seed=0),
         direction="maximize", progress=False)
shifted = frame.assign(**{{h(1): frame[h(1)] + 3}})
nt.drift(model_id, shifted.assign(prediction=model.predict(shifted[[h(1)]])))
# A run anyone could log: tagged as a monitoring report, with a page as its drift.html.
page = pathlib.Path("drift.html")
page.write_text("<html><body>" + h(30) + "</body></html>")
with nt.run(name=h(31), experiment="monitoring", nested=False,
            tags={{"nbtrail.kind": "monitoring", "model_id": model_id, "verdict": "ok"}}) as run:
    run.log_metric("drift_share", 0.0)
    run.log_artifact(page)
nt.sync()
print(model_id)
"""


@dataclass(frozen=True)
class Built:
    home: Path
    model_id: str


def _seed(factory: pytest.TempPathFactory, name: str, script: str) -> Built:
    """A git repository with a store that ``script`` logs into (it prints a model id)."""
    repo = factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        git(repo, "init", "-q", "-b", "main")
        (repo / "train.py").write_text("# training code\n")
        git(repo, "add", ".")
        git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init")
        home = repo / ".nbtrail"
        env = {**os.environ, "PYTHONPATH": str(SRC), "NBTRAIL_HOME": str(home)}
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=repo,
                                env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return Built(home, result.stdout.split()[-1])


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _seed(tmp_path_factory, "dashboard-repo", _BUILD)


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A store whose every name, key, tag, value and page is an attempt at script."""
    return _seed(tmp_path_factory, "hostile-repo", _HOSTILE_BUILD)


@contextlib.contextmanager
def serving(command: list[str], port: int, *, env: dict[str, str],
            ready: str = "/") -> Iterator[subprocess.Popen]:
    """Start a server process, wait until it answers HTTP, stop it (by its pid) after."""
    proc = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(SRC), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=5)
                break
            except urllib.error.HTTPError:
                break  # it answers (a 401 is an answer)
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    output = proc.stdout.read() if proc.stdout else ""
                    raise AssertionError(f"the server did not start: {output}") from None
                time.sleep(0.3)
        yield proc
    finally:
        stop(proc)


@dataclass
class Browsed:
    """A Chromium page on a served dashboard, with what it reported."""

    page: Any
    url: str  # the dashboard's address, with its token
    errors: list[str]  # uncaught script errors
    dialogs: list[str]  # alert() and the like: nothing stored may open one


@contextlib.contextmanager
def dashboard_in_chromium(home: Path) -> Iterator[Browsed]:
    """``nbtrail dashboard`` serving ``home``, and a Chromium page to drive it."""
    require(os.path.exists(CHROMIUM),
            "Debian's chromium is not installed (apt-get install chromium)")
    sync_api = required("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "nbtrail.cli", "--store", str(home), "dashboard",
               "--port", str(port), "--token", "t0k"]
    with serving(command, port, env={}), sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            browsed = Browsed(page, f"http://127.0.0.1:{port}/?token=t0k", [], [])
            page.on("pageerror", lambda exc: browsed.errors.append(str(exc)))
            page.on("dialog", lambda d: (browsed.dialogs.append(d.message), d.dismiss()))
            yield browsed
        finally:
            browser.close()
