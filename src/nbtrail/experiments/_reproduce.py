"""Reproduce a run: re-execute its notebook from its code snapshot and compare the metrics.

The snapshot is checked out into a separate, detached git worktree in a temporary folder,
so the user's checkout, index, HEAD and branches are never touched. The notebook runs
there with nbclient, logging into the same store; the run it makes is matched to the
original by name and order, and the latest metric values are compared within a tolerance.
``execute_snapshot`` is that re-execution alone, with papermill-style parameters:
``nt.retrain`` runs a champion's notebook on new data with it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .. import _html
from ..errors import InvalidInputError, ReproduceError
from ..tracking._git import _git, _run
from ..tracking._tracker import TAGS_VARIABLE
from ._gitops import SHORT_RUN_ID, require_snapshot

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store
    from ..store._records import Run

_METRIC_COLUMNS = ("key", "original", "reproduced", "abs_diff", "match")
# The tag a reproduced run carries: the id of the run it reproduces.
REPRODUCES_TAG = "nbtrail.reproduces"


@dataclass(frozen=True)
class Reproduction:
    """The outcome of ``nt.reproduce``: whether re-running the notebook gave the same metrics.

    ``metrics`` has one row a metric of either run: ``key``, ``original``, ``reproduced``,
    ``abs_diff``, ``match`` (a metric missing on one side is null there and does not match).
    Its truth value is ``matches``, so ``if nt.reproduce(run_id):`` reads as it should.
    """

    run_id: str
    """The run that was reproduced."""
    reproduced_run_id: str | None
    """The run the re-execution made; None when the notebook failed before starting it."""
    matches: bool
    """True when the notebook ran and every metric matches within the tolerance."""
    metrics: pl.DataFrame
    """One row a metric: key, original, reproduced, abs_diff, match."""
    error: str | None = None
    """Why it did not reproduce when the notebook failed or made no matching run."""
    worktree: str | None = None
    """The folder the snapshot was checked out to, when kept (``keep_worktree=True``)."""
    notebook: str = ""
    """The notebook's path inside the repository."""
    snapshot: str = ""
    """The snapshot commit that was executed."""
    rtol: float = 0.0
    """Relative tolerance used for the comparison."""
    atol: float = 0.0
    """Absolute tolerance used for the comparison."""
    run_name: str | None = None
    """The name of the original run."""

    def __bool__(self) -> bool:
        return self.matches

    @property
    def mismatched(self) -> list[str]:
        """Keys of the metrics that differ (or exist on one side only)."""
        return [row["key"] for row in self.metrics.to_dicts() if not row["match"]]

    def summary(self) -> str:
        """One sentence: reproduced or not, and why not."""
        who = f"run {self.run_id}" + (f" ({self.run_name})" if self.run_name else "")
        if self.error:
            return f"{who} does not reproduce: {self.error}"
        if self.matches:
            if self.metrics.height == 0:
                return (f"{who} reproduces as {self.reproduced_run_id}: the notebook ran; "
                        "the run logged no metrics to compare")
            return (f"{who} reproduces as {self.reproduced_run_id}: all {self.metrics.height} "
                    f"metrics match (rtol={self.rtol:g}, atol={self.atol:g})")
        bad = self.mismatched
        return (f"{who} does not reproduce as {self.reproduced_run_id}: {len(bad)} of "
                f"{self.metrics.height} metrics differ beyond rtol={self.rtol:g}, "
                f"atol={self.atol:g}: {', '.join(bad)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, ready for JSON."""
        return {
            "run_id": self.run_id, "run_name": self.run_name,
            "reproduced_run_id": self.reproduced_run_id, "matches": self.matches,
            "error": self.error, "notebook": self.notebook, "snapshot": self.snapshot,
            "rtol": self.rtol, "atol": self.atol, "worktree": self.worktree,
            "metrics": self.metrics.to_dicts(),
        }

    def to_text(self) -> str:
        """A summary line, where it ran, and the metric table (``nbtrail reproduce``)."""
        lines = [self.summary(),
                 f"notebook {self.notebook} at snapshot {self.snapshot[:12]}"]
        if self.worktree:
            lines.append(f"worktree kept at {self.worktree} "
                         f"(remove with: git worktree remove --force {self.worktree})")
        if self.metrics.height:
            rows = [[key, _number(a), _number(b), _number(d), "yes" if ok else "NO"]
                    for key, a, b, d, ok in self.metrics.select(_METRIC_COLUMNS).rows()]
            headers = list(_METRIC_COLUMNS)
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
            right = [False, True, True, True, False]
            for cells in (headers, *rows):
                lines.append("  ".join(c.rjust(w) if r else c.ljust(w)
                                       for c, w, r in zip(cells, widths, right, strict=True))
                             .rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = {
            "run": self.run_id, "name": self.run_name,
            "reproduced as": self.reproduced_run_id,
            "matches": "yes" if self.matches else "NO",
            "notebook": self.notebook, "snapshot": self.snapshot[:12],
            "tolerance": f"rtol={self.rtol:g}, atol={self.atol:g}",
        }
        if self.error:
            head["error"] = self.error
        if self.worktree:
            head["worktree"] = self.worktree
        parts = [_html.table(["", ""], list(head.items()), caption=self.summary(),
                             max_rows=20)]
        if self.metrics.height:
            parts.append(_html.table(
                list(_METRIC_COLUMNS),
                [[k, a, b, d, "yes" if ok else "NO"]
                 for k, a, b, d, ok in self.metrics.select(_METRIC_COLUMNS).rows()],
                caption="latest metric values", max_rows=60))
        return "".join(parts)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def reproduce(
    run_id: str,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    timeout: float | None = 600,
    keep_worktree: bool = False,
    kernel_name: str | None = None,
) -> Reproduction:
    """Re-execute a run's notebook from its code snapshot and compare the metrics.

    The snapshot is checked out into a temporary git worktree (your checkout is not
    touched), the notebook is executed there top to bottom with nbclient, logging into the
    same store, and the latest value of each metric of the new run is compared with the
    original's: equal within ``math.isclose(rel_tol=rtol, abs_tol=atol)``, NaN equals NaN,
    a metric on one side only is a difference. ``timeout`` is the seconds a single cell
    may run (None: no limit); ``kernel_name`` overrides the kernel named in the notebook.
    A notebook that fails gives ``matches=False`` with the failing cell in ``error``.

    Example:
        >>> result = nt.reproduce("01JD3Q8K4T")                  # doctest: +SKIP
        >>> result.matches, result.metrics                       # doctest: +SKIP
    """
    from ..tracking._tracker import get_store

    return reproduce_run(get_store(), run_id, rtol=rtol, atol=atol, timeout=timeout,
                         keep_worktree=keep_worktree, kernel_name=kernel_name)


def reproduce_run(
    store: Store,
    run_id: str,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    timeout: float | None = 600,
    keep_worktree: bool = False,
    kernel_name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Reproduction:
    """``reproduce`` against an explicit store; ``progress`` receives status lines."""
    for label, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, int | float) or not value >= 0:
            raise InvalidInputError(f"{label} must be a number >= 0, got {value!r}")
    if timeout is not None and (not isinstance(timeout, int | float) or not timeout > 0):
        raise InvalidInputError(f"timeout must be seconds > 0 or None, got {timeout!r}")

    original = store.get_run(run_id)
    execution = execute_snapshot(store, locate_notebook(original),
                                 tags={REPRODUCES_TAG: original.run_id}, timeout=timeout,
                                 kernel_name=kernel_name, keep_worktree=keep_worktree,
                                 progress=progress)
    reproduced = execution.run
    frame = _compare(original.metrics, reproduced.metrics if reproduced else {}, rtol, atol)
    matches = execution.error is None and bool(frame["match"].all())
    return Reproduction(
        run_id=original.run_id, reproduced_run_id=reproduced.run_id if reproduced else None,
        matches=matches, metrics=frame, error=execution.error, worktree=execution.worktree,
        notebook=execution.notebook, snapshot=execution.snapshot,
        rtol=float(rtol), atol=float(atol), run_name=original.name,
    )


@dataclass(frozen=True)
class Located:
    """A run whose notebook is in its code snapshot: what ``execute_snapshot`` runs."""

    run: Run
    root: str
    """The repository the snapshot commit is in."""
    snapshot: str
    notebook: str
    """The notebook's path inside the repository."""


@dataclass(frozen=True)
class Execution:
    """What re-executing a run's notebook gave."""

    notebook: str
    snapshot: str
    run: Run | None
    """The run of the execution that corresponds to the original, if it made one."""
    error: str | None
    """Why the notebook failed or made no such run, as one line."""
    worktree: str | None
    """The folder the snapshot was checked out to, when kept."""


def locate_notebook(run: Run) -> Located:
    """``run``'s snapshot and notebook; a clear error if it has no snapshot or notebook."""
    root, sha = require_snapshot(run)
    return Located(run, root, sha, _notebook_in_snapshot(run, root, sha))


def execute_snapshot(store: Store, located: Located, *, tags: dict[str, str],
                     parameters: dict[str, Any] | None = None, timeout: float | None = 600,
                     kernel_name: str | None = None, keep_worktree: bool = False,
                     purpose: str = "reproduce",
                     progress: Callable[[str], None] | None = None) -> Execution:
    """Execute the notebook of ``located`` from its snapshot, in a temporary worktree.

    Its runs log into ``store`` with ``tags``; ``parameters`` are set in a cell inserted
    after the one tagged ``parameters`` (papermill's convention). ``purpose`` names the
    temporary folder.
    """
    original, root, sha, notebook = (located.run, located.root, located.snapshot,
                                     located.notebook)
    # An empty folder of our own: `git worktree add` fills it, `git worktree remove` deletes it.
    worktree = Path(tempfile.mkdtemp(
        prefix=f"nbtrail-{purpose}-{original.run_id[:SHORT_RUN_ID]}-"))
    log = Path(tempfile.mkstemp(prefix="nbtrail-kernel-", suffix=".log")[1])
    added = done = False
    try:
        # No hooks: re-executing must not trigger the user's post-checkout side effects.
        _git(["-c", f"core.hooksPath={os.devnull}", "worktree", "add", "--detach",
              str(worktree), sha], root)
        added = True
        path = worktree / notebook
        if progress:
            progress(f"executing {notebook} of run {original.run_id} at snapshot "
                     f"{sha[:12]} in {worktree}")
        error = _execute(path, store=store, timeout=timeout, kernel_name=kernel_name, log=log,
                         tags=tags, parameters=parameters)
        made = _find_reproduced(store, original, path)
        done = True
    finally:
        log.unlink(missing_ok=True)
        # Kept only when asked and the result can say where: an error leaves nothing behind.
        if not (keep_worktree and done):
            _remove_worktree(root, worktree, added)

    if made is None and error is None:
        error = (f"the notebook ran but started no run named {original.name!r} "
                 "(does it still start that run? does it set nt.config home to another "
                 f"store than {store.location}?)")
    return Execution(notebook, sha, made, error, str(worktree) if keep_worktree else None)


def _notebook_in_snapshot(run: Run, root: str, sha: str) -> str:
    """The recorded notebook's path inside the repository, checked against the snapshot."""
    recorded = run.notebook or (run.code or {}).get("notebook")
    if not recorded:
        raise ReproduceError(
            f"run {run.run_id} was not started from a notebook (no notebook path was "
            "recorded: it ran in a script, or in a kernel that does not report its notebook "
            "file); reproduce re-executes notebooks only"
        )
    if os.path.isabs(recorded):
        # Inside the work tree the run was made in, which may be on another machine.
        origin = (run.git or {}).get("root") or root
        relative = os.path.relpath(Path(recorded).resolve(), Path(origin).resolve())
        if relative == ".." or relative.startswith(f"..{os.sep}"):
            raise ReproduceError(
                f"the notebook of run {run.run_id}, {recorded}, is outside its git work tree "
                f"{origin}, so it is not in the code snapshot; keep notebooks inside the "
                "repository to reproduce them"
            )
        candidates = [PurePosixPath(Path(relative).as_posix())]
    else:
        # A path relative to the Jupyter server's root: try it, then shorter tails of it.
        parts = PurePosixPath(Path(recorded).as_posix()).parts
        candidates = [PurePosixPath(*parts[i:]) for i in range(len(parts))]
    for candidate in candidates:
        if _run(["cat-file", "-e", f"{sha}:{candidate}"], root).returncode == 0:
            return str(candidate)
    raise ReproduceError(
        f"the notebook of run {run.run_id}, {recorded}, is not in its snapshot {sha[:12]} "
        f"(is it ignored by .gitignore?); see `git ls-tree -r --name-only {sha[:12]}` in {root}"
    )


def _execute(path: Path, *, store: Store, timeout: float | None, tags: dict[str, str],
             parameters: dict[str, Any] | None, kernel_name: str | None, log: Path
             ) -> str | None:
    """Run the notebook top to bottom; the failure as one line, or None on success."""
    try:
        import nbformat
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError as exc:  # pragma: no cover - core dependencies
        raise ReproduceError(
            f"reproducing needs nbclient and nbformat ({exc}); pip install nbclient nbformat"
        ) from None

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises several types for unreadable files
        return f"the notebook {path.name} could not be read: {_first_line(exc)}"
    if parameters:
        _inject(nb, parameters, path.name)

    # Checked before starting: jupyter_client would log a traceback for a missing kernel.
    name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        origin = "given" if kernel_name else f"named in {path.name}'s metadata"
        raise ReproduceError(
            f"the kernel {name!r} {origin} is not installed here; install it "
            "(python -m ipykernel install --user --name NAME) or pass kernel_name= / "
            "--kernel NAME"
        ) from None

    current: dict[str, int] = {"index": -1}

    def on_cell_start(cell: Any, cell_index: int) -> None:
        current["index"] = cell_index

    client = NotebookClient(
        nb, timeout=timeout, kernel_name=name, allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}}, on_cell_start=on_cell_start,
    )
    # The kernel inherits this environment: it logs into the same store, and knows its
    # notebook as the worktree's copy, so its runs can be told from everyone else's.
    # The interpreter's own folder first on PATH: a kernel spec that starts "python"
    # then runs in this environment, where nbtrail and the run's packages are installed.
    path_var = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {**os.environ, **store.environment(), "JPY_SESSION_NAME": str(path),
           "PATH": path_var, TAGS_VARIABLE: json.dumps(tags)}
    cells = len(nb.cells)
    try:
        # The kernel's own stderr (start-up warnings, a crash) goes to a file, not the
        # caller's terminal; it is quoted when the kernel dies.
        with log.open("wb") as stderr:
            client.execute(env=env, cwd=str(path.parent), stderr=stderr)
    except CellTimeoutError:
        return (f"cell {current['index'] + 1} of {cells} did not finish within {timeout:g} s "
                "(raise timeout= / --timeout)")
    except DeadKernelError as exc:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        return (f"the kernel died in cell {current['index'] + 1} of {cells}: "
                f"{tail[0] if tail else _first_line(exc)}")
    except CellExecutionError as exc:
        where = f"cell {current['index'] + 1} of {cells} failed"
        evalue = (exc.evalue or "").strip().splitlines()
        message = (f"{where}: {exc.ename}: {evalue[0] if evalue else ''}".rstrip(": ")
                   if exc.ename else f"{where}: {_first_line(exc)}")
        if exc.ename in ("FileNotFoundError", "ModuleNotFoundError"):
            message += (" (the snapshot holds only files git tracks or could track: ignored "
                        "files such as data folders are not in it; a module must be "
                        "installed in the kernel's environment)")
        return message
    return None


