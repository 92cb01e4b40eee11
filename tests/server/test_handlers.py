"""Every REST handler of the server extension, through a real Jupyter server (pytest-jupyter)."""

import duckdb
import pytest
from jupyter_server.auth import authorized
from tornado import web

from nbtrail.server._routes import ROUTES

from .conftest import build_demo, quoted


async def runs_by_name(api, **params):
    status, body = await api("runs", limit="1000", **params)
    assert status == 200, body
    return {r["name"]: r for r in body["runs"]}


async def test_store_info_names_the_configured_store(api, demo_store, jp_root_dir):
    status, body = await api("store")
    assert status == 200
    assert body["location"] == str(demo_store) and body["exists"] is True
    assert body["root_dir"] == str(jp_root_dir.resolve())


async def test_runs_filter_order_page_and_columns(api):
    status, body = await api("runs", where="metrics.val_f1 > 0.5 and params.solver = 'lbfgs'",
                             order_by="-metrics.val_f1", columns="metrics.val_f1,params.C")
    assert status == 200, body
    assert [r["name"] for r in body["runs"]] == ["more-trees", "baseline"]
    assert body["total"] == 2
    first = body["runs"][0]
    assert first["values"] == {"metrics.val_f1": 1.0, "params.C": 3.0}
    assert first["branch"] == "feat/more-trees" and first["status"] == "finished"
    assert "val_f1" in body["keys"]["metrics"] and "C" in body["keys"]["params"]

    status, page = await api("runs", limit="3", offset="3", order_by="name")
    assert status == 200
    assert page["total"] == 10 and len(page["runs"]) == 3
    status, everything = await api("runs", order_by="name")
    assert [r["name"] for r in page["runs"]] == [r["name"] for r in everything["runs"]][3:6]

    status, body = await api("runs", experiment="feat/more-trees")
    assert [r["name"] for r in body["runs"]] == ["more-trees"]


@pytest.mark.parametrize(("params", "words"), [
    ({"where": "metrics.acc >"}, "filter"),
    ({"where": "params.C = 'unterminated"}, "unterminated"),
    ({"order_by": "-"}, "order"),
    ({"limit": "ten"}, "limit must be an integer"),
    ({"limit": "-1"}, "limit must be between"),
    ({"limit": "100000"}, "limit must be between"),
    ({"offset": "1.5"}, "offset must be an integer"),
    ({"columns": "acc"}, "columns must be"),
])
async def test_malformed_runs_arguments_get_400_with_a_message(api, params, words):
    status, body = await api("runs", **params)
    assert status == 400, body
    assert words in body["message"]


async def test_one_run_has_everything_the_panel_shows(api):
    baseline = (await runs_by_name(api))["baseline"]
    status, body = await api("runs", baseline["run_id"])
    assert status == 200, body
    run = body["run"]
    assert run["params"] == {"C": 1.0, "solver": "lbfgs"}
    assert run["metrics"]["loss"] == pytest.approx(0.38)
    assert body["histories"]["loss"]["points"] == [[0, 0.9], [1, 0.6], [2, 0.45], [3, 0.4],
                                                   [4, 0.38]]
    (dataset,) = run["datasets"]
    assert dataset["name"] == "customers" and dataset["n_rows"] == 300
    assert "age" in str(dataset["stats"])
    assert [a["name"] for a in run["artifacts"]] == ["notes.txt"]
    assert run["git"]["branch"] == "main" and run["git"]["snapshot"]
    assert run["env"]["python"]
    assert "cells" not in (run["code"] or {})
    kinds = {n["kind"] for n in body["lineage"]["nodes"]}
    assert {"run", "dataset", "model"} <= kinds
    # A unique prefix works as in nt.get_run.
    status, short = await api("runs", baseline["run_id"][:12])
    assert status == 200 and short["run"]["run_id"] == baseline["run_id"]


async def test_unknown_run_metric_and_node_are_404_with_the_reason(api):
    status, body = await api("runs", "01NOSUCHRUN0000000000000000")
    assert status == 404 and "no run" in body["message"]
    baseline = (await runs_by_name(api))["baseline"]
    status, body = await api("runs", baseline["run_id"], "metrics", "nope")
    assert status == 404 and "its metrics: loss, val_f1" in body["message"]
    status, body = await api("lineage", "mdl_nothing")
    assert status == 404 and "mdl_nothing" in body["message"]


async def test_metric_history_and_lineage(api):
    baseline = (await runs_by_name(api))["baseline"]
    status, body = await api("runs", baseline["run_id"], "metrics", "loss")
    assert status == 200
    assert body["columns"] == ["step", "value", "timestamp"] and len(body["rows"]) == 5
    status, body = await api("lineage", baseline["run_id"], direction="down", depth="2")
    assert status == 200 and body["direction"] == "down"
    assert any(e["relation"] for e in body["edges"])
    status, body = await api("lineage", baseline["run_id"], direction="sideways")
    assert status == 400 and "direction must be one of" in body["message"]


