"""``open_store``: the one place a location becomes a store, and where backends plug in.

A location is a folder (the embedded DuckDB store), or a URL whose scheme names a
backend. A new backend adds one entry to ``_BACKENDS``; no caller changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ._base import Store


def _duckdb(location: str, *, read_only: bool) -> Store:
    """The embedded store in folder ``location`` (or the folder of its database file)."""
    from .._config import config
    from ._duckdb import DB_NAME, DuckDBStore

    home = Path(location).expanduser().resolve()
    if home.name == DB_NAME and home.is_file():  # the database file itself was given
        home = home.parent
    settings = config.current
    return DuckDBStore(home, flush_interval=settings.flush_interval,
                       fold_interval=settings.fold_interval, read_only=read_only,
                       artifacts=settings.artifacts)


def _postgres(location: str, *, read_only: bool) -> Store:
    """The team store in the PostgreSQL database at ``postgresql://location``."""
    from .._config import config
    from ._postgres import PostgresStore

    settings = config.current
    return PostgresStore(f"postgresql://{location}", home=settings.resolve_home(),
                         flush_interval=settings.flush_interval,
                         ship_interval=settings.fold_interval, read_only=read_only,
                         artifacts=settings.artifacts)


# URL scheme -> backend; a plain path is the embedded store.
_BACKENDS: dict[str, Callable[..., Store]] = {
    "file": _duckdb, "postgresql": _postgres, "postgres": _postgres}
_DESCRIPTIONS = {
    "file": "a folder path or file:// URL (the embedded DuckDB store)",
    "postgresql": "postgresql://user@host/database (the team store; libpq's URL, "
                  "~/.pgpass and PG* variables apply)",
}


def open_store(location: str | os.PathLike[str] | None = None, *,
               read_only: bool = False) -> Store:
    """The store at ``location``: a folder, a ``scheme://`` URL, or ``None`` for the configured one.

    ``None`` means what ``nt.config`` points at: ``$NBTRAIL_STORE`` (a team store URL)
    if set, else the folder ``$NBTRAIL_HOME``, else ``.nbtrail`` at the git root. A
    read-only store never writes: no journal, no blob, no migration. Nothing is created
    until something is logged.

    Example:
        >>> store = nt.open_store("/tmp/team-store", read_only=True)  # doctest: +SKIP
        >>> store.count_runs()  # doctest: +SKIP
    """
    if location is None:
        from .._config import config

        settings = config.current
        if settings.store is None:
            return _duckdb(str(settings.resolve_home()), read_only=read_only)
        location = settings.store
    text = os.fspath(location)
    if not isinstance(text, str):
        raise InvalidInputError(f"a store location must be a path or URL, got {location!r}")
    scheme, found, rest = text.partition("://")
    if not found:
        return _duckdb(text, read_only=read_only)
    backend = _BACKENDS.get(scheme.lower())
    if backend is None:
        known = "; ".join(_DESCRIPTIONS.values())
        # Not the whole location: a URL may carry credentials.
        raise InvalidInputError(
            f"no store backend for {scheme}:// locations; the backends are: {known}")
    return backend(rest, read_only=read_only)
