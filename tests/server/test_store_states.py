"""The server on stores that are missing, newer than this nbtrail, or being written to."""

import asyncio
import os
import sys
import textwrap

import duckdb
import pytest

from ..conftest import SRC


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "store"


async def test_no_store_yet_is_a_clear_404(api, store_path):
    status, body = await api("store")
    assert status == 200 and body["exists"] is False
    for path in ("runs", "experiments", "sweeps", "branches"):
        status, body = await api(path)
        assert status == 404, path
        assert body["error"] == "StoreNotFoundError"
        assert f"no nbtrail store at {store_path}" in body["message"]
        assert "log a run first" in body["message"]


async def test_a_store_newer_than_this_nbtrail_is_a_409_saying_to_upgrade(api, store_path):
    import nbtrail as nt

    with nt.config(home=str(store_path), capture_git=False, capture_environment=False):
        with nt.run(name="one") as run:
            run.log_metric("acc", 0.5)
        nt.sync()
    con = duckdb.connect(str(store_path / "nbtrail.duckdb"))
    con.execute("INSERT INTO schema_info (version, nbtrail_version) VALUES (99, 'future')")
    con.close()
    status, body = await api("runs")
    assert status == 409, body
    assert "schema version 99" in body["message"] and "upgrade nbtrail" in body["message"]


async def test_reads_answer_while_a_kernel_is_logging(api, store_path, tmp_path):
    """A writer in another process logs all along; every read succeeds and sees it grow."""
    started = tmp_path / "started"
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", textwrap.dedent(f"""
            import pathlib, time
            import nbtrail as nt
            nt.config.set(home={str(store_path)!r}, capture_git=False,
                          capture_environment=False)
            with nt.run(name="training") as run:
                for step in range(100000):
                    run.log_metric("loss", 1 / (step + 1), step=step)
                    if step == 100:
                        nt.sync()  # the journal is on disk: the store exists
                        pathlib.Path({str(started)!r}).touch()
                    time.sleep(0.001)
        """), env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        for _ in range(600):
            if started.exists():
                break
            await asyncio.sleep(0.05)
        assert started.exists(), "the writer did not start"
        steps = []
        for _ in range(10):
            status, body = await api("runs", columns="metrics.loss")
            assert status == 200, body
            (run,) = body["runs"]
            assert run["status"] == "running"
            status, detail = await api("runs", run["run_id"])
            assert status == 200, detail
            steps.append(detail["histories"]["loss"]["total"])
            await asyncio.sleep(0.1)
        assert steps[-1] > steps[0], steps
    finally:
        writer.kill()
        await writer.wait()
