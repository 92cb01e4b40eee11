"""Static, self-contained HTML for rich display in notebooks.

No script, no iframe, no external resource: the output renders the same in JupyterLab,
VS Code, Colab, nbconvert and GitHub's viewer. Everything user-provided is escaped,
attribute values included.
"""

from __future__ import annotations

import html
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
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
    return f"<div><div><strong>{escape(title)}</strong></div>{body}</div>"


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


def bar_chart(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]], *,
              width: int = 320, bar: int = 6, label_width: int = 110) -> str:
    """An inline SVG of horizontal bars: one group a label, one bar a series, with a legend.

    Values are drawn to scale from 0 to the largest one; non-finite values count as 0.
    """
    values = {name: [v if math.isfinite(v) else 0.0 for v in row] for name, row in series.items()}
    top = max((v for row in values.values() for v in row), default=0.0) or 1.0
    group = bar * len(values) + 4
    height = group * len(labels) + 4
    span = width - label_width - 50
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
             'style="font-size:10px;font-family:sans-serif">']
    for i, label in enumerate(labels):
        y = 2 + i * group
        parts.append(f'<text x="{label_width - 4}" y="{y + group / 2 + 2:.1f}" '
                     f'text-anchor="end">{escape(_short(label, 24))}</text>')
        for j, row in enumerate(values.values()):
            colour = _COLOURS[j % len(_COLOURS)]
            length = max(row[i] / top * span, 0.5)
            parts.append(f'<rect x="{label_width}" y="{y + j * bar}" width="{length:.1f}" '
                         f'height="{bar - 1}" fill="{colour}"/>')
        last = max(row[i] for row in values.values())
        parts.append(f'<text x="{label_width + max(last / top * span, 0.5) + 3:.1f}" '
                     f'y="{y + group / 2 + 2:.1f}" fill="#666">{escape(f"{last:.3g}")}</text>')
    parts.append("</svg>")
    legend = " ".join(f'<span style="color:{_COLOURS[j % len(_COLOURS)]}">■ {escape(name)}</span>'
                      for j, name in enumerate(values))
    return section(title, "".join(parts) + f"<div>{legend}</div>")


def document(title: str, body: str) -> str:
    """A standalone HTML page around ``body`` (inline styles only, nothing fetched)."""
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title></head>"
            "<body style=\"font-family:system-ui,sans-serif;margin:16px\">"
            f"{body}</body></html>\n")


def save(path: str | Path, title: str, body: str) -> Path:
    """Write :func:`document` of ``title`` and ``body`` to ``path``; the path written."""
    target = Path(path)
    target.write_text(document(title, body), encoding="utf-8")
    return target


def parallel_coordinates(title: str, axes: Sequence[str], rows: Sequence[Sequence[Any]],
                         colour_by: Sequence[float] | None = None, *, width: int = 640,
                         height: int = 260) -> str:
    """An inline SVG parallel-coordinates plot: one vertical axis a column, one line a row.

    Numbers are scaled to each axis's range; other values are placed as categories in
    sorted order. ``colour_by`` (e.g. the objective) shades lines from light to dark blue.
    """
    if not axes or not rows:
        return section(title, "<div>(nothing to plot)</div>")
    pad, top, bottom = 40, 20, 30
    step = (width - 2 * pad) / max(1, len(axes) - 1)
    # Per axis: ("num", low, high) or ("cat", sorted levels, None).
    scales: list[tuple[str, Any, Any]] = []
    for i in range(len(axes)):
        values = [r[i] for r in rows if r[i] is not None]
        numbers = [float(v) for v in values if isinstance(v, int | float) and
                   not isinstance(v, bool) and math.isfinite(float(v))]
        if values and len(numbers) == len(values):
            low, high = min(numbers), max(numbers)
            scales.append(("num", low, high if high > low else low + 1))
        else:
            levels = sorted({str(v) for v in values})
            scales.append(("cat", levels, None))

    def y(i: int, value: Any) -> float | None:
        if value is None:
            return None
        kind, a, b = scales[i]
        if kind == "num":
            if not isinstance(value, int | float) or not math.isfinite(float(value)):
                return None
            share = (float(value) - a) / ((b - a) or 1)
        else:
            share = (a.index(str(value)) + 0.5) / len(a)
        return height - bottom - share * (height - top - bottom)

    shades = list(colour_by) if colour_by is not None else [0.0] * len(rows)
    finite = [s for s in shades if s is not None and math.isfinite(s)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
             'style="font-size:10px;font-family:sans-serif">']
    for row, shade in zip(rows, shades, strict=True):
        points = [(pad + i * step, y(i, v)) for i, v in enumerate(row)]
        coords = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in points if yy is not None)
        level = (shade - low) / ((high - low) or 1) if shade is not None and \
            math.isfinite(shade) else 0.0
        colour = f"rgb({int(200 - 170 * level)},{int(215 - 130 * level)},{int(240 - 70 * level)})"
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" '
                     f'stroke-opacity="0.8" points="{coords}"/>')
    for i, name in enumerate(axes):
        x = pad + i * step
        kind, a, b = scales[i]
        low_text, high_text = (f"{a:.3g}", f"{b:.3g}") if kind == "num" else \
            (_short(a[0], 12) if a else "", _short(a[-1], 12) if a else "")
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" '
                     'stroke="#555"/>'
                     f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" '
                     f'font-weight="bold">{escape(_short(name, 20))}</text>'
                     f'<text x="{x + 3:.1f}" y="{top - 6}">{escape(high_text)}</text>'
                     f'<text x="{x + 3:.1f}" y="{height - bottom + 10}">{escape(low_text)}</text>')
    parts.append("</svg>")
    return section(title, "".join(parts))


