"""``nt.import_mlflow`` and ``nbtrail import mlflow`` against stores MLflow itself wrote."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import nbtrail as nt
from nbtrail import cli
from nbtrail.errors import InvalidInputError, MissingExtraError
from nbtrail.importers import _mlflow
from nbtrail.importers._mlflow import RUN_ID_TAG, STATE_TAG
from nbtrail.importers._registry import TAG_PREFIX

from ..conftest import free_port, require, stop

require(importlib.util.find_spec("mlflow") is not None,
        "mlflow is not installed (pip install -e '.[test]')")

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402

T0 = 1_700_000_000_000  # MLflow's times are milliseconds since the epoch
STATUSES = {"RUNNING": "running", "FINISHED": "finished", "FAILED": "failed",
            "KILLED": "killed"}


# MLflow 3 refuses its file store without the first; no telemetry or progress bars in tests.
MLFLOW_ENV = {"MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
              "DO_NOT_TRACK": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


@pytest.fixture(autouse=True)
def _mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in MLFLOW_ENV.items():
        monkeypatch.setenv(name, value)


def tracking_uri(kind: str, folder: Path) -> str:
    return (f"file://{folder / 'mlruns'}" if kind == "file"
            else f"sqlite:///{folder / 'mlflow.db'}")


@dataclass
class Made:
    uri: str
    client: Any
    ids: dict[str, str]  # run name -> MLflow run id


def populate(uri: str, folder: Path) -> Made:
    """Nested runs, metric histories, artifacts and two registered model versions."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    artifacts = (folder / "artifacts").as_uri()
    churn = client.create_experiment("churn", artifact_location=f"{artifacts}/churn")
    fraud = client.create_experiment("fraud", artifact_location=f"{artifacts}/fraud")
    ids = {}
    sweep = client.create_run(churn, run_name="sweep", start_time=T0)  # left running
    ids["sweep"] = sweep.info.run_id
    for i, status in enumerate(["FINISHED", "FAILED"]):
        run = client.create_run(churn, run_name=f"trial-{i}", start_time=T0 + 1000 * (i + 1),
                                tags={"mlflow.parentRunId": sweep.info.run_id})
        run_id = ids[f"trial-{i}"] = run.info.run_id
        loss = [Metric("loss", 1 / (s + 1) + i, T0 + 5000 + 7 * s, s) for s in range(60)]
        # A step logged twice, a NaN and an infinity: every point must arrive as it is.
        acc = [Metric("acc", 0.5, T0 + 6000, 0), Metric("acc", 0.6, T0 + 6001, 1),
               Metric("acc", 0.7, T0 + 6002, 1), Metric("acc", float("nan"), T0 + 6003, 2),
               Metric("acc", float("inf"), T0 + 6004, 3)]
        client.log_batch(run_id, metrics=loss + acc,
                         params=[Param("C", str(0.5 * (i + 1))), Param("penalty", "l2")],
                         tags=[RunTag("team", "risk"), RunTag("note", f"trial {i} é")])
        source = folder / f"files-{i}"
        (source / "plots" / "deep").mkdir(parents=True)
        (source / "plots" / "roc.txt").write_text(f"roc of trial {i}")
        (source / "plots" / "deep" / "weights.bin").write_bytes(os.urandom(300_000))
        (folder / f"summary-{i}.json").write_text(json.dumps({"trial": i}))
        client.log_artifacts(run_id, str(source / "plots"), "plots")
        client.log_artifact(run_id, str(folder / f"summary-{i}.json"))
        client.set_terminated(run_id, status, end_time=T0 + 9000 + i)
    # Nested under a run of another experiment, which MLflow allows.
    killed = client.create_run(fraud, run_name="scan", start_time=T0 + 20_000,
                               tags={"mlflow.parentRunId": sweep.info.run_id})
    ids["scan"] = killed.info.run_id
    client.log_metric(killed.info.run_id, "recall", -1.5, timestamp=T0 + 20_001, step=-3)
    client.set_terminated(killed.info.run_id, "KILLED", end_time=T0 + 21_000)

    client.create_registered_model("churn-model", tags={"owner": "risk"},
                                   description="the churn classifier")
    for i in range(2):
        client.create_model_version("churn-model", f"runs:/{ids[f'trial-{i}']}/model",
                                    run_id=ids[f"trial-{i}"], tags={"trial": str(i)})
    client.set_registered_model_alias("churn-model", "champion", "2")
    return Made(uri, client, ids)


