"""Fixtures of the autolog tests: a store of the test's own, and autolog on for the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbtrail as nt
from nbtrail.tracking._tracker import get_tracker


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "store"
    # The env var (not only nt.config) so worker threads resolve the same store too.
    monkeypatch.setenv("NBTRAIL_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    with nt.config(capture_git=False, system_metrics=False):
        yield home
        get_tracker().close()


@pytest.fixture
def autolog(store: Path) -> Iterator[None]:
    nt.autolog()
    yield
    nt.autolog(disable=True)


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True, as_frame=True)
