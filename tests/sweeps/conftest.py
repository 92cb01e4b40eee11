import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import nbtrail as nt

from ..conftest import free_port, require


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


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server of our own, on a free port; its URL."""
    bindir = _postgres_bindir()
    require(bindir is not None,
            "PostgreSQL is not installed (initdb not found; apt-get install postgresql)")
    # Not under pytest's tmp folder: that one is private to root, and initdb refuses to run
    # as root, so the server runs as an unprivileged user who must reach its folder.
    folder = Path(tempfile.mkdtemp(prefix="nbtrail-pg-"))
    data = folder / "data"
    as_user = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid}
    port = free_port()

    def pg(*args):
        return subprocess.run([str(bindir / args[0]), *args[1:]], capture_output=True,
                              text=True, cwd=folder, **as_user)

    init = pg("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
              "--no-sync")
    assert init.returncode == 0, init.stderr
    start = pg("pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60", "-o",
               f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    assert start.returncode == 0, start.stderr + (folder / "log").read_text()
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh store without git capture (the tmp folder is no repository anyway)."""
    home = tmp_path / "store"
    with nt.config(home=str(home), capture_git=False):
        yield home
