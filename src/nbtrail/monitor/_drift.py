"""Drift: how far new data has moved from a model's training data.

Measured feature by feature and for the predictions themselves.

Numbers: the Kolmogorov–Smirnov distance between the two distribution functions, taken
at the reference's 1st…99th percentiles (exact there: both data sets are counted on those
cut points), and the population stability index over the reference's deciles plus a
bucket for missing values. Categories: a chi-square test of homogeneity and the stability
index over the categories (a category never seen counts as its own bucket).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _html
from ..errors import InvalidInputError
from ._profile import ColumnProfile

if TYPE_CHECKING:
    import polars as pl

# Share given to an empty bucket in the stability index (ln(0) is undefined).
_EPSILON = 1e-4


@dataclass(frozen=True)
class Thresholds:
    """When a feature counts as drifted.

    A feature drifts when its stability index is large, or when its test is significant
    and the effect large enough to matter.

    Attributes:
        psi: Population stability index at or above which a feature has drifted. 0.1–0.2
            is the usual "moderate shift", ≥ 0.2 a "significant shift".
        p_value: Significance level of the KS and chi-square tests.
        ks: Smallest Kolmogorov–Smirnov distance that counts, so that a huge log does not
            flag a difference too small to matter (every test is significant at n = 10⁶).
        cramers_v: Smallest Cramér's V (the chi-square effect size) that counts.
        metric_drop: Relative worsening of the model's metric (with labels) that counts as
            degraded: 0.05 is a 5 % lower accuracy or a 5 % higher error.
    """

    psi: float = 0.2
    p_value: float = 0.05
    ks: float = 0.1
    cramers_v: float = 0.1
    metric_drop: float = 0.05

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"threshold {name} must be a number ≥ 0, got {value!r}")
        if not 0 < self.p_value <= 1:
            raise InvalidInputError(f"threshold p_value must be in (0, 1], got {self.p_value}")


@dataclass(frozen=True)
class FeatureDrift:
    """The comparison of one feature (or of the predictions)."""

    feature: str
    kind: str
    test: str | None
    """``ks`` (numbers), ``chi2`` (categories) or ``None`` when no test was possible."""
    statistic: float | None
    """KS distance, or Cramér's V for categories."""
    p_value: float | None
    psi: float | None
    drifted: bool
    reason: str
    n_reference: int
    n_current: int
    buckets: tuple[str, ...] = ()
    reference_shares: tuple[float, ...] = ()
    current_shares: tuple[float, ...] = ()


@dataclass(frozen=True)
class MetricChange:
    """The model's metric on labelled new data, against the one recorded in training."""

    name: str
    reference: float | None
    current: float
    rows: int
    degraded: bool
    reference_key: str | None = None
    """Which metric of the training run the reference value is."""

    @property
    def change(self) -> float | None:
        """``current - reference``."""
        return None if self.reference is None else self.current - self.reference


