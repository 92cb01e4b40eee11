"""The sidebar's server reads the team store when nt is configured for it, and says so."""

import os

import psycopg
import pytest

import nbtrail as nt


@pytest.fixture
def team(postgres_url, tmp_path):
    name = f"sidebar_{os.urandom(6).hex()}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    with nt.config(store=url, home=str(tmp_path / "laptop"), capture_git=False):
        with nt.run(name="on the team store") as run:
            run.log_metric("acc", 0.9)
        nt.sync()
    return url


@pytest.fixture
def jp_server_config(team):
    before = nt.config.current.store
    nt.config.set(store=team)  # as NBTRAIL_STORE does for a team's JupyterLab
    yield {"ServerApp": {"jpserver_extensions": {"nbtrail": True,
                                                 "jupyter_server_terminals": False},
                         "allow_unauthenticated_access": False}}
    nt.config.set(store=before)


async def test_the_sidebar_reads_the_team_store_and_shows_its_url(api, team):
    status, body = await api("store")
    assert status == 200, body
    assert body["location"] == team.replace("postgres@", "")  # shown without user info
    status, body = await api("runs")
    assert status == 200, body
    assert [r["name"] for r in body["runs"]] == ["on the team store"]
