"""The team store: PostgreSQL for records, local journals first.

Logging is as cheap as with the embedded store: a process appends to its journal in a
local folder of this machine (``<home>/team/<id>/journal``, one folder per team store),
and a thread ships the journals to PostgreSQL in batches (``_ship``), each in one
transaction with the offsets it reaches. While PostgreSQL does not answer, records wait
in the journals; they land when it answers again, once each. Reads ship this machine's
journals first (so a process reads its own writes), then query PostgreSQL, through the
same queries as the embedded store (``_sqlreads``, translated by ``_pgsql``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    ConflictError,
    InvalidInputError,
    NbtrailError,
    StoreNotFoundError,
    TeamStoreError,
)
from . import _schema
from ._audit import DATABASE_ROLE, AuditSession, Draft, chain
from ._blobs import BlobStore, describe
from ._fold import TABLES, FoldResult
from ._fork import open_lock
from ._journal import JournalWriter, journal_files, unfolded
from ._pgsql import FUNCTIONS, PgConnection
from ._query import audit_query
from ._records import Backlog, Check
from ._sqlreads import SQLReads

if TYPE_CHECKING:
    import polars as pl
    import psycopg

    from ._writes import AuditEntry

# The role nt.sql takes: it may read the store's tables and nothing else (made with the
# schema where the migrating role may create roles; members are granted by an admin).
READER_ROLE = "nbtrail_reader"
# It is made, if this role may, with SELECT on every table of the store.
READER_SQL = f"""
DO $$ BEGIN
    IF to_regrole('{READER_ROLE}') IS NULL AND (SELECT rolcreaterole OR rolsuper
                                                  FROM pg_roles WHERE rolname = current_user)
    THEN
        CREATE ROLE {READER_ROLE} NOLOGIN;
        EXECUTE format('GRANT {READER_ROLE} TO %I', current_user);
    END IF;
    IF to_regrole('{READER_ROLE}') IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO {READER_ROLE}', current_schema());
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {READER_ROLE}',
                       current_schema());
    END IF;
EXCEPTION WHEN insufficient_privilege OR duplicate_object THEN NULL;
END $$;
"""
# One migration at a time across every machine: a transaction-scoped advisory lock.
_MIGRATION_LOCK = 0x6E627472  # "nbtr"
# One audit session at a time (``audit_session``), likewise.
_AUDIT_LOCK = 0x6E626175  # "nbau"
# The audit trail is append-only for every role, the table's owner included (only a
# superuser or the owner disabling the triggers gets past, and the chain shows that),
# and an entry names the role that inserted it, whatever the client wrote.
AUDIT_GUARD = f"""
CREATE OR REPLACE FUNCTION nbtrail_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.actor IS DISTINCT FROM session_user::text
           OR NEW.actor_source IS DISTINCT FROM '{DATABASE_ROLE}' THEN
            RAISE EXCEPTION 'an nbtrail audit entry names the role that inserts it (%), '
                'not %', session_user, NEW.actor USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the nbtrail audit trail is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER audit_actor BEFORE INSERT ON audit
    FOR EACH ROW EXECUTE FUNCTION nbtrail_audit_guard();
