"""Property test: no request body, however malformed, makes the model server answer 5xx.

Hypothesis builds V2 inference requests (JSON and binary tensor data) and /predict bodies
field by field, each field either valid or any JSON value, including what ``json.dumps``
never writes: NaN, ±Infinity, 1e400, integers past Python's 4,300-digit limit, lone
surrogates, nesting deeper than the parser goes. Every answer must be a 2xx, or a 4xx in
the ``{"error": ...}`` shape: from a one-model server, and from one with a shadow and a
canary (any version path, any request key).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from nbtrail.serving import ModelBundle, create_app
from nbtrail.serving._routing import Routed, Routing

COLUMNS = ["age", "income", "plan"]
DATATYPES = ["BOOL", "INT8", "INT32", "INT64", "UINT64", "FP16", "FP32", "FP64", "BYTES"]
# Bounded: each test stays under 30 s on a shared 2-core machine.
PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass(frozen=True)
class Raw:
    """A JSON fragment written as it is."""

    text: str


EDGES = [Raw(t) for t in (
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "-0", "9" * 5000,
    "-" + "9" * 4400, str(2**70), str(-(2**64)), "1" + "0" * 400, '"\\ud800"', '"a\\udfff"',
    "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000,
)]


def dump(value: Any) -> str:
    """JSON text of ``value``, with :class:`Raw` fragments spliced in."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)  # ASCII: lone surrogates are written as \\ud800 escapes


text = st.text(st.characters(codec=None, categories=["L", "N", "P", "Cs", "Cc"]), max_size=6)
scalars = (st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats()
           | text | st.sampled_from(EDGES))
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(text, inner, max_size=3), max_leaves=6)
names = st.sampled_from([*COLUMNS, "input-0", "\ud800"]) | text


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` 11 times in 12, any JSON value otherwise: many requests get far."""
    return st.sampled_from([True] * 11 + [False]).flatmap(lambda ok: valid if ok else anything)


# Values each column takes (the model was trained on these), or anything.
CELLS = {"age": maybe(st.integers(18, 89)), "income": maybe(st.floats(10, 80)),
         "plan": maybe(st.sampled_from(["pro", "basic", "team"]))}


@st.composite
def tensors(draw: st.DrawFn, rows: int, name: str) -> dict[str, Any]:
    if name in CELLS:  # one column: [rows] or [rows, 1]
        width = draw(st.sampled_from([0, 1]))
        data = draw(st.lists(CELLS[name], min_size=rows, max_size=rows))
    else:  # the matrix [rows, 3], in training column order
        width = 3
        data = [draw(CELLS[column]) for _ in range(rows) for column in COLUMNS]
    shape = [rows] if width == 0 else [rows, width]
    nested = [data[i:i + width] for i in range(0, len(data), width)] if width else data
    tensor = {"name": draw(maybe(st.just(name))), "shape": draw(maybe(st.just(shape))),
              "datatype": draw(maybe(st.sampled_from(DATATYPES))),
              "data": draw(maybe(st.sampled_from([data, nested])))}
    if draw(st.integers(0, 3)) == 0:
        tensor["parameters"] = draw(maybe(st.fixed_dictionaries(
            {}, optional={"binary_data_size": maybe(st.integers(0, 64))})))
    return tensor


@st.composite
def v2_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    rows = draw(st.integers(0, 3))
    inputs = [draw(tensors(rows, name)) for name in draw(st.sampled_from(
        [COLUMNS, ["input-0"], COLUMNS[:2], [*COLUMNS, "age"]]))]
    output = st.fixed_dictionaries(
        {"name": maybe(st.sampled_from(["predict", "predict_proba", "nope"]))},
        optional={"parameters": maybe(st.fixed_dictionaries(
            {}, optional={"binary_data": maybe(st.booleans())}))})
    body = draw(st.fixed_dictionaries({"inputs": maybe(st.just(inputs))}, optional={
        "id": maybe(text), "outputs": maybe(st.lists(maybe(output), max_size=3)),
        "parameters": maybe(st.fixed_dictionaries(
            {}, optional={"binary_data_output": maybe(st.booleans())}))}))
    head = dump(draw(maybe(st.just(body)))).encode()
    if draw(st.integers(0, 3)):
        return head, {}
    # Binary tensor data extension: a JSON part, its length in a header, then bytes.
    binary = draw(st.binary(max_size=48))
    length = draw(st.just(str(len(head))) | st.integers(-2, len(head) + 64).map(str)
                  | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=6))
    return head + binary, {"Inference-Header-Content-Length": length}


record = st.fixed_dictionaries({}, optional={**CELLS, **{"\ud800": anything},
                                             "zip": st.text(max_size=3)})
# A canary server picks the answering version by this key (or the X-Request-Key header).
KEY = {"key": maybe(text)}
plain_bodies = maybe(st.one_of(
    st.fixed_dictionaries({"records": maybe(st.lists(maybe(record), max_size=3))},
                          optional=KEY),
    st.fixed_dictionaries({"columns": maybe(st.fixed_dictionaries(
        {}, optional={name: st.lists(cells, max_size=3) for name, cells in CELLS.items()}))},
        optional=KEY),
))
request_keys = st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                   max_size=8)


@pytest.fixture(scope="module", params=["one model", "champion, shadow and canary"])
def client(request, shared_folder):
    bundle = ModelBundle.load(shared_folder, version="1")
    served: ModelBundle | Routing = bundle
    if request.param != "one model":  # the routes and keys only a multi-version server has
        served = Routing([Routed("champion", "1", bundle),
                          Routed("shadow", "2", dataclasses.replace(bundle, version="2")),
                          Routed("canary", "3", dataclasses.replace(bundle, version="3"),
                                 share=0.5)])
    with TestClient(create_app(served), raise_server_exceptions=False) as test_client:
        yield test_client


def _assert_answered(answer) -> None:
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert isinstance(answer.json()["error"], str), answer.text


@PROPERTY
@given(request=v2_requests(), version=st.sampled_from([None, "1", "2", "3", "9"]),
       key=request_keys)
def test_no_v2_request_gets_a_5xx(client, request, version, key):
    body, headers = request
    if key is not None:
        headers = {**headers, "X-Request-Key": key}
    path = (f"/v2/models/churn/versions/{version}/infer" if version is not None
            else "/v2/models/churn/infer")
    _assert_answered(client.post(path, content=body, headers=headers))


@PROPERTY
@given(body=plain_bodies, key=request_keys)
def test_no_predict_body_gets_a_5xx(client, body, key):
    headers = {} if key is None else {"X-Request-Key": key}
    _assert_answered(client.post("/predict", content=dump(body).encode(), headers=headers))
