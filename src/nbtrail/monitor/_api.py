"""``nt.validate`` and ``nt.drift``."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..tracking._tracker import store_or_configured, tracker_of
from ._data import PREDICTION, REQUEST_ID, Data, load
from ._drift import DriftReport, MetricChange, Thresholds, compare, metric_change
from ._profile import scan
from ._reference import Reference, resolve
from ._validate import ValidationReport, validate_data

if TYPE_CHECKING:
    from ..store import Store

# Tag that marks a monitoring run, and the experiment monitoring runs are grouped in.
KIND_TAG = "nbtrail.kind"
MONITORING = "monitoring"
_LABEL = "__nbtrail_label__"
_ROW = "__nbtrail_row__"


def validate(data: object, against: object, *,
             prediction_column: str | None = "prediction",
             store: Store | None = None) -> ValidationReport:
    """Check new data against the training data of a model, column by column.

    ``against`` is a model id (``mdl_…``), a run (id or object: its last model, else its
    training data set) or a reference frame. ``data`` is a frame (pandas, polars,
    pyarrow, numpy), a Parquet file or a prediction log folder. The report lists each
    problem by column with a count and examples: missing or unexpected columns, wrong
    types, nulls where training had none, categories never seen, values out of the
    training range. ``store`` is where ``against`` is looked up (default: the
    configured store).

    Example:
        >>> report = nt.validate(new_df, against=model_id)      # doctest: +SKIP
        >>> report.ok, report.to_polars()                       # doctest: +SKIP
    """
    reference = resolve(against, store_or_configured(store),
                        prediction_column=prediction_column)
    return validate_data(load(data, what="data", prediction_column=prediction_column),
                         reference)


def drift(reference: object, current: object, labels: object = None, *,
          thresholds: Thresholds | None = None, prediction_column: str | None = "prediction",
          log: bool | None = None, store: Store | None = None) -> DriftReport:
    """Compare new data with a reference: drift per feature, of the predictions, overall.

    ``reference`` is a model id (``mdl_…``), a run (its last model, else its training
    data set) or a frame / Parquet file. ``current`` is a prediction log folder (written
    by ``nbtrail serve``), a frame or a Parquet file. A column named
    ``prediction_column`` holds predictions (a log always has them); against a model, the
    reference predictions are the model's on the stored sample of its training data.

    ``labels`` (the true outcomes, when they arrive) adds the model's metric: accuracy for
    a classifier, RMSE otherwise, against the value the training run logged. Give them
    aligned with the rows of ``current``, or for a log as a frame with ``request_id`` and
    ``label`` columns (and ``row``, the position in the request, when requests hold
    several rows).

    Thresholds are documented in :class:`~nbtrail.monitor.Thresholds`. With ``log``
    (default: when the reference is a model or run), the report is stored as a monitoring
    run linked to the model, with the HTML report as an artifact. ``store`` is where the
    reference is looked up and the report recorded (default: the configured store).

    Example:
        >>> report = nt.drift(reference=model_id, current="serving/predictions")  # doctest: +SKIP
        >>> report.drifted, report.to_polars()                                   # doctest: +SKIP
    """
    thresholds = thresholds or Thresholds()
    store = store_or_configured(store)
    ref = resolve(reference, store, prediction_column=prediction_column)
    data = load(current, what="current", prediction_column=prediction_column)
    present = set(data.features())
    features = [name for name in ref.columns if name in present]
    notes = list(ref.notes)
    absent = [name for name in ref.columns if name not in present]
    if absent:
        notes.append(f"not in the current data, so not compared: {', '.join(absent)}")
    if not features:
        raise InvalidInputError(
            f"the current data ({data.source}) has none of the reference's columns "
            f"({', '.join(ref.columns) or 'none'}); compare data of the same model")
    kinds = {name: ref.columns[name].kind for name in features}
    edges = {name: ref.columns[name].percentiles or () for name in features}
    if ref.prediction is not None and data.prediction:
        kinds[PREDICTION] = ref.prediction.kind
        edges[PREDICTION] = ref.prediction.percentiles or ()
    elif ref.prediction is not None:
        notes.append(f"the current data has no {prediction_column!r} column, so prediction "
                     "drift is not measured")
    counted, _ = scan(data.frame, kinds, edges=edges)
    results = tuple(compare(name, ref.columns[name], counted[name], thresholds)
                    for name in features)
    prediction = None
    if PREDICTION in counted and ref.prediction is not None:
        prediction = compare("prediction", ref.prediction, counted[PREDICTION], thresholds,
                             kind="prediction")
    metric = None
    if labels is not None:
        metric = _metric(data, labels, ref, thresholds)
    report = DriftReport(ref.label, data.source, results, prediction, metric, thresholds,
                         tuple(notes), ref.model_id)
    if log if log is not None else ref.run_id is not None:
        report = _record(report, ref, store)
    return report


def _metric(data: Data, labels: object, ref: Reference, thresholds: Thresholds
            ) -> MetricChange:
    import polars as pl

    if not data.prediction:
        raise InvalidInputError(
            "labels were given but the current data has no predictions to score; pass a "
            "prediction log, or a frame with a 'prediction' column")
    frame = data.frame
    if isinstance(labels, pl.DataFrame) or type(labels).__name__ == "DataFrame":
        table = labels if isinstance(labels, pl.DataFrame) else pl.from_pandas(labels)
        if not {"request_id", "label"} <= set(table.columns):
            raise InvalidInputError(
                "labels given as a frame need columns 'request_id' and 'label' (the id the "
                "server returned with each prediction), and 'row' (the row's position in "
                f"its request) when requests hold several rows; got {', '.join(table.columns)}")
        keys = [REQUEST_ID]
        if "row" in table.columns:  # rows of one request share its id: their position counts
            frame = frame.with_columns(pl.int_range(pl.len()).over(REQUEST_ID).alias(_ROW))
            keys.append(_ROW)
        joined = frame.join(table.lazy().select(
            pl.col("request_id").alias(REQUEST_ID), pl.col("label").alias(_LABEL),
            *([pl.col("row").cast(pl.Int64).alias(_ROW)] if "row" in table.columns else [])),
            on=keys, how="inner")
        if len(keys) == 1 and joined.group_by(REQUEST_ID).len().filter(
                pl.col("len") > 1).head(1).collect().height:
            raise InvalidInputError(
                "some labelled requests hold several rows, so a request id does not say which "
                "row a label belongs to; add a 'row' column (0, 1, … within each request)")
    else:
        if not isinstance(labels, Iterable) or isinstance(labels, str | bytes):
            raise InvalidInputError(
                f"labels must be a frame with request_id and label, or a sequence of labels "
                f"one a row of the current data; got {type(labels).__name__}")
        values = pl.Series(_LABEL, labels)
        collected = frame.collect()
        if len(values) != collected.height:
            raise InvalidInputError(
                f"{len(values)} labels for {collected.height} rows of current data; give one "
                "label a row, in the same order (or a frame with request_id and label)")
        joined = collected.with_columns(values).lazy()
    classifier = ref.prediction.kind == "categorical" if ref.prediction else \
        not joined.collect_schema()[PREDICTION].is_numeric()
    if classifier:
        name = "accuracy"
        score = (pl.col(PREDICTION).cast(pl.String) == pl.col(_LABEL).cast(pl.String)).mean()
    else:
        name = "rmse"
        score = ((pl.col(PREDICTION) - pl.col(_LABEL)) ** 2).mean().sqrt()
    value, rows = joined.drop_nulls([PREDICTION, _LABEL]).select(
        score.alias("score"), pl.len().alias("rows")).collect().row(0)
    if not rows:
        raise InvalidInputError("no labelled row matches a prediction of the current data; "
                                "check the request ids of the labels")
    return metric_change(name, float(value), int(rows), ref.metrics, thresholds)


def _record(report: DriftReport, ref: Reference, store: Store) -> DriftReport:
    """Record the report as a monitoring run, linked to the model (or run) it checks."""
    tracker = tracker_of(store)
    subject = ref.model_id or ref.run_id
    tags = {KIND_TAG: MONITORING, "verdict": "drift" if report.has_drift else "ok"}
    if ref.model_id:
        tags["model_id"] = ref.model_id
    with tracker.start_run(name=f"drift {ref.model_name or subject}", experiment=MONITORING,
                           tags=tags,
                           nested=False) as run:
        report = replace(report, run_id=run.run_id)
        run.log_params({"reference": report.reference, "current": report.current,
                        **{f"threshold.{k}": v for k, v in vars(report.thresholds).items()}})
        metrics = {"features": len(report.features), "drifted_features": len(report.drifted),
                   "drift_share": len(report.drifted) / max(1, len(report.features))}
        rows = [*report.features, *([report.prediction] if report.prediction else [])]
        metrics |= {f"psi.{f.feature}": f.psi for f in rows if f.psi is not None}
        if report.metric is not None:
            metrics[report.metric.name] = report.metric.current
        run.log_metrics(metrics)
        if subject:
            run.log_input(subject, "monitored")
        with tempfile.TemporaryDirectory() as folder:
            html = report.save_html(Path(folder) / "drift.html")
            (Path(folder) / "drift.json").write_text(report.to_json(), encoding="utf-8")
            run.log_artifact(html)
            run.log_artifact(Path(folder) / "drift.json")
    return report

