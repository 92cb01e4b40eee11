"""The model server in-process: every endpoint, every error, both V2 tensor layouts."""

from __future__ import annotations

import json
import re

import pytest
from starlette.testclient import TestClient

from nbtrail.serving import ModelBundle, ServeSettings, create_app

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


_GOOD = [{"name": "age", "shape": [1], "datatype": "INT64", "data": [30]},
         {"name": "income", "shape": [1], "datatype": "FP64", "data": [55.0]},
         {"name": "plan", "shape": [1], "datatype": "BYTES", "data": ["pro"]}]


def _v2(fields: str, inputs: list | None = None) -> str:
    """A V2 request body: raw JSON ``fields`` (NaN and the like stay as written)."""
    return f'{{{fields}"inputs": {json.dumps(_GOOD if inputs is None else inputs)}}}'


@pytest.fixture(scope="module")
def shared(shared_folder):
    """A client of a model that the tests using it do not change."""
    with TestClient(create_app(ModelBundle.load(shared_folder)),
                    raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize(("body", "message"), [
    (_v2('"outputs": 3, '), "'outputs' must be a list of objects, got a number"),
    (_v2('"outputs": [1], '), "outputs[0] must be a JSON object"),
    (_v2('"outputs": [{"name": "scores"}], '),
     "no output 'scores'; it has predict, predict_proba"),
    (_v2('"outputs": [{"name": "predict"}, {"name": "predict"}], '),
     "output 'predict' is asked for twice"),
    (_v2('"outputs": [{"name": "predict", "parameters": []}], '),
     "output 'predict' 'parameters' must be a JSON object"),
    (_v2("", [_GOOD[0] | {"datatype": {}}]), "datatype {}"),
    (_v2('"id": NaN, '), "'id' must be a string"),
    (_v2('"id": 5, '), "'id' must be a string"),
    (_v2('"id": "\\ud800", '), "'id' must be a string of valid Unicode text, got '\\ud800'"),
    (_v2('"parameters": 5, '), "'parameters' must be a JSON object"),
    (_v2('"parameters": {"binary_data_output": "yes"}, '),
     "'binary_data_output' must be true or false"),
    (_v2("", [*_GOOD, _GOOD[0]]), "input 'age' is given twice"),
    (_v2("", [_GOOD[0] | {"data": [[[30]]]}]), "nested deeper than its shape [1]"),
    (_v2("", [_GOOD[0] | {"name": "\udc00"}]), "'name' must be a string of valid Unicode"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (_v2("", [_GOOD[0] | {"shape": [10**100]}]).replace("1" + "0" * 100, "9" * 5000),
     "'shape' list of non-negative integers"),
])
def test_malformed_v2_requests_get_400_naming_the_field(shared, body, message):
    answer = shared.post("/v2/models/churn/infer", content=body.encode(),
                         headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


@pytest.mark.parametrize(("row", "field", "problem"), [
    (("9" * 5000, "1.0", '"pro"'), "age",
     "expected an integer, got an integer of 5000 digits (row 0)"),
    (("30", "1" + "0" * 400, '"pro"'), "income", "expected a finite 64-bit float, got 1000"),
    (("30", "Infinity", '"pro"'), "income", "expected a finite 64-bit float, got inf (row 0)"),
    (("30", "-Infinity", '"pro"'), "income", "expected a finite 64-bit float, got -inf"),
    (("30", "1e400", '"pro"'), "income", "got inf (row 0)"),
    ((str(2**70), "1.0", '"pro"'), "age",
     "expected a 64-bit integer, got 1180591620717411303424 (row 0)"),
    (("1e300", "1.0", '"pro"'), "age", "expected a 64-bit integer, got 1e+300 (row 0)"),
    (("NaN", "1.0", '"pro"'), "age", "null where training data had none (row 0)"),
    (("30", "1.0", '"\\ud800"'), "plan", "expected a string, got '\\ud800' (row 0)"),
    (("30", "1.0", '{"a": 1}'), "plan", "expected a string, got {'a': 1} (row 0)"),
])
def test_values_no_column_can_hold_get_422_naming_field_and_rows(shared, row, field, problem):
    record = ", ".join(f'"{name}": {value}' for name, value in
                       zip(("age", "income", "plan"), row, strict=True))
    matrix = [{"name": "m", "shape": [1, 3], "datatype": "BYTES", "data": [0, 0, 0]}]
    v2 = _v2("", matrix).replace("[0, 0, 0]", f"[{', '.join(row)}]")
    for path, body in (("/predict", f'{{"records": [{{{record}}}]}}'),
                       ("/v2/models/churn/infer", v2)):
        answer = shared.post(path, content=body.encode(),
                             headers={"content-type": "application/json"})
        assert answer.status_code == 422, (path, answer.text)
        found = {p["field"]: p["problem"] for p in answer.json()["problems"]}
        assert problem in found[field], (path, found)


def test_a_column_name_that_is_not_unicode_is_quoted_back(shared):
    body = '{"records": [{"age": 30, "income": 1.0, "plan": "pro", "\\ud800": 1}]}'
    answer = shared.post("/predict", content=body.encode())
    assert answer.status_code == 422
    assert '"field":"\\ud800"' in answer.text  # escaped: the body is valid UTF-8 JSON
    assert answer.json()["problems"][0]["problem"].startswith("unknown column")


def test_no_rows_is_said_so(shared):
    for path, body in (("/predict", {"records": []}), ("/predict", {"columns": {}}),
                       ("/v2/models/churn/infer", {"inputs": [
                           {"name": "x", "shape": [0, 3], "datatype": "FP64", "data": []}]})):
        answer = shared.post(path, json=body)
        assert answer.status_code == 422
        assert answer.json()["problems"] == [{"field": "*", "problem": "no rows to predict"}]


def test_v2_versions_routes_server_metadata_and_platform(shared):
    version = shared.app.state.bundle.version
    meta = shared.get(f"/v2/models/churn/versions/{version}")
    assert meta.status_code == 200 and meta.json() == shared.get("/v2/models/churn").json()
    assert meta.json()["platform"] == "sklearn_skops"
    assert shared.get(f"/v2/models/churn/versions/{version}/ready").json() == {
        "name": "churn", "ready": True}
    for path in ("/v2/models/churn/versions/v9", "/v2/models/churn/versions/v9/ready"):
        answer = shared.get(path)
        assert answer.status_code == 404 and "no version 'v9'" in answer.json()["error"]
    for path in ("/v2", "/v2/"):
        answer = shared.get(path, follow_redirects=False)
        assert answer.status_code == 200, path
        assert answer.json()["extensions"] == ["binary_tensor_data"]


def _binary_body(tensors, raw, **fields):
    """A body of the binary tensor data extension: JSON part, then raw bytes."""
    head = json.dumps({"inputs": tensors, **fields}).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head))}