async def test_artifact_download_serves_the_stored_bytes(api, jp_fetch):
    baseline = (await runs_by_name(api))["baseline"]
    response = await jp_fetch("nbtrail", "api", "runs", baseline["run_id"], "artifacts",
                              "notes.txt")
    assert response.body == b"baseline: C=1.0\n"
    assert "attachment" in response.headers["Content-Disposition"]


async def test_a_path_outside_the_store_is_refused(api, jp_fetch, demo_store):
    baseline = (await runs_by_name(api))["baseline"]
    run_id = baseline["run_id"]
    for name in ("../../../../etc/passwd", quoted("../../../../etc/passwd"), "/etc/passwd"):
        status, body = await api("runs", run_id, "artifacts", name)
        assert status in (403, 404), (name, status)
        assert b"root:" not in str(body).encode()
    status, body = await api("runs", store="/etc")
    assert status == 404 and "no nbtrail store at /etc" in body["message"]


async def test_a_blob_linked_outside_the_store_is_refused(tmp_path, api):
    store = build_demo(tmp_path / "copy")  # a store of its own: the demo store stays intact
    con = duckdb.connect(str(store / "nbtrail.duckdb"), read_only=True)
    ((run_id, sha),) = con.execute(
        "SELECT a.run_id, a.sha256 FROM artifacts a JOIN runs r USING (run_id) "
        "WHERE r.name = 'baseline'").fetchall()
    con.close()
    blob = store / "artifacts" / "sha256" / sha[:2] / sha
    blob.unlink()
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the browser")
    blob.symlink_to(secret)
    status, body = await api("runs", run_id, "artifacts", "notes.txt", store=str(store))
    assert status == 403, body
    assert "outside the store" in body["message"]


async def test_experiment_tree_and_branches(api):
    status, tree = await api("experiments")
    assert status == 200
    by_name = {e["experiment"]: e for e in tree}
    assert by_name["main"]["runs"] == 9 and by_name["feat/more-trees"]["runs"] == 1
    assert by_name["main"]["branches"][0]["branch"] == "main"
    status, body = await api("branches", metric="val_f1")
    assert status == 200
    assert body["columns"][:3] == ["branch", "runs", "best_val_f1"]
    rows = {r[0]: r for r in body["rows"]}
    assert set(rows) == {"main", "feat/more-trees"}
    status, body = await api("branches", mode="median")
    assert status == 400 and "mode must be one of max, min" in body["message"]


async def test_compare_runs_and_branches(api):
    runs = await runs_by_name(api)
    ids = f"{runs['baseline']['run_id']},{runs['strong-reg']['run_id']}"
    status, body = await api("compare", runs=ids)
    assert status == 200, body
    assert body["labels"] == ["baseline", "strong-reg"]
    params = {row[0]: row for row in body["params"]["rows"]}
    assert params["C"][1:] == ["1.0", "0.1", True]
    assert set(body["curves"]["loss"]) == {"baseline", "strong-reg"}

    status, body = await api("compare", branches="main,feat/more-trees", metric="val_f1",
                             latency="true")
    assert status == 200, body
    assert body["labels"] == ["main", "feat/more-trees"]
    assert body["runs"]["rows"][1][1] == runs["more-trees"]["run_id"]
    production = dict(zip(body["production"]["columns"], body["production"]["rows"][0],
                          strict=True))
    assert production["model"] == "churn" and production["size_bytes"] > 0
    assert body["code"]["rows"], "the code diff between the branches' snapshots"


@pytest.mark.parametrize(("params", "words"), [
    ({}, "exactly one of runs=, branches= or experiments="),
    ({"runs": "a,b", "branches": "main,x"}, "exactly one of"),
    ({"branches": "main"}, "at least two"),
    ({"branches": "main,nope"}, "no runs on branch 'nope'"),
    ({"runs": "a,b", "latency": "maybe"}, "latency must be true or false"),
])
async def test_malformed_compare_gets_a_message(api, params, words):
    status, body = await api("compare", **params)
    assert status in (400, 404), body
    assert words in body["message"]


async def test_sweeps_and_their_trials(api):
    status, sweeps = await api("sweeps")
    assert status == 200
    (sweep,) = sweeps
    assert sweep["name"] == "c-search" and sweep["trials"] == 5 and sweep["complete"] == 5
    status, body = await api("sweeps", sweep["sweep_id"])
    assert status == 200, body
    columns = body["trials"]["columns"]
    assert columns[:4] == ["trial", "state", "status", "value"]  # as Sweep.trials() has them
    assert body["value_columns"] == ["value"]
    values = [row[3] for row in body["trials"]["rows"]]
    assert body["best"]["value"] == max(values)
    assert body["directions"] == ["maximize"]
    status, body = await api("sweeps", "nope")
    assert status == 404 and "no sweep" in body["message"]


def registered_handlers(router) -> set[type]:
    """Every handler class of nbtrail reachable from a tornado router (rules nest by host)."""
    found: set[type] = set()
    for rule in getattr(router, "rules", []):
        target = rule.target
        if isinstance(target, type):
            if target.__module__.startswith("nbtrail."):
                found.add(target)
        else:
            found |= registered_handlers(target)
    return found


