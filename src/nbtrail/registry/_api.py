"""The registry's public functions: register, aliases, policies, promotions, the audit.

Every change is a set of audit entries appended in one ``Store.audit_session``, after
checking the state that session read: two processes can never both win a decision.
``on_behalf_of`` is for services that authenticated a user themselves (the Jupyter
server's logged-in user, see ``Store.audit_session``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import _html
from ..errors import ApprovalError, ConflictError, InvalidInputError, NotFoundError
from ..store._audit import Draft, Verdict, verify
from . import _state
from ._checks import run_checks
from ._policy import NO_POLICY, Policy, parse
from ._refs import check_alias, check_name, model_state, resolve, resolve_with_state
from ._state import ModelState, Request, fold

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registered model (``ref`` is ``name/number``)."""

    name: str
    version: int
    model_id: str
    run_id: str
    aliases: tuple[str, ...]
    registered_by: str
    registered_at: datetime
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """The reference that names this version anywhere a model id is taken."""
        return f"{self.name}/{self.version}"

    def __repr__(self) -> str:
        aliases = "".join(f" @{a}" for a in self.aliases)
        return f"<ModelVersion {self.ref}{aliases} model {self.model_id} run {self.run_id}>"

    def _repr_html_(self) -> str:
        return _html.mapping(f"model version {self.ref}", {
            "model_id": self.model_id, "run_id": self.run_id,
            "aliases": ", ".join(f"@{a}" for a in self.aliases) or "none",
            "registered by": self.registered_by, "registered at": str(self.registered_at),
            **{f"metric {k}": v for k, v in self.metrics.items()}})


@dataclass(frozen=True)
class PromotionRequest:
    """A request to point ``alias`` at a version, its checks and where it stands.

    ``status``: ``checking``, ``pending`` (checks passed, waiting for approval),
    ``failed`` (a check failed), ``approved`` (the alias moved) or ``rejected``.
    """

    request_id: int
    ref: str
    alias: str
    status: str
    requested_by: str
    checks: tuple[dict[str, Any], ...]
    note: str | None = None
    decided_by: str | None = None
    decision_note: str | None = None

    @property
    def failed_checks(self) -> list[str]:
        """Names of the checks that did not pass."""
        return [c["check"] for c in self.checks if not c["passed"]]

    def __repr__(self) -> str:
        checks = ", ".join(f"{c['check']} {'ok' if c['passed'] else 'FAILED'}"
                           for c in self.checks) or "no checks"
        return (f"<PromotionRequest #{self.request_id} {self.ref} -> @{self.alias}: "
                f"{self.status} ({checks})>")

    def _repr_html_(self) -> str:
        rows: dict[str, Any] = {"status": self.status, "requested by": self.requested_by}
        if self.decided_by:
            rows["decided by"] = self.decided_by
        for check in self.checks:
            mark = "passed" if check["passed"] else "FAILED"
            rows[f"check {check['check']}"] = f"{mark}: {check['detail']}"
        return _html.mapping(f"promotion request #{self.request_id}: {self.ref} → "
                             f"@{self.alias}", rows)


def _version_of(state: ModelState, number: int) -> ModelVersion:
    version = state.versions[number]
    return ModelVersion(
        state.name, number, version.model_id, version.facts["run_id"],
        tuple(sorted(a for a, v in state.aliases.items() if v == number)),
        version.registered_by, version.registered_at, version.facts.get("metrics") or {})


def _request_of(request: Request) -> PromotionRequest:
    return PromotionRequest(
        request.request_id, f"{request.model}/{request.version}", request.alias,
        request.status, request.requested_by, tuple(request.checks), request.note,
        request.decided_by, request.decision_note)


# -- registering ---------------------------------------------------------------------


def _model_to_register(store: Store, model_or_run: object) -> dict[str, Any]:
    """The ``models`` row of what ``register`` was given: a model, a run or a reference."""
    from ._refs import model_id_of

    ref = getattr(model_or_run, "run_id", model_or_run)  # a Run record or an ActiveRun
    if not isinstance(ref, str) or not ref:
        raise InvalidInputError(f"register takes a model id (mdl_…), a run (id or object) or "
                                f"a registry reference, got {type(model_or_run).__name__}")
    ref = model_id_of(store, ref)
    if ref.startswith("mdl_"):
        found = store.models(model_id=ref)
        if found.is_empty():
            raise NotFoundError(f"no model {ref!r} in the store at {store.location}")
    else:
        run = store.get_run(ref)
        found = store.models(run=run.run_id)
        if found.is_empty():
            raise InvalidInputError(f"run {run.run_id} logged no model, so there is nothing "
                                    "to register; log one with run.log_model(model)")
        if len(found) > 1:
            listed = ", ".join(f"{r['model_id']} ({r['name']})" for r in found.iter_rows(
                named=True))
            raise InvalidInputError(f"run {run.run_id} logged {len(found)} models; register "
                                    f"one of them by its id: {listed}")
    return found.row(0, named=True)


