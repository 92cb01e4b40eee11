"""Reading a run's figures, images, tables, texts and dicts back for the views.

One place decides how each stored kind is shown (``view``), what a table's or a text's
preview holds, and how an image series is thinned; the run's static HTML, the server
extension (for the sidebar) and the dashboard all read through it.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .. import _html

if TYPE_CHECKING:
    from ..store import Store

View = Literal["image", "table", "text", "file"]
# Previews: the rows of a table and the characters of a text shown inline.
PREVIEW_ROWS = 20
PREVIEW_CHARS = 20_000
# Static HTML embeds images as data URIs: larger ones are named, not embedded, and a
# series shows at most this many steps (evenly spread, the last one always).
MAX_INLINE_BYTES = 2_000_000
MAX_STRIP = 10
_SERIES = "/step-"


@dataclass(frozen=True)
class Media:
    """One figure, image, table, text or dict artifact of a run."""

    name: str
    kind: str
    step: int | None
    media_type: str | None
    sha256: str
    size_bytes: int

    @property
    def view(self) -> View:
        """How a view shows it: an image, a table preview, text, or a download."""
        if self.media_type == "image/png":
            return "image"
        if self.kind == "table":
            return "table"
        if self.kind in ("text", "dict"):
            return "text"
        return "file"  # a plotly figure's JSON and HTML: never rendered from the store

    @property
    def series(self) -> str:
        """The name an image series shares across steps (else the artifact's name)."""
        return self.name.rsplit(_SERIES, 1)[0] if self.step is not None else self.name

    def to_json(self) -> dict[str, Any]:
        """The fields the server extension sends, previews not included."""
        return {"name": self.name, "kind": self.kind, "step": self.step,
                "media_type": self.media_type, "size_bytes": self.size_bytes,
                "view": self.view, "series": self.series}


def run_media(store: Store, run_id: str) -> list[Media]:
    """The run's media artifacts: by kind as logged, then series, then step."""
    frame = store.sql(
        "SELECT name, kind, step, media_type, sha256, size_bytes FROM artifacts "
        "WHERE run_id = ? AND kind IS NOT NULL", [run_id])
    items = [Media(**row) for row in frame.to_dicts()]
    order = {"figure": 0, "image": 1, "table": 2, "text": 3, "dict": 4}
    return sorted(items, key=lambda m: (order.get(m.kind, 5), m.series, m.step or 0, m.name))


def table_preview(store: Store, item: Media, rows: int = PREVIEW_ROWS) -> dict[str, Any]:
    """The first ``rows`` rows of a table: ``columns``, ``rows`` (lists), ``n_rows``."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(store.blob_path(item.sha256))
    head = next(parquet.iter_batches(batch_size=rows), None)
    values = [list(r.values()) for r in head.to_pylist()] if head is not None else []
    return {"columns": parquet.schema_arrow.names, "rows": values,
            "n_rows": parquet.metadata.num_rows}


def text_preview(store: Store, item: Media, chars: int = PREVIEW_CHARS) -> dict[str, Any]:
    """The start of a text or dict file: ``text`` and whether it was ``truncated``."""
    with store.blob_path(item.sha256).open("rb") as file:
        data = file.read(chars * 4 + 4)  # UTF-8 takes at most 4 bytes a character
    text = data.decode("utf-8", errors="replace")
    truncated = len(text) > chars or item.size_bytes > len(data)
    return {"text": text[:chars], "truncated": truncated}


def media_entries(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The run's media as plain values for the views, with table and text previews."""
    entries = []
    for item in run_media(store, run_id):
        entry = item.to_json()
        if item.view == "table":
            entry["preview"] = table_preview(store, item)
        elif item.view == "text":
            entry["preview"] = text_preview(store, item)
        entries.append(entry)
    return entries


def thin_steps(items: list[Media], limit: int = MAX_STRIP) -> list[Media]:
    """At most ``limit`` items of a series, evenly spread, keeping the first and last."""
    if len(items) <= limit:
        return items
    stride = (len(items) - 1) / (limit - 1)
    return [items[min(len(items) - 1, math.floor(i * stride + 0.5))] for i in range(limit)]


def media_html(store: Store, run_id: str) -> str:
    """The run's media as static HTML: images as data URIs, table and text previews."""
    items = run_media(store, run_id)
    if not items:
        return ""
    parts: list[str] = []
    series: dict[str, list[Media]] = {}
    for item in items:
        if item.view == "image" and item.step is not None:
            series.setdefault(item.series, []).append(item)
    done: set[str] = set()
    for item in items:
        if item.step is not None and item.view == "image":
            if item.series not in done:
                done.add(item.series)
                parts.append(_strip_html(store, run_id, item.series, series[item.series]))
        elif item.view == "image":
            parts.append(_html.section(
                f"{item.kind} {item.name}",
                _img_html(store, run_id, item, width="max-width:480px;min-width:48px")))
        elif item.view == "table":
            preview = table_preview(store, item)
            first = f", the first {PREVIEW_ROWS}" if preview["n_rows"] > PREVIEW_ROWS else ""
            parts.append(_html.section(
                f"table {item.name} ({preview['n_rows']:,} rows × "
                f"{len(preview['columns'])} columns{first})",
                _html.table(preview["columns"], preview["rows"], max_rows=PREVIEW_ROWS)))
        elif item.view == "text":
            preview = text_preview(store, item)
            more = "<div>… (truncated)</div>" if preview["truncated"] else ""
            parts.append(_html.section(
                f"{item.kind} {item.name}",
                '<pre style="max-height:300px;overflow:auto;border:1px solid #ccc;'
                f'padding:4px;margin:2px 0">{_html.escape(preview["text"])}</pre>{more}'))
        else:
            parts.append(_html.section(
                f"{item.kind} {item.name}",
                f"<div>{_html.escape(item.media_type or 'file')}, {item.size_bytes:,} bytes: "
                f"{_html.escape(_opener(run_id, item))}</div>"))
    return "".join(parts)


def _strip_html(store: Store, run_id: str, name: str, steps: list[Media]) -> str:
    shown = thin_steps(steps)
    cells = "".join(
        '<figure style="display:inline-block;margin:2px 4px;text-align:center">'
        f'{_img_html(store, run_id, item, width="width:120px")}'
        f'<figcaption style="font-size:11px">step {item.step}</figcaption></figure>'
        for item in shown)
    note = (f" ({len(shown)} of {len(steps)} steps shown)" if len(shown) < len(steps)
            else f" ({len(steps)} steps)")
    return _html.section(f"image {name}{note}",
                         f'<div style="overflow-x:auto;white-space:nowrap">{cells}</div>')


def _opener(run_id: str, item: Media) -> str:
    """The call that gives back an artifact's file."""
    return f"nt.artifact_path({run_id!r}, {item.name!r})"


def _img_html(store: Store, run_id: str, item: Media, *, width: str) -> str:
    if item.size_bytes > MAX_INLINE_BYTES:
        return (f"<div>({item.size_bytes:,} bytes, too large to embed: "
                f"{_html.escape(_opener(run_id, item))})</div>")
    data = base64.b64encode(store.blob_path(item.sha256).read_bytes()).decode("ascii")
    return (f'<img alt="{_html.escape(item.name)}" style="{width}" '
            f'src="data:image/png;base64,{data}">')
