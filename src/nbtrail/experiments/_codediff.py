"""The code diff between two runs' snapshot commits, with a cell-level diff for notebooks.

Everything is read from git's object store (``diff-tree``, ``cat-file``): nothing is checked
out, and the user's index, HEAD and work tree are never touched. Only notebooks are read into
memory, and only up to a size limit; other files are described by git (line counts, binary
or not, blob sizes) without their content ever reaching Python.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from nbtrail import _html
from nbtrail.errors import GitError
from nbtrail.tracking._git import git_bytes

if TYPE_CHECKING:
    import polars

CellKind = Literal["added", "removed", "modified"]
FileStatus = Literal["added", "deleted", "modified", "renamed", "type-changed"]

_STATUS: dict[str, FileStatus] = {
    "A": "added",
    "D": "deleted",
    "M": "modified",
    "R": "renamed",
    "T": "type-changed",
}
_NULL_SHA = frozenset({"0" * 40, "0" * 64})
_REGULAR_MODES = frozenset({"100644", "100755"})
_GITLINK_MODE = "160000"
# In a replaced block of unequal length, cells pair up when their sources are this similar.
_PAIR_RATIO = 0.5
# Lines of a cell's source diff shown per cell by to_text.
_TEXT_DIFF_LINES = 20


@dataclass(frozen=True)
class CellChange:
    """One notebook cell added, removed or modified between two versions."""

    kind: CellKind
    index_a: int | None
    """Index of the cell in the old notebook; None for an added cell."""
    index_b: int | None
    """Index of the cell in the new notebook; None for a removed cell."""
    cell_type: str
    """``code``, ``markdown`` or ``raw``."""
    source_diff: str
    """Unified diff of the source; an added or removed cell's whole source, prefixed +/-."""
    outputs_changed: bool
    """The outputs differ (execution counts aside); output diffs are not shown."""


@dataclass(frozen=True)
class FileChange:
    """One file that differs between the two commits."""

    path: str
    """Path in the new commit (the old path for a deletion)."""
    old_path: str | None
    """Path in the old commit, for a rename."""
    status: FileStatus
    added: int | None
    """Lines added; None for a binary file."""
    deleted: int | None
    """Lines deleted; None for a binary file."""
    binary: bool
    size_a: int | None
    """Blob size in bytes in the old commit, as git reports it; None when absent."""
    size_b: int | None
    """Blob size in bytes in the new commit, as git reports it; None when absent."""
    cells: tuple[CellChange, ...] | None
    """Notebooks only: the cell-level diff; None otherwise, or when ``note`` says why not."""
    note: str | None = None


@dataclass(frozen=True)
class CodeDiff:
    """The files that differ between two commits, with cell-level diffs for notebooks.

    Shows as HTML in a notebook, converts with :meth:`to_polars`, prints with
    :meth:`to_text`. When no diff could be made, ``files`` is empty and ``note`` says why.
    """

    commit_a: str | None
    commit_b: str | None
    files: tuple[FileChange, ...] = ()
    note: str | None = None

    def to_polars(self) -> polars.DataFrame:
        """One row a file: path, old_path, status, line counts, sizes, cells changed, note."""
        import polars as pl

        schema = {
            "path": pl.String,
            "old_path": pl.String,
            "status": pl.String,
            "added": pl.Int64,
            "deleted": pl.Int64,
            "binary": pl.Boolean,
            "size_a": pl.Int64,
            "size_b": pl.Int64,
            "cells_changed": pl.Int64,
            "note": pl.String,
        }
        rows = [
            (
                f.path,
                f.old_path,
                f.status,
                f.added,
                f.deleted,
                f.binary,
                f.size_a,
                f.size_b,
                None if f.cells is None else len(f.cells),
                f.note,
            )
            for f in self.files
        ]
        return pl.DataFrame(rows, schema=schema, orient="row")

    def to_text(self) -> str:
        """A ``git diff --stat``-like summary, then each notebook's changed cells."""
        lines = [f"code diff {_short_sha(self.commit_a)}..{_short_sha(self.commit_b)}"]
        if self.note:
            lines.append(f"  note: {self.note}")
        if not self.files:
            if not self.note:
                lines.append("  no files changed")
            return "\n".join(lines)
        names = [_display_path(f) for f in self.files]
        width = max(len(n) for n in names)
        for name, f in zip(names, self.files, strict=True):
            lines.append(f" {name.ljust(width)} | {_stat(f)}")
        lines.append(" " + _totals(self.files))
        for f in self.files:
            if f.cells is None and f.note is None:
                continue
            lines.append("")
            lines.append(f"{f.path}: {_cells_summary(f)}")
            for change in f.cells or ():
                lines.append(f"  {_cell_title(change)}")
                diff_lines = change.source_diff.splitlines()
                lines.extend(f"    {d}" for d in diff_lines[:_TEXT_DIFF_LINES])
                if len(diff_lines) > _TEXT_DIFF_LINES:
                    lines.append(f"    … {len(diff_lines) - _TEXT_DIFF_LINES} more lines")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return _diff_html(self)