def _inject(nb: Any, parameters: dict[str, Any], name: str) -> None:
    """Insert a cell setting ``parameters`` right after the cell tagged ``parameters``.

    Papermill's convention: that cell holds the defaults, the inserted one (tagged
    ``injected-parameters``) overrides them. Values are written as Python literals.
    """
    import nbformat

    index = next((i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
                  and "parameters" in cell.get("metadata", {}).get("tags", [])), None)
    if index is None:
        raise ReproduceError(
            f"the notebook {name} has no cell tagged 'parameters', so "
            f"{', '.join(parameters)} cannot be passed to it; tag the cell that sets their "
            "defaults (cell toolbar: Add tag 'parameters')")
    source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)


def _find_reproduced(store: Store, original: Run, path: Path) -> Run | None:
    """The run the re-execution made that corresponds to ``original``.

    Runs of one execution share the notebook path (the worktree's copy is unique) and the
    writing process. The original is matched by its name and its position among the runs
    of that name its own kernel made; when the original kernel made more of them (cells
    run again by hand), the last one of the re-execution stands in.
    """
    made = store.notebook_runs(str(path)).rows()
    same_name = [rid for rid, name in made if name == original.name]
    if not same_name:
        return None
    before = ([] if original.notebook is None else
              [rid for rid, name in store.notebook_runs(original.notebook,
                                                        same_writer_as=original.run_id).rows()
               if name == original.name])
    position = before.index(original.run_id) if original.run_id in before else 0
    return store.get_run(same_name[min(position, len(same_name) - 1)])


