"""Loading stored models safely, and finding the modules a stored model needs.

Standard library only (skops is imported when a skops file is loaded): the serving
runtime ships this module inside model images that hold no DuckDB, polars or pyarrow.
"""

from __future__ import annotations

import builtins
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
    if format != PICKLE:
        raise InvalidInputError(
            f"unknown model format {format!r}; expected {SKOPS!r} or {PICKLE!r}"
        )
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
    ``trusted=True`` because unpickling can run arbitrary code.
    """
    if format == PICKLE:
        if trusted is not True:
            raise UntrustedModelError(
                "pickled models can run arbitrary code when loaded; pass trusted=True only "
                "for files you trust"
            )
        return _pickle.loads(data)
    if format != SKOPS:
        raise InvalidInputError(
            f"unknown model format {format!r}; expected {SKOPS!r} or {PICKLE!r}"
        )

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
