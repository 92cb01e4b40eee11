"""The champion/challenger loop end to end, through the public API and the CLI.

A champion trained by a notebook in a git repo, protected by a policy; a challenger in
its shadow, served over real HTTP to traffic whose customers and whose churn both
changed; the challenge report and the staleness check on that traffic; ``nbtrail
retrain`` re-executing the champion's notebook on it; a second person approving; and the
audit trail holding each step. Real kernels, a real git repo, the DuckDB store.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import nbtrail as nt
from nbtrail import cli
from nbtrail.errors import ApprovalError

from ._training import kernels_import_this_nbtrail, train_in_repo

LABEL = "churned"
# The champion's notebook (after its cell of parameters): a fifth of the rows held out, so
# that the version keeps a held-out accuracy to compare recent data with.
TRAIN = """\
import polars as pl
import nbtrail as nt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

frame = pl.read_parquet(data_path).to_pandas()
train, test = train_test_split(frame, test_size=0.2, random_state=0)
with nt.run(name="train-churn") as run:
    run.log_param("data_path", data_path)
    run.log_dataset(train.drop(columns=labels), role="train")
    model = LogisticRegression(max_iter=1000).fit(train.drop(columns=labels), train[labels])
    run.log_model(model, name="churn-model")
    run.log_metric("test_accuracy", model.score(test.drop(columns=labels), test[labels]))
"""
REQUESTS, PER_REQUEST = 150, 4


def customers(n: int, seed: int, *, shifted: bool = False) -> pl.DataFrame:
    """January's customers, or (``shifted``) May's: newer, paying more and calling support
    more often (covariate shift), and leaving over the price more than for lack of loyalty
    (concept shift)."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 36 if shifted else 72, n)
    charges = rng.normal(85 if shifted else 70, 20, n).round(2)
    calls = rng.poisson(2.5 if shifted else 1.5, n)
    if shifted:
        risk = -tenure / 60 + (charges - 85) / 8 + (calls - 2.5) / 3
    else:
        risk = -tenure / 18 + (charges - 70) / 20 + (calls - 1.5) / 2 + 1
    return pl.DataFrame({"tenure_months": tenure, "monthly_charges": charges,
                         "support_calls": calls,
                         LABEL: (risk + rng.normal(0, 0.5, n) > 0).astype(np.int64)})


def _post(url: str, records: list[dict[str, object]], request_id: str) -> None:
    request = urllib.request.Request(
        f"{url}/predict", data=json.dumps({"records": records}).encode(),
        headers={"content-type": "application/json", "X-Request-ID": request_id})
    urllib.request.urlopen(request, timeout=10).read()


def _step(row: dict[str, object]) -> tuple[object, ...]:
    """An audit entry as (event, version, what it is about): the check, the role in a
    package, or the alias."""
    payload = json.loads(str(row["payload"]))
    about = next((payload[k] for k in ("check", "role", "alias") if k in payload), None)
    return row["event"], row["version"], about


