"""Frozen records returned by store reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import _html

if TYPE_CHECKING:
    import polars as pl

# Set on a run without git state for a reason other than running outside any repository:
# "off" with ``capture_git=False``, "failed: <git's error>" when git refused to answer.
GIT_CAPTURE_TAG = "nbtrail.capture_git"


@dataclass(frozen=True)
class Run:
    """Everything recorded about one run, as read from the store.

    Attributes:
        params: Parameter values as logged (strings for non-JSON types).
        metrics: The latest value of each metric (highest step, then latest time).
        datasets: One dict per data set used: ``dataset_id``, ``name``, ``role``,
            ``n_rows``, ``schema``, ``stats``.
        models: One dict per model logged: ``model_id``, ``name``, ``format``, ``signature``...
        artifacts: One dict per artifact: ``name``, ``artifact_id``, ``sha256``, ``size_bytes``.
        git: ``root``, ``commit``, ``branch``, ``dirty``, ``snapshot``, or ``None`` when not
            captured (``git_note`` says why).
        env: ``python``, ``platform``, ``packages`` or ``None`` when not captured.
        code: The code snapshot: git ref and the notebook cells executed, or ``None``.
    """

    run_id: str
    name: str | None
    experiment: str
    status: str
    start_time: datetime
    end_time: datetime | None
    parent_id: str | None = None
    error: str | None = None
    notebook: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    git: dict[str, Any] | None = None
    env: dict[str, Any] | None = None
    code: dict[str, Any] | None = None
    seeds: dict[str, Any] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    user: str | None = None  # who ran it (the OS user), and where
    host: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, ``None`` while running."""
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()

    @property
    def git_note(self) -> str | None:
        """Why ``git`` is ``None``: capture was off, git failed, or not in a repository."""
        if self.git is not None:
            return None
        why = self.tags.get(GIT_CAPTURE_TAG)
        if why == "off":
            return "not recorded: git capture was off (capture_git=False)"
        if why:
            return f"not recorded: git {why}"
        return "not in a git repository"

    def _repr_html_(self) -> str:
        head = {
            "run_id": self.run_id, "name": self.name, "experiment": self.experiment,
            "status": self.status, "start": self.start_time, "duration_s": self.duration,
        }
        if self.error:
            head["error"] = self.error
        if self.git:
            head.update({f"git.{k}": v for k, v in self.git.items() if k != "root"})
        else:
            head["git"] = self.git_note
        parts = [_html.mapping(f"run {self.name or self.run_id}", head)]
        if self.params:
            parts.append(_html.mapping("params", self.params))
        if self.metrics:
            parts.append(_html.mapping("metrics (latest)", self.metrics))
        if self.datasets:
            parts.append(_html.table(
                ["name", "role", "dataset_id", "rows"],
                [(d["name"], d["role"], d["dataset_id"], d["n_rows"]) for d in self.datasets],
                caption="data sets",
            ))
        if self.models:
            parts.append(_html.table(
                ["name", "model_id", "format", "bytes"],
                [(m["name"], m["model_id"], m["format"], m["size_bytes"]) for m in self.models],
                caption="models",
            ))
        if self.artifacts:
            parts.append(_html.table(
                ["name", "sha256", "bytes"],
                [(a["name"], a["sha256"][:12], a["size_bytes"]) for a in self.artifacts],
                caption="artifacts",
            ))
        return "".join(parts)


@dataclass(frozen=True)
class Lineage:
    """A lineage graph: ``nodes`` (id, kind, label) and ``edges`` (src, dst, relation)."""

    root: str
    direction: str
    nodes: pl.DataFrame
    edges: pl.DataFrame

    def ids(self, kind: str | None = None) -> list[str]:
        """Node ids, optionally of one kind (``run``, ``dataset``, ``model``...)."""
        frame = self.nodes if kind is None else self.nodes.filter(kind=kind)
        return frame["id"].to_list()

    def to_dict(self) -> dict[str, Any]:
        """Plain nodes and edges, ready for JSON."""
        return {
            "root": self.root,
            "direction": self.direction,
            "nodes": self.nodes.to_dicts(),
            "edges": self.edges.to_dicts(),
        }

    def _repr_html_(self) -> str:
        return _html.table(
            ["src", "relation", "dst"],
            self.edges.select("src", "relation", "dst").rows(),
            caption=f"lineage {self.direction} from {self.root}: "
            f"{self.nodes.height} nodes, {self.edges.height} edges",
            max_rows=60,
        ) + _html.table(["id", "kind", "label"], self.nodes.rows(), caption="nodes", max_rows=60)


@dataclass(frozen=True)
class Backlog:
    """What this machine holds for a store that is not in the store's database yet.

    Attributes:
        journals: Journals with records past their folded (or shipped) offset.
        bytes: Their bytes past those offsets.
        blobs: Blobs waiting for the artifact store.
        last_sync: When this machine last folded or shipped into the database, if ever.
    """

    journals: int
    bytes: int
    blobs: int
    last_sync: datetime | None


@dataclass(frozen=True)
class Check:
    """One finding of ``Store.check``.

    What was checked, whether it is fine, and the detail (for a problem: what to do).
    """

    name: str
    ok: bool
    detail: str


# Node id prefixes; anything else is a run id.
NODE_KINDS = {
    "ds_": "dataset", "mdl_": "model", "art_": "artifact", "code_": "code", "env_": "environment",
    "pkg_": "package",
}


def node_kind(node_id: str) -> str:
    """The kind of a lineage node from its id prefix."""
    for prefix, kind in NODE_KINDS.items():
        if node_id.startswith(prefix):
            return kind
    return "run"
