"""Every example notebook, executed, reads in nbconvert's HTML with all it displayed.

GitHub, nbconvert and VS Code show a notebook's saved outputs without a widget frontend:
an output holding a live widget view is blank there (nbconvert picks the widget over any
HTML fallback the output carries). Each notebook is executed
as a user would (here in a folder outside git, into a store of its own), converted with
nbconvert's ``HTMLExporter``, and every displayed output must be in the page. The saved
notebooks in ``notebooks/`` get the same check, since they are what GitHub shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbconvert import HTMLExporter

from .conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
EXECUTED_TEST = "test_executed_notebook_shows_every_output_in_html"


class _Visible(HTMLParser):
    """The text a reader sees, and the elements drawn: no script or style content."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def visible(markup: str) -> tuple[str, str]:
    """The visible text of ``markup`` with whitespace collapsed, and its element names.

    nbconvert re-serializes HTML (attribute order, ``<br/>``, entities), so outputs are
    compared by what they show, not byte for byte.
    """
    parser = _Visible()
    parser.feed(markup)
    parser.close()
    return (re.sub(r"\s+", " ", "".join(parser.text)).strip(), " ".join(parser.tags))


def visible_plain(text: str) -> str:
    """Plain text as it reads in a page: whitespace collapsed."""
    return re.sub(r"\s+", " ", text).strip()


def missing_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """One line for each displayed output that nbconvert's HTML of ``notebook`` lacks."""
    page, _ = HTMLExporter().from_notebook_node(notebook)
    page_text, page_tags = visible(page)
    problems = []
    if WIDGET_STATE in notebook.metadata.get("widgets", {}):
        problems.append("the notebook's metadata holds widget state: the HTML loads a widget "
                        "manager from a CDN")
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for number, cell in enumerate(code_cells):
        for output in cell.get("outputs", []):
            if output.output_type not in ("display_data", "execute_result"):
                continue
            where = f"code cell {number} ({cell.source.splitlines()[0][:60]!r})"
            data: dict[str, Any] = output.get("data", {})
            if WIDGET_VIEW in data:
                problems.append(f"{where}: a widget view ({sorted(data)}), blank without a "
                                "widget frontend")
            elif "text/html" in data:
                text, tags = visible(data["text/html"])
                if (text not in page_text) if text else (tags not in page_tags):
                    problems.append(f"{where}: its text/html is not in the page")
            elif "image/png" in data:
                if data["image/png"].strip()[:200] not in page:
                    problems.append(f"{where}: its image/png is not in the page")
            elif visible_plain(data.get("text/plain", "")) not in page_text:
                problems.append(f"{where}: its text/plain is not in the page")
    return problems


@pytest.fixture(scope="module")
def executed(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The selected notebooks executed by nbconvert in a folder outside git, two at a time."""
    selected = {item.callspec.params["name"] for item in request.session.items
                if getattr(item, "originalname", None) == EXECUTED_TEST}
    work = tmp_path_factory.mktemp("notebooks")
    env = {key: value for key, value in os.environ.items()
           if key not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")

    def execute(source: Path) -> nbformat.NotebookNode:
        folder = work / source.stem
        folder.mkdir()
        notebook = nbformat.read(source, as_version=4)
        notebook.metadata.pop("widgets", None)  # what the code shows now, not a saved state
        nbformat.write(notebook, folder / source.name)
        done = subprocess.run(
            [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
             "--inplace", "--ExecutePreprocessor.timeout=600", source.name],
            cwd=folder, env={**env, "NBTRAIL_HOME": str(folder / "store")},
            capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"{source.name} failed to execute:\n{done.stderr[-3000:]}")
        return nbformat.read(folder / source.name, as_version=4)

    sources = [path for path in NOTEBOOKS if path.name in selected]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip((p.name for p in sources), pool.map(execute, sources), strict=True))


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_executed_notebook_shows_every_output_in_html(
        executed: dict[str, nbformat.NotebookNode], name: str) -> None:
    notebook = executed[name]
    assert any(cell.get("outputs") for cell in notebook.cells), f"{name} displayed nothing"
    assert missing_outputs(notebook) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_notebook_shows_every_output_in_html(path: Path) -> None:
    assert missing_outputs(nbformat.read(path, as_version=4)) == []


def test_a_widget_only_output_is_caught() -> None:
    cell = nbformat.v4.new_code_cell("progress", outputs=[nbformat.v4.new_output(
        "display_data", data={WIDGET_VIEW: {"model_id": "abc", "version_major": 2,
                                            "version_minor": 0},
                              "text/plain": "progress"})])
    notebook = nbformat.v4.new_notebook(cells=[cell])
    [problem] = missing_outputs(notebook)
    assert "widget view" in problem
