"""Static, self-contained HTML for rich display in notebooks.

No script, no iframe, no external resource: the output renders the same in JupyterLab,
VS Code, Colab, nbconvert and GitHub's viewer. Everything user-provided is escaped,
attribute values included.
"""

from __future__ import annotations

import html
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

_STYLE = (
    "border-collapse:collapse;font-size:12px;margin:4px 0;"
)
_CELL = "border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top;"
_HIGHLIGHT = "background:#fff3cd;"
# Line colours of charts, one per series (Tableau 10, readable on light and dark themes).
_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
            "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")


def escape(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
    max_rows: int = 20,
    highlight: Collection[int] = (),
) -> str:
    """An HTML table showing head and tail when there are more than ``max_rows`` rows.

    Rows whose index is in ``highlight`` get a coloured background.
    """
    rows = list(rows)
    shown: list[tuple[int, Sequence[Any]] | None] = list(enumerate(rows))
    if len(rows) > max_rows:
        half = max_rows // 2
        shown = [*shown[:half], None, *shown[-half:]]
    parts = [f'<table style="{_STYLE}">']
    if caption:
        parts.append(f'<caption style="text-align:left">{escape(caption)}</caption>')
    parts.append("<thead><tr>")
    parts.extend(f'<th style="{_CELL}">{escape(c)}</th>' for c in columns)
    parts.append("</tr></thead><tbody>")
    for item in shown:
        if item is None:
            parts.append(f'<tr><td style="{_CELL}" colspan="{len(columns)}">…</td></tr>')
            continue
        index, row = item
        parts.append(f'<tr style="{_HIGHLIGHT}">' if index in highlight else "<tr>")
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
    if isinstance(value, float):
        return f"{value:.6g}"  # the digits a reader compares, not float noise
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def line_chart(title: str, series: Mapping[str, Sequence[tuple[float, float]]], *,
               width: int = 320, height: int = 160, max_points: int = 400) -> str:
    """An inline SVG chart of one line per series of ``(x, y)`` points, with a legend.

    Non-finite points are left out; long series are thinned to ``max_points``.
    """
    lines = {}
    for name, points in series.items():
        finite = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
        stride = max(1, math.ceil(len(finite) / max_points))
        thinned = finite[::stride]
        if finite and (len(finite) - 1) % stride:
            thinned.append(finite[-1])  # keep the last point: it is the one people read
        lines[name] = thinned
    xs = [x for points in lines.values() for x, _ in points]
    ys = [y for points in lines.values() for _, y in points]
    if not xs:
        return section(title, "<div>(no finite values)</div>")
    pad = 24
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    sx = (width - 2 * pad) / ((x1 - x0) or 1)
    sy = (height - 2 * pad) / ((y1 - y0) or 1)
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
             'style="font-size:10px;font-family:sans-serif">',
             f'<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" '
             f'height="{height - 2 * pad}" fill="none" stroke="#ccc"/>',
             f'<text x="{pad}" y="{pad - 6}">{escape(f"{y1:.4g}")}</text>',
             f'<text x="{pad}" y="{height - 6}">{escape(f"{y0:.4g}")} · steps '
             f'{escape(f"{x0:g}")}–{escape(f"{x1:g}")}</text>']
    legend = []
    for i, (name, points) in enumerate(lines.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        coords = " ".join(f"{pad + (x - x0) * sx:.1f},{height - pad - (y - y0) * sy:.1f}"
                          for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                     f'points="{coords}"/>')
        legend.append(f'<span style="color:{colour}">■ {escape(name)}</span>')
    parts.append("</svg>")
    return section(title, "".join(parts) + "<div>" + " ".join(legend) + "</div>")
