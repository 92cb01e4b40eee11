"""Writing the build context: Dockerfile, lockfile, model folder, server, manifests."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InvalidInputError
from ..serving._bundle import LINEAGE_FILE, MODEL_FILES, SIGNATURE_FILE
from ..serving._routing import ROUTING_FILE, Role
from ._source import ModelSource

PORT = 8080
UID = 10001
LABEL_PREFIX = "dev.nbtrail."
# The serving runtime's own files, copied into the image as a package named nbtrail.
_SERVER_FILES = ("errors.py", "_modelio.py", "serving")
_MARKER = ".nbtrail-package"
# Challengers' model folders, inside the champion's (which the image serves).
VERSIONS_DIR = "versions"


@dataclass(frozen=True)
class Version:
    """One model of a package that serves several: its part, version label and model."""

    role: Role
    ref: str | None
    version: str
    source: ModelSource
    model_bytes: bytes
    share: float = 0.0

    @property
    def folder(self) -> str:
        """Its model folder, relative to the champion's."""
        if self.role == "champion":
            return "."
        return f"{VERSIONS_DIR}/{re.sub(r'[^A-Za-z0-9_.-]+', '-', self.version)}"

    def entry(self) -> dict[str, Any]:
        """Its entry in ``routing.json``."""
        found = {"ref": self.ref, "version": self.version, "model_id": self.source.model_id,
                 "folder": self.folder}
        return found | {"share": self.share} if self.role == "canary" else found

    def describe(self) -> str:
        """``shadow 4 (mdl_…)``, ``canary 5 (mdl_…) 10%``: for labels and annotations."""
        share = f" {self.share:.0%}" if self.role == "canary" else ""
        return f"{self.role} {self.version} ({self.source.model_id}){share}"


def routing(versions: Sequence[Version]) -> dict[str, Any]:
    """``routing.json``: the champion, the shadows and the canaries with their shares."""
    return {"champion": versions[0].entry(),
            "shadows": [v.entry() for v in versions if v.role == "shadow"],
            "canary": [v.entry() for v in versions if v.role == "canary"]}


def labels(source: ModelSource, package_id: str, name: str, base_image: str,
           created: str, versions: Sequence[Version] = ()) -> dict[str, str]:
    """The image's OCI labels and nbtrail's own (every version, when it serves several)."""
    found = {
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.description":
            f"{source.class_name or source.flavor} served by nbtrail, from run {source.run_id}",
        "org.opencontainers.image.version": source.model_id,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.base.name": base_image,
        f"{LABEL_PREFIX}package-id": package_id,
        f"{LABEL_PREFIX}run-id": source.run_id,
        f"{LABEL_PREFIX}model-id": source.model_id,
        f"{LABEL_PREFIX}model-sha256": source.sha256,
        f"{LABEL_PREFIX}training-data-fingerprint": source.dataset_fingerprint or "",
        f"{LABEL_PREFIX}git-commit": source.git.get("commit") or "",
        f"{LABEL_PREFIX}git-dirty": str(bool(source.git.get("dirty"))).lower(),
    }
    if source.git.get("commit"):
        found["org.opencontainers.image.revision"] = source.git["commit"]
    if versions:
        found[f"{LABEL_PREFIX}versions"] = "; ".join(v.describe() for v in versions)
        found[f"{LABEL_PREFIX}model-ids"] = ",".join(v.source.model_id for v in versions)
    return found


