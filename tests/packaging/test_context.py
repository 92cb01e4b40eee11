"""The build context nt.package writes, and what it records in the store."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
import re

import numpy as np
import pytest
import yaml
from sklearn.linear_model import LinearRegression

import nbtrail as nt
from nbtrail.errors import InvalidInputError, NotFoundError, UntrustedModelError
from nbtrail.packaging import BuildError
from nbtrail.packaging._lock import NEVER_IN_IMAGES

from ..conftest import run_python
from ._models import train_churn


def _lock(context) -> dict[str, str]:
    pins = {}
    for line in (context / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("  #")[0].split("==")
            pins[name] = version
    return pins


def test_context_holds_everything_to_build_and_explain_the_image(trained, tmp_path):
    pkg = nt.package(trained.model_id, name="churn", output=tmp_path / "ctx", build=False)
    ctx = pkg.context
    assert ctx == (tmp_path / "ctx").resolve() and pkg.image is None
    names = {p.relative_to(ctx).as_posix() for p in ctx.rglob("*") if p.is_file()}
    assert {"Dockerfile", ".dockerignore", "requirements.lock", "README.md",
            "model/model.skops", "model/signature.json", "model/lineage.json",
            "app/nbtrail/__init__.py", "app/nbtrail/serving/_app.py",
            "k8s/deployment.yaml", "k8s/service.yaml"} <= names
    # Only the serving runtime is copied: no store, tracking or UI code.
    assert not any(n.startswith(("app/nbtrail/store", "app/nbtrail/tracking",
                                 "app/nbtrail/packaging")) for n in names)

    docker = (ctx / "Dockerfile").read_text()
    assert "FROM ${BASE_IMAGE}" in docker and "ARG BASE_IMAGE=python:3.11-slim" in docker
    assert "python3 -m venv /opt/venv" in docker
    assert "pip install --no-cache-dir --only-binary=:all: -r /app/requirements.lock" in docker
    assert re.search(r"^USER 10001:10001$", docker, re.M)
    assert docker.index("USER 10001") > docker.index("RUN pip install")
    assert "HEALTHCHECK" in docker and "/v2/health/ready" in docker
    assert re.search(r"^EXPOSE 8080$", docker, re.M)
    assert 'CMD ["python3", "-m", "nbtrail.serving", "/app/model"]' in docker
    assert "NBTRAIL_TRUSTED" not in docker
    labels = dict(re.findall(r'([\w.-]+)=("(?:[^"\\]|\\.)*")', docker.split("LABEL", 1)[1]))
    labels = {k: json.loads(v) for k, v in labels.items()}
    run = nt.get_run(trained.run_id)
    model = run.models[0]
    assert labels["org.opencontainers.image.title"] == "churn"
    assert labels["org.opencontainers.image.version"] == trained.model_id
    assert labels["dev.nbtrail.run-id"] == trained.run_id
    assert labels["dev.nbtrail.model-sha256"] == model["sha256"]
    assert labels["dev.nbtrail.package-id"] == pkg.package_id
    fingerprint = nt.sql("select fingerprint from datasets")["fingerprint"][0]
    assert labels["dev.nbtrail.training-data-fingerprint"] == fingerprint

    lineage = json.loads((ctx / "model/lineage.json").read_text())
    assert lineage["model"]["model_id"] == trained.model_id
    assert lineage["run"]["run_id"] == trained.run_id
    assert lineage["training_data"]["fingerprint"] == fingerprint
    assert lineage["package"]["package_id"] == pkg.package_id

    readme = (ctx / "README.md").read_text()
    assert "docker build -t churn:" in readme and "/v2/models/churn/infer" in readme
    assert "k8s/" in (ctx / ".dockerignore").read_text()


def test_lockfile_pins_the_training_environment_and_nothing_of_the_workbench(trained, tmp_path):
    pkg = nt.package(trained.model_id, output=tmp_path / "ctx", build=False)
    pins = _lock(pkg.context)
    training = nt.get_run(trained.run_id).env["packages"]
    for name in ("scikit-learn", "numpy", "scipy", "skops", "pandas", "starlette", "uvicorn",
                 "prometheus-client", "joblib", "threadpoolctl"):
        assert pins[name] == training[name], name
    assert not set(pins) & NEVER_IN_IMAGES
    assert not {"polars", "pyarrow", "ipython", "jupyter-core", "tornado"} & set(pins)


def test_lockfile_takes_the_recorded_version_over_the_installed_one(trained, tmp_path):
    # Rewrite the recorded environment as if training had used another numpy.
    store = nt.open_store(nt.config.current.resolve_home())
    nt.sync()
    env_id = nt.sql("select env_id from runs")["env_id"][0]
    with store._read_write() as con:
        con.execute("UPDATE environments SET packages = json_merge_patch(packages, "
                    "'{\"numpy\": \"1.26.4\"}') WHERE env_id = ?", [env_id])
    pkg = nt.package(trained.model_id, output=tmp_path / "ctx", build=False)
    assert _lock(pkg.context)["numpy"] == "1.26.4"
    assert importlib.metadata.version("numpy") != "1.26.4"


def test_signature_is_narrowed_to_the_fitted_columns_and_knows_the_outputs(home, tmp_path):
    trained = train_churn(with_target_in_data=True)
    pkg = nt.package(trained.model_id, output=tmp_path / "ctx", build=False)
    signature = json.loads((pkg.context / "model/signature.json").read_text())
    assert [c["name"] for c in signature["inputs"]] == ["age", "income", "plan"]
    plan = signature["inputs"][2]
    assert plan["categories"] == ["basic", "pro", "team"] and plan["nullable"] is False
    assert signature["inputs"][0]["min"] >= 18 and signature["inputs"][0]["max"] <= 89
    assert signature["frame"] == "pandas"
    assert signature["outputs"][0] == {"name": "predict", "dtype": "int64", "shape": [-1],
                                       "categories": [0, 1]}
    assert signature["outputs"][1]["shape"] == [-1, 2]


def test_kubernetes_manifests_probe_the_health_endpoints(trained, tmp_path):
    pkg = nt.package(trained.model_id, name="churn-api", output=tmp_path / "ctx", build=False)
    deployment = yaml.safe_load((pkg.context / "k8s/deployment.yaml").read_text())
    service = yaml.safe_load((pkg.context / "k8s/service.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == pkg.tag and pkg.tag.startswith("churn-api:")
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert service["kind"] == "Service"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_package_is_recorded_in_lineage(trained, tmp_path):
    pkg = nt.package(trained.run_id, output=tmp_path / "ctx", build=False)
    assert pkg.model_id == trained.model_id
    nt.sync()
    row = nt.sql("select * from packages").row(0, named=True)
    assert row["package_id"] == pkg.package_id and row["context_path"] == str(pkg.context)
    assert row["image_digest"] is None
    down = nt.lineage(trained.run_id, direction="down")
    assert pkg.package_id in down.ids("package")
    up = nt.lineage(pkg.package_id, direction="up")
    assert {trained.model_id, trained.run_id} <= set(up.ids())
    assert up.ids("dataset")


def test_a_model_object_is_logged_then_packaged(home, tmp_path):
    X = np.random.default_rng(1).normal(size=(50, 3))
    model = LinearRegression().fit(X, X @ [1.0, 2.0, 3.0])
    pkg = nt.package(model, name="reg", input_example=X[:5], output=tmp_path / "ctx",
                     build=False)
    signature = json.loads((pkg.context / "model/signature.json").read_text())
    assert [c["name"] for c in signature["inputs"]] == ["0", "1", "2"]
    assert signature["frame"] == "numpy"
    assert nt.get_run(pkg.run_id).name == "package reg"


def test_a_model_object_is_logged_and_packaged_in_the_store_given(home, tmp_path):
    X = np.random.default_rng(1).normal(size=(50, 3))
    model = LinearRegression().fit(X, X @ [1.0, 2.0, 3.0])
    other = nt.open_store(tmp_path / "other")
    with nt.run(name="active here"):  # the active run logs to the configured store
        pkg = nt.package(model, name="reg", input_example=X[:5], output=tmp_path / "ctx",
                         build=False, store=other)
    made = other.get_run(pkg.run_id)
    assert made.name == "package reg"
    assert [m["model_id"] for m in made.models] == [pkg.model_id]
    assert other.packages_of(pkg.model_id) == [pkg.package_id]
    assert nt.runs()["name"].to_list() == ["active here"]


def test_pickled_models_need_trust(home, tmp_path):
    with nt.run() as run:
        run.log_dataset(np.zeros((4, 2)), role="train")
        model_id = run.log_model(_Constant(), pickle=True)
    with pytest.raises(UntrustedModelError, match="trusted=True"):
        nt.package(model_id, output=tmp_path / "ctx", build=False)
    pkg = nt.package(model_id, output=tmp_path / "ctx", build=False, trusted=True)
    assert "ENV NBTRAIL_TRUSTED=1" in (pkg.context / "Dockerfile").read_text()
    assert (pkg.context / "model/model.pkl").read_bytes() == pickle.dumps(_Constant(),
                                                                        protocol=5)


class _Constant:
    """A model skops cannot store (not scikit-learn)."""

    def predict(self, X):
        return np.zeros(len(X))

    def __eq__(self, other):
        return isinstance(other, _Constant)


def test_bad_input_is_refused_with_the_fix(trained, tmp_path):
    with pytest.raises(InvalidInputError, match="lower-case letters"):
        nt.package(trained.model_id, name="Churn Model", build=False)
    with pytest.raises(NotFoundError, match="no model 'mdl_nope'"):
        nt.package("mdl_nope", build=False)
    with pytest.raises(NotFoundError, match="no run with a logged model"):
        nt.package("01NOPE", build=False)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not an nbtrail package"):
        nt.package(trained.model_id, output=occupied, build=False)
    assert (occupied / "notes.txt").read_text() == "mine"
    with nt.run() as run:
        no_signature = run.log_model(LinearRegression().fit([[1.0], [2.0]], [1.0, 2.0]))
    with pytest.raises(InvalidInputError, match="no input signature"):
        nt.package(no_signature, build=False)


def test_packaging_again_replaces_the_earlier_context(trained, tmp_path):
    first = nt.package(trained.model_id, output=tmp_path / "ctx", build=False)
    (first.context / "stale.txt").write_text("left over")
    second = nt.package(trained.model_id, output=tmp_path / "ctx", build=False)
    assert second.package_id != first.package_id
    assert not (second.context / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ctx")] == []


def test_no_engine_means_a_context_and_the_command_to_build_it(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    pkg = nt.package(trained.model_id, output=tmp_path / "ctx")
    assert pkg.image is None and pkg.engine_missing
    assert pkg.build_command.startswith("docker build -t ")
    assert "no container engine here" in repr(pkg)
    assert "no container engine" in pkg._repr_html_()
    with pytest.raises(BuildError, match="no container engine"):
        nt.package(trained.model_id, output=tmp_path / "ctx", build=True)


def test_the_copied_server_runs_without_duckdb_polars_or_pyarrow(trained, tmp_path):
    pkg = nt.package(trained.model_id, output=tmp_path / "ctx", build=False)
    code = f"""
