"""Experiment branches: start one from the current commit, or restore a run's code as one.

Both go through the ``git`` command line (the helpers of ``tracking._git``), so every
repository layout, worktree and config a user has is honoured.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._config import config
from ..errors import GitError, InvalidInputError, SnapshotError
from ..tracking._git import _git, _run, capture_git

if TYPE_CHECKING:
    from ..store import Store
    from ..store._records import Run

# Short run ids in default branch names: the millisecond part of the ULID, as the CLI shows.
SHORT_RUN_ID = 10


@dataclass(frozen=True)
class ExperimentBranch:
    """A branch made by ``new_experiment`` or ``restore_run``."""

    branch: str
    """Short branch name, e.g. ``feat/more-trees``."""
    commit: str
    """The commit the branch points at."""
    root: str
    """The work tree whose repository holds the branch."""
    switched: bool
    """True when the work tree now has the branch checked out."""
    run_id: str | None = None
    """The run whose snapshot the branch was made at (``restore_run`` only)."""

    def to_text(self) -> str:
        """What happened, in a sentence or two, with the command to go on."""
        short = self.commit[:7]
        if self.switched:
            return (f"switched to the new branch {self.branch!r} at {short} in {self.root}; "
                    f"runs started here now go to the experiment {self.branch!r}")
        return (f"created the branch {self.branch!r} at {short} (the code snapshot of run "
                f"{self.run_id}) in {self.root}; your checkout is unchanged. "
                f"Switch to it with: git switch {self.branch}")


def new_experiment(name: str, *, cwd: str | os.PathLike[str] | None = None) -> ExperimentBranch:
    """Create the branch ``name`` at the current commit and switch to it.

    Like ``git switch -c NAME``: uncommitted changes carry over to the new branch. Refuses
    a name that is not a valid branch name or already exists, and a repository without a
    commit yet.

    Example:
        >>> from nbtrail.experiments import new_experiment
        >>> new_experiment("feat/more-trees")      # doctest: +SKIP
    """
    where = Path(cwd) if cwd is not None else Path.cwd()
    info = capture_git(where)
    if info is None:
        raise InvalidInputError(
            f"{where} is not inside a git work tree; run `git init` and commit first, "
            "or change to your project's folder"
        )
    root = info.root
    check_branch_name(name, root)
    if info.commit is None:
        raise InvalidInputError(
            f"the repository at {root} has no commit yet, so there is nothing to branch "
            "from; commit first (git add -A && git commit -m 'start')"
        )
    _refuse_existing(name, root)
    _git(["switch", "-c", name], root)
    return ExperimentBranch(branch=name, commit=info.commit, root=root, switched=True)


def restore_run(run_id: str, *, branch: str | None = None,
                store: Store | None = None) -> ExperimentBranch:
    """Create a branch at the code snapshot of a run, without switching to it.

    The branch (default ``nbtrail/<short run id>``) is made in the repository the run was
    started in; its tip is the snapshot commit, whose parent is the commit the run started
    from. Your checkout, index and current branch are left alone.

    Example:
        >>> from nbtrail.experiments import restore_run
        >>> restore_run("01JD3Q8K4T", branch="retry-baseline")  # doctest: +SKIP
    """
    if store is None:
        from ..tracking._tracker import get_store

        store = get_store()
    run = store.get_run(run_id)
    root, sha = require_snapshot(run)
    name = branch if branch is not None else f"nbtrail/{run.run_id[:SHORT_RUN_ID]}"
    check_branch_name(name, root)
    _refuse_existing(name, root, sha)
    # `git branch` runs no hook and leaves HEAD, the index and the files alone.
    _git(["branch", "--no-track", name, sha], root)
    return ExperimentBranch(branch=name, commit=sha, root=root, switched=False,
                            run_id=run.run_id)


def check_branch_name(name: str, root: str) -> None:
    """Raise InvalidInputError unless ``name`` is a valid new branch name."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"a branch name must be a non-empty string, got {name!r}")
    # `check-ref-format --branch` expands `@{-1}` and the like to existing branches, and
    # takes a leading '-' for an option: neither is a name to create.
    proc = None
    if not name.startswith("-"):
        proc = _checked_run(["check-ref-format", "--branch", name], root)
    if proc is None or proc.returncode != 0 or os.fsdecode(proc.stdout).strip() != name:
        raise InvalidInputError(
            f"{name!r} is not a valid git branch name (no spaces, '..', '~', '^', ':', '?', "
            "'*', '[', '\\', no leading '-' or trailing '/' or '.lock'); "
            "try e.g. 'feat/more-trees'"
        )


