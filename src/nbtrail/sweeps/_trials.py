"""What a sweep leaves in the store, and the one place it is read back.

A sweep writes tags on its runs (the keys below, defined only here). Everything that shows
a sweep reads them through :func:`list_sweeps` and :func:`read_sweep` — ``Sweep.trials()``,
the server extension's ``/sweeps`` endpoints, the dashboard's Sweeps tab — so the UI layers
only format. Reading needs neither the study's storage (a dashboard reads a store, not the
database a sweep ran on) nor Optuna, except for importances.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, NotFoundError
from ..tracking._keys import MAX_VALUE_LENGTH
from . import _storage

if TYPE_CHECKING:
    import polars as pl
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    from ..store._base import Store

# -- tag keys ------------------------------------------------------------------------------
# On every run of a sweep, session and trial runs alike:
SWEEP = "sweep"  # the study's name
SWEEP_ID = "sweep_id"  # a random id kept in the study, the same in every store
# On a session run (one per nt.sweep call or worker), the parent of its trial runs:
ROLE = "sweep_role"  # "sweep", or "worker" for `nbtrail sweep worker`
STORAGE = "sweep_storage"  # where the study is kept, without a password
DIRECTIONS = "directions"  # comma-separated, one per objective
OBJECTIVES = "objectives"  # JSON list: the metric name of each objective's value
BEST_TRIAL = "best_trial"
# On a trial run:
TRIAL = "trial"  # Optuna's trial number
TRIAL_STATE = "trial_state"  # one of STATES
DISTRIBUTIONS = "trial_distributions"  # JSON: Optuna's distribution of each param
WORKER_HOST = "worker_host"  # a trial run elsewhere and synced here: where it ran
WORKER_RUN_ID = "worker_run_id"  # ... and its run in that machine's store
# Metric of a trial run: each ``trial.report`` value at its step.
INTERMEDIATE = "intermediate_value"
# Metrics of a trial run of a constrained study: each constraint's value (feasible: <= 0).
CONSTRAINT_PREFIX = "constraint_"
FEASIBLE = "feasible"  # tag of such a run: "true" or "false"

STATES = ("complete", "pruned", "fail")
_SESSION_TAGS = (SWEEP, SWEEP_ID, ROLE, DIRECTIONS, OBJECTIVES, TRIAL, TRIAL_STATE)


def value_names(objectives: int, metric_names: list[str] | None = None) -> list[str]:
    """The metric names of a sweep's values: Optuna's metric names, else ``value``/``values_i``."""
    if metric_names:
        return list(metric_names)
    return ["value"] if objectives == 1 else [f"values_{i}" for i in range(objectives)]


def constraints(trial: FrozenTrial) -> dict[str, float]:
    """The constraint values of a trial (``{}`` when its study has none).

    Optuna 5 names them (``trial.set_constraint``, ``FrozenTrial.constraints``); earlier
    versions keep the list a sampler's ``constraints_func`` returned in a system attribute.
    """
    named = getattr(trial, "constraints", None)
    if isinstance(named, dict):
        return {str(k): float(v) for k, v in named.items()}
    listed = trial.system_attrs.get("constraints") or ()
    return {str(i): float(v) for i, v in enumerate(listed)}


def is_feasible(values: Iterable[float | None]) -> bool:
    """Optuna's rule: a trial is feasible when every constraint value is zero or less."""
    return all(v is None or v <= 0 for v in values)


def distributions_tag(distributions: dict[str, BaseDistribution]) -> dict[str, str]:
    """The tag that lets importances be computed from the store, if it fits in a tag."""
    from optuna.distributions import distribution_to_json

    text = json.dumps({name: distribution_to_json(d) for name, d in distributions.items()})
    return {DISTRIBUTIONS: text} if len(text) <= MAX_VALUE_LENGTH else {}


@dataclass(frozen=True)
class SweepSummary:
    """One sweep as the store knows it: counts of its trials by state, and when it ran."""

    sweep_id: str
    name: str
    directions: tuple[str, ...]
    """``"minimize"`` or ``"maximize"``, one per objective."""
    objectives: tuple[str, ...]
    """The metric that holds each objective's value on a trial run."""
    sessions: int
    """Runs of ``nt.sweep`` (and workers) that ran its trials."""
    trials: int
    complete: int
    pruned: int
    failed: int
    running: int
    """Runs of the sweep (sessions and trials) still running."""
    started: datetime | None
    last_run: datetime | None


@dataclass(frozen=True)
class BestTrial:
    """The best complete trial of a single-objective sweep."""

    trial: int
    run_id: str
    value: float
    params: dict[str, Any]