def graph(title: str, nodes: Sequence[tuple[str, str, str]],
          edges: Sequence[tuple[str, str, str]], *, order: Sequence[str] = ()) -> str:
    """An inline SVG of a directed graph laid out in columns by node kind.

    ``nodes`` are ``(id, kind, label)``, ``edges`` ``(src, dst, relation)``; kinds listed in
    ``order`` come first, left to right (e.g. dataset, run, model, package).
    """
    if not nodes:
        return section(title, "<div>(no nodes)</div>")
    kinds = [k for k in order if any(n[1] == k for n in nodes)]
    kinds += sorted({n[1] for n in nodes} - set(kinds))
    box_w, box_h, gap_x, gap_y = 190, 34, 60, 12
    place: dict[str, tuple[float, float]] = {}
    rows = 0
    for column, kind in enumerate(kinds):
        members = [n for n in nodes if n[1] == kind]
        rows = max(rows, len(members))
        for row, node in enumerate(members):
            place[node[0]] = (10 + column * (box_w + gap_x), 24 + row * (box_h + gap_y))
    width = 20 + len(kinds) * (box_w + gap_x) - gap_x
    height = 34 + rows * (box_h + gap_y)
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
             'style="font-size:10px;font-family:sans-serif"><defs><marker id="arrow" '
             'viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>']
    for column, kind in enumerate(kinds):
        parts.append(f'<text x="{10 + column * (box_w + gap_x)}" y="14" font-weight="bold" '
                     f'fill="#555">{escape(kind)}</text>')
    for src, dst, relation in edges:
        if src not in place or dst not in place:
            continue
        (x1, y1), (x2, y2) = place[src], place[dst]
        ax, ay = x1 + box_w, y1 + box_h / 2
        bx, by = (x2, y2 + box_h / 2) if x2 > x1 else (x2 + box_w / 2, y2)
        parts.append(f'<line x1="{ax:.1f}" y1="{ay:.1f}" x2="{bx:.1f}" y2="{by:.1f}" '
                     'stroke="#888" marker-end="url(#arrow)"><title>'
                     f'{escape(relation)}</title></line>')
    colours = dict(zip(kinds, _COLOURS, strict=False))
    for node_id, kind, label in nodes:
        x, y0 = place[node_id]
        parts.append(f'<rect x="{x}" y="{y0}" width="{box_w}" height="{box_h}" rx="4" '
                     f'fill="#fff" stroke="{colours[kind]}" stroke-width="2"/>'
                     f'<text x="{x + 6}" y="{y0 + 14}" font-weight="bold">'
                     f'{escape(_short(label or node_id, 30))}</text>'
                     f'<text x="{x + 6}" y="{y0 + 27}" fill="#666">'
                     f'{escape(_short(node_id, 31))}</text>')
    parts.append("</svg>")
    return section(title, f'<div style="overflow-x:auto">{"".join(parts)}</div>')