def require_snapshot(run: Run) -> tuple[str, str]:
    """The git work tree and snapshot commit of a run; SnapshotError when unusable.

    The work tree is the run's own, else the current folder's repository: where the
    snapshot is missing (a run made on another machine), its ref is fetched from the
    repository's remote (``git_remote``), if ``nbtrail sync`` pushed it there.
    """
    git = run.git or {}
    sha = git.get("snapshot")
    if not sha:
        why = ("it ran outside git or with capture_git=False" if not git else
               "taking the snapshot failed when it started; see the warning it printed then")
        raise SnapshotError(f"run {run.run_id} has no code snapshot ({why})")
    found = locate_snapshot(run.run_id, sha, git.get("root"))
    if found is not None:
        return found, sha
    root, ref = git.get("root"), f"refs/nbtrail/runs/{run.run_id}"
    remote = config.current.git_remote
    fetch = (f"fetching {ref} from the remote {remote} failed: run `nbtrail sync` where the "
             "run was made (it pushes the snapshots), then try again inside a clone"
             if remote else "git_remote is off, so nothing was fetched")
    if not root or not Path(root).is_dir():
        raise SnapshotError(
            f"the git work tree of run {run.run_id}, {root}, no longer exists, and no "
            f"repository here has its snapshot {sha[:12]}; {fetch}")
    raise SnapshotError(
        f"snapshot commit {sha[:12]} of run {run.run_id} is missing from {root} ({ref} "
        f"deleted and the commit pruned?); {fetch}")


def locate_snapshot(run_id: str, sha: str, root: str | None) -> str | None:
    """A work tree that has commit ``sha`` (fetching its ref if need be), or ``None``.

    Tries the run's own work tree, then the current folder's repository.
    """
    if root and Path(root).is_dir() and _has_commit(root, sha):
        return root  # the common case: the run was made here
    here = capture_git(os.getcwd())
    candidates = [r for r in dict.fromkeys([root, here.root if here else None])
                  if r and Path(r).is_dir()]
    for candidate in candidates:
        if _has_commit(candidate, sha):
            return candidate
    remote = config.current.git_remote
    ref = f"refs/nbtrail/runs/{run_id}"
    for candidate in candidates if remote else []:
        fetched = _checked_run(["fetch", "--quiet", "--no-tags", remote, f"{ref}:{ref}"],
                               candidate)
        if fetched.returncode == 0 and _has_commit(candidate, sha):
            return candidate
    return None


def _has_commit(root: str, sha: str) -> bool:
    return _checked_run(["cat-file", "-e", f"{sha}^{{commit}}"], root).returncode == 0


def push_snapshots(roots: list[str]) -> list[str]:
    """Push ``refs/nbtrail/*`` of each repository to its remote; one line each, never raises.

    A repository without the ``git_remote`` remote (or with ``git_remote`` off) is skipped.
    """
    remote = config.current.git_remote
    lines = []
    for root in roots:
        if not remote:
            lines.append(f"{root}: not pushed (git_remote is off)")
        elif not Path(root).is_dir():
            lines.append(f"{root}: not pushed (no such folder on this machine)")
        elif _checked_run(["remote", "get-url", remote], root).returncode != 0:
            lines.append(f"{root}: not pushed (no remote {remote!r})")
        else:
            pushed = _checked_run(["push", "--quiet", remote,
                                   "refs/nbtrail/*:refs/nbtrail/*"], root)
            why = os.fsdecode(pushed.stderr).strip().splitlines()
            lines.append(f"{root}: code snapshots pushed to {remote}" if pushed.returncode == 0
                         else f"{root}: could not push to {remote}: "
                              f"{why[0] if why else 'git push failed'}")
    return lines


def _refuse_existing(name: str, root: str, target: str | None = None) -> None:
    proc = _checked_run(["rev-parse", "-q", "--verify", f"refs/heads/{name}^{{commit}}"], root)
    if proc.returncode != 0:
        return
    at = os.fsdecode(proc.stdout).strip()
    same = " (it already points at this run's snapshot)" if target and at == target else ""
    raise InvalidInputError(
        f"a branch named {name!r} already exists in {root}{same}; pick another name"
        + (" with --branch" if target else "") + f", or delete it with `git branch -D {name}`"
    )


def _checked_run(args: list[str], root: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return _run(args, root)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
