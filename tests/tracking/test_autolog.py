from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import polars as pl
import pytest
import scipy.sparse
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler

import nbtrail as nt
from nbtrail.store._records import Run
from nbtrail.tracking import _autolog


def all_runs() -> pl.DataFrame:
    nt.sync()
    return nt.runs(order_by="start_time")


def only_run() -> Run:
    frame = all_runs()
    assert frame.height == 1, frame.select("name", "parent_id")
    return nt.get_run(frame["run_id"][0])


def test_fit_is_recorded_as_its_own_run(autolog: None, iris: tuple[Any, Any]) -> None:
    X, y = iris
    model = LogisticRegression(C=0.5, max_iter=500)
    assert model.fit(X, y) is model

    run = only_run()
    assert run.name == "LogisticRegression"
    assert run.status == "finished"
    assert run.parent_id is None
    assert run.params["C"] == 0.5
    assert run.params["max_iter"] == 500
    assert run.params["solver"] == "lbfgs"
    assert run.metrics["fit_time_s"] > 0
    assert run.metrics["training_score"] == pytest.approx(model.score(X, y))
    assert run.tags == {
        "autolog": "sklearn",
        "estimator_class": "sklearn.linear_model._logistic.LogisticRegression",
        "nbtrail.capture_git": "off",  # the store fixture turns git capture off
    }
    assert {(d["name"], d["role"], d["n_rows"]) for d in run.datasets} == {
        ("X_train", "train", 150), ("y_train", "train", 150)}
    [stored] = run.models
    assert stored["name"] == "LogisticRegression"
    assert [c["name"] for c in stored["signature"]["inputs"]] == list(X.columns)


def test_fit_inside_an_active_run_logs_into_it(autolog: None, iris: tuple[Any, Any]) -> None:
    X, y = iris
    with nt.run(name="outer") as outer:
        LogisticRegression(max_iter=500).fit(X.to_numpy(), y.to_numpy())
        assert nt.active_run() is outer
    run = only_run()
    assert run.run_id == outer.run_id
    assert run.name == "outer"
    assert run.status == "finished"
    assert run.params["max_iter"] == 500
    assert {"fit_time_s", "training_score"} <= set(run.metrics)
    assert len(run.models) == 1
    assert {d["name"] for d in run.datasets} == {"X_train", "y_train"}


def test_changed_params_in_one_run_are_skipped_with_a_warning(
        autolog: None, iris: tuple[Any, Any]) -> None:
    X, y = iris
    with nt.run(name="two models"):
        LogisticRegression(C=1.0, max_iter=500).fit(X, y)
        with pytest.warns(UserWarning, match=r"skipped param\(s\) C: .*already logged"):
            second = LogisticRegression(C=2.0, max_iter=500).fit(X, y)
    assert hasattr(second, "coef_")
    run = only_run()
    assert run.params["C"] == 1.0  # the first value stays
    assert len(run.models) == 2


def test_pipeline_is_one_run(autolog: None, iris: tuple[Any, Any]) -> None:
    X, y = iris
    make_pipeline(StandardScaler(), LogisticRegression(C=3.0)).fit(X, y)
    run = only_run()
    assert run.name == "Pipeline"
    assert run.params["logisticregression__C"] == 3.0
    # Estimators inside params are shown by class name.
    assert run.params["steps"] == [["standardscaler", "StandardScaler"],
                                   ["logisticregression", "LogisticRegression"]]
    assert run.params["logisticregression"] == "LogisticRegression"
    assert "training_score" in run.metrics
    assert [m["name"] for m in run.models] == ["Pipeline"]


def test_column_transformer_fit_transform_is_one_run(
        autolog: None, iris: tuple[Any, Any]) -> None:
    X, _ = iris
    columns = list(X.columns)
    transformer = ColumnTransformer([("scale", StandardScaler(), columns[:2]),
                                     ("pca", PCA(n_components=1), columns[2:])])
    assert transformer.fit_transform(X).shape == (150, 3)
    run = only_run()
    assert run.name == "ColumnTransformer"
    assert {d["name"] for d in run.datasets} == {"X_train"}


