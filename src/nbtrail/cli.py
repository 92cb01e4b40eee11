"""The ``nbtrail`` command line: list, inspect, query and compare the runs in a store.

Every command only reads, except ``reproduce`` (which logs the re-executed run), ``exp``
(which makes git branches), ``sweep worker`` (which runs sweep trials and records them) and
``drift`` (which records its report as a monitoring run unless ``--no-log``).
The store is ``--store PATH`` if given, else the one the settings point at
(``$NBTRAIL_HOME``, else ``.nbtrail`` at the git root or in the current folder); a missing
store is reported, never created (the worker creates one to record its trials).

Exit status: 0 on success, 1 for an error nbtrail reports (no store, unknown run, bad
filter or SQL...), 2 for a command line that does not parse. Both print one
``nbtrail: error: ...`` message to stderr; anything unexpected keeps its traceback.
``drift`` and ``validate`` answer a question, so for them 1 means "drift" / "problems"
(with ``--fail-on-drift`` / ``--fail-on-problems``) and any error is 2.

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
    nbtrail dashboard --port 5006 --token s3cret
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import fnmatch
import io
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from ._config import config
from .errors import InvalidInputError, NbtrailError, StoreNotFoundError

if TYPE_CHECKING:
    import polars as pl

    from .store._duckdb import DuckDBStore
    from .store._records import Lineage, Run

PROG = "nbtrail"
DEFAULT_LIMIT = 50
# Run ids are ULIDs whose first 10 characters encode the start millisecond; runs started in
# the same millisecond need more, so short ids grow until they are unique in the store.
SHORT_ID_MIN = 10
MAX_CELL_WIDTH = 48
_RUN_ID_COLUMNS = ("run_id", "parent_id")
_TIME_COLUMNS = ("start_time", "end_time")
_DEFAULT_RUN_COLUMNS = ("run_id", "name", "experiment", "status", "start_time", "duration")


class _UsageError(Exception):
    """A command line that argparse rejected; ``main`` turns it into exit status 2."""


class _ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors become one ``nbtrail: error:`` line, not usage text."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage and exiting, so ``main`` can return 2."""
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# -- argument types ---------------------------------------------------------------------


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected 1 or more, got 0")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _column_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated column names, got {text!r}"
        )
    return names


