"""``nbtrail challenge``: the champion against its shadows and canaries.

It answers a question, so 1 means "a challenger is significantly worse" (with
``--fail-if-worse``) and any error exits 2.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import _render as render
from ._common import Options, add_command, open_store
from ._monitor import ERROR_EXIT


def register(commands: Any, options: Options) -> None:
    """Add ``challenge`` to the ``nbtrail`` commands."""
    parser = add_command(
        commands, "challenge", _challenge, [options.store, options.json],
        help="compare a champion with its shadows and canaries on a prediction log",
        description="Read LOG_DIR (the prediction log of a server of several versions) and "
                    "report per version its traffic, errors, latency, agreement with the "
                    "champion and, with --labels, its metric with bootstrap intervals; the "
                    "report is recorded as a monitoring run linked to every version's model.",
        epilog="Exit status: 0 done, 1 a challenger significantly worse than the champion "
               "with --fail-if-worse, 2 bad input.",
    )
    parser.set_defaults(error_exit=ERROR_EXIT)
    parser.add_argument("log_dir", metavar="LOG_DIR", help="the server's prediction log folder")
    parser.add_argument("--labels", metavar="FILE",
                        help="a Parquet file with request_id, row (0, 1, … within the "
                             "request) and label")
    parser.add_argument("--metric", choices=("accuracy", "rmse", "mae"),
                        help="the metric on labelled rows (default: accuracy for classifiers, "
                             "rmse for regressors)")
    parser.add_argument("--fail-if-worse", action="store_true",
                        help="exit with status 1 when a challenger's metric is significantly "
                             "worse than the champion's (the difference's interval excludes 0)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not record the report in the store")


def _challenge(args: argparse.Namespace) -> int:
    from ..monitor._challenge import challenge

    report = challenge(args.log_dir, args.labels, metric=args.metric, log=not args.no_log,
                       store=None if args.no_log else open_store(args))
    if args.json:
        render.print_json(report.to_dict())
    else:
        print(report.verdict)
        render.print_frame(report.to_polars().select(
            "version", "role", "requests", "rows", "errors", "dropped", "latency_p50_ms",
            "agreement", "prediction_psi", "metric", "difference", "difference_low",
            "difference_high"))
        if report.unknown_labels:
            print(f"note: {report.unknown_labels} labels match no logged row")
        if report.run_id:
            print(f"recorded as monitoring run {report.run_id}")
    return 1 if args.fail_if_worse and report.worse else 0
