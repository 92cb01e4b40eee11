"""Loading stored models safely, and finding the modules a stored model needs.

Standard library only (skops, XGBoost or LightGBM are imported when a model of theirs is
loaded): the serving runtime ships this module inside model images that hold no DuckDB,
polars or pyarrow.
"""

from __future__ import annotations

import builtins
import importlib
import io
import json
import pickle as _pickle
import pickletools
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any, cast

from .errors import InvalidInputError, UntrustedModelError

SKOPS = "skops"
PICKLE = "pickle"
# Gradient boosting models in their library's own format, inside a JSON envelope (below).
XGBOOST = "xgboost_json"
LIGHTGBM = "lightgbm_text"
BOOSTING_LIBRARIES = {XGBOOST: "xgboost", LIGHTGBM: "lightgbm"}
FORMATS = (SKOPS, PICKLE, XGBOOST, LIGHTGBM)
# The only classes an envelope may name: loading one never imports anything else.
BOOSTING_CLASSES = {
    XGBOOST: {"xgboost.core.Booster", "xgboost.sklearn.XGBClassifier",
              "xgboost.sklearn.XGBRegressor"},
    LIGHTGBM: {"lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier",
               "lightgbm.sklearn.LGBMRegressor"},
}
ENVELOPE_VERSION = "nbtrail-boosting-model-v1"
# Type paths from these packages load without being listed; anything else must be trusted.
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


def skops_refs(data: bytes) -> Iterator[tuple[str, str]]:
    """Every ``(module, name)`` a skops file refers to, read from its schema (no code runs)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
    yield from _schema_refs(schema)


def _schema_refs(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        module, name = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(name, str):
            yield module, name
        for value in node.values():
            yield from _schema_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schema_refs(value)


def referenced_modules(data: bytes, format: str) -> set[str]:
    """The modules a stored model imports when loaded, found without loading it.

    For pickles the opcode stream is read (``GLOBAL``/``STACK_GLOBAL`` operands), never
    executed.
    """
    if format == SKOPS:
        return {module for module, _ in skops_refs(data)}
    if format in BOOSTING_LIBRARIES:
        class_name = read_envelope(data, format)["class_name"]
        # XGBoost's scikit-learn classes import scikit-learn; nbtrail's LightGBM ones do not.
        needs_sklearn = format == XGBOOST and ".sklearn." in class_name
        return {BOOSTING_LIBRARIES[format], "numpy", *(["sklearn"] if needs_sklearn else [])}
    if format != PICKLE:
        raise _unknown_format(format)
    modules: set[str] = set()
    # STACK_GLOBAL takes module and name from the stack, often through the memo, so the
    # values pushed (strings, else None) and memoized are followed, nothing else.
    pushed: list[str | None] = []
    memo: dict[int, str | None] = {}
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        if name == "GLOBAL":
            modules.add(str(arg).split(" ", 1)[0])
        elif name == "STACK_GLOBAL":
            if len(pushed) >= 2 and pushed[-2]:
                modules.add(str(pushed[-2]))
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[cast(int, arg)] = pushed[-1] if pushed else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(cast(int, arg)))
        elif opcode.stack_after:
            pushed.append(arg if isinstance(arg, str) else None)
    return modules


def _unknown_format(format: str) -> InvalidInputError:
    return InvalidInputError(
        f"unknown model format {format!r}; expected one of {', '.join(map(repr, FORMATS))}"
    )


def write_envelope(format: str, class_name: str, model: str,
                   classes: list[Any] | None = None) -> bytes:
    """A boosting model as stored: its library's own model text, with what a loader needs.

    ``model`` is XGBoost's JSON model or LightGBM's text model, as the library writes it;
    ``classes`` are a LightGBM classifier's labels, which its own format does not keep.
    """
    return json.dumps({"format": ENVELOPE_VERSION, "library": BOOSTING_LIBRARIES[format],
                       "class_name": class_name, "classes": classes, "model": model}).encode()


def read_envelope(data: bytes, format: str) -> dict[str, Any]:
    """The envelope :func:`write_envelope` wrote, checked; no library is imported."""
    try:
        envelope = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"the {format} model data is not valid JSON: {exc}") from exc
    if not isinstance(envelope, dict) or envelope.get("format") != ENVELOPE_VERSION \
            or not isinstance(envelope.get("model"), str):
        raise InvalidInputError(
            f"the {format} model data is not an nbtrail boosting model "
            f"({ENVELOPE_VERSION!r} with a 'model' text)"
        )
    if envelope.get("class_name") not in BOOSTING_CLASSES[format]:
        raise InvalidInputError(
            f"the {format} model names the class {envelope.get('class_name')!r}; expected one "
            f"of {', '.join(sorted(BOOSTING_CLASSES[format]))}"
        )
    return envelope


def _load_boosting(envelope: dict[str, Any]) -> object:
    class_name: str = envelope["class_name"]
    try:
        library = importlib.import_module(envelope["library"])
    except ImportError as exc:
        raise InvalidInputError(
            f"cannot load the model: it is a {class_name} and {envelope['library']} is not "
            f"installed here; pip install {envelope['library']}"
        ) from exc
    text: str = envelope["model"]
    name = class_name.rpartition(".")[2]
    try:
        if envelope["library"] == "xgboost":
            # XGBoost restores its scikit-learn wrappers (classes, objective) from its JSON.
            model = getattr(library, name)()
            model.load_model(bytearray(text.encode()))
            return model
        booster = library.Booster(model_str=text)
    except Exception as exc:  # XGBoostError, LightGBMError: a damaged model text
        raise InvalidInputError(
            f"{envelope['library']} cannot load the stored {class_name}: {exc}"
        ) from exc
    if name == "Booster":
        return booster
    if name == "LGBMClassifier":
        return LightGBMClassifier(booster, envelope["classes"])
    return LightGBMRegressor(booster)


class LightGBMRegressor:
    """A fitted LightGBM scikit-learn regressor loaded from LightGBM's text model.

    LightGBM cannot load its scikit-learn classes from its own format, so nbtrail loads
    the booster into this small class: ``predict`` answers as the original did, and
    ``booster_`` is the LightGBM ``Booster`` itself.
    """

    def __init__(self, booster: Any) -> None:
        self.booster_ = booster
        self.n_features_in_ = booster.num_feature()

    def predict(self, X: Any) -> Any:
        """The model's predictions for the rows of ``X``."""
        return self.booster_.predict(X)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(trees={self.booster_.num_trees()})"


