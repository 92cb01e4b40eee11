"""The tracking API end to end, against a real store folder."""

import math
import subprocess
import time

import duckdb
import numpy as np
import polars as pl
import pytest

import nbtrail as nt
from nbtrail.errors import FilterError, InvalidInputError, NotFoundError, RunFinishedError
from nbtrail.store._schema import SCHEMA_VERSION
from nbtrail.tracking._tracker import get_store


def test_run_records_params_metrics_tags_and_status(home):
    with nt.run(name="baseline", tags={"team": "risk"}) as run:
        run.log_params({"C": 1.0, "penalty": "l2", "n": 3, "flag": True, "layers": [1, 2]})
        for step in range(5):
            run.log_metric("loss", 1 / (step + 1), step=step)
        run.log_metrics({"acc": 0.91, "f1": 0.88})
        nt.log_metric("acc", 0.93)  # module-level: goes to the active run
    got = nt.get_run(run.run_id)
    assert got.status == "finished" and got.end_time is not None
    assert got.params == {"C": 1.0, "penalty": "l2", "n": 3, "flag": True, "layers": [1, 2]}
    assert got.metrics == {"loss": 0.2, "acc": 0.93, "f1": 0.88}
    assert got.tags == {"team": "risk"}
    assert got.experiment == "default"  # outside git
    assert got.git is None
    assert got.env["python"].count(".") == 2 and "duckdb" in got.env["packages"]
    history = nt.metric_history(run.run_id, "loss")
    assert history.columns == ["step", "value", "timestamp"]
    assert history["step"].to_list() == [0, 1, 2, 3, 4]
    assert nt.metric_history(run.run_id, "acc")["value"].to_list() == [0.91, 0.93]


def test_a_run_records_the_os_user_and_the_machine(home, monkeypatch):
    import getpass
    import os
    import socket

    with nt.run() as run:
        pass
    got = nt.get_run(run.run_id)
    assert (got.user, got.host) == (getpass.getuser(), socket.gethostname())

    def no_passwd_entry() -> str:
        raise KeyError("getpwuid(): uid not found")

    monkeypatch.setattr(getpass, "getuser", no_passwd_entry)  # a container's bare uid
    with nt.run() as run:
        pass
    assert nt.get_run(run.run_id).user == str(os.getuid())


def test_failed_run_records_the_exception(home):
    with pytest.raises(ZeroDivisionError), nt.run(name="broken") as run:
        1 / 0  # noqa: B018
    got = nt.get_run(run.run_id)
    assert got.status == "failed"
    assert got.error == "ZeroDivisionError: division by zero"


def test_nested_runs_and_parent(home):
    with nt.run(name="sweep") as parent:
        with nt.run(name="trial-1") as child:
            nt.log_metric("score", 1.0)
        assert nt.active_run() is parent
    assert nt.active_run() is None
    assert child.parent_id == parent.run_id
    assert nt.get_run(parent.run_id).children == [child.run_id]
    assert nt.get_run(child.run_id).metrics == {"score": 1.0}
    assert nt.get_run(parent.run_id).metrics == {}


def test_run_ids_sort_by_time(home):
    ids = []
    for _ in range(5):
        with nt.run() as run:
            ids.append(run.run_id)
    assert ids == sorted(ids)
    assert nt.runs(order_by="start_time")["run_id"].to_list() == ids


def test_runs_query_filters_orders_and_types_columns(home):
    for i, penalty in enumerate(["l1", "l2", "l2", "l2"]):
        with nt.run(name=f"r{i}") as run:
            run.log_params({"C": 0.5 * (i + 1), "penalty": penalty, "depth": i})
            run.log_metric("acc", 0.85 + 0.03 * i)
    frame = nt.runs(where="metrics.acc > 0.9 and params.penalty = 'l2'", order_by="-metrics.acc")
    assert frame["name"].to_list() == ["r3", "r2"]
    assert frame.schema["params.C"] == pl.Float64
    assert frame.schema["params.depth"] == pl.Int64
    assert frame.schema["metrics.acc"] == pl.Float64
    assert nt.runs(where="params.C >= 1.5", order_by="name")["name"].to_list() == ["r2", "r3"]
    assert nt.runs(limit=2).height == 2
    # A key no run has is a NULL column, so the filter simply matches nothing.
    assert nt.runs(where="metrics.never_logged > 1").height == 0
    with pytest.raises(FilterError, match="position"):
        nt.runs(where="metrics.acc > and")


def test_experiment_scope(home):
    with nt.run(experiment="a"):
        nt.log_param("x", 1)
    with nt.run(experiment="b"):
        nt.log_param("y", 2)
    only_a = nt.runs(experiment="a")
    assert only_a.height == 1
    assert "params.x" in only_a.columns and "params.y" not in only_a.columns


def test_nan_and_inf_metrics_round_trip(home):
    with nt.run() as run:
        run.log_metric("a", float("nan"))
        run.log_metric("b", float("inf"))
        run.log_metric("c", -np.inf)
    got = nt.get_run(run.run_id).metrics
    assert math.isnan(got["a"]) and got["b"] == math.inf and got["c"] == -math.inf


