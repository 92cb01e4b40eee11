"""nbtrail's DuckDB-dialect SQL, run on PostgreSQL: the bridge the team store reads through.

The queries of ``_query``, the named queries and the migrations of ``_schema`` are written
once, in DuckDB's dialect. On PostgreSQL each text is translated by SQLGlot (once: the
results are cached) and run through ``PgConnection``, which offers the part of DuckDB's
connection API they use: ``execute(...).fetchall()``, ``description`` and
``sql(...).pl()``. SQLGlot rather than a second copy of every query by hand: the two
dialects then cannot drift apart, and the contract suite checks both. What SQLGlot cannot
say in PostgreSQL's terms, the schema provides as functions (``FUNCTIONS``): ``any_value``
(which PostgreSQL has only from version 16), ``is_nan``, ``isfinite`` of a number, and
casts that give NULL instead of failing (DuckDB's ``TRY_CAST``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl
    import psycopg

# Created with the schema, in its own transaction; idempotent.
FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION nbtrail_first(anyelement, anyelement) RETURNS anyelement
    LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1';
DO $$ BEGIN
    IF to_regproc('pg_catalog.any_value') IS NULL THEN
        CREATE AGGREGATE any_value(anyelement) (SFUNC = nbtrail_first, STYPE = anyelement);
    END IF;
EXCEPTION WHEN duplicate_function THEN NULL;
END $$;
CREATE OR REPLACE FUNCTION is_nan(double precision) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT AS $f$ SELECT $1 = 'NaN'::double precision $f$;
CREATE OR REPLACE FUNCTION isfinite(double precision) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    AS $f$ SELECT $1 NOT IN ('NaN'::double precision, 'Infinity', '-Infinity') $f$;
-- Plain SQL, which the planner inlines: an exception block per row (plpgsql) cost a
-- filter over 100,000 runs most of its time.
CREATE OR REPLACE FUNCTION nbtrail_try_double_precision(anyelement) RETURNS double precision
    LANGUAGE sql IMMUTABLE AS $f$
    SELECT CASE WHEN $1::text ~* '^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$'
                  OR lower(trim($1::text)) IN ('nan', 'inf', '+inf', '-inf', 'infinity',
                                               '+infinity', '-infinity')
                THEN $1::text::double precision END $f$;
CREATE OR REPLACE FUNCTION nbtrail_try_bigint(anyelement) RETURNS bigint
    LANGUAGE sql IMMUTABLE AS $f$
    SELECT CASE WHEN $1::text ~ '^\s*[-+]?\d{1,18}\s*$' THEN $1::text::bigint END $f$;
CREATE OR REPLACE FUNCTION nbtrail_try_boolean(anyelement) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $f$
    SELECT CASE WHEN lower(trim($1::text)) IN ('true', 'false', 't', 'f', 'yes', 'no', 'on',
                                                'off', '1', '0')
                THEN $1::text::boolean END $f$;
CREATE INDEX IF NOT EXISTS metrics_run_key_step ON metrics (run_id, key, step);
"""

# Functions no query over the store needs and a session could abuse: settings (a role
# among them), server files and programs, large objects, other databases, other sessions.
_REFUSED_FUNCTIONS = re.compile(
    r"^(set_config|pg_read_file|pg_read_binary_file|pg_ls_\w+|pg_stat_file|lo_\w+|"
    r"dblink\w*|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile|"
    r"pg_sleep\w*|pg_advisory\w+|pg_try_advisory\w+|query_to_xml\w*|"
    r"table_to_xml\w*|cursor_to_xml\w*|database_to_xml\w*|schema_to_xml\w*)$")

# ``?::TYPE`` (a DuckDB cast of a parameter) as a CAST SQLGlot parses.
_PARAM_CAST = re.compile(r"(\?|\$\d+)::(\w+(?:\[\])?)")
_POSITIONAL = re.compile(r"%\((\d+)\)s")


@functools.cache
def _dialect() -> Any:
    from sqlglot import exp
    from sqlglot.dialects.postgres import Postgres

    def try_cast(self: Any, e: Any) -> str:
        target = e.to.sql(dialect="postgres").lower().replace(" ", "_")
        return str(self.func(f"nbtrail_try_{target}", e.this))

    def arg_pick(self: Any, e: Any, condition: str | None = None) -> str:
        # DuckDB's arg_max/arg_min skip rows whose ordering value is NULL.
        value, order = self.sql(e, "this"), self.sql(e, "expression")
        way = "DESC" if isinstance(e, exp.ArgMax) else "ASC"
        where = f"{order} IS NOT NULL" + (f" AND ({condition})" if condition else "")
        return f"(ARRAY_AGG({value} ORDER BY {order} {way}) FILTER (WHERE {where}))[1]"

    def filtered(self: Any, e: Any) -> str:
        # arg_max(...) FILTER (WHERE c): the filter joins the one of the translation.
        if isinstance(e.this, (exp.ArgMax, exp.ArgMin)):
            return arg_pick(self, e.this, self.sql(e.expression, "this"))
        return str(Postgres.Generator.filter_sql(self, e))

    class NbtrailPostgres(Postgres):
        class Generator(Postgres.Generator):  # type: ignore[valid-type,misc]
            TRANSFORMS = {  # noqa: RUF012 (SQLGlot's own pattern)
                **Postgres.Generator.TRANSFORMS,
                exp.TryCast: try_cast,
                exp.ArgMax: arg_pick,
                exp.ArgMin: arg_pick,
                exp.Filter: filtered,
            }

    return NbtrailPostgres


