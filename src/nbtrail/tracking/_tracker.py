"""The tracker: starts runs in one store and knows which run is active.

The fluent functions (``nt.run``, ``nt.log_metric``...) are thin wrappers over the
tracker of the configured store, so tests and tools can build a ``Tracker`` directly.
The active run lives in a context variable; because IPython runs each cell in a copy
of the context and threads start with an empty one, a process-wide stack of unfinished
runs is the fallback.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._config import Settings, config
from ..errors import InvalidInputError, NbtrailError
from ..store import CodeSnapshot, Environment, RunStart, Store, open_store
from ..store._audit import os_user
from ..store._records import GIT_CAPTURE_TAG
from ._run import ActiveRun

if TYPE_CHECKING:
    from ..store._journal import JournalWriter
    from ._environment import NotebookInfo
    from ._git import GitInfo

@dataclass(frozen=True)
class Capture:
    """What a run records about where it ran; shared by a parent and its children."""

    git: GitInfo | None
    notebook: NotebookInfo | None
    env_id: str | None
    code_id: str | None
    # Why git is None when it is, for the GIT_CAPTURE_TAG: "off", or "failed: <git's error>".
    git_tag: str | None = None


_active: ContextVar[ActiveRun | None] = ContextVar("nbtrail_active_run", default=None)
DEFAULT_EXPERIMENT = "default"


class Tracker:
    """Starts runs in one store; ``Tracker(nt.open_store(path))`` for explicit use."""

    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self.store = store
        self._settings = settings
        self._running: list[ActiveRun] = []
        self._tokens: dict[str, Token[ActiveRun | None]] = {}
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        """The settings given, else the current ``nt.config``: a later ``config.set`` counts."""
        return self._settings or config.current

    def start_run(
        self,
        name: str | None = None,
        experiment: str | None = None,
        tags: Mapping[str, Any] | None = None,
        *,
        parent: ActiveRun | str | None = None,
        nested: bool = True,
        start_time: float | None = None,
    ) -> ActiveRun:
        """Start a run and make it the active one (see ``nt.run``).

        ``start_time`` (seconds since the epoch) records a run that began earlier, such
        as a sweep trial another machine ran; the default is now.
        """
        from ulid import ULID

        from ._environment import seen_seeds
        from ._keys import check_key

        if name is not None:
            check_key("run name", name)
        if experiment is not None:
            check_key("experiment", experiment)
        if parent is None and nested:
            parent = self._parent_here()
        parent_id = parent.run_id if isinstance(parent, ActiveRun) else parent
        # Read before anything is written: a bad value must not leave half a run behind.
        # Children get none: their parent carries them.
        environment_tags = _tags_from_environment() if parent_id is None else {}
        run_id = str(ULID())
        now = time.time() if start_time is None else start_time
        writer = self.store.writer()

        # Children share their parent's capture: the code, environment and notebook
        # cannot have changed between a sweep and its trials, and a git snapshot per
        # trial would cost more than many trials.
        if isinstance(parent, ActiveRun) and parent._capture is not None:
            capture = parent._capture
        else:
            capture = self._capture(run_id, writer)
        git, notebook = capture.git, capture.notebook
        if experiment is None:
            if isinstance(parent, ActiveRun):
                experiment = parent.experiment
            elif git is not None:
                experiment = git.branch or f"detached-{(git.commit or 'nocommit')[:7]}"
            else:
                experiment = DEFAULT_EXPERIMENT

        writer.append(RunStart(
            run_id=run_id, name=name, experiment=experiment, parent_id=parent_id,
            status="running", start_time=now, git_root=git.root if git else None,
            git_commit=git.commit if git else None, git_branch=git.branch if git else None,
            git_dirty=git.dirty if git else None, git_snapshot=git.snapshot if git else None,
            notebook=notebook.path if notebook else None, env_id=capture.env_id,
            code_id=capture.code_id, seeds=seen_seeds(), hostname=socket.gethostname(),
            pid=os.getpid(), writer_id=writer.writer_id, user_name=os_user(),
        ).to_journal())
        run = ActiveRun(self, run_id, name=name, experiment=experiment, parent_id=parent_id)
        run._capture = capture
        run._thread = threading.current_thread()
        if parent_id:
            run._edge(parent_id, run_id, "parent", now)
        if capture.code_id:
            run._edge(capture.code_id, run_id, "code", now)
        if capture.env_id:
            run._edge(capture.env_id, run_id, "environment", now)
        if parent_id is None:
            tags = {**environment_tags, **(tags or {})}
        if capture.git_tag:
            tags = {**(tags or {}), GIT_CAPTURE_TAG: capture.git_tag}
        if tags:
            run.set_tags(tags)
        with self._lock:
            self._running.append(run)
            self._tokens[run_id] = _active.set(run)
        if self.settings.system_metrics:
            from ._system import start_sampling

            start_sampling(run, self.settings.system_metrics_interval)
        return run

    def active_run(self) -> ActiveRun | None:
        """The run logging calls go to: this context's, else the newest unfinished one."""
        run = _active.get()
        if run is not None and run.status == "running":
            return run
        with self._lock:
            return self._running[-1] if self._running else None

    def _parent_here(self) -> ActiveRun | None:
        """The default parent of a new run: this context's run, else this thread's newest.

        Never a run of another thread: threads that each start a run are independent
        unless given ``parent=`` explicitly.
        """
        run = _active.get()
        if run is not None and run.status == "running":
            return run
        here = threading.current_thread()
        with self._lock:
            return next((r for r in reversed(self._running) if r._thread is here), None)

    def run_ended(self, run: ActiveRun) -> None:
        """Called by ``ActiveRun.end``: forget the run and restore the previous active one."""
        from ._system import stop_sampling

        stop_sampling(run)
        with self._lock:
            if run in self._running:
                self._running.remove(run)
            token = self._tokens.pop(run.run_id, None)
        if token is not None:
            try:
                _active.reset(token)
            except ValueError:  # ended from another context (another cell or thread)
                if _active.get() is run:
                    _active.set(None)

    def first_time(self, node_id: str) -> bool:
        """True once per process for each id: rows like environments are written once."""
        with self._lock:
            if node_id in self._seen:
                return False
            self._seen.add(node_id)
            return True

    def close(self) -> None:
        """End unfinished runs as finished, flush the journal and fold it."""
        for run in list(self._running):
            run.end("finished")
        self.store.close()

    def _capture(self, run_id: str, writer: JournalWriter) -> Capture:
        """Record git state, environment and notebook for a new top-level run."""
        from ._environment import capture_environment, capture_notebook

        git, git_tag = self._capture_git(run_id)
        env_id = None
        if self.settings.capture_environment:
            env = capture_environment()
            blob = json.dumps(env, sort_keys=True)
            env_id = "env_" + hashlib.sha256(blob.encode()).hexdigest()[:32]
            if self.first_time(env_id):
                writer.append(Environment(
                    env_id=env_id, python=env["python"], platform=env["platform"],
                    packages=env["packages"],
                    details={k: v for k, v in env.items() if k != "packages"}).to_journal())
        notebook = capture_notebook()
        code_id = None
        if git is not None or notebook is not None:
            cells = notebook.cells if notebook else []
            ref = f"refs/nbtrail/runs/{run_id}" if git and git.snapshot else None
            code_blob = json.dumps([git.snapshot if git else None, cells])
            code_id = "code_" + hashlib.sha256(code_blob.encode()).hexdigest()[:32]
            if self.first_time(code_id):
                writer.append(CodeSnapshot(
                    code_id=code_id, git_root=git.root if git else None,
                    base_commit=git.commit if git else None,
                    snapshot_commit=git.snapshot if git else None, ref=ref,
                    notebook=notebook.path if notebook else None, cells=cells,
                ).to_journal())
        return Capture(git=git, notebook=notebook, env_id=env_id, code_id=code_id,
                       git_tag=git_tag)

    def _capture_git(self, run_id: str) -> tuple[GitInfo | None, str | None]:
        """The git state of the current folder, and why there is none (a GIT_CAPTURE_TAG)."""
        if not self.settings.capture_git:
            return None, "off"
        import dataclasses
        import warnings

        from ..errors import GitError
        from ._git import capture_git, snapshot_worktree

        try:
            info = capture_git(Path.cwd())
        except GitError as exc:
            # A repository git refuses to read (owned by another user: "dubious ownership",
            # as in containers) must not stop the training: the run goes on without git.
            warnings.warn(f"nbtrail: git state not recorded: {exc}", stacklevel=4)
            return None, f"failed: {str(exc).splitlines()[0]}"
        if info is None:
            return None, None
        try:
            sha = snapshot_worktree(info, f"refs/nbtrail/runs/{run_id}",
                                    f"nbtrail snapshot of run {run_id}")
        except GitError as exc:
            warnings.warn(f"nbtrail: could not snapshot the working tree: {exc}", stacklevel=4)
            return info, None
        return dataclasses.replace(info, snapshot=sha), None


