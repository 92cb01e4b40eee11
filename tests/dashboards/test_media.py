"""The dashboard's run view shows the run's figures, images, tables and texts."""

import pytest

from nbtrail.dashboards import read_only_store
from nbtrail.dashboards._views import export

from .._media_demo import HOSTILE, STEPS, build_media_store
from .conftest import ARTIFACTS, dashboard_in_chromium, required

required("panel")


@pytest.fixture(scope="module")
def media_store(tmp_path_factory):
    home = tmp_path_factory.mktemp("media") / "store"
    return home, build_media_store(home)


def test_the_run_view_exports_images_tables_and_texts_without_script(media_store):
    home, ids = media_store
    page = export(read_only_store(home), "run", run_id=ids["gallery"])
    assert "<script" not in page.lower() and "<iframe" not in page.lower()
    # The figure, 10 of the 20 steps of the series and the hostile-named image, as data URIs.
    assert page.count('src="data:image/png;base64,') == 12
    assert f"image samples (10 of {STEPS} steps shown)" in page
    assert "table predictions.parquet (50 rows × 3 columns, the first 20)" in page
    assert HOSTILE not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # a stored HTML file, as text
    assert "lr: 0.1" in page


def test_the_run_view_draws_its_images_in_chromium(media_store):
    home, ids = media_store
    with dashboard_in_chromium(home) as browsed:
        page = browsed.page
        page.goto(f"{browsed.url}&view=run&run={ids['gallery']}")
        page.get_by_text("image samples").first.wait_for(timeout=60_000)
        drawn = page.locator("img[alt='curve.png']").first
        drawn.wait_for(timeout=30_000)
        assert drawn.evaluate("img => img.complete && img.naturalWidth") > 100
        steps = page.locator("img[alt^='samples/step-']")
        assert steps.count() == 10
        assert steps.last.evaluate("img => img.naturalWidth") == 32
        page.get_by_text("bold?").first.wait_for(timeout=10_000)
        page.screenshot(path=ARTIFACTS / "dashboard-run-media.png", full_page=True)
        assert browsed.errors == [] and browsed.dialogs == []
