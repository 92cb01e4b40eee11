"""nt.retrain and `nbtrail retrain`: a real repo, a training notebook run by real kernels."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import polars as pl
import pytest

import nbtrail as nt
from nbtrail import cli
from nbtrail.errors import ConflictError, InvalidInputError, ReproduceError
from nbtrail.experiments._reproduce import _inject
from nbtrail.registry import _api
from nbtrail.registry._retrain import RETRAINS_TAG, retrain_in
from nbtrail.store import Store

from ..conftest import isolate_git
from ._training import kernels_import_this_nbtrail, train_in_repo

COLUMNS = [f"f{i}" for i in range(4)]
TRAIN = """\
import polars as pl
import nbtrail as nt
from sklearn.linear_model import LogisticRegression

frame = pl.read_parquet(data_path)
X, y = frame.drop(labels).to_pandas(), frame[labels].to_numpy()
with nt.run(name="train-churn") as run:
    run.log_param("data_path", data_path)
    run.log_dataset(X, role="train")
    model = LogisticRegression().fit(X, y)
    run.log_model(model, name="churn-model")
    run.log_metric("train_accuracy", model.score(X, y))
"""


@dataclass(frozen=True)
class Project:
    repo: Path
    store: Path
    data: dict[str, str]  # "train", "recent", "holdout", "shifted" -> Parquet path
    champion_run: str


@pytest.fixture(autouse=True)
def _kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    kernels_import_this_nbtrail(monkeypatch)


def _frames() -> dict[str, pl.DataFrame]:
    from sklearn.datasets import make_classification

    X, y = make_classification(900, len(COLUMNS), n_informative=3, n_redundant=0,
                               random_state=0)
    frame = pl.DataFrame(X, schema=COLUMNS).with_columns(y=pl.Series(y))
    # Fitted on rows 0-299 the model beats the one fitted on 300-599 on the holdout rows.
    recent = frame[:300]
    return {"train": frame[300:600], "recent": recent, "holdout": frame[600:],
            "shifted": recent.with_columns(pl.col(COLUMNS) + 3.0)}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """churn/1 @champion trained by a notebook with a ``parameters`` cell; @champion has a
    policy (accuracy on a holdout, approval required)."""
    base = tmp_path_factory.mktemp("retrain")
    data = {}
    for key, frame in _frames().items():
        data[key] = str(base / f"{key}.parquet")
        frame.write_parquet(data[key])
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        repo = base / "repo"
        store_dir = base / "store"
        train_in_repo(repo, store_dir, TRAIN, data=data["train"], labels="y")
        store = nt.open_store(store_dir)
        (run_id,) = store.runs()["run_id"].to_list()
        _api.register(store, run_id, name="churn")
        _api.set_alias(store, "churn", "champion", 1)
        _api.set_policy(store, "churn", "champion", {
            "metric": "accuracy", "data": data["holdout"], "target": "y"})
        store.close()
        yield Project(repo, store_dir, data, run_id)


@pytest.fixture
def store(project: Project, tmp_path: Path) -> Store:
    """A copy of the project's store: each test starts from churn/1 @champion alone."""
    shutil.copytree(project.store, tmp_path / "store")
    return nt.open_store(tmp_path / "store")


def test_always_registers_a_challenger_and_requests_champion(project: Project,
                                                             store: Store) -> None:
    data = project.data
    result = retrain_in(store, "churn", data=data["recent"], holdout=data["holdout"])
    assert result.fired and bool(result)
    assert result.champion.ref == "churn/1" and result.evidence == {}
    version = result.version
    assert version is not None and version.ref == "churn/2"
    assert version.aliases == ("challenger",) and result.challenger is None
    run = store.get_run(result.run_id)
    assert version.run_id == run.run_id and run.name == "train-churn"
    # The injected cell overrode the default: the notebook trained on the new data.
    assert run.params == {"data_path": data["recent"]}
    assert run.tags[RETRAINS_TAG] == project.champion_run
    assert run.git["commit"] == store.get_run(project.champion_run).git["snapshot"]

    request = result.request
    assert request is not None and request.alias == "champion" and request.ref == "churn/2"
    assert request.status == "pending"  # the checks passed; someone must approve
    (metric,) = request.checks
    assert metric["check"] == "metric" and metric["evidence"]["data"] == data["holdout"]
    assert metric["passed"] and metric["evidence"]["rows"] == 300
    assert metric["evidence"]["holder_version"] == 1
    assert metric["evidence"]["candidate"] > metric["evidence"]["holder"]
    assert _api.version(store, "churn@champion").version == 1  # nothing moved yet
    assert result.notes == ()

    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["fired"] is True and summary["trigger"] == "always"
    assert (summary["run_id"], summary["version"], summary["ref"]) == (
        run.run_id, 2, "churn/2")
    assert summary["request_id"] == request.request_id
    assert summary["request_status"] == request.status
    assert summary["checks"][0]["evidence"]["data"] == data["holdout"]
    assert "churn/2 @challenger" in result.summary()

    # The open request blocks another retraining before any notebook runs.
    with pytest.raises(ConflictError, match=r"churn@champion already has an open request"):
        retrain_in(store, "churn", data=data["recent"])


