"""Promotion checks: each computes its evidence now and says whether the version passes.

A check never raises for what it finds: a model that cannot be loaded, data that lacks a
column or a notebook that fails is a failed check whose ``detail`` says why. Each result
is ``{"check", "passed", "detail", "evidence"}``, recorded with the request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, NbtrailError
from ._policy import HIGHER_IS_BETTER, Policy

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store
    from ._state import Version

Result = dict[str, Any]


def _result(check: str, passed: bool, detail: str, **evidence: Any) -> Result:
    return {"check": check, "passed": passed, "detail": detail, "evidence": evidence}


def run_checks(store: Store, policy: Policy, candidate: Version, holder: Version | None,
               *, data: object = None, trusted: bool = False,
               progress: Callable[[str], None] | None = None) -> list[Result]:
    """Every check ``policy`` asks for, on ``candidate`` against ``holder`` (may be None).

    ``data`` (a frame or Parquet path) replaces the policy's evaluation data.
    """
    say = progress or (lambda _: None)
    evaluation = data if data is not None else policy.data
    results = []
    for name in policy.checks:
        say(f"running the {name} check")
        try:
            if name == "metric":
                results.append(_metric(store, policy, candidate, holder, evaluation, trusted))
            elif name == "validate":
                results.append(_validate(store, policy, candidate, evaluation))
            elif name == "reproduce":
                results.append(_reproduce(store, policy, candidate))
            else:
                results.append(_production(store, policy, candidate, name, trusted))
        except NbtrailError as exc:
            results.append(_result(name, False, str(exc)))
        except Exception as exc:  # a model's or notebook's own code: the check failed
            results.append(_result(name, False, f"{type(exc).__name__}: {exc}"))
    return results


def _evaluation_frame(data: object) -> tuple[pl.DataFrame, dict[str, Any]]:
    from ..monitor._data import load
    from ..tracking._datasets import profile_dataset

    loaded = load(data, what="evaluation data")
    frame = loaded.frame.collect()
    profile = profile_dataset(frame)
    return frame, {"data": loaded.source, "fingerprint": profile.fingerprint,
                   "rows": profile.n_rows}


def _score(store: Store, version: Version, frame: pl.DataFrame, metric: str, target: str,
           trusted: bool) -> float:
    import numpy as np
    from sklearn import metrics

    from ..experiments._production import load_estimator, model_inputs

    model = _model_row(store, version)
    estimator = load_estimator(store, model, trusted)
    features = model_inputs(estimator, model, frame.drop(target))
    truth = frame[target].to_numpy()
    if metric in ("roc_auc", "log_loss"):
        scores = estimator.predict_proba(features)
        if metric == "roc_auc" and scores.shape[1] == 2:
            return float(metrics.roc_auc_score(truth, scores[:, 1]))
        if metric == "roc_auc":
            return float(metrics.roc_auc_score(truth, scores, multi_class="ovr"))
        return float(metrics.log_loss(truth, scores, labels=estimator.classes_))
    predicted = estimator.predict(features)
    computed: dict[str, Callable[[], float]] = {
        "accuracy": lambda: metrics.accuracy_score(truth, predicted),
        "balanced_accuracy": lambda: metrics.balanced_accuracy_score(truth, predicted),
        "f1": lambda: metrics.f1_score(truth, predicted),
        "f1_macro": lambda: metrics.f1_score(truth, predicted, average="macro"),
        "precision": lambda: metrics.precision_score(truth, predicted),
        "recall": lambda: metrics.recall_score(truth, predicted),
        "r2": lambda: metrics.r2_score(truth, predicted),
        "mse": lambda: metrics.mean_squared_error(truth, predicted),
        "rmse": lambda: float(np.sqrt(metrics.mean_squared_error(truth, predicted))),
        "mae": lambda: metrics.mean_absolute_error(truth, predicted),
    }
    return float(computed[metric]())


def _model_row(store: Store, version: Version) -> dict[str, Any]:
    import json

    found = store.models(model_id=version.model_id)
    if found.is_empty():
        raise InvalidInputError(f"model {version.model_id} of version {version.number} is "
                                f"not in the store at {store.location}")
    row = found.row(0, named=True)
    if isinstance(row["signature"], str):
        row["signature"] = json.loads(row["signature"])
    return row


def _metric(store: Store, policy: Policy, candidate: Version, holder: Version | None,
            data: object, trusted: bool) -> Result:
    metric, target = str(policy.metric), str(policy.target)
    frame, evidence = _evaluation_frame(data)
    if target not in frame.columns:
        return _result("metric", False, f"the evaluation data has no target column "
                       f"{target!r} (its columns: {', '.join(frame.columns[:12])})", **evidence)
    try:
        mine = _score(store, candidate, frame, metric, target, trusted)
        theirs = (_score(store, holder, frame, metric, target, trusted)
                  if holder is not None else None)
    except NbtrailError:
        raise
    except Exception as exc:  # the models' own code, on rows they may never have seen
        return _result("metric", False, f"scoring failed: {type(exc).__name__}: {exc}",
                       **evidence)
    evidence |= {"metric": metric, "candidate": mine, "holder": theirs,
                 "holder_version": holder.number if holder else None}
    if theirs is None:
        return _result("metric", math.isfinite(mine), f"{metric} {mine:.4g} (no current "
                       "holder to compare with)", **evidence)
    higher = HIGHER_IS_BETTER[metric]
    margin = (mine - theirs) if higher else (theirs - mine)
    passed = margin >= policy.min_delta
    word = "at least as good as" if passed else "worse than"
    return _result("metric", passed, f"{metric} {mine:.4g} vs {theirs:.4g} of version "
                   f"{holder.number if holder else '?'}: {word} required "
                   f"(margin {margin:+.4g}, needed {policy.min_delta:+.4g})", **evidence)


def _validate(store: Store, policy: Policy, candidate: Version, data: object) -> Result:
    from ..monitor._api import validate

    frame, evidence = _evaluation_frame(data)
    if policy.target is not None and policy.target in frame.columns:
        frame = frame.drop(policy.target)  # the label is no model input
    report = validate(frame, candidate.model_id, store=store)
    problems = report.to_polars()
    evidence |= {"problems": len(problems)}
    if report.ok:
        return _result("validate", True, "the evaluation data is clean against the "
                       "training data", **evidence)
    columns = ", ".join(report.columns()[:8])
    return _result("validate", False, f"{len(problems)} problem(s) in the evaluation data "
                   f"(columns {columns})", **evidence)


def _reproduce(store: Store, policy: Policy, candidate: Version) -> Result:
    from ..experiments._reproduce import reproduce_run

    outcome = reproduce_run(store, candidate.facts["run_id"], rtol=policy.reproduce_rtol)
    evidence = {"reproduced_run_id": outcome.reproduced_run_id, "rtol": policy.reproduce_rtol,
                "mismatched": outcome.mismatched}
    if outcome.matches:
        return _result("reproduce", True, f"re-ran into run {outcome.reproduced_run_id}: "
                       "every metric matches", **evidence)
    why = outcome.error or f"metrics differ: {', '.join(outcome.mismatched)}"
    return _result("reproduce", False, why, **evidence)


def _production(store: Store, policy: Policy, candidate: Version, name: str,
                trusted: bool) -> Result:
    from ..experiments._production import production_figures

    run = store.get_run(candidate.facts["run_id"])
    figures = production_figures(store, run, model=candidate.facts["model_name"],
                                 measure=name == "latency", trusted=trusted)
    if name == "size":
        size_mb = figures["size_bytes"] / 1e6
        limit = float(policy.max_size_mb or 0)
        return _result("size", size_mb <= limit, f"{size_mb:.3g} MB (limit {limit:g} MB)",
                       size_bytes=figures["size_bytes"])
    p95 = figures["single_p95_ms"]
    limit = float(policy.max_latency_ms or 0)
    if p95 is None:
        return _result("latency", False, f"not measured: {figures['note']}")
    return _result("latency", p95 <= limit, f"single-row p95 {p95:.3g} ms (limit {limit:g} "
                   "ms)", single_p95_ms=p95, single_p50_ms=figures["single_p50_ms"])