# The wrappers these decorators put around a verb: each shares one code object.
_GUARDS = {web.authenticated(lambda self: None).__code__,
           authorized(lambda self: None).__code__}


def guarded(method) -> bool:
    """Whether ``method`` is, or wraps, tornado's ``authenticated`` or jupyter's ``authorized``."""
    while method is not None:
        if getattr(method, "__code__", None) in _GUARDS:
            return True
        method = getattr(method, "__wrapped__", None)
    return False


def unguarded_verbs(handler: type) -> list[str]:
    """The HTTP verbs ``handler`` answers itself without requiring login."""
    verbs = [m.lower() for m in web.RequestHandler.SUPPORTED_METHODS]
    own = [v for v in verbs
           if any(v in vars(k) and k.__module__.startswith("nbtrail.") for k in handler.__mro__)]
    return [v for v in own if not guarded(getattr(handler, v))]


def test_every_verb_of_every_registered_handler_requires_login(jp_serverapp):
    # jupyter_server itself refuses a wrong token, so a request cannot tell whether a
    # handler checks login: the handlers registered by the extension are read instead.
    handlers = registered_handlers(jp_serverapp.web_app.default_router)
    assert handlers >= {handler for _, handler in ROUTES}
    missing = {h.__name__: unguarded_verbs(h) for h in handlers if unguarded_verbs(h)}
    assert not missing, f"verbs without @web.authenticated: {missing}"


def test_the_login_check_sees_a_verb_without_the_decorator():
    class Open(web.RequestHandler):
        async def get(self) -> None: ...

        @web.authenticated
        async def post(self) -> None: ...

    Open.__module__ = "nbtrail.server._example"
    assert unguarded_verbs(Open) == ["get"]


async def test_a_post_without_xsrf_from_a_cookie_session_is_refused(api):
    status, _ = await api("package", method="POST", body={"ref": "x"},
                          headers={"Authorization": "", "Cookie": "_xsrf=abc"})
    assert status == 403


# Malformed packaging requests never start a job: the shared demo store stays untouched.
@pytest.mark.parametrize(("body", "status", "words"), [
    ({}, 400, '"ref"'),
    ({"ref": ""}, 400, '"ref"'),
    ({"ref": "01ABCDEFGH", "build": "yes"}, 400, '"build" must be a bool'),
    ({"ref": "01ABCDEFGH", "colour": "red"}, 400, "unknown field(s) colour"),
    ("not json", 400, "not JSON"),
    ([1, 2], 400, "JSON object"),
    ({"ref": "01NOSUCHRUN"}, 404, "no run"),
    ({"ref": "mdl_nothing"}, 404, "no model 'mdl_nothing'"),
])
async def test_malformed_package_requests_are_refused_with_a_message(api, body, status, words):
    got, reply = await api("package", method="POST", body=body)
    assert got == status, reply
    assert words in reply["message"]


async def test_an_unknown_job_is_404(api):
    status, body = await api("package", "job_nope")
    assert status == 404 and "no packaging job" in body["message"]


@pytest.mark.parametrize(("body", "words"), [
    ("[" * 100_000 + "]" * 100_000, "bytes; nbtrail's API takes at most"),
    ("[" * 30_000 + "]" * 30_000, "nests JSON too deeply"),
    ('{"ref": ' + "[" * 30_000 + "]" * 30_000 + "}", "nests JSON too deeply"),
    (b'{"ref": "\xff"}', "not JSON"),
    ('{"ref": ' + "9" * 5000 + "}", "not JSON"),
    ('{"ref": "' + "x" * 100_000 + '"}', "bytes; nbtrail's API takes at most"),
    ("null", "JSON object, got NoneType"),
])
async def test_a_malformed_deep_or_huge_body_is_a_400_saying_why(api, body, words):
    got, reply = await api("package", method="POST", body=body)
    assert got == 400, reply
    assert words in reply["message"]


@pytest.mark.parametrize("name", ["pk\n", "pk\r\n", "Pk", "-pk", "pk-", "p" * 64, " pk"])
async def test_a_package_name_kubernetes_refuses_is_a_400_before_any_job(api, demo_store, name):
    status, body = await api("runs", limit="1")
    run_id = body["runs"][0]["run_id"]
    got, reply = await api("package", method="POST", body={"ref": run_id, "name": name})
    assert got == 400, reply
    assert "not usable as an image and Kubernetes name" in reply["message"]
    assert repr(name) in reply["message"]
    status, jobs = await api("package")
    assert status == 200 and jobs == []


async def test_the_http_status_of_an_error_comes_from_the_error_table(api, monkeypatch):
    from nbtrail import errors

    monkeypatch.setitem(errors.OUTCOMES, errors.NotFoundError, errors.Outcome(1, 410))
    status, body = await api("runs", "01NOSUCHRUN")
    assert status == 410 and body["error"] == "NotFoundError", body
