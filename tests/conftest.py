import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import nbtrail as nt

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
# Debian's Chromium (Playwright cannot download its own browser here), headless as root on
# a closed network: no sandbox, no GPU, no calls home.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def require(available: bool, message: str) -> None:
    """Skip a test whose real component is missing; under CI=true that is a failure."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run this test: {message}")
    pytest.skip(message, allow_module_level=True)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """Terminate a server process, and kill it if it does not end in ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def isolate_git(mp: pytest.MonkeyPatch) -> None:
    """Keep the developer's git config (signing, hooks, identity) and any outer repo out."""
    mp.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
        mp.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test may touch the repo: runs capture git state from the current folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NBTRAIL_HOME", str(tmp_path / "default-store"))
    isolate_git(monkeypatch)


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run git in ``cwd``; its output without the trailing newline."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args} failed: {proc.stderr}")
    return proc.stdout.strip()


@pytest.fixture(autouse=True)
def _close_stores_opened_by_the_test():
    """Close the stores a test opened.

    Each keeps a flush and a fold thread and a DuckDB instance with its own workers: a
    suite that kept a thousand of them to its end would run out of threads or mappings.
    """
    from nbtrail.tracking import _tracker

    before = {id(t) for t in _tracker._all_trackers()}
    yield
    with _tracker._trackers_lock:
        opened = {key: t for key, t in _tracker._trackers.items() if id(t) not in before}
        others = {key: t for key, t in _tracker._other_trackers.items() if id(t) not in before}
        for key in opened:
            del _tracker._trackers[key]
        for key in others:
            del _tracker._other_trackers[key]
    for tracker in [*opened.values(), *others.values()]:
        with contextlib.suppress(Exception):  # a test may leave its store broken on purpose
            tracker.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh store folder; the fluent API points at it for the test."""
    store = tmp_path / "store"
    monkeypatch.chdir(tmp_path)
    with nt.config(home=str(store)):
        yield store


def run_python(code: str, *, env: dict | None = None, cwd: Path | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Run Python code in a fresh interpreter with nbtrail importable."""
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run([sys.executable, "-c", code], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def python_output(code: str) -> str:
    """Run dedented Python code in a fresh interpreter; return its stdout, failing on error."""
    result = run_python(textwrap.dedent(code))
    assert result.returncode == 0, result.stderr
    return result.stdout


def _postgres_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             check=True).stdout.strip()
        if (Path(out) / "initdb").exists():
            return Path(out)
    except (OSError, subprocess.CalledProcessError):
        pass
    # Debian's postgresql package keeps the server binaries off the PATH.
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


class PostgresServer:
    """A real PostgreSQL server of our own, on a free port, that can be stopped and started.

    With ``password`` the superuser ``postgres`` has it and connections over TCP must give
    it (scram-sha-256); without, loopback is trusted.
    """

    def __init__(self, password: str | None = None) -> None:
        bindir = _postgres_bindir()
        require(bindir is not None,
                "PostgreSQL is not installed (initdb not found; apt-get install postgresql)")
        assert bindir is not None
        self.bindir = bindir
        # Not under pytest's tmp folder: that one is private to root, and initdb refuses to
        # run as root, so the server runs as an unprivileged user who must reach its folder.
        self.folder = Path(tempfile.mkdtemp(prefix="nbtrail-pg-"))
        self.data = self.folder / "data"
        self.as_user = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.folder, nobody.pw_uid, nobody.pw_gid)
            self.as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid}
        self.port = free_port()
        user = "postgres" if password is None else f"postgres:{password}"
        self.url = f"postgresql://{user}@127.0.0.1:{self.port}/postgres"
        auth = ["--auth=trust"]
        if password is not None:
            secret = self.folder / "pwfile"
            secret.write_text(password)
            os.chown(secret, *(self.as_user.get(k, -1) for k in ("user", "group")))
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={secret}"]
        init = self._pg("initdb", "-D", str(self.data), "-U", "postgres", *auth, "-E", "UTF8",
                        "--no-sync")
        assert init.returncode == 0, init.stderr

    def _pg(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bindir / args[0]), *args[1:]], capture_output=True,
                              text=True, cwd=self.folder, **self.as_user)

    def start(self) -> None:
        start = self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w",
                         "-t", "60", "-o", f"-p {self.port} -k {self.folder} "
                         "-c listen_addresses=127.0.0.1 -c fsync=off", "start")
        assert start.returncode == 0, start.stderr + (self.folder / "log").read_text()

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server of our own for the whole session; its URL."""
    server = PostgresServer()
    server.start()
    try:
        yield server.url
    finally:
        server.remove()


@pytest.fixture(params=["duckdb", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, empty store of each backend lives: a folder, or a new database.

    A backend joins by adding its param here; the contract suite (tests/store) and the
    registry's tests run over every one.
    """
    if request.param == "duckdb":
        return str(tmp_path / "store")
    if request.param == "postgresql":  # a new database on the tests' own server
        import psycopg

        server = request.getfixturevalue("postgres_url")
        name = f"scratch_{os.urandom(6).hex()}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"{server.rsplit('/', 1)[0]}/{name}"
    raise AssertionError(f"no location for backend {request.param}")
