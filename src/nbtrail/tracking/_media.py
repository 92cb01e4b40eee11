"""Figures, images, tables, text and dicts as artifacts: the bytes each one is stored as.

Each ``*_files`` function checks its input, renders it and returns the files to store;
``ActiveRun.log_figure`` and its siblings store them as artifacts with a ``kind``. The
libraries of the inputs (matplotlib, plotly, PIL, pandas, polars) are never imported to
recognise an object: an object of a library that is not loaded cannot be of its types.
"""

from __future__ import annotations

import io
import json
import mimetypes
import struct
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import InvalidInputError, MissingExtraError

Kind = Literal["figure", "image", "table", "text", "dict"]
KINDS: tuple[Kind, ...] = ("figure", "image", "table", "text", "dict")
# log_table refuses larger tables: a table artifact is meant to be read whole in a view
# (previews, comparisons); data sets belong to log_dataset, big files to log_artifact.
MAX_TABLE_ROWS = 100_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class File:
    """One file to store: its artifact name, bytes and media type."""

    name: str
    data: bytes
    media_type: str


def figure_files(fig: object, name: str) -> list[File]:
    """A matplotlib figure as PNG; a plotly figure as JSON and HTML, plus PNG with kaleido."""
    stem = _stem(name, ".png")
    if _is_instance(fig, "matplotlib.figure", "Figure"):
        buffer = io.BytesIO()
        try:
            fig.savefig(buffer, format="png", bbox_inches="tight")  # type: ignore[attr-defined]
        except Exception as exc:  # whatever the artist raised: the figure does not draw
            raise InvalidInputError(
                f"log_figure: fig {name!r} failed to render with matplotlib: "
                f"{type(exc).__name__}: {exc}; fix the figure (draw it with fig.savefig to "
                "see the error) and log it again") from None
        return [File(f"{stem}.png", buffer.getvalue(), "image/png")]
    if _is_instance(fig, "plotly.basedatatypes", "BaseFigure"):
        return _plotly_files(fig, name, stem)
    raise InvalidInputError(
        f"log_figure: fig must be a matplotlib Figure or a plotly Figure, got "
        f"{_type_name(fig)}; for an Axes pass ax.figure, for an image use run.log_image")


def _plotly_files(fig: Any, name: str, stem: str) -> list[File]:
    try:
        spec = fig.to_json()
        # The HTML carries plotly.js itself (about 4 MB): it opens offline, years later.
        page = fig.to_html(include_plotlyjs=True, full_html=True)
    except Exception as exc:  # plotly's validation of the figure's data and layout
        raise InvalidInputError(
            f"log_figure: plotly fig {name!r} failed to render: {type(exc).__name__}: "
            f"{exc}") from None
    files = [File(f"{stem}.json", spec.encode(), "application/json"),
             File(f"{stem}.html", page.encode(), "text/html")]
    try:
        import kaleido  # noqa: F401  (plotly's PNG export; only its presence is checked)
    except ImportError:
        warnings.warn(
            f"log_figure: stored plotly figure {name!r} as JSON and HTML but not as PNG, so "
            "views show a download link instead of the image; pip install kaleido for the "
            "PNG", stacklevel=3)
        return files
    try:
        png = fig.to_image(format="png")
    except Exception as exc:  # kaleido drives a browser: it may be missing or fail
        raise InvalidInputError(
            f"log_figure: plotly fig {name!r} failed to render as PNG with kaleido: "
            f"{type(exc).__name__}: {exc}") from None
    return [File(f"{stem}.png", png, "image/png"), *files]


def image_file(image: object, name: str, step: int | None) -> File:
    """A numpy array, PIL image or image file as PNG (named ``<name>/step-<N>.png`` with a step)."""
    stem = _stem(name, ".png")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
        raise InvalidInputError(
            f"log_image: step must be a non-negative integer or None, got {step!r}")
    target = f"{stem}/step-{step}.png" if step is not None else f"{stem}.png"
    if isinstance(image, str | Path):
        return File(target, _image_path_png(Path(image)), "image/png")
    if _is_instance(image, "PIL.Image", "Image"):
        return File(target, _pil_png(image), "image/png")
    if _is_instance(image, "numpy", "ndarray"):
        return File(target, _array_png(image), "image/png")
    raise InvalidInputError(
        f"log_image: image must be a numpy array (H×W, H×W×1, H×W×3 or H×W×4), a PIL image "
        f"or the path of an image file, got {_type_name(image)}; for a figure use "
        "run.log_figure")


def _image_path_png(path: Path) -> bytes:
    if not path.is_file():
        raise InvalidInputError(
            f"log_image: image path {str(path)!r} is not a file (relative to {Path.cwd()})")
    data = path.read_bytes()
    if data.startswith(PNG_SIGNATURE):
        return data  # stored as it is: re-encoding would only cost time
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtraError(
            f"log_image: {str(path)!r} is not a PNG, and converting it needs Pillow: "
            "pip install pillow") from None
    try:
        with Image.open(path) as opened:
            return _pil_png(opened)
    except OSError as exc:
        raise InvalidInputError(
            f"log_image: image path {str(path)!r} is not an image Pillow can read: {exc}"
        ) from None


def _pil_png(image: Any) -> bytes:
    buffer = io.BytesIO()
    try:
        picture = image if image.mode in ("1", "L", "LA", "P", "RGB", "RGBA") else \
            image.convert("RGBA")
        picture.save(buffer, format="PNG")
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"log_image: image (a PIL image, mode {image.mode}) could not be saved as PNG: "
            f"{exc}") from None
    return buffer.getvalue()


