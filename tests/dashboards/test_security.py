"""The served dashboard shows every string of the store as text, and its login stays on site."""

import base64
import os
import urllib.error
import urllib.request

import pytest

from nbtrail.dashboards import read_only_store
from nbtrail.dashboards._auth import safe_next
from nbtrail.dashboards._views import NO_MODEL_REGISTERED, NO_PACKAGE, VIEWS

from ..conftest import CHROMIUM, CHROMIUM_ARGS, free_port, require
from .conftest import HOSTILE, HOSTILE_BRANCH, HOSTILE_SCRIPT, required, serving

required("panel")


def h(n: int) -> str:
    return HOSTILE.format(n)


def dashboard_command(home, port: int, *access: str) -> list[str]:
    return ["python", "-m", "nbtrail.cli", "--store", str(home), "dashboard", "--port",
            str(port), *access]


def test_no_store_string_runs_as_script_in_any_tab(hostile):
    require(os.path.exists(CHROMIUM),
            "Debian's chromium is not installed (apt-get install chromium)")
    sync_api = required("playwright.sync_api")
    store = read_only_store(hostile.home)
    run_id = store.sql("SELECT run_id FROM runs WHERE name = ?", [h(3) + "1"])["run_id"][0]
    # Each tab: a plain text that says it is drawn, then what it must show as text (graph
    # labels are cut at 30 characters).
    shown = {
        "runs": ("params.lr", [h(3) + "0", h(4), "metrics." + h(9),
                               "metrics." + HOSTILE_SCRIPT, "params." + h(7), h(8)]),
        "run": ("metrics (latest)", [h(5), h(6), h(11), h(12)]),
        "compare": ("highlighted", [f"{h(3)}1 · {h(4)}", f"{h(3)}0 · {h(4)}"]),  # chips
        "branches": ("branches", [HOSTILE_BRANCH]),
        "sweeps": ("parallel coordinates", ["params." + h(13), h(15)]),
        "lineage": ("lineage of", [h(11)[:29], h(12)[:29]]),
        "monitoring": ("PSI per feature", ["psi." + h(1), "has no artifact 'drift.json'"]),
        "registry": (NO_MODEL_REGISTERED, []),  # hostile registry strings: test_registry.py
        "serving": (NO_PACKAGE, []),  # hostile package strings: test_serving.py
    }
    assert list(shown) == list(VIEWS)
    port = free_port()
    with serving(dashboard_command(hostile.home, port), port, env={}), \
            sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message),
                                              dialog.dismiss()))

            def visible(text: str) -> None:
                page.get_by_text(text).filter(visible=True).first.wait_for(timeout=60_000)

            for view, (drawn, texts) in shown.items():
                page.goto(f"http://127.0.0.1:{port}/?view={view}&run={run_id}")
                visible(drawn)
                if view == "compare":  # pick one more run by hand: a sweep trial
                    page.locator(".choices").first.click()
                    page.locator(".choices__item--choice", has_text="trial-0").first.click()
                    visible("trial-0 · " + HOSTILE_BRANCH)
                page.wait_for_timeout(1000)  # an image that fails to load has done so
                assert dialogs == [], view
                # Bokeh draws in open shadow roots, which CSS locators pierce.
                injected = page.locator("img[src='x'], [onerror], [onload]")
                assert injected.count() == 0, view
                for text in texts:
                    visible(text)
        finally:
            browser.close()


@pytest.mark.parametrize("target", [
    "/", "/?view=runs&run=01J", "/app?next=/x", "/a/b%20c", "/%E2%9C%93", "/?q=//x",
])
def test_next_accepts_paths_of_the_dashboard(target):
    assert safe_next(target)


@pytest.mark.parametrize("target", [
    "/\\evil.example/", "//evil.example/", "\\\\evil.example", "/\\/evil.example",
    "https://evil.example/", "javascript:alert(1)", "JaVaScRiPt:alert(1)", "evil.example",
    "", "/\t/evil.example", "/\n/evil.example", "/\r\nSet-Cookie:x=1", "/x\x00", "/x\x7f",
    "/x\x85", "/%5Cevil.example/", "/%5cevil.example/", "/%2F/evil.example", "/%2f%2fevil",
    "/%255Cevil.example", "/%25255C%25255Cevil", "/%09/evil.example", "/%0d%0aLocation:x",
    "/x/%5C..%5Cevil", " /evil", "http:/evil.example", "data:text/html,<script>",
])
def test_next_refuses_anything_that_leaves_the_site(target):
    assert not safe_next(target)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the test reads the Location itself


def test_login_sends_the_browser_only_to_a_path_of_the_dashboard(built):
    port = free_port()
    opener = urllib.request.build_opener(_NoRedirect)
    auth = {"Authorization": "Basic " + base64.b64encode(b"ana:s3cret").decode()}

    def login(next_: str) -> urllib.error.HTTPError:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/auth?next={next_}",
                                         headers=auth)
        with pytest.raises(urllib.error.HTTPError) as answer:
            opener.open(request, timeout=30)
        return answer.value

    with serving(dashboard_command(built.home, port, "--basic-auth", "ana:s3cret"), port,
                 env={}):
        sent = login("/%3Fview%3Druns")
        assert sent.code == 302 and sent.headers["Location"] == "/?view=runs"
        for bad in ("/%5Cevil.example/", "//evil.example/", "https://evil.example/",
                    "/%09/evil.example", "/%255Cevil.example", "%2F%2Fevil.example"):
            refused = login(bad)
            assert refused.code == 400, bad
            assert "Location" not in refused.headers, bad
            assert "is not a path of this dashboard" in refused.read().decode(), bad
