"""``nbtrail runs ls``, ``runs show`` and ``metrics``: the runs of a store and their metrics."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import fnmatch
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._json import jsonable
from ..errors import InvalidInputError
from . import _render as render
from ._common import Options, add_command, non_negative_int, open_store

if TYPE_CHECKING:
    from ..store._records import Run

DEFAULT_LIMIT = 50
# Run ids are ULIDs whose first 10 characters encode the start millisecond; runs started in
# the same millisecond need more, so short ids grow until they are unique in the store.
SHORT_ID_MIN = 10
_RUN_ID_COLUMNS = ("run_id", "parent_id")
_TIME_COLUMNS = ("start_time", "end_time")
_DEFAULT_RUN_COLUMNS = ("run_id", "name", "experiment", "status", "start_time", "duration")


def register(commands: Any, options: Options) -> None:
    """Add ``runs`` (``ls``, ``show``) and ``metrics`` to the ``nbtrail`` commands."""
    runs = add_command(commands, "runs", None, [options.store],
                       help="list runs or show one run")
    runs_commands = runs.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    _add_ls(runs_commands, options)
    _add_show(runs_commands, options)
    _add_metrics(commands, options)


# -- runs ls ----------------------------------------------------------------------------


def _add_ls(commands: Any, options: Options) -> None:
    ls = add_command(
        commands, "ls", _runs_ls, [options.store, options.json],
        help="list runs, newest first",
        description="List runs as a table: one row a run, latest metrics as columns.",
    )
    ls.add_argument("--where", metavar="FILTER",
                    help="filter, e.g. \"metrics.acc > 0.9 and params.penalty = 'l2'\"")
    ls.add_argument("--order-by", metavar="SPEC", action="append",
                    help="sort fields, '-' first for descending, e.g. -metrics.acc "
                         "(repeatable, or comma-separated)")
    ls.add_argument("--experiment", metavar="NAME", help="only runs of this experiment")
    ls.add_argument("--limit", metavar="N", type=non_negative_int, default=DEFAULT_LIMIT,
                    help=f"show at most N runs, 0 for all (default: {DEFAULT_LIMIT})")
    ls.add_argument("--columns", metavar="COL,COL", type=_column_list,
                    help="columns to show, globs allowed, e.g. name,params.*,metrics.acc "
                         "(default: run_id, name, experiment, status, start_time, duration "
                         "and every metric)")
    ls.add_argument("--full-ids", action="store_true",
                    help="print whole run ids instead of the shortest unique prefix")


def _column_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated column names, got {text!r}"
        )
    return names


def _runs_ls(args: argparse.Namespace) -> int:
    store = open_store(args)
    limit: int | None = args.limit or None
    # One row more than shown tells whether the limit cut the list.
    frame = store.runs(where=args.where, order_by=args.order_by, experiment=args.experiment,
                       limit=None if limit is None else limit + 1)
    cut = False
    if limit is not None and frame.height > limit:
        cut, frame = True, frame.head(limit)
    if args.columns:
        columns = _select_columns(frame.columns, args.columns)
    elif args.json:  # scripts get every column; people get a table that fits
        columns = list(frame.columns)
    else:
        columns = [*_DEFAULT_RUN_COLUMNS,
                   *(c for c in frame.columns if c.startswith("metrics."))]
    rows = frame.select(columns).rows()

    if args.json:
        render.print_json([dict(zip(columns, row, strict=True)) for row in rows])
    elif not rows:
        print("no runs match" if args.where or args.experiment else
              f"no runs in the store at {store.location}", file=sys.stderr)
    else:
        short: dict[str, str] = {}
        if not args.full_ids and any(c in _RUN_ID_COLUMNS for c in columns):
            all_ids = store.run_ids()
            shown = [v for row in rows for c, v in zip(columns, row, strict=True)
                     if c in _RUN_ID_COLUMNS and v is not None]
            short = short_ids(shown, all_ids)
        cells = [[_run_cell(c, v, short) for c, v in zip(columns, row, strict=True)]
                 for row in rows]
        render.print_table(columns, cells, render.numeric_columns(columns, rows))
    if cut:
        print(f"(more runs match than --limit {limit}; --limit 0 shows all)", file=sys.stderr)
    return 0


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
                need = max(need, common_prefix(value, ordered[j]) + 1)
        short[value] = value[:need]
    return short


def common_prefix(a: str, b: str) -> int:
    """How many leading characters ``a`` and ``b`` share."""
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
        return render.local_time(value)
    if column == "duration":
        return render.format_duration(value)
    return render.cell(value)


# -- runs show --------------------------------------------------------------------------


def _add_show(commands: Any, options: Options) -> None:
    show = add_command(commands, "show", _runs_show, [options.store, options.json],
                       help="everything recorded about one run")
    show.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix of one")
    show.add_argument("--packages", action="store_true",
                      help="list the installed packages, not only their number")


def _runs_show(args: argparse.Namespace) -> int:
    run = open_store(args).get_run(args.run_id)
    if args.json:
        render.print_json(run_to_dict(run, packages=args.packages))
    else:
        print("\n".join(render_run(run, packages=args.packages)))
    return 0


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
    return jsonable(data, nonfinite="text")


def render_run(run: Run, *, packages: bool = False) -> list[str]:
    """Everything about a run as readable lines (``nbtrail runs show``)."""
    pairs, section, sub_table = render.pairs, render.section, render.sub_table
    lines = pairs([
        ("run_id", run.run_id),
        ("name", run.name),
        ("experiment", run.experiment),
        ("status", run.status),
        ("start_time", render.local_time(run.start_time, "seconds", with_offset=True)),
        ("end_time", render.local_time(run.end_time, "seconds", with_offset=True)),
        ("duration", render.format_duration(run.duration)),
        ("parent_id", run.parent_id),
        ("notebook", run.notebook),
        ("error", run.error),
        ("seeds", render.compact_json(run.seeds) if run.seeds else None),
    ], indent="")

    lines += section(f"children ({len(run.children)})", [f"  {c}" for c in run.children])
    lines += section(f"params ({len(run.params)})", pairs(
        [(k, v if isinstance(v, str) else render.compact_json(v))
         for k, v in run.params.items()]))
    lines += section(f"metrics, latest ({len(run.metrics)})",
                     pairs([(k, render.exact_number(v)) for k, v in run.metrics.items()]))
    lines += section(f"tags ({len(run.tags)})", pairs(list(run.tags.items())))
    lines += section(f"datasets ({len(run.datasets)})", sub_table(
        ["name", "role", "rows", "columns", "dataset_id"],
        [[d.get("name"), d.get("role"), d.get("n_rows"), d.get("n_columns"), d.get("dataset_id")]
         for d in run.datasets]))
    lines += section(f"models ({len(run.models)})", sub_table(
        ["name", "class", "format", "size", "model_id"],
        [[m.get("name"), m.get("class_name"), m.get("format"),
          render.format_size(m.get("size_bytes")), m.get("model_id")] for m in run.models]))
    lines += section(f"artifacts ({len(run.artifacts)})", sub_table(
        ["name", "size", "media_type", "artifact_id"],
        [[a.get("name"), render.format_size(a.get("size_bytes")), a.get("media_type"),
          a.get("artifact_id")] for a in run.artifacts]))

    git = run.git or {}
    git_keys = ("commit", "branch", "dirty", "snapshot", "root")
    lines += section("git", pairs(
        [(k, render.cell(git.get(k), width=None)) for k in git_keys]) if run.git else [],
        f"({run.git_note})")
    code = run.code or {}
    cells = code.get("cells") or []
    lines += section("code", pairs([
        ("ref", code.get("ref")),
        ("snapshot_commit", code.get("snapshot_commit")),
        ("base_commit", code.get("base_commit")),
        ("notebook", code.get("notebook")),
        ("cells", str(len(cells))),
        ("code_id", code.get("code_id")),
    ]) if run.code else [], "(not captured)")
    lines += section("environment",
                     _env_lines(run.env, packages=packages) if run.env else [], "(not captured)")
    return lines


def _env_lines(env: Mapping[str, Any], *, packages: bool) -> list[str]:
    listed: Mapping[str, Any] = env.get("packages") or {}
    details: Mapping[str, Any] = env.get("details") or {}
    items: list[tuple[str, Any]] = [(k, env.get(k)) for k in ("python", "platform")]
    items += [(k, render.cell(v, width=None)) for k, v in details.items()
              if k not in ("python", "platform")]
    items.append(("env_id", env.get("env_id")))
    count = f"{len(listed)}" if packages or not listed else f"{len(listed)} (list with --packages)"
    items.append(("packages", count))
    lines = render.pairs(items)
    if packages:
        lines += [f"    {name}=={version}" for name, version in sorted(listed.items())]
    return lines


# -- metrics ----------------------------------------------------------------------------


def _add_metrics(commands: Any, options: Options) -> None:
    metrics = add_command(commands, "metrics", _metrics, [options.store, options.json],
                          help="every logged point of one metric of a run")
    metrics.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix of one")
    metrics.add_argument("key", metavar="KEY", help="the metric name")


def _metrics(args: argparse.Namespace) -> int:
    frame = open_store(args).metric_history(args.run_id, args.key)
    if args.json:
        render.print_json(frame.to_dicts())
        return 0
    rows = frame.rows()
    cells = [[render.cell(step), render.cell(value), render.local_time(stamp, "milliseconds")]
             for step, value, stamp in rows]
    render.print_table(frame.columns, cells, [True, True, False])
    return 0
