"""The model server in-process: every endpoint, every error, both V2 tensor layouts."""

from __future__ import annotations

import json
import re

import pytest
from starlette.testclient import TestClient

from nbtrail.serving import ServeSettings, create_app

ROWS = [{"age": 30, "income": 55.0, "plan": "pro"},
        {"age": 61, "income": 41.5, "plan": "basic"}]


@pytest.fixture
def client(bundle, tmp_path):
    with TestClient(create_app(bundle, ServeSettings(log_dir=str(tmp_path / "log"))),
                    raise_server_exceptions=False) as test_client:
        yield test_client


def _expected(bundle):
    import pandas as pd

    frame = pd.DataFrame(ROWS)
    return bundle.model.predict(frame).tolist(), bundle.model.predict_proba(frame).tolist()


def test_health_and_metadata(client, bundle):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "nbtrail"
    assert client.get("/v2/models/churn/ready").json() == {"name": "churn", "ready": True}
    meta = client.get("/v2/models/churn").json()
    assert meta["name"] == "churn" and meta["versions"] == [bundle.version]
    assert meta["inputs"] == [{"name": "age", "datatype": "INT64", "shape": [-1]},
                              {"name": "income", "datatype": "FP64", "shape": [-1]},
                              {"name": "plan", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert meta["outputs"][0]["datatype"] == "INT64"
    info = client.get("/").json()
    assert info["lineage"]["model"]["model_id"] == bundle.model_id
    missing = client.get("/v2/models/other")
    assert missing.status_code == 404 and "serves 'churn'" in missing.json()["error"]


def test_plain_predict_takes_records_or_columns(client, bundle):
    predictions, probabilities = _expected(bundle)
    for body in ({"records": ROWS},
                 {"columns": {k: [r[k] for r in ROWS] for k in ROWS[0]}}):
        answer = client.post("/predict", json=body)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["predictions"] == predictions
        assert [[p["0"], p["1"]] for p in data["probabilities"]] == probabilities
        assert "warnings" not in data
        assert re.fullmatch(r"req_[0-9a-f]{32}", answer.headers["x-request-id"])


def test_v2_infer_takes_one_matrix_or_one_tensor_per_column(client, bundle):
    predictions, probabilities = _expected(bundle)
    matrix = {"id": "abc", "inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "BYTES",
                                       "data": [[r["age"], r["income"], r["plan"]]
                                                for r in ROWS]}]}
    per_column = {"inputs": [
        {"name": "age", "shape": [2], "datatype": "INT64", "data": [r["age"] for r in ROWS]},
        {"name": "income", "shape": [2, 1], "datatype": "FP64",
         "data": [[r["income"]] for r in ROWS]},
        {"name": "plan", "shape": [2], "datatype": "BYTES", "data": [r["plan"] for r in ROWS]},
    ]}
    for body in (matrix, per_column):
        answer = client.post("/v2/models/churn/infer", json=body)
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        assert outputs["predict"] == {"name": "predict", "datatype": "INT64", "shape": [2],
                                      "data": predictions}
        assert outputs["predict_proba"]["shape"] == [2, 2]
        assert outputs["predict_proba"]["data"] == [p for row in probabilities for p in row]
    answer = client.post("/v2/models/churn/infer", json=matrix).json()
    assert answer["id"] == "abc" and answer["model_name"] == "churn"
    only = client.post(f"/v2/models/churn/versions/{bundle.version}/infer",
                       json=per_column | {"outputs": [{"name": "predict"}]}).json()
    assert [o["name"] for o in only["outputs"]] == ["predict"]
    wrong_version = client.post("/v2/models/churn/versions/v9/infer", json=per_column)
    assert wrong_version.status_code == 404


@pytest.mark.parametrize(("record", "field", "problem"), [
    ({"age": 30, "income": 55.0}, "plan", "missing from row 1"),
    ({"age": 30, "income": "high", "plan": "pro"}, "income", "expected a number, got 'high'"),
    ({"age": 30.5, "income": 55.0, "plan": "pro"}, "age", "expected an integer, got 30.5"),
    ({"age": 30, "income": 55.0, "plan": "gold"}, "plan", "categories never seen in training: "
                                                         "'gold'"),
    ({"age": 30, "income": None, "plan": "pro"}, "income", "null where training data had none"),
    ({"age": 30, "income": 55.0, "plan": "pro", "zip": "1000"}, "zip", "unknown column"),
])
def test_input_that_does_not_match_the_signature_gets_422(client, record, field, problem):
    answer = client.post("/predict", json={"records": [ROWS[0], record]})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "the input does not match the model's signature"
    assert body["request_id"] == answer.headers["x-request-id"]
    found = {p["field"]: p["problem"] for p in body["problems"]}
    assert problem in found[field]
    if field != "zip":
        assert "row 1" in found[field]


def test_a_column_missing_from_every_row_is_named(client):
    answer = client.post("/predict", json={"columns": {"age": [30], "income": [55.0]}})
    assert answer.status_code == 422
    assert answer.json()["problems"] == [{"field": "plan", "problem": "missing column"}]


