"""``nbtrail retrain``: the retraining loop, for a scheduler.

Its exit status answers "was a challenger registered?": 0 yes, 1 the trigger did not
fire, 2 any error (one line on stderr). The JSON summary is written every time, errors
included, to ``--summary FILE`` (and to stdout with ``--json``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._json import dumps
from ..errors import InvalidInputError, NbtrailError
from . import _render as render
from ._common import Options, add_command, non_negative_float, open_store, progress_line

# The exit status of an error in a command whose 1 is an answer.
ERROR_EXIT = 2


def register(commands: Any, options: Options) -> None:
    """Add ``retrain`` to the ``nbtrail`` commands."""
    retrain = add_command(
        commands, "retrain", _retrain, [options.store, options.json],
        help="retrain a model's champion on new data when a trigger fires",
        description="Decide whether NAME@champion needs retraining on DATA (--when drift, "
                    "stale or always); if so, re-execute its training notebook from its "
                    "code snapshot with data_path (and labels) as notebook parameters, "
                    "register the model as the next version, point @challenger at it and "
                    "open a promotion request to @champion whose checks run on --holdout.",
        epilog="Exit status: 0 a challenger was registered, 1 the trigger did not fire, "
               "2 error. See docs/retraining.md.",
    )
    retrain.set_defaults(error_exit=ERROR_EXIT)
    retrain.add_argument("name", metavar="NAME", help="the registered model, e.g. churn")
    retrain.add_argument("--data", metavar="PATH", required=True,
                         help="the new data (a Parquet file): drift is measured on it and "
                              "the notebook trains on it (its data_path parameter)")
    retrain.add_argument("--labels", metavar="COL",
                         help="the label column of --data: needed by --when stale, and "
                              "passed to the notebook as its labels parameter")
    retrain.add_argument("--when", choices=("drift", "stale", "always"), default="always",
                         help="the trigger (default: always)")
    retrain.add_argument("--holdout", metavar="PATH",
                         help="held-out labelled data the promotion checks compare the "
                              "challenger and the champion on (default: --data)")
    retrain.add_argument("--summary", metavar="FILE",
                         help="write the JSON summary to FILE (also on error)")
    retrain.add_argument("--timeout", metavar="S", type=non_negative_float, default=600,
                         help="seconds a single cell may run, 0 for no limit (default: 600)")
    retrain.add_argument("--trusted", action="store_true",
                         help="let the checks load pickled models (runs their code)")


def _retrain(args: argparse.Namespace) -> int:
    from ..registry._retrain import retrain_in

    try:
        result = retrain_in(open_store(args), args.name, data=args.data, when=args.when,
                            holdout=args.holdout, labels=args.labels,
                            timeout=args.timeout or None, trusted=args.trusted,
                            progress=progress_line)
    except NbtrailError as exc:
        _write(args, {"model": args.name, "trigger": args.when, "fired": None,
                      "error": str(exc)})
        raise  # main prints the one line and exits 2
    _write(args, {**result.to_dict(), "error": None})
    if not args.json:
        print(result.summary())
        for check in result.request.checks if result.request else ():
            print(f"  {check['check']}: {'passed' if check['passed'] else 'FAILED'}: "
                  f"{check['detail']}")
        for note in result.notes:
            print(f"note: {note}")
    return 0 if result.fired else 1


def _write(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    if args.summary:
        try:
            Path(args.summary).write_text(
                dumps(summary, nonfinite="text", indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot write the summary to {args.summary}: "
                                    f"{exc.strerror or exc}") from None
    if args.json:
        render.print_json(summary)
