"""The audit trail's hash chain: how entries are made, appended and verified.

Each entry holds the SHA-256 of the one before it (``prev_hash``) and its own ``hash``,
computed over all its other fields in a canonical form. Editing any field of an entry
breaks its hash; deleting or inserting one breaks the numbering or the next entry's
``prev_hash``. What the chain cannot show by itself (the newest entries removed
together) is in ``docs/registry.md``.

Appends are serialized by the store (``Store.audit_session``): a session sees the
whole trail as it is, decides, and appends; no other session appends in between.
"""

from __future__ import annotations

import abc
import getpass
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._writes import AuditEntry

if TYPE_CHECKING:
    import polars as pl

GENESIS = "0" * 64  # the prev_hash of entry 1
USER_VARIABLE = "NBTRAIL_USER"
DATABASE_ROLE = "database role"  # the actor_source of entries made on a database server
SERVICE_USER = "jupyter user"  # a user the Jupyter server authenticated (``on_behalf_of``)


def os_user() -> str:
    """The OS user running this process: the name, else the uid.

    A container may run as a uid that has no passwd entry.
    """
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return str(os.getuid())


def local_identity(on_behalf_of: str | None = None) -> tuple[str, str]:
    """Who acts on an embedded store, and how that is known (``actor_source``)."""
    if on_behalf_of:
        return on_behalf_of, SERVICE_USER
    named = os.environ.get(USER_VARIABLE, "").strip()
    return (named, USER_VARIABLE) if named else (os_user(), "os user")


@dataclass(frozen=True)
class Draft:
    """An entry before the store numbers, stamps and chains it."""

    event: str
    model: str | None = None
    version: int | None = None
    payload: Mapping[str, Any] | None = None


def canonical(payload: Mapping[str, Any] | None) -> str:
    """The one JSON text of ``payload`` that is stored and hashed."""
    return json.dumps(dict(payload or {}), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False, default=str)


def entry_hash(seq: int, at_us: int, actor: str, actor_source: str, event: str,
               model: str | None, version: int | None, payload: str, prev_hash: str) -> str:
    """The SHA-256 (hex) an entry with these fields must hold."""
    text = json.dumps([seq, at_us, actor, actor_source, event, model, version, payload,
                       prev_hash], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def chain(head: tuple[int, str] | None, drafts: Sequence[Draft], *, actor: str,
          actor_source: str, at: float | None = None) -> list[AuditEntry]:
    """Number, stamp and chain ``drafts`` after ``head`` (``(seq, hash)`` of the last)."""
    seq, prev = head if head is not None else (0, GENESIS)
    at_us = round((time.time() if at is None else at) * 1_000_000)
    entries = []
    for draft in drafts:
        seq += 1
        payload = canonical(draft.payload)
        digest = entry_hash(seq, at_us, actor, actor_source, draft.event, draft.model,
                            draft.version, payload, prev)
        entries.append(AuditEntry(seq, at_us, actor, actor_source, draft.event, draft.model,
                                  draft.version, payload, prev, digest))
        prev = digest
    return entries


def no_entries() -> pl.DataFrame:
    """An empty trail, typed as ``Store.audit_entries`` returns one."""
    import polars as pl

    types = {"seq": pl.Int64, "at_us": pl.Int64, "version": pl.Int32}
    return pl.DataFrame(schema={c: types.get(c, pl.String) for c in AuditEntry.columns()})


@dataclass(frozen=True)
class Verdict:
    """What ``verify`` found: how many entries, the last hash, the first break if any."""

    entries: int
    head: str | None
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the chain is whole."""
        return self.problem is None


def verify(rows: Iterable[tuple[Any, ...]]) -> Verdict:
    """Check a chain given as rows in ``AuditEntry`` column order, sorted by ``seq``."""
    expected_seq, prev, count = 1, GENESIS, 0
    for row in rows:
        (seq, at_us, actor, actor_source, event, model, version, payload, prev_hash,
         digest) = row
        if seq != expected_seq:
            missing = (f"entry {expected_seq} is missing" if seq > expected_seq
                       else f"entry {seq} appears twice")
            return Verdict(count, prev, expected_seq if seq > expected_seq else seq,
                           f"{missing}: entries were deleted or inserted")
        if prev_hash != prev:
            return Verdict(count, prev, seq, f"{_entry(row)} does not follow entry {seq - 1}: its "
                           "prev_hash differs from that entry's hash (an entry before it "
                           "was replaced)")
        if entry_hash(seq, at_us, actor, actor_source, event, model, version, payload,
                      prev_hash) != digest:
            return Verdict(count, prev, seq, f"{_entry(row)} was changed after it was written: "
                           "its content does not match its hash")
        expected_seq, prev, count = seq + 1, digest, count + 1
    return Verdict(count, None if count == 0 else prev)


def _entry(row: tuple[Any, ...]) -> str:
    """An entry as a message names it (made only on failure: it doubled verify's time)."""
    seq, _, actor, _, event, model, version = row[:7]
    subject = "" if model is None else f" of {model}/{version}" if version is not None \
        else f" of {model}"
    return f"entry {seq} ({event}{subject} by {actor})"


class AuditSession(abc.ABC):
    """The audit trail held for one decision: read it, then append (see ``audit_session``).

    ``actor`` and ``actor_source`` are who this process acts as, as the store knows it.
    """

    actor: str
    actor_source: str
    on_behalf_of: str | None = None  # kept in each payload where the actor is a service

    @property
    def acting_for(self) -> str:
        """The person a decision is made for: the user a service vouched for, else the actor."""
        return self.on_behalf_of or self.actor

    @abc.abstractmethod
    def entries(self, model: str | None = None) -> pl.DataFrame:
        """The trail as it is now (one model's entries with ``model``), oldest first."""

    @abc.abstractmethod
    def append(self, drafts: Sequence[Draft]) -> list[AuditEntry]:
        """Chain ``drafts`` after the last entry and make them durable, all or none."""
