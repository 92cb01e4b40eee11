"""Sweeps: an Optuna study whose every trial is an nbtrail run.

A sweep has one Optuna study (in Optuna's storage: the source of truth for the search)
and, in the nbtrail store, a run per session (each ``nt.sweep`` call or tracked study)
with one child run per trial. Trial runs carry the tags ``sweep_id`` (a random id kept in
the study's user attributes, the same on every machine) and ``trial`` (Optuna's trial
number): that pair identifies a trial in any store, which is how ``Sweep.sync`` records
each trial of a shared study exactly once. The tag keys, and the reading of trials back
from the store, live in ``_trials``.

How a trial run is written:

* the sweep's wrapper around the objective starts the run before the objective runs,
  makes it the active run (so ``nt.log_*`` calls land on it), flushes its start to the
  journal (so a ``sync`` in another process sees the trial is taken) and records
  ``trial.report`` values as the metric ``intermediate_value`` as they come;
* after Optuna has told the study the trial's outcome, a callback logs the params, the
  final value(s) and the state from the stored trial, and ends the run; what Optuna
  decided (a NaN value fails a trial) is what the run shows.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import json
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConflictError, InvalidInputError, MissingExtraError, NotFoundError
from ..tracking._tracker import Tracker, get_tracker
from . import _storage, _trials
from ._progress import NullView, Progress, View, make_view
from ._trials import INTERMEDIATE, SWEEP, SWEEP_ID, TRIAL, TRIAL_STATE

if TYPE_CHECKING:
    import optuna as optuna_module
    import polars as pl
    from optuna.trial import FrozenTrial, Trial

    from ..store._records import Run
    from ..tracking._run import ActiveRun, Status

Direction = Literal["minimize", "maximize"]
Objective = Callable[["Trial"], Any]

SWEEP_ID_ATTR = "nbtrail_sweep_id"  # study user attribute
TRIAL_ATTR = "nbtrail"  # trial user attribute on shared databases: run id, host, session
# Seconds between automatic syncs while a sweep on a shared database is watched.
SYNC_INTERVAL = 2.0
HOST = socket.gethostname()


@dataclass
class _OpenTrial:
    """A trial this process is running: its run and what the objective did."""

    run: ActiveRun
    result: Any = None
    error: str | None = None
    interrupted: bool = False


class Sweep:
    """An Optuna study tracked in nbtrail: each trial a run, nested under the sweep's run.

    Made by :func:`nbtrail.sweep` (which runs trials) or :func:`nbtrail.track_study` (for
    a study you built). Experimental: the API may change in a minor release.

    Example:
        >>> sweep = nt.sweep(objective, n_trials=50, name="rf-depth")   # doctest: +SKIP
        >>> sweep.best_run.params, sweep.trials().head()                # doctest: +SKIP
    """

    def __init__(self, study: optuna_module.Study, *, tracker: Tracker | None = None,
                 spec: _storage.StorageSpec | None = None) -> None:
        self.study = study
        self.name: str = study.study_name
        self._tracker = tracker or get_tracker()
        self._spec = spec
        self.sweep_id = _sweep_id(study)
        self.run: ActiveRun | None = None
        """The run of this session of the sweep, parent of the trial runs it records."""
        self._open: dict[int, _OpenTrial] = {}
        self._recorded: set[int] = set()
        self._lock = threading.RLock()
        self._last_sync = 0.0
        self._progress = Progress(self.name, [d.name.lower() for d in study.directions], None)
        self._view: View = NullView()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.auto_sync = False
        """Sync while trials run (a sweep on a shared database, watched from a notebook)."""
        self.role = "sweep"
        self._parent: ActiveRun | str | None = None
        # The per-trial user attribute costs a journal write (about as much as the rest
        # of nbtrail's per-trial work) and shows in the user's trials; only the sync of a
        # shared database needs it.
        shared = spec if spec is not None else _storage.spec_of(study._storage)
        self._tag_trials = shared is not None and shared.remote
        self._before_session: set[int] = set()
        self._session_active = False
        self._logged_best: int | None = None

    def __repr__(self) -> str:
        return f"<nbtrail Sweep {self.name!r} sweep_id={self.sweep_id} {self._progress.summary()}>"

    def _repr_html_(self) -> str:
        return self._progress.html()

    # -- running trials -------------------------------------------------------------------

    def optimize(self, objective: Objective, n_trials: int | None = None, *,
                 timeout: float | None = None, n_jobs: int = 1,
                 catch: Sequence[type[Exception]] | type[Exception] = (),
                 background: bool = False, progress: bool = True) -> Sweep:
        """Run trials of the study, each recorded as a run; arguments as in ``nt.sweep``."""
        check_run_arguments(objective, n_trials, timeout, n_jobs)
        catch = tuple(catch) if isinstance(catch, Sequence) else (catch,)
        if n_jobs != 1 and self._spec is None:
            raise InvalidInputError(
                "n_jobs > 1 needs a sweep whose storage every process can open: use "
                "nt.sweep(..., storage=None or a database URL), not a tracked study"
            )
        if self.running:
            raise ConflictError(f"sweep {self.name!r} is already running; call sweep.wait() "
                                "before starting more trials")
        self._stop.clear()
        self._error = None
        self._progress.total = n_trials
        self._progress.finished = False
        self._view = make_view(self._progress, progress)

        # A worker's store keeps only the worker's trials; the sweep's own store gathers all.
        gather = self.role == "sweep"

        def session() -> None:
            self._session(n_trials=n_trials, n_jobs=n_jobs, timeout=timeout)
            self._before_session = {t.number for t in self.study.get_trials(deepcopy=False)}
            self._session_active = True
            try:
                if gather:
                    self.sync()
                if n_jobs == 1:
                    self._optimize_here(objective, n_trials=n_trials, timeout=timeout,
                                        catch=catch)
                else:
                    from ._parallel import optimize_in_processes

                    optimize_in_processes(self, objective, n_trials=n_trials, timeout=timeout,
                                          n_jobs=n_jobs, catch=catch)
                if gather:
                    self.sync()
            except BaseException as exc:
                self._end_session(exc)
                raise
            self._end_session(None)

        if not background:
            session()
            return self

        def in_background() -> None:
            try:
                session()
            except BaseException as exc:  # kept for wait(), which raises it
                self._error = exc

        # The copied context carries nt.config overrides and the active run into the thread.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(in_background,),
                                        name=f"nbtrail-sweep-{self.name}", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """True while a background sweep is running trials."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> Sweep:
        """Wait for a background sweep to end; raises what stopped it, if anything did."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return self
            # Redrawn from the waiting cell too: notebook runners such as nbconvert only
            # take display updates from the cell that is executing, not from the thread.
            self._view.close()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self

    def stop(self) -> None:
        """Ask a running sweep to stop after the trials under way (from any thread)."""
        self._stop.set()

    def _optimize_here(self, objective: Objective, *, n_trials: int | None,
                       timeout: float | None, catch: tuple[type[Exception], ...],
                       claim: Callable[[], bool] | None = None) -> None:
        """Run trials in this process; ``claim`` takes the next trial from a shared budget."""
        callbacks: list[Callable[[Any, FrozenTrial], None]] = [self._after_trial]
        if claim is not None:
            callbacks.append(lambda study, _: None if claim() else study.stop())
        try:
            self.study.optimize(self._wrap(objective), n_trials=n_trials, timeout=timeout,
                                catch=catch, callbacks=callbacks)
        finally:
            self._close_open_trials()

    def _wrap(self, objective: Objective) -> Objective:
        optuna = _storage.optuna()

        def tracked_objective(trial: Trial) -> Any:
            run = self._tracker.start_run(
                f"trial-{trial.number}", parent=self._trial_parent(),
                tags={SWEEP: self.name, SWEEP_ID: self.sweep_id, TRIAL: trial.number})
            # Visible to other processes before Optuna can call the trial finished.
            self._tracker.store.writer().flush()
            entry = self._open[trial.number] = _OpenTrial(run)
            if self._tag_trials:  # for the store that syncs it on another machine
                trial.set_user_attr(TRIAL_ATTR, {"run_id": run.run_id, "host": HOST,
                                                 "session": run.parent_id})
            _record_reports(trial, run)
            try:
                entry.result = objective(trial)
            except optuna.TrialPruned:
                raise
            except BaseException as exc:
                entry.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
                entry.interrupted = isinstance(exc, KeyboardInterrupt)
                raise
            return entry.result

        return tracked_objective

    def _after_trial(self, study: Any, trial: FrozenTrial) -> None:
        """Optuna callback: record the finished trial, redraw, stop or sync when due."""
        with self._lock:
            entry = self._open.pop(trial.number, None)
            if entry is not None:
                self._end_trial_run(entry.run, trial, entry)
            elif trial.number not in self._recorded:
                self._record(trial)
        self._progress.add(trial, mine=self._mine(trial))
        self._view.update()
        if self._stop.is_set():
            study.stop()
        if self.auto_sync and time.monotonic() - self._last_sync > SYNC_INTERVAL:
            self.sync()

    def __call__(self, study: Any, trial: FrozenTrial) -> None:
        """Use the sweep as a callback of your own ``study.optimize(..., callbacks=[sweep])``.

        Each trial is recorded when it ends (its params, reports, values and state);
        ``nt.log_*`` calls in the objective only reach the trial's run with
        ``sweep.optimize``. Optuna tells a callback nothing when its loop is over, so the
        sweep's run is ended after each trial with the best so far; each later trial
        moves that end and the best on.
        """
        self._after_trial(study, trial)
        self._progress.add(trial, mine=True)  # the callback sees only its loop's trials
        with self._lock:
            if self.run is None:
                return
            if self.run.status == "running":
                self._end_session(None)
            else:
                self._move_session_end()

    def _close_open_trials(self) -> None:
        """End the runs of trials that did not reach the callback (an error, an interrupt).

        A trial Optuna still counts as running (interrupted before it was told) is
        failed in the study too, so that store and study agree and the sweep can resume.
        """
        optuna = _storage.optuna()
        with self._lock:
            for number, entry in list(self._open.items()):
                trial = self.study.get_trials(deepcopy=False)[number]
                if trial.state == optuna.trial.TrialState.RUNNING:
                    self.study.tell(number, state=optuna.trial.TrialState.FAIL,
                                    skip_if_finished=True)
                    trial = self.study.get_trials(deepcopy=False)[number]
                entry.error = entry.error or "interrupted before Optuna recorded the outcome"
                self._end_trial_run(entry.run, trial, entry)
                del self._open[number]

    # -- the session run --------------------------------------------------------------------

    def _session(self, **params: Any) -> ActiveRun:
        """The run the trial runs of this process hang under, started on first use."""
        with self._lock:
            if self.run is None or (params and self.run.status != "running"):
                self.run = self._tracker.start_run(self.name, tags={
                    SWEEP: self.name, SWEEP_ID: self.sweep_id, _trials.ROLE: self.role,
                    _trials.STORAGE: self._spec.describe() if self._spec else
                    _storage.describe_storage(self.study._storage),
                    _trials.DIRECTIONS: ",".join(self._progress.directions),
                    _trials.OBJECTIVES: json.dumps(self._value_names()),
                })
                self.run.log_params({
                    "sampler": type(self.study.sampler).__name__,
                    "pruner": type(self.study.pruner).__name__, **params,
                })
            return self.run

    def _mine(self, trial: FrozenTrial) -> bool:
        """True for a trial run by this session (in this process or its workers).

        Exact on shared databases (the trial names its session); on a local journal,
        any trial that started during the session counts.
        """
        info = trial.user_attrs.get(TRIAL_ATTR)
        if info:
            return self.run is not None and info.get("session") == self.run.run_id
        return self._session_active and trial.number not in self._before_session

    def _trial_parent(self) -> ActiveRun | str:
        """A worker process hangs its trials under the run of the sweep that started it."""
        return self._parent if self._parent is not None else self._session()

    def _end_session(self, error: BaseException | None) -> None:
        self._session_active = False
        self._progress.finished = True
        self._view.close()
        if self.run is None or self.run.status != "running":
            return
        best = self._progress.best()
        if best is not None:
            # At the trial's number: a callback sweep moves it on (_move_session_end).
            self.run.log_metric("best_value", best[1], step=best[0])
            self._logged_best = best[0]
            self.run.set_tag(_trials.BEST_TRIAL, best[0])
        if error is None:
            self.run.end("finished")
        elif isinstance(error, KeyboardInterrupt):
            self.run.end("killed", "KeyboardInterrupt: the sweep was interrupted")
        else:
            self.run.end("failed", f"{type(error).__name__}: {error}")

    def _move_session_end(self) -> None:
        """Re-end the (ended) session run of a callback sweep with the latest best.

        The run's ``ActiveRun`` refuses writes once ended, so the records go to the
        journal directly; a later end of a run replaces its earlier one.
        """
        from ..store import RunEnd, Tag

        assert self.run is not None
        writer = self._tracker.store.writer()
        now = time.time()
        best = self._progress.best()
        if best is not None and best[0] != self._logged_best:
            self._logged_best = best[0]
            writer.add_metric(self.run.run_id, "best_value", best[1], best[0], now)
            writer.append(Tag(self.run.run_id, _trials.BEST_TRIAL, str(best[0])).to_journal())
        writer.append(RunEnd(self.run.run_id, "finished", now).to_journal())
        writer.flush()

    # -- recording trials -------------------------------------------------------------------

    def _value_names(self) -> list[str]:
        return _trials.value_names(len(self.study.directions), self.study.metric_names)

    def _end_trial_run(self, run: ActiveRun, trial: FrozenTrial,
                       entry: _OpenTrial | None = None) -> None:
        """Log a finished trial's params, values and state to its run, and end the run."""
        state = trial.state.name.lower()
        values: Sequence[float] | None = trial.values
        error = entry.error if entry else None
        if values is None and entry is not None and entry.result is not None:
            values = _numbers(entry.result)  # what Optuna refused (NaN, inf) is kept
            if state == "fail" and error is None:
                error = (f"Optuna failed the trial: the objective returned {entry.result!r}; "
                         "return a finite number (one per objective)")
        if values:
            run.log_metrics(dict(zip(self._value_names(), values, strict=False)))
        _log_params(run, trial.params)
        tags = {TRIAL_STATE: state, **_trials.distributions_tag(trial.distributions)}
        limits = _trials.constraints(trial)
        if limits:
            run.log_metrics({_trials.CONSTRAINT_PREFIX + k: v for k, v in limits.items()})
            tags[_trials.FEASIBLE] = str(_trials.is_feasible(limits.values())).lower()
        run.set_tags(tags)
        status: Status
        if entry is not None and entry.interrupted:
            status = "killed"
        else:
            status = "failed" if state == "fail" else "finished"
        if status == "failed" and error is None:
            error = "the trial failed (its worker died or an error was not recorded)"
        end = trial.datetime_complete.timestamp() if trial.datetime_complete else None
        run.end(status, error if status != "finished" else None, end_time=end)
        self._recorded.add(trial.number)

    def _record(self, trial: FrozenTrial) -> None:
        """Record a finished trial that no run of this store followed (ran elsewhere)."""
        info = trial.user_attrs.get(TRIAL_ATTR) or {}
        tags = {SWEEP: self.name, SWEEP_ID: self.sweep_id, TRIAL: trial.number}
        if info:
            tags.update({_trials.WORKER_HOST: info.get("host"),
                         _trials.WORKER_RUN_ID: info.get("run_id")})
        start = _timestamp(trial.datetime_start)
        run = self._tracker.start_run(f"trial-{trial.number}", parent=self._trial_parent(),
                                      tags=tags, start_time=start)
        for step, value in sorted(trial.intermediate_values.items()):
            run.log_metric(INTERMEDIATE, value, step=step, timestamp=start)
        self._end_trial_run(run, trial)

    # -- syncing ------------------------------------------------------------------------------

    def sync(self) -> int:
        """Record the study's finished trials that are not in the store yet.

        Trials run by workers on other machines (``nbtrail sweep worker``) reach this
        store this way; a trial already recorded here — by this process, by another
        process on this store, or by an earlier sync — is never recorded twice. Also
        fails trials whose process on this machine died, in the study and the store.
        Returns the number of trials recorded.
        """
        with self._lock, self._sync_file_lock():
            self._last_sync = time.monotonic()
            self._fail_dead_trials()
            trials = self.study.get_trials(deepcopy=False)
            for trial in trials:
                self._progress.add(trial, mine=self._mine(trial))
            waiting = [t for t in trials if t.state.is_finished()
                       and t.number not in self._recorded and t.number not in self._open]
            if not waiting:
                return 0
            if self._tracker.store.exists():  # else nothing is logged anywhere yet
                self._recorded |= set(_trials.trial_runs(self._tracker.store, self.sweep_id))
            new = [t for t in waiting if t.number not in self._recorded]
            for trial in new:
                self._record(trial)
            self._tracker.store.writer().flush()
        self._view.update()
        return len(new)

    @contextlib.contextmanager
    def _sync_file_lock(self) -> Iterator[None]:
        """Serialise syncs of one sweep across the processes of this store."""
        folder = self._tracker.store.home / "sweeps"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{self.sweep_id}.sync-lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _fail_dead_trials(self) -> None:
        """Fail the study's running trials whose run the store marked killed.

        The store knows when a process that logged into it died (its journal lock is
        free while its runs are unfinished). Trials of processes that used another store
        are failed by Optuna's heartbeat on shared databases instead.
        """
        optuna = _storage.optuna()
        running = {t.number: t for t in self.study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if t.number not in self._open}
        if not running or not self._tracker.store.exists():
            return
        self._tracker.store.sync()  # a fold marks the runs of dead processes killed
        killed = _trials.trial_runs(self._tracker.store, self.sweep_id, status="killed")
        for number, run_id in killed.items():
            trial = running.get(number)
            if trial is not None:
                self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL,
                                skip_if_finished=True)
                self._annotate_dead_run(run_id, trial)

    def _annotate_dead_run(self, run_id: str, trial: FrozenTrial) -> None:
        """Give the run of a trial whose process died the trial's params and state.

        The store marks such a run killed; no ActiveRun is left to log to it, so the
        records go to the journal directly (params and tags are valid for an ended run).
        """
        from ..store import Param, Tag
        from ..tracking._keys import param_value

        writer = self._tracker.store.writer()
        for key, value in trial.params.items():
            writer.append(Param(run_id, key, *param_value(key, value)).to_journal())
        writer.append(Tag(run_id, TRIAL_STATE, "fail").to_journal())

    # -- results ------------------------------------------------------------------------------

    def trials(self) -> pl.DataFrame:
        """One row a trial, from the store: trial number, state, values, params, run.

        Columns: ``trial``, ``state`` (complete, pruned, fail), ``status`` of the run,
        the value column(s) (``value``, or ``values_0``… / the study's metric names),
        ``params.*``, every other metric the trials logged (``metrics.*``),
        ``duration`` in seconds, ``start_time``, ``run_id``. The same table the
        sidebar and the dashboard show (:func:`nbtrail.sweeps.read_sweep`).
        """
        return self._read().frame

    def _read(self) -> _trials.SweepTrials:
        self._tracker.store.writer().flush()
        return _trials.read_sweep(self.sweep_id, self._tracker.store)

    @property
    def best_run(self) -> Run:
        """The run of the best trial (single objective; see ``best_runs`` for several)."""
        if len(self.study.directions) > 1:
            raise InvalidInputError(
                f"sweep {self.name!r} has {len(self.study.directions)} objectives, so there is "
                "no single best trial; use sweep.best_runs (the Pareto front)"
            )
        try:
            best = self.study.best_trial
        except ValueError:
            raise NotFoundError(f"sweep {self.name!r} has no complete trial yet") from None
        return self._runs_of([best.number])[0]

    @property
    def best_runs(self) -> list[Run]:
        """The runs of the best trials: the Pareto front of a multi-objective sweep."""
        return self._runs_of([t.number for t in self.study.best_trials])

    def _runs_of(self, numbers: list[int]) -> list[Run]:
        self.sync()
        run_ids = _trials.trial_runs(self._tracker.store, self.sweep_id)
        return [self._tracker.store.get_run(run_ids[n]) for n in numbers]

    def importances(self, target: int | str = 0) -> dict[str, float]:
        """How much each parameter matters to the value, from Optuna (sums to 1).

        ``target`` picks the objective of a multi-objective sweep, by index or name. The
        trials are read from the store (after a sync), as the sidebar and the dashboard
        read them, with Optuna's default importance evaluator.
        """
        self.sync()
        return self._read().importances(target)

    # -- plots --------------------------------------------------------------------------------

    def plot_history(self, *, target: int | str = 0, backend: str = "matplotlib") -> Any:
        """The value of each trial and the best so far (Optuna's optimization history)."""
        return self._plot("plot_optimization_history", target, backend)

    def plot_parallel_coordinate(self, params: list[str] | None = None, *,
                                 target: int | str = 0, backend: str = "matplotlib") -> Any:
        """Each trial as a line through its parameter values and its value."""
        return self._plot("plot_parallel_coordinate", target, backend, params=params)

    def plot_importances(self, *, target: int | str = 0, backend: str = "matplotlib") -> Any:
        """Parameter importances as a bar chart."""
        return self._plot("plot_param_importances", target, backend)

    def _plot(self, name: str, target: int | str, backend: str = "matplotlib",
              **kwargs: Any) -> Any:
        """Call Optuna's plot; matplotlib renders as a static image in every notebook viewer."""
        optuna = _storage.optuna()
        if backend not in ("matplotlib", "plotly"):
            raise InvalidInputError(f"backend must be 'matplotlib' or 'plotly', got {backend!r}")
        if len(self.study.directions) > 1:
            index = _trials.objective_index(self._value_names(), target)
            pick = _trials.lower_is_better(self._progress.directions, index) \
                if name == "plot_param_importances" else (lambda trial: trial.values[index])
            kwargs.update(target=pick, target_name=self._value_names()[index])
        with warnings.catch_warnings():
            # Optuna's matplotlib plots are marked experimental; the plot itself is stable.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message=".*low `target` values")
            if backend == "matplotlib":
                module = optuna.visualization.matplotlib
                if not module.is_available():
                    raise MissingExtraError(
                        f"plots need matplotlib; run: {_storage.INSTALL_HINT}")
            else:
                module = optuna.visualization
                if not module.is_available():
                    raise MissingExtraError(
                        "backend='plotly' needs plotly; run: pip install plotly")
            return getattr(module, name)(self.study, **kwargs)