@pytest.fixture(scope="module", params=["file", "sqlite"])
def made(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Made]:
    """One MLflow store of each kind for the module (MLflow's sqlite setup takes seconds)."""
    folder = tmp_path_factory.mktemp(f"mlflow-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in MLFLOW_ENV.items():
            mp.setenv(name, value)
        uri = tracking_uri(request.param, folder)
        with pytest.MonkeyPatch.context() as during:
            # MLflow's file registry writes through the global URI, as it reads (see
            # _global_uri_for_file_store); the import must cope without this.
            during.setenv("MLFLOW_TRACKING_URI", uri)
            made = populate(uri, folder)
        yield made


# -- what MLflow holds, read through its own client ---------------------------------------


def mlflow_runs(client: Any) -> list[Any]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(experiments, max_results=1000))


def mlflow_points(client: Any, run: Any, key: str) -> list[tuple[int, int, str]]:
    return sorted((m.step, m.timestamp, repr(m.value))
                  for m in client.get_metric_history(run.info.run_id, key))


def mlflow_artifacts(client: Any, run_id: str, path: str | None = None) -> dict[str, bytes]:
    found = {}
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            found.update(mlflow_artifacts(client, run_id, info.path))
        else:
            local = client.download_artifacts(run_id, info.path)
            found[info.path] = Path(local).read_bytes()
    return found


# -- what nbtrail holds --------------------------------------------------------------------


def by_mlflow_id(store: nt.Store) -> dict[str, nt.Run]:
    frame = store.run_tags([RUN_ID_TAG])
    return {row[RUN_ID_TAG]: store.get_run(row["run_id"]) for row in frame.iter_rows(named=True)}


def nbtrail_points(store: nt.Store, run: nt.Run, key: str) -> list[tuple[int, int, str]]:
    history = store.metric_history(run.run_id, key)
    return sorted((step, round(stamp.timestamp() * 1000), repr(value))
                  for step, value, stamp in history.iter_rows())


def own_tags(run: nt.Run) -> dict[str, str]:
    """A run's tags without those the import adds."""
    return {k: v for k, v in run.tags.items()
            if k not in (RUN_ID_TAG, STATE_TAG) and not k.startswith(TAG_PREFIX)}


def ms(moment: Any) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1000)


def table_counts(store: nt.Store) -> dict[str, int]:
    return {table: store.sql(f"select count(*) as n from {table}")["n"][0]
            for table in ("runs", "params", "tags", "metrics", "artifacts", "edges")}


# -- tests ----------------------------------------------------------------------------------


