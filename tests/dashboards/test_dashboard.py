import base64
import html
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import nbtrail as nt
from nbtrail.dashboards import APP_FILE, read_only_store
from nbtrail.dashboards._views import NO_MODEL_REGISTERED, VIEWS, export
from nbtrail.errors import NbtrailError

from ..conftest import free_port, run_python
from .conftest import ARTIFACTS, dashboard_in_chromium, required, serving

pn = required("panel")


def snapshot(home: Path) -> dict[str, tuple[int, int]]:
    """Every file of a store with its size and modification time."""
    return {str(p.relative_to(home)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in home.rglob("*") if p.is_file() and p.name not in ("lock", "readers")}


def view_args(built, store) -> dict[str, dict]:
    sweep_id = store.sql("SELECT value FROM tags WHERE key = 'sweep_id' LIMIT 1")["value"][0]
    runs = store.sql("SELECT run_id FROM runs WHERE experiment = 'main' ORDER BY start_time")
    return {"runs": {}, "run": {"run_id": runs["run_id"][0]},
            "compare": {"run_ids": runs["run_id"].to_list()[:2]}, "branches": {"metric": "loss"},
            "sweeps": {"sweep_id": sweep_id}, "lineage": {"node_id": built.model_id},
            "monitoring": {"model_id": built.model_id}, "registry": {}, "serving": {}}


def test_every_view_exports_static_html_and_nothing_is_written(built):
    before = snapshot(built.home)
    store = read_only_store(built.home)
    args = view_args(built, store)
    pages = {view: export(store, view, **args[view]) for view in VIEWS}
    for view, page in pages.items():
        assert page.startswith("<!DOCTYPE html>"), view
        assert "<script" not in page and "<iframe" not in page, view
    assert "feat/wider" in pages["branches"] and "main" in pages["branches"]
    assert "polyline" in pages["run"]  # the loss curve
    assert "parallel coordinates" in pages["sweeps"] and "importance for value" in pages["sweeps"]
    assert "monitored" in pages["lineage"] and "train-model" in pages["lineage"]
    assert "packaged" in pages["lineage"] and ">package</text>" in pages["lineage"]
    assert "PSI per feature" in pages["monitoring"] and "drift:" in pages["monitoring"]
    assert "pkg_" in pages["monitoring"]  # the model's package
    assert "package churn (pkg_" in pages["serving"] and "No predictions logged" in pages["serving"]
    pn.panel(nt.dashboard(store=built.home).app())  # the whole app builds
    with pytest.raises(NbtrailError, match="read-only"):
        store.writer()
    assert snapshot(built.home) == before


def test_dashboard_inline_in_a_notebook_has_a_static_fallback(built):
    board = nt.dashboard("monitoring", store=built.home, model=built.model_id)
    static = board._repr_html_()
    assert "<script" not in static and "runs" in static
    data, _ = board._repr_mimebundle_()
    assert static in data["text/html"]


def url_args(built) -> dict[str, str]:
    store = read_only_store(built.home)
    return {"run": view_args(built, store)["run"]["run_id"]}


def test_panel_serve_loads_every_view_over_http(built):
    port = free_port()
    command = [shutil.which("panel") or "panel", "serve", str(APP_FILE), "--port", str(port),
               "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}"]
    with serving(command, port, env={"NBTRAIL_HOME": str(built.home)}, ready="/app"):
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/app?view=runs", timeout=30)
        assert page.status == 200 and b"bokeh" in page.read().lower()
        expected = {"runs": "train-model", "run": "loss", "compare": "highlighted",
                    "branches": "feat/wider", "sweeps": "parallel coordinates",
                    "lineage": "lineage of", "monitoring": "PSI per feature"}
        for view, text in expected.items():
            shown = session_text(f"http://127.0.0.1:{port}/app",
                                 {"view": view, **url_args(built)})
            assert text in shown, view


def session_text(url: str, arguments: dict[str, str] | None = None) -> str:
    """The text a new session of the app at ``url`` shows: panes, and the runs table's names."""
    import panel.models.tabulator  # noqa: F401  (the client must know the app's models)
    from bokeh.client import pull_session

    session = pull_session(url=url, arguments=arguments or {})
    try:
        models = session.document.models
        return " ".join([*(html.unescape(str(getattr(m, "text", "") or "")) +
                           str(getattr(m, "source", "") or "") for m in models),
                         *(str(m.source.data.get("name", [])) for m in models
                           if hasattr(m, "source") and hasattr(m.source, "data"))])
    finally:
        session.close()


def test_dashboard_starts_on_a_folder_with_nothing_logged(tmp_path):
    home = tmp_path / "nothing-yet"
    port = free_port()
    command = [sys.executable, "-m", "nbtrail.cli", "--store", str(home), "dashboard",
               "--port", str(port)]
    with serving(command, port, env={}):
        shown = session_text(f"http://127.0.0.1:{port}/")
        assert f"No run is logged in {home} yet" in shown and "nt.run(" in shown
        assert not home.exists()  # looking did not create the store
        logged = run_python("import nbtrail as nt\nwith nt.run(name='first-run') as run:\n"
                            "    run.log_metric('acc', 0.9)\nnt.sync()",
                            env={"NBTRAIL_HOME": str(home)})
        assert logged.returncode == 0, logged.stderr
        shown = session_text(f"http://127.0.0.1:{port}/")  # a new page looks again
        assert "first-run" in shown and "No run is logged" not in shown


def test_dashboard_in_a_notebook_and_its_exports_on_a_missing_store(tmp_path):
    home = tmp_path / "nothing-yet"
    board = nt.dashboard(store=home)
    assert f"No run is logged in {home} yet" in board._repr_html_()
    assert "No run is logged" in board.export("monitoring")
    assert "No run is logged" in " ".join(str(getattr(m, "text", "")) for m in
                                          pn.panel(board.app()).get_root().references())
    assert not home.exists()


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_auth_refuses_requests_without_credentials(built, mode):
    port = free_port()
    access = ["--basic-auth", "ana:s3cret"] if mode == "basic" else ["--token", "t0k"]
    command = ["python", "-m", "nbtrail.cli", "--store", str(built.home), "dashboard",
               "--port", str(port), *access]
    url = f"http://127.0.0.1:{port}/"
    with serving(command, port, env={}):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=30)  # redirected to /auth, which says 401
        assert refused.value.code == 401
        if mode == "basic":
            assert refused.value.headers["WWW-Authenticate"].startswith("Basic")
            wrong = urllib.request.Request(url, headers={
                "Authorization": "Basic " + base64.b64encode(b"ana:nope").decode()})
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(wrong, timeout=30)
            good = urllib.request.Request(url, headers={
                "Authorization": "Basic " + base64.b64encode(b"ana:s3cret").decode()})
        else:
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(url + "?token=wrong", timeout=30)
            good = urllib.request.Request(url + "?token=t0k")
        with urllib.request.urlopen(good, timeout=30) as answer:
            assert answer.status == 200
            assert "nbtrail_dashboard=" in (answer.headers.get("Set-Cookie") or "")


