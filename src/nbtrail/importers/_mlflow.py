"""``nt.import_mlflow``: bring the runs of an MLflow tracking store into nbtrail.

MLflow is read only through its own client (``MlflowClient(tracking_uri=...)``), so any
store it reads works: a file store, a SQL database (sqlite, PostgreSQL, MySQL) or a
tracking server. nbtrail is written through the store's writer as typed records rather
than through the tracker, because an imported run keeps MLflow's times and must not get
the git state, environment or notebook of the process that imports it.

Re-running an import brings only what is new. Each imported run carries MLflow's run id
(``RUN_ID_TAG``) and a digest of what MLflow's run summary said at import (``STATE_TAG``:
status, end time, params, tags, latest metric values). A run whose summary is unchanged is
skipped without further calls; one whose summary changed is brought up to date: the metric
points, params, tags and artifacts it lacks are added and its end recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import mimetypes
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import InvalidInputError, MissingExtraError, NbtrailError
from ..store import Artifact, Edge, Param, RunEnd, RunStart, Tag
from ._registry import pages, read_registry, versions_as_tags

if TYPE_CHECKING:
    from ..store import Store
    from ..store._journal import JournalWriter

RUN_ID_TAG = "mlflow.run_id"
STATE_TAG = "nbtrail.mlflow_state"
_PARENT_TAG = "mlflow.parentRunId"  # how MLflow records a nested run's parent
# MLflow's run statuses as nbtrail's; a scheduled run has not ended either.
_STATUSES = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished",
             "FAILED": "failed", "KILLED": "killed"}
_PAGE = 1000  # runs a search page (MLflow's own maximum for search_runs)
_PROGRESS_EVERY = 100  # runs between progress lines


class SourceReadError(NbtrailError):
    """MLflow failed while an import was reading it (a server gone, a run deleted meanwhile).

    Takes ``NbtrailError``'s row of ``errors.OUTCOMES``: exit status 1, HTTP 500.
    """


@dataclass(frozen=True)
class ImportResult:
    """What an import added to the store, by kind (a second, unchanged import adds 0).

    ``runs`` are new runs, ``runs_updated`` runs imported before that gained something in
    MLflow since, ``runs_unchanged`` runs skipped; ``experiments`` counts experiments the
    store had no run of before. ``notes`` says what could not be brought over and why.
    """

    source: str
    experiments: int = 0
    runs: int = 0
    runs_updated: int = 0
    runs_unchanged: int = 0
    params: int = 0
    tags: int = 0
    metric_points: int = 0
    artifacts: int = 0
    artifact_bytes: int = 0
    registered_models: int = 0
    model_versions: int = 0
    aliases: int = 0
    notes: tuple[str, ...] = field(default=())

    def lines(self) -> list[str]:
        """One line a kind, as ``nbtrail import mlflow`` prints them."""
        return [
            f"experiments     {self.experiments:,} new",
            f"runs            {self.runs:,} new, {self.runs_updated:,} updated, "
            f"{self.runs_unchanged:,} unchanged",
            f"params          {self.params:,}",
            f"tags            {self.tags:,}",
            f"metric points   {self.metric_points:,}",
            f"artifacts       {self.artifacts:,} ({self.artifact_bytes:,} bytes)",
            f"model versions  {self.model_versions:,} of {self.registered_models:,} "
            f"registered models, {self.aliases:,} aliases (kept as run tags)",
        ]

    def __repr__(self) -> str:
        counts = "; ".join(" ".join(line.split()) for line in self.lines())
        notes = f"; {len(self.notes)} notes" if self.notes else ""
        return f"<ImportResult from {self.source}: {counts}{notes}>"


def import_mlflow(tracking_uri: str, *, experiments: Sequence[str] | None = None,
                  store: Store | None = None,
                  progress: Callable[[str], None] | None = None) -> ImportResult:
    """Copy the experiments, runs and registered models of an MLflow store into nbtrail.

    ``tracking_uri`` is what MLflow takes: ``sqlite:///mlflow.db``, a folder of a file
    store (MLflow 3 reads one only with ``MLFLOW_ALLOW_FILE_STORE=true``),
    ``postgresql://…`` or ``http://host:5000``. ``experiments`` keeps only those MLflow
    experiments (by name); by default every active one. Runs keep their status, times,
    nesting, params, tags, every metric point and their artifacts; MLflow's run id is the
    tag ``mlflow.run_id``. Model versions become tags ``mlflow.registry/<name>/<version>``
    of the run they came from (nbtrail has no registry yet). Running it again imports only
    what is new. ``progress`` is called with a line now and then.

    Experimental: the import may record more of MLflow in later versions.

    Example:
        >>> result = nt.import_mlflow("sqlite:///mlflow.db")  # doctest: +SKIP
        >>> result.runs, result.metric_points  # doctest: +SKIP
        (120, 48000)
    """
    from ..tracking._tracker import store_or_configured

    source = _redacted(tracking_uri)
    client = _client(tracking_uri, source)
    from mlflow.exceptions import MlflowException

    store = store_or_configured(store)
    chosen = _experiments(client, experiments, source)
    known = _imported(store)
    names_before = set(store.experiments()) if store.exists() else set()
    try:
        runs = _parents_first([(run, experiment.name) for experiment in chosen
                               for run in pages(client.search_runs, size=_PAGE,
                                                experiment_ids=[experiment.experiment_id])])
    except MlflowException as exc:
        raise SourceReadError(
            f"MLflow failed while listing the runs of {source}: {_message(exc)}") from None
    copier = _Copier(client, store, known)
    for done, (run, experiment_name) in enumerate(runs, 1):
        try:
            copier.copy(run, experiment_name)
        except MlflowException as exc:
            raise SourceReadError(
                f"MLflow failed while importing run {run.info.run_id} from {source}: "
                f"{_message(exc)}; what was imported before it is kept, so running the "
                "import again continues from there") from None
        if progress is not None and done % _PROGRESS_EVERY == 0:
            progress(f"imported {done:,} of {len(runs):,} runs")
    copier.copy_registry()
    store.sync()
    new_experiments = {name for _, name in runs} - names_before
    return ImportResult(source=source, experiments=len(new_experiments & copier.touched),
                        notes=tuple(copier.notes), **copier.counts)


class _Copier:
    """Brings MLflow runs into one store, keeping count of what it wrote."""

    def __init__(self, client: Any, store: Store, known: dict[str, tuple[str, str | None]]
                 ) -> None:
        self.client = client
        self.store = store
        self.writer: JournalWriter = store.writer()
        self.known = known
        # MLflow run id -> nbtrail run id, for parents and model versions.
        self.ids = {mlflow_id: run_id for mlflow_id, (run_id, _) in known.items()}
        self.counts: Counter[str] = Counter()
        self.notes: list[str] = []
        self.touched: set[str] = set()  # experiments that got a new run

    def copy(self, run: Any, experiment: str) -> None:
        """Import one MLflow run, or bring an imported one up to date."""
        info, data = run.info, run.data
        state = _state(run)
        previous = self.known.get(info.run_id)
        if previous is not None and previous[1] == state:
            self.counts["runs_unchanged"] += 1
            return
        start = _seconds(info.start_time) or time.time()
        end = _seconds(info.end_time)
        if previous is None:
            run_id = self._start(run, experiment, start)
            have = _Have()
            self.counts["runs"] += 1
            self.touched.add(experiment)
        else:
            run_id = previous[0]
            have = _Have.of(self.store, run_id)
            self.counts["runs_updated"] += 1
        self.ids[info.run_id] = run_id

        for key, value in data.params.items():
            if have.params.get(key) != value:
                self.writer.append(Param(run_id, key, value, "str").to_journal())
                self.counts["params"] += 1
        for key, value in data.tags.items():
            if have.tags.get(key) != value:
                self.writer.append(Tag(run_id, key, value).to_journal())
                self.counts["tags"] += 1
        for key in data.metrics:
            self._copy_metric(info.run_id, run_id, key, have)
        self._copy_artifacts(info.artifact_uri, run_id, have, end or start)

        status = _STATUSES.get(info.status, "running")
        ended = (status, info.end_time) != (have.status, have.end_ms)
        if status != "running" and ended:
            self.writer.append(RunEnd(run_id, status, end or start).to_journal())
        # Last: a run cut short before this line is compared point by point next time.
        self.writer.append(Tag(run_id, STATE_TAG, state).to_journal())
        # A flush a run keeps the buffer to one run's metric points.
        self.writer.flush()

    def _start(self, run: Any, experiment: str, start: float) -> str:
        from ulid import ULID

        # From MLflow's start time, so nbtrail's ids sort by time as its own runs' do.
        run_id = str(ULID.from_timestamp(start))
        parent = run.data.tags.get(_PARENT_TAG)
        parent_id = self.ids.get(parent) if parent else None
        if parent and parent_id is None:
            self.notes.append(f"run {run.info.run_id}: its parent run {parent} is not imported, "
                              "so it is a top-level run here (the tag mlflow.parentRunId "
                              "keeps the link)")
        self.writer.append(RunStart(
            run_id=run_id, name=run.info.run_name or None, experiment=experiment,
            parent_id=parent_id, status="running", start_time=start, git_root=None,
            git_commit=None, git_branch=None, git_dirty=None, git_snapshot=None,
            notebook=None, env_id=None, code_id=None, seeds={}, hostname=None, pid=None,
            writer_id=None, user_name=run.info.user_id or None,
        ).to_journal())
        # With the start, so an import cut short finds this run again instead of a copy.
        self.writer.append(Tag(run_id, RUN_ID_TAG, run.info.run_id).to_journal())
        if parent_id:
            self.writer.append(Edge(parent_id, run_id, "parent", start).to_journal())
        return run_id

    def _copy_metric(self, mlflow_id: str, run_id: str, key: str, have: _Have) -> None:
        there = have.points(key)
        for point in self.client.get_metric_history(mlflow_id, key):
            value = float(point.value)
            found = (point.step, point.timestamp, _comparable(value))
            if there[found]:
                there[found] -= 1
                continue
            self.writer.add_metric(run_id, key, value, int(point.step), point.timestamp / 1000)
            self.counts["metric_points"] += 1

    def _copy_artifacts(self, artifact_uri: str, run_id: str, have: _Have, when: float
                        ) -> None:
        repository = _artifact_repository(artifact_uri, self.client.tracking_uri)
        for info in _artifact_files(repository):
            if info.path in have.artifacts and have.artifacts[info.path] in (info.file_size,
                                                                             None):
                continue
            # Downloaded to a file and copied to the store in chunks: never whole in memory.
            with tempfile.TemporaryDirectory(prefix="nbtrail-mlflow-") as tmp:
                local = repository.download_artifacts(info.path, dst_path=tmp)
                sha, size = self.store.put_blob(Path(local))
            artifact_id = f"art_{sha[:32]}"
            self.writer.append(Artifact(
                run_id=run_id, name=info.path, artifact_id=artifact_id, sha256=sha,
                size_bytes=size, media_type=mimetypes.guess_type(info.path)[0],
                logged_at=when).to_journal())
            self.writer.append(Edge(run_id, artifact_id, "produced", when).to_journal())
            self.counts["artifacts"] += 1
            self.counts["artifact_bytes"] += size

    def copy_registry(self) -> None:
        """Record every version of every registered model on the run it came from."""
        from mlflow.exceptions import MlflowException

        try:
            with _global_uri_for_file_store(self.client.tracking_uri):
                versions = list(read_registry(self.client))
        except MlflowException as exc:
            self.notes.append(f"the model registry could not be read: {_message(exc)}")
            return
        self.writer.flush()
        linked = {self.ids[v.run_id] for v in versions if v.run_id in self.ids}
        existing = {run_id: self.store.get_run(run_id).tags for run_id in linked}
        writes, recorded, notes = versions_as_tags(versions, self.ids, existing)
        for run_id, key, value in writes:
            self.writer.append(Tag(run_id, key, value).to_journal())
        self.notes.extend(notes)
        self.counts["model_versions"] += len(recorded)
        self.counts["registered_models"] += len({v.name for v in recorded})
        self.counts["aliases"] += sum(len(v.aliases) for v in recorded)


@dataclass
class _Have:
    """What the store already holds of an imported run (nothing, for a new one)."""

    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, int | None] = field(default_factory=dict)
    status: str | None = None
    end_ms: int | None = None  # milliseconds, as MLflow's times: float seconds may not match
    metric_keys: set[str] = field(default_factory=set)
    store: Store | None = None
    run_id: str | None = None

    @classmethod
    def of(cls, store: Store, run_id: str) -> _Have:
        """What ``store`` holds of run ``run_id``."""
        run = store.get_run(run_id)
        return cls(params=run.params, tags=run.tags,
                   artifacts={a["name"]: a["size_bytes"] for a in run.artifacts},
                   status=run.status,
                   end_ms=round(run.end_time.timestamp() * 1000) if run.end_time else None,
                   metric_keys=set(run.metrics), store=store, run_id=run_id)

    def points(self, key: str) -> Counter[tuple[int, int, object]]:
        """The points of metric ``key`` held, as ``(step, milliseconds, value)`` counts."""
        if self.store is None or self.run_id is None or key not in self.metric_keys:
            return Counter()
        history = self.store.metric_history(self.run_id, key)
        return Counter((step, round(stamp.timestamp() * 1000), _comparable(value))
                       for step, value, stamp in history.iter_rows())


def _client(tracking_uri: str, source: str) -> Any:
    """MLflow's client of ``tracking_uri``, or a clear error when it cannot read it."""
    if not isinstance(tracking_uri, str) or not tracking_uri.strip():
        raise InvalidInputError(
            f"tracking_uri must be an MLflow tracking URI such as sqlite:///mlflow.db, got "
            f"{tracking_uri!r}")
    try:
        import mlflow
        from mlflow.exceptions import MlflowException
    except ImportError as exc:
        raise MissingExtraError(
            "importing from MLflow reads its stores through MLflow's own client, which is not "
            "installed; run: pip install mlflow") from exc
    _check_local(tracking_uri)
    try:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        client.search_experiments(max_results=1)  # fails here on a store it cannot read
    except MlflowException as exc:
        raise InvalidInputError(
            f"MLflow cannot read the tracking URI {source}: {_message(exc)}") from None
    return client