class _Cell(NamedTuple):
    cell_type: str
    source: str
    outputs: Any  # comparable by ==; None for cells without recorded outputs


def diff_cells(cells_a: Sequence[str], cells_b: Sequence[str]) -> tuple[CellChange, ...]:
    """Cell-level diff of two lists of cell sources (e.g. the cells a kernel executed).

    Example::

        >>> [c.kind for c in diff_cells(["a = 1", "b = 2"], ["a = 1", "b = 3", "c"])]
        ['modified', 'added']
    """
    a = [_Cell("code", src, None) for src in cells_a]
    b = [_Cell("code", src, None) for src in cells_b]
    matcher = difflib.SequenceMatcher(None, [c.source for c in a], [c.source for c in b],
                                      autojunk=False)
    changes: list[CellChange] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            changes.extend(_block(a, b, range(i1, i2), range(j1, j2)))
    return tuple(changes)


def diff_commits(
    root: str | os.PathLike[str],
    commit_a: str | None,
    commit_b: str | None,
    *,
    max_notebook_bytes: int = 20 << 20,
) -> CodeDiff:
    """The files changed from `commit_a` to `commit_b` in the git repository at `root`.

    Notebooks (``.ipynb``) of at most `max_notebook_bytes` get a cell-level diff. Never
    raises for a missing repository or commit: the result then has no files and a ``note``.

    Example::

        a, b = nt.get_run(id_a), nt.get_run(id_b)
        diff = diff_commits(b.git["root"], a.git["snapshot"], b.git["snapshot"])
        print(diff.to_text())
    """
    if commit_a == commit_b:  # both None, or the same commit
        return CodeDiff(commit_a, commit_b)
    if commit_a is None or commit_b is None:
        side = "first" if commit_a is None else "second"
        return CodeDiff(commit_a, commit_b, note=f"the {side} run has no code snapshot")
    if not Path(root).is_dir():
        return CodeDiff(commit_a, commit_b, note=f"no git repository at {os.fspath(root)}")
    try:
        return _diff_commits(root, commit_a, commit_b, max_notebook_bytes)
    except GitError as e:
        if "not a git repository" in str(e):
            return CodeDiff(commit_a, commit_b, note=f"no git repository at {os.fspath(root)}")
        return CodeDiff(commit_a, commit_b, note=f"cannot diff the code: {e}")


