"""XGBoost and LightGBM autolog: params, metrics per round, importances, safe models, data."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split

import nbtrail as nt
from nbtrail.tracking._tracker import get_tracker

from ..conftest import python_output, require

try:
    import lightgbm as lgb
    import xgboost as xgb
except ImportError:  # pragma: no cover - the test extra installs both
    require(False, "xgboost and lightgbm are not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def cancer() -> tuple[Any, Any, Any, Any]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=0.25, random_state=0)


@pytest.fixture(scope="module")
def diabetes() -> tuple[Any, Any, Any, Any]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=0.25, random_state=0)


def only_run() -> nt.Run:
    nt.sync()
    frame = nt.runs()
    assert frame.height == 1, frame.select("name", "parent_id")
    return nt.get_run(frame["run_id"][0])


def importances(run: nt.Run) -> list[dict[str, Any]]:
    return pl.read_parquet(nt.artifact_path(run.run_id, "feature_importance.parquet")).to_dicts()


def steps(run: nt.Run, key: str) -> list[int]:
    return nt.metric_history(run.run_id, key)["step"].to_list()


def test_xgb_classifier_records_rounds_best_iteration_importances_data_and_model(
        autolog, cancer):
    X_train, X_valid, y_train, y_valid = cancer
    model = xgb.XGBClassifier(n_estimators=200, max_depth=2, early_stopping_rounds=5,
                              eval_metric="logloss")
    model.fit(X_train, y_train, eval_set=[(X_valid, y_valid)], verbose=False)
    run = only_run()
    assert run.name == "XGBClassifier" and run.status == "finished"
    assert run.tags["autolog"] == "xgboost"
    assert run.params["n_estimators"] == 200 and run.params["max_depth"] == 2
    rounds = len(model.evals_result()["validation_0"]["logloss"])
    assert steps(run, "validation_0/logloss") == list(range(rounds))
    assert nt.metric_history(run.run_id, "validation_0/logloss")["value"].to_list() == \
        pytest.approx(model.evals_result()["validation_0"]["logloss"])
    assert run.metrics["best_iteration"] == model.best_iteration < rounds - 1  # stopped early
    table = importances(run)
    assert {row["feature"] for row in table} == set(X_train.columns)
    gains = [float(row["gain"]) for row in table]
    assert gains == sorted(gains, reverse=True) and gains[0] > 0
    assert {(d["name"], d["role"]) for d in run.datasets} == {
        ("X_train", "train"), ("y_train", "train"), ("X_validation_0", "validation"),
        ("y_validation_0", "validation")}
    [stored] = run.models
    assert stored["format"] == "xgboost_json" and stored["flavor"] == "xgboost"
    loaded = nt.load_model(stored["model_id"])
    assert type(loaded) is xgb.XGBClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X_valid), model.predict_proba(X_valid))
    np.testing.assert_array_equal(loaded.predict(X_valid), model.predict(X_valid))


# LightGBM 4.7's eval_X/eval_y do not take text labels (eval_set does, deprecated).
@pytest.mark.filterwarnings("ignore:The argument 'eval_set' is deprecated")
def test_lgbm_classifier_with_text_labels_reloads_predicting_identically(autolog, cancer):
    X_train, X_valid, y_train, y_valid = cancer
    names = np.array(["benign", "malignant"])  # labels LightGBM encodes itself
    model = lgb.LGBMClassifier(n_estimators=30, num_leaves=7, verbose=-1)
    model.fit(X_train, names[y_train], eval_set=[(X_valid, names[y_valid])])
    run = only_run()  # no LabelEncoder run from inside LightGBM's fit
    assert run.name == "LGBMClassifier" and run.tags["autolog"] == "lightgbm"
    assert steps(run, "valid_0/binary_logloss") == list(range(30))
    assert "best_iteration" not in run.metrics  # no early stopping
    assert len(importances(run)) == X_train.shape[1]
    [stored] = run.models
    assert stored["format"] == "lightgbm_text"
    loaded: Any = nt.load_model(stored["model_id"])
    assert list(loaded.classes_) == ["benign", "malignant"]
    np.testing.assert_array_equal(loaded.predict_proba(X_valid), model.predict_proba(X_valid))
    np.testing.assert_array_equal(loaded.predict(X_valid), model.predict(X_valid))
    # The booster inside is LightGBM's own, from its own text format.
    assert isinstance(loaded.booster_, lgb.Booster)


def test_lgbm_regressor_with_early_stopping(autolog, diabetes):
    X_train, X_valid, y_train, y_valid = diabetes
    model = lgb.LGBMRegressor(n_estimators=500, learning_rate=0.3, verbose=-1)
    model.fit(X_train, y_train, eval_X=X_valid, eval_y=y_valid,
              callbacks=[lgb.early_stopping(5, verbose=False)])
    run = only_run()
    assert {d["name"] for d in run.datasets} == {"X_train", "y_train", "X_validation_0",
                                                 "y_validation_0"}
    # LightGBM counts rounds from 1; the metric is the round's step, from 0.
    assert run.metrics["best_iteration"] == model.best_iteration_ - 1
    assert len(steps(run, "valid_0/l2")) < 500
    loaded: Any = nt.load_model(run.models[0]["model_id"])
    np.testing.assert_array_equal(loaded.predict(X_valid), model.predict(X_valid))
    assert not hasattr(loaded, "predict_proba")


def test_xgboost_train_records_named_evals_and_the_dmatrix(autolog, diabetes):
    X_train, X_valid, y_train, y_valid = diabetes
    dtrain = xgb.DMatrix(X_train, label=y_train)
    dvalid = xgb.DMatrix(X_valid, label=y_valid)
    kept: dict[str, Any] = {}
    booster = xgb.train({"max_depth": 3, "eta": 0.3}, dtrain, num_boost_round=15,
                        evals=[(dtrain, "train"), (dvalid, "eval")], evals_result=kept,
                        verbose_eval=False)
    run = only_run()
    assert run.name == "xgboost.train"
    assert run.params["max_depth"] == 3 and run.params["num_boost_round"] == 15
    assert steps(run, "eval/rmse") == list(range(15)) == steps(run, "train/rmse")
    # The caller's evals_result is filled as without nbtrail.
    assert nt.metric_history(run.run_id, "eval/rmse")["value"].to_list() == \
        pytest.approx(kept["eval"]["rmse"])
    [x_train] = [d for d in run.datasets if d["name"] == "X_train"]
    assert x_train["n_rows"] == len(X_train) and x_train["n_columns"] == X_train.shape[1]
    loaded: Any = nt.load_model(run.models[0]["model_id"])
    assert type(loaded) is xgb.Booster
    np.testing.assert_array_equal(loaded.predict(dvalid), booster.predict(dvalid))


def test_lightgbm_train_records_valid_sets_and_the_raw_data(autolog, diabetes):
    X_train, X_valid, y_train, y_valid = diabetes
    train_set = lgb.Dataset(X_train, label=y_train)
    valid_set = lgb.Dataset(X_valid, label=y_valid, reference=train_set)
    with nt.run(name="mine") as mine:  # an active run: training logs into it
        booster = lgb.train({"objective": "regression", "num_leaves": 7, "verbose": -1},
                            train_set, num_boost_round=12, valid_sets=[valid_set],
                            valid_names=["holdout"])
    run = nt.get_run(mine.run_id)
    assert run.params["num_leaves"] == 7 and nt.runs().height == 1
    assert steps(run, "holdout/l2") == list(range(12))
    ids = {d["name"]: d["dataset_id"] for d in run.datasets}
    with nt.run(name="same data") as again:
        assert again.log_dataset(X_train) == ids["X_train"]  # the frame's own fingerprint
    loaded: Any = nt.load_model(run.models[0]["model_id"])
    np.testing.assert_array_equal(loaded.predict(X_valid), booster.predict(X_valid))


def test_disable_puts_the_originals_back(store, cancer):
    original_train, original_fit = xgb.train, lgb.LGBMClassifier.fit
    nt.autolog()
    assert xgb.train is not original_train and lgb.LGBMClassifier.fit is not original_fit
    nt.autolog(disable=True)
    assert xgb.train is original_train and lgb.LGBMClassifier.fit is original_fit
    X_train, _, y_train, _ = cancer
    lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(X_train, y_train)
    nt.sync()
    assert nt.runs().height == 0


def test_a_library_imported_after_autolog_is_recorded():
    out = python_output("""
        import sys
        import nbtrail as nt
        nt.config.set(capture_git=False, system_metrics=False)
        nt.autolog()
        assert "lightgbm" not in sys.modules  # autolog() does not import it
        import lightgbm
        from sklearn.datasets import load_diabetes
        X, y = load_diabetes(return_X_y=True)
        lightgbm.LGBMRegressor(n_estimators=4, verbose=-1).fit(X, y)
        nt.sync()
        print(nt.runs()["name"].to_list())
    """)
    assert out.strip() == "['LGBMRegressor']"


def test_a_model_logged_by_hand_is_stored_in_its_library_format(store, cancer):
    X_train, X_valid, y_train, _ = cancer
    model = xgb.XGBRegressor(n_estimators=5).fit(X_train, y_train)
    with nt.run() as run:
        model_id = run.log_model(model, input_example=X_train.head())
    data = nt.get_run(run.run_id).models[0]
    assert data["format"] == "xgboost_json"
    envelope = json.loads(get_tracker().store.blob_path(data["sha256"]).read_bytes())
    assert envelope["class_name"] == "xgboost.sklearn.XGBRegressor"
    assert "learner" in json.loads(envelope["model"])  # XGBoost's own JSON model
    loaded: Any = nt.load_model(model_id)
    np.testing.assert_array_equal(loaded.predict(X_valid), model.predict(X_valid))


def test_a_stored_boosting_model_names_only_its_library_classes():
    from nbtrail._modelio import deserialize_model, write_envelope
    from nbtrail.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="xgboost_json model data is not valid JSON"):
        deserialize_model(b"\x80not json", "xgboost_json")
    with pytest.raises(InvalidInputError, match="not an nbtrail boosting model"):
        deserialize_model(b'{"model": 1}', "lightgbm_text")
    # The class comes from the file: only the library's own model classes are accepted.
    forged = write_envelope("lightgbm_text", "lightgbm.basic.Booster", "x").replace(
        b"lightgbm.basic.Booster", b"os.system")
    with pytest.raises(InvalidInputError, match=r"names the class 'os\.system'"):
        deserialize_model(forged, "lightgbm_text")


def test_training_goes_on_when_there_is_no_store_to_record_into(tmp_path, diabetes):
    X_train, X_valid, y_train, _ = diabetes
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store should be")
    nt.autolog()
    try:
        with nt.config(home=str(blocked), capture_git=False), \
                pytest.warns(UserWarning, match="not recording this LGBMRegressor"):
            model = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X_train, y_train)
    finally:
        nt.autolog(disable=True)
    assert model.predict(X_valid).shape == (len(X_valid),)


def test_fits_inside_a_scikit_learn_search_are_not_runs_of_their_own(autolog, cancer):
    from sklearn.model_selection import GridSearchCV

    X_train, _, y_train, _ = cancer
    search = GridSearchCV(xgb.XGBClassifier(n_estimators=5), {"max_depth": [2, 3]}, cv=2)
    search.fit(X_train, y_train)
    nt.sync()
    runs = nt.runs()
    # The search is the scikit-learn autolog's; the fits of its candidates and its refit
    # run inside it and make no XGBClassifier run.
    assert "XGBClassifier" not in runs["name"].to_list()
    assert runs.filter(runs["parent_id"].is_null())["name"].to_list() == ["GridSearchCV"]


def test_an_unfitted_or_damaged_model_is_refused_naming_it(store):
    from nbtrail._modelio import deserialize_model, write_envelope
    from nbtrail.errors import InvalidInputError

    with nt.run() as run, pytest.raises(InvalidInputError,
                                        match=r"cannot store the .*XGBClassifier.*fitted"):
        run.log_model(xgb.XGBClassifier())
    damaged = write_envelope("lightgbm_text", "lightgbm.basic.Booster", "tree\nnot a model")
    with pytest.raises(InvalidInputError, match="lightgbm cannot load the stored"):
        deserialize_model(damaged, "lightgbm_text")
