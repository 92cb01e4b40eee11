"""Compile the run filter and ordering language into parameterised DuckDB SQL.

``nt.runs(where=..., order_by=...)``, the CLI and the HTTP API share this language, so its input
is untrusted: user text reaches the SQL only as a bound parameter or as a double-quoted
identifier, never spliced in.  The compiled expressions refer to the columns of the wide runs
table (``"metrics.acc"``, ``"params.C"``, ``"tags.team"``, ``"status"``...).

Grammar (keywords are case-insensitive)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | comparison
    comparison := field op literal
                | field ["not"] "in" "(" literal ("," literal)* ")"
                | field ["not"] ("like" | "ilike") string
                | field "is" ["not"] "null"
    order_by   := ["-" | "+"] field ["asc" | "desc"] ("," ...)*
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from nbtrail.errors import FilterError

ATTRIBUTES: dict[str, str] = {
    "run_id": "str",
    "name": "str",
    "experiment": "str",
    "status": "str",
    "branch": "str",
    "commit": "str",
    "parent_id": "str",
    "start_time": "time",
    "end_time": "time",
    "duration": "num",
    "notebook": "str",
    "error": "str",
    "user": "str",
    "host": "str",
}
"""Run attribute name -> value kind: ``str`` (VARCHAR), ``time`` (TIMESTAMPTZ) or ``num``."""

# Singular forms are accepted because they are the commonest slip and unambiguous.
_PREFIXES: Final[dict[str, str]] = {
    "metrics": "metrics",
    "metric": "metrics",
    "params": "params",
    "param": "params",
    "tags": "tags",
    "tag": "tags",
    "attributes": "attr",
    "attribute": "attr",
    "attr": "attr",
    "run": "attr",
}
_RESERVED: Final = frozenset(
    {"and", "or", "not", "in", "like", "ilike", "is", "null", "true", "false"}
)
_OPERATORS: Final = ("==", "!=", "<>", "<=", ">=", "=", "<", ">")
_SQL_OPERATORS: Final = {"==": "=", "!=": "<>"}
# re.ASCII: \d would otherwise accept e.g. Arabic-Indic digits, which float() also parses.
_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_\-/:]*", re.ASCII)
_KEY_RE: Final = re.compile(r"[A-Za-z0-9_\-/:]+", re.ASCII)  # after a '.', digits may lead
_NUMBER_RE: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_DIGITS: Final = "0123456789"
# Deep nesting would otherwise end in a RecursionError instead of a readable message.
_MAX_DEPTH: Final = 100
_DEFAULT_ORDER: Final = 'ORDER BY "start_time" DESC'


@dataclass(frozen=True)
class Field:
    """A column that a filter or ordering refers to: a metric, param, tag or run attribute."""

    kind: str  # "metrics" | "params" | "tags" | "attr"
    key: str  # the metric/param/tag key, or the attribute name

    @property
    def column(self) -> str:
        """The column's name in the wide runs table, e.g. ``metrics.acc`` or ``status``."""
        return self.key if self.kind == "attr" else f"{self.kind}.{self.key}"

    def sql(self) -> str:
        """The column as a double-quoted SQL identifier, safe whatever characters the key has."""
        return '"' + self.column.replace('"', '""') + '"'


@dataclass(frozen=True)
class CompiledFilter:
    """A filter compiled to a SQL boolean expression with ``?`` placeholders.

    ``sql`` can be combined with other conditions by ``AND`` as it is; wrap it in parentheses
    for anything else.  ``fields`` lists every column it refers to, which the caller must make
    exist (as NULL when no run has the key).
    """

    sql: str
    params: list[object]
    fields: frozenset[Field]


def compile_filter(text: str | None) -> CompiledFilter:
    """Compile a filter such as ``metrics.acc > 0.9 and params.penalty = 'l2'``.

    Empty or missing input matches every run.  Raises :class:`FilterError` naming the position
    and what was expected when the text is not a valid filter.
    """
    if text is None or not text.strip():
        return CompiledFilter("TRUE", [], frozenset())
    parser = _Parser(text, "filter")
    sql, _ = parser.parse_filter()
    return CompiledFilter(sql, parser.params, frozenset(parser.fields))


