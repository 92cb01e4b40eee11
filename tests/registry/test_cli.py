"""`nbtrail models` and `nbtrail audit`, through the CLI's entry point, on a real store."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

import nbtrail as nt
from nbtrail.errors import InvalidInputError
from nbtrail.registry._export import export_audit
from nbtrail.store._audit import GENESIS, canonical, entry_hash
from nbtrail.store._duckdb import DB_NAME

from ..test_cli import assert_one_error_line, call, strict_json

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


@dataclass(frozen=True)
class Trained:
    store: Path
    weak_run: str  # LogisticRegression(C=0.01)
    strong_run: str  # LogisticRegression(C=10)
    strong_model: str
    empty_run: str  # logged no model
    holdout: Path  # labelled evaluation rows (x1, x2, y)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A closed store with two runs that logged a classifier each, and one that did not."""
    import numpy as np
    import polars as pl
    from sklearn.linear_model import LogisticRegression

    from nbtrail._config import Settings

    base = tmp_path_factory.mktemp("registry-cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    frame = pl.DataFrame({"x1": x[:, 0], "x2": x[:, 1],
                          "y": (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)})
    holdout = base / "holdout.parquet"
    frame.tail(80).write_parquet(holdout)
    train = frame.head(120)
    features = train.select("x1", "x2")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        tracker = nt.Tracker(nt.open_store(base / "store"),
                             Settings(capture_git=False, capture_environment=False))
        runs, models = {}, {}
        for name, c in (("weak", 0.01), ("strong", 10.0)):
            run = tracker.start_run(name=name)
            run.log_dataset(train, name="train", role="train")
            model = LogisticRegression(C=c).fit(features.to_numpy(), train["y"].to_numpy())
            models[name] = run.log_model(model, "clf", input_example=features.head(5))
            run.end()
            runs[name] = run.run_id
        empty = tracker.start_run(name="no-model")
        empty.end()
        tracker.store.close()
    return Trained(base / "store", runs["weak"], runs["strong"], models["strong"],
                   empty.run_id, holdout)


