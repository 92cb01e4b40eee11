"""Figures, images, tables, texts and dicts: what each input type is stored as, and the errors."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import sys

import duckdb
import matplotlib
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

import nbtrail as nt
from nbtrail.errors import ConflictError, InvalidInputError, RunFinishedError
from nbtrail.store import _schema
from nbtrail.store._duckdb import DuckDBStore
from nbtrail.tracking._media import MAX_TABLE_ROWS, PNG_SIGNATURE, encode_png
from tests.conftest import require

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def artifacts(run_id: str) -> dict[str, dict]:
    """The run's artifacts rows by name, as the store has them."""
    frame = nt.sql("select name, kind, step, media_type, sha256 from artifacts "
                   "where run_id = ? order by name", [run_id])
    return {row["name"]: row for row in frame.to_dicts()}


def stored(run_id: str, name: str) -> bytes:
    return nt.artifact_path(run_id, name).read_bytes()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


# -- figures ---------------------------------------------------------------------------------

def test_matplotlib_figure_is_stored_as_png(home):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 4, 9])
    with nt.run() as run:
        ids = run.log_figure(fig, "curve")
        assert nt.log_figure(fig, "again.png") != []  # the module-level helper, .png kept once
    plt.close(fig)
    rows = artifacts(run.run_id)
    assert set(rows) == {"curve.png", "again.png"}
    assert rows["curve.png"]["kind"] == "figure" and rows["curve.png"]["media_type"] == "image/png"
    assert ids == [f"art_{rows['curve.png']['sha256'][:32]}"]
    image = Image.open(io.BytesIO(stored(run.run_id, "curve.png")))
    assert image.format == "PNG" and image.width > 100


def test_a_matplotlib_figure_that_fails_to_render_is_a_clear_error(home):
    fig, ax = plt.subplots()
    ax.set_title(r"$\frac{1}{$")  # mathtext that does not parse: savefig raises
    with nt.run() as run, pytest.raises(InvalidInputError, match=r"fig 'broken' failed to render"):
        run.log_figure(fig, "broken")
    plt.close(fig)
    assert artifacts(run.run_id) == {}


@pytest.mark.parametrize("value", [np.zeros((4, 4)), "plot.png", None])
def test_log_figure_refuses_what_is_not_a_figure(home, value):
    with nt.run() as run, pytest.raises(InvalidInputError, match="fig must be a matplotlib Figure"):
        run.log_figure(value, "x")


def test_an_axes_is_refused_with_the_fix(home):
    fig, ax = plt.subplots()
    with nt.run() as run, pytest.raises(InvalidInputError, match=r"pass ax\.figure"):
        run.log_figure(ax, "x")
    plt.close(fig)


def _plotly_figure():
    require(importlib.util.find_spec("plotly") is not None,
            "plotly is not installed (pip install -e '.[test]')")
    import plotly.graph_objects as go

    return go.Figure(go.Scatter(x=[0, 1, 2], y=[3, 1, 2], name="<b>trace</b>"))


def test_plotly_figure_is_stored_as_png_json_and_html(home):
    fig = _plotly_figure()
    require(importlib.util.find_spec("kaleido") is not None,
            "kaleido is not installed (pip install -e '.[test]')")
    import plotly.io

    with nt.run() as run:
        ids = run.log_figure(fig, "scatter")
    rows = artifacts(run.run_id)
    assert set(rows) == {"scatter.png", "scatter.json", "scatter.html"}
    assert len(ids) == 3 and {r["kind"] for r in rows.values()} == {"figure"}
    assert stored(run.run_id, "scatter.png").startswith(PNG_SIGNATURE)
    again = plotly.io.from_json(stored(run.run_id, "scatter.json").decode())
    assert again.to_dict() == fig.to_dict()
    page = stored(run.run_id, "scatter.html").decode()
    assert "<html>" in page and "plotly" in page.lower()


def test_plotly_without_kaleido_keeps_json_and_html_and_warns(home, monkeypatch):
    fig = _plotly_figure()
    monkeypatch.setitem(sys.modules, "kaleido", None)  # what an environment without it has
    with nt.run() as run, pytest.warns(UserWarning, match="pip install kaleido"):
        run.log_figure(fig, "scatter")
    assert set(artifacts(run.run_id)) == {"scatter.json", "scatter.html"}


def test_a_plotly_figure_that_fails_to_render_is_a_clear_error(home):
    fig = _plotly_figure()
    fig.layout.template = None
    # A trace whose data plotly cannot serialise: validation is off, so to_json fails.
    fig.data[0]._props["x"] = object()  # type: ignore[index]
    with nt.run() as run, pytest.raises(InvalidInputError, match="plotly fig 'bad' failed"):
        run.log_figure(fig, "bad")


