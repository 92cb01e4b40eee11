"""Git experiments: ``branches``, ``compare``, ``reproduce`` and ``exp new`` / ``exp restore``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import InvalidInputError
from . import _render as render
from ._common import (
    DeprecatedFlag,
    Options,
    add_command,
    non_negative_float,
    open_store,
    print_error,
    progress_line,
)

# The release that drops compare's old --trust-models spelling of --trusted.
TRUST_MODELS_REMOVED_IN = "0.3.0"


def register(commands: Any, options: Options) -> None:
    """Add ``branches``, ``compare``, ``reproduce`` and ``exp`` to the ``nbtrail`` commands."""
    _add_branches(commands, options)
    _add_compare(commands, options)
    _add_reproduce(commands, options)
    _add_exp(commands, options)


def _add_ranking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", metavar="KEY",
                        help="a branch's best run is the finished run with the best value of "
                             "this metric (default: its newest finished run)")
    parser.add_argument("--mode", choices=("max", "min"), default="max",
                        help="whether higher or lower values of --metric are better "
                             "(default: max)")


# -- branches ---------------------------------------------------------------------------


def _add_branches(commands: Any, options: Options) -> None:
    branches = add_command(commands, "branches", _branches, [options.store, options.json],
                           help="one row a git branch runs were made on, with its best run")
    _add_ranking(branches)


def _branches(args: argparse.Namespace) -> int:
    from ..experiments._branches import branches

    frame = branches(open_store(args), args.metric, args.mode)
    if args.json:
        render.print_json(frame.to_dicts())
    elif frame.is_empty():
        print("no runs were made on a git branch in this store", file=sys.stderr)
    else:
        render.print_frame(frame.drop("git_root"))
    return 0


# -- compare ----------------------------------------------------------------------------


def _add_compare(commands: Any, options: Options) -> None:
    compare = add_command(
        commands, "compare", _compare, [options.store, options.json],
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
    compare.add_argument("--trusted", action="store_true",
                         help="also load pickled models to time them (runs their code)")
    compare.add_argument("--trust-models", dest="trusted", action=DeprecatedFlag,
                         new="--trusted", removed_in=TRUST_MODELS_REMOVED_IN)


def _compare(args: argparse.Namespace) -> int:
    from ..experiments._compare import compare

    if not args.names and not (args.runs or args.experiments):
        raise InvalidInputError("name the branches to compare, or pass --runs or --experiments")
    if args.names and (args.runs or args.experiments):
        raise InvalidInputError("give branches, or --runs, or --experiments, not several")
    comparison = compare(
        open_store(args), branches=args.names or None, runs=args.runs,
        experiments=args.experiments, metric=args.metric, mode=args.mode, model=args.model,
        latency=not args.no_latency, trusted=args.trusted,
    )
    sections = comparison.to_polars()
    if args.json:
        render.print_json({name: frame.to_dicts() for name, frame in sections.items()})
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
            render.print_frame(frame)
    for diff, label in zip(comparison.code, comparison.labels[1:], strict=True):
        print(f"\n== Code: {comparison.labels[0]} -> {label} ==")
        print(diff.to_text())
    return 0


# -- reproduce --------------------------------------------------------------------------


def _add_reproduce(commands: Any, options: Options) -> None:
    reproduce = add_command(
        commands, "reproduce", _reproduce, [options.store, options.json],
        help="re-execute a run's notebook from its code snapshot and compare the metrics",
        description="Check the run's code snapshot out into a temporary git worktree (your "
                    "checkout is not touched), execute its notebook there, and compare the "
                    "latest metric values with the original run's.",
        epilog="Exit status: 0 the metrics match, 1 they do not or the notebook failed.",
    )
    reproduce.add_argument("run_id", metavar="RUN", help="a run id or a unique prefix of one")
    reproduce.add_argument("--rtol", metavar="X", type=non_negative_float, default=1e-6,
                           help="relative tolerance (default: 1e-6)")
    reproduce.add_argument("--atol", metavar="X", type=non_negative_float, default=1e-9,
                           help="absolute tolerance (default: 1e-9)")
    reproduce.add_argument("--timeout", metavar="S", type=non_negative_float, default=600,
                           help="seconds a single cell may run, 0 for no limit (default: 600)")
    reproduce.add_argument("--kernel", metavar="NAME",
                           help="the Jupyter kernel to use (default: the notebook's own)")
    reproduce.add_argument("--keep-worktree", action="store_true",
                           help="keep the worktree the notebook ran in, to inspect it")


def _reproduce(args: argparse.Namespace) -> int:
    from ..experiments._reproduce import reproduce_run

    store = open_store(args)
    result = reproduce_run(
        store, args.run_id, rtol=args.rtol, atol=args.atol, timeout=args.timeout or None,
        keep_worktree=args.keep_worktree, kernel_name=args.kernel, progress=progress_line,
    )
    if args.json:
        render.print_json(result.to_dict())
    else:
        print(result.to_text())
    if not result.matches:
        print_error(result.summary())
        return 1
    return 0


# -- exp new / exp restore --------------------------------------------------------------


def _add_exp(commands: Any, options: Options) -> None:
    exp = add_command(commands, "exp", None, help="make experiment branches in git")
    exp_commands = exp.add_subparsers(dest="exp_command", metavar="COMMAND", required=True)
    new = add_command(
        exp_commands, "new", _exp_new,
        help="create a branch at the current commit and switch to it",
        description="Create the branch NAME at the current commit and switch to it, like "
                    "`git switch -c NAME`: uncommitted changes come along. Runs started on it "
                    "belong to the experiment NAME.",
    )
    new.add_argument("name", metavar="NAME", help="the branch name, e.g. feat/more-trees")
    restore = add_command(
        exp_commands, "restore", _exp_restore, [options.store],
        help="create a branch at a run's code snapshot (without switching)",
        description="Create a branch whose tip is the code snapshot of RUN, in the repository "
                    "the run was started in. Your checkout stays where it is.",
    )
    restore.add_argument("run_id", metavar="RUN", help="a run id or a unique prefix of one")
    restore.add_argument("--branch", metavar="NAME",
                         help="the branch name (default: nbtrail/<short run id>)")


def _exp_new(args: argparse.Namespace) -> int:
    from ..experiments._gitops import new_experiment

    print(new_experiment(args.name).to_text())
    return 0


def _exp_restore(args: argparse.Namespace) -> int:
    from ..experiments._gitops import restore_run

    print(restore_run(args.run_id, branch=args.branch, store=open_store(args)).to_text())
    return 0