def compile_order_by(spec: str | Sequence[str] | None) -> tuple[str, frozenset[Field]]:
    """Compile an ordering such as ``"-metrics.acc"`` or ``["metrics.acc desc", "start_time"]``.

    Returns an ``ORDER BY`` clause and the fields it refers to.  Runs missing a value sort last
    in either direction; params and tags sort numerically where they hold numbers.  With no
    spec the newest runs come first.
    """
    items = list(spec) if isinstance(spec, Sequence) and not isinstance(spec, str) else [spec]
    if any(not isinstance(item, str | None) for item in items):
        raise FilterError(
            f"invalid order_by {_clip(repr(spec), 80)}: give a string or a list of strings"
        )
    if all(item is None or not item.strip() for item in items):
        return _DEFAULT_ORDER, frozenset({Field("attr", "start_time")})
    terms: list[str] = []
    fields: set[Field] = set()
    for item in items:
        if item is None or not item.strip():
            raise FilterError(
                f"invalid order_by {_clip(repr(items), 80)}: an item is empty; "
                "give a field such as '-metrics.acc'"
            )
        parser = _Parser(item, "order_by")
        terms.extend(parser.parse_order_by())
        fields |= parser.fields
    return "ORDER BY " + ", ".join(terms), frozenset(fields)


@dataclass(frozen=True)
class _Token:
    kind: str  # ident qident number string op sign ( ) , . end
    text: str  # identifier or string content (unquoted), operator, number source
    pos: int


@dataclass(frozen=True)
class _Literal:
    kind: str  # "num" | "str" | "bool"
    value: float | str | bool
    pos: int


def _error(what: str, text: str, pos: int, message: str) -> FilterError:
    """Build the error with the offending line and a caret under ``pos``."""
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start : len(text) if end == -1 else end]
    col = pos - start
    # Long inputs (e.g. from the HTTP API) are cut to a window so the message stays readable.
    if len(line) > 80:
        lo = max(0, min(col - 40, len(line) - 80))
        head, tail = ("..." if lo else ""), ("..." if lo + 80 < len(line) else "")
        line, col = head + line[lo : lo + 80] + tail, col - lo + len(head)
    line = "".join(c if c.isprintable() else " " for c in line)
    return FilterError(f"invalid {what} at position {pos + 1}: {message}\n  {line}\n  {' ' * col}^")


def _read_quoted(text: str, start: int, what: str) -> tuple[str, int]:
    """Read the quoted text starting at ``start``; a doubled quote stands for itself."""
    quote = text[start]
    parts: list[str] = []
    i = start + 1
    while True:
        j = text.find(quote, i)
        if j == -1:
            noun = "backquoted name" if quote == "`" else "string"
            raise _error(what, text, start, f"unterminated {noun}: add the closing {quote}")
        if text.startswith(quote * 2, j):
            parts.append(text[i : j + 1])
            i = j + 2
            continue
        parts.append(text[i:j])
        return "".join(parts), j + 1


def _tokenize(text: str, what: str) -> list[_Token]:
    """Split ``text`` into tokens, ending with an ``end`` token."""
    if "\0" in text:
        raise _error(what, text, text.index("\0"), "NUL characters are not allowed")
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        prev = tokens[-1].kind if tokens else None
        if c in "(),":
            tokens.append(_Token(c, c, i))
            i += 1
            continue
        # A '.' right after a name separates prefix and key; elsewhere '.5' is a number.
        if c == "." and (prev in ("ident", "qident") or text[i + 1 : i + 2] not in _DIGITS):
            tokens.append(_Token(".", ".", i))
            i += 1
            continue
        if c in "'\"`":
            value, end = _read_quoted(text, i, what)
            if c == "`" and not value:
                raise _error(what, text, i, "a backquoted name cannot be empty")
            tokens.append(_Token("qident" if c == "`" else "string", value, i))
            i = end
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(_Token("op", op, i))
            i += len(op)
            continue
        match = (_KEY_RE if prev == "." else _IDENT_RE).match(text, i)
        if match:
            tokens.append(_Token("ident", match.group(), i))
            i = match.end()
            continue
        match = _NUMBER_RE.match(text, i)
        if match:
            end = match.end()
            if end < n and (text[end].isalnum() or text[end] in "_."):
                raise _error(what, text, i, "invalid number")
            tokens.append(_Token("number", match.group(), i))
            i = end
            continue
        if c in "+-":
            tokens.append(_Token("sign", c, i))
            i += 1
            continue
        hint = ""
        if c.isalpha():
            hint = "; names with other characters must be backquoted, e.g. params.`naïve`"
        elif c == "!":
            hint = "; use 'not' or '!='"
        raise _error(what, text, i, f"unexpected character {c!r}{hint}")
    tokens.append(_Token("end", "", n))
    return tokens


