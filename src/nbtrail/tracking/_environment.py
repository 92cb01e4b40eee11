"""Capture the interpreter, installed packages, random seeds and notebook a run executes in."""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import operator
import os
import platform
import random
import re
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_NAME_SEPARATORS = re.compile(r"[-_.]+")

# Marks a function as our wrapper, so installing the hooks twice never wraps a wrapper.
_HOOK_MARK = "__nbtrail_seed_hook__"

# Last seed passed to each seeding function, keyed by the name seen_seeds() reports.
_seeds: dict[str, Any] = {}


def _normalize(name: str) -> str:
    # PEP 503, so "Scikit_Learn" and "scikit-learn" are one package.
    return _NAME_SEPARATORS.sub("-", name).lower()


@functools.cache
def _installed_packages() -> tuple[tuple[str, str], ...]:
    # A tuple, so no caller can alter the cached scan through the dict it gets back.
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue  # broken install without metadata
        # distributions() follows sys.path order, so the first hit is the one imports get.
        found.setdefault(_normalize(name), dist.version)
    return tuple(sorted(found.items()))


def capture_environment() -> dict[str, Any]:
    """Describe the interpreter, the machine and the installed packages.

    The package scan runs once per process: reading every distribution's metadata is slow,
    and installs rarely change under a running kernel.
    """
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "packages": dict(_installed_packages()),
    }


def _jsonable(seed: Any) -> Any:
    if seed is None or isinstance(seed, int | str):
        return seed
    try:
        # numpy integer scalars and the like
        return operator.index(seed)
    except TypeError:
        return repr(seed)


def _wrap(owner: Any, attr: str, param: str, key: str) -> None:
    original: Callable[..., Any] | None = getattr(owner, attr, None)
    if original is None or getattr(original, _HOOK_MARK, False):
        return

    @functools.wraps(original)
    def seeding(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        # Recorded after the call, so a seed the function rejects is not reported.
        seed = args[0] if args else kwargs.get(param)
        _seeds[key] = _jsonable(seed)
        return result

    setattr(seeding, _HOOK_MARK, True)
    setattr(owner, attr, seeding)


def _wrap_imported_libraries() -> None:
    # Only libraries the user already imported: importing numpy or torch ourselves would
    # cost seconds and memory in sessions that never use them.
    if "numpy" in sys.modules:
        # numpy loads numpy.random lazily; it is part of numpy, so loading it is cheap.
        _wrap(importlib.import_module("numpy.random"), "seed", "seed", "numpy")
    if "torch" in sys.modules:
        _wrap(sys.modules["torch"], "manual_seed", "seed", "torch")


def install_seed_hooks() -> None:
    """Record the seeds later passed to random.seed, numpy.random.seed and torch.manual_seed.

    Safe to call any number of times. numpy and torch are hooked only once imported (here or
    at the next seen_seeds() call); code that bound a seeding function to its own name before
    the hook was installed keeps calling the unrecorded original.
    """
    _wrap(random, "seed", "a", "random")
    _wrap_imported_libraries()


def seen_seeds() -> dict[str, Any]:
    """Return the last seed passed to each hooked function, and PYTHONHASHSEED when set.

    Only seeds actually seen are included; values are JSON-serialisable (``repr`` of
    anything that is not an integer, string or None).
    """
    # Hook libraries imported since install_seed_hooks(), so the next run sees their seeds.
    _wrap_imported_libraries()
    seeds = dict(_seeds)
    hash_seed = os.environ.get("PYTHONHASHSEED")
    if hash_seed is not None:
        seeds["PYTHONHASHSEED"] = hash_seed
    return seeds


@dataclass(frozen=True)
class NotebookInfo:
    """The notebook (or IPython session) a run was started from."""

    path: str | None
    """Notebook file path, when the kernel knows it."""
    cells: list[str]
    """Source of the cells executed so far in the kernel, in execution order."""


def capture_notebook() -> NotebookInfo | None:
    """Describe the running IPython kernel's notebook; None outside IPython."""
    # Never import IPython: in a plain interpreter that costs time and proves nothing.
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    if shell is None:
        return None
    namespace: dict[str, Any] = shell.user_ns
    history = namespace.get("In") or []
    # In[0] is a placeholder so that In[n] is the n-th execution.
    cells = [str(cell) for cell in history[1:]]

    path: Any = namespace.get("__session__")  # ipykernel under Jupyter server
    if not path:
        path = os.environ.get("JPY_SESSION_NAME")
    if not path:
        path = namespace.get("__vsc_ipynb_file__")  # VS Code
    return NotebookInfo(path=_absolute_notebook_path(str(path)) if path else None, cells=cells)


def _absolute_notebook_path(path: str) -> str:
    """The notebook path made absolute when the file can be found from the kernel's folder.

    Jupyter server passes the path relative to its root directory when it does not pass the
    file name separately, and starts the kernel in the notebook's folder: so a relative
    path is tried against the current folder, then its file name alone. A path that cannot
    be found is kept as given.
    """
    if os.path.isabs(path):
        return path
    try:
        cwd = os.getcwd()
    except OSError:  # the kernel's folder was deleted
        return path
    for candidate in (os.path.join(cwd, path), os.path.join(cwd, os.path.basename(path))):
        if os.path.isfile(candidate):
            return os.path.normpath(candidate)
    return path
