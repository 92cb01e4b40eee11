"""The runs endpoint as the sidebar reads it: children under their parent, a model flag and the
key metrics (the demo store: four runs, a sweep run and its five trials)."""

import pytest


async def page(api, **params):
    status, body = await api("runs", limit="1000", **params)
    assert status == 200, body
    return body


async def test_nest_leaves_the_trials_under_their_sweep(api):
    body = await page(api, nest="true", order_by="name")
    assert [r["name"] for r in body["runs"]] == ["baseline", "c-search", "crashed",
                                                 "more-trees", "strong-reg"]
    assert body["total"] == 5
    runs = {r["name"]: r for r in body["runs"]}
    assert runs["c-search"]["children"] == 5 and runs["baseline"]["children"] == 0
    assert runs["baseline"]["has_model"] is True
    assert runs["crashed"]["has_model"] is runs["c-search"]["has_model"] is False

    children = await page(api, parent=runs["c-search"]["run_id"], order_by="name")
    assert [r["name"] for r in children["runs"]] == [f"trial-{i}" for i in range(5)]
    assert children["total"] == 5 and all(not r["has_model"] for r in children["runs"])


async def test_without_nest_the_table_is_flat(api):
    body = await page(api)
    assert body["total"] == 10


async def test_a_filter_counts_matching_children_and_keeps_orphans_visible(api):
    # Trials match, their sweep does not: they are shown, not hidden under a hidden parent.
    body = await page(api, nest="true", where="metrics.value >= 0.9")
    assert sorted(r["name"] for r in body["runs"]) == [f"trial-{i}" for i in range(5)]
    # The sweep matches and two of its trials do: it counts those two.
    body = await page(api, nest="true", where="tags.sweep = 'c-search' and "
                      "(tags.trial is null or tags.trial in ('0', '1'))")
    (sweep,) = body["runs"]
    assert sweep["name"] == "c-search" and sweep["children"] == 2
    children = await page(api, parent=sweep["run_id"], where="tags.trial is null or "
                          "tags.trial in ('0', '1')")
    assert sorted(r["name"] for r in children["runs"]) == ["trial-0", "trial-1"]


async def test_key_metrics_are_the_ones_most_rows_of_the_page_have(api):
    body = await page(api, nest="true", key_metrics="2", columns="params.C")
    assert body["key_metrics"] == ["metrics.loss", "metrics.val_f1"]
    baseline = next(r for r in body["runs"] if r["name"] == "baseline")
    assert baseline["values"] == {"params.C": 1.0, "metrics.loss": pytest.approx(0.38),
                                  "metrics.val_f1": pytest.approx(0.6667)}
    assert (await page(api, columns="params.C"))["key_metrics"] == []


@pytest.mark.parametrize("params", [{"nest": "true"}, {"parent": "01ABCDEF"}])
async def test_a_malformed_filter_is_quoted_as_the_user_wrote_it(api, params):
    status, body = await api("runs", where="metrics.acc >", **params)
    assert status == 400, body
    assert "parent_id" not in body["message"] and "metrics.acc" in body["message"]


async def test_nest_must_be_a_boolean(api):
    status, body = await api("runs", nest="maybe")
    assert status == 400 and "nest must be true or false" in body["message"]
