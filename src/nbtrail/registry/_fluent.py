"""``nt.register`` and the registry's other notebook functions, on the configured store.

Each takes ``store=`` to act on another store; the logic is in ``_api``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _api

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store
    from ..store._audit import Verdict
    from ._api import ModelVersion, PromotionRequest
    from ._policy import Policy


def _store(store: Store | None) -> Store:
    from ..tracking._tracker import store_or_configured

    return store_or_configured(store)


def register(model_or_run: object, *, name: str, description: str | None = None,
             store: Store | None = None) -> ModelVersion:
    """Register a logged model as the next version (1, 2, …) of the model ``name``.

    ``model_or_run`` is a model id (``mdl_…``), a run (id or object: its one model; a run
    with several models is an error that lists them) or a registry reference. The
    version keeps the model, its signature, lineage and a snapshot of the run's metrics.
    ``description`` says what the model is for (its card's "intended use").
    Registering the same model under the same name again returns its version (and sets
    the model's description, when a new one is given).

    Example:
        >>> v = nt.register(run, name="churn", description="Monthly churn risk")  # doctest: +SKIP
        >>> v.ref                                                                 # doctest: +SKIP
        'churn/1'
    """
    return _api.register(_store(store), model_or_run, name=name, description=description)


def models(*, store: Store | None = None) -> pl.DataFrame:
    """One row a registered model: versions, latest version, aliases, pending requests."""
    return _api.models(_store(store))


def model_versions(name: str, *, store: Store | None = None) -> pl.DataFrame:
    """One row a version of ``name``: model, run, aliases, who registered it, metrics."""
    return _api.model_versions(_store(store), name)


def model_version(ref: str, *, store: Store | None = None) -> ModelVersion:
    """The version ``ref`` names now: ``"churn/3"`` or ``"churn@champion"``."""
    return _api.version(_store(store), ref)


def set_alias(name: str, alias: str, version: int, *, note: str | None = None,
              store: Store | None = None) -> ModelVersion:
    """Point an alias nobody protected at ``version`` at once (recorded in the audit).

    An alias with a policy (``nt.set_policy``) moves only through ``nt.request_promotion``.
    """
    return _api.set_alias(_store(store), name, alias, version, note=note)


def set_policy(name: str, alias: str, *, store: Store | None = None,
               **policy: Any) -> Policy:
    """Protect ``name@alias``: the checks a promotion must pass, and who must approve.

    Fields: ``require_approval`` (default True: someone other than the requester and
    the model's author approves); ``metric`` (e.g. ``"accuracy"``, ``"rmse"``) computed
    now on ``data`` (a Parquet file of labelled rows, label column ``target``) for the
    candidate and the current holder, which the candidate must match or beat by
    ``min_delta``; ``validate`` (the data checked against the training data);
    ``reproduce`` (the run re-executed, metrics within ``reproduce_rtol``);
    ``max_latency_ms`` (single-row p95) and ``max_size_mb``.

    Example:
        >>> nt.set_policy("churn", "champion", metric="accuracy", data="holdout.parquet",
        ...               target="churned", validate=True, max_latency_ms=20)  # doctest: +SKIP
    """
    return _api.set_policy(_store(store), name, alias, policy)


def request_promotion(name: str, *, version: int, alias: str, note: str | None = None,
                      data: object = None, trusted: bool = False,
                      progress: Callable[[str], None] | None = None,
                      store: Store | None = None) -> PromotionRequest:
    """Ask to point ``name@alias`` at ``version``; the alias's checks run now.

    Each check's result and evidence are recorded with the request. When they pass and
    the alias needs no approval, the alias moves at once; otherwise the request waits
    for ``nt.approve``. One request per alias is open at a time. ``data`` replaces the
    policy's evaluation data; ``trusted=True`` lets the checks load pickled models.
    """
    return _api.request_promotion(_store(store), name, version=version, alias=alias,
                                  note=note, data=data, trusted=trusted, progress=progress)


def approve(request_id: int, *, note: str | None = None,
            store: Store | None = None) -> PromotionRequest:
    """Approve a pending request: the alias moves.

    Four eyes: the approver is neither the requester nor the run's author.
    """
    return _api.decide(_store(store), request_id, approve=True, note=note)


def reject(request_id: int, *, note: str | None = None,
           store: Store | None = None) -> PromotionRequest:
    """Reject an open request: the alias stays where it is."""
    return _api.decide(_store(store), request_id, approve=False, note=note)


def promotion_requests(name: str | None = None, *, status: str | None = None,
                       store: Store | None = None) -> pl.DataFrame:
    """Promotion requests, newest first, with their checks (``status="pending"``…)."""
    return _api.promotion_requests(_store(store), name, status)


def audit(name: str | None = None, *, store: Store | None = None) -> pl.DataFrame:
    """The audit trail, oldest first: who did what to the registry, when, and why.

    ``payload`` holds each entry's details and evidence (JSON); ``hash`` chains it to
    the entry before (``prev_hash``). ``name`` keeps one model's entries.
    """
    return _api.audit(_store(store), name)


def verify_audit(*, store: Store | None = None) -> Verdict:
    """Check that the audit chain is whole: ``.ok``, else ``.problem`` names the entry."""
    return _api.verify_audit(_store(store))
