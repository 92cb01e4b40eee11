"""The errors nbtrail raises on purpose, and what each means to a shell and to HTTP.

Every class derives from :class:`NbtrailError`; the CLI and the server extension print
its message as it is, without a traceback, because these are expected mistakes. The table
at the end (:data:`OUTCOMES`) gives each class its exit status in the ``nbtrail`` command
and its HTTP status in the server extension; both read it through :func:`outcome`.
"""

from __future__ import annotations

from typing import NamedTuple


class NbtrailError(Exception):
    """Base class of every error nbtrail raises on purpose.

    The CLI and the server print its message without a traceback.
    """


class InvalidInputError(NbtrailError, ValueError):
    """A value passed to nbtrail is not acceptable; the message names it and the fix."""


class MissingExtraError(NbtrailError, ImportError):
    """An optional dependency of the feature used is not installed; the message says how."""


class FilterError(InvalidInputError):
    """A run filter or ordering expression could not be parsed."""


class NotFoundError(NbtrailError, LookupError):
    """A run, data set, model, artifact or sweep asked for is not in the store."""


class StoreNotFoundError(NotFoundError):
    """No store exists at the location asked for."""


class ConflictError(NbtrailError):
    """What was asked conflicts with the current state of the store, run or sweep.

    For example: no active run, a read-only store, a sweep already running, a store
    written by a newer nbtrail.
    """


class ApprovalError(ConflictError):
    """A registry decision the rules refuse: four eyes, or a request already decided."""


class StoreLockedError(ConflictError):
    """Another program holds the store's database file open for writing."""


class StoreFullError(NbtrailError):
    """The disk holding the store is full; logged records wait in memory and are retried."""


class TeamStoreError(NbtrailError):
    """The team store's PostgreSQL refused or did not answer; records wait locally."""


class ArtifactStoreError(NbtrailError):
    """The artifact store (S3, GCS, Azure or a shared folder) refused or did not answer."""


class StoreDatabaseError(NbtrailError):
    """DuckDB failed on the store's database file (damaged or unreadable).

    The journals still hold every record; the message names the file and how to move it
    aside.
    """


class RunFinishedError(ConflictError):
    """Something was logged to a run that has already ended."""


class GitError(NbtrailError):
    """A git command needed for capture or snapshots failed."""


class UntrustedModelError(NbtrailError):
    """Loading a model would need trusting types or code that are not trusted."""


class SnapshotError(NbtrailError):
    """A run's code snapshot is not recorded, or no longer in its git repository."""


class ReproduceError(NbtrailError):
    """A run cannot be re-executed: no notebook recorded, no kernel, no reproduced run."""


class ProcessError(NbtrailError):
    """A process nbtrail started failed: a sweep worker, a model server, an image build."""


class Outcome(NamedTuple):
    """What an error means outside Python: the CLI's exit status and the HTTP status."""

    exit_code: int
    http_status: int


# The one mapping of error classes to exit and HTTP statuses. An error takes the row of the
# nearest class in its method resolution order, so a subclass without a row of its own
# (FilterError, a server's ArgumentError, packaging's BuildError) takes its parent's.
# Every expected mistake exits 1 (2 is a command line argparse rejects); `nbtrail drift`
# and `validate` answer a question with 1, so they exit 2 on any error instead.
OUTCOMES: dict[type[NbtrailError], Outcome] = {
    InvalidInputError: Outcome(1, 400),
    UntrustedModelError: Outcome(1, 403),
    ApprovalError: Outcome(1, 403),
    NotFoundError: Outcome(1, 404),
    ConflictError: Outcome(1, 409),
    GitError: Outcome(1, 409),
    SnapshotError: Outcome(1, 409),
    ReproduceError: Outcome(1, 409),
    ProcessError: Outcome(1, 500),
    StoreFullError: Outcome(1, 507),  # Insufficient Storage: free space, then retry
    TeamStoreError: Outcome(1, 503),  # Service Unavailable: the server, not the request
    ArtifactStoreError: Outcome(1, 503),
    # The server lacks an optional dependency: it cannot do this, the request is fine.
    MissingExtraError: Outcome(1, 501),
    NbtrailError: Outcome(1, 500),
}


def outcome(error: NbtrailError) -> Outcome:
    """The exit and HTTP status of ``error``, from :data:`OUTCOMES`."""
    return next(OUTCOMES[kind] for kind in type(error).__mro__ if kind in OUTCOMES)
