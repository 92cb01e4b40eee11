"""``nt.challenge``: a real server with a shadow writes the log, the report reads it back."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

import nbtrail as nt
from nbtrail.cli import main
from nbtrail.errors import InvalidInputError

from .conftest import PER_REQUEST, REQUESTS


def _by_hand(lines: list[dict[str, Any]], labels: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per version: 1 where its prediction equals the label, row by row, from the raw log."""
    truth = {(r, int(i)): y for r, i, y in labels.itertuples(index=False)}
    seen: dict[str, int] = defaultdict(int)
    correct: dict[str, list[bool]] = defaultdict(list)
    for line in lines:
        key = (line["request_id"], seen[line["request_id"]])
        seen[line["request_id"]] += 1
        for entry in line["models"]:
            if key in truth and "prediction" in entry:
                correct[entry["version"]].append(entry["prediction"] == truth[key])
    return {v: np.asarray(c, float) for v, c in correct.items()}


def test_challenge_reports_traffic_agreement_and_metrics_of_a_real_shadow(served):
    log, lines, labels, models = served
    report = nt.challenge(log, labels=labels, bootstrap=500, seed=1)
    champion, shadow = report.versions
    assert (champion.version, champion.role, shadow.version, shadow.role) == \
        ("1", "champion", "2", "shadow")
    assert (champion.model_id, shadow.model_id) == (models[1], models[2])
    rows = REQUESTS * PER_REQUEST
    assert (champion.requests, champion.rows, champion.answered, champion.shadowed) == \
        (REQUESTS, rows, rows, 0)
    assert (shadow.requests, shadow.rows, shadow.answered, shadow.errors, shadow.dropped) == \
        (REQUESTS, rows, 0, 0, 0)
    assert shadow.shadowed == rows and champion.latency_p50_ms <= champion.latency_p99_ms

    pairs = [[e["prediction"] for e in line["models"]] for line in lines]
    assert shadow.agreement == pytest.approx(np.mean([a == b for a, b in pairs]))
    assert shadow.compared_rows == rows and shadow.prediction_psi >= 0

    correct = _by_hand(lines, labels)
    assert report.labels == len(labels) and report.unknown_labels == 3
    for version in report.versions:
        assert version.labelled_rows == len(correct[version.version])
        assert version.metric == pytest.approx(correct[version.version].mean())
        assert version.metric_low <= version.metric <= version.metric_high
    assert shadow.paired
    assert shadow.difference == pytest.approx(correct["2"].mean() - correct["1"].mean())
    assert shadow.difference_low <= shadow.difference <= shadow.difference_high
    assert shadow.significantly_worse == (shadow.difference_high < 0)
    # Same seed, same intervals.
    again = nt.challenge(log, labels=labels, bootstrap=500, seed=1, log=False)
    assert again.versions == report.versions and again.run_id is None

    html = report._repr_html_()
    assert "<script" not in html.lower() and "accuracy" in html and report.run_id in html
    frame = report.to_polars()
    assert frame["version"].to_list() == ["1", "2"] and frame.height == 2
    assert json.loads(report.to_json())["unknown_labels"] == 3

    run = nt.get_run(report.run_id)
    assert run.tags["nbtrail.kind"] == "monitoring" and run.tags["model_id"] == models[1]
    for model_id in models.values():
        edges = nt.lineage(model_id, direction="down").edges
        assert (model_id, report.run_id, "monitored") in edges.select(
            "src", "dst", "relation").rows()


def test_promote_opens_a_request_for_the_challenger_citing_the_run(served):
    log, _, labels, _ = served
    report = nt.challenge(log, labels=labels, bootstrap=200)
    request = report.promote(alias="champion", note="shadowed a week")
    assert request.ref == "churn/2" and request.alias == "champion"
    assert request.note.startswith("shadowed a week; nt.challenge")
    assert report.run_id in request.note
    with pytest.raises(InvalidInputError, match="labels="):
        nt.challenge(log, log=False).promote()


