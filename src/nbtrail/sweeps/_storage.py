"""Optuna, loaded late, and the storages sweeps keep their studies in.

A storage object cannot cross a process boundary (it holds locks, caches and database
connections), so a sweep remembers *how* to open its storage — a :class:`StorageSpec` —
and every worker process opens its own.
"""

from __future__ import annotations

import hashlib
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InvalidInputError, MissingExtraError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from ..store import Store

INSTALL_HINT = "pip install 'nbtrail[sweeps]'"
# SQLAlchemy dialects Optuna's RDB storage is tested with.
RDB_SCHEMES = ("postgresql", "mysql", "sqlite")
# Seconds between a running trial's heartbeats in an RDB storage; a trial silent for
# GRACE_PERIOD seconds (its worker died) is marked failed by the next worker that asks.
HEARTBEAT_INTERVAL = 30
GRACE_PERIOD = 120


def optuna() -> ModuleType:
    """The ``optuna`` module, or an error that says how to install it."""
    try:
        import optuna as module
    except ImportError:
        raise MissingExtraError(
            f"sweeps need Optuna, which is not installed; run: {INSTALL_HINT}"
        ) from None
    return module


@dataclass(frozen=True)
class StorageSpec:
    """How to open a sweep's Optuna storage in any process (picklable, unlike storages)."""

    kind: Literal["journal", "rdb"]
    location: str
    """The journal file, or the database URL."""

    def open(self) -> BaseStorage:
        """A new storage object for this process."""
        storages = optuna().storages
        if self.kind == "journal":
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
            backend = JournalFileBackend(self.location,
                                         lock_obj=JournalFileOpenLock(self.location))
            return storages.JournalStorage(backend)
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
                warnings.simplefilter("ignore", optuna().exceptions.ExperimentalWarning)
                return storages.RDBStorage(self.location, heartbeat_interval=HEARTBEAT_INTERVAL,
                                           grace_period=GRACE_PERIOD)
        except ImportError as exc:  # the database driver
            raise MissingExtraError(
                f"cannot open the sweep storage {self.describe()}: {exc}; install the driver "
                "of your database (PostgreSQL: pip install 'psycopg[binary]')"
            ) from None

    @property
    def remote(self) -> bool:
        """True when other machines may add trials (so the store must be synced)."""
        return self.kind == "rdb" and not self.location.startswith("sqlite")

    def describe(self) -> str:
        """The location without a password, for messages and tags."""
        return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", self.location)


def storage_spec(storage: str | None, name: str, store: Store) -> StorageSpec:
    """Check a ``storage=`` argument.

    ``None`` means the store's own database if it is a server's (the team store: workers
    on many machines then need one URL), else a journal file inside the store's folder.
    """
    if storage is None:
        if store.database_url is not None:
            return storage_spec(store.database_url, name, store)
        return StorageSpec("journal",
                           str(store.home / "sweeps" / f"{_file_name(name)}.journal"))
    if not isinstance(storage, str):
        raise InvalidInputError(
            f"storage must be a database URL such as 'postgresql://user@host/db' or None "
            f"(a journal file in the store), got {type(storage).__name__}; to use an Optuna "
            "storage object, build the study yourself and pass it to nt.track_study"
        )
    scheme = storage.split("://", 1)[0] if "://" in storage else ""
    dialect = scheme.split("+", 1)[0]
    if dialect in ("postgres",):
        raise InvalidInputError(
            f"storage {storage!r}: SQLAlchemy spells the scheme 'postgresql://', not "
            "'postgres://'"
        )
    if dialect not in RDB_SCHEMES:
        raise InvalidInputError(
            f"storage {storage!r} has an unknown URL scheme {scheme!r}; use one of "
            f"{', '.join(s + '://' for s in RDB_SCHEMES)} (Optuna's RDB storage), or leave "
            "storage=None for a journal file in the nbtrail store"
        )
    return StorageSpec("rdb", _with_installed_driver(storage, scheme))


def _with_installed_driver(url: str, scheme: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg 3 when only it is there."""
    if scheme != "postgresql" or _importable("psycopg2") or not _importable("psycopg"):
        return url
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def _importable(module: str) -> bool:
    import importlib.util

    return module in sys.modules or importlib.util.find_spec(module) is not None


def _file_name(name: str) -> str:
    """A file name for a sweep name; distinct names never share a file."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100]
    if safe != name:
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return safe


def spec_of(storage: Any) -> StorageSpec | None:
    """The spec of a storage object a user built, where it is a database (else ``None``)."""
    # Optuna wraps an RDB storage given as a URL in a cache that keeps it as ``_backend``.
    url = getattr(storage, "url", None) or getattr(getattr(storage, "_backend", None), "url",
                                                   None)
    return StorageSpec("rdb", url) if isinstance(url, str) else None


def describe_storage(storage: Any) -> str:
    """A short name for a storage object a user built (for tags)."""
    spec = spec_of(storage)
    return spec.describe() if spec is not None else type(storage).__name__
