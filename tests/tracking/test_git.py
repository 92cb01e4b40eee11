from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nbtrail.errors import GitError, InvalidInputError
from nbtrail.tracking._git import GitInfo, capture_git, snapshot_worktree

from ..conftest import git

REF = "refs/nbtrail/runs/run1"


def init_repo(path: Path, *, identity: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    if identity:
        git(path, "config", "user.name", "Test User")
        git(path, "config", "user.email", "test@example.com")
    return path


def commit_all(repo: Path, message: str = "commit") -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = init_repo(tmp_path / "repo")
    (path / "train.py").write_text("lr = 0.1\n")
    (path / "README.md").write_text("# project\n")
    (path / ".gitignore").write_text("*.log\ncache/\n")
    commit_all(path, "initial")
    return path


def state(repo: Path, git_dir: Path | None = None) -> dict[str, Any]:
    """Everything a snapshot must leave alone, byte for byte."""
    git_dir = git_dir or repo / ".git"
    index = git_dir / "index"
    return {
        # Read before running any git command below, which could not change it anyway.
        "index": index.read_bytes() if index.exists() else None,
        "HEAD": (git_dir / "HEAD").read_bytes(),
        "status": git(repo, "--no-optional-locks", "status", "--porcelain", "--untracked=all"),
        "stash": git(repo, "--no-optional-locks", "stash", "list"),
        "refs": git(repo, "for-each-ref", "refs/heads", "refs/tags", "refs/stash"),
        "files": {
            p.relative_to(repo).as_posix(): p.read_bytes()
            for p in sorted(repo.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(repo).parts
        },
        "git_dir": sorted(p.name for p in git_dir.iterdir()),
    }


def show(repo: Path, sha: str, path: str) -> str:
    return git(repo, "show", f"{sha}:{path}")


def tree_files(repo: Path, sha: str) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", sha).splitlines())


def parents(repo: Path, sha: str) -> list[str]:
    return git(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]


def test_clean_repo(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    info = capture_git(repo)
    assert info == GitInfo(root=str(repo.resolve()), commit=head, branch="main", dirty=False)

    before = state(repo)
    sha = snapshot_worktree(info, REF, "nbtrail snapshot")
    assert state(repo) == before
    assert git(repo, "rev-parse", REF) == sha
    assert git(repo, "rev-parse", f"{sha}^{{tree}}") == git(repo, "rev-parse", "HEAD^{tree}")
    assert parents(repo, sha) == [head]
    assert git(repo, "log", "-1", "--format=%B", sha) == "nbtrail snapshot"


def test_dirty_tracked_file(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 0.5\n")
    info = capture_git(repo)
    assert info is not None and info.dirty

    before = state(repo)
    sha = snapshot_worktree(info, REF, "m")
    assert state(repo) == before
    assert show(repo, sha, "train.py") == "lr = 0.5"
    assert show(repo, "HEAD", "train.py") == "lr = 0.1"


def test_staged_change_and_later_edits(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 0.2\n")
    (repo / "new.py").write_text("staged\n")
    git(repo, "add", "train.py", "new.py")
    info = capture_git(repo)
    assert info is not None and info.dirty

    sha = snapshot_worktree(info, REF, "m")
    assert show(repo, sha, "train.py") == "lr = 0.2"
    assert show(repo, sha, "new.py") == "staged"

    # The snapshot holds the files as they are, not as they were staged.
    (repo / "train.py").write_text("lr = 0.3\n")
    before = state(repo)
    sha = snapshot_worktree(info, REF, "m")
    assert state(repo) == before
    assert show(repo, sha, "train.py") == "lr = 0.3"
    assert git(repo, "show", ":train.py") == "lr = 0.2"  # user's staged version kept


def test_deleted_file_is_absent(repo: Path) -> None:
    (repo / "README.md").unlink()
    info = capture_git(repo)
    assert info is not None and info.dirty
    sha = snapshot_worktree(info, REF, "m")
    assert "README.md" not in tree_files(repo, sha)
    assert git(repo, "ls-files", "README.md") == "README.md"  # still in the user's index


def test_untracked_included_and_ignored_excluded(repo: Path) -> None:
    (repo / "data").mkdir()
    (repo / "data" / "prep.py").write_text("untracked\n")
    (repo / "run.log").write_text("ignored\n")
    (repo / "cache").mkdir()
    (repo / "cache" / "blob.bin").write_bytes(b"ignored")
    info = capture_git(repo)
    assert info is not None and info.dirty

    before = state(repo)
    sha = snapshot_worktree(info, REF, "m")
    assert state(repo) == before
    files = tree_files(repo, sha)
    assert "data/prep.py" in files
    assert "run.log" not in files
    assert "cache/blob.bin" not in files
    assert git(repo, "ls-files", "data") == ""  # not added to the user's index


def test_only_ignored_files_is_clean(repo: Path) -> None:
    (repo / "run.log").write_text("ignored\n")
    info = capture_git(repo)
    assert info is not None and not info.dirty


def test_user_state_unchanged_byte_for_byte(repo: Path) -> None:
    # A stash, a staged change, an unstaged change, an untracked and an ignored file at once.
    (repo / "README.md").write_text("stashed\n")
    git(repo, "stash", "-q")
    (repo / "train.py").write_text("lr = 0.2\n")
    git(repo, "add", "train.py")
    (repo / "train.py").write_text("lr = 0.3\n")
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "run.log").write_text("ignored\n")
    # Make the index stat data stale, which tempts git into rewriting it.
    os.utime(repo / "README.md", (1_000_000_000, 1_000_000_000))

    before = state(repo)
    info = capture_git(repo)
    assert info is not None
    assert state(repo) == before  # capture must not refresh the index either
    sha = snapshot_worktree(info, REF, "m")
    assert state(repo) == before
    assert show(repo, sha, "train.py") == "lr = 0.3"
    assert show(repo, sha, "notes.txt") == "untracked"
    assert show(repo, sha, "README.md") == "# project"


def test_detached_head(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--detach")
    (repo / "train.py").write_text("lr = 0.9\n")
    info = capture_git(repo)
    assert info is not None
    assert info.branch is None
    assert info.commit == head

    before = state(repo)
    sha = snapshot_worktree(info, REF, "m")
    assert state(repo) == before
    assert parents(repo, sha) == [head]
    assert show(repo, sha, "train.py") == "lr = 0.9"


def test_repo_without_commits(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "fresh")
    (repo / "a.py").write_text("a\n")
    info = capture_git(repo)
    assert info == GitInfo(root=str(repo.resolve()), commit=None, branch="main", dirty=True)

    before = state(repo)
    assert before["index"] is None
    sha = snapshot_worktree(info, REF, "m")
    assert state(repo) == before
    assert parents(repo, sha) == []
    assert "parent" not in git(repo, "cat-file", "-p", sha)
    assert show(repo, sha, "a.py") == "a"
    assert git(repo, "rev-parse", "-q", "--verify", "HEAD", check=False) == ""

    # With something staged, the index exists and is left alone too.
    git(repo, "add", "a.py")
    (repo / "b.py").write_text("b\n")
    before = state(repo)
    sha = snapshot_worktree(info, REF, "m")
    assert state(repo) == before
    assert tree_files(repo, sha) == {"a.py", "b.py"}


def test_empty_repo_without_commits(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "empty")
    info = capture_git(repo)
    assert info is not None and not info.dirty and info.commit is None
    sha = snapshot_worktree(info, REF, "m")
    assert tree_files(repo, sha) == set()


def test_linked_worktree(repo: Path, tmp_path: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    (worktree / "train.py").write_text("lr = 0.7\n")
    (worktree / "extra.py").write_text("extra\n")

    info = capture_git(worktree / "train.py")
    assert info is not None
    assert info.root == str(worktree.resolve())
    assert info.branch == "feature"
    assert info.commit == head
    assert info.dirty

    wt_git_dir = Path(git(worktree, "rev-parse", "--absolute-git-dir"))
    assert wt_git_dir != (repo / ".git").resolve()
    before_wt = state(worktree, wt_git_dir)
    before_main = state(repo)
    sha = snapshot_worktree(info, "refs/nbtrail/runs/wt", "m")
    assert state(worktree, wt_git_dir) == before_wt
    assert state(repo) == before_main
    # Refs outside refs/worktree are shared, so the main checkout sees the snapshot.
    assert git(repo, "rev-parse", "refs/nbtrail/runs/wt") == sha
    assert show(repo, sha, "train.py") == "lr = 0.7"
    assert show(repo, sha, "extra.py") == "extra"
    assert parents(repo, sha) == [head]


def test_outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Keep git from finding a repository above the pytest temp directory.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "nb.ipynb").write_text("{}")
    assert capture_git(plain) is None
    assert capture_git(plain / "nb.ipynb") is None
    assert capture_git(tmp_path / "does-not-exist") is None


def test_inside_git_dir_is_not_a_work_tree(repo: Path) -> None:
    assert capture_git(repo / ".git") is None


def test_git_not_installed(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo))  # no git executable there
    assert capture_git(repo) is None
    info = GitInfo(root=str(repo), commit=None, branch="main", dirty=False)
    with pytest.raises(GitError, match="not installed"):
        snapshot_worktree(info, REF, "m")


def test_subdirectory_and_file_start(repo: Path) -> None:
    sub = repo / "a" / "b"
    sub.mkdir(parents=True)
    (sub / "nb.ipynb").write_text("{}")
    for start in (sub, sub / "nb.ipynb", str(sub)):
        info = capture_git(start)
        assert info is not None
        assert info.root == str(repo.resolve())
    assert info.dirty  # the untracked notebook


def test_large_binary_file(repo: Path) -> None:
    payload = os.urandom(5 * 1024 * 1024)
    (repo / "weights.bin").write_bytes(payload)
    info = capture_git(repo)
    assert info is not None
    before = state(repo)
    sha = snapshot_worktree(info, REF, "m")
    assert state(repo) == before
    blob = subprocess.run(
        ["git", "cat-file", "blob", f"{sha}:weights.bin"], cwd=repo, capture_output=True, check=True
    ).stdout
    assert blob == payload


def test_works_without_identity_and_with_signing_configured(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "anon", identity=False)
    (repo / "a.py").write_text("a\n")
    commit_all(repo)
    # Signing with a gpg that always fails would break any signed commit.
    git(repo, "config", "commit.gpgSign", "true")
    git(repo, "config", "gpg.program", "false")
    (repo / "a.py").write_text("b\n")
    info = capture_git(repo)
    assert info is not None
    sha = snapshot_worktree(info, REF, "m")
    assert git(repo, "log", "-1", "--format=%an <%ae>", sha) == "nbtrail <nbtrail@localhost>"


def test_hooks_do_not_run(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "reference-transaction"
    marker = repo.parent / "hook-ran"
    hook.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    hook.chmod(0o755)
    info = capture_git(repo)
    assert info is not None
    sha = snapshot_worktree(info, REF, "m")
    assert git(repo, "rev-parse", REF) == sha
    assert not marker.exists()


def test_outer_git_environment_is_ignored(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inside a git hook, GIT_DIR and GIT_INDEX_FILE point at the repository running the hook.
    other = init_repo(tmp_path / "other")
    (other / "x").write_text("x\n")
    commit_all(other)
    (repo / "train.py").write_text("lr = 0.4\n")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    info = capture_git(repo)
    sha = snapshot_worktree(info, REF, "m") if info else None
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert info is not None and info.root == str(repo.resolve())
    assert sha is not None and show(repo, sha, "train.py") == "lr = 0.4"
    assert git(other, "for-each-ref", "refs/nbtrail") == ""


@pytest.mark.parametrize(
    "ref", ["HEAD", "main", "refs/heads/main", "refs/tags/v1", "refs/remotes/o/m", "refs/stash"]
)
def test_user_refs_are_refused(repo: Path, ref: str) -> None:
    info = capture_git(repo)
    assert info is not None
    before = state(repo)
    with pytest.raises(InvalidInputError):
        snapshot_worktree(info, ref, "m")
    assert state(repo) == before


def test_invalid_ref_name_raises_git_error(repo: Path) -> None:
    info = capture_git(repo)
    assert info is not None
    with pytest.raises(GitError, match=r"update-ref.*refs/nbtrail/bad\.\.name"):
        snapshot_worktree(info, "refs/nbtrail/bad..name", "m")


def test_failed_add_raises_and_cleans_up(repo: Path) -> None:
    # A required clean filter that fails makes `git add` fail.
    git(repo, "config", "filter.boom.clean", "false")
    git(repo, "config", "filter.boom.required", "true")
    (repo / ".gitattributes").write_text("*.boom filter=boom\n")
    (repo / "x.boom").write_text("data\n")
    info = capture_git(repo)
    assert info is not None
    before = state(repo)
    with pytest.raises(GitError, match=r"(?s)git .*add -A.*x\.boom"):
        snapshot_worktree(info, REF, "m")
    assert state(repo) == before  # includes the git dir listing: no temp index left behind
    assert git(repo, "for-each-ref", "refs/nbtrail") == ""


def test_snapshot_ref_is_overwritten(repo: Path) -> None:
    info = capture_git(repo)
    assert info is not None
    first = snapshot_worktree(info, REF, "first")
    (repo / "train.py").write_text("lr = 1\n")
    second = snapshot_worktree(info, REF, "second")
    assert first != second
    assert git(repo, "rev-parse", REF) == second
