"""`nbtrail exp new` and `nbtrail exp restore`: experiment branches in real repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

import nbtrail as nt
from nbtrail import cli
from nbtrail.errors import InvalidInputError, SnapshotError
from nbtrail.experiments import ExperimentBranch, new_experiment, restore_run

from ..conftest import git
from ._repos import checkout_state, commit_all, init_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = init_repo(tmp_path / "repo")
    (path / "train.py").write_text("lr = 0.1\n")
    (path / ".gitignore").write_text("*.log\n")
    commit_all(path, "initial")
    return path


def _run_with_snapshot(repo: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A run started in `repo` with an uncommitted edit and an untracked file."""
    (repo / "train.py").write_text("lr = 0.5\n")
    (repo / "new_feature.py").write_text("x = 1\n")
    (repo / "debug.log").write_text("ignored\n")
    monkeypatch.chdir(repo)
    tracker = nt.Tracker(nt.open_store(store))
    run = tracker.start_run(name="tuned")
    run.end()
    tracker.close()
    # The user goes on: the edit is dropped, the new file deleted.
    git(repo, "checkout", "-q", "--", "train.py")
    (repo / "new_feature.py").unlink()
    return run.run_id


# -- exp new --------------------------------------------------------------------------------


def test_new_experiment_creates_and_switches(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "train.py").write_text("lr = 0.2\n")  # uncommitted work comes along
    made = new_experiment("feat/more-trees", cwd=repo)
    assert made == ExperimentBranch(branch="feat/more-trees", commit=head, root=str(repo),
                                    switched=True)
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "feat/more-trees"
    assert git(repo, "rev-parse", "HEAD") == head
    assert (repo / "train.py").read_text() == "lr = 0.2\n"
    assert "switched to the new branch 'feat/more-trees'" in made.to_text()


def test_new_experiment_from_a_subfolder_and_a_detached_head(repo: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "--detach")
    (repo / "src").mkdir()
    monkeypatch.chdir(repo / "src")
    made = new_experiment("exp-2")  # the current folder by default
    assert made.root == str(repo) and made.commit == head
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "exp-2"


def test_new_experiment_refuses_an_existing_branch(repo: Path) -> None:
    git(repo, "branch", "taken")
    before = checkout_state(repo)
    with pytest.raises(InvalidInputError, match="a branch named 'taken' already exists"):
        new_experiment("taken", cwd=repo)
    with pytest.raises(InvalidInputError, match="'main' already exists"):
        new_experiment("main", cwd=repo)
    assert checkout_state(repo) == before


@pytest.mark.parametrize("name", ["bad name", "a..b", "-x", "ends.lock", "x~1", "@{-1}",
                                  "trailing/", ""])
def test_new_experiment_refuses_invalid_names(repo: Path, name: str) -> None:
    git(repo, "switch", "-q", "-c", "other")  # so @{-1} names an existing branch
    before = checkout_state(repo)
    with pytest.raises(InvalidInputError, match=r"not a valid git branch name|non-empty"):
        new_experiment(name, cwd=repo)
    assert checkout_state(repo) == before


def test_new_experiment_refuses_an_unborn_head_and_no_repo(tmp_path: Path) -> None:
    empty = init_repo(tmp_path / "empty")
    with pytest.raises(InvalidInputError, match=r"has no commit yet.*commit first"):
        new_experiment("feat/a", cwd=empty)
    assert git(empty, "branch", "--list") == ""
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(InvalidInputError, match="is not inside a git work tree"):
        new_experiment("feat/a", cwd=plain)


# -- exp restore ----------------------------------------------------------------------------


