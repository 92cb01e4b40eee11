"""The model server: KServe V2 and plain JSON over HTTP, with input validation.

This package imports only the standard library, numpy, starlette, uvicorn and
prometheus_client (plus what the model needs), never the rest of nbtrail: model images
carry it without DuckDB, polars or JupyterLab. Start it with ``nbtrail serve`` or, inside
an image, ``python -m nbtrail.serving MODEL_FOLDER``.
"""

from ._app import ServeSettings, create_app, load_app
from ._bundle import ModelBundle
from ._predlog import PredictionLog
from ._server import serve

__all__ = ["ModelBundle", "PredictionLog", "ServeSettings", "create_app", "load_app", "serve"]
