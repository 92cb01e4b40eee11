import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import nbtrail as nt

from ..packaging._models import churn_frame, train_churn

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


# -- a real server with a shadow: churn/1 answers, churn/2 shadows -------------------

REQUESTS = 150
PER_REQUEST = 2


def _challenger() -> str:
    """A model of the same columns fitted on shuffled labels: clearly worse than churn/1."""
    frame, target = churn_frame()
    shuffled = target.sample(frac=1.0, random_state=3).to_numpy()
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["plan"]),
                                                  (StandardScaler(), ["age", "income"])),
                          LogisticRegression()).fit(frame, shuffled)
    with nt.run(name="challenger") as run:
        run.log_dataset(frame, name="train", role="train")
        return run.log_model(model, name="churn")


def _post(url: str, records: list[dict[str, Any]], request_id: str) -> None:
    request = urllib.request.Request(
        f"{url}/predict", data=json.dumps({"records": records}).encode(),
        headers={"content-type": "application/json", "X-Request-ID": request_id})
    urllib.request.urlopen(request, timeout=10).read()


def _lines(folder: Path, count: int) -> list[dict[str, Any]]:
    # A line is written once the shadow answered too, after the client got its answer.
    deadline = time.monotonic() + 30
    while True:
        lines = [json.loads(line) for file in sorted(folder.glob("*.jsonl"))
                 for line in file.read_text().splitlines()]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.fixture
def served(home, tmp_path):
    """churn/1 champion with churn/2 in shadow, served for real; the log and the labels."""
    nt.register(train_churn().model_id, name="churn")
    nt.register(_challenger(), name="churn")
    nt.set_alias("churn", "champion", 1)
    nt.set_alias("churn", "challenger", 2)
    pkg = nt.package("churn@champion", shadow=["churn@challenger"], name="churn",
                     output=tmp_path / "ctx", build=False)
    frame, target = churn_frame(REQUESTS * PER_REQUEST, seed=7)
    records = frame.to_dict("records")
    log = tmp_path / "log"
    with nt.serve(pkg, port=0, background=True, log_dir=log) as server:
        for i in range(REQUESTS):
            _post(server.url, records[i * PER_REQUEST:(i + 1) * PER_REQUEST], f"req-{i}")
        lines = _lines(log, REQUESTS * PER_REQUEST)
    assert len(lines) == REQUESTS * PER_REQUEST
    # Labels for two thirds of the requests, and a few for requests the log never saw.
    labelled = [(f"req-{i}", r, int(target[i * PER_REQUEST + r]))
                for i in range(0, REQUESTS, 3) for r in range(PER_REQUEST)]
    labelled += [(f"req-{i}", r, int(target[i * PER_REQUEST + r]))
                 for i in range(1, REQUESTS, 3) for r in range(PER_REQUEST)]
    labelled += [("ghost-1", 0, 1), ("ghost-2", 0, 0), ("req-0", 9, 1)]
    labels = pd.DataFrame(labelled, columns=["request_id", "row", "label"])
    models = {v: nt.model_version(f"churn/{v}").model_id for v in (1, 2)}
    return log, lines, labels, models
