"""Write records are defined once: the fold's tables and the schema agree with them."""

from __future__ import annotations

from pathlib import Path

import duckdb

from nbtrail.store import Edge, RunEnd, Tag
from nbtrail.store._duckdb import DB_NAME, DuckDBStore
from nbtrail.store._fold import TABLES
from nbtrail.store._writes import TABLE_RECORDS

# Columns a table has that no record fills: a run's end comes as a RunEnd update.
_FILLED_OTHERWISE = {"runs": {"end_time", "error"}}


def test_every_table_of_the_schema_has_exactly_its_record_columns(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "store")
    store.writer().append(Tag("r1", "k", "v").to_journal())
    store.sync()  # creates the schema
    store.close()
    con = duckdb.connect(str(tmp_path / "store" / DB_NAME), read_only=True)
    try:
        rows = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE table_schema = 'main'").fetchall()
    finally:
        con.close()
    schema: dict[str, set[str]] = {}
    for table, column in rows:
        schema.setdefault(table, set()).add(column)
    for record in TABLE_RECORDS:
        columns = set(record.columns())
        assert columns == schema[record.KIND] - _FILLED_OTHERWISE.get(record.KIND, set()), \
            record.__name__
    assert set(RunEnd.columns()) <= schema["runs"]


def test_the_fold_reads_its_tables_from_the_records() -> None:
    assert list(TABLES) == [record.KIND for record in TABLE_RECORDS]
    for record in TABLE_RECORDS:
        table = TABLES[record.KIND]
        assert (table.columns, table.key, table.replace, table.times, table.jsons) == (
            record.columns(), record.KEY, record.REPLACE, record.TIMES, record.JSONS)


def test_a_record_in_the_journal_is_the_same_json_object_as_before() -> None:
    # The journal format on disk: {"t": kind, **columns}, nothing more.
    assert Edge("ds_1", "r1", "train", 1.5).to_journal() == {
        "t": "edges", "src_id": "ds_1", "dst_id": "r1", "relation": "train",
        "created_at": 1.5}
    assert RunEnd("r1", "failed", 2.0, "ValueError: x").to_journal() == {
        "t": "run_end", "run_id": "r1", "status": "failed", "end_time": 2.0,
        "error": "ValueError: x"}
