"""scikit-learn autologging: ``nt.autolog()`` records every top-level ``fit``.

The ``fit`` (and ``fit_transform``/``fit_predict``) methods of scikit-learn estimators
are replaced by a wrapper that records params, fit time, training score, the training
data sets and the fitted model. Only the outermost fit is recorded: the fits a
Pipeline, a search or an ensemble runs inside it pass straight through.
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


@dataclass(frozen=True)
class _Options:
    log_models: bool = True
    log_datasets: bool = True
    log_training_score: bool = True
    max_param_length: int = 500


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

# True while an autologged fit runs in this context: fits started inside it are nested.
_inside_fit: ContextVar[bool] = ContextVar("nbtrail_autolog_inside_fit", default=False)
# Threads start with an empty context, so joblib's worker threads (threading backend,
# IsolationForest, ...) cannot see _inside_fit. Fallback: a fit in a non-main thread while
# another thread runs an autologged fit counts as nested. The price: fits a user runs in
# their own threads during another autologged fit are not recorded.
_fit_threads: dict[int, int] = {}
_fit_threads_lock = threading.Lock()


def autolog(*, disable: bool = False, log_models: bool = True, log_datasets: bool = True,
            log_training_score: bool = True, max_param_length: int = 500) -> None:
    """Record every top-level scikit-learn ``fit`` as a run, or stop doing so.

    A fit inside an active run logs into it; otherwise it gets its own run named after
    the estimator class, finished after the fit (failed if the fit raises). Recorded:
    params (``get_params(deep=True)``), ``fit_time_s``, ``training_score``, the ``X_train``
    and ``y_train`` data sets, the fitted model and the tags ``estimator_class`` and
    ``autolog``. Searches (``GridSearchCV``...) also log ``best_*`` params,
    ``best_cv_score`` and one child run per candidate. Fits run by another fit (pipeline
    steps, search candidates, ensemble members) are not recorded separately. A logging
    problem only warns; the fit itself is never affected.

    Args:
        disable: Put back every original method and stop recording.
        log_models: Store the fitted estimator (skops format).
        log_datasets: Profile and record ``X`` and ``y``.
        log_training_score: Log ``estimator.score(X, y)`` on the training data; this
            predicts on the whole training set once more.
        max_param_length: Longer param values (reprs, long lists) are cut to this length.

    Example:
        >>> nt.autolog()                                                   # doctest: +SKIP
        >>> LogisticRegression().fit(X, y)   # recorded as run "LogisticRegression"
    """
    global _enabled, _options
    if isinstance(max_param_length, bool) or not isinstance(max_param_length, int) \
            or max_param_length < 1:
        raise InvalidInputError(
            f"max_param_length must be a positive integer, got {max_param_length!r}"
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
                            max_param_length=min(max_param_length, MAX_VALUE_LENGTH))
        _patch()
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


def _unpatch() -> None:
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
            if not _enabled or _inside_fit.get() or _in_worker_thread():
                return original(self, *args, **kwargs)
            return _autologged(functools.partial(original, self), self, args, kwargs, slots)

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
            if not _enabled or _inside_fit.get() or _in_worker_thread():
                return bound(*args, **kwargs)
            return _autologged(bound, obj, args, kwargs, slots)

        return fit_wrapper


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


# -- recording -----------------------------------------------------------------------------


def _autologged(call: Callable[..., Any], estimator: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any], slots: _Slots) -> Any:
    token = _inside_fit.set(True)
    me = threading.get_ident()
    with _fit_threads_lock:
        _fit_threads[me] = _fit_threads.get(me, 0) + 1
    try:
        return _record(call, estimator, args, kwargs, slots)
    finally:
        _inside_fit.reset(token)
        with _fit_threads_lock:
            if _fit_threads[me] == 1:
                del _fit_threads[me]
            else:
                _fit_threads[me] -= 1


def _record(call: Callable[..., Any], estimator: Any, args: tuple[Any, ...],
            kwargs: dict[str, Any], slots: _Slots) -> Any:
    from ._tracker import get_tracker

    options = _options
    cls = type(estimator)
    try:
        tracker = get_tracker()
        run = tracker.active_run()
        own_run = run is None
        if run is None:
            run = tracker.start_run(name=cls.__name__)
    except Exception as exc:
        _warn(f"nbtrail autolog: not recording this {cls.__name__} fit: {exc}")
        return call(*args, **kwargs)

    # Before the fit, so a failed fit still shows what it was tried with.
    _safely("params", _log_estimator_params, run, estimator, options.max_param_length)
    _safely("tags", run.set_tags, {"estimator_class": f"{cls.__module__}.{cls.__qualname__}",
                                   "autolog": "sklearn"})
    started = time.perf_counter()
    try:
        result = call(*args, **kwargs)
    except BaseException as exc:
        if own_run:
            status = "failed" if isinstance(exc, Exception) else "killed"
            _safely("the run end", run.end, status, f"{type(exc).__name__}: {exc}")
        raise
    fit_time = time.perf_counter() - started
    try:
        _safely("the fit results", _log_results, tracker, run, estimator, options, fit_time,
                _argument(slots.x, args, kwargs), _argument(slots.y, args, kwargs))
    finally:
        if own_run:
            _safely("the run end", run.end, "finished")
    return result


def _log_results(tracker: Tracker, run: ActiveRun, estimator: Any, options: _Options,
                 fit_time: float, X: Any, y: Any) -> None:
    # Each part separately: one that fails (an unsupported data type...) skips only itself.
    _safely("fit_time_s", run.log_metric, "fit_time_s", fit_time)
    search = _is_search(estimator)
    if options.log_training_score and not search and X is not None and y is not None \
            and hasattr(estimator, "score"):
        _safely("training_score", _log_training_score, run, estimator, X, y)
    if search:
        _safely("the search results", _log_search, tracker, run, estimator,
                options.max_param_length)
    if options.log_datasets:
        for data, name in ((X, "X_train"), (y, "y_train")):
            if data is not None:
                _safely(f"data set {name}", run.log_dataset, data, name=name, role="train")
    if options.log_models:
        _safely("the model", _log_model, run, estimator, X)


def _safely(what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    # Logging is a side effect of the user's fit: it may cost a warning, never the fit.
    try:
        function(*args, **kwargs)
    except Exception as exc:
        _warn(f"nbtrail autolog: could not log {what}: {exc}")


def _warn(message: str) -> None:
    # Point at the user's line (the first frame outside nbtrail and scikit-learn), so the
    # default filter shows each problem once per line instead of once per fit.
    level, frame = 1, sys._getframe(0)
    while frame.f_back is not None and \
            frame.f_globals.get("__name__", "").startswith(("nbtrail.", "sklearn.")):
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


def _log_search(tracker: Tracker, run: ActiveRun, search: Any, limit: int) -> None:
    best_params = getattr(search, "best_params_", None)
    if best_params is not None:  # absent for multi-metric searches with refit=False
        _log_params(run, {f"best_{k}": _param(v, limit) for k, v in best_params.items()})
    best_score = getattr(search, "best_score_", None)
    if best_score is not None:
        run.log_metric("best_cv_score", best_score)
    results = search.cv_results_
    score_keys = [k for k in results if k.startswith(("mean_test_", "std_test_"))]
    for i, params in enumerate(results["params"]):
        child = tracker.start_run(name=f"candidate {i}", parent=run, tags={"autolog": "sklearn"})
        try:
            child.log_params({k: _param(v, limit) for k, v in params.items()})
            child.log_metrics({k: results[k][i] for k in score_keys})
        except BaseException as exc:
            child.end("failed", f"{type(exc).__name__}: {exc}")
            raise
        child.end("finished")


def _log_model(run: ActiveRun, estimator: Any, X: Any) -> None:
    # Five rows are enough for a signature and keep the stored example small.
    example = None
    if type(X).__name__ == "ndarray" and getattr(X, "ndim", 0) >= 1:
        example = X[:5]
    elif type(X).__name__ == "DataFrame" and hasattr(X, "head"):  # pandas or polars
        example = X.head(5)
    run.log_model(estimator, name=type(estimator).__name__, input_example=example)
