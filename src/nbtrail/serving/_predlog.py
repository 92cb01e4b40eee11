"""The prediction log: JSON Lines files the monitoring work reads back.

One line per predicted row, in files named ``predictions-<UTC start>-<pid>.jsonl`` so that
several worker processes never share a file. A new file starts when the current one passes
``max_bytes``; the oldest files beyond ``max_files`` are deleted. Each request's lines are
written with one ``write`` and flushed, so a crash loses at most the request in flight.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import InvalidInputError

PREFIX = "predictions-"
SUFFIX = ".jsonl"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


class PredictionLog:
    """Appends predictions to rotated JSON Lines files in ``folder``."""

    def __init__(self, folder: str | Path, *, max_bytes: int = 64 << 20,
                 max_files: int = 100) -> None:
        if max_bytes <= 0 or max_files <= 0:
            raise InvalidInputError("the prediction log needs max_bytes > 0 and max_files > 0")
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(f"cannot create the prediction log folder {self.folder}: "
                                    f"{exc.strerror}; choose a writable folder") from exc
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._file: IO[str] | None = None
        self._size = 0
        self._lock = threading.Lock()

    def _open(self) -> IO[str]:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.folder / f"{PREFIX}{stamp}-{os.getpid()}{SUFFIX}"
        self._size = 0
        self._prune()
        return path.open("a", encoding="utf-8")

    def _prune(self) -> None:
        files = sorted(self.folder.glob(f"{PREFIX}*{SUFFIX}"))
        # The file about to be opened counts too.
        for old in files[: max(0, len(files) + 1 - self.max_files)]:
            old.unlink(missing_ok=True)

    def append(self, *, request_id: str, model: str, model_id: str | None,
               model_sha256: str | None, columns: Mapping[str, Sequence[Any]],
               predictions: Sequence[Any], probabilities: Sequence[Mapping[str, float]] | None,
               models: Sequence[Sequence[Mapping[str, Any]]] | None = None) -> None:
        """Log one request: a line per row with its inputs, prediction and probabilities.

        ``models`` (a server of several versions) holds each version's entries, one per
        row, the answering version first; each line then carries the answering ``version``
        and every version's entry for its row under ``models``.
        """
        when = datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="microseconds")
        head = {"time": when.replace("+00:00", "Z"), "request_id": request_id, "model": model,
                "model_id": model_id, "model_sha256": model_sha256}
        names = list(columns)
        lines = []
        for i, prediction in enumerate(predictions):
            row = {name: _jsonable(columns[name][i]) for name in names}
            record = head | {"inputs": row, "prediction": _jsonable(prediction),
                             "probabilities": None if probabilities is None
                             else probabilities[i]}
            if models:
                record |= {"version": models[0][i]["version"],
                           "models": [entries[i] for entries in models]}
            lines.append(json.dumps(record, separators=(",", ":")))
        text = "\n".join(lines) + "\n"
        with self._lock:
            if self._file is None or self._size >= self.max_bytes:
                if self._file is not None:
                    self._file.close()
                self._file = self._open()
            self._file.write(text)
            self._file.flush()
            self._size += len(text)

    def close(self) -> None:
        """Close the current file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
