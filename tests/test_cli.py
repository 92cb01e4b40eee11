"""The `nbtrail` command line, against a real store built by the tracking API."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import nbtrail as nt
from nbtrail import cli
from nbtrail._json import jsonable
from nbtrail.cli import _glue_order_by, _render, _runs
from nbtrail.store._records import Run

from .conftest import git, run_python

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class Built:
    store: Path
    repo: Path
    baseline: str
    child: str
    tuned: str
    broken: str
    artifact: str
    commit: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """One store with four runs, logged from inside a throwaway git repository."""
    base = tmp_path_factory.mktemp("cli")
    repo = base / "repo"
    repo.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        # The developer's git config and any enclosing repository must not leak in.
        mp.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
            mp.delenv(var, raising=False)
        git(repo, "init", "-q", "-b", "main")
        (repo / "train.py").write_text("lr = 0.1\n")
        git(repo, "add", "-A")
        git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "-m", "init")
        commit = git(repo, "rev-parse", "HEAD")
        (repo / "report.txt").write_text("accuracy: good\n")
        mp.chdir(repo)

        store_path = base / "store"
        tracker = nt.Tracker(nt.open_store(store_path))
        run = tracker.start_run(name="baseline", experiment="exp-a")
        run.log_params({"C": 1.0, "penalty": "l2", "epochs": 3})
        for value in (1.0, 0.5, 0.25):
            run.log_metric("loss", value)
        run.log_metric("acc", 0.8)
        run.log_metric("weird", float("nan"))
        run.log_metric("big", float("inf"))
        run.set_tags({"team": "risk"})
        (artifact,) = run.log_artifact(repo / "report.txt")
        child = tracker.start_run(name="fold-1")
        child.log_metric("acc", 0.7)
        child.end()
        run.end()

        tuned = tracker.start_run(name="tuned", experiment="exp-a")
        tuned.log_params({"C": 10.0, "penalty": "l2", "epochs": 3})
        tuned.log_metric("acc", 0.9)
        tuned.log_metric("loss", 0.2)
        tuned.end()

        broken = tracker.start_run(name="broken", experiment="exp-b")
        broken.end("failed", "ValueError: boom\nsecond line")
        tracker.store.close()
    yield Built(store=store_path, repo=repo, baseline=run.run_id, child=child.run_id,
                tuned=tuned.run_id, broken=broken.run_id, artifact=artifact, commit=commit)


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def strict_json(text: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def assert_one_error_line(err: str) -> None:
    assert err.startswith("nbtrail: error: "), err
    assert err.count("\n") == 1, err


def table(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


# -- runs ls --------------------------------------------------------------------------------


def test_runs_ls_table(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "--store", str(built.store), "runs", "ls")
    assert code == 0, err
    rows = table(out)
    assert rows[0] == ["run_id", "name", "experiment", "status", "start_time", "duration",
                       "metrics.acc", "metrics.big", "metrics.loss", "metrics.weird"]
    assert len(rows) == 5
    # Newest first; ids shortened but still prefixes of the real ones.
    assert [r[1] for r in rows[1:]] == ["broken", "tuned", "fold-1", "baseline"]
    by_name = {r[1]: r for r in rows[1:]}
    assert built.baseline.startswith(by_name["baseline"][0])
    assert 10 <= len(by_name["baseline"][0]) < len(built.baseline)
    assert by_name["baseline"][-4:-1] == ["0.8", "inf", "0.25"]
    assert by_name["broken"][3] == "failed"
    assert by_name["broken"][-4:] == ["-", "-", "-", "-"]
    # Ten columns, the start time being two words.
    assert all(len(r) == 11 for r in rows[1:])
    # Numbers are right-aligned under their header.
    header = out.splitlines()[0]
    end = header.index("metrics.loss") + len("metrics.loss")
    assert all(line[:end].endswith(("0.25", "0.2", "-")) for line in out.splitlines()[1:])


def test_runs_ls_full_ids_and_store_after_subcommand(
        built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "runs", "ls", "--full-ids", "--store", str(built.store))
    assert code == 0
    ids = {r[0] for r in table(out)[1:]}
    assert ids == {built.baseline, built.child, built.tuned, built.broken}


def test_runs_ls_where_and_order_by(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--store", str(built.store), "runs", "ls", "--json",
                        "--where", "metrics.acc > 0.75", "--order-by", "-metrics.acc")
    assert code == 0
    assert [r["name"] for r in strict_json(out)] == ["tuned", "baseline"]

    code, out, _ = call(capsys, "--store", str(built.store), "runs", "ls", "--json",
                        "--where", "params.penalty = 'l2'", "--order-by=metrics.acc")
    assert [r["name"] for r in strict_json(out)] == ["baseline", "tuned"]

    # Repeated --order-by: experiment ascending, then acc descending within it.
    code, out, _ = call(capsys, "--store", str(built.store), "runs", "ls", "--json",
                        "--order-by", "experiment", "--order-by", "-metrics.acc")
    assert [r["name"] for r in strict_json(out)] == ["tuned", "baseline", "fold-1", "broken"]


def test_runs_ls_experiment_limit_and_empty(
        built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--store", str(built.store), "runs", "ls",
                        "--experiment", "exp-b", "--json")
    assert [r["run_id"] for r in strict_json(out)] == [built.broken]

    code, out, err = call(capsys, "--store", str(built.store), "runs", "ls", "--limit", "2")
    assert code == 0
    assert len(table(out)) == 3
    assert "--limit 0" in err

    code, out, err = call(capsys, "--store", str(built.store), "runs", "ls", "--limit", "0")
    assert len(table(out)) == 5
    assert err == ""

    code, out, err = call(capsys, "--store", str(built.store), "runs", "ls",
                          "--where", "name = 'nobody'")
    assert (code, out) == (0, "")
    assert "no runs" in err


def test_runs_ls_columns(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--store", str(built.store), "runs", "ls",
                        "--columns", "name,params.*", "--where", "name = 'tuned'")
    assert code == 0
    assert table(out) == [["name", "params.C", "params.epochs", "params.penalty"],
                          ["tuned", "10", "3", "l2"]]

    code, out, _ = call(capsys, "--store", str(built.store), "runs", "ls", "--json",
                        "--columns", "name,tags.team", "--where", "tags.team = 'risk'")
    assert strict_json(out) == [{"name": "baseline", "tags.team": "risk"}]

    code, _, err = call(capsys, "--store", str(built.store), "runs", "ls", "--columns", "nme")
    assert code == 1
    assert_one_error_line(err)
    assert "did you mean name" in err


def test_runs_ls_json_is_valid_with_full_ids_and_iso_times(
        built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--store", str(built.store), "runs", "ls", "--json")
    assert code == 0
    rows = {r["name"]: r for r in strict_json(out)}
    baseline = rows["baseline"]
    assert baseline["run_id"] == built.baseline
    assert datetime.fromisoformat(baseline["start_time"]).tzinfo is not None
    assert baseline["metrics.big"] == "Infinity"
    assert float(baseline["metrics.big"]) == math.inf
    assert baseline["params.C"] == 1.0
    assert baseline["tags.team"] == "risk"
    assert rows["fold-1"]["parent_id"] == built.baseline
    assert rows["broken"]["error"] == "ValueError: boom\nsecond line"


# -- runs show ------------------------------------------------------------------------------


def test_runs_show_text(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "--store", str(built.store), "runs", "show",
                          built.baseline[:12])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["run_id", built.baseline]
    assert ["name", "baseline"] in table(out)
    assert ["penalty", "l2"] in table(out)
    assert ["loss", "0.25"] in table(out)
    assert ["team", "risk"] in table(out)
    assert f"  {built.child}" in lines  # children
    assert any("report.txt" in line and built.artifact in line for line in lines)
    assert ["commit", built.commit] in table(out)
    assert ["branch", "main"] in table(out)
    assert ["ref", f"refs/nbtrail/runs/{built.baseline}"] in table(out)
    assert any(line.split()[:1] == ["python"] for line in lines)
    packages = next(line for line in lines if line.split()[:1] == ["packages"])
    assert "--packages" in packages
    assert not any("duckdb==" in line for line in lines)

    code, out, _ = call(capsys, "--store", str(built.store), "runs", "show", built.baseline,
                        "--packages")
    assert any(line.strip().startswith("duckdb==") for line in out.splitlines())


def test_runs_show_failed_run(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--store", str(built.store), "runs", "show", built.broken)
    assert code == 0
    assert "error       ValueError: boom\\nsecond line" in out.splitlines()


def test_runs_show_json(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--store", str(built.store), "runs", "show", built.baseline,
                        "--json")
    assert code == 0
    data = strict_json(out)
    assert data["run_id"] == built.baseline
    assert data["params"] == {"C": 1.0, "epochs": 3, "penalty": "l2"}
    assert {k: v for k, v in data["metrics"].items() if k != "weird"} == {
        "acc": 0.8, "big": "Infinity", "loss": 0.25}
    assert data["children"] == [built.child]
    assert data["artifacts"][0]["artifact_id"] == built.artifact
    assert data["git"]["commit"] == built.commit
    assert "packages" not in data["env"]
    assert data["env"]["package_count"] > 5
    assert data["duration"] >= 0
    datetime.fromisoformat(data["end_time"])

    code, out, _ = call(capsys, "--store", str(built.store), "runs", "show", built.baseline,
                        "--json", "--packages")
    env = strict_json(out)["env"]
    assert len(env["packages"]) == env["package_count"]
    assert "duckdb" in env["packages"]


def test_render_run_lists_datasets_and_models() -> None:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    run = Run(
        run_id="01HX0000000000000000000000", name="fit", experiment="e", status="running",
        start_time=start, end_time=None,
        datasets=[{"dataset_id": "ds_abc", "name": "iris", "role": "train", "n_rows": 150,
                   "n_columns": 5, "schema": {}, "stats": {}}],
        models=[{"model_id": "mdl_xyz", "name": "clf", "class_name": "LogisticRegression",
                 "format": "skops", "size_bytes": 2048}],
        env={"python": "3.11.7", "platform": "linux", "packages": {"a": "1", "b": "2"}},
        seeds={"random": 42},
    )
    lines = _runs.render_run(run)
    rows = [line.split() for line in lines]
    assert ["iris", "train", "150", "5", "ds_abc"] in rows
    assert ["clf", "LogisticRegression", "skops", "2.0", "KiB", "mdl_xyz"] in rows
    assert ["duration", "-"] in rows
    assert ["seeds", '{"random":', "42}"] in rows
    assert ["packages", "2", "(list", "with", "--packages)"] in rows
    assert any("not captured" in line for line in lines)  # no git, no code
    listed = _runs.render_run(run, packages=True)
    assert "    a==1" in listed and "    b==2" in listed
    data = _runs.run_to_dict(run)
    assert data["env"] == {"python": "3.11.7", "platform": "linux", "package_count": 2}
    assert data["duration"] is None


def test_nan_metric_survives_to_the_output(built: Built,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # Logged NaN must come back as NaN ("NaN" in JSON), not as a missing value.
    code, out, _ = call(capsys, "--store", str(built.store), "runs", "ls", "--json",
                        "--columns", "name,metrics.weird", "--where", "name = 'baseline'")
    assert code == 0
    assert strict_json(out) == [{"name": "baseline", "metrics.weird": "NaN"}]
    code, out, _ = call(capsys, "--store", str(built.store), "runs", "show", built.baseline)
    assert ["weird", "nan"] in table(out)
    _, out, _ = call(capsys, "--store", str(built.store), "metrics", built.baseline,
                        "weird", "--json")
    assert [p["value"] for p in strict_json(out)] == ["NaN"]


def test_runs_show_and_lineage_with_dataset_and_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import polars as pl
    from sklearn.linear_model import LogisticRegression

    from nbtrail._config import Settings

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    tracker = nt.Tracker(nt.open_store(store),
                         Settings(capture_git=False, capture_environment=False))
    run = tracker.start_run(name="fit")
    frame = pl.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    dataset = run.log_dataset(frame, name="toy", role="train")
    model = LogisticRegression().fit(frame.select("x").to_numpy(), frame["y"].to_numpy())
    model_id = run.log_model(model, "clf", input_example=frame.select("x"))
    run.end()
    tracker.store.close()

    code, out, _ = call(capsys, "--store", str(store), "runs", "show", run.run_id)
    assert code == 0
    rows = table(out)
    assert ["toy", "train", "4", "2", dataset] in rows
    assert any(r[:1] == ["clf"] and r[-1] == model_id and "skops" in r for r in rows)
    assert "environment" in out.splitlines()

    code, out, _ = call(capsys, "--store", str(store), "lineage", model_id)
    assert out.splitlines() == [
        f"{model_id} (model: clf)",
        f"└── <-produced- {run.run_id} (run: fit)",
        f"    └── <-train- {dataset} (dataset: toy)",
    ]


# -- sql --------------------------------------------------------------------------------------


def test_sql_table_and_json(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    query = "select experiment, count(*) as n from runs group by 1 order by 1"
    code, out, err = call(capsys, "--store", str(built.store), "sql", query)
    assert code == 0
    assert table(out) == [["experiment", "n"], ["exp-a", "3"], ["exp-b", "1"]]
    assert "(2 rows)" in err

    code, out, _ = call(capsys, "--store", str(built.store), "sql", query, "--json")
    assert strict_json(out) == [{"experiment": "exp-a", "n": 3}, {"experiment": "exp-b", "n": 1}]

    code, out, _ = call(capsys, "--store", str(built.store), "sql", "--json",
                        "select 'nan'::double as n, '-inf'::double as i, 1.5::decimal(4, 2) as d, "
                        "[1, 2] as l, {'a': now()} as s, 10000000000000000000000::hugeint as h")
    (row,) = strict_json(out)
    assert row["n"] == "NaN" and row["i"] == "-Infinity" and row["d"] == 1.5
    assert row["l"] == [1, 2] and row["h"] == 10**22
    datetime.fromisoformat(row["s"]["a"])


@pytest.mark.parametrize("query", [
    "delete from runs",
    "drop table runs",
    "update runs set name = 'x'",
    "create table evil (a int)",
    "select 1; delete from runs",
])
def test_sql_refuses_writes(built: Built, capsys: pytest.CaptureFixture[str], query: str) -> None:
    code, _, err = call(capsys, "--store", str(built.store), "sql", query)
    assert code == 1
    assert_one_error_line(err)
    assert "read-only" in err
    _, out, _ = call(capsys, "--store", str(built.store), "sql", "select count(*) n from runs")
    assert table(out) == [["n"], ["4"]]


@pytest.mark.parametrize("query, message", [
    ("selec 1", "invalid SQL"),
    ("select * from no_such_table", "invalid SQL"),
    ("select 'abc'::integer", "the query failed"),
    ("select interval 1 day as i", "cast that column to VARCHAR"),
    ("   ", "empty"),
])
def test_sql_bad_query(built: Built, capsys: pytest.CaptureFixture[str], query: str,
                       message: str) -> None:
    code, out, err = call(capsys, "--store", str(built.store), "sql", query)
    assert (code, out) == (1, "")
    assert_one_error_line(err)
    assert message in err


# -- lineage ----------------------------------------------------------------------------------


def test_lineage_tree(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--store", str(built.store), "lineage", built.baseline,
                        "--direction", "down")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{built.baseline} (run: baseline)"
    assert f"-parent-> {built.child} (run: fold-1)" in out
    assert f"-produced-> {built.artifact} (artifact: report.txt)" in out
    assert all(line.startswith(("├── ", "└── ")) for line in lines[1:])

    # Up from the child: its parent, and the parent's own inputs one level deeper.
    code, out, _ = call(capsys, "--store", str(built.store), "lineage", built.child)
    lines = out.splitlines()
    parent_line = next(i for i, line in enumerate(lines)
                       if f"<-parent- {built.baseline} (run: baseline)" in line)
    assert lines[parent_line].startswith("├── ")
    assert lines[parent_line + 1].startswith("│   ") and "<-code-" in out
    assert "<-environment- env_" in out

    code, out, _ = call(capsys, "--store", str(built.store), "lineage", built.baseline,
                        "--direction", "both")
    assert "upstream (inputs):" in out and "downstream (outputs):" in out


def test_lineage_list_and_json(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--store", str(built.store), "lineage", built.artifact,
                        "--direction", "up", "--list")
    assert code == 0
    assert f"{built.baseline} --produced--> {built.artifact} (artifact: report.txt)" in \
        out.splitlines()

    code, out, _ = call(capsys, "--store", str(built.store), "lineage", built.baseline,
                        "--direction", "down", "--depth", "1", "--json")
    data = strict_json(out)
    assert data["root"] == built.baseline and data["direction"] == "down"
    assert {(e["src"], e["dst"], e["relation"]) for e in data["edges"]} == {
        (built.baseline, built.child, "parent"),
        (built.baseline, built.artifact, "produced"),
    }

    code, _, err = call(capsys, "--store", str(built.store), "lineage", "mdl_nothing")
    assert code == 1
    assert_one_error_line(err)


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_history(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--store", str(built.store), "metrics", built.baseline, "loss")
    assert code == 0
    rows = table(out)
    assert rows[0] == ["step", "value", "timestamp"]
    assert [r[:2] for r in rows[1:]] == [["0", "1"], ["1", "0.5"], ["2", "0.25"]]

    code, out, _ = call(capsys, "--store", str(built.store), "metrics", built.baseline[:12],
                        "big", "--json")
    (point,) = strict_json(out)
    assert point["step"] == 0 and point["value"] == "Infinity"
    datetime.fromisoformat(point["timestamp"])

    code, _, err = call(capsys, "--store", str(built.store), "metrics", built.baseline, "nope")
    assert code == 1
    assert_one_error_line(err)
    assert "acc, big, loss, weird" in err


# -- errors and options -----------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["runs", "ls"],
    ["runs", "show", "01HX000000"],
    ["sql", "select 1"],
    ["lineage", "01HX000000"],
    ["metrics", "01HX000000", "loss"],
])
def test_no_store_is_reported_and_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              argv: list[str]) -> None:
    missing = tmp_path / "nowhere" / "store"
    code, out, err = call(capsys, *argv, "--store", str(missing))
    assert (code, out) == (1, "")
    assert_one_error_line(err)
    assert f"no nbtrail store at {missing}" in err
    assert "pass --store PATH" in err
    assert not (tmp_path / "nowhere").exists()


def test_default_location_follows_nbtrail_home(built: Built, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NBTRAIL_HOME", str(built.store))
    code, out, _ = call(capsys, "runs", "ls", "--json")
    assert code == 0 and len(strict_json(out)) == 4

    monkeypatch.delenv("NBTRAIL_HOME")
    code, _, err = call(capsys, "runs", "ls")
    assert code == 1
    assert f"no nbtrail store at {tmp_path.resolve() / '.nbtrail'}" in err
    assert not (tmp_path / ".nbtrail").exists()

    # The database file itself is accepted for --store.
    code, out, _ = call(capsys, "--store", str(built.store / "nbtrail.duckdb"), "runs", "ls")
    assert code == 0 and len(table(out)) == 5


@pytest.mark.parametrize("argv, fragment", [
    (["runs", "ls", "--where", "metrcs.acc > 1"], "unknown prefix 'metrcs'"),
    (["runs", "ls", "--where", "metrics.acc >"], "expected a value"),
    (["runs", "ls", "--order-by", "-"], "invalid order_by"),
])
def test_bad_filter(built: Built, capsys: pytest.CaptureFixture[str], argv: list[str],
                    fragment: str) -> None:
    code, out, err = call(capsys, "--store", str(built.store), *argv)
    assert (code, out) == (1, "")
    assert err.startswith("nbtrail: error: invalid ")
    assert fragment in err
    assert "^" in err  # the filter's own message points at the mistake


@pytest.mark.parametrize("argv", [
    ["runs", "show", "ZZZZZZZZZZ"],
    ["runs", "show", "01"],
    ["metrics", "ZZZZZZZZZZ", "loss"],
    ["lineage", "ZZZZZZZZZZ"],
])
def test_unknown_run(built: Built, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = call(capsys, "--store", str(built.store), *argv)
    assert (code, out) == (1, "")
    assert_one_error_line(err)
    assert "no run" in err


def test_ambiguous_prefix(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    # ULIDs start with the time: runs started milliseconds apart share 8 or so characters.
    shared = built.baseline[: _runs.common_prefix(built.baseline, built.child)]
    assert len(shared) >= 6
    code, _, err = call(capsys, "--store", str(built.store), "runs", "show", shared)
    assert code == 1
    assert_one_error_line(err)
    assert "ambiguous" in err


@pytest.mark.parametrize("argv", [
    [],
    ["runs"],
    ["runs", "lss"],
    ["runs", "ls", "--limit", "-1"],
    ["runs", "ls", "--limit", "many"],
    ["runs", "ls", "--columns", ","],
    ["lineage", "x", "--direction", "sideways"],
    ["lineage", "x", "--depth", "0"],
    ["metrics", "run-only"],
    ["runs", "ls", "--bogus"],
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = call(capsys, *argv)
    assert (code, out) == (2, "")
    assert_one_error_line(err)


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--version")
    assert (code, out) == (0, f"nbtrail {nt.__version__}\n")
    code, out, _ = call(capsys, "runs", "ls", "--help")
    assert code == 0 and "--order-by" in out


# -- helpers ----------------------------------------------------------------------------------


def test_short_ids_grow_until_unique() -> None:
    same_ms = ["01HX0AAAAA" + "BCDE" + "0" * 12, "01HX0AAAAA" + "BCXY" + "0" * 12]
    other = "01HX0BBBBB" + "1" * 16
    short = _runs.short_ids([same_ms[0], other], [*same_ms, other])
    assert short == {same_ms[0]: same_ms[0][:13], other: other[:10]}


def test_glue_order_by() -> None:
    assert _glue_order_by(["runs", "ls", "--order-by", "-metrics.acc", "--json"]) == [
        "runs", "ls", "--order-by=-metrics.acc", "--json"]
    assert _glue_order_by(["--order-by", "--json"]) == ["--order-by", "--json"]
    assert _glue_order_by(["--", "--order-by", "-x"]) == ["--", "--order-by", "-x"]


def test_jsonable_is_strict_json() -> None:
    from decimal import Decimal

    value = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, 1: (1.5, Decimal("2.50")),
             "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "big": Decimal(10**30),
             "raw": b"\x00\xff", "set": {3}}
    text = json.dumps(jsonable(value, nonfinite="text"), allow_nan=False)
    assert strict_json(text) == {
        "nan": "NaN", "inf": "Infinity", "ninf": "-Infinity", "1": [1.5, 2.5],
        "when": "2024-01-02T03:04:05+00:00", "big": 10**30, "raw": "00ff", "set": [3]}


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (0.04, "0.0s"), (4.25, "4.2s"), (187, "3m07s"), (7500, "2h05m"),
    (3 * 86400 + 4 * 3600, "3d04h"),
])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert _render.format_duration(seconds) == text


@pytest.mark.parametrize("size, text", [
    (None, "-"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 2**20, "5.0 MiB"),
    (3 * 2**40, "3.0 TiB"),
])
def test_format_size(size: int | None, text: str) -> None:
    assert _render.format_size(size) == text


def test_sql_reads_the_query_from_stdin(built: Built, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("select name from runs\nwhere name = 'tuned'"))
    code, out, _ = call(capsys, "--store", str(built.store), "sql", "-", "--json")
    assert code == 0
    assert strict_json(out) == [{"name": "tuned"}]


# -- as a real program ------------------------------------------------------------------------


def run_cli(*argv: str, cwd: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "NBTRAIL_HOME"}
    full_env.update({"PYTHONPATH": str(SRC), **(env or {})})
    return subprocess.run([sys.executable, "-m", "nbtrail.cli", *argv], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


def test_subprocess_json_and_errors(built: Built, tmp_path: Path) -> None:
    proc = run_cli("--store", str(built.store), "runs", "ls", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {r["run_id"] for r in strict_json(proc.stdout)} == {
        built.baseline, built.child, built.tuned, built.broken}

    proc = run_cli("runs", "show", built.baseline, cwd=tmp_path,
                   env={"NBTRAIL_HOME": str(built.store)})
    assert proc.returncode == 0, proc.stderr
    assert built.baseline in proc.stdout

    proc = run_cli("runs", "ls", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert_one_error_line(proc.stderr)
    assert not (tmp_path / ".nbtrail").exists()

    proc = run_cli("--store", str(built.store), "sql", "delete from runs", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr

    proc = run_cli("runs", "ls", "--limit", "x", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert_one_error_line(proc.stderr)


def test_import_is_light(tmp_path: Path) -> None:
    code = ("import sys, nbtrail.cli; "
            "print(sorted(m for m in ('polars', 'duckdb', 'pyarrow') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# -- one flag name, the error table, a store the dashboard may start on ----------------------


def test_compare_takes_trusted_and_the_old_spelling_warns_with_its_last_version(
        built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "--store", str(built.store), "compare", "--runs", built.baseline,
                        built.tuned, "--no-latency", "--trusted")
    assert code == 0 and err == ""

    args = cli.build_parser().parse_args(["compare", "--runs", "x", "--trust-models"])
    assert args.trusted is True
    err = capsys.readouterr().err
    assert err == ("nbtrail: warning: --trust-models is deprecated and goes away in nbtrail "
                   "0.3.0; use --trusted\n")

    code, out, _ = call(capsys, "compare", "--help")
    assert code == 0 and "--trusted" in out and "--trust-models" not in out


def test_the_exit_status_of_an_error_comes_from_the_error_table(
        built: Built, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from nbtrail import errors

    monkeypatch.setitem(errors.OUTCOMES, errors.NotFoundError, errors.Outcome(7, 404))
    code, _, err = call(capsys, "--store", str(built.store), "runs", "show", "01NOSUCHRUN")
    assert code == 7
    assert_one_error_line(err)
    # A missing store is a NotFoundError too.
    code, _, _ = call(capsys, "--store", str(built.store / "nowhere"), "runs", "ls")
    assert code == 7


def test_dashboard_starts_on_a_folder_where_nothing_was_logged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import nbtrail.dashboards

    served: list[nt.Store] = []
    monkeypatch.setattr(nbtrail.dashboards, "serve", lambda store, **_: served.append(store))
    empty = tmp_path / "nothing-logged"
    code, _, err = call(capsys, "--store", str(empty), "dashboard", "--port", "0")
    assert code == 0, err
    assert [store.home for store in served] == [empty.resolve()]
    with pytest.raises(nt.NbtrailError, match="read-only"):
        served[0].writer()
    assert not empty.exists()  # the CLI creates nothing; the dashboard reads read-only


@pytest.mark.parametrize("spec", ["train:objective\n", "train:objective\r\n", "train", ":f"])
def test_sweep_worker_refuses_an_objective_that_is_not_module_function(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str) -> None:
    pytest.importorskip("optuna")
    code, _, err = call(capsys, "--store", str(tmp_path / "store"), "sweep", "worker", "s",
                        "--objective", spec, "--n-trials", "1")
    assert code == 1
    assert "--objective must be 'module:function'" in err


@pytest.mark.parametrize("name", ["pk\n", "Pk", "pk-"])
def test_package_refuses_a_name_kubernetes_would_not_take(
        built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = call(capsys, "--store", str(built.store), "package", built.baseline,
                        "--name", name, "--no-build", "--json")  # --json: no progress lines
    assert code == 1
    assert_one_error_line(err)
    assert f"package name {name!r} is not usable as an image and Kubernetes name" in err
    assert not (tmp_path / "dist").exists()


def test_sync_folds_what_a_killed_process_left_and_status_says_what_waits(tmp_path: Path) -> None:
    store = tmp_path / "store"
    killed = run_python(textwrap.dedent(f"""
        import os, nbtrail as nt
        nt.config.set(home={str(store)!r}, capture_git=False, fold_interval=1e9)
        with nt.run(name="left") as run:
            for step in range(500):
                run.log_metric("m", step, step=step)
        nt.open_store().writer().flush()
        os._exit(0)  # no exit fold
    """))
    assert killed.returncode == 0, killed.stderr
    status = run_cli("sync", "--status", "--store", str(store), "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    before = strict_json(status.stdout)
    assert before["journals"] == 1 and before["bytes"] > 500 * 32
    done = run_cli("sync", "--store", str(store), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no records and no blobs wait to land; last synced" in done.stdout
    proc = run_cli("--store", str(store), "sql", "select count(*) as n from metrics",
                   "--json", cwd=tmp_path)
    assert strict_json(proc.stdout) == [{"n": 500}]


def test_store_init_and_doctor_on_the_embedded_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fresh = run_cli("store", "doctor", "--store", str(store), cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "does not exist yet: the first run makes it" in fresh.stdout
    made = run_cli("store", "init", str(store), cwd=tmp_path)
    assert made.returncode == 0 and "(created)" in made.stdout, made.stderr
    again = run_cli("store", "init", str(store), cwd=tmp_path)
    assert "(already)" in again.stdout
    (store / "quarantine").mkdir()
    (store / "quarantine" / "x.nbj3@0.json").write_text("{}")
    sick = run_cli("store", "doctor", "--store", str(store), "--json", cwd=tmp_path)
    assert sick.returncode == 1
    problems = [c for c in strict_json(sick.stdout)["checks"] if not c["ok"]]
    assert [c["name"] for c in problems] == ["records"]
    assert "fix what wrote them, then delete them" in problems[0]["detail"]
