"""``nt.sweep`` and ``nt.track_study``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..tracking._keys import check_key
from ..tracking._tracker import tracker_of
from . import _storage
from ._sweep import Direction, Objective, Sweep, check_run_arguments

if TYPE_CHECKING:
    import optuna as optuna_module

    from ..store import Store

DIRECTIONS = ("minimize", "maximize")


def sweep(
    objective: Objective,
    n_trials: int | None = 50,
    direction: Direction | None = None,
    *,
    name: str | None = None,
    directions: Sequence[Direction] | None = None,
    n_jobs: int = 1,
    timeout: float | None = None,
    storage: str | None = None,
    sampler: Any = None,
    pruner: Any = None,
    catch: Sequence[type[Exception]] | type[Exception] = (),
    background: bool = False,
    progress: bool = True,
    store: Store | None = None,
) -> Sweep:
    """Run an Optuna study where every trial is an nbtrail run, nested under the sweep's.

    ``objective`` takes a native ``optuna.Trial`` and returns the value (a sequence of
    values with ``directions=[...]``); ``nt.log_*`` calls inside it land on the trial's
    run, ``trial.report`` values become the metric ``intermediate_value``. The defaults are
    Optuna's: ``direction="minimize"`` and ``catch=()``, so a ported study behaves the same.

    * ``name``: the study's name; calling again with the same name (and storage) resumes
      the study. Default: the objective's name and the time, a new study each call.
    * ``storage``: ``None`` keeps the study in a journal file in the store
      (``<store>/sweeps/<name>.journal``, safe for many processes); a database URL such as
      ``"postgresql://user:pass@host/db"`` lets workers on other machines join with
      ``nbtrail sweep worker NAME --storage URL --objective module:function``.
    * ``n_jobs``: worker processes (not threads) running trials in parallel; ``-1`` is one
      per CPU. ``n_trials`` is the total over all of them.
    * ``catch``: exceptions that fail a trial and let the sweep go on, as in Optuna
      (default: none); anything else fails the trial, ends the sweep and is raised.
    * ``background=True`` returns at once while trials run in a thread (``sweep.wait()``
      waits, ``sweep.stop()`` stops after the trials under way).
    * ``progress``: a live widget in a notebook, a progress line on stderr in a script.
    * ``store``: where the runs are recorded (default: the configured store).

    Experimental: the API may change in a minor release.

    Example:
        >>> def objective(trial):                                       # doctest: +SKIP
        ...     depth = trial.suggest_int("max_depth", 2, 12)
        ...     return cross_val_score(RandomForestClassifier(max_depth=depth), X, y).mean()
        >>> sweep = nt.sweep(objective, n_trials=50, direction="maximize",  # doctest: +SKIP
        ...                  name="rf-depth")
        >>> sweep.best_run.params                                       # doctest: +SKIP
    """
    check_run_arguments(objective, n_trials, timeout, n_jobs)
    wanted = _directions(direction, directions)
    if name is None:
        name = f"{getattr(objective, '__name__', 'sweep')}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_key("sweep name", name)
    optuna = _storage.optuna()
    _check_instance(sampler, optuna.samplers.BaseSampler, "sampler", "optuna.samplers.TPESampler")
    _check_instance(pruner, optuna.pruners.BasePruner, "pruner", "optuna.pruners.MedianPruner")
    tracker = tracker_of(store)
    spec = _storage.storage_spec(storage, name, tracker.store)
    study = _create_study(optuna, name, spec.open(), wanted, sampler, pruner, spec.describe())
    tracked = Sweep(study, tracker=tracker, spec=spec)
    tracked.auto_sync = spec.remote
    return tracked.optimize(objective, n_trials, timeout=timeout, n_jobs=n_jobs, catch=catch,
                            background=background, progress=progress)


def track_study(study: optuna_module.Study, *, store: Store | None = None) -> Sweep:
    """Track a study you built: its finished trials are recorded now, new ones as they end.

    Run trials with ``sweep.optimize(objective, n_trials=...)`` (the objective's
    ``nt.log_*`` calls then land on the trial's run), or pass the sweep as a callback to
    your own ``study.optimize(objective, callbacks=[sweep])``. The runs go to ``store``
    (default: the configured store). Experimental.

    Example:
        >>> study = optuna.create_study(direction="minimize")          # doctest: +SKIP
        >>> sweep = nt.track_study(study)                              # doctest: +SKIP
        >>> study.optimize(objective, n_trials=20, callbacks=[sweep])  # doctest: +SKIP
    """
    optuna = _storage.optuna()
    _check_instance(study, optuna.Study, "study", "optuna.create_study(...)", required=True)
    tracked = Sweep(study, tracker=tracker_of(store))
    tracked.sync()
    return tracked


def _directions(direction: str | None, directions: Sequence[str] | None) -> list[str] | None:
    """The directions asked for; ``None`` when neither was given (resume as stored)."""
    if direction is not None and directions is not None:
        raise InvalidInputError(
            "give direction (one objective) or directions (several), not both"
        )
    wanted = [direction] if direction is not None else directions
    if wanted is None:
        return None
    if isinstance(wanted, str) or not isinstance(wanted, Sequence) or not wanted:
        raise InvalidInputError(
            f"directions must be a non-empty list such as ['maximize', 'minimize'], "
            f"got {wanted!r}"
        )
    for d in wanted:
        if d not in DIRECTIONS:
            raise InvalidInputError(
                f"direction {d!r} is not 'minimize' or 'maximize'"
            )
    return list(wanted)


def _check_instance(value: Any, kind: type, what: str, example: str, *,
                    required: bool = False) -> None:
    if (value is None and not required) or isinstance(value, kind):
        return
    raise InvalidInputError(
        f"{what} must be an instance of {kind.__module__}.{kind.__qualname__}, got "
        f"{type(value).__name__}; e.g. {what}={example}"
    )


def _create_study(optuna: Any, name: str, storage: Any, wanted: list[str] | None,
                  sampler: Any, pruner: Any, where: str) -> optuna_module.Study:
    """Create the study, or load it to resume; its directions must match the ones asked."""
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler,
                                  pruner=pruner)
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                    pruner=pruner, directions=wanted or ["minimize"],
                                    load_if_exists=True)
    stored = [d.name.lower() for d in study.directions]
    if wanted is not None and stored != wanted:
        raise InvalidInputError(
            f"sweep {name!r} already exists in {where} with direction(s) {stored}, not "
            f"{wanted}; resume it with the same direction(s), or choose another name"
        )
    return study
