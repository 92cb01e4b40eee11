import pytest

import nbtrail as nt


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh store without git capture (the tmp folder is no repository anyway)."""
    home = tmp_path / "store"
    with nt.config(home=str(home), capture_git=False):
        yield home
