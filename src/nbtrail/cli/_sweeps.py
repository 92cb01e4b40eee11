"""``nbtrail sweep worker``: take part in an Optuna sweep from another process or machine."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InvalidInputError
from ._common import Options, add_command, open_store, positive_float, positive_int


def register(commands: Any, options: Options) -> None:
    """Add ``sweep`` (``worker``) to the ``nbtrail`` commands."""
    sweep = add_command(commands, "sweep", None, [options.store],
                        help="take part in an Optuna sweep (needs nbtrail[sweeps])")
    sweep_commands = sweep.add_subparsers(dest="sweep_command", metavar="COMMAND",
                                          required=True)
    worker = add_command(
        sweep_commands, "worker", _sweep_worker, [options.store],
        help="run trials of an existing sweep here, recorded in this machine's store",
        description="Join the sweep NAME: load its study from --storage, run trials of the "
                    "objective and record each as a run in this machine's store. The "
                    "notebook's sweep.sync() brings them into its own store.",
    )
    worker.add_argument("name", metavar="NAME", help="the sweep's name, as in nt.sweep(name=...)")
    worker.add_argument("--objective", metavar="MODULE:FUNCTION", required=True,
                        help="the objective, e.g. train:objective for objective() in train.py "
                             "(looked up from the current folder too)")
    worker.add_argument("--storage", metavar="URL",
                        help="the study's database, e.g. postgresql://user:pass@host/db "
                             "(default: the sweep's journal file in the store)")
    worker.add_argument("--n-trials", metavar="N", type=positive_int,
                        help="run N trials in this worker")
    worker.add_argument("--timeout", metavar="SECONDS", type=positive_float,
                        help="start no trial after this many seconds")


def _sweep_worker(args: argparse.Namespace) -> int:
    from ..sweeps._worker import run_worker

    if args.n_trials is None and args.timeout is None:
        raise InvalidInputError("give --n-trials N or --timeout SECONDS (or both)")
    # The worker creates the store to record its trials in.
    run_worker(args.name, args.storage, args.objective, n_trials=args.n_trials,
               timeout=args.timeout, store=open_store(args, must_exist=False))
    return 0
