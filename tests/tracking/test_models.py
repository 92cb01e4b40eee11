from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from nbtrail._modelio import deserialize_model, referenced_modules
from nbtrail.errors import InvalidInputError, UntrustedModelError
from nbtrail.tracking._datasets import profile_dataset
from nbtrail.tracking._models import SerializedModel, infer_signature, serialize_model


class Doubler(TransformerMixin, BaseEstimator):
    """A user-defined estimator skops cannot know is safe."""

    def fit(self, X: Any, y: Any = None) -> Doubler:
        return self

    def transform(self, X: Any) -> Any:
        return X * 2


class Plain:
    def __init__(self) -> None:
        self.weights = [1.0, 2.0]


DOUBLER = f"{Doubler.__module__}.Doubler"


@pytest.fixture
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def test_logistic_regression_round_trip(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    model = LogisticRegression().fit(X, y)
    stored = serialize_model(model)
    assert isinstance(stored.data, bytes)
    assert stored.format == "skops"
    assert stored.flavor == "sklearn"
    assert stored.class_name == "sklearn.linear_model._logistic.LogisticRegression"
    loaded = deserialize_model(stored.data, stored.format)
    assert isinstance(loaded, LogisticRegression)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_pipeline_round_trip(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    model = Pipeline(
        [("scale", StandardScaler()), ("forest", RandomForestClassifier(5, random_state=0))]
    ).fit(X, y)
    stored = serialize_model(model)
    assert stored.format == "skops"
    assert stored.class_name == "sklearn.pipeline.Pipeline"
    # The forest's trees are a type skops does not trust itself; nbtrail trusts sklearn.*.
    loaded = deserialize_model(stored.data, "skops")
    assert isinstance(loaded, Pipeline)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_sklearn_model_uses_skops_even_when_pickle_is_allowed(
    xy: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = xy
    assert serialize_model(LogisticRegression().fit(X, y), pickle=True).format == "skops"


def test_non_sklearn_object_needs_pickle_opt_in() -> None:
    with pytest.raises(InvalidInputError) as info:
        serialize_model(Plain())
    message = str(info.value)
    assert f"{Plain.__module__}.Plain" in message
    assert "pickle=True" in message
    assert "skops" in message


def test_pickle_round_trip_needs_trust() -> None:
    stored = serialize_model(Plain(), pickle=True)
    assert stored == SerializedModel(
        stored.data, "pickle", f"{Plain.__module__}.Plain", f"{Plain.__module__}.Plain"
    )
    for trusted in (False, [f"{Plain.__module__}.Plain"]):
        with pytest.raises(UntrustedModelError, match="arbitrary code"):
            deserialize_model(stored.data, "pickle", trusted=trusted)
    loaded = deserialize_model(stored.data, "pickle", trusted=True)
    assert isinstance(loaded, Plain)
    assert loaded.weights == [1.0, 2.0]


def test_custom_class_is_refused_until_trusted(xy: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = xy
    model = Pipeline([("double", Doubler()), ("clf", LogisticRegression())]).fit(X, y)
    stored = serialize_model(model)
    assert stored.format == "skops"
    with pytest.raises(UntrustedModelError) as info:
        deserialize_model(stored.data, "skops")
    message = str(info.value)
    assert DOUBLER in message
    assert "trusted=" in message
    with pytest.raises(UntrustedModelError):
        deserialize_model(stored.data, "skops", trusted=["somewhere.Else"])
    for trusted in ([DOUBLER], DOUBLER, True):
        loaded = deserialize_model(stored.data, "skops", trusted=trusted)
        assert isinstance(loaded, Pipeline)
        assert isinstance(loaded.steps[0][1], Doubler)
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_builtin_functions_are_not_trusted_by_default() -> None:
    stored = serialize_model(FunctionTransformer(eval))
    with pytest.raises(UntrustedModelError, match=r"builtins\.eval"):
        deserialize_model(stored.data, "skops")
    assert deserialize_model(stored.data, "skops", trusted=["builtins.eval"]).func is eval


def test_numpy_function_is_trusted() -> None:
    stored = serialize_model(FunctionTransformer(np.log1p))
    loaded = deserialize_model(stored.data, "skops")
    assert loaded.func is np.log1p


def test_lambda_cannot_go_to_skops() -> None:
    model = FunctionTransformer(lambda x: x + 1)
    with pytest.raises(InvalidInputError) as info:
        serialize_model(model)
    assert "lambda" in str(info.value)
    assert "pickle=True" in str(info.value)


def test_unsupported_sklearn_model_can_fall_back_to_pickle(
    xy: tuple[np.ndarray, np.ndarray],
) -> None:
    # Birch holds a tree of subclusters skops has no loader for.
    from sklearn.cluster import Birch

    X, _ = xy
    model = Birch(n_clusters=2).fit(X)
    with pytest.raises(InvalidInputError, match="pickle=True"):
        serialize_model(model)
    stored = serialize_model(model, pickle=True)
    assert (stored.format, stored.flavor) == ("pickle", "sklearn")
    loaded = deserialize_model(stored.data, "pickle", trusted=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("pickled", [False, True])
def test_referenced_modules_are_read_without_loading(
    xy: tuple[np.ndarray, np.ndarray], pickled: bool
) -> None:
    # Two estimators of one module: the pickle refers to it the second time through its memo.
    model = Pipeline([("scale", StandardScaler()), ("double", Doubler()),
                      ("clf", LogisticRegression())]).fit(*xy)
    if pickled:
        data, format = pickle.dumps(model, protocol=5), "pickle"
    else:
        stored = serialize_model(model)
        data, format = stored.data, stored.format
    modules = referenced_modules(data, format)
    assert {"sklearn.pipeline", "sklearn.preprocessing._data",
            "sklearn.linear_model._logistic", __name__} <= modules


def test_bad_data_and_format() -> None:
    with pytest.raises(InvalidInputError, match="skops"):
        deserialize_model(b"not a zip file", "skops")
    with pytest.raises(InvalidInputError, match="onnx"):
        deserialize_model(b"", "onnx")


# --- signatures --------------------------------------------------------------------------


def example_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [31, 45, 27],
            "income": [1200.5, None, 800.0],
            "city": pd.Categorical(["Oslo", "Lima", "Oslo"]),
            "member": [True, True, True],
        }
    )


def test_signature_from_example() -> None:
    signature = infer_signature(example_frame())
    assert signature["outputs"] == []
    assert signature["inputs"] == [
        {"name": "age", "dtype": "int64", "nullable": False, "min": 27, "max": 45},
        {"name": "income", "dtype": "double", "nullable": True, "min": 800.0, "max": 1200.5},
        {
            "name": "city",
            "dtype": "large_string",
            "nullable": False,
            "categories": ["Lima", "Oslo"],
        },
        {"name": "member", "dtype": "bool", "nullable": False, "categories": [True]},
    ]


def test_signature_with_profile_and_output() -> None:
    training = pd.DataFrame(
        {
            "age": list(range(18, 98)),
            "income": [float(i) for i in range(80)],
            "city": ["Oslo", "Lima", "Pune", None] * 20,
            "member": [True, False] * 40,
        }
    )
    signature = infer_signature(
        example_frame(),
        profile=profile_dataset(training),
        output=np.array([0.1, 0.9, 0.4]),
    )
    inputs = {column["name"]: column for column in signature["inputs"]}
    assert inputs["age"] == {
        "name": "age",
        "dtype": "int64",
        "nullable": False,
        "min": 18,
        "max": 97,
    }
    assert (inputs["income"]["min"], inputs["income"]["max"]) == (0.0, 79.0)
    # The example had no missing city; the training data did.
    assert inputs["city"]["nullable"] is True
    assert inputs["city"]["categories"] == ["Lima", "Oslo", "Pune"]
    assert inputs["member"]["categories"] == [False, True]
    assert signature["outputs"] == [
        {"name": "0", "dtype": "double", "nullable": False, "min": 0.1, "max": 0.9}
    ]


def test_signature_without_categories_for_many_values() -> None:
    example = pd.DataFrame({"id": [f"user-{i}" for i in range(60)]})
    (column,) = infer_signature(example)["inputs"]
    assert column == {"name": "id", "dtype": "large_string", "nullable": False}
    # Two values in the example must not become the allowed set when training saw 60.
    (column,) = infer_signature(example.head(2), profile=profile_dataset(example))["inputs"]
    assert "categories" not in column
    (column,) = infer_signature(example.head(2))["inputs"]
    assert column["categories"] == ["user-0", "user-1"]


def test_signature_from_profile_alone() -> None:
    profile = profile_dataset(example_frame())
    assert infer_signature(None, profile=profile) == infer_signature(example_frame())
    with pytest.raises(InvalidInputError, match="example"):
        infer_signature(None)
