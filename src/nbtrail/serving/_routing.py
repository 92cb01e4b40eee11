"""Several versions in one server: the champion answers, shadows and canaries beside it.

``routing.json`` in the model folder names them (written by ``nt.package(...,
shadow=[...], canary={...})``); the champion's files stay at the top of the folder, so a
package without challengers is served exactly as before.

A *shadow* gets the champion's checked input off the response path: each shadow has a
bounded queue and one worker thread, so a full queue drops (and counts) the work instead
of delaying an answer, and a shadow that raises or hangs only fails its own part. The
worker lingers a moment (``SHADOW_LINGER``) and then takes every queued request in one
model call, so a shadow costs one call per batch, not per request. A shadow loaded from
its folder runs that call in a process of its own: in the server's process its Python
work would hold the GIL and delay champion requests arriving meanwhile.

A *canary* answers a share of the requests itself: sticky by request key (the same key
always gets the same version), random when the client sends none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInputError
from ._batching import _split
from ._bundle import ModelBundle, Prediction
from ._signature import Checked, SignatureError, _kind

log = logging.getLogger("nbtrail.serving")

ROUTING_FILE = "routing.json"
Role = Literal["champion", "shadow", "canary"]
# Requests a shadow may have waiting before new ones are dropped.
SHADOW_QUEUE = 256
# A shadow waits this long after a request before calling its model, so that under load
# one call takes many requests: its cost to the champion (the GIL, a core) stays small.
SHADOW_LINGER = 0.02
_MAX_ROWS = 4096


@dataclass(frozen=True)
class Routed:
    """One version the server holds and its part: champion, shadow or canary."""

    role: Role
    version: str
    bundle: ModelBundle
    ref: str | None = None
    share: float = 0.0
    # Its model folder: a shadow loaded from one runs in a process of its own.
    folder: Path | None = None
    trusted: bool = False


@dataclass(frozen=True)
class Routing:
    """Every version of a server: the champion first, then shadows, then canaries."""

    models: list[Routed]

    @property
    def champion(self) -> Routed:
        """The version that answers unless a canary is chosen."""
        return self.models[0]

    @property
    def shadows(self) -> list[Routed]:
        """Versions that see every request and answer none."""
        return [m for m in self.models if m.role == "shadow"]

    @property
    def canaries(self) -> list[Routed]:
        """Versions that answer their share of the requests."""
        return [m for m in self.models if m.role == "canary"]

    def answering(self, key: str | None) -> Routed:
        """The version that answers a request with ``key`` (``None``: a random draw)."""
        chosen = choose_canary(key, [c.share for c in self.canaries])
        return self.champion if chosen is None else self.canaries[chosen]

    def by_version(self, version: str) -> Routed | None:
        """The champion or canary of that version (shadows never answer)."""
        return next((m for m in self.models if m.version == version and m.role != "shadow"),
                    None)


def single(bundle: ModelBundle) -> Routing:
    """The routing of a server with one model."""
    return Routing([Routed("champion", bundle.version, bundle)])


def key_point(key: str) -> float:
    """A stable point in [0, 1) for a request key: the same key, the same version."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def choose_canary(key: str | None, shares: Sequence[float],
                  draw: Callable[[], float] = random.random) -> int | None:
    """The index of the canary that answers, or ``None`` for the champion."""
    if not shares:
        return None
    point = key_point(key) if key is not None else draw()
    upper = 0.0
    for index, share in enumerate(shares):
        upper += share
        if point < upper:
            return index
    return None