def _diff_commits(
    root: str | os.PathLike[str], commit_a: str, commit_b: str, max_notebook_bytes: int
) -> CodeDiff:
    shas: list[str] = []
    for commit, sha in zip((commit_a, commit_b), _resolve_commits(root, (commit_a, commit_b)),
                           strict=True):
        if sha is not None:
            shas.append(sha)
        else:
            return CodeDiff(
                commit_a,
                commit_b,
                note=f"commit {commit} is not in the repository at {os.fspath(root)} "
                "(was it garbage-collected, or is the repository elsewhere?)",
            )
    # Plumbing, not `git diff`: no user diff config (external drivers, textconv,
    # diff.relative) applies. Git decides binary-ness itself; blobs never reach Python.
    out = git_bytes(
        ["diff-tree", "-r", "-z", "-M", "--raw", "--numstat", "--no-abbrev", *shas], root
    )
    entries = _parse_diff_tree(out)
    sizes = _blob_sizes(
        root,
        [
            sha
            for e in entries
            for sha, mode in ((e.sha_a, e.mode_a), (e.sha_b, e.mode_b))
            if sha not in _NULL_SHA and mode != _GITLINK_MODE
        ],
    )
    files = []
    for e in entries:
        size_a = sizes.get(e.sha_a) if e.sha_a not in _NULL_SHA else None
        size_b = sizes.get(e.sha_b) if e.sha_b not in _NULL_SHA else None
        cells: tuple[CellChange, ...] | None = None
        note: str | None = None
        if _is_notebook(e):
            cells, note = _notebook_cells(root, e, size_a, size_b, max_notebook_bytes)
        files.append(
            FileChange(
                path=e.path,
                old_path=e.old_path,
                status=e.status,
                added=e.added,
                deleted=e.deleted,
                binary=e.binary,
                size_a=size_a,
                size_b=size_b,
                cells=cells,
                note=note,
            )
        )
    return CodeDiff(commit_a, commit_b, tuple(files))


def _resolve_commits(root: str | os.PathLike[str], commits: Sequence[str]) -> list[str | None]:
    """The full sha of each commit, None where the repository does not have it (one call)."""
    # A name with whitespace would split into two batch lines; git never names a commit so.
    valid = [c for c in commits if c and not any(ch.isspace() for ch in c)]
    found: dict[str, str] = {}
    if valid:
        names = "".join(f"{c}^{{commit}}\n" for c in valid).encode()
        lines = os.fsdecode(git_bytes(["cat-file", "--batch-check"], root, input=names))
        for commit, line in zip(valid, lines.splitlines(), strict=True):
            fields = line.split()
            if len(fields) == 3 and fields[1] == "commit":
                found[commit] = fields[0]
    return [found.get(c) for c in commits]


class _Entry(NamedTuple):
    path: str
    old_path: str | None
    status: FileStatus
    mode_a: str
    mode_b: str
    sha_a: str
    sha_b: str
    added: int | None
    deleted: int | None
    binary: bool


def _parse_diff_tree(out: bytes) -> list[_Entry]:
    """Parse ``diff-tree -z --raw --numstat``: all raw records, then all numstat records."""
    tokens = [os.fsdecode(t) for t in out.split(b"\0")]
    raw: list[tuple[str, str, str, str, str, str | None, str]] = []
    numstat: dict[str, tuple[int | None, int | None]] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token:
            i += 1
        elif token.startswith(":"):
            mode_a, mode_b, sha_a, sha_b, status = token[1:].split(" ")
            letter = status[0]
            if letter in "RC":
                old, new = tokens[i + 1], tokens[i + 2]
                raw.append((mode_a, mode_b, sha_a, sha_b, letter, old, new))
                i += 3
            else:
                raw.append((mode_a, mode_b, sha_a, sha_b, letter, None, tokens[i + 1]))
                i += 2
        else:
            added_text, deleted_text, path = token.split("\t", 2)
            if not path:  # a rename: old and new path follow as their own fields
                path = tokens[i + 2]
                i += 3
            else:
                i += 1
            numstat[path] = (
                None if added_text == "-" else int(added_text),
                None if deleted_text == "-" else int(deleted_text),
            )
    entries = []
    for mode_a, mode_b, sha_a, sha_b, letter, renamed_from, new in raw:
        added, deleted = numstat.get(new, (None, None))
        entries.append(
            _Entry(
                path=new,
                old_path=renamed_from,
                # Copies only appear with -C, which is not asked for.
                status=_STATUS.get(letter, "added" if letter == "C" else "modified"),
                mode_a=mode_a,
                mode_b=mode_b,
                sha_a=sha_a,
                sha_b=sha_b,
                added=added,
                deleted=deleted,
                binary=new in numstat and added is None,
            )
        )
    return entries


