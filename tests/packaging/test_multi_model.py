"""Packages serving several versions: champion with shadows or canaries, from the registry."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression

import nbtrail as nt
from nbtrail.cli import main
from nbtrail.errors import InvalidInputError

from ._models import churn_frame, train_churn

RECORDS = [{"age": 44, "income": 61.0, "plan": "team"}, {"age": 20, "income": 40.0,
                                                          "plan": "basic"}]


@pytest.fixture
def registry(home):
    """churn/1 (champion), churn/2 (challenger), churn/3 (candidate): one schema."""
    for _ in range(3):
        nt.register(train_churn().model_id, name="churn")
    nt.set_alias("churn", "champion", 1)
    nt.set_alias("churn", "challenger", 2)
    nt.set_alias("churn", "candidate", 3)
    return {v: nt.model_version(f"churn/{v}").model_id for v in (1, 2, 3)}


def _predict(url: str) -> dict:
    request = urllib.request.Request(f"{url}/predict", data=json.dumps(
        {"records": RECORDS}).encode(), headers={"content-type": "application/json",
                                                "X-Request-ID": "req-a"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_a_shadow_package_carries_every_version_and_serves_them(registry, tmp_path):
    pkg = nt.package("churn@champion", shadow=["churn@challenger"], name="churn",
                     output=tmp_path / "ctx", build=False)
    model = pkg.context / "model"
    routing = json.loads((model / "routing.json").read_text())
    assert routing == pkg.routing == {
        "champion": {"ref": "churn@champion", "version": "1", "model_id": registry[1],
                     "folder": "."},
        "shadows": [{"ref": "churn@challenger", "version": "2", "model_id": registry[2],
                     "folder": "versions/2"}],
        "canary": []}
    assert "champion 1; shadow 2" in pkg._repr_html_()
    lineage = json.loads((model / "versions/2/lineage.json").read_text())
    assert lineage["model"]["model_id"] == registry[2]
    assert lineage["package"]["role"] == "shadow"
    assert (model / "versions/2/signature.json").is_file()
    described = f"champion 1 ({registry[1]}); shadow 2 ({registry[2]})"
    assert f'dev.nbtrail.versions="{described}"' in (pkg.context / "Dockerfile").read_text()
    assert f'nbtrail.dev/versions: "{described}"' in \
        (pkg.context / "k8s/deployment.yaml").read_text()
    built = nt.audit("churn").filter(pl.col("event") == "package_built")
    assert built["version"].to_list() == [1, 2]
    assert [json.loads(p)["role"] for p in built["payload"]] == ["champion", "shadow"]

    with nt.serve(pkg, port=0, background=True, log_dir=tmp_path / "log") as server:
        answer = _predict(server.url)
        assert answer["model_version"] == "1"
        deadline = time.monotonic() + 10
        while not list((tmp_path / "log").glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.02)
        metrics = urllib.request.urlopen(f"{server.url}/metrics").read().decode()
    (file,) = (tmp_path / "log").glob("*.jsonl")
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    assert [line["request_id"] for line in lines] == ["req-a", "req-a"]
    assert [[m["version"] for m in line["models"]] for line in lines] == [["1", "2"]] * 2
    assert [line["prediction"] for line in lines] == answer["predictions"]
    assert 'nbtrail_model_rows_total{role="shadow",version="2"} 2.0' in metrics


def test_the_cli_packages_a_canary(registry, tmp_path, capsys):
    assert main(["package", "churn@champion", "--canary", "churn@challenger=0.1",
                 "--shadow", "churn/3", "--output", str(tmp_path / "ctx"), "--no-build",
                 "--json"]) == 0
    routing = json.loads(capsys.readouterr().out)["routing"]
    assert [(c["version"], c["share"]) for c in routing["canary"]] == [("2", 0.1)]
    assert [s["ref"] for s in routing["shadows"]] == ["churn/3"]
    assert main(["package", "churn@champion", "--canary", "churn@challenger"]) == 2
    assert "expected REF=SHARE" in capsys.readouterr().err


def _other_schema() -> str:
    frame, target = churn_frame()
    frame = frame.drop(columns=["plan"]).assign(region=frame.age % 3)
    with nt.run(name="other") as run:
        run.log_dataset(frame, name="train", role="train")
        return run.log_model(LogisticRegression().fit(frame, target), name="churn")


@pytest.mark.parametrize(("options", "message"), [
    ({"shadow": ["churn@champion"]}, "already the champion"),
    ({"shadow": ["churn/1"]}, "already the champion"),
    ({"shadow": ["churn/2"], "canary": {"churn@challenger": 0.1}}, "already the shadow"),
    ({"canary": {"churn/2": 0.0}}, "between 0 and 1"),
    ({"canary": {"churn/2": 1.5}}, "between 0 and 1"),
    ({"canary": {"churn/2": 0.6, "churn/3": 0.5}}, "add up to 1.1, over 1"),
])
def test_bad_routing_is_one_line_error(registry, tmp_path, options, message):
    with pytest.raises(InvalidInputError, match=message) as caught:
        nt.package("churn@champion", output=tmp_path / "ctx", build=False, **options)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "ctx").exists()


def test_a_challenger_with_other_columns_needs_allow_schema_change(registry, tmp_path):
    other = _other_schema()
    with pytest.raises(InvalidInputError, match=r"other input columns than the champion "
                                                r"\(plan, region\)"):
        nt.package("churn@champion", shadow=[other], output=tmp_path / "ctx", build=False)
    pkg = nt.package("churn@champion", shadow=[other], output=tmp_path / "ctx", build=False,
                     allow_schema_change=True)
    assert pkg.routing is not None and pkg.routing["shadows"][0]["version"] == other
    with nt.serve(pkg, port=0, background=True, log_dir=tmp_path / "log") as server:
        _predict(server.url)
        deadline = time.monotonic() + 10
        while not list((tmp_path / "log").glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.02)
    (file,) = Path(tmp_path / "log").glob("*.jsonl")
    shadow = json.loads(file.read_text().splitlines()[0])["models"][1]
    assert shadow["error"].startswith("input refused")  # it wants 'region', not 'plan'