# -- the parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nbtrail`` command."""
    # Every level accepts --store and --json, so they may follow the subcommand. SUPPRESS
    # keeps a subcommand's unset default from overwriting a value given before it.
    store_opt = _ArgumentParser(add_help=False, allow_abbrev=False)
    store_opt.add_argument(
        "--store", metavar="PATH", default=argparse.SUPPRESS,
        help="the store folder (default: $NBTRAIL_HOME, else .nbtrail at the git root "
             "or in the current folder)",
    )
    json_opt = _ArgumentParser(add_help=False, allow_abbrev=False)
    json_opt.add_argument("--json", action="store_true",
                          help="print JSON (NaN and infinities as strings) instead of text")

    parser = _ArgumentParser(
        prog=PROG, parents=[store_opt], allow_abbrev=False,
        description="Inspect the runs, metrics and lineage recorded by nbtrail.",
        epilog="Exit status: 0 success, 1 nbtrail error, 2 bad command line.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    runs = commands.add_parser("runs", parents=[store_opt], allow_abbrev=False,
                               help="list runs or show one run")
    runs_commands = runs.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)

    ls = runs_commands.add_parser(
        "ls", parents=[store_opt, json_opt], allow_abbrev=False,
        help="list runs, newest first",
        description="List runs as a table: one row a run, latest metrics as columns.",
    )
    ls.add_argument("--where", metavar="FILTER",
                    help="filter, e.g. \"metrics.acc > 0.9 and params.penalty = 'l2'\"")
    ls.add_argument("--order-by", metavar="SPEC", action="append",
                    help="sort fields, '-' first for descending, e.g. -metrics.acc "
                         "(repeatable, or comma-separated)")
    ls.add_argument("--experiment", metavar="NAME", help="only runs of this experiment")
    ls.add_argument("--limit", metavar="N", type=_non_negative_int, default=DEFAULT_LIMIT,
                    help=f"show at most N runs, 0 for all (default: {DEFAULT_LIMIT})")
    ls.add_argument("--columns", metavar="COL,COL", type=_column_list,
                    help="columns to show, globs allowed, e.g. name,params.*,metrics.acc "
                         "(default: run_id, name, experiment, status, start_time, duration "
                         "and every metric)")
    ls.add_argument("--full-ids", action="store_true",
                    help="print whole run ids instead of the shortest unique prefix")
    ls.set_defaults(handler=_runs_ls)

    show = runs_commands.add_parser(
        "show", parents=[store_opt, json_opt], allow_abbrev=False,
        help="everything recorded about one run",
    )
    show.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix of one")
    show.add_argument("--packages", action="store_true",
                      help="list the installed packages, not only their number")
    show.set_defaults(handler=_runs_show)

    sql = commands.add_parser(
        "sql", parents=[store_opt, json_opt], allow_abbrev=False,
        help="run a read-only SQL query over the store's tables",
        description="Run read-only DuckDB SQL over the store's tables (see docs/store.md).",
    )
    sql.add_argument("query", metavar="QUERY", help="the query; '-' reads it from stdin")
    sql.set_defaults(handler=_sql)

    lineage = commands.add_parser(
        "lineage", parents=[store_opt, json_opt], allow_abbrev=False,
        help="where a run, data set, model or artifact came from, or what used it",
    )
    lineage.add_argument("node_id", metavar="ID",
                         help="a run id (or unique prefix), or a ds_/mdl_/art_ id")
    lineage.add_argument("--direction", choices=("up", "down", "both"), default="up",
                         help="up: towards inputs, down: towards outputs (default: up)")
    lineage.add_argument("--depth", metavar="N", type=_positive_int, default=10,
                         help="follow at most N edges from ID (default: 10)")
    lineage.add_argument("--list", action="store_true", dest="as_list",
                         help="print one 'src --relation--> dst' line an edge, not a tree")
    lineage.set_defaults(handler=_lineage)

    metrics = commands.add_parser(
        "metrics", parents=[store_opt, json_opt], allow_abbrev=False,
        help="every logged point of one metric of a run",
    )
    metrics.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix of one")
    metrics.add_argument("key", metavar="KEY", help="the metric name")
    metrics.set_defaults(handler=_metrics)

    branches = commands.add_parser(
        "branches", parents=[store_opt, json_opt], allow_abbrev=False,
        help="one row a git branch runs were made on, with its best run",
    )
    _add_ranking(branches)
    branches.set_defaults(handler=_branches)

    compare = commands.add_parser(
        "compare", parents=[store_opt, json_opt], allow_abbrev=False,
        help="set the best runs of branches (or given runs) side by side",
        description="Compare metrics, params, data, code, packages, model size and predict "
                    "latency of the best run of each branch, or of the runs given.",
    )
    compare.add_argument("names", metavar="BRANCH", nargs="*",
                         help="branches whose best runs to compare")
    picked = compare.add_mutually_exclusive_group()
    picked.add_argument("--runs", metavar="RUN_ID", nargs="+",
                        help="compare these runs instead (ids or unique prefixes)")
    picked.add_argument("--experiments", metavar="NAME", nargs="+",
                        help="compare the best runs of these experiments instead")
    _add_ranking(compare)
    compare.add_argument("--model", metavar="NAME",
                         help="the model to size and time (default: each run's last one)")
    compare.add_argument("--no-latency", action="store_true",
                         help="do not load the models to time predictions")
    compare.add_argument("--trust-models", action="store_true",
                         help="also load pickled models to time them (runs their code)")
    compare.set_defaults(handler=_compare)
    reproduce = commands.add_parser(
        "reproduce", parents=[store_opt, json_opt], allow_abbrev=False,
        help="re-execute a run's notebook from its code snapshot and compare the metrics",
        description="Check the run's code snapshot out into a temporary git worktree (your "
                    "checkout is not touched), execute its notebook there, and compare the "
                    "latest metric values with the original run's.",
        epilog="Exit status: 0 the metrics match, 1 they do not or the notebook failed.",
    )
    reproduce.add_argument("run_id", metavar="RUN", help="a run id or a unique prefix of one")
    reproduce.add_argument("--rtol", metavar="X", type=_non_negative_float, default=1e-6,
                           help="relative tolerance (default: 1e-6)")
    reproduce.add_argument("--atol", metavar="X", type=_non_negative_float, default=1e-9,
                           help="absolute tolerance (default: 1e-9)")
    reproduce.add_argument("--timeout", metavar="S", type=_non_negative_float, default=600,
                           help="seconds a single cell may run, 0 for no limit (default: 600)")
    reproduce.add_argument("--kernel", metavar="NAME",
                           help="the Jupyter kernel to use (default: the notebook's own)")
    reproduce.add_argument("--keep-worktree", action="store_true",
                           help="keep the worktree the notebook ran in, to inspect it")
    reproduce.set_defaults(handler=_reproduce)

    exp = commands.add_parser("exp", allow_abbrev=False,
                              help="make experiment branches in git")
    exp_commands = exp.add_subparsers(dest="exp_command", metavar="COMMAND", required=True)
    new = exp_commands.add_parser(
        "new", allow_abbrev=False,
        help="create a branch at the current commit and switch to it",
        description="Create the branch NAME at the current commit and switch to it, like "
                    "`git switch -c NAME`: uncommitted changes come along. Runs started on it "
                    "belong to the experiment NAME.",
    )
    new.add_argument("name", metavar="NAME", help="the branch name, e.g. feat/more-trees")
    new.set_defaults(handler=_exp_new)
    restore = exp_commands.add_parser(
        "restore", parents=[store_opt], allow_abbrev=False,
        help="create a branch at a run's code snapshot (without switching)",
        description="Create a branch whose tip is the code snapshot of RUN, in the repository "
                    "the run was started in. Your checkout stays where it is.",
    )
    restore.add_argument("run_id", metavar="RUN", help="a run id or a unique prefix of one")
    restore.add_argument("--branch", metavar="NAME",
                         help="the branch name (default: nbtrail/<short run id>)")
    restore.set_defaults(handler=_exp_restore)

    sweep = commands.add_parser("sweep", parents=[store_opt], allow_abbrev=False,
                                help="take part in an Optuna sweep (needs nbtrail[sweeps])")
    sweep_commands = sweep.add_subparsers(dest="sweep_command", metavar="COMMAND",
                                          required=True)
    worker = sweep_commands.add_parser(
        "worker", parents=[store_opt], allow_abbrev=False,
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
    worker.add_argument("--n-trials", metavar="N", type=_positive_int,
                        help="run N trials in this worker")
    worker.add_argument("--timeout", metavar="SECONDS", type=_positive_float,
                        help="start no trial after this many seconds")
    worker.set_defaults(handler=_sweep_worker)

    drift = commands.add_parser(
        "drift", parents=[store_opt, json_opt], allow_abbrev=False,
        help="compare a prediction log (or data) with a model's training data",
        description="Measure drift of DATA (a prediction log folder written by `nbtrail "
                    "serve`, or a Parquet file) against the training data of MODEL_OR_RUN, "
                    "per feature and for the predictions, and record the report as a "
                    "monitoring run linked to the model.",
        epilog="Exit status: 0 no drift (or drift without --fail-on-drift), 1 drift with "
               "--fail-on-drift, 2 bad input.",
    )
    drift.add_argument("reference", metavar="MODEL_OR_RUN",
                       help="a model id (mdl_…) or a run id (its last model)")
    drift.add_argument("current", metavar="DATA",
                       help="a prediction log folder, or a Parquet file of new rows")
    drift.add_argument("--fail-on-drift", action="store_true",
                       help="exit with status 1 when anything drifted (for CI or a scheduler)")
    drift.add_argument("--html", metavar="FILE", help="also write the report as an HTML page")
    drift.add_argument("--no-log", action="store_true",
                       help="do not record the report in the store")
    drift.add_argument("--psi", metavar="X", type=_positive_float,
                       help="PSI at or above which a feature drifts (default: 0.2)")
    drift.add_argument("--p-value", metavar="X", type=_positive_float,
                       help="significance level of the KS / chi-square tests (default: 0.05)")
    drift.set_defaults(handler=_drift)

    validate = commands.add_parser(
        "validate", parents=[store_opt, json_opt], allow_abbrev=False,
        help="check data against a model's training data, column by column",
        description="List missing or unexpected columns, wrong types, nulls, unseen "
                    "categories and out-of-range values of DATA against MODEL_OR_RUN.",
        epilog="Exit status: 0 valid (or problems without --fail-on-problems), 1 problems "
               "with --fail-on-problems, 2 bad input.",
    )
    validate.add_argument("reference", metavar="MODEL_OR_RUN",
                          help="a model id (mdl_…) or a run id (its last model)")
    validate.add_argument("data", metavar="DATA",
                          help="a Parquet file, or a prediction log folder")
    validate.add_argument("--fail-on-problems", action="store_true",
                          help="exit with status 1 when a problem is found")
    validate.set_defaults(handler=_validate)

    dashboard = commands.add_parser(
        "dashboard", parents=[store_opt], allow_abbrev=False,
        help="serve the read-only team dashboard (needs nbtrail[dashboard])",
        description="Serve a Panel dashboard over the store: runs, run details, comparison, "
                    "branches, sweeps, lineage and monitoring. It never writes to the store.",
    )
    dashboard.add_argument("--port", metavar="N", type=_non_negative_int, default=5006,
                           help="the port to listen on, 0 for any free one (default: 5006)")
    dashboard.add_argument("--address", metavar="HOST", default="127.0.0.1",
                           help="the address to listen on (default: 127.0.0.1; 0.0.0.0 "
                                "shares it on the network: set --basic-auth or --token)")
    access = dashboard.add_mutually_exclusive_group()
    access.add_argument("--basic-auth", metavar="USER:PASS", type=_user_password,
                        help="require this user name and password (HTTP basic auth)")
    access.add_argument("--token", metavar="T",
                        help="require this token (?token=T once, or an Authorization: "
                             "Bearer T header)")
    dashboard.add_argument("--show", action="store_true", help="open it in a browser")
    dashboard.set_defaults(handler=_dashboard)

    package = commands.add_parser(
        "package", parents=[store_opt, json_opt], allow_abbrev=False,
        help="turn a logged model into a container build context (and image)",
        description="Write a build context for the model (Dockerfile, pinned lockfile, the "
                    "model in skops format, its signature and lineage, the server, "
                    "Kubernetes manifests) and build the image when podman or docker answers.",
    )
    package.add_argument("ref", metavar="RUN_OR_MODEL",
                         help="a model id (mdl_...) or a run id (its latest model)")
    package.add_argument("--name", help="image and Kubernetes name (default: the model's name)")
    package.add_argument("--output", metavar="DIR", help="the context folder "
                                                         "(default: dist/NAME)")
    package.add_argument("--base-image", metavar="IMAGE",
                         help="default: python:<training Python>-slim")
    package.add_argument("--build", action=argparse.BooleanOptionalAction, default=None,
                         help="build the image (default: when a container engine answers)")
    package.add_argument("--trusted", action="store_true",
                         help="allow a pickled model (its code runs when the server loads it)")
    package.set_defaults(handler=_package)

    serve = commands.add_parser(
        "serve", parents=[store_opt], allow_abbrev=False,
        help="serve a packaged model over HTTP (KServe V2 and POST /predict)",
        description="Serve a package folder, its model folder, or a logged model by id, "
                    "without a container.",
    )
    serve.add_argument("source", metavar="DIR_OR_RUN",
                       help="a folder made by nbtrail package, or a model or run id")
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    serve.add_argument("--port", type=_non_negative_int, default=8080, help="default: 8080")
    serve.add_argument("--workers", type=_positive_int, default=1,
                       help="worker processes (default: 1)")
    serve.add_argument("--range-policy", choices=["warn", "reject"], default="warn",
                       help="values outside the training range: warn (default) or reject")
    serve.add_argument("--log-dir", metavar="DIR", help="keep a prediction log in DIR")
    serve.add_argument("--max-body-bytes", type=_positive_int, default=10 << 20,
                       help="larger requests get 413 (default: 10 MiB)")
    serve.add_argument("--trusted", action="store_true",
                       help="allow a pickled model (its code runs when loaded)")
    serve.set_defaults(handler=_serve)
    return parser


def _user_password(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD, both non-empty")
    return user, password


def _add_ranking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", metavar="KEY",
                        help="a branch's best run is the finished run with the best value of "
                             "this metric (default: its newest finished run)")
    parser.add_argument("--mode", choices=("max", "min"), default="max",
                        help="whether higher or lower values of --metric are better "
                             "(default: max)")


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


# -- the entry point ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the ``nbtrail`` command line with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status: 0 success, 1 an nbtrail error, 2 a bad command line.
    """
    _tolerate_unencodable_output()
    parser = build_parser()
    try:
        args = parser.parse_args(_glue_order_by(sys.argv[1:] if argv is None else argv))
    except _UsageError as exc:
        _print_error(str(exc))
        return 2
    except SystemExit as exc:  # --help and --version print, then exit 0
        return exc.code if isinstance(exc.code, int) else 0
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except NbtrailError as exc:
        _print_error(str(exc))
        return 1
    except BrokenPipeError:
        # `nbtrail runs ls | head` closes the pipe early; silence the flush at exit too.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


def _print_error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _tolerate_unencodable_output() -> None:
    # A run name or tag in a script the terminal's encoding lacks must not crash the output.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(OSError, ValueError):
                stream.reconfigure(errors="backslashreplace")


def _open_store(args: argparse.Namespace) -> DuckDBStore:
    """The store to read; raises ``StoreNotFoundError`` rather than creating one."""
    from .store._duckdb import DB_NAME, DuckDBStore

    given = getattr(args, "store", None)
    if given:
        home = Path(given).expanduser().resolve()
        if home.name == DB_NAME and home.is_file():  # the database file itself was given
            home = home.parent
    else:
        home = config.current.resolve_home()
    store = DuckDBStore(home)
    # Checked here because reading a store that is not there would create its folder.
    if not store.exists():
        where = "given with --store" if given else "found from NBTRAIL_HOME or the current folder"
        raise StoreNotFoundError(
            f"no nbtrail store at {home} ({where}); pass --store PATH or set NBTRAIL_HOME "
            "to a folder where runs were logged"
        )
    return store


# -- commands -----------------------------------------------------------------------------


def _runs_ls(args: argparse.Namespace) -> int:
    store = _open_store(args)
    limit: int | None = args.limit or None
    # One row more than shown tells whether the limit cut the list.
    frame = store.runs(where=args.where, order_by=args.order_by, experiment=args.experiment,
                       limit=None if limit is None else limit + 1)
    cut = limit is not None and frame.height > limit
    if cut:
        frame = frame.head(limit)
    if args.columns:
        columns = _select_columns(frame.columns, args.columns)
    elif args.json:  # scripts get every column; people get a table that fits
        columns = list(frame.columns)
    else:
        columns = [*_DEFAULT_RUN_COLUMNS,
                   *(c for c in frame.columns if c.startswith("metrics."))]
    rows = frame.select(columns).rows()

    if args.json:
        _print_json([dict(zip(columns, row, strict=True)) for row in rows])
    elif not rows:
        print("no runs match" if args.where or args.experiment else
              f"no runs in the store at {store.location}", file=sys.stderr)
    else:
        short: dict[str, str] = {}
        if not args.full_ids and any(c in _RUN_ID_COLUMNS for c in columns):
            all_ids = store.sql("SELECT run_id FROM runs")["run_id"].to_list()
            shown = [v for row in rows for c, v in zip(columns, row, strict=True)
                     if c in _RUN_ID_COLUMNS and v is not None]
            short = short_ids(shown, all_ids)
        cells = [[_run_cell(c, v, short) for c, v in zip(columns, row, strict=True)]
                 for row in rows]
        _print_table(columns, cells, _numeric_columns(columns, rows))
    if cut:
        print(f"(more runs match than --limit {limit}; --limit 0 shows all)", file=sys.stderr)
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    run = _open_store(args).get_run(args.run_id)
    if args.json:
        _print_json(run_to_dict(run, packages=args.packages))
    else:
        print("\n".join(render_run(run, packages=args.packages)))
    return 0


def _sql(args: argparse.Namespace) -> int:
    query = sys.stdin.read() if args.query == "-" else args.query
    if not query.strip():
        raise InvalidInputError("the SQL query is empty")
    frame = _open_store(args).sql(query)
    if args.json:
        _print_json(frame.to_dicts())
        return 0
    _print_frame(frame, null="NULL")
    print(f"({frame.height} row{'' if frame.height == 1 else 's'})", file=sys.stderr)
    return 0


def _print_frame(frame: pl.DataFrame, null: str = "-") -> None:
    rows = frame.rows()
    cells = [[_cell(v, null=null) for v in row] for row in rows]
    _print_table(frame.columns, cells, _numeric_columns(frame.columns, rows))


def _lineage(args: argparse.Namespace) -> int:
    graph = _open_store(args).lineage(args.node_id, direction=args.direction, depth=args.depth)
    if args.json:
        _print_json(graph.to_dict())
    else:
        print("\n".join(render_lineage(graph, as_list=args.as_list)))
    return 0


def _metrics(args: argparse.Namespace) -> int:
    frame = _open_store(args).metric_history(args.run_id, args.key)
    if args.json:
        _print_json(frame.to_dicts())
        return 0
    rows = frame.rows()
    cells = [[_cell(step), _cell(value), _local_time(stamp, "milliseconds")]
             for step, value, stamp in rows]
    _print_table(frame.columns, cells, [True, True, False])
    return 0


def _branches(args: argparse.Namespace) -> int:
    from .experiments._branches import branches

    frame = branches(_open_store(args), args.metric, args.mode)
    if args.json:
        _print_json(frame.to_dicts())
    elif frame.is_empty():
        print("no runs were made on a git branch in this store", file=sys.stderr)
    else:
        _print_frame(frame.drop("git_root"))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .experiments._compare import compare

    if not args.names and not (args.runs or args.experiments):
        raise InvalidInputError("name the branches to compare, or pass --runs or --experiments")
    if args.names and (args.runs or args.experiments):
        raise InvalidInputError("give branches, or --runs, or --experiments, not several")
    comparison = compare(
        _open_store(args), branches=args.names or None, runs=args.runs,
        experiments=args.experiments, metric=args.metric, mode=args.mode, model=args.model,
        latency=not args.no_latency, trusted=args.trust_models,
    )
    sections = comparison.to_polars()
    if args.json:
        _print_json({name: frame.to_dicts() for name, frame in sections.items()})
        return 0
    titles = {"runs": "Runs", "metrics": "Metrics", "params": "Params",
              "data": "Data sets", "data_changes": "How the data differs from the first run's",
              "environment": "Packages that differ", "production": "Production"}
    for name, title in titles.items():
        frame = sections[name]
        print(f"\n== {title} ==")
        if frame.is_empty():
            print("(none)")
        else:
            _print_frame(frame)
    for diff, label in zip(comparison.code, comparison.labels[1:], strict=True):
        print(f"\n== Code: {comparison.labels[0]} -> {label} ==")
        print(diff.to_text())
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from .experiments._reproduce import reproduce_run

    store = _open_store(args)
    result = reproduce_run(
        store, args.run_id, rtol=args.rtol, atol=args.atol, timeout=args.timeout or None,
        keep_worktree=args.keep_worktree, kernel_name=args.kernel,
        progress=lambda line: print(f"{PROG}: {line}", file=sys.stderr, flush=True),
    )
    if args.json:
        _print_json(result.to_dict())
    else:
        print(result.to_text())
    if not result.matches:
        _print_error(result.summary())
        return 1
    return 0


def _exp_new(args: argparse.Namespace) -> int:
    from .experiments._gitops import new_experiment

    print(new_experiment(args.name).to_text())
    return 0


def _exp_restore(args: argparse.Namespace) -> int:
    from .experiments._gitops import restore_run

    print(restore_run(args.run_id, branch=args.branch, store=_open_store(args)).to_text())
    return 0


def _sweep_worker(args: argparse.Namespace) -> int:
    from .sweeps._worker import run_worker

    if args.n_trials is None and args.timeout is None:
        raise InvalidInputError("give --n-trials N or --timeout SECONDS (or both)")
    given = getattr(args, "store", None)
    with config(**({"home": given} if given else {})):
        run_worker(args.name, args.storage, args.objective, n_trials=args.n_trials,
                   timeout=args.timeout)
    return 0


def _drift(args: argparse.Namespace) -> int:
    from .monitor import Thresholds, drift

    try:
        store = _open_store(args)
        changes = {k: v for k, v in (("psi", args.psi), ("p_value", args.p_value))
                   if v is not None}
        with config(home=store.home):
            report = drift(args.reference, args.current, log=not args.no_log,
                           thresholds=Thresholds(**changes))
        if args.html:
            report.save_html(args.html)
    except NbtrailError as exc:
        _print_error(str(exc))
        return 2
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.verdict)
        _print_frame(report.to_polars().select(
            "feature", "kind", "test", "statistic", "p_value", "psi", "drifted", "reason"))
        if report.metric is not None:
            print(f"{report.metric.name}: {report.metric.current:.4g} "
                  f"(training: {report.metric.reference})")
        for note in report.notes:
            print(f"note: {note}")
        if report.run_id:
            print(f"recorded as monitoring run {report.run_id}")
    return 1 if args.fail_on_drift and report.has_drift else 0


def _validate(args: argparse.Namespace) -> int:
    from .monitor import validate

    try:
        store = _open_store(args)
        with config(home=store.home):
            report = validate(args.data, against=args.reference)
    except NbtrailError as exc:
        _print_error(str(exc))
        return 2
    if args.json:
        _print_json({"reference": report.reference, "source": report.source,
                     "rows": report.rows, "ok": report.ok,
                     "problems": report.to_polars().to_dicts()})
    elif report.ok:
        print(f"valid: {report.rows} rows, no problem against {report.reference}")
    else:
        print(f"{len(report.problems)} problems in {report.rows} rows against "
              f"{report.reference}")
        _print_frame(report.to_polars())
    return 1 if args.fail_on_problems and not report.ok else 0


def _dashboard(args: argparse.Namespace) -> int:
    from .dashboards import serve

    serve(_open_store(args).home, port=args.port, address=args.address,
          basic_auth=args.basic_auth, token=args.token, show=args.show)
    return 0


def _package(args: argparse.Namespace) -> int:
    from .packaging._api import package

    given = getattr(args, "store", None)
    with config(**({"home": given} if given else {})):
        result = package(
            args.ref, name=args.name, output=args.output, base_image=args.base_image,
            build=args.build, trusted=args.trusted,
            progress=None if args.json else
            lambda step, _: print(f"{PROG}: {step}", file=sys.stderr, flush=True),
        )
    if args.json:
        _print_json(result.to_dict())
        return 0
    print(f"package {result.package_id}\ncontext {result.context}")
    if result.image is not None:
        print(f"image   {result.image.tag}\ndigest  {result.image.digest}\n"
              f"size    {format_size(result.image.size_bytes)}")
    else:
        if result.engine_missing:
            print("no container engine answers here (podman info / docker info), so the "
                  "image was not built", file=sys.stderr)
        print(f"build   {result.build_command}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .packaging._local import serve

    given = getattr(args, "store", None)
    with config(**({"home": given} if given else {})):
        serve(args.source, host=args.host, port=args.port, workers=args.workers,
              range_policy=args.range_policy, log_dir=args.log_dir,
              max_body_bytes=args.max_body_bytes, trusted=args.trusted)
    return 0


# -- runs ---------------------------------------------------------------------------------


def _select_columns(available: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """The columns named in ``--columns``, in that order; glob patterns expand in place."""
    chosen: list[str] = []
    for name in wanted:
        if any(ch in name for ch in "*?["):
            found = [c for c in available if fnmatch.fnmatchcase(c, name)]
        else:
            found = [name] if name in available else []
        if not found:
            close = difflib.get_close_matches(name, available, n=3)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise InvalidInputError(
                f"no column {name!r} in the runs table; {hint}columns: {', '.join(available)}"
            )
        chosen.extend(c for c in found if c not in chosen)
    return chosen


def short_ids(ids: Sequence[str], all_ids: Sequence[str],
              minimum: int = SHORT_ID_MIN) -> dict[str, str]:
    """The shortest prefix (at least ``minimum`` long) of each id unique among ``all_ids``."""
    ordered = sorted(set(all_ids) | set(ids))
    position = {value: i for i, value in enumerate(ordered)}
    short = {}
    for value in ids:
        i = position[value]
        # In sorted order the longest shared prefix is with a neighbour.
        need = minimum
        for j in (i - 1, i + 1):
            if 0 <= j < len(ordered):
                need = max(need, _common_prefix(value, ordered[j]) + 1)
        short[value] = value[:need]
    return short


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _run_cell(column: str, value: Any, short: Mapping[str, str]) -> str:
    if value is None:
        return "-"
    if column in _RUN_ID_COLUMNS:
        return short.get(value, value)
    if column in _TIME_COLUMNS:
        return _local_time(value)
    if column == "duration":
        return format_duration(value)
    return _cell(value)


def run_to_dict(run: Run, *, packages: bool = False) -> dict[str, Any]:
    """A run as plain JSON-ready values; the package list is a count unless ``packages``."""
    data = dataclasses.asdict(run)
    data["duration"] = run.duration
    env = data.get("env")
    if env is not None:
        listed = env.get("packages") or {}
        env["package_count"] = len(listed)
        if not packages:
            env.pop("packages", None)
    return _jsonable(data)


def render_run(run: Run, *, packages: bool = False) -> list[str]:
    """Everything about a run as readable lines (``nbtrail runs show``)."""
    lines = _pairs([
        ("run_id", run.run_id),
        ("name", run.name),
        ("experiment", run.experiment),
        ("status", run.status),
        ("start_time", _local_time(run.start_time, "seconds", with_offset=True)),
        ("end_time", _local_time(run.end_time, "seconds", with_offset=True)),
        ("duration", format_duration(run.duration)),
        ("parent_id", run.parent_id),
        ("notebook", run.notebook),
        ("error", run.error),
        ("seeds", _compact_json(run.seeds) if run.seeds else None),
    ], indent="")

    lines += _section(f"children ({len(run.children)})", [f"  {c}" for c in run.children])
    lines += _section(f"params ({len(run.params)})", _pairs(
        [(k, v if isinstance(v, str) else _compact_json(v)) for k, v in run.params.items()]))
    lines += _section(f"metrics, latest ({len(run.metrics)})",
                      _pairs([(k, _exact_number(v)) for k, v in run.metrics.items()]))
    lines += _section(f"tags ({len(run.tags)})", _pairs(list(run.tags.items())))
    lines += _section(f"datasets ({len(run.datasets)})", _sub_table(
        ["name", "role", "rows", "columns", "dataset_id"],
        [[d.get("name"), d.get("role"), d.get("n_rows"), d.get("n_columns"), d.get("dataset_id")]
         for d in run.datasets]))
    lines += _section(f"models ({len(run.models)})", _sub_table(
        ["name", "class", "format", "size", "model_id"],
        [[m.get("name"), m.get("class_name"), m.get("format"), format_size(m.get("size_bytes")),
          m.get("model_id")] for m in run.models]))
    lines += _section(f"artifacts ({len(run.artifacts)})", _sub_table(
        ["name", "size", "media_type", "artifact_id"],
        [[a.get("name"), format_size(a.get("size_bytes")), a.get("media_type"),
          a.get("artifact_id")] for a in run.artifacts]))

    git = run.git or {}
    git_keys = ("commit", "branch", "dirty", "snapshot", "root")
    lines += _section("git", _pairs(
        [(k, _cell(git.get(k), width=None)) for k in git_keys]) if run.git else [],
        f"({run.git_note})")
    code = run.code or {}
    cells = code.get("cells") or []
    lines += _section("code", _pairs([
        ("ref", code.get("ref")),
        ("snapshot_commit", code.get("snapshot_commit")),
        ("base_commit", code.get("base_commit")),
        ("notebook", code.get("notebook")),
        ("cells", str(len(cells))),
        ("code_id", code.get("code_id")),
    ]) if run.code else [], "(not captured)")
    lines += _section("environment",
                      _env_lines(run.env, packages=packages) if run.env else [], "(not captured)")
    return lines


def _env_lines(env: Mapping[str, Any], *, packages: bool) -> list[str]:
    listed: Mapping[str, Any] = env.get("packages") or {}
    details: Mapping[str, Any] = env.get("details") or {}
    pairs: list[tuple[str, Any]] = [(k, env.get(k)) for k in ("python", "platform")]
    pairs += [(k, _cell(v, width=None)) for k, v in details.items()
              if k not in ("python", "platform")]
    pairs.append(("env_id", env.get("env_id")))
    count = f"{len(listed)}" if packages or not listed else f"{len(listed)} (list with --packages)"
    pairs.append(("packages", count))
    lines = _pairs(pairs)
    if packages:
        lines += [f"    {name}=={version}" for name, version in sorted(listed.items())]
    return lines


def _section(title: str, body: list[str], empty: str = "(none)") -> list[str]:
    return ["", title, *(body or [f"  {empty}"])]


def _pairs(pairs: Sequence[tuple[str, Any]], indent: str = "  ") -> list[str]:
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{indent}{k.ljust(width)}  {_one_line('-' if v is None else str(v))}"
            for k, v in pairs]


def _sub_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return []
    cells = [[_cell(v, width=None) for v in row] for row in rows]
    right = _numeric_columns(headers, rows)
    return ["  " + line for line in _table_lines(headers, cells, right)]


# -- lineage ------------------------------------------------------------------------------


def render_lineage(graph: Lineage, *, as_list: bool = False) -> list[str]:
    """A lineage graph as a tree from its root, or one ``src --relation--> dst`` line an edge."""
    described = {node["id"]: node for node in graph.nodes.to_dicts()}

    def name(node_id: str) -> str:
        node = described.get(node_id, {})
        label = node.get("label")
        kind = node.get("kind") or "?"
        return f"{node_id} ({kind}: {label})" if label and label != node_id else \
            f"{node_id} ({kind})"

    edges: list[tuple[str, str, str]] = graph.edges.select("src", "dst", "relation").rows()
    if as_list:
        return [f"{src} --{rel}--> {name(dst)}" for src, dst, rel in edges] or \
            [f"no edges {graph.direction} from {name(graph.root)}"]

    lines = [name(graph.root)]
    walks = [d for d in ("up", "down") if graph.direction in (d, "both")]
    for direction in walks:
        children: dict[str, list[tuple[str, str]]] = {}
        for src, dst, rel in edges:
            if direction == "up":
                children.setdefault(dst, []).append((src, f"<-{rel}-"))
            else:
                children.setdefault(src, []).append((dst, f"-{rel}->"))
        if len(walks) > 1:
            lines.append("upstream (inputs):" if direction == "up" else "downstream (outputs):")
        if not children.get(graph.root):
            lines.append(f"  (nothing {'upstream' if direction == 'up' else 'downstream'})")
            continue
        expanded = {graph.root}
        # Explicit stack: lineage depth is user-controlled and must not hit the recursion limit.
        stack = [(child, arrow, "", i == len(children[graph.root]) - 1)
                 for i, (child, arrow) in enumerate(children[graph.root])][::-1]
        while stack:
            node, arrow, prefix, last = stack.pop()
            seen = node in expanded
            more = " (shown above)" if seen and children.get(node) else ""
            lines.append(f"{prefix}{'└── ' if last else '├── '}{arrow} {name(node)}{more}")
            if seen:
                continue
            expanded.add(node)
            below = children.get(node, [])
            inner = prefix + ("    " if last else "│   ")
            stack.extend((child, sub_arrow, inner, i == len(below) - 1)
                         for i, (child, sub_arrow) in reversed(list(enumerate(below))))
    return lines


# -- formatting ---------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """Seconds as ``4.2s``, ``3m07s``, ``2h05m`` or ``3d04h``; ``-`` for none."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_size(size: int | None) -> str:
    """Bytes in binary units, e.g. ``1.5 KiB``."""
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _local_time(value: datetime | None, timespec: str = "seconds",
                with_offset: bool = False) -> str:
    """A stored (UTC) time in the reader's time zone, which is how people remember runs."""
    if value is None:
        return "-"
    local = value.astimezone() if value.tzinfo is not None else value
    if not with_offset:
        local = local.replace(tzinfo=None)
    return local.isoformat(sep=" ", timespec=timespec)


def _cell(value: Any, null: str = "-", width: int | None = MAX_CELL_WIDTH) -> str:
    """One value on one line: short numbers, and at most ``width`` characters if given."""
    if value is None:
        return null
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:.6g}" if math.isfinite(value) else str(value)
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list | tuple):
        text = _compact_json(value)
    elif isinstance(value, bytes):
        text = "\\x" + value.hex()
    else:
        text = str(value)
    text = _one_line(text)
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


