"""``nbtrail stale``: whether a registered version has gone stale on recent labelled data.

It answers a question, so, as for ``nbtrail drift``, exit status 1 means "stale" (with
``--fail-if-stale``) and any error exits 2.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import _render as render
from ._common import Options, add_command, open_store
from ._monitor import ERROR_EXIT


def register(commands: Any, options: Options) -> None:
    """Add ``stale`` to the ``nbtrail`` commands."""
    stale = add_command(
        commands, "stale", _stale, [options.store, options.json],
        help="check whether a registered version is stale on recent labelled data",
        description="Compare REF's metric on DATA (a Parquet file of recent rows with their "
                    "labels) with its metric at registration, measure the drift of DATA "
                    "from its training data, check its age and, with --against, score "
                    "another version on the same rows. Nothing is recorded.",
        epilog="Exit status: 0 fresh (or stale without --fail-if-stale), 1 stale with "
               "--fail-if-stale, 2 bad input.",
    )
    stale.set_defaults(error_exit=ERROR_EXIT)
    stale.add_argument("ref", metavar="REF",
                       help="a registry reference: churn@champion or churn/3")
    stale.add_argument("data", metavar="DATA", help="a Parquet file of recent labelled rows")
    stale.add_argument("--labels", metavar="COL", required=True,
                       help="the column of DATA that holds the true outcomes")
    stale.add_argument("--metric", metavar="M",
                       help="the metric to compare (default: the alias's policy metric, else "
                            "accuracy for a classifier and rmse otherwise)")
    stale.add_argument("--against", metavar="REF",
                       help="another version (an older one, a retrained challenger) to "
                            "score on the same rows")
    stale.add_argument("--trusted", action="store_true",
                       help="allow loading pickled models (a pickle runs code when loaded)")
    stale.add_argument("--fail-if-stale", action="store_true",
                       help="exit with status 1 when the version is stale (for CI or a "
                            "scheduler)")


def _stale(args: argparse.Namespace) -> int:
    from ..registry._staleness import staleness

    report = staleness(args.ref, args.data, args.labels, metric=args.metric,
                       against=args.against, trusted=args.trusted, store=open_store(args))
    if args.json:
        render.print_json(report.to_dict())
    else:
        print(report.verdict)
        render.print_frame(report.to_polars())
        for note in report.notes:
            print(f"note: {note}")
    return 1 if args.fail_if_stale and report.stale else 0
