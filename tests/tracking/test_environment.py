from __future__ import annotations

import importlib.metadata
import json
import platform
import random
import re
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from nbtrail.tracking import _environment
from nbtrail.tracking._environment import (
    NotebookInfo,
    capture_environment,
    capture_notebook,
    install_seed_hooks,
    seen_seeds,
)

from ..conftest import python_output


@pytest.fixture
def seed_hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The hooks patch process-wide modules; monkeypatch puts the originals back afterwards.
    monkeypatch.setattr(random, "seed", random.seed)
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        monkeypatch.setattr(numpy_random, "seed", numpy_random.seed)
    monkeypatch.setattr(_environment, "_seeds", {})
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    yield


def test_capture_environment() -> None:
    env = capture_environment()
    assert env["python"] == platform.python_version()
    assert env["implementation"] == platform.python_implementation()
    assert env["executable"] == sys.executable
    assert env["platform"] == platform.platform()
    assert env["machine"] == platform.machine()
    assert isinstance(env["hostname"], str) and env["hostname"]
    json.dumps(env)


def test_packages_are_normalized_and_sorted() -> None:
    packages = capture_environment()["packages"]
    assert packages["pytest"] == importlib.metadata.version("pytest")
    assert list(packages) == sorted(packages)
    for name in packages:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name
    # pytest-timeout is a test dependency; its dist-info name uses an underscore.
    if any(d.metadata["Name"] == "pytest-timeout" for d in importlib.metadata.distributions()):
        assert "pytest-timeout" in packages


def test_packages_cache_is_not_shared_mutably() -> None:
    first = capture_environment()["packages"]
    first["pytest"] = "tampered"
    first["not-a-package"] = "1"
    second = capture_environment()["packages"]
    assert second["pytest"] == importlib.metadata.version("pytest")
    assert "not-a-package" not in second


def test_random_seed_is_seen(seed_hooks: None) -> None:
    assert "random" not in seen_seeds()
    install_seed_hooks()
    random.seed(123)
    assert seen_seeds() == {"random": 123}
    # The original still seeds the generator.
    first = random.random()
    random.seed(123)
    assert random.random() == first


def test_install_is_idempotent(seed_hooks: None) -> None:
    install_seed_hooks()
    hooked = random.seed
    install_seed_hooks()
    assert random.seed is hooked
    random.seed(a=5)
    assert seen_seeds()["random"] == 5


def test_seed_values_are_json_serialisable(seed_hooks: None) -> None:
    install_seed_hooks()
    random.seed("abc")
    assert seen_seeds()["random"] == "abc"
    random.seed(b"raw")
    assert seen_seeds()["random"] == repr(b"raw")
    random.seed(version=2)  # no seed: entropy from the OS
    assert seen_seeds()["random"] is None
    json.dumps(seen_seeds())


def test_rejected_seed_is_not_recorded(seed_hooks: None) -> None:
    install_seed_hooks()
    random.seed(1)
    with pytest.raises(TypeError):
        random.seed([1, 2])
    assert seen_seeds()["random"] == 1


