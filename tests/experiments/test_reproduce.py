"""nt.reproduce and `nbtrail reproduce`: real repos, notebooks executed by real kernels."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import nbtrail as nt
from nbtrail import cli
from nbtrail.errors import ReproduceError, SnapshotError
from nbtrail.experiments._reproduce import (
    Reproduction,
    _compare,
    _notebook_in_snapshot,
    reproduce_run,
)

from ..conftest import SRC, git, isolate_git
from ._repos import checkout_state, commit_all, execute_notebook, init_repo, write_notebook

SETUP = "import random\nimport nbtrail as nt\nrandom.seed(SEED)"
TRAIN = """\
with nt.run(name="baseline") as run:
    run.log_params({"seed": SEED})
    run.log_metric("acc", sum(random.random() for _ in range(100)) / 100)
    run.log_metric("undefined", float("nan"))
for fold in range(2):
    with nt.run(name="fold") as run:
        run.log_metric("score", 0.1 * (fold + 1))
with nt.run(name="noisy") as run:
    run.log_metric("stable", 1.0)
    run.log_metric("noise", random.SystemRandom().random())
"""
DATA = """\
with nt.run(name="uses-data") as run:
    run.log_metric("rows", len(open("data/train.csv").read().splitlines()))
"""

# The kernel inherits the environment: a variable makes this notebook misbehave on demand.
SWITCH = """\
import os, time
import nbtrail as nt
mode = os.environ.get("NBT_REPRO_MODE", "")
if mode == "sleep":
    time.sleep(60)
if mode != "skip":
    with nt.run(name="switchable") as run:
        run.log_metric("m", 1.0)
"""


@dataclass(frozen=True)
class Project:
    repo: Path
    store: Path
    runs: dict[str, str]  # "baseline", "fold#2", "noisy", "uses-data" -> run id


@pytest.fixture(autouse=True)
def _kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernels reproduce starts inherit the environment: they must import this nbtrail.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A repo whose notebooks ran once, with an uncommitted edit, into a store."""
    base = tmp_path_factory.mktemp("reproduce")
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        repo = init_repo(base / "repo")
        (repo / ".gitignore").write_text("data/\n")
        notebook = write_notebook(repo / "notebooks" / "train.ipynb",
                                  SETUP.replace("SEED", "1"), TRAIN.replace("SEED", "1"))
        write_notebook(repo / "notebooks" / "data.ipynb", "import nbtrail as nt", DATA)
        write_notebook(repo / "switch.ipynb", SWITCH)
        commit_all(repo, "notebooks")
        (repo / "notebooks" / "data").mkdir()
        (repo / "notebooks" / "data" / "train.csv").write_text("a\n1\n2\n")  # ignored by git
        # The run uses seed 7, an edit nobody committed: only the snapshot has it.
        write_notebook(notebook, SETUP.replace("SEED", "7"), TRAIN.replace("SEED", "7"))
        store = base / "store"
        execute_notebook(notebook, store)
        execute_notebook(repo / "notebooks" / "data.ipynb", store)
        execute_notebook(repo / "switch.ipynb", store)
        git(repo, "checkout", "-q", "--", "notebooks/train.ipynb")  # back to seed 1

        frame = nt.open_store(store).runs(order_by="start_time")
        runs: dict[str, str] = {}
        for run_id, name in frame.select("run_id", "name").rows():
            key = name if name not in runs else f"{name}#2"
            runs[key] = run_id
        yield Project(repo=repo, store=store, runs=runs)
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def _reproduce(project: Project, key: str, **options: object) -> Reproduction:
    return reproduce_run(nt.open_store(project.store), project.runs[key], **options)


def _leftover_worktrees(run_id: str) -> list[str]:
    return [p for p in os.listdir(tempfile.gettempdir())
            if p.startswith(f"nbtrail-reproduce-{run_id[:10]}")]


def test_original_runs_recorded_their_notebook_and_snapshot(project: Project) -> None:
    store = nt.open_store(project.store)
    run = store.get_run(project.runs["baseline"])
    assert run.notebook == str(project.repo / "notebooks" / "train.ipynb")
    assert run.params == {"seed": 7}
    assert run.git["dirty"] is True and run.git["snapshot"]
    assert set(project.runs) == {"baseline", "fold", "fold#2", "noisy", "uses-data",
                                 "switchable"}


