"""XGBoost and LightGBM models autologged, packaged and served in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split
from starlette.testclient import TestClient

import nbtrail as nt
from nbtrail.serving import ModelBundle, ServeSettings, create_app

from ..conftest import require

try:
    import lightgbm as lgb
    import xgboost as xgb
except ImportError:  # pragma: no cover - the test extra installs both
    require(False, "xgboost and lightgbm are not installed (pip install -e '.[test]')")


def _pins(context) -> dict[str, str]:
    lines = (context / "requirements.lock").read_text().splitlines()
    return dict(line.split("  #")[0].split("==") for line in lines
                if line and not line.startswith("#"))


def _xgb_classifier(X, y):
    return xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y)


def _lgbm_classifier(X, y):
    return lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(X, y)


@pytest.mark.parametrize(("train", "library", "platform"), [
    (_xgb_classifier, "xgboost", "xgboost_json"),
    (_lgbm_classifier, "lightgbm", "lightgbm_text"),
])
def test_a_boosted_classifier_is_served_as_it_predicts(home, tmp_path, train, library,
                                                      platform):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.1, random_state=0)
    nt.autolog()
    try:
        model = train(X_train, y_train)
    finally:
        nt.autolog(disable=True)
    nt.sync()
    run_id = nt.runs()["run_id"][0]
    pkg = nt.package(run_id, name="cancer", output=tmp_path / "ctx", build=False)
    # The image pins the library at the version the run recorded.
    assert _pins(pkg.context)[library] == nt.get_run(run_id).env["packages"][library]
    assert "skops" not in _pins(pkg.context)
    bundle = ModelBundle.load(pkg.context / "model")
    rows = X_test.head(8)
    with TestClient(create_app(bundle, ServeSettings(log_dir=str(tmp_path / "log")))) as client:
        assert client.get("/v2/models/cancer").json()["platform"] == platform
        answer = client.post("/predict", json={"records": rows.to_dict(orient="records")})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["predictions"] == model.predict(rows).tolist()
    served = [[p["0"], p["1"]] for p in data["probabilities"]]
    np.testing.assert_allclose(served, model.predict_proba(rows), rtol=1e-6)


def test_a_native_xgboost_booster_is_served_through_a_dmatrix(home, tmp_path):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    nt.autolog()
    try:
        booster = xgb.train({"max_depth": 3}, xgb.DMatrix(X, label=y), num_boost_round=10)
    finally:
        nt.autolog(disable=True)
    nt.sync()
    pkg = nt.package(nt.runs()["run_id"][0], name="diabetes", output=tmp_path / "ctx",
                     build=False)
    bundle = ModelBundle.load(pkg.context / "model")
    rows: Any = X.head(5)
    with TestClient(create_app(bundle, ServeSettings(log_dir=str(tmp_path / "log")))) as client:
        answer = client.post("/predict", json={"records": rows.to_dict(orient="records")})
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json()["predictions"],
                               booster.predict(xgb.DMatrix(rows)), rtol=1e-6)


COPIED_SERVER = """
import json, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("duckdb", "polars", "pyarrow", "skops"):
            raise ImportError(f"{name} is not in this model's image")
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, sys.argv[1])
from starlette.testclient import TestClient
from nbtrail.serving import create_app, ModelBundle
import nbtrail
assert nbtrail.__file__.startswith(sys.argv[1]), nbtrail.__file__
client = TestClient(create_app(ModelBundle.load(sys.argv[2])))
answer = client.post("/predict", json={"records": json.loads(sys.argv[3])})
print(json.dumps(answer.json()))
"""


def test_the_copied_server_loads_a_lightgbm_model_without_the_workbench(home, tmp_path):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with nt.run():
        nt.log_dataset(X, name="X", role="train")
        model = _lgbm_classifier(X, y)
        model_id = nt.log_model(model)
    pkg = nt.package(model_id, name="cancer", output=tmp_path / "ctx", build=False)
    rows = X.head(3)
    # Only the image's own copy of the runtime is importable: no PYTHONPATH to src/.
    done = subprocess.run(
        [sys.executable, "-c", COPIED_SERVER, str(pkg.context / "app"),
         str(pkg.context / "model"), rows.to_json(orient="records")],
        env={**os.environ, "PYTHONPATH": ""}, capture_output=True, text=True, timeout=300,
        check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["predictions"] == model.predict(rows).tolist()
