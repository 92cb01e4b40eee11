"""``nbtrail sweep worker``: join a sweep from another machine (or terminal).

The worker loads the study from the shared storage, runs trials of the objective given
as ``module:function`` and records them in its own store (``--store``, else
``NBTRAIL_HOME``, else ``.nbtrail`` at the git root or in the current folder). The
notebook's ``sweep.sync()`` later records the same trials in the notebook's store.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInputError, NotFoundError
from ..tracking._tracker import tracker_of
from . import _storage
from ._sweep import Objective, Sweep

if TYPE_CHECKING:
    from ..store import Store

_OBJECTIVE_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def load_objective(spec: str) -> Objective:
    """Import ``module:function`` (the module is looked up from the current folder too)."""
    if not _OBJECTIVE_SPEC.fullmatch(spec):
        raise InvalidInputError(
            f"--objective must be 'module:function', e.g. 'train:objective' for the function "
            f"objective in train.py, got {spec!r}"
        )
    module_name, attribute = spec.split(":")
    # As `python -m` does: modules next to where the worker is started are importable.
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(
            f"cannot import module {module_name!r} for --objective {spec!r} ({exc}); run the "
            "worker from the folder that holds it, or put it on PYTHONPATH"
        ) from None
    found: object = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise InvalidInputError(f"module {module_name!r} has no {attribute!r} (from "
                                    f"--objective {spec!r})")
    if not callable(found):
        raise InvalidInputError(f"--objective {spec!r} names a {type(found).__name__}, not a "
                                "function taking an optuna.Trial")
    return found


def run_worker(name: str, storage: str | None, objective: str, *, n_trials: int | None,
               timeout: float | None, progress: bool = True,
               store: Store | None = None) -> Sweep:
    """Run trials of the existing sweep ``name`` in ``storage``; returns the sweep.

    The trials are recorded in ``store`` (default: the configured store).
    """
    func = load_objective(objective)
    optuna = _storage.optuna()
    tracker = tracker_of(store)
    spec = _storage.storage_spec(storage, name, tracker.store)
    try:
        study = optuna.load_study(study_name=name, storage=spec.open())
    except KeyError:
        raise NotFoundError(
            f"no sweep {name!r} in {spec.describe()}; start it first, e.g. "
            f"nt.sweep(objective, name={name!r}, storage=...) in the notebook"
        ) from None
    sweep = Sweep(study, tracker=tracker, spec=spec)
    sweep.role = "worker"
    if progress:  # the progress line says what Optuna's per-trial INFO lines would
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A worker on another machine fails a trial whose objective raises and goes on with
    # its share: one bad trial must not leave the notebook's sweep short of workers.
    return sweep.optimize(func, n_trials, timeout=timeout, progress=progress,
                          catch=(Exception,))
