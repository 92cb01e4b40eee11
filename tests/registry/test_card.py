"""nt.model_card on a real store: two versions in git, a governed promotion, a package, drift."""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import sklearn
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import nbtrail as nt
from nbtrail.errors import InvalidInputError, NotFoundError
from nbtrail.registry import _api
from nbtrail.store import Store
from nbtrail.tracking._tracker import get_store

from ..conftest import git
from ..packaging._models import churn_frame

DESCRIPTION = "Monthly churn risk, to choose retention offers; not for pricing."
HOSTILE = "<img src=x onerror=alert(1)>"


def train(C: float) -> str:
    """Fit and log a churn pipeline with params, a metric and its training data."""
    frame, target = churn_frame()
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                                (StandardScaler(), ["age", "income"])),
        LogisticRegression(C=C))
    with nt.run(name=f"churn C={C}") as run:
        run.log_params({"C": C, "solver": "lbfgs"})
        run.log_dataset(frame, name="customers", role="train")
        model.fit(frame, target)
        run.log_metric("val_accuracy", float(model.score(frame, target)))
        run.log_model(model, name="churn")
    return run.run_id


@dataclass(frozen=True)
class Registry:
    store: Store
    run_ids: tuple[str, str]
    approved: int  # the request that moved @champion to version 2
    failed: int  # a request for @tiny whose size check failed


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Registry:
    """churn/1 and churn/2, trained at two commits; churn/2 approved as @champion."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "train.py").write_text("C = 1.0\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline")
    monkeypatch.chdir(repo)
    store = get_store()  # NBTRAIL_HOME, outside the repository
    first = train(1.0)
    (repo / "train.py").write_text("C = 2.0\n")
    git(repo, "commit", "-qam", "weaker regularisation")
    second = train(2.0)
    _api.register(store, first, name="churn", description=DESCRIPTION)
    _api.register(store, second, name="churn")

    holdout = tmp_path / "holdout.parquet"
    frame, target = churn_frame(n=200, seed=1)
    pl.from_pandas(frame.assign(churned=target)).write_parquet(holdout)
    _api.set_policy(store, "churn", "champion", {
        "metric": "accuracy", "data": str(holdout), "target": "churned", "max_size_mb": 50})
    _api.set_policy(store, "churn", "tiny", {"max_size_mb": 1e-6})
    request = _api.request_promotion(store, "churn", version=2, alias="champion",
                                     note="better on the holdout")
    failed = _api.request_promotion(store, "churn", version=2, alias="tiny")
    assert (request.status, failed.status) == ("pending", "failed")
    monkeypatch.setenv("NBTRAIL_USER", "reviewer")  # four eyes: someone else approves
    _api.decide(store, request.request_id, approve=True, note="holdout checked by risk team")
    monkeypatch.delenv("NBTRAIL_USER")
    return Registry(store, (first, second), request.request_id, failed.request_id)


def unescaped_tags(html: str) -> list[str]:
    return re.findall(r"<([a-zA-Z0-9]+)", html)


def has_row(text: str, *cells: str) -> bool:
    """Whether a table of the card's HTML or Markdown has a row starting with ``cells``."""
    if text.lstrip().startswith("<"):
        plain = re.sub(r"<td[^>]*>", "<td>", text)
        return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) in plain
    return any(line.startswith("| " + " | ".join(cells) + " |") for line in text.splitlines())


def test_the_card_says_what_an_auditor_reads(registry):
    store = registry.store
    card = nt.model_card("churn@champion", store=store)
    assert card.ref == "churn/2"
    run = store.get_run(registry.run_ids[1])
    version = _api.version(store, "churn/2")
    fingerprint = run.datasets[0]["fingerprint"]
    dataset = run.datasets[0]
    for text in (card.html, card.markdown):
        assert DESCRIPTION in text
        assert has_row(text, "model id", version.model_id)
        assert has_row(text, "aliases now", "@champion")
        assert has_row(text, "customers", "train", "400", "3", fingerprint, dataset["dataset_id"])
        assert has_row(text, "income", "double", "0", "400")  # the per-column profile
        assert "median" in text and "top: " in text
        assert has_row(text, "C", "2.0") and has_row(text, "solver", "lbfgs")  # as logged
        assert has_row(text, "val_accuracy", f"{run.metrics['val_accuracy']:.6g}")
        assert "metric: passed — accuracy" in text
        assert "size: passed — " in text and "size: FAILED — " in text
        assert has_row(text, "metric", "rows", "200")  # the evidence
        assert has_row(text, "decided by", "reviewer")
        assert has_row(text, "decision note", "holdout checked by risk team")
        assert has_row(text, "request note", "better on the holdout")
        assert has_row(text, "branch", "main") and has_row(text, "dirty", "no")
        assert "Code change from version 1 to version 2" in text and "train.py" in text
        assert has_row(text, "python", platform.python_version())
        assert has_row(text, "scikit-learn", sklearn.__version__)
        assert "No package was built from this model." in text
        assert "No drift report recorded." in text
        assert "verified" in text  # the audit chain behind the card
    assert f"Request #{registry.approved} to @champion: approved" in card.html
    assert f"Request \\#{registry.approved} to @champion: approved" in card.markdown
    assert "<script" not in card.html.lower() and "<iframe" not in card.html.lower()
    assert not re.search(r"<[^>]*\b(src|href)=", card.html)  # nothing fetched
    assert card.html.startswith("<!DOCTYPE html>")
    assert card._repr_html_() in card.html and "<html" not in card._repr_html_()
    assert card._repr_markdown_() == card.markdown