def _same(a: float, b: float, rtol: float, atol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def _compare(original: dict[str, float], reproduced: dict[str, float],
             rtol: float, atol: float) -> pl.DataFrame:
    import polars as pl

    rows: dict[str, list[Any]] = {name: [] for name in _METRIC_COLUMNS}
    for key in sorted(set(original) | set(reproduced)):
        a, b = original.get(key), reproduced.get(key)
        ok = a is not None and b is not None and _same(a, b, rtol, atol)
        diff = None
        if a is not None and b is not None:
            diff = 0.0 if a == b or (math.isnan(a) and math.isnan(b)) else abs(a - b)
        for name, value in zip(_METRIC_COLUMNS, (key, a, b, diff, ok), strict=True):
            rows[name].append(value)
    schema = {"key": pl.String, "original": pl.Float64, "reproduced": pl.Float64,
              "abs_diff": pl.Float64, "match": pl.Boolean}
    return pl.DataFrame(rows, schema=schema)


def _remove_worktree(root: str, worktree: Path, added: bool) -> None:
    if added:
        # Twice forced also removes a worktree something locked meanwhile.
        _run(["worktree", "remove", "--force", "--force", str(worktree)], root)
    shutil.rmtree(worktree, ignore_errors=True)
    _run(["worktree", "prune"], root)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

