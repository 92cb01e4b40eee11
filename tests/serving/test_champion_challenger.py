"""Champion with shadows and canaries, over real HTTP: who answers, what is logged, and
that a slow, failing or swamped shadow never touches the champion's answers."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbtrail.packaging._local import start
from nbtrail.serving import ModelBundle, ServeSettings, create_app
from nbtrail.serving._routing import Routed, Routing, choose_canary

ROWS = [{"age": 30, "income": 55.0, "plan": "pro"},
        {"age": 61, "income": 41.5, "plan": "basic"}]


class Constant:
    """A model answering ``value`` for every row."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict(self, frame: Any) -> np.ndarray:
        return np.full(len(frame), self.value)


class Blocked(Constant):
    """Answers only once ``release`` is set; ``started`` says a call is under way."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.started, self.release = threading.Event(), threading.Event()

    def predict(self, frame: Any) -> np.ndarray:
        self.started.set()
        self.release.wait(30)
        return super().predict(frame)


class Broken:
    def predict(self, frame: Any) -> np.ndarray:
        raise RuntimeError("challenger bug")


@pytest.fixture(scope="module")
def champion(shared_folder) -> ModelBundle:
    return ModelBundle.load(shared_folder, version="1")


def version(champion: ModelBundle, number: int, model: object) -> ModelBundle:
    return dataclasses.replace(champion, version=str(number), model_id=f"mdl_v{number}",
                               model=model)


def serve(champion: ModelBundle, *others: tuple[str, ModelBundle, float],
          log_dir: Path | None = None, **settings: Any):
    routing = Routing([Routed("champion", "1", champion)]
                      + [Routed(role, b.version, b, None, share)  # type: ignore[arg-type]
                         for role, b, share in others])
    app = create_app(routing, ServeSettings(log_dir=None if log_dir is None else str(log_dir),
                                            **settings))
    return start(app, Path("."))


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None
         ) -> tuple[dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(f"{url}/predict", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json",
                                              **(headers or {})})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read()), {k.lower(): v for k, v in answer.headers.items()}


def metric(url: str, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if match and ",".join(sorted((match[1] or "").split(","))) == wanted:
            return float(match[2])
    return 0.0


def log_lines(folder: Path, count: int) -> list[dict[str, Any]]:
    # Shadow outputs arrive after the answer: the line is written once every version is in.
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for file in sorted(folder.glob("*.jsonl"))
                 for line in file.read_text().splitlines()]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def test_shadow_is_logged_beside_the_champion_under_one_request_id(champion, tmp_path):
    import pandas as pd

    from nbtrail.monitor._data import PREDICTION, read_log

    expected = champion.model.predict(pd.DataFrame(ROWS)).tolist()
    with serve(champion, ("shadow", version(champion, 2, Constant(7)), 0.0),
               log_dir=tmp_path / "log") as server:
        answer, headers = post(server.url, {"records": ROWS}, {"X-Request-ID": "req-1"})
        assert answer["predictions"] == expected and answer["model_version"] == "1"
        assert headers["x-model-version"] == "1"
        lines = log_lines(tmp_path / "log", 2)
        assert metric(server.url, "nbtrail_model_rows_total", version="2",
                      role="shadow") == 2
    assert [line["request_id"] for line in lines] == ["req-1", "req-1"]
    for line, prediction in zip(lines, expected, strict=True):
        assert line["prediction"] == prediction and line["version"] == "1"
        first, shadow = line["models"]
        assert (first["role"], first["version"], first["prediction"]) == \
            ("champion", "1", prediction)
        assert (shadow["role"], shadow["version"], shadow["model_id"],
                shadow["prediction"]) == ("shadow", "2", "mdl_v2", 7)
        assert shadow["latency_ms"] >= 0 and first["latency_ms"] > 0
    # Monitoring reads the log as before: one row a request row, the champion's answer.
    frame = read_log(tmp_path / "log").frame.collect()
    assert frame[PREDICTION].to_list() == expected


def test_a_hanging_or_failing_shadow_never_delays_or_fails_the_champion(champion, tmp_path):
    hanging = Blocked(5)
    with serve(champion, ("shadow", version(champion, 2, hanging), 0.0),
               ("shadow", version(champion, 3, Broken()), 0.0),
               log_dir=tmp_path / "log") as server:
        # Every answer arrives while the shadow is stuck in its first call.
        for i in range(20):
            answer, headers = post(server.url, {"records": ROWS}, {"X-Request-ID": f"r{i}"})
            assert headers["x-model-version"] == "1" and len(answer["predictions"]) == 2
        assert hanging.started.is_set() and not hanging.release.is_set()
        hanging.release.set()
        lines = log_lines(tmp_path / "log", 40)
        assert metric(server.url, "nbtrail_model_errors_total", version="3",
                      role="shadow") >= 1
        assert metric(server.url, "nbtrail_prediction_errors_total") == 0
        assert metric(server.url, "nbtrail_requests_total", endpoint="predict",
                      status="200") == 20
    assert len(lines) == 40
    broken = [line["models"][2] for line in lines]
    assert all(b["error"] == "RuntimeError: challenger bug" for b in broken)
    assert all(line["models"][1]["prediction"] == 5 for line in lines)


def test_a_full_shadow_queue_drops_the_work_and_counts_it(champion, tmp_path):
    hanging = Blocked(5)
    with serve(champion, ("shadow", version(champion, 2, hanging), 0.0),
               log_dir=tmp_path / "log", shadow_queue=2) as server:
        post(server.url, {"records": ROWS}, {"X-Request-ID": "first"})
        assert hanging.started.wait(10)
        for i in range(5):  # two wait in the queue, three are dropped
            post(server.url, {"records": ROWS}, {"X-Request-ID": f"r{i}"})
        assert metric(server.url, "nbtrail_shadow_dropped_total", version="2") == 3
        hanging.release.set()
        lines = log_lines(tmp_path / "log", 12)
    shadow = {line["request_id"]: line["models"][1] for line in lines}
    assert sorted(r for r, s in shadow.items() if "error" in s) == ["r2", "r3", "r4"]
    assert shadow["r2"]["error"].startswith("dropped")
    assert shadow["first"]["prediction"] == shadow["r1"]["prediction"] == 5


def test_canary_shares_hold_over_10000_requests_and_stick_to_keys():
    keys = [f"customer-{i}" for i in range(10_000)]
    chosen = Counter(choose_canary(key, [0.1, 0.05]) for key in keys)
    assert abs(chosen[0] / 10_000 - 0.1) < 0.015 and abs(chosen[1] / 10_000 - 0.05) < 0.01
    assert [choose_canary(k, [0.1, 0.05]) for k in keys[:500]] == \
        [choose_canary(k, [0.1, 0.05]) for k in keys[:500]]
    draw = random.Random(0).random
    unkeyed = Counter(choose_canary(None, [0.2], draw) for _ in range(10_000))
    assert abs(unkeyed[0] / 10_000 - 0.2) < 0.02
    assert choose_canary("anything", []) is None


def test_canary_answers_its_share_over_http_and_says_so(champion, tmp_path):
    canary = version(champion, 2, Constant(9))
    with serve(champion, ("canary", canary, 0.3), log_dir=tmp_path / "log") as server:
        seen = Counter()
        for i in range(200):
            key = f"k{i % 50}"  # each key four times: always the same version
            headers = {"X-Request-Key": key} if i % 2 else {}
            body = {"records": ROWS} | ({} if i % 2 else {"key": key})
            answer, got = post(server.url, body, headers | {"X-Request-ID": f"r{i}"})
            sticky = "2" if choose_canary(key, [0.3]) == 0 else "1"
            assert got["x-model-version"] == answer["model_version"] == sticky
            assert (answer["predictions"] == [9, 9]) == (answer["model_version"] == "2")
            seen[answer["model_version"]] += 1
        unkeyed = Counter(post(server.url, {"records": ROWS})[0]["model_version"]
                          for _ in range(100))
        pinned = urllib.request.urlopen(urllib.request.Request(
            f"{server.url}/v2/models/churn/versions/2/infer", data=json.dumps({"inputs": [
                {"name": c, "shape": [2], "datatype": "BYTES", "data": [r[c] for r in ROWS]}
                for c in ROWS[0]]}).encode(), headers={"content-type": "application/json"}),
            timeout=10)
        assert json.loads(pinned.read())["model_version"] == "2"
        assert metric(server.url, "nbtrail_model_rows_total", version="2",
                      role="canary") == 2 * (seen["2"] + unkeyed["2"] + 1)
        lines = log_lines(tmp_path / "log", 2 * 301)
    assert set(seen) == {"1", "2"} and set(unkeyed) == {"1", "2"}
    assert 10 <= seen["2"] <= 110  # 0.3 of 50 keys, four requests each
    by_id = {line["request_id"]: line for line in lines}
    assert by_id["r1"]["version"] == by_id["r1"]["models"][0]["version"]
    assert len(by_id["r1"]["models"]) == 1  # a canary request runs one version only
