"""``nbtrail sync`` and ``nbtrail store init|doctor``: land, set up and check a store."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, datetime
from typing import Any

from ..store import Backlog
from . import _render as render
from ._common import Options, add_command, open_store, progress_line, store_location


def register(commands: Any, options: Options) -> None:
    """Add ``sync`` and ``store`` (``init``, ``doctor``) to the ``nbtrail`` commands."""
    store = add_command(commands, "store", None, [options.store],
                        help="create a store's schema, or check what it needs")
    store_commands = store.add_subparsers(dest="store_command", metavar="COMMAND",
                                          required=True)
    init = add_command(
        store_commands, "init", _init, [options.store],
        help="create or migrate the schema of a store (a folder or postgresql:// URL)",
        description="Create the store's schema now, or migrate it to this nbtrail's; "
                    "many machines may run it at once.")
    init.add_argument("location", metavar="URL", nargs="?",
                      help="the store (default: --store, else the configured one)")
    copy = add_command(
        store_commands, "copy", _copy, [],
        help="copy every run, metric point and blob of one store into another",
        description="Copy a store (say a local folder) into another (say the team store). "
                    "Idempotent and resumable: run it again after an interruption, or to "
                    "copy what is new.")
    copy.add_argument("source", metavar="SRC", help="the store to copy from (read-only)")
    copy.add_argument("target", metavar="DST", help="the store to copy into")
    add_command(store_commands, "doctor", _doctor, [options.store, options.json],
                help="check a store: reachable, writable, its schema, the artifact store",
                description="One line a check; exit 0 when all are fine, 1 otherwise.")
    sync = add_command(
        commands, "sync", _sync, [options.store, options.json],
        help="fold or ship this machine's records now, upload waiting blobs",
        description="Fold (embedded store) or ship (team store) the records this machine "
                    "logged, upload the blobs waiting for the artifact store, and push the "
                    "code snapshots (refs/nbtrail/*) of this machine's runs to their "
                    "repository's remote. Exit 0 when no record or blob waits afterwards, "
                    "1 when some still do.")
    sync.add_argument("--status", action="store_true",
                      help="only say what waits and since the last sync (works offline)")


def _sync(args: argparse.Namespace) -> int:
    import socket

    from ..experiments._gitops import push_snapshots

    store = open_store(args, must_exist=False)
    pushed: list[str] = []
    if not args.status:
        store.sync()
        if store.exists():
            pushed = push_snapshots(store.snapshot_roots(socket.gethostname()))
    backlog = store.backlog()
    if args.json:
        render.print_json({"store": store.location, **dataclasses.asdict(backlog),
                           "snapshots": pushed})
    else:
        print("\n".join([describe(backlog, store.location), *pushed]))
    return 0 if args.status or not (backlog.bytes or backlog.blobs) else 1


def describe(backlog: Backlog, location: str) -> str:
    """One line for each of what waits, and when this machine last synced."""
    if backlog.last_sync is None:
        when = "never synced from this machine"
    else:
        ago = (datetime.now(UTC) - backlog.last_sync).total_seconds()
        when = f"last synced {backlog.last_sync:%Y-%m-%d %H:%M:%S} UTC ({_ago(ago)} ago)"
    records = (f"{backlog.bytes:,} bytes of records in {backlog.journals} journal(s)"
               if backlog.bytes else "no records")
    blobs = f"{backlog.blobs} blob(s)" if backlog.blobs else "no blobs"
    return f"{location}: {records} and {blobs} wait to land; {when}"


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _init(args: argparse.Namespace) -> int:
    from ..store import open_store as open_location
    from ..store._schema import SCHEMA_VERSION

    store = open_location(args.location or store_location(args))
    found = store.init()
    print(f"{store.location}: schema version {SCHEMA_VERSION}" + (
        " (already)" if found == SCHEMA_VERSION
        else " (created)" if found == 0 else f" (migrated from {found})"))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    store = open_store(args, must_exist=False)
    checks = store.check()
    if args.json:
        render.print_json({"store": store.location,
                           "checks": [dataclasses.asdict(c) for c in checks]})
    else:
        for check in checks:
            print(f"{'ok' if check.ok else 'PROBLEM':8}{check.name}: {check.detail}")
    return 0 if all(c.ok for c in checks) else 1


def _copy(args: argparse.Namespace) -> int:
    from ..errors import StoreNotFoundError
    from ..store import open_store as open_location
    from ..store._copy import copy_store

    source = open_location(args.source, read_only=True)
    if not source.exists():
        raise StoreNotFoundError(f"no nbtrail store at {source.location} to copy from")
    target = open_location(args.target)
    done = copy_store(source, target, progress=progress_line)
    print(f"copied {source.location} into {target.location}: {done.records:,} records, the "
          f"points of {done.runs_with_points:,} runs ({done.runs_skipped:,} had them "
          f"already), {done.blobs:,} blobs")
    return 0