# -- images ----------------------------------------------------------------------------------

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("array, expected", [
    (RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8), None),  # RGB
    (RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8), None),  # RGBA
    (RNG.integers(0, 256, (5, 7), dtype=np.uint8), None),  # grey
    (RNG.integers(0, 256, (5, 7, 1), dtype=np.uint8), "squeeze"),  # grey with a channel
    (np.array([[0.0, 0.5], [1.0, 0.25]]), np.array([[0, 128], [255, 64]], np.uint8)),
    (np.array([[True, False]]), np.array([[255, 0]], np.uint8)),
    (np.array([[0, 200]], dtype=np.int64), np.array([[0, 200]], np.uint8)),
])
def test_image_arrays_are_stored_as_png_pixel_for_pixel(home, array, expected):
    with nt.run() as run:
        run.log_image(array, "img")
    want = (array[:, :, 0] if isinstance(expected, str) else
            array if expected is None else expected)
    assert np.array_equal(pixels(stored(run.run_id, "img.png")), want)
    assert artifacts(run.run_id)["img.png"]["kind"] == "image"


def test_pil_images_and_image_files(home, tmp_path):
    picture = Image.new("RGB", (6, 3), (10, 20, 30))
    png = tmp_path / "in.png"
    picture.save(png)
    jpeg = tmp_path / "in.jpg"
    picture.save(jpeg, quality=95)
    with nt.run() as run:
        run.log_image(picture, "pil")
        run.log_image(Image.new("CMYK", (2, 2)), "cmyk")  # converted to a mode PNG has
        run.log_image(png, "from-png.png")
        nt.log_image(str(jpeg), "from-jpeg")
    assert np.array_equal(pixels(stored(run.run_id, "pil.png")), np.asarray(picture))
    assert stored(run.run_id, "from-png.png") == png.read_bytes()  # a PNG is kept as it is
    converted = stored(run.run_id, "from-jpeg.png")
    assert converted.startswith(PNG_SIGNATURE)
    assert np.abs(pixels(converted).astype(int) - np.asarray(picture)).max() <= 3
    assert pixels(stored(run.run_id, "cmyk.png")).shape == (2, 2, 4)


@pytest.mark.parametrize("value, message", [
    (np.zeros((4, 4, 2), np.uint8), r"shape \(4, 4, 2\)"),
    (np.zeros((0, 4), np.uint8), r"shape \(0, 4\)"),
    (np.zeros(4, np.uint8), r"shape \(4,\)"),
    (np.array([[0.0, 2.0]]), r"float image array must hold finite values in \[0, 1\]"),
    (np.array([[np.nan]]), r"finite values"),
    (np.array([[-1, 3]]), r"integer image array must hold values in \[0, 255\]"),
    (np.array([[1j]]), "dtype complex128"),
    ([[0, 1]], "image must be a numpy array"),
    ("missing.png", "image path 'missing.png' is not a file"),
])
def test_bad_images_are_clear_errors_naming_the_argument(home, value, message):
    with nt.run() as run, pytest.raises(InvalidInputError, match=message):
        run.log_image(value, "x")


def test_a_file_that_is_not_an_image_is_a_clear_error(home, tmp_path):
    (tmp_path / "notes.txt").write_text("not pixels")
    with nt.run() as run, pytest.raises(InvalidInputError, match="not an image Pillow can read"):
        run.log_image(tmp_path / "notes.txt", "x")


@pytest.mark.parametrize("step", [-1, 1.5, True, "3"])
def test_image_step_must_be_a_non_negative_integer(home, step):
    with nt.run() as run, pytest.raises(InvalidInputError, match="step must be a non-negative"):
        run.log_image(np.zeros((2, 2), np.uint8), "x", step=step)


def test_images_over_steps_form_a_series(home):
    with nt.run() as run:
        for step in range(20):
            run.log_image(np.full((4, 4), step * 10, np.uint8), "samples", step=step)
    rows = artifacts(run.run_id)
    assert len(rows) == 20
    assert {r["step"] for r in rows.values()} == set(range(20))
    assert pixels(stored(run.run_id, "samples/step-7.png"))[0, 0] == 70


def test_encode_png_matches_pillow():
    array = RNG.integers(0, 256, (9, 5, 3), dtype=np.uint8)
    assert np.array_equal(pixels(encode_png(array)), array)


# -- tables ----------------------------------------------------------------------------------

