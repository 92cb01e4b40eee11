"""Runs: the paged, filtered runs table, one run, its metric histories, artifacts, lineage."""

from __future__ import annotations

import mimetypes
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tornado import web

from .. import __version__
from ..store._filter import compile_filter
from ..tracking._gallery import media_entries
from ._base import ArgumentError, BaseHandler

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store

# Attribute columns every row of the runs table carries.
ATTRIBUTES = ("run_id", "name", "experiment", "status", "start_time", "end_time", "duration",
              "parent_id", "branch", "commit", "notebook", "error")
MAX_PAGE = 1000
# A run view draws curves, not every point: longer histories are thinned to this many.
MAX_POINTS = 2000
MAX_KEY_METRICS = 20


def frame_json(frame: pl.DataFrame) -> dict[str, Any]:
    """A DataFrame as ``columns`` and ``rows`` (lists, so the column order survives JSON)."""
    return {"columns": frame.columns, "rows": [list(row) for row in frame.rows()]}


class StoreHandler(BaseHandler):
    """``GET /nbtrail/api/store``: where the store is and whether it exists yet."""

    @web.authenticated
    async def get(self) -> None:
        """Describe the store this server reads."""
        store = self.store
        self.reply({"location": store.location, "exists": store.exists(),
                    "root_dir": str(self.settings["nbtrail_root"]), "version": __version__})


class RunsHandler(BaseHandler):
    """``GET /nbtrail/api/runs``: one page of runs, filtered and ordered like ``nt.runs``."""

    @web.authenticated
    async def get(self) -> None:
        """One page of runs.

        Arguments: where, order_by, experiment, limit, offset, columns (comma-separated),
        nest (true: children are left out, under their parent), parent (its children) and
        key_metrics (how many of the page's most common metrics to add to the values).
        """
        where = self.text_arg("where")
        order_by = self.text_arg("order_by")
        experiment = self.text_arg("experiment")
        limit = self.int_arg("limit", 100, high=MAX_PAGE)
        offset = self.int_arg("offset", 0)
        columns = self.list_arg("columns")
        nest = self.bool_arg("nest", False)
        parent = self.text_arg("parent")
        n_key = self.int_arg("key_metrics", 0, high=MAX_KEY_METRICS)
        bad = [c for c in columns if not c.startswith(("metrics.", "params.", "tags."))]
        if bad:
            raise ArgumentError(
                f"columns must be metrics.<key>, params.<key> or tags.<key>, got "
                f"{', '.join(map(repr, bad))}")
        self.reply(await self.call(runs_page, self.store, where=where, order_by=order_by,
                                   experiment=experiment, limit=limit, offset=offset,
                                   columns=columns, nest=nest, parent=parent, n_key=n_key))


def runs_page(store: Store, *, where: str | None, order_by: str | None,
              experiment: str | None, limit: int, offset: int, columns: list[str],
              nest: bool = False, parent: str | None = None, n_key: int = 0) -> dict[str, Any]:
    """The runs table's page: rows with the chosen columns, the total and every key.

    Each row says how many of its children match (``children``) and whether it logged a
    model (``has_model``). ``key_metrics`` names the ``n_key`` metrics most rows of the page
    have (the sidebar's columns until the user picks some); rows carry their values too.
    ``nest`` leaves out the children of matching runs (they are one ``parent`` query away),
    so 60 sweep trials do not drown the runs beside them; a child whose parent does not
    match stays in the page.
    """
    parent_ids = store.parent_ids()
    scoped = where
    if parent is not None:
        scoped = _both(where, f"parent_id = {_literal(parent)}")
    elif nest and parent_ids:
        shown = store.runs(where=_both(where, f"run_id in ({_literals(parent_ids)})"),
                           experiment=experiment)["run_id"].to_list()
        if shown:
            scoped = _both(where, f"parent_id is null or parent_id not in ({_literals(shown)})")
    frame = store.runs(where=scoped, order_by=order_by, experiment=experiment, limit=limit,
                       offset=offset)
    total = (offset + frame.height if frame.height < limit and (frame.height or not offset)
             else store.count_runs(where=scoped, experiment=experiment))
    keys = {kind: [c.removeprefix(f"{kind}.") for c in frame.columns
                   if c.startswith(f"{kind}.")] for kind in ("metrics", "params", "tags")}
    key_metrics = key_metric_columns(frame, n_key)
    wanted = [*columns, *(c for c in key_metrics if c not in columns)]
    present = [c for c in wanted if c in frame.columns]
    page_ids = frame["run_id"].to_list()
    with_model = store.runs_with_models(page_ids)
    children = {run_id: store.count_runs(where=_both(where, f"parent_id = {_literal(run_id)}"),
                                         experiment=experiment)
                for run_id in set(page_ids) & set(parent_ids)}
    rows = []
    for row in frame.select(*ATTRIBUTES, *present).iter_rows(named=True):
        values = {c: row.pop(c) for c in present}
        rows.append({**row, "children": children.get(row["run_id"], 0),
                     "has_model": row["run_id"] in with_model,
                     "values": {c: values.get(c) for c in wanted}})
    return {"total": total, "offset": offset, "limit": limit, "columns": columns,
            "keys": keys, "key_metrics": key_metrics, "runs": rows}


