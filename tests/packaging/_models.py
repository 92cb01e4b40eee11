"""A small churn model logged the way a notebook would, shared by the packaging tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import nbtrail as nt

PLANS = ["basic", "pro", "team"]


@dataclass(frozen=True)
class Trained:
    run_id: str
    model_id: str
    frame: pd.DataFrame


def churn_frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": rng.normal(50, 10, n),
        "plan": rng.choice(PLANS, n),
    })
    target = (frame.income + (frame.plan == "pro") * 5 + rng.normal(0, 5, n) > 52).astype(int)
    return frame, target


def train_churn(*, with_target_in_data: bool = False) -> Trained:
    """Fit and log a pipeline on a pandas frame (the training data logged first)."""
    frame, target = churn_frame()
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["plan"]),
                                (StandardScaler(), ["age", "income"])),
        LogisticRegression(),
    )
    with nt.run(name="churn") as run:
        logged = frame.assign(churned=target) if with_target_in_data else frame
        run.log_dataset(logged, name="train", role="train")
        model.fit(frame, target)
        model_id = run.log_model(model, name="churn")
    return Trained(run.run_id, model_id, frame)

