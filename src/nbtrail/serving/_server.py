"""Running the application with uvicorn, in one process or several."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ._app import MULTIPROC_ENV, ServeSettings, load_app

if TYPE_CHECKING:
    from starlette.applications import Starlette

# Worker processes rebuild the app from this variable (uvicorn imports it by name).
_CONFIG_ENV = "NBTRAIL_SERVE_CONFIG"


def _app_from_environment() -> Starlette:
    """The app of one worker process (uvicorn calls this factory)."""
    config = json.loads(os.environ[_CONFIG_ENV])
    return load_app(config["folder"], ServeSettings(**config["settings"]),
                    trusted=config["trusted"])


def serve(folder: str | Path, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          settings: ServeSettings | None = None, trusted: bool = False,
          log_level: str = "info") -> None:
    """Serve the model folder over HTTP until interrupted.

    The model is loaded before the port opens, so a readiness probe never sees a server
    without its model. With ``workers > 1`` each worker process loads it and /metrics adds
    up every worker's counts.
    """
    import uvicorn

    settings = settings or ServeSettings()
    if not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be between 0 and 65535, got {port}")
    if workers < 1:
        raise InvalidInputError(f"workers must be at least 1, got {workers}")
    if workers == 1:
        app = load_app(folder, settings, trusted=trusted)
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
        return
    # Load once here too, so a broken folder fails before any worker starts.
    load_app(folder, settings, trusted=trusted)
    with tempfile.TemporaryDirectory(prefix="nbtrail-metrics-") as metrics_dir:
        os.environ[MULTIPROC_ENV] = metrics_dir
        os.environ[_CONFIG_ENV] = json.dumps({"folder": str(folder), "trusted": trusted,
                                              "settings": asdict(settings)})
        uvicorn.run("nbtrail.serving._server:_app_from_environment", factory=True, host=host,
                    port=port, workers=workers, log_level=log_level, access_log=False)