def key_metric_columns(frame: pl.DataFrame, n: int) -> list[str]:
    """The metric columns most rows of ``frame`` have (ties by name): the default columns."""
    counts = frame.select(c for c in frame.columns if c.startswith("metrics.")).count()
    present = [(-counts[c][0], c) for c in counts.columns if counts[c][0]]
    return [c for _, c in sorted(present)[:n]]


def _literal(text: str) -> str:
    """A string literal of the filter language."""
    return "'" + text.replace("'", "''") + "'"


def _literals(texts: list[str]) -> str:
    return ", ".join(map(_literal, texts))


def _both(where: str | None, condition: str) -> str:
    """``where`` and ``condition``; ``where`` alone is checked first, so its errors quote it."""
    if not where:
        return condition
    compile_filter(where)
    return f"({where}) and ({condition})"


class RunHandler(BaseHandler):
    """``GET /nbtrail/api/runs/{run_id}``: everything recorded about one run."""

    @web.authenticated
    async def get(self, run_id: str) -> None:
        """The run, its metric histories and its lineage both ways."""
        self.reply(await self.call(run_details, self.store, run_id))


def run_details(store: Store, run_id: str) -> dict[str, Any]:
    """One run as JSON: its record, metric curves (thinned), media and lineage."""
    run = store.get_run(run_id)
    record = asdict(run)
    record["duration"] = run.duration
    record["git_note"] = run.git_note
    if run.code is not None:  # the cells are for reproduce and diffs, not for the panel
        cells = run.code.get("cells") or []
        record["code"] = {**{k: v for k, v in run.code.items() if k != "cells"},
                          "n_cells": len(cells)}
    points = store.metric_curves([run.run_id], max_points=MAX_POINTS)
    histories: dict[str, dict[str, Any]] = {}
    for key, step, value, n in points.select("key", "step", "value", "n").rows():
        curve = histories.setdefault(key, {"points": [], "total": n})
        curve["points"].append([step, value])
    lineage = store.lineage(run.run_id, direction="both", depth=3)
    return {"run": record, "histories": histories, "media": media_entries(store, run.run_id),
            "lineage": lineage.to_dict()}


class MetricHandler(BaseHandler):
    """``GET /nbtrail/api/runs/{run_id}/metrics/{key}``: every point of one metric."""

    @web.authenticated
    async def get(self, run_id: str, key: str) -> None:
        """All points: step, value, timestamp."""
        frame = await self.call(self.store.metric_history, run_id, key)
        self.reply(frame_json(frame))


class ArtifactHandler(BaseHandler):
    """``GET /nbtrail/api/runs/{run_id}/artifacts/{name}``: download an artifact's file."""

    @web.authenticated
    async def get(self, run_id: str, name: str) -> None:
        """The stored bytes, as an attachment named after the artifact."""
        store = self.store
        path = await self.call(store.artifact_path, run_id, name)
        # The store's folder is the only place served from: a blob replaced by a link to a
        # file elsewhere is refused, whatever the database says.
        resolved = path.resolve()
        if not resolved.is_relative_to(store.home.resolve()):
            raise web.HTTPError(403, f"artifact {name!r} resolves outside the store")
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self.set_header("Content-Type", media)
        self.set_header("Content-Disposition",
                        f"attachment; filename*=UTF-8''{quote(name.rsplit('/', 1)[-1], safe='')}")
        self.set_header("X-Content-Type-Options", "nosniff")
        # A logged HTML file (a plotly figure's, say) is a download: were a browser to open
        # it anyway, it runs no script and loads nothing, as if in a sandboxed frame.
        self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        with open(resolved, "rb") as handle:
            while chunk := handle.read(1 << 20):
                self.write(chunk)
                await self.flush()
        await self.finish(set_content_type=media)


class LineageHandler(BaseHandler):
    """``GET /nbtrail/api/lineage/{node_id}``: the lineage graph of a run, data set or model."""

    @web.authenticated
    async def get(self, node_id: str) -> None:
        """Arguments: direction (up, down, both), depth (1 to 50)."""
        direction = self.choice_arg("direction", ("up", "down", "both"), "up")
        depth = self.int_arg("depth", 10, low=1, high=50)
        lineage = await self.call(self.store.lineage, node_id, direction=direction,
                                  depth=depth)
        self.reply(lineage.to_dict())

