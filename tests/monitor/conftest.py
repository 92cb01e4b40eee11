import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nbtrail as nt

FEATURES = ["amount", "visits", "plan"]


def sample(n: int, seed: int, *, shift: float = 0.0,
           plans: tuple[str, ...] = ("basic", "plus", "pro"),
           shares: tuple[float, ...] = (0.5, 0.3, 0.2)) -> pd.DataFrame:
    """Customers: a normal amount, a count of visits, a plan among a few."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "amount": rng.normal(100.0 + shift, 15.0, n),
        "visits": rng.poisson(4, n),
        "plan": rng.choice(plans, n, p=shares),
    })


def fit(train: pd.DataFrame):
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    labels = (train.amount > 100).astype(int)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                                (StandardScaler(), ["amount", "visits"])),
        LogisticRegression())
    return model.fit(train, labels)


@pytest.fixture
def trained(home):
    """A classifier logged with its training data: (model id, fitted model)."""
    train = sample(4000, seed=1)
    model = fit(train)
    with nt.run(name="train") as run:
        run.log_dataset(train, name="train", role="train")
        run.log_metric("val_accuracy", 0.97)
        model_id = run.log_model(model, "churn")
    return model_id, model


def write_log(folder: Path, frame: pd.DataFrame, model, *, model_id: str | None = None,
              files: int = 2, rows_per_request: int = 1) -> list[str]:
    """Prediction log files in the serving runtime's format; returns the request ids."""
    folder.mkdir(parents=True, exist_ok=True)
    predictions = model.predict(frame)
    probabilities = model.predict_proba(frame)
    ids = [f"req_{i // rows_per_request:06d}" for i in range(len(frame))]
    records = frame.to_dict("records")
    chunks = np.array_split(np.arange(len(frame)), files)
    for number, rows in enumerate(chunks):
        name = f"predictions-20261123T12{number:02d}00Z-4242.jsonl"
        with open(folder / name, "w") as out:
            for i in rows:
                out.write(json.dumps({
                    "time": f"2026-11-23T12:{number:02d}:00.{i:06d}Z", "request_id": ids[i],
                    "model": "churn", "model_id": model_id, "model_sha256": "ab" * 32,
                    "inputs": {c: getattr(v, "item", lambda v=v: v)()
                               for c, v in records[i].items()},
                    "prediction": predictions[i].item(),
                    "probabilities": {str(c): float(p) for c, p in
                                      zip(model.classes_, probabilities[i], strict=True)},
                }) + "\n")
    return ids