def _blob_sizes(root: str | os.PathLike[str], shas: Sequence[str]) -> dict[str, int]:
    """Sizes of blobs from one ``cat-file --batch-check``; missing objects are left out."""
    unique = list(dict.fromkeys(shas))
    if not unique:
        return {}
    names = "".join(f"{sha}\n" for sha in unique).encode()
    out = git_bytes(["cat-file", "--batch-check"], root, input=names)
    sizes = {}
    for line in os.fsdecode(out).splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2].isdigit():
            sizes[fields[0]] = int(fields[2])
    return sizes


def _is_notebook(e: _Entry) -> bool:
    if not e.path.lower().endswith(".ipynb"):
        return False
    return all(
        mode in _REGULAR_MODES or sha in _NULL_SHA
        for mode, sha in ((e.mode_a, e.sha_a), (e.mode_b, e.sha_b))
    )


def _notebook_cells(
    root: str | os.PathLike[str],
    e: _Entry,
    size_a: int | None,
    size_b: int | None,
    limit: int,
) -> tuple[tuple[CellChange, ...] | None, str | None]:
    """The cell-level diff of one changed notebook, or None and a note saying why not."""
    if e.sha_a == e.sha_b:  # a pure rename
        return (), "content unchanged"
    for size in (size_a, size_b):
        if size is not None and size > limit:
            return None, (
                f"notebook of {size:,} bytes is over the {limit:,}-byte limit for a cell diff "
                "(raise max_notebook_bytes to diff it)"
            )
    notebooks: list[Any] = []
    for sha, name in ((e.sha_a, e.old_path or e.path), (e.sha_b, e.path)):
        if sha in _NULL_SHA:
            notebooks.append(None)
            continue
        data = git_bytes(["cat-file", "blob", sha], root)
        try:
            notebooks.append(_read_notebook(data))
        except Exception as exc:  # arbitrary user data fed to nbformat: any failure is a note
            which = "old" if sha == e.sha_a else "new"
            return None, f"cannot read the {which} version of {name} as a notebook: {exc}"
    try:
        changes = _notebook_changes(notebooks[0], notebooks[1])
    except Exception as exc:  # nbdime on a notebook that nbformat read but is malformed
        return None, f"cannot diff the cells of {e.path}: {exc}"
    if not changes:
        return (), "no cell's source or outputs changed (metadata, execution counts or layout)"
    return changes, None


def _read_notebook(data: bytes) -> Any:
    """Parse a notebook as nbformat v4 (without schema validation: slow and too strict)."""
    import nbformat
    import nbformat.reader

    nb = nbformat.convert(nbformat.reader.reads(data), 4)
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise ValueError("it has no list of cells")
    for i, cell in enumerate(cells):
        if not (isinstance(cell, dict) and isinstance(cell.get("cell_type"), str)
                and isinstance(cell.get("source"), str)):
            raise ValueError(f"cell {i} has no cell_type or source")
        if cell["cell_type"] == "code" and not isinstance(cell.get("outputs", []), list):
            raise ValueError(f"cell {i} has outputs that are not a list")
        if cell["cell_type"] == "code":
            cell.setdefault("outputs", [])
    return nb


def _notebook_changes(nb_a: Any, nb_b: Any) -> tuple[CellChange, ...]:
    """Align the cells with nbdime, then describe each difference as a CellChange."""
    a = [_cell(c) for c in nb_a.cells] if nb_a is not None else []
    b = [_cell(c) for c in nb_b.cells] if nb_b is not None else []
    if nb_a is None or nb_b is None:
        return tuple(_block(a, b, range(len(a)), range(len(b))))

    import nbdime

    ops = []
    for entry in nbdime.diff_notebooks(nb_a, nb_b):
        if entry.key == "cells" and entry.op == "patch":
            ops = entry.diff
    changes: list[CellChange] = []
    removed: list[int] = []
    added: list[int] = []
    pos_a = pos_b = 0

    def flush() -> None:
        changes.extend(_block(a, b, removed, added))
        removed.clear()
        added.clear()

    # Ops are sorted by their index in the old list; cells between them are unchanged.
    for op in ops:
        if op.key > pos_a:
            flush()
            pos_b += op.key - pos_a
            pos_a = op.key
        if op.op == "addrange":
            added.extend(range(pos_b, pos_b + len(op.valuelist)))
            pos_b += len(op.valuelist)
        elif op.op == "removerange":
            removed.extend(range(pos_a, pos_a + op.length))
            pos_a += op.length
        elif op.op == "patch":
            flush()
            change = _pair(a, b, pos_a, pos_b)
            if change is not None:
                changes.append(change)
            pos_a += 1
            pos_b += 1
        else:
            raise ValueError(f"unexpected nbdime operation {op.op!r} on the cell list")
    flush()
    return tuple(changes)


