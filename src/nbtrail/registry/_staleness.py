"""``nt.staleness``: whether a registered version is still fit for the data it sees now.

Four questions, each a criterion with its value, threshold and whether it fired: has its
metric on recent labelled data fallen since registration; is it old; have the inputs its
decisions rest on drifted (an important feature, or much of the data); and, when
``against`` is given, does another version do clearly better on the same rows. Any
criterion that fires makes the version stale. See docs/monitoring.md ("Staleness").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _html
from ..errors import InvalidInputError, NbtrailError
from ..monitor._drift import DriftReport
from ..monitor._drift import Thresholds as DriftThresholds
from ._policy import HIGHER_IS_BETTER

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store
    from ._state import Version

# Where a registration-time value of metric ``m`` is looked for in the version's metrics
# snapshot, in order: the key itself, then the usual held-out spellings (never a training
# figure, which flatters the model).
_SNAPSHOT_PREFIXES = ("", "val_", "valid_", "validation_", "test_")
# The column the model's predictions go in for drift (never a column of the user's data).
_PREDICTED = "__nbtrail_staleness_prediction__"


@dataclass(frozen=True)
class StalenessThresholds:
    """When a version counts as stale; any one criterion firing is enough.

    Attributes:
        metric_drop: How much worse the metric on recent data may be than at registration
            before it fires (``≥``). Absolute by default: 0.05 is five points of accuracy,
            AUC, F1 or R²; with ``relative`` it is a share of the registration value
            (0.05 = 5 %), the sensible choice for errors (RMSE, MAE, MSE, log loss) whose
            scale depends on the target.
        relative: Read ``metric_drop`` and ``challenger_margin`` as shares of the
            reference value instead of absolute differences.
        max_age_days: Days since registration at or after which the version is stale.
        importance: Share of the model's total feature importance (``feature_importances_``,
            else ``|coef_|``) at or above which a feature is important; one important
            feature that drifted fires. A model that exposes no importance makes every
            feature important.
        drift_share: Share of the compared features that drifted at or above which the
            data as a whole has drifted.
        challenger_margin: How much better ``against`` must score on the recent data
            (``≥``, in the same units as ``metric_drop``) to fire.
        drift: When one feature counts as drifted (see ``nbtrail.monitor.Thresholds``).
    """

    metric_drop: float = 0.05
    relative: bool = False
    max_age_days: float = 180.0
    importance: float = 0.1
    drift_share: float = 0.5
    challenger_margin: float = 0.05
    drift: DriftThresholds = field(default_factory=DriftThresholds)

    def __post_init__(self) -> None:
        for name in ("metric_drop", "max_age_days", "importance", "drift_share",
                     "challenger_margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"staleness threshold {name} must be a number ≥ 0, "
                                        f"got {value!r}")
        if not isinstance(self.relative, bool):
            raise InvalidInputError(f"staleness threshold relative must be True or False, "
                                    f"got {self.relative!r}")


@dataclass(frozen=True)
class Criterion:
    """One staleness criterion: what was measured, against what, and whether it fired."""

    name: str
    value: float | None
    """``None`` when it could not be measured (``detail`` says why); it then never fires."""
    threshold: float
    fired: bool
    detail: str


@dataclass(frozen=True)
class StalenessReport:
    """Whether a registered version is stale, criterion by criterion.

    ``stale`` is True when any criterion fired; ``reasons`` says which, one line each.
    Shows as HTML in a notebook; ``to_polars()`` gives one row a criterion and
    ``to_dict()`` the whole report.
    """

    ref: str
    version: str
    """The version ``ref`` named when checked (``churn/3``)."""
    model_id: str
    metric: str
    metric_source: str
    """Why this metric: ``metric=``, the alias's policy, or the default for the model."""
    current: float
    """The metric on the recent labelled rows."""
    registered: float | None
    registered_source: str
    """Where ``registered`` comes from: a key of the metrics snapshot, or the training sample."""
    rows: int
    registered_at: dt.datetime
    checked_at: dt.datetime
    criteria: tuple[Criterion, ...]
    drift: DriftReport
    thresholds: StalenessThresholds
    against: str | None = None
    against_value: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        """The verdict: any criterion fired."""
        return any(c.fired for c in self.criteria)

    @property
    def reasons(self) -> list[str]:
        """One line per criterion that fired."""
        return [c.detail for c in self.criteria if c.fired]

    @property
    def verdict(self) -> str:
        """One line: stale and why, or fresh."""
        if self.stale:
            return f"{self.version} is stale: " + "; ".join(self.reasons)
        return (f"{self.version} is fresh: {self.metric} {self.current:.4g} on {self.rows} "
                f"recent rows, none of {len(self.criteria)} criteria fired")

    def __repr__(self) -> str:
        return f"<StalenessReport {self.verdict}>"

    def to_polars(self) -> pl.DataFrame:
        """One row a criterion: ``criterion``, ``value``, ``threshold``, ``fired``, ``detail``."""
        import polars as pl

        return pl.DataFrame(
            [{"criterion": c.name, "value": c.value, "threshold": c.threshold,
              "fired": c.fired, "detail": c.detail} for c in self.criteria],
            schema={"criterion": pl.String, "value": pl.Float64, "threshold": pl.Float64,
                    "fired": pl.Boolean, "detail": pl.String})

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-ready values (times as ISO text)."""
        out = asdict(self)
        out |= {"stale": self.stale, "reasons": self.reasons, "verdict": self.verdict,
                "registered_at": self.registered_at.isoformat(),
                "checked_at": self.checked_at.isoformat(), "drift": self.drift.to_dict()}
        return out

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=2, default=str)

    def _repr_html_(self) -> str:
        colour = "#b42318" if self.stale else "#067647"
        summary = {"reference": f"{self.ref} ({self.version}, model {self.model_id})",
                   "metric": f"{self.metric} ({self.metric_source})",
                   "on recent data": self.current, "recent labelled rows": self.rows,
                   "at registration": self.registered,
                   "registration value from": self.registered_source,
                   "registered at": self.registered_at.isoformat(timespec="seconds"),
                   "checked at": self.checked_at.isoformat(timespec="seconds")}
        if self.against is not None:
            summary[f"{self.against} on recent data"] = self.against_value
        parts = [
            f'<div style="font-size:14px;font-weight:bold;color:{colour}">'
            f"{_html.escape('stale' if self.stale else 'fresh')}: "
            f"{_html.escape(self.version)}</div>",
            _html.mapping("staleness", summary),
            _html.table(["criterion", "value", "threshold", "fired", "detail"],
                        [(c.name, c.value, c.threshold, "yes" if c.fired else "no",
                          c.detail) for c in self.criteria],
                        caption="any criterion that fires makes the version stale",
                        highlight=[i for i, c in enumerate(self.criteria) if c.fired]),
        ]
        if self.notes:
            parts.append("<ul>" + "".join(f"<li>{_html.escape(n)}</li>" for n in self.notes)
                         + "</ul>")
        parts.append(_html.section("input drift against the training data",
                                   self.drift._repr_html_()))
        return "<div>" + "".join(parts) + "</div>"


def staleness(ref: str, data: object, labels: str, *, metric: str | None = None,
              against: str | None = None, thresholds: StalenessThresholds | None = None,
              now: dt.datetime | None = None, trusted: bool = False,
              store: Store | None = None) -> StalenessReport:
    """Check whether the version ``ref`` (``churn@champion``, ``churn/3``) has gone stale.

    ``data`` is recent labelled data (a frame or a Parquet file) whose column ``labels``
    holds the true outcomes; rows without a label are left out (the report says how
    many). ``metric`` (one of the registry's metrics, e.g. ``"accuracy"``, ``"rmse"``)
    defaults to the metric of the alias's policy, else accuracy for a classifier and
    RMSE otherwise. It is compared with its value at registration: the version's metrics
    snapshot under the same key (or ``val_``/``valid_``/``validation_``/``test_`` + key),
    else the metric recomputed on the stored sample of the training data. ``against``
    (another reference, e.g. an older version or a retrained challenger) is scored on the
    same rows. Input drift is measured against the training data (``nt.drift``, not
    recorded). Thresholds: :class:`StalenessThresholds`. ``now`` is the time the age is
    measured at (default: now); ``trusted`` allows pickled models.

    Example:
        >>> report = nt.staleness("churn@champion", data=recent, labels="churned")  # doctest: +SKIP
        >>> report.stale, report.reasons                                            # doctest: +SKIP
    """
    from ..monitor._api import drift
    from ..tracking._tracker import store_or_configured
    from ._refs import resolve_with_state

    thresholds = StalenessThresholds() if thresholds is None else thresholds
    if not isinstance(thresholds, StalenessThresholds):
        raise InvalidInputError(f"thresholds must be a StalenessThresholds, got "
                                f"{type(thresholds).__name__}")
    checked_at = _now(now)
    store = store_or_configured(store)
    found, state = resolve_with_state(store, ref)
    version = state.versions[found.version]
    row, estimator, features = _model(store, version, trusted)
    frame, notes = _labelled(data, labels, features, estimator)
    metric, metric_source = _metric_choice(metric, found.alias, state, estimator)
    current = _scored(store, version, str(found), frame, metric, labels, trusted)
    registered, registered_source = _registered(store, version, metric, labels, trusted)
    if registered is None:
        notes.append(registered_source)
    criteria = [_metric_criterion(metric, current, registered, registered_source, thresholds),
                _age_criterion(version.registered_at, checked_at, thresholds)]
    report = drift(version.model_id, _with_predictions(frame.drop(labels), row, estimator),
                   log=False, thresholds=thresholds.drift, prediction_column=_PREDICTED,
                   store=store)
    criteria += _drift_criteria(report, _importances(estimator, features), thresholds)
    against_value = None
    if against is not None:
        challenger, against_state = resolve_with_state(store, against)
        other = against_state.versions[challenger.version]
        against_value = _scored(store, other, str(challenger), frame, metric, labels, trusted)
        criteria.append(_challenger_criterion(metric, current, against_value,
                                              str(challenger), thresholds))
    return StalenessReport(
        ref, str(found), version.model_id, metric, metric_source, current, registered,
        registered_source, frame.height, version.registered_at, checked_at, tuple(criteria),
        report, thresholds, against, against_value, tuple([*notes, *report.notes]))


# -- inputs ------------------------------------------------------------------------------


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise InvalidInputError(f"now must be a timezone-aware datetime (e.g. "
                                f"datetime.now(UTC)), got {now!r}")
    return now


def _model(store: Store, version: Version, trusted: bool
           ) -> tuple[dict[str, Any], Any, list[str]]:
    """The version's ``models`` row, its estimator and the names of its input columns."""
    from ..experiments._production import load_estimator
    from ._checks import _model_row

    row = _model_row(store, version)
    estimator = load_estimator(store, row, trusted)
    named = getattr(estimator, "feature_names_in_", None)
    signature = row.get("signature") or {}
    features = [str(n) for n in named] if named is not None else \
        [c["name"] for c in signature.get("inputs") or []]
    return row, estimator, features


def _with_predictions(frame: pl.DataFrame, row: dict[str, Any], estimator: Any
                      ) -> pl.DataFrame:
    """``frame`` with the model's predictions, so that drift measures theirs too."""
    import polars as pl

    from ..experiments._production import model_inputs

    with _model_code(f"predict with model {row['model_id']} on the recent data"):
        predicted = estimator.predict(model_inputs(estimator, row, frame))
    return frame.with_columns(pl.Series(_PREDICTED, predicted))


@contextlib.contextmanager
def _model_code(doing: str) -> Iterator[None]:
    """Turn a failure of the model's own code into one clear error."""
    try:
        yield
    except NbtrailError:
        raise
    except Exception as exc:  # the model's own code, or a metric that does not fit it
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise InvalidInputError(f"cannot {doing}: {type(exc).__name__}: {first}") from None


def _labelled(data: object, labels: str, features: list[str], estimator: Any
              ) -> tuple[pl.DataFrame, list[str]]:
    """The recent rows that have a label, after checking the columns the check needs."""
    import polars as pl

    from ..monitor._data import load

    if not isinstance(labels, str) or not labels:
        raise InvalidInputError(f"labels must name the label column of the data, got "
                                f"{labels!r}")
    loaded = load(data, what="recent data")
    frame = loaded.frame.collect()
    if labels not in frame.columns:
        raise InvalidInputError(f"the recent data ({loaded.source}) has no label column "
                                f"{labels!r}; its columns: {', '.join(frame.columns[:12])}")
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"the recent data ({loaded.source}) lacks the model's input "
                                f"column(s) {', '.join(missing)}")
    dtype = frame.schema[labels]
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        wanted, fits = "numbers (the model is a regressor)", dtype.is_numeric()
    elif getattr(classes, "dtype", None) is not None and classes.dtype.kind in "iufb":
        wanted, fits = "numeric class labels", dtype.is_numeric() or dtype == pl.Boolean
    else:
        wanted, fits = "text class labels", not dtype.is_numeric()
    if not fits:
        raise InvalidInputError(f"label column {labels!r} of the recent data holds {dtype}, "
                                f"but the model needs {wanted}")
    notes = []
    unlabelled = frame[labels].null_count()
    if unlabelled == frame.height:
        raise InvalidInputError(f"label column {labels!r} of the recent data has no value; "
                                "staleness needs rows whose outcome is known")
    if unlabelled:
        frame = frame.filter(frame[labels].is_not_null())
        notes.append(f"{unlabelled} recent row(s) without a label were left out")
    return frame, notes


