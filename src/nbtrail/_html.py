"""Static, self-contained HTML for rich display in notebooks.

No script, no iframe, no external resource: the output renders the same in JupyterLab,
VS Code, Colab, nbconvert and GitHub's viewer. Everything user-provided is escaped,
attribute values included.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_STYLE = (
    "border-collapse:collapse;font-size:12px;margin:4px 0;"
)
_CELL = "border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top;"


def escape(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
    max_rows: int = 20,
) -> str:
    """An HTML table showing head and tail when there are more than ``max_rows`` rows."""
    rows = list(rows)
    shown: list[Sequence[Any] | None] = list(rows)
    if len(rows) > max_rows:
        half = max_rows // 2
        shown = [*rows[:half], None, *rows[-half:]]
    parts = [f'<table style="{_STYLE}">']
    if caption:
        parts.append(f'<caption style="text-align:left">{escape(caption)}</caption>')
    parts.append("<thead><tr>")
    parts.extend(f'<th style="{_CELL}">{escape(c)}</th>' for c in columns)
    parts.append("</tr></thead><tbody>")
    for row in shown:
        if row is None:
            parts.append(f'<tr><td style="{_CELL}" colspan="{len(columns)}">…</td></tr>')
            continue
        parts.append("<tr>")
        parts.extend(f'<td style="{_CELL}">{escape(_short(v))}</td>' for v in row)
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def mapping(title: str, values: Mapping[str, Any]) -> str:
    """A two-column key/value table."""
    return table(["key", "value"], sorted(values.items()), caption=title, max_rows=50)


def section(title: str, body: str) -> str:
    """A titled block."""
    return f"<div><strong>{escape(title)}</strong>{body}</div>"


def _short(value: object, limit: int = 120) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