_trackers: dict[Path | str, Tracker] = {}
# Trackers of store objects passed explicitly (``store=``), by object.
_other_trackers: dict[int, Tracker] = {}
TAGS_VARIABLE = "NBTRAIL_TAGS"


def _tags_from_environment() -> dict[str, Any]:
    """Tags for every top-level run of this process, from ``$NBTRAIL_TAGS`` (a JSON object).

    Lets a program that starts a kernel or script label the runs it makes, as
    ``nt.reproduce`` does with ``nbtrail.reproduces``.
    """
    text = os.environ.get(TAGS_VARIABLE)
    if not text:
        return {}
    try:
        tags = json.loads(text)
    except ValueError:
        tags = None
    if not isinstance(tags, dict):
        raise InvalidInputError(
            f"{TAGS_VARIABLE} must be a JSON object such as '{{\"team\": \"risk\"}}', "
            f"got {text!r}; fix or unset it")
    return tags
_trackers_lock = threading.Lock()


def get_tracker() -> Tracker:
    """The tracker of the store the current settings point at."""
    settings = config.current
    return tracker_for(settings.store or settings.resolve_home())


def tracker_for(location: Path | str) -> Tracker:
    """The tracker of the store at ``location`` (a folder or a store URL), made on first use."""
    key = location if isinstance(location, str) and "://" in location else Path(location)
    with _trackers_lock:
        tracker = _trackers.get(key)
        if tracker is None:
            tracker = _trackers[key] = Tracker(open_store(key))
        return tracker


