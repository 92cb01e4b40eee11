"""MLflow's model registry, read into plain records and kept as tags of the runs.

nbtrail has no model registry yet. Reading (:func:`read_registry`) and recording
(:func:`versions_as_tags`) are apart so that a registry, once it exists, replaces only the
recording: the records stay as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# A model version is the tag ``mlflow.registry/<model name>/<version>`` of the run it came
# from; its value is the JSON of ``ModelVersion.to_json()``.
TAG_PREFIX = "mlflow.registry/"


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registered MLflow model, with what its registered model says."""

    name: str
    version: str
    run_id: str | None  # MLflow's run id, None for a version registered from outside a run
    source: str | None
    status: str | None
    stage: str | None
    aliases: tuple[str, ...]
    description: str | None
    tags: dict[str, str]
    created_ms: int | None
    model_description: str | None
    model_tags: dict[str, str]

    @property
    def tag_key(self) -> str:
        """The tag that holds this version on its run."""
        return f"{TAG_PREFIX}{self.name}/{self.version}"

    def to_json(self) -> str:
        """The tag value: every field as a JSON object (keys sorted, so it compares)."""
        fields: dict[str, Any] = {
            "name": self.name, "version": self.version, "mlflow_run_id": self.run_id,
            "source": self.source, "status": self.status, "stage": self.stage,
            "aliases": list(self.aliases), "description": self.description,
            "tags": self.tags, "created_ms": self.created_ms,
            "registered_model": {"description": self.model_description,
                                 "tags": self.model_tags},
        }
        return json.dumps(fields, sort_keys=True)


def read_registry(client: Any) -> Iterator[ModelVersion]:
    """Every version of every registered model of an ``MlflowClient``, by model then version."""
    for model in pages(client.search_registered_models):
        # An alias is a property of the registered model pointing at one version.
        aliases: dict[str, list[str]] = {}
        for alias, version in (getattr(model, "aliases", None) or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        # Quoted as MLflow's filter language quotes a string: a quote in a name is doubled.
        name_filter = "name = '{}'".format(model.name.replace("'", "''"))
        versions = list(pages(client.search_model_versions, filter_string=name_filter))
        for version in sorted(versions, key=lambda v: int(v.version)):
            yield ModelVersion(
                name=model.name, version=str(version.version), run_id=version.run_id or None,
                source=version.source, status=version.status,
                stage=getattr(version, "current_stage", None),
                aliases=tuple(sorted(aliases.get(str(version.version), []))),
                description=version.description or None, tags=dict(version.tags or {}),
                created_ms=version.creation_timestamp,
                model_description=model.description or None,
                model_tags=dict(model.tags or {}),
            )


def versions_as_tags(versions: list[ModelVersion], run_ids: dict[str, str],
                     existing: dict[str, dict[str, str]]
                     ) -> tuple[list[tuple[str, str, str]], list[ModelVersion], list[str]]:
    """The tags that record ``versions`` on their runs, leaving out those already there.

    ``run_ids`` maps MLflow run ids to nbtrail's; ``existing`` holds the tags each of those
    nbtrail runs has. Returns ``(run_id, key, value)`` triples to write, the versions they
    record, and a note for each version that cannot be recorded (its run is not imported).
    """
    writes: list[tuple[str, str, str]] = []
    recorded: list[ModelVersion] = []
    notes: list[str] = []
    for version in versions:
        run_id = run_ids.get(version.run_id or "")
        if run_id is None:
            why = (f"its run {version.run_id} is not among the runs imported"
                   if version.run_id else "it was not registered from a run")
            notes.append(f"model version {version.name}/{version.version} is not recorded: "
                         f"{why} (nbtrail keeps versions as tags of their runs)")
            continue
        value = version.to_json()
        if existing.get(run_id, {}).get(version.tag_key) != value:
            writes.append((run_id, version.tag_key, value))
            recorded.append(version)
    return writes, recorded, notes


def pages(search: Any, *, size: int = 100, **kwargs: Any) -> Iterator[Any]:
    """Every item of a paged MLflow search, ``size`` a page."""
    token = None
    while True:
        page = search(max_results=size, page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return
