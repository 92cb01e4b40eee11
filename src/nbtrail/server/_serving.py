"""Packages in service: their live view, and promoting a challenger they serve.

The view is ``nt.traffic`` of a package (its versions, traffic over time and latest
challenge report). Promoting opens a promotion request like ``Traffic.promote``, for the
logged-in user and with the registry's own checks and rules, so it needs the ``write``
permission the registry's other changes need.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..monitor._traffic import traffic
from ._base import ArgumentError, BaseHandler
from ._registry import RegistryHandler, check_summary, text_fields

if TYPE_CHECKING:
    from ..store import Store

# nt.package's ids: "pkg_" and a ULID. Anything else is refused before the store is read.
_PACKAGE_ID = re.compile(r"pkg_[0-9A-Za-z]{1,40}")
# Packages the list returns, newest first.
LISTED = 200


class PackagesHandler(BaseHandler):
    """``GET /nbtrail/api/packages``: the serving packages, newest first."""

    @web.authenticated
    async def get(self) -> None:
        """Each package's id, name, model, image and creation time."""
        self.reply(await self.call(packages, self.store))


class TrafficHandler(BaseHandler):
    """``GET /nbtrail/api/packages/{id}/traffic?every=60``: a package's live view."""

    @web.authenticated
    async def get(self, package_id: str) -> None:
        """Versions, timeline buckets of ``every`` seconds, totals and the latest report."""
        every = self.int_arg("every", 60, low=1, high=86_400)
        view = await self.call(traffic, _checked(package_id), every=every, store=self.store)
        self.reply(view.to_dict())


class PromoteHandler(RegistryHandler):
    """``POST /nbtrail/api/packages/{id}/promote``: ask to make a challenger the champion."""

    @web.authenticated
    @authorized
    async def post(self, package_id: str) -> None:
        """Body: ``{"version": str?, "alias": str?, "note": str?}`` -> 201, the request."""
        body = text_fields(self.json_body(), optional=("version", "alias", "note"))
        request = await self.call(_promote, self.store, _checked(package_id), body,
                                  self.acting_user)
        self.reply({**asdict(request), "checks": [check_summary(c) for c in request.checks]},
                   status=201)


def _checked(package_id: str) -> str:
    if not _PACKAGE_ID.fullmatch(package_id):
        raise ArgumentError(f"a package id is pkg_ and letters or digits, got "
                            f"{package_id[:40]!r}")
    return package_id


def packages(store: Store) -> list[dict[str, Any]]:
    """The newest packages as JSON-ready rows."""
    keep = ("package_id", "name", "model_id", "run_id", "image_tag", "created_at")
    return store.packages().head(LISTED).select(keep).to_dicts()


def _promote(store: Store, package_id: str, body: dict[str, str | None],
             user: str | None) -> Any:
    view = traffic(package_id, store=store)
    return view.promote(body["version"], alias=body["alias"] or "champion", note=body["note"],
                        on_behalf_of=user)