@dataclass(frozen=True)
class SweepTrials:
    """A sweep's trials read from the store (see :func:`read_sweep`)."""

    summary: SweepSummary
    frame: pl.DataFrame
    """One row a trial, ordered by number: ``trial``, ``state``, ``status`` of the run, the
    objective columns (``summary.objectives``), ``params.*``, the other metrics the trials
    logged (``metrics.*``), ``duration`` in seconds, ``start_time``, ``run_id``."""
    distributions: dict[int, str] = field(default_factory=dict, repr=False)
    """Trial number to the JSON of its params' distributions, where recorded."""

    @property
    def value_columns(self) -> list[str]:
        """The objective columns present in ``frame`` (none before a trial has a value)."""
        return [c for c in self.summary.objectives if c in self.frame.columns]

    def best(self) -> BestTrial | None:
        """The best complete trial; ``None`` with several objectives or no complete trial."""
        import polars as pl

        if len(self.summary.directions) != 1 or not self.value_columns:
            return None
        value = self.value_columns[0]
        done = self.frame.filter(pl.col("state") == "complete", pl.col(value).is_finite())
        # As Optuna's best_trial: in a constrained study, only a feasible trial can be best.
        limits = [c for c in done.columns if c.startswith(f"metrics.{CONSTRAINT_PREFIX}")]
        if limits:
            done = done.filter(pl.all_horizontal([pl.col(c).fill_null(0) <= 0 for c in limits]))
        if done.is_empty():
            return None
        row = done.sort(value, descending=self.summary.directions[0] == "maximize").row(
            0, named=True)
        return BestTrial(trial=row["trial"], run_id=row["run_id"], value=row[value],
                         params={k.removeprefix("params."): v for k, v in row.items()
                                 if k.startswith("params.") and v is not None})

    def importances(self, target: int | str = 0) -> dict[str, float]:
        """How much each parameter matters to one objective (Optuna's evaluator; sums to 1).

        Computed from the complete trials in the store with Optuna's default importance
        evaluator, on the distributions each trial recorded (inferred from the values for
        trials recorded before nbtrail kept them). Empty before two complete trials.
        """
        optuna = _storage.optuna()
        index = objective_index(self.summary.objectives, target)
        # A study in memory, made without optuna.create_study and its INFO line.
        storage = optuna.storages.InMemoryStorage()
        storage.create_new_study([optuna.study.StudyDirection[d.upper()]
                                  for d in self.summary.directions], study_name="importances")
        study = optuna.Study(study_name="importances", storage=storage)
        study.add_trials(self._complete_trials())
        if len(study.trials) < 2 or not any(t.params for t in study.trials):
            return {}
        with warnings.catch_warnings():
            # Optuna warns that a target is read as lower-is-better: lower_is_better does so.
            warnings.filterwarnings("ignore", message=".*low `target` values")
            target_of = None if len(self.summary.directions) == 1 else \
                lower_is_better(self.summary.directions, index)
            return optuna.importance.get_param_importances(study, target=target_of)

    def _complete_trials(self) -> list[FrozenTrial]:
        """The complete trials as Optuna trials, for Optuna's importance evaluators."""
        import polars as pl
        from optuna.distributions import json_to_distribution
        from optuna.trial import create_trial

        objectives = self.value_columns
        if len(objectives) != len(self.summary.objectives):
            return []
        done = self.frame.filter(pl.col("state") == "complete",
                                 *(pl.col(c).is_finite() for c in objectives))
        inferred = _inferred_distributions(done)
        trials = []
        for row in done.iter_rows(named=True):
            recorded = {name: json_to_distribution(text) for name, text in
                        json.loads(self.distributions.get(row["trial"], "{}")).items()}
            params = {k.removeprefix("params."): v for k, v in row.items()
                      if k.startswith("params.") and v is not None}
            trials.append(create_trial(
                params=params, values=[row[c] for c in objectives],
                distributions={name: recorded.get(name) or inferred[name] for name in params}))
        return trials


def objective_index(objectives: Sequence[str], target: int | str) -> int:
    """The index of an objective given by index or metric name, checked."""
    names = list(objectives)
    if isinstance(target, str):
        if target not in names:
            raise InvalidInputError(f"no objective {target!r}; objectives: {', '.join(names)}")
        return names.index(target)
    if not 0 <= target < len(names):
        raise InvalidInputError(f"objective index {target} out of range; the sweep has "
                                f"{len(names)} objective(s)")
    return target


def lower_is_better(directions: Sequence[str], index: int) -> Callable[[FrozenTrial], float]:
    """One objective as Optuna's importance evaluators read a target: negated if maximized."""
    sign = -1.0 if directions[index] == "maximize" else 1.0
    return lambda trial: sign * trial.values[index]


