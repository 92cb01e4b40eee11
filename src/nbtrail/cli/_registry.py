"""``nbtrail models`` and ``nbtrail audit``: the model registry and its audit trail.

Every change (register, alias, policy, promote, approve, reject) is an audit entry made
as whoever runs the command: on the embedded store ``$NBTRAIL_USER`` if set, else the OS
user; on the team store the database role. Each command closes its store before it
returns, so its entries are in the database when the next program reads it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from . import _render as render
from ._common import (
    PROG,
    Options,
    add_command,
    non_negative_float,
    open_store,
    positive_int,
    progress_line,
)

if TYPE_CHECKING:
    import polars as pl

    from ..registry import ModelVersion, Policy, PromotionRequest
    from ..store import Store

_STATUSES = ("checking", "pending", "failed", "approved", "rejected")


def register(commands: Any, options: Options) -> None:
    """Add ``models`` (the registry) and ``audit`` (its trail) to the ``nbtrail`` commands."""
    models = add_command(commands, "models", None, [options.store],
                         help="the model registry: versions, aliases, governed promotions")
    models_commands = models.add_subparsers(dest="models_command", metavar="COMMAND",
                                            required=True)
    for add in (_add_ls, _add_show, _add_register, _add_alias, _add_policy, _add_promote,
                _add_requests, _add_decisions, _add_card):
        add(models_commands, options)
    audit = add_command(commands, "audit", None, [options.store],
                        help="the registry's hash-chained audit trail: list, verify, export")
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND",
                                          required=True)
    _add_audit(audit_commands, options)


@contextlib.contextmanager
def _store(args: argparse.Namespace, *, read_only: bool = False) -> Iterator[Store]:
    # Closing folds what the command appended and stops the store's background threads.
    store = open_store(args, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


def _print_rows(headers: list[str], rows: list[tuple[Any, ...]] | list[list[Any]], *,
                whole_last: bool = False) -> None:
    """Values as a table, times in the reader's time zone (``whole_last``: last column uncut)."""
    last = len(headers) - 1
    cells = [[render.local_time(v) if isinstance(v, datetime) else
              render.cell(v, width=None if whole_last and i == last else render.MAX_CELL_WIDTH)
              for i, v in enumerate(row)] for row in rows]
    render.print_table(headers, cells, render.numeric_columns(headers, rows))


def _print_frame(frame: pl.DataFrame) -> None:
    _print_rows(frame.columns, frame.rows())


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _format_of(args: argparse.Namespace, default: str) -> str:
    """``--format``, else the one ``-o FILE``'s suffix names, else ``default``."""
    if args.format:
        return str(args.format)
    if args.output and Path(args.output).suffix.lower() in (".html", ".htm"):
        return "html"
    return default


def _version_dict(version: ModelVersion) -> dict[str, Any]:
    return {"ref": version.ref, **dataclasses.asdict(version)}


def _request_dict(request: PromotionRequest) -> dict[str, Any]:
    return {**dataclasses.asdict(request), "failed_checks": request.failed_checks}


# -- models ls / show ------------------------------------------------------------------


def _add_ls(commands: Any, options: Options) -> None:
    add_command(commands, "ls", _ls, [options.store, options.json],
                help="list the registered models",
                description="One row a registered model: versions, aliases, open requests.")


def _ls(args: argparse.Namespace) -> int:
    from ..registry import _api

    with _store(args, read_only=True) as store:
        frame = _api.models(store)
        location = store.location
    if args.json:
        render.print_json(frame.to_dicts())
    elif frame.is_empty():
        print(f"no registered model in the store at {location}; register one with "
              f"`{PROG} models register RUN --name NAME`", file=sys.stderr)
    else:
        _print_frame(frame.select("name", "versions", "latest_version", "aliases",
                                 "pending_requests", "updated_at", "description"))
    return 0


def _add_show(commands: Any, options: Options) -> None:
    show = add_command(commands, "show", _show, [options.store, options.json],
                       help="one registered model: its versions, aliases and policies")
    show.add_argument("name", metavar="NAME", help="the model's name")


