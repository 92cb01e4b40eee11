"""The registry's REST handlers through a real Jupyter server: list, register, approve, reject.

The test process seeds the store as ``alice`` (``NBTRAIL_USER``); the server's login names
its user ``carol``, as JupyterHub's does, unless a test logs in with Jupyter's own shared
token, which names nobody.
"""

import shutil
from dataclasses import dataclass

import pytest
from jupyter_server.auth.identity import PasswordIdentityProvider

from nbtrail.registry import _api
from nbtrail.store import Store, open_store

from .conftest import NamedLogin, ReadOnly


@pytest.fixture
def identity_provider():
    return NamedLogin


@pytest.fixture
def store_path(tmp_path, demo_store):
    """A copy of the demo store: these tests write to it."""
    return shutil.copytree(demo_store, tmp_path / "store")


@dataclass
class Seeded:
    """The store as the test process sees it, its runs by name and alice's request."""

    store: Store
    runs: dict[str, str]
    request_id: int


@pytest.fixture
def seeded(store_path, monkeypatch):
    """churn/1 @champion and churn/2, and a pending request by alice to move @champion to
    version 2 (its policy checks size and latency; someone else must approve)."""
    monkeypatch.setenv("NBTRAIL_USER", "alice")
    store = open_store(store_path)
    try:
        runs = dict(store.runs().select("name", "run_id").rows())
        _api.register(store, runs["baseline"], name="churn", description="Churn risk")
        _api.register(store, runs["strong-reg"], name="churn")
        _api.set_alias(store, "churn", "champion", 1)
        _api.set_policy(store, "churn", "champion", {"max_size_mb": 50, "max_latency_ms": 5000})
        request = _api.request_promotion(store, "churn", version=2, alias="champion",
                                         note="less overfit")
        assert request.status == "pending", request
        yield Seeded(store, runs, request.request_id)
    finally:
        store.close()


def champion(store) -> int:
    return _api.version(store, "churn@champion").version


async def test_the_registry_lists_models_versions_and_open_requests(api, seeded):
    status, body = await api("registry")
    assert status == 200, body
    (model,) = body["models"]
    assert model["name"] == "churn" and model["description"] == "Churn risk"
    assert model["aliases"] == {"champion": 1} and model["pending_requests"] == 1
    first, second = model["versions"]
    assert (first["ref"], second["ref"]) == ("churn/1", "churn/2")
    assert first["aliases"] == ["champion"] and second["aliases"] == []
    assert first["run_id"] == seeded.runs["baseline"]
    assert first["model_id"].startswith("mdl_") and first["registered_by"] == "alice"
    assert first["metrics"]["val_f1"] == pytest.approx(0.6667)
    (request,) = body["requests"]
    assert request["request_id"] == seeded.request_id and request["ref"] == "churn/2"
    assert request["status"] == "pending" and request["requested_by"] == "alice"
    assert request["alias"] == "champion" and request["holder"] == 1
    assert request["note"] == "less overfit"
    assert [(c["check"], c["passed"]) for c in request["checks"]] == [("latency", True),
                                                                     ("size", True)]
    assert "MB (limit 50 MB)" in request["checks"][1]["detail"]
    assert set(request["checks"][1]) == {"check", "passed", "detail", "evidence"}
    assert request["checks"][1]["evidence"]["size_bytes"] > 0


async def test_the_logged_in_user_approves_a_request_of_another_and_the_alias_moves(api, seeded):
    status, body = await api("registry", "requests", str(seeded.request_id), "approve",
                             method="POST", body={"note": "reviewed the checks"})
    assert status == 200, body
    assert body["status"] == "approved" and body["decided_by"] == "carol"
    assert body["decision_note"] == "reviewed the checks"
    assert champion(seeded.store) == 2
    last = _api.audit(seeded.store, "churn").tail(2).rows(named=True)
    assert [(e["event"], e["actor"], e["actor_source"]) for e in last] == [
        ("approved", "carol", "jupyter user"), ("alias_set", "carol", "jupyter user")]
    status, body = await api("registry")
    assert body["requests"] == [] and body["models"][0]["aliases"] == {"champion": 2}


async def test_the_requester_may_not_approve_their_own_request(api, seeded):
    request = _api.request_promotion(seeded.store, "churn", version=2, alias="staging",
                                     on_behalf_of="carol")
    assert request.status == "approved"  # no policy on @staging: it moves at once
    _api.set_policy(seeded.store, "churn", "prod", {"max_size_mb": 50})
    request = _api.request_promotion(seeded.store, "churn", version=2, alias="prod",
                                     on_behalf_of="carol")
    status, body = await api("registry", "requests", str(request.request_id), "approve",
                             method="POST", body={"note": None})
    assert status == 403, body
    assert body["error"] == "ApprovalError" and "\n" not in body["message"]
    assert body["message"].startswith(f"carol may not approve request #{request.request_id}")
    assert "four eyes" in body["message"] and "Traceback" not in body["message"]
    assert _api.promotion_request(seeded.store, request.request_id).status == "pending"


async def test_a_decided_request_cannot_be_decided_again(api, seeded):
    path = ("registry", "requests", str(seeded.request_id))
    status, body = await api(*path, "reject", method="POST", body={"note": "not yet"})
    assert status == 200, body
    assert body["status"] == "rejected" and body["decided_by"] == "carol"
    status, body = await api(*path, "approve", method="POST", body={})
    assert status == 403, body
    assert f"request #{seeded.request_id}" in body["message"]
    assert "is already rejected by carol" in body["message"]
    assert champion(seeded.store) == 1