def _inferred_distributions(frame: pl.DataFrame) -> dict[str, BaseDistribution]:
    """Distributions spanning the values seen: numbers a range, anything else categories."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    found: dict[str, BaseDistribution] = {}
    for column in (c for c in frame.columns if c.startswith("params.")):
        series = frame[column].drop_nulls()
        name = column.removeprefix("params.")
        if series.dtype.is_integer():
            found[name] = IntDistribution(int(series.min()), int(series.max()))  # type: ignore[arg-type]
        elif series.dtype.is_float():
            found[name] = FloatDistribution(float(series.min()), float(series.max()))  # type: ignore[arg-type]
        else:  # the values themselves (bools, text…), in the order they first came
            found[name] = CategoricalDistribution(list(dict.fromkeys(series.to_list())))
    return found


def list_sweeps(store: Store | None = None) -> list[SweepSummary]:
    """Every sweep in the store, most recent activity first (no Optuna needed).

    Example:
        >>> [s.name for s in nbtrail.sweeps.list_sweeps()]               # doctest: +SKIP
    """
    return _summaries(_store(store), None)


def read_sweep(sweep_id: str, store: Store | None = None) -> SweepTrials:
    """One sweep's trials and summary, read from the store; an unknown id is a NotFoundError.

    Example:
        >>> found = nbtrail.sweeps.read_sweep(sweep.sweep_id)          # doctest: +SKIP
        >>> found.frame.head(), found.best(), found.importances()      # doctest: +SKIP
    """
    import polars as pl

    store = _store(store)
    summaries = _summaries(store, sweep_id)
    if not summaries:
        raise NotFoundError(f"no sweep {sweep_id!r} in the store at {store.location}; list "
                            "the sweeps with nbtrail.sweeps.list_sweeps()")
    summary = summaries[0]
    quoted = sweep_id.replace("'", "''")
    frame = store.runs(where=f"tags.{SWEEP_ID} = '{quoted}' and tags.{TRIAL} is not null")
    if frame.is_empty():
        return SweepTrials(summary, pl.DataFrame(schema={"trial": pl.Int64, "state": pl.String,
                                                         "status": pl.String,
                                                         "run_id": pl.String}))
    frame = frame.with_columns(pl.col(f"tags.{TRIAL}").cast(pl.Int64).alias("trial"),
                               pl.col(f"tags.{TRIAL_STATE}").alias("state")).sort("trial")
    distributions = {}
    if f"tags.{DISTRIBUTIONS}" in frame.columns:
        distributions = {n: text for n, text in frame.select("trial", f"tags.{DISTRIBUTIONS}")
                         .rows() if text is not None}
    values = [f"metrics.{n}" for n in summary.objectives]
    keep = ["trial", "state", "status", *(c for c in values if c in frame.columns),
            *(c for c in frame.columns if c.startswith("params.")),
            *(c for c in frame.columns if c.startswith("metrics.") and c not in values),
            "duration", "start_time", "run_id"]
    frame = frame.select(keep)
    empty = [c for c in frame.columns if c.startswith(("params.", "metrics."))
             and frame[c].null_count() == frame.height]
    frame = frame.drop(empty).rename({c: c.removeprefix("metrics.") for c in values
                                      if c in frame.columns and c not in empty})
    return SweepTrials(summary, frame, distributions)


def trial_runs(store: Store, sweep_id: str, *, status: str | None = None) -> dict[int, str]:
    """Trial number to run id of a sweep's trial runs (only runs with ``status``, if given)."""
    import polars as pl

    frame = store.run_tags([TRIAL], having={SWEEP_ID: sweep_id}).filter(
        pl.col(TRIAL).is_not_null())
    if status is not None:
        frame = frame.filter(pl.col("status") == status)
    return {int(number): run_id for number, run_id in frame.select(TRIAL, "run_id").rows()}


def _store(store: Store | None) -> Store:
    if store is not None:
        return store
    from ..tracking._tracker import get_tracker

    tracker = get_tracker()
    tracker.store.writer().flush()  # this process's own records count too
    return tracker.store


def _summaries(store: Store, sweep_id: str | None) -> list[SweepSummary]:
    """One summary a sweep (or only ``sweep_id``'s), from the tags of its runs."""
    import polars as pl

    tags = store.run_tags(_SESSION_TAGS, having={SWEEP_ID: sweep_id} if sweep_id else None)
    session = pl.col(ROLE).is_not_null()
    frame = (tags.filter(pl.col(SWEEP_ID).is_not_null())
             .group_by(pl.col(SWEEP_ID).alias("sweep_id"))
             .agg(pl.col(SWEEP).drop_nulls().first().alias("name"),
                  pl.col(DIRECTIONS).filter(session).drop_nulls().first().alias("directions"),
                  pl.col(OBJECTIVES).filter(session).drop_nulls().first().alias("objectives"),
                  session.sum().alias("sessions"),
                  pl.col(TRIAL).is_not_null().sum().alias("trials"),
                  *((pl.col(TRIAL_STATE) == state).sum().alias(column)
                    for state, column in (("complete", "complete"), ("pruned", "pruned"),
                                          ("fail", "failed"))),
                  (pl.col("status") == "running").sum().alias("running"),
                  pl.col("start_time").min().alias("started"),
                  pl.col("start_time").max().alias("last_run"))
             .sort("last_run", "sweep_id", descending=[True, False]))
    summaries = []
    for row in frame.iter_rows(named=True):
        # A store holding only trials synced from elsewhere has no session run to say.
        directions = tuple((row.pop("directions") or "maximize").split(","))
        objectives = row.pop("objectives")
        names = json.loads(objectives) if objectives else value_names(len(directions))
        summaries.append(SweepSummary(directions=directions, objectives=tuple(names), **row))
    return summaries
