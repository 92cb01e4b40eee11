"""What new data is compared with: a model's training data, or data passed directly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, NotFoundError
from ._data import PREDICTION, is_path, load
from ._profile import ColumnProfile, from_stats, profile_frame

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store


@dataclass(frozen=True)
class Reference:
    """Profiles of the reference columns, and where they come from."""

    label: str
    columns: dict[str, ColumnProfile]
    prediction: ColumnProfile | None = None
    model_id: str | None = None
    model_name: str | None = None
    run_id: str | None = None
    dataset_id: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    """Why part of the comparison is not possible (e.g. no prediction reference)."""


def _ref_id(ref: object) -> str | None:
    if isinstance(ref, str) and not is_path(ref):
        return ref
    run_id = getattr(ref, "run_id", None)  # a Run record or an ActiveRun
    return run_id if isinstance(run_id, str) else None


def resolve(ref: object, store: Store, *, prediction_column: str | None = "prediction"
            ) -> Reference:
    """The reference for ``ref``.

    ``ref`` is a model id (``mdl_…``) or registry reference (``churn@champion``), a run
    (id or object; its last model, else its training data set), or data (frame, Parquet
    path).
    """
    from ..registry._refs import model_id_of

    ref_id = _ref_id(ref)
    if ref_id is not None:
        ref_id = model_id_of(store, ref_id)
    if ref_id is None:
        data = load(ref, what="reference", prediction_column=prediction_column)
        profiles = profile_frame(data.frame)
        prediction = profiles.pop(PREDICTION, None)
        return Reference(f"{data.source}", profiles, prediction)
    if ref_id.startswith("mdl_"):
        found = store.models(model_id=ref_id)
        if found.is_empty():
            raise NotFoundError(f"no model {ref_id!r} in the store at {store.location}")
        run = store.get_run(found["run_id"][0])
        model: dict[str, Any] | None = next(m for m in run.models if m["model_id"] == ref_id)
    else:
        run = store.get_run(ref_id)
        model = run.models[-1] if run.models else None
    if model is not None:
        dataset = next((d for d in run.datasets
                        if d["dataset_id"] == model["training_dataset_id"]), None)
    else:
        train = [d for d in run.datasets if d["role"] == "train"] or run.datasets
        dataset = train[-1] if train else None
    what = f"model {model['model_id']}" if model else f"run {run.run_id}"
    if dataset is None:
        raise InvalidInputError(
            f"{what} has no training data set recorded, so there is nothing to compare "
            "with; log it with run.log_dataset(X_train, role='train') before log_model, or "
            "pass reference=<the training data frame>")
    sample = _sample(store, dataset)
    # The model's inputs, as its signature names them (the training set may hold the label).
    signature = (model or {}).get("signature") or {}
    names = [c["name"] for c in signature.get("inputs") or dataset["schema"]]
    stats_by_column = {c["name"]: c for c in dataset["schema"]}
    columns = {
        name: from_stats(stats_by_column[name], dataset["stats"].get(name, {}),
                         int(dataset["n_rows"]), sample)
        for name in names if name in stats_by_column and not name.startswith("__index_level_")
    }
    reference = Reference(
        label=f"{what} (training data {dataset['name']!r}, {dataset['n_rows']} rows)",
        columns=columns, model_id=model["model_id"] if model else None,
        model_name=model["name"] if model else None, run_id=run.run_id,
        dataset_id=dataset["dataset_id"], metrics=dict(run.metrics))
    if model is None:
        return replace(reference, notes=(f"{what} has no model, so prediction drift is "
                                         "not measured",))
    return _with_predictions(reference, store, model, sample)


def _sample(store: Store, dataset: Mapping[str, Any]) -> pl.DataFrame | None:
    import polars as pl

    if not dataset.get("sample_sha256"):
        return None
    try:
        return pl.read_parquet(store.blob_path(dataset["sample_sha256"]))
    except NotFoundError:
        return None


def _with_predictions(reference: Reference, store: Store, model: Mapping[str, Any],
                      sample: pl.DataFrame | None) -> Reference:
    """Add the model's predictions on the stored sample of its training rows.

    They are the reference of prediction drift: a model is trained to predict like this
    on data like that.
    """
    import polars as pl

    from .._modelio import deserialize_model

    if sample is None:
        return replace(reference, notes=("the training data set has no stored sample, so "
                                         "prediction drift is not measured",))
    try:
        estimator: Any = deserialize_model(store.blob_path(model["sha256"]).read_bytes(),
                                           model["format"])
        inputs = sample.select(list(reference.columns)).to_pandas()
        predicted = pl.Series("prediction", estimator.predict(inputs))
    except Exception as exc:  # a model can fail in any way on its own sample
        return replace(reference, notes=(
            f"prediction drift is not measured: the model could not predict on its training "
            f"sample ({type(exc).__name__}: {exc})",))
    frame = pl.DataFrame({PREDICTION: predicted})
    if hasattr(estimator, "classes_"):  # a classifier: predictions are labels
        frame = frame.cast(pl.String)
    return replace(reference, prediction=profile_frame(frame.lazy())[PREDICTION])