import sys, json
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("duckdb", "polars", "pyarrow", "optuna", "panel"):
            raise ImportError(f"{{name}} is not in model images")
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, {str(pkg.context / "app")!r})
from starlette.testclient import TestClient
from nbtrail.serving import create_app, ModelBundle
import nbtrail
assert nbtrail.__file__.startswith({str(pkg.context)!r}), nbtrail.__file__
client = TestClient(create_app(ModelBundle.load({str(pkg.context / "model")!r})))
answer = client.post("/predict", json={{"records": [{{"age": 40, "income": 60.0,
                                                     "plan": "pro"}}]}})
print(json.dumps(answer.json()))
"""
    result = run_python(code, env={"PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["predictions"] in ([0], [1])


def test_a_failed_build_says_why_and_keeps_the_context_on_record(trained, tmp_path, monkeypatch):
    # A stand-in podman: answers `info`, fails `build` the way a bad base image would.
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "podman"
    fake.write_text('#!/bin/sh\n[ "$1" = info ] && exit 0\n'
                    'echo "STEP 1/15: FROM nowhere"; echo "Error: no such image" >&2; exit 125\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    steps = []
    with nt.config(build_isolation="chroot"), \
            pytest.raises(BuildError, match="exit code 125") as failed:
        nt.package(trained.model_id, output=tmp_path / "ctx",
                   progress=lambda step, fraction: steps.append(step))
    assert "--isolation chroot" in str(failed.value)
    assert "Error: no such image" in str(failed.value)
    assert "STEP 1/15: FROM nowhere" in steps
    assert (tmp_path / "ctx" / "Dockerfile").is_file()
    nt.sync()
    assert nt.sql("select image_tag from packages")["image_tag"].to_list() == [None]
