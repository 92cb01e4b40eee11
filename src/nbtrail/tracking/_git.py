"""Capture the state of the git work tree a run starts in, and snapshot it as a commit.

Everything goes through the ``git`` command line: it is the one implementation that honours
every repository layout, filter and config a user may have.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nbtrail.errors import GitError, InvalidInputError

# Variables (from `git rev-parse --local-env-vars`) that point git at another repository or
# index. They are set when nbtrail runs inside a git hook, and would make every call below
# operate on the wrong repository; config overrides (GIT_CONFIG_PARAMETERS/COUNT) stay.
_REPO_ENV_VARS = frozenset(
    {
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CONFIG",
        "GIT_OBJECT_DIRECTORY",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_GRAFT_FILE",
        "GIT_INDEX_FILE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_REPLACE_REF_BASE",
        "GIT_PREFIX",
        "GIT_INTERNAL_SUPER_PREFIX",
        "GIT_SHALLOW_FILE",
        "GIT_COMMON_DIR",
    }
)

# Snapshot refs must never move anything the user owns.
_USER_REF_PREFIXES = ("refs/heads/", "refs/tags/", "refs/remotes/", "refs/stash")

_SNAPSHOT_IDENTITY = {
    "GIT_AUTHOR_NAME": "nbtrail",
    "GIT_AUTHOR_EMAIL": "nbtrail@localhost",
    "GIT_COMMITTER_NAME": "nbtrail",
    "GIT_COMMITTER_EMAIL": "nbtrail@localhost",
}

_MAX_STDERR = 2000


@dataclass(frozen=True)
class GitInfo:
    """Where a run's code lives in git, and whether it differs from the recorded commit."""

    root: str
    """Absolute path of the work tree root."""
    commit: str | None
    """HEAD commit sha; None when the repository has no commits yet."""
    branch: str | None
    """Short name of the current branch; None on a detached HEAD."""
    dirty: bool
    """True when tracked files differ from HEAD or untracked, not ignored files exist."""
    snapshot: str | None = None
    """Sha of the commit holding the work tree as the run saw it (see snapshot_worktree)."""


def _git_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV_VARS}
    # English messages, because capture_git tells "not a repository" apart by its text.
    env["LC_ALL"] = "C"
    env["GIT_TERMINAL_PROMPT"] = "0"
    if extra:
        env.update(extra)
    return env


