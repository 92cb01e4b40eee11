"""The ``nbtrail`` command line: list, inspect, query and compare the runs in a store.

Every command only reads, except ``reproduce`` (which logs the re-executed run), ``exp``
(which makes git branches), ``sweep worker`` (which runs sweep trials and records them),
``drift`` and ``challenge`` (which record their report as a monitoring run unless
``--no-log``), ``import mlflow`` (which copies MLflow's runs into the store, creating it
if need be),
``store init|copy`` (which create a schema or copy a store into another), ``sync``
(which folds or ships this machine's records and uploads its waiting blobs) and ``models
register|alias|policy|promote|approve|reject`` (which append to the registry's audit
trail), ``retrain`` (which runs a notebook, registers its model and requests promotions).
The store is ``--store PATH`` (or URL) if given, else the one the settings point at
(``$NBTRAIL_STORE``, else ``$NBTRAIL_HOME``, else ``.nbtrail`` at the git root or in the
current folder); a missing
store is reported, never created (the worker creates one to record its trials, and the
dashboard starts empty with a hint).

Exit status: 0 on success, 1 for an error nbtrail reports (no store, unknown run, bad
filter or SQL...: the exit column of ``nbtrail.errors.OUTCOMES``), 2 for a command line
that does not parse. Both print one ``nbtrail: error: ...`` message to stderr; anything
unexpected keeps its traceback. ``drift``, ``validate``, ``challenge`` and ``stale`` answer a
question, so for them 1 means "drift" / "problems" / "worse" / "stale" (with
``--fail-on-drift`` / ``--fail-on-problems`` / ``--fail-if-worse`` / ``--fail-if-stale``) and
any error is 2.

One module a command group, each command's arguments beside its handler: ``_runs`` (runs
ls/show, metrics), ``_query`` (sql, lineage), ``_experiments`` (branches, compare,
reproduce, exp), ``_sweeps`` (sweep worker), ``_monitor`` (drift, validate),
``_challenge`` (challenge), ``_serve`` (dashboard, package, serve), ``_registry`` (models,
audit), ``_stale`` (stale),
``_retrain`` (retrain), ``_import`` (import mlflow), ``_store`` (sync, store
init/copy/doctor); ``_render`` prints tables and JSON for all of them.

Examples::

    nbtrail runs ls --where "metrics.acc > 0.9" --order-by -metrics.acc
    nbtrail runs show 01J9ZK3T4Q --json
    nbtrail sql "select experiment, count(*) from runs group by 1"
    nbtrail lineage mdl_01J9ZK4A7C --direction up
    nbtrail metrics 01J9ZK3T4Q loss
    nbtrail branches --metric val_f1
    nbtrail compare main feat/more-trees --metric val_f1
    nbtrail reproduce 01J9ZK3T4Q --rtol 1e-4
    nbtrail exp new feat/more-trees
    nbtrail exp restore 01J9ZK3T4Q --branch retry-baseline
    nbtrail sweep worker rf-depth --storage postgresql://user@db/optuna --objective train:objective
    nbtrail drift mdl_01J9ZK4A7C serving/predictions --fail-on-drift --html drift.html
    nbtrail validate mdl_01J9ZK4A7C new-data.parquet
    nbtrail challenge serving/predictions --labels outcomes.parquet --fail-if-worse
    nbtrail dashboard --port 5006 --token s3cret
    nbtrail models register 01J9ZK3T4Q --name churn --description "Monthly churn risk"
    nbtrail models policy churn champion --metric accuracy --data holdout.parquet --target y
    nbtrail models promote churn --version 2 --alias champion --note "retrained on May"
    nbtrail models approve 7 --note "checked the card"
    nbtrail models card churn@champion -o card.html
    nbtrail retrain churn --data may.parquet --when drift --holdout may-holdout.parquet
    nbtrail stale churn@champion recent.parquet --labels churned --fail-if-stale
    nbtrail audit verify
    nbtrail audit export --format jsonl -o audit.jsonl
    nbtrail store init postgresql://ana@db.internal/nbtrail
    nbtrail store doctor --store postgresql://ana@db.internal/nbtrail
    nbtrail sync --status --store postgresql://ana@db.internal/nbtrail
    nbtrail import mlflow sqlite:///mlflow.db --experiment churn
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import NbtrailError, outcome
from . import (
    _challenge,
    _experiments,
    _import,
    _monitor,
    _query,
    _registry,
    _retrain,
    _runs,
    _serve,
    _stale,
    _store,
    _sweeps,
)
from ._common import PROG, ArgumentParser, Handler, UsageError, print_error, shared_options

__all__ = ["build_parser", "main"]

# The order of the commands in --help.
_GROUPS = (_runs, _query, _experiments, _sweeps, _monitor, _challenge, _serve, _registry,
           _stale, _retrain, _import, _store)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nbtrail`` command."""
    options = shared_options()
    parser = ArgumentParser(
        prog=PROG, parents=[options.store], allow_abbrev=False,
        description="Inspect the runs, metrics and lineage recorded by nbtrail.",
        epilog="Exit status: 0 success, 1 nbtrail error, 2 bad command line.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in _GROUPS:
        group.register(commands, options)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``nbtrail`` command line with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status: 0 success, 1 an nbtrail error, 2 a bad command line.
    """
    _tolerate_unencodable_output()
    parser = build_parser()
    try:
        args = parser.parse_args(_glue_order_by(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        print_error(str(exc))
        return 2
    except SystemExit as exc:  # --help and --version print, then exit 0
        return exc.code if isinstance(exc.code, int) else 0
    handler: Handler = args.handler
    try:
        return handler(args)
    except NbtrailError as exc:
        print_error(str(exc))
        return getattr(args, "error_exit", None) or outcome(exc).exit_code
    except BrokenPipeError:
        # `nbtrail runs ls | head` closes the pipe early; silence the flush at exit too.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


def _glue_order_by(argv: Sequence[str]) -> list[str]:
    """Join ``--order-by -metrics.acc`` into one token.

    argparse takes ``-metrics.acc`` for an unknown option, yet a leading ``-`` is how the
    filter language spells descending, so it is the first thing users type.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out.extend(argv[i:])
            break
        following = argv[i + 1] if i + 1 < len(argv) else None
        if (token == "--order-by" and following is not None and following.startswith("-")
                and not following.startswith("--") and following != "-h"):
            out.append(f"--order-by={following}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def _tolerate_unencodable_output() -> None:
    # A run name or tag in a script the terminal's encoding lacks must not crash the output.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(OSError, ValueError):
                stream.reconfigure(errors="backslashreplace")