@pytest.mark.parametrize("estimator", [PCA(n_components=2), StandardScaler()],
                         ids=["own_fit_transform", "mixin_fit_transform"])
def test_fit_transform_is_recorded_once(autolog: None, iris: tuple[Any, Any],
                                        estimator: Any) -> None:
    # A plain transformer makes no run of its own; inside the user's run it is recorded.
    X, _ = iris
    with nt.run(name="prep"):
        estimator.fit_transform(X)
    run = only_run()
    assert [m["name"] for m in run.models] == [type(estimator).__name__]
    assert nt.metric_history(run.run_id, "fit_time_s").height == 1


def test_available_if_methods_keep_their_availability(autolog: None,
                                                      iris: tuple[Any, Any]) -> None:
    X, y = iris
    assert isinstance(Pipeline.__dict__["fit_transform"], _autolog._WrappedDescriptor)
    assert not hasattr(make_pipeline(LogisticRegression()), "fit_transform")
    make_pipeline(StandardScaler(), PCA(n_components=2)).fit_transform(X, y)
    run = only_run()
    assert run.name == "Pipeline"
    assert run.params["pca__n_components"] == 2


def test_label_encoder_fit_on_y_only(autolog: None, iris: tuple[Any, Any]) -> None:
    _, y = iris
    with nt.run(name="labels"):
        LabelEncoder().fit(y)
    run = only_run()
    assert [d["name"] for d in run.datasets] == ["y_train"]
    assert "training_score" not in run.metrics
    assert [m["name"] for m in run.models] == ["LabelEncoder"]


def test_model_is_logged_without_an_input_example(autolog: None,
                                                  iris: tuple[Any, Any]) -> None:
    X, y = iris
    with pytest.warns(UserWarning, match="could not log data set X_train"):
        LogisticRegression(max_iter=500).fit(scipy.sparse.csr_matrix(X.to_numpy()), y)
    assert len(only_run().models) == 1


def test_grid_search_has_one_child_run_per_candidate(autolog: None,
                                                     iris: tuple[Any, Any]) -> None:
    X, y = iris
    search = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 1.0, 10.0]}, cv=3)
    search.fit(X, y)

    frame = all_runs()
    parents = frame.filter(pl.col("parent_id").is_null())
    assert parents["name"].to_list() == ["GridSearchCV"]
    parent = nt.get_run(parents["run_id"][0])
    assert parent.status == "finished"
    assert parent.params["best_C"] == search.best_params_["C"]
    assert "estimator__C" not in parent.params  # the grid overrides it: best_C says it
    assert parent.params["estimator__max_iter"] == 500
    assert parent.params["estimator"] == "LogisticRegression"
    assert parent.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert parent.metrics["training_score"] == pytest.approx(search.score(X, y))
    assert parent.metrics["n_candidates"] == 3
    # The refitted best estimator is the model.
    assert [m["name"] for m in parent.models] == ["LogisticRegression"]
    assert parent.tags["autolog_model"].startswith("best_estimator_")

    children = frame.filter(pl.col("parent_id") == parent.run_id)
    assert frame.height == 4  # no runs for the inner fits
    assert sorted(parent.children) == sorted(children["run_id"].to_list())
    ranks = np.argsort(-search.cv_results_["mean_test_score"], kind="stable")
    for run_id in children["run_id"]:
        child = nt.get_run(run_id)
        i = int(child.name.removeprefix("candidate "))
        assert child.status == "finished"
        assert child.params == {"C": [0.01, 1.0, 10.0][i]}
        assert child.metrics["mean_test_score"] == pytest.approx(
            search.cv_results_["mean_test_score"][i])
        assert "std_test_score" in child.metrics
        assert child.tags.get("best") == ("true" if i == search.best_index_ else None)
        assert child.tags["rank"] == str(list(ranks).index(i) + 1)
        assert child.models == [] and child.datasets == []


