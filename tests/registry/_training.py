"""A champion that ``nt.retrain`` can retrain: trained by a notebook committed in a git repo.

Retraining re-executes the champion's training notebook from its run's code snapshot, with
the new data as notebook parameters; so the champion must come from a committed notebook
whose cell tagged ``parameters`` sets ``data_path`` and ``labels``, run by a real kernel.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..conftest import SRC
from ..experiments._repos import commit_all, execute_notebook, init_repo, write_notebook


def kernels_import_this_nbtrail(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels that retraining starts inherit the environment: they import this nbtrail."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))


def train_in_repo(repo: Path, store: Path, source: str, *, data: str, labels: str) -> Path:
    """A new git repo at ``repo`` with ``train.ipynb`` committed, executed once into
    ``store``; its path. The notebook is a cell tagged ``parameters`` that sets
    ``data_path`` and ``labels`` to ``data`` and ``labels``, then ``source``.

    The caller isolates git (``isolate_git``): the repo gets its own identity.
    """
    import nbformat

    init_repo(repo)
    notebook = write_notebook(repo / "train.ipynb",
                              f"data_path = {data!r}\nlabels = {labels!r}", source)
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[1].metadata["tags"] = ["parameters"]  # cell 0 is write_notebook's markdown
    nbformat.write(nb, notebook)
    commit_all(repo, "training notebook")
    execute_notebook(notebook, store)
    return notebook