def test_unicode_keys_and_values_round_trip(home):
    with nt.run(name="exp—ñ 🚀", tags={"équipe": "données"}) as run:
        run.log_params({"λ": "α/β", "名前": "値"})
        run.log_metric("précision", 0.5)
    got = nt.get_run(run.run_id)
    assert got.name == "exp—ñ 🚀"
    assert got.params == {"λ": "α/β", "名前": "値"}
    assert got.tags == {"équipe": "données"}
    assert nt.runs(where="metrics.`précision` = 0.5").height == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.log_metric("acc", "high"), "metric 'acc' got 'high'"),
        (lambda r: r.log_metric("", 1.0), "empty"),
        (lambda r: r.log_metric("x" * 300, 1.0), "at most 250"),
        (lambda r: r.log_param("bad\nkey", 1), "control characters"),
        (lambda r: r.log_params(["not", "a", "dict"]), "expected a mapping"),
        (lambda r: r.log_metric("acc", 1.0, step="3"), "step must be an integer"),
        (lambda r: r.log_metric("acc", 1.0, step=2**63), "step must be an integer of 64 bits"),
        (lambda r: r.log_metric("acc", 1.0, timestamp="now"), "timestamp must be seconds"),
        (lambda r: r.log_metric("acc", 1.0, timestamp=1e300), "timestamp must be seconds"),
        (lambda r: r.log_artifact("does/not/exist.png"), "does not exist"),
    ],
)
def test_bad_input_is_a_clear_error(home, call, message):
    with nt.run() as run, pytest.raises(InvalidInputError, match=message):
        call(run)


def test_a_refused_metric_point_loses_none_of_the_others(home):
    with nt.run() as run:
        run.log_metric("acc", 0.5, step=0)
        with pytest.raises(InvalidInputError):
            run.log_metric("acc", 0.6, step=2**64)  # once, this broke the whole flush
        run.log_metric("acc", 0.7, step=1)
    assert nt.metric_history(run.run_id, "acc")["value"].to_list() == [0.5, 0.7]


def test_changing_a_param_is_refused(home):
    with nt.run() as run:
        run.log_param("C", 1.0)
        run.log_param("C", 1.0)  # same value: fine
        with pytest.raises(InvalidInputError, match="already logged"):
            run.log_param("C", 2.0)


def test_logging_to_a_finished_run_is_refused(home):
    with nt.run() as run:
        run.log_metric("acc", 1.0)
    with pytest.raises(RunFinishedError, match=r"'acc'.*already finished"):
        run.log_metric("acc", 2.0)
    with pytest.raises(RunFinishedError, match="'new'"):
        run.log_metric("new", 2.0)
    with pytest.raises(nt.NbtrailError, match="no active run"):
        nt.log_metric("acc", 1.0)


def test_artifacts_are_content_addressed(home, tmp_path):
    (tmp_path / "a.txt").write_text("same bytes")
    (tmp_path / "b.txt").write_text("same bytes")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "x.csv").write_text("1,2\n")
    with nt.run() as run:
        first = run.log_artifact(tmp_path / "a.txt")
        second = run.log_artifact(tmp_path / "b.txt")
        folder = run.log_artifact(tmp_path / "plots")
    assert first == second
    got = nt.get_run(run.run_id)
    assert sorted(a["name"] for a in got.artifacts) == ["a.txt", "b.txt", "plots/x.csv"]
    blobs = [p for p in (home / "artifacts").rglob("*") if p.is_file()]
    assert len(blobs) == 2
    assert nt.artifact_path(run.run_id, "plots/x.csv").read_text() == "1,2\n"
    with pytest.raises(NotFoundError, match=r"its artifacts: a\.txt, b\.txt, plots/x\.csv"):
        nt.artifact_path(run.run_id, "nope.txt")
    assert nt.lineage(folder[0], direction="up").ids("run") == [run.run_id]


def test_datasets_and_models_with_lineage(home):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=300).fit(X, y)
    with nt.run(name="first") as run1:
        ds = run1.log_dataset(X, name="iris", role="train")
        model_id = run1.log_model(model, name="clf")
    with nt.run(name="second") as run2:
        assert run2.log_dataset(X.copy(), name="iris again", role="train") == ds
    got = nt.get_run(run1.run_id)
    assert got.datasets[0]["n_rows"] == 150
    assert got.datasets[0]["stats"]["sepal length (cm)"]["min"] == pytest.approx(4.3)
    [stored] = got.models
    assert stored["model_id"] == model_id and stored["format"] == "skops"
    names = [c["name"] for c in stored["signature"]["inputs"]]
    assert names == list(X.columns)
    assert nt.sql("select count(*) as n from datasets")["n"][0] == 1
    up = nt.lineage(model_id, direction="up")
    assert {run1.run_id, ds} <= set(up.ids())
    down = nt.lineage(ds, direction="down")
    assert {run1.run_id, run2.run_id, model_id} <= set(down.ids())
    loaded = nt.load_model(model_id)
    assert (loaded.predict(X) == model.predict(X)).all()