@pytest.fixture
def store(trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the trained store of the test's own; the OS user acts."""
    monkeypatch.delenv("NBTRAIL_USER", raising=False)
    copy = tmp_path / "store"
    shutil.copytree(trained.store, copy)
    return copy


def nbtrail(capsys: pytest.CaptureFixture[str], store: Path, *argv: str
            ) -> tuple[int, str, str]:
    return call(capsys, "--store", str(store), *argv)


def register_both(capsys: pytest.CaptureFixture[str], store: Path, trained: Trained) -> None:
    """churn/1 is the weak model (by its run), churn/2 the strong one (by its model id)."""
    assert nbtrail(capsys, store, "models", "register", trained.weak_run, "--name",
                   "churn")[0] == 0
    assert nbtrail(capsys, store, "models", "register", trained.strong_model, "--name",
                   "churn", "--description", HOSTILE)[0] == 0


def failing(capsys: pytest.CaptureFixture[str], store: Path, *argv: str) -> str:
    """The one error line of a command that must fail with exit status 1."""
    code, out, err = nbtrail(capsys, store, *argv)
    assert (code, out) == (1, ""), (argv, out, err)
    assert_one_error_line(err)
    return err


# -- models ls / show / register / alias -----------------------------------------------------


def test_register_list_show_and_aliases(capsys: pytest.CaptureFixture[str], store: Path,
                                        trained: Trained) -> None:
    code, out, err = nbtrail(capsys, store, "models", "ls")
    assert (code, out) == (0, "") and "no registered model" in err

    code, out, _ = nbtrail(capsys, store, "models", "register", trained.weak_run[:12],
                           "--name", "churn")
    assert code == 0
    assert out.startswith("churn/1: model mdl_") and trained.weak_run in out
    code, out, _ = nbtrail(capsys, store, "models", "register", trained.strong_model,
                           "--name", "churn", "--description", "monthly churn", "--json")
    version = strict_json(out)
    assert (version["ref"], version["model_id"]) == ("churn/2", trained.strong_model)
    # Registering the same model again changes nothing.
    code, out, _ = nbtrail(capsys, store, "models", "register", trained.strong_model,
                           "--name", "churn")
    assert out.startswith("churn/2: ")

    code, out, _ = nbtrail(capsys, store, "models", "alias", "churn", "staging", "1",
                           "--note", "first look")
    assert (code, out) == (0, f"churn@staging -> version 1 (model {_model_of(store, 1)})\n")

    code, out, _ = nbtrail(capsys, store, "models", "ls")
    header, row = out.splitlines()
    assert header.split() == ["name", "versions", "latest_version", "aliases",
                              "pending_requests", "updated_at", "description"]
    assert row.split()[:5] == ["churn", "2", "2", "@staging=1", "0"]
    assert row.endswith("monthly churn")
    code, out, _ = nbtrail(capsys, store, "models", "ls", "--json")
    assert [(m["name"], m["versions"]) for m in strict_json(out)] == [("churn", 2)]

    code, out, _ = nbtrail(capsys, store, "models", "show", "churn")
    lines = out.splitlines()
    assert lines[0].split() == ["name", "churn"]
    assert "aliases      @staging=1" in lines
    assert "versions (2)" in lines and "policies (0)" in lines
    rows = [line.split() for line in lines if line.startswith("  ")]
    assert rows[1][:3] == ["1", "@staging", _model_of(store, 1)]
    assert rows[2][:3] == ["2", "-", trained.strong_model]

    code, out, _ = nbtrail(capsys, store, "models", "alias", "churn", "staging", "--remove")
    assert (code, out) == (0, "removed churn@staging\n")
    code, out, _ = nbtrail(capsys, store, "models", "show", "churn", "--json")
    shown = strict_json(out)
    assert shown["aliases"] == {} and shown["description"] == "monthly churn"
    assert [v["ref"] for v in shown["versions"]] == ["churn/1", "churn/2"]


def _model_of(store: Path, number: int) -> str:
    return nt.model_version(f"churn/{number}", store=nt.open_store(store, read_only=True)
                            ).model_id


def test_expected_mistakes_print_one_line(capsys: pytest.CaptureFixture[str], store: Path,
                                          trained: Trained) -> None:
    assert "no registered model 'churn'" in failing(capsys, store, "models", "show", "churn")
    assert "logged no model" in failing(capsys, store, "models", "register", trained.empty_run,
                                        "--name", "churn")
    assert "not usable" in failing(capsys, store, "models", "register", trained.weak_run,
                                   "--name", "bad name")
    register_both(capsys, store, trained)
    assert "no version 7" in failing(capsys, store, "models", "alias", "churn", "staging", "7")
    assert "give the VERSION" in failing(capsys, store, "models", "alias", "churn", "staging")
    assert "not both" in failing(capsys, store, "models", "alias", "churn", "staging", "1",
                                 "--remove")
    assert "no alias @staging" in failing(capsys, store, "models", "alias", "churn", "staging",
                                          "--remove")
    assert "no alias @gold" in failing(capsys, store, "models", "card", "churn@gold")
    # Malformed policies.
    assert "need data=" in failing(capsys, store, "models", "policy", "churn", "champion",
                                    "--metric", "accuracy")
    assert "metric must be one of" in failing(capsys, store, "models", "policy", "churn",
                                              "champion", "--metric", "wrongness", "--data",
                                              str(trained.holdout), "--target", "y")
    assert "no promotion request #99" in failing(capsys, store, "models", "approve", "99")
    assert "no registered model 'other'" in failing(capsys, store, "models", "requests",
                                                    "other")
    assert "no registered model 'other'" in failing(capsys, store, "audit", "ls", "--model",
                                                    "other")
    # A command line argparse rejects is status 2.
    code, _, err = nbtrail(capsys, store, "models", "approve", "x")
    assert code == 2
    assert_one_error_line(err)


# -- policies and promotions -----------------------------------------------------------------


def test_policy_set_and_shown(capsys: pytest.CaptureFixture[str], store: Path,
                              trained: Trained, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    register_both(capsys, store, trained)
    code, out, _ = nbtrail(capsys, store, "models", "policy", "churn", "champion")
    assert (code, out) == (0, "churn@champion has no policy: anyone may move it with "
                              "`nbtrail models alias`\n")

    # A relative --data is kept as the absolute path it names here.
    monkeypatch.chdir(trained.holdout.parent)
    code, out, _ = nbtrail(capsys, store, "models", "policy", "churn", "champion", "--metric",
                           "accuracy", "--data", trained.holdout.name, "--target", "y",
                           "--min-delta", "0.01", "--max-size-mb", "5")
    assert code == 0
    assert out.splitlines()[0] == "set the policy of churn@champion:"
    monkeypatch.chdir(tmp_path)
    code, out, _ = nbtrail(capsys, store, "models", "policy", "churn", "champion")
    pairs = dict(line.split(None, 1) for line in out.splitlines()[1:])
    assert pairs == {"require_approval": "true", "metric": "accuracy",
                     "data": str(trained.holdout), "target": "y", "min_delta": "0.01",
                     "validate": "false", "reproduce": "false", "reproduce_rtol": "1e-06",
                     "max_latency_ms": "-", "max_size_mb": "5", "checks": "metric, size"}
    code, out, _ = nbtrail(capsys, store, "models", "policy", "churn", "champion", "--json")
    assert strict_json(out)["policy"]["max_size_mb"] == 5.0

    # An alias with a policy moves only through promotions; show lists the policy.
    assert "protected by a policy" in failing(capsys, store, "models", "alias", "churn",
                                              "champion", "1")
    code, out, _ = nbtrail(capsys, store, "models", "show", "churn")
    assert ["@champion", "required", "metric,", "size"] in [line.split() for line in
                                                            out.splitlines()]

    # --approval alone is a policy of approval only; --no-approval none at all.
    code, out, _ = nbtrail(capsys, store, "models", "policy", "churn", "staging", "--approval",
                           "--json")
    staging = strict_json(out)["policy"]
    assert staging["require_approval"] is True and staging["metric"] is None
    code, _, err = nbtrail(capsys, store, "models", "policy", "churn", "staging",
                           "--approval", "--no-approval")
    assert code == 2 and "not allowed with" in err


def test_promote_with_a_failing_check(capsys: pytest.CaptureFixture[str], store: Path,
                                      trained: Trained) -> None:
    register_both(capsys, store, trained)
    assert nbtrail(capsys, store, "models", "policy", "churn", "champion",
                   "--max-size-mb", "0.000001")[0] == 0
    code, out, err = nbtrail(capsys, store, "models", "promote", "churn", "--version", "1",
                             "--alias", "champion", "--note", "try it")
    assert code == 0, err
    assert "nbtrail: running the size check" in err
    lines = out.splitlines()
    assert lines[0] == "request #4: churn/1 -> @champion"
    assert lines[2].split()[:2] == ["size", "FAILED"] and "(limit 1e-06 MB)" in lines[2]
    assert lines[-1] == "status: failed: size FAILED, so churn@champion did not move"

    code, out, _ = nbtrail(capsys, store, "models", "requests", "--status", "failed")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:4] == ["request_id", "ref", "alias", "status"]
    assert rows[1][:4] == ["4", "churn/1", "champion", "failed"] and "size" in rows[1]
    code, out, _ = nbtrail(capsys, store, "models", "requests", "churn", "--status", "pending")
    assert (code, out) == (0, "")
    assert "already failed" in failing(capsys, store, "models", "approve", "4")
    code, out, _ = nbtrail(capsys, store, "models", "show", "churn", "--json")
    assert strict_json(out)["aliases"] == {}


def test_four_eyes_approval_and_rejection(capsys: pytest.CaptureFixture[str], store: Path,
                                          trained: Trained,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    register_both(capsys, store, trained)
    assert nbtrail(capsys, store, "models", "policy", "churn", "champion", "--metric",
                   "accuracy", "--data", str(trained.holdout), "--target", "y",
                   "--max-size-mb", "5")[0] == 0
    code, out, _ = nbtrail(capsys, store, "models", "promote", "churn", "--version", "1",
                           "--alias", "champion")
    assert code == 0
    checks = [line.split()[:2] for line in out.splitlines()[2:-1]]
    assert checks == [["metric", "passed"], ["size", "passed"]]
    assert out.splitlines()[-1] == ("status: pending: waiting for another person's approval "
                                    "(`nbtrail models approve 4`)")

    # The one who requested it (and trained the model) may not approve it.
    err = failing(capsys, store, "models", "approve", "4")
    assert "may not approve request #4" in err and "four eyes" in err

    monkeypatch.setenv("NBTRAIL_USER", "reviewer")
    code, out, _ = nbtrail(capsys, store, "models", "approve", "4", "--note", "looks right")
    assert code == 0
    assert out.splitlines() == ["approved request #4 (churn/1 -> @champion)",
                                "status: approved by reviewer (looks right): churn@champion "
                                "-> version 1"]
    assert "already approved by reviewer" in failing(capsys, store, "models", "approve", "4")

    monkeypatch.delenv("NBTRAIL_USER")
    code, out, _ = nbtrail(capsys, store, "models", "promote", "churn", "--version", "2",
                           "--alias", "champion", "--json")
    request = strict_json(out)
    assert (request["request_id"], request["status"]) == (10, "pending")
    metric = request["checks"][0]
    assert metric["check"] == "metric" and metric["evidence"]["holder_version"] == 1
    monkeypatch.setenv("NBTRAIL_USER", "reviewer")
    code, out, _ = nbtrail(capsys, store, "models", "reject", "10", "--note", "not now")
    assert code == 0
    assert out.splitlines()[-1] == "status: rejected by reviewer (not now)"

    code, out, _ = nbtrail(capsys, store, "models", "requests", "churn")
    rows = [line.split()[:4] for line in out.splitlines()[1:]]
    assert rows == [["10", "churn/2", "champion", "rejected"],
                    ["4", "churn/1", "champion", "approved"]]
    code, out, _ = nbtrail(capsys, store, "models", "requests", "--json")
    listed = strict_json(out)
    assert [(r["request_id"], r["decided_by"]) for r in listed] == [(10, "reviewer"),
                                                                   (4, "reviewer")]
    assert [c["check"] for c in listed[1]["checks"]] == ["metric", "size"]
    code, out, _ = nbtrail(capsys, store, "models", "show", "churn", "--json")
    assert strict_json(out)["aliases"] == {"champion": 1}


def test_a_policy_without_approval_moves_the_alias_at_once(
        capsys: pytest.CaptureFixture[str], store: Path, trained: Trained) -> None:
    register_both(capsys, store, trained)
    nbtrail(capsys, store, "models", "policy", "churn", "prod", "--no-approval",
            "--max-size-mb", "5")
    code, out, _ = nbtrail(capsys, store, "models", "promote", "churn", "--version", "2",
                           "--alias", "prod")
    assert code == 0
    assert out.splitlines()[-1].startswith("status: approved by ")
    assert out.splitlines()[-1].endswith("(no approval required for this alias): churn@prod "
                                         "-> version 2")


# -- the model card --------------------------------------------------------------------------


def test_card_to_a_file_and_stdout(capsys: pytest.CaptureFixture[str], store: Path,
                                   trained: Trained, tmp_path: Path) -> None:
    register_both(capsys, store, trained)
    page = tmp_path / "card.html"
    code, out, err = nbtrail(capsys, store, "models", "card", "churn/2", "-o", str(page))
    assert (code, out) == (0, "")
    assert err == f"wrote the card of churn/2 to {page}\n"
    html = page.read_text()
    assert "churn" in html and trained.strong_model in html
    assert "<script" not in html and "&lt;script&gt;" in html  # the hostile description

    code, out, _ = nbtrail(capsys, store, "models", "card", "churn/2")
    assert code == 0 and "churn" in out and "<html" not in out.lower()  # Markdown
    markdown = tmp_path / "card.txt"
    code, _, _ = nbtrail(capsys, store, "models", "card", "churn/2", "--format", "md", "-o",
                         str(markdown))
    # The same Markdown, but for the time it was generated at (line 3).
    written = markdown.read_text().splitlines()
    assert written[:2] + written[3:] == out.splitlines()[:2] + out.splitlines()[3:]
    assert "cannot write" in failing(capsys, store, "models", "card", "churn/2", "-o",
                                     str(tmp_path / "no" / "such" / "card.md"))


# -- the audit trail -------------------------------------------------------------------------


def _some_history(capsys: pytest.CaptureFixture[str], store: Path, trained: Trained) -> None:
    register_both(capsys, store, trained)  # entries 1 and 2
    nbtrail(capsys, store, "models", "alias", "churn", "staging", "1")  # 3
    nbtrail(capsys, store, "models", "policy", "churn", "champion", "--max-size-mb", "5")  # 4
    nbtrail(capsys, store, "models", "promote", "churn", "--version", "2", "--alias",
            "champion", "--note", HOSTILE)  # 5 to 7


def _audit_rows(capsys: pytest.CaptureFixture[str], store: Path) -> list[dict]:
    code, out, _ = nbtrail(capsys, store, "audit", "ls", "--json")
    assert code == 0
    return strict_json(out)


def test_audit_ls(capsys: pytest.CaptureFixture[str], store: Path, trained: Trained) -> None:
    _some_history(capsys, store, trained)
    code, out, _ = nbtrail(capsys, store, "audit", "ls")
    lines = out.splitlines()
    assert lines[0].split() == ["seq", "at", "actor", "event", "model", "version", "detail"]
    events = [line.split()[4] for line in lines[1:]]  # the time is two words
    assert events == ["registered", "registered", "alias_set", "policy_set",
                      "promotion_requested", "check", "checks_done"]
    assert "@champion: checks size, approval required" in lines[4]
    assert "#5 size passed: " in lines[6]

    rows = _audit_rows(capsys, store)
    assert [r["seq"] for r in rows] == list(range(1, 8))
    assert rows[4]["payload"]["note"] == HOSTILE
    assert rows[0]["payload"]["run_id"] == trained.weak_run
    code, out, _ = nbtrail(capsys, store, "audit", "ls", "--model", "churn", "--json")
    assert code == 0 and strict_json(out) == rows


def test_audit_verify_and_tampering(capsys: pytest.CaptureFixture[str], store: Path,
                                    trained: Trained) -> None:
    code, out, _ = nbtrail(capsys, store, "audit", "verify")
    assert (code, out) == (0, "audit trail whole: 0 entries, head -\n")
    _some_history(capsys, store, trained)
    head = _audit_rows(capsys, store)[-1]["hash"]
    code, out, _ = nbtrail(capsys, store, "audit", "verify")
    assert (code, out) == (0, f"audit trail whole: 7 entries, head {head}\n")

    # Every command closed its store: all is folded and no process holds the database.
    db = str(store / DB_NAME)
    con = duckdb.connect(db)
    try:
        assert con.sql("SELECT count(*) FROM audit").fetchall() == [(7,)]
        ((original,),) = con.sql("SELECT payload FROM audit WHERE seq = 2").fetchall()
        forged = json.dumps({**json.loads(original), "description": HOSTILE + " forged"})
        con.execute("UPDATE audit SET payload = ? WHERE seq = 2", [forged])
    finally:
        con.close()
    code, out, _ = nbtrail(capsys, store, "audit", "verify")
    assert code == 1
    assert out.startswith("audit trail BROKEN: entry 2 (registered of churn/2 by ")
    assert "was changed after it was written" in out
    code, out, _ = nbtrail(capsys, store, "audit", "verify", "--json")
    verdict = strict_json(out)
    assert (code, verdict["ok"], verdict["broken_seq"], verdict["entries"]) == (1, False, 2, 1)
    # The export says so too, with the forged text escaped.
    code, out, _ = nbtrail(capsys, store, "audit", "export", "--format", "html")
    assert "audit trail BROKEN: entry 2" in out and "<script" not in out

    con = duckdb.connect(db)
    try:
        con.execute("UPDATE audit SET payload = ? WHERE seq = 2", [original])
        con.execute("DELETE FROM audit WHERE seq = 3")
    finally:
        con.close()
    code, out, _ = nbtrail(capsys, store, "audit", "verify")
    assert (code, out) == (1, "audit trail BROKEN: entry 3 is missing: entries were deleted "
                              "or inserted\n")


def test_audit_export(capsys: pytest.CaptureFixture[str], store: Path, trained: Trained,
                      tmp_path: Path) -> None:
    _some_history(capsys, store, trained)
    code, out, _ = nbtrail(capsys, store, "audit", "export", "--format", "jsonl")
    assert code == 0
    entries = [strict_json(line) for line in out.splitlines()]
    assert [e["seq"] for e in entries] == list(range(1, 8))
    assert set(entries[0]) == {"seq", "at_us", "at", "actor", "actor_source", "event", "model",
                               "version", "payload", "prev_hash", "hash"}
    assert entries[0]["at"].endswith("+00:00") and isinstance(entries[0]["payload"], dict)
    # The export carries what it takes to check the chain again, outside nbtrail.
    prev = GENESIS
    for e in entries:
        assert e["prev_hash"] == prev
        assert entry_hash(e["seq"], e["at_us"], e["actor"], e["actor_source"], e["event"],
                          e["model"], e["version"], canonical(e["payload"]),
                          e["prev_hash"]) == e["hash"]
        prev = e["hash"]

    page = tmp_path / "audit.html"
    code, out, err = nbtrail(capsys, store, "audit", "export", "-o", str(page))
    assert (code, out, err) == (0, "", f"wrote the audit trail to {page}\n")
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert f"audit trail whole: 7 entries, head {prev}" in html
    assert "<script" not in html and "&lt;script&gt;alert(" in html
    assert html.count("<tr") == 8  # the header and every entry

    with pytest.raises(InvalidInputError, match="jsonl, html"):
        export_audit(nt.open_store(store, read_only=True), "xml")


def test_the_other_commands_take_references(capsys: pytest.CaptureFixture[str], store: Path,
                                            trained: Trained, tmp_path: Path) -> None:
    import polars as pl

    register_both(capsys, store, trained)
    assert nbtrail(capsys, store, "models", "alias", "churn", "champion", "2")[0] == 0
    code, out, err = nbtrail(capsys, store, "package", "churn@champion", "--no-build",
                             "--output", str(tmp_path / "pkg"), "--json")
    assert code == 0, err
    assert strict_json(out)["model_id"] == trained.strong_model
    rows = tmp_path / "rows.parquet"
    pl.read_parquet(trained.holdout).drop("y").write_parquet(rows)
    assert nbtrail(capsys, store, "validate", "churn/1", str(rows))[0] == 0
    assert nbtrail(capsys, store, "drift", "churn@champion", str(rows), "--no-log")[0] == 0
    code, _, err = nbtrail(capsys, store, "package", "churn@gone", "--no-build")
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("nbtrail: error: churn has no alias @gone (its "
                                           "aliases: @champion)")
    code, out, _ = nbtrail(capsys, store, "audit", "ls", "--model", "churn")
    assert "package_built" in out
