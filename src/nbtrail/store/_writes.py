"""The records a writer appends: one frozen dataclass a kind, defined here and only here.

Each record's fields are the columns it fills, in the order of its table; ``to_journal``
is the journal's JSON object (``{"t": kind, **fields}``, the format on disk). The fold's
table list (``_fold.TABLES``) is derived from these classes, and a test checks that the
schema's tables have these columns. Metric points do not come as records: the writer
packs them column-wise (``JournalWriter.add_metric``).

Times are seconds since the epoch; ``JSON`` fields hold any JSON-able value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

JSON = Any


@dataclass(frozen=True)
class Write:
    """Base class of journal records: ``KIND`` names the table (or ``run_end``)."""

    KIND: ClassVar[str]
    KEY: ClassVar[tuple[str, ...]]
    # Whether a later record of the same key replaces an earlier one (else the first stays).
    REPLACE: ClassVar[bool] = False
    TIMES: ClassVar[tuple[str, ...]] = ()
    JSONS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The columns this record fills, in table order."""
        return _columns(cls)

    def to_journal(self) -> dict[str, Any]:
        """The record as the journal stores it."""
        # On the logging path: the field list is looked up once per class, not per record.
        record = {"t": self.KIND}
        for name in _columns(type(self)):
            record[name] = getattr(self, name)
        return record


_COLUMNS: dict[type, tuple[str, ...]] = {}


def _columns(cls: type[Write]) -> tuple[str, ...]:
    names = _COLUMNS.get(cls)
    if names is None:
        names = _COLUMNS[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True)
class RunStart(Write):
    """A run begins (``status`` is ``running`` until a ``RunEnd``)."""

    KIND = "runs"
    KEY = ("run_id",)
    TIMES = ("start_time",)
    JSONS = ("seeds",)

    run_id: str
    name: str | None
    experiment: str
    parent_id: str | None
    status: str
    start_time: float
    git_root: str | None
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    git_snapshot: str | None
    notebook: str | None
    env_id: str | None
    code_id: str | None
    seeds: JSON
    hostname: str | None
    pid: int | None
    writer_id: str | None
    user_name: str | None  # who ran it: the OS user (``nbtrail.tracking`` finds it)


@dataclass(frozen=True)
class RunEnd(Write):
    """A run ends: it updates the run's ``status``, ``end_time`` and ``error``."""

    KIND = "run_end"
    KEY = ("run_id",)
    TIMES = ("end_time",)

    run_id: str
    status: str
    end_time: float
    error: str | None = None


@dataclass(frozen=True)
class Param(Write):
    """A parameter of a run, as text with the type it had (``value_type``)."""

    KIND = "params"
    KEY = ("run_id", "key")
    REPLACE = True

    run_id: str
    key: str
    value: str | None
    value_type: str


@dataclass(frozen=True)
class Tag(Write):
    """A text label of a run; the last value wins."""

    KIND = "tags"
    KEY = ("run_id", "key")
    REPLACE = True

    run_id: str
    key: str
    value: str | None


@dataclass(frozen=True)
class Dataset(Write):
    """A data set's profile, once per content (``dataset_id`` derives from it)."""

    KIND = "datasets"
    KEY = ("dataset_id",)
    TIMES = ("first_seen",)
    JSONS = ("schema", "stats")

    dataset_id: str
    fingerprint: str
    source_type: str | None
    n_rows: int | None
    n_columns: int | None
    schema: JSON
    stats: JSON
    first_seen: float
    sample_sha256: str | None = None


@dataclass(frozen=True)
class RunDataset(Write):
    """A run used a data set under a name and role."""

    KIND = "run_datasets"
    KEY = ("run_id", "dataset_id", "name", "role")
    TIMES = ("logged_at",)

    run_id: str
    dataset_id: str
    name: str
    role: str
    logged_at: float


@dataclass(frozen=True)
class Model(Write):
    """A model a run logged; its bytes are the blob ``sha256``."""

    KIND = "models"
    KEY = ("model_id",)
    TIMES = ("created_at",)
    JSONS = ("signature",)

    model_id: str
    run_id: str
    name: str
    flavor: str | None
    class_name: str | None
    format: str
    sha256: str
    size_bytes: int
    signature: JSON
    training_dataset_id: str | None
    created_at: float


@dataclass(frozen=True)
class Artifact(Write):
    """A file a run logged under ``name``; its bytes are the blob ``sha256``.

    ``kind`` says what a ``log_figure``/``log_image``/... call made of it (``None`` for a
    plain ``log_artifact``); ``step`` places an image in a series.
    """

    KIND = "artifacts"
    KEY = ("run_id", "name")
    REPLACE = True
    TIMES = ("logged_at",)

    run_id: str
    name: str
    artifact_id: str
    sha256: str
    size_bytes: int
    media_type: str | None
    logged_at: float
    kind: str | None = None
    step: int | None = None


@dataclass(frozen=True)
class Environment(Write):
    """A Python environment, once per content."""

    KIND = "environments"
    KEY = ("env_id",)
    JSONS = ("packages", "details")

    env_id: str
    python: str | None
    platform: str | None
    packages: JSON
    details: JSON


@dataclass(frozen=True)
class CodeSnapshot(Write):
    """The code a run ran: a git snapshot ref and the notebook cells executed."""

    KIND = "code_snapshots"
    KEY = ("code_id",)
    JSONS = ("cells",)

    code_id: str
    git_root: str | None
    base_commit: str | None
    snapshot_commit: str | None
    ref: str | None
    notebook: str | None
    cells: JSON


@dataclass(frozen=True)
class PackageMade(Write):
    """A serving package made from a model, and the image built from it if any."""

    KIND = "packages"
    KEY = ("package_id",)
    REPLACE = True
    TIMES = ("created_at",)

    package_id: str
    model_id: str
    run_id: str
    name: str
    context_path: str
    base_image: str | None
    image_tag: str | None
    image_digest: str | None
    image_size_bytes: int | None
    created_at: float


@dataclass(frozen=True)
class Edge(Write):
    """A lineage edge ``src_id -> dst_id``."""

    KIND = "edges"
    KEY = ("src_id", "dst_id", "relation")
    TIMES = ("created_at",)

    src_id: str
    dst_id: str
    relation: str
    created_at: float


@dataclass(frozen=True)
class AuditEntry(Write):
    """One entry of the audit trail: who did what to the model registry, and why.

    Entries are numbered without gaps (``seq``) and chained: ``hash`` is the SHA-256 of
    the entry's other fields and ``prev_hash`` (see ``_audit``). ``payload`` is canonical
    JSON text, hashed as stored. Only a store's ``audit_session`` makes them.
    """

    KIND = "audit"
    KEY = ("seq",)

    seq: int
    at_us: int  # microseconds since the epoch: an integer, so it hashes the same everywhere
    actor: str
    actor_source: str  # how the actor is known: "database role", "os user", "NBTRAIL_USER"
    event: str
    model: str | None
    version: int | None
    payload: str
    prev_hash: str
    hash: str


# Every kind that folds into a table of its own (``RunEnd`` updates ``runs``).
TABLE_RECORDS: tuple[type[Write], ...] = (
    RunStart, Param, Tag, Dataset, RunDataset, Model, Artifact, Environment, CodeSnapshot,
    PackageMade, Edge, AuditEntry,
)
