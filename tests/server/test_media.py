"""A run's figures, images, tables and texts through the server extension (the sidebar's reads)."""

import pytest

from .._media_demo import HOSTILE, STEPS, build_media_store


@pytest.fixture(scope="module")
def media_store(tmp_path_factory):
    home = tmp_path_factory.mktemp("media") / "store"
    return home, build_media_store(home)


@pytest.fixture
def store_path(media_store):
    return media_store[0]


@pytest.fixture
def ids(media_store):
    return media_store[1]


async def test_the_run_view_lists_media_with_previews(api, ids):
    status, body = await api("runs", ids["gallery"])
    assert status == 200, body
    media = {m["name"]: m for m in body["media"]}
    assert media["curve.png"] | {"view": "image"} == media["curve.png"]
    assert media["curve.png"]["kind"] == "figure"
    steps = [m for m in body["media"] if m["series"] == "samples"]
    assert [m["step"] for m in steps] == list(range(STEPS))
    assert {m["view"] for m in steps} == {"image"}
    table = media["predictions.parquet"]
    assert table["view"] == "table" and table["preview"]["n_rows"] == 50
    assert table["preview"]["columns"] == ["id", "score", HOSTILE]
    assert len(table["preview"]["rows"]) == 20 and table["preview"]["rows"][1][0] == 1
    assert media["notes.md"]["preview"]["text"].startswith("# Notes of gallery")
    assert media["config.yaml"]["view"] == "text"
    assert "lr: 0.1" in media["config.yaml"]["preview"]["text"]
    assert "preview" not in media["curve.png"]  # image bytes come one by one, when shown
    assert media[f"{HOSTILE}.png"]["view"] == "image"


async def test_images_are_served_with_their_content_type(jp_fetch, ids):
    response = await jp_fetch("nbtrail", "api", "runs", ids["gallery"], "artifacts",
                              "samples", "step-7.png")
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.body.startswith(b"\x89PNG")


async def test_an_image_named_with_markup_is_served_by_its_escaped_name(jp_fetch, ids):
    # jp_fetch escapes each path part: the request line holds %3Cimg%20src%3Dx%20...
    response = await jp_fetch("nbtrail", "api", "runs", ids["gallery"], "artifacts",
                              f"{HOSTILE}.png")
    assert response.headers["Content-Type"] == "image/png"
    assert response.body.startswith(b"\x89PNG")


async def test_stored_html_is_never_served_as_a_page(jp_fetch, ids):
    response = await jp_fetch("nbtrail", "api", "runs", ids["gallery"], "artifacts",
                              "page.html")
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_media_paths_stay_inside_the_store(api, ids):
    for name in ("samples/../../../../etc/passwd", "samples/step-99.png", "..%2F..%2Fetc"):
        status, body = await api("runs", ids["gallery"], "artifacts", name)
        assert status in (403, 404), (name, status)
        assert "root:" not in str(body)


async def test_compare_puts_each_runs_media_side_by_side(api, ids):
    status, body = await api("compare", runs=f"{ids['gallery']},{ids['gallery-b']}")
    assert status == 200, body
    assert set(body["media"]) == {ids["gallery"], ids["gallery-b"]}
    for entries in body["media"].values():
        assert sum(m["series"] == "samples" for m in entries) == STEPS
        (table,) = [m for m in entries if m["view"] == "table"]
        assert table["preview"]["n_rows"] == 50


async def test_media_reads_require_login(jp_fetch, ids):
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as failed:
        await jp_fetch("nbtrail", "api", "runs", ids["gallery"], "artifacts", "curve.png",
                       headers={"Authorization": ""})
    assert failed.value.code == 403
