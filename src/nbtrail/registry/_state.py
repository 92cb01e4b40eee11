"""The registry as its audit trail says it is: models, versions, aliases and requests.

Nothing else holds registry state. Folding a model's entries in order gives its
versions, aliases, policies and promotion requests, so what the registry shows is
exactly what a verified chain says (``docs/registry.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

# Events (the ``event`` column of the audit trail).
REGISTERED = "registered"
DESCRIBED = "description_set"
POLICY_SET = "policy_set"
REQUESTED = "promotion_requested"
CHECKED = "check"
CHECKS_DONE = "checks_done"
APPROVED = "approved"
REJECTED = "rejected"
ALIAS_SET = "alias_set"
ALIAS_REMOVED = "alias_removed"
PACKAGED = "package_built"
DEPLOYED = "deployed"

# Events no registry rule looks at (``ModelState.violations``): a rules replay skips them.
UNRULED = (DESCRIBED, CHECKED, PACKAGED, DEPLOYED)

# A promotion request's states: checks run, then it waits for a decision (or failed).
CHECKING, PENDING, FAILED = "checking", "pending", "failed"
OPEN = (CHECKING, PENDING)


def when(at_us: int) -> datetime:
    """An entry's time as a datetime (UTC)."""
    return datetime.fromtimestamp(at_us / 1e6, UTC)


@dataclass
class Version:
    """One registered version of a model, as registered (its payload) and used since."""

    number: int
    registered_by: str
    registered_at: datetime
    facts: dict[str, Any]  # model id, run, lineage, metrics snapshot (``_api.register``)
    packages: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model_id(self) -> str:
        """The logged model this version is."""
        return str(self.facts["model_id"])


@dataclass
class Request:
    """A request to point an alias at a version, with its checks and decision."""

    request_id: int  # the seq of the entry that opened it
    model: str
    version: int
    alias: str
    requested_by: str
    requested_at: datetime
    note: str | None
    status: str = CHECKING
    checks: list[dict[str, Any]] = field(default_factory=list)
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None


@dataclass
class ModelState:
    """A registered model: its versions, aliases, alias policies and requests."""

    name: str
    description: str | None = None
    created_at: datetime | None = None
    versions: dict[int, Version] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: dict[int, Request] = field(default_factory=dict)
    # Entries that break the registry's rules though chained correctly: written by hand
    # (a role with INSERT on the audit table), never by nbtrail. ``(seq, why)``.
    violations: list[tuple[int, str]] = field(default_factory=list)

    def open_request(self, alias: str) -> Request | None:
        """The undecided request for ``alias``, if any (at most one is open at a time)."""
        return next((r for r in self.requests.values()
                     if r.alias == alias and r.status in OPEN), None)


def fold(entries: pl.DataFrame) -> dict[str, ModelState]:
    """The registry state of the models in ``entries`` (audit rows, oldest first)."""
    models: dict[str, ModelState] = {}
    for row in entries.iter_rows(named=True):
        name = row["model"]
        if name is None:
            continue
        state = models.get(name)
        if state is None:
            state = models[name] = ModelState(name, created_at=when(row["at_us"]))
        _apply(state, row, json.loads(row["payload"]))
    return models


def _apply(state: ModelState, row: dict[str, Any], payload: dict[str, Any]) -> None:
    event, version, at = row["event"], row["version"], when(row["at_us"])
    # A service (the Jupyter server) acting as its own database role names the person.
    who = payload.get("on_behalf_of") or row["actor"]
    if event == REGISTERED:
        state.versions[version] = Version(version, who, at, payload)
        if payload.get("description"):
            state.description = payload["description"]
    elif event == DESCRIBED:
        state.description = payload["description"]
    elif event == POLICY_SET:
        state.policies[payload["alias"]] = payload["policy"]
    elif event == REQUESTED:
        state.requests[row["seq"]] = Request(
            row["seq"], state.name, version, payload["alias"], who, at, payload.get("note"))
    elif event in (CHECKED, CHECKS_DONE, APPROVED, REJECTED):
        request = state.requests.get(int(payload.get("request") or 0))
        if request is None:
            return
        if event == CHECKED:
            request.checks.append(payload)
        elif event == CHECKS_DONE:
            request.status = PENDING if payload.get("passed") else FAILED
        else:
            if event == APPROVED:
                _check_approval(state, row["seq"], request, who, payload)
            request.status = event
            request.decided_by, request.decided_at = who, at
            request.decision_note = payload.get("note")
    elif event == ALIAS_SET:
        alias = payload["alias"]
        request = state.requests.get(int(payload.get("request") or 0))
        if alias in state.policies and (request is None or request.status != APPROVED
                                        or request.version != version):
            state.violations.append((row["seq"], f"moves protected @{alias} of "
                                     f"{state.name} to version {version} without an "
                                     "approved request"))
        state.aliases[alias] = version
    elif event == ALIAS_REMOVED:
        state.aliases.pop(payload["alias"], None)
    elif event in (PACKAGED, DEPLOYED) and version in state.versions:
        target = state.versions[version]
        (target.packages if event == PACKAGED else target.deployments).append(
            {**payload, "by": who, "at": at})


def _check_approval(state: ModelState, seq: int, request: Request, who: str,
                    payload: dict[str, Any]) -> None:
    """Record an approval the rules forbid: four eyes, or one made before checks passed."""
    policy = state.policies.get(request.alias) or {}
    author = state.versions[request.version].facts.get("run_user") \
        if request.version in state.versions else None
    why: str | None
    if request.status != PENDING:
        why = f"approves request #{request.request_id} while it is {request.status}"
    elif payload.get("automatic"):
        why = (f"approves request #{request.request_id} automatically though "
               f"@{request.alias} requires approval") if policy.get("require_approval") \
            else None
    elif who in (request.requested_by, author):
        why = f"approves request #{request.request_id} by {who}, its requester or author"
    else:
        why = None
    if why is not None:
        state.violations.append((seq, why))