def _facts(store: Store, row: dict[str, Any], description: str | None) -> dict[str, Any]:
    run = store.get_run(row["run_id"])
    signature = row["signature"]
    return {
        "model_id": row["model_id"], "model_name": row["name"], "run_id": run.run_id,
        "run_name": run.name, "experiment": run.experiment, "run_user": run.user,
        "format": row["format"], "flavor": row["flavor"], "class_name": row["class_name"],
        "sha256": row["sha256"], "size_bytes": row["size_bytes"],
        "signature": json.loads(signature) if isinstance(signature, str) else signature,
        "training_dataset_id": row["training_dataset_id"],
        "datasets": [{k: d.get(k) for k in ("dataset_id", "name", "role", "fingerprint")}
                     for d in run.datasets],
        "code_id": (run.code or {}).get("code_id"), "env_id": (run.env or {}).get("env_id"),
        "notebook": run.notebook,
        "git": {k: (run.git or {}).get(k) for k in ("commit", "branch", "snapshot", "dirty")},
        "params": dict(run.params), "metrics": dict(run.metrics),
        "description": description,
    }


def register(store: Store, model_or_run: object, *, name: str,
             description: str | None = None, on_behalf_of: str | None = None
             ) -> ModelVersion:
    """Register a model as the next version of ``name`` (see ``nt.register``)."""
    check_name(name)
    if description is not None and not isinstance(description, str):
        raise InvalidInputError(f"description must be text, got {type(description).__name__}")
    row = _model_to_register(store, model_or_run)
    facts = _facts(store, row, description)
    with store.audit_session(on_behalf_of) as session:
        state = fold(session.entries(name)).get(name) or ModelState(name)
        same = [n for n, v in state.versions.items() if v.model_id == row["model_id"]]
        if same:  # registering again (a notebook run twice) adds no version
            number = same[0]
            if description is not None and description != state.description:
                session.append([Draft(_state.DESCRIBED, name, number,
                                      {"description": description})])
        else:
            number = max(state.versions, default=0) + 1
            session.append([Draft(_state.REGISTERED, name, number, facts)])
    # Read once the session has ended: on a server its entries commit only then.
    return version_after(store, name, number)


def version(store: Store, ref: str) -> ModelVersion:
    """The version ``ref`` (``name/N`` or ``name@alias``) names now."""
    found, state = resolve_with_state(store, ref)
    return _version_of(state, found.version)


def models(store: Store) -> pl.DataFrame:
    """One row a registered model (see ``nt.models``)."""
    import polars as pl

    rows = []
    for state in fold(store.audit_entries()).values():
        if not state.versions:
            continue
        latest = state.versions[max(state.versions)]
        rows.append({
            "name": state.name, "description": state.description,
            "versions": len(state.versions), "latest_version": latest.number,
            "aliases": ", ".join(f"@{a}={v}" for a, v in sorted(state.aliases.items())),
            "pending_requests": sum(r.status in _state.OPEN for r in state.requests.values()),
            "created_at": state.created_at, "updated_at": latest.registered_at})
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "name": pl.String, "description": pl.String, "versions": pl.Int64,
              "latest_version": pl.Int64, "aliases": pl.String, "pending_requests": pl.Int64,
              "created_at": pl.Datetime("us", "UTC"), "updated_at": pl.Datetime("us", "UTC")}
    return pl.DataFrame(rows, schema=schema).sort("name")