def test_import_copies_every_run_point_and_artifact(made: Made, tmp_path: Path) -> None:
    store = nt.open_store(tmp_path / "store")
    result = nt.import_mlflow(made.uri, store=store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # no ./mlflow.db made
    client = made.client
    runs = mlflow_runs(client)
    imported = by_mlflow_id(store)
    assert sorted(imported) == sorted(r.info.run_id for r in runs)
    assert store.count_runs() == len(runs) == result.runs == 4
    assert sorted(store.experiments()) == ["churn", "fraud"]
    assert result.experiments == 2

    points = artifacts = artifact_bytes = 0
    for run in runs:
        got = imported[run.info.run_id]
        assert got.name == run.info.run_name
        assert got.experiment == client.get_experiment(run.info.experiment_id).name
        assert got.status == STATUSES[run.info.status]
        assert ms(got.start_time) == run.info.start_time
        assert ms(got.end_time) == run.info.end_time
        parent = run.data.tags.get("mlflow.parentRunId")
        assert got.parent_id == (imported[parent].run_id if parent else None)
        assert got.params == run.data.params
        assert own_tags(got) == run.data.tags
        assert set(got.metrics) == set(run.data.metrics)
        for key in run.data.metrics:
            expected = mlflow_points(client, run, key)
            assert nbtrail_points(store, got, key) == expected  # point for point
            points += len(expected)
        files = mlflow_artifacts(client, run.info.run_id)
        assert {a["name"]: a["size_bytes"] for a in got.artifacts} == {
            name: len(content) for name, content in files.items()}
        for name, content in files.items():
            assert store.artifact_path(got.run_id, name).read_bytes() == content
        artifacts += len(files)
        artifact_bytes += sum(len(c) for c in files.values())

    assert points == result.metric_points == 2 * (60 + 5) + 1
    assert artifacts == result.artifacts == 6
    assert artifact_bytes == result.artifact_bytes
    assert result.params == sum(len(r.data.params) for r in runs)
    assert result.tags == sum(len(r.data.tags) for r in runs)
    nested = store.get_run(imported[made.ids["sweep"]].run_id)
    assert sorted(nested.children) == sorted(imported[made.ids[name]].run_id
                                             for name in ("trial-0", "trial-1", "scan"))
    assert result.notes == ()


def test_model_versions_and_aliases_become_tags_of_their_runs(
        made: Made, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = nt.open_store(tmp_path / "store")
    result = nt.import_mlflow(made.uri, store=store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", made.uri)  # for this test's own registry reads
    assert (result.registered_models, result.model_versions, result.aliases) == (1, 2, 1)
    imported = by_mlflow_id(store)
    for i in range(2):
        version = str(i + 1)
        tags = imported[made.ids[f"trial-{i}"]].tags
        recorded = json.loads(tags[f"{TAG_PREFIX}churn-model/{version}"])
        original = made.client.get_model_version("churn-model", version)
        assert recorded["version"] == version
        assert recorded["mlflow_run_id"] == original.run_id == made.ids[f"trial-{i}"]
        assert recorded["source"] == original.source
        assert recorded["tags"] == {"trial": str(i)}
        assert recorded["aliases"] == (["champion"] if version == "2" else [])
        assert recorded["registered_model"] == {"description": "the churn classifier",
                                                "tags": {"owner": "risk"}}
    assert not any(k.startswith(TAG_PREFIX) for k in imported[made.ids["sweep"]].tags)


def test_a_second_import_adds_nothing(made: Made, tmp_path: Path) -> None:
    store = nt.open_store(tmp_path / "store")
    nt.import_mlflow(made.uri, store=store)
    before = table_counts(store)
    again = nt.import_mlflow(made.uri, store=store)
    assert table_counts(store) == before
    assert again.runs_unchanged == 4
    counted = {k: v for k, v in vars(again).items()
               if k not in ("source", "notes", "runs_unchanged")}
    assert set(counted.values()) == {0}, counted


def test_a_run_that_gained_data_is_brought_up_to_date(tmp_path: Path) -> None:
    made = populate(tracking_uri("sqlite", tmp_path), tmp_path)
    store = nt.open_store(tmp_path / "store")
    nt.import_mlflow(made.uri, store=store)
    client, trial = made.client, made.ids["trial-0"]
    # After the import: more points on a finished run, a new param, a new artifact, the
    # running sweep ends, a new child run and an alias that moves to version 1.
    client.log_batch(trial, metrics=[Metric("loss", 0.01, T0 + 50_000 + s, 60 + s)
                                     for s in range(5)], params=[Param("seed", "7")])
    (tmp_path / "late.txt").write_text("late")
    client.log_artifact(trial, str(tmp_path / "late.txt"))
    client.set_terminated(made.ids["sweep"], "FINISHED", end_time=T0 + 60_000)
    late = client.create_run(client.get_experiment_by_name("churn").experiment_id,
                             run_name="trial-2", start_time=T0 + 61_000,
                             tags={"mlflow.parentRunId": made.ids["sweep"]})
    client.log_metric(late.info.run_id, "loss", 0.2, timestamp=T0 + 61_500, step=0)
    client.set_terminated(late.info.run_id, "FINISHED", end_time=T0 + 62_000)
    client.set_registered_model_alias("churn-model", "champion", "1")

    result = nt.import_mlflow(made.uri, store=store)
    assert (result.runs, result.runs_updated, result.runs_unchanged) == (1, 2, 2)
    assert result.metric_points == 5 + 1
    assert (result.params, result.artifacts) == (1, 1)
    # The alias moved: both versions' records changed.
    assert (result.model_versions, result.aliases) == (2, 1)
    imported = by_mlflow_id(store)
    got = imported[trial]
    run = client.get_run(trial)
    assert nbtrail_points(store, got, "loss") == mlflow_points(client, run, "loss")
    assert got.params == run.data.params
    assert "late.txt" in {a["name"] for a in got.artifacts}
    sweep = imported[made.ids["sweep"]]
    assert (sweep.status, ms(sweep.end_time)) == ("finished", T0 + 60_000)
    assert imported[late.info.run_id].parent_id == sweep.run_id
    assert json.loads(got.tags[f"{TAG_PREFIX}churn-model/1"])["aliases"] == ["champion"]
    assert store.count_runs() == 5


def test_only_the_experiments_asked_for(made: Made, tmp_path: Path) -> None:
    store = nt.open_store(tmp_path / "store")
    result = nt.import_mlflow(made.uri, experiments=["fraud"], store=store)
    assert (result.runs, store.experiments()) == (1, ["fraud"])
    # The parent and the model versions' runs were not imported: said, not silently dropped.
    scan = by_mlflow_id(store)[made.ids["scan"]]
    assert scan.parent_id is None and scan.tags["mlflow.parentRunId"] == made.ids["sweep"]
    assert result.model_versions == 0
    assert len(result.notes) == 3
    assert len([n for n in result.notes if "churn-model" in n]) == 2
    assert any(f"its parent run {made.ids['sweep']} is not imported" in n
               for n in result.notes)
    with pytest.raises(InvalidInputError, match=r"no experiment 'nope'.*churn, fraud"):
        nt.import_mlflow(made.uri, experiments=["nope"], store=store)


@pytest.mark.parametrize("uri", ["sqlite:///{tmp}/missing.db", "{tmp}/missing-mlruns",
                                 "file://{tmp}/missing-mlruns"])
def test_a_missing_local_store_is_refused_not_created(uri: str, tmp_path: Path) -> None:
    uri = uri.format(tmp=tmp_path)
    with pytest.raises(InvalidInputError, match="does not exist"):
        nt.import_mlflow(uri, store=nt.open_store(tmp_path / "store"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_without_mlflow_the_error_names_pip_install(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` meets uninstalled
    with pytest.raises(MissingExtraError, match="pip install mlflow"):
        nt.import_mlflow("sqlite:///mlflow.db", store=nt.open_store(tmp_path / "store"))


def test_cli_prints_one_line_a_kind_and_imports_once(
        made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    assert cli.main(["import", "mlflow", made.uri, "--store", str(store)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["experiments     2 new", "runs            4 new, 0 updated, 0 unchanged"]
    assert [line.split()[0] for line in out] == [
        "experiments", "runs", "params", "tags", "metric", "artifacts", "model"]
    assert cli.main(["import", "mlflow", made.uri, "--experiment", "churn", "fraud",
                     "--store", str(store)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "runs            0 new, 0 updated, 4 unchanged"
    assert nt.open_store(store).count_runs() == 4


def test_cli_bad_input_is_one_error_line(made: Made, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["import", "mlflow", made.uri, "--experiment", "nope", "--store", str(tmp_path)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("nbtrail: error: experiments: MLflow has no experiment 'nope'")
    assert len(err.splitlines()) == 1
    assert cli.main(["import", "mlflow"]) == 2


def test_result_repr_is_readable(made: Made, tmp_path: Path) -> None:
    result = nt.import_mlflow(made.uri, store=nt.open_store(tmp_path / "store"))
    text = repr(result)
    assert text.startswith(f"<ImportResult from {made.uri}: experiments 2 new; runs 4 new")
    assert "metric points 131; artifacts 6" in text
    assert "model versions 2 of 1 registered models, 1 aliases" in text


@pytest.mark.slow  # MLflow's server takes 30-90 s to start on a busy 2-core machine
def test_import_from_a_tracking_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = populate(tracking_uri("sqlite", tmp_path), tmp_path)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", made.uri,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | MLFLOW_ENV)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # MLflow's server starts slowly on a busy machine
        while not _answers(f"{uri}/health"):
            assert server.poll() is None, "mlflow server exited"
            assert time.monotonic() < deadline, "mlflow server did not start in 180 s"
            time.sleep(0.5)
        store = nt.open_store(tmp_path / "store")
        result = nt.import_mlflow(uri, store=store)
        assert (result.runs, result.metric_points, result.artifacts) == (4, 131, 6)
        assert (result.model_versions, result.aliases) == (2, 1)
        assert nt.import_mlflow(uri, store=store).runs_unchanged == 4
    finally:
        stop(server)
    # A server that does not answer: one clear error, after no retries here.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(InvalidInputError, match=f"MLflow cannot read the tracking URI {uri}"):
        nt.import_mlflow(uri, store=nt.open_store(tmp_path / "store"))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_progress_lines_count_the_runs(made: Made, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_mlflow, "_PROGRESS_EVERY", 2)
    lines: list[str] = []
    nt.import_mlflow(made.uri, store=nt.open_store(tmp_path / "store"), progress=lines.append)
    assert lines == ["imported 2 of 4 runs", "imported 4 of 4 runs"]
