"""Runs: the paged, filtered runs table, one run, its metric histories, artifacts, lineage."""

from __future__ import annotations

import mimetypes
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tornado import web

from .. import __version__
from ._base import ArgumentError, BaseHandler

if TYPE_CHECKING:
    import polars as pl

    from ..store._duckdb import DuckDBStore

# Attribute columns every row of the runs table carries.
ATTRIBUTES = ("run_id", "name", "experiment", "status", "start_time", "end_time", "duration",
              "parent_id", "branch", "commit", "notebook", "error")
MAX_PAGE = 1000
# A run view draws curves, not every point: longer histories are thinned to this many.
MAX_POINTS = 2000


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
        """Arguments: where, order_by, experiment, limit, offset, columns (comma-separated)."""
        where = self.text_arg("where")
        order_by = self.text_arg("order_by")
        experiment = self.text_arg("experiment")
        limit = self.int_arg("limit", 100, high=MAX_PAGE)
        offset = self.int_arg("offset", 0)
        columns = self.list_arg("columns")
        bad = [c for c in columns if not c.startswith(("metrics.", "params.", "tags."))]
        if bad:
            raise ArgumentError(
                f"columns must be metrics.<key>, params.<key> or tags.<key>, got "
                f"{', '.join(map(repr, bad))}")
        self.reply(await self.call(runs_page, self.store, where=where, order_by=order_by,
                                   experiment=experiment, limit=limit, offset=offset,
                                   columns=columns))


def runs_page(store: DuckDBStore, *, where: str | None, order_by: str | None,
              experiment: str | None, limit: int, offset: int,
              columns: list[str]) -> dict[str, Any]:
    """The runs table's page: rows with the chosen columns, the total and every key."""
    frame = store.runs(where=where, order_by=order_by, experiment=experiment, limit=limit,
                       offset=offset)
    total = (offset + frame.height if frame.height < limit and (frame.height or not offset)
             else store.count_runs(where=where, experiment=experiment))
    keys = {kind: [c.removeprefix(f"{kind}.") for c in frame.columns
                   if c.startswith(f"{kind}.")] for kind in ("metrics", "params", "tags")}
    present = [c for c in columns if c in frame.columns]
    rows = []
    for row in frame.select(*ATTRIBUTES, *present).iter_rows(named=True):
        values = {c: row.pop(c) for c in present}
        rows.append({**row, "values": {c: values.get(c) for c in columns}})
    return {"total": total, "offset": offset, "limit": limit, "columns": columns,
            "keys": keys, "runs": rows}


class RunHandler(BaseHandler):
    """``GET /nbtrail/api/runs/{run_id}``: everything recorded about one run."""

    @web.authenticated
    async def get(self, run_id: str) -> None:
        """The run, its metric histories and its lineage both ways."""
        self.reply(await self.call(run_details, self.store, run_id))


def run_details(store: DuckDBStore, run_id: str) -> dict[str, Any]:
    """One run as JSON: its record, metric curves (thinned) and lineage."""
    run = store.get_run(run_id)
    record = asdict(run)
    record["duration"] = run.duration
    record["git_note"] = run.git_note
    if run.code is not None:  # the cells are for reproduce and diffs, not for the panel
        cells = run.code.get("cells") or []
        record["code"] = {**{k: v for k, v in run.code.items() if k != "cells"},
                          "n_cells": len(cells)}
    points = store.sql(
        f"""
        WITH m AS (SELECT key, step, value, row_number() OVER (PARTITION BY key
                          ORDER BY step, timestamp) AS i, count(*) OVER (PARTITION BY key) AS n
                   FROM metrics WHERE run_id = ?)
        SELECT key, step, value, n FROM m
        WHERE n <= {MAX_POINTS} OR i % ceil(n / {MAX_POINTS})::BIGINT = 0 OR i = n
        ORDER BY key, i
        """, [run.run_id])
    histories: dict[str, dict[str, Any]] = {}
    for key, step, value, n in points.rows():
        curve = histories.setdefault(key, {"points": [], "total": n})
        curve["points"].append([step, value])
    lineage = store.lineage(run.run_id, direction="both", depth=3)
    return {"run": record, "histories": histories, "lineage": lineage.to_dict()}


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
        # The blob folder is the only place served from: a blob replaced by a link to a
        # file elsewhere is refused, whatever the database says.
        resolved = path.resolve()
        if not resolved.is_relative_to(store.blob_dir.resolve()):
            raise web.HTTPError(403, f"artifact {name!r} resolves outside the store")
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self.set_header("Content-Type", media)
        self.set_header("Content-Disposition",
                        f"attachment; filename*=UTF-8''{quote(name.rsplit('/', 1)[-1], safe='')}")
        self.set_header("X-Content-Type-Options", "nosniff")
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
        lineage = await self.call(self.store.lineage, node_id, direction=direction,  # type: ignore[arg-type]
                                  depth=depth)
        self.reply(lineage.to_dict())