CREATE OR REPLACE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION nbtrail_audit_guard();
CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION nbtrail_audit_guard();
REVOKE UPDATE, DELETE, TRUNCATE ON audit FROM PUBLIC;
"""
# Bytes of journal one background shipment takes at most; a sync takes everything.
SHIP_BUDGET = 16 << 20
SHIPPED = "shipped.json"  # journal -> bytes shipped, as of the last shipment
EXIT_SHIP_PATIENCE = 5.0
_STATEMENT_TIMEOUT = "60s"  # for nt.sql on the team store


class PostgresStore(SQLReads):
    """A team store in PostgreSQL at ``url``, with this machine's journals under ``home``."""

    def __init__(self, url: str, *, home: Path, flush_interval: float = 0.2,
                 ship_interval: float = 1.0, read_only: bool = False,
                 artifacts: str | None = None) -> None:
        self.url = url
        self._machine_home = home
        key = hashlib.sha256(describe(url).encode()).hexdigest()[:16]
        self.home = home / "team" / key
        self.journal_dir = self.home / "journal"
        self.read_only = read_only
        self.flush_interval = flush_interval
        self.ship_interval = ship_interval
        self._blobs = BlobStore(self.home / "artifacts", artifacts)
        self._writer: JournalWriter | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._conn_lock = threading.RLock()
        self._schema_ok = False
        self._types: dict[str, dict[str, tuple[str, bool]]] | None = None
        self._shipper: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def location(self) -> str:
        """The team store's URL, without its password."""
        return describe(self.url)

    @property
    def database_url(self) -> str:
        """The URL as given (with any password, for a client's use, never printed)."""
        return self.url

    def environment(self) -> dict[str, str]:
        """The team store, and the same local folder for the child's journals."""
        return {"NBTRAIL_STORE": self.url, "NBTRAIL_HOME": str(self._machine_home)}

    def exists(self) -> bool:
        """Whether the database has nbtrail's schema, or this machine has journals for it."""
        if journal_files(self.journal_dir):
            return True
        with self._connection() as conn:
            return _schema.current_version(PgConnection(conn)) > 0

    # -- writing ----------------------------------------------------------------------

    def writer(self) -> JournalWriter:
        """Return the journal writer of this process (created on first use)."""
        self._refuse_write()
        with self._conn_lock:
            if self._writer is None:
                self._make_home()
                self._writer = JournalWriter(self.journal_dir, flush_interval=self.flush_interval)
                self._start_shipping()
            return self._writer

    @contextlib.contextmanager
    def audit_session(self, on_behalf_of: str | None = None) -> Iterator[AuditSession]:
        """One transaction holding the audit lock; what it appends commits at the end."""
        import psycopg

        self._refuse_write()
        with self._connection() as conn:
            try:
                self._ensure_schema(conn)
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_LOCK])
                    yield _DatabaseAudit(conn, on_behalf_of)
            except psycopg.Error as exc:
                raise self._error(exc, "writing the audit trail of") from None

    def put_blob(self, source: Path | bytes) -> tuple[str, int]:
        """Store bytes content-addressed; return ``(sha256, size)``."""
        self._refuse_write()
        self._make_home()
        return self._blobs.put(source)

    def blob_path(self, sha256: str) -> Path:
        """Path of a stored blob (fetched from the artifact store if only it has it)."""
        return self._blobs.path(sha256, self.location)

    def init(self) -> int:
        """Create or migrate the schema in the database now; the version found before."""
        self._refuse_write()
        with self._connection() as conn:
            try:
                found = _schema.current_version(PgConnection(conn))
                self._ensure_schema(conn)
            except NbtrailError:
                raise
            except Exception as exc:
                raise self._error(exc, "creating the schema in") from None
        return found

    def check(self) -> list[Check]:
        """The server, the schema, this role's privileges, the artifact store, the backlog."""
        try:
            with self._connection() as conn:
                checks = self._check_database(conn)
        except Exception as exc:
            return [Check("server", False, str(self._error(exc, "connecting to")))]
        backlog = self.backlog()
        checks.append(Check("backlog", True, f"{backlog.bytes:,} bytes of records and "
                                             f"{backlog.blobs} blob(s) wait on this machine"))
        return [*checks, self._blobs.check()]

    def _check_database(self, conn: psycopg.Connection[Any]) -> list[Check]:
        def one(query: str, params: list[Any] | None = None) -> Any:
            row = conn.execute(query, params).fetchone()
            return None if row is None else row[0]

        role = one("SELECT current_user")
        checks = [Check("server", True, f"{self.location} answers, as role {role}")]
        # pg_class, not information_schema: it lists tables this role may not read too.
        tables = [*TABLES, "journal_offsets", "schema_info"]
        present = {name: allowed for name, allowed in conn.execute(
            "SELECT c.relname, has_table_privilege(current_user, c.oid, "
            "'SELECT, INSERT, UPDATE') FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relname = ANY(%s)", [tables]).fetchall()}
        if "schema_info" not in present:
            can_create = one("SELECT has_database_privilege(current_user, current_database(), "
                             "'CREATE') OR has_schema_privilege(current_user, current_schema(), "
                             "'CREATE')")
            checks.append(_schema.version_check(0) if can_create else Check(
                "schema", False, f"not created yet, and role {role} may not create it: run "
                "`nbtrail store init URL` as a role that may, or GRANT CREATE to it"))
            return checks
        if present["schema_info"]:
            checks.append(_schema.version_check(one("SELECT max(version) FROM schema_info")))
        missing = sorted(name for name, allowed in present.items() if not allowed)
        checks.append(Check("privileges", not missing, (
            f"role {role} may read and write every table" if not missing else
            f"role {role} may not read and write {', '.join(missing)}: GRANT SELECT, INSERT, "
            f"UPDATE ON ALL TABLES IN SCHEMA public TO {role}")))
        reader = one("SELECT to_regrole(%s) IS NOT NULL AND pg_has_role(current_user, %s, "
                     "'MEMBER')", [READER_ROLE, READER_ROLE])
        checks.append(Check("sql", bool(reader), (
            f"nt.sql runs as {READER_ROLE}, which may only read" if reader else
            f"role {role} may not take the role {READER_ROLE}, so nt.sql relies on its query "
            f"check and a read-only transaction alone: GRANT {READER_ROLE} TO {role} (the "
            "role is made with the schema by a role that may create roles)")))
        return checks

    def backlog(self) -> Backlog:
        """Journal bytes not shipped yet, blobs not uploaded yet, and the last shipment.

        From this machine's record of its shipments: it answers while the server is down.
        """
        shipped = self.home / SHIPPED
        try:
            offsets = json.loads(shipped.read_text())
            last_sync = datetime.fromtimestamp(shipped.stat().st_mtime, UTC)
        except (FileNotFoundError, ValueError):
            offsets, last_sync = {}, None
        journals, size = unfolded(self.journal_dir, offsets)
        return Backlog(journals, size, len(self._blobs.pending()), last_sync)

    def _record_shipment(self, result: FoldResult) -> None:
        """Keep the offsets shipped so far, for ``backlog`` (written whole, then renamed)."""
        shipped = self.home / SHIPPED
        try:
            offsets = json.loads(shipped.read_text())
        except (FileNotFoundError, ValueError):
            offsets = {}
        offsets.update(result.offsets)
        present = {p.name for p in journal_files(self.journal_dir)}
        offsets = {name: offset for name, offset in offsets.items() if name in present}
        tmp = shipped.with_name(f".{SHIPPED}-{os.getpid()}")
        tmp.write_text(json.dumps(offsets))
        os.replace(tmp, shipped)

    def sync(self) -> None:
        """Flush this process's journal, ship every local journal now, upload blobs."""
        writer = self._writer
        if writer is not None:
            writer.flush()
        written = writer.written if writer is not None else 0
        if not self.read_only:
            self._ship(wait=True, max_bytes=None)
        if writer is not None:
            writer.mark_folded(written)
        self._blobs.sync()

    def close(self) -> None:
        """Flush and close this process's journal, ship it if PostgreSQL answers."""
        self._stop.set()
        shipper, self._shipper = self._shipper, None
        if shipper is not None and shipper is not threading.current_thread():
            shipper.join()
        with self._conn_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            if writer.unfolded:
                try:
                    self._ship(wait=True, max_bytes=None, patience=EXIT_SHIP_PATIENCE)
                except NbtrailError as exc:
                    warnings.warn(f"nbtrail: {exc}; the records wait in {self.journal_dir} "
                                  "and are shipped by the next process that logs to this "
                                  "team store, or `nbtrail sync`", stacklevel=2)
        self._blobs.close()
        self._disconnect()

    def forget_after_fork(self) -> None:
        """A forked child opens its own connection and ships on its own thread."""
        self._conn_lock = threading.RLock()
        if self._conn is not None:
            _inherited.append(self._conn)
        self._conn = None
        self._blobs.forget_after_fork()
        if self._writer is not None:
            self._writer.after_fork()
            self._start_shipping()

    def _refuse_write(self) -> None:
        if self.read_only:
            raise ConflictError(f"the team store {self.location} was opened read-only; "
                                "nothing can be logged through it")

    def _make_home(self) -> None:
        self.journal_dir.mkdir(parents=True, exist_ok=True)

    # -- shipping ---------------------------------------------------------------------

    def _start_shipping(self) -> None:
        self._stop = threading.Event()
        self._shipper = threading.Thread(target=self._ship_loop, args=(self._stop,),
                                         name=f"nbtrail-ship-{os.getpid()}", daemon=True)
        self._shipper.start()

    def _ship_loop(self, stop: threading.Event) -> None:
        failure: str | None = None
        while not stop.wait(max(self.ship_interval, self.flush_interval)):
            writer = self._writer
            if writer is None or not writer.unfolded:
                continue
            written = writer.written
            try:
                result = self._ship(wait=False, max_bytes=SHIP_BUDGET)
            except Exception as exc:  # the records wait in the journal; say so once
                if str(exc) != failure:
                    warnings.warn(f"nbtrail: {exc}; the records wait in {self.journal_dir} "
                                  "and land when it answers", stacklevel=1)
                failure = str(exc)
                continue
            failure = None
            if result is not None and not result.remaining:
                writer.mark_folded(written)

    def _ship(self, *, wait: bool, max_bytes: int | None,
              patience: float = 0.0) -> FoldResult | None:
        """Ship this machine's journals if no other process here is shipping them.

        With ``wait`` it waits for that process (for ``patience`` seconds if given) and
        ships until the journals are done.
        """
        from ._ship import column_types, ship

        self._make_home()
        deadline = time.monotonic() + patience if patience else None
        while True:
            with open_lock(self.home / "lock") as fd:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not wait or (deadline is not None and time.monotonic() > deadline):
                        return None
                    time.sleep(0.05)
                    continue
                try:
                    with self._connection() as conn:
                        self._ensure_schema(conn)
                        if self._types is None:
                            self._types = column_types(conn)
                        result = ship(conn, self.journal_dir, self._types, max_bytes)
                        while wait and result.remaining:
                            result.add(ship(conn, self.journal_dir, self._types, max_bytes))
                except Exception as exc:
                    raise self._error(exc, "shipping records to") from None
                self._record_shipment(result)
                return result

    # -- the connection and the schema ------------------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection of this process (opened on first use, again after a failure)."""
        import psycopg

        with self._conn_lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            conn = self._conn
            try:
                yield conn
            finally:
                if conn.closed or conn.broken:
                    self._disconnect()  # a lost server: the next use connects anew
                elif conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("ROLLBACK")

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            import psycopg
            from psycopg.types.string import TextLoader
        except ImportError:
            from ..errors import MissingExtraError

            raise MissingExtraError("the team store needs psycopg and sqlglot; run: "
                                    "pip install 'nbtrail[team]'") from None
        try:
            # Autocommit: every transaction is explicit (shipments, migrations, reads).
            conn = psycopg.connect(self.url, connect_timeout=5, autocommit=True,
                                   options="-c TimeZone=UTC -c client_min_messages=warning")
        except psycopg.Error as exc:
            raise self._error(exc, "connecting to") from None
        # JSON columns come back as their text, as from DuckDB.
        conn.adapters.register_loader("json", TextLoader)
        conn.adapters.register_loader("jsonb", TextLoader)
        return conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        """Create or migrate the schema; race-free across machines (an advisory lock)."""
        if self._schema_ok:
            return
        from .. import __version__

        con = PgConnection(conn)
        found = _schema.current_version(con)
        if found == _schema.SCHEMA_VERSION:
            self._schema_ok = True
            return
        if self.read_only and found < _schema.SCHEMA_VERSION:
            raise ConflictError(
                f"the team store {self.location} has schema version {found}, not "
                f"{_schema.SCHEMA_VERSION}, and a read-only reader does not migrate it; "
                "run `nbtrail store init` with its URL first")
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
            _schema.migrate(con, __version__)
            conn.execute(FUNCTIONS)
            conn.execute(AUDIT_GUARD)
            conn.execute(READER_SQL)
        self._schema_ok = True

    def _error(self, exc: BaseException, doing: str) -> NbtrailError:
        if isinstance(exc, NbtrailError):
            return exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TeamStoreError(
            f"failed {doing} the team store {self.location}: {first}; check that the server "
            "runs and the URL, ~/.pgpass or the PG* variables (the records stay in "
            f"{self.journal_dir})")

    # -- reading ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _read_connection(self) -> Iterator[PgConnection]:
        if self._writer is not None:
            self._writer.flush()  # read your own writes
        if not self.read_only and journal_files(self.journal_dir):
            self._ship(wait=True, max_bytes=None)
        with self._connection() as conn:
            try:
                if _schema.current_version(PgConnection(conn)) == 0:  # a read creates none
                    raise StoreNotFoundError(
                        f"no nbtrail store in {self.location}; log a run first, or create "
                        "the schema with `nbtrail store init`")
                self._ensure_schema(conn)
            except NbtrailError:
                raise
            except Exception as exc:
                raise self._error(exc, "reading") from None
            # One snapshot for every query of a read.
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield PgConnection(conn)
            finally:
                conn.execute("ROLLBACK")

    def sql(self, query: str, params: list[Any] | None = None) -> pl.DataFrame:
        """Run read-only SQL (DuckDB's dialect, translated) over the team store's tables."""
        from ._pgsql import check_user_query

        check_user_query(query)
        import psycopg

        with self._read_connection() as con:
            con.conn.execute(f"SET LOCAL statement_timeout = '{_STATEMENT_TIMEOUT}'")
            # The third wall: a role that may only read the store's tables, where this
            # role may take it (`nbtrail store doctor` says when it may not).
            if con.conn.execute("SELECT to_regrole(%s) IS NOT NULL AND pg_has_role("
                                "current_user, %s, 'MEMBER')", [READER_ROLE, READER_ROLE]
                                ).fetchone() == (True,):
                con.conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
            try:
                return con.sql(query, params).pl()
            except psycopg.errors.ReadOnlySqlTransaction as exc:
                raise InvalidInputError(
                    f"SQL over the store is read-only: {_first(exc)}") from None
            except psycopg.Error as exc:
                raise InvalidInputError(f"the query failed: {_first(exc)}") from None