def dockerfile(source: ModelSource, image_labels: Mapping[str, str], base_image: str, *,
               trusted: bool) -> str:
    """The Dockerfile: a virtual env, the pinned packages, a non-root user, the server."""
    label_lines = " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in image_labels.items())
    trust = "\nENV NBTRAIL_TRUSTED=1" if trusted else ""
    probe = ("import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s"
             "/v2/health/ready' % os.environ.get('NBTRAIL_PORT', '8080'), timeout=2)")
    return f"""\
# Serves model {source.model_id} (run {source.run_id}); made by nbtrail {__version__}.
# docker build -t IMAGE .    (or: podman build --format docker -t IMAGE .)
ARG BASE_IMAGE={base_image}
FROM ${{BASE_IMAGE}}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
# Only pinned wheels are downloaded; everything else comes from this folder.
RUN python3 -m venv /opt/venv
COPY requirements.lock /app/requirements.lock
RUN pip install --no-cache-dir --only-binary=:all: -r /app/requirements.lock

RUN groupadd --system --gid {UID} nbtrail \\
 && useradd --system --uid {UID} --gid {UID} --home-dir /app --shell /usr/sbin/nologin nbtrail \\
 && mkdir -p /var/log/nbtrail && chown {UID}:{UID} /var/log/nbtrail
COPY app/ /app/lib/
COPY model/ /app/model/

ENV PYTHONPATH=/app/lib NBTRAIL_HOST=0.0.0.0 NBTRAIL_PORT={PORT} \\
    NBTRAIL_PREDICTION_LOG=/var/log/nbtrail/predictions{trust}
LABEL {label_lines}

USER {UID}:{UID}
WORKDIR /app
EXPOSE {PORT}
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \\
  CMD ["python3", "-c", {json.dumps(probe)}]
CMD ["python3", "-m", "nbtrail.serving", "/app/model"]
"""


def _yaml(value: Any, indent: int = 0) -> str:
    # Enough YAML for the manifests: JSON scalars are valid YAML, keys are plain words.
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:\n{_yaml(item, indent + 1)}")
            else:
                lines.append(f"{pad}{key}: {json.dumps(item)}")
        return "\n".join(lines)
    lines = []
    for item in value:
        text = _yaml(item, indent + 1).lstrip() if isinstance(item, dict | list) \
            else json.dumps(item)
        lines.append(f"{pad}- {text}")
    return "\n".join(lines)


def manifests(source: ModelSource, name: str, image: str,
              versions: Sequence[Version] = ()) -> dict[str, str]:
    """Kubernetes Deployment (probes on the health endpoints) and Service."""
    selector = {"app.kubernetes.io/name": name}
    annotations = {"nbtrail.dev/model-id": source.model_id,
                   "nbtrail.dev/run-id": source.run_id}
    if versions:
        annotations["nbtrail.dev/versions"] = "; ".join(v.describe() for v in versions)
    meta = {"name": name, "labels": selector | {"app.kubernetes.io/managed-by": "nbtrail"},
            "annotations": annotations}
    probe = {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10}
    container = {
        "name": "model", "image": image,
        "ports": [{"name": "http", "containerPort": PORT}],
        "livenessProbe": probe,
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"},
                           "periodSeconds": 5},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                      "limits": {"memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "predictions", "mountPath": "/var/log/nbtrail"}],
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {"replicas": 1, "selector": {"matchLabels": selector}, "template": {
            "metadata": {"labels": selector},
            "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": UID,
                                         "runAsGroup": UID, "fsGroup": UID},
                     "containers": [container],
                     "volumes": [{"name": "predictions", "emptyDir": {}}]},
        }},
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": meta,
        "spec": {"selector": selector,
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    return {"deployment.yaml": _yaml(deployment) + "\n", "service.yaml": _yaml(service) + "\n"}


def readme(source: ModelSource, name: str, image: str, build_command: str) -> str:
    """How to build, run and call the image."""
    first = source.signature["inputs"][0]["name"]
    return f"""\
# {name}

Model `{source.model_id}` ({source.class_name}) from run `{source.run_id}`
(experiment `{source.experiment}`), packaged by nbtrail {__version__}.

```bash
{build_command}
docker run --rm -p {PORT}:{PORT} {image}
curl localhost:{PORT}/v2/health/ready
curl -X POST localhost:{PORT}/predict -H 'content-type: application/json' \\
     -d '{{"records": [{{"{first}": ...}}]}}'
curl -X POST localhost:{PORT}/v2/models/{name}/infer -H 'content-type: application/json' \\
     -d '{{"inputs": [{{"name": "{first}", "shape": [1], "datatype": "FP64", "data": [...]}}]}}'
kubectl apply -f k8s/
```

Without a container: `nbtrail serve .` (or `python -m nbtrail.serving model` with `app/`
on `PYTHONPATH`).

- `model/signature.json`: the input columns, types, ranges and categories seen in
  training; requests are checked against it (422 names the column and the problem).
- `model/lineage.json`: run, model, training data fingerprint, git commit.
- `requirements.lock`: exact versions of the training environment, only what the model
  and the server import.
- Predictions are logged as JSON Lines under `/var/log/nbtrail/predictions`; metrics in
  Prometheus format at `/metrics`. The server runs as user {UID}, not root.
"""


def _server_files(target: Path) -> None:
    root = resources.files("nbtrail")
    package = target / "nbtrail"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        f'"""nbtrail\'s serving runtime alone (no store, no tracking)."""\n\n'
        f'__version__ = "{__version__}"\n'
    )
    for name in _SERVER_FILES:
        item = root / name
        if item.is_dir():
            (package / name).mkdir()
            for file in item.iterdir():
                if file.name.endswith(".py"):
                    (package / name / file.name).write_bytes(file.read_bytes())
        else:
            (package / name).write_bytes(item.read_bytes())