# -- helpers --------------------------------------------------------------------------------


def _record_reports(trial: Trial, run: ActiveRun) -> None:
    """Make ``trial.report`` also log the value to the trial's run, as it is reported.

    The hook is on this one trial object, which stays a genuine ``optuna.Trial``.
    """
    report = trial.report
    steps: set[int] = set()

    def report_and_log(value: float, step: int) -> None:
        report(value, step)  # Optuna validates, and ignores a step reported twice
        if step not in steps:
            steps.add(step)
            run.log_metric(INTERMEDIATE, float(value), step=int(step))

    report_and_log.__doc__ = report.__doc__
    trial.report = report_and_log  # type: ignore[method-assign]


def _log_params(run: ActiveRun, params: dict[str, Any]) -> None:
    for key, value in params.items():
        try:
            run.log_param(key, value)
        except InvalidInputError as exc:  # the objective logged the same key itself
            warnings.warn(f"nbtrail: trial param {key!r} not logged: {exc}", stacklevel=3)


def _numbers(result: Any) -> list[float] | None:
    items = result if isinstance(result, Sequence) and not isinstance(result, str) else [result]
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError):
        return None


def _timestamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _sweep_id(study: optuna_module.Study) -> str:
    """The sweep's id, kept in the study so every machine uses the same one."""
    found = study.user_attrs.get(SWEEP_ID_ATTR)
    if isinstance(found, str):
        return found
    from ulid import ULID

    study.set_user_attr(SWEEP_ID_ATTR, str(ULID()))
    # Two processes may have set it at once: the value that stuck is the one to use.
    reloaded = _storage.optuna().load_study(study_name=study.study_name, storage=study._storage)
    return str(reloaded.user_attrs[SWEEP_ID_ATTR])


def check_run_arguments(objective: Any, n_trials: int | None, timeout: float | None,
                        n_jobs: int) -> None:
    """Reject bad ``nt.sweep`` arguments with the fix."""
    if not callable(objective):
        raise InvalidInputError(
            f"objective must be a function taking an optuna.Trial, got "
            f"{type(objective).__name__}; e.g. def objective(trial): "
            "x = trial.suggest_float('x', 0, 1); return score(x)"
        )
    if n_trials is not None and (not isinstance(n_trials, int) or isinstance(n_trials, bool)
                                 or n_trials <= 0):
        raise InvalidInputError(f"n_trials must be a whole number of 1 or more, got {n_trials!r}")
    if n_trials is None and timeout is None:
        raise InvalidInputError("give n_trials or timeout (or both), or the sweep never ends")
    if timeout is not None and (not isinstance(timeout, int | float) or isinstance(timeout, bool)
                                or not math.isfinite(timeout) or timeout <= 0):
        raise InvalidInputError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or not (n_jobs >= 1 or
                                                                        n_jobs == -1):
        raise InvalidInputError(f"n_jobs must be 1 or more (or -1 for one per CPU), "
                                f"got {n_jobs!r}")
