"""A model folder as the server reads it: the model, its signature and its lineage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._modelio import BOOSTING_LIBRARIES, LIGHTGBM, PICKLE, SKOPS, XGBOOST, deserialize_model
from ..errors import InvalidInputError, NotFoundError
from ._signature import Checked, Signature

MODEL_FILES = {SKOPS: "model.skops", PICKLE: "model.pkl", XGBOOST: "model.xgboost.json",
               LIGHTGBM: "model.lightgbm.json"}
SIGNATURE_FILE = "signature.json"
LINEAGE_FILE = "lineage.json"


@dataclass(frozen=True)
class Prediction:
    """What the model answered for a batch."""

    predictions: np.ndarray
    probabilities: np.ndarray | None
    classes: list[Any] | None

    def probability_rows(self) -> list[dict[str, float]] | None:
        """Each row's probabilities keyed by class (as strings, for JSON)."""
        if self.probabilities is None:
            return None
        keys = [str(c) for c in self.classes or range(self.probabilities.shape[1])]
        return [dict(zip(keys, row, strict=True)) for row in self.probabilities.tolist()]


def _is_xgboost_booster(model: object) -> bool:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}" == "xgboost.core.Booster"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFoundError(f"{path} is missing; point at a folder made by nt.package "
                            "(it holds model.skops, signature.json and lineage.json)") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidInputError(f"{path} must hold a JSON object")
    return value


@dataclass(frozen=True)
class ModelBundle:
    """A loaded model with its signature; ``name`` and ``version`` are what V2 reports."""

    name: str
    version: str
    model_id: str | None
    sha256: str | None
    model: Any
    signature: Signature
    lineage: dict[str, Any]

    @classmethod
    def load(cls, folder: str | Path, *, trusted: bool = False,
             version: str | None = None) -> ModelBundle:
        """Load a model folder written by ``nt.package``.

        A pickled model loads only with ``trusted=True``: unpickling runs code. ``version``
        is what V2 reports (default: the model id); a routed package names its registry
        versions.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise NotFoundError(f"model folder {folder} does not exist")
        lineage = _read_json(folder / LINEAGE_FILE)
        signature = Signature(_read_json(folder / SIGNATURE_FILE))
        model_info = lineage.get("model") or {}
        format = model_info.get("format", SKOPS)
        model_file = folder / MODEL_FILES.get(format, "")
        if format not in MODEL_FILES or not model_file.is_file():
            raise NotFoundError(f"no model file for format {format!r} in {folder}")
        model = deserialize_model(model_file.read_bytes(), format, trusted=trusted)
        sha = model_info.get("sha256")
        return cls(
            name=str((lineage.get("package") or {}).get("name") or model_info.get("name")
                     or "model"),
            version=version or str(model_info.get("model_id") or (sha or "0")[:12]),
            model_id=model_info.get("model_id"), sha256=sha, model=model,
            signature=signature, lineage=lineage,
        )

    @property
    def platform(self) -> str:
        """The V2 platform name, ``<project>_<format>`` (``sklearn_skops``, ``xgboost_json``)."""
        model_info = self.lineage.get("model") or {}
        format = model_info.get("format", SKOPS)
        if format in BOOSTING_LIBRARIES:
            return str(format)
        return f"{model_info.get('flavor') or 'sklearn'}_{format}"

    @property
    def has_probabilities(self) -> bool:
        """Whether the model answers probabilities too."""
        return hasattr(self.model, "predict_proba")

    def _frame(self, checked: Checked) -> Any:
        # The model is called with the kind of table it was trained on, so column
        # selectors and feature-name checks inside pipelines see what they expect.
        arrays = [checked.arrays[name] for name in self.signature.names]
        if _is_xgboost_booster(self.model):
            # XGBoost's own Booster (from xgboost.train) predicts on its DMatrix only.
            import xgboost

            return xgboost.DMatrix(np.column_stack(arrays), feature_names=self.signature.names)
        frame = self.signature.frame
        if frame == "pandas":
            import pandas as pd

            return pd.DataFrame(dict(zip(self.signature.names, arrays, strict=True)),
                                copy=False)
        if frame == "polars":
            import polars as pl

            return pl.DataFrame(dict(zip(self.signature.names, arrays, strict=True)))
        return np.column_stack(arrays)

    def predict(self, checked: Checked, *, probabilities: bool = True) -> Prediction:
        """Run the model on checked input.

        When packaging found the model's ``predict`` to be the most probable class, the
        answer is taken from one ``predict_proba`` call instead of two model calls.
        """
        features = self._frame(checked)
        classes = getattr(self.model, "classes_", None)
        proba = None
        if probabilities and self.has_probabilities:
            proba = np.asarray(self.model.predict_proba(features), dtype=np.float64)
        if proba is not None and self.signature.spec.get("predict_from_proba"):
            predictions = np.asarray(classes)[np.argmax(proba, axis=1)]
        else:
            predictions = np.asarray(self.model.predict(features))
        return Prediction(predictions, proba,
                          None if classes is None else np.asarray(classes).tolist())
