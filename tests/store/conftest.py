"""Fixtures of the store tests: a real S3-compatible server for the artifact store."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import free_port, require, stop

BUCKET = "nbtrail-team"
SECRET = "s3cr3t-never-printed"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIANBTRAILTEST", "AWS_SECRET_ACCESS_KEY": SECRET,
               "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}


class S3Server:
    """moto's standalone S3 server on a fixed port, which can be stopped and started again."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "moto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and create the bucket (moto keeps its state in memory)."""
        import boto3

        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1",
                 "-p", str(self.port)], stdout=log, stderr=log)
        client = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                return
            except Exception as exc:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError(
                        f"moto_server did not start: {self.log.read_text()}") from exc
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="x", aws_secret_access_key="x")


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A running S3 server, with the environment pointing the standard chain at it."""
    require(shutil.which("moto_server") is not None,
            "moto's S3 server is not installed (pip install 'moto[server]')")
    server = S3Server(tmp_path)
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": server.url}.items():
        monkeypatch.setenv(name, value)
    server.start()
    yield server
    server.stop()


def artifact_remote(kind: str | None, tmp_path: Path, request: pytest.FixtureRequest
                    ) -> str | None:
    """The artifact store of ``kind``: ``None`` (none), ``"folder"`` (shared) or ``"s3"``."""
    if kind == "s3":
        request.getfixturevalue("s3")
        return f"s3://{BUCKET}/team"
    return None if kind is None else str(tmp_path / "shared-folder")