def write_model_folder(folder: Path, *, source: ModelSource, model_bytes: bytes,
                       package: dict[str, Any] | None) -> None:
    """The folder the server loads: model file, ``signature.json``, ``lineage.json``."""
    folder.mkdir(parents=True)
    (folder / MODEL_FILES[source.format]).write_bytes(model_bytes)
    (folder / SIGNATURE_FILE).write_text(json.dumps(source.signature, indent=2) + "\n")
    lineage = source.lineage() | {"package": (package or {}) | {"nbtrail": __version__}}
    (folder / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, default=str) + "\n")


def write_context(output: Path, *, source: ModelSource, model_bytes: bytes,
                  lockfile: str, name: str, package_id: str, base_image: str, image: str,
                  build_command: str, trusted: bool, versions: Sequence[Version] = ()
                  ) -> None:
    """Write the whole context to ``output``, replacing an earlier package there.

    ``versions`` (the champion first) serve several models: each challenger gets its own
    model folder under ``model/versions/`` and ``model/routing.json`` names them all.
    Written into a temporary sibling first, so a failure never leaves half a context.
    """
    if output.exists() and any(output.iterdir()) and not (output / _MARKER).exists():
        raise InvalidInputError(
            f"output folder {output} exists and is not an nbtrail package; choose another "
            "output or empty it"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        package = {"package_id": package_id, "name": name, "created": created,
                   "base_image": base_image}
        write_model_folder(staging / "model", source=source, model_bytes=model_bytes,
                           package=package)
        for version in versions[1:]:
            write_model_folder(staging / "model" / version.folder, source=version.source,
                               model_bytes=version.model_bytes,
                               package=package | {"role": version.role,
                                                  "version": version.version})
        if versions:
            (staging / "model" / ROUTING_FILE).write_text(
                json.dumps(routing(versions), indent=2) + "\n")
        _server_files(staging / "app")
        (staging / "requirements.lock").write_text(lockfile)
        (staging / "Dockerfile").write_text(dockerfile(
            source, labels(source, package_id, name, base_image, created, versions),
            base_image, trusted=trusted))
        (staging / ".dockerignore").write_text("k8s/\nREADME.md\n**/__pycache__\n")
        (staging / "README.md").write_text(readme(source, name, image, build_command))
        (staging / "k8s").mkdir()
        for file, text in manifests(source, name, image, versions).items():
            (staging / "k8s" / file).write_text(text)
        (staging / _MARKER).write_text(package_id + "\n")
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
