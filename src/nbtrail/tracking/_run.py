"""The active run: what ``with nt.run() as run:`` gives you to log into."""

from __future__ import annotations

import mimetypes
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InvalidInputError, RunFinishedError, StoreFullError
from ..store import Artifact, Dataset, Edge, Model, Param, RunDataset, RunEnd, Tag
from ..store._journal import TIME_RANGE
from ._keys import check_key, metric_value, param_value, tag_value

if TYPE_CHECKING:
    from ..store import Store
    from ._datasets import DatasetProfile
    from ._media import File, Kind
    from ._tracker import Capture, Tracker

Status = Literal["running", "finished", "failed", "killed"]
# Rows of each logged data set kept as a sample.
SAMPLE_ROWS = 1000
_STEPS = 1 << 63  # a step is a signed 64-bit integer in the store


class ActiveRun:
    """A run being recorded. Use it as a context manager; leaving the block ends it.

    Example:
        >>> with nt.run(name="baseline") as run:          # doctest: +SKIP
        ...     run.log_params({"C": 1.0})
        ...     run.log_metric("loss", 0.31, step=3)
    """

    def __init__(self, tracker: Tracker, run_id: str, *, name: str | None, experiment: str,
                 parent_id: str | None) -> None:
        self._tracker = tracker
        self._writer = tracker.store.writer()
        self.run_id = run_id
        self.name = name
        self.experiment = experiment
        self.parent_id = parent_id
        self._status: Status = "running"
        self._lock = threading.Lock()
        self._metric_keys: set[str] = set()
        self._steps: dict[str, int] = {}
        self._params: dict[str, tuple[str | None, str]] = {}
        self._datasets: dict[str, tuple[str, DatasetProfile]] = {}
        self._capture: Capture | None = None
        self._thread: threading.Thread | None = None  # the thread that started it

    def __reduce__(self) -> tuple[Any, ...]:
        # A run handed to a worker process (spawned or forked) travels by id: the worker
        # logs into it through its own journal, and ending it stays with this process.
        return (_reattach, (str(self._tracker.store.location), self.run_id, self.name,
                            self.experiment, self.parent_id, dict(self._steps)))

    def __repr__(self) -> str:
        return f"<nbtrail run {self.run_id} name={self.name!r} status={self._status}>"

    def _repr_html_(self) -> str:
        # What the store has of the run, with its figures, images, tables and texts inline.
        from ._gallery import media_html

        self._writer.flush()
        return self.store.get_run(self.run_id)._repr_html_() + media_html(self.store,
                                                                           self.run_id)

    @property
    def status(self) -> Status:
        """``running`` until the run ends, then ``finished`` or ``failed``."""
        return self._status

    @property
    def store(self) -> Store:
        """The store this run logs to."""
        return self._tracker.store

    # -- params, metrics, tags ----------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Record one input parameter; a param keeps one value for the whole run."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record several parameters at once."""
        self._check_open("params", next(iter(params), ""))
        encoded = {check_key("param", k): param_value(k, v) for k, v in _mapping(params).items()}
        for key, value in encoded.items():
            known = self._params.get(key)
            if known is not None and known != value:
                raise InvalidInputError(
                    f"param {key!r} was already logged as {known[0]!r} in run {self.run_id}; "
                    "a param keeps one value per run — log changing values as a metric, "
                    "or start a new run"
                )
        self._params.update(encoded)
        for key, (text, kind) in encoded.items():
            self._writer.append(Param(self.run_id, key, text, kind).to_journal())

    def log_metric(self, key: str, value: float, step: int | None = None,
                   timestamp: float | None = None) -> None:
        """Record one metric point; ``step`` defaults to the key's previous step + 1 (from 0).

        NaN and ±inf are stored as they are.
        """
        if key not in self._metric_keys:
            self._check_open("metric", key)
            check_key("metric", key)
            self._metric_keys.add(key)
        elif self._status != "running":
            self._check_open("metric", key)
        number = value if type(value) is float else metric_value(key, value)
        if step is None:
            step = self._steps.get(key, -1) + 1
        elif not isinstance(step, int) or isinstance(step, bool) or not -_STEPS <= step < _STEPS:
            raise InvalidInputError(
                f"metric {key!r}: step must be an integer of 64 bits, got {step!r:.40}")
        if timestamp is None:
            timestamp = time.time()
        elif (not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool)
                or not TIME_RANGE[0] <= timestamp <= TIME_RANGE[1]):
            raise InvalidInputError(
                f"metric {key!r}: timestamp must be seconds since the epoch (as time.time() "
                f"gives), got {timestamp!r:.40}")
        self._steps[key] = step
        self._writer.add_metric(self.run_id, key, number, step, timestamp)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None,
                    timestamp: float | None = None) -> None:
        """Record several metrics at the same step and time."""
        stamp = time.time() if timestamp is None else timestamp
        for key, value in _mapping(metrics).items():
            self.log_metric(key, value, step=step, timestamp=stamp)

    def set_tag(self, key: str, value: Any) -> None:
        """Attach a text label to the run (tags may change; the last value wins)."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Attach several tags."""
        self._check_open("tag", next(iter(tags), ""))
        for key, value in _mapping(tags).items():
            self._writer.append(Tag(self.run_id, check_key("tag", key),
                                    tag_value(key, value)).to_journal())

    # -- data sets, models, artifacts ----------------------------------------------------

    def log_dataset(self, data: object, name: str = "data", role: str = "input") -> str:
        """Record a data set used by the run: fingerprint, schema and column statistics.

        A random sample of ``SAMPLE_ROWS`` rows is kept too (as Parquet in the store), so
        comparisons can time a model on real rows. Accepts pandas, polars, numpy and
        pyarrow data. Returns the data set id, which is the same for the same content in
        any process.
        """
        from ._datasets import profile_dataset

        self._check_open("data set", name)
        check_key("data set name", name)
        check_key("data set role", role)
        profile = profile_dataset(data, sample_rows=SAMPLE_ROWS)
        dataset_id = "ds_" + profile.fingerprint.removeprefix("sha256:")[:32]
        now = time.time()
        if self._tracker.first_time(dataset_id):
            row = profile.to_json()
            sample = (self._tracker.store.put_blob(profile.sample)[0] if profile.sample
                      else None)
            self._writer.append(Dataset(
                dataset_id=dataset_id, fingerprint=profile.fingerprint,
                source_type=profile.source_type, n_rows=profile.n_rows,
                n_columns=profile.n_columns, schema=row["schema"], stats=row["stats"],
                first_seen=now, sample_sha256=sample,
            ).to_journal())
        self._writer.append(RunDataset(self.run_id, dataset_id, name, role, now).to_journal())
        self._edge(dataset_id, self.run_id, role, now)
        self._datasets[dataset_id] = (role, profile)
        return dataset_id

    def log_model(self, model: object, name: str = "model", *, input_example: object = None,
                  pickle: bool = False) -> str:
        """Store a trained model and its input signature; returns the model id.

        scikit-learn models are stored in the safe skops format. Other objects need
        ``pickle=True`` (a pickle runs code when loaded: only load your own).
        The input signature comes from ``input_example``, else from the training data
        set logged in this run (role ``train``, else the last one logged).
        """
        from ulid import ULID

        from ._models import infer_signature, serialize_model

        self._check_open("model", name)
        check_key("model name", name)
        serialized = serialize_model(model, pickle=pickle)
        sha, size = self._tracker.store.put_blob(serialized.data)
        training = self._training_dataset()
        profile = training[1] if training else None
        if input_example is not None:
            signature = infer_signature(input_example, profile=profile)
        elif profile is not None:
            signature = infer_signature(None, profile=profile)
        else:
            signature = None
        model_id = f"mdl_{ULID()}"
        now = time.time()
        self._writer.append(Model(
            model_id=model_id, run_id=self.run_id, name=name, flavor=serialized.flavor,
            class_name=serialized.class_name, format=serialized.format, sha256=sha,
            size_bytes=size, signature=signature,
            training_dataset_id=training[0] if training else None, created_at=now,
        ).to_journal())
        self._edge(self.run_id, model_id, "produced", now)
        return model_id

    def log_artifact(self, path: str | Path, name: str | None = None) -> list[str]:
        """Store a file, or every file under a folder; returns the artifact ids.

        Content-addressed: the same bytes are stored once, however often they are logged.
        """
        source = Path(path)
        self._check_open("artifact", str(path))
        if not source.exists():
            raise InvalidInputError(
                f"artifact path {str(path)!r} does not exist (relative to {Path.cwd()}); "
                "save the file first, then log it"
            )
        base = name or source.name
        files = ([(base, source)] if source.is_file() else
                 [(f"{base}/{p.relative_to(source).as_posix()}", p)
                  for p in sorted(source.rglob("*")) if p.is_file()])
        return [self._store_artifact(artifact_name, file, mimetypes.guess_type(file.name)[0])
                for artifact_name, file in files]

    def log_figure(self, fig: object, name: str) -> list[str]:
        """Store a matplotlib or plotly figure as an image; returns the artifact ids.

        Stored as ``<name>.png``; a plotly figure also as ``<name>.json`` (its full spec)
        and ``<name>.html`` (interactive, plotly.js included). plotly's PNG needs kaleido:
        without it only the JSON and HTML are stored, with a warning.

        Example:
            >>> fig, ax = plt.subplots(); ax.plot(losses)         # doctest: +SKIP
            >>> run.log_figure(fig, "loss")                       # doctest: +SKIP
        """
        from ._media import figure_files

        self._check_open("figure", name)
        check_key("figure name", name)
        return [self._store_file(f, "figure") for f in figure_files(fig, name)]

    def log_image(self, image: object, name: str, step: int | None = None) -> str:
        """Store an image as PNG; returns the artifact id.

        ``image`` is a numpy array (height × width grey, or × 3 RGB, × 4 RGBA; uint8, bool,
        or float in [0, 1]), a PIL image, or the path of an image file. With ``step``, the
        image joins a series shown step by step (stored as ``<name>/step-<step>.png``).

        Example:
            >>> run.log_image(sample, "reconstruction", step=epoch)   # doctest: +SKIP
        """
        from ._media import image_file

        self._check_open("image", name)
        check_key("image name", name)
        return self._store_file(image_file(image, name, step), "image", step)

    def log_table(self, table: object, name: str) -> str:
        """Store a pandas or polars DataFrame or a pyarrow Table as Parquet; returns its id.

        Stored as ``<name>.parquet``; at most ``MAX_TABLE_ROWS`` (100,000) rows: log a
        sample of bigger ones, or record them as a data set with :meth:`log_dataset`.
        """
        from ._media import table_file

        self._check_open("table", name)
        check_key("table name", name)
        return self._store_file(table_file(table, name), "table")

    def log_text(self, text: str, name: str) -> str:
        """Store text as a UTF-8 file (``.txt`` added to a name without suffix); returns its id."""
        from ._media import text_file

        self._check_open("text", name)
        check_key("text name", name)
        return self._store_file(text_file(text, name), "text")

    def log_dict(self, obj: dict[str, Any] | list[Any], name: str) -> str:
        """Store a dict or list as JSON, or YAML for a name ending in .yaml/.yml; returns its id.

        Example:
            >>> run.log_dict({"classes": ["cat", "dog"]}, "labels.yaml")   # doctest: +SKIP
        """
        from ._media import dict_file

        self._check_open("dict", name)
        check_key("dict name", name)
        return self._store_file(dict_file(obj, name), "dict")

    def _store_file(self, file: File, kind: Kind, step: int | None = None) -> str:
        return self._store_artifact(file.name, file.data, file.media_type, kind, step)

    def _store_artifact(self, name: str, source: Path | bytes, media_type: str | None,
                        kind: Kind | None = None, step: int | None = None) -> str:
        sha, size = self._tracker.store.put_blob(source)
        artifact_id = f"art_{sha[:32]}"
        now = time.time()
        self._writer.append(Artifact(
            run_id=self.run_id, name=name, artifact_id=artifact_id, sha256=sha,
            size_bytes=size, media_type=media_type, logged_at=now, kind=kind, step=step,
        ).to_journal())
        self._edge(self.run_id, artifact_id, "produced", now)
        return artifact_id

    def log_input(self, node_id: str, relation: str = "input") -> None:
        """Record that this run used something already in the store (a model, a run…).

        Adds the lineage edge ``node_id -> run``: ``nt.lineage(node_id, direction="down")``
        then finds this run. Data sets go through :meth:`log_dataset`, which profiles them.

        Example:
            >>> run.log_input("mdl_01J…", "monitored")   # doctest: +SKIP
        """
        self._check_open("input", node_id)
        check_key("input id", node_id)
        check_key("relation", relation)
        self._edge(node_id, self.run_id, relation, time.time())

    # -- lifecycle ------------------------------------------------------------------------

    def end(self, status: Status = "finished", error: str | None = None, *,
            end_time: float | None = None) -> None:
        """End the run (idempotent); the ``with`` block calls it for you.

        ``end_time`` (seconds since the epoch) defaults to now.
        """
        with self._lock:
            if self._status != "running":
                return
            self._status = status
        self._writer.append(RunEnd(self.run_id, status,
                                   time.time() if end_time is None else end_time,
                                   error).to_journal())
        self._tracker.run_ended(self)
        try:
            self._writer.flush()
        except StoreFullError as exc:
            # Never a silent "finished": the end is buffered with the rest, and lands once
            # there is room, but until then the store does not have it.
            raise StoreFullError(
                f"run {self.run_id} ({self.name or 'unnamed'}) ended, but the store does not "
                f"have its end yet: {exc}") from None

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.end("finished")
        else:
            self.end("failed", f"{exc_type.__name__ if exc_type else 'Error'}: {exc}")

    def _check_open(self, what: str, key: str) -> None:
        if self._status != "running":
            raise RunFinishedError(
                f"cannot log {what} {key!r}: run {self.run_id} ({self.name or 'unnamed'}) is "
                f"already {self._status}; log inside the `with nt.run(...)` block, "
                "or start a new run"
            )

    def _edge(self, src: str, dst: str, relation: str, now: float) -> None:
        self._writer.append(Edge(src, dst, relation, now).to_journal())

    def _training_dataset(self) -> tuple[str, DatasetProfile] | None:
        found = [(i, p) for i, (role, p) in self._datasets.items() if role == "train"]
        if not found:
            found = [(i, p) for i, (_, p) in self._datasets.items()]
        return found[-1] if found else None


def _reattach(home: str, run_id: str, name: str | None, experiment: str,
              parent_id: str | None, steps: dict[str, int]) -> ActiveRun:
    """An unpickled run: the same run, logged into from this process."""
    from ._tracker import flush_at_worker_exit, tracker_for

    flush_at_worker_exit()
    run = ActiveRun(tracker_for(home), run_id, name=name, experiment=experiment,
                    parent_id=parent_id)
    run._steps.update(steps)
    return run


def _mapping(values: object) -> Mapping[str, Any]:
    if not isinstance(values, Mapping):
        raise InvalidInputError(
            f"expected a mapping of names to values, got {type(values).__name__}; "
            "pass a dict, e.g. {'lr': 0.1}"
        )
    return values
