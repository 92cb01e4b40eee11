"""The live view of a package and its Promote-challenger action through a real Jupyter server.

The package is ``tests/_serving.py``'s: churn/1 answers, churn/2 shadows, ten logged rows.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from nbtrail.registry import _api
from nbtrail.store import Store, open_store

from .._serving import serve_shadow
from .conftest import NamedLogin, ReadOnly

pytestmark = pytest.mark.parametrize("identity_provider", [NamedLogin])


@pytest.fixture
def store_path(tmp_path, demo_store):
    return shutil.copytree(demo_store, tmp_path / "store")


@dataclass
class Served:
    store: Store
    package_id: str
    log: Path


@pytest.fixture
def served(store_path, tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRAIL_USER", "alice")
    store = open_store(store_path)
    try:
        package_id, log = serve_shadow(store, tmp_path)
        yield Served(store, package_id, log)
    finally:
        store.close()


async def test_the_packages_and_a_package_live_view(api, served):
    status, body = await api("packages")
    assert status == 200
    assert [(p["package_id"], p["name"]) for p in body] == [(served.package_id, "churn")]
    status, view = await api("packages", served.package_id, "traffic", every="5")
    assert status == 200, view
    assert [(v["role"], v["version"], v["ref"]) for v in view["versions"]] == [
        ("champion", "1", "churn/1"), ("shadow", "2", "churn/2")]
    assert view["log_dirs"] == [str(served.log)] and view["lines_read"] == 10
    assert [(b["time"], b["version"], b["rows"]) for b in view["timeline"]] == [
        ("2026-12-03T10:00:00Z", "1", 5), ("2026-12-03T10:00:00Z", "2", 5),
        ("2026-12-03T10:00:05Z", "1", 5), ("2026-12-03T10:00:05Z", "2", 5)]
    shadow = next(t for t in view["totals"] if t["version"] == "2")
    assert (shadow["rows"], shadow["answered"], shadow["agreement"]) == (10, 0, 0.7)
    assert view["challenge"] is None


async def test_promote_challenger_opens_a_request_for_the_logged_in_user(api, served):
    status, body = await api("packages", served.package_id, "promote", method="POST",
                             body={"note": "agrees mostly"})
    assert status == 201, body
    assert (body["ref"], body["alias"], body["requested_by"]) == ("churn/2", "champion", "carol")
    assert body["status"] == "pending" and [c["check"] for c in body["checks"]] == ["size"]
    assert body["note"].startswith("agrees mostly; package churn traffic: version 2 predicted")
    (entry,) = _api.audit(served.store, "churn").filter(event="promotion_requested").rows(
        named=True)
    assert entry["actor"] == "carol"  # the embedded store records whom the server acts for
    status, again = await api("packages", served.package_id, "promote", method="POST", body={})
    assert status == 409 and "already has an open request" in again["message"]


@pytest.mark.parametrize(("path", "method", "body", "status", "words"), [
    (("pkg_nope", "traffic"), "GET", None, 404, "no package 'pkg_nope'"),
    (("nope", "traffic"), "GET", None, 400, "a package id is pkg_"),
    (("pkg_" + "x" * 60, "traffic"), "GET", None, 400, "a package id is pkg_"),
    (("pkg_nope", "promote"), "POST", {}, 404, "no package 'pkg_nope'"),
    ((None, "promote"), "POST", {"version": "9"}, 400, "no challenger '9'"),
    ((None, "promote"), "POST", {"version": 2}, 400, '"version" must be a string'),
    ((None, "promote"), "POST", {"colour": "red"}, 400, "unknown field(s) colour"),
    ((None, "promote"), "POST", {"alias": "Bad Alias"}, 400, "alias"),
])
async def test_bad_requests_are_one_line(api, served, path, method, body, status, words):
    parts = (path[0] or served.package_id, path[1])
    got, reply = await api("packages", *parts, method=method, body=body)
    assert got == status, reply
    assert words in reply["message"] and "\n" not in reply["message"]


async def test_every_bucket_width_is_checked(api, served):
    status, body = await api("packages", served.package_id, "traffic", every="0")
    assert status == 400 and "every" in body["message"]


async def test_without_login_nothing_is_read_or_requested(api, served):
    anonymous = {"Authorization": "", "Cookie": "_xsrf=abc"}
    for parts, method, body in ((("packages",), "GET", None),
                                (("packages", served.package_id, "traffic"), "GET", None),
                                (("packages", served.package_id, "promote"), "POST", {})):
        status, _ = await api(*parts, method=method, body=body, headers=anonymous)
        assert status == 403, parts
    assert _api.promotion_requests(served.store).is_empty()


@pytest.mark.parametrize("authorizer", [ReadOnly])
async def test_a_read_only_user_sees_the_view_but_cannot_promote(api, served):
    status, _ = await api("packages", served.package_id, "traffic")
    assert status == 200
    status, body = await api("packages", served.package_id, "promote", method="POST", body={})
    assert status == 403 and "not authorized to write" in body["message"]
    assert _api.promotion_requests(served.store).is_empty()