def test_sql_is_read_only_and_confined(home):
    with nt.run():
        pass
    assert nt.sql("select count(*) as n from runs")["n"][0] == 1
    with pytest.raises(InvalidInputError, match="read-only"):
        nt.sql("delete from runs")
    with pytest.raises(InvalidInputError):
        nt.sql("select * from read_csv('/etc/passwd')")
    with pytest.raises(InvalidInputError, match="invalid SQL"):
        nt.sql("selec nothing")


def test_unknown_ids_are_clear_errors(home):
    with nt.run():
        pass
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        nt.get_run("nope")
    with pytest.raises(NotFoundError, match="no metric"):
        nt.metric_history(nt.runs()["run_id"][0], "loss")
    with pytest.raises(NotFoundError):
        nt.lineage("mdl_missing")


def test_missing_store_is_a_clear_error(tmp_path):
    nothing = str(tmp_path / "nothing")
    with nt.config(home=nothing), pytest.raises(nt.NbtrailError, match="no nbtrail store"):
        nt.runs()
    assert not (tmp_path / "nothing").exists()


def test_store_opens_with_the_stock_duckdb_cli(home):
    import os
    import shutil
    import sys
    from pathlib import Path

    cli = shutil.which("duckdb", path=f"{Path(sys.executable).parent}{os.pathsep}"
                       f"{os.environ.get('PATH', '')}")
    if cli is None:
        assert not os.environ.get("CI"), "the duckdb CLI must be installed in CI"
        pytest.skip("the duckdb CLI is not installed (pip install duckdb-cli)")
    with nt.run(name="from nbtrail") as run:
        run.log_metric("m", 2.5)
    nt.sync()
    out = subprocess.run(
        [cli, "-readonly", "-csv", str(home / "nbtrail.duckdb"),
         "-c", "select r.name, m.value from runs r join metrics m using (run_id)"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.splitlines() == ["name,value", "from nbtrail,2.5"]


def test_store_opens_with_stock_duckdb(home):
    with nt.run(name="x") as run:
        run.log_metric("m", 1.0)
    nt.sync()
    con = duckdb.connect(str(home / "nbtrail.duckdb"), read_only=True)
    assert con.sql("select name, status from runs").fetchall() == [("x", "finished")]
    assert con.sql("select max(version) from schema_info").fetchall() == [(SCHEMA_VERSION,)]
    con.close()


def test_run_in_a_git_repo_records_branch_and_snapshot(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "feat/x"], check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    (repo / "train.py").write_text("print(2)\n")  # dirty
    monkeypatch.chdir(repo)
    monkeypatch.delenv("NBTRAIL_HOME", raising=False)
    with nt.run(name="git run") as run, nt.run(name="trial") as child:
        pass
    got = nt.get_run(run.run_id)  # the store defaults to .nbtrail at the git root
    assert (repo / ".nbtrail" / "journal").is_dir()
    assert got.experiment == "feat/x"
    assert got.git["branch"] == "feat/x" and got.git["dirty"] is True
    shown = subprocess.run([*git, "show", f"refs/nbtrail/runs/{run.run_id}:train.py"],
                           capture_output=True, text=True, check=True).stdout
    assert shown == "print(2)\n"
    assert got.code["snapshot_commit"] == got.git["snapshot"]
    # A child shares its parent's snapshot instead of taking one of its own.
    assert nt.get_run(child.run_id).git == got.git
    refs = subprocess.run([*git, "for-each-ref", "refs/nbtrail"], capture_output=True,
                          text=True, check=True).stdout.splitlines()
    assert len(refs) == 1


def test_an_idle_writer_leaves_the_database_alone(home, monkeypatch):
    # Folding opens the database read-write, which locks out other programs (the duckdb
    # CLI, a dashboard): a process that logs nothing new must not fold.
    with nt.config(home=str(home), fold_interval=0.0):
        run = nt.run(name="idle")
        run.log_metric("m", 1.0)
        nt.sync()
        folds = []
        monkeypatch.setattr(get_store(), "try_fold", lambda **_: folds.append(1))
        time.sleep(1.0)  # five flush intervals
        assert folds == []
        run.log_metric("m", 2.0)
        deadline = time.monotonic() + 10
        while not folds and time.monotonic() < deadline:
            time.sleep(0.05)
        assert folds, "a new write was never folded"
        monkeypatch.undo()
        run.end()


def test_tags_from_the_environment_label_top_level_runs(home, monkeypatch):
    monkeypatch.setenv("NBTRAIL_TAGS", '{"launched_by": "ci", "team": "env"}')
    with nt.run(name="outer", tags={"team": "risk"}) as outer, nt.run(name="inner") as inner:
        pass
    assert nt.get_run(outer.run_id).tags == {"launched_by": "ci", "team": "risk"}
    assert nt.get_run(inner.run_id).tags == {}
    monkeypatch.setenv("NBTRAIL_TAGS", "[1, 2]")
    with pytest.raises(InvalidInputError, match="NBTRAIL_TAGS must be a JSON object"):
        nt.run(name="bad")
    assert nt.runs()["name"].to_list().count("bad") == 0  # nothing half-written