def test_dashboard_in_chromium_with_screenshots(built):
    checks = {"runs": "train-model", "run": "loss", "compare": "highlighted",
              "branches": "feat/wider", "sweeps": "parallel coordinates",
              "lineage": "lineage of", "monitoring": "PSI per feature",
              "registry": NO_MODEL_REGISTERED, "serving": "No predictions logged yet"}
    with dashboard_in_chromium(built.home) as browsed:
        page = browsed.page
        for view, text in checks.items():
            page.goto(f"{browsed.url}&view={view}&run={url_args(built)['run']}")
            page.get_by_text(text).first.wait_for(timeout=60_000)
            page.wait_for_timeout(500)  # let the layout settle for the picture
            page.screenshot(path=ARTIFACTS / f"dashboard-{view}.png", full_page=True)
        # A click moves between views like a user does.
        page.locator(".bk-tab", has_text="Lineage").first.click()
        page.get_by_text("lineage of").first.wait_for(timeout=30_000)
        assert browsed.errors == []


def test_every_view_reads_the_team_store_as_it_reads_the_folder(built, postgres_url, tmp_path):
    import psycopg

    from nbtrail.store import open_store
    from nbtrail.store._copy import copy_store

    team = f"{postgres_url.rsplit('/', 1)[0]}/dashboard_views"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS dashboard_views")
        conn.execute("CREATE DATABASE dashboard_views")
    folder = read_only_store(built.home)
    with nt.config(home=str(tmp_path / "copier")):
        copy_store(folder, open_store(team))
        shared = read_only_store(team)  # the team's shared view
        args = view_args(built, folder)
        for view in VIEWS:
            page = export(shared, view, **args[view])
            assert page.startswith("<!DOCTYPE html>") and "<script" not in page, view
            for expected in {"branches": ("feat/wider", "main"), "run": ("polyline",),
                             "sweeps": ("parallel coordinates",),
                             "lineage": ("train-model", "packaged"),
                             "monitoring": ("PSI per feature",)}.get(view, ()):
                assert expected in page, (view, expected)