async def test_an_unknown_or_malformed_request_id(api, seeded):
    status, body = await api("registry", "requests", "99999", "approve", method="POST", body={})
    assert status == 404 and "no promotion request #99999" in body["message"], body
    for bad in ("twelve", "9" * 5000, "-1"):
        status, body = await api("registry", "requests", bad, "reject", method="POST", body={})
        assert status == 400, body
        assert "a promotion request id is a number" in body["message"]
        assert len(body["message"]) < 200


@pytest.mark.parametrize(("body", "words"), [
    ("not json", "not JSON"),
    ([1, 2], "JSON object"),
    ({"note": 5}, '"note" must be a string or null, got int'),
    ({"note": ["x"] * 10}, '"note" must be a string or null, got list'),
    ({"note": "ok", "approver": "root"}, "unknown field(s) approver; known: note"),
])
async def test_a_malformed_decision_body_is_a_400_and_decides_nothing(api, seeded, body, words):
    status, reply = await api("registry", "requests", str(seeded.request_id), "approve",
                              method="POST", body=body)
    assert status == 400, reply
    assert words in reply["message"]
    assert _api.promotion_request(seeded.store, seeded.request_id).status == "pending"


async def test_register_a_runs_model_as_the_next_version(api, seeded):
    body = {"run_id": seeded.runs["more-trees"], "name": "churn", "description": None}
    status, version = await api("registry", "register", method="POST", body=body)
    assert status == 201, version
    assert version["ref"] == "churn/3" and version["registered_by"] == "carol"
    assert version["run_id"] == seeded.runs["more-trees"]
    assert version["aliases"] == [] and version["metrics"]["val_f1"] == pytest.approx(1.0)
    assert _api.version(seeded.store, "churn/3").model_id == version["model_id"]


@pytest.mark.parametrize(("body", "status", "words"), [
    ({}, 400, 'the body needs "run_id": a non-empty string, got nothing'),
    ({"run_id": " ", "name": "churn"}, 400, 'the body needs "run_id"'),
    ({"run_id": "baseline"}, 400, 'the body needs "name"'),
    ({"run_id": "baseline", "name": "churn", "description": 3}, 400, '"description" must be'),
    ({"run_id": "baseline", "name": "churn", "tags": {}}, 400, "unknown field(s) tags"),
    ({"run_id": "baseline", "name": "no spaces"}, 400, "'no spaces' is not usable"),
    ({"run_id": "crashed", "name": "churn"}, 400, "logged no model"),
    ({"run_id": "01NOSUCHRUN", "name": "churn"}, 404, "no run"),
])
async def test_a_malformed_register_body_is_refused_with_a_message(api, seeded, body, status,
                                                                   words):
    if body.get("run_id") in seeded.runs:
        body = {**body, "run_id": seeded.runs[body["run_id"]]}
    got, reply = await api("registry", "register", method="POST", body=body)
    assert got == status, reply
    assert words in reply["message"]
    assert len(_api.model_versions(seeded.store, "churn")) == 2


async def test_requests_without_login_are_refused(api, seeded):
    anonymous = {"Authorization": "", "Cookie": "_xsrf=abc"}
    status, _ = await api("registry", headers=anonymous)
    assert status == 403
    for path, body in ((("requests", str(seeded.request_id), "approve"), {}),
                       (("register",), {"run_id": seeded.runs["more-trees"],
                                        "name": "churn"})):
        status, _ = await api("registry", *path, method="POST", body=body, headers=anonymous)
        assert status == 403, path
    assert champion(seeded.store) == 1 and len(_api.model_versions(seeded.store, "churn")) == 2


@pytest.mark.parametrize("authorizer", [ReadOnly])
async def test_a_user_jupyter_lets_read_only_cannot_decide(api, seeded):
    status, body = await api("registry")
    assert status == 200 and body["requests"], body
    status, body = await api("registry", "requests", str(seeded.request_id), "approve",
                             method="POST", body={})
    assert status == 403, body
    assert "not authorized to write on resource: nbtrail" in body["message"]
    assert champion(seeded.store) == 1


@pytest.mark.parametrize("identity_provider", [PasswordIdentityProvider])
async def test_behind_a_shared_token_the_server_acts_as_its_own_user(api, seeded, monkeypatch):
    # The token names nobody: the server acts as who runs it. Here that is alice, who made
    # the request (the in-process server shares the test's NBTRAIL_USER), so four eyes
    # refuse, whatever session id the token's browser got.
    path = ("registry", "requests", str(seeded.request_id), "approve")
    status, body = await api(*path, method="POST", body={})
    assert status == 403, body
    assert body["message"].startswith("alice may not approve")
    monkeypatch.setenv("NBTRAIL_USER", "bob")  # the server run by someone else
    status, body = await api(*path, method="POST", body={})
    assert status == 200, body
    assert body["decided_by"] == "bob" and champion(seeded.store) == 2
    (entry,) = _api.audit(seeded.store, "churn").filter(event="approved").rows(named=True)
    assert entry["actor_source"] == "NBTRAIL_USER"
