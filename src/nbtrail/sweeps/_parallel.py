"""``n_jobs > 1``: trials in parallel worker processes, watched by the calling process.

Processes, not threads: CPU-bound objectives (scikit-learn, numpy loops) hold the GIL and
gain nothing from threads. Workers are forked where the platform can fork (Linux), so an
objective defined in a notebook cell works as it is; elsewhere they are spawned and the
objective, sampler and pruner must be picklable (defined in an importable module).

Each worker opens the study's storage itself and takes trials from a shared budget one
at a time, so ``n_trials`` is exact and a slow worker does not hold the others back. The
calling process runs no trials: it redraws the progress, syncs, and on an interrupt
stops the workers in order (each fails and records the trial it was running).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .._config import Settings, config
from ..errors import ProcessError
from ..tracking._tracker import get_tracker
from . import _storage

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

    from ..tracking._run import ActiveRun
    from ._storage import StorageSpec
    from ._sweep import Objective, Sweep

POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class _Job:
    """What a worker process needs to join the sweep (pickled under spawn)."""

    spec: StorageSpec
    name: str
    settings: Settings
    objective: Objective
    sampler: Any
    pruner: Any
    catch: tuple[type[Exception], ...]
    timeout: float | None
    parent: ActiveRun | str


def start_method() -> Literal["fork", "spawn"]:
    """``fork`` where available (objectives from notebook cells work), else ``spawn``."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def optimize_in_processes(sweep: Sweep, objective: Objective, *, n_trials: int | None,
                          timeout: float | None, n_jobs: int,
                          catch: tuple[type[Exception], ...]) -> None:
    """Run the trials in ``n_jobs`` processes; returns when all have ended."""
    assert sweep._spec is not None
    method = start_method()
    # Spelled out so that the type checker knows each context (BaseContext has no Process).
    context = (multiprocessing.get_context("fork") if method == "fork"
               else multiprocessing.get_context("spawn"))
    parent = sweep._session()
    job = _Job(spec=sweep._spec, name=sweep.name, settings=sweep._tracker.settings,
               objective=objective, sampler=sweep.study.sampler, pruner=sweep.study.pruner,
               catch=catch, timeout=timeout, parent=parent if method == "fork" else parent.run_id)
    if method == "spawn":
        _check_picklable(job)
    budget = context.Value("q", -1 if n_trials is None else n_trials)
    errors = context.SimpleQueue()
    workers = [context.Process(target=_work, args=(job, budget, errors),
                               name=f"nbtrail-sweep-{i}")
               for i in range(n_jobs if n_jobs > 0 else os.cpu_count() or 1)]
    sweep._tracker.store.writer().flush()  # nothing buffered is copied into the children
    for worker in workers:
        worker.start()
    try:
        _watch(sweep, workers, budget)
    except KeyboardInterrupt:
        _stop_workers(workers, budget)
        raise
    finally:
        for worker in workers:
            worker.join()
    if not errors.empty():
        raise errors.get()


def _watch(sweep: Sweep, workers: list[Any], budget: Synchronized[int]) -> None:
    """Redraw the progress (and sync) until every worker has ended."""
    while any(w.is_alive() for w in workers):
        if sweep._stop.is_set():
            _take_all(budget)
        for trial in sweep.study.get_trials(deepcopy=False):
            sweep._progress.add(trial, mine=sweep._mine(trial))
        sweep._view.update()
        if sweep.auto_sync:
            sweep.sync()
        multiprocessing.connection.wait([w.sentinel for w in workers], timeout=POLL_SECONDS)


def _stop_workers(workers: list[Any], budget: Synchronized[int]) -> None:
    """Interrupt the workers like Ctrl+C would, then wait; kill what does not stop."""
    _take_all(budget)
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGINT)
    for worker in workers:
        worker.join(STOP_GRACE_SECONDS)
        if worker.is_alive():
            worker.kill()  # its trial is failed by the next sync (its pid is gone)


def _claim(budget: Synchronized[int]) -> bool:
    """Take one trial from the shared budget (-1: unlimited, the timeout ends the sweep)."""
    with budget.get_lock():
        if budget.value == 0:
            return False
        if budget.value > 0:
            budget.value -= 1
        return True


def _take_all(budget: Synchronized[int]) -> None:
    with budget.get_lock():
        budget.value = 0


def _work(job: _Job, budget: Synchronized[int], errors: Any) -> None:
    """A worker process: run trials until the budget or the time is used up."""
    from ._sweep import Sweep

    # Its own process group: Ctrl+C in a terminal reaches only the parent, which then
    # interrupts each worker once (two interrupts would cut a worker's cleanup short).
    os.setpgid(0, 0)
    try:
        config.set(**dataclasses.asdict(job.settings))
        optuna = _storage.optuna()
        study = optuna.load_study(study_name=job.name, storage=job.spec.open(),
                                  sampler=job.sampler, pruner=job.pruner)
        study.sampler.reseed_rng()  # forked samplers would otherwise propose the same params
        sweep = Sweep(study, tracker=get_tracker(), spec=job.spec)
        sweep._parent = job.parent
        if _claim(budget):
            sweep._optimize_here(job.objective, n_trials=None, timeout=job.timeout,
                                 catch=job.catch, claim=lambda: _claim(budget))
    except KeyboardInterrupt:
        pass  # the trial under way is failed and recorded: a clean stop
    except BaseException as exc:
        _take_all(budget)  # as with n_jobs=1, an error the sweep does not catch ends it
        errors.put(_transportable(exc))
        sys.exit(1)


def _transportable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else its traceback as text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return ProcessError(f"a sweep worker process failed:\n{text}")
    return exc


def _check_picklable(job: _Job) -> None:
    try:
        pickle.dumps(job)
    except Exception as exc:
        from ..errors import InvalidInputError

        raise InvalidInputError(
            f"n_jobs > 1 starts worker processes with 'spawn' on this platform, which needs "
            f"the objective, sampler and pruner to be picklable ({exc}); define the objective "
            "in an importable module, or use n_jobs=1"
        ) from None
