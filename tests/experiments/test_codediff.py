from __future__ import annotations

import copy
import os
import tracemalloc
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from nbtrail.experiments._codediff import (
    CellChange,
    CodeDiff,
    FileChange,
    diff_cells,
    diff_commits,
)

from ..conftest import git, python_output


def commit_all(repo: Path, message: str = "commit") -> str:
    # No compression: the big binary test commits 60 MB of random bytes.
    git(repo, "-c", "core.looseCompression=0", "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def write(repo: Path, rel: str, content: str | bytes) -> None:
    target = repo / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)


def by_path(diff: CodeDiff) -> dict[str, FileChange]:
    return {f.path: f for f in diff.files}


# --- plain files ----------------------------------------------------------------------


def test_added_modified_deleted_renamed_files(repo: Path) -> None:
    old_train, new_train = "lr = 0.1\nepochs = 3\nfit()\n", "lr = 0.2\nepochs = 3\nfit()\nsave()\n"
    write(repo, "train.py", old_train)
    write(repo, "gone.txt", "bye\nbye\n")
    write(repo, "config.py", "debug = False\n")
    write(repo, "src/model.py", "".join(f"line {i}\n" for i in range(20)))
    a = commit_all(repo)
    write(repo, "train.py", new_train)
    (repo / "gone.txt").unlink()
    (repo / "config.py").unlink()
    (repo / "config.py").symlink_to("train.py")
    git(repo, "mv", "src/model.py", "src/net.py")
    write(repo, "src/net.py", (repo / "src/net.py").read_text() + "extra\n")
    write(repo, "new dir/new file.md", "# hello\n")
    b = commit_all(repo)

    diff = diff_commits(repo, a, b)

    assert diff.note is None
    assert (diff.commit_a, diff.commit_b) == (a, b)
    files = by_path(diff)
    assert set(files) == {
        "train.py", "gone.txt", "config.py", "src/net.py", "new dir/new file.md"
    }
    assert files["train.py"] == FileChange(
        "train.py", None, "modified", 2, 1, False, len(old_train), len(new_train), None
    )
    assert files["gone.txt"] == FileChange("gone.txt", None, "deleted", 0, 2, False, 8, None, None)
    renamed = files["src/net.py"]
    assert (renamed.status, renamed.old_path, renamed.added, renamed.deleted) == (
        "renamed", "src/model.py", 1, 0,
    )
    assert (renamed.size_a, renamed.size_b) == (150, 156)
    assert files["config.py"] == FileChange(
        "config.py", None, "type-changed", 1, 1, False, 14, len("train.py"), None
    )
    added = files["new dir/new file.md"]
    assert (added.status, added.added, added.deleted, added.size_a, added.size_b) == (
        "added", 1, 0, None, 8,
    )


def test_reversed_order_swaps_added_and_deleted(repo: Path) -> None:
    write(repo, "f.txt", "a\n")
    a = commit_all(repo)
    write(repo, "f.txt", "a\nb\nc\n")
    b = commit_all(repo)
    (f,) = diff_commits(repo, b, a).files
    assert (f.added, f.deleted, f.size_a, f.size_b) == (0, 2, 6, 2)


def test_big_binary_file_is_never_read_into_python(repo: Path) -> None:
    size = 30 << 20
    write(repo, "data/weights.bin", os.urandom(size))
    write(repo, "small.txt", "x\n")
    a = commit_all(repo)
    write(repo, "data/weights.bin", os.urandom(size + 1))
    b = commit_all(repo)

    tracemalloc.start()
    try:
        diff = diff_commits(repo, a, b)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    (f,) = diff.files
    assert (f.path, f.status, f.binary, f.added, f.deleted) == (
        "data/weights.bin", "modified", True, None, None,
    )
    assert (f.size_a, f.size_b) == (size, size + 1)
    assert f.cells is None
    # Every Python allocation during the diff, git's output included, stays tiny next to
    # the file: its content never crossed into this process.
    assert peak < 1 << 20, peak
    assert "Bin 31457280 -> 31457281 bytes" in diff.to_text()


def test_the_users_checkout_is_left_alone(repo: Path) -> None:
    write(repo, "a.py", "x = 1\n")
    write(repo, "nb.ipynb", notebook([code("print('one')", "c1")]))
    a = commit_all(repo)
    write(repo, "a.py", "x = 2\n")
    write(repo, "nb.ipynb", notebook([code("print('two')", "c1")]))
    b = commit_all(repo)
    # A dirty work tree, a staged change and an untracked file, on a detached HEAD.
    git(repo, "checkout", "-q", "--detach", a)
    write(repo, "a.py", "x = 3\n")
    write(repo, "staged.py", "s = 1\n")
    git(repo, "add", "staged.py")
    write(repo, "untracked.txt", "u\n")

    def state() -> tuple:
        return (
            (repo / ".git" / "index").read_bytes(),
            (repo / ".git" / "HEAD").read_bytes(),
            git(repo, "--no-optional-locks", "status", "--porcelain", "--untracked=all"),
            git(repo, "for-each-ref"),
            sorted(p.name for p in (repo / ".git").iterdir()),
            {p.name: p.read_bytes() for p in repo.iterdir() if p.is_file()},
        )

    before = state()
    diff = diff_commits(repo, a, b)
    assert {f.path for f in diff.files} == {"a.py", "nb.ipynb"}
    assert state() == before