def model_versions(store: Store, name: str) -> pl.DataFrame:
    """One row a version of ``name`` (see ``nt.model_versions``)."""
    import polars as pl

    state = model_state(store, name)
    rows = []
    for number, v in sorted(state.versions.items()):
        rows.append({
            "version": number, "ref": f"{name}/{number}", "model_id": v.model_id,
            "run_id": v.facts["run_id"], "run_name": v.facts.get("run_name"),
            "class_name": v.facts.get("class_name"), "size_bytes": v.facts.get("size_bytes"),
            "aliases": ", ".join(f"@{a}" for a, n in sorted(state.aliases.items())
                                 if n == number),
            "registered_by": v.registered_by, "registered_at": v.registered_at,
            "packages": len(v.packages),
            **{f"metric.{k}": val for k, val in (v.facts.get("metrics") or {}).items()}})
    # Every row decides the columns: a metric first logged by version 101 keeps its own.
    return pl.DataFrame(rows, infer_schema_length=None)


# -- aliases and policies ------------------------------------------------------------


def _number(state: ModelState, number: object) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or number not in state.versions:
        raise NotFoundError(f"{state.name} has no version {number!r} (versions: "
                            f"{', '.join(map(str, sorted(state.versions)))})")
    return number


def set_alias(store: Store, name: str, alias: str, version: int, *,
              note: str | None = None, on_behalf_of: str | None = None) -> ModelVersion:
    """Point an unprotected ``alias`` at ``version`` (see ``nt.set_alias``)."""
    check_alias(alias)
    model_state(store, name)  # a clear error for an unknown model
    with store.audit_session(on_behalf_of) as session:
        state = model_state_in(session, name)
        number = _number(state, version)
        if alias in state.policies:
            raise ConflictError(f"{name}@{alias} is protected by a policy; move it with "
                                f"nt.request_promotion({name!r}, version={number}, "
                                f"alias={alias!r})")
        session.append([Draft(_state.ALIAS_SET, name, number, {
            "alias": alias, "previous": state.aliases.get(alias), "note": note,
            "request": None})])
    return version_after(store, name, number)


def remove_alias(store: Store, name: str, alias: str, *, note: str | None = None,
                 on_behalf_of: str | None = None) -> None:
    """Remove an unprotected alias."""
    check_alias(alias)
    with store.audit_session(on_behalf_of) as session:
        state = model_state_in(session, name)
        if alias not in state.aliases:
            raise NotFoundError(f"{name} has no alias @{alias}")
        if alias in state.policies:
            raise ConflictError(f"{name}@{alias} is protected by a policy; it moves only "
                                "through promotion requests")
        session.append([Draft(_state.ALIAS_REMOVED, name, state.aliases[alias], {
            "alias": alias, "previous": state.aliases[alias], "note": note})])


def set_policy(store: Store, name: str, alias: str, values: Mapping[str, Any], *,
               on_behalf_of: str | None = None) -> Policy:
    """Set the policy that protects ``name@alias`` (see ``nt.set_policy``)."""
    check_alias(alias)
    policy = parse(values, alias)
    with store.audit_session(on_behalf_of) as session:
        model_state_in(session, name)
        session.append([Draft(_state.POLICY_SET, name, None,
                              {"alias": alias, "policy": policy.to_dict()})])
    return policy


def policy_of(state: ModelState, alias: str) -> Policy:
    """The policy of ``alias`` (no checks and no approval when none was set)."""
    stored = state.policies.get(alias)
    return Policy(**stored) if stored is not None else NO_POLICY


def model_state_in(session: Any, name: str) -> ModelState:
    """The state of ``name`` as an audit session reads it (NotFoundError if unknown)."""
    state = fold(session.entries(check_name(name))).get(name)
    if state is None or not state.versions:
        raise NotFoundError(f"no registered model {name!r}; register one with "
                            f"nt.register(run_or_model, name={name!r})")
    return state


def version_after(store: Store, name: str, number: int) -> ModelVersion:
    """A version as the registry has it after a change."""
    return _version_of(model_state(store, name), number)


# -- promotions ----------------------------------------------------------------------