def load_routing(folder: str | Path, *, trusted: bool = False) -> Routing:
    """The champion in ``folder`` and the versions its ``routing.json`` names."""
    folder = Path(folder)
    path = folder / ROUTING_FILE
    if not path.is_file():
        return single(ModelBundle.load(folder, trusted=trusted))
    try:
        spec = json.loads(path.read_text())
        entries: list[tuple[Role, dict[str, Any]]] = (
            [("champion", spec["champion"])]
                   + [("shadow", s) for s in spec.get("shadows", [])]
                   + [("canary", c) for c in spec.get("canary", [])])
        models = [Routed(role, str(e["version"]),
                         ModelBundle.load(folder / e.get("folder", "."), trusted=trusted,
                                          version=str(e["version"])),
                         e.get("ref"), float(e.get("share", 0.0)),
                         folder / e.get("folder", "."), trusted)
                  for role, e in entries]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{path} is not a routing file made by nt.package "
                                f"({type(exc).__name__}: {exc}); package the model again"
                                ) from None
    return Routing(models)


@dataclass(frozen=True)
class Output:
    """One version's answer to one request, as the prediction log records it."""

    role: Role
    version: str
    model_id: str | None
    prediction: Prediction | None
    latency_ms: float | None
    error: str | None = None

    def rows(self, n_rows: int) -> list[dict[str, Any]]:
        """A log entry per row: prediction, probabilities, version and latency."""
        head: dict[str, Any] = {"role": self.role, "version": self.version,
                                "model_id": self.model_id,
                                "latency_ms": None if self.latency_ms is None
                                else round(self.latency_ms, 3)}
        if self.prediction is None:
            return [head | {"error": self.error}] * n_rows
        predictions = self.prediction.predictions.tolist()
        probabilities = self.prediction.probability_rows()
        return [head | {"prediction": predictions[i],
                        "probabilities": None if probabilities is None else probabilities[i]}
                for i in range(n_rows)]


@dataclass
class ShadowJob:
    """A request the shadows still work on; ``done`` runs once ``waiting`` of them did."""

    columns: dict[str, list[Any]]
    checked: Checked
    answered: Output
    done: Callable[[list[Output]], None] | None
    waiting: int
    outputs: dict[int, Output] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def finish(self, index: int, output: Output) -> None:
        """Record shadow ``index``'s part; the last one in calls ``done``."""
        with self._lock:
            self.outputs[index] = output
            last = len(self.outputs) == self.waiting
        if last and self.done is not None:
            try:  # in routing order, whichever shadow finished first
                self.done([self.answered, *(self.outputs[i] for i in sorted(self.outputs))])
            except Exception:
                log.exception("logging the shadow predictions failed")


