"""The sidebar in a real browser: JupyterLab on the demo project, driven with Playwright."""

from .conftest import COLOURS, PANES, contrast, open_sidebar, shot


def test_the_sidebar_end_to_end(lab, page):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1280, "height": 560})  # a short window
    sidebar = open_sidebar(page, lab)
    runs = sidebar.get_by_role("treegrid", name="Runs")
    expect(runs.get_by_role("row", name="run baseline")).to_be_visible()
    expect(runs.get_by_role("row", name="run more-trees")).to_be_visible()
    expect(sidebar.get_by_role("tree")).to_contain_text("feat/more-trees")
    expect(sidebar.get_by_role("list", name="Sweeps")).to_contain_text("c-search")
    # The trials are under their sweep, not among the runs: four runs and the sweep's run.
    expect(sidebar).to_contain_text("5 runs")
    expect(runs.get_by_role("row", name="run trial-0")).to_have_count(0)
    # Every pane above the table shows all of itself, stacked: nothing hidden under the next.
    panes = page.evaluate(PANES)
    tree, sweeps, filter_ = panes[".nbt-tree"], panes[".nbt-sweeps-pane"], panes[".nbt-filter"]
    assert tree[3] <= tree[2] + 1 and sweeps[3] <= sweeps[2] + 1, panes
    assert tree[1] <= sweeps[0] + 1 and sweeps[1] <= filter_[0] + 1, panes
    shot(page, "00-short-window")
    page.set_viewport_size({"width": 1440, "height": 900})
    # The key metrics are columns from the start.
    expect(runs.get_by_role("columnheader", name="loss")).to_be_visible()
    expect(runs.get_by_role("columnheader", name="val_f1")).to_be_visible()
    runs.get_by_role("button", name="Expand c-search").click()
    expect(runs.get_by_role("row", name="run trial-0")).to_have_attribute("aria-level", "2")
    expect(runs.get_by_role("row", name="run c-search")).to_have_attribute("aria-expanded", "true")
    shot(page, "01-sidebar")
    runs.get_by_role("button", name="Collapse c-search").click()
    expect(runs.get_by_role("row", name="run trial-0")).to_have_count(0)

    # Filter with nt.runs' language; a malformed filter says why, in the panel.
    box = sidebar.get_by_role("searchbox", name="Filter runs")
    box.fill("metrics.val_f1 >")
    box.press("Enter")
    expect(sidebar.get_by_role("alert")).to_contain_text("filter")
    shot(page, "02-filter-error")
    box.fill("params.solver = 'lbfgs'")
    box.press("Enter")
    expect(sidebar).to_contain_text("3 runs")
    sidebar.get_by_role("combobox", name="Add column").select_option("params.C")
    expect(runs.get_by_role("columnheader", name="C", exact=True)).to_be_visible()
    runs.get_by_role("button", name="val_f1").click()  # sort: best first
    expect(runs.get_by_role("row").nth(1)).to_have_accessible_name("run more-trees")
    shot(page, "03-filtered-sorted")

    # One run.
    runs.get_by_role("row", name="run baseline").click()
    view = page.get_by_label("Run baseline", exact=True)
    expect(view.get_by_role("heading", name="Metric charts")).to_be_visible()
    expect(view.get_by_role("figure", name="loss")).to_be_visible()
    expect(view.get_by_role("table", name="Statistics of customers")).to_contain_text("income")
    expect(view.get_by_role("table", name="Git")).to_contain_text("main")
    expect(view.get_by_role("link", name="notes.txt")).to_be_visible()
    expect(view.get_by_role("table", name="Lineage")).to_contain_text("customers")
    shot(page, "04-run")

    # Package it (the context only: no image build in a test); the sidebar offers it too,
    # for one run with a model only.
    runs.get_by_role("checkbox", name="Select baseline").check()
    expect(sidebar.get_by_role("button", name="Package…")).to_be_visible()
    runs.get_by_role("checkbox", name="Select baseline").uncheck()
    view.get_by_role("checkbox", name="build image").uncheck()
    view.get_by_role("button", name="Package", exact=True).click()
    result = view.get_by_role("status", name="Package result")
    expect(result).to_contain_text("build context", timeout=120_000)
    expect(result).to_contain_text("pkg_")
    shot(page, "05-package")

    # Compare two runs.
    runs.get_by_role("checkbox", name="Select baseline").check()
    runs.get_by_role("checkbox", name="Select more-trees").check()
    sidebar.get_by_role("button", name="Compare selected (2)").click()
    compare = page.get_by_label("Compare 2 runs")
    expect(compare.get_by_role("figure", name="loss")).to_be_visible()
    expect(compare.get_by_role("table", name="Params diff")).to_contain_text("3.0")
    shot(page, "06-compare-runs")

    # The branch comparison.
    sidebar.get_by_role("combobox", name="First branch").select_option("main")
    sidebar.get_by_role("combobox", name="Second branch").select_option("feat/more-trees")
    sidebar.get_by_role("combobox", name="Best run by").select_option("val_f1")
    sidebar.get_by_role("button", name="Compare branches").click()
    branches = page.get_by_label("Branches main vs feat/more-trees")
    expect(branches.get_by_role("table", name="Production")).to_contain_text("churn",
                                                                            timeout=60_000)
    expect(branches.get_by_role("table", name="Changed files")).to_contain_text("train.py")
    expect(branches.get_by_role("table", name="Compared runs")).to_contain_text("baseline")
    shot(page, "07-compare-branches")

    # The sweep, and its best trial.
    sidebar.get_by_role("list", name="Sweeps").get_by_role("button").first.click()
    sweep = page.get_by_label("Sweep c-search")
    expect(sweep.get_by_role("table", name="Best trial")).to_contain_text("params.C")
    expect(sweep.get_by_role("table", name="Trials")).to_be_visible()
    shot(page, "08-sweep")

    # The notebook toolbar button: the sidebar on this notebook's runs.
    page.evaluate("window.jupyterapp.commands.execute('docmanager:open', {path: 'train.ipynb'})"
                  ".then(() => null)")
    page.get_by_role("dialog").get_by_role("button", name="No Kernel").click()  # no kernelspec
    page.get_by_role("button", name="Runs", exact=True).click()
    expect(box).to_have_value(f"notebook = '{lab['project'].resolve()}/train.ipynb'")
    expect(sidebar).to_contain_text("0 runs")
    shot(page, "09-notebook-runs")

    # The dark theme: the same views follow the theme's colours, readable.
    shown = [".nbt-sidebar", ".nbt-tree-item", ".nbt-sort",
             ".nbt-footer", ".nbt-view-header h2", ".nbt-table thead th", ".nbt-kv th"]
    light = page.evaluate(COLOURS, shown)
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme: 'JupyterLab Dark'}).then(() => null)")
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'")
    page.get_by_role("tab", name="Run baseline").click()
    expect(page.locator(".nbt-view[aria-label='Run baseline']")).to_be_visible()
    page.wait_for_function(f"() => getComputedStyle(document.querySelector('.nbt-sidebar'))"
                           f".backgroundColor !== {light['found']['.nbt-sidebar'][1]!r}")
    dark = page.evaluate(COLOURS, shown)
    assert None not in [*light["found"].values(), *dark["found"].values()], (light, dark)
    assert dark["found"][".nbt-sidebar"] == [dark["theme"]["font1"], dark["theme"]["layout1"]]
    assert contrast("rgb(0, 0, 0)", dark["theme"]["layout1"]) < 2, dark  # a dark background
    for theme in (light, dark):
        for selector, (text, background) in theme["found"].items():
            assert contrast(text, background) >= 4.5, (selector, text, background)
    shot(page, "10-dark-run")
