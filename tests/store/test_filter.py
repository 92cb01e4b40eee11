from collections.abc import Sequence

import duckdb
import pytest

from nbtrail.errors import FilterError, InvalidInputError
from nbtrail.store._filter import (
    ATTRIBUTES,
    CompiledFilter,
    Field,
    compile_filter,
    compile_order_by,
)

# Times are UTC: the fixture sets the session time zone before inserting.
ROWS = [
    # run_id, status, start_time, acc, C, penalty, team, val f1, flag, model/lr, a"b
    ("r1", "finished", "2026-01-01 10:00", 0.95, "1.0", "l2", "vision", 0.8, "True", "0.1", "q"),
    ("r2", "finished", "2026-01-02 10:00", 0.85, "10", "l1", "nlp", 0.7, "False", "0.01", "x"),
    ("r3", "failed", "2026-01-03 10:00", None, "0.1", "l2", None, None, None, None, None),
    ("r4", "running", "2025-12-31 10:00", 0.91, "abc", "l1", "vision", 0.9, "true", "1", "x"),
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE t (run_id VARCHAR, status VARCHAR, start_time TIMESTAMPTZ, "
        '"metrics.acc" DOUBLE, "params.C" VARCHAR, "params.penalty" VARCHAR, '
        '"tags.team" VARCHAR, "metrics.val f1" DOUBLE, "params.flag" VARCHAR, '
        '"params.model/lr" VARCHAR, "params.a""b" VARCHAR)'
    )
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ROWS)
    return con


def select(
    con: duckdb.DuckDBPyConnection,
    where: str | None = None,
    order_by: str | Sequence[str] | None = "run_id",
) -> list[str]:
    compiled = compile_filter(where)
    order, _ = compile_order_by(order_by)
    rows = con.execute(f"SELECT run_id FROM t WHERE {compiled.sql} {order}", compiled.params)
    return [r[0] for r in rows.fetchall()]


def message(text: str) -> str:
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    return str(info.value)


# -- compiled output -----------------------------------------------------------------------------


def test_compiles_to_placeholders() -> None:
    compiled = compile_filter("metrics.acc > 0.9 and params.penalty = 'l2'")
    assert compiled.sql == '("metrics.acc" > ?) AND ("params.penalty" = ?)'
    assert compiled.params == [0.9, "l2"]
    assert compiled.fields == {Field("metrics", "acc"), Field("params", "penalty")}


@pytest.mark.parametrize("text", [None, "", "   \n "])
def test_empty_filter_matches_everything(text: str | None) -> None:
    assert compile_filter(text) == CompiledFilter("TRUE", [], frozenset())


def test_field_column_and_sql() -> None:
    assert Field("metrics", "acc").column == "metrics.acc"
    assert Field("attr", "status").column == "status"
    assert Field("params", 'a"b').sql() == '"params.a""b"'


def test_prefix_aliases_and_case_insensitive_keywords() -> None:
    fields = compile_filter(
        "metric.acc > 1 AND param.C = 'x' Or tag.team IS NULL and run.status = 'a' "
        "and attributes.end_time is not null and Status = 'b'"
    ).fields
    assert fields == {
        Field("metrics", "acc"),
        Field("params", "C"),
        Field("tags", "team"),
        Field("attr", "status"),
        Field("attr", "end_time"),
    }


def test_or_is_parenthesised_for_embedding() -> None:
    compiled = compile_filter("status = 'a' or status = 'b'")
    assert compiled.sql == '(("status" = ?) OR ("status" = ?))'


def test_numbers() -> None:
    compiled = compile_filter("metrics.a > -1.5e-3 and metrics.b < .5 and metrics.c = +2")
    assert compiled.params == [-0.0015, 0.5, 2.0]


def test_all_attributes_are_accepted() -> None:
    for name, kind in ATTRIBUTES.items():
        value = {"str": "'x'", "time": "'2026-01-01'", "num": "1"}[kind]
        assert compile_filter(f"{name} = {value}").fields == {Field("attr", name)}


# -- execution -----------------------------------------------------------------------------------