def _shares(counts: Sequence[float], total: float) -> list[float]:
    return [c / total if total else 0.0 for c in counts]


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index of two count vectors over the same buckets."""
    ref_total, cur_total = sum(reference), sum(current)
    value = 0.0
    for r, c in zip(_shares(reference, ref_total), _shares(current, cur_total), strict=True):
        if r == 0 and c == 0:
            continue
        r, c = max(r, _EPSILON), max(c, _EPSILON)
        value += (c - r) * math.log(c / r)
    return value


def _ks_p_value(distance: float, n: int, m: int) -> float:
    from scipy import stats

    # As scipy's ks_2samp in asymptotic mode: the one-sample distribution at n·m/(n+m).
    return float(stats.kstwo.sf(distance, max(1, round(n * m / (n + m)))))


def _label(value: float) -> str:
    return f"{value:.4g}"


def compare_numeric(name: str, ref: ColumnProfile, cur: ColumnProfile,
                    thresholds: Thresholds, kind: str = "numeric") -> FeatureDrift:
    """KS distance at the reference's cut points and the stability index over deciles."""
    import numpy as np

    base: dict[str, Any] = {"feature": name, "kind": kind, "n_reference": ref.rows,
                            "n_current": cur.rows}
    if ref.counts is None or cur.counts is None or not cur.rows:
        why = "no values in the current data" if not cur.rows else "no reference values"
        return FeatureDrift(test=None, statistic=None, p_value=None, psi=None, drifted=False,
                            reason=why, **base)
    ref_counts, cur_counts = np.array(ref.counts, float), np.array(cur.counts, float)
    n, m = int(ref_counts.sum()), int(cur_counts.sum())
    if not n or not m:
        return FeatureDrift(test=None, statistic=None, p_value=None, psi=None, drifted=False,
                            reason="no finite values to compare", **base)
    gaps = np.cumsum(ref_counts)[:-1] / n - np.cumsum(cur_counts)[:-1] / m
    distance = float(np.abs(gaps).max(initial=0.0))
    p_value = _ks_p_value(distance, n, m)
    # Fine bin i ends at edges[i] (the last at +inf); deciles group the fine bins.
    edges, deciles = ref.edges, ref.psi_edges
    group = np.searchsorted(deciles, [*edges, math.inf], side="left")
    size = len(deciles) + 1
    ref_groups = _group_shares(ref, np.bincount(group, ref_counts, size) / n)
    cur_groups = _group_shares(cur, np.bincount(group, cur_counts, size) / m)
    labels = [f"≤ {_label(deciles[0])}" if deciles else "all",
              *(f"({_label(a)}, {_label(b)}]" for a, b in itertools.pairwise(deciles)),
              *([f"> {_label(deciles[-1])}"] if deciles else []), "missing"]
    index = psi(ref_groups, cur_groups)
    drifted, reason = _verdict(index, p_value, distance, thresholds.ks, "KS distance",
                               thresholds)
    return FeatureDrift(
        test="ks", statistic=distance, p_value=p_value, psi=index, drifted=drifted,
        reason=reason, buckets=tuple(labels),
        reference_shares=tuple(ref_groups), current_shares=tuple(cur_groups), **base)


def _group_shares(profile: ColumnProfile, shares: Any) -> list[float]:
    """Shares of all rows: the value bins scaled to the non-null share, then the nulls.

    The bins may count a sample of the values (a reference streamed from data).
    """
    rows = profile.rows or 1
    return [*(shares * profile.non_null / rows).tolist(), profile.nulls / rows]


def compare_categorical(name: str, ref: ColumnProfile, cur: ColumnProfile,
                        thresholds: Thresholds, kind: str = "categorical") -> FeatureDrift:
    """Chi-square test of homogeneity and stability index over the categories."""
    from scipy import stats

    base: dict[str, Any] = {"feature": name, "kind": kind, "n_reference": ref.rows,
                            "n_current": cur.rows}
    known = dict(ref.categories or {})
    if not sum(known.values()) or not cur.rows:
        why = "no values in the current data" if not cur.rows else \
            "the reference recorded no category counts"
        return FeatureDrift(test=None, statistic=None, p_value=None, psi=None, drifted=False,
                            reason=why, **base)
    seen = dict(cur.categories or {})
    new = sorted((v for v in seen if v not in known), key=lambda v: -seen[v])
    buckets = [*known, *new]
    ref_counts = [known.get(b, 0) for b in buckets]
    cur_counts = [seen.get(b, 0) for b in buckets]
    other = cur.non_null - sum(cur_counts)  # values beyond the ones a pass keeps
    if other > 0:
        buckets.append("(other new values)")
        ref_counts.append(0)
        cur_counts.append(other)
    buckets.append("missing")
    ref_counts.append(ref.nulls)
    cur_counts.append(cur.nulls)
    kept = [i for i in range(len(buckets)) if ref_counts[i] + cur_counts[i] > 0]
    table = [[ref_counts[i] for i in kept], [cur_counts[i] for i in kept]]
    statistic, p_value = 0.0, 1.0
    if len(kept) > 1:
        chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
        statistic = math.sqrt(chi2 / (sum(table[0]) + sum(table[1])))  # Cramér's V (2 rows)
        p_value = float(p_value)
    index = psi(ref_counts, cur_counts)
    drifted, reason = _verdict(index, p_value, statistic, thresholds.cramers_v, "Cramér's V",
                               thresholds)
    if new:
        share = sum(seen[v] for v in new) / cur.rows
        listed = ", ".join(repr(v) for v in new[:5]) + (" …" if len(new) > 5 else "")
        reason += f"; new categories {listed} ({share:.1%} of rows)"
    return FeatureDrift(
        test="chi2", statistic=statistic, p_value=p_value, psi=index, drifted=drifted,
        reason=reason, buckets=tuple(buckets),
        reference_shares=tuple(_shares(ref_counts, ref.rows)),
        current_shares=tuple(_shares(cur_counts, cur.rows)), **base)


