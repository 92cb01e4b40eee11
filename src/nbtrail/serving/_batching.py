"""Adaptive batching: requests that arrive while the model is busy share its next call.

A scikit-learn call costs about the same for one row as for a hundred (validation,
column selection and pipeline steps dominate), so under concurrent load the server
gathers the requests queued during one model call into the next. An idle server calls
the model at once: there is no batching timer and no added latency. The model runs in a
single worker thread, so the event loop keeps reading requests meanwhile and the model is
never called from two threads at once.

If a batched call fails, each request of the batch is retried alone, so one bad request
fails alone and the others are answered.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ._bundle import ModelBundle, Prediction
from ._signature import Checked


@dataclass
class _Pending:
    checked: Checked
    probabilities: bool
    future: asyncio.Future[Prediction]


def _split(result: Prediction, sizes: list[int]) -> list[Prediction]:
    bounds = np.cumsum(sizes)[:-1]
    predictions = np.split(result.predictions, bounds)
    probabilities = (np.split(result.probabilities, bounds)
                     if result.probabilities is not None else [None] * len(sizes))
    return [Prediction(p, q, result.classes)
            for p, q in zip(predictions, probabilities, strict=True)]


def _merge(items: list[_Pending]) -> Checked:
    names = items[0].checked.arrays
    return Checked({name: np.concatenate([i.checked.arrays[name] for i in items])
                    for name in names},
                   sum(i.checked.n_rows for i in items))


class Batcher:
    """Runs ``bundle.predict`` for queued requests, several at a time when they pile up."""

    def __init__(self, bundle: ModelBundle, *, max_rows: int = 4096) -> None:
        self.bundle = bundle
        self.max_rows = max_rows
        self._queue: list[_Pending] = []
        self._draining = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbtrail-model")

    async def predict(self, checked: Checked, *, probabilities: bool = True) -> Prediction:
        """The model's answer for ``checked``; raises what the model raised on it alone."""
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(checked, probabilities, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        while self._queue and (not batch or rows + self._queue[0].checked.n_rows
                               <= self.max_rows):
            item = self._queue.pop(0)
            batch.append(item)
            rows += item.checked.n_rows
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = self._take()
                try:
                    results = await loop.run_in_executor(self._executor, self._run, batch)
                except Exception:
                    # Find the culprit: every request of the batch alone.
                    for item in batch:
                        try:
                            alone = await loop.run_in_executor(
                                self._executor, self._run, [item])
                        except Exception as exc:
                            if not item.future.done():  # done: the client went away
                                item.future.set_exception(exc)
                        else:
                            if not item.future.done():
                                item.future.set_result(alone[0])
                    continue
                for item, result in zip(batch, results, strict=True):
                    if not item.future.done():
                        item.future.set_result(result)
        finally:
            self._draining = False

    def _run(self, batch: list[_Pending]) -> list[Prediction]:
        probabilities = any(item.probabilities for item in batch)
        if len(batch) == 1:
            return [self.bundle.predict(batch[0].checked, probabilities=probabilities)]
        merged = self.bundle.predict(_merge(batch), probabilities=probabilities)
        return _split(merged, [item.checked.n_rows for item in batch])

    def close(self) -> None:
        """Stop the model thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)
