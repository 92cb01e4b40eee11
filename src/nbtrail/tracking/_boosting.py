"""XGBoost and LightGBM: their models in their own formats, and their autologging.

``nt.autolog()`` wraps ``xgboost.train``, ``lightgbm.train`` and the ``fit`` of their
scikit-learn classes (XGBClassifier/XGBRegressor, LGBMClassifier/LGBMRegressor). A
library not imported yet is wrapped when it is: importing XGBoost costs a second, which
``autolog()`` must not charge to code that never uses it.

Evaluation results become step metrics named ``<evaluation set>/<metric>``, the step
being the boosting round from 0 (``validation_0/logloss``, ``valid_0/l2``, or the names
given to ``xgboost.train(evals=...)``/``lightgbm.train(valid_names=...)``). They are
logged when training ends.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .._modelio import BOOSTING_CLASSES, BOOSTING_LIBRARIES, XGBOOST, write_envelope
from ..errors import InvalidInputError
from ._autolog import _inside_fit, _safely, _warn

if TYPE_CHECKING:
    from ._models import SerializedModel
    from ._run import ActiveRun

LIBRARIES = ("xgboost", "lightgbm")
IMPORTANCE_TABLE = "feature_importance"  # stored as feature_importance.parquet
# Set on every wrapper, so a function that is already ours is never wrapped again.
_MARK = "__nbtrail_boosting__"
_lock = threading.Lock()
_options = {"log_models": True, "log_datasets": True}
_enabled = False
# (owner, attribute) -> the original found there.
_patches: dict[tuple[Any, str], Any] = {}


# -- models ----------------------------------------------------------------------------------


def _stored_class(model: object) -> tuple[str, str] | None:
    """``(format, class path)`` of the boosting class ``model`` is stored as, or None."""
    for cls in type(model).__mro__:
        path = f"{cls.__module__}.{cls.__qualname__}"
        for format, classes in BOOSTING_CLASSES.items():
            if path in classes:
                return format, path
    return None


def serialize_booster(model: object) -> SerializedModel | None:
    """XGBoost or LightGBM ``model`` in its library's own format; None for other models."""
    from ._models import SerializedModel

    found = _stored_class(model)
    if found is None:
        return None
    format, class_path = found
    cls = type(model)
    class_name = f"{cls.__module__}.{cls.__qualname__}"
    try:
        text, classes = _model_text(model, format, class_path)
    except Exception as exc:  # the libraries raise their own error types (unfitted...)
        raise InvalidInputError(
            f"cannot store the {class_name} in {BOOSTING_LIBRARIES[format]}'s own format "
            f"({type(exc).__name__}: {exc}); log a fitted model"
        ) from exc
    return SerializedModel(write_envelope(format, class_path, text, classes), format,
                           BOOSTING_LIBRARIES[format], class_name)


def _model_text(model: Any, format: str, class_path: str) -> tuple[str, list[Any] | None]:
    if format == XGBOOST:
        if class_path.endswith("Booster"):
            return bytes(model.save_raw(raw_format="json")).decode(), None
        # The wrapper's save_model adds its scikit-learn state to XGBoost's JSON.
        with tempfile.TemporaryDirectory(prefix="nbtrail-xgb-") as folder:
            path = Path(folder) / "model.json"
            model.save_model(path)
            return path.read_text(), None
    if class_path.endswith("Booster"):
        return model.model_to_string(), None
    classes = model.classes_.tolist() if class_path.endswith("LGBMClassifier") else None
    return model.booster_.model_to_string(), classes


# -- patching --------------------------------------------------------------------------------


def enable(*, log_models: bool, log_datasets: bool) -> None:
    """Record XGBoost and LightGBM training from now on (see ``nt.autolog``)."""
    global _enabled
    with _lock:
        _options.update(log_models=log_models, log_datasets=log_datasets)
        _enabled = True
        for name in LIBRARIES:
            module = sys.modules.get(name)
            if module is not None:
                _patch(name, module)
        if not any(isinstance(f, _ImportHook) for f in sys.meta_path):
            sys.meta_path.insert(0, _ImportHook())


def disable() -> None:
    """Put every original back and stop recording."""
    global _enabled
    with _lock:
        _enabled = False
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _ImportHook)]
        for (owner, attribute), original in list(_patches.items()):
            if getattr(getattr(owner, attribute, None), _MARK, False):
                setattr(owner, attribute, original)
            del _patches[(owner, attribute)]


def _targets(name: str, module: ModuleType) -> Iterator[tuple[Any, str, Callable[..., Any]]]:
    """``(owner, attribute, recorder)`` for each function of the library to wrap."""
    yield module, "train", _record_train
    names = (("XGBClassifier", "XGBRegressor") if name == "xgboost"
             else ("LGBMClassifier", "LGBMRegressor"))
    for cls in (getattr(module, n) for n in names):
        owner = next(base for base in cls.__mro__ if "fit" in base.__dict__)
        yield owner, "fit", _record_fit


