"""``nbtrail import mlflow``: bring the runs of another tracker into the store."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ._common import Options, add_command, open_store, progress_line


def register(commands: Any, options: Options) -> None:
    """Add ``import`` (``mlflow``) to the ``nbtrail`` commands."""
    group = add_command(commands, "import", None, [options.store],
                        help="bring runs over from another tracker (MLflow)")
    sources = group.add_subparsers(dest="import_source", metavar="SOURCE", required=True)
    mlflow = add_command(
        sources, "mlflow", _mlflow, [options.store],
        help="copy an MLflow store's experiments, runs and model versions (needs mlflow)",
        description="Copy the experiments, runs (status, times, nesting, params, tags, every "
                    "metric point, artifacts) and registered model versions of an MLflow "
                    "tracking store into this store, read through MLflow's own client. "
                    "Running it again imports only what is new.",
        epilog="MLflow 3 reads a file store only with MLFLOW_ALLOW_FILE_STORE=true. "
               "See docs/migrating-from-mlflow.md.",
    )
    mlflow.add_argument("tracking_uri", metavar="TRACKING_URI",
                        help="sqlite:///mlflow.db, a file store folder such as ./mlruns, "
                             "postgresql://… or http://host:5000")
    mlflow.add_argument("--experiment", metavar="NAME", dest="experiments", action="extend",
                        nargs="+", help="import only these MLflow experiments (by name; "
                                        "default: every active one)")


def _mlflow(args: argparse.Namespace) -> int:
    from ..importers import import_mlflow

    # MLflow draws a progress bar for every artifact it downloads; this command prints
    # its own progress. A value the user set wins.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    result = import_mlflow(args.tracking_uri, experiments=args.experiments,
                           store=open_store(args, must_exist=False), progress=progress_line)
    for line in result.lines():
        print(line)
    for note in result.notes:
        progress_line(f"note: {note}")
    return 0