def test_drift_fires_on_shifted_data_only(project: Project, store: Store) -> None:
    same = nt.retrain("churn", data=project.data["recent"], when="drift", store=store)
    assert not same.fired and same.version is None and same.request is None
    assert same.evidence["verdict"] == "no drift in 4 features" and same.evidence["drifted"] == []
    assert _api.model_versions(store, "churn").height == 1
    assert "was not retrained" in same.summary()

    shifted = retrain_in(store, "churn", data=project.data["shifted"], when="drift")
    assert shifted.fired and shifted.version is not None and shifted.version.version == 2
    assert sorted(shifted.evidence["drifted"]) == COLUMNS
    assert shifted.holdout == project.data["shifted"]  # no holdout: the data itself
    assert shifted.request is not None
    assert shifted.request.checks[0]["evidence"]["data"] == project.data["shifted"]


def test_a_protected_challenger_and_an_unprotected_champion(project: Project,
                                                            store: Store) -> None:
    # Only the policies change, so the notebook's version 1 is retrained as before.
    _api.set_policy(store, "churn", "challenger", {"require_approval": False})
    _api.set_policy(store, "churn", "champion", {"require_approval": False})
    result = retrain_in(store, "churn", data=project.data["recent"])
    assert result.challenger is not None and result.challenger.status == "approved"
    assert result.request is not None and result.request.status == "approved"
    assert result.version is not None and result.version.aliases == ("challenger", "champion")


def test_stale_needs_labels_and_bad_inputs_fail_before_any_work(project: Project,
                                                                store: Store) -> None:
    with pytest.raises(InvalidInputError, match="when='stale' needs labels"):
        retrain_in(store, "churn", data=project.data["recent"], when="stale")
    with pytest.raises(InvalidInputError, match="when must be one of drift, stale, always"):
        retrain_in(store, "churn", data=project.data["recent"], when="sometimes")
    with pytest.raises(nt.NbtrailError, match=r"data '/nowhere\.parquet' does not exist"):
        retrain_in(store, "churn", data="/nowhere.parquet")


def test_parameters_go_in_a_cell_after_the_tagged_one() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import x"), nbformat.v4.new_code_cell("a = 1"),
                nbformat.v4.new_code_cell("print(a)")]
    nb.cells[1].metadata["tags"] = ["parameters"]
    _inject(nb, {"data_path": "/d/new 'data'.parquet", "labels": "y"}, "train.ipynb")
    assert [c.source for c in nb.cells] == [
        "import x", "a = 1", "data_path = \"/d/new 'data'.parquet\"\nlabels = 'y'",
        "print(a)"]
    assert nb.cells[2].metadata["tags"] == ["injected-parameters"]
    del nb.cells[1]
    with pytest.raises(ReproduceError, match=r"train\.ipynb has no cell tagged 'parameters'"):
        _inject(nb, {"data_path": "x"}, "train.ipynb")


def _no_snapshot_champion(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                          ) -> None:
    from sklearn.linear_model import LogisticRegression

    monkeypatch.chdir(tmp_path)
    frame = _frames()["train"]
    with nt.config(capture_git=False):
        run = nt.Tracker(store).start_run(name="in-a-script")
        run.log_model(LogisticRegression().fit(frame.drop("y").to_pandas(), frame["y"]),
                      name="m")
        run.end()
    _api.register(store, run.run_id, name="scripted")
    _api.set_alias(store, "scripted", "champion", 1)
    _api.register(store, run.run_id, name="aliasless")


def test_cli_exit_codes_and_summary(project: Project, store: Store, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    where = ["--store", store.location]
    summary = tmp_path / "summary.json"
    data = project.data
    assert cli.main(["retrain", "churn", "--data", data["recent"], "--when", "drift",
                     "--json", *where]) == 1
    out, _ = capsys.readouterr()
    assert json.loads(out)["fired"] is False and json.loads(out)["error"] is None

    assert cli.main(["retrain", "churn", "--data", data["recent"], "--holdout",
                     data["holdout"], "--labels", "y", "--summary", str(summary),
                     *where]) == 0
    out, err = capsys.readouterr()
    written = json.loads(summary.read_text())
    assert written["fired"] is True and written["version"] == 2
    assert written["request_status"] == "pending" and written["checks"][0]["passed"]
    assert "churn/2 @challenger" in out and "metric:" in out
    assert "executing train.ipynb" in err

    _no_snapshot_champion(store, tmp_path, monkeypatch)
    store.close()
    errors = {
        "ghost": "no registered model 'ghost'",
        "aliasless": "aliasless has no alias @champion",
        "scripted": "has no code snapshot",
    }
    for name, message in errors.items():
        assert cli.main(["retrain", name, "--data", data["recent"], "--summary",
                         str(summary), *where]) == 2
        _, err = capsys.readouterr()
        assert err.startswith("nbtrail: error:") and message in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert message in json.loads(summary.read_text())["error"]
    assert cli.main(["retrain", "churn", "--data", str(tmp_path / "gone.parquet"),
                     *where]) == 2
    assert "gone.parquet' does not exist" in capsys.readouterr().err


def test_stale_fires_with_the_staleness_reasons(project: Project, store: Store) -> None:
    result = retrain_in(store, "churn", data=project.data["shifted"], when="stale",
                        labels="y", holdout=project.data["holdout"])
    assert result.fired and result.evidence["stale"] is True
    assert result.evidence["reasons"], result.evidence
    assert result.version is not None and result.version.version == 2
    assert store.get_run(result.run_id).params == {"data_path": project.data["shifted"]}