def test_tables_from_pandas_polars_and_pyarrow_are_parquet(home):
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"], "c": [0.5, np.nan, 2.0]})
    with nt.run() as run:
        run.log_table(frame, "pandas")
        run.log_table(pl.from_pandas(frame), "polars.parquet")
        nt.log_table(pa.Table.from_pandas(frame), "arrow")
        run.log_table(pa.record_batch({"a": [1, 2]}), "batch")
    rows = artifacts(run.run_id)
    assert set(rows) == {"pandas.parquet", "polars.parquet", "arrow.parquet", "batch.parquet"}
    assert {r["kind"] for r in rows.values()} == {"table"}
    for name in ("pandas.parquet", "polars.parquet", "arrow.parquet"):
        back = pq.read_table(nt.artifact_path(run.run_id, name)).to_pandas()
        pd.testing.assert_frame_equal(back, frame)
    assert pq.read_table(nt.artifact_path(run.run_id, "batch.parquet"))["a"].to_pylist() == [1, 2]


def test_a_table_over_the_row_limit_is_refused(home):
    big = pa.table({"a": np.zeros(MAX_TABLE_ROWS + 1)})
    with nt.run() as run, pytest.raises(
            InvalidInputError, match=r"table 'big' has 100,001 rows, over the limit of 100,000"):
        run.log_table(big, "big")
    with nt.run() as run:
        run.log_table(big.slice(0, MAX_TABLE_ROWS), "at-limit")
    assert set(artifacts(run.run_id)) == {"at-limit.parquet"}


@pytest.mark.parametrize("value, message", [
    ({"a": [1]}, "table must be a pandas or polars DataFrame or a pyarrow Table, got dict"),
    (pd.Series([1, 2]), "got pandas.Series"),
    (pd.DataFrame({"a": [1, "x"]}), "has a column Parquet cannot store"),
])
def test_bad_tables_are_clear_errors(home, value, message):
    with nt.run() as run, pytest.raises(InvalidInputError, match=message):
        run.log_table(value, "t")


# -- text and dicts --------------------------------------------------------------------------

def test_text_is_stored_as_utf8(home):
    with nt.run() as run:
        run.log_text("héllo\n", "notes")
        nt.log_text("# Title", "README.md")
    rows = artifacts(run.run_id)
    assert rows["notes.txt"]["media_type"] == "text/plain"
    assert rows["README.md"]["media_type"] == "text/markdown"
    assert stored(run.run_id, "notes.txt") == "héllo\n".encode()
    assert {r["kind"] for r in rows.values()} == {"text"}


def test_text_must_be_a_string(home):
    with nt.run() as run, pytest.raises(InvalidInputError, match="text must be a str, got bytes"):
        run.log_text(b"x", "t")  # type: ignore[arg-type]


def test_dicts_as_json_or_yaml_by_suffix(home):
    config = {"lr": 0.1, "layers": [64, 32], "name": "ünï"}
    with nt.run() as run:
        run.log_dict(config, "config")
        run.log_dict(config, "config.yaml")
        nt.log_dict([1, 2], "list.yml")
        run.log_dict(config, "exact.JSON")
    rows = artifacts(run.run_id)
    assert set(rows) == {"config.json", "config.yaml", "list.yml", "exact.JSON"}
    assert json.loads(stored(run.run_id, "config.json")) == config
    assert yaml.safe_load(stored(run.run_id, "config.yaml")) == config
    assert yaml.safe_load(stored(run.run_id, "list.yml")) == [1, 2]
    assert rows["config.yaml"]["media_type"] == "application/yaml"
    assert {r["kind"] for r in rows.values()} == {"dict"}


@pytest.mark.parametrize("value, name, message", [
    ({"a": 1}, "config.toml", "name 'config.toml' must end in .json, .yaml or .yml"),
    ("text", "c.json", "obj must be a dict or a list, got str"),
    ({"a": object()}, "c.json", "obj holds a value JSON cannot store"),
    ({"a": float("nan")}, "c.json", "obj holds a value JSON cannot store"),
    ({"a": object()}, "c.yaml", "obj holds a value YAML cannot store"),
])
def test_bad_dicts_are_clear_errors(home, value, name, message):
    with nt.run() as run, pytest.raises(InvalidInputError, match=message):
        run.log_dict(value, name)


# -- all of them -----------------------------------------------------------------------------

LOGGERS = {
    "log_figure": lambda target: target.log_figure(plt.figure(), "f"),
    "log_image": lambda target: target.log_image(np.zeros((2, 2), np.uint8), "i"),
    "log_table": lambda target: target.log_table(pd.DataFrame({"a": [1]}), "t"),
    "log_text": lambda target: target.log_text("x", "t"),
    "log_dict": lambda target: target.log_dict({}, "d"),
}


