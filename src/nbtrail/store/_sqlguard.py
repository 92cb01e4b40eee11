"""Which SQL a user may run over the store: queries, decided on the parsed statements.

This is the first of two walls. The second is the reader connection itself
(``DuckDBStore._attached``): it may open no file but the database, which it attaches
read-only, and its configuration is locked, so a statement that slipped past this check
still could not write a file, reach outside the store or lift those limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidInputError

if TYPE_CHECKING:
    import duckdb

# DuckDB parses a PIVOT statement into several (a CREATE TYPE for the pivoted values and
# the query) and reports them as MULTI; so does a CREATE TABLE ... AS PIVOT, which writes.
_PIVOT_KEYWORDS = {"pivot", "pivot_wider"}
# EXPLAIN only plans its statement, but EXPLAIN ANALYZE runs it, COPY and all.
_EXECUTING_EXPLAIN = {"analyze", "analyse"}


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Raise InvalidInputError unless every statement in ``query`` only reads.

    Raises ``duckdb.ParserException`` for text that does not parse.
    """
    for statement in con.extract_statements(query):
        kind = statement.type.name
        keywords = _keywords(statement.query)
        if kind == "SELECT":
            continue
        if kind == "EXPLAIN" and not _EXECUTING_EXPLAIN & set(keywords):
            continue
        if kind == "MULTI" and keywords[:1] and keywords[0] in _PIVOT_KEYWORDS:
            continue
        what = "EXPLAIN ANALYZE (it executes its statement)" if kind == "EXPLAIN" else (
            "a statement that creates objects" if kind == "MULTI" else kind)
        raise InvalidInputError(
            f"SQL over the store is read-only: only queries (SELECT, PIVOT, EXPLAIN) are "
            f"allowed, not {what}; write through the tracking API instead")


def _keywords(text: str) -> list[str]:
    """The SQL keywords of one statement, lower-cased, in order (comments and names skipped)."""
    import duckdb

    tokens = duckdb.tokenize(text)
    ends = [offset for offset, _ in tokens[1:]] + [len(text)]
    return [text[offset:end].strip().lower()
            for (offset, kind), end in zip(tokens, ends, strict=True)
            if kind == duckdb.token_type.keyword]
