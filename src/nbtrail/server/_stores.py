"""The stores the server reads: the configured one, built at load time, and others on demand."""

from __future__ import annotations

import threading
from pathlib import Path

from ..errors import StoreNotFoundError
from ..store import Store, open_store


class Stores:
    """One ``Store`` a folder (or team store URL), built on first use and kept.

    A store object keeps one read-only DuckDB instance it attaches the file to for each
    read (or one connection to the team store), so building it once keeps reads at about
    a millisecond.
    """

    def __init__(self, default: Path | str) -> None:
        self.default = default
        self._stores: dict[Path | str, Store] = {default: open_store(default)}
        self._lock = threading.Lock()

    def get(self, path: str | None = None) -> Store:
        """The store at ``path`` (the default store when ``None``).

        A folder other than the default must already hold a store: the sidebar's store
        path setting may name any store, but never makes one appear where none is.
        """
        if path is None:
            return self._stores[self.default]
        folder: Path | str = path if "://" in path else Path(path).expanduser().resolve()
        with self._lock:
            found = self._stores.get(folder)
            if found is None:
                found = open_store(folder)
                if not found.exists():
                    raise StoreNotFoundError(
                        f"no nbtrail store at {found.location} (the sidebar's store path "
                        "setting); clear the setting to use this server's store, or name "
                        "a folder that holds nbtrail.duckdb or a team store's URL"
                    )
                self._stores[folder] = found
            return found