def _metric_choice(metric: str | None, alias: str | None, state: Any, estimator: Any
                   ) -> tuple[str, str]:
    """The metric to compare, and why it is that one."""
    from ._api import policy_of

    if metric is not None:
        if metric not in HIGHER_IS_BETTER:
            raise InvalidInputError(f"metric {metric!r} is not one nbtrail computes; use one "
                                    f"of {', '.join(HIGHER_IS_BETTER)}")
        return metric, "metric= given"
    if alias is not None and policy_of(state, alias).metric is not None:
        return str(policy_of(state, alias).metric), f"the policy of @{alias}"
    if hasattr(estimator, "classes_"):
        return "accuracy", "default for a classifier"
    return "rmse", "default for a regressor"


def _scored(store: Store, version: Version, name: str, frame: pl.DataFrame, metric: str,
            labels: str, trusted: bool) -> float:
    from ._checks import _score

    with _model_code(f"compute {metric} of {name}"):
        value = _score(store, version, frame, metric, labels, trusted)
    return value


def _registered(store: Store, version: Version, metric: str, labels: str, trusted: bool
                ) -> tuple[float | None, str]:
    """The metric at registration, and where it comes from (or why there is none)."""
    from ..monitor._reference import _sample

    snapshot = version.facts.get("metrics") or {}
    key = next((p + metric for p in _SNAPSHOT_PREFIXES if p + metric in snapshot), None)
    if key is not None:
        return float(snapshot[key]), f"metrics snapshot {key!r}"
    why = f"the metrics snapshot at registration has no {metric!r}"
    run = store.get_run(version.facts["run_id"])
    dataset = next((d for d in run.datasets
                    if d["dataset_id"] == version.facts.get("training_dataset_id")), None)
    sample = _sample(store, dataset) if dataset is not None else None
    if sample is None:
        return None, f"{why} and no training sample is stored, so the metric drop is not measured"
    if labels not in sample.columns:
        return None, (f"{why} and the training sample has no {labels!r} column, so the "
                      "metric drop is not measured")
    value = _scored(store, version, f"version {version.number}", sample.drop_nulls(labels),
                    metric, labels, trusted)
    # In-sample, so optimistic: a drop against it overstates the loss a little.
    return value, (f"{why}: recomputed on the training sample ({sample.height} rows, "
                   "in-sample, so optimistic)")


