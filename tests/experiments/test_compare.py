"""nt.branches and nt.compare on real git repositories made in temp folders."""

import json

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression

import nbtrail as nt
from nbtrail.cli import main
from nbtrail.errors import InvalidInputError, NotFoundError

from ..conftest import git


@pytest.fixture
def repo(tmp_path, monkeypatch):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "t")
    (path / "train.py").write_text("C = 1.0\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "baseline")
    monkeypatch.chdir(path)
    return path


def train(name, *, C, rows, shift=0.0, extra_column=False, losses=(0.9, 0.5, 0.3)):
    rng = np.random.default_rng(0)
    features = {"a": rng.normal(shift, 1.0, rows), "b": rng.normal(0.0, 1.0, rows)}
    if extra_column:
        features["c"] = rng.normal(0.0, 1.0, rows)
    frame = pl.DataFrame(features)
    y = (frame["a"] + frame["b"] > shift).to_numpy()
    model = LogisticRegression(C=C).fit(frame.to_numpy(), y)
    with nt.run(name=name) as run:
        run.log_params({"C": C, "solver": "lbfgs"})
        for step, loss in enumerate(losses):
            run.log_metric("loss", loss, step=step)
        run.log_metric("val_f1", float(model.score(frame.to_numpy(), y)) * C / 10)
        run.log_dataset(frame, name="train", role="train")
        run.log_model(model, name="clf", input_example=frame.head(5))
    return run.run_id


@pytest.fixture
def two_branches(repo):
    """main: C=1 and C=2; feat/more-data: different code, data and params, C=3."""
    ids = {"main-1": train("m1", C=1.0, rows=200), "main-2": train("m2", C=2.0, rows=200)}
    git(repo, "switch", "-q", "-c", "feat/more-data")
    (repo / "train.py").write_text("C = 3.0\nROWS = 300\n")
    git(repo, "commit", "-qam", "more data")
    ids["feat"] = train("f1", C=3.0, rows=300, shift=2.0, extra_column=True,
                        losses=(0.8, 0.4, 0.2, 0.1))
    git(repo, "switch", "-q", "main")
    return ids


def test_branches_lists_each_branch_with_its_best_run(repo, two_branches):
    frame = nt.branches(metric="val_f1")
    assert frame["branch"].to_list() == ["feat/more-data", "main"]  # newest first
    rows = {r["branch"]: r for r in frame.iter_rows(named=True)}
    assert rows["main"]["runs"] == 2
    assert rows["main"]["best_run_id"] == two_branches["main-2"]
    assert rows["main"]["best_val_f1"] == pytest.approx(nt.get_run(two_branches["main-2"])
                                                        .metrics["val_f1"])
    assert rows["main"]["head_commit"] == git(repo, "rev-parse", "main")
    assert rows["feat/more-data"]["exists"] is True
    low = nt.branches(metric="val_f1", mode="min")
    assert low.filter(branch="main")["best_run_id"].item() == two_branches["main-1"]


def test_a_deleted_branch_keeps_its_runs(repo, two_branches):
    git(repo, "branch", "-q", "-D", "feat/more-data")
    row = nt.branches().filter(branch="feat/more-data").row(0, named=True)
    assert row["exists"] is False and row["head_commit"] is None
    assert row["best_run_id"] == two_branches["feat"]  # newest finished run, no metric
    comparison = nt.compare(["main", "feat/more-data"], metric="val_f1", latency=False)
    assert [f.path for f in comparison.code[0].files] == ["train.py"]  # snapshot survives


def test_compare_branches_side_by_side(repo, two_branches):
    comparison = nt.compare(["main", "feat/more-data"], metric="val_f1")
    assert [r.run_id for r in comparison.runs] == [two_branches["main-2"], two_branches["feat"]]
    assert comparison.labels == ("main", "feat/more-data")

    metrics = {r["metric"]: r for r in comparison.metrics.iter_rows(named=True)}
    f1 = metrics["val_f1"]
    assert f1["Δ feat/more-data"] == pytest.approx(f1["feat/more-data"] - f1["main"])
    assert metrics["loss"]["main"] == 0.3

    curves = comparison.curves.filter(key="loss")
    assert curves.filter(label="main")["step"].to_list() == [0, 1, 2]
    assert curves.filter(label="feat/more-data")["value"].to_list() == [0.8, 0.4, 0.2, 0.1]
    assert comparison.curves.filter(key="val_f1").is_empty()  # one point: no curve

    params = {r["param"]: r for r in comparison.params.iter_rows(named=True)}
    assert params["C"]["differs"] is True and params["C"]["main"] == "2.0"
    assert params["solver"]["differs"] is False

    data = comparison.data.filter(label="feat/more-data").row(0, named=True)
    assert data["n_rows"] == 300 and data["same_as_first"] is False
    changes = {(r["column"], r["change"]): r for r in comparison.data_changes.iter_rows(named=True)}
    assert changes[("", "rows")]["before"] == "200" and changes[("", "rows")]["after"] == "300"
    assert changes[("c", "added")]["after"] == "double"
    assert ("a", "mean") in changes and ("b", "mean") not in changes

    [code] = comparison.code
    assert [(f.path, f.status) for f in code.files] == [("train.py", "modified")]
    assert comparison.environment.is_empty()  # same interpreter, same packages

    production = {r["label"]: r for r in comparison.production.iter_rows(named=True)}
    for label in comparison.labels:
        figures = production[label]
        assert figures["model"] == "clf" and figures["size_bytes"] > 0
        assert 0 < figures["single_p50_ms"] <= figures["single_p95_ms"]
        assert 0 < figures["batch_p50_ms"] <= figures["batch_p95_ms"]
        assert figures["note"] is None
    assert production["feat/more-data"]["batch_rows"] == 300

    html = comparison._repr_html_()
    for heading in ("Metrics", "loss by step", "Params", "Data sets", "Code: main",
                    "Packages that differ", "Production"):
        assert heading in html
    assert set(comparison.to_polars()) == {"runs", "metrics", "curves", "params", "data",
                                           "data_changes", "code", "environment",
                                           "production"}


def test_compare_given_runs_and_a_detached_head(repo, two_branches):
    git(repo, "switch", "-q", "--detach", "HEAD")
    detached = train("m1", C=5.0, rows=200)
    assert nt.get_run(detached).git["branch"] is None
    assert "detached" not in nt.branches()["branch"].to_list()
    comparison = nt.compare(runs=[two_branches["main-1"], detached], latency=False)
    # Same name twice: labels carry a short id to tell them apart.
    assert comparison.labels == (f"m1 ({two_branches['main-1'][:10]})", f"m1 ({detached[:10]})")
    assert comparison.code[0].files == ()  # same tree, no change
    assert comparison.production["single_p50_ms"].to_list() == [None, None]


def test_compare_without_git_uses_experiments_and_cells(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not a repository
    with nt.run(name="a", experiment="baseline") as run:
        run.log_metric("acc", 0.7)
    with nt.run(name="b", experiment="wider") as run:
        run.log_metric("acc", 0.8)
    assert nt.branches().is_empty()
    comparison = nt.compare(experiments=["baseline", "wider"], metric="acc", latency=False)
    assert comparison.metrics.filter(metric="acc")["Δ wider"].item() == pytest.approx(0.1)
    assert "no code snapshot" in comparison.code[0].note
    assert comparison.production["note"].to_list() == ["no model logged"] * 2


class Halver:
    """Not a scikit-learn model: stored with pickle only."""

    def predict(self, x):
        return np.asarray(x)[:, 0] / 2


def test_a_pickled_model_is_not_loaded_unless_trusted(home):
    with nt.run(name="p") as run:
        run.log_dataset(np.ones((20, 2)), name="eval", role="test")
        run.log_model(Halver(), name="half", pickle=True)
    safe = nt.compare(runs=[run.run_id])
    assert "trusted=True" in safe.production["note"].item()
    timed = nt.compare(runs=[run.run_id], trusted=True).production.row(0, named=True)
    assert timed["note"] is None and timed["batch_rows"] == 20


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({}, InvalidInputError, "exactly one of"),
    ({"branches": ["main"], "runs": ["x"]}, InvalidInputError, "exactly one of"),
    ({"branches": []}, InvalidInputError, "non-empty"),
    ({"branches": ["main", "main"]}, InvalidInputError, "once"),
    ({"branches": ["main"], "mode": "best"}, InvalidInputError, "'max' or 'min'"),
    ({"branches": ["nope"]}, NotFoundError, "branches with runs: feat/more-data, main"),
    ({"branches": ["main"], "metric": "auc"}, NotFoundError, "finite value of metric 'auc'"),
])
def test_bad_compare_arguments_say_what_to_do(repo, two_branches, kwargs, error, message):
    with pytest.raises(error, match=message):
        nt.compare(**kwargs)


