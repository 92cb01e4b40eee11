"""Adaptive batching: concurrent requests share model calls and get their own answers."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier

import nbtrail as nt
from nbtrail.serving import ModelBundle
from nbtrail.serving._batching import Batcher

from ..packaging._models import churn_frame


def _checked(bundle, frame):
    return bundle.signature.check(frame.to_dict(orient="list"))


class _Counting:
    """Wraps a model's methods to count calls and rows."""

    def __init__(self, model):
        self.calls = []
        for name in ("predict", "predict_proba"):
            method = getattr(model, name)

            def counted(features, method=method, name=name):
                self.calls.append((name, len(features)))
                return method(features)

            setattr(model, name, counted)


def test_concurrent_requests_share_model_calls_and_keep_their_answers(bundle):
    frame, _ = churn_frame(n=40, seed=3)
    parts = [frame.iloc[i:i + 4] for i in range(0, 40, 4)]
    alone = [bundle.predict(_checked(bundle, part)) for part in parts]
    counter = _Counting(bundle.model)
    batcher = Batcher(bundle)

    async def all_at_once():
        return await asyncio.gather(*(batcher.predict(_checked(bundle, p)) for p in parts))

    together = asyncio.run(all_at_once())
    batcher.close()
    for mine, reference in zip(together, alone, strict=True):
        assert mine.predictions.tolist() == reference.predictions.tolist()
        np.testing.assert_allclose(mine.probabilities, reference.probabilities, rtol=1e-12)
    # All ten were queued before the model thread got the first: one call serves them all.
    assert counter.calls == [("predict_proba", 40)]


def test_a_request_that_breaks_the_model_fails_alone(bundle):
    frame, _ = churn_frame(n=12, seed=4)
    parts = [frame.iloc[i:i + 3] for i in range(0, 12, 3)]
    original = bundle.model.predict_proba

    def fussy(features):
        if (features["age"] == parts[2]["age"].iloc[0]).any():
            raise ValueError("cannot score this customer")
        return original(features)

    bundle.model.predict_proba = fussy
    batcher = Batcher(bundle)

    async def all_at_once():
        return await asyncio.gather(*(batcher.predict(_checked(bundle, p)) for p in parts),
                                    return_exceptions=True)

    results = asyncio.run(all_at_once())
    batcher.close()
    assert isinstance(results[2], ValueError)
    assert all(len(r.predictions) == 3 for i, r in enumerate(results) if i != 2)


def test_a_custom_threshold_keeps_its_own_predict(home, tmp_path):
    frame, target = churn_frame()
    X = frame[["age", "income"]]
    model = FixedThresholdClassifier(LogisticRegression(), threshold=0.9).fit(X, target)
    with nt.run() as run:
        run.log_dataset(X, role="train")
        model_id = run.log_model(model)
    pkg = nt.package(model_id, output=tmp_path / "ctx", build=False)
    signature = json.loads((pkg.context / "model/signature.json").read_text())
    assert signature["predict_from_proba"] is False
    bundle = ModelBundle.load(pkg.context / "model")
    answer = bundle.predict(_checked(bundle, X.head(50)))
    assert answer.predictions.tolist() == model.predict(X.head(50)).tolist()
    assert not np.array_equal(answer.predictions, answer.probabilities.argmax(axis=1))


@pytest.mark.parametrize("rows", [1, 7])
def test_probabilities_are_skipped_when_not_wanted(bundle, rows):
    frame, _ = churn_frame(n=rows, seed=5)
    answer = bundle.predict(_checked(bundle, frame), probabilities=False)
    assert answer.probabilities is None
    assert answer.predictions.tolist() == bundle.model.predict(pd.DataFrame(frame)).tolist()