def _check_local(tracking_uri: str) -> None:
    """Refuse a local store that does not exist: MLflow would create an empty one there."""
    scheme = urlsplit(tracking_uri).scheme.lower() if "://" in tracking_uri else ""
    if scheme in ("", "file"):
        path = Path(unquote(urlsplit(tracking_uri).path) if scheme else tracking_uri)
        what = "folder of an MLflow file store (such as ./mlruns)"
    elif scheme == "sqlite":
        rest = tracking_uri.split("://", 1)[1]
        if rest in ("", "/", "/:memory:"):
            return
        path = Path(unquote(rest.split("?", 1)[0][1:]))  # sqlite:///a.db is a.db
        what = "MLflow sqlite database file"
    else:
        return
    if not path.expanduser().exists():
        raise InvalidInputError(
            f"tracking_uri {tracking_uri!r}: {path} does not exist; give the {what} that "
            "MLflow wrote to")


def _global_uri_for_file_store(tracking_uri: str) -> contextlib.AbstractContextManager[None]:
    """Point MLflow's global tracking URI at a file store while its registry is read.

    MLflow's file registry looks up each version's logged model through a client of the
    global URI, not of its own store (a TODO in its ``file_store.py``): unset, that is
    ``sqlite:///mlflow.db``, which it would create in the current folder. Other stores
    need nothing.
    """
    if urlsplit(tracking_uri).scheme.lower() not in ("", "file"):
        return contextlib.nullcontext()
    from mlflow.tracking._tracking_service import utils

    scoped: Callable[[str], contextlib.AbstractContextManager[None]] | None = getattr(
        utils, "_use_tracking_uri", None)
    return contextlib.nullcontext() if scoped is None else scoped(tracking_uri)