def request_promotion(store: Store, name: str, *, version: int, alias: str,
                      note: str | None = None, data: object = None, trusted: bool = False,
                      progress: Callable[[str], None] | None = None,
                      on_behalf_of: str | None = None) -> PromotionRequest:
    """Open a request, run the alias's checks, and move the alias if nobody must approve."""
    check_alias(alias)
    model_state(store, name)
    with store.audit_session(on_behalf_of) as session:
        state = model_state_in(session, name)
        number = _number(state, version)
        busy = state.open_request(alias)
        if busy is not None:
            raise ConflictError(
                f"{name}@{alias} already has an open request, #{busy.request_id} (version "
                f"{busy.version}, by {busy.requested_by}, {busy.status}); " + (
                    "wait for its checks, or reject it if they stopped"
                    if busy.status == _state.CHECKING else "approve or reject it first"))
        if state.aliases.get(alias) == number:
            raise ConflictError(f"{name}@{alias} already points at version {number}")
        (opened,) = session.append([Draft(_state.REQUESTED, name, number, {
            "alias": alias, "note": note, "holder": state.aliases.get(alias)})])
    request_id = opened.seq
    policy = policy_of(state, alias)
    holder_number = state.aliases.get(alias)
    holder = state.versions[holder_number] if holder_number is not None else None
    results = run_checks(store, policy, state.versions[number], holder, data=data,
                         trusted=trusted, progress=progress)
    passed = all(r["passed"] for r in results)
    with store.audit_session(on_behalf_of) as session:
        state = model_state_in(session, name)
        request = state.requests[request_id]
        if request.status != _state.CHECKING:  # rejected while the checks ran
            return _request_of(request)
        drafts = [Draft(_state.CHECKED, name, number, {"request": request_id, **r})
                  for r in results]
        drafts.append(Draft(_state.CHECKS_DONE, name, number,
                            {"request": request_id, "passed": passed}))
        if passed and not policy.require_approval:
            drafts += _promotion(state, request, note="no approval required for this alias",
                                 automatic=True)
        session.append(drafts)
    return promotion_request(store, request_id)


def _promotion(state: ModelState, request: Request, *, note: str | None,
               automatic: bool = False) -> list[Draft]:
    return [
        Draft(_state.APPROVED, state.name, request.version,
              {"request": request.request_id, "note": note, "automatic": automatic}),
        Draft(_state.ALIAS_SET, state.name, request.version,
              {"alias": request.alias, "previous": state.aliases.get(request.alias),
               "request": request.request_id, "note": request.note}),
    ]


def _find_request(store: Store, request_id: object) -> str:
    """The model a request belongs to."""
    if isinstance(request_id, bool) or not isinstance(request_id, int):
        raise InvalidInputError(f"a request id is a number (e.g. 12), got {request_id!r}")
    entries = store.audit_entries()
    found = entries.filter((entries["seq"] == request_id)
                           & (entries["event"] == _state.REQUESTED))
    if found.is_empty():
        raise NotFoundError(f"no promotion request #{request_id}; list them with "
                            "nt.promotion_requests() or `nbtrail models requests`")
    return str(found["model"][0])


def promotion_request(store: Store, request_id: int) -> PromotionRequest:
    """A promotion request as it stands."""
    name = _find_request(store, request_id)
    return _request_of(model_state(store, name).requests[request_id])


def promotion_requests(store: Store, name: str | None = None,
                       status: str | None = None) -> pl.DataFrame:
    """One row a promotion request, newest first (``status`` keeps one kind)."""
    import polars as pl

    states = fold(store.audit_entries(name))
    rows = [{"request_id": r.request_id, "model": r.model, "version": r.version,
             "ref": f"{r.model}/{r.version}", "alias": r.alias, "status": r.status,
             "requested_by": r.requested_by, "requested_at": r.requested_at, "note": r.note,
             "checks": json.dumps(r.checks, default=str),
             "failed_checks": ", ".join(c["check"] for c in r.checks if not c["passed"]),
             "decided_by": r.decided_by, "decided_at": r.decided_at,
             "decision_note": r.decision_note}
            for state in states.values() for r in state.requests.values()
            if status is None or r.status == status]
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "request_id": pl.Int64, "model": pl.String, "version": pl.Int64,
              "ref": pl.String, "alias": pl.String, "status": pl.String,
              "requested_by": pl.String, "requested_at": pl.Datetime("us", "UTC"),
              "note": pl.String, "checks": pl.String, "failed_checks": pl.String,
              "decided_by": pl.String, "decided_at": pl.Datetime("us", "UTC"),
              "decision_note": pl.String}
    return pl.DataFrame(rows, schema=schema).sort("request_id", descending=True)