def test_pythonhashseed(seed_hooks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "PYTHONHASHSEED" not in seen_seeds()
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    assert seen_seeds()["PYTHONHASHSEED"] == "0"


def test_numpy_seed_is_seen(seed_hooks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    monkeypatch.setattr(np.random, "seed", np.random.seed)
    install_seed_hooks()
    np.random.seed(np.int64(7))
    seeds = seen_seeds()
    assert seeds["numpy"] == 7 and type(seeds["numpy"]) is int
    first = np.random.rand()
    np.random.seed(7)
    assert np.random.rand() == first


def test_torch_hooked_once_imported(seed_hooks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    torch = types.ModuleType("torch")
    torch.manual_seed = calls.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    install_seed_hooks()
    torch.manual_seed(3)  # type: ignore[attr-defined]
    assert calls == [3]
    assert seen_seeds()["torch"] == 3


def test_hooks_never_import_numpy_and_catch_later_imports() -> None:
    pytest.importorskip("numpy")
    out = python_output(
        """
        import json, sys
        from nbtrail.tracking._environment import install_seed_hooks, seen_seeds
        install_seed_hooks()
        before = "numpy" in sys.modules
        seen_seeds()
        import numpy
        numpy.random.seed(1)  # imported after install and before capture: not seen
        first = seen_seeds()
        numpy.random.seed(2)
        print(json.dumps([before, first, seen_seeds()]))
        """
    )
    before, first, second = json.loads(out)
    assert before is False
    assert "numpy" not in first
    assert second["numpy"] == 2


def test_capture_notebook_outside_ipython() -> None:
    assert capture_notebook() is None
    out = python_output(
        """
        import sys
        from nbtrail.tracking._environment import capture_notebook
        print(capture_notebook(), "IPython" in sys.modules)
        """
    )
    assert out.split() == ["None", "False"]


class FakeShell:
    def __init__(self, user_ns: dict[str, Any]) -> None:
        self.user_ns = user_ns


def fake_ipython(monkeypatch: pytest.MonkeyPatch, shell: FakeShell | None) -> None:
    module = types.ModuleType("IPython")
    module.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", module)


def test_capture_notebook_path_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    ns: dict[str, Any] = {"In": ["", "import x", "x.run()"]}
    fake_ipython(monkeypatch, FakeShell(ns))
    assert capture_notebook() == NotebookInfo(path=None, cells=["import x", "x.run()"])

    ns["__vsc_ipynb_file__"] = "/code/vsc.ipynb"
    assert capture_notebook() == NotebookInfo(path="/code/vsc.ipynb", cells=["import x", "x.run()"])

    monkeypatch.setenv("JPY_SESSION_NAME", "/lab/env.ipynb")
    info = capture_notebook()
    assert info is not None and info.path == "/lab/env.ipynb"

    ns["__session__"] = "/lab/session.ipynb"
    info = capture_notebook()
    assert info is not None and info.path == "/lab/session.ipynb"


def test_capture_notebook_relative_session_path_becomes_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # Jupyter server may pass the path relative to its root; the kernel runs in the
    # notebook's folder, so the path is found from there (or by its file name).
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "train.ipynb").write_text("{}")
    ns: dict[str, Any] = {"In": [""], "__session__": "sub/train.ipynb"}
    fake_ipython(monkeypatch, FakeShell(ns))
    monkeypatch.chdir(tmp_path)
    info = capture_notebook()
    assert info is not None and info.path == str(tmp_path / "sub" / "train.ipynb")

    monkeypatch.chdir(tmp_path / "sub")  # the server root was above the notebook's folder
    ns["__session__"] = "projects/sub/train.ipynb"
    info = capture_notebook()
    assert info is not None and info.path == str(tmp_path / "sub" / "train.ipynb")

    ns["__session__"] = "elsewhere/missing.ipynb"  # not found: kept as given
    info = capture_notebook()
    assert info is not None and info.path == "elsewhere/missing.ipynb"


def test_capture_notebook_without_shell_or_history(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    fake_ipython(monkeypatch, None)
    assert capture_notebook() is None
    fake_ipython(monkeypatch, FakeShell({}))
    assert capture_notebook() == NotebookInfo(path=None, cells=[])


def test_capture_notebook_in_real_ipython() -> None:
    pytest.importorskip("IPython")
    out = python_output(
        """
        from traitlets.config import Config
        from IPython.core.interactiveshell import InteractiveShell
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell.instance(config=config)
        shell.run_cell("a = 1", store_history=True)
        shell.run_cell("__session__ = '/work/nb.ipynb'", store_history=True)
        shell.run_cell(
            "import json\\n"
            "from nbtrail.tracking._environment import capture_notebook\\n"
            "info = capture_notebook()\\n"
            "print('RESULT', json.dumps([info.path, info.cells]))",
            store_history=True,
        )
        """
    )
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    path, cells = json.loads(line.removeprefix("RESULT "))
    assert path == "/work/nb.ipynb"
    assert cells[:2] == ["a = 1", "__session__ = '/work/nb.ipynb'"]
    assert "capture_notebook()" in cells[2]
    assert len(cells) == 3