def test_champion_challenger_loop(home: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    kernels_import_this_nbtrail(monkeypatch)
    monkeypatch.delenv("NBTRAIL_USER", raising=False)  # the data scientist is the OS user
    may = customers(REQUESTS * PER_REQUEST, seed=2, shifted=True)  # served, labelled later
    frames = {"train": customers(1000, seed=1), "holdout-jan": customers(400, seed=3),
              "recent": may, "holdout-may": customers(600, seed=4, shifted=True)}
    files = {}
    for key, frame in frames.items():
        files[key] = str(tmp_path / f"{key}.parquet")
        frame.write_parquet(files[key])

    # The champion: trained by a committed notebook, registered, protected.
    train_in_repo(tmp_path / "repo", home, TRAIN, data=files["train"], labels=LABEL)
    (champion_run,) = nt.runs()["run_id"].to_list()
    nt.register(champion_run, name="churn")
    nt.set_alias("churn", "champion", 1)
    nt.set_policy("churn", "champion", metric="accuracy", data=files["holdout-jan"],
                  target=LABEL)

    # A first challenger: boosted trees on the same data, to watch in the champion's shadow.
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = frames["train"].drop(LABEL).to_pandas(), frames["train"][LABEL].to_numpy()
    with nt.run(name="train-churn-gbm") as run:
        run.log_dataset(X, role="train")
        boosted = HistGradientBoostingClassifier(max_depth=3, random_state=0).fit(X, y)
        nt.register(run.log_model(boosted, name="churn-model"), name="churn")
    nt.set_alias("churn", "challenger", 2)

    pkg = nt.package("churn@champion", shadow=["churn@challenger"], name="churn",
                     output=tmp_path / "pkg", build=False)
    assert pkg.routing is not None
    assert (pkg.routing["champion"]["ref"], [v["ref"] for v in pkg.routing["shadows"]]) == (
        "churn@champion", ["churn@challenger"])

    # May's traffic over HTTP; the server logs both versions' answers to every row.
    log = tmp_path / "log"
    records = may.drop(LABEL).to_dicts()
    with nt.serve(pkg, port=0, background=True, log_dir=log) as server:
        for i in range(REQUESTS):
            _post(server.url, records[i * PER_REQUEST:(i + 1) * PER_REQUEST], f"may-{i:03d}")

    # The outcomes arrive: the challenge report compares the two on the same rows.
    labels = pl.DataFrame({"request_id": [f"may-{i // PER_REQUEST:03d}" for i in range(len(may))],
                           "row": [i % PER_REQUEST for i in range(len(may))],
                           "label": may[LABEL]})
    report = nt.challenge(log, labels=labels, seed=0)
    champion, shadow = report.versions
    assert (champion.version, champion.role, shadow.version, shadow.role) == (
        "1", "champion", "2", "shadow")
    rows = REQUESTS * PER_REQUEST
    assert (champion.requests, champion.rows, champion.answered) == (REQUESTS, rows, rows)
    assert (shadow.rows, shadow.shadowed, shadow.answered) == (rows, rows, 0)
    assert shadow.errors == shadow.dropped == champion.errors == 0
    assert report.labels == rows and report.unknown_labels == 0
    X_may, y_may = may.drop(LABEL).to_pandas(), may[LABEL].to_numpy()
    v1, v2 = nt.load_model("churn/1"), nt.load_model("churn/2")
    assert champion.metric == pytest.approx(v1.score(X_may, y_may))
    assert shadow.metric == pytest.approx(v2.score(X_may, y_may))
    assert shadow.agreement == pytest.approx(np.mean(v1.predict(X_may) == v2.predict(X_may)))
    assert shadow.paired and shadow.difference == pytest.approx(shadow.metric - champion.metric)
    for version in report.versions:
        assert version.labelled_rows == rows
        assert version.metric_low <= version.metric <= version.metric_high
    assert shadow.difference_low < 0 < shadow.difference_high  # the model is not the problem
    assert champion.metric < 0.75 < v1.score(X, y)  # the data is: the champion fell
    assert report.run_id is not None  # kept as a monitoring run

    # The champion is stale on May's labelled rows.
    stale = nt.staleness("churn@champion", data=files["recent"], labels=LABEL)
    assert stale.stale and stale.version == "churn/1" and stale.metric == "accuracy"
    assert stale.rows == rows and stale.current == pytest.approx(champion.metric)
    fired = {c.name for c in stale.criteria if c.fired}
    assert {"metric_drop", "important_feature_drift"} <= fired
    assert "age_days" not in fired

    # Retraining, as a scheduled job would run it.
    summary_file = tmp_path / "retrain.json"
    code = cli.main(["retrain", "churn", "--data", files["recent"], "--when", "stale",
                     "--labels", LABEL, "--holdout", files["holdout-may"],
                     "--summary", str(summary_file), "--store", str(home)])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(summary_file.read_text())
    assert summary["error"] is None and summary["fired"] is True
    assert (summary["trigger"], summary["champion"], summary["champion_run_id"]) == (
        "stale", "churn/1", champion_run)
    assert summary["evidence"]["stale"] is True
    assert summary["evidence"]["reasons"] == stale.reasons
    assert (summary["version"], summary["ref"], summary["request_status"]) == (
        3, "churn/3", "pending")
    assert summary["challenger_request_id"] is None and summary["notes"] == []
    (check,) = summary["checks"]
    evidence = check["evidence"]
    assert check["check"] == "metric" and check["passed"]
    assert evidence["data"] == files["holdout-may"] and evidence["rows"] == 600
    assert evidence["holder_version"] == 1 and evidence["candidate"] > evidence["holder"] + 0.1
    assert "churn/3 @challenger" in out
    retrained = nt.get_run(summary["run_id"])
    assert retrained.tags["nbtrail.retrains"] == champion_run
    assert retrained.params == {"data_path": files["recent"]}
    assert nt.model_version("churn@challenger").version == 3
    assert nt.model_version("churn@champion").version == 1  # until someone approves

    # Four eyes: not the requester; a reviewer approves.
    request_id = summary["request_id"]
    with pytest.raises(ApprovalError, match="they requested it"):
        nt.approve(request_id)
    monkeypatch.setenv("NBTRAIL_USER", "reviewer")
    decided = nt.approve(request_id, note="May holdout checked")
    monkeypatch.delenv("NBTRAIL_USER")
    assert (decided.status, decided.decided_by) == ("approved", "reviewer")
    now = nt.model_version("churn@champion")
    assert (now.version, now.run_id, now.aliases) == (
        3, summary["run_id"], ("challenger", "champion"))

    # The audit trail holds the loop, step by step, in a whole chain.
    trail = nt.audit("churn")
    entries = list(trail.iter_rows(named=True))
    steps = [_step(entry) for entry in entries]
    # Serving the package was a deployment of both its versions, with the log they wrote.
    served = [i for i, step in enumerate(steps) if step[0] == "deployed"]
    assert served == [7, 8] and sorted(steps[i] for i in served) == [
        ("deployed", 1, "champion"), ("deployed", 2, "shadow")]
    assert {json.loads(entries[i]["payload"])["log_dir"] for i in served} == {str(log.resolve())}
    assert [step for step in steps if step[0] != "deployed"] == [
        ("registered", 1, None),
        ("alias_set", 1, "champion"),
        ("policy_set", None, "champion"),
        ("registered", 2, None),
        ("alias_set", 2, "challenger"),
        ("package_built", 1, "champion"),
        ("package_built", 2, "shadow"),
        ("registered", 3, None),
        ("alias_set", 3, "challenger"),
        ("promotion_requested", 3, "champion"),
        ("check", 3, "metric"),
        ("checks_done", 3, None),
        ("approved", 3, None),
        ("alias_set", 3, "champion"),
    ]
    actors = dict(zip(trail["event"], trail["actor"], strict=True))  # the last of each
    assert actors["approved"] == "reviewer"
    assert actors["promotion_requested"] == actors["registered"] != "reviewer"
    moved = json.loads(trail["payload"][-1])
    assert (moved["previous"], moved["request"]) == (1, request_id)
    verdict = nt.verify_audit()
    assert verdict.ok and verdict.entries == trail.height