def _array_png(array: Any) -> bytes:
    import numpy as np

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) \
            or 0 in array.shape:
        raise InvalidInputError(
            f"log_image: image array has shape {array.shape}; expected height × width "
            "(grey), × 1, × 3 (RGB) or × 4 (RGBA)")
    if array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array).all()
        if not finite or array.min() < 0 or array.max() > 1:
            found = (f"values from {array.min():g} to {array.max():g}" if finite
                     else "NaN or infinite values")
            raise InvalidInputError(
                f"log_image: a float image array must hold finite values in [0, 1], got "
                f"{found}; scale it, e.g. (a - a.min()) / (a.max() - a.min()), or pass uint8 "
                "values")
        pixels = np.round(array * 255).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise InvalidInputError(
                f"log_image: an integer image array must hold values in [0, 255], got "
                f"{array.min()} to {array.max()}; convert it, e.g. a.clip(0, 255).astype('uint8')")
        pixels = array.astype(np.uint8)
    else:
        raise InvalidInputError(
            f"log_image: image array has dtype {array.dtype}; pass uint8, bool or float "
            "values in [0, 1]")
    return encode_png(pixels)


def encode_png(pixels: Any) -> bytes:
    """A uint8 array of shape (H, W), (H, W, 3) or (H, W, 4) as PNG bytes (no Pillow needed)."""
    import numpy as np

    height, width = pixels.shape[:2]
    colour = 0 if pixels.ndim == 2 else {3: 2, 4: 6}[pixels.shape[2]]  # grey, RGB, RGBA
    # Each scanline starts with its filter type (0: none).
    rows = np.ascontiguousarray(pixels).reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))


def table_file(table: object, name: str) -> File:
    """A pandas or polars data frame or a pyarrow table as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stem = _stem(name, ".parquet")
    try:
        if _is_instance(table, "pandas", "DataFrame"):
            arrow = pa.Table.from_pandas(table)
        elif _is_instance(table, "polars", "DataFrame"):
            arrow = table.to_arrow()  # type: ignore[attr-defined]
        elif isinstance(table, pa.RecordBatch):
            arrow = pa.Table.from_batches([table])
        elif isinstance(table, pa.Table):
            arrow = table
        else:
            raise InvalidInputError(
                f"log_table: table must be a pandas or polars DataFrame or a pyarrow Table, "
                f"got {_type_name(table)}; e.g. pd.DataFrame(rows) first")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidInputError(
            f"log_table: table {name!r} has a column Parquet cannot store: {exc}; convert "
            "mixed or object columns to one type (e.g. df[col].astype(str))") from None
    if arrow.num_rows > MAX_TABLE_ROWS:
        raise InvalidInputError(
            f"log_table: table {name!r} has {arrow.num_rows:,} rows, over the limit of "
            f"{MAX_TABLE_ROWS:,}; log a sample (df.sample({MAX_TABLE_ROWS:,})) or an "
            "aggregate, or record the data with run.log_dataset")
    buffer = io.BytesIO()
    pq.write_table(arrow, buffer)
    return File(f"{stem}.parquet", buffer.getvalue(), "application/vnd.apache.parquet")


def text_file(text: object, name: str) -> File:
    """Text as a UTF-8 file named ``name`` (``.txt`` added when it has no suffix)."""
    if not isinstance(text, str):
        raise InvalidInputError(
            f"log_text: text must be a str, got {_type_name(text)}; "
            "for a dict use run.log_dict, for a file run.log_artifact")
    target = name if Path(name).suffix else f"{name}.txt"
    guessed = mimetypes.guess_type(target)[0]
    # Whatever the suffix says, it is text: views show it as text, never as HTML.
    media = guessed if guessed and guessed.startswith("text/") else "text/plain"
    return File(target, text.encode("utf-8"), media)


def dict_file(obj: object, name: str) -> File:
    """A JSON-able dict or list as JSON, or as YAML when ``name`` ends in .yaml or .yml."""
    suffix = Path(name).suffix.lower()
    if suffix not in ("", ".json", ".yaml", ".yml"):
        raise InvalidInputError(
            f"log_dict: name {name!r} must end in .json, .yaml or .yml (or have no suffix, "
            "for JSON)")
    if not isinstance(obj, dict | list):
        raise InvalidInputError(
            f"log_dict: obj must be a dict or a list, got {_type_name(obj)}")
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise MissingExtraError(
                f"log_dict: writing {name!r} as YAML needs PyYAML: pip install pyyaml; or "
                "name it .json") from None
        try:
            body = yaml.safe_dump(obj, sort_keys=False, allow_unicode=True)
        except yaml.YAMLError as exc:
            raise InvalidInputError(
                f"log_dict: obj holds a value YAML cannot store: {exc}; use plain dicts, "
                "lists, strings and numbers") from None
        return File(name, body.encode("utf-8"), "application/yaml")
    try:
        body = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"log_dict: obj holds a value JSON cannot store: {exc}; use plain dicts, lists, "
            "strings and finite numbers (or name it .yaml)") from None
    return File(name if suffix else f"{name}.json", body.encode("utf-8"), "application/json")


def _stem(name: str, suffix: str) -> str:
    """``name`` without ``suffix``, where the caller adds the suffix it stores."""
    return name[: -len(suffix)] if name.lower().endswith(suffix) else name


def _is_instance(value: object, module: str, cls: str) -> bool:
    loaded = sys.modules.get(module)
    kind = getattr(loaded, cls, None) if loaded is not None else None
    return isinstance(kind, type) and isinstance(value, kind)


def _type_name(value: object) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" \
        else kind.__qualname__
