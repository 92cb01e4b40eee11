"""``nbtrail challenge`` and ``nbtrail traffic``: the champion against its challengers.

``challenge`` answers a question, so 1 means "a challenger is significantly worse" (with
``--fail-if-worse``) and any error exits 2. ``traffic`` shows a package's live view and
can open the request that promotes its challenger.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
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

    parser = add_command(
        commands, "traffic", _traffic, [options.store, options.json],
        help="a serving package's versions, traffic split, agreement and latency",
        description="Show PACKAGE's versions and, from the prediction logs its deployments "
                    "recorded (or --log-dir), each version's share of answers, errors, "
                    "dropped shadow work and agreement with the champion, and the latest "
                    "challenge report. --promote opens a promotion request for a challenger.",
    )
    parser.add_argument("package", metavar="PACKAGE", help="a package name or id (pkg_…)")
    parser.add_argument("--log-dir", metavar="DIR", help="read this prediction log as well")
    parser.add_argument("--every", type=int, default=60, metavar="SECONDS",
                        help="the timeline's bucket width (default: 60)")
    parser.add_argument("--timeline", action="store_true",
                        help="print the timeline (one row per bucket and version)")
    parser.add_argument("--promote", nargs="?", const="", metavar="VERSION",
                        help="request that --alias point at VERSION (default: the challenge "
                             "report's best challenger, else the only one)")
    parser.add_argument("--alias", default="champion", help="the alias --promote asks for")
    parser.add_argument("--note", help="the note of the --promote request")


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


def _traffic(args: argparse.Namespace) -> int:
    from ..monitor._traffic import traffic

    view = traffic(args.package, log_dir=args.log_dir, every=args.every, store=open_store(args))
    request = None
    if args.promote is not None:
        request = view.promote(args.promote or None, alias=args.alias, note=args.note)
    if args.json:
        render.print_json(view.to_dict() | ({"request": asdict(request)} if request else {}))
        return 0
    print(repr(view))
    render.print_frame(view.timeline.drop("compared") if args.timeline else view.totals())
    if view.challenge:
        print(f"latest challenge ({view.challenge['created_at']}): {view.challenge['verdict']}")
    if request is not None:
        print(repr(request))
    return 0