def _show(args: argparse.Namespace) -> int:
    from ..registry import _api
    from ..registry._refs import model_state
    from ..registry._state import OPEN

    with _store(args, read_only=True) as store:
        state = model_state(store, args.name)
        versions = _api.model_versions(store, args.name)
    policies = {alias: _api.policy_of(state, alias) for alias in sorted(state.policies)}
    open_requests = [r for r in state.requests.values() if r.status in OPEN]
    if args.json:
        render.print_json({
            "name": state.name, "description": state.description,
            "created_at": state.created_at, "aliases": state.aliases,
            "policies": {a: p.to_dict() for a, p in policies.items()},
            "open_requests": [r.request_id for r in open_requests],
            "versions": versions.to_dicts()})
        return 0
    lines = render.pairs([
        ("name", state.name), ("description", state.description),
        ("created_at", render.local_time(state.created_at, with_offset=True)),
        ("aliases", " ".join(f"@{a}={v}" for a, v in sorted(state.aliases.items())) or None),
    ], indent="")
    lines += render.section(f"versions ({versions.height})", render.sub_table(
        ["version", "aliases", "model_id", "run_name", "class", "size", "registered_by",
         "registered_at"],
        [[r["version"], r["aliases"] or None, r["model_id"], r["run_name"], r["class_name"],
          render.format_size(r["size_bytes"]), r["registered_by"],
          render.local_time(r["registered_at"])] for r in versions.iter_rows(named=True)]))
    lines += render.section(f"policies ({len(policies)})", render.sub_table(
        ["alias", "approval", "checks"],
        [[f"@{alias}", "required" if p.require_approval else "none",
          ", ".join(p.checks) or None] for alias, p in policies.items()]))
    lines += render.section(f"open requests ({len(open_requests)})", render.sub_table(
        ["request", "version", "alias", "status", "requested_by"],
        [[r.request_id, r.version, f"@{r.alias}", r.status, r.requested_by]
         for r in open_requests]))
    print("\n".join(lines))
    return 0


# -- models register / alias -----------------------------------------------------------


def _add_register(commands: Any, options: Options) -> None:
    reg = add_command(
        commands, "register", _register, [options.store, options.json],
        help="register a logged model as the next version of a named model",
        description="Register MODEL_OR_RUN as the next version (1, 2, …) of --name. "
                    "Registering the same model under the same name again changes nothing.")
    reg.add_argument("model_or_run", metavar="MODEL_OR_RUN",
                     help="a model id (mdl_…), a run id or prefix (its one model), or a "
                          "registry reference (churn/3, churn@champion)")
    reg.add_argument("--name", required=True, help="the registered model's name, e.g. churn")
    reg.add_argument("--description", metavar="TEXT",
                     help="what the model is for (its card's intended use)")


def _register(args: argparse.Namespace) -> int:
    from ..registry import _api

    with _store(args) as store:
        version = _api.register(store, args.model_or_run, name=args.name,
                                description=args.description)
    if args.json:
        render.print_json(_version_dict(version))
    else:
        print(f"{version.ref}: model {version.model_id} of run {version.run_id}")
    return 0


def _add_alias(commands: Any, options: Options) -> None:
    alias = add_command(
        commands, "alias", _alias, [options.store, options.json],
        help="point an alias at a version now, or remove it (aliases without a policy)",
        description="Point NAME@ALIAS at VERSION, or remove it with --remove. An alias "
                    f"protected by a policy moves only through `{PROG} models promote`.")
    alias.add_argument("name", metavar="NAME", help="the model's name")
    alias.add_argument("alias", metavar="ALIAS", help="the alias, e.g. staging")
    alias.add_argument("version", metavar="VERSION", type=positive_int, nargs="?",
                       help="the version it points at (not with --remove)")
    alias.add_argument("--remove", action="store_true", help="remove the alias")
    alias.add_argument("--note", metavar="TEXT", help="why, kept in the audit trail")


def _alias(args: argparse.Namespace) -> int:
    from ..registry import _api

    if args.remove == (args.version is not None):
        raise InvalidInputError("give VERSION to point the alias at, or --remove, not both"
                                if args.remove else
                                f"give the VERSION {args.name}@{args.alias} points at (or "
                                "--remove)")
    with _store(args) as store:
        if args.remove:
            _api.remove_alias(store, args.name, args.alias, note=args.note)
            moved = None
        else:
            moved = _api.set_alias(store, args.name, args.alias, args.version, note=args.note)
    if args.json:
        render.print_json({"model": args.name, "alias": args.alias,
                           "version": None if moved is None else moved.version})
    elif moved is None:
        print(f"removed {args.name}@{args.alias}")
    else:
        print(f"{args.name}@{args.alias} -> version {moved.version} (model {moved.model_id})")
    return 0


