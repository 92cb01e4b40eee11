"""Autolog on the scikit-learn code of the gallery: what it records is what the user did.

Each test is one finding of running nt.autolog() over scikit-learn's own examples: runs
nobody asked for, a run per fold, searches, inputs and models, unsupervised fits.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import scipy.stats
from sklearn.cluster import KMeans
from sklearn.datasets import make_multilabel_classification
from sklearn.decomposition import PCA
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    brier_score_loss,
    classification_report,
    f1_score,
    log_loss,
    silhouette_score,
)
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    RandomizedSearchCV,
    cross_val_score,
    cross_validate,
    learning_curve,
    validation_curve,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, LabelEncoder, StandardScaler

import nbtrail as nt
from nbtrail.store._records import Run

# Bound before autolog() runs, as a notebook's first cell binds them: autolog rebinds the
# names of the module that calls it, so these are the wrapped functions during a test.
# (Kept in a dict: a module-level alias of the original would be rebound too.)
ORIGINAL = {"cross_val_score": cross_val_score}


@pytest.fixture
def autolog(store: Path) -> Iterator[None]:
    # Here, not in conftest: nt.autolog() rebinds the cross-validation functions that its
    # caller's module imported, and this module's are the ones under test.
    nt.autolog()
    yield
    nt.autolog(disable=True)


def all_runs() -> pl.DataFrame:
    nt.sync()
    return nt.runs(order_by="start_time")


def top_level() -> Run:
    parents = all_runs().filter(pl.col("parent_id").is_null())
    assert parents.height == 1, parents.select("name")
    return nt.get_run(parents["run_id"][0])


def children_of(run: Run) -> list[Run]:
    return sorted((nt.get_run(i) for i in run.children), key=lambda r: r.start_time)


# -- runs nobody asked for ------------------------------------------------------------------


def test_metric_and_data_functions_make_no_runs(autolog: None, iris: tuple[Any, Any]) -> None:
    _, y = iris
    labels = y.map({0: "setosa", 1: "versicolor", 2: "virginica"})
    predicted = labels.sample(frac=1, random_state=0).to_numpy()
    classification_report(labels, predicted)
    f1_score(labels, predicted, average="macro")
    log_loss(labels, np.full((len(labels), 3), 1 / 3))
    brier_score_loss(labels == "setosa", np.full(len(labels), 0.3), pos_label=True)
    make_multilabel_classification(n_samples=20, random_state=0)
    assert all_runs().is_empty()


def test_a_metric_inside_a_run_adds_nothing_to_it(autolog: None, iris: tuple[Any, Any]) -> None:
    # log_loss(y_test, ...) fits a LabelBinarizer: its labels are not the model's y_train.
    X, y = iris
    train, test = X.index % 3 != 0, X.index % 3 == 0
    with nt.run(name="evaluate"):
        model = LogisticRegression(max_iter=500).fit(X[train], y[train])
        nt.log_metric("test_log_loss", log_loss(y[test], model.predict_proba(X[test]),
                                                labels=[0, 1, 2]))
    run = top_level()
    assert [m["name"] for m in run.models] == ["LogisticRegression"]
    assert {(d["name"], d["n_rows"]) for d in run.datasets} == {("X_train", 100),
                                                                ("y_train", 100)}


def test_plain_transformers_fitted_alone_make_no_run(autolog: None,
                                                     iris: tuple[Any, Any]) -> None:
    X, y = iris
    StandardScaler().fit(X)
    PCA(n_components=2).fit_transform(X)
    LabelEncoder().fit(y)
    assert all_runs().is_empty()
    KMeans(n_clusters=3, n_init=2, random_state=0).fit(X)  # a model: it predicts
    make_pipeline(StandardScaler(), PCA(n_components=2)).fit(X)  # the user's recipe
    assert all_runs()["name"].to_list() == ["KMeans", "Pipeline"]


# -- one run per user call, its fits children tagged by fold -------------------------------


def test_cross_val_score_bound_before_autolog_is_one_run_with_a_child_per_fold(
        autolog: None, iris: tuple[Any, Any]) -> None:
    X, y = iris
    assert cross_val_score is not ORIGINAL["cross_val_score"]  # rebound by autolog()
    scores = cross_val_score(LogisticRegression(C=0.5, max_iter=500), X, y, cv=4)

    run = top_level()
    assert run.name == "cross_val_score" and run.status == "finished"
    assert run.tags["sklearn_function"] == "cross_val_score"
    assert run.tags["estimator_class"].endswith(".LogisticRegression")
    assert run.params["estimator"] == "LogisticRegression"
    assert run.params["estimator__C"] == 0.5 and run.params["cv"] == 4
    assert run.metrics["mean_test_score"] == pytest.approx(scores.mean())
    history = nt.metric_history(run.run_id, "test_score")
    assert history["step"].to_list() == [0, 1, 2, 3]
    assert history["value"].to_list() == pytest.approx(list(scores))
    assert {(d["name"], d["role"]) for d in run.datasets} == {("X", "cv"), ("y", "cv")}
    folds = children_of(run)
    assert [c.name for c in folds] == ["fold 0", "fold 1", "fold 2", "fold 3"]
    assert [c.tags["fold"] for c in folds] == ["0", "1", "2", "3"]
    assert [c.metrics["test_score"] for c in folds] == pytest.approx(list(scores))
    assert all_runs().height == 5


def test_disable_puts_the_rebound_functions_back(store: Path) -> None:
    nt.autolog()
    assert cross_val_score is not ORIGINAL["cross_val_score"]
    nt.autolog()  # twice: still one wrapper over the original
    assert cross_val_score.__wrapped__ is ORIGINAL["cross_val_score"]
    nt.autolog(disable=True)
    assert cross_val_score is ORIGINAL["cross_val_score"]
    import sklearn.model_selection

    assert sklearn.model_selection.cross_val_score is ORIGINAL["cross_val_score"]


def test_child_runs_are_capped_and_the_parent_keeps_every_fold(
        store: Path, iris: tuple[Any, Any]) -> None:
    X, y = iris
    nt.autolog(max_child_runs=3)
    try:
        result = cross_validate(LogisticRegression(max_iter=500), X, y, cv=6,
                                scoring=["accuracy", "f1_macro"], return_train_score=True)
    finally:
        nt.autolog(disable=True)
    run = top_level()
    assert len(run.children) == 3
    assert run.tags["omitted_child_runs"] == "3"
    assert run.metrics["mean_test_f1_macro"] == pytest.approx(result["test_f1_macro"].mean())
    assert run.metrics["mean_train_accuracy"] == pytest.approx(
        result["train_accuracy"].mean())
    assert nt.metric_history(run.run_id, "test_accuracy").height == 6


def test_learning_curve_is_one_run_with_a_child_per_size(autolog: None,
                                                         iris: tuple[Any, Any]) -> None:
    X, y = iris
    sizes, _, test = learning_curve(LogisticRegression(max_iter=500), X, y, cv=3,
                                        train_sizes=[0.3, 0.6, 1.0], shuffle=True,
                                        random_state=0)
    run = top_level()
    assert run.name == "learning_curve"
    history = nt.metric_history(run.run_id, "mean_test_score")
    assert history["step"].to_list() == list(sizes)
    assert history["value"].to_list() == pytest.approx(list(test.mean(axis=1)))
    points = children_of(run)
    assert [c.name for c in points] == [f"train_size={n}" for n in sizes]
    assert [c.params["train_size"] for c in points] == list(sizes)
    assert nt.metric_history(points[0].run_id, "test_score")["value"].to_list() == \
        pytest.approx(list(test[0]))
    assert all_runs().height == 4


def test_validation_curve_children_carry_the_param(autolog: None,
                                                   iris: tuple[Any, Any]) -> None:
    X, y = iris
    _, test = validation_curve(LogisticRegression(max_iter=500), X, y, param_name="C",
                               param_range=[0.01, 1.0], cv=3)
    run = top_level()
    assert run.params["param_name"] == "C"
    assert [(c.name, c.params["C"]) for c in children_of(run)] == [("C=0.01", 0.01),
                                                                   ("C=1.0", 1.0)]
    assert [c.metrics["mean_test_score"] for c in children_of(run)] == pytest.approx(
        list(test.mean(axis=1)))


def test_nested_cross_validation_is_one_run(autolog: None, iris: tuple[Any, Any]) -> None:
    X, y = iris
    inner = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, cv=2)
    cross_val_score(inner, X, y, cv=3)
    run = top_level()
    assert run.name == "cross_val_score"
    assert run.params["estimator"] == "GridSearchCV"
    assert [c.tags["fold"] for c in children_of(run)] == ["0", "1", "2"]
    assert all_runs().height == 4  # none of the 3 x (2 x 2 + 1) inner fits


# -- searches ------------------------------------------------------------------------------


def test_search_children_are_capped_to_the_best_and_the_best_is_tagged(
        store: Path, iris: tuple[Any, Any]) -> None:
    X, y = iris
    search = RandomizedSearchCV(LogisticRegression(max_iter=1000),
                                {"C": np.logspace(-4, 2, 20)}, n_iter=8, cv=3,
                                random_state=0)
    nt.autolog(max_child_runs=3)
    try:
        search.fit(X, y)
    finally:
        nt.autolog(disable=True)
    run = top_level()
    assert run.metrics["n_candidates"] == 8
    assert run.tags["omitted_child_runs"] == "5"
    children = children_of(run)
    assert len(children) == 3
    assert children[0].tags["best"] == "true"
    assert children[0].name == f"candidate {search.best_index_}"
    assert children[0].params["C"] == search.best_params_["C"]
    kept = sorted(search.cv_results_["mean_test_score"], reverse=True)[:3]
    assert [c.metrics["mean_test_score"] for c in children] == pytest.approx(kept)


def test_halving_search_has_one_child_per_candidate_with_its_iterations(
        autolog: None, iris: tuple[Any, Any]) -> None:
    X, y = iris
    search = HalvingGridSearchCV(LogisticRegression(max_iter=1000),
                                 {"C": [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]}, cv=3, factor=2,
                                 min_resources=30, random_state=0)
    search.fit(X, y)
    results = search.cv_results_
    run = top_level()
    children = children_of(run)
    assert len(results["params"]) > 6  # candidates repeat, once per iteration reached
    assert run.metrics["n_candidates"] == 6
    assert len(children) == 5 and run.tags["omitted_child_runs"] == "1"
    assert len({c.params["C"] for c in children}) == 5  # each param set once
    best = children[0]
    assert best.tags["best"] == "true" and best.params["C"] == search.best_params_["C"]
    rows = [i for i, p in enumerate(results["params"]) if p == search.best_params_]
    scores = nt.metric_history(best.run_id, "mean_test_score")
    assert scores["step"].to_list() == [int(results["iter"][i]) for i in rows]
    assert scores["value"].to_list() == pytest.approx([results["mean_test_score"][i]
                                                       for i in rows])
    resources = nt.metric_history(best.run_id, "n_resources")["value"].to_list()
    assert resources == [results["n_resources"][i] for i in rows]


def test_search_with_refit_callable_still_has_scores(autolog: None,
                                                     iris: tuple[Any, Any]) -> None:
    X, y = iris

    def simplest(cv_results: dict[str, Any]) -> int:
        return 0  # the smallest C, whatever its score

    search = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 1.0]}, cv=3,
                          refit=simplest).fit(X, y)
    run = top_level()
    assert run.metrics["best_cv_score"] == pytest.approx(
        search.cv_results_["mean_test_score"][0])
    assert run.metrics["training_score"] == pytest.approx(search.score(X, y))
    assert children_of(run)[0].name == "candidate 0"


# -- inputs and models ---------------------------------------------------------------------


def test_text_corpora_and_label_lists_are_data_sets(autolog: None) -> None:
    texts = ["a fine film", "dull and long", "fine acting", "long and dull plot"] * 5
    labels = ["good", "bad", "good", "bad"] * 5
    make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, tuple(labels))
    run = top_level()
    found = {d["name"]: d for d in run.datasets}
    assert found["X_train"]["n_rows"] == 20 and found["y_train"]["n_rows"] == 20
    assert [m["name"] for m in run.models] == ["Pipeline"]


def test_search_over_scipy_distributions_keeps_its_best_estimator(
        autolog: None, iris: tuple[Any, Any], recwarn: pytest.WarningsRecorder) -> None:
    X, y = iris
    search = RandomizedSearchCV(
        LogisticRegression(), {"C": scipy.stats.loguniform(1e-2, 1e2),
                               "max_iter": scipy.stats.randint(300, 600)},
        n_iter=3, cv=2, random_state=0).fit(X, y)
    assert not [w for w in recwarn if "nbtrail" in str(w.message)]
    run = top_level()
    [model] = run.models
    assert model["name"] == "LogisticRegression"
    assert "not stored" in run.tags["autolog_model"]
    loaded = nt.load_model(model["model_id"])
    assert (loaded.predict(X) == search.best_estimator_.predict(X)).all()


def test_a_model_skops_cannot_store_says_how_to_keep_it(autolog: None,
                                                        iris: tuple[Any, Any]) -> None:
    X, y = iris
    local = make_pipeline(FunctionTransformer(lambda data: data),
                          LogisticRegression(max_iter=1000))
    with pytest.warns(UserWarning, match=r"could not log the model: .*Autolog stores skops "
                                         r"only.*nt\.log_model\(model, pickle=True\)"):
        local.fit(X, y)
    assert top_level().models == []


# -- clusterers and decompositions ---------------------------------------------------------


def test_clusterers_and_decompositions_log_what_they_have(autolog: None,
                                                          iris: tuple[Any, Any]) -> None:
    X, _ = iris
    kmeans = KMeans(n_clusters=3, n_init=2, random_state=0).fit(X)
    run = top_level()
    assert run.metrics["inertia"] == pytest.approx(kmeans.inertia_)
    assert run.metrics["n_clusters"] == 3
    assert run.metrics["silhouette"] == pytest.approx(silhouette_score(X, kmeans.labels_))

    with nt.run(name="reduce") as reduce:
        pca = PCA(n_components=2).fit(X)
    assert nt.get_run(reduce.run_id).metrics["explained_variance_ratio"] == pytest.approx(
        pca.explained_variance_ratio_.sum())

    pipeline = make_pipeline(StandardScaler(), KMeans(n_clusters=2, n_init=2,
                                                      random_state=0)).fit(X)
    scaled = pipeline[:-1].transform(X)
    last = nt.get_run(all_runs()["run_id"][-1])
    assert last.metrics["silhouette"] == pytest.approx(
        silhouette_score(scaled, pipeline[-1].labels_))
