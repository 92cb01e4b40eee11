"""scikit-learn autologging: ``nt.autolog()`` records the fits the user's code makes.

The ``fit`` (and ``fit_transform``/``fit_predict``) methods of scikit-learn estimators,
and the cross-validation functions (``cross_val_score``, ``learning_curve``...), are
replaced by wrappers that record params, fit time, scores, the data sets and the fitted
model. Only the outermost call is recorded: the fits a Pipeline, a search, an ensemble
or a cross-validation function runs inside it pass straight through, and so do fits made
by scikit-learn's own functions (the label encoders of ``log_loss``...). A plain
transformer (a scaler, PCA) fitted outside a run makes no run of its own.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import InvalidInputError
from ._keys import MAX_VALUE_LENGTH

if TYPE_CHECKING:
    from ._run import ActiveRun
    from ._tracker import Tracker

_METHODS = ("fit", "fit_transform", "fit_predict")
# Set on every wrapper, so a method that is already ours is never wrapped again.
_MARK = "__nbtrail_autolog__"
_EXTRA_CLASSES = (
    ("sklearn.pipeline", "Pipeline"),
    ("sklearn.compose", "ColumnTransformer"),
    ("sklearn.model_selection", "GridSearchCV"),
    ("sklearn.model_selection", "RandomizedSearchCV"),
    # Importable only after `from sklearn.experimental import enable_halving_search_cv`;
    # autolog never enables experimental features itself.
    ("sklearn.model_selection", "HalvingGridSearchCV"),
    ("sklearn.model_selection", "HalvingRandomSearchCV"),
)


# The cross-validation functions: one user call, one run. Patched where users reach them.
_FUNCTIONS = ("cross_validate", "cross_val_score", "cross_val_predict", "learning_curve",
              "validation_curve", "permutation_test_score")
_FUNCTION_MODULES = ("sklearn.model_selection", "sklearn.model_selection._validation",
                     "sklearn.model_selection._plot")  # _plot: LearningCurveDisplay...
# Their arguments logged as params, beside the estimator's (``estimator__C``...).
_FUNCTION_PARAMS = ("cv", "scoring", "train_sizes", "param_name", "param_range",
                    "n_permutations", "method")
# Frames of these modules only pass a call on to the estimator's own fit (the mixins'
# fit_transform/fit_predict, set_output's wrapper): such a fit counts as their caller's.
_RELAY_MODULES = frozenset({"sklearn.base", "sklearn.utils._set_output"})
# Methods that make an estimator a model, not a plain transformer (a scaler, PCA).
_MODEL_METHODS = ("predict", "fit_predict", "predict_proba", "decision_function")
# Attributes that mark a pipeline, a column transformer, a feature union or a search.
_COMPOSITE_ATTRIBUTES = ("steps", "transformers", "transformer_list", "param_grid",
                         "param_distributions")
# What a fitted clusterer or decomposition knows about its fit: attribute, metric (summed).
_FITTED_METRICS = (("inertia_", "inertia"),
                   ("explained_variance_ratio_", "explained_variance_ratio"),
                   ("reconstruction_err_", "reconstruction_error"),
                   ("lower_bound_", "lower_bound"))
# The silhouette costs O(n²) (5,000 rows: several times a KMeans fit): only up to this many.
_SILHOUETTE_MAX_ROWS = 1_000


@dataclass(frozen=True)
class _Options:
    log_models: bool = True
    log_datasets: bool = True
    log_training_score: bool = True
    max_param_length: int = 500
    max_child_runs: int = 5


class _Slot(NamedTuple):
    """Where a fit method takes one of its data arguments: position (after self) and name."""

    position: int
    name: str


class _Slots(NamedTuple):
    x: _Slot | None
    y: _Slot | None


_DEFAULT_SLOTS = _Slots(_Slot(0, "X"), _Slot(1, "y"))

_options = _Options()
_enabled = False
_patch_lock = threading.Lock()
# (class that defines the method, method name) -> the attribute found in its __dict__.
_patches: dict[tuple[type, str], Any] = {}
# (namespace, name, original) of every cross-validation function we replaced.
_bound: list[tuple[dict[str, Any], str, Any]] = []

# True while an autologged fit runs in this context: fits started inside it are nested.
_inside_fit: ContextVar[bool] = ContextVar("nbtrail_autolog_inside_fit", default=False)
# Threads start with an empty context, so joblib's worker threads (threading backend,
# IsolationForest, ...) cannot see _inside_fit. Fallback: a fit in a non-main thread while
# another thread runs an autologged fit counts as nested. The price: fits a user runs in
# their own threads during another autologged fit are not recorded.
_fit_threads: dict[int, int] = {}
_fit_threads_lock = threading.Lock()


def autolog(*, disable: bool = False, log_models: bool = True, log_datasets: bool = True,
            log_training_score: bool = True, max_param_length: int = 500,
            max_child_runs: int = 5) -> None:
    """Record the scikit-learn fits your code makes as runs, or stop doing so.

    A fit inside an active run logs into it; otherwise a model's fit (an estimator that
    predicts or clusters, a pipeline, a search) gets its own run named after the
    estimator class, finished after the fit (failed if the fit raises). A plain
    transformer (a scaler, an encoder, PCA) fitted outside a run makes none. Recorded:
    params (``get_params(deep=True)``), ``fit_time_s``, ``training_score``, the ``X_train``
    and ``y_train`` data sets, the fitted model and the tags ``estimator_class`` and
    ``autolog``; clusterers and decompositions fitted without ``y`` log what they have
    (``inertia``, ``explained_variance_ratio``, ``silhouette``...).

    Searches (``GridSearchCV``...) log ``best_*`` params, ``best_cv_score``, the training
    score of the refitted best estimator (stored as the model) and a child run for each
    of the best ``max_child_runs`` candidates (tag ``best`` on the best). A call of
    ``cross_val_score``, ``cross_validate``, ``cross_val_predict``, ``learning_curve``,
    ``validation_curve`` or ``permutation_test_score`` is one run named after the
    function, with mean and per-fold scores and up to ``max_child_runs`` child runs (one
    per fold, tag ``fold``, or one per point of a curve). Fits run by another fit or by a
    scikit-learn function (label encoders inside metrics, search candidates, folds) are
    not recorded separately. A logging problem only warns; the fit is never affected.

    Args:
        disable: Put back every original method and function and stop recording.
        log_models: Store the fitted estimator (skops format).
        log_datasets: Profile and record ``X`` and ``y``.
        log_training_score: Log ``estimator.score(X, y)`` on the training data; this
            predicts on the whole training set once more.
        max_param_length: Longer param values (reprs, long lists) are cut to this length.
        max_child_runs: Child runs kept per search (the best candidates) or
            cross-validation call (the first folds or points); ``0`` keeps none. The
            parent run always has the scores of all of them.

    Example:
        >>> nt.autolog()                                                   # doctest: +SKIP
        >>> LogisticRegression().fit(X, y)   # recorded as run "LogisticRegression"
        >>> cross_val_score(SVC(), X, y)     # one run "cross_val_score", a child per fold
    """
    global _enabled, _options
    for name, value, least in (("max_param_length", max_param_length, 1),
                               ("max_child_runs", max_child_runs, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InvalidInputError(
                f"{name} must be an integer of {least} or more, got {value!r}"
            )
    # XGBoost and LightGBM have their own wrappers (tracking/_boosting.py).
    from . import _boosting

    if disable:
        _boosting.disable()
    else:
        _boosting.enable(log_models=log_models, log_datasets=log_datasets)
    with _patch_lock:
        if disable:
            _enabled = False
            _unpatch()
            return
        _options = _Options(log_models=log_models, log_datasets=log_datasets,
                            log_training_score=log_training_score,
                            max_param_length=min(max_param_length, MAX_VALUE_LENGTH),
                            max_child_runs=max_child_runs)
        _patch()
        # A notebook imports first and calls autolog after: its own names for the
        # cross-validation functions are rebound too.
        _patch_functions(sys._getframe(1).f_globals)
        _enabled = True


# -- patching ------------------------------------------------------------------------------


@functools.cache
def _estimator_classes() -> tuple[type, ...]:
    # all_estimators() imports every scikit-learn module (about a second): do it once.
    import importlib

    from sklearn.utils import all_estimators

    classes = [cls for _, cls in all_estimators()]
    for module_name, name in _EXTRA_CLASSES:
        try:
            classes.append(getattr(importlib.import_module(module_name), name))
        except (ImportError, AttributeError):
            continue
    return tuple(dict.fromkeys(classes))


def _method_owners() -> list[tuple[type, str]]:
    """The classes whose own ``__dict__`` holds each fit method of the estimator classes."""
    from sklearn.base import BaseEstimator

    owners: dict[tuple[type, str], None] = {}
    for cls in _estimator_classes():
        for name in _METHODS:
            owner = next((base for base in cls.__mro__ if name in base.__dict__), None)
            if owner is None:
                continue
            # Mixins (TransformerMixin.fit_transform, ClusterMixin.fit_predict...) only call
            # self.fit, which is wrapped; wrapping them would also catch user classes.
            if name != "fit" and not issubclass(owner, BaseEstimator):
                continue
            owners[(owner, name)] = None
    return list(owners)


def _patch() -> None:
    for owner, name in _method_owners():
        if (owner, name) in _patches:
            continue
        original = owner.__dict__[name]
        if getattr(original, _MARK, False):
            continue
        wrapper = _wrap(original)
        if wrapper is not None:
            setattr(owner, name, wrapper)
            _patches[(owner, name)] = original


def _patch_functions(caller: dict[str, Any]) -> None:
    import importlib

    validation = importlib.import_module("sklearn.model_selection._validation")
    originals: dict[int, tuple[Any, Any]] = {}
    for name in _FUNCTIONS:
        function = getattr(validation, name)
        if getattr(function, _MARK, False):  # autolog() called again
            function = function.__wrapped__
        originals[id(function)] = (function, _wrap_function(function, name))
    namespaces = [vars(importlib.import_module(module)) for module in _FUNCTION_MODULES]
    if all(caller is not namespace for namespace in namespaces):
        namespaces.append(caller)
    for namespace in namespaces:
        for key, value in list(namespace.items()):
            found = originals.get(id(value))
            if found is not None and found[0] is value:
                namespace[key] = found[1]
                _bound.append((namespace, key, value))


def _unpatch() -> None:
    for namespace, key, original in reversed(_bound):
        if getattr(namespace.get(key), _MARK, False):
            namespace[key] = original
    _bound.clear()
    for (owner, name), original in list(_patches.items()):
        # Put the original back only over our own wrapper: a later patch by someone else
        # stays; our wrapper under it passes calls through once _enabled is False.
        if getattr(owner.__dict__.get(name), _MARK, False):
            setattr(owner, name, original)
        del _patches[(owner, name)]


def _wrap(original: Any) -> Any:
    if inspect.isfunction(original):
        slots = _data_slots(original, skip_self=True)

        @functools.wraps(original)
        def fit_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not _enabled or _inside_fit.get() or _in_worker_thread() \
                    or _called_by_library(sys._getframe(1)):
                return original(self, *args, **kwargs)
            return _autologged(functools.partial(original, self, *args, **kwargs), self,
                               _argument(slots.x, args, kwargs),
                               _argument(slots.y, args, kwargs), None)

        setattr(fit_wrapper, _MARK, True)
        return fit_wrapper
    descriptor_type = type(original)
    # available_if methods (Pipeline.fit_transform...) are non-data descriptors; properties
    # (data descriptors) are left alone, they hide a method rather than provide one.
    if hasattr(descriptor_type, "__get__") and not hasattr(descriptor_type, "__set__"):
        return _WrappedDescriptor(original)
    return None


class _WrappedDescriptor:
    """Wraps a method descriptor, keeping its availability check (``hasattr``) intact."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self._slots: _Slots | None = None
        setattr(self, _MARK, True)

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        bound = self.original.__get__(obj, objtype)  # AttributeError if unavailable
        if obj is None:
            return bound
        if self._slots is None:
            self._slots = _data_slots(bound, skip_self=False)
        slots = self._slots

        @functools.wraps(bound)
        def fit_wrapper(*args: Any, **kwargs: Any) -> Any:
            if not _enabled or _inside_fit.get() or _in_worker_thread() \
                    or _called_by_library(sys._getframe(1)):
                return bound(*args, **kwargs)
            return _autologged(functools.partial(bound, *args, **kwargs), obj,
                               _argument(slots.x, args, kwargs),
                               _argument(slots.y, args, kwargs), None)

        return fit_wrapper


