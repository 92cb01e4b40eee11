"""The prediction log's files: a line per row, rotation, pruning, bad folders."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from nbtrail.errors import InvalidInputError
from nbtrail.serving import PredictionLog


def _append(log, n=3, request_id="r"):
    log.append(request_id=request_id, model="m", model_id="mdl_1", model_sha256="abc",
               columns={"a": list(range(n)), "b": [float("nan")] * n},
               predictions=[np.int64(i) for i in range(n)],
               probabilities=None)


def test_lines_follow_the_documented_format(tmp_path):
    log = PredictionLog(tmp_path)
    _append(log)
    log.close()
    (file,) = tmp_path.iterdir()
    assert file.name.startswith("predictions-") and file.name.endswith(f"-{os.getpid()}.jsonl")
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    assert [line["inputs"] for line in lines] == [{"a": i, "b": None} for i in range(3)]
    assert [line["prediction"] for line in lines] == [0, 1, 2]
    assert set(lines[0]) == {"time", "request_id", "model", "model_id", "model_sha256",
                             "inputs", "prediction", "probabilities"}


def test_files_rotate_by_size_and_old_ones_are_pruned(tmp_path):
    log = PredictionLog(tmp_path, max_bytes=500, max_files=3)
    for i in range(20):
        _append(log, request_id=f"r{i}")
    log.close()
    files = sorted(tmp_path.iterdir())
    assert len(files) == 3
    kept = [json.loads(line)["request_id"] for f in files for line in f.read_text().splitlines()]
    assert kept[-1] == "r19" and "r0" not in kept  # the newest survive, in order
    assert kept == sorted(kept, key=lambda r: int(r[1:]))


def test_bad_settings_and_folders_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="max_bytes > 0"):
        PredictionLog(tmp_path, max_bytes=0)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InvalidInputError, match="cannot create the prediction log folder"):
        PredictionLog(blocker / "log")