def _verdict(index: float, p_value: float, effect: float, effect_threshold: float,
             effect_name: str, thresholds: Thresholds) -> tuple[bool, str]:
    if index >= thresholds.psi:
        return True, f"PSI {index:.3f} ≥ {thresholds.psi}"
    if p_value < thresholds.p_value and effect >= effect_threshold:
        return True, (f"p = {p_value:.2g} < {thresholds.p_value} and {effect_name} "
                      f"{effect:.3f} ≥ {effect_threshold}")
    return False, f"PSI {index:.3f}, {effect_name} {effect:.3f}, p = {p_value:.2g}"


def compare(name: str, ref: ColumnProfile, cur: ColumnProfile, thresholds: Thresholds,
            kind: str | None = None) -> FeatureDrift:
    """Compare one column with the test that fits its kind."""
    if ref.kind == "numeric":
        return compare_numeric(name, ref, cur, thresholds, kind or "numeric")
    if ref.kind == "categorical":
        return compare_categorical(name, ref, cur, thresholds, kind or "categorical")
    return FeatureDrift(name, kind or ref.kind, None, None, None, None, False,
                        f"not tested: {ref.kind} column ({ref.dtype})", ref.rows, cur.rows)


# -- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftReport:
    """Drift of new data against a reference: per feature, of the predictions, overall.

    ``drifted`` lists the drifted features; ``has_drift`` is the overall verdict (a
    feature or the predictions drifted, or the metric degraded). Shows as HTML in a
    notebook; ``to_polars()`` gives one row a feature; ``save_html(path)`` writes a
    standalone page.
    """

    reference: str
    current: str
    features: tuple[FeatureDrift, ...]
    prediction: FeatureDrift | None = None
    metric: MetricChange | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    notes: tuple[str, ...] = ()
    model_id: str | None = None
    created_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    run_id: str | None = None
    """The monitoring run the report is stored in, once it is."""

    @property
    def drifted(self) -> list[str]:
        """Names of the drifted features (the predictions are in ``prediction``)."""
        return [f.feature for f in self.features if f.drifted]

    @property
    def has_drift(self) -> bool:
        """The overall verdict: any feature or the predictions drifted, or the metric fell."""
        return bool(self.drifted) or bool(self.prediction and self.prediction.drifted) or \
            bool(self.metric and self.metric.degraded)

    @property
    def verdict(self) -> str:
        """One line saying what drifted."""
        if not self.has_drift:
            return f"no drift in {len(self.features)} features"
        parts = []
        if self.drifted:
            parts.append(f"{len(self.drifted)} of {len(self.features)} features drifted "
                         f"({', '.join(self.drifted)})")
        if self.prediction and self.prediction.drifted:
            parts.append("the predictions drifted")
        if self.metric and self.metric.degraded:
            parts.append(f"{self.metric.name} degraded")
        return "drift: " + "; ".join(parts)

    def __repr__(self) -> str:
        return f"<DriftReport {self.verdict}; reference: {self.reference}; current: {self.current}>"

    def to_polars(self) -> pl.DataFrame:
        """One row a feature, then ``prediction`` if measured.

        Columns: test, statistic, p-value, PSI, thresholds, whether it drifted and why.
        """
        import polars as pl

        rows = [*self.features, *([self.prediction] if self.prediction else [])]
        return pl.DataFrame(
            [{"feature": f.feature, "kind": f.kind, "test": f.test, "statistic": f.statistic,
              "p_value": f.p_value, "psi": f.psi, "psi_threshold": self.thresholds.psi,
              "p_threshold": self.thresholds.p_value, "drifted": f.drifted, "reason": f.reason,
              "n_reference": f.n_reference, "n_current": f.n_current} for f in rows],
            schema={"feature": pl.String, "kind": pl.String, "test": pl.String,
                    "statistic": pl.Float64, "p_value": pl.Float64, "psi": pl.Float64,
                    "psi_threshold": pl.Float64, "p_threshold": pl.Float64,
                    "drifted": pl.Boolean, "reason": pl.String, "n_reference": pl.Int64,
                    "n_current": pl.Int64})

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-ready values."""
        out = asdict(self)
        out["drifted"] = self.drifted
        out["has_drift"] = self.has_drift
        out["verdict"] = self.verdict
        if self.metric is not None:
            out["metric"]["change"] = self.metric.change
        return out

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (NaN-free)."""
        return json.dumps(self.to_dict(), indent=2, default=str)

    def _repr_html_(self) -> str:
        colour = "#b42318" if self.has_drift else "#067647"
        parts = [
            f'<div style="font-size:14px;font-weight:bold;color:{colour}">'
            f"{_html.escape(self.verdict)}</div>",
            f"<div>reference: {_html.escape(self.reference)}<br>current: "
            f"{_html.escape(self.current)}<br>{_html.escape(self.created_at)}"
            + (f" · monitoring run {_html.escape(self.run_id)}" if self.run_id else "")
            + "</div>",
        ]
        rows = [*self.features, *([self.prediction] if self.prediction else [])]
        parts.append(_html.table(
            ["feature", "kind", "test", "statistic", "p-value", "PSI", "drifted", "why"],
            [(f.feature, f.kind, f.test, f.statistic, f.p_value, f.psi,
              "yes" if f.drifted else "no", f.reason) for f in rows],
            caption=f"thresholds: PSI ≥ {self.thresholds.psi}, or p < "
                    f"{self.thresholds.p_value} with KS ≥ {self.thresholds.ks} / Cramér's V ≥ "
                    f"{self.thresholds.cramers_v}",
            max_rows=60, highlight=[i for i, f in enumerate(rows) if f.drifted]))
        if self.metric is not None:
            m = self.metric
            parts.append(_html.mapping(f"metric {m.name}", {
                "reference": m.reference, "reference metric": m.reference_key,
                "current": m.current, "change": m.change, "labelled rows": m.rows,
                "degraded": m.degraded}))
        charts = [f for f in rows if f.drifted and f.buckets][:8]
        if charts:
            parts.append('<div style="display:flex;flex-wrap:wrap;gap:12px">' + "".join(
                _html.bar_chart(f"{f.feature} (share of rows)", f.buckets,
                                {"reference": f.reference_shares, "current": f.current_shares})
                for f in charts) + "</div>")
        if self.notes:
            parts.append("<ul>" + "".join(f"<li>{_html.escape(n)}</li>" for n in self.notes)
                         + "</ul>")
        return "<div>" + "".join(parts) + "</div>"

    def save_html(self, path: str | Path) -> Path:
        """Write the report as a standalone HTML file (no script, nothing fetched)."""
        return _html.save(path, f"nbtrail drift report: {self.verdict}", self._repr_html_())


def metric_change(name: str, current: float, rows: int, reference_metrics: Mapping[str, float],
                  thresholds: Thresholds) -> MetricChange:
    """Compare a metric on labelled new data with the training run's recorded value."""
    key = next((k for k in _metric_keys(name) if k in reference_metrics), None)
    reference = reference_metrics[key] if key else None
    degraded = False
    if reference is not None and reference:
        worse = (reference - current) if name == "accuracy" else (current - reference)
        degraded = worse / abs(reference) > thresholds.metric_drop
    return MetricChange(name, reference, current, rows, degraded, key)


def _metric_keys(name: str) -> list[str]:
    names = {"accuracy": ["accuracy", "acc", "score"], "rmse": ["rmse"]}[name]
    prefixes = ["val_", "valid_", "validation_", "test_", "", "training_"]
    return [p + n for n in names for p in prefixes]
