"""schemathesis over the Open Inference Protocol's REST endpoints: no 5xx, spec-shaped or not,
and each of the spec's reads of the served model (name and version) answers 200.

The spec is vendored as OpenAPI (``open_inference_protocol.yaml``); schemathesis makes
requests that follow it (positive) and that break it field by field (negative), against
the real ASGI app with the model name and version it serves or any others.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbtrail.serving import ModelBundle, create_app

from ..conftest import require

require(importlib.util.find_spec("schemathesis") is not None,
        "schemathesis is not installed (it is in the test extra)")

import schemathesis  # noqa: E402

SPEC = schemathesis.openapi.from_path(Path(__file__).with_name("open_inference_protocol.yaml"))
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
# Every operation with requests that follow the spec; those with a body also with requests
# that break it (a GET's string path parameters have no invalid values to make).
CASES = [(path, method.upper(), mode) for path, methods in SPEC.items()
         for method in methods if method in ("get", "post")
         for mode in ((POSITIVE, NEGATIVE) if method == "post" else (POSITIVE,))]


@pytest.fixture(scope="module")
def app(shared_folder):
    return create_app(ModelBundle.load(shared_folder))


@pytest.mark.parametrize(("path", "method", "mode"), CASES)
def test_spec_requests_get_no_5xx_and_reads_of_the_model_200(app, path, method, mode):
    bundle = app.state.bundle
    operation = SPEC[path][method]
    # Half the cases name the served model and version, so inference reaches the model.
    served = {"model_name": bundle.name, "model_version": bundle.version}
    names = [n for n in ("model_name", "model_version") if f"{{{n}}}" in path]
    strategy = st.one_of(
        operation.as_strategy(generation_mode=mode,
                              path_parameters={n: served[n] for n in names}),
        operation.as_strategy(generation_mode=mode))

    @settings(max_examples=40 if method == "POST" else 10, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case):
        answer = case.call(app=app)
        assert answer.status_code < 500, answer.text
        if method == "GET" and all((case.path_parameters or {}).get(n) == served[n]
                                   for n in names):
            assert answer.status_code == 200, answer.text  # every read of the served model
        if answer.status_code >= 400:
            assert isinstance(answer.json()["error"], str), answer.text

    check()