def tracker_of(store: Store | None) -> Tracker:
    """The tracker that logs to ``store``; the configured store's when ``None``.

    Functions that take ``store=`` log through it: one tracker a store object, closed
    (its journal flushed and folded) at exit like the others.
    """
    if store is None:
        return get_tracker()
    with _trackers_lock:
        tracker = _trackers.get(store.home)
        if tracker is not None and tracker.store is store:
            return tracker
        # Kept apart from the configured stores' trackers: a store given once (read-only,
        # say) must not become the one nt.run() logs to.
        tracker = _other_trackers.get(id(store))
        if tracker is None:
            tracker = _other_trackers[id(store)] = Tracker(store)
        return tracker


def get_store() -> Store:
    """The store the current settings point at."""
    return get_tracker().store


def store_or_configured(store: Store | None) -> Store:
    """``store``, else the configured store (for the ``store=`` keyword of public functions)."""
    return store if store is not None else get_store()


def _all_trackers() -> list[Tracker]:
    return [*_trackers.values(), *_other_trackers.values()]


@atexit.register
def _close_all() -> None:
    for tracker in _all_trackers():
        try:
            tracker.close()
        except NbtrailError as exc:  # a full disk, say: the message says what was lost
            print(f"nbtrail: {exc}", file=sys.stderr)
        except Exception as exc:  # never turn interpreter exit into a traceback
            # The journal is flushed and complete, so nothing is lost: the next process
            # that reads or writes the store folds it.
            print(f"nbtrail: left the journal for the next process to fold ({exc})",
                  file=sys.stderr)


def _after_fork_in_child() -> None:
    global _trackers_lock
    _trackers_lock = threading.Lock()
    for tracker in _all_trackers():
        tracker.store.forget_after_fork()
        tracker._lock = threading.Lock()
        # The parent's runs stay active for logging through the forking thread's context,
        # but they are the parent's to end: the child's exit must not finish them.
        tracker._running.clear()
    # multiprocessing's forked workers leave through os._exit, which skips atexit: ask
    # multiprocessing to flush at the worker's end instead. Its finalizers are reset
    # after this hook runs, hence the indirection through its own after-fork hooks.
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.register_after_fork(_FORK_HOOK, _flush_at_worker_exit)


class _ForkHook:
    """A weak-referenceable token for multiprocessing's after-fork registry."""


_FORK_HOOK = _ForkHook()


def _flush_at_worker_exit(_: object = None) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(None, _close_all, exitpriority=100)


def flush_at_worker_exit() -> None:
    """In a multiprocessing worker, flush at its end: forked workers skip atexit."""
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is None:
        return
    # A run is unpickled before the worker's bootstrap, which clears finalizers and then
    # runs the after-fork hooks: register there. In a worker already running, now.
    mp_util.register_after_fork(_FORK_HOOK, _flush_at_worker_exit)
    if sys.modules["multiprocessing"].parent_process() is not None:
        _flush_at_worker_exit()


os.register_at_fork(after_in_child=_after_fork_in_child)