def decide(store: Store, request_id: int, *, approve: bool, note: str | None = None,
           on_behalf_of: str | None = None) -> PromotionRequest:
    """Approve (moving the alias) or reject a request, under the four-eyes rule."""
    name = _find_request(store, request_id)
    with store.audit_session(on_behalf_of) as session:
        state = model_state_in(session, name)
        request = state.requests[request_id]
        ref = f"{name}/{request.version} -> @{request.alias}"
        if request.status not in _state.OPEN:
            by = f" by {request.decided_by}" if request.decided_by else ""
            raise ApprovalError(f"request #{request_id} ({ref}) is already {request.status}"
                                f"{by}; open a new one with nt.request_promotion")
        if approve:
            if request.status != _state.PENDING:
                raise ApprovalError(f"request #{request_id} ({ref}) cannot be approved while "
                                    f"{request.status}" + (
                                        ": its checks have not finished" if request.status
                                        == _state.CHECKING else ""))
            author = state.versions[request.version].facts.get("run_user")
            who = session.acting_for
            if who == request.requested_by or who == author:
                role = "requested it" if who == request.requested_by else \
                    "trained the model (the run's user)"
                raise ApprovalError(
                    f"{who} may not approve request #{request_id} ({ref}): they {role}; "
                    "four eyes: another person approves")
            session.append(_promotion(state, request, note=note))
        else:
            session.append([Draft(_state.REJECTED, name, request.version,
                                  {"request": request_id, "note": note})])
    return promotion_request(store, request_id)


# -- the audit trail -----------------------------------------------------------------


def audit(store: Store, name: str | None = None) -> pl.DataFrame:
    """The audit trail, oldest first, with ``at`` as a time (see ``nt.audit``)."""
    import polars as pl

    entries = store.audit_entries(check_name(name) if name is not None else None)
    return entries.with_columns(
        at=pl.from_epoch(pl.col("at_us"), time_unit="us").dt.replace_time_zone("UTC")
    ).select("seq", "at", "actor", "actor_source", "event", "model", "version", "payload",
             "prev_hash", "hash")


def verify_audit(store: Store) -> Verdict:
    """Check the whole chain, then the registry's rules (see ``nbtrail audit verify``).

    A chain can be whole and still hold an entry nbtrail never writes: one inserted by
    hand by a role that may insert (an alias moved past its policy, an approval by the
    requester). The first such entry is named too.
    """
    entries = store.audit_entries()
    verdict = verify(entries.iter_rows())
    if not verdict.ok:
        return verdict
    import polars as pl

    ruled = entries.filter(~pl.col("event").is_in(_state.UNRULED))
    broken = sorted(v for state in fold(ruled).values() for v in state.violations)
    if not broken:
        return verdict
    seq, why = broken[0]
    row = entries.row(seq - 1, named=True)
    return Verdict(verdict.entries, verdict.head, seq,
                   f"entry {seq} ({row['event']} by {row['actor']}) breaks the registry's "
                   f"rules: it {why}; nbtrail never writes such an entry")


def package_entries(store: Store, package_id: str) -> list[dict[str, Any]]:
    """A package's ``package_built`` and ``deployed`` entries, newest first.

    Each is its payload plus ``event`` and ``registry`` (``name/version``).
    """
    import polars as pl

    trail = store.audit_entries()
    trail = trail.filter(pl.col("event").is_in([_state.PACKAGED, _state.DEPLOYED])
                         & pl.col("payload").str.contains(package_id, literal=True))
    found = []
    for entry in trail.iter_rows(named=True):
        payload = json.loads(entry["payload"])
        if payload.get("package_id") == package_id:
            found.append(payload | {"event": entry["event"],
                                    "registry": f"{entry['model']}/{entry['version']}"})
    return found[::-1]


def record_deployment(store: Store, package_id: str, details: Mapping[str, Any]) -> int:
    """Record a ``deployed`` entry for each registry version in a package; how many."""
    built = {e["registry"]: e for e in package_entries(store, package_id)
             if e["event"] == _state.PACKAGED}
    drafts = []
    for key, entry in built.items():
        name, number = key.rsplit("/", 1)
        drafts.append(Draft(_state.DEPLOYED, name, int(number), {
            "ref": entry.get("ref"), "package_id": package_id, "model_id": entry.get("model_id"),
            "role": entry.get("role", "champion"), **details}))
    if drafts:
        with store.audit_session() as session:
            session.append(drafts)
    return len(drafts)


def record_use(store: Store, ref: str, event: str, details: Mapping[str, Any], *,
               on_behalf_of: str | None = None) -> None:
    """Record that a registered version was packaged or deployed (``ref`` names it)."""
    found = resolve(store, ref)
    with store.audit_session(on_behalf_of) as session:
        session.append([Draft(event, found.name, found.version,
                              {"ref": ref, "alias": found.alias, **details})])