def test_values_outside_the_training_range_warn_or_are_refused(bundle, client):
    old = {"age": 120, "income": 55.0, "plan": "pro"}
    answer = client.post("/predict", json={"records": [old]})
    assert answer.status_code == 200
    assert answer.json()["warnings"] == [
        {"field": "age", "problem": "1 value(s) outside the training range [18, 89] (row 0)"}]
    v2 = client.post("/v2/models/churn/infer", json={"inputs": [
        {"name": "m", "shape": [1, 3], "datatype": "BYTES", "data": [120, 55.0, "pro"]}]})
    assert v2.json()["parameters"]["warnings"][0]["field"] == "age"
    strict = TestClient(create_app(bundle, ServeSettings(range_policy="reject")))
    refused = strict.post("/predict", json={"records": [old]})
    assert refused.status_code == 422 and refused.json()["problems"][0]["field"] == "age"


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/predict", b"{not json", "not valid JSON"),
    ("/predict", b"[1, 2]", "must be a JSON object"),
    ("/predict", b'{"rows": []}', '"records"'),
    ("/predict", b'{"records": [1]}', "list of objects"),
    ("/v2/models/churn/infer", b'{"inputs": []}', "non-empty 'inputs'"),
    ("/v2/models/churn/infer",
     b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1, 2]}]}',
     "has shape [2, 3] but 2 values"),
    ("/v2/models/churn/infer",
     b'{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}',
     "has 2 columns; the model takes 3"),
    ("/v2/models/churn/infer",
     b'{"inputs": [{"name": "age", "shape": [1], "datatype": "FLOAT", "data": [1]}]}',
     "datatype 'FLOAT'"),
])
def test_malformed_requests_get_400(client, path, body, message):
    answer = client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


def test_bodies_over_the_limit_get_413(bundle):
    small = TestClient(create_app(bundle, ServeSettings(max_body_bytes=64)))
    big = json.dumps({"records": ROWS * 10}).encode()
    assert small.post("/predict", content=big).status_code == 413

    def chunks():  # no content-length: the limit is counted while reading
        yield big[:50]
        yield big[50:]

    answer = small.post("/predict", content=chunks())
    assert answer.status_code == 413 and "over 64 bytes" in answer.json()["error"]


def test_a_failing_model_answers_500_and_the_server_keeps_serving(bundle, client, caplog):
    def breaks_on_one_row(method):
        def broken(features):
            if len(features) == 1:
                raise RuntimeError("secret internals")
            return method(features)
        return broken

    bundle.model.predict = breaks_on_one_row(bundle.model.predict)
    bundle.model.predict_proba = breaks_on_one_row(bundle.model.predict_proba)
    answer = client.post("/predict", json={"records": ROWS[:1]})
    assert answer.status_code == 500
    body = answer.json()
    assert "secret" not in answer.text and "Traceback" not in answer.text
    assert body["request_id"] == answer.headers["x-request-id"]
    assert body["request_id"] in caplog.text and "secret internals" in caplog.text
    assert client.post("/predict", json={"records": ROWS}).status_code == 200


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/nope").status_code == 404
    wrong = client.get("/predict")
    assert wrong.status_code == 405 and "GET /predict" in wrong.json()["error"]


def test_metrics_count_requests_latency_errors_and_refusals(client):
    client.post("/predict", json={"records": ROWS})
    client.post("/predict", json={"records": [{"age": 1}]})
    client.post("/predict", content=b"nope")
    client.post("/predict", json={"records": [{"age": 120, "income": 1.0, "plan": "pro"}]})
    text = client.get("/metrics").text
    assert 'nbtrail_requests_total{endpoint="predict",status="200"} 2.0' in text
    assert 'nbtrail_requests_total{endpoint="predict",status="422"} 1.0' in text
    assert 'nbtrail_requests_total{endpoint="predict",status="400"} 1.0' in text
    assert 'nbtrail_validation_failures_total{reason="signature"} 1.0' in text
    assert 'nbtrail_out_of_range_values_total{column="age"} 1.0' in text
    assert 'nbtrail_request_duration_seconds_count{endpoint="predict"} 4.0' in text
    assert "nbtrail_prediction_errors_total 0.0" in text
    assert "nbtrail_predicted_rows_total 3.0" in text


def test_predictions_are_logged_a_line_per_row(client, bundle, tmp_path):
    answer = client.post("/predict", json={"records": ROWS}, headers={"x-request-id": "r-1"})
    client.post("/predict", json={"records": [{"age": 1}]})  # refused: not logged
    files = list((tmp_path / "log").glob("predictions-*.jsonl"))
    assert len(files) == 1
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [line["inputs"] for line in lines] == ROWS
    assert [line["prediction"] for line in lines] == answer.json()["predictions"]
    assert lines[0]["probabilities"] == answer.json()["probabilities"][0]
    assert {line["request_id"] for line in lines} == {"r-1"}
    assert lines[0]["model"] == "churn" and lines[0]["model_id"] == bundle.model_id
    assert lines[0]["model_sha256"] == bundle.sha256
    assert lines[0]["time"].endswith("Z")
