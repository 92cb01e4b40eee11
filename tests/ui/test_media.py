"""A run's figures, images, tables and texts in the sidebar's run view and comparison (Chromium).

The runs have a 20-step image series: the view loads the one image its slider is on, not
all twenty, and moves through the steps by keyboard.
"""

import pytest

from .._media_demo import HOSTILE, STEPS, build_media_store
from .conftest import open_sidebar, shot

LOADED = "img => img.complete && img.naturalWidth"


@pytest.fixture
def project(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    build_media_store(project / ".nbtrail")  # the store nt picks in a folder outside git
    return project


def test_run_view_and_compare_show_images_tables_and_texts(lab, page):
    from playwright.sync_api import expect

    fired: list[str] = []
    page.on("dialog", lambda dialog: (fired.append(dialog.message), dialog.dismiss()))
    images: list[str] = []
    page.on("request", lambda r: images.append(r.url) if "/artifacts/samples/" in r.url else None)
    sidebar = open_sidebar(page, lab)
    runs = sidebar.get_by_role("treegrid", name="Runs")
    runs.get_by_role("row", name="run gallery", exact=True).click()
    view = page.get_by_label("Run gallery", exact=True)

    expect(view.get_by_role("heading", name="Figures and images")).to_be_visible()
    curve = view.get_by_role("img", name="curve.png")
    expect(curve).to_be_visible()
    assert curve.evaluate(LOADED) > 100
    last = view.get_by_role("img", name=f"samples step {STEPS - 1}")
    expect(last).to_be_visible()
    assert last.evaluate(LOADED) == 32
    hostile = view.get_by_role("img", name=f"{HOSTILE}.png")  # fetched by its escaped name
    expect(hostile).to_be_visible()
    assert hostile.evaluate(LOADED) == 32
    slider = view.get_by_role("slider", name="Step of samples")
    expect(slider).to_have_attribute("aria-valuetext", f"step {STEPS - 1}")
    table = view.get_by_role("table", name="Table predictions")
    expect(table).to_contain_text("bold?")
    expect(table.get_by_role("columnheader", name=HOSTILE)).to_be_visible()
    expect(view.get_by_text("50 rows × 3 columns · the first 20")).to_be_visible()
    expect(view.get_by_label("Text notes.md")).to_contain_text("Notes of gallery")
    expect(view.get_by_label("Text config.yaml")).to_contain_text("lr: 0.1")
    # A stored HTML file is shown as its text, never rendered.
    expect(view.get_by_label("Text page.html")).to_contain_text("<script>alert(1)</script>")
    expect(view.locator("iframe")).to_have_count(0)
    shot(page, "20-run-media")

    # Through the series by keyboard: one image element, loaded step by step.
    slider.focus()
    slider.press("Home")
    first = view.get_by_role("img", name="samples step 0")
    expect(first).to_be_visible()
    expect(slider).to_have_attribute("aria-valuetext", "step 0")
    for _ in range(5):
        slider.press("ArrowRight")
    expect(view.get_by_role("img", name="samples step 5")).to_be_visible()
    assert view.get_by_role("img", name="samples step 5").evaluate(LOADED) == 32
    assert view.locator("img[alt^='samples step']").count() == 1
    assert len(set(images)) <= 7, images  # the last, the first, then steps 1 to 5 at most
    shot(page, "21-run-media-step-5")

    # Two runs side by side: one slider for both series.
    runs.get_by_role("checkbox", name="Select gallery", exact=True).check()
    runs.get_by_role("checkbox", name="Select gallery-b").check()
    sidebar.get_by_role("button", name="Compare selected (2)").click()
    compare = page.get_by_label("Compare 2 runs")
    series = compare.get_by_label("Compare samples")
    expect(series.get_by_role("img", name=f"samples step {STEPS - 1}")).to_have_count(2)
    series.get_by_role("slider", name="Step of samples").focus()
    series.get_by_role("slider", name="Step of samples").press("Home")
    expect(series.get_by_role("img", name="samples step 0")).to_have_count(2)
    expect(compare.get_by_label("Compare curve.png").get_by_role("img")).to_have_count(2)
    tables = compare.get_by_label("Compare predictions.parquet")
    expect(tables.get_by_role("table", name="Table predictions")).to_have_count(2)
    expect(compare.get_by_label("Compare notes.md")).to_contain_text("Notes of gallery-b")
    shot(page, "22-compare-media")
    assert fired == []
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
