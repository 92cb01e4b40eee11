"""Model serialisation (safe skops by default, pickle only on request) and input signatures."""

from __future__ import annotations

import pickle as _pickle
import sys
from dataclasses import dataclass
from typing import Any

from .._modelio import PICKLE, SKOPS, skops_refs
from ..errors import InvalidInputError
from ._datasets import DatasetProfile, profile_dataset

# Signature fields a profile of the full data set knows better than a small example.
_FROM_PROFILE = ("min", "max", "categories")


@dataclass(frozen=True)
class SerializedModel:
    """A model turned into bytes, with what is needed to load it back and describe it."""

    data: bytes
    format: str
    flavor: str
    class_name: str


def _type_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_sklearn_estimator(model: object) -> bool:
    # A model can only be an estimator if sklearn is already loaded, so never import it here.
    base = sys.modules.get("sklearn.base")
    return base is not None and isinstance(model, base.BaseEstimator)


def _unloadable_refs(data: bytes) -> list[str]:
    # skops happily dumps lambdas and functions defined inside functions but then cannot
    # import them back, so check every reference resolves in the modules already loaded.
    missing = set()
    for module, name in skops_refs(data):
        loaded = sys.modules.get(module)
        if loaded is not None and getattr(loaded, name, None) is None:
            missing.add(f"{module}.{name}")
    return sorted(missing)


def serialize_model(model: object, *, pickle: bool = False) -> SerializedModel:
    """Serialise ``model``: skops, the boosting libraries' own formats, or pickle on request.

    scikit-learn estimators are stored with skops, XGBoost and LightGBM models in their
    libraries' own formats (see ``_boosting.serialize_booster``).

    ``pickle=True`` allows the stdlib pickle (protocol 5) for objects skops cannot store;
    loading such a pickle later needs ``trusted=True`` because it can run arbitrary code.
    """
    from ._boosting import serialize_booster

    booster = serialize_booster(model)  # before skops: XGBoost's classes are estimators too
    if booster is not None:
        return booster
    class_name = _type_path(type(model))
    if _is_sklearn_estimator(model):
        import skops.io

        try:
            data = skops.io.dumps(model)
            unloadable = _unloadable_refs(data)
            reason = (
                f"it refers to {', '.join(unloadable)}, which cannot be imported back (use "
                "module-level functions and classes instead of lambdas or local ones)"
            )
        except Exception as exc:  # skops raises many types for objects it cannot store
            unloadable, reason = [class_name], f"{type(exc).__name__}: {exc}"
        if not unloadable:
            return SerializedModel(data, SKOPS, "sklearn", class_name)
        if not pickle:
            raise InvalidInputError(
                f"cannot store model of type {class_name} in the safe skops format: {reason}; "
                "pass pickle=True to store it with pickle instead (only load pickles you trust)"
            )
    elif not pickle:
        raise InvalidInputError(
            f"cannot store model of type {class_name} safely: only scikit-learn estimators "
            "are stored in the safe skops format; pass pickle=True to store it with pickle "
            "(only load pickles you trust)"
        )
    try:
        data = _pickle.dumps(model, protocol=5)
    except Exception as exc:  # pickling raises PicklingError, TypeError, AttributeError...
        raise InvalidInputError(
            f"cannot pickle model of type {class_name}: {type(exc).__name__}: {exc}"
        ) from exc
    flavor = "sklearn" if _is_sklearn_estimator(model) else class_name
    return SerializedModel(data, PICKLE, flavor, class_name)


def _columns(profile: DatasetProfile) -> dict[str, dict[str, Any]]:
    columns: dict[str, dict[str, Any]] = {}
    for column in profile.schema:
        name = column["name"]
        if name.startswith("__index_level_"):
            continue  # a pandas row index kept for the fingerprint; models never see it
        stats = profile.stats.get(name, {})
        entry: dict[str, Any] = {
            "name": name,
            "dtype": column["dtype"],
            "nullable": column["nullable"],
        }
        if "mean" in stats:  # only numeric columns have a mean
            entry |= {"min": stats["min"], "max": stats["max"]}
        if "categories" in stats:
            entry["categories"] = stats["categories"]
        elif "true" in stats:  # booleans
            entry["categories"] = [
                value for value, key in ((False, "false"), (True, "true")) if stats[key]
            ]
        columns[name] = entry
    return columns


def _describe(example: object | None, profile: DatasetProfile | None) -> list[dict[str, Any]]:
    if example is None:
        if profile is None:
            raise InvalidInputError(
                "cannot infer a signature from nothing: pass an input example or a profile"
            )
        return list(_columns(profile).values())
    columns = _columns(profile_dataset(example))
    if profile is None:
        return list(columns.values())
    seen = _columns(profile)
    described = []
    for name, column in columns.items():
        wider = seen.get(name)
        if wider is not None:
            # The profile saw more rows than the example, so its ranges and values win;
            # the dtype stays the example's, as that is what the model was called with.
            column = {k: v for k, v in column.items() if k not in _FROM_PROFILE}
            column |= {k: wider[k] for k in _FROM_PROFILE if k in wider}
            column["nullable"] = column["nullable"] or wider["nullable"]
        described.append(column)
    return described


def infer_signature(
    example: object | None,
    *,
    profile: DatasetProfile | None = None,
    output: object | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Describe the inputs (and outputs) a model expects, for a serving layer to validate.

    ``example`` and ``output`` may be anything :func:`profile_dataset` accepts. Each column
    becomes ``{"name", "dtype", "nullable"}`` plus ``min``/``max`` for numeric columns and
    ``categories`` for string/categorical/bool columns with at most 50 distinct values.
    With ``profile`` (e.g. of the full training set), ranges, categories and nullability are
    taken from it instead of from the example; ``example=None`` describes the profile alone.
    """
    return {
        "inputs": _describe(example, profile),
        "outputs": [] if output is None else _describe(output, None),
    }
