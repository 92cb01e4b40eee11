"""The error classes: one table gives each its exit status and HTTP status."""

import ast
import inspect
from pathlib import Path

import pytest

from nbtrail import errors
from nbtrail.errors import NbtrailError, Outcome, outcome
from nbtrail.importers._mlflow import SourceReadError
from nbtrail.packaging._build import BuildError
from nbtrail.server._base import ArgumentError

SRC = Path(__file__).resolve().parents[1] / "src" / "nbtrail"

CLASSES = [c for _, c in inspect.getmembers(errors, inspect.isclass)
           if issubclass(c, NbtrailError)]


EXPECTED = [
    (errors.InvalidInputError, 1, 400),
    (errors.FilterError, 1, 400),
    (ArgumentError, 1, 400),
    (errors.UntrustedModelError, 1, 403),
    (errors.ApprovalError, 1, 403),
    (errors.NotFoundError, 1, 404),
    (errors.StoreNotFoundError, 1, 404),
    (errors.ConflictError, 1, 409),
    (errors.StoreLockedError, 1, 409),
    (errors.RunFinishedError, 1, 409),
    (errors.GitError, 1, 409),
    (errors.SnapshotError, 1, 409),
    (errors.ReproduceError, 1, 409),
    (errors.ProcessError, 1, 500),
    (errors.StoreFullError, 1, 507),
    (errors.TeamStoreError, 1, 503),
    (errors.ArtifactStoreError, 1, 503),
    (errors.StoreDatabaseError, 1, 500),
    (BuildError, 1, 500),
    (errors.MissingExtraError, 1, 501),
    (SourceReadError, 1, 500),
    (NbtrailError, 1, 500),
]


@pytest.mark.parametrize(("kind", "exit_code", "status"), EXPECTED)
def test_each_error_class_has_its_exit_and_http_status(kind, exit_code, status):
    assert outcome(kind("x")) == Outcome(exit_code, status)


def test_every_class_of_the_module_is_checked_above():
    # A class added to errors.py without a row silently takes its parent's statuses:
    # naming it in EXPECTED makes that a decision.
    assert set(CLASSES) <= {kind for kind, _, _ in EXPECTED}


def test_a_missing_store_is_a_not_found_error():
    assert issubclass(errors.StoreNotFoundError, errors.NotFoundError)
    assert issubclass(errors.StoreNotFoundError, LookupError)


def test_no_module_raises_the_bare_base_class():
    bare = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        bare += [f"{path.relative_to(SRC)}:{node.lineno}" for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                 and node.func.id == "NbtrailError"]
    assert not bare, f"raise a specific class from nbtrail.errors instead: {bare}"


def test_timing_a_pickled_model_without_trust_is_an_untrusted_model_error():
    from nbtrail.experiments._production import load_estimator

    with pytest.raises(errors.UntrustedModelError, match="--trusted"):
        # Refused before the store is read.
        load_estimator(None, {"format": "pickle"}, trusted=False)
