"""The retraining loop: when a trigger fires, retrain the champion's notebook on new data.

``retrain`` takes ``name@champion``, decides whether to retrain (drift of the new data
against the champion's training data, staleness of the champion on labelled new data, or
always), re-executes the champion's training notebook from its code snapshot with the new
data as notebook parameters, registers the run's model as the next version, points
``@challenger`` at it and opens a promotion request to ``@champion`` whose checks compare
it with the champion on held-out data. See docs/retraining.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from ..errors import ConflictError, InvalidInputError, NotFoundError, ReproduceError
from . import _api
from ._refs import check_name, model_state

if TYPE_CHECKING:
    from ..store import Store
    from ._api import ModelVersion, PromotionRequest

Trigger = Literal["drift", "stale", "always"]
CHAMPION, CHALLENGER = "champion", "challenger"
# The notebook parameters retraining sets (defaults in the cell tagged "parameters").
DATA_PARAMETER, LABELS_PARAMETER = "data_path", "labels"
# The tag a retrained run carries: the run id of the champion it retrains.
RETRAINS_TAG = "nbtrail.retrains"


@dataclass(frozen=True)
class Retraining:
    """The outcome of ``nt.retrain``: whether the trigger fired, and what it registered.

    Its truth value is ``fired``: a challenger was registered and a request opened.
    """

    model: str
    champion: ModelVersion
    trigger: str
    fired: bool
    evidence: dict[str, Any]
    """Why the trigger fired or not: the drift verdict, the staleness reasons."""
    data: str
    holdout: str
    run_id: str | None = None
    """The run the retraining made."""
    version: ModelVersion | None = None
    """The new version, which ``@challenger`` points at."""
    challenger: PromotionRequest | None = None
    """The request that moved ``@challenger``, when a policy protects it."""
    request: PromotionRequest | None = None
    """The promotion request of the new version to ``@champion``."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return self.fired

    def summary(self) -> str:
        """One sentence: what fired, and where the challenger stands."""
        why = f"trigger {self.trigger!r}"
        if self.evidence.get("verdict"):
            why += f" ({self.evidence['verdict']})"
        if not self.fired or self.version is None or self.request is None:
            return f"{self.champion.ref} was not retrained: {why} did not fire"
        return (f"{self.model} retrained: {why}; run {self.run_id} registered as "
                f"{self.version.ref} @{CHALLENGER}; promotion request #"
                f"{self.request.request_id} to @{CHAMPION} is {self.request.status}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, ready for JSON (the ``--summary`` file of ``nbtrail retrain``)."""
        request = self.request
        return {
            "model": self.model, "champion": self.champion.ref,
            "champion_run_id": self.champion.run_id,
            "trigger": self.trigger, "fired": self.fired, "evidence": self.evidence,
            "data": self.data, "holdout": self.holdout, "run_id": self.run_id,
            "version": self.version.version if self.version else None,
            "ref": self.version.ref if self.version else None,
            "challenger_request_id": self.challenger.request_id if self.challenger else None,
            "request_id": request.request_id if request else None,
            "request_status": request.status if request else None,
            "checks": list(request.checks) if request else [],
            "notes": list(self.notes),
        }


def retrain(name: str, *, data: object, when: Trigger = "always", holdout: object = None,
            labels: str | None = None, timeout: float | None = 600, trusted: bool = False,
            store: Store | None = None) -> Retraining:
    """Retrain ``name@champion`` on new data when a trigger fires, and propose the result.

    ``when``: ``"drift"`` (``data`` drifted from the champion's training data),
    ``"stale"`` (the champion is stale on ``data``, scored against its ``labels``
    column) or ``"always"``. When it fires, the champion's training notebook runs again
    from its code snapshot, with ``data_path`` (the absolute path of ``data``) and
    ``labels`` (when given) set in a cell inserted after its cell tagged ``parameters``.
    The run's model (named as the champion's) becomes the next version, ``@challenger``
    points at it (through a promotion request when a policy protects it), and a
    promotion request to ``@champion`` runs its checks on ``holdout`` (default:
    ``data``). ``timeout`` is the seconds a cell may run; ``trusted=True`` lets the
    checks load pickled models.

    Example:
        >>> result = nt.retrain("churn", data="may.parquet", when="drift",
        ...                     holdout="may-holdout.parquet")      # doctest: +SKIP
        >>> result.request                                          # doctest: +SKIP
        <PromotionRequest #12 churn/4 -> @champion: pending (metric ok)>
    """
    from ..tracking._tracker import store_or_configured

    return retrain_in(store_or_configured(store), name, data=data, when=when,
                      holdout=holdout, labels=labels, timeout=timeout, trusted=trusted)


def retrain_in(store: Store, name: str, *, data: object, when: str = "always",
               holdout: object = None, labels: str | None = None,
               timeout: float | None = 600, trusted: bool = False,
               kernel_name: str | None = None,
               progress: Callable[[str], None] | None = None) -> Retraining:
    """``retrain`` against an explicit store; ``progress`` receives status lines."""
    from ..experiments._reproduce import execute_snapshot, locate_notebook

    check_name(name)
    if when not in get_args(Trigger):
        raise InvalidInputError(f"when must be one of {', '.join(get_args(Trigger))}, "
                                f"got {when!r}")
    if labels is not None and (not isinstance(labels, str) or not labels):
        raise InvalidInputError(f"labels must be a column name, got {labels!r}")
    data_path = _existing(data, "data")
    holdout_path = _existing(holdout, "holdout") if holdout is not None else data_path
    say = progress or (lambda _: None)

    champion = _api.version(store, f"{name}@{CHAMPION}")
    # Checked before the work: a busy alias would only fail once the training is done.
    state = model_state(store, name)
    busy = state.open_request(CHAMPION)
    if busy is not None:
        raise ConflictError(f"{name}@{CHAMPION} already has an open request, "
                            f"#{busy.request_id} (version {busy.version}, {busy.status}); "
                            "approve or reject it before retraining")
    located = locate_notebook(store.get_run(champion.run_id))

    fired, evidence = _trigger(store, champion, when, data_path, labels, trusted)
    if not fired:
        return Retraining(name, champion, when, False, evidence, data_path, holdout_path)

    say(f"trigger {when!r} fired; retraining {champion.ref} on {data_path}")
    parameters: dict[str, Any] = {DATA_PARAMETER: data_path}
    if labels is not None:
        parameters[LABELS_PARAMETER] = labels
    execution = execute_snapshot(store, located, tags={RETRAINS_TAG: champion.run_id},
                                 parameters=parameters, timeout=timeout,
                                 kernel_name=kernel_name, purpose="retrain", progress=progress)
    if execution.error is not None or execution.run is None:
        raise ReproduceError(f"retraining {champion.ref} failed: {execution.error}")
    run = execution.run
    version = _api.register(store, _model_of(store, champion, run.run_id), name=name)

    note = f"retrained from {champion.ref} on {data_path} (trigger: {when})"
    challenger = None
    if CHALLENGER in state.policies:
        say(f"@{CHALLENGER} is protected: requesting it for {version.ref}")
        challenger = _api.request_promotion(store, name, version=version.version,
                                            alias=CHALLENGER, note=note, data=holdout_path,
                                            trusted=trusted, progress=progress)
    else:
        _api.set_alias(store, name, CHALLENGER, version.version, note=note)
    say(f"requesting @{CHAMPION} for {version.ref}; its checks run on {holdout_path}")
    request = _api.request_promotion(store, name, version=version.version, alias=CHAMPION,
                                     note=note, data=holdout_path, trusted=trusted,
                                     progress=progress)
    notes = () if CHAMPION in state.policies else (
        f"@{CHAMPION} has no policy, so it moved to {version.ref} at once; protect it with "
        f"nt.set_policy({name!r}, {CHAMPION!r}, ...) to compare and approve first",)
    return Retraining(name, champion, when, True, evidence, data_path, holdout_path,
                      run_id=run.run_id, version=_api.version(store, version.ref),
                      challenger=challenger, request=request, notes=notes)


def _existing(path: object, what: str) -> str:
    """``path`` made absolute, since the notebook runs in another folder."""
    if not isinstance(path, str | os.PathLike):
        raise InvalidInputError(f"{what} must be the path of a file (Parquet) or a folder the "
                                f"notebook reads, got {type(path).__name__}")
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise NotFoundError(f"{what} {os.fspath(path)!r} does not exist")
    return str(resolved)


def _trigger(store: Store, champion: ModelVersion, when: str, data: str,
             labels: str | None, trusted: bool) -> tuple[bool, dict[str, Any]]:
    """Whether ``when`` fires for ``data``, and the evidence."""
    if when == "always":
        return True, {}
    if when == "drift":
        from ..monitor._api import drift

        report = drift(champion.model_id, data, store=store)
        return report.has_drift, {"verdict": report.verdict, "drifted": report.drifted,
                                  "drift_run_id": report.run_id}
    from ._staleness import staleness

    if labels is None:
        raise InvalidInputError("when='stale' needs labels (the column of the true outcomes "
                                "in the data) to score the champion")
    stale = staleness(champion.ref, data=data, labels=labels, trusted=trusted, store=store)
    return stale.stale, {"stale": stale.stale, "reasons": list(stale.reasons)}


def _model_of(store: Store, champion: ModelVersion, run_id: str) -> str:
    """The model of the new run that stands for the champion's (same name)."""
    wanted = store.models(model_id=champion.model_id)["name"][0]
    found = store.models(run=run_id)
    same = found.filter(found["name"] == wanted)
    if same.is_empty():
        raise ReproduceError(f"the retrained run {run_id} logged no model named {wanted!r} "
                             f"(the champion {champion.ref}'s); does the notebook still "
                             "log it?")
    return str(same["model_id"][-1])