def _run(
    args: Sequence[str],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run git in `cwd`, feeding it `input`; FileNotFoundError when git is not installed."""
    # --no-optional-locks keeps `git status` from rewriting the user's index to refresh it.
    return subprocess.run(
        ["git", "--no-optional-locks", *args],
        cwd=cwd,
        env=_git_env(env),
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        check=False,
    )


def _error(args: Sequence[str], cwd: str | os.PathLike[str], stderr: bytes) -> GitError:
    detail = stderr.decode(errors="replace").strip()
    if len(detail) > _MAX_STDERR:
        detail = "..." + detail[-_MAX_STDERR:]
    return GitError(f"`git {' '.join(args)}` failed in {os.fspath(cwd)}: {detail or 'no output'}")


def git_bytes(
    args: Sequence[str], cwd: str | os.PathLike[str], *, input: bytes | None = None
) -> bytes:
    """Run git in `cwd` with nbtrail's sanitized environment and return its raw stdout.

    `input` is fed to git's stdin (e.g. object names for ``cat-file --batch-check``).
    Raises GitError when git fails or is not installed.
    """
    try:
        proc = _run(args, cwd, input=input)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if proc.returncode != 0:
        raise _error(args, cwd, proc.stderr)
    return proc.stdout


def _git(
    args: Sequence[str], cwd: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> str:
    """Run git and return its stdout without the trailing newline; GitError on failure."""
    try:
        proc = _run(args, cwd, env)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if proc.returncode != 0:
        raise _error(args, cwd, proc.stderr)
    return os.fsdecode(proc.stdout).removesuffix("\n")


def capture_git(start: str | os.PathLike[str]) -> GitInfo | None:
    """Describe the git work tree containing `start` (a directory or a file in one).

    Returns None when `start` is not inside a git work tree or git is not installed.
    """
    path = Path(start)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        return None
    args = ["rev-parse", "--show-toplevel"]
    try:
        proc = _run(args, path)
    except FileNotFoundError:
        return None
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        # Outside any repository, or inside a .git directory / bare repository.
        if "not a git repository" in stderr or "must be run in a work tree" in stderr:
            return None
        raise _error(args, path, proc.stderr)
    root = os.fsdecode(proc.stdout).removesuffix("\n")
    if not root:
        return None

    # One status call yields HEAD, branch and dirtiness together.
    status = ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal"]
    try:
        out = _run(status, root)
    except FileNotFoundError:
        return None
    if out.returncode != 0:
        raise _error(status, root, out.stderr)

    commit: str | None = None
    branch: str | None = None
    dirty = False
    for record in out.stdout.split(b"\0"):
        if not record:
            continue
        if not record.startswith(b"# "):
            # Headers come first; anything after is a change entry. Stopping here also keeps
            # a file named "# branch.head x" from being read as a header.
            dirty = True
            break
        key, _, value = os.fsdecode(record[2:]).partition(" ")
        if key == "branch.oid" and value != "(initial)":
            commit = value
        elif key == "branch.head" and value != "(detached)":
            branch = value
    return GitInfo(root=root, commit=commit, branch=branch, dirty=dirty)


def snapshot_worktree(info: GitInfo, ref: str, message: str) -> str:
    """Commit the work tree of `info` as it is now and point `ref` at that commit.

    The commit holds tracked files with their current content plus untracked files that are
    not ignored; its parent is HEAD (none in a repository without commits). The user's index,
    HEAD, branches, stash and files are left untouched: staging happens in a throwaway index.
    `ref` must be a full ref outside the user's namespaces, e.g. ``refs/nbtrail/runs/<id>``.
    Returns the sha of the snapshot commit.
    """
    if not ref.startswith("refs/") or ref.startswith(_USER_REF_PREFIXES):
        raise InvalidInputError(
            f"snapshot ref {ref!r} must start with 'refs/' and not be a branch, tag, remote "
            "or the stash; use e.g. 'refs/nbtrail/runs/<run_id>'"
        )
    root = info.root

    # git dir and HEAD in one call: on an unborn HEAD, --verify fails (exit 1) after the
    # git dir has already been printed.
    args = ["rev-parse", "--absolute-git-dir", "-q", "--verify", "HEAD^{commit}"]
    try:
        proc = _run(args, root)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    lines = os.fsdecode(proc.stdout).splitlines()
    if proc.returncode == 0 and len(lines) == 2:
        git_dir, head = lines[0], lines[1]
    elif proc.returncode == 1 and len(lines) == 1:
        git_dir, head = lines[0], None
    else:
        raise _error(args, root, proc.stderr)

    # In a linked worktree the git dir is .git/worktrees/<name>, which holds that index.
    real_index = Path(git_dir, "index")
    temp_index = Path(git_dir, f"nbtrail-index-{secrets.token_hex(8)}")
    index_env = {"GIT_INDEX_FILE": str(temp_index)}
    try:
        # A copy carries the stat data, so `git add` only rehashes files that changed. With
        # no index yet there is nothing to copy: git reads a missing index file as empty.
        with contextlib.suppress(FileNotFoundError):
            # copy2 keeps the index's mtime: git trusts cached stat data only for files
            # older than the index, so a reset mtime would hide same-size edits.
            shutil.copy2(real_index, temp_index)
        # A split index would write a new shared index file next to the user's, and the
        # copied fsmonitor token could hide changes; neither is worth the risk here.
        add = ["-c", "core.splitIndex=false", "-c", "core.fsmonitor=false", "add", "-A"]
        _git(add, root, index_env)
        tree = _git(["write-tree"], root, index_env)
    finally:
        temp_index.unlink(missing_ok=True)
        Path(f"{temp_index}.lock").unlink(missing_ok=True)

    # Fixed identity: works without user.name/email, and says plainly who made the commit.
    # --no-gpg-sign: a snapshot must never wait on a signing prompt, whatever the config says.
    commit_args = ["commit-tree", "--no-gpg-sign", "-m", message]
    if head is not None:
        commit_args += ["-p", head]
    sha = _git([*commit_args, tree], root, _SNAPSHOT_IDENTITY)

    # update-ref runs the reference-transaction hook; a user's hook has no business here.
    # --no-deref so a symbolic `ref` cannot redirect the update onto a branch.
    _git(
        ["-c", f"core.hooksPath={os.devnull}", "update-ref", "--no-deref", ref, sha],
        root,
    )
    return sha
