"""Monitoring: ``nbtrail drift`` and ``nbtrail validate``.

Both answer a question, so their exit status 1 means "drift" / "problems" (with
``--fail-on-drift`` / ``--fail-on-problems``) and any error exits 2 instead of 1.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import _render as render
from ._common import Options, add_command, open_store, positive_float

# The exit status of an error in a command whose 1 is an answer.
ERROR_EXIT = 2


def register(commands: Any, options: Options) -> None:
    """Add ``drift`` and ``validate`` to the ``nbtrail`` commands."""
    _add_drift(commands, options)
    _add_validate(commands, options)


# -- drift ------------------------------------------------------------------------------


def _add_drift(commands: Any, options: Options) -> None:
    drift = add_command(
        commands, "drift", _drift, [options.store, options.json],
        help="compare a prediction log (or data) with a model's training data",
        description="Measure drift of DATA (a prediction log folder written by `nbtrail "
                    "serve`, or a Parquet file) against the training data of MODEL_OR_RUN, "
                    "per feature and for the predictions, and record the report as a "
                    "monitoring run linked to the model.",
        epilog="Exit status: 0 no drift (or drift without --fail-on-drift), 1 drift with "
               "--fail-on-drift, 2 bad input.",
    )
    drift.set_defaults(error_exit=ERROR_EXIT)
    drift.add_argument("reference", metavar="MODEL_OR_RUN",
                       help="a model id (mdl_…), a registry reference (churn@champion, "
                            "churn/3) or a run id (its last model)")
    drift.add_argument("current", metavar="DATA",
                       help="a prediction log folder, or a Parquet file of new rows")
    drift.add_argument("--fail-on-drift", action="store_true",
                       help="exit with status 1 when anything drifted (for CI or a scheduler)")
    drift.add_argument("--html", metavar="FILE", help="also write the report as an HTML page")
    drift.add_argument("--no-log", action="store_true",
                       help="do not record the report in the store")
    drift.add_argument("--psi", metavar="X", type=positive_float,
                       help="PSI at or above which a feature drifts (default: 0.2)")
    drift.add_argument("--p-value", metavar="X", type=positive_float,
                       help="significance level of the KS / chi-square tests (default: 0.05)")


def _drift(args: argparse.Namespace) -> int:
    from ..monitor import Thresholds, drift

    store = open_store(args)
    changes = {k: v for k, v in (("psi", args.psi), ("p_value", args.p_value)) if v is not None}
    report = drift(args.reference, args.current, log=not args.no_log,
                   thresholds=Thresholds(**changes), store=store)
    if args.html:
        report.save_html(args.html)
    if args.json:
        render.print_json(report.to_dict())
    else:
        print(report.verdict)
        render.print_frame(report.to_polars().select(
            "feature", "kind", "test", "statistic", "p_value", "psi", "drifted", "reason"))
        if report.metric is not None:
            print(f"{report.metric.name}: {report.metric.current:.4g} "
                  f"(training: {report.metric.reference})")
        for note in report.notes:
            print(f"note: {note}")
        if report.run_id:
            print(f"recorded as monitoring run {report.run_id}")
    return 1 if args.fail_on_drift and report.has_drift else 0


# -- validate ---------------------------------------------------------------------------


def _add_validate(commands: Any, options: Options) -> None:
    validate = add_command(
        commands, "validate", _validate, [options.store, options.json],
        help="check data against a model's training data, column by column",
        description="List missing or unexpected columns, wrong types, nulls, unseen "
                    "categories and out-of-range values of DATA against MODEL_OR_RUN.",
        epilog="Exit status: 0 valid (or problems without --fail-on-problems), 1 problems "
               "with --fail-on-problems, 2 bad input.",
    )
    validate.set_defaults(error_exit=ERROR_EXIT)
    validate.add_argument("reference", metavar="MODEL_OR_RUN",
                          help="a model id (mdl_…), a registry reference (churn@champion, "
                            "churn/3) or a run id (its last model)")
    validate.add_argument("data", metavar="DATA",
                          help="a Parquet file, or a prediction log folder")
    validate.add_argument("--fail-on-problems", action="store_true",
                          help="exit with status 1 when a problem is found")


def _validate(args: argparse.Namespace) -> int:
    from ..monitor import validate

    store = open_store(args)
    report = validate(args.data, against=args.reference, store=store)
    if args.json:
        render.print_json({"reference": report.reference, "source": report.source,
                           "rows": report.rows, "ok": report.ok,
                           "problems": report.to_polars().to_dicts()})
    elif report.ok:
        print(f"valid: {report.rows} rows, no problem against {report.reference}")
    else:
        print(f"{len(report.problems)} problems in {report.rows} rows against "
              f"{report.reference}")
        render.print_frame(report.to_polars())
    return 1 if args.fail_on_problems and not report.ok else 0
