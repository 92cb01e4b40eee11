"""The HTTP application: KServe V2 REST, plain JSON ``/predict``, health and metrics.

Expected mistakes answer 4xx with a JSON ``{"error", "problems"?, "request_id"}`` body
and the server keeps serving: bodies are parsed and checked field by field in
``_protocol`` and value by value in ``_signature`` before the model sees them. A failure
inside the model answers 500 with the request id only, and the traceback goes to the
server's log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import NbtrailError
from ._batching import Batcher
from ._bundle import ModelBundle
from ._predlog import PredictionLog
from ._protocol import (
    HEADER_LENGTH,
    ProtocolError,
    columns_from_plain,
    columns_from_v2,
    decode_json,
    encode_json,
    parse_v2,
    split_binary,
    v2_model_metadata,
    v2_tensor,
)
from ._signature import RangePolicy, SignatureError

log = logging.getLogger("nbtrail.serving")

# prometheus_client's multi-process mode: set for servers with several worker processes.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class ServeSettings:
    """How the server treats requests.

    Attributes:
        range_policy: ``"warn"`` answers values outside the training range with a warning,
            ``"reject"`` refuses them with 422.
        max_body_bytes: Larger request bodies get 413.
        log_dir: Folder of the prediction log; ``None`` logs no predictions.
        log_max_bytes: Size at which a prediction log file is rotated.
        log_max_files: Prediction log files kept; older ones are deleted.
    """

    range_policy: RangePolicy = "warn"
    max_body_bytes: int = 10 << 20
    log_dir: str | None = None
    log_max_bytes: int = 64 << 20
    log_max_files: int = 100


class _RequestFailed(Exception):
    def __init__(self, status: int, error: str, problems: list[dict[str, str]] | None = None):
        super().__init__(error)
        self.status, self.error, self.problems = status, error, problems


class _Metrics:
    def __init__(self) -> None:
        multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multi-process mode values live in files shared by the workers, not a registry.
        self.registry = None if multiprocess else CollectorRegistry()
        kwargs: dict[str, Any] = {"registry": self.registry}
        self.requests = Counter("nbtrail_requests", "HTTP requests answered",
                                ["endpoint", "status"], **kwargs)
        self.latency = Histogram(
            "nbtrail_request_duration_seconds", "Time to answer a request", ["endpoint"],
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
            **kwargs,
        )
        self.rows = Counter("nbtrail_predicted_rows", "Rows predicted", **kwargs)
        self.errors = Counter("nbtrail_prediction_errors", "Requests the model failed on",
                              **kwargs)
        self.validation_failures = Counter(
            "nbtrail_validation_failures", "Requests refused by the signature check",
            ["reason"], **kwargs)
        self.out_of_range = Counter(
            "nbtrail_out_of_range_values", "Requests with values outside the training range",
            ["column"], **kwargs)

    def exposition(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


class _JSON(JSONResponse):
    """A JSON response that is valid JSON whatever it holds (see ``encode_json``)."""

    def render(self, content: Any) -> bytes:
        return encode_json(content)


def _error(status: int, error: str, request_id: str,
           problems: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"error": error, "request_id": request_id}
    if problems:
        body["problems"] = problems
    return _JSON(body, status_code=status, headers={"X-Request-ID": request_id})


def create_app(bundle: ModelBundle, settings: ServeSettings | None = None) -> Starlette:
    """The ASGI application serving ``bundle``.

    Example:
        >>> app = create_app(ModelBundle.load("dist/churn/model"))  # doctest: +SKIP
        >>> uvicorn.run(app, port=8080)                              # doctest: +SKIP
    """
    settings = settings or ServeSettings()
    metrics = _Metrics()
    prediction_log = (PredictionLog(settings.log_dir, max_bytes=settings.log_max_bytes,
                                    max_files=settings.log_max_files)
                      if settings.log_dir else None)
    signature = bundle.signature
    metadata = v2_model_metadata(bundle.name, bundle.version, bundle.platform, signature)
    outputs = ["predict", "predict_proba"] if bundle.has_probabilities else ["predict"]
    batcher = Batcher(bundle)

    async def read_body(request: Request) -> bytes:
        encoding = request.headers.get("content-encoding", "identity")
        if encoding.lower() != "identity":
            raise _RequestFailed(415, f"request bodies with Content-Encoding {encoding!r} are "
                                      "not supported; send them uncompressed")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise _RequestFailed(413, f"request body over {settings.max_body_bytes} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                raise _RequestFailed(413, f"request body over {settings.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def check_model(request: Request) -> None:
        name = request.path_params["name"]
        if name != bundle.name:
            raise _RequestFailed(404, f"no model {name!r}; this server serves {bundle.name!r}")
        version = request.path_params.get("version")
        if version is not None and version != bundle.version:
            raise _RequestFailed(404, f"no version {version!r} of {bundle.name!r}; "
                                      f"this server has {bundle.version!r}")

    async def run_model(columns: dict[str, list[Any]], request_id: str,
                        probabilities: bool = True) -> tuple[Any, list[dict[str, str]]]:
        try:
            checked = signature.check(columns, range_policy=settings.range_policy)
        except SignatureError as exc:
            metrics.validation_failures.labels("signature").inc()
            raise _RequestFailed(422, "the input does not match the model's signature",
                                 [p.to_dict() for p in exc.problems]) from None
        for warning in checked.warnings:
            metrics.out_of_range.labels(warning.field).inc()
        try:
            result = await batcher.predict(checked, probabilities=probabilities)
        except Exception:
            metrics.errors.inc()
            log.exception("prediction failed (request %s)", request_id)
            raise _RequestFailed(500, "the model failed on this input; see the server log "
                                      "for this request id") from None
        metrics.rows.inc(checked.n_rows)
        if prediction_log is not None:
            prediction_log.append(
                request_id=request_id, model=bundle.name, model_id=bundle.model_id,
                model_sha256=bundle.sha256, columns=columns,
                predictions=result.predictions.tolist(),
                probabilities=result.probability_rows())
        return result, [w.to_dict() for w in checked.warnings]

    def endpoint(name: str, handler: Callable[[Request, str], Awaitable[Response]]
                 ) -> Callable[[Request], Awaitable[Response]]:
        latency = metrics.latency.labels(name)

        async def wrapped(request: Request) -> Response:
            request_id = request.headers.get("x-request-id") or f"req_{uuid.uuid4().hex}"
            start = time.perf_counter()
            try:
                response = await handler(request, request_id)
            except _RequestFailed as exc:
                response = _error(exc.status, exc.error, request_id, exc.problems)
            except ProtocolError as exc:
                metrics.validation_failures.labels("protocol").inc()
                response = _error(400, str(exc), request_id)
            except NbtrailError as exc:
                response = _error(400, str(exc), request_id)
            except Exception:
                # A bug, not a bad request: logged, and still answered in the error shape.
                log.exception("request %s failed", request_id)
                response = _error(500, "internal error; see the server log for this "
                                       "request id", request_id)
            response.headers["X-Request-ID"] = request_id
            latency.observe(time.perf_counter() - start)
            metrics.requests.labels(name, str(response.status_code)).inc()
            return response

        return wrapped

    async def live(request: Request, request_id: str) -> Response:
        return _JSON({"live": True})

    async def ready(request: Request, request_id: str) -> Response:
        return _JSON({"ready": True})

    async def server_metadata(request: Request, request_id: str) -> Response:
        from .. import __version__

        return _JSON({"name": "nbtrail", "version": __version__,
                      "extensions": ["binary_tensor_data"]})

    async def model_metadata(request: Request, request_id: str) -> Response:
        check_model(request)
        return _JSON(metadata)

    async def model_ready(request: Request, request_id: str) -> Response:
        check_model(request)
        return _JSON({"name": bundle.name, "ready": True})

    async def infer(request: Request, request_id: str) -> Response:
        check_model(request)
        header, binary = split_binary(await read_body(request),
                                      request.headers.get(HEADER_LENGTH))
        parsed = parse_v2(decode_json(header, "the JSON part of the body"), binary, outputs)
        wanted = parsed.outputs or dict.fromkeys(outputs)
        result, warnings = await run_model(columns_from_v2(parsed, signature), request_id,
                                           probabilities="predict_proba" in wanted)
        arrays = {"predict": result.predictions, "predict_proba": result.probabilities}
        tensors = [v2_tensor(name, arrays[name], binary=parsed.binary(name))
                   for name in wanted]
        answer: dict[str, Any] = {"model_name": bundle.name, "model_version": bundle.version,
                                  "id": parsed.id if parsed.id is not None else request_id,
                                  "outputs": [tensor for tensor, _ in tensors]}
        if warnings:
            answer["parameters"] = {"warnings": warnings}
        if not any(parsed.binary(name) for name in wanted):
            return _JSON(answer)
        # Binary tensor data extension: the JSON part, then each output's bytes in order.
        head = encode_json(answer)
        raw = b"".join(data for _, data in tensors)
        return Response(head + raw, media_type="application/octet-stream",
                        headers={HEADER_LENGTH: str(len(head))})

    async def predict(request: Request, request_id: str) -> Response:
        columns = columns_from_plain(decode_json(await read_body(request)))
        result, warnings = await run_model(columns, request_id)
        answer: dict[str, Any] = {"predictions": result.predictions.tolist()}
        if result.probabilities is not None:
            answer["probabilities"] = result.probability_rows()
        if warnings:
            answer["warnings"] = warnings
        answer["model_version"] = bundle.version
        return _JSON(answer)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def info(request: Request, request_id: str) -> Response:
        return _JSON({
            "model": bundle.name, "version": bundle.version, "signature": signature.spec,
            "lineage": bundle.lineage,
            "endpoints": ["/predict", f"/v2/models/{bundle.name}/infer", "/v2/health/ready",
                          "/metrics"],
        })

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        request_id = request.headers.get("x-request-id") or f"req_{uuid.uuid4().hex}"
        return _error(status, f"{detail}: {request.method} {request.url.path}", request_id)

    routes = [
        Route("/", endpoint("info", info)),
        Route("/v2/health/live", endpoint("live", live)),
        Route("/v2/health/ready", endpoint("ready", ready)),
        Route("/v2", endpoint("server_metadata", server_metadata)),
        Route("/v2/", endpoint("server_metadata", server_metadata)),
        Route("/v2/models/{name}", endpoint("model_metadata", model_metadata)),
        Route("/v2/models/{name}/versions/{version}", endpoint("model_metadata",
                                                               model_metadata)),
        Route("/v2/models/{name}/ready", endpoint("model_ready", model_ready)),
        Route("/v2/models/{name}/versions/{version}/ready", endpoint("model_ready",
                                                                     model_ready)),
        Route("/v2/models/{name}/infer", endpoint("infer", infer), methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", endpoint("infer", infer),
              methods=["POST"]),
        Route("/predict", endpoint("predict", predict), methods=["POST"]),
        Route("/metrics", metrics_endpoint),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        batcher.close()
        if prediction_log is not None:
            prediction_log.close()

    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found},
                    lifespan=lifespan)
    app.state.bundle = bundle
    app.state.prediction_log = prediction_log
    return app


def load_app(folder: str | Path, settings: ServeSettings, *, trusted: bool = False) -> Starlette:
    """Load the model folder and build its application."""
    return create_app(ModelBundle.load(folder, trusted=trusted), settings)