def schema_differences(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """The input columns two signatures disagree on: missing in one, or another type."""
    def columns(spec: dict[str, Any]) -> dict[str, str]:
        return {str(c["name"]): _kind(str(c["dtype"])) for c in spec.get("inputs") or []}

    a, b = columns(first), columns(second)
    return [name for name in dict.fromkeys([*a, *b]) if a.get(name) != b.get(name)]


def _merge(items: list[Checked]) -> Checked:
    return Checked({name: np.concatenate([c.arrays[name] for c in items])
                    for name in items[0].arrays}, sum(c.n_rows for c in items))


def _serve_shadow(folder: str, trusted: bool, version: str, connection: Connection) -> None:
    """A shadow's own process: load the model, then answer each batch sent to it."""
    bundle = ModelBundle.load(folder, trusted=trusted, version=version)
    connection.send(None)
    while True:
        try:
            checked = connection.recv()
        except EOFError:  # the server closed the pipe, or died
            return
        try:
            connection.send((bundle.predict(checked), None))
        except Exception as exc:
            connection.send((None, f"{type(exc).__name__}: {exc}"))


class _ShadowProcess:
    """A shadow model in a process of its own, so it never holds the server's GIL."""

    def __init__(self, routed: Routed) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(
            target=_serve_shadow, name=f"nbtrail-shadow-{routed.version}",
            args=(str(routed.folder), routed.trusted, routed.version, child))
        self._process.start()
        child.close()
        try:
            self._connection.recv()
        except EOFError:
            raise InvalidInputError(f"shadow version {routed.version} did not load from "
                                    f"{routed.folder}; see the server log") from None

    def predict(self, checked: Checked) -> Prediction:
        self._connection.send(checked)
        prediction, error = self._connection.recv()
        if error is not None:
            raise ShadowFailed(error)
        return prediction

    def close(self) -> None:
        self._connection.close()
        self._process.join(timeout=2)
        if self._process.is_alive():
            self._process.terminate()


class ShadowFailed(Exception):
    """What a shadow's own process reported as its model's failure."""


class ShadowWorker:
    """One shadow version: a bounded queue and the thread that empties it."""

    def __init__(self, routed: Routed, index: int, *, on_output: Callable[[Output, int], None],
                 on_drop: Callable[[], None], own_check: bool = False,
                 max_queue: int = SHADOW_QUEUE, linger: float = SHADOW_LINGER) -> None:
        self.routed = routed
        self.index = index
        # Another input schema than the champion's (allow_schema_change): checked here.
        self.own_check = own_check
        self._linger = linger
        self._on_output = on_output
        self._on_drop = on_drop
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=max_queue)
        self._process: _ShadowProcess | None = None
        self._thread = threading.Thread(target=self._work, daemon=True,
                                        name=f"nbtrail-shadow-{routed.version}")

    def start(self) -> None:
        """Start the worker (the app's startup calls it, so a mere load starts nothing).

        Loaded from a folder, the model runs in a process of its own (no GIL shared with
        the champion); a model object given directly runs in the worker thread.
        """
        if self.routed.folder is not None:
            self._process = _ShadowProcess(self.routed)
        self._thread.start()

    def _output(self, prediction: Prediction | None, latency_ms: float | None,
                error: str | None = None) -> Output:
        bundle = self.routed.bundle
        return Output("shadow", self.routed.version, bundle.model_id, prediction,
                      latency_ms, error)

    def submit(self, request: ShadowJob) -> None:
        """Queue ``request``, or drop it (counted, logged as dropped) if the queue is full."""
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            self._on_drop()
            request.finish(self.index,
                           self._output(None, None, "dropped: the shadow queue was full"))

    def _take(self, first: ShadowJob) -> list[ShadowJob]:
        batch, rows = [first], first.checked.n_rows
        while rows < _MAX_ROWS:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # closing: answer what was taken, then stop
                self._queue.put(None)
                break
            batch.append(item)
            rows += item.checked.n_rows
        return batch

    def _work(self) -> None:
        while (first := self._queue.get()) is not None:
            time.sleep(self._linger)
            batch = self._take(first)
            outputs: dict[int, Output] = {}
            inputs: dict[int, Checked] = {}
            for i, request in enumerate(batch):
                if not self.own_check:
                    inputs[i] = request.checked
                    continue
                try:  # another schema (allow_schema_change): its own check, value by value
                    inputs[i] = self.routed.bundle.signature.check(request.columns)
                except SignatureError as exc:
                    outputs[i] = self._output(None, None, f"input refused: {exc}")
            if inputs:
                outputs |= dict(zip(inputs, self._run(list(inputs.values())), strict=True))
            for i, request in enumerate(batch):
                self._on_output(outputs[i], request.checked.n_rows)
                request.finish(self.index, outputs[i])

    def _run(self, batch: list[Checked]) -> list[Output]:
        start = time.perf_counter()
        try:
            merged = (self._process or self.routed.bundle).predict(_merge(batch))
        except Exception as exc:
            error = str(exc) if isinstance(exc, ShadowFailed) else \
                f"{type(exc).__name__}: {exc}"
            log.error("shadow version %s failed: %s", self.routed.version, error,
                      exc_info=not isinstance(exc, ShadowFailed))
            latency = (time.perf_counter() - start) * 1e3
            return [self._output(None, latency, error) for _ in batch]
        latency = (time.perf_counter() - start) * 1e3
        parts = _split(merged, [checked.n_rows for checked in batch])
        return [self._output(part, latency) for part in parts]

    def close(self) -> None:
        """Stop after the queued work; a hanging shadow thread is left behind (a daemon)."""
        if self._thread.is_alive():
            try:
                self._queue.put(None, timeout=1)
            except queue.Full:
                pass
            else:
                self._thread.join(timeout=5)
        if self._process is not None:
            self._process.close()