def _binary_input(name, datatype, size, rows=2):
    return {"name": name, "shape": [rows], "datatype": datatype,
            "parameters": {"binary_data_size": size}}


def test_binary_tensor_data_in_and_out(shared):
    import numpy as np

    predictions, probabilities = _expected(shared.app.state.bundle)
    ages = np.array([r["age"] for r in ROWS], "<i8").tobytes()
    incomes = np.array([r["income"] for r in ROWS], "<f8").tobytes()
    # BYTES: each element's 4-byte little-endian length, then its UTF-8 text.
    plans = b"".join(len(r["plan"]).to_bytes(4, "little") + r["plan"].encode() for r in ROWS)
    body, headers = _binary_body(
        [_binary_input("age", "INT64", 16), _binary_input("income", "FP64", 16),
         _binary_input("plan", "BYTES", len(plans))], ages + incomes + plans,
        outputs=[{"name": "predict", "parameters": {"binary_data": True}},
                 {"name": "predict_proba"}])
    answer = shared.post("/v2/models/churn/infer", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    length = int(answer.headers["inference-header-content-length"])
    predict, proba = json.loads(answer.content[:length])["outputs"]
    assert predict["parameters"] == {"binary_data_size": 16} and "data" not in predict
    assert np.frombuffer(answer.content[length:], "<i8").tolist() == predictions
    assert proba["data"] == [p for row in probabilities for p in row]  # asked as JSON


@pytest.mark.parametrize(("header", "size", "extra", "message"), [
    ("abc", 8, b"", "header must be the length of the JSON part"),
    ("99999", 8, b"", "header must be the length of the JSON part"),
    (None, 8, b"\x00" * 3, "3 bytes of binary data that no input"),
    (None, 16, b"", "binary_data_size 16; the body has 8 bytes"),
    (None, 7, b"\x00", "input 'age' has 7 bytes of binary data; its shape and INT64 need 8"),
])
def test_broken_binary_bodies_get_400(shared, header, size, extra, message):
    body, headers = _binary_body([_binary_input("age", "INT64", size, rows=1)],
                                 (1).to_bytes(8, "little") + extra)
    if header is not None:
        headers["Inference-Header-Content-Length"] = header
    answer = shared.post("/v2/models/churn/infer", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


def test_compressed_bodies_are_refused_with_the_fix(shared):
    answer = shared.post("/predict", content=b"\x1f\x8b", headers={"content-encoding": "gzip"})
    assert answer.status_code == 415 and "send them uncompressed" in answer.json()["error"]


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
