"""The lineage store: the ``Store`` interface, ``open_store`` and the records it deals in.

Everything outside this package holds a :class:`Store`; only :func:`open_store` decides
which backend a location means. Writes are typed records (:class:`Write` and its
subclasses) appended to the store's writer as ``writer.append(record.to_journal())``.
"""

# First: the fork hooks of _fork must be registered before those of the modules built on
# the store, so that a forked child has its own fork gate before those hooks start threads.
from . import _fork  # noqa: F401
from ._base import Direction, Group, Mode, Store
from ._open import open_store
from ._records import Backlog, Lineage, Run
from ._writes import (
    Artifact,
    CodeSnapshot,
    Dataset,
    Edge,
    Environment,
    Model,
    PackageMade,
    Param,
    RunDataset,
    RunEnd,
    RunStart,
    Tag,
    Write,
)

__all__ = [
    "Artifact", "Backlog", "CodeSnapshot", "Dataset", "Direction", "Edge", "Environment", "Group",
    "Lineage", "Mode", "Model", "PackageMade", "Param", "Run", "RunDataset", "RunEnd",
    "RunStart", "Store", "Tag", "Write", "open_store",
]
