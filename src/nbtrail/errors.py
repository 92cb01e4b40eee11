"""The errors nbtrail raises on purpose.

Every class derives from :class:`NbtrailError`; the CLI and the server extension print
its message as it is, without a traceback, because these are expected mistakes.
"""


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


class StoreNotFoundError(NbtrailError):
    """No store exists at the location asked for."""


class StoreLockedError(NbtrailError):
    """Another program holds the store's database file open for writing."""


class StoreFullError(NbtrailError):
    """The disk holding the store is full; logged records wait in memory and are retried."""


class NotFoundError(NbtrailError, LookupError):
    """A run, data set, model or artifact id is not in the store."""


class RunFinishedError(NbtrailError):
    """Something was logged to a run that has already ended."""


class GitError(NbtrailError):
    """A git command needed for capture or snapshots failed."""


class UntrustedModelError(NbtrailError):
    """Loading a model would need trusting types or code that are not trusted."""


class SnapshotError(NbtrailError):
    """A run's code snapshot is not recorded, or no longer in its git repository."""


class ReproduceError(NbtrailError):
    """A run cannot be re-executed: no notebook recorded, no kernel, no reproduced run."""
