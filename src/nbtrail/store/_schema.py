"""The lineage schema and its migrations.

Tables are plain and documented in ``docs/store.md`` so the stock ``duckdb`` CLI can
read a store. Each migration moves the schema one version up; ``migrate`` runs the
missing ones inside the caller's transaction, under the store's exclusive lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..errors import ConflictError
    from ._records import Check


class Connection(Protocol):
    """What a migration needs of a connection: DuckDB's, or the team store's bridge."""

    def execute(self, query: str, parameters: Any = None, /) -> Any: ...

_V1 = """
CREATE TABLE schema_info (
    version INTEGER NOT NULL,
    migrated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    nbtrail_version VARCHAR
);
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    name VARCHAR,
    experiment VARCHAR NOT NULL,
    parent_id VARCHAR,
    status VARCHAR NOT NULL,
    start_time TIMESTAMPTZ NOT NULL,
    end_time TIMESTAMPTZ,
    error VARCHAR,
    git_root VARCHAR,
    git_commit VARCHAR,
    git_branch VARCHAR,
    git_dirty BOOLEAN,
    git_snapshot VARCHAR,
    notebook VARCHAR,
    env_id VARCHAR,
    code_id VARCHAR,
    seeds JSON,
    hostname VARCHAR,
    pid INTEGER,
    writer_id VARCHAR
);
CREATE TABLE params (
    run_id VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value VARCHAR,
    value_type VARCHAR NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE tags (
    run_id VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value VARCHAR,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE metrics (
    run_id VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value DOUBLE,
    step BIGINT NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL
);
CREATE TABLE latest_metrics (
    run_id VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value DOUBLE,
    step BIGINT NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE datasets (
    dataset_id VARCHAR PRIMARY KEY,
    fingerprint VARCHAR NOT NULL,
    source_type VARCHAR,
    n_rows BIGINT,
    n_columns INTEGER,
    schema JSON,
    stats JSON,
    first_seen TIMESTAMPTZ NOT NULL
);
CREATE TABLE run_datasets (
    run_id VARCHAR NOT NULL,
    dataset_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    logged_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, dataset_id, name, role)
);
CREATE TABLE models (
    model_id VARCHAR PRIMARY KEY,
    run_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    flavor VARCHAR,
    class_name VARCHAR,
    format VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    signature JSON,
    training_dataset_id VARCHAR,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE artifacts (
    run_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    artifact_id VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    media_type VARCHAR,
    logged_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE environments (
    env_id VARCHAR PRIMARY KEY,
    python VARCHAR,
    platform VARCHAR,
    packages JSON,
    details JSON
);
CREATE TABLE code_snapshots (
    code_id VARCHAR PRIMARY KEY,
    git_root VARCHAR,
    base_commit VARCHAR,
    snapshot_commit VARCHAR,
    ref VARCHAR,
    notebook VARCHAR,
    cells JSON
);
CREATE TABLE edges (
    src_id VARCHAR NOT NULL,
    dst_id VARCHAR NOT NULL,
    relation VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (src_id, dst_id, relation)
);
CREATE TABLE journal_offsets (
    journal VARCHAR PRIMARY KEY,
    "offset" BIGINT NOT NULL
);
CREATE INDEX metrics_run_key ON metrics (run_id, key);
CREATE INDEX edges_dst ON edges (dst_id);
"""


def _v1(con: Connection) -> None:
    con.execute(_V1)


def _v2(con: Connection) -> None:
    # A random sample of a data set's rows (a Parquet blob): latency is measured on it.
    con.execute("ALTER TABLE datasets ADD COLUMN sample_sha256 VARCHAR")


def _v3(con: Connection) -> None:
    # Serving packages made from models (nt.package), and the images built from them.
    con.execute("""
        CREATE TABLE packages (
            package_id VARCHAR PRIMARY KEY,
            model_id VARCHAR NOT NULL,
            run_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            context_path VARCHAR NOT NULL,
            base_image VARCHAR,
            image_tag VARCHAR,
            image_digest VARCHAR,
            image_size_bytes BIGINT,
            created_at TIMESTAMPTZ NOT NULL
        )
    """)


def _v4(con: Connection) -> None:
    # Journal format 2 numbers its frames: the last one folded reveals a journal truncated
    # or rewritten below its folded offset.
    con.execute("ALTER TABLE journal_offsets ADD COLUMN seq BIGINT DEFAULT 0")


def _v5(con: Connection) -> None:
    # Maintaining this index cost a fold as much as all its other work, and it kept DuckDB
    # from writing large appends straight to the file (its WAL took every point twice).
    # Reads of one run's points scan instead, pruned by the row groups' min/max of run_id
    # (run ids sort by creation time, as points mostly arrive).
    con.execute("DROP INDEX IF EXISTS metrics_run_key")


def _v6(con: Connection) -> None:
    # What a logged artifact is (figure, image, table, text, dict) so the views show it
    # inline, and the step of an image in a series (NULL for plain files, as before).
    con.execute("ALTER TABLE artifacts ADD COLUMN kind VARCHAR")
    con.execute("ALTER TABLE artifacts ADD COLUMN step BIGINT")


def _v7(con: Connection) -> None:
    # Who ran a run (the host was recorded from the start); NULL for earlier runs.
    con.execute("ALTER TABLE runs ADD COLUMN user_name VARCHAR")


def _v8(con: Connection) -> None:
    # The model registry's audit trail, which is also the registry itself: models,
    # versions, aliases and promotion requests are what its entries say (``registry``).
    con.execute("""
        CREATE TABLE audit (
            seq BIGINT PRIMARY KEY,
            at_us BIGINT NOT NULL,
            actor VARCHAR NOT NULL,
            actor_source VARCHAR NOT NULL,
            event VARCHAR NOT NULL,
            model VARCHAR,
            version INTEGER,
            payload VARCHAR NOT NULL,
            prev_hash VARCHAR NOT NULL,
            hash VARCHAR NOT NULL
        )
    """)


# Index i holds the migration from version i to i + 1. Append, never edit.
MIGRATIONS: list[Callable[[Connection], None]] = [
    _v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(con: Connection) -> int:
    """Return the schema version of the open database (0 for an empty one)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name = 'schema_info' AND table_schema = current_schema() "
        "AND table_catalog = current_database()"
    ).fetchall()
    if not exists or not exists[0][0]:
        return 0
    (version,) = con.execute("SELECT max(version) FROM schema_info").fetchall()[0]
    return int(version) if version is not None else 0


def newer_error(found: int) -> ConflictError:
    """The error for a store of schema version ``found``, newer than this nbtrail's."""
    from ..errors import ConflictError

    return ConflictError(
        f"this store has schema version {found}, newer than this nbtrail supports "
        f"({SCHEMA_VERSION}); upgrade nbtrail (pip install -U nbtrail)"
    )


def migrate(con: Connection, nbtrail_version: str) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; return the version found before."""
    found = current_version(con)
    if found > SCHEMA_VERSION:
        raise newer_error(found)
    for version in range(found, SCHEMA_VERSION):
        MIGRATIONS[version](con)
        con.execute(
            "INSERT INTO schema_info (version, nbtrail_version) VALUES (?, ?)",
            [version + 1, nbtrail_version],
        )
    return found


def version_check(found: int) -> Check:
    """What ``Store.check`` says of a store at schema version ``found``."""
    from ._records import Check

    if found == SCHEMA_VERSION:
        return Check("schema", True, f"version {found}, this nbtrail's")
    if found > SCHEMA_VERSION:
        return Check("schema", False,
                     f"version {found}, newer than this nbtrail supports ({SCHEMA_VERSION}): "
                     "upgrade nbtrail (pip install -U nbtrail)")
    if found == 0:
        return Check("schema", True, "not created yet: the first run that logs creates it")
    return Check("schema", True, f"version {found}: the next run that logs migrates it to "
                                 f"{SCHEMA_VERSION} (or `nbtrail store init`)")
