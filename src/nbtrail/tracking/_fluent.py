"""Module-level functions (``nt.run``, ``nt.log_metric``, ``nt.runs``...)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError
from ._tracker import get_store, get_tracker

if TYPE_CHECKING:
    import polars as pl

    from ..store._base import Direction
    from ..store._records import Lineage, Run
    from ._run import ActiveRun


def run(
    name: str | None = None,
    experiment: str | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    parent: ActiveRun | str | None = None,
    nested: bool = True,
) -> ActiveRun:
    """Start a run in the configured store and make it the active run.

    ``experiment`` defaults to the parent run's, else the current git branch, else
    ``"default"``. A run started inside another of the same thread becomes its child
    unless ``nested=False``; a run started in another thread has no parent unless given
    one with ``parent=``. Leaving the ``with`` block marks it finished, or failed with the
    exception's message. An ``ActiveRun`` can be passed to a worker process (spawned or
    forked), which then logs into the same run.

    Example:
        >>> with nt.run(name="baseline", tags={"team": "risk"}) as run:   # doctest: +SKIP
        ...     run.log_metric("loss", 0.31)
    """
    return get_tracker().start_run(name, experiment, tags, parent=parent, nested=nested)


def active_run() -> ActiveRun | None:
    """The run that module-level logging goes to, or ``None``."""
    return get_tracker().active_run()


def _require_active(what: str) -> ActiveRun:
    current = get_tracker().active_run()
    if current is None:
        raise ConflictError(
            f"no active run to log {what} to; wrap the code in `with nt.run():` "
            "or start one with `run = nt.run()`"
        )
    return current


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Log a metric point to the active run."""
    _require_active(f"metric {key!r}").log_metric(key, value, step=step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log several metrics to the active run."""
    _require_active("metrics").log_metrics(metrics, step=step)


def log_param(key: str, value: Any) -> None:
    """Log a parameter to the active run."""
    _require_active(f"param {key!r}").log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    """Log parameters to the active run."""
    _require_active("params").log_params(params)


def set_tag(key: str, value: Any) -> None:
    """Set a tag on the active run."""
    _require_active(f"tag {key!r}").set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set tags on the active run."""
    _require_active("tags").set_tags(tags)


def log_dataset(data: object, name: str = "data", role: str = "input") -> str:
    """Log a data set used by the active run; returns its content-based id."""
    return _require_active(f"data set {name!r}").log_dataset(data, name=name, role=role)


def log_model(model: object, name: str = "model", *, input_example: object = None,
              pickle: bool = False) -> str:
    """Log a model to the active run; returns the model id."""
    return _require_active(f"model {name!r}").log_model(
        model, name, input_example=input_example, pickle=pickle)


def log_artifact(path: str | Path, name: str | None = None) -> list[str]:
    """Log a file or folder to the active run; returns the artifact ids."""
    return _require_active(f"artifact {str(path)!r}").log_artifact(path, name)


def log_figure(fig: object, name: str) -> list[str]:
    """Log a matplotlib or plotly figure to the active run; returns the artifact ids."""
    return _require_active(f"figure {name!r}").log_figure(fig, name)


def log_image(image: object, name: str, step: int | None = None) -> str:
    """Log an image (array, PIL image or file) to the active run; returns the artifact id."""
    return _require_active(f"image {name!r}").log_image(image, name, step=step)


def log_table(table: object, name: str) -> str:
    """Log a pandas/polars DataFrame or pyarrow Table to the active run as Parquet."""
    return _require_active(f"table {name!r}").log_table(table, name)


def log_text(text: str, name: str) -> str:
    """Log text to the active run as a file; returns the artifact id."""
    return _require_active(f"text {name!r}").log_text(text, name)


def log_dict(obj: dict[str, Any] | list[Any], name: str) -> str:
    """Log a dict or list to the active run as JSON (or YAML by the name's suffix)."""
    return _require_active(f"dict {name!r}").log_dict(obj, name)


def runs(
    where: str | None = None,
    order_by: str | list[str] | None = None,
    experiment: str | None = None,
    limit: int | None = None,
) -> pl.DataFrame:
    """Query runs: one row a run, params, tags and latest metrics as columns.

    ``where`` uses nbtrail's filter language, e.g.
    ``"metrics.acc > 0.9 and params.penalty = 'l2'"``; ``order_by`` takes column names,
    ``-`` for descending, e.g. ``"-metrics.acc"``. See docs/filters.md.

    Example:
        >>> nt.runs(where="status = 'finished'", order_by="-metrics.acc", limit=5)  # doctest: +SKIP
    """
    return get_store().runs(where=where, order_by=order_by, experiment=experiment, limit=limit)


def get_run(run_id: str) -> Run:
    """Everything recorded about a run (a unique prefix of its id works too)."""
    return get_store().get_run(run_id)


def metric_history(run_id: str, key: str) -> pl.DataFrame:
    """Every logged point of a metric: columns ``step``, ``value``, ``timestamp``."""
    return get_store().metric_history(run_id, key)


def artifact_path(run_id: str, name: str) -> Path:
    """The stored file of an artifact, to open or copy (read it, don't modify it).

    Example:
        >>> Image.open(nt.artifact_path(run_id, "confusion.png"))   # doctest: +SKIP
    """
    return get_store().artifact_path(run_id, name)


def sql(query: str, params: list[Any] | None = None) -> pl.DataFrame:
    """Run read-only SQL over the store's tables (documented in docs/store.md).

    Example:
        >>> nt.sql("select experiment, count(*) from runs group by 1")  # doctest: +SKIP
    """
    return get_store().sql(query, params)


def lineage(node_id: str, direction: Direction = "up", depth: int = 10) -> Lineage:
    """Where something came from (``up``) or what used it (``down``).

    ``node_id`` is a run, data set (``ds_…``), model (``mdl_…``) or artifact (``art_…``) id.
    """
    return get_store().lineage(node_id, direction=direction, depth=depth)


def sync() -> None:
    """Write everything logged so far and fold it into the database now."""
    get_store().sync()