def _patch(name: str, module: ModuleType) -> None:
    for owner, attribute, recorder in _targets(name, module):
        original = getattr(owner, attribute) if owner is module else owner.__dict__[attribute]
        if (owner, attribute) in _patches or getattr(original, _MARK, False):
            continue
        setattr(owner, attribute, _wrap(original, recorder, name))
        _patches[(owner, attribute)] = original


def _wrap(original: Callable[..., Any], recorder: Callable[..., Any], library: str
          ) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _enabled or _inside_fit.get():
            return original(*args, **kwargs)
        token = _inside_fit.set(True)  # scikit-learn fits inside (label encoders) are not ours
        try:
            return recorder(original, signature.bind(*args, **kwargs), library)
        except _NotRecording:
            return original(*args, **kwargs)
        finally:
            _inside_fit.reset(token)

    setattr(wrapper, _MARK, True)
    return wrapper


class _ImportHook(importlib.abc.MetaPathFinder):
    """Wraps XGBoost or LightGBM when they are imported after ``nt.autolog()``."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in LIBRARIES:
            return None
        others = [f for f in sys.meta_path if not isinstance(f, _ImportHook)]
        spec = next((s for f in others if hasattr(f, "find_spec")
                     for s in [f.find_spec(fullname, path, target)] if s is not None), None)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original_exec(module)
            with _lock:
                if _enabled:
                    _patch(fullname, module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


# -- recording -------------------------------------------------------------------------------


class _NotRecording(Exception):
    """No run to record into (a store that cannot be opened...): train as if unwrapped."""


@contextmanager
def _run_for(name: str) -> Iterator[ActiveRun]:
    """The active run, else a new one named ``name`` that ends with the training."""
    from ._tracker import get_tracker

    try:
        tracker = get_tracker()
        run = tracker.active_run()
        if run is None:
            run, own = tracker.start_run(name=name), True
        else:
            own = False
    except Exception as exc:
        _warn(f"nbtrail autolog: not recording this {name} training: {exc}")
        raise _NotRecording from exc
    if not own:
        yield run
        return
    try:
        yield run
    except BaseException as exc:
        status = "failed" if isinstance(exc, Exception) else "killed"
        _safely("the run end", run.end, status, f"{type(exc).__name__}: {exc}")
        raise
    _safely("the run end", run.end, "finished")


def _record_train(original: Callable[..., Any], bound: inspect.BoundArguments,
                  library: str) -> Any:
    bound.apply_defaults()
    arguments = bound.arguments
    history: dict[str, Any] = {}
    if library == "xgboost":
        data_name, rounds = "dtrain", arguments["num_boost_round"]
        if arguments.get("evals_result") is None:
            arguments["evals_result"] = history
        history = arguments["evals_result"]
    else:
        import lightgbm

        data_name, rounds = "train_set", arguments["num_boost_round"]
        arguments["callbacks"] = [*(arguments.get("callbacks") or []),
                                  lightgbm.record_evaluation(history)]
    params = {**(arguments.get("params") or {}), "num_boost_round": rounds}
    with _run_for(f"{library}.train") as run:
        _safely("params", _log_params, run, params)
        _safely("tags", run.set_tags, {"autolog": library, "estimator_class": f"{library}.train"})
        features, label = None, None
        try:
            features, label = _native_data(arguments[data_name], library)
        except Exception as exc:
            _warn(f"nbtrail autolog: could not read the training data: {exc}")
        if _options["log_datasets"]:
            _log_data(run, features, label)
        started = time.perf_counter()
        booster = original(*bound.args, **bound.kwargs)
        _safely("fit_time_s", run.log_metric, "fit_time_s", time.perf_counter() - started)
        _log_outcome(run, booster, booster, history, library, _head(features))
    return booster


def _record_fit(original: Callable[..., Any], bound: inspect.BoundArguments,
                library: str) -> Any:
    arguments = bound.arguments
    model = arguments["self"]
    cls = type(model)
    with _run_for(cls.__name__) as run:
        _safely("params", _log_params, run, model.get_params())
        _safely("tags", run.set_tags, {"autolog": library,
                                       "estimator_class": f"{cls.__module__}.{cls.__qualname__}"})
        started = time.perf_counter()
        result = original(*bound.args, **bound.kwargs)
        _safely("fit_time_s", run.log_metric, "fit_time_s", time.perf_counter() - started)
        if _options["log_datasets"]:
            _safely("the data sets", _log_fit_data, run, arguments)
        _safely("the training results", _log_fit_outcome, run, model, arguments, library)
    return result


def _log_fit_outcome(run: ActiveRun, model: Any, arguments: Mapping[str, Any],
                     library: str) -> None:
    if library == "xgboost":
        booster = model.get_booster()
        history = model.evals_result() if arguments.get("eval_set") else {}
    else:
        booster, history = model.booster_, model.evals_result_
    _log_outcome(run, model, booster, history, library, _head(arguments.get("X")))


def _log_outcome(run: ActiveRun, model: Any, booster: Any, history: Mapping[str, Any],
                 library: str, example: Any) -> None:
    _safely("the evaluation metrics", _log_history, run, history)
    _safely("best_iteration", _log_best_iteration, run, booster, library)
    _safely("the feature importances", _log_importances, run, booster, library)
    if _options["log_models"]:
        _safely("the model", run.log_model, model, input_example=example)


def _log_params(run: ActiveRun, params: Mapping[str, Any]) -> None:
    # One key at a time: a key the run holds with another value (two models trained in one
    # `with nt.run()`) is skipped instead of losing every other param.
    skipped = []
    for key, value in params.items():
        try:
            run.log_params({key: value})
        except InvalidInputError:
            skipped.append(key)
    if skipped:
        _warn(f"nbtrail autolog: skipped param(s) {', '.join(skipped)}: the run already "
              "holds other values for them")


def _log_history(run: ActiveRun, history: Mapping[str, Mapping[str, Sequence[Any]]]) -> None:
    for data_name, metrics in history.items():
        for metric, values in metrics.items():
            for step, value in enumerate(values):
                # XGBoost's cross-validated metrics are (mean, std) pairs: the mean counts.
                number = value[0] if isinstance(value, tuple) else value
                run.log_metric(f"{data_name}/{metric}", float(number), step=step)


def _log_best_iteration(run: ActiveRun, booster: Any, library: str) -> None:
    # Only with early stopping. Logged as the round's step (from 0) in both libraries;
    # LightGBM itself counts rounds from 1 and says 0 for "none".
    if library == "xgboost":
        try:
            best = int(booster.best_iteration)
        except AttributeError:
            return
    else:
        if booster.best_iteration <= 0:
            return
        best = booster.best_iteration - 1
    run.log_metric("best_iteration", best)


def _log_importances(run: ActiveRun, booster: Any, library: str) -> None:
    if library == "xgboost":
        names = booster.feature_names or [f"f{i}" for i in range(booster.num_features())]
        splits = booster.get_score(importance_type="weight")
        gains = booster.get_score(importance_type="total_gain")
        rows = [(n, int(splits.get(n, 0)), float(gains.get(n, 0.0))) for n in names]
    else:
        rows = list(zip(booster.feature_name(),
                        (int(v) for v in booster.feature_importance("split")),
                        (float(v) for v in booster.feature_importance("gain")), strict=True))
    import polars as pl

    rows.sort(key=lambda row: -row[2])
    run.log_table(pl.DataFrame(rows, schema=["feature", "split", "gain"], orient="row"),
                  IMPORTANCE_TABLE)


def _log_fit_data(run: ActiveRun, arguments: Mapping[str, Any]) -> None:
    evals = list(arguments.get("eval_set") or [])
    if arguments.get("eval_X") is not None:  # LightGBM 4.7's eval_X/eval_y
        xs, ys = arguments["eval_X"], arguments.get("eval_y")
        evals += list(zip(xs, ys or (), strict=True)) if isinstance(xs, tuple) else [(xs, ys)]
    for i, (x, y) in enumerate(evals):
        _log_data(run, x, y, f"validation_{i}", "validation")
    _log_data(run, arguments.get("X"), arguments.get("y"))


def _native_data(data: Any, library: str) -> tuple[Any, Any]:
    """The features and labels of a DMatrix or LightGBM Dataset, ``None`` where unknown."""
    if library == "xgboost":
        label = data.get_label()
        return _dmatrix_table(data), label if len(label) else None
    # Read before training: LightGBM frees the raw data once the Dataset is built.
    features = data.data
    if isinstance(features, (str, Path)):
        features = None  # a file LightGBM reads itself
    return features, data.get_label()


def _log_data(run: ActiveRun, features: Any, label: Any, suffix: str = "train",
              role: str = "train") -> None:
    # X after y: the model's signature comes from the last training data set logged.
    for data, name in ((label, f"y_{suffix}"), (features, f"X_{suffix}")):
        if data is not None:
            _safely(f"data set {name}", run.log_dataset, data, name=name, role=role)


def _head(data: Any) -> Any:
    """The first rows of a table, as an input example for the model's signature."""
    if data is None:
        return None
    if hasattr(data, "head"):  # pandas, polars
        return data.head(5)
    if hasattr(data, "slice"):  # pyarrow
        return data.slice(0, 5)
    return data[:5] if getattr(data, "ndim", 0) >= 1 else None


def _dmatrix_table(matrix: Any) -> Any:
    """A DMatrix's content as a table: missing entries (absent in its CSR form) are NaN."""
    import numpy as np
    import pyarrow as pa

    sparse = matrix.get_data().tocoo()
    dense = np.full(sparse.shape, np.nan, dtype=np.float32)
    dense[sparse.row, sparse.col] = sparse.data
    names = matrix.feature_names or [f"f{i}" for i in range(sparse.shape[1])]
    return pa.table({name: dense[:, i] for i, name in enumerate(names)})
