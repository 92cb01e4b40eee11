"""An alias's policy: the checks a promotion must pass, and whether someone approves it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import InvalidInputError

# Metrics the metric check computes (scikit-learn's), and which way is better.
HIGHER_IS_BETTER = {"accuracy": True, "balanced_accuracy": True, "f1": True,
                    "f1_macro": True, "precision": True, "recall": True, "roc_auc": True,
                    "r2": True, "log_loss": False, "mse": False, "rmse": False, "mae": False}


@dataclass(frozen=True)
class Policy:
    """What moving an alias takes (see ``nt.set_policy``)."""

    require_approval: bool = True
    metric: str | None = None
    data: str | None = None
    target: str | None = None
    min_delta: float = 0.0
    validate: bool = False
    reproduce: bool = False
    reproduce_rtol: float = 1e-6
    max_latency_ms: float | None = None
    max_size_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The policy as stored with its ``policy_set`` entry."""
        return asdict(self)

    @property
    def checks(self) -> list[str]:
        """The names of the checks this policy runs, in order."""
        wanted = {"metric": self.metric is not None, "validate": self.validate,
                  "reproduce": self.reproduce, "latency": self.max_latency_ms is not None,
                  "size": self.max_size_mb is not None}
        return [name for name, on in wanted.items() if on]


NO_POLICY = Policy(require_approval=False)  # an alias nobody protected


def parse(values: Mapping[str, Any], alias: str) -> Policy:
    """A ``Policy`` from ``values``; one clear ``InvalidInputError`` for any mistake."""
    known = {f.name: f for f in fields(Policy)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidInputError(f"unknown policy field(s) {', '.join(unknown)} for @{alias}; "
                                f"known: {', '.join(known)}")
    policy = Policy(**values)

    def bad(field: str, wanted: str) -> InvalidInputError:
        return InvalidInputError(f"policy of @{alias}: {field} must be {wanted}, got "
                                 f"{getattr(policy, field)!r}")

    for name in ("require_approval", "validate", "reproduce"):
        if not isinstance(getattr(policy, name), bool):
            raise bad(name, "True or False")
    for name in ("min_delta", "reproduce_rtol", "max_latency_ms", "max_size_mb"):
        value = getattr(policy, name)
        if value is None and name.startswith("max_"):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or value < 0:
            raise bad(name, "a number >= 0")
    for name in ("data", "target"):
        value = getattr(policy, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise bad(name, "a non-empty string")
    if policy.metric is not None and policy.metric not in HIGHER_IS_BETTER:
        raise bad("metric", f"one of {', '.join(HIGHER_IS_BETTER)}")
    if (policy.metric is not None or policy.validate) and policy.data is None:
        raise InvalidInputError(f"policy of @{alias}: the metric and validate checks need "
                                "data= (a Parquet file of labelled evaluation rows)")
    if policy.metric is not None and policy.target is None:
        raise InvalidInputError(f"policy of @{alias}: the metric check needs target= (the "
                                "label column of the evaluation data)")
    return policy
