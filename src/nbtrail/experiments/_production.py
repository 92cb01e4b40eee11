"""What production cares about: a model's size and how fast it predicts on real rows."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, NbtrailError, NotFoundError, UntrustedModelError

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store
    from ..store._records import Run

# Single-row predictions timed per model (after warm-up), and batch predictions.
SINGLE_CALLS = 100
BATCH_CALLS = 10
WARMUP_CALLS = 3
# Roles whose rows look most like what the model will see in production come first.
_ROLE_ORDER = ("test", "eval", "validation", "valid", "input", "train")


def production_figures(store: Store, run: Run, *, model: str | None = None,
                       measure: bool = True, trusted: bool | Sequence[str] = False,
                       ) -> dict[str, Any]:
    """Size and predict latency of one run's model (the last logged, or the one named).

    Latency is measured in this process on the run's data set sample (see
    ``docs/experiments.md``): the median and 95th percentile of ``SINGLE_CALLS``
    one-row predictions and of ``BATCH_CALLS`` predictions on the whole sample.
    Whatever prevents a measurement is said in ``note``; it never raises for it.
    """
    figures: dict[str, Any] = {"model": None, "model_id": None, "class_name": None,
                               "size_bytes": None, "single_p50_ms": None,
                               "single_p95_ms": None, "batch_rows": None,
                               "batch_p50_ms": None, "batch_p95_ms": None, "note": None}
    models = [m for m in run.models if model is None or m["name"] == model]
    if not models:
        figures["note"] = f"no model named {model!r}" if model else "no model logged"
        return figures
    found = models[-1]
    figures |= {"model": found["name"], "model_id": found["model_id"],
                "class_name": found["class_name"], "size_bytes": found["size_bytes"]}
    if not measure:
        return figures
    try:
        estimator = load_estimator(store, found, trusted)
        rows = _rows(store, run)
        predict = getattr(estimator, "predict", None)
        if not callable(predict):
            raise InvalidInputError(f"{found['class_name']} has no predict method")
        features = model_inputs(estimator, found, rows)
    except NbtrailError as exc:
        figures["note"] = str(exc)
        return figures
    try:
        single = _timings(predict, [features[i % len(features): i % len(features) + 1]
                                    for i in range(SINGLE_CALLS)])
        batch = _timings(predict, [features] * BATCH_CALLS)
    except Exception as exc:  # the model's own code, on rows it may never have seen
        figures["note"] = f"predict failed on the data set sample: {type(exc).__name__}: {exc}"
        return figures
    return figures | {"single_p50_ms": single[0], "single_p95_ms": single[1],
                      "batch_rows": len(features), "batch_p50_ms": batch[0],
                      "batch_p95_ms": batch[1]}


def load_estimator(store: Store, model: dict[str, Any], trusted: bool | Sequence[str]) -> Any:
    """The estimator of a ``models`` row; pickles only with ``trusted=True``."""
    from .._modelio import deserialize_model

    if model["format"] == "pickle" and trusted is not True:
        raise UntrustedModelError("a pickled model runs code when loaded; pass trusted=True "
                                  "(CLI: --trusted) to time it")
    data = store.blob_path(model["sha256"]).read_bytes()
    return deserialize_model(data, model["format"], trusted=trusted)


def _rows(store: Store, run: Run) -> pl.DataFrame:
    import polars as pl

    samples = [d for d in run.datasets if d.get("sample_sha256")]

    def rank(d: dict[str, Any]) -> int:
        role = d["role"]
        return _ROLE_ORDER.index(role) if role in _ROLE_ORDER else len(_ROLE_ORDER)

    # Held-out rows first: the training rows only when there are none.
    candidates = sorted(samples, key=rank)
    if not candidates:
        raise NotFoundError("no data set sample to time predictions on; log the data with "
                            "run.log_dataset(...)")
    return pl.read_parquet(store.blob_path(candidates[0]["sample_sha256"]))


def model_inputs(estimator: Any, model: dict[str, Any], rows: pl.DataFrame) -> Any:
    """The sample's columns the model takes, in the form it was fitted on."""
    named = getattr(estimator, "feature_names_in_", None)
    if named is not None:
        wanted = [str(name) for name in named]
    else:
        signature = model.get("signature") or {}
        wanted = [c["name"] for c in signature.get("inputs", [])] or rows.columns
    missing = [c for c in wanted if c not in rows.columns]
    if missing:
        raise InvalidInputError(f"the data set sample lacks the model's input columns {missing}")
    if rows.is_empty():
        raise InvalidInputError("the data set sample has no rows")
    picked = rows.select(wanted)
    # Fitted on a data frame: it checks column names, and polars keeps them.
    return picked if named is not None else picked.to_numpy()


def _timings(call: Callable[[Any], Any], inputs: list[Any]) -> tuple[float, float]:
    """Median and 95th percentile, in milliseconds, of ``call`` on each input."""
    import numpy as np

    for features in inputs[:WARMUP_CALLS]:
        call(features)
    seconds = []
    for features in inputs:
        start = time.perf_counter()
        call(features)
        seconds.append(time.perf_counter() - start)
    p50, p95 = np.percentile(np.array(seconds) * 1000, [50, 95])
    return float(p50), float(p95)