def test_cli_exit_codes(served, tmp_path, capsys):
    log, _, labels, _ = served
    path = tmp_path / "labels.parquet"
    labels.to_parquet(path)
    assert main(["challenge", str(log), "--labels", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in out["versions"]] == ["1", "2"]
    # The shuffled-label challenger is worse than the champion beyond doubt.
    assert out["worse"] == ["2"]
    assert main(["challenge", str(log), "--labels", str(path), "--fail-if-worse"]) == 1
    assert "significantly worse" in capsys.readouterr().out
    assert main(["challenge", str(tmp_path / "nowhere")]) == 2
    assert main(["challenge", str(log), "--labels", str(tmp_path / "labels.csv")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("nbtrail: error: ") for e in errors)


def _write(folder: Path, lines: list[dict[str, Any]]) -> Path:
    folder.mkdir()
    (folder / "predictions-20261203T000000000000Z-1.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines))
    return folder


def _entry(role: str, version: str, prediction: float | None = None, *,
           error: str | None = None, latency: float | None = 1.0) -> dict[str, Any]:
    head = {"role": role, "version": version, "model_id": f"mdl_{version}",
            "latency_ms": latency}
    return head | ({"error": error} if error else {"prediction": prediction,
                                                     "probabilities": None})


def test_regression_canary_and_failed_shadows_from_a_written_log(tmp_path):
    lines = []
    for i in range(40):
        canary = i % 4 == 0
        answered = _entry("canary", "3", 2.0 * i) if canary else _entry("champion", "1", float(i))
        models = [answered] if canary else [
            answered, _entry("shadow", "2", i + 0.5) if i % 5 else
            _entry("shadow", "2", error="dropped: the shadow queue was full", latency=None)]
        lines.append({"request_id": f"r{i}", "model": "price", "model_id": "mdl_1",
                      "prediction": answered["prediction"], "version": answered["version"],
                      "inputs": {"x": i}, "models": models})
    log = _write(tmp_path / "log", lines)
    labels = pl.DataFrame({"request_id": [f"r{i}" for i in range(40)], "row": [0] * 40,
                           "label": [float(i) for i in range(40)]})
    report = nt.challenge(log, labels, bootstrap=200, log=False)
    assert not report.classifier and report.metric_name == "rmse"
    champion, shadow, canary = report.versions
    assert (champion.rows, champion.answered, canary.rows, canary.answered) == (30, 30, 10, 10)
    assert (shadow.dropped, shadow.errors, shadow.shadowed) == (6, 0, 24)
    assert shadow.mean_abs_difference == pytest.approx(0.5) and shadow.agreement is None
    assert shadow.paired and shadow.difference == pytest.approx(0.5)
    assert champion.metric == 0.0 and shadow.significantly_worse
    # A canary answers other requests than the champion: compared unpaired.
    assert canary.compared_rows == 0 and not canary.paired
    expected = np.sqrt(np.mean([(2.0 * i - i) ** 2 for i in range(0, 40, 4)]))
    assert canary.metric == pytest.approx(expected)
    assert canary.difference_low <= canary.difference <= canary.difference_high
    assert nt.challenge(log, labels, metric="mae", log=False).versions[1].metric == \
        pytest.approx(0.5)
    assert shadow.ref == "price/2"


def test_promote_needs_registry_versions(tmp_path):
    # A challenger packaged from a model id is logged under that id, not a version number.
    lines = [{"request_id": f"r{i}", "model": "churn", "prediction": 1, "version": "mdl_a",
              "inputs": {"x": i}, "models": [_entry("champion", "mdl_a", 1),
                                             _entry("shadow", "mdl_b", i % 2)]}
             for i in range(10)]
    labels = pd.DataFrame({"request_id": [f"r{i}" for i in range(10)], "row": 0, "label": 1})
    report = nt.challenge(_write(tmp_path / "log", lines), labels, log=False)
    assert report.classifier and report.versions[1].agreement == 0.5
    assert report.to_polars().schema["ref"] == pl.String  # typed even when all null
    with pytest.raises(InvalidInputError, match="mdl_b of the log is not a registry version"):
        report.promote()


@pytest.mark.parametrize(("source", "labels", "message"), [
    ("nowhere", None, "is not a prediction log folder"),
    ("log", pd.DataFrame({"request_id": ["r0"], "label": [1]}), "lack the column.* row"),
    ("log", [1, 2], "must be a frame or a Parquet file"),
])
def test_bad_input_is_one_line_error(tmp_path, source, labels, message):
    _write(tmp_path / "log", [{"request_id": "r0", "model": "m", "model_id": "mdl_1",
                               "prediction": 1, "inputs": {"x": 1}}])
    with pytest.raises(InvalidInputError, match=message) as caught:
        nt.challenge(tmp_path / source, labels, log=False)
    assert "\n" not in str(caught.value)


def test_a_package_is_read_from_the_logs_its_deployments_recorded(served):
    log, _, _, _ = served
    report = nt.challenge("churn", log=False)
    assert report.source == str(log.resolve())
    assert [v.rows for v in report.versions] == [REQUESTS * PER_REQUEST] * 2


def test_a_package_without_a_recorded_log_is_one_line(home, tmp_path):
    from ..packaging._models import train_churn

    pkg = nt.package(train_churn().model_id, name="solo", output=tmp_path / "ctx", build=False)
    for source, words in ((pkg, "has no prediction log on this machine"),
                          ("nothing-here", "neither a prediction log folder nor a package"),
                          (str(tmp_path / "no" / "dir"), "is not a prediction log folder")):
        with pytest.raises(InvalidInputError, match=words) as caught:
            nt.challenge(source, log=False)
        assert "\n" not in str(caught.value)
