"""Packaging as a job: start, progress, result or a readable error, never blocking the server."""

import asyncio
from pathlib import Path

import pytest

from .conftest import build_demo


@pytest.fixture
def store_path(tmp_path):
    return build_demo(tmp_path / "project")  # packaging writes to the store: a store of its own


async def wait_for(api, job_id):
    for _ in range(600):
        status, job = await api("package", job_id)
        assert status == 200, job
        if job["state"] in ("done", "failed"):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end: {job}")


async def run_id_of(api, name):
    status, body = await api("runs", where=f"name = '{name}'")
    assert status == 200, body
    return body["runs"][0]["run_id"]


async def test_package_a_run_as_a_job(api):
    run_id = await run_id_of(api, "baseline")
    status, job = await api("package", method="POST", body={"ref": run_id, "build": False})
    assert status == 202, job
    assert job["state"] in ("queued", "running", "done") and job["job_id"].startswith("job_")
    # The server answers other requests while the job runs.
    status, _ = await api("runs")
    assert status == 200
    job = await wait_for(api, job["job_id"])
    assert job["state"] == "done", job
    assert job["fraction"] == 1.0 and job["error"] is None
    result = job["result"]
    assert result["run_id"] == run_id and result["package_id"].startswith("pkg_")
    assert result["image"] is None and result["build_command"]
    assert (Path(result["context"]) / "Dockerfile").exists()
    status, jobs = await api("package")
    assert status == 200 and [j["job_id"] for j in jobs] == [job["job_id"]]


async def test_a_run_without_a_model_fails_with_a_readable_error(api):
    run_id = await run_id_of(api, "crashed")
    status, job = await api("package", method="POST", body={"ref": run_id, "build": False})
    assert status == 202, job
    job = await wait_for(api, job["job_id"])
    assert job["state"] == "failed"
    assert "model" in job["error"] and "Traceback" not in job["error"]