def test_cli_branches_and_compare(repo, two_branches, capsys):
    nt.sync()
    assert main(["branches", "--metric", "val_f1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["branch", "runs", "best_val_f1"]
    assert [line.split()[0] for line in out[1:]] == ["feat/more-data", "main"]

    assert main(["compare", "main", "feat/more-data", "--metric", "val_f1"]) == 0
    out = capsys.readouterr().out
    for heading in ("== Metrics ==", "== Params ==", "== Production ==",
                    "== Code: main -> feat/more-data ==", "train.py"):
        assert heading in out

    assert main(["compare", "--runs", two_branches["main-1"], two_branches["feat"],
                 "--no-latency", "--json"]) == 0
    sections = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in sections["runs"]] == [two_branches["main-1"],
                                                       two_branches["feat"]]
    assert sections["production"][0]["single_p50_ms"] is None


@pytest.mark.parametrize(("argv", "message"), [
    (["compare"], "name the branches to compare"),
    (["compare", "main", "--runs", "x"], "not several"),
    (["compare", "gone", "--metric", "val_f1"], "no runs on branch 'gone'"),
])
def test_cli_compare_mistakes_are_one_line(repo, two_branches, capsys, argv, message):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("nbtrail: error: ") and message in err and "Traceback" not in err


def test_a_repository_without_commits_compares_its_snapshots(tmp_path, monkeypatch):
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    monkeypatch.chdir(repo)
    (repo / "train.py").write_text("C = 1\n")
    with nt.run(name="first"):
        pass
    (repo / "train.py").write_text("C = 2\n")
    (repo / "notes.md").write_text("more\n")
    with nt.run(name="second"):
        pass
    [row] = nt.branches().rows(named=True)
    assert row["branch"] == "main" and row["runs"] == 2
    assert row["exists"] is False  # the branch has no commit yet, so no ref
    comparison = nt.compare(branches=["main"])
    assert comparison.labels == ("main",)
    first, second = nt.runs(order_by="start_time")["run_id"].to_list()
    diff = nt.compare(runs=[first, second], latency=False).code[0]
    assert {(f.path, f.status) for f in diff.files} == {("train.py", "modified"),
                                                         ("notes.md", "added")}


def test_runs_in_a_linked_worktree_belong_to_its_branch(repo, two_branches, tmp_path,
                                                         monkeypatch):
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "feat/elsewhere", str(linked))
    monkeypatch.chdir(linked)
    other = train("w1", C=4.0, rows=200)
    assert nt.get_run(other).git["branch"] == "feat/elsewhere"
    row = nt.branches().filter(branch="feat/elsewhere").row(0, named=True)
    assert row["exists"] is True and row["head_commit"] == git(repo, "rev-parse", "main")
    comparison = nt.compare(["main", "feat/elsewhere"], metric="val_f1", latency=False)
    assert comparison.code[0].files == ()  # same tree as main's best run
