"""The image's lockfile: what the model and the server import, pinned to training versions."""

from __future__ import annotations

import functools
import importlib.metadata
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

from ..errors import InvalidInputError

# What the serving runtime imports, besides what the model needs.
SERVER_DISTRIBUTIONS = ("numpy", "starlette", "uvicorn", "httptools", "uvloop",
                        "prometheus-client")
# uvicorn's optional speed-ups: left out where they are not installed (other platforms).
_OPTIONAL = frozenset({"httptools", "uvloop"})
# The workbench's own packages: an image that pulls one of these in is a mistake.
NEVER_IN_IMAGES = frozenset({
    "jupyterlab", "jupyter-server", "notebook", "ipykernel", "ipywidgets", "panel", "bokeh",
    "optuna", "duckdb", "nbtrail", "mlflow",
})
_SEPARATORS = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503 name: ``Scikit_Learn`` and ``scikit-learn`` are one package."""
    return _SEPARATORS.sub("-", name).lower()


@dataclass(frozen=True)
class Pin:
    """One locked distribution and where its version came from."""

    name: str
    version: str
    from_training: bool


@functools.cache
def _module_owners() -> dict[str, tuple[str, ...]]:
    return {module: tuple(normalize(d) for d in dists)
            for module, dists in importlib.metadata.packages_distributions().items()}


def _requires(name: str) -> list[str]:
    """Direct dependencies of an installed distribution, for this platform, without extras."""
    try:
        lines = importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    found = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue  # metadata we cannot read adds nothing we could pin
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            found.append(normalize(requirement.name))
    return found


def distributions_for(modules: Iterable[str]) -> set[str]:
    """The installed distributions that provide ``modules`` (standard library left out)."""
    owners = _module_owners()
    found: set[str] = set()
    for module in modules:
        top = module.split(".", 1)[0]
        if top in sys.stdlib_module_names or top == "builtins":
            continue
        found.update(owners.get(top, ()))
    return found


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def lock(roots: Iterable[str], training_packages: Mapping[str, str]) -> list[Pin]:
    """Pin ``roots`` and everything they depend on.

    Versions are the training environment's (``training_packages``, as recorded with the
    run); a package the training environment did not have (the server's, usually) gets
    the version installed here. Dependencies are read from the metadata installed here.
    """
    training = {normalize(k): v for k, v in training_packages.items()}
    pins: dict[str, Pin] = {}
    pending = [normalize(r) for r in roots]
    while pending:
        name = pending.pop()
        if name in pins:
            continue
        if name in NEVER_IN_IMAGES:
            raise InvalidInputError(
                f"the model needs {name!r}, which has no place in a serving image; package "
                "a model that does not refer to the workbench's own libraries"
            )
        version = training.get(name)
        from_training = version is not None
        version = version or _installed_version(name)
        if version is None:
            if name in _OPTIONAL:
                continue
            raise InvalidInputError(
                f"cannot pin {name!r}: it is neither in the run's recorded environment nor "
                f"installed here; pip install {name} and package again"
            )
        pins[name] = Pin(name, version, from_training)
        pending.extend(_requires(name))
    return sorted(pins.values(), key=lambda p: p.name)


def render(pins: list[Pin], python: str) -> str:
    """The lockfile text, one ``name==version`` a line, with where each pin comes from."""
    lines = [
        "# Pinned by nbtrail: what the model and its server import, at the versions of the",
        f"# training environment (Python {python}). Install with:",
        "#   pip install --only-binary=:all: -r requirements.lock",
    ]
    for pin in pins:
        note = "" if pin.from_training else "  # not in the training environment: version here"
        lines.append(f"{pin.name}=={pin.version}{note}")
    return "\n".join(lines) + "\n"
