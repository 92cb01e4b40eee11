"""Real git repositories and notebooks in temp folders, for the experiments tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..conftest import SRC, git


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "T")
    git(path, "config", "user.email", "t@e")
    return path


def commit_all(repo: Path, message: str = "commit") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def checkout_state(repo: Path) -> dict[str, Any]:
    """What a reproduction or a restore must leave exactly as it was."""
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "-q", "HEAD", check=False),
        "branches": git(repo, "for-each-ref", "refs/heads", "--format=%(refname) %(objectname)"),
        "index": (repo / ".git" / "index").read_bytes(),
        "status": git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
    }


def write_notebook(path: Path, *cells: str) -> Path:
    """A notebook of code cells (a markdown cell first, so cell numbers count it)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# training"),
                *(nbformat.v4.new_code_cell(source) for source in cells)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def execute_notebook(path: Path, store: Path) -> None:
    """Run a notebook as Jupyter would: in its folder, knowing its own path."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "NBTRAIL_HOME": str(store), "JPY_SESSION_NAME": str(path),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC),
                                                       os.environ.get("PYTHONPATH")]))}
    client = NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(path.parent)}})
    with open(os.devnull, "wb") as quiet:
        client.execute(env=env, stderr=quiet)