# --- missing things: a note, never an exception -----------------------------------------


def test_missing_commit_gives_a_note(repo: Path) -> None:
    write(repo, "a.py", "x = 1\n")
    a = commit_all(repo)
    missing = "1234567890abcdef1234567890abcdef12345678"

    diff = diff_commits(repo, a, missing)

    assert diff.files == ()
    assert diff.note is not None
    assert missing in diff.note and str(repo) in diff.note and "garbage-collected" in diff.note
    assert missing in diff.to_text()
    assert "garbage-collected" in diff._repr_html_()
    assert diff.to_polars().height == 0
    # A name that is not a commit at all (here a blob) is missing as a commit too.
    blob = git(repo, "rev-parse", f"{a}:a.py")
    assert "not in the repository" in (diff_commits(repo, blob, a).note or "")


def test_missing_or_non_git_repository_gives_a_note(tmp_path: Path) -> None:
    sha = "1234567890abcdef1234567890abcdef12345678"
    gone = diff_commits(tmp_path / "nowhere", sha, sha[::-1])
    assert gone.files == () and gone.note == f"no git repository at {tmp_path / 'nowhere'}"
    plain = tmp_path / "plain"
    plain.mkdir()
    not_git = diff_commits(plain, sha, sha[::-1])
    assert not_git.files == () and not_git.note == f"no git repository at {plain}"


def test_none_or_equal_commits(repo: Path) -> None:
    write(repo, "a.py", "x = 1\n")
    a = commit_all(repo)
    assert diff_commits(repo, None, None) == CodeDiff(None, None, (), None)
    assert diff_commits(repo, a, a) == CodeDiff(a, a, (), None)
    one_sided = diff_commits(repo, None, a)
    assert one_sided.files == () and one_sided.note == "the first run has no code snapshot"
    assert diff_commits(repo, a, None).note == "the second run has no code snapshot"
    assert "no files changed" in diff_commits(repo, a, a).to_text()


# --- notebooks --------------------------------------------------------------------------


def code(source: str, cell_id: str, output: str | None = None, count: int | None = None):
    cell = v4.new_code_cell(source, id=cell_id, execution_count=count)
    if output is not None:
        cell.outputs = [v4.new_output("stream", name="stdout", text=output)]
    return cell


def markdown(source: str, cell_id: str):
    return v4.new_markdown_cell(source, id=cell_id)


def notebook(cells: list, *, ids: bool = True) -> str:
    nb = v4.new_notebook(cells=copy.deepcopy(cells))
    if not ids:
        nb.nbformat_minor = 4
        for cell in nb.cells:
            del cell["id"]
    return nbformat.writes(nb)


OLD_CELLS = [
    code("import numpy as np\nimport pandas as pd", "imports", count=1),
    markdown("# Training\nWe fit a model on the data.", "intro"),
    code("model = fit(X, y, learning_rate=0.1)\nscore = model.score(X, y)", "fit", count=2),
    code("print('debugging the model internals here')", "debug", "internals\n", count=3),
    code("print(f'score: {score:.3f}')", "show", "score: 0.910\n", count=4),
]
NEW_CELLS = [
    # Re-executed: only the execution count differs, which is no change.
    code("import numpy as np\nimport pandas as pd", "imports", count=7),
    markdown("# Training\nWe fit a model on the data.", "intro"),
    code("model = fit(X, y, learning_rate=0.2)\nscore = model.score(X, y)", "fit", count=8),
    code("print(f'score: {score:.3f}')", "show", "score: 0.930\n", count=9),
    markdown("## Conclusion\nThe higher rate wins.", "end"),
]
EXPECTED_CELLS = (
    CellChange(
        "modified", 2, 2, "code",
        "@@ -1,2 +1,2 @@\n"
        "-model = fit(X, y, learning_rate=0.1)\n"
        "+model = fit(X, y, learning_rate=0.2)\n"
        " score = model.score(X, y)",
        False,
    ),
    CellChange("removed", 3, None, "code", "-print('debugging the model internals here')", True),
    CellChange("modified", 4, 3, "code", "", True),
    CellChange("added", None, 4, "markdown", "+## Conclusion\n+The higher rate wins.", False),
)


