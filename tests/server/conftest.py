import json
import urllib.parse

import pytest
from jupyter_server.auth import IdentityProvider, User
from jupyter_server.auth.authorizer import AllowAllAuthorizer

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


class NamedLogin(IdentityProvider):
    """A login that knows who holds the token: carol (JupyterHub's names the hub user)."""

    def generate_anonymous_user(self, handler):
        return User("carol")


class ReadOnly(AllowAllAuthorizer):
    """Lets a user read the nbtrail API but change nothing."""

    def is_authorized(self, handler, user, action, resource):
        return not (resource == "nbtrail" and action == "write")


@pytest.fixture
def identity_provider():
    """Who the server says is logged in: Jupyter's own token login (nobody) unless overridden."""
    return IdentityProvider


@pytest.fixture
def authorizer():
    """What the logged-in user may do: everything unless overridden."""
    return AllowAllAuthorizer


@pytest.fixture
def jp_server_config(store_path, identity_provider, authorizer):
    return {
        "ServerApp": {
            "jpserver_extensions": {"nbtrail": True, "jupyter_server_terminals": False},
            # Every endpoint must refuse a request that is not logged in.
            "allow_unauthenticated_access": False,
            "identity_provider_class": identity_provider,
            "authorizer_class": authorizer,
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
