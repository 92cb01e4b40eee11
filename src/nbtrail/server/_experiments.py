"""Experiments and git branches, comparisons, and sweeps with their trials."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from tornado import web

from ..experiments import _branches, _compare
from ..sweeps._trials import SweepSummary, list_sweeps, read_sweep
from ..tracking._gallery import media_entries
from ._base import ArgumentError, BaseHandler
from ._runs import frame_json

if TYPE_CHECKING:
    from ..store import Store


class ExperimentsHandler(BaseHandler):
    """``GET /nbtrail/api/experiments``: the tree of experiments and their git branches."""

    @web.authenticated
    async def get(self) -> None:
        """One entry an experiment, with run counts and its branches."""
        self.reply(await self.call(experiment_tree, self.store))


def experiment_tree(store: Store) -> list[dict[str, Any]]:
    """Experiments, newest activity first, each with its branches (runs, running, last run)."""
    frame = store.experiment_summary()
    tree: dict[str, dict[str, Any]] = {}
    for row in frame.iter_rows(named=True):
        node = tree.setdefault(row["experiment"], {
            "experiment": row["experiment"], "runs": 0, "running": 0,
            "last_run": row["last_run"], "branches": []})
        node["runs"] += row["runs"]
        node["running"] += row["running"]
        node["branches"].append({k: row[k] for k in ("branch", "runs", "running", "last_run")})
    return list(tree.values())


class BranchesHandler(BaseHandler):
    """``GET /nbtrail/api/branches``: every git branch with runs, and its best run."""

    @web.authenticated
    async def get(self) -> None:
        """Arguments: metric (the best run's), mode (max or min)."""
        metric = self.text_arg("metric")
        mode = self.choice_arg("mode", ("max", "min"), "max")
        frame = await self.call(_branches.branches, self.store, metric, mode)
        self.reply(frame_json(frame))


class CompareHandler(BaseHandler):
    """``GET /nbtrail/api/compare``: runs, branches or experiments side by side."""

    @web.authenticated
    async def get(self) -> None:
        """Exactly one of runs, branches, experiments (comma-separated); metric, mode, latency."""
        chosen = {name: self.list_arg(name) for name in ("runs", "branches", "experiments")}
        given = {name: values for name, values in chosen.items() if values}
        if len(given) != 1:
            raise ArgumentError(
                "give exactly one of runs=, branches= or experiments= (comma-separated), got "
                f"{', '.join(given) or 'none'}")
        ((kind, names),) = given.items()
        if len(names) < 2:
            raise ArgumentError(f"{kind}= needs at least two comma-separated values to compare")
        metric = self.text_arg("metric")
        mode = self.choice_arg("mode", ("max", "min"), "max")
        latency = self.bool_arg("latency", False)
        store = self.store
        comparison = await self.call(
            _compare.compare, store, metric=metric, mode=mode, latency=latency,
            **{kind: names})
        media = await self.call(lambda: {run.run_id: media_entries(store, run.run_id)
                                         for run in comparison.runs})
        self.reply({**comparison_json(comparison), "media": media})


def comparison_json(comparison: _compare.Comparison) -> dict[str, Any]:
    """Every section of a comparison as tables; curves grouped by metric then label."""
    sections = {name: frame_json(frame) for name, frame in comparison.to_polars().items()
                if name != "curves"}
    curves: dict[str, dict[str, list[list[float]]]] = {}
    for label, _run_id, key, step, value in comparison.curves.rows():
        curves.setdefault(key, {}).setdefault(label, []).append([step, value])
    notes = [diff.note for diff in comparison.code if diff.note]
    return {"labels": list(comparison.labels), "metric": comparison.metric,
            "curves": curves, "code_notes": notes, **sections}


class SweepsHandler(BaseHandler):
    """``GET /nbtrail/api/sweeps``: every sweep in the store."""

    @web.authenticated
    async def get(self) -> None:
        """One entry a sweep: name, directions, sessions, trials by state, best value."""
        self.reply(await self.call(sweep_list, self.store))


def sweep_list(store: Store) -> list[dict[str, Any]]:
    """Sweeps newest first, from the store's read model (no Optuna needed)."""
    return [_summary_json(summary) for summary in list_sweeps(store)]


def _summary_json(summary: SweepSummary) -> dict[str, Any]:
    # The list gives directions as one comma-separated string, the detail as a list.
    return {**dataclasses.asdict(summary), "directions": ",".join(summary.directions)}


class SweepHandler(BaseHandler):
    """``GET /nbtrail/api/sweeps/{sweep_id}``: the trials of one sweep and its best trial."""

    @web.authenticated
    async def get(self, sweep_id: str) -> None:
        """Trials ordered by number, with values, params and state."""
        self.reply(await self.call(sweep_trials, self.store, sweep_id))


def sweep_trials(store: Store, sweep_id: str) -> dict[str, Any]:
    """One sweep: its trials as a table and the best complete trial (single objective)."""
    found = read_sweep(sweep_id, store)
    best = found.best()
    return {**_summary_json(found.summary), "directions": list(found.summary.directions),
            "value_columns": found.value_columns, "trials": frame_json(found.frame),
            "best": dataclasses.asdict(best) if best is not None else None}
