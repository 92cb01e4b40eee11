import json
import urllib.parse

import pytest

# pytest-jupyter's fixtures (jp_fetch, jp_serverapp...) for this folder only: registered as a
# plugin in the root conftest they would put an event loop around every test of the suite.
from pytest_jupyter.jupyter_server import *  # noqa: F403

from .._demo import build_in_subprocess as build_demo


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """One demo store for the read-only tests of the session."""
    return build_demo(tmp_path_factory.mktemp("demo") / "project")


@pytest.fixture
def store_path(demo_store):
    """The store the test server reads; override to point it elsewhere."""
    return demo_store


@pytest.fixture
def jp_server_config(store_path):
    return {
        "ServerApp": {
            "jpserver_extensions": {"nbtrail": True, "jupyter_server_terminals": False},
            # Every endpoint must refuse a request that is not logged in.
            "allow_unauthenticated_access": False,
        },
        "NbtrailServer": {"store_path": str(store_path)},
    }


@pytest.fixture
def api(jp_fetch):
    """Call the nbtrail API: ``await api("runs", where=...)`` -> (status, JSON body)."""

    async def call(*parts, method="GET", body=None, headers=None, **params):
        kwargs = {"method": method, "raise_error": False, "headers": headers}
        if body is not None:
            kwargs["body"] = json.dumps(body) if not isinstance(body, str | bytes) else body
        response = await jp_fetch("nbtrail", "api", *parts, params=params, **kwargs)
        text = response.body.decode() if response.body else ""
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text
        return response.code, data

    return call


def quoted(text: str) -> str:
    return urllib.parse.quote(text, safe="")
