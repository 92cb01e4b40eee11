"""Blobs shared through an artifact store: a real S3-compatible server process, or a folder.

The S3 server (``conftest.S3Server``) is moto's standalone server, started by the tests
as a process of its own and stopped to simulate an outage; nothing is mocked in-process.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import warnings

import pytest

import nbtrail as nt
from nbtrail.errors import ArtifactStoreError, InvalidInputError, NotFoundError
from nbtrail.store import open_store
from nbtrail.store._blobs import describe

from ..conftest import SRC, free_port, run_python
from .conftest import BUCKET, CREDENTIALS, SECRET, artifact_remote


@pytest.mark.parametrize("kind", ["s3", "folder"])
def test_a_blob_logged_on_one_machine_is_read_on_another(kind, tmp_path, request):
    remote = artifact_remote(kind, tmp_path, request)
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 100_000)
    with nt.config(home=str(tmp_path / "laptop"), artifacts=remote):
        laptop = open_store()
        sha, size = laptop.put_blob(model)
        laptop.sync()
        assert laptop._blobs.pending() == []
        laptop.close()
    assert size == model.stat().st_size and sha == hashlib.sha256(model.read_bytes()).hexdigest()
    if kind == "s3":  # there for any S3 client, under the content-addressed key
        body = request.getfixturevalue("s3").client().get_object(
            Bucket=BUCKET, Key=f"team/sha256/{sha[:2]}/{sha}")["Body"].read()
        assert body == model.read_bytes()
    with nt.config(home=str(tmp_path / "server"), artifacts=remote):
        reader = open_store(read_only=True)  # the dashboard's kind: it only reads
        path = reader.blob_path(sha)
        assert path.read_bytes() == model.read_bytes()
        assert path.is_relative_to(tmp_path / "server")  # the local read cache
        assert reader.blob_path(sha) == path  # once fetched, read locally


def test_logging_goes_on_while_the_object_store_is_down_and_everything_lands_after(
        s3, tmp_path):
    s3.stop()
    with nt.config(home=str(tmp_path / "store"), artifacts=f"s3://{BUCKET}/team"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = open_store()
        started = time.monotonic()
        shas = [store.put_blob(f"artifact {i}".encode())[0] for i in range(5)]
        assert time.monotonic() - started < 1  # local-first: no wait on the network
        assert [store.blob_path(sha).read_bytes() for sha in shas] == [
            f"artifact {i}".encode() for i in range(5)]
        store.sync()  # the remote is down: a warning, and the blobs wait
        assert sorted(store._blobs.pending()) == sorted(shas)
        messages = [str(w.message) for w in caught]
        assert any("5 blob(s) wait in" in m and f"s3://{BUCKET}/team" in m for m in messages)
        assert not any(SECRET in m for m in messages)
        s3.start()
        store.sync()
        assert store._blobs.pending() == []
        store.close()
    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {f"team/sha256/{sha[:2]}/{sha}" for sha in shas}


def test_a_process_killed_before_its_upload_leaves_the_blob_for_the_next_one(s3, tmp_path):
    home = tmp_path / "store"
    env = {"NBTRAIL_HOME": str(home), "NBTRAIL_ARTIFACTS": f"s3://{BUCKET}/team",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}  # nothing answers there
    killed = run_python("import os, nbtrail as nt\n"
                        "print(nt.open_store().put_blob(b'only here')[0], flush=True)\n"
                        "os._exit(0)  # no exit handler runs, as with SIGKILL", env=env)
    assert killed.returncode == 0, killed.stderr
    sha = killed.stdout.strip()
    with nt.config(home=str(home), artifacts=f"s3://{BUCKET}/team"):
        store = open_store()
        assert store._blobs.pending() == [sha]
        store.sync()
        assert store._blobs.pending() == []
    body = s3.client().get_object(Bucket=BUCKET, Key=f"team/sha256/{sha[:2]}/{sha}")["Body"]
    assert body.read() == b"only here"


# Uploads and downloads a 96 MiB blob and prints how much the peak RSS grew meanwhile.
_STREAMING = """
import os, resource, sys
from pathlib import Path
from nbtrail.store._blobs import BlobStore
source = Path(sys.argv[1])
with open(source, "wb") as f:
    for _ in range(96):
        f.write(os.urandom(1 << 20))
up = BlobStore(Path(sys.argv[2]), f"s3://{sys.argv[4]}/big")
down = BlobStore(Path(sys.argv[3]), f"s3://{sys.argv[4]}/big")
up.upload_pending()  # load obstore and its runtime before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sha, _ = up.put(source)
up.upload_pending()
assert down.path(sha, "test").stat().st_size == source.stat().st_size
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_blobs_are_streamed_not_read_whole_into_memory(s3, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _STREAMING, str(tmp_path / "big.bin"), str(tmp_path / "a"),
         str(tmp_path / "b"), BUCKET], env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    # A blob read whole would add its 96 MiB at least.
    assert int(result.stdout) < 48, f"peak RSS grew by {result.stdout.strip()} MiB"


def test_a_damaged_remote_blob_is_refused_and_not_cached(s3, tmp_path):
    with nt.config(home=str(tmp_path / "a"), artifacts=f"s3://{BUCKET}/team"):
        writer = open_store()
        sha, _ = writer.put_blob(b"the real bytes")
        writer.sync()
    s3.client().put_object(Bucket=BUCKET, Key=f"team/sha256/{sha[:2]}/{sha}", Body=b"tampered")
    with nt.config(home=str(tmp_path / "b"), artifacts=f"s3://{BUCKET}/team"):
        reader = open_store(read_only=True)
        with pytest.raises(ArtifactStoreError, match=f"blob {sha} .* is damaged"):
            reader.blob_path(sha)
        assert not list((tmp_path / "b").rglob(sha))


def test_a_blob_missing_everywhere_names_both_places(s3, tmp_path):
    missing = f"nor in its artifact store s3://{BUCKET}/team"
    with nt.config(home=str(tmp_path / "a"), artifacts=f"s3://{BUCKET}/team"), \
            pytest.raises(NotFoundError, match=missing):
        open_store().blob_path("0" * 64)


def test_an_unreachable_object_store_on_read_is_one_line_without_credentials(
        tmp_path, monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with nt.config(home=str(tmp_path / "a"), artifacts=f"s3://{BUCKET}/team"), \
            pytest.raises(ArtifactStoreError) as caught:
        open_store().blob_path("0" * 64)
    message = str(caught.value)
    assert "\n" not in message and SECRET not in message
    assert message.startswith(f"failed downloading from the artifact store s3://{BUCKET}/team")


def test_an_unknown_scheme_is_refused_on_opening_with_the_ones_there_are(tmp_path):
    with nt.config(home=str(tmp_path / "a"), artifacts="ftp://user:pw@host/x"), \
            pytest.raises(InvalidInputError, match="unknown scheme ftp://; give s3://") as e:
        open_store()
    assert "pw" not in str(e.value)


def test_credentials_in_a_url_never_reach_a_message():
    assert describe("s3://AKIA:secret@bucket/prefix?X-Amz-Signature=abc") == "s3://bucket/prefix"
    assert describe("/shared/artifacts") == "/shared/artifacts"