class _DatabaseAudit(AuditSession):
    """An audit session of the team store: reads and inserts in the locked transaction."""

    def __init__(self, conn: psycopg.Connection[Any], on_behalf_of: str | None) -> None:
        self.conn, self.on_behalf_of = conn, on_behalf_of
        row = conn.execute("SELECT session_user").fetchone()
        self.actor, self.actor_source = str(row[0] if row else ""), DATABASE_ROLE

    def entries(self, model: str | None = None) -> pl.DataFrame:
        return PgConnection(self.conn).sql(audit_query(model is not None),
                                           [model] if model is not None else None).pl()

    def append(self, drafts: Sequence[Draft]) -> list[AuditEntry]:
        if not drafts:
            return []
        from ._writes import AuditEntry

        if self.on_behalf_of:  # the role acts; whom for is part of what it records
            drafts = [replace(d, payload={**(d.payload or {}), "on_behalf_of":
                                          self.on_behalf_of}) for d in drafts]
        last = self.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                                 ).fetchone()
        entries = chain(tuple(last) if last else None, drafts, actor=self.actor,
                        actor_source=self.actor_source)
        columns = AuditEntry.columns()
        with self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO audit ({', '.join(columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))})",
                [tuple(getattr(e, c) for c in columns) for e in entries])
        return entries


def _first(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# Connections a forked child inherited: kept, never used nor closed, since closing one
# would end its parent's session on the server.
_inherited: list[Any] = []