def test_the_first_version_has_no_diff_and_no_approval(registry):
    card = nt.model_card("churn/1", store=registry.store)
    assert card.ref == "churn/1"
    for text in (card.html, card.markdown):
        assert "first version of churn" in text
        assert "No promotion was requested for this version." in text
        assert "reviewer" not in text


def test_packages_and_drift_reports_join_the_card(registry, tmp_path):
    store = registry.store
    version = _api.version(store, "churn/2")
    via_registry = nt.package("churn@champion", output=tmp_path / "ctx", build=False,
                              store=store)
    direct = nt.package(version.model_id, output=tmp_path / "ctx2", build=False, store=store)
    frame, _ = churn_frame(n=300, seed=2)
    report = nt.drift(version.model_id, frame, store=store)
    card = nt.model_card("churn/2", store=store)
    for text in (card.html, card.markdown):
        assert via_registry.package_id in text and "churn@champion" in text
        assert direct.package_id in text and "outside the registry" in text
        assert report.run_id in text
        assert ("drift" if report.has_drift else "ok") in text
        assert "No drift report recorded." not in text
    assert "No drift report recorded." in nt.model_card("churn/1", store=store).markdown


def test_what_users_wrote_is_escaped_and_missing_git_is_said(home):
    store = get_store()  # in a folder outside any repository
    for C in (1.0, 2.0):
        _api.register(store, train(C), name="hostile",
                      description=f"{HOSTILE} | *bold* [link](javascript:x)\n- a list item")
    card = nt.model_card("hostile/2", store=store)
    assert "<img" not in card.html and "&lt;img src=x onerror=alert(1)&gt;" in card.html
    assert set(unescaped_tags(card.html)) <= {
        "html", "head", "meta", "title", "body", "div", "h1", "h2", "h3", "p", "table",
        "caption", "thead", "tbody", "tr", "th", "td", "strong", "details", "summary"}
    markdown = card.markdown
    assert not re.search(r"(?<!\\)<img", markdown) and "\\<img src=x onerror=alert(1)\\>" \
        in markdown
    assert "\\| \\*bold\\* \\[link\\](javascript:x)  \n\\- a list item" in markdown
    for text in (card.html, card.markdown):
        assert "not in a git repository" in text
        assert "No code diff to version 1" in text and "no code snapshot" in text


def test_a_run_missing_from_the_store_leaves_the_facts_registered(registry, monkeypatch):
    store = registry.store
    fingerprint = store.get_run(registry.run_ids[1]).datasets[0]["fingerprint"]
    found = store.get_run

    def get_run(run_id):  # a team store the training run was never shipped to, say
        if run_id == registry.run_ids[1]:
            raise NotFoundError(f"no run {run_id}")
        return found(run_id)

    monkeypatch.setattr(store, "get_run", get_run)
    card = nt.model_card("churn/2", store=store)
    for text in (card.html, card.markdown):
        assert f"The training run {registry.run_ids[1]} is not in this store: the data " \
            "profiles are unknown." in text
        assert has_row(text, "customers", "train", fingerprint)  # from the registered facts
        assert "its environment is unknown" in text
        assert "No code diff to version 1: the run of version 2" in text
        assert has_row(text, "C", "2.0") and has_row(text, "decided by", "reviewer")


def test_save_picks_the_format_from_the_suffix(registry, tmp_path):
    card = nt.model_card("churn@champion", store=registry.store)
    assert card.save(tmp_path / "card.html").read_text(encoding="utf-8") == card.html
    assert Path(card.save(str(tmp_path / "card.HTM"))).read_text(encoding="utf-8") == card.html
    assert card.save(tmp_path / "card.md").read_text(encoding="utf-8") == card.markdown
    for bad in ("card.pdf", "card"):
        with pytest.raises(InvalidInputError, match=r"\.html, \.htm, \.md"):
            card.save(tmp_path / bad)
        assert not (tmp_path / bad).exists()
    assert repr(card) == "<ModelCard churn/2>"


@pytest.mark.parametrize(("ref", "error", "message"), [
    ("churn", InvalidInputError, "not a registry reference"),
    ("churn/9", NotFoundError, "no version 9"),
    ("churn@nope", NotFoundError, "no alias @nope"),
    ("other@champion", NotFoundError, "no registered model 'other'"),
])
def test_a_bad_reference_is_one_clear_error(registry, ref, error, message):
    with pytest.raises(error, match=message):
        nt.model_card(ref, store=registry.store)