@pytest.mark.parametrize("ids", [True, False], ids=["cell-ids", "nbformat-4.4"])
def test_notebook_cell_level_diff(repo: Path, ids: bool) -> None:
    write(repo, "notebooks/train.ipynb", notebook(OLD_CELLS, ids=ids))
    a = commit_all(repo)
    write(repo, "notebooks/train.ipynb", notebook(NEW_CELLS, ids=ids))
    b = commit_all(repo)

    (f,) = diff_commits(repo, a, b).files

    assert f.path == "notebooks/train.ipynb" and f.status == "modified" and not f.binary
    assert f.note is None
    assert f.cells == EXPECTED_CELLS
    assert f.size_a == len((repo / "notebooks/train.ipynb").read_bytes()) - (
        len(notebook(NEW_CELLS, ids=ids)) - len(notebook(OLD_CELLS, ids=ids))
    )


def test_notebook_added_renamed_and_deleted(repo: Path) -> None:
    write(repo, "old.ipynb", notebook(OLD_CELLS))
    write(repo, "gone.ipynb", notebook([code("x = 1", "c")]))
    a = commit_all(repo)
    git(repo, "mv", "old.ipynb", "renamed.ipynb")
    (repo / "gone.ipynb").unlink()
    write(repo, "fresh.ipynb", notebook([markdown("# New", "m"), code("y = 2", "c", "2\n")]))
    b = commit_all(repo)

    files = by_path(diff_commits(repo, a, b))

    renamed = files["renamed.ipynb"]
    assert (renamed.status, renamed.old_path) == ("renamed", "old.ipynb")
    assert (renamed.cells, renamed.note) == ((), "content unchanged")
    assert files["fresh.ipynb"].cells == (
        CellChange("added", None, 0, "markdown", "+# New", False),
        CellChange("added", None, 1, "code", "+y = 2", True),
    )
    assert files["gone.ipynb"].cells == (CellChange("removed", 0, None, "code", "-x = 1", False),)


def test_unparsable_notebook_gets_a_note(repo: Path) -> None:
    write(repo, "broken.ipynb", notebook([code("x = 1", "c")]))
    write(repo, "nocells.ipynb", notebook([code("x = 1", "c")]))
    a = commit_all(repo)
    write(repo, "broken.ipynb", '{"cells": [ this is not json\n')
    write(repo, "nocells.ipynb", '{"nbformat": 4, "nbformat_minor": 5, "cells": 3}\n')
    write(repo, "nosource.ipynb", '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, '
          '"cells": [{"cell_type": "code", "metadata": {}, "outputs": []}]}\n')
    b = commit_all(repo)

    files = by_path(diff_commits(repo, a, b))

    broken = files["broken.ipynb"]
    assert broken.cells is None
    assert broken.note is not None
    assert broken.note.startswith("cannot read the new version of broken.ipynb as a notebook")
    assert broken.added == 1 and broken.status == "modified"
    assert files["nocells.ipynb"].cells is None
    assert (files["nocells.ipynb"].note or "").startswith("cannot read the new version")
    nosource = files["nosource.ipynb"]
    assert (nosource.status, nosource.cells) == ("added", None)
    assert nosource.note == (
        "cannot read the new version of nosource.ipynb as a notebook: cell 0 has no "
        "cell_type or source"
    )


def test_notebook_over_the_size_limit_is_not_read(repo: Path) -> None:
    write(repo, "nb.ipynb", notebook([code("x = 1", "c")]))
    a = commit_all(repo)
    write(repo, "nb.ipynb", notebook([code("x = 2", "c")]))
    b = commit_all(repo)

    (f,) = diff_commits(repo, a, b, max_notebook_bytes=100).files

    assert f.cells is None
    assert f.note is not None and "over the 100-byte limit" in f.note
    assert (f.added, f.deleted) == (1, 1)


# --- diff_cells -------------------------------------------------------------------------


def test_diff_cells_identical_and_empty() -> None:
    assert diff_cells([], []) == ()
    assert diff_cells(["a = 1", "b = 2"], ["a = 1", "b = 2"]) == ()
    assert diff_cells([], ["a = 1\nb = 2"]) == (
        CellChange("added", None, 0, "code", "+a = 1\n+b = 2", False),
    )
    assert diff_cells(["a = 1"], []) == (CellChange("removed", 0, None, "code", "-a = 1", False),)


def test_diff_cells_pairs_replaced_cells_one_to_one() -> None:
    changes = diff_cells(["a = 1", "b = 2", "c = 3"], ["a = 1", "completely new", "c = 3"])
    assert changes == (
        CellChange("modified", 1, 1, "code", "@@ -1 +1 @@\n-b = 2\n+completely new", False),
    )


