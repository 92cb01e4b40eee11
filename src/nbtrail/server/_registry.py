"""The model registry: models with their versions, open promotion requests, decisions.

Reads list what ``nt.models``, ``nt.model_versions`` and ``nt.promotion_requests`` list.
Writes (register, approve, reject) act for the logged-in user (:attr:`RegistryHandler.
acting_user`) and need Jupyter's ``write`` permission on the ``nbtrail`` resource; the
four-eyes rule is the registry's own (``registry._api.decide``), so a refusal is its
403 with its one-line reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from tornado import web

from ..registry import _api
from ..registry._state import OPEN
from ._base import ArgumentError, BaseHandler

if TYPE_CHECKING:
    from ..store import Store

# Jupyter's own identity providers: one token or password for the whole server. The user
# they return is an "Anonymous" id made up for each browser session, not a person.
SHARED_SECRET = (IdentityProvider, PasswordIdentityProvider)
# A request id is an audit entry's sequence number; longer digit strings are no id.
_REQUEST_ID = re.compile(r"[0-9]{1,18}")


class RegistryHandler(BaseHandler):
    """Common ground of the registry's handlers: the resource and the acting user."""

    auth_resource = "nbtrail"

    @property
    def acting_user(self) -> str | None:
        """Whom a change is made for: the logged-in user, where the server knows who it is.

        Behind Jupyter's own login (one token or password) nobody is identified, so a
        change is made as the server's own user (``NBTRAIL_USER``, else the OS user), as
        the same person's notebook makes it. Recording the made-up session id instead
        would let a requester approve their own request from a second browser.
        """
        if type(self.identity_provider) in SHARED_SECRET:
            return None
        return str(self.current_user.username)


class RegistryListHandler(RegistryHandler):
    """``GET /nbtrail/api/registry``: the models, their versions and the open requests."""

    @web.authenticated
    async def get(self) -> None:
        """Every registered model with its versions; the requests not yet decided."""
        self.reply(await self.call(registry, self.store))


class RegisterHandler(RegistryHandler):
    """``POST /nbtrail/api/registry/register``: register a run's model as a new version."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Body: ``{"run_id": str, "name": str, "description": str?}`` -> 201, the version."""
        body = text_fields(self.json_body(), required=("run_id", "name"),
                           optional=("description",))
        version = await self.call(_api.register, self.store, body["run_id"], name=body["name"],
                                  description=body["description"],
                                  on_behalf_of=self.acting_user)
        self.reply({**asdict(version), "ref": version.ref}, status=201)


class DecisionHandler(RegistryHandler):
    """``POST /nbtrail/api/registry/requests/{id}/approve`` (or ``/reject``)."""

    @web.authenticated
    @authorized
    async def post(self, request_id: str, verdict: str) -> None:
        """Body: ``{"note": str?}`` -> the request as decided (403 if the rules refuse)."""
        note = text_fields(self.json_body(), optional=("note",))["note"]
        if not _REQUEST_ID.fullmatch(request_id):
            raise ArgumentError(f"a promotion request id is a number (e.g. 12), got "
                                f"{request_id[:40]!r}")
        request = await self.call(_api.decide, self.store, int(request_id),
                                  approve=verdict == "approve", note=note,
                                  on_behalf_of=self.acting_user)
        self.reply({**asdict(request), "checks": [check_summary(c) for c in request.checks]})


def text_fields(body: dict[str, Any], *, required: tuple[str, ...] = (),
                optional: tuple[str, ...] = ()) -> dict[str, str | None]:
    """The text fields of a body; a missing, mistyped or unknown field is a 400 naming it.

    Each required field is non-empty text (stripped); each optional one text or null
    (missing: null).
    """
    unknown = sorted(set(body) - {*required, *optional})
    if unknown:
        raise ArgumentError(f"unknown field(s) {', '.join(unknown)}; known: "
                            f"{', '.join((*required, *optional))}")
    fields: dict[str, str | None] = {}
    for key in (*required, *optional):
        value = body.get(key)
        if key in required and (not isinstance(value, str) or not value.strip()):
            got = "nothing" if value is None else type(value).__name__
            raise ArgumentError(f'the body needs "{key}": a non-empty string, got {got}')
        if value is not None and not isinstance(value, str):
            # The type, not the value: a body's value may be large or deeply nested.
            raise ArgumentError(f'"{key}" must be a string or null, got {type(value).__name__}')
        fields[key] = value.strip() if key in required and isinstance(value, str) else value
    return fields


def registry(store: Store) -> dict[str, Any]:
    """The models with their versions and aliases, and the open requests, as JSON."""
    models = []
    for row in _api.models(store).iter_rows(named=True):
        versions = [_version(v) for v in
                    _api.model_versions(store, row["name"]).iter_rows(named=True)]
        aliases = {a: v["version"] for v in versions for a in v["aliases"]}
        models.append({k: row[k] for k in ("name", "description", "latest_version",
                                           "pending_requests", "created_at", "updated_at")}
                      | {"aliases": aliases, "versions": versions})
    holders = {m["name"]: m["aliases"] for m in models}
    requests = [_request(r, holders.get(r["model"], {}))
                for r in _api.promotion_requests(store).iter_rows(named=True)
                if r["status"] in OPEN]
    return {"models": models, "requests": requests}


def _version(row: dict[str, Any]) -> dict[str, Any]:
    """A row of ``model_versions`` with its aliases as a list and its metrics as a map."""
    plain = {k: v for k, v in row.items() if not k.startswith("metric.")}
    return plain | {
        "aliases": [a.removeprefix("@") for a in (row["aliases"] or "").split(", ") if a],
        "metrics": {k.removeprefix("metric."): v for k, v in row.items()
                    if k.startswith("metric.") and v is not None}}


def _request(row: dict[str, Any], aliases: dict[str, int]) -> dict[str, Any]:
    """A row of ``promotion_requests`` with its checks, and where its alias points now."""
    keep = ("request_id", "model", "version", "ref", "alias", "status", "requested_by",
            "requested_at", "note")
    return {k: row[k] for k in keep} | {
        "holder": aliases.get(row["alias"]),
        "checks": [check_summary(c) for c in json.loads(row["checks"])]}


def check_summary(check: dict[str, Any]) -> dict[str, Any]:
    """A check's result as the panel shows it: name, verdict, detail and evidence."""
    return {"check": check["check"], "passed": bool(check["passed"]),
            "detail": check["detail"], "evidence": check.get("evidence") or {}}