def test_restore_run_makes_a_branch_at_the_snapshot(repo: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    run_id = _run_with_snapshot(repo, store, monkeypatch)
    snapshot = nt.open_store(store).get_run(run_id).git["snapshot"]
    before = checkout_state(repo)

    made = restore_run(run_id[:12], store=nt.open_store(store))

    assert made.branch == f"nbtrail/{run_id[:10]}" and made.commit == snapshot
    assert made.switched is False and made.run_id == run_id
    assert git(repo, "rev-parse", f"refs/heads/{made.branch}") == snapshot
    # The branch holds the code as the run saw it, and builds on the commit it started from.
    assert git(repo, "show", f"{made.branch}:train.py") == "lr = 0.5"
    assert git(repo, "show", f"{made.branch}:new_feature.py") == "x = 1"
    assert git(repo, "ls-tree", "-r", "--name-only", made.branch).split() == [
        ".gitignore", "new_feature.py", "train.py"]
    assert git(repo, "rev-parse", f"{made.branch}^") == before["head"]
    # Nothing else moved.
    after = checkout_state(repo)
    assert after.pop("branches") != before.pop("branches")
    assert after == before
    assert "git switch nbtrail/" in made.to_text() and "unchanged" in made.to_text()


def test_restore_run_with_a_name_and_refusals(repo: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store = nt.open_store(tmp_path / "store")
    run_id = _run_with_snapshot(repo, tmp_path / "store", monkeypatch)
    made = restore_run(run_id, branch="retry/tuned", store=store)
    assert made.branch == "retry/tuned"
    with pytest.raises(InvalidInputError, match=r"'retry/tuned' already exists.*already points "
                                                r"at this run's snapshot.*--branch"):
        restore_run(run_id, branch="retry/tuned", store=store)
    with pytest.raises(InvalidInputError, match="'main' already exists"):
        restore_run(run_id, branch="main", store=store)
    with pytest.raises(InvalidInputError, match="not a valid git branch name"):
        restore_run(run_id, branch="no good", store=store)
    with pytest.raises(nt.NbtrailError, match="no run 'NOPE00'"):
        restore_run("NOPE00", store=store)


def test_restore_run_without_a_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not a repository
    store = nt.open_store(tmp_path / "store")
    run = nt.Tracker(store).start_run(name="outside")
    run.end()
    store.close()
    with pytest.raises(SnapshotError, match=f"run {run.run_id} has no code snapshot"):
        restore_run(run.run_id, store=store)


def test_restore_run_whose_repository_is_gone(repo: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _run_with_snapshot(repo, tmp_path / "store", monkeypatch)
    monkeypatch.chdir(tmp_path)
    repo.rename(tmp_path / "moved")
    with pytest.raises(SnapshotError, match="no longer exists"):
        restore_run(run_id, store=nt.open_store(tmp_path / "store"))


# -- CLI ----------------------------------------------------------------------------------


def test_cli_exp_new(repo: Path, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(repo)
    assert cli.main(["exp", "new", "feat/cli"]) == 0
    assert "switched to the new branch 'feat/cli'" in capsys.readouterr().out
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "feat/cli"

    assert cli.main(["exp", "new", "feat/cli"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nbtrail: error: a branch named 'feat/cli' already exists")
    assert cli.main(["exp", "new", "bad name"]) == 1
    assert "not a valid git branch name" in capsys.readouterr().err
    assert cli.main(["exp", "new"]) == 2
    assert "nbtrail: error:" in capsys.readouterr().err
    assert cli.main(["exp"]) == 2
    capsys.readouterr()


def test_cli_exp_restore(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    run_id = _run_with_snapshot(repo, store, monkeypatch)
    head_branch = git(repo, "symbolic-ref", "--short", "HEAD")
    assert cli.main(["exp", "restore", run_id[:10], "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"created the branch 'nbtrail/{run_id[:10]}'" in out
    assert f"git switch nbtrail/{run_id[:10]}" in out
    assert git(repo, "symbolic-ref", "--short", "HEAD") == head_branch

    assert cli.main(["exp", "restore", run_id, "--branch", "again", "--store",
                     str(store)]) == 0
    capsys.readouterr()
    assert git(repo, "rev-parse", "again") == git(repo, "rev-parse", f"nbtrail/{run_id[:10]}")

    assert cli.main(["exp", "restore", run_id, "--store", str(store)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nbtrail: error: a branch named") and "Traceback" not in err
    assert cli.main(["exp", "restore", run_id, "--store", str(tmp_path / "nostore")]) == 1
    assert "no nbtrail store at" in capsys.readouterr().err
