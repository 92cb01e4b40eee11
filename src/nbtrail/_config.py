"""Settings: where the store lives and how the journal is flushed.

The environment is read here and nowhere else. ``nt.config`` is a scoped settings
object: assign to it, or use it as a context manager to override for a block::

    with nt.config(home="/tmp/scratch-store"):
        ...
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

STORE_DIRNAME = ".nbtrail"
# Shorter intervals measure the sampler more than the training.
MIN_SYSTEM_METRICS_INTERVAL = 0.1


@dataclass(frozen=True)
class Settings:
    """One snapshot of nbtrail's settings.

    Attributes:
        home: The store folder; ``None`` means: ``$NBTRAIL_HOME``, else ``.nbtrail`` at the
            git root of the current folder, else ``.nbtrail`` in the current folder.
        flush_interval: Seconds between background journal flushes. A process killed
            with SIGKILL loses at most this much of what it logged.
        fold_interval: Seconds between attempts of a writer to fold its journal into the
            database while it keeps logging.
        capture_git: Record git state and snapshot the working tree at run start.
        capture_environment: Record Python, platform and installed packages at run start.
        system_metrics: Sample CPU, memory, disk, network (and NVIDIA GPU) use into
            ``system/*`` metrics while a run is active.
        system_metrics_interval: Seconds between two system metrics samples of a run.
        store: The store to log to and read from when it is not the folder ``home``: a
            team store URL (``postgresql://user@host/db``). ``None`` means:
            ``$NBTRAIL_STORE``, else the folder. The folder still holds what this machine
            has not shipped yet.
        artifacts: Where blobs (models, artifacts, data-set samples) are shared:
            ``s3://bucket/prefix``, ``gs://…``, ``az://…`` or a folder on a shared file
            system; the store folder keeps a copy of each and is the read cache.
            ``None`` means: ``$NBTRAIL_ARTIFACTS``, else blobs stay in the store folder.
        git_remote: The remote ``nbtrail sync`` pushes code snapshots to, and comparing or
            reproducing a run made elsewhere fetches them from; ``""`` turns both off.
            Default: ``$NBTRAIL_GIT_REMOTE``, else ``origin``.
        build_isolation: ``--isolation`` for podman image builds (``"chroot"`` where there
            are no user namespaces, as inside containers and CI); ``None`` means:
            ``$NBTRAIL_BUILD_ISOLATION``, else podman's default.
    """

    home: str | os.PathLike[str] | None = None
    flush_interval: float = 0.2
    fold_interval: float = 1.0
    capture_git: bool = True
    capture_environment: bool = True
    system_metrics: bool = True
    system_metrics_interval: float = 10.0
    store: str | None = field(default_factory=lambda: os.environ.get("NBTRAIL_STORE") or None)
    artifacts: str | None = field(
        default_factory=lambda: os.environ.get("NBTRAIL_ARTIFACTS") or None)
    git_remote: str = field(
        default_factory=lambda: os.environ.get("NBTRAIL_GIT_REMOTE", "origin"))
    build_isolation: str | None = field(
        default_factory=lambda: os.environ.get("NBTRAIL_BUILD_ISOLATION") or None)

    def __post_init__(self) -> None:
        interval = self.system_metrics_interval
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
                or not interval >= MIN_SYSTEM_METRICS_INTERVAL:
            from .errors import InvalidInputError

            raise InvalidInputError(
                f"system_metrics_interval must be a number of seconds of at least "
                f"{MIN_SYSTEM_METRICS_INTERVAL}, got {interval!r}; the default is 10"
            )

    def resolve_home(self, cwd: Path | None = None) -> Path:
        """Return the absolute store folder these settings point at."""
        if self.home is not None:
            return Path(self.home).expanduser().resolve()
        env = os.environ.get("NBTRAIL_HOME")
        if env:
            return Path(env).expanduser().resolve()
        start = (cwd or Path.cwd()).resolve()
        for folder in (start, *start.parents):
            # A `.git` file (not folder) marks a linked worktree; either way this is the root.
            if (folder / ".git").exists():
                return folder / STORE_DIRNAME
        return start / STORE_DIRNAME


_overrides: ContextVar[Settings | None] = ContextVar("nbtrail_settings", default=None)


class Config:
    """Process-wide settings with scoped overrides (``nt.config``).

    Read a setting with ``nt.config.home``; change it for the process with
    ``nt.config.set(home=...)``; change it for a block with ``with nt.config(home=...):``.
    """

    def __init__(self) -> None:
        self._base = Settings()

    @property
    def current(self) -> Settings:
        """The settings in force in this context."""
        return _overrides.get() or self._base

    def set(self, **changes: object) -> None:
        """Change settings for the whole process, e.g. ``nt.config.set(home="store")``."""
        self._base = replace(self._base, **_checked(changes))

    def reset(self) -> None:
        """Restore the defaults."""
        self._base = Settings()

    @contextlib.contextmanager
    def __call__(self, **changes: object) -> Iterator[Settings]:
        """Override settings inside a ``with`` block (also usable as a decorator)."""
        token = _overrides.set(replace(self.current, **_checked(changes)))
        try:
            yield _overrides.get()  # type: ignore[misc]
        finally:
            _overrides.reset(token)

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.current, name)

    def __repr__(self) -> str:
        return f"nbtrail.config({self.current})"


def _checked(changes: dict[str, object]) -> dict[str, Any]:
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(changes) - known)
    if unknown:
        from .errors import InvalidInputError

        raise InvalidInputError(
            f"unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(sorted(known))}"
        )
    return changes


config = Config()