_CONTROL_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _one_line(text: str) -> str:
    # A newline inside a value (an error message, say) would break a table's rows apart.
    return text.translate(_CONTROL_ESCAPES)


def _exact_number(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _numeric_columns(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[bool]:
    """Which columns hold only numbers (right-aligned), judged on the values present."""
    numeric = []
    for i, _ in enumerate(columns):
        values = [row[i] for row in rows if row[i] is not None]
        numeric.append(bool(values) and all(
            isinstance(v, int | float | Decimal | timedelta) and not isinstance(v, bool)
            for v in values))
    return numeric


def _table_lines(headers: Sequence[str], rows: Sequence[Sequence[str]],
                 right: Sequence[bool]) -> list[str]:
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if r else c.ljust(w)
                  for c, w, r in zip(cells, widths, right, strict=True))
        return "  ".join(padded).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                 right: Sequence[bool]) -> None:
    print("\n".join(_table_lines(headers, rows, right)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- JSON ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Plain JSON values: ISO times, and NaN/±inf as the strings ``float()`` reads back."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        # Integers stay exact (JSON numbers have no size limit); fractions become floats.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _compact_json(value: Any) -> str:
    return json.dumps(_jsonable(value), allow_nan=False, ensure_ascii=False)


def _print_json(value: Any) -> None:
    print(json.dumps(_jsonable(value), indent=2, allow_nan=False))


if __name__ == "__main__":
    raise SystemExit(main())