# -- models policy ---------------------------------------------------------------------


def _add_policy(commands: Any, options: Options) -> None:
    policy = add_command(
        commands, "policy", _policy, [options.store, options.json],
        help="protect an alias with checks and approval, or show its policy",
        description="With field options, set the policy of NAME@ALIAS (it replaces the "
                    "previous one: fields not given take their defaults, and approval is "
                    "required unless --no-approval). Without, show the current policy.")
    policy.add_argument("name", metavar="NAME", help="the model's name")
    policy.add_argument("alias", metavar="ALIAS", help="the alias, e.g. champion")
    # Unset fields stay out of the namespace, so a policy holds only what was given.
    fields = policy.add_argument_group("policy fields")
    unset: dict[str, Any] = {"default": argparse.SUPPRESS}
    fields.add_argument("--metric", metavar="M", **unset,
                        help="a scikit-learn metric computed now on --data for the candidate "
                             "and the current holder, e.g. accuracy, f1, roc_auc, rmse")
    fields.add_argument("--data", metavar="PATH", type=_absolute, **unset,
                        help="a Parquet file of labelled evaluation rows")
    fields.add_argument("--target", metavar="COL", **unset,
                        help="the label column of --data")
    fields.add_argument("--min-delta", metavar="X", type=non_negative_float, **unset,
                        help="how much the candidate must beat the holder by (default: 0)")
    fields.add_argument("--validate", action="store_true", **unset,
                        help="check --data against the model's training data")
    fields.add_argument("--reproduce", action="store_true", **unset,
                        help="re-execute the run; its metrics must match")
    fields.add_argument("--reproduce-rtol", metavar="X", type=non_negative_float, **unset,
                        help="relative tolerance of --reproduce (default: 1e-6)")
    fields.add_argument("--max-latency-ms", metavar="X", type=non_negative_float, **unset,
                        help="the highest single-row p95 latency allowed")
    fields.add_argument("--max-size-mb", metavar="X", type=non_negative_float, **unset,
                        help="the largest model size allowed")
    approval = fields.add_mutually_exclusive_group()
    approval.add_argument("--approval", dest="require_approval", action="store_true",
                          **unset, help="someone else approves each promotion (the default "
                                        "of a policy; alone, a policy of approval only)")
    approval.add_argument("--no-approval", dest="require_approval", action="store_false",
                          **unset, help="a promotion whose checks pass moves the alias at once")


_POLICY_FIELDS = ("metric", "data", "target", "min_delta", "validate", "reproduce",
                  "reproduce_rtol", "max_latency_ms", "max_size_mb", "require_approval")


def _absolute(text: str) -> str:
    # The policy is applied later, from wherever the promotion is requested.
    return str(Path(text).expanduser().absolute())


def _policy(args: argparse.Namespace) -> int:
    from ..registry import _api
    from ..registry._refs import check_alias, model_state

    values = {f: getattr(args, f) for f in _POLICY_FIELDS if hasattr(args, f)}
    subject = f"{args.name}@{check_alias(args.alias)}"
    with _store(args, read_only=not values) as store:
        if values:
            policy: Policy | None = _api.set_policy(store, args.name, args.alias, values)
        else:
            state = model_state(store, args.name)
            policy = _api.policy_of(state, args.alias) if args.alias in state.policies \
                else None
    if args.json:
        render.print_json({"model": args.name, "alias": args.alias,
                           "policy": None if policy is None else policy.to_dict()})
    elif policy is None:
        print(f"{subject} has no policy: anyone may move it with `{PROG} models alias`")
    else:
        print(f"{'set the' if values else 'the'} policy of {subject}:")
        print("\n".join(render.pairs(
            [*((k, render.cell(v, width=None)) for k, v in policy.to_dict().items()),
             ("checks", ", ".join(policy.checks) or "none")])))
    return 0


# -- models promote / requests / approve / reject ---------------------------------------


def _add_promote(commands: Any, options: Options) -> None:
    promote = add_command(
        commands, "promote", _promote, [options.store, options.json],
        help="request moving an alias to a version: run its checks, then await approval",
        description="Open a promotion request, run the checks of the alias's policy and "
                    "record them. The alias moves now if they pass and the policy needs no "
                    "approval; otherwise someone else approves it with `nbtrail models "
                    "approve ID`. Exit 0 when the request opened, even if a check failed.")
    promote.add_argument("name", metavar="NAME", help="the model's name")
    promote.add_argument("--version", required=True, type=positive_int,
                         help="the version to promote")
    promote.add_argument("--alias", required=True, help="the alias to move, e.g. champion")
    promote.add_argument("--note", metavar="TEXT", help="why, kept in the audit trail")
    promote.add_argument("--data", metavar="PATH",
                         help="evaluation data for this request (instead of the policy's)")
    promote.add_argument("--trusted", action="store_true",
                         help="allow loading a pickled model for the checks (its code runs)")


