"""tritonclient, unchanged, against the image's entry point on loopback: metadata, readiness
and inference with a model version, in its default binary mode and in JSON."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from nbtrail.serving import ModelBundle

from ..conftest import SRC, free_port, require, stop

require(importlib.util.find_spec("tritonclient") is not None
        and importlib.util.find_spec("geventhttpclient") is not None,
        "tritonclient[http] is not installed (it is in the test extra)")

import tritonclient.http as httpclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

AGES, INCOMES, PLANS = [30, 61, 45], [55.0, 41.5, 60.25], ["pro", "basic", "team"]


@pytest.fixture(scope="module")
def server(shared_folder):
    """``python -m nbtrail.serving FOLDER`` (the image's command) on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "nbtrail.serving", str(shared_folder), "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {process.stdout.read()}")
            try:
                if client.is_server_ready():
                    break
            except (OSError, InferenceServerException):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the server was not ready in 60 s")
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        stop(process)


@pytest.fixture(scope="module")
def model(shared_folder):
    return ModelBundle.load(shared_folder)


def _inputs(binary: bool) -> list[httpclient.InferInput]:
    columns = [("age", "INT64", np.array(AGES, dtype=np.int64)),
               ("income", "FP64", np.array(INCOMES, dtype=np.float64)),
               ("plan", "BYTES", np.array([p.encode() for p in PLANS], dtype=np.object_))]
    inputs = []
    for name, datatype, values in columns:
        tensor = httpclient.InferInput(name, list(values.shape), datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


def _expected(model):
    import pandas as pd

    frame = pd.DataFrame({"age": AGES, "income": INCOMES, "plan": PLANS})
    return model.model.predict(frame), model.model.predict_proba(frame)


def test_server_metadata_lists_the_binary_extension(server):
    metadata = server.get_server_metadata()
    assert metadata["name"] == "nbtrail"
    assert "binary_tensor_data" in metadata["extensions"]
    assert server.is_server_live()


def test_model_metadata_and_readiness_with_a_version(server, model):
    metadata = server.get_model_metadata("churn", model_version=model.version)
    assert metadata["versions"] == [model.version]
    assert metadata["platform"] == "sklearn_skops"
    assert [i["name"] for i in metadata["inputs"]] == ["age", "income", "plan"]
    assert server.is_model_ready("churn", model_version=model.version)
    assert not server.is_model_ready("churn", model_version="v-nope")
    with pytest.raises(InferenceServerException, match="no version 'v-nope'"):
        server.get_model_metadata("churn", model_version="v-nope")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_in_binary_and_json_mode(server, model, binary):
    predictions, probabilities = _expected(model)
    # No outputs named: tritonclient asks for every output as binary data.
    result = server.infer("churn", _inputs(binary), model_version=model.version,
                          request_id="r-1")
    assert result.get_response()["id"] == "r-1"
    np.testing.assert_array_equal(result.as_numpy("predict"), predictions)
    np.testing.assert_allclose(result.as_numpy("predict_proba"), probabilities)

    outputs = [httpclient.InferRequestedOutput("predict_proba", binary_data=binary)]
    only = server.infer("churn", _inputs(binary), outputs=outputs)
    assert [o["name"] for o in only.get_response()["outputs"]] == ["predict_proba"]
    assert ("parameters" in only.get_output("predict_proba")) is binary
    np.testing.assert_allclose(only.as_numpy("predict_proba"), probabilities)


def test_refusals_reach_tritonclient_as_messages(server, model):
    inputs = _inputs(True)[:2]  # no plan
    with pytest.raises(InferenceServerException, match="does not match the model's signature"):
        server.infer("churn", inputs)
    outputs = [httpclient.InferRequestedOutput("scores")]
    with pytest.raises(InferenceServerException, match="no output 'scores'"):
        server.infer("churn", _inputs(True), outputs=outputs)
