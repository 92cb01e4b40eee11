"""``nt.sql`` only reads: every kind of DuckDB statement that is not a query is refused,
and the reader connection itself cannot write a file even if the check were bypassed."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

import nbtrail as nt
from nbtrail.errors import InvalidInputError
from nbtrail.store._duckdb import DuckDBStore


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    store = DuckDBStore(tmp_path / "store")
    with nt.config(home=store.home, capture_git=False), nt.run(name="kept") as run:
        run.log_param("p", "original")
    store.fold_all()
    return store


def _files(home: Path) -> set[Path]:
    return {p for p in home.rglob("*") if p.is_file() and p.name not in {"lock", "readers"}}


# One statement of every kind DuckDB's parser reports that a user can type, each aimed at
# the store's own files where it can name one.
WRITES = {
    "INSERT": "insert into runs (run_id) values ('x')",
    "UPDATE": "update params set value = 'evil'",
    "DELETE": "delete from runs",
    "CREATE": "create temp table t as select 1",
    "CREATE_VIEW": "create or replace temp view runs as select 1 as run_id",
    "DROP": "drop table runs",
    "ALTER": "alter table runs rename to r",
    "MERGE_INTO": "merge into runs using (select 1 as run_id) s on false "
                  "when not matched then insert (run_id) values ('x')",
    "COPY": "copy (select 1 a) to '{home}/journal/evil.jsonl'",
    "COPY_FROM": "copy runs from '{home}/x.csv'",
    "EXPLAIN_ANALYZE": "explain analyze copy (select 1 a) to '{home}/journal/x.csv'",
    "EXPLAIN_ANALYZE_COMMENTED": "/* plan */ EXPLAIN\n  ANALYSE copy (select 1) to '{home}/x.csv'",
    "EXPLAIN_OPTIONS": "explain (analyze) copy (select 1 a) to '{home}/x.csv'",
    "CREATE_AS_PIVOT": "create temp table t as pivot (select 1 a, 2 b) on a using sum(b)",
    # Planning alone checks the target: the reader's connection may open no such file.
    "EXPLAIN_COPY": "explain copy (select 1 a) to '{home}/journal/x.csv'",
    "EXPORT": "export database '{home}/export'",
    "COPY_DATABASE": "copy from database nbtrail to memory",
    "ATTACH": "attach '{home}/other.duckdb' as o",
    "DETACH": "detach nbtrail",
    "SET": "set enable_external_access = true",
    "RESET": "reset allowed_paths",
    "VARIABLE_SET": "set variable x = 1",
    "PRAGMA": "pragma enable_profiling",
    "CALL": "call pragma_version()",
    "LOAD": "load json",
    "INSTALL": "install httpfs",
    "CHECKPOINT": "checkpoint",
    "VACUUM": "vacuum",
    "ANALYZE": "analyze",
    "TRANSACTION": "begin transaction",
    "PREPARE": "prepare p as select 1",
    "EXECUTE": "execute p",
    "CREATE_FUNC": "create temp macro m() as 1",
    "SECRET": "create temp secret s (type s3, key_id 'k', secret 'v')",
    "SECOND_STATEMENT": "select 1; copy (select 1) to '{home}/x.csv'",
}


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_every_non_query_statement_is_refused(store: DuckDBStore, kind: str) -> None:
    before = _files(store.home)
    with pytest.raises(InvalidInputError, match="read-only"):
        store.sql(WRITES[kind].format(home=store.home))
    assert _files(store.home) == before
    assert store.sql("select value from params where key = 'p'")["value"].to_list() == [
        "original"]
    assert store.sql("select count(*) n from runs")["n"][0] == 1


@pytest.mark.parametrize("query", [
    "select count(*) n from runs",
    "with r as (select * from runs) select count(*) n from r",
    "from runs select count(*) n",
    "describe runs",
    "show tables",
    "summarize runs",
    "explain select * from runs",
    "pivot (select key, value from params) on key using first(value)",
    "unpivot (select 1 a, 2 b) on a, b into name k value v",
    "values (1), (2)",
    "select \"analyze\" from (select 1 as \"analyze\")",
])
def test_queries_are_allowed(store: DuckDBStore, query: str) -> None:
    assert not store.sql(query).is_empty()


def test_the_reader_connection_cannot_write_even_past_the_check(store: DuckDBStore) -> None:
    with store._read_connection() as con:
        for statement in (f"copy (select 1) to '{store.home}/journal/evil.jsonl'",
                          f"copy (select 1) to '{store.db_path}'",
                          "set enable_external_access = true",
                          "select * from read_csv('/etc/passwd')"):
            with pytest.raises(duckdb.Error):
                con.execute(statement)
    assert not (store.home / "journal" / "evil.jsonl").exists()
