"""A real image: built with podman from a package, served from inside it, called over HTTP.

The package is a champion with a shadow challenger (two registered versions), so the
image carries both models, and the shadow runs in its own process inside it.

No registry is reachable here, so the base image is made locally: Debian's minimal root
file system with Debian's python3 (debootstrap), imported into podman. It carries this
machine's CA bundle, as a company base image would, because outbound HTTPS here passes a
proxy with its own CA and the image build downloads the pinned wheels through it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import nbtrail as nt

from ..conftest import free_port, require
from ._models import train_churn
from .test_cli_and_local import RECORD, _call

BASE_IMAGE = "localhost/nbtrail-test-python:bookworm"
TOOLS = ("podman", "buildah", "debootstrap")


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


def _require_engine() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    reason = (f"{', '.join(missing)} not installed (apt-get install podman buildah debootstrap)"
              if missing else None)
    if reason is None and _run("podman", "info").returncode != 0:
        reason = "podman info fails: no usable container engine"
    require(reason is None, str(reason))


@pytest.fixture(scope="session")
def base_image() -> str:
    _require_engine()
    if _run("podman", "image", "exists", BASE_IMAGE).returncode == 0:
        return BASE_IMAGE
    with tempfile.TemporaryDirectory(prefix="nbtrail-rootfs-") as rootfs:
        made = _run("debootstrap", "--variant=minbase", "--include=python3,python3-venv",
                    "bookworm", rootfs, "http://deb.debian.org/debian", timeout=600)
        assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
        shutil.copy("/etc/ssl/certs/ca-certificates.crt",
                    Path(rootfs, "etc/ssl/certs/ca-certificates.crt"))
        Path(rootfs, "etc/pip.conf").write_text(
            "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = _run("podman", "import", "-", BASE_IMAGE, stdin=tar.stdout, timeout=600)
        tar.wait()
        assert imported.returncode == 0, imported.stderr
    return BASE_IMAGE


@pytest.fixture
def challenger(trained) -> str:
    """A second version of the model, registered with the first: churn/1 and churn/2."""
    other = train_churn().model_id
    nt.register(trained.model_id, name="churn")
    nt.register(other, name="churn")
    nt.set_alias("churn", "champion", 1)
    nt.set_alias("churn", "challenger", 2)
    return other


@pytest.fixture
def built(trained, challenger, base_image, tmp_path):
    # The champion answers; the challenger sees every request in its own process.
    with nt.config(build_isolation="chroot"):
        pkg = nt.package("churn@champion", shadow=["churn@challenger"], name="churn-test",
                         base_image=base_image, output=tmp_path / "ctx", build=True)
    yield pkg
    _run("podman", "rmi", "--force", pkg.tag)


@pytest.fixture
def container(built):
    name = _run("buildah", "from", f"localhost/{built.tag}").stdout.strip()
    assert name, "buildah from failed"
    yield name
    _run("buildah", "rm", name)


def test_the_image_is_built_labelled_and_recorded(built, trained, challenger):
    image = built.image
    assert image is not None and image.engine == "podman"
    assert image.tag == built.tag and image.digest.startswith("sha256:")
    assert image.size_bytes > 50_000_000
    (info,) = json.loads(_run("podman", "image", "inspect", built.tag).stdout)
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert "8080/tcp" in config["ExposedPorts"]
    assert info["Healthcheck"]["Test"][:2] == ["CMD", "python3"]
    labels = config["Labels"]
    assert labels["dev.nbtrail.run-id"] == trained.run_id
    assert labels["dev.nbtrail.model-id"] == trained.model_id
    assert labels["dev.nbtrail.model-ids"] == f"{trained.model_id},{challenger}"
    assert labels["dev.nbtrail.package-id"] == built.package_id
    assert labels["org.opencontainers.image.title"] == "churn-test"
    nt.sync()
    row = nt.sql("select image_tag, image_digest, image_size_bytes from packages").row(0)
    assert row == (image.tag, image.digest, image.size_bytes)


def test_the_server_runs_inside_the_image_as_a_non_root_user(container):
    assert _run("buildah", "run", "--isolation", "chroot", container, "--",
                "id", "-u").stdout.strip() == "10001"
    packages = _run("buildah", "run", "--isolation", "chroot", container, "--",
                    "pip", "list", "--format", "json").stdout
    installed = {p["name"].lower() for p in json.loads(packages)}
    assert {"scikit-learn", "skops", "starlette"} <= installed
    assert not {"duckdb", "polars", "jupyterlab", "optuna", "panel"} & installed

    port = free_port()
    server = subprocess.Popen(
        ["buildah", "run", "--isolation", "chroot", container, "--",
         "python3", "-m", "nbtrail.serving", "/app/model", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                if _call(f"{url}/v2/health/ready")[0] == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server in the image never got ready"
                time.sleep(0.2)
        status, body = _call(f"{url}/predict", {"records": [RECORD]})
        assert status == 200 and body["predictions"] in ([0], [1])
        status, body = _call(f"{url}/v2/models/churn-test/infer", {"inputs": [
            {"name": "age", "shape": [1], "datatype": "INT64", "data": [RECORD["age"]]},
            {"name": "income", "shape": [1], "datatype": "FP64", "data": [RECORD["income"]]},
            {"name": "plan", "shape": [1], "datatype": "BYTES", "data": [RECORD["plan"]]}]})
        assert status == 200 and body["model_name"] == "churn-test"
        status, body = _call(f"{url}/predict", {"records": [RECORD | {"plan": "gold"}]})
        assert status == 422
        time.sleep(1)  # the shadow answers off the response path; its part is logged then
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    logged = _run("buildah", "run", "--isolation", "chroot", container, "--", "sh", "-c",
                  "cat /var/log/nbtrail/predictions/*.jsonl").stdout.splitlines()
    assert len(logged) == 2 and json.loads(logged[0])["inputs"] == RECORD
    for line in map(json.loads, logged):  # champion and shadow, under one request id
        assert [(m["role"], m["version"]) for m in line["models"]] == [
            ("champion", "1"), ("shadow", "2")], line
        assert line["models"][1]["prediction"] in (0, 1)