# -- criteria -----------------------------------------------------------------------------


def _worse_by(metric: str, reference: float, value: float, relative: bool) -> float:
    """How much worse ``value`` is than ``reference`` (negative when better)."""
    worse = (reference - value) if HIGHER_IS_BETTER[metric] else (value - reference)
    if not relative:
        return worse
    if reference:
        return worse / abs(reference)
    return math.inf if worse > 0 else 0.0  # any worsening of a perfect zero error


def _units(thresholds: StalenessThresholds) -> str:
    return "relative" if thresholds.relative else "absolute"


def _metric_criterion(metric: str, current: float, registered: float | None, source: str,
                      thresholds: StalenessThresholds) -> Criterion:
    limit = thresholds.metric_drop
    if registered is None:
        return Criterion("metric_drop", None, limit, False,
                         f"{metric} {current:.4g} now; not compared: {source}")
    drop = _worse_by(metric, registered, current, thresholds.relative)
    fired = drop >= limit
    return Criterion("metric_drop", drop, limit, fired,
                     f"{metric} {current:.4g} on recent data vs {registered:.4g} at "
                     f"registration ({source}): {_units(thresholds)} drop {drop:+.4g} "
                     f"{'≥' if fired else '<'} {limit:g}")


def _age_criterion(registered_at: dt.datetime, now: dt.datetime,
                   thresholds: StalenessThresholds) -> Criterion:
    days = (now - registered_at).total_seconds() / 86400
    fired = days >= thresholds.max_age_days
    return Criterion("age_days", days, thresholds.max_age_days, fired,
                     f"registered {days:.1f} days ago "
                     f"({'≥' if fired else '<'} {thresholds.max_age_days:g})")