class LightGBMClassifier(LightGBMRegressor):
    """A fitted LightGBM scikit-learn classifier loaded from LightGBM's text model.

    ``predict_proba`` and ``predict`` answer as ``LGBMClassifier``'s did, with the same
    ``classes_``.
    """

    def __init__(self, booster: Any, classes: list[Any]) -> None:
        import numpy as np

        super().__init__(booster)
        self.classes_ = np.asarray(classes)

    def predict_proba(self, X: Any) -> Any:
        """Each row's probability of each class, in the order of ``classes_``."""
        import numpy as np

        result = np.asarray(self.booster_.predict(X))
        # A binary model answers the probability of the second class only.
        return np.column_stack([1 - result, result]) if result.ndim == 1 else result

    def predict(self, X: Any) -> Any:
        """The most probable class of each row of ``X``."""
        import numpy as np

        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _trusted_by_default(type_path: str) -> bool:
    if type_path.startswith(_TRUSTED_PREFIXES):
        return True
    module, _, name = type_path.rpartition(".")
    # Builtin classes only: builtin functions such as eval or exec must be trusted explicitly.
    return module == "builtins" and isinstance(getattr(builtins, name, None), type)


def deserialize_model(data: bytes, format: str, *, trusted: bool | Sequence[str] = False) -> object:
    """Load a model stored by :func:`nbtrail.tracking._models.serialize_model`.

    For skops data, types from scikit-learn, numpy, scipy and builtin classes are trusted;
    any other type must be listed in ``trusted`` (or ``trusted=True`` trusts everything)
    or :class:`~nbtrail.errors.UntrustedModelError` is raised. Pickled models need
    ``trusted=True`` because unpickling can run arbitrary code. XGBoost and LightGBM models
    are data only (their libraries' own model formats) and need no trust.
    """
    if format == PICKLE:
        if trusted is not True:
            raise UntrustedModelError(
                "pickled models can run arbitrary code when loaded; pass trusted=True only "
                "for files you trust"
            )
        return _pickle.loads(data)
    if format in BOOSTING_LIBRARIES:
        return _load_boosting(read_envelope(data, format))
    if format != SKOPS:
        raise _unknown_format(format)

    import skops.io

    if isinstance(trusted, bool):
        allowed: set[str] = set()
    else:
        allowed = {trusted} if isinstance(trusted, str) else set(trusted)
    try:
        found = skops.io.get_untrusted_types(data=data)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidInputError(f"the model data is not a valid skops file: {exc}") from exc
    refused = [t for t in found if not _trusted_by_default(t) and t not in allowed]
    if refused and trusted is not True:
        raise UntrustedModelError(
            f"the model needs types that are not trusted: {', '.join(refused)}; check where "
            "they come from, then pass trusted=[...] with these names (or trusted=True to "
            "trust every type in the file)"
        )
    try:
        # skops itself no longer takes trusted=True, so everything accepted is passed by name.
        return skops.io.loads(data, trusted=found)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(
            f"cannot load the model: it needs code that cannot be imported here ({exc}); "
            "install or import the package that defines it"
        ) from exc