def _promote(args: argparse.Namespace) -> int:
    from ..registry import _api

    with _store(args) as store:
        request = _api.request_promotion(
            store, args.name, version=args.version, alias=args.alias, note=args.note,
            data=args.data, trusted=args.trusted,
            progress=None if args.json else progress_line)
    if args.json:
        render.print_json(_request_dict(request))
        return 0
    print(f"request #{request.request_id}: {request.ref} -> @{request.alias}")
    checks = [[c["check"], "passed" if c["passed"] else "FAILED", c["detail"]]
              for c in request.checks]
    print("\n".join(render.sub_table(["check", "result", "detail"], checks)
                    or ["  (no checks: the alias's policy asks for none)"]))
    print(_status_line(request))
    return 0


def _status_line(request: PromotionRequest) -> str:
    subject = f"{request.ref.rsplit('/', 1)[0]}@{request.alias}"
    if request.status == "pending":
        return (f"status: pending: waiting for another person's approval "
                f"(`{PROG} models approve {request.request_id}`)")
    if request.status == "failed":
        return (f"status: failed: {', '.join(request.failed_checks)} FAILED, so {subject} "
                "did not move")
    decided = f" by {request.decided_by}" if request.decided_by else ""
    why = f" ({request.decision_note})" if request.decision_note else ""
    if request.status == "approved":
        version = request.ref.rsplit("/", 1)[1]
        return f"status: approved{decided}{why}: {subject} -> version {version}"
    return f"status: {request.status}{decided}{why}"


def _add_requests(commands: Any, options: Options) -> None:
    requests = add_command(commands, "requests", _requests, [options.store, options.json],
                           help="list promotion requests, newest first")
    requests.add_argument("name", metavar="NAME", nargs="?", help="only this model's")
    requests.add_argument("--status", choices=_STATUSES, help="only requests in this state")


def _requests(args: argparse.Namespace) -> int:
    from ..registry import _api
    from ..registry._refs import model_state

    with _store(args, read_only=True) as store:
        if args.name is not None:
            model_state(store, args.name)  # an unknown name is a mistake, not "none"
        frame = _api.promotion_requests(store, args.name, args.status)
    if args.json:
        render.print_json([{**row, "checks": json.loads(row["checks"])}
                           for row in frame.to_dicts()])
    elif frame.is_empty():
        print("no promotion request" + (f" is {args.status}" if args.status else "")
              + (f" for {args.name}" if args.name else ""), file=sys.stderr)
    else:
        _print_frame(frame.select("request_id", "ref", "alias", "status", "requested_by",
                                 "requested_at", "failed_checks", "decided_by", "note"))
    return 0


def _add_decisions(commands: Any, options: Options) -> None:
    for name, verb in (("approve", "approve (moving the alias)"), ("reject", "reject")):
        decide = add_command(
            commands, name, _decide, [options.store, options.json],
            help=f"{verb} a pending promotion request",
            description=f"{verb.capitalize()} request ID. Four eyes: whoever requested it "
                        "or trained the model may not approve it.")
        decide.set_defaults(approve=name == "approve")
        decide.add_argument("request_id", metavar="ID", type=positive_int,
                            help=f"the request's number (`{PROG} models requests`)")
        decide.add_argument("--note", metavar="TEXT", help="why, kept in the audit trail")


def _decide(args: argparse.Namespace) -> int:
    from ..registry import _api

    with _store(args) as store:
        request = _api.decide(store, args.request_id, approve=args.approve, note=args.note)
    if args.json:
        render.print_json(_request_dict(request))
    else:
        print(f"{'approved' if args.approve else 'rejected'} request #{request.request_id} "
              f"({request.ref} -> @{request.alias})")
        print(_status_line(request))
    return 0


# -- models card -----------------------------------------------------------------------