def _show_key(key: str) -> str:
    """The key as the user would type it, backquoted when a bare name would not parse."""
    if _KEY_RE.fullmatch(key):
        return key
    return "`" + key.replace("`", "``") + "`"


def _display(field: Field) -> str:
    """The field as the user would type it, for error messages."""
    if field.kind == "attr":
        return field.key
    return f"{field.kind}.{_clip(_show_key(field.key))}"


def _clip(text: str, limit: int = 40) -> str:
    """Shorten user text echoed in a message, which may come from an untrusted long input."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


# A compiled sub-expression and whether it is a bare AND chain, which needs parentheses when it
# becomes an operand of OR or NOT.
_Sql = tuple[str, bool]


def _wrap(part: _Sql) -> str:
    return f"({part[0]})" if part[1] else part[0]


class _Parser:
    """Recursive-descent parser emitting SQL as it goes; placeholders follow text order."""

    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.what = what
        self.tokens = _tokenize(text, what)
        self.i = 0
        self.depth = 0
        self.params: list[object] = []
        self.fields: set[Field] = set()

    # -- token helpers -------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def at_keyword(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "ident" and tok.text.lower() in words

    def error(self, pos: int, message: str) -> FilterError:
        return _error(self.what, self.text, pos, message)

    def expected(self, what: str, tok: _Token | None = None) -> FilterError:
        tok = tok or self.peek()
        return self.error(tok.pos, f"expected {what}, found {self.describe(tok)}")

    def describe(self, tok: _Token) -> str:
        if tok.kind == "end":
            return f"the end of the {self.what}"
        if tok.kind == "string":
            return "a string"
        return f"`{_clip(tok.text)}`" if tok.kind == "qident" else f"'{_clip(tok.text)}'"

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error(pos, f"the {self.what} is nested more than {_MAX_DEPTH} deep")

    # -- filter ----------------------------------------------------------------------------------

    def parse_filter(self) -> _Sql:
        result = self.or_expr()
        if self.peek().kind != "end":
            raise self.expected("'and', 'or' or the end of the filter")
        return result

    def or_expr(self) -> _Sql:
        parts = [self.and_expr()]
        while self.at_keyword("or"):
            self.advance()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        # Parenthesised so the result stays one operand when the caller ANDs it with more.
        return "(" + " OR ".join(_wrap(p) for p in parts) + ")", False

    def and_expr(self) -> _Sql:
        parts = [self.not_expr()]
        while self.at_keyword("and"):
            self.advance()
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]
        return " AND ".join(_wrap(p) for p in parts), True

    def not_expr(self) -> _Sql:
        if self.at_keyword("not"):
            self.enter(self.advance().pos)
            inner = self.not_expr()
            self.depth -= 1
            return f"NOT {_wrap(inner)}", False
        return self.primary()

    def primary(self) -> _Sql:
        tok = self.peek()
        if tok.kind != "(":
            return self.comparison()
        self.enter(tok.pos)
        self.advance()
        if self.peek().kind == ")":
            raise self.error(
                self.peek().pos, "expected a condition inside '()', e.g. (metrics.acc > 0.9)"
            )
        inner = self.or_expr()
        if self.peek().kind != ")":
            raise self.expected(f"')' to close the '(' at position {tok.pos + 1}")
        self.advance()
        self.depth -= 1
        return inner

    def comparison(self) -> _Sql:
        start = self.peek().pos
        field = self.field()
        shown = _display(field)
        tok = self.peek()
        if tok.kind == "op":
            self.advance()
            literal = self.literal(f"after '{tok.text}'")
            op = _SQL_OPERATORS.get(tok.text, tok.text)
            if literal.kind == "bool" and op not in ("=", "<>"):
                raise self.error(tok.pos, "true and false can only be compared with = or !=")
            lhs, placeholder, value = self.operand(field, literal)
            self.params.append(value)
            return f"({lhs} {op} {placeholder})", False
        negate = self.at_keyword("not")
        if negate:
            self.advance()
            if not self.at_keyword("in", "like", "ilike"):
                raise self.expected("'in', 'like' or 'ilike' after 'not'")
        if self.at_keyword("in"):
            return self.in_list(field, negate), False
        if self.at_keyword("like", "ilike"):
            word = self.advance().text.lower()
            if self.value_kind(field) not in ("text", "str"):
                raise self.error(start, f"{shown} is not text, so '{word}' cannot match it")
            pattern = self.literal(f"after '{word}'")
            if pattern.kind != "str":
                raise self.error(
                    pattern.pos, f"{word} needs a quoted pattern, e.g. params.model {word} 'res%'"
                )
            self.params.append(pattern.value)
            return f"({field.sql()} {'NOT ' if negate else ''}{word.upper()} ?)", False
        if self.at_keyword("is"):
            self.advance()
            negate = self.at_keyword("not")
            if negate:
                self.advance()
            if not self.at_keyword("null"):
                raise self.expected("'null' or 'not null' after 'is'")
            self.advance()
            return f"({field.sql()} IS {'NOT ' if negate else ''}NULL)", False
        raise self.expected(
            f"an operator after {shown} (=, !=, <, <=, >, >=, in, like, ilike or is null)"
        )

    def in_list(self, field: Field, negate: bool) -> str:
        self.advance()
        if self.peek().kind != "(":
            raise self.expected("'(' after 'in', e.g. params.penalty in ('l1', 'l2')")
        self.advance()
        # Literals of different kinds need different left-hand sides (e.g. TRY_CAST for numbers
        # against a param), so they are grouped by left-hand side; the values are bound group
        # by group to keep them in step with the placeholders.
        groups: dict[str, list[tuple[str, object]]] = {}
        while True:
            lhs, placeholder, value = self.operand(field, self.literal("in the 'in' list"))
            groups.setdefault(lhs, []).append((placeholder, value))
            if self.peek().kind == ",":
                self.advance()
                continue
            if self.peek().kind != ")":
                raise self.expected("',' or ')' in the 'in' list")
            self.advance()
            break
        tests = []
        for lhs, items in groups.items():
            tests.append(f"{lhs} IN ({', '.join(ph for ph, _ in items)})")
            self.params.extend(value for _, value in items)
        sql = " OR ".join(tests)
        return f"(NOT ({sql}))" if negate else f"({sql})"

    def literal(self, where: str) -> _Literal:
        tok = self.peek()
        if tok.kind == "number":
            value = float(tok.text)
            if not math.isfinite(value):
                raise self.error(tok.pos, "number out of range")
            self.advance()
            return _Literal("num", value, tok.pos)
        if tok.kind == "string":
            self.advance()
            return _Literal("str", tok.text, tok.pos)
        if self.at_keyword("true", "false"):
            self.advance()
            return _Literal("bool", tok.text.lower() == "true", tok.pos)
        message = f"expected a value {where}"
        if self.at_keyword("null"):
            message += "; test for a missing value with 'is null'"
        elif tok.kind == "ident" and tok.text.lower() not in _RESERVED:
            message += f"; quote text values, e.g. '{_clip(tok.text)}'"
        elif tok.kind != "end":
            message += f", found {self.describe(tok)}"
        raise self.error(tok.pos, message)

    # -- fields and types ------------------------------------------------------------------------

    def field(self) -> Field:
        tok = self.peek()
        if tok.kind not in ("ident", "qident") or (
            tok.kind == "ident" and tok.text.lower() in _RESERVED
        ):
            raise self.expected("a field such as metrics.acc, params.C, tags.team or status")
        self.advance()
        if self.peek().kind != ".":
            field = self.attribute(tok)
        else:
            self.advance()
            key = self.peek()
            if key.kind not in ("ident", "qident"):
                raise self.expected(f"a key after '{_clip(tok.text)}.'")
            self.advance()
            field = self.prefixed(tok, key)
            if self.peek().kind == ".":
                dotted = [key.text]
                while self.peek().kind == "." and self.peek(1).kind in ("ident", "qident"):
                    dotted.append(self.peek(1).text)
                    self.i += 2
                example = f"{tok.text}.`{'.'.join(dotted).replace('`', '``')}`"
                raise self.error(
                    key.pos, f"a key containing '.' must be backquoted, e.g. {_clip(example)}"
                )
        self.fields.add(field)
        return field

    def attribute(self, tok: _Token) -> Field:
        name = tok.text.lower()
        if name in ATTRIBUTES:
            return Field("attr", name)
        key = _clip(_show_key(tok.text))
        close = difflib.get_close_matches(name, ATTRIBUTES, n=1)
        guesses = ", ".join([*close, f"metrics.{key}"])
        raise self.error(
            tok.pos,
            f"unknown attribute {_clip(tok.text)!r}; did you mean {guesses} or params.{key}? "
            f"Run attributes are: {', '.join(ATTRIBUTES)}",
        )

    def prefixed(self, prefix: _Token, key: _Token) -> Field:
        kind = _PREFIXES.get(prefix.text.lower())
        if kind is None:
            close = difflib.get_close_matches(prefix.text.lower(), _PREFIXES, n=1, cutoff=0.5)
            hint = ""
            if close:
                guess = _PREFIXES[close[0]]
                shown = _clip(_show_key(key.text))
                hint = f"did you mean {shown if guess == 'attr' else f'{guess}.{shown}'}? "
            raise self.error(
                prefix.pos,
                f"unknown prefix {_clip(prefix.text)!r}; {hint}"
                "fields are metrics.<key>, params.<key>, tags.<key> or a run attribute",
            )
        if kind == "attr":
            return self.attribute(key)
        return Field(kind, key.text)

    @staticmethod
    def value_kind(field: Field) -> str:
        """``num``, ``time`` or ``str`` for typed columns; ``text`` for params and tags."""
        if field.kind == "metrics":
            return "num"
        if field.kind == "attr":
            return ATTRIBUTES[field.key]
        return "text"

    def operand(self, field: Field, literal: _Literal) -> tuple[str, str, object]:
        """The left-hand side, placeholder and bound value comparing ``field`` to ``literal``."""
        kind = self.value_kind(field)
        shown = _display(field)
        column = field.sql()
        if kind == "num":
            if literal.kind != "num":
                raise self.error(
                    literal.pos,
                    f"{shown} is numeric; compare it with a number, e.g. {shown} > 0.9",
                )
            return column, "?", literal.value
        if kind == "time":
            if literal.kind != "str":
                raise self.error(
                    literal.pos,
                    f"{shown} is a time; compare it with a quoted ISO date or time, "
                    f"e.g. {shown} > '2026-01-01'",
                )
            return column, "CAST(? AS TIMESTAMPTZ)", self.timestamp(literal)
        if kind == "str":
            if literal.kind != "str":
                raise self.error(
                    literal.pos, f"{shown} is text; quote the value, e.g. {shown} = '...'"
                )
            return column, "?", literal.value
        # Params and tags are stored as str() of the logged value: numbers compare by value so
        # "1.0" equals 1, and booleans were stored as 'True'/'False'.
        if literal.kind == "num":
            return f"TRY_CAST({column} AS DOUBLE)", "?", literal.value
        if literal.kind == "bool":
            return f"lower({column})", "?", "true" if literal.value else "false"
        return column, "?", literal.value

    def timestamp(self, literal: _Literal) -> str:
        # Checked here so a typo is reported with a caret rather than as a DuckDB cast error.
        try:
            return datetime.fromisoformat(str(literal.value).strip()).isoformat()
        except ValueError:
            raise self.error(
                literal.pos,
                f"{_clip(str(literal.value))!r} is not an ISO date or time, e.g. '2026-01-01' or "
                "'2026-01-01 12:00:00+00:00'",
            ) from None

    # -- order by --------------------------------------------------------------------------------

    def parse_order_by(self) -> list[str]:
        terms: list[str] = []
        while True:
            sign = self.advance().text if self.peek().kind == "sign" else None
            field = self.field()
            word = None
            if self.at_keyword("asc", "desc"):
                word = self.peek()
                if sign is not None:
                    raise self.error(
                        word.pos, f"give the direction once: either '{sign}' or '{word.text}'"
                    )
                self.advance()
            desc = sign == "-" or (word is not None and word.text.lower() == "desc")
            direction = "DESC" if desc else "ASC"
            column = field.sql()
            if field.kind in ("params", "tags"):
                # Stored as text; numeric values sort by value first so "10" comes after "9".
                terms.append(f"TRY_CAST({column} AS DOUBLE) {direction} NULLS LAST")
            terms.append(f"{column} {direction} NULLS LAST")
            if self.peek().kind == ",":
                self.advance()
                continue
            if self.peek().kind != "end":
                raise self.expected("'asc', 'desc', ',' or the end of the order_by")
            return terms
