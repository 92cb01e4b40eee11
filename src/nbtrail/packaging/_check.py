"""A trial run of the model the way its server will call it, before anything is written.

It narrows the signature to the columns the model was fitted on (a training data set
logged with its target column would otherwise make clients send the target), calls the
model on rows of its training sample through the server's own validation, and records
what the model answers as the signature's outputs.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

from .._modelio import deserialize_model
from ..errors import InvalidInputError
from ..serving._bundle import ModelBundle
from ..serving._signature import Signature, SignatureError
from ._source import ModelSource

if TYPE_CHECKING:
    from ..store import Store

_TRIAL_ROWS = 100


def _dtype(array: np.ndarray) -> str:
    # The names Arrow (and so the training profiles) use.
    kind = array.dtype.kind
    if kind == "b":
        return "bool"
    if kind in "iu":
        return f"{'u' if kind == 'u' else ''}int{array.dtype.itemsize * 8}"
    if kind == "f":
        return "double" if array.dtype.itemsize == 8 else "float"
    return "string"


def _fitted_inputs(model: Any, inputs: list[dict[str, Any]], model_id: str
                   ) -> list[dict[str, Any]]:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return inputs
    by_name = {c["name"]: c for c in inputs}
    missing = [str(n) for n in names if str(n) not in by_name]
    if missing:
        raise InvalidInputError(
            f"model {model_id} was fitted on columns its signature does not describe "
            f"({', '.join(missing)}); log the data the model was fitted on with "
            "run.log_dataset(X, role='train') before log_model"
        )
    return [by_name[str(n)] for n in names]


def checked_signature(store: Store, source: ModelSource, model_bytes: bytes, *,
                      trusted: bool) -> dict[str, Any]:
    """The signature to package: inputs the model takes, outputs it was seen to give."""
    model: Any = deserialize_model(model_bytes, source.format, trusted=trusted)
    spec = dict(source.signature)
    spec["inputs"] = _fitted_inputs(model, spec["inputs"], source.model_id)
    spec["frame"] = source.frame
    if source.sample_sha256 is None:
        return spec  # no rows to try: the outputs stay unknown
    import polars as pl

    sample = pl.read_parquet(io.BytesIO(store.blob_path(source.sample_sha256).read_bytes()))
    names = [c["name"] for c in spec["inputs"]]
    rows = sample.head(_TRIAL_ROWS).select(names).to_dict(as_series=False)
    signature = Signature(spec)
    bundle = ModelBundle(name=source.name, version=source.model_id, model_id=source.model_id,
                         sha256=source.sha256, model=model, signature=signature, lineage={})
    try:
        result = bundle.predict(signature.check(rows))
    except SignatureError as exc:
        raise InvalidInputError(
            f"rows of model {source.model_id}'s own training data fail its signature ({exc}); "
            "this is a bug in nbtrail, please report it"
        ) from exc
    except Exception as exc:  # the user's model may raise anything
        raise InvalidInputError(
            f"model {source.model_id} fails on rows of its training data passed the way its "
            f"server would pass them ({type(exc).__name__}: {exc}); check it predicts on a "
            f"{source.frame} table of those columns"
        ) from exc
    outputs: list[dict[str, Any]] = [{"name": "predict", "dtype": _dtype(result.predictions),
                                      "shape": [-1]}]
    if result.classes is not None:
        outputs[0]["categories"] = result.classes
    if result.probabilities is not None:
        outputs.append({"name": "predict_proba", "dtype": "double",
                        "shape": [-1, result.probabilities.shape[1]],
                        "classes": result.classes})
        # Most classifiers predict the most probable class; where this one does on every
        # trial row, the server saves a model call per request. Custom thresholds do not.
        most_probable = np.asarray(model.classes_)[result.probabilities.argmax(axis=1)]
        spec["predict_from_proba"] = bool(np.array_equal(most_probable, result.predictions))
    spec["outputs"] = outputs
    return spec