def _add_card(commands: Any, options: Options) -> None:
    card = add_command(commands, "card", _card, [options.store],
                       help="the model card of a registered version (Markdown or HTML)")
    card.add_argument("ref", metavar="REF", help="a version, e.g. churn/3 or churn@champion")
    card.add_argument("--format", choices=("md", "html"),
                      help="default: html for an -o FILE ending in .html, else md")
    card.add_argument("-o", "--output", metavar="FILE", help="write it to FILE, not stdout")


def _card(args: argparse.Namespace) -> int:
    from ..registry._card import model_card

    with _store(args, read_only=True) as store:
        card = model_card(args.ref, store=store)
    text = card.html if _format_of(args, "md") == "html" else card.markdown
    if args.output is None:
        sys.stdout.write(text)
    else:
        _write(args.output, text)
        print(f"wrote the card of {args.ref} to {args.output}", file=sys.stderr)
    return 0


# -- audit ls / verify / export ----------------------------------------------------------


def _add_audit(commands: Any, options: Options) -> None:
    ls = add_command(commands, "ls", _audit_ls, [options.store, options.json],
                     help="list the audit trail, oldest first")
    ls.add_argument("--model", metavar="NAME", help="only this model's entries")
    add_command(commands, "verify", _audit_verify, [options.store, options.json],
                help="check the hash chain: exit 0 when whole, 1 naming the first break")
    export = add_command(
        commands, "export", _audit_export, [options.store],
        help="the whole trail as JSON Lines or a static HTML page",
        description="Every entry with all its columns; the HTML page opens with the "
                    "verdict of `nbtrail audit verify`.")
    export.add_argument("--format", choices=("jsonl", "html"),
                        help="default: html for an -o FILE ending in .html, else jsonl")
    export.add_argument("-o", "--output", metavar="FILE", help="write it to FILE, not stdout")


def _audit_ls(args: argparse.Namespace) -> int:
    from ..registry._export import entry_records
    from ..registry._refs import model_state

    with _store(args, read_only=True) as store:
        if args.model is not None:
            model_state(store, args.model)
        records = entry_records(store.audit_entries(args.model))
    if args.json:
        render.print_json(records)
    elif not records:
        print("the audit trail is empty: nothing was registered yet", file=sys.stderr)
    else:
        _print_rows(["seq", "at", "actor", "event", "model", "version", "detail"],
                    [[r["seq"], r["at"], r["actor"], r["event"], r["model"], r["version"],
                      _summary(r["event"], r["payload"])] for r in records],
                    whole_last=True)
    return 0


def _summary(event: str, payload: Mapping[str, Any]) -> str:
    """The gist of an entry's payload, for one table cell."""
    note = f": {payload['note']}" if payload.get("note") else ""
    if event == "registered":
        return f"model {payload.get('model_id')} of run {payload.get('run_id')}"
    if event == "policy_set":
        from ..registry import Policy

        policy = Policy(**payload["policy"])
        return (f"@{payload['alias']}: checks {', '.join(policy.checks) or 'none'}, "
                f"approval {'required' if policy.require_approval else 'none'}")
    if event == "check":
        mark = "passed" if payload.get("passed") else "FAILED"
        return f"#{payload.get('request')} {payload.get('check')} {mark}: {payload.get('detail')}"
    if event == "checks_done":
        return f"#{payload.get('request')} " + ("all passed" if payload.get("passed")
                                                 else "a check failed")
    if event in ("approved", "rejected"):
        return f"#{payload.get('request')}{note}"
    if event == "promotion_requested":
        return f"-> @{payload.get('alias')}{note}"
    if event in ("alias_set", "alias_removed"):
        was = payload.get("previous")
        return f"@{payload.get('alias')}" + (f" (was {was})" if was is not None else "") + note
    return render.compact_json(payload)


def _audit_verify(args: argparse.Namespace) -> int:
    from ..registry import _api
    from ..registry._export import verdict_line

    with _store(args, read_only=True) as store:
        verdict = _api.verify_audit(store)
    if args.json:
        render.print_json({"ok": verdict.ok, **dataclasses.asdict(verdict)})
    else:
        print(verdict_line(verdict))
    return 0 if verdict.ok else 1


def _audit_export(args: argparse.Namespace) -> int:
    from ..registry._export import export_audit

    with _store(args, read_only=True) as store:
        text = export_audit(store, _format_of(args, "jsonl"))
    if args.output is None:
        sys.stdout.write(text)
    else:
        _write(args.output, text)
        print(f"wrote the audit trail to {args.output}", file=sys.stderr)
    return 0