def test_simple_comparisons(con: duckdb.DuckDBPyConnection) -> None:
    assert select(con) == ["r1", "r2", "r3", "r4"]
    assert select(con, "metrics.acc > 0.9") == ["r1", "r4"]
    assert select(con, "metrics.acc <= 0.91") == ["r2", "r4"]
    assert select(con, "params.penalty == 'l2'") == ["r1", "r3"]
    assert select(con, "params.penalty <> 'l2'") == ["r2", "r4"]
    assert select(con, 'status != "finished"') == ["r3", "r4"]


def test_and_binds_tighter_than_or(con: duckdb.DuckDBPyConnection) -> None:
    text = "status = 'failed' or metrics.acc > 0.9 and params.penalty = 'l1'"
    assert select(con, text) == ["r3", "r4"]
    text = "(status = 'failed' or metrics.acc > 0.9) and params.penalty = 'l1'"
    assert select(con, text) == ["r4"]


def test_not_binds_tighter_than_and(con: duckdb.DuckDBPyConnection) -> None:
    assert select(con, "not status = 'finished' and params.penalty = 'l2'") == ["r3"]
    text = "not (status = 'finished' and params.penalty = 'l2')"
    assert select(con, text) == ["r2", "r3", "r4"]
    assert select(con, "not not status = 'failed'") == ["r3"]
    text = "not (status = 'failed' or tags.team = 'nlp') and (((metrics.acc > 0)))"
    assert select(con, text) == ["r1", "r4"]


def test_in_lists(con: duckdb.DuckDBPyConnection) -> None:
    assert select(con, "params.penalty in ('l1')") == ["r2", "r4"]
    assert select(con, "status IN ('failed', 'running')") == ["r3", "r4"]
    assert select(con, "params.penalty not in ('l1', 'x')") == ["r1", "r3"]
    assert select(con, "params.C in (1, 10)") == ["r1", "r2"]
    # Mixed kinds bind in placeholder order even though they are grouped.
    assert select(con, "params.C in ('abc', 0.1, 'zzz', 1)") == ["r1", "r3", "r4"]
    assert select(con, "params.C not in ('abc', 10)") == ["r1", "r3"]
    assert select(con, "metrics.acc in (0.95, 0.85)") == ["r1", "r2"]


def test_like(con: duckdb.DuckDBPyConnection) -> None:
    assert select(con, "tags.team like 'vis%'") == ["r1", "r4"]
    assert select(con, "tags.team like 'VIS%'") == []
    assert select(con, "tags.team ILIKE 'VIS%'") == ["r1", "r4"]
    assert select(con, "tags.team not like 'vis%'") == ["r2"]
    assert select(con, "status not ilike 'F%'") == ["r4"]


def test_is_null(con: duckdb.DuckDBPyConnection) -> None:
    assert select(con, "metrics.acc is null") == ["r3"]
    assert select(con, "tags.team is not null") == ["r1", "r2", "r4"]


def test_params_compare_numerically_with_numbers(con: duckdb.DuckDBPyConnection) -> None:
    assert select(con, "params.C = 1") == ["r1"]
    assert select(con, "params.C > 5") == ["r2"]
    assert select(con, "params.C < 1") == ["r3"]
    # With a string they compare as text: '1.0' is not '1'.
    assert select(con, "params.C = '1'") == []
    assert select(con, "params.C = '1.0'") == ["r1"]


def test_params_compare_with_booleans(con: duckdb.DuckDBPyConnection) -> None:
    assert select(con, "params.flag = true") == ["r1", "r4"]
    assert select(con, "params.flag != TRUE") == ["r2"]
    assert select(con, "params.flag = False") == ["r2"]


def test_backquoted_keys(con: duckdb.DuckDBPyConnection) -> None:
    assert select(con, "metrics.`val f1` >= 0.8") == ["r1", "r4"]
    assert select(con, "params.`model/lr` = '0.1'") == ["r1"]
    assert select(con, "params.model/lr = 1") == ["r4"]
    assert compile_filter("params.`a``b.c` = 1").fields == {Field("params", "a`b.c")}


