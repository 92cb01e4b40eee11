"""What a package is made from: a logged model, its run, data set and environment."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from ..store import Store

# Training data kinds the model can be called with as they are.
_FRAMES = ("pandas", "polars", "numpy")


@dataclass(frozen=True)
class ModelSource:
    """A logged model and the lineage a package records about it."""

    model_id: str
    name: str
    run_id: str
    run_name: str | None
    experiment: str
    format: str
    flavor: str | None
    class_name: str | None
    sha256: str
    size_bytes: int
    signature: dict[str, Any]
    frame: str
    dataset_id: str | None
    dataset_fingerprint: str | None
    sample_sha256: str | None
    git: dict[str, Any]
    python: str | None
    packages: dict[str, str]

    def lineage(self) -> dict[str, Any]:
        """The facts ``lineage.json`` and the image labels carry."""
        return {
            "model": {"model_id": self.model_id, "name": self.name, "format": self.format,
                      "flavor": self.flavor, "class_name": self.class_name,
                      "sha256": self.sha256, "size_bytes": self.size_bytes},
            "run": {"run_id": self.run_id, "name": self.run_name,
                    "experiment": self.experiment},
            "training_data": {"dataset_id": self.dataset_id,
                              "fingerprint": self.dataset_fingerprint},
            "git": self.git,
            "python": self.python,
        }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _frame(source_type: str | None, signature: dict[str, Any]) -> str:
    if source_type in _FRAMES:
        return str(source_type)
    # Fitted on named columns (a data frame) unless the names are numpy's positions.
    names = [c["name"] for c in signature["inputs"]]
    return "numpy" if names == [str(i) for i in range(len(names))] else "pandas"


def resolve(store: Store, ref: str) -> ModelSource:
    """The model ``ref`` names: a model id, registry reference or run id (its last model).

    A registry reference reads ``churn@champion`` (an alias) or ``churn/3`` (a version).
    """
    from ..registry._refs import model_id_of

    ref = model_id_of(store, ref)
    found = (store.models(model_id=ref) if ref.startswith("mdl_")
             else store.models(run=ref))
    if found.is_empty():
        what = "model" if ref.startswith("mdl_") else "run with a logged model"
        raise NotFoundError(
            f"no {what} {ref!r} in the store at {store.location}; list models with: "
            "nbtrail sql \"select model_id, run_id, name from models\""
        )
    runs = found["run_id"].unique().to_list()
    if len(runs) > 1:
        raise InvalidInputError(f"{ref!r} matches several runs ({', '.join(runs[:5])}); "
                                "give more of the run id")
    row = found.row(0, named=True)
    signature = _json(row["signature"])
    if not signature or not signature.get("inputs"):
        raise InvalidInputError(
            f"model {row['model_id']} has no input signature, so a server could not check "
            "its input; log the training data first (run.log_dataset(df, role='train')) or "
            "pass input_example= to log_model, then package the new model"
        )
    return ModelSource(
        model_id=row["model_id"], name=row["name"], run_id=row["run_id"],
        run_name=row["run_name"], experiment=row["experiment"], format=row["format"],
        flavor=row["flavor"], class_name=row["class_name"], sha256=row["sha256"],
        size_bytes=row["size_bytes"], signature=signature,
        frame=_frame(row["source_type"], signature), dataset_id=row["dataset_id"],
        dataset_fingerprint=row["fingerprint"], sample_sha256=row["sample_sha256"],
        git={"commit": row["git_commit"], "branch": row["git_branch"],
             "dirty": row["git_dirty"], "snapshot": row["git_snapshot"],
             "root": row["git_root"]},
        python=row["python"], packages=_json(row["packages"]) or {},
    )


def log_object(model: object, *, name: str, input_example: object,
               trusted: bool, store: Store) -> str:
    """Log a model object that is not in ``store`` yet; returns its model id.

    It goes into the active run of ``store``, or into a new run named after the package.
    """
    from ..tracking._tracker import tracker_of

    def log(target: Any) -> str:
        return target.log_model(model, name=name, input_example=input_example,
                                pickle=trusted)

    tracker = tracker_of(store)
    current = tracker.active_run()
    # The active run may log to another store (it lives in a context variable): the model
    # must land where it is packaged from.
    if current is not None and current.store is store:
        return log(current)
    with tracker.start_run(name=f"package {name}") as new:
        return log(new)