@pytest.mark.parametrize("name", LOGGERS)
def test_logging_after_the_run_ended_or_without_a_run_is_refused(home, name):
    with nt.run() as run:
        pass
    with pytest.raises(RunFinishedError, match="already finished"):
        LOGGERS[name](run)
    with pytest.raises(ConflictError, match="no active run"):
        LOGGERS[name](nt)
    plt.close("all")


@pytest.mark.parametrize("name", LOGGERS)
def test_names_are_checked(home, name):
    with nt.run() as run, pytest.raises(InvalidInputError, match="name key is empty"):
        getattr(run, name)(*{"log_figure": (plt.figure(),), "log_image": (np.zeros((1, 1)),),
                             "log_table": (pd.DataFrame(),), "log_text": ("",),
                             "log_dict": ({},)}[name], "")
    plt.close("all")


def test_rich_artifacts_record_lineage_like_files(home):
    with nt.run() as run:
        image_id = run.log_image(np.zeros((2, 2), np.uint8), "i")
    assert image_id in nt.lineage(run.run_id, direction="down").ids("artifact")


# -- the run's static HTML ---------------------------------------------------------------------

def test_run_html_shows_everything_inline_without_script(home):
    hostile = '<script>alert("x")</script>'
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([1, 2])
    with nt.run(name="rich") as run:
        run.log_figure(fig, "curve")
        run.log_image(np.zeros((3, 3, 3), np.uint8), hostile)
        run.log_table(pd.DataFrame({hostile: [1, 2], "b": ["x<y", "z"]}), "scores")
        run.log_text(f"line one\n{hostile}", "notes")
        run.log_dict({"lr": 0.1}, "config.yaml")
        html = run._repr_html_()  # while the run is live: everything logged so far shows
    plt.close(fig)
    assert "<script" not in html.lower() and "<iframe" not in html.lower()
    assert html.count('src="data:image/png;base64,') == 2
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "x&lt;y" in html and "scores.parquet (2 rows × 2 columns)" in html
    assert "line one" in html and "lr: 0.1" in html
    assert not re.search(r"https?://", html)  # nothing fetched


def test_run_html_thins_a_long_series_and_names_big_files(home):
    with nt.run() as run:
        for step in range(20):
            run.log_image(np.full((2, 2), step, np.uint8), "samples", step=step)
        run.log_text("x" * 30_000, "long")
    html = run._repr_html_()
    assert "image samples (10 of 20 steps shown)" in html
    shown = re.findall(r"step (\d+)</figcaption>", html)
    assert shown[0] == "0" and shown[-1] == "19" and len(shown) == 10
    assert "… (truncated)" in html


# -- older stores ----------------------------------------------------------------------------

def test_a_version_5_store_gains_artifact_kinds(tmp_path):
    home = tmp_path / "store"
    home.mkdir()
    con = duckdb.connect(str(home / "nbtrail.duckdb"))
    for version, migration in enumerate(_schema.MIGRATIONS[:5], 1):
        migration(con)
        con.execute("INSERT INTO schema_info (version) VALUES (?)", [version])
    con.execute("INSERT INTO runs (run_id, experiment, status, start_time) "
                "VALUES ('01OLD', 'default', 'finished', now())")
    con.execute("INSERT INTO artifacts VALUES ('01OLD', 'old.txt', 'art_x', 'x', 1, "
                "'text/plain', now())")
    con.close()
    store = DuckDBStore(home)
    run = nt.Tracker(store).start_run(name="new")
    run.log_image(np.zeros((2, 2), np.uint8), "img", step=3)
    run.end()
    store.sync()
    rows = store.sql("select run_id, kind, step from artifacts").rows()
    assert set(rows) == {("01OLD", None, None), (run.run_id, "image", 3)}


def test_run_html_names_images_too_large_to_embed(home, monkeypatch):
    from nbtrail.tracking import _gallery

    monkeypatch.setattr(_gallery, "MAX_INLINE_BYTES", 100)
    with nt.run() as run:
        run.log_image(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), "noise")
        run.log_image(np.zeros((2, 2), np.uint8), "small")
    html = run._repr_html_()
    assert html.count("data:image/png") == 1
    assert f"too large to embed: nt.artifact_path(&#x27;{run.run_id}&#x27;, " \
           "&#x27;noise.png&#x27;)" in html


def test_run_html_shows_a_plotly_figure_as_its_png_and_lists_its_html(home):
    fig = _plotly_figure()
    require(importlib.util.find_spec("kaleido") is not None,
            "kaleido is not installed (pip install -e '.[test]')")
    with nt.run() as run:
        run.log_figure(fig, "scatter")
    html = run._repr_html_()
    assert html.count("data:image/png") == 1 and "<script" not in html.lower()
    assert "text/html, " in html and "scatter.html" in html
    assert "plotly.js" not in html.lower() and "Plotly.newPlot" not in html