def test_time_compare(con: duckdb.DuckDBPyConnection) -> None:
    assert select(con, "start_time > '2026-01-01T12:00:00+00:00'") == ["r2", "r3"]
    assert select(con, "start_time < '2026-01-01'") == ["r4"]
    assert select(con, "start_time >= '2026-01-02 10:00:00Z'") == ["r2", "r3"]
    assert select(con, "start_time in ('2026-01-03 10:00:00+00:00')") == ["r3"]
    compiled = compile_filter("start_time > '2026-01-01'")
    assert compiled.sql == '("start_time" > CAST(? AS TIMESTAMPTZ))'


# -- ordering ------------------------------------------------------------------------------------


def test_order_by_compiles() -> None:
    assert compile_order_by(["-metrics.acc", "start_time"]) == (
        'ORDER BY "metrics.acc" DESC NULLS LAST, "start_time" ASC NULLS LAST',
        frozenset({Field("metrics", "acc"), Field("attr", "start_time")}),
    )
    assert compile_order_by("metrics.acc DESC, +start_time")[0] == (
        'ORDER BY "metrics.acc" DESC NULLS LAST, "start_time" ASC NULLS LAST'
    )
    default = ('ORDER BY "start_time" DESC', frozenset({Field("attr", "start_time")}))
    assert compile_order_by(None) == default
    assert compile_order_by("") == default
    assert compile_order_by([]) == default


def test_order_by_executes_with_nulls_last(con: duckdb.DuckDBPyConnection) -> None:
    assert select(con, order_by="-metrics.acc") == ["r1", "r4", "r2", "r3"]
    assert select(con, order_by="metrics.acc") == ["r2", "r4", "r1", "r3"]
    assert select(con, order_by=["params.penalty", "-metrics.acc"]) == ["r4", "r2", "r1", "r3"]
    assert select(con, order_by="params.penalty desc, metrics.`val f1` asc") == [
        "r1",
        "r3",
        "r2",
        "r4",
    ]
    assert select(con, order_by=None) == ["r3", "r2", "r1", "r4"]


def test_order_by_params_numerically(con: duckdb.DuckDBPyConnection) -> None:
    # As text 'abc' > '10' > '1.0'; numbers sort by value first and text after them.
    assert select(con, order_by="-params.C") == ["r2", "r1", "r3", "r4"]


# -- injection -----------------------------------------------------------------------------------


def test_string_injection_is_a_bound_value(con: duckdb.DuckDBPyConnection) -> None:
    text = "params.C = 'x''; drop table t; --'"
    compiled = compile_filter(text)
    assert "drop" not in compiled.sql
    assert compiled.params == ["x'; drop table t; --"]
    assert select(con, text) == []
    with pytest.raises(FilterError, match="unexpected character ';'"):
        select(con, "params.penalty = 'l1'; drop table t; --'")
    assert con.execute("SELECT count(*) FROM t").fetchone() == (4,)


def test_identifier_injection_is_quoted(con: duckdb.DuckDBPyConnection) -> None:
    compiled = compile_filter("params.`a\"b` = 'x'")
    assert compiled.sql == '("params.a""b" = ?)'
    assert select(con, "params.`a\"b` = 'x'") == ["r2", "r4"]
    evil = 'metrics.`acc" > 0 or 1=1; drop table t; --` > 0'
    assert compile_filter(evil).fields == {Field("metrics", 'acc" > 0 or 1=1; drop table t; --')}
    with pytest.raises(duckdb.BinderException):
        select(con, evil)
    order, _ = compile_order_by('-params.`x" desc; drop table t; --`')
    assert '"params.x"" desc; drop table t; --"' in order
    with pytest.raises(duckdb.BinderException):
        con.execute(f"SELECT run_id FROM t {order}")
    assert con.execute("SELECT count(*) FROM t").fetchone() == (4,)


# -- errors --------------------------------------------------------------------------------------


def test_error_shows_position_and_caret() -> None:
    assert message("metrics.acc > and x") == (
        "invalid filter at position 15: expected a value after '>', found 'and'\n"
        "  metrics.acc > and x\n"
        "                ^"
    )


