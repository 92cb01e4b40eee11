"""A package in service for the views' tests: churn/1 answers, churn/2 shadows, a log of both.

The log is written as ``serving/_predlog.py`` writes it (ten one-row requests, one a second;
the shadow agrees with the champion on the first seven) and recorded as the package's
deployment, so ``nt.traffic`` finds it as it finds a real server's.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbtrail as nt
from nbtrail.registry import _api
from nbtrail.store import Store

REQUESTS, AGREEING = 10, 7


def serve_shadow(store: Store, folder: Path, *, user: str | None = None,
                 log_name: str = "log") -> tuple[str, Path]:
    """Register the demo store's baseline and strong-reg runs as churn/1 and /2, package
    churn@champion with churn@challenger in shadow, and log traffic in ``folder /
    log_name``: (package id, log)."""
    runs = dict(store.runs().select("name", "run_id").rows())
    for run in ("baseline", "strong-reg"):
        _api.register(store, runs[run], name="churn", on_behalf_of=user)
    _api.set_alias(store, "churn", "champion", 1, on_behalf_of=user)
    _api.set_alias(store, "churn", "challenger", 2, on_behalf_of=user)
    _api.set_policy(store, "churn", "champion", {"max_size_mb": 50}, on_behalf_of=user)
    pkg = nt.package("churn@champion", shadow=["churn@challenger"], name="churn",
                     output=folder / "ctx", build=False, store=store)
    models = {v: _api.version(store, f"churn/{v}").model_id for v in (1, 2)}
    log = folder / log_name
    log.mkdir()
    lines = []
    for i in range(REQUESTS):
        entries = [{"role": "champion", "version": "1", "model_id": models[1],
                    "prediction": 1, "latency_ms": 2.0 + i},
                   {"role": "shadow", "version": "2", "model_id": models[2],
                    "prediction": 1 if i < AGREEING else 0, "latency_ms": 3.0}]
        lines.append({"time": f"2026-12-03T10:00:{i:02d}.000000Z", "request_id": f"r{i}",
                      "model": "churn", "model_id": models[1], "prediction": 1,
                      "version": "1", "models": entries})
    (log / "predictions-20261203T100000000000Z-1.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines))
    _api.record_deployment(store, pkg.package_id, {"log_dir": str(log)})
    return pkg.package_id, log
