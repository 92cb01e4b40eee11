"""`nbtrail package`, `nbtrail serve` as a real process over HTTP, and nt.serve in a thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import nbtrail as nt
from nbtrail.errors import InvalidInputError

from ..conftest import SRC, free_port

RECORD = {"age": 44, "income": 61.0, "plan": "team"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "NBTRAIL_HOME": str(cwd / "store")}
    return subprocess.run([sys.executable, "-m", "nbtrail.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _call(url: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


class _Server:
    """`nbtrail serve ...` in a subprocess, stopped like Ctrl+C stops it."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(SRC), "NBTRAIL_HOME": str(cwd / "store")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nbtrail.cli", "serve", *args, "--port", str(self.port)],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def __enter__(self) -> _Server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"nbtrail serve exited: {self.process.stdout.read()}")
            try:
                if _call(f"{self.url}/v2/health/ready")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("nbtrail serve did not become ready in 60 s")

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        finally:
            if self.process.poll() is None:
                self.process.kill()


@pytest.fixture
def project(tmp_path, trained):
    """A folder whose store (the ``home`` fixture's) holds the trained model."""
    nt.sync()
    assert nt.config.current.resolve_home() == tmp_path / "store"
    return tmp_path


def test_package_command_writes_the_context_and_prints_json(project, trained):
    done = _cli("package", trained.run_id, "--name", "churn", "--no-build", "--json",
                cwd=project)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["model_id"] == trained.model_id and result["image"] is None
    assert Path(result["context"]) == project / "dist" / "churn"
    assert (project / "dist/churn/Dockerfile").is_file()
    text = _cli("package", trained.model_id, "--no-build", "--output", "out", cwd=project)
    assert text.returncode == 0 and "build   docker build -t churn:" in text.stdout
    assert "writing the build context" in text.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["package", "mdl_nope", "--no-build"], "no model 'mdl_nope'"),
    (["package", "x", "--name", "Bad Name"], "lower-case letters"),
    (["serve", "no-such-thing"], "no run with a logged model 'no-such-thing'"),
    (["serve", "."], "is neither a package made by nt.package nor its model folder"),
])
def test_mistakes_are_one_line_errors(project, args, message):
    done = _cli(*args, cwd=project)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr


def test_serve_a_context_over_http(project, trained):
    assert _cli("package", trained.model_id, "--no-build", cwd=project).returncode == 0
    with _Server("dist/churn", "--log-dir", "predictions", cwd=project) as server:
        status, body = _call(f"{server.url}/predict", {"records": [RECORD]})
        assert status == 200 and body["predictions"] in ([0], [1])
        status, body = _call(f"{server.url}/v2/models/churn/infer", {"inputs": [
            {"name": "x", "shape": [1, 3], "datatype": "BYTES",
             "data": [RECORD["age"], RECORD["income"], RECORD["plan"]]}]})
        assert status == 200 and body["outputs"][0]["data"] in ([0], [1])
        status, body = _call(f"{server.url}/predict", {"records": [{"age": "old"}]})
        assert status == 422
    assert server.process.returncode == 0
    (log,) = (project / "predictions").glob("predictions-*.jsonl")
    assert len(log.read_text().splitlines()) == 2


def test_serve_a_model_id_with_two_workers_counts_every_request(project, trained):
    with _Server(trained.model_id, "--workers", "2", "--range-policy", "reject",
                 cwd=project) as server:
        for _ in range(12):
            assert _call(f"{server.url}/predict", {"records": [RECORD]})[0] == 200
        status, body = _call(f"{server.url}/predict",
                             {"records": [RECORD | {"age": 200}]})
        assert status == 422 and "outside the training range" in body["problems"][0]["problem"]
        _, metrics = _call(f"{server.url}/metrics")
    assert 'nbtrail_requests_total{endpoint="predict",status="200"} 12.0' in metrics


def test_nt_serve_in_the_background(trained, tmp_path):
    pkg = nt.package(trained.model_id, output=tmp_path / "ctx", build=False)
    with nt.serve(pkg, port=0, background=True, log_dir=tmp_path / "log") as server:
        status, body = _call(f"{server.url}/predict", {"records": [RECORD]})
        assert status == 200 and "probabilities" in body
        assert "running" in server._repr_html_()
    assert "stopped" in server._repr_html_()
    assert len(list((tmp_path / "log").glob("*.jsonl"))) == 1
    with pytest.raises(InvalidInputError, match="range_policy"):
        nt.serve(pkg, range_policy="maybe")
    with pytest.raises(InvalidInputError, match="workers=1"):
        nt.serve(pkg, port=0, background=True, workers=2)