def test_search_with_threads_records_no_inner_fits(autolog: None,
                                                   iris: tuple[Any, Any]) -> None:
    # joblib worker threads start with an empty context: the thread fallback must hold.
    X, y = iris
    search = RandomizedSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]},
                                n_iter=2, cv=2, n_jobs=2, random_state=0)
    with joblib.parallel_backend("threading", n_jobs=2), warnings.catch_warnings():
        warnings.simplefilter("error")  # inner fits logging into the parent would warn
        search.fit(X, y)
    frame = all_runs()
    parents = frame.filter(pl.col("parent_id").is_null())
    assert parents["name"].to_list() == ["RandomizedSearchCV"]
    assert frame.height == 3
    assert nt.metric_history(parents["run_id"][0], "fit_time_s").height == 1
    assert "C" not in nt.get_run(parents["run_id"][0]).params


@pytest.mark.parametrize("estimator", [
    RandomForestClassifier(n_estimators=5, random_state=0),
    # Its trees are fit through the public fit, in threads.
    IsolationForest(n_estimators=4, n_jobs=2, random_state=0),
], ids=["random_forest", "isolation_forest_threads"])
def test_ensemble_is_one_run(autolog: None, iris: tuple[Any, Any], estimator: Any) -> None:
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimator.fit(X, y)
    run = only_run()
    assert run.name == type(estimator).__name__
    assert run.params["n_estimators"] == estimator.n_estimators
    # Nested fits logging into the same run would add points and tree params.
    assert nt.metric_history(run.run_id, "fit_time_s").height == 1
    assert "splitter" not in run.params


def test_failing_fit_marks_the_run_failed_and_raises(autolog: None,
                                                     iris: tuple[Any, Any]) -> None:
    X, y = iris
    bad = X.to_numpy().copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN") as raised:
        LogisticRegression().fit(bad, y)
    assert type(raised.value) is ValueError
    run = only_run()
    assert run.status == "failed"
    assert run.error is not None and run.error.startswith("ValueError:")
    assert run.params["C"] == 1.0
    assert run.models == []


def test_failing_fit_inside_a_run_leaves_the_run_to_the_user(
        autolog: None, iris: tuple[Any, Any]) -> None:
    X, y = iris
    with nt.run(name="outer") as outer:
        with pytest.raises(ValueError):
            LogisticRegression().fit(X.to_numpy()[:, :1] * np.nan, y)
        assert outer.status == "running"
    assert only_run().status == "finished"


def test_interrupted_fit_marks_the_run_killed(autolog: None, iris: tuple[Any, Any]) -> None:
    X, _ = iris

    def interrupt(data: Any) -> Any:
        raise KeyboardInterrupt

    # check_inverse makes fit call func on y.
    regressor = TransformedTargetRegressor(LinearRegression(), func=interrupt,
                                           inverse_func=interrupt)
    with pytest.raises(KeyboardInterrupt):
        regressor.fit(X, X.iloc[:, 0])
    assert only_run().status == "killed"