def _cell(cell: Any) -> _Cell:
    outputs = None
    if cell["cell_type"] == "code":
        # A re-run notebook renumbers execute_result outputs; that alone is no change.
        outputs = [
            {k: v for k, v in out.items() if k != "execution_count"}
            if isinstance(out, dict) else out
            for out in cell.get("outputs", [])
        ]
    return _Cell(cell["cell_type"], cell["source"], outputs)


def _block(
    a: Sequence[_Cell], b: Sequence[_Cell], removed: Iterable[int], added: Iterable[int]
) -> list[CellChange]:
    """Changes for a run of cells `removed` from `a` and `added` in `b` at the same place.

    Same-length runs pair up one to one (a cell edited in place); otherwise cells pair in
    order when their types match and their sources are similar. Unpaired cells are added or
    removed. Changes come out in notebook order.
    """
    removed, added = list(removed), list(added)
    if len(removed) == len(added) and all(
        a[i].cell_type == b[j].cell_type for i, j in zip(removed, added, strict=True)
    ):
        pairs = list(zip(removed, added, strict=True))
    else:
        pairs = []
        start = 0
        for i in removed:
            for k in range(start, len(added)):
                j = added[k]
                if a[i].cell_type == b[j].cell_type and _similar(a[i].source, b[j].source):
                    pairs.append((i, j))
                    start = k + 1
                    break
    changes: list[CellChange] = []
    rest_a, rest_b = iter(removed), iter(added)
    ends: list[tuple[int | None, int | None]] = [*pairs, (None, None)]
    for end_a, end_b in ends:
        changes.extend(_single(a[x], "removed", x, None) for x in _until(rest_a, end_a))
        changes.extend(_single(b[y], "added", None, y) for y in _until(rest_b, end_b))
        if end_a is not None and end_b is not None:
            change = _pair(a, b, end_a, end_b)
            if change is not None:
                changes.append(change)
    return changes


def _until(it: Iterator[int], stop: int | None) -> Iterator[int]:
    """Items of `it` before `stop` (all of them when `stop` is None); consumes `stop`."""
    for x in it:
        if x == stop:
            return
        yield x


def _similar(x: str, y: str) -> bool:
    return difflib.SequenceMatcher(None, x, y, autojunk=False).ratio() >= _PAIR_RATIO


def _single(cell: _Cell, kind: CellKind, index_a: int | None, index_b: int | None) -> CellChange:
    sign = "+" if kind == "added" else "-"
    return CellChange(
        kind=kind,
        index_a=index_a,
        index_b=index_b,
        cell_type=cell.cell_type,
        source_diff="\n".join(sign + line for line in cell.source.splitlines()),
        outputs_changed=bool(cell.outputs),
    )


def _pair(a: Sequence[_Cell], b: Sequence[_Cell], i: int, j: int) -> CellChange | None:
    """The change from cell a[i] to b[j]; None when neither source nor outputs differ."""
    old, new = a[i], b[j]
    outputs_changed = old.outputs != new.outputs
    if old.source == new.source and not outputs_changed:
        return None
    diff = ""
    if old.source != new.source:
        lines = difflib.unified_diff(
            old.source.splitlines(), new.source.splitlines(), lineterm="", n=3
        )
        diff = "\n".join(list(lines)[2:])  # drop the ---/+++ header lines
    return CellChange("modified", i, j, new.cell_type, diff, outputs_changed)