@functools.lru_cache(maxsize=1024)
def to_postgres(sql: str) -> tuple[str, ...]:
    """The statements of DuckDB-dialect ``sql`` in PostgreSQL's, with psycopg placeholders."""
    import sqlglot

    text = _PARAM_CAST.sub(r"CAST(\1 AS \2)", sql)
    # SQLGlot warns that PostgreSQL's any_value has no IGNORE NULLS: the one the schema
    # adds ignores them (its step function is strict), and PostgreSQL 16's does too.
    return tuple(sqlglot.transpile(text, read="duckdb", write=_dialect(),
                                   unsupported_level=sqlglot.ErrorLevel.IGNORE))


def _bind(statement: str, params: Sequence[Any] | None) -> tuple[str, Any]:
    """The statement and its parameters as psycopg takes them.

    With parameters psycopg reads every ``%`` as a placeholder's: a literal one (the
    modulo operator, a LIKE pattern) is doubled; ``$1``-style parameters (SQLGlot makes
    them ``%(1)s``) are bound by name. Without, the statement goes as it is.
    """
    if params is None:
        return statement, None
    statement = re.sub(r"%(?!s|\(\d+\)s)", "%%", statement)
    if _POSITIONAL.search(statement):
        return statement, {str(i + 1): v for i, v in enumerate(params)}
    return statement, list(params)


class PgConnection:
    """A psycopg connection that runs DuckDB-dialect SQL, as a DuckDB connection would.

    Offers what nbtrail's own queries use of DuckDB's API: ``execute`` (chained with
    ``fetchall``), ``description`` and ``sql(...).pl()``.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._cursor = conn.cursor()

    @property
    def description(self) -> Any:
        return self._cursor.description

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgConnection:
        """Run every statement of ``sql``; the last one's rows are fetched next."""
        for statement in to_postgres(sql):
            self._cursor.execute(*_bind(statement, params))
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def sql(self, query: str, params: Sequence[Any] | None = None) -> _Result:
        return _Result(self.execute(query, params))

    def frame(self) -> pl.DataFrame:
        """The rows of the last statement as a polars DataFrame, typed by their columns."""
        return frame(self._cursor)


class _Result:
    def __init__(self, con: PgConnection) -> None:
        self._con = con

    def pl(self) -> pl.DataFrame:
        return self._con.frame()


def frame(cursor: psycopg.Cursor[Any]) -> pl.DataFrame:
    """A cursor's rows as polars columns, typed by PostgreSQL's column types."""
    import polars as pl

    description = cursor.description or []
    rows = cursor.fetchall()
    schema = {}
    for column in description:
        schema[column.name] = _POLARS_TYPES.get(column.type_code)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in description]
    series = []
    for (name, dtype), values in zip(schema.items(), columns, strict=True):
        kind = _dtype(dtype) if dtype is not None else None
        series.append(pl.Series(name, list(values), dtype=kind, strict=False))
    return pl.DataFrame(series)


# PostgreSQL type oid -> the polars type of a column (others are inferred from values).
_POLARS_TYPES: dict[int, str] = {
    16: "bool", 20: "int64", 21: "int16", 23: "int32", 25: "str", 1043: "str", 114: "str",
    3802: "str", 700: "float32", 701: "float64", 1700: "float64", 1184: "datetime_tz",
    1114: "datetime", 1009: "list_str", 1015: "list_str", 1016: "list_int64",
}


def _dtype(name: str) -> Any:
    import polars as pl

    return {
        "bool": pl.Boolean, "int64": pl.Int64, "int16": pl.Int16, "int32": pl.Int32,
        "str": pl.String, "float32": pl.Float32, "float64": pl.Float64,
        "datetime_tz": pl.Datetime("us", "UTC"), "datetime": pl.Datetime("us"),
        "list_str": pl.List(pl.String), "list_int64": pl.List(pl.Int64),
    }[name]


def check_user_query(query: str) -> None:
    """Refuse anything but one read-only query (``nt.sql`` on the team store).

    The query also runs in a read-only transaction: this check names the mistake, and
    keeps functions with effects outside the transaction out.
    """
    import sqlglot
    from sqlglot import exp

    from ..errors import InvalidInputError

    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError(f"the query must be a non-empty string, got {query!r}")
    try:
        statements = [s for s in sqlglot.parse(_PARAM_CAST.sub(r"CAST(\1 AS \2)", query),
                                               read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InvalidInputError(f"invalid SQL: {first}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise InvalidInputError(
            "SQL over the store is read-only: give one SELECT (or WITH ... SELECT) query")
    tree = statements[0]
    if any(True for _ in tree.find_all(exp.Insert, exp.Update, exp.Delete, exp.Merge)):
        raise InvalidInputError("SQL over the store is read-only: the query writes")
    for call in tree.find_all(exp.Func):
        name = (call.name if isinstance(call, exp.Anonymous) else call.sql_name()).lower()
        if _REFUSED_FUNCTIONS.match(name):
            raise InvalidInputError(
                f"SQL over the store may not call {name}(): it reaches beyond the store")