def test_filter_error_is_an_invalid_input_value_error() -> None:
    with pytest.raises(ValueError):
        compile_filter("(")
    assert issubclass(FilterError, InvalidInputError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("()", "expected a condition inside '()'"),
        ("metrics.acc > 1 )", "expected 'and', 'or' or the end of the filter, found ')'"),
        ("metrics.acc > 1 foo", "found 'foo'"),
        ("metrics.acc > 1 and", "expected a field"),
        ("(metrics.acc > 1", "expected ')' to close the '(' at position 1"),
        ("params.C = 'abc", "unterminated string"),
        ('params.C = "abc', "unterminated string"),
        ("params.`abc = 1", "unterminated backquoted name"),
        ("params.`` = 1", "cannot be empty"),
        ("acc > 1", "did you mean metrics.acc or params.acc?"),
        ("stat = 'x'", "did you mean status"),
        ("attributes.acc = 1", "unknown attribute 'acc'"),
        ("metrc.acc > 1", "unknown prefix 'metrc'; did you mean metrics.acc?"),
        ("foo.acc > 1", "unknown prefix 'foo'"),
        ("metrics.acc = 'x'", "metrics.acc is numeric; compare it with a number"),
        ("metrics.acc = true", "metrics.acc is numeric"),
        ("metrics.acc like 'x'", "is not text"),
        ("params.C like 1", "needs a quoted pattern"),
        ("status = 1", "status is text; quote the value"),
        ("start_time > 5", "start_time is a time"),
        ("start_time > 'yesterday'", "not an ISO date"),
        ("params.flag > true", "can only be compared with = or !="),
        ("metrics.a.b > 1", "must be backquoted, e.g. metrics.`a.b`"),
        ("params.penalty = l2", "quote text values, e.g. 'l2'"),
        ("metrics.acc = null", "'is null'"),
        ("metrics.acc is 1", "expected 'null' or 'not null' after 'is'"),
        ("metrics.acc not 1", "expected 'in', 'like' or 'ilike' after 'not'"),
        ("metrics.acc in 1", "expected '(' after 'in'"),
        ("metrics.acc in ()", "expected a value in the 'in' list"),
        ("metrics.acc in (1,)", "expected a value in the 'in' list"),
        ("metrics.acc in (1 2)", "expected ',' or ')'"),
        ("metrics.acc", "expected an operator after metrics.acc"),
        ("metrics.acc > 1e999", "number out of range"),
        ("metrics.acc > 1.2.3", "invalid number"),
        ("metrics.acc ! 1", "unexpected character '!'"),
        ("métrics.acc > 1", "must be backquoted"),
        ("metrics.acc > 1 and and", "expected a field"),
        ("params.x = 'a\0'", "NUL"),
    ],
)
def test_errors(text: str, expected: str) -> None:
    assert expected in message(text)


def test_caret_on_second_line() -> None:
    assert message("metrics.acc > 1\n  and foo").endswith("\n    and foo\n        ^")


def test_long_input_is_shortened_in_messages() -> None:
    text = "metrics.acc > 1 and " * 500 + "bogus > 1"
    msg = message(text)
    assert len(msg) < 500
    assert msg.splitlines()[-1].index("^") == msg.splitlines()[-2].index("bogus")


def test_deep_nesting_is_a_filter_error() -> None:
    assert "nested more than" in message("(" * 5000 + "status = 'a'" + ")" * 5000)
    assert "nested more than" in message("not " * 5000 + "status = 'a'")
    assert compile_filter("(" * 50 + "status = 'a'" + ")" * 50).params == ["a"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("metrics.acc sideways", "expected 'asc', 'desc', ',' or the end"),
        ("-metrics.acc desc", "give the direction once"),
        ("--metrics.acc", "expected a field"),
        ("metrics.acc,", "expected a field"),
        ("acc", "unknown attribute 'acc'"),
        (["metrics.acc", " "], "an item is empty"),
        ([1], "give a string or a list of strings"),
        (3, "give a string or a list of strings"),
        ("metrics.acc > 1", "found '>'"),
    ],
)
def test_order_by_errors(spec: object, expected: str) -> None:
    with pytest.raises(FilterError, match="order_by") as info:
        compile_order_by(spec)  # type: ignore[arg-type]
    assert expected in str(info.value)