def test_logging_problems_warn_but_never_break_the_fit(
        autolog: None, iris: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = iris
    sparse = scipy.sparse.csr_matrix(X.to_numpy())

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(nt.ActiveRun, "log_model", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = LogisticRegression(max_iter=500).fit(sparse, y)
    assert hasattr(model, "coef_")
    messages = [str(w.message) for w in caught]
    assert any("could not log data set X_train" in m for m in messages), messages
    assert any("could not log the model: disk full" in m for m in messages), messages
    run = only_run()
    assert run.status == "finished"
    assert [d["name"] for d in run.datasets] == ["y_train"]
    assert "training_score" in run.metrics


def test_unexpected_errors_in_nbtrail_never_break_the_fit(
        autolog: None, iris: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = iris

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("store unreachable")

    # A separate MonkeyPatch: undoing the fixture's one would also drop NBTRAIL_HOME.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nt.Tracker, "start_run", broken)
        with pytest.warns(UserWarning, match="not recording this LogisticRegression fit"):
            model = LogisticRegression(max_iter=500).fit(X, y)
    assert hasattr(model, "coef_")

    get_params = LogisticRegression.get_params

    def deep_params_fail(self: Any, deep: bool = True) -> Any:
        # scikit-learn validates with deep=False; only autolog asks for deep=True.
        return broken() if deep else get_params(self, deep=False)

    monkeypatch.setattr(LogisticRegression, "get_params", deep_params_fail)
    with pytest.warns(UserWarning, match="could not log params: store unreachable"):
        LogisticRegression(max_iter=500).fit(X, y)
    run = only_run()
    assert run.status == "finished"
    assert run.params == {}
    assert "fit_time_s" in run.metrics


def test_training_score_failure_does_not_break_the_fit(
        autolog: None, iris: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = iris

    def failing_score(self: Any, X: Any, y: Any) -> float:
        raise RuntimeError("no scoring today")

    monkeypatch.setattr(LogisticRegression, "score", failing_score)
    with pytest.warns(UserWarning, match="could not log training_score: no scoring today"):
        LogisticRegression(max_iter=500).fit(X, y)
    run = only_run()
    assert run.status == "finished"
    assert "training_score" not in run.metrics
    assert len(run.models) == 1


def test_options_turn_parts_off(store: Path, iris: tuple[Any, Any]) -> None:
    X, y = iris
    nt.autolog(log_models=False, log_datasets=False, log_training_score=False,
               max_param_length=20)
    try:
        make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    finally:
        nt.autolog(disable=True)
    run = only_run()
    assert run.models == [] and run.datasets == []
    assert set(run.metrics) == {"fit_time_s"}
    steps = run.params["steps"]
    assert isinstance(steps, str) and len(steps) == 20 and steps.endswith("…")


def test_disable_restores_the_original_methods(store: Path, iris: tuple[Any, Any]) -> None:
    X, y = iris
    owners = _autolog._method_owners()
    before = {(owner, name): owner.__dict__[name] for owner, name in owners}
    original_fit = LogisticRegression.fit
    assert (LogisticRegression, "fit") in before
    assert (Pipeline, "fit_transform") in before

    nt.autolog()
    try:
        patched = set(_autolog._patches)
        assert LogisticRegression.fit is not original_fit
        assert LogisticRegression.fit.__wrapped__ is original_fit
        # Everything but properties (FeatureAgglomeration.fit_predict) is wrapped.
        assert len(patched) > 150
        assert all(owner.__dict__[name] is not before[owner, name] for owner, name in patched)
        assert all(isinstance(before[key], property) for key in set(owners) - patched)
    finally:
        nt.autolog(disable=True)
    assert LogisticRegression.fit is original_fit
    assert all(owner.__dict__[name] is before[owner, name] for owner, name in owners)
    assert not _autolog._patches

    with nt.run(name="marker"):
        pass
    LogisticRegression(max_iter=500).fit(X, y)
    assert all_runs()["name"].to_list() == ["marker"]


def test_autolog_twice_does_not_double_patch(store: Path, iris: tuple[Any, Any]) -> None:
    X, y = iris
    original_fit = LogisticRegression.fit
    nt.autolog()
    try:
        nt.autolog()
        assert LogisticRegression.fit.__wrapped__ is original_fit
        LogisticRegression(max_iter=500).fit(X, y)
        LogisticRegression(max_iter=500).fit(X, y)
    finally:
        nt.autolog(disable=True)
    assert LogisticRegression.fit is original_fit
    assert all_runs()["name"].to_list() == ["LogisticRegression", "LogisticRegression"]


def test_subclass_fit_records_the_actual_estimator(autolog: None,
                                                   iris: tuple[Any, Any]) -> None:
    # GridSearchCV inherits fit from BaseSearchCV: one wrapper serves every subclass.
    X, y = iris
    assert "fit" not in GridSearchCV.__dict__
    GridSearchCV(LogisticRegression(max_iter=500), {"C": [1.0]}, cv=2).fit(X, y)
    parent = nt.get_run(all_runs().filter(pl.col("parent_id").is_null())["run_id"][0])
    assert parent.name == "GridSearchCV"
    assert parent.tags["estimator_class"].endswith(".GridSearchCV")


def test_invalid_max_param_length() -> None:
    with pytest.raises(nt.NbtrailError, match="max_param_length"):
        nt.autolog(max_param_length=0)
