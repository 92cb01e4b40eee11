"""Registry references: ``churn@champion`` (an alias) and ``churn/3`` (a version).

Every function that takes a model id takes a reference too: it calls
:func:`model_id_of` first. Model and run ids hold neither ``@`` nor ``/``, so a reference
is never mistaken for one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidInputError, NotFoundError
from ._state import ModelState, fold

if TYPE_CHECKING:
    from ..store import Store

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
_REF = re.compile(rf"(?P<name>{NAME.pattern})(?:@(?P<alias>{ALIAS.pattern})|/(?P<version>\d+))")


@dataclass(frozen=True)
class Reference:
    """A resolved reference: the model name, the version it means now, and its model."""

    name: str
    version: int
    model_id: str
    alias: str | None = None

    def __str__(self) -> str:
        return f"{self.name}/{self.version}"


def is_reference(ref: object) -> bool:
    """Whether ``ref`` is written as a registry reference (it may still not exist)."""
    return isinstance(ref, str) and _REF.fullmatch(ref) is not None


def check_name(name: object, what: str = "model name") -> str:
    """``name`` if it can name a registered model, else a clear ``InvalidInputError``."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidInputError(
            f"{what} {name!r} is not usable: use letters, digits, '_', '.' and '-' (up to "
            "100, starting with a letter or digit), e.g. 'churn'")
    return name


def check_alias(alias: object) -> str:
    """``alias`` if it can name an alias, else a clear ``InvalidInputError``."""
    if not isinstance(alias, str) or not ALIAS.fullmatch(alias):
        raise InvalidInputError(
            f"alias {alias!r} is not usable: use letters, digits, '_' and '-', starting with "
            "a letter (e.g. 'champion')")
    return alias


def model_state(store: Store, name: str) -> ModelState:
    """The registered model ``name``; ``NotFoundError`` listing the models if unknown."""
    state = fold(store.audit_entries(check_name(name))).get(name)
    if state is None or not state.versions:
        names = sorted(fold(store.audit_entries()))
        known = f"registered models: {', '.join(names[:10])}" if names else \
            "no model is registered yet (nt.register(run_or_model, name=...))"
        raise NotFoundError(f"no registered model {name!r} in the store at "
                            f"{store.location}; {known}")
    return state


def resolve(store: Store, ref: str) -> Reference:
    """The version ``ref`` (``name@alias`` or ``name/N``) means now."""
    return resolve_with_state(store, ref)[0]


def resolve_with_state(store: Store, ref: str) -> tuple[Reference, ModelState]:
    """``resolve``, and the model's state it was resolved in (read once)."""
    match = _REF.fullmatch(ref) if isinstance(ref, str) else None
    if match is None:
        raise InvalidInputError(
            f"{ref!r} is not a registry reference; write name@alias (e.g. churn@champion) "
            "or name/version (e.g. churn/3)")
    state = model_state(store, match["name"])
    alias = match["alias"]
    if alias is not None:
        if alias not in state.aliases:
            have = ", ".join(f"@{a}" for a in sorted(state.aliases)) or "none"
            raise NotFoundError(f"{state.name} has no alias @{alias} (its aliases: {have}); "
                                f"set one with nt.set_alias or nt.request_promotion")
        version = state.aliases[alias]
    else:
        version = int(match["version"])
        if version not in state.versions:
            raise NotFoundError(f"{state.name} has no version {version} (versions 1 to "
                                f"{max(state.versions)})")
    return Reference(state.name, version, state.versions[version].model_id, alias), state


def model_id_of(store: Store, ref: str) -> str:
    """``ref``'s model id if it is a registry reference, else ``ref`` unchanged."""
    return resolve(store, ref).model_id if is_reference(ref) else ref
