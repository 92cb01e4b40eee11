"""The example notebooks under nbval: each one's store is set from outside.

Run by hand, the notebooks record into the project's store (``.nbtrail/`` at the repository
root), which the JupyterLab sidebar shows; nothing in them knows about tests. Here each
notebook's kernel starts with ``NBTRAIL_HOME`` naming an empty store of its own, so the
outputs nbval checks do not depend on what was recorded before. The kernels run in this
repository, so their runs capture its git state like any user's and leave snapshot refs
(``refs/nbtrail/runs/<run id>``): those of the runs made here are deleted at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
_stores: dict[Path, Path] = {}  # notebook -> its store


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    # nbval starts a notebook's kernel while setting up its first cell, with this
    # process's environment: point that kernel at the notebook's own store.
    notebook = Path(str(item.fspath))
    if notebook.suffix != ".ipynb":
        yield
        return
    store = _stores.get(notebook)
    if store is None:
        store = _stores[notebook] = Path(tempfile.mkdtemp(prefix=f"nbtrail-{notebook.stem}-"))
    saved = os.environ.get("NBTRAIL_HOME")
    os.environ["NBTRAIL_HOME"] = str(store)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["NBTRAIL_HOME"]
        else:
            os.environ["NBTRAIL_HOME"] = saved


def pytest_sessionfinish(session: pytest.Session) -> None:
    for store in _stores.values():
        drop_snapshot_refs(store, HERE)
        shutil.rmtree(store, ignore_errors=True)
    _stores.clear()


def drop_snapshot_refs(store: Path, where: Path) -> None:
    """Delete the snapshot refs that the runs recorded in ``store`` left in ``where``'s repo."""
    from nbtrail.store._duckdb import DuckDBStore

    if not any(store.iterdir()):  # the notebook failed before its first run
        return
    db = DuckDBStore(store)
    try:
        run_ids = db.sql("SELECT run_id FROM runs")["run_id"].to_list()
    finally:
        db.close()
    commands = "".join(f"delete refs/nbtrail/runs/{run_id}\n" for run_id in run_ids)
    # Outside git (a source tarball) there is nothing to delete; refs another repository
    # holds (notebook 02 makes its own) are not in this one, which git ignores.
    subprocess.run(["git", "-C", str(where), "update-ref", "--stdin"], input=commands,
                   text=True, capture_output=True, check=False)
