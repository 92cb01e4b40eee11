"""``nt.traffic``: a package's live view, from the log a real server with a shadow wrote."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

import nbtrail as nt
from nbtrail.cli import main
from nbtrail.errors import InvalidInputError, NotFoundError

from ..packaging._models import train_churn
from .conftest import PER_REQUEST, REQUESTS

ROWS = REQUESTS * PER_REQUEST


def test_versions_and_traffic_come_from_the_deployment_the_audit_trail_records(served):
    log, lines, _, models = served
    deployed = nt.audit("churn").filter(event="deployed")
    assert sorted(json.loads(p)["role"] for p in deployed["payload"]) == ["champion", "shadow"]

    view = nt.traffic("churn")
    assert [(v["role"], v["version"], v["model_id"], v["ref"]) for v in view.versions] == [
        ("champion", "1", models[1], "churn/1"), ("shadow", "2", models[2], "churn/2")]
    assert view.log_dirs == (str(log.resolve()),)
    assert (view.lines_read, view.truncated, view.challenge) == (ROWS, False, None)
    totals = {row["version"]: row for row in view.totals().iter_rows(named=True)}
    assert (totals["1"]["rows"], totals["1"]["answered"], totals["1"]["share"]) == (ROWS, ROWS, 1)
    assert (totals["2"]["rows"], totals["2"]["answered"], totals["2"]["errors"]) == (ROWS, 0, 0)
    by_hand = np.mean([line["models"][0]["prediction"] == line["models"][1]["prediction"]
                       for line in lines])
    assert totals["2"]["agreement"] == pytest.approx(by_hand)
    assert totals["1"]["agreement"] is None  # the champion is not compared with itself
    per_version = view.timeline.group_by("version").agg(pl.col("rows").sum()).sort("version")
    assert per_version.rows() == [("1", ROWS), ("2", ROWS)]
    assert (view.timeline["latency_p50_ms"] <= view.timeline["latency_p99_ms"]).all()
    as_json = json.loads(json.dumps(view.to_dict()))
    assert as_json["timeline"][0]["time"].endswith("Z") and len(as_json["totals"]) == 2
    html = view._repr_html_()
    assert "agreement with the champion" in html and "churn/2" in html


def test_the_latest_challenge_report_is_shown_and_cited_when_promoting(served):
    log, _, labels, _ = served
    older = nt.challenge(log, labels=labels, bootstrap=100)
    report = nt.challenge(log, labels=labels, bootstrap=200, seed=2)
    view = nt.traffic("churn")
    assert view.challenge is not None
    assert (view.challenge["run_id"], view.challenge["bootstrap"]) == (report.run_id, 200)
    assert older.run_id != report.run_id
    request = view.promote(note="a week in shadow")
    assert (request.ref, request.alias) == ("churn/2", "champion")
    assert request.note.startswith("a week in shadow; nt.challenge of ")
    assert report.run_id in request.note


def test_promoting_without_a_report_cites_the_traffic(served):
    request = nt.traffic("churn").promote("2", alias="staging")
    assert (request.ref, request.alias) == ("churn/2", "staging")
    assert f"version 2 predicted {ROWS} rows, 0 errors, agreement with the champion" \
        in request.note


def test_only_the_newest_bytes_of_the_log_are_read(served):
    log, _, _, _ = served
    view = nt.traffic("churn", log_dir=log, tail_bytes=4000)
    assert view.truncated and 0 < view.lines_read < ROWS


def test_a_package_of_one_model_and_no_log(home, tmp_path):
    model = train_churn().model_id
    pkg = nt.package(model, name="solo", output=tmp_path / "ctx", build=False)
    view = nt.traffic(pkg)
    assert [(v["role"], v["version"], v["ref"]) for v in view.versions] == [
        ("champion", model, None)]
    assert view.timeline.is_empty() and view.log_dirs == ()
    assert "No predictions logged yet" in view._repr_html_()
    with pytest.raises(InvalidInputError, match="serves only its champion"):
        view.promote()


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"package": "nope"}, NotFoundError, "no package 'nope' in the store"),
    ({"package": "pkg_nope"}, NotFoundError, "no package 'pkg_nope'"),
    ({"package": 3}, InvalidInputError, "package must be a Package"),
    ({"package": "churn", "every": 0}, InvalidInputError, "every must be a whole number"),
    ({"package": "churn", "log_dir": "/no/such/dir"}, InvalidInputError, "is not a folder"),
])
def test_bad_input_is_one_line(served, kwargs, error, message):
    with pytest.raises(error, match=message) as caught:
        nt.traffic(**kwargs)
    assert "\n" not in str(caught.value)


def test_promote_names_the_challengers(served):
    view = nt.traffic("churn")
    with pytest.raises(InvalidInputError, match="no challenger '7'; its challengers: 2"):
        view.promote("7")


def test_cli_shows_the_view_and_promotes(served, capsys):
    assert main(["traffic", "churn"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<Traffic of package churn (champion 1, shadow 2): 300 log lines")
    assert "shadow" in out and "agreement" in out
    assert main(["traffic", "churn", "--timeline", "--every", "3600"]) == 0
    assert "latency_p99_ms" in capsys.readouterr().out
    assert main(["traffic", "churn", "--promote", "--alias", "staging", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["request"]["ref"], out["request"]["alias"]) == ("churn/2", "staging")
    assert [t["version"] for t in out["totals"]] == ["1", "2"]
    for bad in (["traffic", "nope"], ["traffic", "churn", "--every", "0"],
                ["traffic", "churn", "--promote", "9"]):
        assert main(bad) != 0, bad
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("nbtrail: error: ") for e in errors)


def test_files_nbtrail_did_not_write_are_refused_or_left_out(served, tmp_path):
    log, _, _, _ = served
    (log / "predictions-29991231T000000000000Z-9.jsonl").write_text("\n".join([
        "not json", json.dumps([1, 2]), json.dumps({"time": "2026-12-03T10:00:00Z"}) + "x",
        json.dumps({"time": "2026-12-03T10:00:00Z", "models": "everything"}),
        json.dumps({"time": "2026-12-03T10:00:00Z", "models": [7, None]}),
        json.dumps({"time": "yesterday", "version": "1", "prediction": 1}),
        json.dumps({"time": "2026-12-03T10:00:00Z", "request_id": "odd", "version": "1",
                    "models": [{"version": "1", "role": "champion", "latency_ms": "slow"}]}),
    ]) + "\n")
    view = nt.traffic("churn")
    totals = {row["version"]: row["rows"] for row in view.totals().iter_rows(named=True)}
    assert totals == {"1": ROWS + 1, "2": ROWS}  # only the last line is a row: of version 1
    context = log.parent / "ctx" / "model" / "routing.json"  # where `served` packaged it
    context.write_text(json.dumps({"champion": {"version": "1"}, "shadows": [], "canary": []}))
    with pytest.raises(InvalidInputError, match=r"is not a routing\.json nbtrail wrote") \
            as caught:
        nt.traffic("churn")
    assert "\n" not in str(caught.value) and str(context) in str(caught.value)
