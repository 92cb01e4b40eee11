"""Without a store_path setting the server reads the store nt would use from its root folder."""

import pytest

from ..conftest import git


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbtrail": True,
                                                  "jupyter_server_terminals": False},
                          "allow_unauthenticated_access": False}}


@pytest.fixture
def jp_root_dir(tmp_path):
    root = tmp_path / "repo" / "notebooks"
    root.mkdir(parents=True)
    git(root.parent, "init", "-q")
    return root


async def test_the_default_store_is_at_the_git_root_of_the_root_folder(api, jp_root_dir,
                                                                       monkeypatch):
    status, body = await api("store")
    assert status == 200
    # The autouse isolation points NBTRAIL_HOME elsewhere; it wins, as it does for nt.
    import os

    assert body["location"] == os.environ["NBTRAIL_HOME"]


@pytest.fixture
def _no_home(monkeypatch):
    monkeypatch.delenv("NBTRAIL_HOME")


@pytest.mark.usefixtures("_no_home")
async def test_without_nbtrail_home_the_store_is_at_the_git_root(api, jp_root_dir):
    status, body = await api("store")
    assert status == 200
    assert body["location"] == str(jp_root_dir.parent.resolve() / ".nbtrail")