def test_diff_cells_pairs_similar_cells_in_an_uneven_block() -> None:
    old = ["load()", "model = fit(X, y, lr=0.1)", "print(model)", "save()"]
    new = ["load()", "X = scale(X)", "model = fit(X, y, lr=0.2)", "print(model.score())", "save()"]
    assert diff_cells(old, new) == (
        CellChange("added", None, 1, "code", "+X = scale(X)", False),
        CellChange("modified", 1, 2, "code",
                   "@@ -1 +1 @@\n-model = fit(X, y, lr=0.1)\n+model = fit(X, y, lr=0.2)", False),
        CellChange("modified", 2, 3, "code",
                   "@@ -1 +1 @@\n-print(model)\n+print(model.score())", False),
    )


def test_diff_cells_removed_and_added_in_place() -> None:
    old = ["a = 1", "import os", "b = 2"]
    new = ["a = 1", "b = 2", "plot(b)"]
    assert diff_cells(old, new) == (
        CellChange("removed", 1, None, "code", "-import os", False),
        CellChange("added", None, 2, "code", "+plot(b)", False),
    )


# --- rendering --------------------------------------------------------------------------


def two_commit_diff(repo: Path) -> CodeDiff:
    write(repo, "<b>odd.py", "x = 1\n")
    write(repo, "blob.bin", b"\0\1\2")
    write(repo, "nb.ipynb", notebook(OLD_CELLS))
    a = commit_all(repo)
    write(repo, "<b>odd.py", "x = '<script>alert(1)</script>'\n")
    write(repo, "blob.bin", b"\0\1\2\3")
    cells = [*NEW_CELLS, code("html = '<script>alert(2)</script>'", "xss")]
    write(repo, "nb.ipynb", notebook(cells))
    b = commit_all(repo)
    return diff_commits(repo, a, b)


def test_to_polars_columns(repo: Path) -> None:
    df = two_commit_diff(repo).to_polars()
    assert df.columns == [
        "path", "old_path", "status", "added", "deleted", "binary", "size_a", "size_b",
        "cells_changed", "note",
    ]
    rows = {r["path"]: r for r in df.iter_rows(named=True)}
    assert rows["nb.ipynb"]["cells_changed"] == 5
    assert rows["blob.bin"]["binary"] is True and rows["blob.bin"]["added"] is None
    assert (rows["blob.bin"]["size_a"], rows["blob.bin"]["size_b"]) == (3, 4)
    assert rows["<b>odd.py"]["cells_changed"] is None
    assert rows["<b>odd.py"]["added"] == 1
    empty = CodeDiff(None, None).to_polars()
    assert empty.columns == df.columns and empty.schema == df.schema


def test_html_escapes_everything(repo: Path) -> None:
    html = two_commit_diff(repo)._repr_html_()
    assert "<script" not in html and "<b>odd" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "&lt;b&gt;odd.py" in html
    assert "<details>" in html and "nb.ipynb" in html
    assert "+model = fit(X, y, learning_rate=0.2)" in html
    assert "<iframe" not in html


def test_to_text_summary(repo: Path) -> None:
    text = two_commit_diff(repo).to_text()
    lines = text.splitlines()
    assert lines[0].startswith("code diff ")
    assert any(line.startswith(" <b>odd.py ") and line.endswith("|     2 +-") for line in lines)
    assert any(line.startswith(" blob.bin ") and line.endswith("| Bin 3 -> 4 bytes")
               for line in lines)
    assert " 3 files changed, " in text
    assert "nb.ipynb: 5 cells changed" in lines
    assert "  modified cell 2 (code)" in lines
    assert "    +model = fit(X, y, learning_rate=0.2)" in lines
    assert "  removed cell 3 (code)" in lines
    assert "  modified cell 4 -> 3 (code), outputs changed" in lines
    assert "  added cell 4 (markdown)" in lines
    assert "  added cell 5 (code)" in lines


def test_importing_the_module_loads_no_notebook_or_dataframe_library() -> None:
    out = python_output("""
        import sys
        import nbtrail.experiments._codediff
        print([m for m in ("nbdime", "nbformat", "jsonschema", "polars") if m in sys.modules])
    """)
    assert out.strip() == "[]"


def test_notebook_with_only_execution_counts_changed(repo: Path) -> None:
    write(repo, "nb.ipynb", notebook([code("x = 1", "c", "1\n", count=1)]))
    a = commit_all(repo)
    write(repo, "nb.ipynb", notebook([code("x = 1", "c", "1\n", count=2)]))
    b = commit_all(repo)
    (f,) = diff_commits(repo, a, b).files
    assert (f.added, f.deleted) == (1, 1)
    assert f.cells == ()
    assert f.note == "no cell's source or outputs changed (metadata, execution counts or layout)"
    assert "nb.ipynb: no cell's source or outputs changed" in diff_commits(repo, a, b).to_text()
