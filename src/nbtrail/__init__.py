"""nbtrail: a notebook-native MLOps workbench.

``import nbtrail as nt`` is cheap: heavy libraries (duckdb, polars, scikit-learn) load
only when a function needs them.

Example:
    >>> import nbtrail as nt
    >>> with nt.run(name="baseline") as run:                  # doctest: +SKIP
    ...     run.log_params({"C": 1.0})
    ...     run.log_metric("loss", 0.31, step=3)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._config import config
from .errors import NbtrailError
from .tracking._environment import install_seed_hooks

__version__ = "0.1.0"

# Seeds set after this import (random, numpy, torch) are recorded with each run.
install_seed_hooks()

# Public name -> module that defines it; resolved on first access (PEP 562).
_LAZY = {
    "run": "nbtrail.tracking._fluent",
    "active_run": "nbtrail.tracking._fluent",
    "artifact_path": "nbtrail.tracking._fluent",
    "log_metric": "nbtrail.tracking._fluent",
    "log_metrics": "nbtrail.tracking._fluent",
    "log_param": "nbtrail.tracking._fluent",
    "log_params": "nbtrail.tracking._fluent",
    "set_tag": "nbtrail.tracking._fluent",
    "set_tags": "nbtrail.tracking._fluent",
    "log_dataset": "nbtrail.tracking._fluent",
    "log_model": "nbtrail.tracking._fluent",
    "log_artifact": "nbtrail.tracking._fluent",
    "log_figure": "nbtrail.tracking._fluent",
    "log_image": "nbtrail.tracking._fluent",
    "log_table": "nbtrail.tracking._fluent",
    "log_text": "nbtrail.tracking._fluent",
    "log_dict": "nbtrail.tracking._fluent",
    "runs": "nbtrail.tracking._fluent",
    "get_run": "nbtrail.tracking._fluent",
    "metric_history": "nbtrail.tracking._fluent",
    "sql": "nbtrail.tracking._fluent",
    "lineage": "nbtrail.tracking._fluent",
    "sync": "nbtrail.tracking._fluent",
    "autolog": "nbtrail.tracking._autolog",
    "branches": "nbtrail.experiments._api",
    "compare": "nbtrail.experiments._api",
    "Comparison": "nbtrail.experiments._compare",
    "load_model": "nbtrail.tracking._loading",
    "Tracker": "nbtrail.tracking._tracker",
    "ActiveRun": "nbtrail.tracking._run",
    "Run": "nbtrail.store._records",
    "Lineage": "nbtrail.store._records",
    "Store": "nbtrail.store._base",
    "open_store": "nbtrail.store._open",
    "reproduce": "nbtrail.experiments._reproduce",
    "sweep": "nbtrail.sweeps._api",
    "track_study": "nbtrail.sweeps._api",
    "Sweep": "nbtrail.sweeps._sweep",
    "validate": "nbtrail.monitor._api",
    "drift": "nbtrail.monitor._api",
    "challenge": "nbtrail.monitor._challenge",
    "ChallengeReport": "nbtrail.monitor._challenge",
    "traffic": "nbtrail.monitor._traffic",
    "Traffic": "nbtrail.monitor._traffic",
    "DriftReport": "nbtrail.monitor._drift",
    "ValidationReport": "nbtrail.monitor._validate",
    "dashboard": "nbtrail.dashboards",
    "package": "nbtrail.packaging._api",
    "Package": "nbtrail.packaging._api",
    "serve": "nbtrail.packaging._local",
    "register": "nbtrail.registry._fluent",
    "models": "nbtrail.registry._fluent",
    "model_versions": "nbtrail.registry._fluent",
    "model_version": "nbtrail.registry._fluent",
    "set_alias": "nbtrail.registry._fluent",
    "set_policy": "nbtrail.registry._fluent",
    "request_promotion": "nbtrail.registry._fluent",
    "approve": "nbtrail.registry._fluent",
    "reject": "nbtrail.registry._fluent",
    "promotion_requests": "nbtrail.registry._fluent",
    "audit": "nbtrail.registry._fluent",
    "verify_audit": "nbtrail.registry._fluent",
    "model_card": "nbtrail.registry._card",
    "ModelVersion": "nbtrail.registry._api",
    "PromotionRequest": "nbtrail.registry._api",
    "staleness": "nbtrail.registry._staleness",
    "retrain": "nbtrail.registry._retrain",
    "StalenessReport": "nbtrail.registry._staleness",
    "import_mlflow": "nbtrail.importers._mlflow",
    "ImportResult": "nbtrail.importers._mlflow",
}

__all__ = [
    "ActiveRun",
    "ChallengeReport",
    "Comparison",
    "DriftReport",
    "ImportResult",
    "Lineage",
    "ModelVersion",
    "NbtrailError",
    "Package",
    "PromotionRequest",
    "Run",
    "StalenessReport",
    "Store",
    "Sweep",
    "Tracker",
    "Traffic",
    "ValidationReport",
    "__version__",
    "active_run",
    "approve",
    "artifact_path",
    "audit",
    "autolog",
    "branches",
    "challenge",
    "compare",
    "config",
    "dashboard",
    "drift",
    "get_run",
    "import_mlflow",
    "lineage",
    "load_model",
    "log_artifact",
    "log_dataset",
    "log_dict",
    "log_figure",
    "log_image",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "metric_history",
    "model_card",
    "model_version",
    "model_versions",
    "models",
    "open_store",
    "package",
    "promotion_requests",
    "register",
    "reject",
    "reproduce",
    "request_promotion",
    "retrain",
    "run",
    "runs",
    "serve",
    "set_alias",
    "set_policy",
    "set_tag",
    "set_tags",
    "sql",
    "staleness",
    "sweep",
    "sync",
    "track_study",
    "traffic",
    "validate",
    "verify_audit",
]

if TYPE_CHECKING:
    from .dashboards import dashboard
    from .experiments._api import branches, compare
    from .experiments._compare import Comparison
    from .experiments._reproduce import reproduce
    from .importers._mlflow import ImportResult, import_mlflow
    from .monitor._api import drift, validate
    from .monitor._challenge import ChallengeReport, challenge
    from .monitor._drift import DriftReport
    from .monitor._traffic import Traffic, traffic
    from .monitor._validate import ValidationReport
    from .packaging._api import Package, package
    from .packaging._local import serve
    from .registry._api import ModelVersion, PromotionRequest
    from .registry._card import model_card
    from .registry._fluent import (
        approve,
        audit,
        model_version,
        model_versions,
        models,
        promotion_requests,
        register,
        reject,
        request_promotion,
        set_alias,
        set_policy,
        verify_audit,
    )
    from .registry._retrain import retrain
    from .registry._staleness import StalenessReport, staleness
    from .store._base import Store
    from .store._open import open_store
    from .store._records import Lineage, Run
    from .sweeps._api import sweep, track_study
    from .sweeps._sweep import Sweep
    from .tracking._autolog import autolog
    from .tracking._fluent import (
        active_run,
        artifact_path,
        get_run,
        lineage,
        log_artifact,
        log_dataset,
        log_dict,
        log_figure,
        log_image,
        log_metric,
        log_metrics,
        log_model,
        log_param,
        log_params,
        log_table,
        log_text,
        metric_history,
        run,
        runs,
        set_tag,
        set_tags,
        sql,
        sync,
    )
    from .tracking._loading import load_model
    from .tracking._run import ActiveRun
    from .tracking._tracker import Tracker


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where jupyter_server finds nbtrail's server extension (enabled on install)."""
    return [{"module": "nbtrail.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt sidebar (``jupyter labextension develop``)."""
    return [{"src": "labextension", "dest": "nbtrail"}]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbtrail' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