class _Call(NamedTuple):
    """A call of a cross-validation function: its name and its arguments by name."""

    name: str
    arguments: Mapping[str, Any]


@functools.cache
def _wrap_function(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def function_wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _enabled or _inside_fit.get() or _in_worker_thread():
            return original(*args, **kwargs)
        try:
            arguments = signature.bind(*args, **kwargs).arguments
        except TypeError:  # scikit-learn says what is wrong
            return original(*args, **kwargs)
        return _autologged(functools.partial(original, *args, **kwargs),
                           arguments.get("estimator"), arguments.get("X"), arguments.get("y"),
                           _Call(name, arguments))

    setattr(function_wrapper, _MARK, True)
    return function_wrapper


def _data_slots(function: Callable[..., Any], *, skip_self: bool) -> _Slots:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return _DEFAULT_SLOTS
    if skip_self:
        parameters = parameters[1:]
    positional = [p.name for p in parameters
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        return _DEFAULT_SLOTS
    # Label encoders are fit on y alone: fit(self, y).
    if positional[0] in ("y", "Y"):
        return _Slots(None, _Slot(0, positional[0]))
    y = _Slot(1, positional[1]) if len(positional) > 1 else None
    return _Slots(_Slot(0, positional[0]), y)


def _in_worker_thread() -> bool:
    if threading.current_thread() is threading.main_thread():
        return False
    me = threading.get_ident()
    with _fit_threads_lock:
        return any(ident != me for ident in _fit_threads)


def _called_by_library(frame: FrameType | None) -> bool:
    """True for a fit that scikit-learn's own code makes (a metric's label encoder...)."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module not in _RELAY_MODULES:
            return isinstance(module, str) and module.startswith("sklearn.")
        frame = frame.f_back
    return False


def _makes_run(estimator: Any) -> bool:
    """Whether a fit outside any run gets a run: a model does, a plain transformer not."""
    if any(hasattr(estimator, name) for name in _COMPOSITE_ATTRIBUTES):
        return True  # a pipeline or a search is the user's whole recipe
    if not (hasattr(estimator, "transform") or hasattr(estimator, "fit_transform")):
        return True
    return any(hasattr(estimator, name) for name in _MODEL_METHODS)


# -- recording -----------------------------------------------------------------------------


def _autologged(call: Callable[[], Any], estimator: Any, X: Any, y: Any,
                function: _Call | None) -> Any:
    token = _inside_fit.set(True)
    me = threading.get_ident()
    with _fit_threads_lock:
        _fit_threads[me] = _fit_threads.get(me, 0) + 1
    try:
        return _record(call, estimator, X, y, function)
    finally:
        _inside_fit.reset(token)
        with _fit_threads_lock:
            if _fit_threads[me] == 1:
                del _fit_threads[me]
            else:
                _fit_threads[me] -= 1


def _record(call: Callable[[], Any], estimator: Any, X: Any, y: Any,
            function: _Call | None) -> Any:
    from ._tracker import get_tracker

    options = _options
    cls = type(estimator)
    run: ActiveRun | None = None
    try:
        tracker = get_tracker()
        run = tracker.active_run()
        own_run = run is None
        if run is None and (function is not None or _makes_run(estimator)):
            run = tracker.start_run(name=function.name if function else cls.__name__)
    except Exception as exc:
        _warn(f"nbtrail autolog: not recording this {cls.__name__} fit: {exc}")
    if run is None:
        return call()

    # Before the fit, so a failed fit still shows what it was tried with.
    tags = {"estimator_class": f"{cls.__module__}.{cls.__qualname__}", "autolog": "sklearn"}
    if function is not None:
        tags["sklearn_function"] = function.name
        _safely("params", _log_function_params, run, estimator, function,
                options.max_param_length)
    else:
        _safely("params", _log_estimator_params, run, estimator, options.max_param_length)
    _safely("tags", run.set_tags, tags)
    started = time.perf_counter()
    try:
        result = call()
    except BaseException as exc:
        if own_run:
            status = "failed" if isinstance(exc, Exception) else "killed"
            _safely("the run end", run.end, status, f"{type(exc).__name__}: {exc}")
        raise
    fit_time = time.perf_counter() - started
    try:
        if function is not None:
            _safely("the results", _log_function_results, tracker, run, function, options,
                    fit_time, X, y, result)
        else:
            _safely("the fit results", _log_results, tracker, run, estimator, options,
                    fit_time, X, y)
    finally:
        if own_run:
            _safely("the run end", run.end, "finished")
    return result


def _log_results(tracker: Tracker, run: ActiveRun, estimator: Any, options: _Options,
                 fit_time: float, X: Any, y: Any) -> None:
    # Each part separately: one that fails (an unsupported data type...) skips only itself.
    _safely("fit_time_s", run.log_metric, "fit_time_s", fit_time)
    search = _is_search(estimator)
    # A search scores with its refitted best estimator, which refit=False leaves out.
    scores = not search or hasattr(estimator, "best_estimator_")
    if options.log_training_score and scores and X is not None and y is not None \
            and hasattr(estimator, "score"):
        _safely("training_score", _log_training_score, run, estimator, X, y)
    if y is None:
        _safely("the unsupervised scores", _log_unsupervised, run, estimator, X)
    if search:
        _safely("the search results", _log_search, tracker, run, estimator, options)
    if options.log_datasets:
        _log_datasets(run, X, y, "train")
    if options.log_models:
        _safely("the model", _log_model, run, estimator, X)


def _log_datasets(run: ActiveRun, X: Any, y: Any, role: str) -> None:
    suffix = "_train" if role == "train" else ""
    for data, name in ((X, "X" + suffix), (y, "y" + suffix)):
        if data is not None:
            _safely(f"data set {name}", run.log_dataset, data, name=name, role=role)


def _safely(what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    # Logging is a side effect of the user's fit: it may cost a warning, never the fit.
    try:
        function(*args, **kwargs)
    except Exception as exc:
        _warn(f"nbtrail autolog: could not log {what}: {exc}")


def _warn(message: str) -> None:
    # Point at the user's line (the first frame outside nbtrail and the libraries it
    # wraps), so the default filter shows each problem once per line instead of once a fit.
    level, frame = 1, sys._getframe(0)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
            ("nbtrail.", "sklearn.", "xgboost.", "lightgbm.")):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def _argument(slot: _Slot | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if slot is None:
        return None
    if len(args) > slot.position:
        return args[slot.position]
    return kwargs.get(slot.name)


def _log_params(run: ActiveRun, params: Mapping[str, Any]) -> None:
    # One call per key: a key the run already holds with another value (two estimators
    # fit in one `with nt.run()`) is skipped instead of losing every other param.
    skipped: list[str] = []
    reason = ""
    for key, value in params.items():
        try:
            run.log_params({key: value})
        except InvalidInputError as exc:
            skipped.append(key)
            reason = reason or str(exc)
    if skipped:
        _warn(f"nbtrail autolog: skipped param(s) {', '.join(skipped)}: {reason}")


def _log_estimator_params(run: ActiveRun, estimator: Any, limit: int) -> None:
    params = estimator.get_params(deep=True)
    # A search's estimator__C is the untuned value the grid overrides: best_C says it.
    tuned = {f"estimator__{key}" for key in _tuned(estimator)}
    _log_params(run, {key: _param(value, limit) for key, value in params.items()
                      if key not in tuned})


def _tuned(search: Any) -> set[str]:
    """The param names a search tunes (its grid's or distributions' keys)."""
    space = getattr(search, "param_grid", None)
    if space is None:
        space = getattr(search, "param_distributions", None)
    if space is None or not hasattr(search, "estimator"):
        return set()
    spaces = space if isinstance(space, list) else [space]
    return {str(key) for one in spaces if isinstance(one, Mapping) for key in one}


def _log_function_params(run: ActiveRun, estimator: Any, function: _Call, limit: int) -> None:
    # Named as a search names them: estimator__C beside the call's own cv, scoring...
    params: dict[str, Any] = {"estimator": _plain(estimator)}
    if hasattr(estimator, "get_params"):
        params.update({f"estimator__{key}": value
                       for key, value in estimator.get_params(deep=True).items()})
    params.update({key: function.arguments[key] for key in _FUNCTION_PARAMS
                   if key in function.arguments})
    _log_params(run, {key: _param(value, limit) for key, value in params.items()})


def _param(value: Any, limit: int) -> Any:
    plain = _plain(value)
    if isinstance(plain, (list, dict)):
        text = json.dumps(plain, sort_keys=True)
        if len(text) <= limit:
            return plain
        plain = text
    if isinstance(plain, str) and len(plain) > limit:
        return plain[: limit - 1] + "…"
    return plain


def _plain(value: Any) -> Any:
    """A JSON-friendly stand-in for a param value: estimators become their class name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "get_params") and not isinstance(value, type):
        return type(value).__name__
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    if callable(value) and hasattr(value, "__qualname__"):  # score_func=f_classif, ...
        return value.__qualname__
    return repr(value)


def _is_search(estimator: Any) -> bool:
    # Duck-typed: GridSearchCV, RandomizedSearchCV, the Halving searches, subclasses.
    results = getattr(estimator, "cv_results_", None)
    return isinstance(results, dict) and "params" in results


def _log_training_score(run: ActiveRun, estimator: Any, X: Any, y: Any) -> None:
    run.log_metric("training_score", estimator.score(X, y))


def _log_unsupervised(run: ActiveRun, estimator: Any, X: Any) -> None:
    """What a clusterer or a decomposition fitted without ``y`` has to say about the fit."""
    import numpy as np

    pipeline = hasattr(estimator, "steps") and len(estimator.steps) > 0
    final = estimator.steps[-1][1] if pipeline else estimator
    metrics: dict[str, float] = {}
    for attribute, key in _FITTED_METRICS:
        value = getattr(final, attribute, None)
        if value is not None:
            metrics[key] = float(np.sum(value))
    labels = getattr(final, "labels_", None)
    if labels is not None and X is not None:
        labels = np.asarray(labels)
        found = set(labels.tolist())
        metrics["n_clusters"] = len(found - {-1})  # -1: DBSCAN's noise
        if 2 <= len(found) < len(labels) <= _SILHOUETTE_MAX_ROWS:
            from sklearn.metrics import silhouette_score

            data = estimator[:-1].transform(X) if pipeline and len(estimator.steps) > 1 else X
            metrics["silhouette"] = float(silhouette_score(data, labels))
    if metrics:
        run.log_metrics(metrics)


class _Child(NamedTuple):
    """A child run to record: a search candidate, a fold, a point of a curve."""

    name: str
    params: dict[str, Any]
    tags: dict[str, Any]
    metrics: list[tuple[int, dict[str, float]]]
    """(step, metrics) pairs."""


def _log_children(tracker: Tracker, run: ActiveRun, children: list[_Child],
                  limit: int) -> None:
    for child in children[:limit]:
        child_run = tracker.start_run(name=child.name, parent=run,
                                      tags={"autolog": "sklearn", **child.tags})
        try:
            if child.params:
                child_run.log_params(child.params)
            for step, metrics in child.metrics:
                child_run.log_metrics(metrics, step=step)
        except BaseException as exc:
            child_run.end("failed", f"{type(exc).__name__}: {exc}")
            raise
        child_run.end("finished")
    if len(children) > limit:
        run.set_tag("omitted_child_runs", len(children) - limit)


def _log_search(tracker: Tracker, run: ActiveRun, search: Any, options: _Options) -> None:
    limit = options.max_param_length
    results = search.cv_results_
    best_params = getattr(search, "best_params_", None)
    if best_params is not None:  # absent for multi-metric searches with refit=False
        _log_params(run, {f"best_{k}": _param(v, limit) for k, v in best_params.items()})
    metric = search.refit if isinstance(search.refit, str) else "score"
    score_key = f"mean_test_{metric}" if f"mean_test_{metric}" in results else next(
        (key for key in results if key.startswith("mean_test_")), None)
    best_index = getattr(search, "best_index_", None)
    best_score = getattr(search, "best_score_", None)
    if best_score is None and best_index is not None and score_key is not None:
        best_score = results[score_key][best_index]  # refit=callable leaves best_score_ out
    if best_score is not None:
        run.log_metric("best_cv_score", best_score)

    # Halving searches list a candidate once per iteration it reached: one child each,
    # its scores and n_resources at step = iteration.
    rows: dict[str, list[int]] = {}
    for i, params in enumerate(results["params"]):
        rows.setdefault(_params_key(params), []).append(i)
    best_key = _params_key(results["params"][best_index]) if best_index is not None else None

    def rank(key: str) -> tuple[bool, int, float]:
        # The best first, then the furthest iteration reached, then the score (NaN last).
        last = rows[key][-1]
        iteration = int(results["iter"][last]) if "iter" in results else 0
        score = float(results[score_key][last]) if score_key is not None else float("nan")
        return key != best_key, -iteration, -score if score == score else float("inf")

    run.log_metric("n_candidates", len(rows))
    score_keys = [k for k in results if k.startswith(("mean_test_", "std_test_",
                                                       "mean_train_", "std_train_"))]
    children = []
    for position, key in enumerate(sorted(rows, key=rank)):
        first = rows[key][0]
        tags: dict[str, Any] = {"rank": position + 1}
        if key == best_key:
            tags["best"] = "true"
        metrics = []
        for row in rows[key]:
            values = {k: results[k][row] for k in score_keys}
            if "n_resources" in results:
                values["n_resources"] = results["n_resources"][row]
            metrics.append((int(results["iter"][row]) if "iter" in results else 0, values))
        params = {k: _param(v, limit) for k, v in results["params"][first].items()}
        children.append(_Child(f"candidate {first}", params, tags, metrics))
    _log_children(tracker, run, children, options.max_child_runs)


def _params_key(params: Mapping[str, Any]) -> str:
    return json.dumps({str(k): _plain(v) for k, v in params.items()}, sort_keys=True)


def _log_function_results(tracker: Tracker, run: ActiveRun, function: _Call,
                          options: _Options, fit_time: float, X: Any, y: Any,
                          result: Any) -> None:
    import numpy as np

    run.log_metric("fit_time_s", fit_time)
    children: list[_Child] = []
    if function.name in ("cross_validate", "cross_val_score"):
        scores = result if isinstance(result, dict) else {"test_score": result}
        folds = {key: [float(v) for v in values] for key, values in scores.items()
                 if key.startswith(("test_", "train_")) or key in ("fit_time", "score_time")}
        for key, values in folds.items():
            run.log_metrics({f"mean_{key}": float(np.mean(values)),
                             f"std_{key}": float(np.std(values))})
            for fold, value in enumerate(values):  # every fold, also those left as children
                run.log_metric(key, value, step=fold)
        n_folds = len(next(iter(folds.values()), []))
        children = [_Child(f"fold {i}", {}, {"fold": i},
                           [(0, {key: values[i] for key, values in folds.items()})])
                    for i in range(n_folds)]
    elif function.name in ("learning_curve", "validation_curve"):
        if function.name == "learning_curve":
            train, test = result[1], result[2]
            points = [("train_size", int(size)) for size in result[0]]
        else:
            train, test = result
            points = [(str(function.arguments["param_name"]), value)
                      for value in function.arguments["param_range"]]
        for i, (key, value) in enumerate(points):
            summary = {"mean_train_score": float(np.mean(train[i])),
                       "std_train_score": float(np.std(train[i])),
                       "mean_test_score": float(np.mean(test[i])),
                       "std_test_score": float(np.std(test[i]))}
            # A learning curve's step is the training size; a validation curve's the index.
            run.log_metrics({k: summary[k] for k in ("mean_train_score", "mean_test_score")},
                            step=value if function.name == "learning_curve" else i)
            per_fold = [(fold, {"train_score": float(a), "test_score": float(b)})
                        for fold, (a, b) in enumerate(zip(train[i], test[i], strict=True))]
            children.append(_Child(f"{key}={value}",
                                   {key: _param(value, options.max_param_length)},
                                   {}, [(0, summary), *per_fold]))
    elif function.name == "permutation_test_score":
        score, permutation_scores, pvalue = result
        run.log_metrics({"score": score, "pvalue": pvalue,
                         "mean_permutation_score": float(np.mean(permutation_scores))})
    _log_children(tracker, run, children, options.max_child_runs)
    if options.log_datasets:
        _log_datasets(run, X, y, "cv")


def _log_model(run: ActiveRun, estimator: Any, X: Any) -> None:
    if _is_search(estimator):
        # The search object holds its cv_results_ and param distributions (scipy frozen
        # distributions that skops cannot store); what serves is the best estimator.
        best = getattr(estimator, "best_estimator_", None)
        if best is None:
            run.set_tag("autolog_model", "none: refit=False leaves no best_estimator_")
            return
        run.set_tag("autolog_model", "best_estimator_ (the search object, with its "
                                     "cv_results_ and param distributions, is not stored)")
        estimator = best
    # Five rows are enough for a signature and keep the stored example small.
    example = None
    if type(X).__name__ == "ndarray" and getattr(X, "ndim", 0) >= 1:
        example = X[:5]
    elif type(X).__name__ == "DataFrame" and hasattr(X, "head"):  # pandas or polars
        example = X.head(5)
    try:
        run.log_model(estimator, name=type(estimator).__name__, input_example=example)
    except InvalidInputError as exc:
        # Its advice (pass pickle=True) is for log_model: autolog never pickles.
        raise InvalidInputError(
            f"{exc}. Autolog stores skops only; to keep this model, log it yourself in a "
            "run: nt.log_model(model, pickle=True)") from None
