"""The REST routes of the server extension, in one table (mirrored in docs/jupyterlab.md)."""

from __future__ import annotations

from typing import Any

from ._experiments import (
    BranchesHandler,
    CompareHandler,
    ExperimentsHandler,
    SweepHandler,
    SweepsHandler,
)
from ._package import PackageJobHandler, PackageJobsHandler
from ._registry import DecisionHandler, RegisterHandler, RegistryListHandler
from ._runs import (
    ArtifactHandler,
    LineageHandler,
    MetricHandler,
    RunHandler,
    RunsHandler,
    StoreHandler,
)
from ._serving import PackagesHandler, PromoteHandler, TrafficHandler

PREFIX = "nbtrail/api"
_ID = r"([^/]+)"
# Artifact names and metric keys may contain slashes: they take the rest of the path.
_REST = r"(.+)"

ROUTES: list[tuple[str, type]] = [
    ("store", StoreHandler),
    ("runs", RunsHandler),
    (f"runs/{_ID}", RunHandler),
    (f"runs/{_ID}/metrics/{_REST}", MetricHandler),
    (f"runs/{_ID}/artifacts/{_REST}", ArtifactHandler),
    (f"lineage/{_ID}", LineageHandler),
    ("experiments", ExperimentsHandler),
    ("branches", BranchesHandler),
    ("compare", CompareHandler),
    ("sweeps", SweepsHandler),
    (f"sweeps/{_ID}", SweepHandler),
    ("package", PackageJobsHandler),
    (f"package/{_ID}", PackageJobHandler),
    ("packages", PackagesHandler),
    (f"packages/{_ID}/traffic", TrafficHandler),
    (f"packages/{_ID}/promote", PromoteHandler),
    ("registry", RegistryListHandler),
    ("registry/register", RegisterHandler),
    (f"registry/requests/{_ID}/(approve|reject)", DecisionHandler),
]


def handlers(base_url: str) -> list[tuple[str, type, dict[str, Any]]]:
    """The routes as tornado handler specs under the server's base URL."""
    from jupyter_server.utils import url_path_join

    return [(url_path_join(base_url, PREFIX, pattern) + "/?$", handler, {})
            for pattern, handler in ROUTES]