def _importances(estimator: Any, features: list[str]) -> dict[str, float] | None:
    """Each input's share of the model's importance; None when the model has none."""
    import numpy as np

    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator  # a Pipeline
    raw = getattr(final, "feature_importances_", None)
    if raw is None and getattr(final, "coef_", None) is not None:
        raw = np.abs(np.atleast_2d(final.coef_)).mean(axis=0)
    if raw is None or len(raw) != len(features) or not np.sum(raw):
        return None
    shares = np.asarray(raw, float) / float(np.sum(raw))
    return dict(zip(features, shares.tolist(), strict=True))


def _drift_criteria(report: DriftReport, importances: dict[str, float] | None,
                    thresholds: StalenessThresholds) -> list[Criterion]:
    drifted = report.drifted
    if importances is None:
        important, how = drifted, "the model has no importances, so every feature counts"
    else:
        important = [f for f in drifted if importances.get(f, 0.0) >= thresholds.importance]
        how = f"importance share ≥ {thresholds.importance:g}"
    named = f": {', '.join(important)}" if important else ""
    share = len(drifted) / max(1, len(report.features))
    return [
        Criterion("important_feature_drift", float(len(important)), 1.0, bool(important),
                  f"{len(important)} important feature(s) drifted{named} ({how})"),
        Criterion("overall_drift", share, thresholds.drift_share,
                  share >= thresholds.drift_share,
                  f"{len(drifted)} of {len(report.features)} features drifted "
                  f"({share:.0%}, {'≥' if share >= thresholds.drift_share else '<'} "
                  f"{thresholds.drift_share:.0%})"),
    ]


def _challenger_criterion(metric: str, current: float, theirs: float, name: str,
                          thresholds: StalenessThresholds) -> Criterion:
    gain = _worse_by(metric, theirs, current, thresholds.relative)
    fired = gain >= thresholds.challenger_margin
    return Criterion("challenger_gain", gain, thresholds.challenger_margin, fired,
                     f"{name} scores {metric} {theirs:.4g} on the same rows vs {current:.4g}: "
                     f"{_units(thresholds)} gain {gain:+.4g} "
                     f"{'≥' if fired else '<'} {thresholds.challenger_margin:g}")
