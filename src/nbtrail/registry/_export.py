"""The audit trail exported: JSON Lines for machines, a static HTML page for people.

Both carry every entry with all its columns, so an export can be checked again outside
nbtrail: ``payload`` is the parsed object whose canonical JSON text was hashed, and
``at_us`` the integer that was hashed (``at`` is the same instant as ISO text).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from .. import _html
from .._json import dumps
from ..errors import InvalidInputError
from ..store._audit import Verdict, verify
from ._state import when

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store

Format = Literal["jsonl", "html"]
FORMATS: tuple[Format, ...] = ("jsonl", "html")

# Shown in the HTML table, in this order (``at_us`` and ``prev_hash`` stay in the JSON).
_HTML_COLUMNS = ("seq", "at", "actor", "actor_source", "event", "model", "version",
                 "payload", "hash")
_CELL = "border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top;"
_BROKEN = "background:#f8d7da;"


def entry_records(entries: pl.DataFrame) -> list[dict[str, Any]]:
    """Audit rows as records: every column, ``at`` (a UTC time) added, ``payload`` parsed."""
    return [{"seq": row["seq"], "at": when(row["at_us"]), **row,
             "payload": json.loads(row["payload"])}
            for row in entries.iter_rows(named=True)]


def export_audit(store: Store, fmt: str) -> str:
    """The whole audit trail of ``store`` as ``"jsonl"`` (one entry a line) or ``"html"``.

    The HTML page is self-contained (no script, nothing fetched) and opens with the
    verdict of verifying the chain.

    Example:
        >>> text = export_audit(store, "jsonl")  # doctest: +SKIP
        >>> [json.loads(line)["event"] for line in text.splitlines()][:1]  # doctest: +SKIP
        ['registered']
    """
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown audit export format {fmt!r}; use one of: "
                                f"{', '.join(FORMATS)}")
    entries = store.audit_entries()  # read once: the verdict is about what is exported
    records = entry_records(entries)
    if fmt == "jsonl":
        return "".join(dumps(r, nonfinite="text", ensure_ascii=False) + "\n" for r in records)
    verdict = verify(entries.iter_rows())
    return _html.document(f"nbtrail audit trail of {store.location}",
                          _header(store, verdict) + _entries_table(records, verdict))


def verdict_line(verdict: Verdict) -> str:
    """One line saying whether the chain is whole (``nbtrail audit verify`` prints it)."""
    if verdict.ok:
        return f"audit trail whole: {verdict.entries} entries, head {verdict.head or '-'}"
    return f"audit trail BROKEN: {verdict.problem}"


def _header(store: Store, verdict: Verdict) -> str:
    colour = "#1e7e34" if verdict.ok else "#b21f2d"
    title = (f'<h1 style="font-size:18px">Audit trail of {_html.escape(store.location)}'
             "</h1>")
    line = (f'<p style="color:{colour};font-weight:bold">'
            f"{_html.escape(verdict_line(verdict))}</p>")
    return title + line


def _entries_table(records: list[dict[str, Any]], verdict: Verdict) -> str:
    # Not ``_html.table``: that one elides rows and shortens cells for a notebook, where
    # an export must show every entry and every payload whole.
    head = "".join(f'<th style="{_CELL}">{_html.escape(c)}</th>' for c in _HTML_COLUMNS)
    rows = []
    for record in records:
        broken = record["seq"] == verdict.broken_seq
        cells = {**record, "payload": json.dumps(record["payload"], indent=1,
                                                 sort_keys=True, ensure_ascii=False)}
        tds = "".join(
            f'<td style="{_CELL}"><pre style="margin:0;white-space:pre-wrap">'
            f"{_html.escape(cells[c])}</pre></td>" if c == "payload" else
            f'<td style="{_CELL}">{_html.escape(cells[c])}</td>' for c in _HTML_COLUMNS)
        rows.append(f'<tr style="{_BROKEN}">' if broken else "<tr>")
        rows.append(tds + "</tr>")
    return (f'<table style="border-collapse:collapse;font-size:12px"><thead><tr>{head}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")
