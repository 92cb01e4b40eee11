"""A serving package as the store knows it, and the prediction logs its servers wrote.

Serving a package built from registry references records a ``deployed`` audit entry per
version, with the server's ``log_dir`` (``packaging._local.serve``); those entries are
how ``nt.traffic`` and ``nt.challenge`` find a package's logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, NotFoundError
from ..registry._state import DEPLOYED

if TYPE_CHECKING:
    from ..store import Store


def package_row(store: Store, package: object) -> dict[str, Any]:
    """The ``packages`` row of a :class:`Package`, a package id or a name (its newest)."""
    from ..packaging import Package

    if isinstance(package, Package):
        package = package.package_id
    if not isinstance(package, str) or not package.strip():
        raise InvalidInputError(f"package must be a Package, a package id (pkg_…) or a "
                                f"package name, got {package!r}")
    if package.startswith("pkg_"):
        found = store.packages(package_id=package)
    else:
        every = store.packages()
        found = every.filter(every["name"] == package).head(1)
    if found.is_empty():
        raise NotFoundError(f"no package {package!r} in the store at {store.location}; "
                            "nt.package makes one (nbtrail models show lists a model's)")
    return found.row(0, named=True)


def deployed_logs(entries: list[dict[str, Any]]) -> list[str]:
    """The existing log folders of a package's deployments (``package_entries``), newest first."""
    folders = [e["log_dir"] for e in entries if e["event"] == DEPLOYED and e.get("log_dir")]
    return [f for f in dict.fromkeys(folders) if Path(f).is_dir()]
