"""How the commands print: aligned text tables, ``key  value`` blocks, cells and JSON.

Text is for people (one value a cell, on one line, in the reader's time zone); ``--json``
is for scripts, written by nbtrail's one JSON encoder with NaN and the infinities as the
strings ``float()`` reads back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._json import dumps

if TYPE_CHECKING:
    import polars as pl

MAX_CELL_WIDTH = 48
_CONTROL_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


# -- JSON -------------------------------------------------------------------------------


def print_json(value: Any) -> None:
    """``value`` as indented strict JSON on stdout."""
    print(dumps(value, nonfinite="text", indent=2))


def compact_json(value: Any) -> str:
    """``value`` as JSON on one line, for a cell."""
    return dumps(value, nonfinite="text", ensure_ascii=False)


# -- cells ------------------------------------------------------------------------------


def cell(value: Any, null: str = "-", width: int | None = MAX_CELL_WIDTH) -> str:
    """One value on one line: short numbers, and at most ``width`` characters if given."""
    if value is None:
        return null
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:.6g}" if math.isfinite(value) else str(value)
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list | tuple):
        text = compact_json(value)
    elif isinstance(value, bytes):
        text = "\\x" + value.hex()
    else:
        text = str(value)
    text = one_line(text)
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def one_line(text: str) -> str:
    """``text`` with its line breaks and tabs escaped."""
    # A newline inside a value (an error message, say) would break a table's rows apart.
    return text.translate(_CONTROL_ESCAPES)


def exact_number(value: Any) -> str:
    """A number with every digit it has (a float's shortest round-trip text)."""
    return repr(value) if isinstance(value, float) else str(value)


def format_duration(seconds: float | None) -> str:
    """Seconds as ``4.2s``, ``3m07s``, ``2h05m`` or ``3d04h``; ``-`` for none."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_size(size: int | None) -> str:
    """Bytes in binary units, e.g. ``1.5 KiB``."""
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def local_time(value: datetime | None, timespec: str = "seconds",
               with_offset: bool = False) -> str:
    """A stored (UTC) time in the reader's time zone, which is how people remember runs."""
    if value is None:
        return "-"
    local = value.astimezone() if value.tzinfo is not None else value
    if not with_offset:
        local = local.replace(tzinfo=None)
    return local.isoformat(sep=" ", timespec=timespec)


# -- tables -----------------------------------------------------------------------------


def numeric_columns(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[bool]:
    """Which columns hold only numbers (right-aligned), judged on the values present."""
    numeric = []
    for i, _ in enumerate(columns):
        values = [row[i] for row in rows if row[i] is not None]
        numeric.append(bool(values) and all(
            isinstance(v, int | float | Decimal | timedelta) and not isinstance(v, bool)
            for v in values))
    return numeric


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[str]],
                right: Sequence[bool]) -> list[str]:
    """Rows of cell texts as aligned lines under their headers (``right``: numbers)."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if r else c.ljust(w)
                  for c, w, r in zip(cells, widths, right, strict=True))
        return "  ".join(padded).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                right: Sequence[bool]) -> None:
    """Print :func:`table_lines`."""
    print("\n".join(table_lines(headers, rows, right)))


def print_frame(frame: pl.DataFrame, null: str = "-") -> None:
    """A polars frame as a table, one cell a value."""
    rows = frame.rows()
    cells = [[cell(v, null=null) for v in row] for row in rows]
    print_table(frame.columns, cells, numeric_columns(frame.columns, rows))


def sub_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """A table indented under a section title; nothing when there are no rows."""
    if not rows:
        return []
    cells = [[cell(v, width=None) for v in row] for row in rows]
    right = numeric_columns(headers, rows)
    return ["  " + line for line in table_lines(headers, cells, right)]


# -- key/value blocks -------------------------------------------------------------------


def section(title: str, body: list[str], empty: str = "(none)") -> list[str]:
    """A blank line, ``title``, then ``body`` (or ``empty`` when it has no lines)."""
    return ["", title, *(body or [f"  {empty}"])]


def pairs(items: Sequence[tuple[str, Any]], indent: str = "  ") -> list[str]:
    """``key  value`` lines with the values aligned; ``-`` for None."""
    width = max((len(k) for k, _ in items), default=0)
    return [f"{indent}{k.ljust(width)}  {one_line('-' if v is None else str(v))}"
            for k, v in items]