def test_reproduce_matches_and_leaves_the_checkout_untouched(project: Project,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    repo = project.repo
    # Move the user's checkout well away from the run: another branch, another commit,
    # a staged change and an unstaged edit of the notebook itself.
    git(repo, "switch", "-q", "-c", "elsewhere")
    (repo / "README.md").write_text("later work\n")
    commit_all(repo, "later")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    write_notebook(repo / "notebooks" / "train.ipynb", "raise SystemExit('edited')")
    before = checkout_state(repo)

    monkeypatch.setenv("NBTRAIL_HOME", str(project.store))
    result = nt.reproduce(project.runs["baseline"][:12])  # a short id works

    assert checkout_state(repo) == before
    assert result.matches, result.to_text()
    assert bool(result) is True
    assert result.error is None and result.worktree is None
    assert result.run_id == project.runs["baseline"]
    assert result.notebook == "notebooks/train.ipynb"
    rows = {row["key"]: row for row in result.metrics.to_dicts()}
    assert set(rows) == {"acc", "undefined"}
    assert rows["acc"]["abs_diff"] == 0.0 and rows["acc"]["match"]
    assert math.isnan(rows["undefined"]["original"]) and rows["undefined"]["match"]

    store = nt.open_store(project.store)
    again = store.get_run(result.reproduced_run_id)
    assert again.name == "baseline" and again.params == {"seed": 7}  # the snapshot's code
    assert again.git["commit"] == store.get_run(result.run_id).git["snapshot"]
    assert again.git["branch"] is None
    assert again.tags == {"nbtrail.reproduces": result.run_id}
    assert not Path(again.notebook).exists()  # the worktree is gone
    assert not _leftover_worktrees(result.run_id)
    assert "reproduces as" in result.to_text() and "acc" in result.to_text()
    html = result._repr_html_()
    assert "<script" not in html and "baseline" in html and "undefined" in html


def test_same_named_runs_are_matched_by_order(project: Project) -> None:
    result = _reproduce(project, "fold#2")
    assert result.matches
    again = nt.open_store(project.store).get_run(result.reproduced_run_id)
    assert again.metrics["score"] == pytest.approx(0.2)


def test_nondeterministic_metric_does_not_reproduce(project: Project) -> None:
    result = _reproduce(project, "noisy")
    assert not result.matches
    assert result.error is None and result.reproduced_run_id
    assert result.mismatched == ["noise"]
    rows = {row["key"]: row for row in result.metrics.to_dicts()}
    assert rows["stable"]["match"] and not rows["noise"]["match"]
    assert rows["noise"]["abs_diff"] > 0
    assert "1 of 2 metrics differ" in result.summary() and "noise" in result.summary()


def test_failing_notebook_reports_the_cell_not_a_traceback(project: Project) -> None:
    # data/ is ignored by git, so the snapshot lacks the file the notebook reads.
    result = _reproduce(project, "uses-data")
    assert not result.matches
    assert result.reproduced_run_id is not None  # the run started, then failed
    assert result.error.startswith("cell 3 of 3 failed: FileNotFoundError:")
    assert "ignored files" in result.error and "Traceback" not in result.error
    assert result.mismatched == ["rows"]  # logged in the original only


def test_cell_timeout_and_a_run_no_longer_made(project: Project,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBT_REPRO_MODE", "sleep")
    # The limit holds for every cell: the first (imports, a run) needs a few seconds on a
    # loaded machine, the second sleeps for a minute.
    result = _reproduce(project, "switchable", timeout=10)
    assert not result.matches and result.reproduced_run_id is None
    assert result.error == "cell 2 of 2 did not finish within 10 s (raise timeout= / --timeout)"

    monkeypatch.setenv("NBT_REPRO_MODE", "skip")
    result = _reproduce(project, "switchable")
    assert not result.matches and result.reproduced_run_id is None
    assert result.error.startswith("the notebook ran but started no run named 'switchable'")
    assert result.metrics.to_dicts() == [
        {"key": "m", "original": 1.0, "reproduced": None, "abs_diff": None, "match": False}]
    assert not _leftover_worktrees(project.runs["switchable"])


def test_keep_worktree_leaves_the_checkout_for_inspection(project: Project) -> None:
    result = _reproduce(project, "fold", keep_worktree=True)
    try:
        assert result.matches
        worktree = Path(result.worktree)
        assert (worktree / "notebooks" / "train.ipynb").is_file()
        assert git(worktree, "rev-parse", "HEAD") == \
            nt.open_store(project.store).get_run(result.run_id).git["snapshot"]
        assert "worktree kept at" in result.to_text()
    finally:
        git(project.repo, "worktree", "remove", "--force", result.worktree)
        git(project.repo, "worktree", "prune")
    assert not _leftover_worktrees(result.run_id)


def test_missing_kernel_is_a_clear_error(project: Project) -> None:
    with pytest.raises(ReproduceError, match="kernel 'no-such-kernel' given is not installed"):
        _reproduce(project, "fold", kernel_name="no-such-kernel")
    assert not _leftover_worktrees(project.runs["fold"])


def test_run_without_snapshot_is_a_clear_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    repo = init_repo(tmp_path / "repo")
    (repo / "a.py").write_text("x = 1\n")
    commit_all(repo)
    monkeypatch.chdir(repo)
    store = nt.open_store(tmp_path / "store")
    with nt.config(capture_git=False):
        run = nt.Tracker(store).start_run(name="no-git")
    run.end()
    store.close()
    with pytest.raises(SnapshotError, match=rf"run {run.run_id} has no code snapshot "
                                            r"\(it ran outside git or with capture_git=False\)"):
        reproduce_run(store, run.run_id)


def test_pruned_snapshot_and_script_runs_are_clear_errors(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    repo = init_repo(tmp_path / "repo")
    (repo / "a.py").write_text("x = 1\n")
    commit_all(repo)
    (repo / "a.py").write_text("x = 2\n")  # dirty: the snapshot is a commit of its own
    monkeypatch.chdir(repo)
    store = nt.open_store(tmp_path / "store")
    tracker = nt.Tracker(store)
    script = tracker.start_run(name="script")
    script.end()
    tracker.close()
    with pytest.raises(ReproduceError, match=rf"run {script.run_id} was not started from a "
                                             "notebook"):
        reproduce_run(store, script.run_id)

    snapshot = store.get_run(script.run_id).git["snapshot"]
    git(repo, "update-ref", "-d", f"refs/nbtrail/runs/{script.run_id}")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    with pytest.raises(SnapshotError, match=rf"snapshot commit {snapshot[:12]} of run "
                                            rf"{script.run_id} is missing from {repo}"):
        reproduce_run(store, script.run_id)


def test_notebook_path_resolution(project: Project) -> None:
    store = nt.open_store(project.store)
    run = store.get_run(project.runs["baseline"])
    root, sha = run.git["root"], run.git["snapshot"]
    assert _notebook_in_snapshot(run, root, sha) == "notebooks/train.ipynb"
    # Relative to a Jupyter server root above the repository: a tail of it is found.
    relative = dataclasses.replace(run, notebook="work/repo/notebooks/train.ipynb")
    assert _notebook_in_snapshot(relative, root, sha) == "notebooks/train.ipynb"
    outside = dataclasses.replace(run, notebook="/somewhere/else/train.ipynb")
    with pytest.raises(ReproduceError, match="is outside its git work tree"):
        _notebook_in_snapshot(outside, root, sha)
    missing = dataclasses.replace(run, notebook=str(project.repo / "notebooks" / "gone.ipynb"))
    with pytest.raises(ReproduceError, match="is not in its snapshot"):
        _notebook_in_snapshot(missing, root, sha)


def test_compare_tolerances_and_missing_metrics() -> None:
    frame = _compare({"a": 1.0, "b": 1.0, "c": float("inf"), "only_old": 1.0},
                     {"a": 1.0 + 1e-9, "b": 1.1, "c": float("inf"), "only_new": 2.0},
                     rtol=1e-6, atol=0.0)
    got = {row["key"]: row["match"] for row in frame.to_dicts()}
    assert got == {"a": True, "b": False, "c": True, "only_new": False, "only_old": False}
    loose = _compare({"b": 1.0}, {"b": 1.1}, rtol=0.0, atol=0.2)
    assert loose["match"].to_list() == [True]
    with pytest.raises(nt.NbtrailError, match="rtol must be a number >= 0"):
        reproduce_run(nt.open_store("unused"), "x", rtol=-1)


def test_cli_reproduce_exit_codes(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(project.store)
    assert cli.main(["reproduce", project.runs["fold"], "--store", store]) == 0
    out, err = capsys.readouterr()
    assert "reproduces as" in out and "score" in out
    assert "executing notebooks/train.ipynb" in err and "error" not in err

    assert cli.main(["reproduce", project.runs["noisy"], "--store", store, "--json"]) == 1
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["matches"] is False and data["run_id"] == project.runs["noisy"]
    assert [m["key"] for m in data["metrics"] if not m["match"]] == ["noise"]
    assert "nbtrail: error: run" in err and "does not reproduce" in err and "noise" in err
    assert "Traceback" not in err

    # Loose enough tolerances make the noisy run reproduce.
    assert cli.main(["reproduce", project.runs["noisy"], "--store", store,
                     "--atol", "1"]) == 0
    capsys.readouterr()

    assert cli.main(["reproduce", "NOPE000000", "--store", store]) == 1
    assert "nbtrail: error: no run 'NOPE000000'" in capsys.readouterr().err
    assert cli.main(["reproduce", project.runs["fold"], "--rtol", "-1"]) == 2
    assert "expected 0 or more" in capsys.readouterr().err


def test_cli_reproduce_without_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no git here
    store = nt.open_store(tmp_path / "store")
    run = nt.Tracker(store).start_run(name="outside")
    run.end()
    store.close()
    assert cli.main(["reproduce", run.run_id, "--store", str(tmp_path / "store")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"nbtrail: error: run {run.run_id} has no code snapshot")
    assert "Traceback" not in err


def test_a_teammate_reproduces_a_run_made_on_another_machine(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import subprocess
    import sys

    import psycopg

    name = f"reproduce_{os.urandom(6).hex()}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    team = f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    origin, mine, theirs = tmp_path / "origin.git", tmp_path / "mine", tmp_path / "theirs"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(tmp_path, "clone", "-q", f"file://{origin}", str(mine))
    git(mine, "config", "user.name", "T")
    git(mine, "config", "user.email", "t@e")
    notebook = write_notebook(mine / "train.ipynb", SETUP.replace("SEED", "1"),
                              TRAIN.replace("SEED", "1"))
    commit_all(mine, "train")
    git(mine, "push", "-q", "origin", "main")
    # The run uses seed 7, an edit nobody committed: only its snapshot, pushed, has it.
    write_notebook(notebook, SETUP.replace("SEED", "7"), TRAIN.replace("SEED", "7"))
    monkeypatch.setenv("NBTRAIL_STORE", team)
    execute_notebook(notebook, tmp_path / "my-home")
    synced = subprocess.run([sys.executable, "-m", "nbtrail.cli", "sync"], cwd=mine,
                            env={**os.environ, "NBTRAIL_HOME": str(tmp_path / "my-home")},
                            capture_output=True, text=True, timeout=120)
    assert synced.returncode == 0 and "code snapshots pushed to origin" in synced.stdout, (
        synced.stdout + synced.stderr)
    shutil.rmtree(mine)  # the other machine's work tree is not here

    git(tmp_path, "clone", "-q", f"file://{origin}", str(theirs))
    monkeypatch.chdir(theirs)
    with nt.config(store=team, home=str(tmp_path / "their-home")):
        store = nt.open_store()
        baseline = store.runs(where="name = 'baseline'")["run_id"][0]
        result = reproduce_run(store, baseline)
        assert result.matches, result
        assert store.count_runs(where="name = 'baseline'") == 2  # the reproduction landed