# --- rendering -----------------------------------------------------------------------


def _short_sha(commit: str | None) -> str:
    return "(none)" if commit is None else commit[:12]


def _display_path(f: FileChange) -> str:
    return f"{f.old_path} => {f.path}" if f.old_path and f.old_path != f.path else f.path


def _stat(f: FileChange) -> str:
    if f.binary or f.added is None or f.deleted is None:
        return f"Bin {_size(f.size_a)} -> {_size(f.size_b)} bytes"
    bar = "+" * min(f.added, 40) + "-" * min(f.deleted, 40)
    return f"{f.added + f.deleted:>5} {bar}".rstrip()


def _size(size: int | None) -> str:
    return "-" if size is None else str(size)


def _totals(files: Sequence[FileChange]) -> str:
    added = sum(f.added or 0 for f in files)
    deleted = sum(f.deleted or 0 for f in files)
    n = len(files)
    return (
        f"{n} file{'s' if n != 1 else ''} changed, "
        f"{added} insertion{'s' if added != 1 else ''}(+), "
        f"{deleted} deletion{'s' if deleted != 1 else ''}(-)"
    )


def _cells_summary(f: FileChange) -> str:
    if f.cells is None:
        return f"no cell diff: {f.note}"
    if not f.cells:
        return f.note or "no cell changed"
    n = len(f.cells)
    return f"{n} cell{'s' if n != 1 else ''} changed"


def _cell_title(c: CellChange) -> str:
    if c.kind == "added":
        where = f"cell {c.index_b}"
    elif c.kind == "removed":
        where = f"cell {c.index_a}"
    else:
        where = f"cell {c.index_a}"
        if c.index_a != c.index_b:
            where += f" -> {c.index_b}"
    text = f"{c.kind} {where} ({c.cell_type})"
    if c.outputs_changed and c.kind == "modified":
        text += ", outputs changed"
    return text


_LINE_COLORS = {"+": "#e6ffed", "-": "#ffeef0", "@": "#f1f8ff"}


def _diff_lines_html(diff: str) -> str:
    if not diff:
        return ""
    rows = []
    for line in diff.splitlines():
        color = _LINE_COLORS.get(line[:1])
        style = f' style="background:{color}"' if color else ""
        rows.append(f"<span{style}>{_html.escape(line) or ' '}</span>")
    return (
        '<pre style="margin:2px 0 6px 0;padding:4px;border:1px solid #ddd;'
        'font-size:12px;line-height:1.35;white-space:pre-wrap">' + "\n".join(rows) + "</pre>"
    )


def _diff_html(d: CodeDiff) -> str:
    title = f"Code diff {_short_sha(d.commit_a)}..{_short_sha(d.commit_b)}"
    parts = [f"<div><strong>{_html.escape(title)}</strong>"]
    if d.note:
        parts.append(f"<div><em>{_html.escape(d.note)}</em></div>")
    if not d.files:
        if not d.note:
            parts.append("<div>no files changed</div>")
        parts.append("</div>")
        return "".join(parts)
    columns = ["path", "status", "+", "-", "size a", "size b", "cells changed", "note"]
    rows = [
        (
            _display_path(f),
            f.status,
            "bin" if f.added is None else f.added,
            "bin" if f.deleted is None else f.deleted,
            f.size_a,
            f.size_b,
            None if f.cells is None else len(f.cells),
            f.note,
        )
        for f in d.files
    ]
    parts.append(_html.table(columns, rows, caption=_totals(d.files), max_rows=200))
    for f in d.files:
        if f.cells is None and f.note is None:
            continue  # not a notebook
        parts.append(
            f"<details><summary>{_html.escape(f.path)}: {_html.escape(_cells_summary(f))}"
            "</summary>"
        )
        for change in f.cells or ():
            parts.append(f"<div>{_html.escape(_cell_title(change))}</div>")
            parts.append(_diff_lines_html(change.source_diff))
        parts.append("</details>")
    parts.append("</div>")
    return "".join(parts)
