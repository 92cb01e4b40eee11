"""``nbtrail sql`` and ``nbtrail lineage``: questions asked of the store's tables and graph."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from . import _render as render
from ._common import Options, add_command, open_store, positive_int

if TYPE_CHECKING:
    from ..store._records import Lineage


def register(commands: Any, options: Options) -> None:
    """Add ``sql`` and ``lineage`` to the ``nbtrail`` commands."""
    _add_sql(commands, options)
    _add_lineage(commands, options)


# -- sql --------------------------------------------------------------------------------


def _add_sql(commands: Any, options: Options) -> None:
    sql = add_command(
        commands, "sql", _sql, [options.store, options.json],
        help="run a read-only SQL query over the store's tables",
        description="Run read-only DuckDB SQL over the store's tables (see docs/store.md).",
    )
    sql.add_argument("query", metavar="QUERY", help="the query; '-' reads it from stdin")


def _sql(args: argparse.Namespace) -> int:
    query = sys.stdin.read() if args.query == "-" else args.query
    if not query.strip():
        raise InvalidInputError("the SQL query is empty")
    frame = open_store(args).sql(query)
    if args.json:
        render.print_json(frame.to_dicts())
        return 0
    render.print_frame(frame, null="NULL")
    print(f"({frame.height} row{'' if frame.height == 1 else 's'})", file=sys.stderr)
    return 0


# -- lineage ----------------------------------------------------------------------------


def _add_lineage(commands: Any, options: Options) -> None:
    lineage = add_command(
        commands, "lineage", _lineage, [options.store, options.json],
        help="where a run, data set, model or artifact came from, or what used it",
    )
    lineage.add_argument("node_id", metavar="ID",
                         help="a run id (or unique prefix), or a ds_/mdl_/art_ id")
    lineage.add_argument("--direction", choices=("up", "down", "both"), default="up",
                         help="up: towards inputs, down: towards outputs (default: up)")
    lineage.add_argument("--depth", metavar="N", type=positive_int, default=10,
                         help="follow at most N edges from ID (default: 10)")
    lineage.add_argument("--list", action="store_true", dest="as_list",
                         help="print one 'src --relation--> dst' line an edge, not a tree")


def _lineage(args: argparse.Namespace) -> int:
    graph = open_store(args).lineage(args.node_id, direction=args.direction, depth=args.depth)
    if args.json:
        render.print_json(graph.to_dict())
    else:
        print("\n".join(render_lineage(graph, as_list=args.as_list)))
    return 0


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