def _experiments(client: Any, names: Sequence[str] | None, source: str) -> list[Any]:
    """The MLflow experiments to import: those named, else every active one."""
    every = list(pages(client.search_experiments))
    if names is None:
        return every
    if isinstance(names, str):
        names = [names]
    by_name = {experiment.name: experiment for experiment in every}
    for name in names:
        if name not in by_name:
            raise InvalidInputError(
                f"experiments: MLflow has no experiment {name!r} at {source}; its "
                f"experiments are: {', '.join(sorted(by_name)) or 'none'}")
    return [by_name[name] for name in dict.fromkeys(names)]


def _imported(store: Store) -> dict[str, tuple[str, str | None]]:
    """MLflow run id -> (nbtrail run id, state digest) of the runs imported before."""
    if not store.exists():
        return {}
    frame = store.run_tags([RUN_ID_TAG, STATE_TAG])
    return {row[RUN_ID_TAG]: (row["run_id"], row[STATE_TAG])
            for row in frame.iter_rows(named=True) if row[RUN_ID_TAG]}


def _parents_first(runs: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
    """The runs in start order, except that a parent always comes before its children."""
    by_id = {run.info.run_id: (run, name) for run, name in runs}
    placed: set[str] = set()
    ordered: list[tuple[Any, str]] = []
    for item in sorted(runs, key=lambda item: item[0].info.start_time or 0):
        chain: list[tuple[Any, str]] = []
        current: tuple[Any, str] | None = item
        while current is not None and current[0].info.run_id not in placed:
            placed.add(current[0].info.run_id)  # also ends a (broken) cycle of parents
            chain.append(current)
            current = by_id.get(current[0].data.tags.get(_PARENT_TAG, ""))
        ordered.extend(reversed(chain))
    return ordered


def _artifact_repository(artifact_uri: str, tracking_uri: str) -> Any:
    """MLflow's own artifact client for a run's artifact root.

    Made once a run: ``MlflowClient.list_artifacts(run_id)`` looks the run up again for
    every folder it lists, a third of an import's time.
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    try:
        return get_artifact_repository(artifact_uri=artifact_uri, tracking_uri=tracking_uri)
    except TypeError:
        # Older MLflow takes no tracking URI: it resolves a server's mlflow-artifacts:
        # URIs against the global one (MLFLOW_TRACKING_URI).
        return get_artifact_repository(artifact_uri)


def _artifact_files(repository: Any, path: str | None = None) -> Iterator[Any]:
    """Every file under a run's artifact root, folders walked."""
    for info in repository.list_artifacts(path):
        if info.is_dir:
            yield from _artifact_files(repository, info.path)
        else:
            yield info


def _state(run: Any) -> str:
    """A digest of MLflow's summary of a run: it changes when the run gains anything.

    Except an artifact or a metric point that leaves the latest values as they were (see
    docs/migrating-from-mlflow.md).
    """
    summary = {"status": run.info.status, "end": run.info.end_time,
               "params": run.data.params, "tags": run.data.tags,
               "metrics": {k: _comparable(float(v)) for k, v in run.data.metrics.items()}}
    text = json.dumps(summary, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _comparable(value: float) -> object:
    # NaN never equals itself, so a NaN point would never be found among those held.
    return "nan" if math.isnan(value) else value


def _seconds(milliseconds: int | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000


def _redacted(uri: str) -> str:
    """``uri`` without a password, for messages (a database URL may carry one)."""
    if not isinstance(uri, str) or "://" not in uri:
        return str(uri)
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc).splitlines()[0]

